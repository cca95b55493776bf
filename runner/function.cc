#include "function.h"

#include <unistd.h>

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
    case Instance::Ending::kReplaced: return "update";
    case Instance::Ending::kStartFailed: return "start_failed";
    case Instance::Ending::kCrashed: return instance.out_of_memory() ? "oom" : "crashed";
    case Instance::Ending::kWedged: return "timeout";
    case Instance::Ending::kUnhealthy: return "unhealthy";
  }
  return "unknown";
}

}  // namespace

FunctionVersion::FunctionVersion(int number_, FunctionConfig config_, std::string code_hash_)
    : number(number_),
      config(std::move(config_)),
      code_hash(std::move(code_hash_)),
      config_hash(config.digest()),
      // The built-in runtimes read these from their environment
      // (FC_FUNCTION_NAME, ...), once: per request they were ~170 bytes
      // to write, parse and, in node, turn into strings.  Custom runtimes
      // keep FC's headers.
      header_lines(config.runtime == Runtime::kCustom ? function_header_lines(config) : std::string()),
      scheduler(config.instance_concurrency, std::max(1, config.max_instances)) {
  using Network = FunctionConfig::Network;
  if (config.network == Network::kPrivate) {
    // Its own namespace with only a loopback: the app may listen on
    // $FC_SERVER_PORT or on the fixed port, they are one.
    port_mode = PortMode::kFixed;
    fixed_port = config.ca_port;
  } else if (config.runtime == Runtime::kCustom) {
    port_mode = config.ca_port_set ? PortMode::kFixed : PortMode::kUnknown;
    fixed_port = config.ca_port;
  }
  decide_network();
}

void FunctionVersion::decide_network() {
  using Network = FunctionConfig::Network;
  int max = std::max(1, config.max_instances);
  cap_reason.clear();
  if (config.network == Network::kPrivate) {
    own_netns = true;
  } else if (port_mode == PortMode::kFixed) {
    own_netns = config.network == Network::kDefault && max > 1 && network_namespaces_available();
    if (max > 1 && !own_netns) {
      // Every instance would listen on the same port; in one network
      // namespace only one of them can.
      cap_reason = fmt::format(
          "the app listens on the fixed {} {} and {}: capped at 1 instance instead of maxInstances {}",
          config.ca_port_set ? "caPort" : "port (FC's default caPort)", fixed_port,
          config.network == Network::kHost ? "network: host keeps every instance in the host's network"
                                           : "the runner cannot create network namespaces (it needs root)",
          config.max_instances);
      max = 1;
    }
  } else {
    own_netns = false;
  }
  scheduler.set_max_instances(max);
}

int FunctionVersion::ready_capacity_wanted() const {
  return std::max(1, std::min(config.min_instances, scheduler.max_instances()));
}

Function::Function(Runner& runner, uv_loop_t* loop, FunctionConfig config, std::string code_hash)
    : runner_(runner),
      loop_(loop),
      name_(config.name),
      serving_(std::make_shared<FunctionVersion>(1, std::move(config), std::move(code_hash))),
      queue_timer_(Timer::create(loop)),
      idle_timer_(Timer::create(loop)),
      restart_timer_(Timer::create(loop)) {}

FunctionVersion* Function::own_version(const Instance& instance) {
  if (instance.version() == serving_) return serving_.get();
  if (candidate_ && instance.version() == candidate_) return candidate_.get();
  return nullptr;
}

void Function::on_default_port_found(Instance& instance, int port) {
  FunctionVersion* version = own_version(instance);
  if (version == nullptr || version->port_mode != PortMode::kUnknown) return;
  version->port_mode = PortMode::kFixed;
  version->fixed_port = port;
  version->decide_network();
  std::string why = fmt::format(
      "its instance {} listens on FC's default port {} instead of $FC_SERVER_PORT ({}), as FC allows without caPort",
      instance.id(), port, instance.port());
  if (version->own_netns) {
    spdlog::warn("function {}: {}: from now on each instance gets its own network namespace with the app on {}, "
                 "as with caPort: {} (an instance there does not reach the host's 127.0.0.1; set caPort to skip "
                 "this first start, or listen on $FC_SERVER_PORT); {} is restarted in its own namespace",
                 name_, why, port, port, instance.id());
    // Not a failure: no backoff, and the requests keep waiting for the
    // replacement that dispatch() starts once this one is gone.
    instance.discard(fmt::format("restarted in its own network namespace (it listens on port {})", port));
    return;
  }
  spdlog::warn("function {}: {}: it serves there; {}", name_, why,
               version->cap_reason.empty() ? std::string("maxInstances is 1") : version->cap_reason);
  instance.adopt_port(port);
}

