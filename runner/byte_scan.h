// Byte scans of the request path, eight bytes at a time ("haszero" and
// "hasless" of a 64-bit word, exact as yes/no answers): every forwarded
// header name and value, every log line and every instance response head is
// scanned per request, and a branch per byte (or memchr per byte, as
// find_first_of does) cost more than the bytes.  One copy, shared by the log,
// the request head writer and the response head reader.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace fc::byte_scan {

inline constexpr uint64_t kOnes = 0x0101010101010101ULL;
inline constexpr uint64_t kHighs = 0x8080808080808080ULL;

// True when one of the 8 bytes of `word` is `byte`.
inline bool word_has(uint64_t word, unsigned char byte) {
  uint64_t x = word ^ (kOnes * byte);
  return ((x - kOnes) & ~x & kHighs) != 0;
}

// True when one of the 8 bytes of `word` is a control character (< 0x20) or DEL.
inline bool word_has_control(uint64_t word) {
  uint64_t below_space = (word - kOnes * 0x20) & ~word & kHighs;
  uint64_t del = word ^ (kOnes * 0x7f);
  return (below_space | ((del - kOnes) & ~del & kHighs)) != 0;
}

inline bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

inline uint64_t load(const char* p) {
  uint64_t word;
  std::memcpy(&word, p, sizeof word);
  return word;
}

// Where the first control character or DEL of [p, end) is, or end.
inline const char* find_control(const char* p, const char* end) {
  for (; end - p >= 8; p += 8) {
    if (word_has_control(load(p))) break;
  }
  for (; p < end; p++) {
    if (is_control(static_cast<unsigned char>(*p))) return p;
  }
  return end;
}

// No control character and no DEL: a log message that needs no escaping,
// a response head line that may be taken as it is.
inline bool has_no_control(std::string_view s) { return find_control(s.data(), s.data() + s.size()) == s.data() + s.size(); }

// No CR and no LF: a value that cannot break a line of an HTTP head.
inline bool has_no_line_break(std::string_view s) {
  const char* p = s.data();
  const char* end = p + s.size();
  for (; end - p >= 8; p += 8) {
    uint64_t word = load(p);
    if (word_has(word, '\r') || word_has(word, '\n')) return false;
  }
  for (; p < end; p++) {
    if (*p == '\r' || *p == '\n') return false;
  }
  return true;
}

}  // namespace fc::byte_scan
