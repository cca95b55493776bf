// One connection from nginx: reads frames with fc_parser, turns a REQUEST
// into an Exchange for its function, feeds it the DATA frames, and writes
// the frames the exchange produces.  One exchange at a time; after both
// sides saw END_STREAM it waits for the next REQUEST (nginx keepalive).
// A malformed stream closes this connection only, with one log line.
#pragma once

#include <memory>
#include <string>

#include "fc_proto.h"
#include "frames.h"
#include "uv_handle.h"

namespace fc {

class Exchange;
class Listener;
class Runner;

class ClientConnection {
 public:
  ClientConnection(Runner& runner, Listener& listener, HandlePtr<Stream> stream, uint64_t serial,
                   uint64_t frame_timeout_ms);
  ~ClientConnection();
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  void start();
  // Closes the connection (an exchange in flight is aborted); the listener
  // frees this object from the stream's close callback.
  void close(const std::string& why);
  // Shutdown: close now if between requests, else after the current one.
  void close_when_idle();
  // Writes what is pending, then closes.
  void finish_and_close(const std::string& why);
  bool idle() const { return state_ == State::kAwaitRequest && !exchange_; }

  // For the listener's choice of a connection to shed when the runner runs
  // out of descriptors: lower goes first, then the smaller eviction_age().
  // kHalfFirstFrame: a first frame begun and not finished (oldest first);
  // kIdleServed: a served one idle between requests, nothing unread (idle
  // longest first: nginx reuses its most recent).  Never shed: a connection
  // with a request, one answering 503, and a fresh one that sent nothing yet
  // (nginx writes its REQUEST right after connecting: shedding it would fail
  // that request with nginx's own 502).
  static constexpr int kHalfFirstFrame = 0;
  static constexpr int kIdleServed = 1;
  static constexpr int kNotEvictable = 3;
  int eviction_rank() const;
  // Checked on the chosen one only (a system call).
  bool has_unread_bytes() const;
  uint64_t eviction_age() const { return frames_ == 0 ? accepted_ms_ : idle_since_ms_; }
  uint64_t serial() const { return serial_; }
  // Whether this connection holds one of the listener's served slots, taken
  // at its first REQUEST (Listener::take_served_slot).  The listener gives it
  // back when the connection closes, or when it sheds it (at once: a shed
  // connection is idle, it holds no instance connection).
  bool holds_served_slot() const { return served_slot_; }
  void give_back_served_slot() { served_slot_ = false; }

  // For the exchange.  Frames are collected and written once per loop
  // iteration (RESPONSE + DATA + END_STREAM of a small response: one writev).
  void send_frame(std::string frame);
  // A frame encoded in place by `encode(buffer)` (which appends, or returns
  // false leaving it as it was); returns what encode said.
  template <class Encode>
  bool send_encoded(Encode&& encode) {
    if (closing_) return true;
    return out().copy_with(std::forward<Encode>(encode));
  }
  // A finished exchange's head, decoded into again (its strings keep their
  // buffers: no allocation per REQUEST once warm).
  void recycle_head(RequestHead&& head) { spare_head_ = std::move(head); }
  // DATA frames for one body slice (split at FC_MAX_FRAME_PAYLOAD), the
  // slice referenced, not copied.
  void send_data(const ChunkRef& chunk, const char* data, size_t len);
  void send_end();
  size_t write_queue_size() const;
  void resume_request_body();
  // The exchange's instance switched protocols (101): the DATA frames that
  // follow the request body carry the client's tunnel bytes, and their
  // END_STREAM says the client closed (docs/protocol.md).
  void start_tunnel();
  void on_exchange_finished();

 private:
  enum class State { kAwaitRequest, kRequestMeta, kRequestBody, kRequestDone };

  void on_read(const ChunkRef& chunk, const char* data, size_t len);
  void on_end(int status);
  void on_write_done(int status);
  WriteReq& out();
  void flush();
  void parse(const ChunkRef& chunk, const char* data, size_t len);
  void resume_parsing();
  void protocol_error(const std::string& why);
  void handle_request(bool end_stream);
  void request_ended();
  void update_reading();
  bool mid_frame() const { return parser_.header_have > 0 || parser_.in_payload; }
  void watch_frame_time();

  static const fc_parser_callbacks_t& callbacks();
  static int on_header(fc_parser_t* p, const fc_frame_header_t* hdr);
  static int on_payload(fc_parser_t* p, const uint8_t* data, size_t len);
  static int on_frame_end(fc_parser_t* p);

  Runner& runner_;
  Listener& listener_;
  HandlePtr<Stream> stream_;
  std::string name_;  // "conn#N" for logs
  uint64_t serial_;
  uint64_t frame_timeout_ms_;
  uint64_t frames_ = 0;  // complete frames received
  uint64_t accepted_ms_ = 0;    // uv_now at accept
  uint64_t idle_since_ms_ = 0;  // uv_now when the last exchange ended
  bool served_slot_ = false;
  // Its first REQUEST found no served slot: each request on it is answered
  // 503 RunnerUnavailable, then it closes.
  bool answer_unavailable_ = false;
  uint64_t frames_at_arm_ = 0;
  HandlePtr<Timer> frame_timer_;
  State state_ = State::kAwaitRequest;
  fc_parser_t parser_{};
  fc_frame_header_t frame_{};
  std::string meta_;  // a REQUEST payload being collected
  RequestHead spare_head_;  // decoded into; moved into the exchange
  std::string_view meta_in_chunk_;  // a REQUEST payload that came whole, in the read chunk
  std::unique_ptr<Exchange> exchange_;
  std::string draining_request_id_;  // a request whose body is dropped

  const ChunkRef* current_chunk_ = nullptr;  // during parse()
  // Bytes read past the end of a request while its response is still
  // running (the next request), parsed once the exchange has finished.
  ChunkRef stash_chunk_;
  const char* stash_data_ = nullptr;
  size_t stash_len_ = 0;
  bool parser_paused_ = false;
  bool body_paused_ = false;
  bool close_when_idle_ = false;
  // kOpening: the 101 came before the body's END_STREAM; kOpen: DATA frames
  // are the tunnel's.
  enum class Tunnel { kNone, kOpening, kOpen };
  Tunnel tunnel_ = Tunnel::kNone;
  bool closing_ = false;
  bool shutting_down_ = false;
  std::string error_;  // set by a parser callback that rejects the stream
  HandlePtr<Timer> resume_timer_;
  std::unique_ptr<WriteReq> out_;  // frames not written yet
  HandlePtr<Immediate> flush_;
};

}  // namespace fc
