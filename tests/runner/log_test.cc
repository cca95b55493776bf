// The runner's log (runner/log.h): control characters from outside never
// make a line of their own, long messages are cut, SIGUSR1's reopen follows
// a rotated file.
#include "log.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace fc {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(EscapeControl, EscapesControlCharactersAndDelOnly) {
  EXPECT_EQ(escape_control("plain text, UTF-8: h\xc3\xa9"), "plain text, UTF-8: h\xc3\xa9");
  EXPECT_EQ(escape_control("a\r\nb\tc\x7f\x01"), "a\\x0d\\x0ab\\x09c\\x7f\\x01");
  EXPECT_EQ(escape_control(std::string("nul\0byte", 8)), "nul\\x00byte");
  EXPECT_EQ(escape_control(""), "");
}

TEST(Printable, CutsAtTheLimitAndSaysSo) {
  EXPECT_EQ(printable("short"), "short");
  EXPECT_EQ(printable(std::string(64, 'a')), std::string(64, 'a'));
  EXPECT_EQ(printable(std::string(65, 'a')), std::string(64, 'a') + "...");
  EXPECT_EQ(printable("ab\ncd", 3), "ab\\x0a...");
}

class LogFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "fc-log-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::string error;
    init_log("", "info", error);  // back to stderr for the other tests
    fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(LogFileTest, EveryMessageIsOneEscapedLine) {
  std::string error;
  ASSERT_TRUE(init_log((dir_ / "r.log").string(), "info", error)) << error;
  spdlog::info("name {}", "x\r\n2026-01-01 00:00:00.000 critical forged");
  std::string text = slurp(dir_ / "r.log");
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_NE(text.find(" info name x\\x0d\\x0a2026-01-01"), std::string::npos) << text;
}

TEST_F(LogFileTest, MessagesPastTheLimitAreCut) {
  std::string error;
  ASSERT_TRUE(init_log((dir_ / "r.log").string(), "info", error)) << error;
  spdlog::info("{}", std::string(kMaxLogMessage, 'a'));
  spdlog::info("{}", std::string(kMaxLogMessage + 10, 'b'));
  std::string text = slurp(dir_ / "r.log");
  EXPECT_NE(text.find(std::string(kMaxLogMessage, 'a') + "\n"), std::string::npos);
  EXPECT_NE(text.find(std::string(kMaxLogMessage, 'b') + "... (10 bytes cut)\n"), std::string::npos);
  EXPECT_EQ(text.find(std::string(kMaxLogMessage + 1, 'b')), std::string::npos);
}

TEST_F(LogFileTest, ReopenFollowsARotatedFile) {
  std::string error;
  ASSERT_TRUE(init_log((dir_ / "r.log").string(), "info", error)) << error;
  spdlog::info("before");
  fs::rename(dir_ / "r.log", dir_ / "r.log.1");
  spdlog::info("still the old file");
  ASSERT_TRUE(reopen_log(error)) << error;
  spdlog::info("after");
  EXPECT_NE(slurp(dir_ / "r.log.1").find("still the old file"), std::string::npos);
  EXPECT_EQ(slurp(dir_ / "r.log.1").find("after"), std::string::npos);
  EXPECT_NE(slurp(dir_ / "r.log").find("after"), std::string::npos);
}

TEST_F(LogFileTest, AFileThatCannotBeOpenedIsAnError) {
  std::string error;
  EXPECT_FALSE(init_log((dir_ / "no-such-dir" / "r.log").string(), "info", error));
  EXPECT_NE(error.find("no-such-dir"), std::string::npos) << error;
}

}  // namespace
}  // namespace fc
