// The runner's front door: the `listen:` unix socket (stale file unlinked,
// parent directory created, mode listenMode) or loopback TCP.  Owns the
// client connections it accepted.  It keeps their count below what the
// open-file limit leaves after a reserve for instances: past that, a new
// connection sheds the cheapest idle one (a half-sent frame first), and when
// none can go, accepting pauses (the kernel's backlog holds the rest) until a
// connection closes.  It never accepts into EMFILE, where libuv would drop
// every pending connection.
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
  // `backlog` 0: the kernel's maximum.
  bool listen(const Address& address, int mode, int backlog, std::string& error);
  void set_frame_timeout_ms(uint64_t ms) { frame_timeout_ms_ = ms; }
  void stop_accepting();
  // Shutdown: idle connections close now, busy ones after their exchange.
  void close_when_idle();
  void close_all(const std::string& why);
  size_t connection_count() const { return connections_.size(); }

  void on_connection_closed(ClientConnection* conn);

 private:
  void on_connection(int status);
  void accept_pending();
  bool make_room();

  Runner& runner_;
  uv_loop_t* loop_;
  Address address_;
  HandlePtr<Stream> server_;
  std::unordered_map<ClientConnection*, std::unique_ptr<ClientConnection>> connections_;
  uint64_t serial_ = 0;
  uint64_t frame_timeout_ms_ = 10'000;
  size_t max_connections_ = 0;
  bool accept_paused_ = false;  // a connection waits in the kernel for room
  uint64_t shed_ = 0;           // connections shed since the last log line
  uint64_t shed_logged_ms_ = 0;
};

}  // namespace fc
