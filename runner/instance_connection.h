// One HTTP/1.1 keep-alive connection from the runner to an instance, carrying
// one request at a time.  It writes the request head and body bytes as they
// come (chunked when the length is unknown) and parses the response with
// http_parser, handing head, body slices and end to its ResponseSink without
// buffering.  Instances pool these; a connection is reused only when the
// previous exchange ended cleanly on both sides.
//
// It also keeps the instance's time (DESIGN §4, "whose time is it"): the
// function's `timeout` runs from the moment the whole request has been handed
// to the instance until the response head arrives.  Waiting for the client's
// body, or for the client to read the response, never counts.
#pragma once

#include <http_parser.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "deferred_delete.h"
#include "http_head.h"
#include "instance.h"
#include "response_sink.h"
#include "uv_handle.h"

namespace fc {

class InstanceConnection final : public DeferredDeletable {
 public:
  // Sockets normally come from libuv; `fd` >= 0 is a socket made in the
  // instance's network namespace, kNoSocket one that could not be made.
  static constexpr int kOwnSocket = -1;
  static constexpr int kNoSocket = -2;
  InstanceConnection(Instance& owner, uv_loop_t* loop, int port, int fd = kOwnSocket);
  // Over a connection already made (the instance's readiness probe).
  InstanceConnection(Instance& owner, uv_loop_t* loop, HandlePtr<Tcp> connected);
  ~InstanceConnection() override;
  InstanceConnection(const InstanceConnection&) = delete;
  InstanceConnection& operator=(const InstanceConnection&) = delete;

  // Starts a request: `head` is the whole HTTP head (http_head.h).  Writes
  // may be issued while the TCP connection is still being established.
  // `response_timeout_ms` (0: none) starts once end_body() was called and
  // stops at the response head; when it passes, the sink gets 504
  // FunctionTimeout and the instance hears Outcome::kTimedOut.
  // `upgrade`: the request asked to switch protocols; a 101 answer then
  // turns this connection into a tunnel (tunnelling()): every byte the
  // instance sends is response body, write_body() bytes go out unframed, the
  // second end_body() (the client's close) shuts our side down, and the
  // instance's close ends the response.  The slot stays taken meanwhile; no
  // timeout applies to an open tunnel.
  void begin(ResponseSink& sink, std::string head, BodyFraming framing, bool head_request,
             uint64_t response_timeout_ms, bool upgrade = false);
  // The same with the head already in a write request (WriteReq::take()).
  void begin(ResponseSink& sink, std::unique_ptr<WriteReq> head, BodyFraming framing, bool head_request,
             uint64_t response_timeout_ms, bool upgrade = false);
  // Body bytes, referenced (not copied) and held until written.
  void write_body(const ChunkRef& chunk, const char* data, size_t len);
  void end_body();
  // The sink goes away and the instance is done with this request: close now
  // (a failed start, preStop past its timeout, a bad response).
  void abandon();
  // The sink goes away (the client left) but the instance may still be
  // working on the request: the slot stays taken until the instance has
  // finished with it.  The rest of the response is read and dropped; a
  // request body that will not come is ended by shutting down our side, so
  // the app reads EOF.  Bounded by `limit_ms` once the response head came
  // (or the body was cut); before that, the response timeout still applies.
  void discard_rest(uint64_t limit_ms);

  size_t write_queue_size() const;
  void pause_reading();
  void resume_reading();

  // The instance process is gone: a request in flight fails with `why`.
  void instance_gone(const std::string& why);

  // A keep-alive connection idle longer than this is not reused: servers
  // close idle connections (gunicorn after 2 s, Node after 5 s), and a request
  // racing that close would look like a failure.
  static constexpr uint64_t kMaxIdleMs = 1000;
  // A connection that ends early waits this long for the process exit
  // before it counts as a connection failure: a killed process closes its
  // sockets a moment before the runner hears of the exit, and then the
  // request failed because the instance crashed.
  static constexpr uint64_t kExitVerdictMs = 150;
  bool stale(uint64_t now_ms) const { return idle_since_ms_ != 0 && now_ms - idle_since_ms_ > kMaxIdleMs; }

  bool busy() const { return sink_ != nullptr || discarding_; }
  bool tunnelling() const { return tunnel_; }
  const ResponseSink* sink() const { return sink_; }
  bool closing() const { return closing_; }
  void close();

