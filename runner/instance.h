// One instance of a function: a process group spawned by the runner (through
// the --exec-instance guard, see guard.h), its stdout/stderr captured line by
// line, its readiness probed by connecting to its port, and its pool of
// keep-alive connections.
//
// The lifecycle is one state machine (DESIGN §4, after Envoy's ActiveClient):
//
//   starting → initializing → ready ⇄ busy → draining → stopping → exited
//       └──────────┴────────────┴──────┴────────┴──→ stopping (failure, kill)
//
// Every process, connection and timer event goes through transition(); it
// alone changes state_, and after every change (and every slot taken or
// given back) it tells the Function, whose on_instance_changed() alone
// decides replacement and backoff.  "What happens when an instance dies" is
// transition() below.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "deferred_delete.h"
#include "line_splitter.h"
#include "response_sink.h"
#include "uv_handle.h"

namespace fc {

class Function;
struct FunctionVersion;
class InstanceConnection;
class Exchange;
class PortLease;

// Where an instance listens and how the runner reaches it.
struct InstanceNetwork {
  int port = 0;             // the runner connects to 127.0.0.1:port; also $FC_SERVER_PORT
  bool own_netns = false;   // in its own network namespace (the guard's --netns)
  // A custom runtime without caPort whose app may listen on FC's default
  // 9000 instead of `port`: its sockets are scanned while it does not listen.
  bool watch_default_port = false;
  bool marked = false;      // connect with the runner's mark (guarded instance ports)
  std::unique_ptr<PortLease> lease;  // `port`'s lease from instancePorts, if it is one
};

class Instance final : public DeferredDeletable {
 public:
  enum class State {
    kStarting,      // spawned; probing its port
    kInitializing,  // listening; POST /initialize running
    kReady,         // serving, with a free slot
    kBusy,          // serving, every slot taken
    kDraining,      // no new work; in-flight work (then preStop) finishes
    kStopping,      // signalled or dead: waiting for the exit and the last output
    kExited,        // process, output and connections gone: the Function frees it
  };

  // Why an instance left service.  Everything but kRetired is a failure
  // that counts against the function's restart backoff.
  enum class Ending {
    kNone,
    kRetired,      // drained on purpose (idle, shutdown)
    kReplaced,     // drained on purpose: a newer version of the function took over
    kStartFailed,  // did not listen or initialize, or exited before
    kCrashed,      // exited while serving
    kWedged,       // a request got no response within `timeout`: killed
    kUnhealthy,    // its connections keep failing or its listener is gone
  };

  // What the instance's connections report when a request leaves them.
  enum class Outcome {
    kComplete,   // a whole response
    kAbandoned,  // dropped by the runner (client gone, shutdown)
    kFailed,     // the instance closed or broke the connection early
    kRefused,    // connect() to the instance failed
    kTimedOut,   // the whole request was delivered and no response head came in time
  };

  // How long a stopping instance gets between SIGTERM and SIGKILL.
  static constexpr uint64_t kStopGraceMs = 5000;
  // This many requests in a row whose connection failed early mark the
  // instance unhealthy (one failure fails only its own request).
  static constexpr int kMaxConsecutiveFailures = 3;
  // After the process exited, how long its output pipes may stay open (held
  // by a child that escaped the group, e.g. a daemon) before the runner
  // closes them: such a child never pins the instance.
  static constexpr uint64_t kOutputLingerMs = 300;
  // While a watch_default_port instance does not listen on its port, its
  // sockets are scanned at most this often (listening_ports.h).
  static constexpr uint64_t kPortScanIntervalMs = 20;

  // `version`: the config it runs; `network`: where it listens.
  Instance(Function& function, std::shared_ptr<const FunctionVersion> version, uv_loop_t* loop, std::string id,
           InstanceNetwork network);
  ~Instance() override;
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  // Spawns the process and starts probing; false (with `error`) when the
  // spawn itself failed (the instance is then kExited).
  bool start(std::string& error);

