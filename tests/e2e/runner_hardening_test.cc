// The runner against hostile peers and unlucky operators (issue 6): signals
// an operator or logrotate sends, names that try to forge log lines, peers
// that open connections and never finish a frame, an open-file limit that
// is too small, instances that answer with statuses no client can be given.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "fc_proto.h"
#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// A REQUEST frame (with END_STREAM: no body) for `function`.
std::string request_frame(const std::string& function, const std::string& request_id) {
  fc_request_t req{};
  req.function = {function.data(), function.size()};
  req.method = {"GET", 3};
  req.uri = {"/", 1};
  req.version = {"HTTP/1.1", 8};
  req.request_id = {request_id.data(), request_id.size()};
  req.content_length = 0;
  std::string payload(fc_request_size_bound(&req), '\0');
  size_t written = 0;
  EXPECT_EQ(fc_request_encode(&req, reinterpret_cast<uint8_t*>(payload.data()), payload.size(), &written), FC_OK);
  payload.resize(written);
  uint8_t header[FC_FRAME_HEADER_SIZE];
  fc_frame_header_encode(header, FC_FRAME_REQUEST, FC_FLAG_END_STREAM, static_cast<uint32_t>(payload.size()));
  return std::string(reinterpret_cast<char*>(header), sizeof header) + payload;
}

bool read_exactly(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Sends `frame` on a new runner connection and returns the ERROR frame's
// (status, code, message) the runner answers with.
std::tuple<int, std::string, std::string> error_reply(const std::string& socket, const std::string& frame) {
  int fd = connect_unix(socket);
  EXPECT_GE(fd, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(write(fd, frame.data(), frame.size()), static_cast<ssize_t>(frame.size()));
  uint8_t header[FC_FRAME_HEADER_SIZE];
  fc_frame_header_t hdr{};
  std::tuple<int, std::string, std::string> out{0, "", ""};
  if (read_exactly(fd, header, sizeof header) && fc_frame_header_decode(header, &hdr) == FC_OK &&
      hdr.type == FC_FRAME_ERROR) {
    std::string payload(hdr.length, '\0');
    fc_error_t err{};
    if (read_exactly(fd, payload.data(), payload.size()) &&
        fc_error_decode(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &err) == FC_OK) {
      out = {static_cast<int>(err.status), std::string(err.code.data, err.code.len),
             std::string(err.message.data, err.message.len)};
    }
  }
  close(fd);
  return out;
}

// Every line of the runner's log is one the runner wrote: it starts with the
// runner's timestamp and level, and holds no control character.
void expect_only_runner_lines(const std::string& log) {
  static const std::regex kLine(R"(^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (trace|debug|info|warning|error|critical) [^\x00-\x1f\x7f]*$)");
  std::istringstream in(log);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    n++;
    EXPECT_TRUE(std::regex_match(line, kLine)) << "a line the runner did not write: " << line.substr(0, 300);
  }
  EXPECT_GT(n, 3);
}

void raise_own_open_file_limit(rlim_t want) {
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_cur >= want) return;
  lim.rlim_cur = std::min(want, lim.rlim_max);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
  ASSERT_GE(lim.rlim_cur, want) << "the test needs " << want << " descriptors";
}

// Reads each socket once (waiting at most `wait` for it) and closes it;
// returns how many the runner had closed (EOF or reset).
size_t close_and_count_closed_by_peer(const std::vector<int>& fds, timeval wait) {
  size_t closed = 0;
  for (int fd : fds) {
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) closed++;
    close(fd);
  }
  return closed;
}

class RunnerHardeningTest : public GatewayFixture {
 protected:
  void add_lifecycle_function(const std::string& name, const std::string& extra = "") {
    add_app_function(name, "lifecycle_app.py", extra);
  }
};

