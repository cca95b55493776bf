// The runner's front door: the `listen:` unix socket (stale file unlinked,
// parent directory created, mode listenMode) or loopback TCP.  Owns the
// client connections it accepted.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "config.h"
#include "uv_handle.h"

namespace fc {

class ClientConnection;
class Runner;

class Listener {
 public:
  Listener(Runner& runner, uv_loop_t* loop);
  ~Listener();

  // False with `error` set when the address cannot be bound.
  bool listen(const Address& address, int mode, std::string& error);
  void stop_accepting();
  // Shutdown: idle connections close now, busy ones after their exchange.
  void close_when_idle();
  void close_all(const std::string& why);
  size_t connection_count() const { return connections_.size(); }

  void on_connection_closed(ClientConnection* conn);

 private:
  void on_connection(int status);

  Runner& runner_;
  uv_loop_t* loop_;
  Address address_;
  HandlePtr<Stream> server_;
  std::unordered_map<ClientConnection*, std::unique_ptr<ClientConnection>> connections_;
  uint64_t serial_ = 0;
};

}  // namespace fc
