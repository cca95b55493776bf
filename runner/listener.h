// The runner's front door: the `listen:` unix socket (stale file unlinked,
// parent directory created, mode listenMode) or loopback TCP.  Owns the
// client connections it accepted.
//
// The open-file limit is shared out at listen (DescriptorBudget): a reserve
// for the runner's own files and the instances, two descriptors per served
// connection (itself and its instance connection), one per overflow
// connection.  Past the served count a new connection sheds the cheapest
// one (a half-sent first frame, then the one idle longest: nginx reuses its
// most recent first), or else is accepted as an overflow connection, whose
// requests are answered 503 RunnerUnavailable before it is closed; past
// that too, accepting pauses (the kernel's backlog holds the rest) until a
// connection closes or goes idle.  A connection that has not sent its first
// frame is never shed: nginx has written its REQUEST to it already.  The
// budget stays below the limit so that accept() never meets EMFILE, where
// libuv would close every pending connection unlogged (nginx: HTML 502).
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

// How the open-file limit is shared out (see connection_budget() in
// listener.cc for the derivation).
struct DescriptorBudget {
  size_t limit = 0;        // RLIMIT_NOFILE
  size_t reserved = 0;     // the runner's own files, instances, admin, spawns
  size_t served = 0;       // runner connections with requests served
  size_t overflow = 0;     // more, answered 503 RunnerUnavailable and closed
};

// A shortage of descriptors (EMFILE/ENFILE) that failed a request: one
// warning per second at most, with the count, the limit and what ran out.
void warn_out_of_descriptors(uv_loop_t* loop, const char* what);

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
  // A connection became one that may be shed (its exchange finished, or it
  // began a first frame): while accepting is paused it may be shed for the
  // one waiting (nginx's pooled connections can stay idle for long; waiting
  // for a close alone could wait for ever).
  void on_connection_evictable();
  const DescriptorBudget& budget() const { return budget_; }

 private:
  void on_connection(int status);
  // Accepts the connection libuv holds if the budget allows (shedding one
  // if need be); else pauses.
  void admit();
  void accept_pending(bool overflow);
  bool make_room();

  Runner& runner_;
  uv_loop_t* loop_;
  Address address_;
  HandlePtr<Stream> server_;
  std::unordered_map<ClientConnection*, std::unique_ptr<ClientConnection>> connections_;
  uint64_t serial_ = 0;
  uint64_t frame_timeout_ms_ = 10'000;
  DescriptorBudget budget_;
  size_t overflow_open_ = 0;    // overflow connections not yet closed
  bool accept_paused_ = false;  // a connection waits in the kernel for room
  HandlePtr<Timer> room_timer_;  // on_connection_evictable's admit, outside the caller's callbacks
  uint64_t shed_ = 0;           // connections shed since the last log line
  uint64_t shed_logged_ms_ = 0;
};

}  // namespace fc
