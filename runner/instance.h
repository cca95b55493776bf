// One instance of a function: a process group spawned by the runner (through
// the --exec-instance guard, see guard.h), its stdout/stderr captured line by
// line, its readiness probed by connecting to its port, and its pool of
// keep-alive connections.  States (DESIGN §4):
//   starting → initializing → ready ⇄ busy → draining → stopping → exited
// "What happens when an instance dies" is in on_exit() below.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "line_splitter.h"
#include "response_sink.h"
#include "uv_handle.h"

namespace fc {

class Function;
class InstanceConnection;
class Exchange;

class Instance {
 public:
  enum class State { kStarting, kInitializing, kReady, kDraining, kStopping, kExited };

  // How long a stopping instance gets between SIGTERM and SIGKILL.
  static constexpr uint64_t kStopGraceMs = 5000;

  // `own_netns`: the instance gets its own network namespace (caPort apps).
  Instance(Function& function, uv_loop_t* loop, std::string id, int port, bool own_netns);
  ~Instance();
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  // Spawns the process and starts probing; false (with `error`) when the
  // spawn itself failed.
  bool start(std::string& error);

  const std::string& id() const { return id_; }
  const FunctionConfig& config() const;
  const std::string& tag() const { return tag_; }  // "function/instance" for logs
  uv_loop_t* loop() const { return loop_; }
  int port() const { return port_; }
  State state() const { return state_; }
  // Not once the process exited: on_exit() fails the connections (freeing
  // their slots) before it leaves kReady, and no request may land there.
  bool ready() const { return state_ == State::kReady && !exited_; }
  bool starting() const { return state_ == State::kStarting || state_ == State::kInitializing; }
  int in_flight() const { return in_flight_; }
  int pid() const;
  uint64_t idle_since_ms() const { return idle_since_ms_; }
  uint64_t ready_since_ms() const { return ready_since_ms_; }
  uint64_t served() const { return served_; }

  // Takes a slot and starts the exchange on an idle or new connection.
  void assign(Exchange& exchange);

  // No new work; stop once in-flight work is done (idle reaping, shutdown).
  void begin_drain(const std::string& why);
  // The instance is wedged or broken: SIGKILL its group now.
  void kill(const std::string& why);

  // From InstanceConnection: the request on `conn` ended (reusable or not).
  void on_connection_released(InstanceConnection& conn, bool reusable);
  // A failure on a connection that means the instance itself is broken.
  void on_connection_crashed(InstanceConnection& conn, const std::string& why);
  // From InstanceConnection's close callback.
  void on_connection_closed(InstanceConnection* conn);

  // The reason an exit is reported with, e.g. "exited with status 1".
  const std::string& exit_reason() const { return exit_reason_; }
  std::string output_tail() const;
  // " (out of memory: ...)" when the kernel OOM-killed the instance.
  std::string failure_detail() const;

 private:
  class ControlCall;
  void probe();
  void on_probe_result(int status);
  void on_initialized(bool ok, const std::string& why);
  void become_ready();
  void fail_start(const std::string& why);
  void on_exit(int64_t exit_status, int term_signal);
  void report_start_failure();
  void on_output(int fd, std::string_view line);
  void start_stream(HandlePtr<Pipe>& pipe, LineSplitter& lines, int fd);
  void on_stream_closed();
  void maybe_stop();
  void send_stop_signal();
  void maybe_gone();
  void run_pre_stop();
  InstanceConnection& idle_connection();
  int instance_socket();  // InstanceConnection's fd argument

  Function& function_;
  uv_loop_t* loop_;
  std::string id_;
  std::string tag_;
  int port_;
  bool own_netns_;
  State state_ = State::kStarting;

  std::unique_ptr<class MemoryLimit> memory_;
  HandlePtr<Process> process_;
  HandlePtr<Pipe> stdout_;
  HandlePtr<Pipe> stderr_;
  LineSplitter stdout_lines_;
  LineSplitter stderr_lines_;
  int open_streams_ = 0;
  std::deque<std::string> tail_;  // the last lines of output, for error messages

  HandlePtr<Tcp> probe_;
  HandlePtr<Timer> probe_timer_;
  HandlePtr<Timer> deadline_timer_;  // start deadline, then stop grace
  uint64_t started_ms_ = 0;

  std::vector<std::unique_ptr<InstanceConnection>> connections_;
  std::unique_ptr<ControlCall> control_;
  int in_flight_ = 0;
  uint64_t served_ = 0;
  uint64_t idle_since_ms_ = 0;
  uint64_t ready_since_ms_ = 0;

  bool start_failed_ = false;
  bool exited_ = false;
  bool pre_stop_done_ = false;
  bool term_sent_ = false;
  bool start_failure_pending_ = false;
  bool crashed_ = false;
  std::string start_failure_;
  std::string exit_reason_;
  std::string kill_reason_;
};

const char* to_string(Instance::State state);

}  // namespace fc
