// One HTTP/1.1 keep-alive connection from the runner to an instance, carrying
// one request at a time.  It writes the request head and body bytes as they
// come (chunked when the length is unknown) and parses the response with
// http_parser, handing head, body slices and end to its ResponseSink without
// buffering.  Instances pool these; a connection is reused only when the
// previous exchange ended cleanly on both sides.
#pragma once

#include <http_parser.h>

#include <string>

#include "http_head.h"
#include "response_sink.h"
#include "uv_handle.h"

namespace fc {

class Instance;

class InstanceConnection {
 public:
  // Sockets normally come from libuv; `fd` >= 0 is a socket made in the
  // instance's network namespace, kNoSocket one that could not be made.
  static constexpr int kOwnSocket = -1;
  static constexpr int kNoSocket = -2;
  InstanceConnection(Instance& owner, uv_loop_t* loop, int port, int fd = kOwnSocket);
  ~InstanceConnection();
  InstanceConnection(const InstanceConnection&) = delete;
  InstanceConnection& operator=(const InstanceConnection&) = delete;

  // Starts a request: `head` is the whole HTTP head (http_head.h).  Writes
  // may be issued while the TCP connection is still being established.
  void begin(ResponseSink& sink, std::string head, BodyFraming framing, bool head_request);
  // Body bytes, referenced (not copied) and held until written.
  void write_body(const ChunkRef& chunk, const char* data, size_t len);
  void end_body();
  // The sink goes away before the exchange ended (client gone, timeout):
  // the connection cannot be reused and closes.
  void abandon();

  size_t write_queue_size() const;
  void pause_reading();
  void resume_reading();

  // The instance process is gone: a request in flight fails with `why`.
  void instance_gone(const std::string& why);

  // A keep-alive connection idle longer than this is not reused: servers
  // close idle connections (gunicorn after 2 s, Node after 5 s), and a request
  // racing that close would look like a crash.
  static constexpr uint64_t kMaxIdleMs = 1000;
  bool stale(uint64_t now_ms) const { return idle_since_ms_ != 0 && now_ms - idle_since_ms_ > kMaxIdleMs; }

  bool busy() const { return sink_ != nullptr; }
  bool closing() const { return closing_; }
  void close();

 private:
  void on_connected(int status);
  void on_read(const ChunkRef& chunk, const char* data, size_t len);
  void on_end(int status);
  void on_write_done(int status);
  void finish_message();
  void fail(GatewayError&& error);
  bool response_started() const { return head_done_; }

  static const http_parser_settings& settings();
  void fail_soon(GatewayError&& error);
  static int on_header_field(http_parser* p, const char* at, size_t len);
  static int on_header_value(http_parser* p, const char* at, size_t len);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, size_t len);
  static int on_message_complete(http_parser* p);

  Instance& owner_;
  HandlePtr<Tcp> tcp_;
  bool connected_ = false;
  bool closing_ = false;
  uint64_t idle_since_ms_ = 0;  // 0: never used

  ResponseSink* sink_ = nullptr;
  BodyFraming framing_ = BodyFraming::kNone;
  bool request_done_ = false;
  bool head_request_ = false;
  bool paused_by_sink_ = false;

  http_parser parser_{};
  std::string field_;
  std::string value_;
  bool in_value_ = false;
  HeaderList headers_;
  bool head_done_ = false;
  bool interim_ = false;        // a 1xx response is being skipped
  bool message_done_ = false;
  bool keep_alive_ = false;
  bool acks_at_once_ = false;  // the instance answers in pieces: no delayed ACKs
  const ChunkRef* current_chunk_ = nullptr;  // during on_read
  int connect_error_ = 0;
  HandlePtr<Timer> defer_;  // reports a failure found inside begin()
};

}  // namespace fc
