// The runner's log (runner/log.h): control characters from outside never
// make a line of their own, long messages are cut, SIGUSR1's reopen follows
// a rotated file.
#include "log.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <stdio.h>
#include <stdlib.h>

#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
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

// Control characters at every offset of a long text (the scan reads 8 bytes
// at a time): each one escaped, nothing else touched.
TEST(EscapeControl, FindsControlCharactersAtEveryOffset) {
  for (size_t at = 0; at < 40; at++) {
    for (char c : {'\x00', '\x01', '\n', '\x1f', '\x7f'}) {
      std::string text(40, 'a');
      text[at] = c;
      text[39 - at / 2] = ' ';
      std::string want;
      for (char ch : text) {
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {
          char esc[5];
          snprintf(esc, sizeof esc, "\\x%02x", static_cast<unsigned char>(ch));
          want += esc;
        } else {
          want += ch;
        }
      }
      EXPECT_EQ(escape_control(text), want) << at << " " << int(c);
    }
  }
  EXPECT_EQ(escape_control(std::string(100, ' ') + "\x80\xff~"), std::string(100, ' ') + "\x80\xff~");
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

// log_line (the per-request lines) writes what spdlog::info writes, as text
// and as JSON: same message, same fields, escaped alike.
TEST_F(LogFileTest, LogLineWritesTheSameLinesAsSpdlog) {
  for (LogFormat format : {LogFormat::kText, LogFormat::kJson}) {
    std::string error;
    std::string file = (dir_ / (format == LogFormat::kJson ? "j.log" : "t.log")).string();
    ASSERT_TRUE(init_log(file, "info", error, format)) << error;
    std::string id = "rid-\x01\"q\"";
    spdlog::info("[{}] FC Invoke End RequestId: {}{}", "hello/c-0123", id, ", Error: Unhandled function error");
    log_line(spdlog::level::info, {"[", "hello", "/", "c-0123", "] FC Invoke End RequestId: ", id,
                                   ", Error: Unhandled function error"});
    spdlog::warn("{}", std::string(kMaxLogMessage + 3, 'z'));
    log_line(spdlog::level::warn, {std::string(kMaxLogMessage, 'z'), "zzz"});
    log_line(spdlog::level::debug, {"not at level info"});
    std::istringstream lines(slurp(file));
    std::vector<std::string> got;
    for (std::string line; std::getline(lines, line);) got.push_back(line);
    ASSERT_EQ(got.size(), 4u) << slurp(file);
    auto without_time = [format](const std::string& line) {
      if (format == LogFormat::kText) return line.substr(std::string("2026-12-01 00:00:00.000").size());
      nlohmann::json j = nlohmann::json::parse(line);
      EXPECT_EQ(std::string(j["time"]).size(), std::string("2026-12-01T00:00:00.000Z").size());
      j.erase("time");
      return j.dump();
    };
    EXPECT_EQ(without_time(got[1]), without_time(got[0]));
    EXPECT_EQ(without_time(got[3]), without_time(got[2]));
    if (format == LogFormat::kText) {
      EXPECT_EQ(without_time(got[1]),
                " info [hello/c-0123] FC Invoke End RequestId: rid-\\x01\"q\", Error: Unhandled function error");
      EXPECT_EQ(got[0][4], '-');
      EXPECT_EQ(got[0][10], ' ');
      EXPECT_EQ(got[0][19], '.');
    } else {
      nlohmann::json j = nlohmann::json::parse(got[1]);
      EXPECT_EQ(j["request_id"], "rid-\x01\"q\"");
      EXPECT_EQ(j["instance"], "c-0123");
    }
  }
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

TEST_F(LogFileTest, JsonLinesNameTheFunctionInstanceAndRequest) {
  std::string error;
  ASSERT_TRUE(init_log((dir_ / "r.log").string(), "info", error, LogFormat::kJson)) << error;
  spdlog::info("[{}] FC Invoke Start RequestId: {}", "hello/c-0123", "rid-1");
  spdlog::warn("function {}: {}", "hello", "a \"quoted\" reason\nand a forged line \xff");
  log_instance_output("hello/c-0123", 2, "FC Invoke Start RequestId: forged");
  std::istringstream lines(slurp(dir_ / "r.log"));
  std::vector<nlohmann::json> entries;
  for (std::string line; std::getline(lines, line);) entries.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(entries.size(), 3u) << slurp(dir_ / "r.log");
  EXPECT_EQ(entries[0]["level"], "info");
  EXPECT_EQ(entries[0]["function"], "hello");
  EXPECT_EQ(entries[0]["instance"], "c-0123");
  EXPECT_EQ(entries[0]["request_id"], "rid-1");
  EXPECT_EQ(entries[0]["msg"], "FC Invoke Start RequestId: rid-1");
  EXPECT_EQ(std::string(entries[0]["time"]).size(), std::string("2026-12-01T00:00:00.000Z").size());
  EXPECT_EQ(entries[1]["level"], "warning");
  EXPECT_EQ(entries[1]["function"], "hello");
  EXPECT_EQ(entries[1]["msg"], "function hello: a \"quoted\" reason\nand a forged line \xef\xbf\xbd");
  // What an instance wrote is its output, never the source of a field.
  EXPECT_EQ(entries[2]["stream"], "stderr");
  EXPECT_EQ(entries[2]["instance"], "c-0123");
  EXPECT_FALSE(entries[2].contains("request_id"));
}

// stderr is a pipe nobody reads: logging goes on without blocking, lines are
// written in one batch per loop iteration, dropped ones are counted and
// reported once the pipe takes lines again.
class LogPipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(pipe2(pipe_, O_CLOEXEC), 0);
    fcntl(pipe_[0], F_SETFL, O_NONBLOCK);
    saved_stderr_ = dup(STDERR_FILENO);
    dup2(pipe_[1], STDERR_FILENO);
    std::string error;
    ASSERT_TRUE(init_log("", "info", error)) << error;
    uv_loop_init(&loop_);
    attach_log(&loop_);
    // The log's own handles do not keep a loop running (as in the runner,
    // whose listener does); this timer does, and wakes it every 10 ms.
    uv_timer_init(&loop_, &keep_alive_);
    uv_timer_start(&keep_alive_, [](uv_timer_t*) {}, 10, 10);
  }
  void TearDown() override {
    uv_close(reinterpret_cast<uv_handle_t*>(&keep_alive_), nullptr);
    detach_log();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    dup2(saved_stderr_, STDERR_FILENO);
    close(saved_stderr_);
    close(pipe_[0]);
    close(pipe_[1]);
    std::string error;
    init_log("", "info", error);
  }
  std::string read_pipe() {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = read(pipe_[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  // One loop iteration that does not wait.
  void turn() { uv_run(&loop_, UV_RUN_NOWAIT); }
  int pipe_[2] = {-1, -1};
  int saved_stderr_ = -1;
  uv_loop_t loop_{};
  uv_timer_t keep_alive_{};
};

TEST_F(LogPipeTest, LinesWaitForTheLoopAndGoOutInOneBatch) {
  spdlog::info("first");
  spdlog::info("second");
  EXPECT_EQ(read_pipe(), "") << "written before the loop's prepare phase";
  turn();
  std::string out = read_pipe();
  EXPECT_NE(out.find(" info first\n"), std::string::npos) << out;
  EXPECT_NE(out.find(" info second\n"), std::string::npos) << out;
}

TEST_F(LogPipeTest, AFullPipeDropsAndCountsLinesAndSaysSoOnceItDrains) {
  uint64_t before = log_lines_dropped();
  std::string line(100, 'x');
  // Far more than the pipe (64 KiB) and the buffer hold together.
  for (int i = 0; i < 20000; i++) {
    spdlog::info("{} {}", i, line);
    if (i % 100 == 0) turn();
  }
  turn();
  uint64_t dropped = log_lines_dropped() - before;
  EXPECT_GT(dropped, 10000u);
  EXPECT_LT(dropped, 20000u);
  // The reader comes back: what was buffered arrives, then the notice.
  std::string out;
  for (int i = 0; i < 100 && out.find("log lines dropped") == std::string::npos; i++) {
    out += read_pipe();
    uv_run(&loop_, UV_RUN_ONCE);
  }
  out += read_pipe();
  EXPECT_NE(out.find(" warning " + std::to_string(dropped) + " log lines dropped"), std::string::npos)
      << out.substr(out.size() > 500 ? out.size() - 500 : 0);
  spdlog::info("after the drain");
  std::string after;
  for (int i = 0; i < 50 && after.find(" info after the drain\n") == std::string::npos; i++) {
    uv_run(&loop_, UV_RUN_ONCE);
    after += read_pipe();
  }
  EXPECT_NE(after.find(" info after the drain\n"), std::string::npos) << after;
}

}  // namespace
}  // namespace fc
