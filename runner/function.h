// A function: its versions (the serving one and, during a rollout, the one
// starting), its FIFO queue of exchanges (one per function, never per
// version or instance) and its pool of instances of any version.  It
// applies the Scheduler's decisions, and on_instance_changed() -- the one
// callback of the instance state machine (instance.h) -- alone decides
// replacement, restart backoff, when a new version takes over (or is
// abandoned), and what happens to waiting requests when instances come and go.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "deferred_delete.h"
#include "frames.h"
#include "instance.h"
#include "instance_uids.h"
#include "metrics.h"
#include "scheduler.h"
#include "uv_handle.h"

namespace fc {

class Exchange;
class Runner;

// One version of a function (DESIGN §4.4): the config and code its
// instances run.  The runner starts with version 1 of every function; a
// reload that changes a function's config or the contents of its codeUri
// makes the next one.  Instances hold their version (a version lives while
// one of its instances or exchanges does), so every instance runs with the
// config it was started with, whatever the function serves meanwhile.
struct FunctionVersion {
  FunctionVersion(int number, FunctionConfig config, std::string code_hash);

  const int number;
  const FunctionConfig config;
  std::string code_hash;    // hash_code_tree() of codeUri; empty while unknown
  const std::string config_hash;   // config.digest()
  const std::string header_lines;  // function_header_lines(config)

  // Where the app listens (DESIGN §6: FC's default port), learnt per version:
  // new code may listen elsewhere.
  enum class PortMode {
    kAssigned,  // on $FC_SERVER_PORT, a port of instancePorts (built-in runtimes, and apps found doing so)
    kUnknown,   // custom runtime without caPort whose first instance has not listened yet
    kFixed,     // on fixed_port itself: caPort, or FC's default 9000 found by the socket scan
  };
  PortMode port_mode = PortMode::kAssigned;
  int fixed_port = kFcDefaultCaPort;
  bool own_netns = false;  // an own network namespace per instance
  std::string cap_reason;  // why the pool is below maxInstances, or empty
  Scheduler scheduler;
  RestartBackoff backoff;
  std::string last_failure;  // why its last instance failed to start (503 text)

  // Ready instances a new version needs before traffic moves to it:
  // max(1, minInstances), within its pool bound.
  int ready_capacity_wanted() const;
  // A fixed port without network namespaces: one instance of the function
  // at a time holds the port, so versions cannot overlap.
  bool exclusive_port() const { return port_mode == PortMode::kFixed && !own_netns; }
  // Sets own_netns, the cap and the pool bound from the config and what is
  // known about the app (the constructor, Function::on_default_port_found).
  void decide_network();
};

// The last new version of a function that failed to start (status, metrics).
struct FailedVersion {
  int number = 0;
  std::string config_hash;
  std::string code_hash;
  std::string error;
  int64_t failed_unix_ms = 0;
};

class Function final : public DeferredDeletable {
 public:
  Function(Runner& runner, uv_loop_t* loop, FunctionConfig config, std::string code_hash = {});
  ~Function() override;
  Function(const Function&) = delete;
  Function& operator=(const Function&) = delete;

  // The version that serves (new requests, new instances).
  const FunctionConfig& config() const { return serving_->config; }
  const FunctionVersion& version() const { return *serving_; }
  // The version starting in the background, or null.
  const FunctionVersion* candidate() const { return candidate_.get(); }
  // The last new version that failed, if it is newer than the serving one.
  const FailedVersion* failed_version() const {
    return failed_ && failed_->number > serving_->number ? &*failed_ : nullptr;
  }
  const std::string& name() const { return name_; }
  uv_loop_t* loop() const { return loop_; }
  // The FC headers every call of the serving version carries (function_header_lines;
  // none for the built-in runtimes, which have them in their environment).
  const std::string& header_lines() const { return serving_->header_lines; }
  int max_instances() const { return serving_->scheduler.max_instances(); }
  // Why max_instances is below the config's maxInstances, or empty.
  const std::string& cap_reason() const { return serving_->cap_reason; }

  using PortMode = FunctionVersion::PortMode;
  PortMode port_mode() const { return serving_->port_mode; }
  int fixed_port() const { return serving_->fixed_port; }
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

  // Reload.  The code hash of the serving version, once the start-up hash
  // is known (only while it is still version `number`).
  void set_code_hash(int number, const std::string& code_hash);
  // What update() would do with this config and code hash.
  enum class Change { kNone, kNewVersion, kCancelCandidate };
  Change change_for(const FunctionConfig& config, const std::string& code_hash) const;
  // A new version (config or code changed): its instances start and
  // initialize while the serving version keeps serving; traffic moves once
  // it has ready_capacity_wanted() ready instances.  Returns its number.
  // Equal to the serving version (a candidate is being replaced by what
  // serves): the candidate is dropped and 0 is returned.
  int update(FunctionConfig config, std::string code_hash);
  // Removed from the config: waiting requests get 404, instances finish
  // their in-flight work and stop; `on_gone` runs once neither an instance
  // nor an exchange of this function is left.
  void retire(std::function<void()> on_gone);

  // Exchange lifetime (an exchange refers to its function until it is freed).
  void exchange_opened() { exchanges_++; }
  void exchange_closed();

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
  void start_instance(const std::shared_ptr<FunctionVersion>& version);
  void log_version_start(const FunctionVersion& version) const;
  // Rollout: the candidate's start, its promotion, its failure.
  void start_candidate();
  void maybe_promote();
  void fail_candidate(const std::string& why);
  void drop_candidate(const std::string& why);
  void replace_instances_of_other_versions();
  bool other_version_holds_port() const;
  void arm_queue_timer();
  void on_queue_timer();
  void arm_idle_timer();
  void on_idle_timer();
  void fail_queue(const GatewayError& error);
  // The function's own version `instance` runs (serving or candidate), or
  // null for an old one.
  FunctionVersion* own_version(const Instance& instance);
  bool any_live_instance(const Instance* except) const;
  void maybe_gone();

  Runner& runner_;
  uv_loop_t* loop_;
  std::string name_;
  int last_version_number_ = 1;
  std::shared_ptr<FunctionVersion> serving_;
  std::shared_ptr<FunctionVersion> candidate_;
  std::optional<FailedVersion> failed_;

  std::deque<Exchange*> queue_;
  std::vector<std::unique_ptr<Instance>> instances_;
  // The uid of its own its instances run as (instanceUids): held from the
  // first instance start until the last instance is gone.
  std::shared_ptr<UidPool::Lease> uid_lease_;
  HandlePtr<Timer> queue_timer_;
  HandlePtr<Timer> idle_timer_;
  HandlePtr<Timer> restart_timer_;
  bool stopping_ = false;
  bool retiring_ = false;
  bool dispatching_ = false;
  std::vector<InstanceView> views_;  // dispatch_once's, kept: no allocation per request
  bool dispatch_again_ = false;
  uint64_t ready_serials_ = 0;
  size_t exchanges_ = 0;
  std::function<void()> on_stopped_;
  std::function<void()> on_gone_;
  FunctionMetrics metrics_;
};

}  // namespace fc
