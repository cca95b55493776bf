#include "listener.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
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

// How the open-file limit is shared out (connection_budget()).  What the
// runner holds at listen (log, loop, signals, the listening socket: counted
// in /proc/self/fd) is kept; so is, for what it opens while it runs, an
// eighth of the limit and at least kMinReservedFds: each instance's output
// pipes, pidfd and readiness probe, a spawn's transient pipes, admin
// connections, a log reopen.
constexpr size_t kMinReservedFds = 32;
// What a served runner connection costs at most: itself and the
// connection to the instance that runs its request.
constexpr size_t kFdsPerServedConnection = 2;
// Connections open past the served ones (not yet sent a first frame, or
// answered 503 RunnerUnavailable and closing) are a sixteenth of what is
// left, at least this many: a 503 lives for one answer, so a few drain a
// full backlog quickly.
constexpr size_t kMinOverflowConnections = 4;
// The connection libuv has accepted and holds while accepting is paused.
constexpr size_t kHeldByLibuv = 1;
// Shedding and shortages are logged at most this often, with a count.
constexpr uint64_t kShedLogIntervalMs = 1000;

int kernel_max_backlog() {
  // Start-up only: a synchronous read is fine here.
  std::ifstream in("/proc/sys/net/core/somaxconn");
  int value = 0;
  if (in >> value && value > 0) return value;
  return kFallbackBacklog;
}

size_t open_descriptors() {
  // Start-up only: a synchronous listing.
  std::error_code ec;
  size_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    n++;
  }
  return n > 0 ? n - 1 : 0;  // the listing's own descriptor
}

// Served connections get what is left after the reserve and the overflow
// connections, two descriptors each, so that the runner at its busiest
// (every served connection with an instance connection, every overflow
// slot taken, libuv holding one more) stays within the limit and accept()
// never meets EMFILE.
DescriptorBudget connection_budget() {
  DescriptorBudget b;
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) {
    b.limit = 0;
    b.served = 1 << 20;
    b.overflow = 1 << 16;
    return b;
  }
  b.limit = static_cast<size_t>(lim.rlim_cur);
  b.reserved = open_descriptors() + std::max(kMinReservedFds, b.limit / 8) + kHeldByLibuv;
  size_t left = b.limit > b.reserved ? b.limit - b.reserved : 0;
  b.overflow = std::max(kMinOverflowConnections, left / 16);
  left = left > b.overflow ? left - b.overflow : 0;
  // A limit too small for any of this still serves a few (logged at listen).
  b.served = std::max<size_t>(left / kFdsPerServedConnection, 4);
  return b;
}

struct Shortage {
  uint64_t count = 0;
  uint64_t logged_ms = 0;
  bool logged_once = false;
};
Shortage g_shortage;

}  // namespace

void warn_out_of_descriptors(uv_loop_t* loop, const char* what) {
  g_shortage.count++;
  uint64_t now = uv_now(loop);
  if (g_shortage.logged_once && now - g_shortage.logged_ms < kShedLogIntervalMs) return;
  rlimit lim{};
  std::string limit = getrlimit(RLIMIT_NOFILE, &lim) == 0 ? std::to_string(lim.rlim_cur) : "unknown";
  spdlog::warn("out of file descriptors (EMFILE) at the open-file limit {}: {} request(s) answered 503 "
               "RunnerUnavailable, the last for {}; raise the limit (LimitNOFILE=) or lower the load",
               limit, g_shortage.count, what);
  g_shortage.count = 0;
  g_shortage.logged_ms = now;
  g_shortage.logged_once = true;
}

Listener::Listener(Runner& runner, uv_loop_t* loop) : runner_(runner), loop_(loop) {}

Listener::~Listener() {
  // Connections are closed (and freed) before the loop ends; any left here
  // are dropped with their handles.
  for (auto& [ptr, conn] : connections_) conn.release();
}

