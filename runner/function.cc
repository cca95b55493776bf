#include "function.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "exchange.h"
#include "fc_errors.h"
#include "ids.h"
#include "instance.h"
#include "instance_ports.h"
#include "netns.h"
#include "runner.h"

namespace fc {

namespace {

uint64_t ms(double seconds) { return seconds <= 0 ? 0 : static_cast<uint64_t>(seconds * 1000.0); }

// fc_instance_exits_total's reason label.
std::string exit_reason(const Instance& instance) {
  switch (instance.ending()) {
    case Instance::Ending::kNone:
    case Instance::Ending::kRetired: return "retired";
    case Instance::Ending::kStartFailed: return "start_failed";
    case Instance::Ending::kCrashed: return instance.failure_detail().empty() ? "crashed" : "oom";
    case Instance::Ending::kWedged: return "timeout";
    case Instance::Ending::kUnhealthy: return "unhealthy";
  }
  return "unknown";
}

}  // namespace

Function::Function(Runner& runner, uv_loop_t* loop, FunctionConfig config)
    : runner_(runner),
      loop_(loop),
      config_(std::move(config)),
      header_lines_(function_header_lines(config_)),
      scheduler_(config_.instance_concurrency, std::max(1, config_.max_instances)),
      queue_timer_(Timer::create(loop)),
      idle_timer_(Timer::create(loop)),
      restart_timer_(Timer::create(loop)) {
  using Network = FunctionConfig::Network;
  if (config_.network == Network::kPrivate) {
    // Its own namespace with only a loopback: the app may listen on
    // $FC_SERVER_PORT or on the fixed port, they are one.
    port_mode_ = PortMode::kFixed;
    fixed_port_ = config_.ca_port;
    if (!network_namespaces_available()) {
      config_.problems.emplace_back(runner.config_path(), config_.network_line, "functions." + config_.name + ".network",
                                    kPrivateNetworkNeedsRoot);
    }
  } else if (config_.runtime == Runtime::kCustom) {
    port_mode_ = config_.ca_port_set ? PortMode::kFixed : PortMode::kUnknown;
    fixed_port_ = config_.ca_port;
  }
  decide_network();
}

void Function::decide_network() {
  using Network = FunctionConfig::Network;
  int max = std::max(1, config_.max_instances);
  cap_reason_.clear();
  if (config_.network == Network::kPrivate) {
    own_netns_ = true;
  } else if (port_mode_ == PortMode::kFixed) {
    own_netns_ = config_.network == Network::kDefault && max > 1 && network_namespaces_available();
    if (max > 1 && !own_netns_) {
      // Every instance would listen on the same port; in one network
      // namespace only one of them can.
      cap_reason_ = fmt::format(
          "the app listens on the fixed {} {} and {}: capped at 1 instance instead of maxInstances {}",
          config_.ca_port_set ? "caPort" : "port (FC's default caPort)", fixed_port_,
          config_.network == Network::kHost ? "network: host keeps every instance in the host's network"
                                            : "the runner cannot create network namespaces (it needs root)",
          config_.max_instances);
      max = 1;
    }
  } else {
    own_netns_ = false;
  }
  scheduler_.set_max_instances(max);
}

void Function::on_default_port_found(Instance& instance, int port) {
  if (port_mode_ != PortMode::kUnknown) return;
  port_mode_ = PortMode::kFixed;
  fixed_port_ = port;
  decide_network();
  std::string why = fmt::format(
      "its instance {} listens on FC's default port {} instead of $FC_SERVER_PORT ({}), as FC allows without caPort",
      instance.id(), port, instance.port());
  if (own_netns_) {
    spdlog::warn("function {}: {}: from now on each instance gets its own network namespace with the app on {}, "
                 "as with caPort: {} (an instance there does not reach the host's 127.0.0.1; set caPort to skip "
                 "this first start, or listen on $FC_SERVER_PORT); {} is restarted in its own namespace",
                 config_.name, why, port, port, instance.id());
    // Not a failure: no backoff, and the requests keep waiting for the
    // replacement that dispatch() starts once this one is gone.
    instance.discard(fmt::format("restarted in its own network namespace (it listens on port {})", port));
    return;
  }
  spdlog::warn("function {}: {}: it serves there; {}", config_.name, why,
               cap_reason_.empty() ? std::string("maxInstances is 1") : cap_reason_);
  instance.adopt_port(port);
}

Function::~Function() = default;

DeferredDeleter& Function::deleter() { return runner_.deleter(); }

void Function::start() {
  spdlog::info("function {}: runtime {}, type {}, codeUri {}, timeout {} s, memorySize {} MB, "
               "instanceConcurrency {}, instances {}..{}, maxQueueSize {}, maxQueueTime {} s, idleTimeout {} s{}",
               config_.name, to_string(config_.runtime), to_string(config_.type), config_.code_uri,
               format_seconds(config_.timeout_s), config_.memory_size_mb, config_.instance_concurrency,
               config_.min_instances, scheduler_.max_instances(), config_.max_queue_size,
               format_seconds(config_.max_queue_time_s), format_seconds(config_.idle_timeout_s),
               config_.initializer.empty() ? "" : fmt::format(", initializer {}", config_.initializer));
  std::string ignored = config_.ignored_keys_warning(runner_.config_path());
  if (!ignored.empty()) spdlog::warn("{}", ignored);
  if (!config_.problems.empty()) {
    for (const ConfigError& problem : config_.problems) {
      spdlog::error("function {} cannot be served: {}", config_.name, problem.what());
    }
    return;  // no instance; requests get the reason (submit)
  }
  if (!cap_reason_.empty()) spdlog::warn("function {}: {}", config_.name, cap_reason_);
  if (config_.network == FunctionConfig::Network::kPrivate) {
    spdlog::info("function {}: network: private: each instance gets its own network namespace with only its "
                 "loopback (no outside access), the app on port {}",
                 config_.name, fixed_port_);
  } else if (own_netns_) {
    spdlog::info("function {}: the app listens on the fixed caPort {}: each instance gets its own network namespace",
                 config_.name, config_.ca_port);
  } else if (port_mode_ == PortMode::kUnknown && config_.max_instances > 1 &&
             config_.network == FunctionConfig::Network::kDefault && !network_namespaces_available()) {
    spdlog::info("function {}: no caPort: an app on $FC_SERVER_PORT scales to maxInstances {}; one that listens on "
                 "FC's default port {} instead runs as 1 instance, because the runner cannot create network "
                 "namespaces (it needs root)",
                 config_.name, config_.max_instances, kFcDefaultCaPort);
  }
  scale_up();
  arm_idle_timer();
}

// ---- requests --------------------------------------------------------------------

void Function::submit(Exchange& exchange) {
  if (!config_.problems.empty()) {
    // The config says why no instance can start: every request hears it
    // (InitializationFailed, as when an instance fails to start).
    std::string reasons;
    for (const ConfigError& problem : config_.problems) reasons += (reasons.empty() ? "" : "; ") + std::string(problem.what());
    exchange.fail(GatewayError{503, FC_ERR_INITIALIZATION_FAILED,
                               fmt::format("function '{}' cannot be served: {}", config_.name, reasons)});
    return;
  }
  exchange.enqueued_ms = uv_now(loop_);
  exchange.ready_serials_seen = ready_serials_;
  bool free_slot = false;
  for (auto& inst : instances_) {
    if (inst->ready() && inst->in_flight() < scheduler_.concurrency()) free_slot = true;
  }
  if (!free_slot && queue_.size() >= static_cast<size_t>(std::max(0, config_.max_queue_size))) {
    // No waiting, but the demand still scales the pool: with maxQueueSize 0
    // a cold function gets its instance for the requests that follow.
    scale_up(1);
    metrics_.queue_full++;
    exchange.fail(GatewayError{503, FC_ERR_QUEUE_FULL,
                               fmt::format("function '{}' has {} requests waiting (maxQueueSize {})",
                                           config_.name, queue_.size(), config_.max_queue_size)});
    return;
  }
  queue_.push_back(&exchange);
  dispatch();
}

void Function::withdraw(Exchange& exchange) {
  auto it = std::find(queue_.begin(), queue_.end(), &exchange);
  if (it == queue_.end()) return;
  queue_.erase(it);
  arm_queue_timer();
}

void Function::dispatch() {
  // Assigning a request makes its instance call back, which dispatches:
  // the outer call goes round again instead of nesting.
  if (dispatching_) {
    dispatch_again_ = true;
    return;
  }
  dispatching_ = true;
  do {
    dispatch_again_ = false;
    dispatch_once();
  } while (dispatch_again_);
  dispatching_ = false;
}

void Function::dispatch_once() {
  std::vector<InstanceView> views;
  while (!queue_.empty()) {
    views.clear();
    for (auto& inst : instances_) views.push_back({inst->ready(), inst->starting(), inst->in_flight()});
    int pick = scheduler_.pick(views);
    if (pick < 0) break;
    Exchange* exchange = queue_.front();
    queue_.pop_front();
    instances_[static_cast<size_t>(pick)]->assign(*exchange);
  }
  scale_up();
  if (!queue_.empty()) {
    if (!last_failure_.empty() && !any_live_instance(nullptr) && backoff_.delay(uv_now(loop_)) > 0) {
      // No instance can come up before the backoff ends: answer now with the
      // reason the last one failed (FC: the next request tries a fresh one).
      fail_queue(GatewayError{503, FC_ERR_INITIALIZATION_FAILED, last_failure_});
      return;
    }
  }
  arm_queue_timer();
}

void Function::scale_up(size_t refused) {
  if (stopping_ || !config_.problems.empty()) return;
  std::vector<InstanceView> views;
  for (auto& inst : instances_) views.push_back({inst->ready(), inst->starting(), inst->in_flight()});
  size_t wanted = queue_.size() + refused;
  int n = scheduler_.to_start(wanted, views);
  // minInstances are kept warm, queue or not.
  int live = static_cast<int>(std::count_if(instances_.begin(), instances_.end(), [](auto& i) { return i->live(); }));
  n = std::max(n, std::min(config_.min_instances, scheduler_.max_instances()) - live);
  int room = scheduler_.max_instances() - static_cast<int>(instances_.size());
  // Until the first instance shows where the app listens, one at a time:
  // siblings of an app on FC's default port would collide on the host.
  if (port_mode_ == PortMode::kUnknown) room = std::min(room, 1 - live);
  n = std::min(n, room);
  if (n <= 0) return;
  uint64_t wait = backoff_.delay(uv_now(loop_));
  if (wait > 0) {
    if (!restart_timer_->active()) {
      restart_timer_->start(wait, [this] { dispatch(); });
    }
    return;
  }
  for (int i = 0; i < n; i++) start_instance();
}

void Function::start_instance() {
  InstanceNetwork network;
  if (port_mode_ == PortMode::kFixed) {
    network.port = fixed_port_;
    network.own_netns = own_netns_;
  } else {
    InstancePorts& ports = runner_.instance_ports();
    network.lease = ports.acquire();
    if (!network.lease) {
      last_failure_ = fmt::format("no free port in instancePorts {} ({} ports, each in use): widen instancePorts",
                                  ports.range(), ports.last() - ports.first() + 1);
      spdlog::error("function {}: {}", config_.name, last_failure_);
      backoff_.on_failure(uv_now(loop_));
      return;
    }
    network.port = network.lease->port();
    network.watch_default_port = port_mode_ == PortMode::kUnknown;
  }
  network.marked = !network.own_netns && runner_.instance_ports().guarded();
  auto instance = std::make_unique<Instance>(*this, loop_, new_instance_id(), std::move(network));
  Instance* raw = instance.get();
  instances_.push_back(std::move(instance));
  std::string error;
  metrics_.instance_starts++;
  if (!raw->start(error)) {
    metrics_.instance_failures++;
    metrics_.instance_exits["start_failed"]++;
    spdlog::error("[{}] {}", raw->tag(), error);
    last_failure_ = error;
    backoff_.on_failure(uv_now(loop_));
    deleter().defer(std::move(instances_.back()));
    instances_.pop_back();
  }
}

bool Function::any_live_instance(const Instance* except) const {
  return std::any_of(instances_.begin(), instances_.end(),
                     [except](auto& i) { return i.get() != except && i->live(); });
}

void Function::fail_queue(const GatewayError& error) {
  // Failing an exchange withdraws it from the queue: take the queue first.
  std::deque<Exchange*> failed;
  failed.swap(queue_);
  for (auto* exchange : failed) exchange->fail(GatewayError(error));
  arm_queue_timer();
}

// ---- queue time ----------------------------------------------------------------------

void Function::arm_queue_timer() {
  if (queue_.empty() || config_.max_queue_time_s <= 0) {
    queue_timer_->stop();
    return;
  }
  uint64_t deadline = queue_.front()->enqueued_ms + ms(config_.max_queue_time_s);
  uint64_t now = uv_now(loop_);
  queue_timer_->start(deadline > now ? deadline - now : 0, [this] { on_queue_timer(); });
}

void Function::on_queue_timer() {
  uint64_t now = uv_now(loop_);
  uint64_t limit = ms(config_.max_queue_time_s);
  while (!queue_.empty() && queue_.front()->enqueued_ms + limit <= now) {
    Exchange* exchange = queue_.front();
    queue_.pop_front();
    metrics_.queue_timeout++;
    exchange->fail(GatewayError{503, FC_ERR_QUEUE_TIMEOUT,
                                fmt::format("the request waited {} s for an instance of function '{}' "
                                            "(maxQueueTime)",
                                            format_seconds(config_.max_queue_time_s), config_.name)});
  }
  arm_queue_timer();
}

// ---- idle reaping ---------------------------------------------------------------------

void Function::arm_idle_timer() {
  if (config_.idle_timeout_s <= 0 || stopping_) return;
  // Check at a tenth of the idle timeout (at least every 100 ms, at most every 5 s).
  uint64_t period = std::clamp<uint64_t>(ms(config_.idle_timeout_s) / 10, 100, 5000);
  idle_timer_->start(period, [this] { on_idle_timer(); });
}

void Function::on_idle_timer() {
  uint64_t now = uv_now(loop_);
  uint64_t limit = ms(config_.idle_timeout_s);
  int live = static_cast<int>(std::count_if(instances_.begin(), instances_.end(), [](auto& i) { return i->live(); }));
  for (auto& inst : instances_) {
    if (live <= config_.min_instances) break;
    if (inst->ready() && inst->in_flight() == 0 && now - inst->idle_since_ms() >= limit) {
      live--;
      inst->begin_drain(fmt::format("idle for {} s", format_seconds(config_.idle_timeout_s)));
    }
  }
  arm_idle_timer();
}

// ---- instance events -----------------------------------------------------------------------

void Function::on_instance_changed(Instance& instance, Instance::State previous) {
  using State = Instance::State;
  if (instance.state() == State::kExited) {
    metrics_.instance_exits[exit_reason(instance)]++;
    if (instance.failed()) metrics_.instance_failures++;
    if (instance.failed()) on_instance_failed(instance);
    remove(instance);
    return;
  }
  // Served well for a while: past failures are forgiven.
  if (instance.ready_since_ms() != 0 && instance.last_success_ms() >= instance.ready_since_ms() + kHealthyServiceMs &&
      backoff_.failures() > 0) {
    spdlog::debug("function {}: restart backoff reset ({} served well)", config_.name, instance.tag());
    backoff_.on_success();
  }
  bool became_ready = (previous == State::kStarting || previous == State::kInitializing) &&
                      (instance.state() == State::kReady || instance.state() == State::kBusy);
  if (port_mode_ == PortMode::kUnknown && previous == State::kStarting &&
      (instance.state() == State::kInitializing || became_ready)) {
    // It listens on $FC_SERVER_PORT: its siblings may start together.
    port_mode_ = PortMode::kAssigned;
  }
  if (became_ready) {
    last_failure_.clear();
    metrics_.cold_starts++;
    metrics_.cold_start_duration.observe(static_cast<double>(instance.ready_since_ms() - instance.started_ms()) / 1000.0);
  }
  // A free slot, a new instance, or one that left service (a replacement
  // may start when there is room).
  if (instance.state() == State::kReady || instance.state() != previous) dispatch();
}

void Function::on_instance_failed(Instance& instance) {
  uint64_t now = uv_now(loop_);
  backoff_.on_failure(now);
  spdlog::warn("function {}: instance {} failed ({} in a row): a replacement starts in {} ms at the earliest",
               config_.name, instance.id(), backoff_.failures(), backoff_.delay(now));
  if (instance.ending() != Instance::Ending::kStartFailed) return;
  // Requests that wait while no instance can start are answered with this
  // (a crash or a wedge after ready lets them wait for the replacement).
  last_failure_ = instance.failure();
  if (!any_live_instance(&instance)) {
    // Nobody else can take the waiting requests: they get the reason now.
    fail_queue(GatewayError{503, FC_ERR_INITIALIZATION_FAILED, instance.failure()});
  }
}

void Function::remove(Instance& instance) {
  auto it = std::find_if(instances_.begin(), instances_.end(), [&](auto& i) { return i.get() == &instance; });
  if (it == instances_.end()) return;
  // Its last connection's close callback is on the stack.
  deleter().defer(std::move(*it));
  instances_.erase(it);
  if (stopping_) {
    if (instances_.empty() && on_stopped_) {
      auto done = std::move(on_stopped_);
      on_stopped_ = nullptr;
      done();
    }
    return;
  }
  dispatch();  // replaces it when work waits or minInstances asks for it
}

// ---- shutdown ---------------------------------------------------------------------------------

void Function::stop(std::function<void()> on_stopped) {
  stopping_ = true;
  idle_timer_->stop();
  restart_timer_->stop();
  fail_queue(GatewayError{503, FC_ERR_RUNNER_UNAVAILABLE, "the runner is shutting down"});
  if (instances_.empty()) {
    on_stopped();
    return;
  }
  on_stopped_ = std::move(on_stopped);
  std::vector<Instance*> all;
  for (auto& inst : instances_) all.push_back(inst.get());
  for (auto* inst : all) inst->begin_drain("the runner is shutting down");
}

}  // namespace fc