Function::~Function() = default;

DeferredDeleter& Function::deleter() { return runner_.deleter(); }

void Function::log_version_start(const FunctionVersion& version) const {
  const FunctionConfig& config = version.config;
  spdlog::info("function {}{}: runtime {}, type {}, codeUri {}, timeout {} s, memorySize {} MB, "
               "instanceConcurrency {}, instances {}..{}, maxQueueSize {}, maxQueueTime {} s, idleTimeout {} s{}",
               config.name, version.number == 1 ? std::string() : fmt::format(" version {}", version.number),
               to_string(config.runtime), to_string(config.type), config.code_uri,
               format_seconds(config.timeout_s), config.memory_size_mb, config.instance_concurrency,
               config.min_instances, version.scheduler.max_instances(), config.max_queue_size,
               format_seconds(config.max_queue_time_s), format_seconds(config.idle_timeout_s),
               config.initializer.empty() ? "" : fmt::format(", initializer {}", config.initializer));
  std::string ignored = config.ignored_keys_warning(runner_.config_path());
  if (!ignored.empty()) spdlog::warn("{}", ignored);
  for (const ConfigError& problem : config.problems) {
    spdlog::error("function {} cannot be served: {}", config.name, problem.what());
  }
  if (!version.cap_reason.empty()) spdlog::warn("function {}: {}", config.name, version.cap_reason);
  if (config.network == FunctionConfig::Network::kPrivate) {
    spdlog::info("function {}: network: private: each instance gets its own network namespace with only its "
                 "loopback (no outside access), the app on port {}",
                 config.name, version.fixed_port);
  } else if (version.own_netns) {
    spdlog::info("function {}: the app listens on the fixed caPort {}: each instance gets its own network namespace",
                 config.name, config.ca_port);
  } else if (version.port_mode == PortMode::kUnknown && config.max_instances > 1 &&
             config.network == FunctionConfig::Network::kDefault && !network_namespaces_available()) {
    spdlog::info("function {}: no caPort: an app on $FC_SERVER_PORT scales to maxInstances {}; one that listens on "
                 "FC's default port {} instead runs as 1 instance, because the runner cannot create network "
                 "namespaces (it needs root)",
                 config.name, config.max_instances, kFcDefaultCaPort);
  }
}

void Function::start() {
  log_version_start(*serving_);
  if (!serving_->config.problems.empty()) return;  // no instance; requests get the reason (submit)
  scale_up();
  arm_idle_timer();
}

// ---- versions -------------------------------------------------------------------------

void Function::set_code_hash(int number, const std::string& code_hash) {
  if (serving_->number == number && serving_->code_hash.empty()) serving_->code_hash = code_hash;
}

Function::Change Function::change_for(const FunctionConfig& config, const std::string& code_hash) const {
  std::string digest = config.digest();
  // An unknown code hash (not computed yet, or the tree is past
  // CodeTreeLimits) compares equal: only the config decides then.
  auto same = [&](const FunctionVersion& v) {
    return v.config_hash == digest && (code_hash.empty() || v.code_hash.empty() || v.code_hash == code_hash);
  };
  if (candidate_) {
    if (same(*candidate_)) return Change::kNone;
    return same(*serving_) ? Change::kCancelCandidate : Change::kNewVersion;
  }
  return same(*serving_) ? Change::kNone : Change::kNewVersion;
}

int Function::update(FunctionConfig config, std::string code_hash) {
  Change change = change_for(config, code_hash);
  if (change == Change::kNone) return candidate_ ? candidate_->number : serving_->number;
  if (change == Change::kCancelCandidate) {
    drop_candidate(fmt::format("the config is back to version {}", serving_->number));
    return 0;
  }
  auto version = std::make_shared<FunctionVersion>(++last_version_number_, std::move(config), std::move(code_hash));
  if (candidate_) drop_candidate(fmt::format("superseded by version {}", version->number));
  candidate_ = version;
  log_version_start(*version);
  start_candidate();
  return version->number;
}

