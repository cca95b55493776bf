#include "bind.h"

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace fc {

HandlePtr<Stream> bind_address(uv_loop_t* loop, const Address& address, int unix_mode, std::string& error) {
  int rc = 0;
  if (address.kind == Address::Kind::kUnix) {
    std::error_code ec;
    auto parent = std::filesystem::path(address.path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    struct stat st {};
    if (lstat(address.path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        error = fmt::format("{}: exists and is not a socket", address.path);
        return nullptr;
      }
      unlink(address.path.c_str());  // a stale socket of an earlier run
    }
    auto pipe = Pipe::create(loop);
    mode_t old_mask = umask(0177);
    rc = pipe->bind(address.path);
    umask(old_mask);
    if (rc == 0 && chmod(address.path.c_str(), static_cast<mode_t>(unix_mode)) != 0) {
      error = fmt::format("chmod {:o} {}: {}", unix_mode, address.path, std::strerror(errno));
      return nullptr;
    }
    if (rc != 0) {
      error = fmt::format("cannot listen on {}: {}", address.to_string(), uv_strerror(rc));
      return nullptr;
    }
    return pipe;
  }
  sockaddr_storage addr{};
  if (address.host.find(':') != std::string::npos) {
    rc = uv_ip6_addr(address.host.c_str(), address.port, reinterpret_cast<sockaddr_in6*>(&addr));
  } else {
    rc = uv_ip4_addr(address.host.c_str(), address.port, reinterpret_cast<sockaddr_in*>(&addr));
  }
  if (rc != 0) {
    error = fmt::format("{}: not an IP address", address.host);
    return nullptr;
  }
  auto tcp = Tcp::create(loop);
  rc = tcp->bind(reinterpret_cast<const sockaddr*>(&addr));
  if (rc != 0) {
    error = fmt::format("cannot listen on {}: {}", address.to_string(), uv_strerror(rc));
    return nullptr;
  }
  return tcp;
}

HandlePtr<Stream> new_peer_stream(uv_loop_t* loop, const Address& address) {
  if (address.kind == Address::Kind::kUnix) return Pipe::create(loop);
  auto tcp = Tcp::create(loop);
  tcp->nodelay(true);
  return tcp;
}

}  // namespace fc
