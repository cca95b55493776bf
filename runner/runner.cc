#include "runner.h"

#include <signal.h>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "admin.h"
#include "function.h"
#include "instance_ports.h"
#include "listener.h"
#include "log.h"

namespace fc {

Runner::Runner(uv_loop_t* loop, RunnerConfig config)
    : loop_(loop),
      config_(std::move(config)),
      instance_ports_(std::make_unique<InstancePorts>(config_.instance_port_first, config_.instance_port_last)),
      deleter_(loop) {}

Runner::~Runner() {
  // Connections (and their exchanges) observe functions: they go first.
  admin_.reset();
  listener_.reset();
  deleter_.flush();
  functions_.clear();
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
  sighup_->start(SIGHUP, [](int) {
    spdlog::warn("SIGHUP: config reload is not supported yet; ignored (the running config keeps serving)");
  });
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
  return true;
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
  functions_running_ = functions_.size();
  if (functions_running_ == 0) {
    finish();
    return;
  }
  std::vector<Function*> all;
  for (auto& [name, fn] : functions_) all.push_back(fn.get());
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
    deleter_.flush();
  });
}

}  // namespace fc
