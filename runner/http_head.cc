#include "http_head.h"

#include "byte_scan.h"

#include <spdlog/fmt/fmt.h>

#include <charconv>
#include <cmath>
#include <cstring>

namespace fc {

namespace {

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

// Header values must not smuggle a line break into the head.
bool safe(std::string_view s) { return byte_scan::has_no_line_break(s); }

}  // namespace

// Called a dozen times a request (header rules, both heads): equal bytes,
// the common case, cost one comparison; only a pair that differs is asked
// whether it is one letter in two cases.
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    auto x = static_cast<unsigned char>(a[i]);
    auto y = static_cast<unsigned char>(b[i]);
    if (x == y) continue;
    unsigned folded = x | 0x20u;
    if (folded - 'a' > 'z' - 'a' || folded != (y | 0x20u)) return false;
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

namespace {

// RFC 9110 tchar: what a header name is made of.
struct TokenChars {
  bool is[256] = {};
  constexpr TokenChars() {
    for (int c = '0'; c <= '9'; c++) is[c] = true;
    for (int c = 'a'; c <= 'z'; c++) is[c] = is[c - 'a' + 'A'] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) is[static_cast<unsigned char>(c)] = true;
  }
};
constexpr TokenChars kTokenChars;

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

bool parse_length(std::string_view s, uint64_t& out) {
  // 18 digits cannot overflow; no body is that long
  if (s.empty() || s.size() > 18) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  out = v;
  return true;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

bool parse_simple_response_head(std::string_view bytes, SimpleResponseHead& out, HeaderViews& headers) {
  headers.clear();
  const char* p = bytes.data();
  const char* end = p + bytes.size();
  // "HTTP/1.1 200" then " reason" or nothing, CRLF
  constexpr std::string_view kVersion = "HTTP/1.1 ";
  if (bytes.size() < kVersion.size() + 5 || bytes.substr(0, kVersion.size()) != kVersion) return false;
  p += kVersion.size();
  if (!is_digit(p[0]) || !is_digit(p[1]) || !is_digit(p[2])) return false;
  int status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
  if (status < 200 || status > 599 || status == 204 || status == 304) return false;
  p += 3;
  const auto* eol = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
  if (eol == nullptr || eol == p || eol[-1] != '\r') return false;
  std::string_view reason(p, static_cast<size_t>(eol - 1 - p));
  if (!reason.empty() && (reason.front() != ' ' || !byte_scan::has_no_control(reason))) return false;
  p = eol + 1;

  bool have_length = false;
  bool close = false;
  for (;;) {
    if (end - p < 2) return false;  // not complete in this read
    if (p[0] == '\r' && p[1] == '\n') {
      p += 2;
      break;
    }
    eol = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    if (eol == nullptr || eol == p || eol[-1] != '\r') return false;
    std::string_view line(p, static_cast<size_t>(eol - 1 - p));
    p = eol + 1;
    // a tab, a bare CR, NUL...: http_parser knows what to make of it
    if (!byte_scan::has_no_control(line)) return false;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    std::string_view name = line.substr(0, colon);
    // also refuses obs-fold (a line that begins with a space)
    for (char c : name) {
      if (!kTokenChars.is[static_cast<unsigned char>(c)]) return false;
    }
    std::string_view value = trim_blanks(line.substr(colon + 1));
    switch (name.size()) {
      case 10:
        if (iequals(name, "connection")) {
          if (iequals(value, "close")) {
            close = true;
          } else if (!iequals(value, "keep-alive")) {
            return false;
          }
        }
        break;
      case 14:
        if (iequals(name, "content-length")) {
          if (have_length || !parse_length(value, out.content_length)) return false;
          have_length = true;
        }
        break;
      case 17:
        if (iequals(name, "transfer-encoding")) return false;
        break;
      default:
        break;
    }
    headers.emplace_back(name, value);
  }
  if (!have_length) return false;
  out.status = status;
  out.keep_alive = !close;
  out.head_len = static_cast<size_t>(p - bytes.data());
  return true;
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