void Function::start_candidate() {
  std::shared_ptr<FunctionVersion> version = candidate_;
  if (version->exclusive_port()) {
    // Both versions' apps would listen on the same port: the old one stops
    // first and the new one starts when the port is free.  The update's cold
    // start is visible here; network namespaces (root) avoid it.
    spdlog::warn("function {}: version {} listens on the fixed caPort {} and instances cannot get network "
                 "namespaces: version {} stops before it starts (requests wait for its cold start)",
                 name_, version->number, version->config.ca_port, serving_->number);
    maybe_promote();
    return;
  }
  int wanted = version->ready_capacity_wanted();
  spdlog::info("function {}: version {} starts {} instance{} in the background; version {} serves until {} ready",
               name_, version->number, wanted, wanted == 1 ? "" : "s", serving_->number,
               wanted == 1 ? "it is" : "they are");
  for (int i = 0; i < wanted && candidate_ == version; i++) start_instance(version);
}

void Function::maybe_promote() {
  if (!candidate_) return;
  if (!candidate_->exclusive_port()) {
    int ready = static_cast<int>(std::count_if(instances_.begin(), instances_.end(), [&](auto& i) {
      return i->version() == candidate_ && (i->state() == Instance::State::kReady || i->state() == Instance::State::kBusy);
    }));
    if (ready < candidate_->ready_capacity_wanted()) return;
  }
  int old = serving_->number;
  serving_ = std::move(candidate_);
  candidate_.reset();
  metrics_.rollouts["done"]++;
  spdlog::info("function {}: version {} serves now (config {}, code {}); version {} drains and stops", name_,
               serving_->number, serving_->config_hash, serving_->code_hash.empty() ? "unknown" : serving_->code_hash,
               old);
  replace_instances_of_other_versions();
  arm_idle_timer();
  dispatch();
}

void Function::replace_instances_of_other_versions() {
  std::vector<Instance*> old;
  for (auto& inst : instances_) {
    if (inst->version() != serving_ && inst->version() != candidate_) old.push_back(inst.get());
  }
  std::string why = retiring_ ? std::string("the function was removed by a reload")
                              : fmt::format("version {} took over", serving_->number);
  for (auto* inst : old) inst->begin_replace(why);
}

void Function::fail_candidate(const std::string& why) {
  std::shared_ptr<FunctionVersion> version = std::move(candidate_);
  candidate_.reset();
  uv_timeval64_t now{};
  uv_gettimeofday(&now);
  failed_ = FailedVersion{version->number, version->config_hash, version->code_hash, why,
                          now.tv_sec * 1000 + now.tv_usec / 1000};
  metrics_.rollouts["failed"]++;
  spdlog::error("function {}: version {} failed to start and takes no traffic; version {} keeps serving: {}", name_,
                version->number, serving_->number, why);
  std::vector<Instance*> others;
  for (auto& inst : instances_) {
    if (inst->version() == version) others.push_back(inst.get());
  }
  for (auto* inst : others) inst->begin_drain(fmt::format("version {} failed", version->number));
  dispatch();
}

void Function::drop_candidate(const std::string& why) {
  if (!candidate_) return;
  std::shared_ptr<FunctionVersion> version = std::move(candidate_);
  candidate_.reset();
  metrics_.rollouts["superseded"]++;
  spdlog::info("function {}: version {} is dropped before it served: {}", name_, version->number, why);
  std::vector<Instance*> its;
  for (auto& inst : instances_) {
    if (inst->version() == version) its.push_back(inst.get());
  }
  for (auto* inst : its) inst->begin_replace(why);
}

bool Function::other_version_holds_port() const {
  return std::any_of(instances_.begin(), instances_.end(), [&](auto& i) { return i->version() != serving_; });
}

void Function::retire(std::function<void()> on_gone) {
  retiring_ = true;
  on_gone_ = std::move(on_gone);
  idle_timer_->stop();
  restart_timer_->stop();
  spdlog::info("function {}: removed from the config: its instances finish their requests and stop", name_);
  fail_queue(GatewayError{404, FC_ERR_FUNCTION_NOT_FOUND,
                          fmt::format("function '{}' was removed from the config by a reload", name_)});
  drop_candidate("the function was removed by a reload");
  std::vector<Instance*> all;
  for (auto& inst : instances_) all.push_back(inst.get());
  for (auto* inst : all) inst->begin_replace("the function was removed by a reload");
  maybe_gone();
}