TEST_F(RunnerHardeningTest, SighupWithRequestsInFlightIsLoggedAndEveryRequestSucceeds) {
  add_lifecycle_function("slow", "    instanceConcurrency: 3\n    maxInstances: 1\n");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/slow/pid")).status, 200);
  std::vector<std::future<HttpResponse>> in_flight;
  for (int i = 0; i < 3; i++) in_flight.push_back(get_async("/slow/sleep?s=1.5"));
  std::this_thread::sleep_for(500ms);
  ASSERT_EQ(kill(gw_.runner().pid(), SIGHUP), 0);
  ASSERT_EQ(kill(gw_.runner().pid(), SIGUSR2), 0);
  ASSERT_EQ(kill(gw_.runner().pid(), SIGPIPE), 0);  // ignored, as a write to a gone peer's is
  for (auto& f : in_flight) {
    HttpResponse r = f.get();
    EXPECT_EQ(r.status, 200) << r.body << r.error;
  }
  EXPECT_TRUE(gw_.runner().running());
  EXPECT_EQ(http_get(gw_.url("/slow/pid")).status, 200);
  EXPECT_TRUE(gw_.runner_logged("SIGHUP"));
  EXPECT_TRUE(std::filesystem::exists(gw_.runner_socket()));
}

TEST_F(RunnerHardeningTest, Sigusr1ReopensTheLogFileAfterItWasRotated) {
  add_lifecycle_function("fn");
  gw_.add_runner_yaml("logFile: rotating.log\n");
  gw_.start();
  std::string log = gw_.path("rotating.log");
  ASSERT_EQ(http_get(gw_.url("/fn/pid")).status, 200);
  ASSERT_TRUE(wait_until([&] { return read_file(log).find("FC Invoke End") != std::string::npos; }, 2s));
  std::filesystem::rename(log, log + ".1");
  ASSERT_EQ(kill(gw_.runner().pid(), SIGUSR1), 0);
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(log); }, 2s)) << "not reopened";
  ASSERT_EQ(http_get(gw_.url("/fn/pid")).status, 200);
  EXPECT_TRUE(wait_until([&] { return read_file(log).find("FC Invoke End") != std::string::npos; }, 2s))
      << read_file(log);
  EXPECT_NE(read_file(log).find("SIGUSR1: log reopened"), std::string::npos);
  EXPECT_NE(read_file(log + ".1").find("fc-runner listening"), std::string::npos) << "the old file kept its lines";
}

TEST_F(RunnerHardeningTest, NamesWithControlCharactersOrHugeOnesGet404AndForgeNoLogLine) {
  add_lifecycle_function("fn");
  gw_.add_runner_yaml("logLevel: debug\n");
  gw_.start();
  std::string forged = "x\r\n2026-01-01 00:00:00.000 critical FORGED by a client";
  auto [status, code, message] = error_reply(gw_.runner_socket(), request_frame(forged, "id\nFORGED too"));
  EXPECT_EQ(status, 404);
  EXPECT_EQ(code, "FunctionNotFound");
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_NE(message.find("\\x0d\\x0a"), std::string::npos) << "the name is quoted escaped: " << message;

  std::string huge(10000, 'a');
  auto [status2, code2, message2] = error_reply(gw_.runner_socket(), request_frame(huge, "id2"));
  EXPECT_EQ(status2, 404);
  EXPECT_EQ(code2, "FunctionNotFound");
  EXPECT_LT(message2.size(), 300u) << "the name is cut";

  ASSERT_EQ(http_get(gw_.url("/fn/pid")).status, 200);
  std::string log = gw_.runner_log();
  EXPECT_EQ(log.find(huge), std::string::npos) << "a 10,000-character name was logged whole";
  EXPECT_NE(log.find("FunctionNotFound"), std::string::npos);
  expect_only_runner_lines(log);
}

