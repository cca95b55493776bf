// The runner's front door: the `listen:` unix socket (stale file unlinked,
// parent directory created, mode listenMode) or loopback TCP.  Owns the
// client connections it accepted.
//
// The open-file limit is shared out at listen (DescriptorBudget): a reserve
// for the runner's own files and the instances, and runner connections: at
// most served + overflow of them open, one descriptor each, of which at most
// `served` are served, each with a connection to its instance too.
// Whether a connection is served is decided at its first REQUEST, not at
// accept: one that never completes a frame (a flood of half frames) takes no
// served slot, so nginx's requests still find one.  A first REQUEST that
// finds none sheds the served connection idle the longest, or else is
// answered 503 RunnerUnavailable, and that connection is closed.
// Past the open count a new connection sheds the cheapest one (a half-sent
// first frame, oldest first; then the served one idle longest: nginx reuses
// its most recent first); past that too, accepting pauses (the kernel's
// backlog holds the rest) until a connection closes or becomes one that may
// be shed.  A connection that has not sent anything yet is never shed:
// nginx has written its REQUEST to it already.  The budget stays below the
// limit so that accept() never meets EMFILE, where libuv would close every
// pending connection unlogged (nginx: HTML 502).
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
  size_t overflow = 0;     // more open: no first frame yet, or answered 503
  size_t connections() const { return served + overflow; }
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
  // At a connection's first REQUEST: true if it may be served (a slot was
  // free, or an idle served connection was shed for it).
  bool take_served_slot();

 private:
  void on_connection(int status);
  // Accepts the connection libuv holds if the budget allows (shedding one
  // if need be); else pauses.
  void admit();
  void accept_pending();
  // Sheds the cheapest connection that frees what is wanted: a descriptor
  // (any that may be shed), or a served slot (a served one, idle).
  enum class Room { kConnection, kServedSlot };
  bool make_room(Room room);

  Runner& runner_;
  uv_loop_t* loop_;
  Address address_;
  HandlePtr<Stream> server_;
  std::unordered_map<ClientConnection*, std::unique_ptr<ClientConnection>> connections_;
  uint64_t serial_ = 0;
  uint64_t frame_timeout_ms_ = 10'000;
  DescriptorBudget budget_;
  size_t served_open_ = 0;      // connections holding a served slot
  bool accept_paused_ = false;  // a connection waits in the kernel for room
  HandlePtr<Timer> room_timer_;  // on_connection_evictable's admit, outside the caller's callbacks
  uint64_t shed_ = 0;           // connections shed since the last log line
  uint64_t shed_logged_ms_ = 0;
};

}  // namespace fc
