#include "admin.h"
#include "isolation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "function.h"
#include "instance.h"
#include "log.h"
#include "fc_errors.h"
#include "metrics.h"
#include "bind.h"
#include "runner.h"

#ifndef FC_VERSION
#define FC_VERSION "0.1.0"  // as main.cc's --version
#endif

namespace fc {

namespace {

// The admin socket is the runner's control plane: its owner only.
constexpr int kAdminSocketMode = 0600;
constexpr int kAdminBacklog = 64;

using json = nlohmann::json;

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 422: return "Unprocessable Content";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

std::string error_json(std::string_view error, std::string_view message) {
  return json{{"error", error}, {"message", message}}.dump() + "\n";
}

// A small read of procfs (a kernel call, no disk): one read(2), measured at
// a few microseconds (README, admin API).
std::string read_proc(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// Resident set size of one process from /proc/<pid>/statm; -1 if unknown.
long long statm_rss_bytes(int pid) {
  std::string text = read_proc(pid > 0 ? fmt::format("/proc/{}/statm", pid) : std::string("/proc/self/statm"));
  long long size = 0, resident = 0;
  if (std::sscanf(text.c_str(), "%lld %lld", &size, &resident) != 2) return -1;
  return resident * sysconf(_SC_PAGESIZE);
}

// The app's pid: the guard (guard.h), whose pid the runner knows, forks it
// as its one child.  0 if unknown.
int app_pid(int guard_pid) {
  if (guard_pid <= 0) return 0;
  std::string text = read_proc(fmt::format("/proc/{}/task/{}/children", guard_pid, guard_pid));
  int child = std::atoi(text.c_str());
  // With a private view the guard's child is its pid namespace's init
  // (sandbox.h), whose child is the app.
  if (child > 0 && read_proc(fmt::format("/proc/{}/comm", child)) == "fc-init\n") {
    int app = std::atoi(read_proc(fmt::format("/proc/{}/task/{}/children", child, child)).c_str());
    return app > 0 ? app : child;
  }
  return child;
}

constexpr Instance::State kAllStates[] = {
    Instance::State::kStarting, Instance::State::kInitializing, Instance::State::kReady,
    Instance::State::kBusy,     Instance::State::kDraining,     Instance::State::kStopping,
    Instance::State::kExited,
};

constexpr const char* kExitReasons[] = {"retired", "update", "start_failed", "crashed", "oom", "timeout", "unhealthy"};
constexpr const char* kRolloutResults[] = {"done", "failed", "superseded"};

json version_json(const FunctionVersion& v) {
  return {{"version", v.number},
          {"config_hash", v.config_hash},
          {"code_hash", v.code_hash.empty() ? json(nullptr) : json(v.code_hash)}};
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

// ---- connection ------------------------------------------------------------------

const http_parser_settings& AdminConnection::settings() {
  static const http_parser_settings s = [] {
    http_parser_settings v{};
    v.on_message_begin = &AdminConnection::on_message_begin;
    v.on_url = &AdminConnection::on_url;
    v.on_header_field = &AdminConnection::on_header_field;
    v.on_header_value = &AdminConnection::on_header_value;
    v.on_body = &AdminConnection::on_body;
    v.on_message_complete = &AdminConnection::on_message_complete;
    return v;
  }();
  return s;
}

AdminConnection::AdminConnection(AdminServer& server, Runner& runner, HandlePtr<Stream> stream)
    : server_(server), runner_(runner), stream_(std::move(stream)) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
}

void AdminConnection::start() {
  idle_timer_ = Timer::create(stream_->stream()->loop);
  arm_idle_timer();
  start_reading();
}

void AdminConnection::start_reading() {
  int rc = stream_->read_start([this](const ChunkRef&, const char* data, size_t len) { on_read(data, len); },
                               [this](int status) { on_end(status); });
  if (rc != 0) close(fmt::format("cannot read: {}", uv_strerror(rc)));
}

void AdminConnection::begin_reload(bool keep_alive) {
  waiting_reload_ = true;
  // Reading a config and hashing code trees may take longer than the idle
  // timeout: the connection is not idle while it waits.
  idle_timer_->stop();
  std::weak_ptr<int> alive = alive_;
  runner_.reload("POST /reload", [this, alive, keep_alive](int status, const std::string& body) {
    if (alive.expired() || closing_) return;
    waiting_reload_ = false;
    respond(status, "application/json", body, keep_alive);
    // Answered at once (shutting down): the parser goes on by itself.
    if (closing_ || finishing_ || !read_stopped_) return;
    read_stopped_ = false;
    http_parser_pause(&parser_, 0);
    std::string held = std::move(held_input_);
    held_input_.clear();
    start_reading();
    if (!held.empty()) on_read(held.data(), held.size());
  });
}

void AdminConnection::arm_idle_timer() {
  // Not re-armed by bytes, only by answers: a request trickled in byte by
  // byte is closed as well.
  idle_timer_->start(kIdleTimeoutMs, [this] { close("idle"); });
}

void AdminConnection::close(const std::string& why) {
  if (closing_) return;
  closing_ = true;
  spdlog::debug("admin connection closed: {}", why);
  idle_timer_.reset();
  AdminServer* server = &server_;
  stream_.release()->close([server, this] { server->on_connection_closed(this); });
}

void AdminConnection::on_end(int status) {
  if (status != UV_EOF) {
    close(uv_strerror(status));
    return;
  }
  // The peer sent all it will (a half-close): what was answered still goes
  // out (uv_shutdown waits for the queued writes), then the connection closes.
  if (closing_ || finishing_) return;
  finishing_ = true;
  if (stream_->shutdown([this](int) { close("closed by the peer"); }) != 0) close("closed by the peer");
}

void AdminConnection::on_read(const char* data, size_t len) {
  if (closing_ || finishing_) return;
  if (waiting_reload_) {
    held_input_.append(data, len);
    return;
  }
  size_t parsed = http_parser_execute(&parser_, &settings(), data, len);
  if (closing_ || finishing_) return;
  if (waiting_reload_) {
    // Paused after the POST /reload: the rest waits for its answer.
    held_input_.append(data + parsed, len - parsed);
    stream_->read_stop();
    read_stopped_ = true;
    return;
  }
  http_errno err = HTTP_PARSER_ERRNO(&parser_);
  if (err == HPE_OK) return;
  if (request_bytes_ > kMaxRequestBytes) {
    spdlog::warn("admin: a request over {} bytes: closing its connection", kMaxRequestBytes);
    respond_and_close(413, fmt::format("the request is larger than {} bytes", kMaxRequestBytes));
  } else {
    spdlog::warn("admin: malformed request ({}): closing its connection", http_errno_description(err));
    respond_and_close(400, fmt::format("malformed request: {}", http_errno_description(err)));
  }
}

bool AdminConnection::count(size_t len) {
  request_bytes_ += len;
  return request_bytes_ <= kMaxRequestBytes;
}

int AdminConnection::on_message_begin(http_parser* p) {
  auto* self = static_cast<AdminConnection*>(p->data);
  self->url_.clear();
  self->request_bytes_ = 0;
  return 0;
}

int AdminConnection::on_url(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<AdminConnection*>(p->data);
  if (!self->count(len)) return -1;
  self->url_.append(at, len);
  return 0;
}

int AdminConnection::on_header_field(http_parser* p, const char*, size_t len) {
  // +4: ": " and CRLF of the line.
  return static_cast<AdminConnection*>(p->data)->count(len + 4) ? 0 : -1;
}

int AdminConnection::on_header_value(http_parser* p, const char*, size_t len) {
  return static_cast<AdminConnection*>(p->data)->count(len) ? 0 : -1;
}

int AdminConnection::on_body(http_parser* p, const char*, size_t len) {
  return static_cast<AdminConnection*>(p->data)->count(len) ? 0 : -1;
}

int AdminConnection::on_message_complete(http_parser* p) {
  auto* self = static_cast<AdminConnection*>(p->data);
  bool keep_alive = http_should_keep_alive(p) != 0;
  auto method = static_cast<http_method>(p->method);

  std::string path = self->url_;
  http_parser_url parsed{};
  http_parser_url_init(&parsed);
  if (http_parser_parse_url(self->url_.data(), self->url_.size(), 0, &parsed) == 0 &&
      (parsed.field_set & (1 << UF_PATH))) {
    path = self->url_.substr(parsed.field_data[UF_PATH].off, parsed.field_data[UF_PATH].len);
  }

  struct Route {
    std::string_view path;
    http_method method;
  };
  static constexpr Route kRoutes[] = {
      {"/status", HTTP_GET}, {"/metrics", HTTP_GET}, {"/healthz", HTTP_GET}, {"/reload", HTTP_POST}};
  const Route* route = nullptr;
  for (const auto& r : kRoutes) {
    if (r.path == path) route = &r;
  }
  if (!route) {
    self->respond(404, "application/json",
                  error_json("NotFound", fmt::format("no admin endpoint {}; there are /status, /metrics, /healthz "
                                                     "and /reload", path)),
                  keep_alive);
  } else if (route->method != method) {
    self->respond(405, "application/json",
                  error_json("MethodNotAllowed", fmt::format("{} takes {}, not {}", route->path,
                                                             http_method_str(route->method), http_method_str(method))),
                  keep_alive, fmt::format("Allow: {}\r\n", http_method_str(route->method)));
  } else if (path == "/status") {
    self->respond(200, "application/json", self->server_.status_json(), keep_alive);
  } else if (path == "/metrics") {
    self->respond(200, "text/plain; version=0.0.4; charset=utf-8", self->server_.metrics_text(), keep_alive);
  } else if (path == "/healthz") {
    bool serving = !self->runner_.shutting_down();
    self->respond(serving ? 200 : 503, "text/plain; charset=utf-8", serving ? "ok\n" : "shutting down\n", keep_alive);
  } else {
    self->begin_reload(keep_alive);
    if (self->waiting_reload_) http_parser_pause(p, 1);
  }
  // After an answer that closes, the rest of the input is not parsed.
  if (self->finishing_ || self->closing_) http_parser_pause(p, 1);
  return 0;
}

void AdminConnection::respond(int status, std::string_view content_type, std::string body, bool keep_alive,
                              const std::string& extra_headers) {
  if (closing_ || finishing_) return;
  auto req = std::make_unique<WriteReq>();
  std::string head = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n", status,
                                 reason_phrase(status), content_type, body.size());
  head += extra_headers;
  head += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  req->copy(std::move(head));
  req->copy(std::move(body));
  if (stream_->write(std::move(req)) != 0) {
    close("write failed");
    return;
  }
  if (keep_alive) {
    arm_idle_timer();
    return;
  }
  finishing_ = true;
  stream_->read_stop();
  // The answer is written first (uv_shutdown waits for queued writes).
  if (stream_->shutdown([this](int) { close("answered"); }) != 0) close("answered");
}

void AdminConnection::respond_and_close(int status, const std::string& message) {
  respond(status, "application/json", error_json(status == 413 ? "RequestTooLarge" : "BadRequest", message), false);
}

// ---- server ------------------------------------------------------------------------

AdminServer::AdminServer(Runner& runner, uv_loop_t* loop) : runner_(runner), loop_(loop) {}

AdminServer::~AdminServer() {
  // Connections are closed (and freed) before the loop ends; any left here
  // are dropped with their handles.
  for (auto& [ptr, conn] : connections_) conn.release();
  if (server_ && address_.kind == Address::Kind::kUnix) unlink(address_.path.c_str());
}

bool AdminServer::listen(const Address& address, std::string& error) {
  address_ = address;
  server_ = bind_address(loop_, address, kAdminSocketMode, error);
  if (!server_) return false;
  int rc = server_->listen(kAdminBacklog, [this](int status) { on_connection(status); });
  if (rc != 0) {
    error = fmt::format("cannot listen on {}: {}", address.to_string(), uv_strerror(rc));
    server_.reset();
    return false;
  }
  return true;
}

void AdminServer::on_connection(int status) {
  if (status != 0) {
    spdlog::warn("admin: accept failed: {}", uv_strerror(status));
    return;
  }
  HandlePtr<Stream> client = new_peer_stream(loop_, address_);
  if (server_->accept(*client) != 0) return;
  if (connections_.size() >= kMaxConnections) {
    spdlog::warn("admin: {} connections open already (the limit): closing a new one", connections_.size());
    return;  // `client` closes as it goes out of scope
  }
  auto conn = std::make_unique<AdminConnection>(*this, runner_, std::move(client));
  AdminConnection* raw = conn.get();
  connections_.emplace(raw, std::move(conn));
  raw->start();
}

void AdminServer::close_all() {
  if (server_) {
    server_.reset();
    if (address_.kind == Address::Kind::kUnix) unlink(address_.path.c_str());
  }
  std::vector<AdminConnection*> all;
  for (auto& [ptr, conn] : connections_) all.push_back(ptr);
  for (auto* conn : all) conn->close("the runner is stopping");
}

void AdminServer::on_connection_closed(AdminConnection* conn) { connections_.erase(conn); }

// ---- /status -----------------------------------------------------------------------------

std::string AdminServer::status_json() const {
  uint64_t now_ms = uv_now(loop_);
  uint64_t start_ms = runner_.started_ms();
  // uv_now() is monotonic; wall-clock times derive from the start's.
  auto unix_time = [&](uint64_t loop_ms) {
    return static_cast<double>(runner_.started_unix_ms() + static_cast<int64_t>(loop_ms - start_ms)) / 1000.0;
  };
  const RunnerConfig& config = runner_.config();
  json runner = {
      {"version", FC_VERSION},
      {"pid", static_cast<int>(getpid())},
      {"uptime_s", static_cast<double>(now_ms - start_ms) / 1000.0},
      {"started_at", unix_time(start_ms)},
      {"listen", config.listen.to_string()},
      {"admin", config.admin ? config.admin->to_string() : std::string()},
      {"config", config.path},
      {"connections", runner_.connection_count()},
      {"shutting_down", runner_.shutting_down()},
  };
  runner["last_reload"] =
      runner_.last_reload_json().empty() ? json(nullptr) : json::parse(runner_.last_reload_json(), nullptr, false);
  json functions = json::array();
  for (const auto& [name, fn] : runner_.functions()) {
    const FunctionConfig& fc = fn->config();
    json instances = json::array();
    for (const auto& inst : fn->instances()) {
      int app = app_pid(inst->pid());
      json item = {
          {"id", inst->id()},
          {"pid", app > 0 ? app : inst->pid()},
          {"group_pid", inst->pid()},
          {"version", inst->version()->number},
          {"state", to_string(inst->state())},
          {"in_flight", inst->in_flight()},
          {"requests_served", inst->requests_served()},
          {"started_at", unix_time(inst->started_ms())},
      };
      item["cold_start_ms"] =
          inst->ready_since_ms() != 0 ? json(inst->ready_since_ms() - inst->started_ms()) : json(nullptr);
      long long memory = inst->memory_bytes();
      std::string source = "cgroup";
      if (memory < 0 && (app > 0 || inst->pid() > 0)) {
        memory = statm_rss_bytes(app > 0 ? app : inst->pid());
        source = "rss";
      }
      item["memory_bytes"] = memory >= 0 ? json(memory) : json(nullptr);
      item["uid"] = Isolation::instance_uid(fc) >= 0 ? json(Isolation::instance_uid(fc)) : json(nullptr);
      item["refused_forks"] = inst->refused_forks();  // forks refused at maxProcesses
      item["max_processes"] = fc.max_processes;
      // maxOpenFiles and tmpSize as last sampled (limit_watch.h), and every limit it reached.
      item["open_files"] = inst->open_files() >= 0 ? json(inst->open_files()) : json(nullptr);
      item["max_open_files"] = fc.max_open_files;
      item["tmp_used_bytes"] = inst->tmp_used_bytes() >= 0 ? json(inst->tmp_used_bytes()) : json(nullptr);
      item["tmp_size_mb"] = fc.tmp_size_mb;
      item["limits_hit"] = inst->limits_hit();
      item["memory_source"] = memory >= 0 ? json(source) : json(nullptr);
      instances.push_back(std::move(item));
    }
    const FailedVersion* failed = fn->failed_version();
    json failed_json = nullptr;
    if (failed) {
      failed_json = {{"version", failed->number},
                     {"config_hash", failed->config_hash},
                     {"code_hash", failed->code_hash.empty() ? json(nullptr) : json(failed->code_hash)},
                     {"error", failed->error},
                     {"failed_at", static_cast<double>(failed->failed_unix_ms) / 1000.0}};
    }
    json candidate = nullptr;
    if (const FunctionVersion* c = fn->candidate()) {
      candidate = version_json(*c);
      int ready = 0;
      for (const auto& inst : fn->instances()) {
        if (inst->version().get() == c && (inst->ready() || inst->state() == Instance::State::kBusy)) ready++;
      }
      candidate["ready_instances"] = ready;
      candidate["ready_instances_wanted"] = c->ready_capacity_wanted();
    }
    functions.push_back({
        {"name", name},
        {"runtime", to_string(fc.runtime)},
        {"type", to_string(fc.type)},
        {"version", fn->version().number},
        {"config_hash", fn->version().config_hash},
        {"code_hash", fn->version().code_hash.empty() ? json(nullptr) : json(fn->version().code_hash)},
        {"candidate", std::move(candidate)},
        {"failed_version", std::move(failed_json)},
        {"queue_depth", fn->queue_depth()},
        {"limits",
         {{"min_instances", fc.min_instances},
          {"max_instances", fn->max_instances()},
          {"configured_max_instances", fc.max_instances},
          {"instance_concurrency", fc.instance_concurrency},
          {"max_queue_size", fc.max_queue_size},
          {"max_queue_time_s", fc.max_queue_time_s}}},
        {"cap_reason", fn->cap_reason().empty() ? json(nullptr) : json(fn->cap_reason())},
        {"instances", std::move(instances)},
    });
  }
  // Functions a reload removed, while their instances finish.
  json removed = json::array();
  for (const auto& fn : runner_.removed_functions()) {
    json instances = json::array();
    for (const auto& inst : fn->instances()) {
      instances.push_back({{"id", inst->id()}, {"version", inst->version()->number},
                           {"state", to_string(inst->state())}, {"in_flight", inst->in_flight()}});
    }
    removed.push_back({{"name", fn->name()}, {"instances", std::move(instances)}});
  }
  // Invalid UTF-8 (a name cannot have it; a path might) is replaced, not thrown.
  return json{{"runner", std::move(runner)}, {"functions", std::move(functions)}, {"removed_functions", std::move(removed)}}.dump(
             2, ' ', false, json::error_handler_t::replace) +
         "\n";
}

// ---- /metrics ------------------------------------------------------------------------------

// The function label of requests that named no defined function: not a
// valid function name, so it never meets a real one.
constexpr std::string_view kUnknownFunctionLabel = "(unknown)";

std::string AdminServer::metrics_text() const {
  Exposition out;
  const auto& functions = runner_.functions();
  auto per_function = [&](std::string_view name, std::string_view type, std::string_view help, auto&& each) {
    out.family(name, type, help);
    for (const auto& [fname, fn] : functions) each(std::string_view(fname), *fn);
  };

  per_function("fc_requests_total", "counter",
               "Requests finished, by function and code: the response's status class (2xx..5xx), the "
               "gateway error code (QueueFull, QueueTimeout, FunctionTimeout, ...) or ClientClosed.",
               [&](std::string_view fname, const Function& fn) {
                 for (const auto& [code, n] : fn.metrics().requests) {
                   out.sample("fc_requests_total", {{"function", fname}, {"code", code}}, n);
                 }
               });
  // Not a function's: requests for names no function has, all in one series.
  out.sample("fc_requests_total", {{"function", kUnknownFunctionLabel}, {"code", FC_ERR_FUNCTION_NOT_FOUND}},
             runner_.metrics().function_not_found);
  per_function("fc_request_duration_seconds", "histogram",
               "Time from the request's arrival at the runner to its end (queue wait included).",
               [&](std::string_view fname, const Function& fn) {
                 out.histogram("fc_request_duration_seconds", {{"function", fname}}, fn.metrics().request_duration);
               });
  per_function("fc_cold_starts_total", "counter", "Instances that became ready (each one cold start).",
               [&](std::string_view fname, const Function& fn) {
                 out.sample("fc_cold_starts_total", {{"function", fname}}, fn.metrics().cold_starts);
               });
  per_function("fc_cold_start_duration_seconds", "histogram",
               "Time from an instance's spawn to ready (initializer included).",
               [&](std::string_view fname, const Function& fn) {
                 out.histogram("fc_cold_start_duration_seconds", {{"function", fname}},
                               fn.metrics().cold_start_duration);
               });
  per_function("fc_queue_depth", "gauge", "Requests waiting for an instance.",
               [&](std::string_view fname, const Function& fn) {
                 out.sample("fc_queue_depth", {{"function", fname}}, static_cast<uint64_t>(fn.queue_depth()));
               });
  per_function("fc_queue_rejections_total", "counter",
               "Requests refused by the queue: QueueFull (maxQueueSize) or QueueTimeout (maxQueueTime).",
               [&](std::string_view fname, const Function& fn) {
                 out.sample("fc_queue_rejections_total", {{"function", fname}, {"reason", "QueueFull"}},
                            fn.metrics().queue_full);
                 out.sample("fc_queue_rejections_total", {{"function", fname}, {"reason", "QueueTimeout"}},
                            fn.metrics().queue_timeout);
               });
  per_function("fc_instances", "gauge", "Instances by state.", [&](std::string_view fname, const Function& fn) {
    for (auto state : kAllStates) {
      uint64_t n = 0;
      for (const auto& inst : fn.instances()) n += inst->state() == state ? 1 : 0;
      out.sample("fc_instances", {{"function", fname}, {"state", to_string(state)}}, n);
    }
  });
  per_function("fc_in_flight", "gauge", "Requests being served by instances.",
               [&](std::string_view fname, const Function& fn) {
                 uint64_t n = 0;
                 for (const auto& inst : fn.instances()) n += static_cast<uint64_t>(std::max(0, inst->in_flight()));
                 out.sample("fc_in_flight", {{"function", fname}}, n);
               });
  per_function("fc_instance_starts_total", "counter", "Instances spawned.",
               [&](std::string_view fname, const Function& fn) {
                 out.sample("fc_instance_starts_total", {{"function", fname}}, fn.metrics().instance_starts);
               });
  per_function("fc_instance_failures_total", "counter",
               "Instances that failed: did not start or initialize, crashed, timed out or turned unhealthy.",
               [&](std::string_view fname, const Function& fn) {
                 out.sample("fc_instance_failures_total", {{"function", fname}}, fn.metrics().instance_failures);
               });
  per_function("fc_instance_kills_total", "counter",
               "Instances the runner SIGKILLed: it failed to start in time, a request timed out, or SIGTERM's "
               "grace passed.",
               [&](std::string_view fname, const Function& fn) {
                 out.sample("fc_instance_kills_total", {{"function", fname}}, fn.metrics().instance_kills);
               });
  per_function("fc_instance_exits_total", "counter",
               "Instances gone, by reason: retired (idle, shutdown), update (a newer version took over, or the "
               "function was removed), start_failed, crashed, oom, timeout, unhealthy.",
               [&](std::string_view fname, const Function& fn) {
                 for (const char* reason : kExitReasons) {
                   auto it = fn.metrics().instance_exits.find(reason);
                   uint64_t n = it == fn.metrics().instance_exits.end() ? 0 : it->second;
                   out.sample("fc_instance_exits_total", {{"function", fname}, {"reason", reason}}, n);
                 }
               });
  per_function("fc_instance_limit_hits_total", "counter",
               "Instances that reached a limit: processes (maxProcesses: a fork was refused), memory (memorySize), "
               "open_files (maxOpenFiles), tmp (tmpSize: /tmp full).",
               [&](std::string_view fname, const Function& fn) {
                 for (const char* limit : {"processes", "memory", "open_files", "tmp"}) {
                   auto it = fn.metrics().limit_hits.find(limit);
                   uint64_t n = it == fn.metrics().limit_hits.end() ? 0 : it->second;
                   out.sample("fc_instance_limit_hits_total", {{"function", fname}, {"limit", limit}}, n);
                 }
               });

  per_function("fc_function_version", "gauge", "The version that serves (1 at start; each reload that changes "
               "the function's config or code makes the next).",
               [&](std::string_view fname, const Function& fn) {
                 out.sample("fc_function_version", {{"function", fname}},
                            static_cast<uint64_t>(fn.version().number));
               });
  per_function("fc_function_candidate_version", "gauge",
               "The new version starting in the background before it takes traffic (0: none).",
               [&](std::string_view fname, const Function& fn) {
                 out.sample("fc_function_candidate_version", {{"function", fname}},
                            static_cast<uint64_t>(fn.candidate() ? fn.candidate()->number : 0));
               });
  per_function("fc_function_failed_version", "gauge",
               "The last new version that failed to start while an older one kept serving (0: none since the "
               "serving version).",
               [&](std::string_view fname, const Function& fn) {
                 out.sample("fc_function_failed_version", {{"function", fname}},
                            static_cast<uint64_t>(fn.failed_version() ? fn.failed_version()->number : 0));
               });
  per_function("fc_version_rollouts_total", "counter",
               "New versions by how their rollout ended: done (it serves), failed (it did not start; the old "
               "version kept serving), superseded (a later reload replaced it first).",
               [&](std::string_view fname, const Function& fn) {
                 for (const char* result : kRolloutResults) {
                   auto it = fn.metrics().rollouts.find(result);
                   uint64_t n = it == fn.metrics().rollouts.end() ? 0 : it->second;
                   out.sample("fc_version_rollouts_total", {{"function", fname}, {"result", result}}, n);
                 }
               });

  const RunnerMetrics& rm = runner_.metrics();
  out.family("fc_runner_reloads_total", "counter",
             "Config reloads (SIGHUP, POST /reload): applied, or refused for an invalid config.");
  out.sample("fc_runner_reloads_total", {{"result", "applied"}}, rm.reloads_applied);
  out.sample("fc_runner_reloads_total", {{"result", "refused"}}, rm.reloads_refused);
  out.family("fc_runner_connections", "gauge", "Open connections from nginx.");
  out.sample("fc_runner_connections", {}, static_cast<uint64_t>(runner_.connection_count()));
  out.family("fc_runner_frame_errors_total", "counter",
             "Runner connections closed for a protocol error or an incomplete frame (frameTimeout).");
  out.sample("fc_runner_frame_errors_total", {}, rm.frame_errors);
  out.family("fc_runner_shed_connections_total", "counter",
             "Idle runner connections closed to make room at the open-file limit.");
  out.sample("fc_runner_shed_connections_total", {}, rm.shed_connections);
  out.family("fc_log_lines_dropped_total", "counter",
             "Log lines dropped because the log (stderr or logFile) did not take them in time.");
  out.sample("fc_log_lines_dropped_total", {}, log_lines_dropped());
  out.family("fc_runner_uptime_seconds", "gauge", "Seconds since the runner started.");
  out.sample("fc_runner_uptime_seconds", {}, static_cast<double>(uv_now(loop_) - runner_.started_ms()) / 1000.0);
  out.family("process_start_time_seconds", "gauge", "Start time of the runner since the unix epoch in seconds.");
  out.sample("process_start_time_seconds", {}, static_cast<double>(runner_.started_unix_ms()) / 1000.0);
  long long rss = statm_rss_bytes(0);
  if (rss >= 0) {
    out.family("process_resident_memory_bytes", "gauge", "Resident memory of the runner in bytes.");
    out.sample("process_resident_memory_bytes", {}, static_cast<uint64_t>(rss));
  }
  return out.text();
}

}  // namespace fc
