// Binding the runner's sockets (`listen:` and `admin:`): a unix socket
// (parent directory created, a stale socket of an earlier run unlinked,
// created private and then given its mode, so nobody connects in between)
// or a literal TCP address.  Start-up only: it makes synchronous calls.
#pragma once

#include <string>

#include "config.h"
#include "uv_handle.h"

namespace fc {

// The bound, not yet listening, stream; null with `error` set on failure.
HandlePtr<Stream> bind_address(uv_loop_t* loop, const Address& address, int unix_mode, std::string& error);

// A stream of the kind `address` accepts (Pipe or Tcp), for uv_accept.
HandlePtr<Stream> new_peer_stream(uv_loop_t* loop, const Address& address);

}  // namespace fc
