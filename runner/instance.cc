#include "instance.h"

#include <signal.h>
#include <sys/socket.h>
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
#include "instance_ports.h"
#include "isolation.h"
#include "limit_watch.h"
#include "listening_ports.h"
#include "log.h"
#include "memory_limit.h"
#include "netns.h"
#include "runtimes.h"

namespace fc {

namespace {

constexpr size_t kTailLines = 8;
// Readiness polling: every 1 ms for the first kProbeFastWindowMs (a connect
// to a closed loopback port costs microseconds; most apps listen within
// this window), then backing off to 20 ms for slow starters.
constexpr uint64_t kProbeFirstMs = 1;
constexpr uint64_t kProbeFastWindowMs = 300;
constexpr uint64_t kProbeMaxMs = 20;

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

class Instance::ControlCall final : public ResponseSink, public DeferredDeletable {
 public:
  using Done = std::function<void(bool ok, const std::string& why)>;
  explicit ControlCall(Done done) : done_(std::move(done)) {}

  void on_response_head(int status, HeaderViews& headers) override {
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

 private:
  void finish(bool ok, const std::string& why) {
    auto done = std::move(done_);
    done_ = nullptr;
    // Stopping the instance from here hands this call to the deferred deleter.
    if (done) done(ok, why);
  }
  Done done_;
  int status_ = 0;
  bool function_error_ = false;
  std::string body_;
};

// ---- Instance ---------------------------------------------------------------------

Instance::Instance(Function& function, std::shared_ptr<const FunctionVersion> version, uv_loop_t* loop,
                   std::string id, InstanceNetwork network)
    : function_(function),
      version_(std::move(version)),
      loop_(loop),
      id_(std::move(id)),
      tag_(fmt::format("{}/{}", function.name(), id_)),
      port_(network.port),
      own_netns_(network.own_netns),
      watch_default_port_(network.watch_default_port),
      marked_(network.marked),
      port_lease_(std::move(network.lease)) {}

Instance::~Instance() {
  // Connections report to this instance: they go first.
  connections_.clear();
}

const FunctionConfig& Instance::config() const { return version_->config; }

int Instance::pid() const { return process_ ? process_->pid() : 0; }

long long Instance::memory_bytes() const { return memory_ ? memory_->current_bytes() : -1; }

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
  processes_ = std::make_unique<ProcessLimit>(id_, fn.max_processes);
  for (auto& a : Isolation::guard_args(fn, processes_->cgroup())) args.push_back(std::move(a));
  args.push_back("--");
  size_t command_at = args.size();
  for (auto& a : runtime_command(fn)) args.push_back(std::move(a));

  std::vector<std::string> env;
  for (const char* name : {"PATH", "HOME", "LANG", "LC_ALL", "TZ"}) {
    if (const char* value = std::getenv(name)) set_env(env, name, value);
  }
  if (!std::getenv("PATH")) set_env(env, "PATH", "/usr/local/bin:/usr/bin:/bin");
  // An instance with a uid of its own cannot use the runner's home.
  if (Isolation::instance_uid(fn) > 0) set_env(env, "HOME", "/tmp");
  // Log lines should reach the runner as they are printed.
  set_env(env, "PYTHONUNBUFFERED", "1");
  // FC's preStop handler (module.function) for the built-in runtimes' GET
  // /pre-stop; before environmentVariables, which may name another.
  if (fn.pre_stop && !fn.pre_stop->handler.empty()) set_env(env, "FC_PRE_STOP_HANDLER", fn.pre_stop->handler);
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

