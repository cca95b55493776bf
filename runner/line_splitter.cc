#include "line_splitter.h"

namespace fc {

void LineSplitter::emit_line(std::string_view line, const LineCb& emit) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  emit(line);
}

void LineSplitter::feed(std::string_view bytes, const LineCb& emit) {
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    size_t room = max_line_ - partial_.size();
    if (nl == std::string_view::npos || nl > room) {
      if (bytes.size() < room) {
        partial_.append(bytes);
        return;
      }
      // Over the limit without a newline: emit what fits as one line.
      partial_.append(bytes.substr(0, room));
      bytes.remove_prefix(room);
      emit_line(partial_, emit);
      partial_.clear();
      continue;
    }
    if (partial_.empty()) {
      emit_line(bytes.substr(0, nl), emit);
    } else {
      partial_.append(bytes.substr(0, nl));
      emit_line(partial_, emit);
      partial_.clear();
    }
    bytes.remove_prefix(nl + 1);
  }
}

void LineSplitter::finish(const LineCb& emit) {
  if (!partial_.empty()) emit_line(partial_, emit);
  partial_.clear();
}

}  // namespace fc
