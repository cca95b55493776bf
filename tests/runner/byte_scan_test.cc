#include "byte_scan.h"

#include <gtest/gtest.h>

#include <string>

namespace fc::byte_scan {
namespace {

// Every byte value at every position of strings around the 8-byte word
// size: the word tests answer as a byte-by-byte loop would.
TEST(ByteScanTest, AgreesWithAByteLoopAtEveryPositionAndValue) {
  for (size_t len : {1u, 7u, 8u, 9u, 15u, 16u, 17u, 24u}) {
    for (size_t at = 0; at < len; at++) {
      for (int b = 0; b < 256; b++) {
        std::string s(len, 'a');
        s[at] = static_cast<char>(b);
        bool control = b < 0x20 || b == 0x7f;
        bool line_break = b == '\r' || b == '\n';
        ASSERT_EQ(has_no_control(s), !control) << len << " " << at << " " << b;
        ASSERT_EQ(has_no_line_break(s), !line_break) << len << " " << at << " " << b;
        const char* found = find_control(s.data(), s.data() + s.size());
        ASSERT_EQ(found, s.data() + (control ? at : len)) << len << " " << at << " " << b;
      }
    }
  }
}

TEST(ByteScanTest, FindsTheFirstOfSeveralAndNothingInEmpty) {
  std::string s = "0123456789\x01" "abc\x7f";
  EXPECT_EQ(find_control(s.data(), s.data() + s.size()), s.data() + 10);
  EXPECT_EQ(find_control(s.data() + 11, s.data() + s.size()), s.data() + 14);
  EXPECT_TRUE(has_no_control(""));
  EXPECT_TRUE(has_no_line_break(""));
  // bytes >= 0x80 (UTF-8) are not control characters
  EXPECT_TRUE(has_no_control("caf\xc3\xa9 \xff\x80\x9f"));
  EXPECT_FALSE(has_no_control(std::string("a\0b", 3)));
}

}  // namespace
}  // namespace fc::byte_scan
