#include "instance.h"

#include <signal.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "exchange.h"
#include "fc_errors.h"
#include "function.h"
#include "http_head.h"
#include "ids.h"
#include "instance_connection.h"
#include "memory_limit.h"
#include "netns.h"
#include "runtimes.h"

namespace fc {

namespace {

constexpr size_t kTailLines = 8;
// Readiness polling: every 1 ms at first (a connect to a closed loopback
// port costs microseconds), backing off to 20 ms for slow starters.
constexpr uint64_t kProbeFirstMs = 1;
constexpr uint64_t kProbeMaxMs = 20;
// After the process exited, how long its output pipes may stay open (held
// by an escaped grandchild) before the runner closes them.
constexpr uint64_t kOutputLingerMs = 1000;
// A start failure waits this long for the last lines of output.
constexpr uint64_t kFailureOutputWaitMs = 200;

uint64_t ms(double seconds) { return seconds <= 0 ? 0 : static_cast<uint64_t>(seconds * 1000.0); }

void set_env(std::vector<std::string>& env, std::string_view name, std::string_view value) {
  std::string entry = fmt::format("{}={}", name, value);
  for (auto& e : env) {
    if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') {
      e = std::move(entry);
      return;
    }
  }
  env.push_back(std::move(entry));
}

std::string describe_exit(int64_t exit_status, int term_signal) {
  if (term_signal != 0) {
    const char* name = sigabbrev_np(term_signal);
    return fmt::format("was killed by signal {}{}", name ? "SIG" : "", name ? name : std::to_string(term_signal));
  }
  return fmt::format("exited with status {}", exit_status);
}

}  // namespace

// ---- control calls: POST /initialize, GET /pre-stop ------------------------------

class Instance::ControlCall final : public ResponseSink {
 public:
  using Done = std::function<void(bool ok, const std::string& why)>;
  ControlCall(std::string request_id, Done done) : request_id(std::move(request_id)), done_(std::move(done)) {}

  void on_response_head(int status, HeaderList&& headers) override {
    status_ = status;
    for (const auto& [name, value] : headers) {
      if (iequals(name, "x-fc-status")) function_error_ = value == "404";
    }
  }
  void on_response_body(const ChunkRef&, const char* data, size_t len) override {
    if (body_.size() < 2048) body_.append(data, std::min(len, 2048 - body_.size()));
  }
  void on_response_end() override {
    bool ok = status_ >= 200 && status_ < 300 && !function_error_;
    std::string why;
    if (!ok) {
      why = fmt::format("status {}{}{}", status_, body_.empty() ? "" : ": ", body_);
    }
    finish(ok, why);
  }
  void on_response_failed(GatewayError&& error) override { finish(false, error.message); }

  std::string request_id;

 private:
  void finish(bool ok, const std::string& why) {
    auto done = std::move(done_);
    done_ = nullptr;
    if (done) done(ok, why);  // may destroy this
  }
  Done done_;
  int status_ = 0;
  bool function_error_ = false;
  std::string body_;
};

// ---- Instance ---------------------------------------------------------------------

Instance::Instance(Function& function, uv_loop_t* loop, std::string id, int port, bool own_netns)
    : function_(function),
      loop_(loop),
      id_(std::move(id)),
      tag_(fmt::format("{}/{}", function.name(), id_)),
      port_(port),
      own_netns_(own_netns) {}

Instance::~Instance() = default;

const FunctionConfig& Instance::config() const { return function_.config(); }

int Instance::pid() const { return process_ ? process_->pid() : 0; }

