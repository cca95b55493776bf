// The daemon: one libuv loop, the listener, the functions, the signals.
// SIGTERM/SIGINT drain: stop accepting, let in-flight exchanges finish
// (bounded by shutdownTimeout), stop every instance, close every handle, and
// let the loop run dry.  SIGUSR1 reopens the log file; SIGUSR2 is logged and
// ignored.  SIGHUP and the admin API's POST /reload reload the config
// (reload()): read, validated and hashed off the loop (reload.h), refused
// whole when invalid, else applied function by function (Function::update,
// retire) while everything keeps serving.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "deferred_delete.h"
#include "metrics.h"
#include "uv_handle.h"

namespace fc {

class AdminServer;
class Function;
class InstancePorts;
class Listener;
struct LoadedConfig;

class Runner {
 public:
  Runner(uv_loop_t* loop, RunnerConfig config);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Binds, installs signal handlers, starts minInstances.  False on failure
  // (logged).
  bool start();

  Function* find(std::string_view name);
  const std::string& config_path() const { return config_.path; }
  // Ports of instances on the host's network, and their guard.
  InstancePorts& instance_ports() { return *instance_ports_; }
  // Frees objects that end inside their own callbacks (deferred_delete.h).
  DeferredDeleter& deleter() { return deleter_; }
  bool shutting_down() const { return shutting_down_; }
  void shutdown(const std::string& why);

  // From the listener.
  void on_connection_closed();

  // Reload (SIGHUP, POST /reload).  `done` (may be empty) gets the HTTP
  // status and the JSON answer (docs/admin.md): 200 applied, 422 refused
  // (invalid config), 503 shutting down.  Reloads asked for while one runs
  // are served by one more run after it, so each sees the file as it is
  // after it was asked for.
  using ReloadDone = std::function<void(int status, const std::string& json)>;
  void reload(const std::string& trigger, ReloadDone done);
  // The last reload's answer (for /status), empty before the first.
  const std::string& last_reload_json() const { return last_reload_json_; }

  // For the admin API (admin.h).
  const RunnerConfig& config() const { return config_; }
  const std::map<std::string, std::unique_ptr<Function>, std::less<>>& functions() const { return functions_; }
  // Removed by a reload and still finishing their work.
  const std::vector<std::unique_ptr<Function>>& removed_functions() const { return removed_functions_; }
  RunnerMetrics& metrics() { return metrics_; }
  const RunnerMetrics& metrics() const { return metrics_; }
  size_t connection_count() const;
  uint64_t started_ms() const { return started_ms_; }     // uv_now() at start()
  int64_t started_unix_ms() const { return started_unix_ms_; }

 private:
  void maybe_stop_functions();
  void on_function_stopped();
  void finish();
  void maybe_start_load();
  void apply_reload(LoadedConfig& loaded, std::vector<ReloadDone> waiters);
  void on_function_gone(Function* function);
  // instanceUids and the uids it must not hand out, from config_ (start, reload).
  void configure_instance_uids();

  uv_loop_t* loop_;
  RunnerConfig config_;
  std::unique_ptr<InstancePorts> instance_ports_;  // outlives every instance (their leases)
  DeferredDeleter deleter_;  // first in, last out: what it holds observes the rest
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<AdminServer> admin_;
  RunnerMetrics metrics_;
  uint64_t started_ms_ = 0;
  int64_t started_unix_ms_ = 0;
  std::map<std::string, std::unique_ptr<Function>, std::less<>> functions_;
  // Removed by a reload, finishing their work; freed by on_function_gone().
  std::vector<std::unique_ptr<Function>> removed_functions_;
  // Background work (reload.h) holds a weak reference: once the runner is
  // gone, its results are dropped.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  bool loading_ = false;       // a load (or the start-up code hash) runs
  bool reload_wanted_ = false;  // asked for since the last load began
  std::vector<ReloadDone> reload_waiters_;
  std::string last_reload_json_;
  HandlePtr<Signal> sigterm_;
  HandlePtr<Signal> sigint_;
  HandlePtr<Signal> sighup_;
  HandlePtr<Signal> sigusr1_;
  HandlePtr<Signal> sigusr2_;
  HandlePtr<Timer> shutdown_timer_;
  HandlePtr<Timer> finish_timer_;
  bool shutting_down_ = false;
  bool stopping_functions_ = false;
  size_t functions_running_ = 0;
};

}  // namespace fc
