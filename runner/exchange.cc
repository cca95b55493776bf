#include "exchange.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "client_connection.h"
#include "fc_errors.h"
#include "function.h"
#include "ids.h"
#include "instance.h"
#include "instance_connection.h"
#include "log.h"

namespace fc {

namespace {

uint64_t timeout_ms(const FunctionConfig& fn) {
  return fn.timeout_s > 0 ? static_cast<uint64_t>(fn.timeout_s * 1000.0) : 0;
}

// How long an abandoned request may keep its slot once its response started
// (or its body was cut): the function's own timeout.
uint64_t discard_limit_ms(const FunctionConfig& fn) {
  constexpr uint64_t kWithoutTimeoutMs = 60'000;
  uint64_t limit = timeout_ms(fn);
  return limit > 0 ? limit : kWithoutTimeoutMs;
}

// nginx gives up deadline_ms after it sent the whole request; the runner's
// 504 must reach it before that, by this much (a tenth of short deadlines).
constexpr uint64_t kDeadlineLeadMs = 250;

}  // namespace

Exchange::Exchange(ClientConnection& client, Function& function, RequestHead&& head, bool request_ended)
    : client_(client),
      function_(function),
      head_(std::move(head)),
      request_ended_(request_ended),
      request_end_ms_(request_ended ? uv_now(function.loop()) : 0),
      created_ns_(uv_hrtime()) {
  // nginx's $request_id, or one of the runner's when the REQUEST had none.
  if (head_.request_id.empty()) head_.request_id = new_request_id();
  function_.exchange_opened();
}

Exchange::~Exchange() {
  detach_instance();
  function_.withdraw(*this);
  function_.exchange_closed();  // a removed function goes with its last exchange
}

const FunctionConfig& Exchange::config() const { return version_ ? version_->config : function_.config(); }

// ---- client side ------------------------------------------------------------------

void Exchange::on_request_body(const ChunkRef& chunk, const char* data, size_t len) {
  if (len == 0) return;
  if (conn_) {
    conn_->write_body(chunk, data, len);
  } else if (!response_started_ && !finished_) {
    pending_.push_back(Slice{chunk, data, len});
    pending_bytes_ += len;
  }
}

void Exchange::on_request_end() {
  request_ended_ = true;
  request_end_ms_ = uv_now(function_.loop());
  if (conn_) conn_->end_body();
}

size_t Exchange::request_backlog() const { return conn_ ? conn_->write_queue_size() : pending_bytes_; }

void Exchange::on_request_drained() { client_.resume_request_body(); }

void Exchange::on_client_drained() {
  if (conn_) conn_->resume_reading();
}

void Exchange::on_client_gone() {
  if (finished_) return;
  finished_ = true;
  record("ClientClosed");
  if (invoke_logged_) {
    spdlog::warn("[{}] FC Invoke End RequestId: {}, Error: the client went away", function_.name(),
                 request_id());
  } else {
    spdlog::info("[{}] RequestId: {}: the client went away while the request waited", function_.name(),
                 request_id());
  }
  if (conn_) {
    // The instance may still be working on the request: its slot stays
    // taken until it has finished (the rest is read and dropped), bounded by
    // the function's timeout.
    InstanceConnection* conn = conn_;
    conn_ = nullptr;
    conn->discard_rest(discard_limit_ms(config()));
  }
  function_.withdraw(*this);
}

// ---- scheduler side -----------------------------------------------------------------

void Exchange::start(Instance& instance, InstanceConnection& conn) {
  version_ = instance.version();
  const FunctionConfig& fn = config();
  instance_id_ = instance.id();
  conn_ = &conn;
  cold_start_ = instance.ready_serial() > ready_serials_seen;
  invoke_logged_ = true;
  log_line(spdlog::level::info, {"[", instance.tag(), "] FC Invoke Start RequestId: ", request_id()});

  bool event = fn.type == FunctionType::kEvent;
  InstanceCall call;
  call.method = event ? std::string_view("POST") : std::string_view(head_.method);
  call.uri = event ? std::string_view("/invoke") : std::string_view(head_.uri);
  call.control_path = event ? "/invoke" : "/http-invoke";
  call.request_id = request_id();
  call.client = &head_;
  int64_t length = head_.content_length;
  // The whole body is already here (a cold start gives it time to arrive):
  // its length is known, which servers without chunked request bodies like.
  if (length < 0 && request_ended_) length = static_cast<int64_t>(pending_bytes_);
  call.framing = request_framing(call.method, length);
  call.content_length = length < 0 ? 0 : static_cast<uint64_t>(length);
  std::string upgrade = event ? std::string() : upgrade_protocol(head_);
  call.upgrade = upgrade;

  // The function's timeout starts once the whole request is the instance's
  // (InstanceConnection::end_body), not while the client still sends.
  // The head is written straight into the write request.
  std::unique_ptr<WriteReq> request_head = WriteReq::take();
  request_head->copy_with([&](std::string& out) {
    append_request_head(out, call, version_->header_lines);
    return true;
  });
  conn.begin(*this, std::move(request_head), call.framing, call.method == "HEAD", instance_timeout_ms(),
             !upgrade.empty());
  for (auto& slice : pending_) conn.write_body(slice.chunk, slice.data, slice.len);
  pending_.clear();
  pending_bytes_ = 0;
  if (request_ended_) conn.end_body();
  // Pending bytes moved to the instance's queue; reading may resume.
  client_.resume_request_body();
}

uint64_t Exchange::instance_timeout_ms() const {
  uint64_t limit = timeout_ms(config());
  if (head_.deadline_ms == 0) return limit;
  // An explicit fc_read_timeout: answer 504 before nginx's own timer does.
  uint64_t lead = std::min(kDeadlineLeadMs, head_.deadline_ms / 10);
  uint64_t waited = request_ended_ ? uv_now(function_.loop()) - request_end_ms_ : 0;
  uint64_t budget = head_.deadline_ms > lead + waited ? head_.deadline_ms - lead - waited : 1;
  return limit == 0 ? budget : std::min(limit, budget);
}

void Exchange::fail(GatewayError&& error) {
  if (finished_) return;
  if (invoke_logged_) {
    spdlog::warn("[{}/{}] FC Invoke End RequestId: {}, Error: {} {}: {}", function_.name(), instance_id_,
                 request_id(), error.status, error.code, error.message);
  } else {
    spdlog::warn("[{}] RequestId: {}: {} {}: {}", function_.name(), request_id(), error.status, error.code,
                 error.message);
  }
  detach_instance();
  function_.withdraw(*this);
  record(error.code);
  client_.send_frame(error_frame(error));
  finish();
}

void Exchange::detach_instance() {
  if (conn_) {
    InstanceConnection* conn = conn_;
    conn_ = nullptr;
    conn->abandon();
  }
}

void Exchange::record(const std::string& code) {
  if (recorded_) return;
  recorded_ = true;
  function_.metrics().request_done(code, static_cast<double>(uv_hrtime() - created_ns_) / 1e9);
}

void Exchange::finish() {
  finished_ = true;
  // Nothing reads the head of a finished exchange: its buffers serve the
  // connection's next REQUEST.
  client_.recycle_head(std::move(head_));
  client_.on_exchange_finished();  // hands this to the deferred deleter
}

// ---- instance side ----------------------------------------------------------------------

void Exchange::on_response_head(int status, HeaderViews& headers) {
  if (finished_) return;
  if (config().type == FunctionType::kEvent) {
    bool error = status == 404;
    for (const auto& [name, value] : headers) {
      if (iequals(name, "x-fc-status") && value == "404") error = true;
    }
    if (error) {
      function_error_ = true;
      headers.emplace_back(FC_ERROR_TYPE_HEADER, "UnhandledInvocationError");
    }
  }
  // Encoded straight into the client's next write.
  bool encoded = client_.send_encoded([&](std::string& out) {
    return append_response_frame(out, status, headers, cold_start_, instance_id_);
  });
  if (!encoded) {
    fail(GatewayError{502, FC_ERR_BAD_RESPONSE, "the response headers are too large"});
    return;
  }
  response_started_ = true;
  response_status_ = status;
  // Switched protocols (only an upgrade request gets here with a 101): the
  // client's DATA frames from now on are tunnel bytes.
  if (status == 101) client_.start_tunnel();
}

void Exchange::on_response_body(const ChunkRef& chunk, const char* data, size_t len) {
  if (finished_ || !response_started_) return;
  client_.send_data(chunk, data, len);
  if (conn_ && client_.write_queue_size() > kWriteHighWater) conn_->pause_reading();
}

void Exchange::on_response_end() {
  conn_ = nullptr;  // the connection has let go already
  if (finished_) return;
  log_line(spdlog::level::info, {"[", function_.name(), "/", instance_id_, "] FC Invoke End RequestId: ", request_id(),
                                  function_error_ ? ", Error: Unhandled function error" : ""});
  static const std::string kStatusClass[] = {"0xx", "1xx", "2xx", "3xx", "4xx", "5xx",
                                             "6xx", "7xx", "8xx", "9xx"};
  record(kStatusClass[static_cast<size_t>(response_status_ / 100) % 10]);
  client_.send_end();
  finish();
}

void Exchange::on_response_failed(GatewayError&& error) {
  conn_ = nullptr;  // the connection has let go already
  fail(std::move(error));
}

}  // namespace fc