bool Instance::start(std::string& error) {
  const FunctionConfig& fn = config();
  started_ms_ = uv_now(loop_);

  std::vector<std::string> args = {"fc-runner", "--exec-instance", std::to_string(getpid())};
  if (own_netns_) args.push_back("--netns");
  memory_ = std::make_unique<MemoryLimit>(id_, fn.memory_size_mb);
  if (memory_->cgroup().empty()) {
    args.push_back("--memory");
    args.push_back(std::to_string(fn.memory_size_mb));
  } else {
    args.push_back("--cgroup");
    args.push_back(memory_->cgroup());
  }
  args.push_back("--");
  size_t command_at = args.size();
  for (auto& a : runtime_command(fn)) args.push_back(std::move(a));

  std::vector<std::string> env;
  for (const char* name : {"PATH", "HOME", "LANG", "LC_ALL", "TZ"}) {
    if (const char* value = std::getenv(name)) set_env(env, name, value);
  }
  if (!std::getenv("PATH")) set_env(env, "PATH", "/usr/local/bin:/usr/bin:/bin");
  // Log lines should reach the runner as they are printed.
  set_env(env, "PYTHONUNBUFFERED", "1");
  for (const auto& [name, value] : fn.environment) set_env(env, name, value);
  set_env(env, "FC_FUNCTION_NAME", fn.name);
  set_env(env, "FC_FUNCTION_HANDLER", fn.handler);
  set_env(env, "FC_FUNCTION_MEMORY_SIZE", std::to_string(fn.memory_size_mb));
  set_env(env, "FC_FUNCTION_TIMEOUT", format_seconds(fn.timeout_s));
  set_env(env, "FC_INITIALIZER", fn.initializer);
  set_env(env, "FC_INITIALIZATION_TIMEOUT", format_seconds(fn.initialization_timeout_s));
  set_env(env, "FC_INSTANCE_ID", id_);
  set_env(env, "FC_FUNC_CODE_PATH", fn.code_uri);
  set_env(env, "FC_SERVER_PORT", std::to_string(port_));
  set_env(env, "FC_CUSTOM_LISTEN_PORT", std::to_string(port_));

  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  stdout_ = Pipe::create(loop_);
  stderr_ = Pipe::create(loop_);
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = stdout_->stream();
  stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[2].data.stream = stderr_->stream();

  uv_process_options_t options{};
  options.file = "/proc/self/exe";
  options.args = argv.data();
  options.env = envp.data();
  options.cwd = fn.code_uri.c_str();
  options.flags = UV_PROCESS_DETACHED;  // setsid(): its own process group
  options.stdio_count = 3;
  options.stdio = stdio;

  process_ = Process::create(loop_);
  int rc = process_->spawn(options, [this](int64_t st, int sig) { on_exit(st, sig); });
  if (rc != 0) {
    error = fmt::format("cannot spawn {}: {}", args[command_at], uv_strerror(rc));
    exited_ = true;
    state_ = State::kExited;
    process_.reset();
    stdout_.reset();
    stderr_.reset();
    return false;
  }
  spdlog::info("[{}] starting: pid {}, port {}{}, {}", tag_, process_->pid(), port_,
               own_netns_ ? " in its own network namespace" : "",
               fmt::join(args.begin() + static_cast<long>(command_at), args.end(), " "));
  start_stream(stdout_, stdout_lines_, 1);
  start_stream(stderr_, stderr_lines_, 2);

  probe_timer_ = Timer::create(loop_);
  deadline_timer_ = Timer::create(loop_);
  uint64_t limit = ms(fn.initialization_timeout_s);
  deadline_timer_->start(limit, [this, limit] {
    fail_start(fmt::format("the instance did not listen on port {} within {} ms", port_, limit));
  });
  probe();
  return true;
}

void Instance::start_stream(HandlePtr<Pipe>& pipe, LineSplitter& lines, int fd) {
  open_streams_++;
  Pipe* p = pipe.get();
  p->read_start(
      [this, &lines, fd](const ChunkRef&, const char* data, size_t len) {
        lines.feed(std::string_view(data, len), [this, fd](std::string_view line) { on_output(fd, line); });
      },
      [this, &pipe, &lines, fd](int) {
        lines.finish([this, fd](std::string_view line) { on_output(fd, line); });
        pipe.reset();  // closes it; no more callbacks
        on_stream_closed();
      });
}

void Instance::on_output(int fd, std::string_view line) {
  if (fd == 2) {
    spdlog::warn("[{}] {}", tag_, line);
  } else {
    spdlog::info("[{}] {}", tag_, line);
  }
  tail_.emplace_back(line.substr(0, 512));
  if (tail_.size() > kTailLines) tail_.pop_front();
}

std::string Instance::output_tail() const {
  std::string out;
  for (const auto& line : tail_) {
    if (!out.empty()) out.append("\n");
    out.append(line);
  }
  return out;
}

