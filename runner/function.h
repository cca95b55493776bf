// A function: its config, its FIFO queue of exchanges (one per function,
// never per instance) and its pool of instances.  It applies the Scheduler's
// decisions and owns "what happens to waiting requests" when instances come
// and go.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "frames.h"
#include "scheduler.h"
#include "uv_handle.h"

namespace fc {

class Exchange;
class Instance;
class Runner;

class Function {
 public:
  Function(Runner& runner, uv_loop_t* loop, FunctionConfig config);
  ~Function();
  Function(const Function&) = delete;
  Function& operator=(const Function&) = delete;

  const FunctionConfig& config() const { return config_; }
  const std::string& name() const { return config_.name; }
  // The FC headers every call of this function carries (function_header_lines).
  const std::string& header_lines() const { return header_lines_; }
  uv_loop_t* loop() const { return loop_; }
  int max_instances() const { return scheduler_.max_instances(); }
  // Why max_instances is below the config's maxInstances, or empty.
  const std::string& cap_reason() const { return cap_reason_; }

  // Starts minInstances.
  void start();

  // A new exchange: served at once, queued, or failed (QueueFull).
  void submit(Exchange& exchange);
  // The exchange goes away while queued (client gone).
  void withdraw(Exchange& exchange);

  // From instances.
  void on_instance_ready(Instance& instance);
  void on_slot_free(Instance& instance);
  void on_instance_failed(Instance& instance, const std::string& reason);
  void on_instance_crashed(Instance& instance, const std::string& reason);
  void on_instance_gone(Instance* instance);

  // Shutdown: stop every instance; `on_stopped` runs once none is left.
  void stop(std::function<void()> on_stopped);
  size_t instance_count() const { return instances_.size(); }
  size_t queued() const { return queue_.size(); }

 private:
  void dispatch();
  void scale_up();
  void start_instance();
  void arm_queue_timer();
  void on_queue_timer();
  void arm_idle_timer();
  void on_idle_timer();
  void fail_queue(const GatewayError& error);
  int free_port();
  bool any_live_instance(const Instance* except) const;

  Runner& runner_;
  uv_loop_t* loop_;
  FunctionConfig config_;
  std::string header_lines_;
  bool own_netns_;          // an own network namespace per instance (caPort)
  std::string cap_reason_;  // before scheduler_: its initializer fills it
  Scheduler scheduler_;
  RestartBackoff backoff_;
  std::string last_failure_;

  std::deque<Exchange*> queue_;
  std::vector<std::unique_ptr<Instance>> instances_;
  HandlePtr<Timer> queue_timer_;
  HandlePtr<Timer> idle_timer_;
  HandlePtr<Timer> restart_timer_;
  bool stopping_ = false;
  std::function<void()> on_stopped_;
};

}  // namespace fc