TEST_F(RunnerHardeningTest, IdleHalfFramesAtTheOpenFileLimitDoNotStopServiceAndAreClosed) {
  raise_own_open_file_limit(4096);
  add_lifecycle_function("fn", "    instanceConcurrency: 10\n    maxInstances: 1\n");
  gw_.add_runner_yaml("frameTimeout: 3\n");
  gw_.set_runner_wrapper({"prlimit", "--nofile=1024:1024", "--"});
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/fn/pid")).status, 200);
  std::string log_start = gw_.runner_log();
  EXPECT_NE(log_start.find("open-file limit 1024"), std::string::npos);

  // 2,000 connections that each send half a frame header and stop.
  std::vector<int> idle;
  char half[4] = {1, 1, 0, 0};
  auto flood_started = Clock::now();
  for (int i = 0; i < 2000; i++) {
    int fd = connect_unix(gw_.runner_socket());
    if (fd < 0) continue;  // the backlog is full for a moment: fine
    if (write(fd, half, sizeof half) != sizeof half) {
      close(fd);
      continue;
    }
    idle.push_back(fd);
  }
  EXPECT_GT(idle.size(), 1500u);
  // Normal requests keep being served while the half frames sit there.
  int ok = 0;
  for (int i = 0; i < 20; i++) {
    HttpResponse r = http_get(gw_.url("/fn/pid"));
    if (r.status == 200) ok++;
    EXPECT_LT(r.total_s, 1.0) << "request " << i << ": " << r.status << " " << r.error;
  }
  EXPECT_EQ(ok, 20);
  EXPECT_LT(Clock::now() - flood_started, 2900ms) << "too slow to test before frameTimeout";

  // After frameTimeout every half-frame connection is closed (EOF), none left.
  std::this_thread::sleep_for(4s);
  EXPECT_EQ(close_and_count_closed_by_peer(idle, timeval{0, 200000}), idle.size());
  std::string log = gw_.runner_log();
  EXPECT_NE(log.find("frameTimeout"), std::string::npos);
  EXPECT_EQ(http_get(gw_.url("/fn/pid")).status, 200);
  EXPECT_TRUE(gw_.runner().running());
}

// Whether a runner connection is served (may hold an instance connection
// too) is decided at its first REQUEST, not at accept.  Connections that
// sent nothing yet may not be shed (nginx writes its REQUEST right after
// connecting), so if they took served slots at accept, a peer that only
// connects could leave nginx's next connection nothing but a 503.  Here
// every connection the runner keeps open but two is taken by such peers:
// nginx's requests are still served, and the peers are closed after
// frameTimeout.
TEST_F(RunnerHardeningTest, ConnectionsThatSentNoFrameTakeNoServedSlot) {
  add_lifecycle_function("fn", "    instanceConcurrency: 10\n    maxInstances: 1\n");
  gw_.add_runner_yaml("frameTimeout: 3\n");
  gw_.set_runner_wrapper({"prlimit", "--nofile=128:128", "--"});
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/fn/pid")).status, 200);
  std::smatch m;
  std::string log_start = gw_.runner_log();
  ASSERT_TRUE(std::regex_search(log_start, m, std::regex(R"(open-file limit 128: \d+ descriptors kept .*, (\d+) runner connections served .*, (\d+) more )")))
      << log_start;
  size_t served = std::stoul(m[1]), more = std::stoul(m[2]);
  ASSERT_GT(more, 2u);

  // nginx's pooled connection (served), the silent ones, and room for the
  // two more nginx opens for three requests at once, and one spare.
  std::vector<int> silent;
  for (size_t i = 0; i < served + more - 4; i++) {
    int fd = connect_unix(gw_.runner_socket());
    ASSERT_GE(fd, 0);
    silent.push_back(fd);
  }
  // nginx's connections queue behind the silent ones (the listen queue is
  // first in, first out): the runner has taken those when it sees these.
  auto started = Clock::now();
  std::vector<std::future<HttpResponse>> requests;
  for (int i = 0; i < 3; i++) requests.push_back(get_async("/fn/sleep?s=0.5"));
  for (auto& f : requests) {
    HttpResponse r = f.get();
    EXPECT_EQ(r.status, 200) << r.body << r.error;
  }
  EXPECT_LT(Clock::now() - started, 2500ms) << "the requests waited for frameTimeout";

  std::this_thread::sleep_for(3500ms);
  EXPECT_EQ(close_and_count_closed_by_peer(silent, timeval{1, 0}), silent.size());
  EXPECT_TRUE(gw_.runner_logged("no frame came within 3000 ms of connecting (frameTimeout)"));
  EXPECT_EQ(http_get(gw_.url("/fn/pid")).status, 200);
}