void Instance::on_stream_closed() {
  open_streams_--;
  if (open_streams_ > 0) return;
  if (start_failure_pending_) {
    report_start_failure();
    return;
  }
  maybe_gone();
}

// ---- readiness -----------------------------------------------------------------------

void Instance::probe() {
  if (state_ != State::kStarting) return;
  probe_ = Tcp::create(loop_);
  if (own_netns_) {
    int fd = socket_in_namespace_of(pid());
    int rc = fd >= 0 ? probe_->open(fd) : UV_ECONNREFUSED;  // -2: not unshared yet
    if (rc != 0) {
      if (fd >= 0) ::close(fd);
      on_probe_result(rc);
      return;
    }
  }
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", port_, &addr);
  int rc = probe_->connect(reinterpret_cast<const sockaddr*>(&addr),
                           [this](int status) { on_probe_result(status); });
  if (rc != 0) on_probe_result(rc);
}

void Instance::on_probe_result(int status) {
  probe_.reset();
  if (state_ != State::kStarting) return;
  if (status == 0) {
    // The port accepts.  The probe connection is not kept: a server with
    // one-connection-at-a-time workers must not sit on an idle socket.
    deadline_timer_->stop();
    spdlog::debug("[{}] listening after {} ms", tag_, uv_now(loop_) - started_ms_);
    const FunctionConfig& fn = config();
    if (fn.initializer.empty()) {
      become_ready();
      return;
    }
    state_ = State::kInitializing;
    std::string request_id = new_request_id();
    spdlog::info("[{}] FC Initialize Start RequestId: {}", tag_, request_id);
    control_ = std::make_unique<ControlCall>(request_id, [this](bool ok, const std::string& why) {
      on_initialized(ok, why);
    });
    InstanceCall call;
    call.method = "POST";
    call.uri = "/initialize";
    call.control_path = "/initialize";
    call.request_id = request_id;
    call.framing = BodyFraming::kContentLength;
    call.content_length = 0;
    uint64_t limit = ms(fn.initialization_timeout_s);
    deadline_timer_->start(limit, [this, limit] {
      fail_start(fmt::format("the initializer did not finish within {} ms", limit));
    });
    InstanceConnection& conn = idle_connection();
    in_flight_++;  // released with the connection, like any request
    conn.begin(*control_, build_request_head(call, function_.header_lines()), BodyFraming::kContentLength, false);
    conn.end_body();
    return;
  }
  // Not listening yet: poll again, backing off gently, so the runner notices
  // readiness within a few ms of it (cold start ≈ the program's own start).
  uint64_t elapsed = uv_now(loop_) - started_ms_;
  uint64_t interval = std::clamp<uint64_t>(elapsed / 50, kProbeFirstMs, kProbeMaxMs);
  probe_timer_->start(interval, [this] { probe(); });
}

void Instance::on_initialized(bool ok, const std::string& why) {
  std::string request_id = control_ ? control_->request_id : std::string();
  // control_ is still on the stack of the connection's callback: keep it
  // alive until this instance goes.
  if (state_ != State::kInitializing || exited_ || start_failed_) return;
  deadline_timer_->stop();
  if (!ok) {
    spdlog::info("[{}] FC Initialize End RequestId: {}, Error: {}", tag_, request_id, why);
    fail_start(fmt::format("the initializer failed: {}", why));
    return;
  }
  spdlog::info("[{}] FC Initialize End RequestId: {}", tag_, request_id);
  become_ready();
}

void Instance::become_ready() {
  state_ = State::kReady;
  idle_since_ms_ = uv_now(loop_);
  ready_since_ms_ = idle_since_ms_;
  spdlog::info("[{}] ready after {} ms", tag_, uv_now(loop_) - started_ms_);
  function_.on_instance_ready(*this);
}

void Instance::fail_start(const std::string& why) {
  if (start_failed_ || !starting()) return;
  start_failed_ = true;
  start_failure_ = why;
  probe_.reset();
  if (probe_timer_) probe_timer_->stop();
  for (auto& conn : connections_) conn->abandon();  // an initializer call
  kill(why);
  // Reported from on_exit, with the output's last lines.
}

