#include "runner.h"

#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <unordered_set>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "admin.h"
#include "function.h"
#include "instance_ports.h"
#include "instance_uids.h"
#include "listener.h"
#include "log.h"
#include "reload.h"

namespace fc {

Runner::Runner(uv_loop_t* loop, RunnerConfig config)
    : loop_(loop),
      config_(std::move(config)),
      instance_ports_(std::make_unique<InstancePorts>(config_.instance_port_first, config_.instance_port_last)),
      deleter_(loop) {}

Runner::~Runner() {
  alive_.reset();  // background work still running drops its result
  // Connections (and their exchanges) observe functions: they go first.
  admin_.reset();
  listener_.reset();
  deleter_.flush();
  functions_.clear();
  removed_functions_.clear();
  deleter_.flush();
}

bool Runner::start() {
  started_ms_ = uv_now(loop_);
  uv_timeval64_t now{};
  uv_gettimeofday(&now);
  started_unix_ms_ = now.tv_sec * 1000 + now.tv_usec / 1000;
  // First: a signal that comes during start-up must not kill the runner.
  sigterm_ = Signal::create(loop_);
  sigint_ = Signal::create(loop_);
  sigterm_->start(SIGTERM, [this](int) { shutdown("SIGTERM"); });
  sigint_->start(SIGINT, [this](int) { shutdown("SIGINT"); });
  sighup_ = Signal::create(loop_);
  sighup_->start(SIGHUP, [this](int) { reload("SIGHUP", nullptr); });
  sigusr2_ = Signal::create(loop_);
  sigusr2_->start(SIGUSR2, [](int) { spdlog::warn("SIGUSR2: no meaning for fc-runner; ignored"); });
  sigusr1_ = Signal::create(loop_);
  sigusr1_->start(SIGUSR1, [](int) {
    std::string error;
    if (reopen_log(error)) {
      spdlog::info("SIGUSR1: log reopened");
    } else {
      spdlog::error("SIGUSR1: {}; still logging to the old file", error);
    }
  });

  configure_instance_uids();
  for (const auto& fn : config_.functions) {
    functions_.emplace(fn.name, std::make_unique<Function>(*this, loop_, fn));
  }
  listener_ = std::make_unique<Listener>(*this, loop_);
  listener_->set_frame_timeout_ms(static_cast<uint64_t>(config_.frame_timeout_s * 1000.0));
  std::string error;
  if (!listener_->listen(config_.listen, config_.listen_mode, config_.listen_backlog, error)) {
    spdlog::critical("{}", error);
    return false;
  }
  if (config_.listen_gid >= 0 && config_.listen.kind == Address::Kind::kUnix) {
    // listenGroup: nginx's workers (www-data) reach the socket through its group.
    if (::chown(config_.listen.path.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(config_.listen_gid)) != 0) {
      spdlog::critical("listenGroup {}: chown {}: {}", config_.listen_group, config_.listen.path,
                       std::strerror(errno));
      return false;
    }
    spdlog::info("runner socket {} has group {} (gid {}), mode {:04o}", config_.listen.path, config_.listen_group,
                 config_.listen_gid, config_.listen_mode);
  }
  spdlog::info("fc-runner listening on {} ({} function{}), config {}", config_.listen.to_string(),
               functions_.size(), functions_.size() == 1 ? "" : "s", config_.path);
  if (config_.admin) {
    admin_ = std::make_unique<AdminServer>(*this, loop_);
    if (!admin_->listen(*config_.admin, error)) {
      spdlog::critical("admin: {}", error);
      return false;
    }
    spdlog::info("admin API on {}", config_.admin->to_string());
  }
  // After the listener is bound (nginx's connects wait in its backlog, not
  // refused, while nft runs) and before any instance starts.
  std::string ports = instance_ports_->install_guard();
  if (instance_ports_->guarded()) {
    spdlog::info("{}", ports);
  } else {
    spdlog::warn("{}", ports);
  }
  // nft took a while: instances' start times and timers count from now.
  uv_update_time(loop_);
  for (const auto& fn : config_.functions) functions_.at(fn.name)->start();

  // The code hashes of version 1, for the first reload to compare with:
  // they read every file under each codeUri, so off the loop.  A reload
  // asked for meanwhile runs after them.
  loading_ = true;
  auto started = std::make_shared<RunnerConfig>(config_);
  auto hashes = std::make_shared<std::map<std::string, CodeHash>>();
  run_in_background(
      loop_,
      [started, hashes] {
        *hashes = hash_code_trees(*started);
        *started = RunnerConfig();  // the copy is not needed any more
      },
      [this, hashes] {
        loading_ = false;
        for (const auto& [name, hash] : *hashes) {
          if (!hash.error.empty()) spdlog::warn("function {}: {}", name, hash.error);
          if (Function* fn = find(name)) fn->set_code_hash(1, hash.digest);
        }
        // The config copy the hashes were made from is freed by now: its
        // pages go back too (main.cc's trim came before).
        malloc_trim(0);
        maybe_start_load();
      },
      alive_);
  return true;
}

// ---- reload --------------------------------------------------------------------------

namespace {

using json = nlohmann::json;

std::string reply_text(const json& body) { return body.dump(2, ' ', false, json::error_handler_t::replace) + "\n"; }

}  // namespace

void Runner::reload(const std::string& trigger, ReloadDone done) {
  if (shutting_down_) {
    spdlog::warn("{}: no reload while shutting down", trigger);
    if (done) done(503, reply_text({{"ok", false}, {"error", "ShuttingDown"}, {"message", "the runner is shutting down"}}));
    return;
  }
  spdlog::info("{}: reloading {}", trigger, config_.path);
  if (done) reload_waiters_.push_back(std::move(done));
  reload_wanted_ = true;
  maybe_start_load();
}

void Runner::maybe_start_load() {
  if (loading_ || !reload_wanted_ || shutting_down_) return;
  loading_ = true;
  reload_wanted_ = false;
  auto waiters = std::make_shared<std::vector<ReloadDone>>(std::move(reload_waiters_));
  reload_waiters_.clear();
  auto loaded = std::make_shared<LoadedConfig>();
  std::string path = config_.path;
  // Reading the file, stat()ing codeUri and commands, and hashing the code
  // are disk I/O: the thread pool does them, the loop keeps serving.
  run_in_background(
      loop_, [loaded, path] { *loaded = load_for_reload(path); },
      [this, loaded, waiters] {
        loading_ = false;
        apply_reload(*loaded, std::move(*waiters));
        maybe_start_load();
      },
      alive_);
}

void Runner::apply_reload(LoadedConfig& loaded, std::vector<ReloadDone> waiters) {
  auto answer = [&](int status, const json& body) {
    std::string text = reply_text(body);
    last_reload_json_ = body.dump(-1, ' ', false, json::error_handler_t::replace);
    for (auto& done : waiters) done(status, text);
  };
  if (shutting_down_) {
    answer(503, {{"ok", false}, {"error", "ShuttingDown"}, {"message", "the runner is shutting down"}});
    return;
  }
  if (!loaded.config) {
    metrics_.reloads_refused++;
    json errors = json::array();
    for (const ConfigError& e : loaded.errors) {
      spdlog::error("reload refused, the running config keeps serving: {}", e.what());
      errors.push_back({{"file", e.file()}, {"line", e.line()}, {"key", e.key()}, {"message", e.what()}});
    }
    answer(422, {{"ok", false},
                 {"error", "InvalidConfig"},
                 {"message", loaded.errors.empty() ? std::string("invalid config") : std::string(loaded.errors.front().what())},
                 {"config", config_.path},
                 {"errors", std::move(errors)}});
    return;
  }
  RunnerConfig next = std::move(*loaded.config);

  // Runner-wide keys: some apply now, the rest keep their running value.
  json live = json::array();
  json restart = json::array();
  auto needs_restart = [&](const char* key, const std::string& running, const std::string& configured) {
    if (running == configured) return;
    spdlog::warn("reload: {} changed from {} to {}: that needs a restart of fc-runner; {} stays until then", key,
                 running, configured, running);
    restart.push_back({{"key", key}, {"running", running}, {"configured", configured}});
  };
  needs_restart("listen", config_.listen.to_string(), next.listen.to_string());
  needs_restart("listenMode", fmt::format("{:04o}", config_.listen_mode), fmt::format("{:04o}", next.listen_mode));
  needs_restart("listenBacklog", std::to_string(config_.listen_backlog), std::to_string(next.listen_backlog));
  needs_restart("admin", config_.admin ? config_.admin->to_string() : "(none)",
                next.admin ? next.admin->to_string() : "(none)");
  needs_restart("logFile", config_.log_file.empty() ? "(stderr)" : config_.log_file,
                next.log_file.empty() ? "(stderr)" : next.log_file);
  needs_restart("logFormat", config_.log_format, next.log_format);
  needs_restart("instancePorts", fmt::format("{}-{}", config_.instance_port_first, config_.instance_port_last),
                fmt::format("{}-{}", next.instance_port_first, next.instance_port_last));
  needs_restart("listenGroup", config_.listen_group.empty() ? "(none)" : config_.listen_group,
                next.listen_group.empty() ? "(none)" : next.listen_group);
  needs_restart("readWritePaths", fmt::format("[{}]", fmt::join(config_.read_write_paths, ", ")),
                fmt::format("[{}]", fmt::join(next.read_write_paths, ", ")));
  next.listen = config_.listen;
  next.listen_group = config_.listen_group;
  next.listen_gid = config_.listen_gid;
  next.read_write_paths = config_.read_write_paths;
  next.listen_mode = config_.listen_mode;
  next.listen_backlog = config_.listen_backlog;
  next.admin = config_.admin;
  next.log_file = config_.log_file;
  next.log_format = config_.log_format;
  next.instance_port_first = config_.instance_port_first;
  next.instance_port_last = config_.instance_port_last;
  if (next.log_level != config_.log_level) {
    spdlog::set_level(spdlog::level::from_str(next.log_level));
    spdlog::info("reload: logLevel is {} now", next.log_level);
    live.push_back("logLevel");
  }
  if (next.frame_timeout_s != config_.frame_timeout_s) {
    listener_->set_frame_timeout_ms(static_cast<uint64_t>(next.frame_timeout_s * 1000.0));
    live.push_back("frameTimeout");
  }
  if (next.shutdown_timeout_s != config_.shutdown_timeout_s) live.push_back("shutdownTimeout");

  // Functions: added ones start, changed ones get a new version, removed
  // ones drain and go, unchanged ones are not touched.
  json added = json::array(), updated = json::array(), removed = json::array(), unchanged = json::array();
  json warnings = json::array();
  std::vector<std::string> summary;
  for (const FunctionConfig& fn : next.functions) {
    auto hash_it = loaded.code_hashes.find(fn.name);
    std::string code_hash = hash_it == loaded.code_hashes.end() ? std::string() : hash_it->second.digest;
    if (hash_it != loaded.code_hashes.end() && !hash_it->second.error.empty()) {
      spdlog::warn("function {}: {}", fn.name, hash_it->second.error);
      warnings.push_back(fmt::format("function {}: {}", fn.name, hash_it->second.error));
    }
    Function* existing = find(fn.name);
    // As at start, a function that asks for another interpreter version
    // than it gets hears so when it (re)starts: added or changed.
    auto say_runtime_version = [&] {
      auto it = loaded.runtime_warnings.find(fn.name);
      if (it == loaded.runtime_warnings.end()) return;
      spdlog::warn("{}", it->second);
      warnings.push_back(it->second);
    };
    if (!existing) {
      say_runtime_version();
      auto function = std::make_unique<Function>(*this, loop_, fn, code_hash);
      Function* raw = function.get();
      functions_.emplace(fn.name, std::move(function));
      raw->start();
      added.push_back({{"name", fn.name}, {"version", 1}});
      summary.push_back("added " + fn.name);
      continue;
    }
    Function::Change change = existing->change_for(fn, code_hash);
    if (change == Function::Change::kNone) {
      unchanged.push_back(fn.name);
      continue;
    }
    say_runtime_version();
    const FunctionVersion& serving = existing->version();
    bool config_changed = fn.digest() != serving.config_hash;
    bool code_changed = !code_hash.empty() && !serving.code_hash.empty() && code_hash != serving.code_hash;
    int from = serving.number;
    int number = existing->update(fn, code_hash);
    updated.push_back({{"name", fn.name},
                       {"serving_version", from},
                       {"version", number == 0 ? json(nullptr) : json(number)},
                       {"config_changed", config_changed},
                       {"code_changed", code_changed}});
    summary.push_back(number == 0 ? fmt::format("{}: back to version {}", fn.name, from)
                                  : fmt::format("{}: version {} starts ({}{}{})", fn.name, number,
                                                config_changed ? "config" : "", config_changed && code_changed ? " and " : "",
                                                code_changed ? "code" : ""));
  }
  std::vector<std::string> gone;
  for (const auto& [name, fn] : functions_) {
    if (!next.find(name)) gone.push_back(name);
  }
  for (const std::string& name : gone) {
    auto it = functions_.find(name);
    std::unique_ptr<Function> function = std::move(it->second);
    functions_.erase(it);
    Function* raw = function.get();
    removed_functions_.push_back(std::move(function));
    raw->retire([this, raw] { on_function_gone(raw); });
    removed.push_back(name);
    summary.push_back("removed " + name);
  }
  config_ = std::move(next);
  configure_instance_uids();
  metrics_.reloads_applied++;
  std::string said;
  for (const std::string& item : summary) said += (said.empty() ? "" : "; ") + item;
  spdlog::info("reload applied: {}{}", said.empty() ? "no function changed" : said,
               unchanged.empty() ? "" : fmt::format(" ({} unchanged)", unchanged.size()));
  answer(200, {{"ok", true},
               {"config", config_.path},
               {"functions", {{"added", std::move(added)},
                              {"updated", std::move(updated)},
                              {"removed", std::move(removed)},
                              {"unchanged", std::move(unchanged)}}},
               {"applied_live", std::move(live)},
               {"restart_required", std::move(restart)},
               {"warnings", std::move(warnings)}});
}

void Runner::configure_instance_uids() {
  std::unordered_set<int> reserved(config_.reserved_instance_uids.begin(), config_.reserved_instance_uids.end());
  instance_uid_pool().configure(config_.instance_uid_first, config_.instance_uid_last, std::move(reserved));
}

void Runner::on_function_gone(Function* function) {
  auto it = std::find_if(removed_functions_.begin(), removed_functions_.end(),
                         [function](auto& f) { return f.get() == function; });
  if (it == removed_functions_.end()) return;
  spdlog::info("function {}: removed; its last instance has stopped", function->name());
  // Its last exchange's destructor may be on the stack.
  deleter_.defer(std::move(*it));
  removed_functions_.erase(it);
}

size_t Runner::connection_count() const { return listener_ ? listener_->connection_count() : 0; }

Function* Runner::find(std::string_view name) {
  auto it = functions_.find(name);
  return it == functions_.end() ? nullptr : it->second.get();
}

void Runner::shutdown(const std::string& why) {
  if (shutting_down_) {
    // A second signal: do not wait for in-flight requests any more.
    spdlog::warn("{} again: aborting in-flight requests", why);
    shutdown_timer_->stop();
    listener_->close_all("the runner is stopping");
    maybe_stop_functions();
    return;
  }
  shutting_down_ = true;
  spdlog::info("{}: stopping; in-flight requests get up to {} s", why, config_.shutdown_timeout_s);
  listener_->stop_accepting();
  listener_->close_when_idle();
  shutdown_timer_ = Timer::create(loop_);
  shutdown_timer_->start(static_cast<uint64_t>(config_.shutdown_timeout_s * 1000.0), [this] {
    spdlog::warn("shutdownTimeout passed: aborting {} connection(s)", listener_->connection_count());
    listener_->close_all("shutdownTimeout passed");
    maybe_stop_functions();
  });
  maybe_stop_functions();
}

void Runner::on_connection_closed() {
  if (shutting_down_) maybe_stop_functions();
}

void Runner::maybe_stop_functions() {
  if (stopping_functions_ || listener_->connection_count() > 0) return;
  stopping_functions_ = true;
  shutdown_timer_->stop();
  functions_running_ = functions_.size() + removed_functions_.size();
  if (functions_running_ == 0) {
    finish();
    return;
  }
  std::vector<Function*> all;
  for (auto& [name, fn] : functions_) all.push_back(fn.get());
  for (auto& fn : removed_functions_) all.push_back(fn.get());
  for (auto* fn : all) fn->stop([this] { on_function_stopped(); });
}

void Runner::on_function_stopped() {
  if (--functions_running_ == 0) finish();
}

void Runner::finish() {
  spdlog::info("all instances stopped; exiting");
  // Not from here: the caller may be a function that is about to go.
  finish_timer_ = Timer::create(loop_);
  finish_timer_->start(0, [this] {
    sigterm_.reset();
    sigint_.reset();
    sighup_.reset();
    sigusr1_.reset();
    sigusr2_.reset();
    shutdown_timer_.reset();
    finish_timer_.reset();
    // The admin API answers /healthz 503 until here.  It is freed with the
    // runner: its connections' close callbacks still call it.
    if (admin_) admin_->close_all();
    listener_.reset();
    deleter_.flush();
    // Functions own timers: closing them lets the loop run dry.
    functions_.clear();
    removed_functions_.clear();
    deleter_.flush();
  });
}

}  // namespace fc
