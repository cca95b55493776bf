#include "function.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "exchange.h"
#include "fc_errors.h"
#include "ids.h"
#include "instance.h"
#include "netns.h"
#include "runner.h"

namespace fc {

namespace {

uint64_t ms(double seconds) { return seconds <= 0 ? 0 : static_cast<uint64_t>(seconds * 1000.0); }

int effective_max_instances(const FunctionConfig& config, bool own_netns, std::string& reason) {
  int max = std::max(1, config.max_instances);
  if (config.ca_port_set && max > 1 && !own_netns) {
    // Every instance would listen on the same caPort; without a network
    // namespace per instance only one of them can.
    reason = fmt::format(
        "the app listens on the fixed caPort {} and the runner cannot create network namespaces "
        "(it needs root): capped at 1 instance instead of maxInstances {}",
        config.ca_port, config.max_instances);
    max = 1;
  }
  return max;
}

// fc_instance_exits_total's reason label.
std::string exit_reason(const Instance& instance) {
  switch (instance.ending()) {
    case Instance::Ending::kNone:
    case Instance::Ending::kRetired: return "retired";
    case Instance::Ending::kStartFailed: return "start_failed";
    case Instance::Ending::kCrashed: return instance.out_of_memory() ? "oom" : "crashed";
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
      own_netns_(config_.ca_port_set && config_.max_instances > 1 && network_namespaces_available()),
      scheduler_(config_.instance_concurrency, effective_max_instances(config_, own_netns_, cap_reason_)),
      queue_timer_(Timer::create(loop)),
      idle_timer_(Timer::create(loop)),
      restart_timer_(Timer::create(loop)) {}

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
  if (own_netns_) {
    spdlog::info("function {}: the app listens on the fixed caPort {}: each instance gets its own network namespace",
                 config_.name, config_.ca_port);
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
  size_t wanted = queue_.size() + refused;
  int n = 0;
  // Nothing waits (every request was placed): only minInstances may start,
  // and the views are not needed (this runs on every request).
  if (wanted > 0) {
    std::vector<InstanceView> views;
    views.reserve(instances_.size());
    for (auto& inst : instances_) views.push_back({inst->ready(), inst->starting(), inst->in_flight()});
    n = scheduler_.to_start(wanted, views);
  }
  // minInstances are kept warm, queue or not.
  int live = static_cast<int>(std::count_if(instances_.begin(), instances_.end(), [](auto& i) { return i->live(); }));
  n = std::max(n, std::min(config_.min_instances, scheduler_.max_instances()) - live);
  int room = scheduler_.max_instances() - static_cast<int>(instances_.size());
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
  int port = config_.ca_port_set ? config_.ca_port : free_port();
  if (port <= 0) {
    last_failure_ = "no free loopback port for a new instance";
    spdlog::error("function {}: {}", config_.name, last_failure_);
    backoff_.on_failure(uv_now(loop_));
    return;
  }
  auto instance = std::make_unique<Instance>(*this, loop_, new_instance_id(), port, own_netns_);
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

int Function::free_port() {
  // bind(0) on loopback, read the port back, close: a socket call, not I/O
  // that could block the loop.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = -1;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
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
    if (instance.refused_forks() > 0) metrics_.limit_hits["processes"]++;
    if (instance.out_of_memory()) metrics_.limit_hits["memory"]++;
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