  // The instance's stdout and stderr: socketpairs, as uv_spawn made them.
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  int rc = uv_socketpair(SOCK_STREAM, 0, out, 0, 0);
  if (rc == 0) rc = uv_socketpair(SOCK_STREAM, 0, err, 0, 0);
  if (rc == 0) {
    stdout_ = Pipe::create(loop_);
    stderr_ = Pipe::create(loop_);
    rc = stdout_->open(out[0]);
    if (rc == 0) {
      out[0] = -1;
      rc = stderr_->open(err[0]);
      if (rc == 0) err[0] = -1;
    }
  }
  if (rc == 0) {
    Process::Options options;
    // The guard (isolation.h: fc-instance-guard, a small static program that
    // execs in well under a millisecond).
    options.file = Isolation::guard_program().c_str();
    options.args = argv.data();
    options.env = envp.data();
    options.cwd = fn.code_uri.c_str();
    options.stdout_fd = out[1];
    options.stderr_fd = err[1];
    process_ = Process::create(loop_);
    rc = process_->spawn(options, [this](int64_t st, int sig) {
      transition({Event::Kind::kExited, describe_exit(st, sig) + failure_detail()});
    });
  }
  for (int fd : {out[0], out[1], err[0], err[1]}) {
    if (fd >= 0) ::close(fd);
  }
  if (rc != 0) {
    // Never started: the Function drops it at once.
    error = fmt::format("cannot spawn {}: {}", args[command_at], uv_strerror(rc));
    ending_ = Ending::kStartFailed;
    failure_ = error;
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
  limit_watch_ = std::make_unique<LimitWatch>(loop_, Isolation::namespaces_available(),
                                              [this](const LimitSample& sample) { on_limit_sample(sample); });

  probe_timer_ = Timer::create(loop_);
  start_deadline_ = Timer::create(loop_);
  stop_grace_ = Timer::create(loop_);
  output_linger_ = Timer::create(loop_);
  control_deadline_ = Timer::create(loop_);
  uint64_t limit = ms(fn.initialization_timeout_s);
  start_deadline_->start(limit, [this, limit] {
    std::string expected =
        watch_default_port_ ? fmt::format(" ($FC_SERVER_PORT) nor on FC's default port {}", kFcDefaultCaPort)
        : own_netns_        ? std::string(" in its network namespace")
                            : std::string();
    transition({Event::Kind::kStartFailed, fmt::format("the instance did not listen on port {}{} within {} ms{}", port_,
                                                       expected, limit, where_it_listens())});
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
        open_streams_--;
        transition({Event::Kind::kOutputClosed, {}});
      });
}

void Instance::on_output(int fd, std::string_view line) {
  log_instance_output(tag_, fd, line);
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

// ---- the state machine -------------------------------------------------------------

void Instance::set_state(State next) {
  if (next == state_) return;
  spdlog::debug("[{}] {} -> {}", tag_, to_string(state_), to_string(next));
  state_ = next;
}

void Instance::transition(Event event) {
  using Kind = Event::Kind;
  const int concurrency = std::max(1, config().instance_concurrency);
  switch (event.kind) {
    case Kind::kListening:
      if (state_ != State::kStarting) return;
      start_deadline_->stop();
      spdlog::debug("[{}] listening after {} ms", tag_, uv_now(loop_) - started_ms_);
      if (config().initializer.empty()) {
        transition({Kind::kInitialized, {}});
        return;
      }
      set_state(State::kInitializing);
      run_initializer();
      break;

    case Kind::kInitialized:
      if (!starting()) return;
      start_deadline_->stop();
      idle_since_ms_ = ready_since_ms_ = uv_now(loop_);
      ready_serial_ = function_.next_ready_serial();
      spdlog::info("[{}] ready after {} ms", tag_, uv_now(loop_) - started_ms_);
      set_state(State::kReady);
      break;

    case Kind::kStartFailed:
      if (!starting()) return;
      leave_service(Ending::kStartFailed, event.why, SIGKILL);
      break;

    case Kind::kSlotsChanged:
      if (state_ == State::kReady && in_flight_ >= concurrency) {
        set_state(State::kBusy);
      } else if (state_ == State::kBusy && in_flight_ < concurrency) {
        set_state(State::kReady);
      } else if (state_ == State::kDraining) {
        maybe_finish_drain();
      }
      break;

    case Kind::kUnhealthy:
      if (state_ != State::kReady && state_ != State::kBusy) return;
      // Requests already running on other connections may still finish.
      spdlog::warn("[{}] unhealthy, replacing it: {}", tag_, event.why);
      ending_ = Ending::kUnhealthy;
      failure_ = event.why;
      set_state(State::kDraining);
      maybe_finish_drain();
      break;

    case Kind::kWedged:
      if (state_ == State::kStopping || state_ == State::kExited) return;
      spdlog::warn("[{}] killed: {}", tag_, event.why);
      leave_service(Ending::kWedged, event.why, SIGKILL);
      break;

    case Kind::kDrain:
    case Kind::kReplace: {
      Ending ending = event.kind == Kind::kReplace ? Ending::kReplaced : Ending::kRetired;
      if (starting()) {
        // Nobody waits for it any more; stop it right away.
        leave_service(ending, event.why, SIGTERM);
      } else if (state_ == State::kReady || state_ == State::kBusy) {
        spdlog::info("[{}] draining: {}", tag_, event.why);
        ending_ = ending;
        set_state(State::kDraining);
        maybe_finish_drain();
      }
      break;
    }

    case Kind::kDiscard:
      if (!starting()) return;
      spdlog::info("[{}] {}", tag_, event.why);
      // SIGKILL: it served nothing, and the port it holds is wanted back now.
      leave_service(Ending::kRetired, event.why, SIGKILL);
      break;

    case Kind::kStopGraceOver:
      if (state_ != State::kStopping || exit_reason_) return;
      spdlog::warn("[{}] did not stop within {} ms of SIGTERM: SIGKILL", tag_, kStopGraceMs);
      function_.metrics().instance_kills++;
      process_->kill_group(SIGKILL);
      return;

    case Kind::kExited: {
      exit_reason_ = event.why;
      limit_watch_.reset();  // nothing left to sample
      // Whatever is left of the group (the app's children) goes with it.
      process_->kill_group(SIGKILL);
      probe_.reset();
      probe_timer_->stop();
      start_deadline_->stop();
      stop_grace_->stop();
      std::string why;
      if (state_ == State::kStopping) {
        spdlog::info("[{}] stopped ({})", tag_, event.why);
        why = failed() ? failure_ : fmt::format("the instance {}", event.why);
      } else if (starting()) {
        ending_ = Ending::kStartFailed;
        failure_ = fmt::format("the instance {} before {}", event.why,
                               state_ == State::kStarting ? fmt::format("listening on port {}", port_)
                                                          : std::string("its initializer answered"));
        why = failure_;
      } else {
        spdlog::error("[{}] instance {}", tag_, event.why);
        ending_ = Ending::kCrashed;
        failure_ = fmt::format("the instance {}", event.why);
        why = failure_;
      }
      set_state(State::kStopping);
      stop_control_call();
      // Requests in flight fail with the reason; idle connections close.
      std::vector<InstanceConnection*> conns;
      for (auto& conn : connections_) conns.push_back(conn.get());
      for (auto* conn : conns) conn->instance_gone(why);
      if (open_streams_ > 0) {
        output_linger_->start(kOutputLingerMs, [this] {
          // A child that left the group holds the pipes: stop reading them.
          stdout_.reset();
          stderr_.reset();
          open_streams_ = 0;
          transition({Kind::kOutputClosed, {}});
        });
      }
      maybe_exited();
      break;
    }

    case Kind::kOutputClosed:
    case Kind::kConnectionClosed:
      maybe_exited();
      break;
  }
  // Transitions nest (failing a connection gives back its slot): the
  // Function hears of each state once, from whichever call ends last.
  if (state_ != reported_state_ || event.kind == Kind::kSlotsChanged) {
    State previous = reported_state_;
    reported_state_ = state_;
    function_.on_instance_changed(*this, previous);
  }
}

void Instance::leave_service(Ending ending, const std::string& why, int signal) {
  if (ending_ == Ending::kNone || (on_purpose(ending_) && !on_purpose(ending))) {
    ending_ = ending;
    failure_ = why;
  }
  probe_.reset();
  probe_timer_->stop();
  start_deadline_->stop();
  stop_control_call();
  set_state(State::kStopping);
  std::vector<InstanceConnection*> idle;
  for (auto& conn : connections_) {
    if (!conn->busy()) idle.push_back(conn.get());
  }
  for (auto* conn : idle) conn->close();
  if (exit_reason_) return;
  if (signal == SIGKILL) function_.metrics().instance_kills++;
  process_->kill_group(signal);
  if (signal == SIGTERM) {
    stop_grace_->start(kStopGraceMs, [this] { transition({Event::Kind::kStopGraceOver, {}}); });
  }
}

void Instance::maybe_finish_drain() {
  if (state_ != State::kDraining || in_flight_ > 0) return;
  if (config().pre_stop && !pre_stop_called_) {
    run_pre_stop();
    return;
  }
  leave_service(ending_, failure_, SIGTERM);
}

void Instance::maybe_exited() {
  if (state_ != State::kStopping || !exit_reason_ || open_streams_ > 0 || !connections_.empty()) return;
  if (ending_ == Ending::kStartFailed) {
    std::string tail = output_tail();
    if (!tail.empty()) failure_ += fmt::format("; output: {}", tail);
    spdlog::error("[{}] failed to start: {}", tag_, failure_);
  }
  set_state(State::kExited);
}

// ---- readiness -----------------------------------------------------------------------

void Instance::probe() {
  if (state_ != State::kStarting) return;
  probe_ = Tcp::create(loop_);
  if (own_netns_ || marked_) {
    int fd = instance_socket();
    int rc = fd >= 0 ? probe_->open(fd) : UV_ECONNREFUSED;  // not unshared yet
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
  HandlePtr<Tcp> attempt = std::move(probe_);  // closed on return unless taken
  if (state_ != State::kStarting) return;
  if (status == 0 && !own_netns_ && !holds_listener(pid(), false, port_)) {
    // The port accepts, but not for this instance: another process (another
    // runner's instance on a shared instancePorts range) holds it.  Never
    // serve through it; this app fails to bind and is replaced elsewhere.
    if (!foreign_listener_logged_) {
      foreign_listener_logged_ = true;
      spdlog::warn("[{}] port {} accepts, but the listener is not this instance's: waiting for its own", tag_, port_);
    }
    status = UV_ECONNREFUSED;
  }
  if (status == 0) {
    // The port accepts.  The probe connection serves the request waiting
    // for this instance, if one does (idle_connection takes it); else it is
    // closed here: a server with one-connection-at-a-time workers must not
    // sit on an idle socket.
    ready_probe_ = std::move(attempt);
    transition({Event::Kind::kListening, {}});
    ready_probe_.reset();
    return;
  }
  uint64_t now = uv_now(loop_);
  if (watch_default_port_ && now - last_port_scan_ms_ >= kPortScanIntervalMs) {
    // FC lets an app without caPort listen on 9000: is this one there?
    last_port_scan_ms_ = now;
    for (const ListeningPort& found : listening_ports(pid(), own_netns_)) {
      if (found.port != kFcDefaultCaPort) continue;
      function_.on_default_port_found(*this, found.port);
      if (state_ != State::kStarting) return;  // replaced
      probe();  // adopted: connect there now
      return;
    }
  }
  // Not listening yet: poll again, backing off gently, so the runner notices
  // readiness within a few ms of it (cold start ≈ the program's own start).
  uint64_t elapsed = now - started_ms_;
  uint64_t interval =
      elapsed < kProbeFastWindowMs ? kProbeFirstMs : std::clamp<uint64_t>(elapsed / 50, kProbeFirstMs, kProbeMaxMs);
  probe_timer_->start(interval, [this] { probe(); });
}

void Instance::run_initializer() {
  const FunctionConfig& fn = config();
  std::string request_id = new_request_id();
  spdlog::info("[{}] FC Initialize Start RequestId: {}", tag_, request_id);
  control_ = std::make_unique<ControlCall>([this, request_id](bool ok, const std::string& why) {
    if (state_ != State::kInitializing) return;
    if (!ok) {
      spdlog::info("[{}] FC Initialize End RequestId: {}, Error: {}", tag_, request_id, why);
      transition({Event::Kind::kStartFailed, fmt::format("the initializer failed: {}", why)});
      return;
    }
    spdlog::info("[{}] FC Initialize End RequestId: {}", tag_, request_id);
    transition({Event::Kind::kInitialized, {}});
  });
  InstanceCall call;
  call.method = "POST";
  call.uri = "/initialize";
  call.control_path = "/initialize";
  call.request_id = request_id;
  call.framing = BodyFraming::kContentLength;
  call.content_length = 0;
  uint64_t limit = ms(fn.initialization_timeout_s);
  start_deadline_->start(limit, [this, limit] {
    transition({Event::Kind::kStartFailed, fmt::format("the initializer did not finish within {} ms", limit)});
  });
  InstanceConnection& conn = idle_connection();
  in_flight_++;  // released with the connection, like any request
  conn.begin(*control_, build_request_head(call, version_->header_lines), BodyFraming::kContentLength, false, 0);
  conn.end_body();
}

void Instance::run_pre_stop() {
  pre_stop_called_ = true;
  const FunctionConfig& fn = config();
  std::string request_id = new_request_id();
  spdlog::info("[{}] FC PreStop Start RequestId: {}", tag_, request_id);
  in_flight_++;  // keeps the instance from stopping under the call
  control_ = std::make_unique<ControlCall>([this, request_id](bool ok, const std::string& why) {
    control_deadline_->stop();
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
  control_deadline_->start(limit, [this, &conn, limit, request_id] {
    spdlog::info("[{}] FC PreStop End RequestId: {}, Error: no answer within {} ms", tag_, request_id, limit);
    conn.abandon();
  });
  conn.begin(*control_, build_request_head(call, version_->header_lines), BodyFraming::kNone, false, 0);
  conn.end_body();
}

void Instance::stop_control_call() {
  if (!control_) return;
  control_deadline_->stop();
  std::vector<InstanceConnection*> carrying;
  for (auto& conn : connections_) {
    if (conn->sink() == control_.get()) carrying.push_back(conn.get());
  }
  for (auto* conn : carrying) conn->abandon();
  // It may be on the stack (its answer is what stopped the instance).
  function_.deleter().defer(std::move(control_));
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
  if (ready_probe_) {
    // The readiness probe's connection, just accepted by the app.
    connections_.push_back(std::make_unique<InstanceConnection>(*this, loop_, std::move(ready_probe_)));
    return *connections_.back();
  }
  connections_.push_back(std::make_unique<InstanceConnection>(*this, loop_, port_, instance_socket()));
  return *connections_.back();
}

int Instance::instance_socket() {
  int fd;
  if (own_netns_) {
    fd = socket_in_namespace_of(pid());
  } else if (marked_) {
    // The guard table rejects connections to instance ports without it.
    fd = InstancePorts::marked_socket();
  } else {
    return InstanceConnection::kOwnSocket;
  }
  return fd >= 0 ? fd : InstanceConnection::kNoSocket;
}

void Instance::adopt_port(int port) {
  watch_default_port_ = false;
  spdlog::info("[{}] serving on port {}", tag_, port);
  port_ = port;
}

void Instance::discard(const std::string& why) {
  if (!starting()) return;
  watch_default_port_ = false;
  transition({Event::Kind::kDiscard, why});
}

std::string Instance::where_it_listens() {
  std::vector<ListeningPort> ports = listening_ports(pid(), own_netns_);
  if (ports.empty()) return "; it listens on no TCP port";
  std::string fix = config().runtime != Runtime::kCustom ? std::string()
                    : config().ca_port_set
                        ? fmt::format(": listen on {} or set caPort: {}", port_, ports.front().port)
                        : fmt::format(": listen on $FC_SERVER_PORT or set caPort: {}", ports.front().port);
  bool one_port = std::all_of(ports.begin(), ports.end(), [&](const auto& p) { return p.port == ports.front().port; });
  return fmt::format("; it listens on port{} {} instead{}", one_port ? "" : "s", describe(ports), fix);
}

void Instance::assign(Exchange& exchange) {
  in_flight_++;
  if (limit_watch_) limit_watch_->set_busy(true, pid());
  exchange.start(*this, idle_connection());
  transition({Event::Kind::kSlotsChanged, {}});
}

void Instance::on_connection_released(InstanceConnection& conn, Outcome outcome, bool reusable,
                                      const std::string& why) {
  in_flight_--;
  uint64_t now = uv_now(loop_);
  if (in_flight_ == 0) idle_since_ms_ = now;
  if (limit_watch_) {
    limit_watch_->sample_soon(pid());  // what the request left behind
    if (in_flight_ == 0) limit_watch_->set_busy(false, pid());
  }
  switch (outcome) {
    case Outcome::kComplete:
      consecutive_failures_ = 0;
      if (ready_since_ms_ != 0) {  // not the initializer's answer
        last_success_ms_ = now;
        requests_served_++;
      }
      break;
    case Outcome::kFailed:
      if (++consecutive_failures_ >= kMaxConsecutiveFailures) {
        transition({Event::Kind::kUnhealthy,
                    fmt::format("{} requests in a row failed, the last with: {}", consecutive_failures_, why)});
      }
      break;
    case Outcome::kRefused:
      // The process lives (or its exit would be known) but nothing listens.
      transition({Event::Kind::kUnhealthy, why});
      break;
    case Outcome::kTimedOut:
      // Killed before its slot is given back, so no other request lands on it.
      transition({Event::Kind::kWedged, why});
      break;
    case Outcome::kAbandoned:
      break;
  }
  if (reusable) {
    size_t idle = 0;
    for (auto& c : connections_) idle += (!c->busy() && !c->closing()) ? 1 : 0;
    bool serving = state_ == State::kReady || state_ == State::kBusy || state_ == State::kDraining;
    if (!serving || idle > static_cast<size_t>(config().instance_concurrency)) conn.close();
  }
  transition({Event::Kind::kSlotsChanged, {}});
}

void Instance::on_connection_closed(InstanceConnection* conn) {
  for (auto it = connections_.begin(); it != connections_.end(); ++it) {
    if (it->get() == conn) {
      function_.deleter().defer(std::move(*it));
      connections_.erase(it);
      break;
    }
  }
  transition({Event::Kind::kConnectionClosed, {}});
}

void Instance::begin_drain(const std::string& why) { transition({Event::Kind::kDrain, why}); }

bool Instance::out_of_memory() const { return memory_ && memory_->oom_killed(); }

long Instance::refused_forks() const { return processes_ ? processes_->refused_forks() : 0; }

void Instance::on_limit_sample(const LimitSample& sample) {
  const FunctionConfig& fn = config();
  if (sample.open_files >= 0) open_files_ = sample.open_files;
  if (sample.tmp_used_bytes >= 0) tmp_used_bytes_ = sample.tmp_used_bytes;
  // RLIMIT_NOFILE refuses the descriptor that would make maxOpenFiles + 1.
  if (!open_files_hit_ && fn.max_open_files > 0 && sample.open_files >= fn.max_open_files) {
    open_files_hit_ = true;
    function_.metrics().limit_hits["open_files"]++;
    spdlog::warn("[{}] open-file limit reached: {} descriptors open at maxOpenFiles {} (EMFILE inside)", tag_,
                 sample.open_files, fn.max_open_files);
  }
  if (!tmp_full_hit_ && sample.tmp_full) {
    tmp_full_hit_ = true;
    function_.metrics().limit_hits["tmp"]++;
    spdlog::warn("[{}] /tmp is full: {} bytes used of tmpSize {} MB (ENOSPC inside)", tag_, sample.tmp_used_bytes,
                 fn.tmp_size_mb);
  }
}

std::vector<std::string> Instance::limits_hit() const {
  std::vector<std::string> hit;
  if (out_of_memory()) hit.emplace_back("memory");
  if (refused_forks() > 0) hit.emplace_back("processes");
  if (open_files_hit_) hit.emplace_back("open_files");
  if (tmp_full_hit_) hit.emplace_back("tmp");
  return hit;
}

void Instance::begin_replace(const std::string& why) { transition({Event::Kind::kReplace, why}); }

std::string Instance::failure_detail() const {
  if (memory_ && memory_->oom_killed()) {
    return fmt::format(" (out of memory: the instance exceeded memorySize {} MB)", memory_->megabytes());
  }
  if (long refused = processes_ ? processes_->refused_forks() : 0; refused > 0) {
    return fmt::format(" (process limit: {} forks refused at maxProcesses {})", refused, processes_->max_processes());
  }
  return {};
}

const char* to_string(Instance::State state) {
  switch (state) {
    case Instance::State::kStarting: return "starting";
    case Instance::State::kInitializing: return "initializing";
    case Instance::State::kReady: return "ready";
    case Instance::State::kBusy: return "busy";
    case Instance::State::kDraining: return "draining";
    case Instance::State::kStopping: return "stopping";
    case Instance::State::kExited: return "exited";
  }
  return "?";
}

}  // namespace fc
