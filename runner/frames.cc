#include "frames.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace fc {

namespace {

fc_str_t view(std::string_view s) { return fc_str_t{s.data(), s.size()}; }

// The decoder's header array: a scratch array kept across requests (the
// decoded views are copied into the RequestHead at once), so a decode makes
// no allocation of its own once it has seen that many headers.
struct Scratch {
  std::vector<fc_header_t> headers;
  static void* alloc(void* ctx, size_t size) {
    auto* scratch = static_cast<Scratch*>(ctx);
    scratch->headers.resize(size / sizeof(fc_header_t) + 1);
    return scratch->headers.data();
  }
};

// A whole frame: `encode(buf, cap, &written)` writes the msgpack payload in
// place, behind the room left for the frame header.  Empty on failure.
template <typename Encode>
std::string encoded_frame(uint8_t type, uint16_t flags, size_t payload_bound, Encode encode) {
  std::string frame(FC_FRAME_HEADER_SIZE + payload_bound, '\0');
  auto* buf = reinterpret_cast<uint8_t*>(frame.data());
  size_t written = 0;
  if (encode(buf + FC_FRAME_HEADER_SIZE, payload_bound, &written) != FC_OK) return {};
  fc_frame_header_encode(buf, type, flags, static_cast<uint32_t>(written));
  frame.resize(FC_FRAME_HEADER_SIZE + written);
  return frame;
}

// Assigned, not replaced: a reused head keeps its buffers.
// Within its capacity a string is resized and copied into, cheaper than
// assign()'s general replace (a dozen fields per REQUEST).
void assign(std::string& to, fc_str_t s) {
  if (s.data == nullptr || s.len == 0) {
    to.clear();
  } else if (s.len <= to.capacity()) {
    to.resize(s.len);
    std::memcpy(to.data(), s.data, s.len);
  } else {
    to.assign(s.data, s.len);
  }
}

}  // namespace

int decode_request(const uint8_t* payload, size_t len, RequestHead& out) {
  static thread_local Scratch scratch;
  fc_request_t req{};
  int rc = fc_request_decode(payload, len, &req, &Scratch::alloc, &scratch);
  if (rc != FC_OK) return rc;
  assign(out.function, req.function);
  assign(out.method, req.method);
  assign(out.uri, req.uri);
  assign(out.version, req.version);
  out.headers.resize(req.nheaders);
  for (size_t i = 0; i < req.nheaders; i++) {
    assign(out.headers[i].first, req.headers[i].name);
    assign(out.headers[i].second, req.headers[i].value);
  }
  assign(out.remote_addr, req.remote_addr);
  out.remote_port = req.remote_port;
  assign(out.scheme, req.scheme);
  assign(out.host, req.host);
  assign(out.request_id, req.request_id);
  out.content_length = req.content_length;
  out.deadline_ms = req.deadline_ms;
  return FC_OK;
}

std::string frame_header(uint8_t type, uint16_t flags, uint32_t length) {
  std::string out(FC_FRAME_HEADER_SIZE, '\0');
  fc_frame_header_encode(reinterpret_cast<uint8_t*>(out.data()), type, flags, length);
  return out;
}

std::string response_frame(int status, const HeaderList& headers, bool cold_start,
                           std::string_view instance) {
  HeaderViews views(headers.begin(), headers.end());
  std::string frame;
  if (!append_response_frame(frame, status, views, cold_start, instance)) return {};
  return frame;
}

bool append_response_frame(std::string& out, int status, const HeaderViews& headers, bool cold_start,
                           std::string_view instance) {
  // Written straight from the views: the exact size first, one resize,
  // then the bytes (fc_proto.h, "The RESPONSE payload in parts").
  size_t n = std::min<size_t>(headers.size(), FC_MAX_HEADERS);
  if (instance.size() > FC_MAX_META_PAYLOAD) return false;
  auto code = static_cast<uint32_t>(status);
  size_t size = fc_response_head_size(code, n) + fc_response_tail_size(instance.size());
  for (size_t i = 0; i < n; i++) {
    const auto& [name, value] = headers[i];
    // bounded one by one, so the sum cannot wrap
    if (name.size() > FC_MAX_META_PAYLOAD || value.size() > FC_MAX_META_PAYLOAD) return false;
    size += fc_response_header_size(name.size(), value.size());
  }
  if (size > FC_MAX_META_PAYLOAD) return false;
  size_t at = out.size();
  out.resize(at + FC_FRAME_HEADER_SIZE + size);
  auto* frame = reinterpret_cast<uint8_t*>(out.data() + at);
  fc_frame_header_encode(frame, FC_FRAME_RESPONSE, 0, static_cast<uint32_t>(size));
  uint8_t* p = fc_response_put_head(frame + FC_FRAME_HEADER_SIZE, code, n);
  for (size_t i = 0; i < n; i++) {
    const auto& [name, value] = headers[i];
    p = fc_response_put_header(p, name.data(), name.size(), value.data(), value.size());
  }
  fc_response_put_tail(p, cold_start ? 1 : 0, instance.data(), instance.size());
  return true;
}

std::string error_frame(const GatewayError& error) {
  fc_error_t err{};
  err.status = static_cast<uint32_t>(error.status);
  err.code = view(error.code);
  // Keep the metadata frame well inside FC_MAX_META_PAYLOAD.
  std::string_view message = error.message;
  if (message.size() > 8192) message = message.substr(0, 8192);
  err.message = view(message);
  return encoded_frame(FC_FRAME_ERROR, FC_FLAG_END_STREAM, fc_error_size_bound(&err),
                       [&err](uint8_t* buf, size_t cap, size_t* written) {
                         return fc_error_encode(&err, buf, cap, written);
                       });
}

}  // namespace fc
