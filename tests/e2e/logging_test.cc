// The runner's log (issue 11 item 5, issue 10 logFormat): a log nobody
// reads never stalls the loop (lines are dropped and counted instead), and
// logFormat: json writes one parseable object per line with the function,
// instance and request id of each per-request line.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class LoggingTest : public GatewayFixture {};

// Reads what is in the FIFO now (non-blocking) and appends it to `out`.
void drain_fifo(int fd, std::string& out) {
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
}

TEST_F(LoggingTest, ARunnerWhoseStderrPipeIsFullStillAnswersWithinOneSecond) {
  int admin_port = free_port();
  gw_.add_runner_yaml("admin: 127.0.0.1:" + std::to_string(admin_port) + "\n");
  add_app_function("loud", "stream_app.py", "    instanceConcurrency: 10\n");
  // The runner's stderr is a pipe (a FIFO) that nobody reads until the end;
  // its read end is open, so writing to it blocks instead of failing.
  std::string fifo = gw_.path("stderr.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  int reader = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  gw_.set_runner_wrapper({"/bin/sh", "-c", "exec \"$@\" 2>" + fifo, "sh"});
  gw_.start();

  // 6,000 instance lines of 100 bytes: more than the pipe and the runner's
  // log buffer hold together, so the log is full from here on.
  HttpRequest flood;
  flood.url = gw_.url("/loud/print?lines=6000");
  flood.timeout_ms = 10000;
  HttpResponse printed = http(flood);
  ASSERT_EQ(printed.status, 200) << printed.error;
  for (int i = 0; i < 10; i++) {
    HttpRequest more;
    more.url = gw_.url("/loud/print?lines=500");
    more.timeout_ms = 5000;
    HttpResponse r = http(more);
    ASSERT_EQ(r.status, 200) << "request " << i << ": " << r.error;
    EXPECT_LT(r.total_s, 1.0) << "request " << i;
    HttpRequest quiet;
    quiet.url = gw_.url("/loud/bytes?n=100");
    quiet.timeout_ms = 5000;
    HttpResponse q = http(quiet);
    ASSERT_EQ(q.status, 200) << "request " << i << ": " << q.error;
    EXPECT_EQ(q.body.size(), 100u);
    EXPECT_LT(q.total_s, 1.0) << "request " << i;
  }
  HttpResponse metrics = http_get("http://127.0.0.1:" + std::to_string(admin_port) + "/metrics");
  ASSERT_EQ(metrics.status, 200) << metrics.error;
  std::istringstream lines(metrics.body);
  long dropped = -1;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("fc_log_lines_dropped_total ", 0) == 0) dropped = std::stol(line.substr(27));
  }
  EXPECT_GT(dropped, 1000) << metrics.body;

  // Once somebody reads the pipe, the log says how many lines it lost.
  std::string log;
  bool noticed = wait_until(
      [&] {
        drain_fifo(reader, log);
        return log.find(" log lines dropped") != std::string::npos;
      },
      5s);
  EXPECT_TRUE(noticed) << log.substr(log.size() > 2000 ? log.size() - 2000 : 0);
  close(reader);
}

TEST_F(LoggingTest, JsonLinesCarryFunctionInstanceAndRequestId) {
  gw_.add_runner_yaml("logFormat: json\nlogFile: " + gw_.path("runner.json") + "\n");
  add_app_function("echo", "echo_app.py", "");
  gw_.start();
  HttpResponse r = http_get(gw_.url("/echo/inspect"));
  ASSERT_EQ(r.status, 200) << r.error;
  std::string request_id;
  json inspected = json::parse(r.body);
  for (const auto& h : inspected["headers"]) {
    if (h[0] == "x-fc-request-id") request_id = h[1];
  }
  ASSERT_FALSE(request_id.empty()) << r.body;

  bool start_seen = false, end_seen = false, output_seen = false;
  ASSERT_TRUE(wait_until([&] { return read_file(gw_.path("runner.json")).find("FC Invoke End") != std::string::npos; },
                         5s));
  std::istringstream text(read_file(gw_.path("runner.json")));
  int count = 0;
  for (std::string line; std::getline(text, line); count++) {
    json entry = json::parse(line);  // every line is one JSON object
    ASSERT_TRUE(entry.contains("time") && entry.contains("level") && entry.contains("msg")) << line;
    std::string msg = entry["msg"];
    if (entry.value("request_id", "") == request_id) {
      EXPECT_EQ(entry.value("function", ""), "echo") << line;
      EXPECT_FALSE(entry.value("instance", "").empty()) << line;
      EXPECT_EQ(entry["level"], "info") << line;
      if (msg.rfind("FC Invoke Start", 0) == 0) start_seen = true;
      if (msg.rfind("FC Invoke End", 0) == 0) end_seen = true;
    }
    if (entry.value("stream", "") == "stderr" && msg.find("echo_app: ") == 0) {
      output_seen = true;
      EXPECT_EQ(entry.value("function", ""), "echo") << line;
      EXPECT_FALSE(entry.contains("request_id")) << line;
    }
  }
  EXPECT_GT(count, 3);
  EXPECT_TRUE(start_seen);
  EXPECT_TRUE(end_seen);
  EXPECT_TRUE(output_seen) << "the instance's own line, with stream: stderr";
}

}  // namespace
}  // namespace fc::e2e