void Instance::report_start_failure() {
  start_failure_pending_ = false;
  if (deadline_timer_) deadline_timer_->stop();
  std::string why = start_failure_;
  std::string tail = output_tail();
  if (!tail.empty()) why += fmt::format("; output: {}", tail);
  spdlog::error("[{}] failed to start: {}", tag_, why);
  state_ = State::kExited;
  function_.on_instance_failed(*this, why);
  maybe_gone();
}

// ---- work ----------------------------------------------------------------------------

InstanceConnection& Instance::idle_connection() {
  uint64_t now = uv_now(loop_);
  InstanceConnection* found = nullptr;
  for (auto& conn : connections_) {
    if (conn->busy() || conn->closing()) continue;
    if (conn->stale(now)) {
      conn->close();
    } else if (!found) {
      found = conn.get();
    }
  }
  if (found) return *found;
  connections_.push_back(std::make_unique<InstanceConnection>(*this, loop_, port_, instance_socket()));
  return *connections_.back();
}

int Instance::instance_socket() {
  if (!own_netns_) return InstanceConnection::kOwnSocket;
  int fd = socket_in_namespace_of(pid());
  return fd >= 0 ? fd : InstanceConnection::kNoSocket;
}

void Instance::assign(Exchange& exchange) {
  in_flight_++;
  served_++;
  exchange.start(*this, idle_connection());
}

void Instance::on_connection_released(InstanceConnection& conn, bool reusable) {
  in_flight_--;
  if (in_flight_ == 0) idle_since_ms_ = uv_now(loop_);
  if (reusable) {
    size_t idle = 0;
    for (auto& c : connections_) idle += (!c->busy() && !c->closing()) ? 1 : 0;
    if (idle > static_cast<size_t>(config().instance_concurrency)) conn.close();
  }
  if (ready()) {
    function_.on_slot_free(*this);
  } else if (state_ == State::kDraining) {
    maybe_stop();
  }
}

void Instance::on_connection_crashed(InstanceConnection&, const std::string& why) {
  if (state_ == State::kReady || state_ == State::kDraining) {
    crashed_ = true;
    kill(why);
  }
}

void Instance::on_connection_closed(InstanceConnection* conn) {
  for (auto it = connections_.begin(); it != connections_.end(); ++it) {
    if (it->get() == conn) {
      it->release();  // already freed by its handle
      connections_.erase(it);
      break;
    }
  }
  delete conn;
  maybe_gone();
}

// ---- stopping ---------------------------------------------------------------------------

void Instance::begin_drain(const std::string& why) {
  if (exited_ || state_ == State::kDraining || state_ == State::kStopping) return;
  if (starting()) {
    // Nobody waits for it any more; stop it right away.
    kill_reason_ = why;
    probe_.reset();
    if (probe_timer_) probe_timer_->stop();
    if (deadline_timer_) deadline_timer_->stop();
    for (auto& conn : connections_) conn->abandon();  // an initializer call
    control_.reset();
    state_ = State::kDraining;
    send_stop_signal();
    return;
  }
  spdlog::info("[{}] draining: {}", tag_, why);
  kill_reason_ = why;
  state_ = State::kDraining;
  maybe_stop();
}

void Instance::maybe_stop() {
  if (state_ != State::kDraining || in_flight_ > 0 || exited_) return;
  if (config().pre_stop && !pre_stop_done_) {
    run_pre_stop();
    return;
  }
  send_stop_signal();
}

void Instance::run_pre_stop() {
  pre_stop_done_ = true;
  const FunctionConfig& fn = config();
  std::string request_id = new_request_id();
  spdlog::info("[{}] FC PreStop Start RequestId: {}", tag_, request_id);
  in_flight_++;  // keeps the instance from stopping under the call
  control_ = std::make_unique<ControlCall>(request_id, [this, request_id](bool ok, const std::string& why) {
    // The connection gave the slot back first, which sent SIGTERM and armed
    // the SIGKILL grace on the same timer: that one must keep running.
    if (!term_sent_) deadline_timer_->stop();
    if (ok) {
      spdlog::info("[{}] FC PreStop End RequestId: {}", tag_, request_id);
    } else {
      spdlog::info("[{}] FC PreStop End RequestId: {}, Error: {}", tag_, request_id, why);
    }
  });
  InstanceCall call;
  call.method = "GET";
  call.uri = "/pre-stop";
  call.control_path = "/pre-stop";
  call.request_id = request_id;
  uint64_t limit = ms(fn.pre_stop->timeout_s);
  InstanceConnection& conn = idle_connection();
  deadline_timer_->start(limit, [this, &conn, limit, request_id] {
    spdlog::info("[{}] FC PreStop End RequestId: {}, Error: no answer within {} ms", tag_, request_id, limit);
    conn.abandon();
  });
  conn.begin(*control_, build_request_head(call, function_.header_lines()), BodyFraming::kNone, false);
  conn.end_body();
}

