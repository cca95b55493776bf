// The runner's side of the wire protocol (DESIGN §3): decode a REQUEST into
// an owned RequestHead; encode RESPONSE, ERROR and DATA frame headers.  The
// codec itself is src/fc_proto.c; this is the C++ glue around it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "fc_proto.h"
#include "http_head.h"

namespace fc {

// An error the gateway produces itself (DESIGN §7): a value on the request path.
struct GatewayError {
  int status = 0;
  std::string code;  // FC_ERR_*
  std::string message;
};

// Returns an fc_status_e (FC_OK on success).  `out` may be a head used
// before: its strings and header list are assigned, keeping their capacity.
int decode_request(const uint8_t* payload, size_t len, RequestHead& out);

// The 8 header bytes of a frame.
std::string frame_header(uint8_t type, uint16_t flags, uint32_t length);

// Whole frames (header + msgpack payload).
std::string response_frame(int status, const HeaderList& headers, bool cold_start,
                           std::string_view instance);
// The RESPONSE frame appended to `out` (a write request's copy buffer);
// false, with `out` as it was, when it cannot be encoded or its payload
// would pass FC_MAX_META_PAYLOAD.
bool append_response_frame(std::string& out, int status, const HeaderViews& headers, bool cold_start,
                           std::string_view instance);
std::string error_frame(const GatewayError& error);  // always END_STREAM

}  // namespace fc
