#include "http_head.h"

#include <spdlog/fmt/fmt.h>

#include <charconv>
#include <cmath>
#include <cstring>

namespace fc {

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// One line "name: value\r\n", grown once and copied (not four appends:
// a request head is a dozen of these, per request).
void add(std::string& out, std::string_view name, std::string_view value) {
  size_t at = out.size();
  out.resize(at + name.size() + value.size() + 4);
  char* p = out.data() + at;
  if (!name.empty()) std::memcpy(p, name.data(), name.size());
  p += name.size();
  *p++ = ':';
  *p++ = ' ';
  if (!value.empty()) std::memcpy(p, value.data(), value.size());
  p += value.size();
  *p++ = '\r';
  *p = '\n';
}

// True when one of the 8 bytes of `word` is `byte` ("haszero" of the xor).
bool has_byte(uint64_t word, char byte) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  uint64_t x = word ^ (kOnes * static_cast<unsigned char>(byte));
  return ((x - kOnes) & ~x & kHighs) != 0;
}

// Header values must not smuggle a line break into the head.  (Eight bytes
// at a time, not find_first_of("\r\n"), which calls memchr per byte: every
// forwarded name and value is checked, per request.)
bool safe(std::string_view s) {
  const char* p = s.data();
  const char* end = p + s.size();
  for (; end - p >= 8; p += 8) {
    uint64_t word;
    std::memcpy(&word, p, sizeof word);
    if (has_byte(word, '\r') || has_byte(word, '\n')) return false;
  }
  for (; p < end; p++) {
    if (*p == '\r' || *p == '\n') return false;
  }
  return true;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// Both lists are checked on every header of every request and response:
// the length picks the one or two names to compare.
bool is_dropped_request_header(std::string_view name) {
  switch (name.size()) {
    case 2: return iequals(name, "te");
    case 6: return iequals(name, "expect");
    case 7: return iequals(name, "upgrade") || iequals(name, "trailer");
    case 10: return iequals(name, "connection") || iequals(name, "keep-alive");
    case 14: return iequals(name, "content-length");
    case 16: return iequals(name, "proxy-connection");
    case 17: return iequals(name, "transfer-encoding");
    default: return false;
  }
}

bool is_fc_header(std::string_view name) { return istarts_with(name, "x-fc-"); }

bool is_dropped_response_header(std::string_view name) {
  switch (name.size()) {
    case 7: return iequals(name, "upgrade") || iequals(name, "trailer");
    case 10: return iequals(name, "connection") || iequals(name, "keep-alive");
    case 16: return iequals(name, "proxy-connection");
    case 17: return iequals(name, "transfer-encoding");
    default: return false;
  }
}

std::string upgrade_protocol(const RequestHead& head) {
  if (head.version != "HTTP/1.1" || head.method == "HEAD" || head.content_length != 0) return {};
  std::string upgrade;
  bool connection_upgrade = false;
  for (const auto& [name, value] : head.headers) {
    if (iequals(name, "upgrade") && upgrade.empty()) {
      upgrade = value;
    } else if (iequals(name, "connection")) {
      std::string_view rest(value);
      while (!rest.empty()) {
        size_t comma = rest.find(',');
        std::string_view token = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
        while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
        if (iequals(token, "upgrade")) connection_upgrade = true;
      }
    }
  }
  if (!connection_upgrade || !safe(upgrade)) return {};
  return upgrade;
}

std::string format_seconds(double seconds) {
  if (seconds == std::floor(seconds) && seconds < 1e15) {
    return fmt::format("{}", static_cast<long long>(seconds));
  }
  return fmt::format("{}", seconds);
}

BodyFraming request_framing(std::string_view method, int64_t content_length) {
  if (content_length < 0) return BodyFraming::kChunked;
  if (content_length == 0 && (method == "GET" || method == "HEAD")) return BodyFraming::kNone;
  return BodyFraming::kContentLength;
}

std::string function_header_lines(const FunctionConfig& fn) {
  std::string out;
  add(out, "x-fc-function-name", fn.name);
  if (safe(fn.handler)) add(out, "x-fc-function-handler", fn.handler);
  add(out, "x-fc-function-memory", fmt::format("{}", fn.memory_size_mb));
  add(out, "x-fc-function-timeout", format_seconds(fn.timeout_s));
  if (safe(fn.initializer)) add(out, "x-fc-function-initializer", fn.initializer);
  add(out, "x-fc-initialization-timeout", format_seconds(fn.initialization_timeout_s));
  return out;
}

std::string build_request_head(const InstanceCall& call, std::string_view function_headers) {
  std::string out;
  out.reserve(512);
  append_request_head(out, call, function_headers);
  return out;
}

void append_request_head(std::string& out, const InstanceCall& call, std::string_view function_headers) {
  out.append(call.method);
  out.push_back(' ');
  out.append(call.uri);
  out.append(" HTTP/1.1\r\n");

  bool have_host = false;
  if (call.client != nullptr) {
    for (const auto& [name, value] : call.client->headers) {
      if (is_dropped_request_header(name) || is_fc_header(name)) continue;
      if (!safe(name) || !safe(value) || name.empty()) continue;
      if (iequals(name, "host")) have_host = true;
      add(out, name, value);
    }
  }
  if (!have_host) {
    std::string_view host = call.client != nullptr ? std::string_view(call.client->host) : "";
    add(out, "Host", host.empty() || !safe(host) ? std::string_view("localhost") : host);
  }

  add(out, "x-fc-request-id", call.request_id);
  // The client's address as nginx saw it ($remote_addr): the built-in
  // runtimes' REMOTE_ADDR and clientIP.
  if (call.client != nullptr && !call.client->remote_addr.empty() && safe(call.client->remote_addr)) {
    add(out, "x-fc-client-ip", call.client->remote_addr);
  }
  out.append(function_headers);
  add(out, "x-fc-control-path", call.control_path);
  if (!call.upgrade.empty()) {
    add(out, "Connection", "Upgrade");
    add(out, "Upgrade", call.upgrade);
  }

  switch (call.framing) {
    case BodyFraming::kNone:
      break;
    case BodyFraming::kContentLength: {
      char digits[24];
      const char* end = std::to_chars(digits, digits + sizeof digits, call.content_length).ptr;
      add(out, "Content-Length", std::string_view(digits, static_cast<size_t>(end - digits)));
      break;
    }
    case BodyFraming::kChunked:
      add(out, "Transfer-Encoding", "chunked");
      break;
  }
  out.append("\r\n");
}

}  // namespace fc
