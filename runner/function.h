// A function: its config, its FIFO queue of exchanges (one per function,
// never per instance) and its pool of instances.  It applies the Scheduler's
// decisions, and on_instance_changed() -- the one callback of the instance
// state machine (instance.h) -- alone decides replacement, restart backoff
// and what happens to waiting requests when instances come and go.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "deferred_delete.h"
#include "frames.h"
#include "instance.h"
#include "metrics.h"
#include "scheduler.h"
#include "uv_handle.h"

namespace fc {

class Exchange;
class Runner;

class Function {
 public:
  Function(Runner& runner, uv_loop_t* loop, FunctionConfig config);
  ~Function();
  Function(const Function&) = delete;
  Function& operator=(const Function&) = delete;

  const FunctionConfig& config() const { return config_; }
  const std::string& name() const { return config_.name; }
  uv_loop_t* loop() const { return loop_; }
  // The FC headers every call of this function carries (function_header_lines).
  const std::string& header_lines() const { return header_lines_; }
  int max_instances() const { return scheduler_.max_instances(); }
  // Why max_instances is below the config's maxInstances, or empty.
  const std::string& cap_reason() const { return cap_reason_; }

  // Where the app listens (DESIGN §6: FC's default port).
  enum class PortMode {
    kAssigned,  // on $FC_SERVER_PORT, a port of instancePorts (built-in runtimes, and apps found doing so)
    kUnknown,   // custom runtime without caPort whose first instance has not listened yet
    kFixed,     // on fixed_port() itself: caPort, or FC's default 9000 found by the socket scan
  };
  PortMode port_mode() const { return port_mode_; }
  int fixed_port() const { return fixed_port_; }
  // From a kUnknown instance whose own sockets show it listening on FC's
  // default port instead of its $FC_SERVER_PORT: from now on the function
  // is a fixed-port one.  With network namespaces the instance is replaced
  // by one in its own namespace (so siblings can all use the port);
  // without, it is kept and the function runs one instance.
  void on_default_port_found(Instance& instance, int port);

  // For the admin API.
  FunctionMetrics& metrics() { return metrics_; }
  const FunctionMetrics& metrics() const { return metrics_; }
  size_t queue_depth() const { return queue_.size(); }
  const std::vector<std::unique_ptr<Instance>>& instances() const { return instances_; }

  // Starts minInstances.
  void start();

  // A new exchange: served at once, queued, or failed (QueueFull).
  void submit(Exchange& exchange);
  // The exchange goes away while queued (client gone).
  void withdraw(Exchange& exchange);

  // The instance state machine's one callback: after every transition of
  // `instance` (from `previous`) and every slot it took or gave back.
  void on_instance_changed(Instance& instance, Instance::State previous);
  // An instance whose successful responses span this long since it became
  // ready resets the restart backoff: until then every replacement of a
  // failed instance (start failure, crash, wedge, unhealthy) waits longer.
  static constexpr uint64_t kHealthyServiceMs = 10'000;

  DeferredDeleter& deleter();
  // Instances of this function that became ready so far; the next one.
  uint64_t ready_serials() const { return ready_serials_; }
  uint64_t next_ready_serial() { return ++ready_serials_; }

  // Shutdown: stop every instance; `on_stopped` runs once none is left.
  void stop(std::function<void()> on_stopped);

 private:
  void dispatch();
  void dispatch_once();
  // `refused`: requests turned away (maxQueueSize) that still ask for capacity.
  void scale_up(size_t refused = 0);
  void on_instance_failed(Instance& instance);
  void remove(Instance& instance);
  void start_instance();
  void arm_queue_timer();
  void on_queue_timer();
  void arm_idle_timer();
  void on_idle_timer();
  void fail_queue(const GatewayError& error);
  // Sets port_mode_, own_netns_ and the cap from the config and what is
  // known about the app (the constructor, on_default_port_found).
  void decide_network();
  bool any_live_instance(const Instance* except) const;

  Runner& runner_;
  uv_loop_t* loop_;
  FunctionConfig config_;
  std::string header_lines_;
  Scheduler scheduler_;
  PortMode port_mode_ = PortMode::kAssigned;
  int fixed_port_ = kFcDefaultCaPort;
  bool own_netns_ = false;  // an own network namespace per instance
  std::string cap_reason_;
  RestartBackoff backoff_;
  std::string last_failure_;

  std::deque<Exchange*> queue_;
  std::vector<std::unique_ptr<Instance>> instances_;
  HandlePtr<Timer> queue_timer_;
  HandlePtr<Timer> idle_timer_;
  HandlePtr<Timer> restart_timer_;
  bool stopping_ = false;
  bool dispatching_ = false;
  bool dispatch_again_ = false;
  uint64_t ready_serials_ = 0;
  std::function<void()> on_stopped_;
  FunctionMetrics metrics_;
};

}  // namespace fc