void Instance::send_stop_signal() {
  if (exited_ || term_sent_) return;
  term_sent_ = true;
  state_ = State::kStopping;
  for (auto& conn : connections_) {
    if (!conn->busy()) conn->close();
  }
  process_->kill_group(SIGTERM);
  deadline_timer_->start(kStopGraceMs, [this] {
    spdlog::warn("[{}] did not stop within {} ms of SIGTERM: SIGKILL", tag_, kStopGraceMs);
    process_->kill_group(SIGKILL);
  });
}

void Instance::kill(const std::string& why) {
  if (exited_) return;
  if (kill_reason_.empty()) kill_reason_ = why;
  if (state_ != State::kStarting && state_ != State::kInitializing) state_ = State::kStopping;
  process_->kill_group(SIGKILL);
}

std::string Instance::failure_detail() const {
  if (memory_ && memory_->oom_killed()) {
    return fmt::format(" (out of memory: the instance exceeded memorySize {} MB)", memory_->megabytes());
  }
  return {};
}

void Instance::on_exit(int64_t exit_status, int term_signal) {
  exited_ = true;
  exit_reason_ = describe_exit(exit_status, term_signal) + failure_detail();
  // Whatever is left of the group (the app's children) goes with it.
  process_->kill_group(SIGKILL);
  probe_.reset();
  if (probe_timer_) probe_timer_->stop();
  if (deadline_timer_) deadline_timer_->stop();

  bool was_starting = starting();
  bool expected = term_sent_ || (!kill_reason_.empty() && !crashed_);
  if (expected) {
    spdlog::info("[{}] stopped ({})", tag_, exit_reason_);
  } else if (!was_starting) {
    spdlog::error("[{}] instance {}", tag_, exit_reason_);
  }

  std::string why = crashed_ ? kill_reason_ : fmt::format("the instance {}", exit_reason_);
  for (size_t i = 0; i < connections_.size(); i++) connections_[i]->instance_gone(why);
  control_.reset();

  if (was_starting) {
    if (!start_failed_) {
      start_failed_ = true;
      start_failure_ = fmt::format("the instance {} before listening on port {}", exit_reason_, port_);
    }
    // Wait a moment for the last lines of output: they usually say why.
    if (open_streams_ > 0) {
      start_failure_pending_ = true;
      deadline_timer_->start(kFailureOutputWaitMs, [this] { report_start_failure(); });
      return;
    }
    report_start_failure();
    return;
  }
  State previous = state_;
  state_ = State::kExited;
  if (!expected || previous == State::kReady) {
    function_.on_instance_crashed(*this, why);
  }
  if (open_streams_ > 0) {
    deadline_timer_->start(kOutputLingerMs, [this] {
      stdout_.reset();
      stderr_.reset();
      open_streams_ = 0;
      maybe_gone();
    });
    return;
  }
  maybe_gone();
}

void Instance::maybe_gone() {
  if (!exited_ || open_streams_ > 0 || !connections_.empty() || start_failure_pending_) return;
  if (state_ != State::kExited) state_ = State::kExited;
  function_.on_instance_gone(this);  // destroys this
}

const char* to_string(Instance::State state) {
  switch (state) {
    case Instance::State::kStarting: return "starting";
    case Instance::State::kInitializing: return "initializing";
    case Instance::State::kReady: return "ready";
    case Instance::State::kDraining: return "draining";
    case Instance::State::kStopping: return "stopping";
    case Instance::State::kExited: return "exited";
  }
  return "?";
}

}  // namespace fc