bool Listener::listen(const Address& address, int mode, int backlog, std::string& error) {
  address_ = address;
  if (backlog <= 0) backlog = kernel_max_backlog();
  budget_ = connection_budget();
  server_ = bind_address(loop_, address, mode, error);
  if (!server_) return false;
  int rc = server_->listen(backlog, [this](int status) { on_connection(status); });
  if (rc != 0) {
    error = fmt::format("cannot listen on {}: {}", address.to_string(), uv_strerror(rc));
    server_.reset();
    return false;
  }
  spdlog::info("listen backlog {}, at most {} runner connections, frameTimeout {} ms", backlog,
               budget_.connections(), frame_timeout_ms_);
  if (budget_.limit > 0) {
    spdlog::info("open-file limit {}: {} descriptors kept for the runner and its instances, {} runner connections "
                 "served (each with an instance connection), {} more open (no first frame yet, or answered 503 "
                 "RunnerUnavailable)",
                 budget_.limit, budget_.reserved, budget_.served, budget_.overflow);
  }
  if (budget_.limit > 0 && budget_.reserved + budget_.overflow + 2 * budget_.served > budget_.limit) {
    spdlog::warn("the open-file limit {} is too small: raise it (LimitNOFILE=) to serve more than a few requests "
                 "at a time", budget_.limit);
  }
  return true;
}

void Listener::on_connection(int status) {
  if (status != 0) {
    // EMFILE/ENFILE: libuv has closed the pending connections to get out of
    // it (the budget is there so that this does not happen).
    spdlog::error("accept on {} failed: {} ({} runner connections open, open-file limit {})",
                  address_.to_string(), uv_strerror(status), connections_.size(), budget_.limit);
    make_room(Room::kConnection);
    return;
  }
  admit();
}

void Listener::admit() {
  if (connections_.size() < budget_.connections() || make_room(Room::kConnection)) {
    if (accept_paused_) {
      accept_paused_ = false;
      spdlog::info("accepting again ({} runner connections open)", connections_.size());
    }
    accept_pending();
    return;
  }
  // Leave it in the kernel: libuv holds the one it accepted and stops
  // polling until it is taken.
  if (!accept_paused_) {
    // Counted until their close callbacks ran: those shed in this accept
    // batch have already given their descriptors back.
    spdlog::warn("{} runner connections are open or closing (the open-file limit {} allows {} open, {} of them "
                 "served): accepting paused",
                 connections_.size(), budget_.limit, budget_.connections(), budget_.served);
  }
  accept_paused_ = true;
}

bool Listener::take_served_slot() {
  // Only a served connection gives a served slot back: shedding a half frame
  // would free a descriptor, not a slot.
  if (served_open_ >= budget_.served && !make_room(Room::kServedSlot)) return false;
  served_open_++;
  return true;
}

bool Listener::make_room(Room room) {
  ClientConnection* victim = nullptr;
  // An idle one found to have a request waiting is passed over: rarely more
  // than one, so the scan is repeated rather than sorted.
  std::vector<ClientConnection*> passed_over;
  for (;;) {
    victim = nullptr;
    for (auto& [ptr, conn] : connections_) {
      int rank = conn->eviction_rank();
      if (rank == ClientConnection::kNotEvictable) continue;
      if (room == Room::kServedSlot && rank != ClientConnection::kIdleServed) continue;
      if (victim && (rank > victim->eviction_rank() ||
                     (rank == victim->eviction_rank() && conn->eviction_age() >= victim->eviction_age()))) {
        continue;
      }
      if (std::find(passed_over.begin(), passed_over.end(), ptr) != passed_over.end()) continue;
      victim = ptr;
    }
    if (!victim) return false;
    if (victim->eviction_rank() == ClientConnection::kHalfFirstFrame || !victim->has_unread_bytes()) break;
    passed_over.push_back(victim);
  }
  shed_++;
  runner_.metrics().shed_connections++;
  uint64_t now = uv_now(loop_);
  if (now - shed_logged_ms_ >= kShedLogIntervalMs) {
    spdlog::warn("at the connection limit ({} open, {} served): shed {} runner connection(s), half-sent first "
                 "frames first, then the served idle longest",
                 budget_.connections(), budget_.served, shed_);
    shed_ = 0;
    shed_logged_ms_ = now;
  }
  if (victim->holds_served_slot()) {
    victim->give_back_served_slot();
    served_open_--;
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

void Listener::on_connection_evictable() {
  if (!accept_paused_) return;
  if (!room_timer_) room_timer_ = Timer::create(loop_);
  // Not from inside the finishing exchange's callbacks.
  room_timer_->start(0, [this] {
    if (!accept_paused_ || !server_) return;
    admit();
  });
}

void Listener::on_connection_closed(ClientConnection* conn) {
  auto it = connections_.find(conn);
  if (it != connections_.end()) {
    if (conn->holds_served_slot()) served_open_--;
    connections_.erase(it);
  }
  if (accept_paused_ && server_) admit();
  runner_.on_connection_closed();
}

}  // namespace fc
