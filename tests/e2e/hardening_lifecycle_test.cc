// Lifecycle hardening (issue 6): whose time the function timeout measures,
// client aborts, connections the app closes, crash loops, start failures
// that leave a daemon behind, maxQueueSize 0, and $fc_cold_start.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "fc_proto.h"
#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Instance::kMaxConsecutiveFailures in the runner.
constexpr int kMaxConsecutiveFailures = 3;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int connect_tcp(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// A REQUEST frame for `function`, as nginx would send it.
std::string request_frame(const std::string& function, const std::string& method, const std::string& uri,
                          int64_t content_length, bool end_stream) {
  auto str = [](const std::string& s) { return fc_str_t{s.data(), s.size()}; };
  std::string version = "HTTP/1.1", addr = "127.0.0.1", scheme = "http", host = "test";
  fc_request_t req{};
  req.function = str(function);
  req.method = str(method);
  req.uri = str(uri);
  req.version = str(version);
  req.remote_addr = str(addr);
  req.remote_port = 1;
  req.scheme = str(scheme);
  req.host = str(host);
  req.content_length = content_length;
  std::string payload(fc_request_size_bound(&req), '\0');
  size_t written = 0;
  EXPECT_EQ(fc_request_encode(&req, reinterpret_cast<uint8_t*>(payload.data()), payload.size(), &written), FC_OK);
  payload.resize(written);
  uint8_t header[FC_FRAME_HEADER_SIZE];
  fc_frame_header_encode(header, FC_FRAME_REQUEST, end_stream ? FC_FLAG_END_STREAM : 0,
                         static_cast<uint32_t>(written));
  return std::string(reinterpret_cast<char*>(header), sizeof header) + payload;
}

std::string data_frame(const std::string& bytes, bool end_stream) {
  uint8_t header[FC_FRAME_HEADER_SIZE];
  fc_frame_header_encode(header, FC_FRAME_DATA, end_stream ? FC_FLAG_END_STREAM : 0,
                         static_cast<uint32_t>(bytes.size()));
  return std::string(reinterpret_cast<char*>(header), sizeof header) + bytes;
}

struct AccessLine {
  std::string request_id, status, cold_start, instance, request;
};

class HardeningTest : public GatewayFixture {
 protected:
  void SetUp() override { std::filesystem::create_directories(state_dir()); }

  std::string state_dir() const { return gw_.path("state"); }

  // A function running hardening_app.py at /<name>/...; `env` adds
  // environment variables (", NAME: value").
  void add_function(const std::string& name, const std::string& extra, const std::string& env = "") {
    add_app_function(name, "hardening_app.py",
                     "    environmentVariables: { STATE_DIR: " + state_dir() + env + " }\n" + extra);
  }

  std::vector<pid_t> started_pids() {
    std::vector<pid_t> pids;
    std::istringstream in(read_file(state_dir() + "/starts.log"));
    pid_t pid;
    double at;
    while (in >> pid >> at) pids.push_back(pid);
    return pids;
  }

  pid_t pid_of(const std::string& fn) {
    HttpResponse r = http_get(gw_.url("/" + fn + "/pid"));
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? json::parse(r.body)["pid"].get<pid_t>() : -1;
  }

  int peak_of(pid_t pid) {
    std::string text = read_file(state_dir() + "/peak-" + std::to_string(pid));
    return text.empty() ? 0 : std::stoi(text);
  }

  // The access log lines whose request line contains `marker`; nginx writes
  // a line just after its response, so this waits for `count` of them.
  std::vector<AccessLine> access_lines(const std::string& marker, size_t count) {
    std::vector<AccessLine> lines;
    wait_until(
        [&] {
          lines.clear();
          std::istringstream in(gw_.access_log());
          for (std::string line; std::getline(in, line);) {
            if (line.find(marker) == std::string::npos) continue;
            std::istringstream f(line);
            AccessLine a;
            f >> a.request_id >> a.status >> a.cold_start >> a.instance;
            std::getline(f, a.request);
            lines.push_back(a);
          }
          return lines.size() >= count;
        },
        3s);
    return lines;
  }
};

// Acceptance 1: a client that dribbles its body for longer than the
// function's timeout fails alone; the instance is neither timed out nor killed.
TEST_F(HardeningTest, SlowUploaderFailsAloneAndTheInstanceSurvives) {
  add_function("up", "    instanceConcurrency: 10\n    maxInstances: 1\n    timeout: 5\n");
  gw_.start();
  pid_t pid = pid_of("up");
  ASSERT_GT(pid, 0);

  int slow = connect_tcp(gw_.port());
  ASSERT_GE(slow, 0);
  ASSERT_TRUE(send_all(slow, "POST /up/upload HTTP/1.1\r\nHost: t\r\nContent-Length: 30\r\n\r\n"));
  auto t0 = Clock::now();
  std::vector<std::future<HttpResponse>> normal;
  for (int i = 0; i < 5; i++) normal.push_back(get_async("/up/sleep?s=0.2", 2s));
  // 1 byte/s, past the 5 s timeout, then the client gives up.
  for (int i = 0; i < 7; i++) {
    ASSERT_TRUE(send_all(slow, "x"));
    std::this_thread::sleep_for(1s);
  }
  for (auto& f : normal) {
    HttpResponse r = f.get();
    EXPECT_EQ(r.status, 200) << r.body << r.error;
    if (r.status == 200) {
      EXPECT_EQ(json::parse(r.body)["pid"].get<pid_t>(), pid);
    }
  }
  EXPECT_GT(seconds_since(t0), 6.5);
  close(slow);
  EXPECT_EQ(pid_of("up"), pid);
  EXPECT_TRUE(pid_alive(pid));
  EXPECT_EQ(started_pids().size(), 1u);
  EXPECT_EQ(gw_.runner_log().find("killed"), std::string::npos) << gw_.runner_log();
}

// The same straight at the runner: a REQUEST frame whose body never comes
// holds no timer against the instance.
TEST_F(HardeningTest, RequestFrameWhoseBodyNeverComesHoldsNoTimer) {
  add_function("nobody", "    instanceConcurrency: 4\n    maxInstances: 1\n    timeout: 1\n");
  gw_.start();
  pid_t pid = pid_of("nobody");
  ASSERT_GT(pid, 0);
  int raw = connect_unix(gw_.runner_socket());
  ASSERT_GE(raw, 0);
  ASSERT_TRUE(send_all(raw, request_frame("nobody", "POST", "/upload", 30, false) + data_frame("12345", false)));
  // Three timeouts' worth of waiting; others are served meanwhile.
  for (int i = 0; i < 6; i++) {
    std::this_thread::sleep_for(500ms);
    HttpResponse r = http_get(gw_.url("/nobody/pid"));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json::parse(r.body)["pid"].get<pid_t>(), pid);
  }
  // Nothing came back on the raw connection: no 504, no close.
  timeval tv{0, 200000};
  setsockopt(raw, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[256];
  EXPECT_LT(read(raw, buf, sizeof buf), 0) << "the runner answered a request whose body never came";
  close(raw);
  EXPECT_TRUE(pid_alive(pid));
  EXPECT_EQ(pid_of("nobody"), pid);
  EXPECT_EQ(gw_.runner_log().find("killed"), std::string::npos) << gw_.runner_log();
}

// Acceptance 3: a stream that outlives `timeout` to a client that reads
// slowly completes; a handler that sleeps past it still gets 504 and is replaced.
TEST_F(HardeningTest, SlowReaderOfALongStreamIsNotTimedOutButASleepingHandlerIs) {
  add_function("sse", "    maxInstances: 1\n    timeout: 1\n");
  gw_.start();
  pid_t pid = pid_of("sse");
  ASSERT_GT(pid, 0);

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int small = 16 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(gw_.port()));
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const int chunks = 24, size = 128 * 1024;  // 3 MiB over 3 s
  ASSERT_TRUE(send_all(fd, "GET /sse/stream?chunks=" + std::to_string(chunks) + "&size=" + std::to_string(size) +
                               "&gap=0.125 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  auto t0 = Clock::now();
  std::string got;
  char buf[8192];
  ssize_t n;
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    got.append(buf, static_cast<size_t>(n));
    std::this_thread::sleep_for(10ms);  // a slow reader: ~0.8 MB/s at most
  }
  close(fd);
  double took = seconds_since(t0);
  EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got.substr(0, 200);
  EXPECT_GE(got.size(), static_cast<size_t>(chunks) * size);
  EXPECT_NE(got.find("END\n"), std::string::npos) << "the stream was cut after " << got.size() << " bytes";
  EXPECT_GT(took, 3.0);
  EXPECT_EQ(pid_of("sse"), pid);
  EXPECT_EQ(gw_.runner_log().find("killed"), std::string::npos);

  HttpResponse slow = http_get(gw_.url("/sse/sleep?s=4"));
  EXPECT_EQ(slow.status, 504);
  EXPECT_EQ(slow.header("x-fc-error-type"), "FunctionTimeout");
  EXPECT_LT(slow.total_s, 3.0);
  EXPECT_TRUE(wait_until([&] { return !pid_alive(pid); }, 3s)) << "the wedged instance still runs";
  pid_t replacement = pid_of("sse");
  EXPECT_GT(replacement, 0);
  EXPECT_NE(replacement, pid);
}

// Acceptance 4: a client that leaves does not give the slot back while the
// app still runs its request.
TEST_F(HardeningTest, AbortedRequestKeepsItsSlotUntilTheAppFinished) {
  add_function("one", "    instanceConcurrency: 1\n    maxInstances: 1\n    timeout: 10\n");
  gw_.start();
  pid_t pid = pid_of("one");
  ASSERT_GT(pid, 0);
  HttpRequest leaving;
  leaving.url = gw_.url("/one/sleep?s=3");
  leaving.timeout_ms = 500;
  auto t0 = Clock::now();
  HttpResponse cut = http(leaving);
  EXPECT_FALSE(cut.error.empty());
  HttpResponse second = http_get(gw_.url("/one/sleep?s=0.1"));
  ASSERT_EQ(second.status, 200) << second.body;
  json info = json::parse(second.body);
  EXPECT_EQ(info["pid"].get<pid_t>(), pid);
  EXPECT_EQ(info["peak"].get<int>(), 1) << "the app ran the second request beside the abandoned one";
  EXPECT_EQ(peak_of(pid), 1);
  // It waited for the abandoned request to end.
  EXPECT_GT(seconds_since(t0), 2.5);
  EXPECT_EQ(started_pids().size(), 1u);
}

// A client that leaves in the middle of its body: the instance reads the end
// of the body (the runner ends it), finishes, and the slot comes back.
TEST_F(HardeningTest, ClientLeavingMidBodyGivesTheSlotBackOnceTheAppFinished) {
  add_function("mid", "    instanceConcurrency: 1\n    maxInstances: 1\n    timeout: 10\n");
  gw_.start();
  pid_t pid = pid_of("mid");
  ASSERT_GT(pid, 0);
  int raw = connect_tcp(gw_.port());
  ASSERT_GE(raw, 0);
  // Larger than client_body_buffer_size, so nginx streams it instead of
  // collecting it first.
  ASSERT_TRUE(send_all(raw, "POST /mid/upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n0123456789"));
  std::this_thread::sleep_for(500ms);
  close(raw);
  auto t0 = Clock::now();
  HttpResponse next = http_get(gw_.url("/mid/sleep?s=0"));
  ASSERT_EQ(next.status, 200) << next.body;
  EXPECT_LT(seconds_since(t0), 2.0) << "the abandoned upload kept the slot";
  json info = json::parse(next.body);
  EXPECT_EQ(info["pid"].get<pid_t>(), pid);
  EXPECT_EQ(info["peak"].get<int>(), 1);
  // The app saw the body end early (10 of 100000 bytes) and answered into the void.
  EXPECT_TRUE(wait_until([&] { return gw_.runner_log().find("POST /upload HTTP/1.1\" 200") != std::string::npos; }, 2s))
      << gw_.runner_log();
}

// Item 4: one connection the app closes early fails that request alone
// (502 BadResponse); a run of them replaces the instance.
TEST_F(HardeningTest, ConnectionClosedByTheAppFailsOnlyThatRequestUntilItRepeats) {
  add_function("drop", "    instanceConcurrency: 2\n    maxInstances: 1\n");
  gw_.start();
  pid_t pid = pid_of("drop");
  ASSERT_GT(pid, 0);
  auto bystander = get_async("/drop/sleep?s=1");
  std::this_thread::sleep_for(200ms);
  HttpResponse dropped = http_get(gw_.url("/drop/drop"));
  EXPECT_EQ(dropped.status, 502);
  EXPECT_EQ(dropped.header("x-fc-error-type"), "BadResponse");
  HttpResponse b = bystander.get();
  EXPECT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(pid_of("drop"), pid);  // resets the failure count
  EXPECT_TRUE(pid_alive(pid));

  for (int i = 0; i < kMaxConsecutiveFailures; i++) {
    HttpResponse r = http_get(gw_.url("/drop/drop"));
    EXPECT_EQ(r.status, 502);
  }
  EXPECT_TRUE(wait_until([&] { return !pid_alive(pid); }, 8s)) << "the failing instance was not replaced";
  pid_t replacement = pid_of("drop");
  EXPECT_GT(replacement, 0);
  EXPECT_NE(replacement, pid);
  EXPECT_TRUE(gw_.runner_logged("unhealthy"));
}

// Item 4/9: a live process whose listener closed is replaced on the next request.
TEST_F(HardeningTest, LiveProcessWithoutAListenerIsReplacedOnTheNextRequest) {
  add_function("deaf", "    maxInstances: 1\n");
  gw_.start();
  pid_t pid = pid_of("deaf");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(http_get(gw_.url("/deaf/close-listener")).status, 200);
  std::this_thread::sleep_for(1200ms);  // past the idle keep-alive reuse window
  ASSERT_TRUE(pid_alive(pid));
  HttpResponse refused = http_get(gw_.url("/deaf/pid"));
  EXPECT_EQ(refused.status, 502) << refused.body;
  EXPECT_TRUE(gw_.runner_logged("unhealthy"));  // the line trails the reply
  EXPECT_TRUE(wait_until([&] { return !pid_alive(pid); }, 8s)) << "the deaf instance still runs";
  pid_t replacement = pid_of("deaf");
  EXPECT_GT(replacement, 0);
  EXPECT_NE(replacement, pid);
}

// Acceptance 9: initializes, then crashes on every request: the backoff
// grows across ready instances too.
TEST_F(HardeningTest, FunctionCrashingOnEveryRequestBacksOff) {
  add_function("loop", "    initializer: index.initializer\n    maxInstances: 1\n    maxQueueTime: 1\n",
               ", CRASH_ON_REQUEST: '1'");
  gw_.start();
  auto t0 = Clock::now();
  int answered = 0;
  while (seconds_since(t0) < 20) {
    HttpResponse r = http_get(gw_.url("/loop/pid"));
    EXPECT_NE(r.status, 200);
    answered++;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_GT(answered, 10);
  size_t starts = started_pids().size();
  EXPECT_GE(starts, 3u);
  EXPECT_LE(starts, 8u) << "instances started in 20 s";
}

// The restart backoff grows for every replacement that fails again, even
// when each served a request before it crashed, and resets only once an
// instance has served well for a while (Function::kHealthyServiceMs, 10 s).
TEST_F(HardeningTest, BackoffResetsOnlyAfterAnInstanceServedWellForAWhile) {
  add_function("flaky", "    maxInstances: 1\n    maxQueueTime: 30\n");
  gw_.add_runner_yaml("logLevel: debug\n");
  gw_.start();
  ASSERT_GT(pid_of("flaky"), 0);
  // Backoff after the 1st, 2nd, 3rd crash: 0.5, 1, 2 s.
  double waited = 0;
  for (int i = 0; i < 3; i++) {
    HttpResponse crash = http_get(gw_.url("/flaky/crash"));
    EXPECT_EQ(crash.status, 502) << crash.body;
    auto t0 = Clock::now();
    ASSERT_GT(pid_of("flaky"), 0) << "crash " << i;
    waited = seconds_since(t0);
  }
  EXPECT_GT(waited, 1.6) << "one request served did not count as serving well";
  EXPECT_FALSE(gw_.runner_log().find("restart backoff reset") != std::string::npos);

  // Serves well past kHealthyServiceMs: the backoff is forgiven.
  pid_t healthy = pid_of("flaky");
  auto served_from = Clock::now();
  while (seconds_since(served_from) < 11) {
    ASSERT_EQ(pid_of("flaky"), healthy);
    std::this_thread::sleep_for(250ms);
  }
  EXPECT_TRUE(gw_.runner_logged("restart backoff reset"));
  EXPECT_EQ(http_get(gw_.url("/flaky/crash")).status, 502);
  auto t0 = Clock::now();
  ASSERT_GT(pid_of("flaky"), 0);
  // 0.5 s and a start, not the 4 s a 4th failure in a row would wait.
  EXPECT_LT(seconds_since(t0), 3.0);
}

// Acceptance 9: a start failure that leaves a daemon holding its stdout
// neither pins maxInstances nor stops the runner from exiting.
TEST_F(HardeningTest, DaemonizingStartFailureDoesNotPinTheInstance) {
  std::string script = state_dir() + "/daemonize.sh";  // the one place of the test instances see
  std::filesystem::create_directories(state_dir());
  // The first start leaves a daemon (its own session, our stdout) and fails;
  // later starts run the app.
  write_file(script,
             "if [ ! -e " + state_dir() + "/daemonized ]; then\n"
             "  touch " + state_dir() + "/daemonized\n"
             "  setsid sh -c 'echo $$ > " + state_dir() + "/daemon.pid; exec sleep 60' &\n"
             "  while [ ! -s " + state_dir() + "/daemon.pid ]; do sleep 0.01; done\n"
             "  echo 'leaving a daemon behind'\n"
             "  exit 1\n"
             "fi\n"
             "exec /usr/bin/python3 " + app_path("hardening_app.py") + "\n");
  gw_.add_functions_yaml("  daemon:\n    runtime: custom\n    codeUri: " FC_E2E_APPS_DIR
                         "\n    customRuntimeConfig: { command: [/bin/sh], args: [" + script +
                         "] }\n    maxInstances: 1\n    environmentVariables: { STATE_DIR: " + state_dir() +
                         " }\n");
  gw_.add_server_conf("    location /daemon/ { rewrite ^/daemon(/.*)$ $1 break; fc_function daemon; }\n");
  gw_.start();
  HttpResponse first = http_get(gw_.url("/daemon/pid"));
  EXPECT_EQ(first.status, 503) << first.body;
  EXPECT_EQ(first.header("x-fc-error-type"), "InitializationFailed");
  // The daemon did start (its pid is one of the instance's own pid namespace,
  // which ends with the instance: issue 9).
  ASSERT_FALSE(read_file(state_dir() + "/daemon.pid").empty());
  // maxInstances 1 recovers once the backoff allows a new start.
  bool served = wait_until([&] { return http_get(gw_.url("/daemon/pid")).status == 200; }, 5s);
  EXPECT_TRUE(served) << "the failed instance still counts against maxInstances";
  auto t0 = Clock::now();
  kill(gw_.runner().pid(), SIGTERM);
  EXPECT_TRUE(wait_until([&] { return !gw_.runner().running(); }, 10s)) << "SIGTERM did not finish";
  EXPECT_LT(seconds_since(t0), 10.0);
}

// Item 5: maxQueueSize 0 means no waiting, not no scaling.
TEST_F(HardeningTest, MaxQueueSizeZeroRefusesAtOnceButStillStartsAnInstance) {
  add_function("nowait", "    maxInstances: 1\n    maxQueueSize: 0\n");
  gw_.start();
  HttpResponse cold = http_get(gw_.url("/nowait/pid"));
  EXPECT_EQ(cold.status, 503);
  EXPECT_EQ(cold.header("x-fc-error-type"), "QueueFull");
  EXPECT_LT(cold.total_s, 0.5);
  ASSERT_TRUE(wait_until([&] { return started_pids().size() == 1; }, 5s)) << "no instance was started";
  bool served = wait_until([&] { return http_get(gw_.url("/nowait/pid")).status == 200; }, 5s);
  EXPECT_TRUE(served);
  // Busy, and no waiting: refused at once again.
  auto busy = get_async("/nowait/sleep?s=1");
  std::this_thread::sleep_for(300ms);
  HttpResponse refused = http_get(gw_.url("/nowait/pid"));
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.header("x-fc-error-type"), "QueueFull");
  EXPECT_EQ(busy.get().status, 200);
}

// Item 6: $fc_cold_start is 1 only when the instance that served the request
// was not ready yet when the request came; a warm instance freeing up while
// another starts serves it warm.
TEST_F(HardeningTest, ColdStartIsOnlyForTheInstanceTheRequestWaitedFor) {
  add_app_function("cs", "lifecycle_app.py",
                   "    initializer: index.initializer\n    maxInstances: 2\n"
                   "    environmentVariables: { STATE_DIR: " + state_dir() + ", INIT_SLEEP: 1.5 }\n");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/cs/fast?mark=warmup")).status, 200);
  auto a = get_async("/cs/sleep?s=0.5&mark=a");
  auto b = get_async("/cs/fast?mark=b", 150ms);  // queued: starts a second instance
  HttpResponse ra = a.get();
  HttpResponse rb = b.get();
  ASSERT_EQ(ra.status, 200);
  ASSERT_EQ(rb.status, 200);
  EXPECT_LT(rb.total_s, 1.2) << "B waited for the new instance";
  auto warmup = access_lines("mark=warmup", 1);
  auto la = access_lines("mark=a", 1);
  auto lb = access_lines("mark=b", 1);
  ASSERT_EQ(warmup.size(), 1u);
  ASSERT_EQ(la.size(), 1u);
  ASSERT_EQ(lb.size(), 1u);
  EXPECT_EQ(warmup[0].cold_start, "1");
  EXPECT_EQ(la[0].cold_start, "0");
  // B was served by the warm instance, which freed first: warm.
  EXPECT_EQ(lb[0].instance, warmup[0].instance);
  EXPECT_EQ(lb[0].cold_start, "0");
}

}  // namespace
}  // namespace fc::e2e