  const std::string& id() const { return id_; }
  const FunctionConfig& config() const;
  const std::shared_ptr<const FunctionVersion>& version() const { return version_; }
  const std::string& tag() const { return tag_; }  // "function/instance" for logs
  int port() const { return port_; }
  bool own_netns() const { return own_netns_; }
  // A starting instance found on another port than it was given serves
  // there (Function::on_default_port_found).
  void adopt_port(int port);
  // A starting instance the function no longer wants (it starts another
  // elsewhere): killed, retired, not a failure.
  void discard(const std::string& why);
  State state() const { return state_; }
  bool ready() const { return state_ == State::kReady; }
  bool starting() const { return state_ == State::kStarting || state_ == State::kInitializing; }
  // Ready, busy or on its way there: counts as capacity.
  bool live() const { return starting() || state_ == State::kReady || state_ == State::kBusy; }
  int in_flight() const { return in_flight_; }
  int pid() const;
  uint64_t idle_since_ms() const { return idle_since_ms_; }
  uint64_t ready_since_ms() const { return ready_since_ms_; }
  // uv_now() when it was spawned; ready_since_ms() - started_ms() is its cold start.
  uint64_t started_ms() const { return started_ms_; }
  // Its memory cgroup's use in bytes; -1 without a cgroup (RLIMIT_AS).
  long long memory_bytes() const;
  // When the last whole response came from it (0: none yet).
  uint64_t last_success_ms() const { return last_success_ms_; }
  // Whole responses it gave (the initializer's and preStop's not counted).
  uint64_t requests_served() const { return requests_served_; }
  // The order in which instances of the function became ready (0: not yet),
  // for $fc_cold_start: see Exchange::start.
  uint64_t ready_serial() const { return ready_serial_; }
  Ending ending() const { return ending_; }
  bool failed() const { return ending_ != Ending::kNone && !on_purpose(ending_); }
  static bool on_purpose(Ending ending) { return ending == Ending::kRetired || ending == Ending::kReplaced; }
  // Why it failed, with the last lines of its output (for the 503 body).
  const std::string& failure() const { return failure_; }

  // Takes a slot and starts the exchange on an idle or new connection.
  void assign(Exchange& exchange);

  // No new work; stop once in-flight work is done (idle reaping, shutdown).
  void begin_drain(const std::string& why);
  // The same, because a newer version took over (Ending::kReplaced).
  void begin_replace(const std::string& why);

  // From InstanceConnection: the request on `conn` left it.
  void on_connection_released(InstanceConnection& conn, Outcome outcome, bool reusable,
                              const std::string& why);
  // From InstanceConnection's close callback.
  void on_connection_closed(InstanceConnection* conn);

  // " (out of memory: ...)" when the kernel OOM-killed the instance.
  std::string failure_detail() const;
  bool out_of_memory() const;   // the kernel OOM-killed something of it (memorySize)
  long refused_forks() const;   // forks refused at maxProcesses (pids cgroup)
  // maxOpenFiles and tmpSize, as last sampled (limit_watch.h): the most
  // descriptors one of its processes holds (-1: not sampled yet), the private
  // /tmp's use (-1: none or not sampled), and whether each was seen at its limit.
  long open_files() const { return open_files_; }
  long long tmp_used_bytes() const { return tmp_used_bytes_; }
  bool open_files_hit() const { return open_files_hit_; }
  bool tmp_full_hit() const { return tmp_full_hit_; }
  // The limits it reached: "memory", "processes", "open_files", "tmp".
  std::vector<std::string> limits_hit() const;

 private:
  class ControlCall;

