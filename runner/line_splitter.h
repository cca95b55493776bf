// Splits a byte stream (an instance's stdout or stderr) into lines for the
// log.  Bytes are fed as they arrive; a line is emitted at '\n' (a trailing
// '\r' dropped), when it grows past kMaxLine (emitted in pieces, so one
// runaway line cannot eat memory), and at the end of the stream.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace fc {

class LineSplitter {
 public:
  using LineCb = std::function<void(std::string_view line)>;
  static constexpr size_t kMaxLine = 16 * 1024;

  explicit LineSplitter(size_t max_line = kMaxLine) : max_line_(max_line) {}
  void feed(std::string_view bytes, const LineCb& emit);
  // The stream ended: emits an unterminated last line, if any.
  void finish(const LineCb& emit);

 private:
  void emit_line(std::string_view line, const LineCb& emit);
  size_t max_line_;
  std::string partial_;
};

}  // namespace fc
