// What an instance connection reports to whoever sent the request on it: an
// Exchange (a client's call) or a control call of the instance itself
// (POST /initialize, GET /pre-stop).
#pragma once

#include <cstddef>

#include "frames.h"
#include "http_head.h"
#include "uv_handle.h"

namespace fc {

// Above this many bytes queued for writing on one side, the runner stops
// reading the other side, and resumes once the queue drains below it.
inline constexpr size_t kWriteHighWater = 256 * 1024;

class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  // `headers` are views valid during the call only (into the read chunk);
  // the sink may add to the list.
  virtual void on_response_head(int status, HeaderViews& headers) = 0;
  virtual void on_response_body(const ChunkRef& chunk, const char* data, size_t len) = 0;
  // The response is complete; the connection has already let go of the sink.
  virtual void on_response_end() = 0;
  // The connection failed (connect error, closed early, garbage); it has
  // already let go of the sink.
  virtual void on_response_failed(GatewayError&& error) = 0;
  // The request bytes queued towards the instance went below the high-water mark.
  virtual void on_request_drained() {}
};

}  // namespace fc