  struct Event {
    enum class Kind {
      kListening,     // the probe connected
      kInitialized,   // the initializer answered 2xx
      kStartFailed,   // start deadline passed, initializer failed
      kSlotsChanged,  // a request took or gave back a slot
      kUnhealthy,     // connection failures, a refused connect
      kWedged,        // a request timed out
      kDrain,         // retire (idle, shutdown)
      kReplace,       // retire: a newer version serves
      kDiscard,       // not wanted while starting (restarted elsewhere)
      kStopGraceOver, // SIGTERM was not enough
      kExited,        // the process exited
      kOutputClosed,  // stdout and stderr are closed (or were made to)
      kConnectionClosed,
    };
    Kind kind;
    std::string why;
  };
  // The one place the state changes.
  void transition(Event event);
  void set_state(State next);
  void leave_service(Ending ending, const std::string& why, int signal);
  void maybe_finish_drain();
  void maybe_exited();

  void probe();
  void on_probe_result(int status);
  void run_initializer();
  void run_pre_stop();
  void stop_control_call();
  void on_output(int fd, std::string_view line);
  void start_stream(HandlePtr<Pipe>& pipe, LineSplitter& lines, int fd);
  std::string output_tail() const;
  InstanceConnection& idle_connection();
  int instance_socket();  // InstanceConnection's fd argument
  // "; it listens on port 5000 (0.0.0.0:5000) instead: ...": the start
  // failure's clue, from the instance's own sockets.
  std::string where_it_listens();

  Function& function_;
  std::shared_ptr<const FunctionVersion> version_;
  uv_loop_t* loop_;
  std::string id_;
  std::string tag_;
  int port_;
  bool own_netns_;
  bool watch_default_port_;
  bool marked_;
  std::unique_ptr<PortLease> port_lease_;
  uint64_t last_port_scan_ms_ = 0;
  bool foreign_listener_logged_ = false;
  State state_ = State::kStarting;
  State reported_state_ = State::kStarting;  // what the Function last heard
  Ending ending_ = Ending::kNone;
  std::string failure_;
  std::optional<std::string> exit_reason_;  // set once the process exited
  bool pre_stop_called_ = false;

  std::unique_ptr<class MemoryLimit> memory_;
  std::unique_ptr<class ProcessLimit> processes_;  // maxProcesses (isolation.h)
  std::unique_ptr<class LimitWatch> limit_watch_;  // maxOpenFiles, tmpSize (limit_watch.h)
  long open_files_ = -1;
  long long tmp_used_bytes_ = -1;
  bool open_files_hit_ = false;
  bool tmp_full_hit_ = false;
  void on_limit_sample(const struct LimitSample& sample);
  HandlePtr<Process> process_;
  HandlePtr<Pipe> stdout_;
  HandlePtr<Pipe> stderr_;
  LineSplitter stdout_lines_;
  LineSplitter stderr_lines_;
  int open_streams_ = 0;
  std::deque<std::string> tail_;  // the last lines of output, for error messages

  HandlePtr<Tcp> probe_;
  // The readiness probe's connection once it connected, while the instance
  // becomes ready: the request that waits for this cold start (or the
  // initializer) takes it (idle_connection), which spares the app a second
  // accept; nobody else keeps it.
  HandlePtr<Tcp> ready_probe_;
  HandlePtr<Timer> probe_timer_;
  HandlePtr<Timer> start_deadline_;
  HandlePtr<Timer> stop_grace_;
  HandlePtr<Timer> output_linger_;
  HandlePtr<Timer> control_deadline_;  // preStop
  uint64_t started_ms_ = 0;

  std::vector<std::unique_ptr<InstanceConnection>> connections_;
  std::unique_ptr<ControlCall> control_;
  int in_flight_ = 0;
  int consecutive_failures_ = 0;
  uint64_t idle_since_ms_ = 0;
  uint64_t ready_since_ms_ = 0;
  uint64_t last_success_ms_ = 0;
  uint64_t requests_served_ = 0;
  uint64_t ready_serial_ = 0;
};

const char* to_string(Instance::State state);

}  // namespace fc
