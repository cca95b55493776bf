// The daemon: one libuv loop, the listener, the functions, the signals.
// SIGTERM/SIGINT drain: stop accepting, let in-flight exchanges finish
// (bounded by shutdownTimeout), stop every instance, close every handle, and
// let the loop run dry.  SIGUSR1 reopens the log file; SIGHUP (reload, not
// there yet) and SIGUSR2 are logged and ignored, so a logrotate or `systemctl reload`
// never takes the runner down.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "config.h"
#include "deferred_delete.h"
#include "metrics.h"
#include "uv_handle.h"

namespace fc {

class AdminServer;
class Function;
class InstancePorts;
class Listener;

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

  // For the admin API (admin.h).
  const RunnerConfig& config() const { return config_; }
  const std::map<std::string, std::unique_ptr<Function>, std::less<>>& functions() const { return functions_; }
  RunnerMetrics& metrics() { return metrics_; }
  const RunnerMetrics& metrics() const { return metrics_; }
  size_t connection_count() const;
  uint64_t started_ms() const { return started_ms_; }     // uv_now() at start()
  int64_t started_unix_ms() const { return started_unix_ms_; }

 private:
  void maybe_stop_functions();
  void on_function_stopped();
  void finish();

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