void Function::exchange_closed() {
  if (exchanges_ > 0) exchanges_--;
  maybe_gone();
}

void Function::maybe_gone() {
  if (!retiring_ || !instances_.empty() || exchanges_ > 0 || !on_gone_) return;
  auto done = std::move(on_gone_);
  on_gone_ = nullptr;
  done();
}

// ---- requests --------------------------------------------------------------------

void Function::submit(Exchange& exchange) {
  const FunctionConfig& config = serving_->config;
  if (!config.problems.empty()) {
    // The config says why no instance can start: every request hears it
    // (InitializationFailed, as when an instance fails to start).
    std::string reasons;
    for (const ConfigError& problem : config.problems) reasons += (reasons.empty() ? "" : "; ") + std::string(problem.what());
    exchange.fail(GatewayError{503, FC_ERR_INITIALIZATION_FAILED,
                               fmt::format("function '{}' cannot be served: {}", name_, reasons)});
    return;
  }
  exchange.enqueued_ms = uv_now(loop_);
  exchange.ready_serials_seen = ready_serials_;
  bool free_slot = false;
  for (auto& inst : instances_) {
    if (inst->ready() && inst->in_flight() < inst->config().instance_concurrency) free_slot = true;
  }
  if (!free_slot && queue_.size() >= static_cast<size_t>(std::max(0, config.max_queue_size))) {
    // No waiting, but the demand still scales the pool: with maxQueueSize 0
    // a cold function gets its instance for the requests that follow.
    scale_up(1);
    metrics_.queue_full++;
    exchange.fail(GatewayError{503, FC_ERR_QUEUE_FULL,
                               fmt::format("function '{}' has {} requests waiting (maxQueueSize {})",
                                           name_, queue_.size(), config.max_queue_size)});
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
  // Every ready instance takes waiting requests, whatever its version: a
  // new version's instance is ready only once initialized, and an old
  // one's stops being ready when it drains.  Older instances come first in
  // instances_, so during a rollout the new version takes what they cannot.
  std::vector<InstanceView>& views = views_;
  while (!queue_.empty()) {
    views.clear();
    for (auto& inst : instances_) {
      views.push_back({inst->ready(), inst->starting(), inst->in_flight(), inst->config().instance_concurrency});
    }
    int pick = serving_->scheduler.pick(views);
    if (pick < 0) break;
    Exchange* exchange = queue_.front();
    queue_.pop_front();
    instances_[static_cast<size_t>(pick)]->assign(*exchange);
  }
  scale_up();
  if (!queue_.empty()) {
    const std::string& failure = serving_->last_failure;
    if (!failure.empty() && !any_live_instance(nullptr) && serving_->backoff.delay(uv_now(loop_)) > 0) {
      // No instance can come up before the backoff ends: answer now with the
      // reason the last one failed (FC: the next request tries a fresh one).
      fail_queue(GatewayError{503, FC_ERR_INITIALIZATION_FAILED, failure});
      return;
    }
  }
  arm_queue_timer();
}

void Function::scale_up(size_t refused) {
  FunctionVersion& version = *serving_;
  if (stopping_ || retiring_ || !version.config.problems.empty()) return;
  // The serving version scales on demand and keeps its minInstances; a
  // candidate has its own fixed start (start_candidate), and old versions'
  // instances are draining.  When nothing waits (every request was placed)
  // only minInstances may start, and no views are built: this runs on every
  // request.
  size_t wanted = queue_.size() + refused;
  std::vector<InstanceView> views;
  int count = 0;
  int live = 0;
  for (auto& inst : instances_) {
    if (inst->version() != serving_) continue;
    if (wanted > 0) {
      views.push_back({inst->ready(), inst->starting(), inst->in_flight(), inst->config().instance_concurrency});
    }
    count++;
    live += inst->live() ? 1 : 0;
  }
  int n = wanted > 0 ? version.scheduler.to_start(wanted, views) : 0;
  // minInstances are kept warm, queue or not.
  n = std::max(n, std::min(version.config.min_instances, version.scheduler.max_instances()) - live);
  int room = version.scheduler.max_instances() - count;
  // Until the first instance shows where the app listens, one at a time:
  // siblings of an app on FC's default port would collide on the host.
  if (version.port_mode == PortMode::kUnknown) room = std::min(room, 1 - live);
  n = std::min(n, room);
  if (n <= 0) return;
  // The fixed port is still another version's: it starts once that one is gone.
  if (version.exclusive_port() && other_version_holds_port()) return;
  uint64_t wait = version.backoff.delay(uv_now(loop_));
  if (wait > 0) {
    if (!restart_timer_->active()) {
      restart_timer_->start(wait, [this] { dispatch(); });
    }
    return;
  }
  std::shared_ptr<FunctionVersion> serving = serving_;
  for (int i = 0; i < n; i++) start_instance(serving);
}

void Function::start_instance(const std::shared_ptr<FunctionVersion>& version) {
  InstanceNetwork network;
  if (version->port_mode == PortMode::kFixed) {
    network.port = version->fixed_port;
    network.own_netns = version->own_netns;
  } else {
    InstancePorts& ports = runner_.instance_ports();
    network.lease = ports.acquire();
    if (!network.lease) {
      version->last_failure = fmt::format(
          "no free port in instancePorts {} ({} ports, each in use): widen instancePorts", ports.range(),
          ports.last() - ports.first() + 1);
      spdlog::error("function {}: {}", name_, version->last_failure);
      version->backoff.on_failure(uv_now(loop_));
      if (version == candidate_) fail_candidate(version->last_failure);
      return;
    }
    network.port = network.lease->port();
    network.watch_default_port = version->port_mode == PortMode::kUnknown;
  }
  network.marked = !network.own_netns && runner_.instance_ports().guarded();
  if (!uid_lease_ && geteuid() == 0 && version->config.user.empty()) {
    UidPool& uids = instance_uid_pool();
    uid_lease_ = uids.acquire(name_);
    if (!uid_lease_) {
      version->last_failure = fmt::format(
          "function '{}' cannot start an instance: no free uid in instanceUids {}, each held by a function with "
          "instances: widen instanceUids (or name a user: for some functions)",
          name_, uids.describe());
      spdlog::error("{}", version->last_failure);
      version->backoff.on_failure(uv_now(loop_));
      // Waiting requests get this reason while the backoff lasts (dispatch_once).
      if (version == candidate_) fail_candidate(version->last_failure);
      return;
    }
  }
  auto instance = std::make_unique<Instance>(*this, version, loop_, new_instance_id(), std::move(network));
  Instance* raw = instance.get();
  instances_.push_back(std::move(instance));
  std::string error;
  metrics_.instance_starts++;
  if (version->number > 1) spdlog::info("[{}] version {}", raw->tag(), version->number);
  if (!raw->start(error)) {
    metrics_.instance_failures++;
    metrics_.instance_exits["start_failed"]++;
    spdlog::error("[{}] {}", raw->tag(), error);
    version->last_failure = error;
    version->backoff.on_failure(uv_now(loop_));
    deleter().defer(std::move(instances_.back()));
    instances_.pop_back();
    if (version == candidate_) fail_candidate(error);
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
  double limit_s = serving_->config.max_queue_time_s;
  if (queue_.empty() || limit_s <= 0) {
    queue_timer_->stop();
    return;
  }
  uint64_t deadline = queue_.front()->enqueued_ms + ms(limit_s);
  uint64_t now = uv_now(loop_);
  queue_timer_->start(deadline > now ? deadline - now : 0, [this] { on_queue_timer(); });
}

void Function::on_queue_timer() {
  uint64_t now = uv_now(loop_);
  double limit_s = serving_->config.max_queue_time_s;
  uint64_t limit = ms(limit_s);
  while (!queue_.empty() && queue_.front()->enqueued_ms + limit <= now) {
    Exchange* exchange = queue_.front();
    queue_.pop_front();
    metrics_.queue_timeout++;
    exchange->fail(GatewayError{503, FC_ERR_QUEUE_TIMEOUT,
                                fmt::format("the request waited {} s for an instance of function '{}' "
                                            "(maxQueueTime)",
                                            format_seconds(limit_s), name_)});
  }
  arm_queue_timer();
}

// ---- idle reaping ---------------------------------------------------------------------

void Function::arm_idle_timer() {
  double idle_s = serving_->config.idle_timeout_s;
  if (idle_s <= 0 || stopping_ || retiring_) {
    idle_timer_->stop();
    return;
  }
  // Check at a tenth of the idle timeout (at least every 100 ms, at most every 5 s).
  uint64_t period = std::clamp<uint64_t>(ms(idle_s) / 10, 100, 5000);
  idle_timer_->start(period, [this] { on_idle_timer(); });
}

void Function::on_idle_timer() {
  // Only the serving version's instances retire when idle: a candidate's are
  // warming up, older ones drain already.
  const FunctionConfig& config = serving_->config;
  uint64_t now = uv_now(loop_);
  uint64_t limit = ms(config.idle_timeout_s);
  int live = static_cast<int>(std::count_if(instances_.begin(), instances_.end(),
                                            [&](auto& i) { return i->version() == serving_ && i->live(); }));
  for (auto& inst : instances_) {
    if (live <= config.min_instances) break;
    if (inst->version() != serving_) continue;
    if (inst->ready() && inst->in_flight() == 0 && now - inst->idle_since_ms() >= limit) {
      live--;
      inst->begin_drain(fmt::format("idle for {} s", format_seconds(config.idle_timeout_s)));
    }
  }
  arm_idle_timer();
}

// ---- instance events -----------------------------------------------------------------------

void Function::on_instance_changed(Instance& instance, Instance::State previous) {
  using State = Instance::State;
  bool candidate = candidate_ && instance.version() == candidate_;
  // The version whose backoff and failures this instance counts for (a
  // retired version's do not matter any more).
  FunctionVersion* own = candidate ? candidate_.get() : instance.version() == serving_ ? serving_.get() : nullptr;
  if (instance.state() == State::kExited) {
    metrics_.instance_exits[exit_reason(instance)]++;
    if (instance.refused_forks() > 0) metrics_.limit_hits["processes"]++;
    if (instance.out_of_memory()) metrics_.limit_hits["memory"]++;
    if (instance.failed()) metrics_.instance_failures++;
    if (instance.failed() && candidate) {
      // A new version that cannot start never takes over.
      fail_candidate(instance.failure());
    } else if (instance.failed() && own) {
      on_instance_failed(instance);
    }
    remove(instance);
    return;
  }
  // Served well for a while: past failures are forgiven.
  if (own && instance.ready_since_ms() != 0 &&
      instance.last_success_ms() >= instance.ready_since_ms() + kHealthyServiceMs && own->backoff.failures() > 0) {
    spdlog::debug("function {}: restart backoff reset ({} served well)", name_, instance.tag());
    own->backoff.on_success();
  }
  bool became_ready = (previous == State::kStarting || previous == State::kInitializing) &&
                      (instance.state() == State::kReady || instance.state() == State::kBusy);
  if (own && own->port_mode == PortMode::kUnknown && previous == State::kStarting &&
      (instance.state() == State::kInitializing || became_ready)) {
    // It listens on $FC_SERVER_PORT: its siblings may start together.
    own->port_mode = PortMode::kAssigned;
  }
  if (became_ready) {
    if (own) own->last_failure.clear();
    metrics_.cold_starts++;
    metrics_.cold_start_duration.observe(static_cast<double>(instance.ready_since_ms() - instance.started_ms()) / 1000.0);
    if (candidate) maybe_promote();
  }
  // A free slot, a new instance, or one that left service (a replacement
  // may start when there is room).
  if (instance.state() == State::kReady || instance.state() != previous) dispatch();
}

void Function::on_instance_failed(Instance& instance) {
  FunctionVersion& version = *serving_;
  uint64_t now = uv_now(loop_);
  version.backoff.on_failure(now);
  spdlog::warn("function {}: instance {} failed ({} in a row): a replacement starts in {} ms at the earliest",
               name_, instance.id(), version.backoff.failures(), version.backoff.delay(now));
  if (instance.ending() != Instance::Ending::kStartFailed) return;
  // Requests that wait while no instance can start are answered with this
  // (a crash or a wedge after ready lets them wait for the replacement).
  version.last_failure = instance.failure();
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
  if (instances_.empty()) uid_lease_.reset();  // the uid goes back to instanceUids
  if (stopping_) {
    if (instances_.empty() && on_stopped_) {
      auto done = std::move(on_stopped_);
      on_stopped_ = nullptr;
      done();
    }
    return;
  }
  if (retiring_) {
    maybe_gone();
    return;
  }
  // Also starts a fixed-port version once the old one let go of the port.
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
