#include "listener.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "client_connection.h"
#include "bind.h"
#include "runner.h"

namespace fc {

namespace {

// Used when /proc does not say what the kernel allows.
constexpr int kFallbackBacklog = 4096;
// Descriptors kept for instances (pipes, connections, probes) and the
// runner's own files: a quarter of the limit, at least this many.
constexpr size_t kMinReservedFds = 64;
// Shedding is logged at most this often, with a count.
constexpr uint64_t kShedLogIntervalMs = 1000;

int kernel_max_backlog() {
  // Start-up only: a synchronous read is fine here.
  std::ifstream in("/proc/sys/net/core/somaxconn");
  int value = 0;
  if (in >> value && value > 0) return value;
  return kFallbackBacklog;
}

size_t connection_budget() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return 1 << 20;
  size_t fds = static_cast<size_t>(lim.rlim_cur);
  size_t reserved = std::max(kMinReservedFds, fds / 4);
  // A busy runner connection holds a connection to its instance too: the
  // runner connections get half of what is left, so that the pair never
  // runs into EMFILE (where libuv resets every pending connection, unlogged).
  return fds > reserved + 32 ? (fds - reserved) / 2 : 16;
}

}  // namespace

Listener::Listener(Runner& runner, uv_loop_t* loop) : runner_(runner), loop_(loop) {}

Listener::~Listener() {
  // Connections are closed (and freed) before the loop ends; any left here
  // are dropped with their handles.
  for (auto& [ptr, conn] : connections_) conn.release();
}

bool Listener::listen(const Address& address, int mode, int backlog, std::string& error) {
  address_ = address;
  if (backlog <= 0) backlog = kernel_max_backlog();
  max_connections_ = connection_budget();
  server_ = bind_address(loop_, address, mode, error);
  if (!server_) return false;
  int rc = server_->listen(backlog, [this](int status) { on_connection(status); });
  if (rc != 0) {
    error = fmt::format("cannot listen on {}: {}", address.to_string(), uv_strerror(rc));
    server_.reset();
    return false;
  }
  spdlog::info("listen backlog {}, at most {} runner connections, frameTimeout {} ms", backlog, max_connections_,
               frame_timeout_ms_);
  return true;
}

void Listener::on_connection(int status) {
  if (status != 0) {
    // EMFILE/ENFILE: libuv already shed the pending connections to get out
    // of it; make room so the next ones fit.
    spdlog::error("accept on {} failed: {} ({} runner connections open)", address_.to_string(),
                  uv_strerror(status), connections_.size());
    make_room();
    return;
  }
  if (connections_.size() >= max_connections_ && !make_room()) {
    // Leave it in the kernel: libuv stops polling until it is accepted.
    if (!accept_paused_) {
      spdlog::warn("{} runner connections are busy (the open-file limit allows {}): accepting paused",
                   connections_.size(), max_connections_);
    }
    accept_paused_ = true;
    return;
  }
  accept_pending();
}

bool Listener::make_room() {
  ClientConnection* victim = nullptr;
  for (auto& [ptr, conn] : connections_) {
    int rank = conn->eviction_rank();
    if (rank == ClientConnection::kNotEvictable) continue;
    if (!victim || rank < victim->eviction_rank() ||
        (rank == victim->eviction_rank() && conn->serial() < victim->serial())) {
      victim = ptr;
    }
  }
  if (!victim) return false;
  shed_++;
  runner_.metrics().shed_connections++;
  uint64_t now = uv_now(loop_);
  if (now - shed_logged_ms_ >= kShedLogIntervalMs) {
    spdlog::warn("at the connection limit ({}): shed {} idle runner connection(s), the oldest half-sent first",
                 max_connections_, shed_);
    shed_ = 0;
    shed_logged_ms_ = now;
  }
  victim->close("shed to make room for a new connection");
  return true;
}

void Listener::accept_pending() {
  if (!server_) return;
  HandlePtr<Stream> client = new_peer_stream(loop_, address_);
  int rc = server_->accept(*client);
  if (rc != 0) {
    spdlog::warn("accept on {} failed: {}", address_.to_string(), uv_strerror(rc));
    return;
  }
  spdlog::debug("[conn#{}] accepted connection on {}", serial_ + 1, address_.to_string());
  auto conn = std::make_unique<ClientConnection>(runner_, *this, std::move(client), ++serial_, frame_timeout_ms_);
  ClientConnection* raw = conn.get();
  connections_.emplace(raw, std::move(conn));
  raw->start();
}

void Listener::stop_accepting() {
  if (!server_) return;
  server_.reset();
  if (address_.kind == Address::Kind::kUnix) unlink(address_.path.c_str());
}

void Listener::close_when_idle() {
  std::vector<ClientConnection*> all;
  for (auto& [ptr, conn] : connections_) all.push_back(ptr);
  for (auto* conn : all) conn->close_when_idle();
}

void Listener::close_all(const std::string& why) {
  std::vector<ClientConnection*> all;
  for (auto& [ptr, conn] : connections_) all.push_back(ptr);
  for (auto* conn : all) conn->close(why);
}

void Listener::on_connection_closed(ClientConnection* conn) {
  connections_.erase(conn);
  if (accept_paused_ && connections_.size() < max_connections_) {
    accept_paused_ = false;
    spdlog::info("accepting again ({} runner connections open)", connections_.size());
    accept_pending();
  }
  runner_.on_connection_closed();
}

}  // namespace fc
