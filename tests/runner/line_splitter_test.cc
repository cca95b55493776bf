#include "line_splitter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fc {
namespace {

std::vector<std::string> split(std::vector<std::string> pieces, size_t max_line = LineSplitter::kMaxLine,
                               bool finish = true) {
  LineSplitter splitter(max_line);
  std::vector<std::string> lines;
  auto emit = [&](std::string_view line) { lines.emplace_back(line); };
  for (const auto& p : pieces) splitter.feed(p, emit);
  if (finish) splitter.finish(emit);
  return lines;
}

TEST(LineSplitter, SplitsAtNewlinesAndDropsCarriageReturns) {
  EXPECT_EQ(split({"a\nbb\r\nccc\n"}), (std::vector<std::string>{"a", "bb", "ccc"}));
}

TEST(LineSplitter, JoinsALineThatArrivesInPieces) {
  EXPECT_EQ(split({"hel", "lo wo", "rld\nnext", "\n"}), (std::vector<std::string>{"hello world", "next"}));
}

TEST(LineSplitter, KeepsAnUnterminatedLineUntilTheStreamEnds) {
  EXPECT_EQ(split({"done\npartial"}, LineSplitter::kMaxLine, false), (std::vector<std::string>{"done"}));
  EXPECT_EQ(split({"done\npartial"}), (std::vector<std::string>{"done", "partial"}));
}

TEST(LineSplitter, KeepsEmptyLines) { EXPECT_EQ(split({"a\n\nb\n"}), (std::vector<std::string>{"a", "", "b"})); }

TEST(LineSplitter, CutsARunawayLineAtTheLimit) {
  EXPECT_EQ(split({"abcdefghij\n"}, 4), (std::vector<std::string>{"abcd", "efgh", "ij"}));
  EXPECT_EQ(split({"ab", "cdef", "gh\n"}, 4), (std::vector<std::string>{"abcd", "efgh"}));
}

}  // namespace
}  // namespace fc
