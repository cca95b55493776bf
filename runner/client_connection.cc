#include "client_connection.h"

#include <sys/socket.h>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "exchange.h"
#include "config.h"
#include "fc_errors.h"
#include "function.h"
#include "listener.h"
#include "log.h"
#include "response_sink.h"
#include "runner.h"

namespace fc {

const fc_parser_callbacks_t& ClientConnection::callbacks() {
  static const fc_parser_callbacks_t cb = {&ClientConnection::on_header, &ClientConnection::on_payload,
                                           &ClientConnection::on_frame_end};
  return cb;
}

ClientConnection::ClientConnection(Runner& runner, Listener& listener, HandlePtr<Stream> stream,
                                   uint64_t serial, uint64_t frame_timeout_ms)
    : runner_(runner),
      listener_(listener),
      stream_(std::move(stream)),
      name_(fmt::format("conn#{}", serial)),
      serial_(serial),
      frame_timeout_ms_(frame_timeout_ms) {
  accepted_ms_ = uv_now(stream_->stream()->loop);
  fc_parser_init(&parser_, this);
}

ClientConnection::~ClientConnection() {
  // The exchange first: it may still write through stream_.
  exchange_.reset();
}

void ClientConnection::start() {
  stream_->on_write_done([this](int status) { on_write_done(status); });
  int rc = stream_->read_start([this](const ChunkRef& c, const char* d, size_t n) { on_read(c, d, n); },
                               [this](int status) { on_end(status); });
  if (rc != 0) {
    close(fmt::format("cannot read: {}", uv_strerror(rc)));
    return;
  }
  watch_frame_time();  // the first frame, too, must come within frameTimeout
}

void ClientConnection::close(const std::string& why) {
  if (closing_) return;
  closing_ = true;
  spdlog::debug("[{}] closed: {}", name_, why);
  if (exchange_) exchange_->on_client_gone();
  runner_.deleter().defer(std::move(exchange_));
  resume_timer_.reset();
  frame_timer_.reset();
  flush_.reset();
  out_.reset();
  Listener* listener = &listener_;
  stream_.release()->close([listener, this] { listener->on_connection_closed(this); });
}

void ClientConnection::close_when_idle() {
  close_when_idle_ = true;
  if (idle() && !parser_paused_) finish_and_close("the runner is shutting down");
}

void ClientConnection::finish_and_close(const std::string& why) {
  // The last frames must reach nginx: write them, let libuv drain its queue
  // (uv_shutdown), then close.
  flush();
  if (closing_ || shutting_down_) return;
  shutting_down_ = true;
  stream_->read_stop();
  int rc = stream_->shutdown([this, why](int) { close(why); });
  if (rc != 0) close(why);
}

// ---- reading ------------------------------------------------------------------------

void ClientConnection::on_read(const ChunkRef& chunk, const char* data, size_t len) {
  if (closing_) return;
  if (parser_paused_) {
    // The next request, while the current response is still running: keep it
    // (the chunk is held, nothing is copied) and stop reading until then.
    if (stash_len_ == 0) {
      stash_chunk_ = chunk;
      stash_data_ = data;
      stash_len_ = len;
    } else {
      auto joined = std::make_shared<Chunk>(stash_len_ + len);
      std::memcpy(joined->data.get(), stash_data_, stash_len_);
      std::memcpy(joined->data.get() + stash_len_, data, len);
      joined->used = stash_len_ + len;
      stash_chunk_ = joined;
      stash_data_ = joined->data.get();
      stash_len_ += len;
    }
    update_reading();
    return;
  }
  parse(chunk, data, len);
}

void ClientConnection::parse(const ChunkRef& chunk, const char* data, size_t len) {
  current_chunk_ = &chunk;
  size_t consumed = fc_parser_execute(&parser_, &callbacks(), reinterpret_cast<const uint8_t*>(data), len);
  current_chunk_ = nullptr;
  if (closing_) return;
  if (!error_.empty()) {
    protocol_error(error_);
    return;
  }
  if (parser_.error != 0) {
    protocol_error(fmt::format("malformed frame stream: {}", fc_strerror(parser_.error)));
    return;
  }
  if (parser_paused_ && consumed < len) {
    stash_chunk_ = chunk;
    stash_data_ = data + consumed;
    stash_len_ = len - consumed;
  }
  if (exchange_ && !parser_paused_ && exchange_->request_backlog() > kWriteHighWater) body_paused_ = true;
  update_reading();
  watch_frame_time();
  if (frames_ == 0) listener_.on_connection_evictable();  // a first frame begun: may be shed
}

int ClientConnection::eviction_rank() const {
  if (exchange_ || closing_ || shutting_down_) return kNotEvictable;
  if (frames_ == 0) return mid_frame() ? kHalfFirstFrame : kNotEvictable;
  if (!served_slot_ || !idle() || mid_frame() || parser_paused_ || stash_len_ > 0) return kNotEvictable;
  return kIdleServed;
}

bool ClientConnection::has_unread_bytes() const {
  // nginx may have just taken an idle connection from its pool and written
  // a request the loop has not read yet: then it is not idle.
  uv_os_fd_t fd = -1;
  char byte;
  return uv_fileno(reinterpret_cast<const uv_handle_t*>(stream_->stream()), &fd) == 0 &&
         recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

// A frame that was begun must be finished within frameTimeout: a peer that
// sends part of a header and stops would otherwise hold a descriptor forever.
// Time the runner itself stops reading (backpressure) does not count.
void ClientConnection::watch_frame_time() {
  // A connection that has sent no frame yet is timed from its accept.
  if ((!mid_frame() && frames_ > 0) || frame_timeout_ms_ == 0) {
    if (frame_timer_) frame_timer_->stop();
    return;
  }
  if (!frame_timer_) frame_timer_ = Timer::create(stream_->stream()->loop);
  // Armed for this frame already; a frame completed since means a new one.
  if (frame_timer_->active() && frames_at_arm_ == frames_) return;
  frames_at_arm_ = frames_;
  frame_timer_->start(frame_timeout_ms_, [this] {
    if (body_paused_ || parser_paused_) {
      frame_timer_->stop();
      watch_frame_time();
      return;
    }
    if (frames_ == 0 && !mid_frame()) {
      spdlog::warn("[{}] closing the connection: no frame came within {} ms of connecting (frameTimeout)", name_,
                   frame_timeout_ms_);
    } else {
      spdlog::warn("[{}] closing the connection: a frame was begun and not completed within {} ms (frameTimeout)",
                   name_, frame_timeout_ms_);
    }
    runner_.metrics().frame_errors++;
    close("frameTimeout");
  });
}

void ClientConnection::update_reading() {
  if (closing_ || shutting_down_) return;
  bool want = !body_paused_ && !(parser_paused_ && stash_len_ > 0);
  if (want) {
    stream_->read_resume();
  } else {
    stream_->read_stop();
  }
}

void ClientConnection::resume_request_body() {
  if (!body_paused_ || closing_) return;
  if (exchange_ && exchange_->request_backlog() > kWriteHighWater) return;
  body_paused_ = false;
  update_reading();
}

void ClientConnection::on_end(int status) {
  if (status == UV_EOF) {
    if (exchange_ || state_ != State::kAwaitRequest) {
      spdlog::info("[{}] nginx closed the connection in the middle of a request", name_);
    }
    close("closed by the peer");
  } else {
    spdlog::info("[{}] read error: {}", name_, uv_strerror(status));
    close(uv_strerror(status));
  }
}

void ClientConnection::protocol_error(const std::string& why) {
  runner_.metrics().frame_errors++;
  spdlog::warn("[{}] closing the connection: {}", name_, why);
  close(why);
}

// ---- frames -------------------------------------------------------------------------

int ClientConnection::on_header(fc_parser_t* p, const fc_frame_header_t* hdr) {
  auto* self = static_cast<ClientConnection*>(p->data);
  self->frame_ = *hdr;
  switch (self->state_) {
    case State::kAwaitRequest:
      if (hdr->type != FC_FRAME_REQUEST) {
        self->error_ = fmt::format("expected a REQUEST frame, got type {}", hdr->type);
        return 1;
      }
      self->state_ = State::kRequestMeta;
      self->meta_.clear();
      self->meta_in_chunk_ = {};
      return 0;
    case State::kRequestBody:
      if (hdr->type != FC_FRAME_DATA) {
        self->error_ = fmt::format("expected a DATA frame of the request body, got type {}", hdr->type);
        return 1;
      }
      return 0;
    case State::kRequestMeta:
    case State::kRequestDone:
      break;
  }
  self->error_ = "frame out of order";
  return 1;
}

int ClientConnection::on_payload(fc_parser_t* p, const uint8_t* data, size_t len) {
  auto* self = static_cast<ClientConnection*>(p->data);
  const char* bytes = reinterpret_cast<const char*>(data);
  if (self->state_ == State::kRequestMeta) {
    if (self->meta_.empty() && self->meta_in_chunk_.empty() && len == self->frame_.length) {
      // The whole payload in this read: decoded where it is (the chunk
      // outlives this parse), not copied.
      self->meta_in_chunk_ = std::string_view(bytes, len);
    } else {
      if (!self->meta_in_chunk_.empty()) {
        self->meta_.append(self->meta_in_chunk_);
        self->meta_in_chunk_ = {};
      }
      if (self->meta_.empty()) self->meta_.reserve(self->frame_.length);
      self->meta_.append(bytes, len);
    }
  } else if (self->state_ == State::kRequestBody && self->exchange_ && self->current_chunk_) {
    self->exchange_->on_request_body(*self->current_chunk_, bytes, len);
  }
  // else: the body of a request that already has its answer: dropped.
  return self->closing_ ? 1 : 0;
}

int ClientConnection::on_frame_end(fc_parser_t* p) {
  auto* self = static_cast<ClientConnection*>(p->data);
  self->frames_++;
  bool end_stream = (self->frame_.flags & FC_FLAG_END_STREAM) != 0;
  if (self->state_ == State::kRequestMeta) {
    self->handle_request(end_stream);
  } else if (self->state_ == State::kRequestBody && end_stream) {
    self->request_ended();
  }
  if (self->closing_ || !self->error_.empty()) return 1;
  // Stop at the end of a request whose response still runs: what follows is
  // the next request, for after this one.
  return self->parser_paused_ ? 1 : 0;
}

void ClientConnection::handle_request(bool end_stream) {
  RequestHead& head = spare_head_;
  std::string_view meta = meta_in_chunk_.empty() ? std::string_view(meta_) : meta_in_chunk_;
  meta_in_chunk_ = {};
  int rc = decode_request(reinterpret_cast<const uint8_t*>(meta.data()), meta.size(), head);
  if (meta_.capacity() > 4096) {
    std::string().swap(meta_);
  } else {
    meta_.clear();
  }
  if (rc != FC_OK) {
    error_ = fmt::format("malformed REQUEST frame: {}", fc_strerror(rc));
    return;
  }
  state_ = State::kRequestBody;

  if (!served_slot_ && !answer_unavailable_ && !runner_.shutting_down()) {
    // Whether this connection is served is decided at its first REQUEST, not
    // at accept: until then it holds one descriptor and may be a peer that
    // never completes a frame, and a flood of those must not take the slots
    // (two descriptors each) that nginx's requests need.
    served_slot_ = listener_.take_served_slot();
    answer_unavailable_ = !served_slot_;
  }
  bool valid_name = is_valid_function_name(head.function);
  Function* function =
      runner_.shutting_down() || !valid_name || answer_unavailable_ ? nullptr : runner_.find(head.function);
  if (function == nullptr) {
    GatewayError error;
    if (answer_unavailable_ && !runner_.shutting_down()) {
      const DescriptorBudget& budget = listener_.budget();
      error = {503, FC_ERR_RUNNER_UNAVAILABLE,
               fmt::format("the runner is out of file descriptors: {} runner connections are served at its "
                           "open-file limit {}",
                           budget.served, budget.limit)};
      close_when_idle_ = true;
      warn_out_of_descriptors(stream_->stream()->loop, "a runner connection past the served ones");
      send_frame(error_frame(error));
      if (end_stream) request_ended();
      return;
    }
    if (runner_.shutting_down()) {
      error = {503, FC_ERR_RUNNER_UNAVAILABLE, "the runner is shutting down"};
      close_when_idle_ = true;
    } else if (!valid_name) {
      runner_.metrics().function_not_found++;
      error = {404, FC_ERR_FUNCTION_NOT_FOUND,
               fmt::format("function '{}' is not defined: not a valid function name", printable(head.function))};
    } else {
      runner_.metrics().function_not_found++;
      error = {404, FC_ERR_FUNCTION_NOT_FOUND, fmt::format("function '{}' is not defined", head.function)};
    }
    spdlog::warn("[{}] RequestId: {}: {} {}: {}", name_,
                 head.request_id.empty() ? "-" : printable(head.request_id), error.status, error.code,
                 error.message);
    send_frame(error_frame(error));
    if (end_stream) request_ended();
    return;
  }
  exchange_ = std::make_unique<Exchange>(*this, *function, std::move(head), end_stream);
  function->submit(*exchange_);  // may answer at once (QueueFull)
  if (end_stream) request_ended();
}

void ClientConnection::request_ended() {
  if (exchange_) exchange_->on_request_end();
  if (exchange_ && tunnel_ == Tunnel::kOpening) {
    // The (empty) body ended after the 101: the tunnel's frames follow.
    tunnel_ = Tunnel::kOpen;
    return;
  }
  if (exchange_) {
    state_ = State::kRequestDone;
    parser_paused_ = true;
    return;
  }
  state_ = State::kAwaitRequest;
  idle_since_ms_ = uv_now(stream_->stream()->loop);
  if (close_when_idle_) {
    finish_and_close(answer_unavailable_ ? "answered 503: past the descriptor budget" : "the runner is shutting down");
    return;
  }
  listener_.on_connection_evictable();
}

void ClientConnection::start_tunnel() {
  if (!exchange_ || closing_) return;
  if (state_ != State::kRequestDone) {
    tunnel_ = Tunnel::kOpening;
    return;
  }
  // The parser stopped after the body's END_STREAM; what follows is the
  // tunnel's, for this exchange.
  tunnel_ = Tunnel::kOpen;
  state_ = State::kRequestBody;
  parser_paused_ = false;
  parser_.paused = 0;
  if (stash_len_ == 0) {
    update_reading();
    return;
  }
  // Inside the instance's callback: parse the stashed frames on the next tick.
  if (!resume_timer_) resume_timer_ = Timer::create(stream_->stream()->loop);
  resume_timer_->start(0, [this] { resume_parsing(); });
}

void ClientConnection::on_exchange_finished() {
  // Called by the exchange itself: it is freed after this loop iteration.
  runner_.deleter().defer(std::move(exchange_));
  tunnel_ = Tunnel::kNone;
  if (closing_) return;
  if (state_ != State::kRequestDone) {
    // The request body is still coming: it is read and dropped.
    body_paused_ = false;
    update_reading();
    return;
  }
  state_ = State::kAwaitRequest;
  idle_since_ms_ = uv_now(stream_->stream()->loop);
  if (close_when_idle_) {
    finish_and_close("the runner is shutting down");
    return;
  }
  listener_.on_connection_evictable();
  parser_paused_ = false;
  parser_.paused = 0;
  body_paused_ = false;
  if (stash_len_ == 0) {
    update_reading();
    return;
  }
  // Parse the next request on the next tick, outside the finishing exchange.
  if (!resume_timer_) resume_timer_ = Timer::create(stream_->stream()->loop);
  resume_timer_->start(0, [this] { resume_parsing(); });
}

void ClientConnection::resume_parsing() {
  if (closing_ || stash_len_ == 0) return;
  ChunkRef chunk = std::move(stash_chunk_);
  const char* data = stash_data_;
  size_t len = stash_len_;
  stash_chunk_.reset();
  stash_data_ = nullptr;
  stash_len_ = 0;
  parse(chunk, data, len);
}

// ---- writing ------------------------------------------------------------------------

WriteReq& ClientConnection::out() {
  if (!out_) {
    out_ = WriteReq::take();
    if (!flush_) flush_ = Immediate::create(stream_->stream()->loop);
    flush_->schedule([this] { flush(); });
  }
  return *out_;
}

void ClientConnection::flush() {
  if (!out_ || closing_) return;
  std::unique_ptr<WriteReq> req = std::move(out_);
  int rc = stream_->write(std::move(req));
  if (rc == 0 && exchange_ && write_queue_size() < kWriteHighWater) {
    // Written at once: no write callback will say so.
    exchange_->on_client_drained();
  }
  if (rc != 0) {
    // Not from here: the caller may be the exchange that close() destroys.
    std::string why = fmt::format("write failed: {}", uv_strerror(rc));
    if (!resume_timer_) resume_timer_ = Timer::create(stream_->stream()->loop);
    resume_timer_->start(0, [this, why] { close(why); });
  }
}

void ClientConnection::send_frame(std::string frame) {
  if (frame.empty() || closing_) return;
  out().copy(std::move(frame));
}

void ClientConnection::send_data(const ChunkRef& chunk, const char* data, size_t len) {
  if (len == 0 || closing_) return;
  WriteReq& req = out();
  while (len > 0) {
    size_t n = std::min<size_t>(len, FC_MAX_FRAME_PAYLOAD);
    req.copy(frame_header(FC_FRAME_DATA, 0, static_cast<uint32_t>(n)));
    req.ref(data, n);
    data += n;
    len -= n;
  }
  req.hold(chunk);
}

void ClientConnection::send_end() {
  if (closing_) return;
  out().copy(frame_header(FC_FRAME_DATA, FC_FLAG_END_STREAM, 0));
}

size_t ClientConnection::write_queue_size() const {
  if (!stream_ || closing_) return 0;
  return stream_->write_queue_size() + (out_ ? out_->size() : 0);
}

void ClientConnection::on_write_done(int status) {
  if (status != 0) {
    if (status != UV_ECANCELED) close(fmt::format("write failed: {}", uv_strerror(status)));
    return;
  }
  if (exchange_ && write_queue_size() < kWriteHighWater) exchange_->on_client_drained();
}

}  // namespace fc
