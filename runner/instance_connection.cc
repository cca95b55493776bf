#include "instance_connection.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "fc_errors.h"
#include "listener.h"

namespace fc {

namespace {

GatewayError crashed(std::string message) {
  return GatewayError{502, FC_ERR_INSTANCE_CRASHED, std::move(message)};
}

void arm(HandlePtr<Timer>& timer, uv_loop_t* loop, uint64_t ms, std::function<void()> cb) {
  if (!timer) timer = Timer::create(loop);
  timer->start(ms, std::move(cb));
}

void disarm(HandlePtr<Timer>& timer) {
  if (timer) timer->stop();
}

}  // namespace

InstanceConnection::InstanceConnection(Instance& owner, uv_loop_t* loop, int port, int fd)
    : owner_(owner), loop_(loop), tcp_(Tcp::create(loop)) {
  if (fd == kNoSocket) {
    // errno is the failed socket()'s: out of descriptors is the runner's
    // shortage, anything else means the instance cannot be reached.
    connect_error_ = errno == EMFILE ? UV_EMFILE : errno == ENFILE ? UV_ENFILE : UV_ENETUNREACH;
    return;
  }
  if (fd >= 0 && (connect_error_ = tcp_->open(fd)) != 0) {
    ::close(fd);
    return;
  }
  tcp_->nodelay(true);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", port, &addr);
  tcp_->on_write_done([this](int status) { on_write_done(status); });
  int rc = tcp_->connect(reinterpret_cast<const sockaddr*>(&addr),
                         [this](int status) { on_connected(status); });
  // On failure on_connected is not coming; begin() reports it.
  if (rc != 0) connect_error_ = rc;
}

InstanceConnection::InstanceConnection(Instance& owner, uv_loop_t* loop, HandlePtr<Tcp> connected)
    : owner_(owner), loop_(loop), tcp_(std::move(connected)) {
  tcp_->nodelay(true);
  tcp_->on_write_done([this](int status) { on_write_done(status); });
  on_connected(0);
}

InstanceConnection::~InstanceConnection() = default;

void InstanceConnection::close() {
  stop_timers();
  held_head_.reset();
  if (!tcp_) return;
  closing_ = true;
  Instance* owner = &owner_;
  tcp_.release()->close([owner, this] { owner->on_connection_closed(this); });
}

void InstanceConnection::stop_timers() {
  disarm(head_timer_);
  disarm(response_timer_);
  disarm(discard_timer_);
  disarm(verdict_timer_);
}

void InstanceConnection::on_connected(int status) {
  if (status != 0) {
    std::string why = fmt::format("cannot connect to the instance: {}", uv_strerror(status));
    if (!busy()) {
      close();
    } else {
      fail(crashed(std::move(why)), Instance::Outcome::kRefused);
    }
    return;
  }
  connected_ = true;
  tcp_->read_start([this](const ChunkRef& c, const char* d, size_t n) { on_read(c, d, n); },
                   [this](int st) { on_end(st); });
  if (paused_by_sink_) tcp_->read_stop();
}

void InstanceConnection::begin(ResponseSink& sink, std::string head, BodyFraming framing, bool head_request,
                               uint64_t response_timeout_ms, bool upgrade) {
  auto req = WriteReq::take();
  req->copy(std::move(head));
  begin(sink, std::move(req), framing, head_request, response_timeout_ms, upgrade);
}

void InstanceConnection::begin(ResponseSink& sink, std::unique_ptr<WriteReq> head, BodyFraming framing,
                               bool head_request, uint64_t response_timeout_ms, bool upgrade) {
  sink_ = &sink;
  upgrade_requested_ = upgrade;
  tunnel_ = false;
  discarding_ = false;
  framing_ = framing;
  head_request_ = head_request;
  request_done_ = false;
  paused_by_sink_ = false;
  response_timeout_ms_ = response_timeout_ms;
  if (connected_ && tcp_) tcp_->read_resume();
  http_parser_init(&parser_, HTTP_RESPONSE);
  parser_.data = this;
  reset_head();
  head_done_ = false;
  interim_ = false;
  message_done_ = false;
  keep_alive_ = false;
  parser_fed_ = false;
  simple_ = false;
  simple_body_left_ = 0;
  int rc = connect_error_;
  if (rc == UV_EMFILE || rc == UV_ENFILE) {
    // The runner's own descriptors ran out, not the instance's: the request
    // fails alone and nothing counts against the instance.
    warn_out_of_descriptors(loop_, "a connection to an instance");
    fail_soon(GatewayError{503, FC_ERR_RUNNER_UNAVAILABLE,
                           fmt::format("the runner is out of file descriptors: no connection to the instance: {}",
                                       uv_strerror(rc))},
              Instance::Outcome::kAbandoned);
    return;
  }
  if (rc != 0) {
    fail_soon(crashed(fmt::format("cannot connect to the instance: {}", uv_strerror(rc))),
              Instance::Outcome::kRefused);
    return;
  }
  if (closing_ || !tcp_) {
    fail_soon(crashed(fmt::format("cannot send to the instance: {}", uv_strerror(UV_ECONNRESET))),
              Instance::Outcome::kFailed);
    return;
  }
  held_head_ = std::move(head);
  if (framing == BodyFraming::kNone) {
    flush_head();
    return;
  }
  // A body follows, usually within this same callback (nginx sends the
  // REQUEST frame and the first DATA together): the head waits for it, so
  // head and body leave in one write (one system call here, one read in the
  // instance).  The timer sends the head alone if no body comes this tick.
  arm(head_timer_, loop_, 0, [this] { flush_head(); });
}

void InstanceConnection::flush_head() {
  if (!held_head_) return;
  disarm(head_timer_);
  int rc = UV_ECONNRESET;
  if (tcp_ && !closing_) {
    rc = tcp_->write(std::move(held_head_));
    if (rc == 0 && acks_at_once_) tcp_->quickack();
  }
  held_head_.reset();
  if (rc != 0) {
    fail_soon(crashed(fmt::format("cannot send to the instance: {}", uv_strerror(rc))), Instance::Outcome::kFailed);
  }
}

void InstanceConnection::fail_soon(GatewayError&& error, Instance::Outcome outcome) {
  // The caller is still inside Exchange::start(); fail on the next tick.
  arm(defer_, loop_, 0, [this, error = std::move(error), outcome]() mutable {
    if (busy()) fail(std::move(error), outcome);  // also when the client left meanwhile
  });
}

void InstanceConnection::write_body(const ChunkRef& chunk, const char* data, size_t len) {
  if (len == 0 || !tcp_ || tcp_->closing()) return;
  if (held_head_) {
    // The first body bytes join the head in its write.
    append_body(*held_head_, chunk, data, len);
    flush_head();
    return;
  }
  auto req = WriteReq::take();
  append_body(*req, chunk, data, len);
  tcp_->write(std::move(req));  // a failure surfaces as a write/read error
}

void InstanceConnection::append_body(WriteReq& req, const ChunkRef& chunk, const char* data, size_t len) const {
  if (framing_ == BodyFraming::kChunked) req.copy(fmt::format("{:x}\r\n", len));
  req.ref(data, len);
  req.hold(chunk);
  if (framing_ == BodyFraming::kChunked) req.copy(std::string_view("\r\n"));
}

void InstanceConnection::end_body() {
  if (tunnel_ && request_done_) {
    // The client closed its side of the tunnel: so do we, and the app reads
    // EOF; its close then ends the response.
    if (tcp_ && !tcp_->closing()) tcp_->shutdown([](int) {});
    return;
  }
  request_done_ = true;
  if (framing_ == BodyFraming::kChunked && tcp_ && !tcp_->closing()) {
    if (held_head_) {
      held_head_->copy(std::string_view("0\r\n\r\n"));  // an empty chunked body: one write
    } else {
      auto req = WriteReq::take();
      req->copy(std::string_view("0\r\n\r\n"));
      tcp_->write(std::move(req));
    }
  }
  flush_head();
  // From here on the time is the instance's: the whole request is its.
  if (response_timeout_ms_ > 0 && busy() && !head_done_) {
    arm(response_timer_, loop_, response_timeout_ms_, [this] { on_response_timeout(); });
  }
}

void InstanceConnection::on_response_timeout() {
  std::string why = fmt::format("the function did not respond within {:g} s",
                                static_cast<double>(response_timeout_ms_) / 1000.0);
  if (discarding_) {
    close();
    release(Instance::Outcome::kTimedOut, false, why);
    return;
  }
  fail(GatewayError{504, FC_ERR_FUNCTION_TIMEOUT, std::move(why)}, Instance::Outcome::kTimedOut);
}

void InstanceConnection::abandon() {
  if (!busy()) return;
  spdlog::debug("[{}] connection abandoned mid-exchange", owner_.tag());
  sink_ = nullptr;
  discarding_ = false;
  close();
  release(Instance::Outcome::kAbandoned, false, "abandoned");
}

void InstanceConnection::discard_rest(uint64_t limit_ms) {
  if (!sink_) return;
  if (tunnel_) {
    // Nobody reads a tunnel whose client left: the instance's slot is free.
    abandon();
    return;
  }
  if (!tcp_ || closing_ || connect_error_ != 0 || (verdict_timer_ && verdict_timer_->active()) ||
      (!connected_ && !request_done_)) {
    // Nothing the instance could still be working on through this connection.
    abandon();
    return;
  }
  spdlog::debug("[{}] the client left: the rest of the exchange is read and dropped", owner_.tag());
  sink_ = nullptr;
  discarding_ = true;
  discard_limit_ms_ = limit_ms;
  auto bound = [this] {
    spdlog::debug("[{}] an abandoned request still ran after {} ms: connection closed", owner_.tag(),
                  discard_limit_ms_);
    close();
    release(Instance::Outcome::kAbandoned, false, "abandoned");
  };
  if (!request_done_) {
    // The body will never be complete: end our side so the app reads EOF
    // and finishes (typically with an error it writes to nobody).
    disarm(response_timer_);
    // A head still held never reaches the app, which then just reads EOF.
    disarm(head_timer_);
    held_head_.reset();
    tcp_->shutdown([](int) {});
    arm(discard_timer_, loop_, discard_limit_ms_, bound);
  } else if (head_done_) {
    arm(discard_timer_, loop_, discard_limit_ms_, bound);
  }
  // else: the response timeout still runs, and arms the bound at the head.
  if (paused_by_sink_) {
    paused_by_sink_ = false;
    if (connected_) tcp_->read_resume();
  }
}

size_t InstanceConnection::write_queue_size() const {
  return tcp_ && !tcp_->closing() ? tcp_->write_queue_size() : 0;
}

void InstanceConnection::pause_reading() {
  if (discarding_) return;
  paused_by_sink_ = true;
  if (tcp_) tcp_->read_stop();
}

void InstanceConnection::resume_reading() {
  if (!paused_by_sink_) return;
  paused_by_sink_ = false;
  if (tcp_ && connected_) tcp_->read_resume();
}

void InstanceConnection::on_write_done(int status) {
  if (status != 0 && status != UV_ECANCELED) {
    if (busy() && !message_done_) on_broken(fmt::format("write to the instance failed: {}", uv_strerror(status)));
    return;
  }
  if (sink_ && write_queue_size() < kWriteHighWater) sink_->on_request_drained();
}

void InstanceConnection::on_read(const ChunkRef& chunk, const char* data, size_t len) {
  if (!busy()) {
    // Bytes on an idle connection: the instance broke the protocol.  Its
    // slot was given back when the last response ended.
    spdlog::debug("[{}] {} unexpected bytes on an idle connection", owner_.tag(), len);
    close();
    return;
  }
  if (tunnel_) {
    if (sink_) sink_->on_response_body(chunk, data, len);
    return;
  }
  if (simple_) {
    read_simple_body(chunk, data, len);
    return;
  }
  if (!parser_fed_ && read_simple_head(chunk, data, len)) return;
  parser_fed_ = true;
  current_chunk_ = &chunk;
  size_t parsed = http_parser_execute(&parser_, &settings(), data, len);
  current_chunk_ = nullptr;
  if (!busy()) return;  // the sink failed or went away inside a callback
  if (!head_done_ && !slices_.empty()) spill_head();  // the chunk is not ours after this
  if (tunnel_) {
    // What follows the 101 head is the new protocol's.
    if (parsed < len && sink_) sink_->on_response_body(chunk, data + parsed, len - parsed);
    return;
  }
  if (head_done_ && !message_done_ && !acks_at_once_ && tcp_) {
    // The instance writes a response in pieces (e.g. Python's http.server:
    // head, then body, without TCP_NODELAY).  Its Nagle would wait for our
    // delayed ACK, ~40 ms per response on a reused connection, so from now
    // on this connection acknowledges at once.
    acks_at_once_ = true;
    tcp_->quickack();
  }
  if (message_done_) {
    bool extra = parsed < len;
    keep_alive_ = keep_alive_ && !extra && request_done_;
    finish_message();
    return;
  }
  if (HTTP_PARSER_ERRNO(&parser_) != HPE_OK) {
    auto err = static_cast<http_errno>(HTTP_PARSER_ERRNO(&parser_));
    std::string why = fmt::format("the instance sent an invalid HTTP response: {}", http_errno_description(err));
    if (discarding_) {
      close();
      release(Instance::Outcome::kFailed, false, why);
      return;
    }
    fail(GatewayError{502, FC_ERR_BAD_RESPONSE, std::move(why)}, Instance::Outcome::kFailed);
  }
}

void InstanceConnection::on_end(int status) {
  if (!busy()) {
    // An idle keep-alive connection closed by the instance.
    close();
    return;
  }
  if (tunnel_) {
    // The instance closed its side of the tunnel (or it broke): the
    // response ends, the connection is not reused.
    keep_alive_ = false;
    finish_message();
    return;
  }
  if (status == UV_EOF && head_done_ && !simple_) {
    // A body delimited by the end of the connection.
    http_parser_execute(&parser_, &settings(), nullptr, 0);
    if (message_done_) {
      keep_alive_ = false;
      finish_message();
      return;
    }
  }
  on_broken(status == UV_EOF ? std::string("the instance closed the connection before the response was complete")
                             : fmt::format("connection to the instance failed: {}", uv_strerror(status)));
}

void InstanceConnection::on_broken(std::string why) {
  if (discarding_) {
    // The app gave up on a request whose client had left: nothing to report.
    close();
    release(Instance::Outcome::kAbandoned, false, why);
    return;
  }
  if (!sink_ || (verdict_timer_ && verdict_timer_->active())) return;
  // Was it the process dying?  instance_gone() says so within moments; if
  // not, the app closed this one connection (one failed request).
  disarm(response_timer_);
  if (tcp_) tcp_->read_stop();
  arm(verdict_timer_, loop_, kExitVerdictMs, [this, why = std::move(why)] {
    fail(GatewayError{502, FC_ERR_BAD_RESPONSE, why + owner_.failure_detail()}, Instance::Outcome::kFailed);
  });
}

void InstanceConnection::instance_gone(const std::string& why) {
  if (discarding_) {
    close();
    release(Instance::Outcome::kAbandoned, false, why);
  } else if (sink_) {
    fail(crashed(why), Instance::Outcome::kAbandoned);
  } else {
    close();
  }
}

void InstanceConnection::finish_message() {
  ResponseSink* sink = sink_;
  sink_ = nullptr;
  discarding_ = false;
  stop_timers();
  bool reusable = keep_alive_ && !closing_;
  idle_since_ms_ = uv_now(loop_);
  // A pause for the sink's sake ends with its exchange: an idle connection
  // keeps reading, to notice the instance closing it.
  paused_by_sink_ = false;
  if (reusable && connected_) tcp_->read_resume();
  if (!reusable) close();
  // The slot is freed first (the next queued request may start on this very
  // connection), then the sink ends (END_STREAM to nginx, or an instance
  // becoming ready after its initializer).
  owner_.on_connection_released(*this, Instance::Outcome::kComplete, reusable, {});
  if (sink) sink->on_response_end();
}

void InstanceConnection::release(Instance::Outcome outcome, bool reusable, const std::string& why) {
  sink_ = nullptr;
  discarding_ = false;
  stop_timers();
  owner_.on_connection_released(*this, outcome, reusable, why);
}

void InstanceConnection::fail(GatewayError&& error, Instance::Outcome outcome) {
  ResponseSink* sink = sink_;
  bool was_busy = busy();
  close();
  if (!was_busy) return;
  release(outcome, false, error.message);
  if (sink) sink->on_response_failed(std::move(error));
}

// ---- http_parser callbacks ------------------------------------------------------

void InstanceConnection::reset_head() {
  slices_.clear();
  if (spill_.capacity() > kKeptSpillBytes) {
    std::string().swap(spill_);
  } else {
    spill_.clear();
  }
}

std::string_view InstanceConnection::view(const HeadPiece& piece) const {
  return piece.owned ? std::string_view(spill_.data() + piece.offset, piece.len) : std::string_view(piece.at, piece.len);
}

// http_parser hands a name or value in one piece unless it spans reads; the
// pieces of one read are contiguous in its chunk.
void InstanceConnection::extend(HeadPiece& piece, const char* at, size_t len) {
  if (piece.len == 0 && !piece.owned) {
    piece.at = at;
  } else if (piece.owned) {
    spill_.append(at, len);  // the last spilled piece: it ends spill_
  } else if (piece.at + piece.len != at) {
    // Not contiguous (not seen from http_parser): own the piece.
    auto offset = static_cast<uint32_t>(spill_.size());
    spill_.append(piece.at, piece.len);
    spill_.append(at, len);
    piece = HeadPiece{nullptr, offset, piece.len, true};
  }
  piece.len += static_cast<uint32_t>(len);
}

void InstanceConnection::spill_head() {
  for (auto& h : slices_) {
    for (HeadPiece* piece : {&h.name, &h.value}) {
      if (piece->owned || piece->len == 0) continue;
      auto offset = static_cast<uint32_t>(spill_.size());
      spill_.append(piece->at, piece->len);
      *piece = HeadPiece{nullptr, offset, piece->len, true};
    }
  }
}

int InstanceConnection::on_header_field(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<InstanceConnection*>(p->data);
  if (self->slices_.empty() || self->slices_.back().in_value) self->slices_.emplace_back();
  self->extend(self->slices_.back().name, at, len);
  return 0;
}

int InstanceConnection::on_header_value(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<InstanceConnection*>(p->data);
  if (self->slices_.empty()) return 0;  // http_parser calls on_header_field first
  HeaderSlice& h = self->slices_.back();
  h.in_value = true;
  self->extend(h.value, at, len);
  return 0;
}

int InstanceConnection::on_headers_complete(http_parser* p) {
  auto* self = static_cast<InstanceConnection*>(p->data);
  int status = static_cast<int>(p->status_code);
  // http_parser's upgrade flag: the 101 names the protocol (Upgrade) and
  // says Connection: upgrade, as RFC 9110 requires.
  bool switching = status == 101 && self->upgrade_requested_ && p->upgrade != 0;
  if (status < 100 || status > 599 || (status == 101 && !switching)) {
    // Not a status a client can be given (101 answers only a request that
    // asked to switch protocols).  The app answered, wrongly: nothing says
    // the instance is unhealthy.
    self->fail(GatewayError{502, FC_ERR_BAD_RESPONSE,
                            fmt::format("the instance answered with status {}, not a valid final status", status)},
               Instance::Outcome::kAbandoned);
    return -1;
  }
  if (status >= 100 && status < 200 && !switching) {
    // An interim response (100 Continue, 103 Early Hints): skip it.
    self->interim_ = true;
    self->reset_head();
    return 1;
  }
  self->interim_ = false;
  self->head_done_ = true;
  self->keep_alive_ = http_should_keep_alive(p) != 0 && !switching;
  self->tunnel_ = switching;
  // Views of the slices (the chunk or spill_), for the sink's call only.
  HeaderViews& headers = self->kept_headers_;
  headers.clear();
  for (const auto& h : self->slices_) {
    std::string_view name = self->view(h.name);
    // a 101's Upgrade says which protocol was switched to: the client needs it
    bool keep = !is_dropped_response_header(name) || (switching && iequals(name, "upgrade"));
    if (keep) headers.emplace_back(name, self->view(h.value));
  }
  self->deliver_head(status);
  if (switching) return 0;
  // HEAD responses (and 204/304, which http_parser knows) carry no body.
  return self->head_request_ ? 1 : 0;
}

void InstanceConnection::deliver_head(int status) {
  // The instance answered: the rest is streaming, at the client's pace.
  disarm(response_timer_);
  if (discarding_ && !(discard_timer_ && discard_timer_->active())) {
    arm(discard_timer_, loop_, discard_limit_ms_, [this] {
      close();
      release(Instance::Outcome::kAbandoned, false, "abandoned");
    });
  }
  if (sink_) sink_->on_response_head(status, kept_headers_);
  // The views end here (reset_head() may free spill_).
  kept_headers_.clear();
  reset_head();
}

// ---- the common response, without http_parser --------------------------------

bool InstanceConnection::read_simple_head(const ChunkRef& chunk, const char* data, size_t len) {
  // A HEAD request's answer has a Content-Length and no body, an upgrade
  // may be answered with 101: http_parser's, as are heads split over reads.
  if (head_request_ || upgrade_requested_) return false;
  SimpleResponseHead head;
  if (!parse_simple_response_head(std::string_view(data, len), head, kept_headers_)) return false;
  simple_ = true;
  simple_body_left_ = head.content_length;
  interim_ = false;
  head_done_ = true;
  keep_alive_ = head.keep_alive;
  tunnel_ = false;
  std::erase_if(kept_headers_, [](const auto& h) { return is_dropped_response_header(h.first); });
  deliver_head(head.status);
  if (!busy()) return true;  // the sink failed or went away
  read_simple_body(chunk, data + head.head_len, len - head.head_len);
  return true;
}

void InstanceConnection::read_simple_body(const ChunkRef& chunk, const char* data, size_t len) {
  size_t n = static_cast<size_t>(std::min<uint64_t>(len, simple_body_left_));
  simple_body_left_ -= n;
  if (n > 0 && sink_) sink_->on_response_body(chunk, data, n);
  if (!busy()) return;  // discarded while the client is gone
  if (simple_body_left_ > 0) {
    if (!acks_at_once_ && tcp_) {
      // As for http_parser's responses (on_read): a body in pieces.
      acks_at_once_ = true;
      tcp_->quickack();
    }
    return;
  }
  message_done_ = true;
  // Bytes past the response: the instance broke the protocol.
  keep_alive_ = keep_alive_ && n == len && request_done_;
  finish_message();
}

int InstanceConnection::on_body(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<InstanceConnection*>(p->data);
  if (self->sink_ && self->current_chunk_) self->sink_->on_response_body(*self->current_chunk_, at, len);
  return self->busy() ? 0 : -1;  // discarded while the client is gone
}

int InstanceConnection::on_message_complete(http_parser* p) {
  auto* self = static_cast<InstanceConnection*>(p->data);
  if (self->interim_) {
    self->interim_ = false;
    return 0;  // the real response follows on the same connection
  }
  if (self->tunnel_) return 0;  // http_parser stops here: the rest is the tunnel's
  self->message_done_ = true;
  // Stop here: the end is handled outside the parser, which may then be
  // reinitialized for the next request on this connection.
  http_parser_pause(p, 1);
  return 0;
}

const http_parser_settings& InstanceConnection::settings() {
  static const http_parser_settings s = [] {
    http_parser_settings st{};
    st.on_header_field = &InstanceConnection::on_header_field;
    st.on_header_value = &InstanceConnection::on_header_value;
    st.on_headers_complete = &InstanceConnection::on_headers_complete;
    st.on_body = &InstanceConnection::on_body;
    st.on_message_complete = &InstanceConnection::on_message_complete;
    return st;
  }();
  return s;
}

}  // namespace fc