TEST_F(RunnerHardeningTest, TheOpenFileLimitIsRaisedToTheHardLimitAndTheBacklogIsTheKernels) {
  add_lifecycle_function("fn");
  gw_.set_runner_wrapper({"prlimit", "--nofile=1024:4096", "--"});
  gw_.start();
  std::string log = gw_.runner_log();
  EXPECT_NE(log.find("open-file limit 4096"), std::string::npos) << log;
  int somaxconn = 0;
  std::ifstream("/proc/sys/net/core/somaxconn") >> somaxconn;
  ASSERT_GT(somaxconn, 0);
  EXPECT_NE(log.find("listen backlog " + std::to_string(somaxconn) + ","), std::string::npos) << log;
}

TEST_F(RunnerHardeningTest, AConfiguredListenBacklogIsUsed) {
  add_lifecycle_function("fn");
  gw_.add_runner_yaml("listenBacklog: 77\n");
  gw_.start();
  EXPECT_TRUE(gw_.runner_logged("listen backlog 77,"));
  EXPECT_EQ(http_get(gw_.url("/fn/pid")).status, 200);
}

// An open-file limit too small for the work.  The runner shares the limit
// out at listen: every served runner connection needs an instance
// connection too, so a burst past what it allows is answered 503
// RunnerUnavailable (JSON, by the module) on overflow connections, never
// reset (nginx's own HTML 502), with a warning naming EMFILE and the limit.
// The instance is not blamed for the runner's shortage, and everything is
// served again once the burst is over.
TEST_F(RunnerHardeningTest, RunningOutOfDescriptorsFailsRequestsAloneAndBlamesNoInstance) {
  add_lifecycle_function("fn", "    instanceConcurrency: 100\n    maxInstances: 1\n    maxQueueSize: 1000\n");
  add_lifecycle_function("other", "    maxInstances: 1\n");
  gw_.add_runner_yaml("admin: unix:" + gw_.path("admin.sock") + "\n");
  gw_.set_runner_wrapper({"prlimit", "--nofile=128:128", "--"});
  gw_.start();
  HttpResponse first = http_get(gw_.url("/fn/pid"));
  ASSERT_EQ(first.status, 200);
  pid_t pid = json::parse(first.body)["pid"];
  ASSERT_EQ(http_get(gw_.url("/other/pid")).status, 200);
  EXPECT_TRUE(gw_.runner_logged("open-file limit 128: "));

  auto run_burst = [&](int n, int& served, int& unavailable) {
    std::vector<std::future<HttpResponse>> burst;
    for (int i = 0; i < n; i++) burst.push_back(get_async("/fn/sleep?s=1.5"));
    served = unavailable = 0;
    for (auto& f : burst) {
      HttpResponse r = f.get();
      if (r.status == 200) {
        served++;
        EXPECT_EQ(json::parse(r.body)["pid"].get<pid_t>(), pid);
        continue;
      }
      // Nothing else: no HTML 502 of nginx's own, no timeout.
      EXPECT_EQ(r.status, 503) << r.body << r.error;
      EXPECT_EQ(r.header("x-fc-error-type"), "RunnerUnavailable") << r.body;
      json body = json::parse(r.body, nullptr, false);
      ASSERT_FALSE(body.is_discarded()) << "not the JSON error: " << r.body;
      EXPECT_EQ(body["errorCode"], "RunnerUnavailable") << r.body;
      EXPECT_NE(body["errorMessage"].get<std::string>().find("file descriptors"), std::string::npos) << r.body;
      unavailable++;
    }
  };
  int served = 0, unavailable = 0;
  run_burst(100, served, unavailable);
  std::cout << "100 requests at nofile=128: " << served << " 200, " << unavailable
            << " JSON 503 RunnerUnavailable\n";
  EXPECT_EQ(served + unavailable, 100);
  EXPECT_GT(served, 30);
  EXPECT_GT(unavailable, 0) << "the burst did not reach the limit: the test tests nothing";
  EXPECT_TRUE(gw_.runner_logged("out of file descriptors (EMFILE) at the open-file limit 128"));
  std::string log = gw_.runner_log();
  EXPECT_EQ(log.find("unhealthy"), std::string::npos) << log;
  EXPECT_EQ(log.find("accept on"), std::string::npos) << "accept() met EMFILE: " << log;

  // The instance is still the same one, ready, with no failure counted.
  auto [rc, status_out] = run("curl -s --unix-socket " + gw_.path("admin.sock") + " http://runner/status");
  ASSERT_EQ(rc, 0) << status_out;
  json status = json::parse(status_out, nullptr, false);
  ASSERT_FALSE(status.is_discarded()) << status_out;
  for (const auto& fn : status["functions"]) {
    ASSERT_EQ(fn["instances"].size(), 1u) << status_out;
    EXPECT_NE(fn["instances"][0]["state"], "unhealthy") << status_out;
  }
  auto [mrc, metrics_out] = run("curl -s --unix-socket " + gw_.path("admin.sock") + " http://runner/metrics");
  ASSERT_EQ(mrc, 0);
  std::map<std::string, double> m = parse_metrics(metrics_out, gw_.dir());
  ASSERT_EQ(m.count("fc_instance_failures_total{function=fn}"), 1u) << metrics_out;
  EXPECT_EQ(m["fc_instance_failures_total{function=fn}"], 0) << metrics_out;

  // Recovered: the other function and the same instance serve again, and a
  // burst the limit allows is served whole.
  EXPECT_EQ(http_get(gw_.url("/other/pid")).status, 200);
  for (int i = 0; i < 5; i++) {
    HttpResponse r = http_get(gw_.url("/fn/pid"));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, first.body) << "the instance was replaced";
  }
  run_burst(20, served, unavailable);
  EXPECT_EQ(served, 20);
  run_burst(100, served, unavailable);
  std::cout << "again: " << served << " 200, " << unavailable << " JSON 503 RunnerUnavailable\n";
  EXPECT_EQ(served + unavailable, 100);
  EXPECT_GT(served, 30);
  EXPECT_EQ(http_get(gw_.url("/fn/pid")).body, first.body);
  EXPECT_TRUE(gw_.runner().running());
}

TEST_F(RunnerHardeningTest, StatusesNoClientCanBeGivenAre502BadResponse) {
  add_app_function("echo", "echo_app.py", "    maxInstances: 1\n");
  gw_.start();
  HttpResponse before = http_get(gw_.url("/echo/pid"));
  ASSERT_EQ(before.status, 200);
  for (int bad : {99, 101, 600, 999}) {
    HttpResponse r = http_get(gw_.url("/echo/status/" + std::to_string(bad)));
    EXPECT_EQ(r.status, 502) << bad;
    EXPECT_EQ(r.header("x-fc-error-type"), "BadResponse") << bad;
    EXPECT_NE(r.body.find(std::to_string(bad)), std::string::npos) << r.body;
  }
  // Edges that are valid pass through; the instance was not replaced for it.
  EXPECT_EQ(http_get(gw_.url("/echo/status/599")).status, 599);
  HttpResponse after = http_get(gw_.url("/echo/pid"));
  EXPECT_EQ(after.body, before.body) << "an app that answers wrongly is not replaced for it";
}

}  // namespace
}  // namespace fc::e2e