 private:
  void on_connected(int status);
  void on_read(const ChunkRef& chunk, const char* data, size_t len);
  void on_end(int status);
  void on_write_done(int status);
  void on_broken(std::string why);
  void on_response_timeout();
  void finish_message();
  // The request leaves this connection: the instance gets its slot back and
  // the outcome, then the sink (if any) the error.
  void release(Instance::Outcome outcome, bool reusable, const std::string& why);
  void fail(GatewayError&& error, Instance::Outcome outcome);
  void stop_timers();
  // Writes the request head held by begin() (with any body bytes joined to it).
  void flush_head();
  void append_body(WriteReq& req, const ChunkRef& chunk, const char* data, size_t len) const;

  // The common response head read without http_parser
  // (parse_simple_response_head); false when http_parser must take this
  // response, from its first byte.
  bool read_simple_head(const ChunkRef& chunk, const char* data, size_t len);
  // Body bytes of a response whose head read_simple_head() took.
  void read_simple_body(const ChunkRef& chunk, const char* data, size_t len);
  // The head is complete and kept_headers_ holds what the sink gets.
  void deliver_head(int status);

  static const http_parser_settings& settings();
  void fail_soon(GatewayError&& error, Instance::Outcome outcome);
  static int on_header_field(http_parser* p, const char* at, size_t len);
  static int on_header_value(http_parser* p, const char* at, size_t len);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, size_t len);
  static int on_message_complete(http_parser* p);

  Instance& owner_;
  uv_loop_t* loop_;
  HandlePtr<Tcp> tcp_;
  bool connected_ = false;
  bool closing_ = false;
  uint64_t idle_since_ms_ = 0;  // 0: never used

  ResponseSink* sink_ = nullptr;
  bool discarding_ = false;  // the sink left; the instance finishes the request
  BodyFraming framing_ = BodyFraming::kNone;
  bool request_done_ = false;
  bool head_request_ = false;
  bool paused_by_sink_ = false;
  uint64_t response_timeout_ms_ = 0;
  uint64_t discard_limit_ms_ = 0;

  http_parser parser_{};
  // The response head's header names and values as slices: into the read
  // chunk being parsed, or, once a head spans reads, into spill_ (the
  // chunk's bytes are copied there at the end of on_read).  Nothing is
  // allocated per header until the kept ones become the sink's HeaderList.
  struct HeadPiece {
    const char* at = nullptr;  // in the current chunk, when !owned
    uint32_t offset = 0;       // in spill_, when owned
    uint32_t len = 0;
    bool owned = false;
  };
  struct HeaderSlice {
    HeadPiece name;
    HeadPiece value;
    bool in_value = false;
  };
  void extend(HeadPiece& piece, const char* at, size_t len);
  std::string_view view(const HeadPiece& piece) const;
  void spill_head();
  void reset_head();
  // spill_ is kept between responses up to this capacity (a head that spans
  // reads is rare; a big one should not stay with the connection).
  static constexpr size_t kKeptSpillBytes = 4096;
  std::vector<HeaderSlice> slices_;
  HeaderViews kept_headers_;  // the sink's view of the head: kept for its capacity
  std::string spill_;
  bool head_done_ = false;
  bool interim_ = false;        // a 1xx response is being skipped
  bool upgrade_requested_ = false;
  bool tunnel_ = false;         // switched protocols: bytes pass both ways as they are
  bool message_done_ = false;
  bool parser_fed_ = false;          // http_parser has bytes of this response
  bool simple_ = false;              // read_simple_head() took this response
  uint64_t simple_body_left_ = 0;    // its Content-Length bytes still to come
  bool keep_alive_ = false;
  bool acks_at_once_ = false;  // the instance answers in pieces: no delayed ACKs
  const ChunkRef* current_chunk_ = nullptr;  // during on_read
  int connect_error_ = 0;
  std::unique_ptr<WriteReq> held_head_;  // the request head, until its first body bytes
  HandlePtr<Timer> defer_;             // reports a failure found inside begin()
  HandlePtr<Timer> head_timer_;        // sends a held head whose body did not follow
  HandlePtr<Timer> response_timer_;    // the function's timeout
  HandlePtr<Timer> discard_timer_;     // bounds discard_rest()
  HandlePtr<Timer> verdict_timer_;     // kExitVerdictMs after an early end
};

}  // namespace fc
