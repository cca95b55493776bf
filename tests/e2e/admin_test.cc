// The admin API (issue 10): /status, /metrics (checked with Debian's
// python3-prometheus-client parser), /healthz, /reload (more in reload_test.cc), and what a bad admin
// request may break (only its own connection).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

struct AdminReply {
  int status = 0;
  std::string head;
  std::string body;
  bool closed = false;  // the runner closed the connection after it
};

// Reads one HTTP/1.1 answer (Content-Length framed) from `fd`.
AdminReply read_reply(int fd) {
  AdminReply reply;
  std::string in;
  char buf[65536];
  size_t head_end = std::string::npos;
  size_t length = 0;
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (;;) {
    if (head_end == std::string::npos) {
      head_end = in.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        reply.head = in.substr(0, head_end);
        auto pos = reply.head.find("Content-Length: ");
        if (pos != std::string::npos) length = std::stoul(reply.head.substr(pos + 16));
        reply.status = std::stoi(reply.head.substr(9, 3));
      }
    }
    if (head_end != std::string::npos && in.size() >= head_end + 4 + length) break;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      reply.closed = true;
      break;
    }
    in.append(buf, static_cast<size_t>(n));
  }
  if (head_end != std::string::npos) reply.body = in.substr(head_end + 4, length);
  return reply;
}

// True when the peer closed `fd` (EOF within 5 s).
bool peer_closed(int fd) {
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char c;
  return ::read(fd, &c, 1) == 0;
}

