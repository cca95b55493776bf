#include "listener.h"

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "client_connection.h"
#include "runner.h"

namespace fc {

namespace {
constexpr int kBacklog = 511;
}

Listener::Listener(Runner& runner, uv_loop_t* loop) : runner_(runner), loop_(loop) {}

Listener::~Listener() {
  // Connections are closed (and freed) before the loop ends; any left here
  // are dropped with their handles.
  for (auto& [ptr, conn] : connections_) conn.release();
}

bool Listener::listen(const Address& address, int mode, std::string& error) {
  address_ = address;
  int rc = 0;
  if (address.kind == Address::Kind::kUnix) {
    // Start-up only: synchronous file system calls are fine here.
    std::error_code ec;
    auto parent = std::filesystem::path(address.path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    struct stat st {};
    if (lstat(address.path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        error = fmt::format("{}: exists and is not a socket", address.path);
        return false;
      }
      unlink(address.path.c_str());  // a stale socket of an earlier run
    }
    auto pipe = Pipe::create(loop_);
    rc = pipe->bind(address.path);
    if (rc == 0 && chmod(address.path.c_str(), static_cast<mode_t>(mode)) != 0) {
      error = fmt::format("chmod {:o} {}: {}", mode, address.path, std::strerror(errno));
      return false;
    }
    server_ = std::move(pipe);
  } else {
    sockaddr_storage addr{};
    if (address.host.find(':') != std::string::npos) {
      rc = uv_ip6_addr(address.host.c_str(), address.port, reinterpret_cast<sockaddr_in6*>(&addr));
    } else {
      rc = uv_ip4_addr(address.host.c_str(), address.port, reinterpret_cast<sockaddr_in*>(&addr));
    }
    if (rc != 0) {
      error = fmt::format("{}: not an IP address", address.host);
      return false;
    }
    auto tcp = Tcp::create(loop_);
    rc = tcp->bind(reinterpret_cast<const sockaddr*>(&addr));
    server_ = std::move(tcp);
  }
  if (rc == 0) rc = server_->listen(kBacklog, [this](int status) { on_connection(status); });
  if (rc != 0) {
    error = fmt::format("cannot listen on {}: {}", address.to_string(), uv_strerror(rc));
    server_.reset();
    return false;
  }
  return true;
}

void Listener::on_connection(int status) {
  if (status != 0) {
    spdlog::warn("accept on {} failed: {}", address_.to_string(), uv_strerror(status));
    return;
  }
  HandlePtr<Stream> client;
  if (address_.kind == Address::Kind::kUnix) {
    client = Pipe::create(loop_);
  } else {
    auto tcp = Tcp::create(loop_);
    tcp->nodelay(true);
    client = std::move(tcp);
  }
  int rc = server_->accept(*client);
  if (rc != 0) {
    spdlog::warn("accept on {} failed: {}", address_.to_string(), uv_strerror(rc));
    return;
  }
  spdlog::debug("[conn#{}] accepted connection on {}", serial_ + 1, address_.to_string());
  auto conn = std::make_unique<ClientConnection>(runner_, *this, std::move(client), ++serial_);
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
  runner_.on_connection_closed();
}

}  // namespace fc
