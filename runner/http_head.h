// The HTTP/1.1 heads the runner writes to instances and the header rules of
// forwarding (DESIGN §6): which client headers pass, which FC headers are
// added, which response headers go back to nginx.  Pure functions, so the
// rules are unit-tested without processes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config.h"

namespace fc {

using HeaderList = std::vector<std::pair<std::string, std::string>>;
// Headers as views (into a read chunk, say), valid while their owner says.
using HeaderViews = std::vector<std::pair<std::string_view, std::string_view>>;

// A REQUEST frame, owned (the frame's payload buffer is gone after decode).
struct RequestHead {
  std::string function;
  std::string method;
  std::string uri;  // raw, with query
  std::string version;
  HeaderList headers;  // order and duplicates kept
  std::string remote_addr;
  uint32_t remote_port = 0;
  std::string scheme;
  std::string host;
  std::string request_id;
  int64_t content_length = -1;  // -1: unknown
  uint64_t deadline_ms = 0;
};

bool iequals(std::string_view a, std::string_view b);

// Hop-by-hop request headers (plus Content-Length and Expect, which the
// runner decides itself): never forwarded to an instance.
bool is_dropped_request_header(std::string_view name);
// `x-fc-*`: reserved for the gateway; a client cannot set them.
bool is_fc_header(std::string_view name);
// Hop-by-hop response headers: not passed back to nginx.
bool is_dropped_response_header(std::string_view name);

enum class BodyFraming { kNone, kContentLength, kChunked };

struct InstanceCall {
  std::string_view method;
  std::string_view uri;
  std::string_view control_path;  // "/invoke", "/http-invoke", "/initialize", "/pre-stop"
  std::string_view request_id;
  const RequestHead* client = nullptr;  // headers to forward; null for control calls
  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;  // with kContentLength
  std::string_view upgrade;     // non-empty: ask the instance to switch to this protocol
};

// The FC header lines that are the same on every call of a function
// (x-fc-function-name, -handler, -memory, -timeout, -initializer,
// x-fc-initialization-timeout): made once per function, not per request.
std::string function_header_lines(const FunctionConfig& fn);

// "METHOD uri HTTP/1.1\r\n" + headers + "\r\n"; `function_headers` comes
// from function_header_lines().
std::string build_request_head(const InstanceCall& call, std::string_view function_headers);
// The same head appended to `out` (a write request's copy buffer).
void append_request_head(std::string& out, const InstanceCall& call, std::string_view function_headers);

// How the body of a forwarded request is framed: Content-Length when known,
// chunked otherwise; no body headers for a bodiless GET/HEAD.
BodyFraming request_framing(std::string_view method, int64_t content_length);

// The protocol a client asks to switch to (WebSocket and other upgrades, RFC
// 9110 §7.8): an HTTP/1.1 request, not HEAD, without a body, with an Upgrade header and
// "upgrade" among its Connection tokens.  Empty when it asks for none.  The
// nginx module applies the same rule (docs/protocol.md).
std::string upgrade_protocol(const RequestHead& head);

// An instance's response head of the common shape, read without
// http_parser (whose byte-at-a-time state machine was a fifth of the
// runner's instructions per request): HTTP/1.1, a final status that has a
// body (200-599 but 204 and 304), a Content-Length, no Transfer-Encoding,
// Connection absent, "keep-alive" or "close", and every line free of
// control characters, each name a token.  Anything else, or a head not
// complete in `bytes`, is left to http_parser.
struct SimpleResponseHead {
  int status = 0;
  bool keep_alive = true;
  uint64_t content_length = 0;
  size_t head_len = 0;  // the head's bytes in `bytes`, the blank line included
};
// True when `bytes` begins with a whole head of that shape: `out` and
// `headers` (views into `bytes`, every header in order) are filled.
bool parse_simple_response_head(std::string_view bytes, SimpleResponseHead& out, HeaderViews& headers);

// Numbers in FC headers: "30", "2.5".
std::string format_seconds(double seconds);

}  // namespace fc