void send_all(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

class AdminTest : public GatewayFixture {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(gw_.path("state"));
    gw_.add_runner_yaml("admin: unix:" + admin_socket() + "\n");
  }

  std::string admin_socket() const { return gw_.path("admin.sock"); }

  void add_function(const std::string& name, const std::string& extra) {
    add_app_function(name, "lifecycle_app.py",
                     "    environmentVariables: { STATE_DIR: " + gw_.path("state") + " }\n" + extra);
  }

  // One request on a fresh admin connection ("Connection: close").
  AdminReply admin(const std::string& method, const std::string& path) {
    int fd = connect_unix(admin_socket());
    EXPECT_GE(fd, 0) << "cannot connect to " << admin_socket();
    if (fd < 0) return {};
    send_all(fd, method + " " + path + " HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    AdminReply reply = read_reply(fd);
    if (!reply.closed) reply.closed = peer_closed(fd);
    ::close(fd);
    return reply;
  }

  json status() {
    AdminReply reply = admin("GET", "/status");
    EXPECT_EQ(reply.status, 200) << reply.body;
    return json::parse(reply.body);
  }

  // /metrics through prometheus_client's own parser (harness.h).
  std::map<std::string, double> metrics() {
    AdminReply reply = admin("GET", "/metrics");
    EXPECT_EQ(reply.status, 200);
    EXPECT_NE(reply.head.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << reply.head;
    return parse_metrics(reply.body, gw_.dir());
  }
};

TEST_F(AdminTest, SocketIsMode0600AndHealthzIsOk) {
  add_function("h", "");
  gw_.start();
  struct stat st {};
  ASSERT_EQ(stat(admin_socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  AdminReply reply = admin("GET", "/healthz");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "ok\n");
  EXPECT_TRUE(reply.closed);
}

// A request for a function that does not exist is counted, and every such
// name lands in the same one series: names chosen by clients make no series.
TEST_F(AdminTest, UnknownFunctionsCountInOneSeries) {
  add_function("m", "");
  gw_.add_server_conf("    location ~ ^/fn/(?<fn>[^/]+)/ { fc_function $fn; }\n");
  gw_.start();
  // Valid names (nginx answers a name outside FC's rule itself).
  for (const char* name : {"nosuch", "other_missing", "Third-1"}) {
    HttpResponse missing = http_get(gw_.url(std::string("/fn/") + name + "/x"));
    EXPECT_EQ(missing.status, 404) << name << " " << missing.error;
    EXPECT_EQ(missing.header("x-fc-error-type"), "FunctionNotFound") << name;
  }
  ASSERT_EQ(http_get(gw_.url("/m/fast")).status, 200);
  auto m = metrics();
  EXPECT_EQ(m["fc_requests_total{code=FunctionNotFound,function=(unknown)}"], 3);
  EXPECT_EQ(m["fc_requests_total{code=2xx,function=m}"], 1);
  size_t series = 0;
  for (const auto& [name, value] : m) series += name.rfind("fc_requests_total{", 0) == 0 ? 1 : 0;
  EXPECT_EQ(series, 2u) << "one series for the unknown names, one for m's 2xx";
}

TEST_F(AdminTest, StatusShowsInstancesWithRealPidsStatesAndInFlight) {
  add_function("s", "    maxInstances: 1\n    minInstances: 0\n");
  gw_.start();
  json idle = status();
  EXPECT_EQ(idle["runner"]["pid"].get<int>(), gw_.runner().pid());
  EXPECT_EQ(idle["runner"]["listen"], "unix:" + gw_.runner_socket());
  ASSERT_EQ(idle["functions"].size(), 1u);
  EXPECT_EQ(idle["functions"][0]["name"], "s");
  EXPECT_TRUE(idle["functions"][0]["instances"].empty());

  double before = wall_now();
  ASSERT_EQ(http_get(gw_.url("/s/fast")).status, 200);
  auto slow = get_async("/s/sleep?s=2");
  json busy;
  ASSERT_TRUE(wait_until(
      [&] {
        busy = status();
        auto& inst = busy["functions"][0]["instances"];
        return inst.size() == 1 && inst[0]["in_flight"] == 1;
      },
      3s))
      << busy.dump(2);
  const json& fn = busy["functions"][0];
  EXPECT_EQ(fn["config_hash"].get<std::string>().size(), 16u) << fn.dump();
  EXPECT_EQ(fn["limits"]["max_instances"], 1);
  EXPECT_EQ(fn["limits"]["instance_concurrency"], 1);
  EXPECT_EQ(fn["queue_depth"], 0);
  EXPECT_TRUE(fn["cap_reason"].is_null());
  const json& inst = fn["instances"][0];
  EXPECT_EQ(inst["state"], "busy");
  EXPECT_EQ(inst["requests_served"], 1);
  int pid = inst["pid"].get<int>();
  EXPECT_TRUE(pid_alive(pid));
  EXPECT_TRUE(pid_alive(inst["group_pid"].get<int>()));
  EXPECT_EQ(getpgid(pid), inst["group_pid"].get<int>());
  // The app's own pid, as it logged it at start.
  EXPECT_EQ(read_file(gw_.path("state/starts.log")).rfind(std::to_string(pid) + " ", 0), 0u)
      << pid << " " << read_file(gw_.path("state/starts.log"));
  // The pid is the app's own: it wrote a busy-<pid> marker for the running /sleep.
  EXPECT_TRUE(wait_until([&] { return std::filesystem::exists(gw_.path("state/busy-" + std::to_string(pid))); }, 2s))
      << pid << "\n" << read_file(gw_.path("state/starts.log"));
  EXPECT_GE(inst["cold_start_ms"].get<double>(), 0);
  EXPECT_LT(inst["cold_start_ms"].get<double>(), 10'000);
  EXPECT_GE(inst["started_at"].get<double>(), before - 1);
  EXPECT_LE(inst["started_at"].get<double>(), wall_now() + 1);
  EXPECT_GT(inst["memory_bytes"].get<long long>(), 1 << 20) << inst.dump();

  // A queued request shows as queue depth.
  auto queued = get_async("/s/fast");
  json waiting;
  EXPECT_TRUE(wait_until(
      [&] {
        waiting = status();
        return waiting["functions"][0]["queue_depth"] == 1;
      },
      2s))
      << waiting.dump(2);
  EXPECT_EQ(slow.get().status, 200);
  EXPECT_EQ(queued.get().status, 200);
  json after;
  EXPECT_TRUE(wait_until(
      [&] {
        after = status();
        auto& i = after["functions"][0]["instances"][0];
        return i["state"] == "ready" && i["in_flight"] == 0 && i["requests_served"] == 3;
      },
      2s))
      << after.dump(2);
}

TEST_F(AdminTest, MetricsCountRequestsAndAQueueFullAndParse) {
  add_function("m", "    maxInstances: 1\n    maxQueueSize: 1\n");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/m/fast")).status, 200);
  auto busy = get_async("/m/sleep?s=2");  // long enough for the /metrics parse below on a loaded machine
  std::this_thread::sleep_for(300ms);
  auto queued = get_async("/m/fast");
  std::this_thread::sleep_for(300ms);
  auto during = metrics();
  EXPECT_EQ(during["fc_queue_depth{function=m}"], 1);
  EXPECT_EQ(during["fc_in_flight{function=m}"], 1);
  EXPECT_EQ(during["fc_instances{function=m,state=busy}"], 1);
  HttpResponse rejected = http_get(gw_.url("/m/fast"));
  EXPECT_EQ(rejected.status, 503);
  EXPECT_EQ(rejected.header("x-fc-error-type"), "QueueFull");
  EXPECT_EQ(busy.get().status, 200);
  EXPECT_EQ(queued.get().status, 200);

  auto m = metrics();
  EXPECT_EQ(m["fc_requests_total{code=2xx,function=m}"], 3);
  EXPECT_EQ(m["fc_requests_total{code=QueueFull,function=m}"], 1);
  EXPECT_EQ(m["fc_queue_rejections_total{function=m,reason=QueueFull}"], 1);
  EXPECT_EQ(m["fc_queue_rejections_total{function=m,reason=QueueTimeout}"], 0);
  EXPECT_EQ(m["fc_request_duration_seconds_count{function=m}"], 4);
  EXPECT_EQ(m["fc_request_duration_seconds_bucket{function=m,le=+Inf}"], 4);
  // The 2 s request is above le=1 and the fast ones below: buckets are cumulative.
  EXPECT_LE(m["fc_request_duration_seconds_bucket{function=m,le=1.0}"], 3);
  EXPECT_GE(m["fc_request_duration_seconds_bucket{function=m,le=2.5}"], 3);
  EXPECT_GE(m["fc_request_duration_seconds_sum{function=m}"], 1.5);
  EXPECT_EQ(m["fc_cold_starts_total{function=m}"], 1);
  EXPECT_EQ(m["fc_cold_start_duration_seconds_count{function=m}"], 1);
  EXPECT_EQ(m["fc_instance_starts_total{function=m}"], 1);
  EXPECT_EQ(m["fc_instance_failures_total{function=m}"], 0);
  EXPECT_EQ(m["fc_queue_depth{function=m}"], 0);
  EXPECT_EQ(m["fc_in_flight{function=m}"], 0);
  EXPECT_EQ(m["fc_instances{function=m,state=ready}"], 1);
  EXPECT_EQ(m["fc_runner_frame_errors_total{}"], 0);
  EXPECT_GE(m["fc_runner_connections{}"], 1);
  EXPECT_GT(m["process_resident_memory_bytes{}"], 0);
}

TEST_F(AdminTest, AMalformedFrameOnTheRunnerSocketIsAFrameError) {
  add_function("f", "");
  gw_.start();
  EXPECT_EQ(metrics()["fc_runner_frame_errors_total{}"], 0);
  int fd = connect_unix(gw_.runner_socket());
  ASSERT_GE(fd, 0);
  // Not a frame: an unknown version and type in the header.
  send_all(fd, std::string(64, '\xff'));
  EXPECT_TRUE(peer_closed(fd));
  ::close(fd);
  EXPECT_TRUE(wait_until([&] { return metrics()["fc_runner_frame_errors_total{}"] == 1; }, 2s));
}

TEST_F(AdminTest, HealthzIs503WhileShuttingDown) {
  add_function("d", "");
  gw_.add_runner_yaml("shutdownTimeout: 5\n");
  gw_.start();
  auto slow = get_async("/d/sleep?s=2");
  ASSERT_TRUE(wait_until([&] { return status()["functions"][0]["instances"][0]["in_flight"] == 1; }, 3s));
  kill(gw_.runner().pid(), SIGTERM);
  AdminReply reply;
  EXPECT_TRUE(wait_until(
      [&] {
        reply = admin("GET", "/healthz");
        return reply.status == 503;
      },
      1s))
      << reply.status;
  EXPECT_EQ(reply.body, "shutting down\n");
  // An open admin connection does not hold the runner up.
  int idle = connect_unix(admin_socket());
  EXPECT_GE(idle, 0);
  EXPECT_EQ(slow.get().status, 200);
  EXPECT_TRUE(wait_until([&] { return !gw_.runner().running(); }, 5s));
  EXPECT_FALSE(std::filesystem::exists(admin_socket()));
  if (idle >= 0) ::close(idle);
}

TEST_F(AdminTest, ReloadAnswersJsonUnknownPathIs404WrongMethodIs405AllJson) {
  add_function("r", "");
  gw_.start();
  // An unchanged config: applied, nothing touched (reload_test.cc has the rest).
  AdminReply reload = admin("POST", "/reload");
  EXPECT_EQ(reload.status, 200) << reload.body;
  EXPECT_EQ(json::parse(reload.body)["ok"], true);
  EXPECT_EQ(json::parse(reload.body)["functions"]["unchanged"], json::parse(R"(["r"])"));

  AdminReply unknown = admin("GET", "/nope");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(json::parse(unknown.body)["error"], "NotFound");

  AdminReply wrong = admin("GET", "/reload");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(json::parse(wrong.body)["error"], "MethodNotAllowed");
  EXPECT_NE(wrong.head.find("Allow: POST"), std::string::npos) << wrong.head;
  EXPECT_EQ(admin("POST", "/status").status, 405);
  // A query string does not change the endpoint.
  EXPECT_EQ(admin("GET", "/healthz?x=1").status, 200);
}

TEST_F(AdminTest, MalformedOrOversizeRequestClosesOnlyThatConnection) {
  add_function("b", "");
  gw_.start();
  // A keep-alive connection that stays open throughout.
  int good = connect_unix(admin_socket());
  ASSERT_GE(good, 0);
  send_all(good, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
  AdminReply first = read_reply(good);
  EXPECT_EQ(first.status, 200);
  EXPECT_FALSE(first.closed);

  int bad = connect_unix(admin_socket());
  ASSERT_GE(bad, 0);
  send_all(bad, "NOT HTTP AT ALL\r\n\r\n");
  AdminReply malformed = read_reply(bad);
  EXPECT_EQ(malformed.status, 400);
  EXPECT_TRUE(malformed.closed || peer_closed(bad));
  ::close(bad);

  int big = connect_unix(admin_socket());
  ASSERT_GE(big, 0);
  // Just over the limit (AdminConnection::kMaxRequestBytes, 16 KiB).
  send_all(big, "GET /status HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(16 * 1024, 'x') + "\r\n\r\n");
  AdminReply oversize = read_reply(big);
  EXPECT_EQ(oversize.status, 413);
  EXPECT_TRUE(oversize.closed || peer_closed(big));
  ::close(big);

  // Just under the limit is served.
  int fits = connect_unix(admin_socket());
  ASSERT_GE(fits, 0);
  send_all(fits, "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(15 * 1024, 'x') + "\r\n\r\n");
  EXPECT_EQ(read_reply(fits).status, 200);
  ::close(fits);

  // A client that half-closes after its request still gets the answer.
  int half = connect_unix(admin_socket());
  ASSERT_GE(half, 0);
  send_all(half, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
  ::shutdown(half, SHUT_WR);
  AdminReply half_reply = read_reply(half);
  EXPECT_EQ(half_reply.status, 200);
  EXPECT_TRUE(half_reply.closed || peer_closed(half));
  ::close(half);

  send_all(good, "GET /status HTTP/1.1\r\nHost: a\r\n\r\n");
  AdminReply second = read_reply(good);
  EXPECT_EQ(second.status, 200);
  EXPECT_FALSE(second.closed);
  ::close(good);
  EXPECT_EQ(http_get(gw_.url("/b/fast")).status, 200);
  EXPECT_TRUE(gw_.runner().running());
}

TEST(AdminCheck, NonLoopbackTcpAdminIsRefusedAtCheckWithFileLineKey) {
  TempDir tmp;
  std::string config = tmp.path() + "/fc-runner.yaml";
  write_file(config,
             "listen: unix:" + tmp.path() + "/fc.sock\n"
             "admin: 0.0.0.0:9180\n"
             "functions: {}\n");
  auto [rc, out] = run(runner_path() + " --config " + config + " --check");
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find(config + ":2: admin:"), std::string::npos) << out;
  EXPECT_NE(out.find("loopback"), std::string::npos) << out;

  write_file(config,
             "listen: unix:" + tmp.path() + "/fc.sock\n"
             "admin: 127.0.0.1:9180\n"
             "functions: {}\n");
  auto [ok_rc, ok_out] = run(runner_path() + " --config " + config + " --check");
  EXPECT_EQ(ok_rc, 0) << ok_out;
}

TEST(AdminTcp, LoopbackTcpAdminAnswersHealthz) {
  TempDir tmp;
  int port = free_port();
  std::string config = tmp.path() + "/fc-runner.yaml";
  write_file(config,
             "listen: unix:" + tmp.path() + "/fc.sock\n"
             "admin: 127.0.0.1:" + std::to_string(port) + "\n"
             "functions: {}\n");
  Process runner;
  runner.start({runner_path(), "--config", config}, tmp.path() + "/runner.log");
  HttpResponse reply;
  ASSERT_TRUE(wait_until(
      [&] {
        reply = http_get("http://127.0.0.1:" + std::to_string(port) + "/healthz");
        return reply.status == 200;
      },
      5s))
      << read_file(tmp.path() + "/runner.log");
  EXPECT_EQ(reply.body, "ok\n");
  HttpResponse metrics = http_get("http://127.0.0.1:" + std::to_string(port) + "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("# TYPE fc_runner_connections gauge"), std::string::npos);
  runner.stop();
}

}  // namespace
}  // namespace fc::e2e
