// The gateway end to end (issue 2): real nginx + ngx_http_fc_module + fc-runner
// + a custom-runtime instance written with Python's standard library.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "fc_proto.h"
#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::string custom_function(const std::string& name, const std::string& extra = "") {
  return "  " + name +
         ":\n"
         "    runtime: custom\n"
         "    codeUri: " FC_E2E_APPS_DIR "\n"
         "    customRuntimeConfig:\n"
         "      command: [/usr/bin/python3]\n"
         "      args: [echo_app.py]\n" +
         extra;
}

class GatewayTest : public GatewayFixture {
 protected:
  void SetUp() override {
    gw_.add_functions_yaml(custom_function("echo"));
    gw_.add_functions_yaml(custom_function("other"));
    gw_.add_functions_yaml(custom_function("ev", "    type: event\n"));
    gw_.add_functions_yaml(
        "  plain:\n"
        "    runtime: custom\n"
        "    codeUri: " FC_E2E_APPS_DIR "\n"
        "    customRuntimeConfig: { command: [/usr/bin/python3], args: [plain_app.py] }\n");
    gw_.add_server_conf(
        "    location / { fc_function echo; }\n"
        "    location /ev/ { fc_function ev; }\n"
        "    location /plain/ { fc_function plain; }\n"
        "    location ~ ^/fn/(?<fn>[a-z_]+)/ { fc_function $fn; }\n"
        "    location /app/ { rewrite ^/app(/.*)$ $1 break; fc_function echo; }\n"
        "    location /reqbuf/ { rewrite ^/reqbuf(/.*)$ $1 break; fc_request_buffering on;"
        " fc_function echo; }\n"
        "    location /respbuf/ { rewrite ^/respbuf(/.*)$ $1 break; fc_buffering on;"
        " fc_function echo; }\n");
  }
};

std::string random_bytes(size_t n) {
  std::mt19937_64 rng(42);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    memcpy(&s[i], &v, std::min<size_t>(8, n - i));
  }
  return s;
}

TEST_F(GatewayTest, MethodsAndRawPathReachTheInstanceUnchanged) {
  gw_.start();
  const std::string path = "/inspect/a%2Fb/c+d/%E2%9C%93?q=%2F&r=a+b&s=%E2%9C%93";
  for (const char* method : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
    HttpRequest req;
    req.method = method;
    req.url = gw_.url(path);
    if (std::string(method) == "POST" || std::string(method) == "PUT" ||
        std::string(method) == "PATCH")
      req.body = "payload";
    HttpResponse resp = http(req);
    ASSERT_EQ(resp.status, 200) << method << " " << resp.error;
    EXPECT_EQ(resp.header("X-Seen-Method"), method);
    EXPECT_EQ(resp.header("X-Seen-Path"), path) << method;
    if (std::string(method) == "HEAD") {
      EXPECT_TRUE(resp.body.empty());
    } else {
      json info = json::parse(resp.body);
      EXPECT_EQ(info["method"], method);
      EXPECT_EQ(info["path"], path);
      EXPECT_EQ(info["body_len"], req.body ? req.body->size() : 0);
    }
  }
}

TEST_F(GatewayTest, InstanceOutputIsLoggedLineByLineWithFunctionAndInstance) {
  gw_.start();
  HttpResponse resp = http_get(gw_.url("/inspect/logged"));
  ASSERT_EQ(resp.status, 200) << resp.error;
  // echo_app logs each request on stderr; the runner tags the line.
  ASSERT_TRUE(wait_until(
      [&] { return gw_.runner_log().find("echo_app: \"GET /inspect/logged") != std::string::npos; },
      2s));
  std::string log = gw_.runner_log();
  size_t at = log.find("echo_app: \"GET /inspect/logged");
  size_t line_start = log.rfind('\n', at) + 1;
  EXPECT_NE(log.substr(line_start, at - line_start).find("[echo/"), std::string::npos)
      << log.substr(line_start, at - line_start + 40);
}

TEST_F(GatewayTest, RunnerSocketIsGroupOnlyByDefault) {
  gw_.start();
  struct stat st {};
  ASSERT_EQ(stat(gw_.runner_socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(GatewayTest, TenMiBBodyComesBackByteIdenticalWithContentLengthAndChunked) {
  gw_.start();
  const std::string body = random_bytes(10 << 20);
  for (bool chunked : {false, true}) {
    HttpRequest req;
    req.method = "POST";
    req.url = gw_.url("/echo");
    req.body = body;
    req.chunked = chunked;
    HttpResponse resp = http(req);
    ASSERT_EQ(resp.status, 200) << "chunked=" << chunked << " " << resp.error;
    ASSERT_EQ(resp.body.size(), body.size()) << "chunked=" << chunked;
    EXPECT_TRUE(resp.body == body) << "chunked=" << chunked;
  }
}

TEST_F(GatewayTest, BufferedRequestAndBufferedResponseAlsoCarryTenMiBIntact) {
  gw_.start();
  const std::string body = random_bytes(10 << 20);
  for (const char* prefix : {"/reqbuf", "/respbuf"}) {
    for (bool chunked : {false, true}) {
      HttpRequest req;
      req.method = "POST";
      req.url = gw_.url(std::string(prefix) + "/echo");
      req.body = body;
      req.chunked = chunked;
      HttpResponse resp = http(req);
      ASSERT_EQ(resp.status, 200) << prefix << " chunked=" << chunked << " " << resp.error;
      EXPECT_TRUE(resp.body == body) << prefix << " chunked=" << chunked;
    }
  }
}

TEST_F(GatewayTest, RequestBodyStreamsToTheInstanceWhileTheClientIsStillSending) {
  gw_.start();
  for (bool chunked : {false, true}) {
    HttpRequest req;
    req.method = "POST";
    req.url = gw_.url("/slow-upload");
    req.body = std::string(256 * 1024, 'x');
    req.chunked = chunked;
    req.pause_mid_body = 1500ms;
    HttpResponse resp = http(req);
    ASSERT_EQ(resp.status, 200) << resp.error;
    json info = json::parse(resp.body);
    EXPECT_EQ(info["body_len"], req.body->size());
    // The instance saw the first bytes before the client sent the second half.
    double first = info["first_byte_at"];
    EXPECT_LT(first, req.mid_body_wall_time + 1.0) << "chunked=" << chunked;
  }
}

TEST_F(GatewayTest, HeaderOrderAndDuplicatesSurvive) {
  gw_.start();
  HttpRequest req;
  req.url = gw_.url("/inspect");
  req.headers = {{"X-A", "1"}, {"X-B", "2"}, {"X-A", "3"}, {"X-Fc-Function-Name", "spoofed"}};
  HttpResponse resp = http(req);
  ASSERT_EQ(resp.status, 200) << resp.error;
  std::vector<std::string> seen;
  std::string fc_name;
  int fc_name_count = 0;
  json info = json::parse(resp.body);
  for (const auto& h : info["headers"]) {
    std::string name = h[0];
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    if (name == "x-a" || name == "x-b") seen.push_back(name + "=" + std::string(h[1]));
    if (name == "x-fc-function-name") {
      fc_name = h[1];
      fc_name_count++;
    }
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"x-a=1", "x-b=2", "x-a=3"})) << resp.body;
  // Client-sent x-fc-* headers are stripped; the runner's own is there once.
  EXPECT_EQ(fc_name_count, 1);
  EXPECT_EQ(fc_name, "echo");
}

// The module draws $request_id from a worker's pool of random bytes (256 ids
// a refill): more requests than one pool still get distinct 32-hex-digit
// ids, and the access log's $request_id is the x-fc-request-id the function saw.
TEST_F(GatewayTest, RequestIdsAreDistinctHexAndMatchTheAccessLog) {
  gw_.start();
  constexpr size_t kRequests = 300;
  std::set<std::string> seen;
  for (size_t i = 0; i < kRequests; i++) {
    HttpResponse resp = http_get(gw_.url("/inspect"));
    ASSERT_EQ(resp.status, 200) << resp.error;
    std::string id;
    json info = json::parse(resp.body);
    for (const auto& h : info["headers"]) {
      std::string name = h[0];
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      if (name == "x-fc-request-id") id = h[1].get<std::string>();
    }
    ASSERT_EQ(id.size(), 32u) << resp.body;
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), kRequests);
  std::set<std::string> logged;
  wait_until(
      [&] {
        logged.clear();
        std::istringstream lines(gw_.access_log());
        for (std::string line; std::getline(lines, line);) {
          if (line.find("/inspect") == std::string::npos) continue;
          logged.insert(line.substr(0, line.find(' ')));
        }
        return logged.size() >= kRequests;
      },
      3s);
  EXPECT_EQ(logged, seen);
}

TEST_F(GatewayTest, TwoSetCookieHeadersReachTheClient) {
  gw_.start();
  HttpResponse resp = http_get(gw_.url("/cookies"));
  ASSERT_EQ(resp.status, 200) << resp.error;
  EXPECT_EQ(resp.header_values("Set-Cookie"),
            (std::vector<std::string>{"a=1; Path=/", "b=2; Path=/"}));
}

TEST_F(GatewayTest, StatusesPassThroughAndHeadAnd204CarryNoBody) {
  gw_.start();
  for (int status : {200, 201, 204, 304, 404, 500}) {
    HttpResponse resp = http_get(gw_.url("/status/" + std::to_string(status)));
    ASSERT_EQ(resp.status, status) << resp.error;
    if (status == 204 || status == 304) {
      EXPECT_TRUE(resp.body.empty()) << status;
    } else {
      EXPECT_EQ(resp.body, "status " + std::to_string(status) + "\n");
    }
    HttpRequest head;
    head.method = "HEAD";
    head.url = gw_.url("/status/" + std::to_string(status));
    HttpResponse head_resp = http(head);
    EXPECT_EQ(head_resp.status, status);
    EXPECT_TRUE(head_resp.body.empty());
  }
}

TEST_F(GatewayTest, ServerSentEventsAreNotBuffered) {
  gw_.start();
  HttpResponse resp = http_get(gw_.url("/sse"));
  ASSERT_EQ(resp.status, 200) << resp.error;
  ASSERT_EQ(resp.body, "data: event 1\n\ndata: event 2\n\n");
  // Find when each event's bytes arrived.
  double first_at = -1, second_at = -1;
  size_t seen = 0;
  for (const auto& [at, len] : resp.arrivals) {
    seen += len;
    if (first_at < 0 && seen >= 15) first_at = at;
    if (second_at < 0 && seen >= 30) second_at = at;
  }
  ASSERT_GE(first_at, 0);
  ASSERT_GE(second_at, 0);
  EXPECT_GE(second_at - first_at, 0.8);
}

TEST_F(GatewayTest, ClientThatLeavesMidStreamDisturbsNothingElse) {
  // One instance, one slot: whatever the abandoned stream left behind, the
  // same instance must serve what follows.
  gw_.add_functions_yaml(custom_function("single", "    maxInstances: 1\n"));
  gw_.add_server_conf("    location /single/ { rewrite ^/single(/.*)$ $1 break; fc_function single; }\n");
  gw_.start();
  HttpResponse warm = http_get(gw_.url("/single/pid"));
  ASSERT_EQ(warm.status, 200) << warm.error;
  std::string pid = warm.body;
  HttpRequest req;
  req.url = gw_.url("/single/sse");
  req.timeout_ms = 300;  // gone after the first event
  HttpResponse cut = http(req);
  EXPECT_FALSE(cut.error.empty());
  EXPECT_EQ(cut.body, "data: event 1\n\n");
  for (int i = 0; i < 3; i++) {
    HttpResponse ok = http_get(gw_.url("/single/inspect"));
    EXPECT_EQ(ok.status, 200) << ok.error;
  }
  HttpResponse sse = http_get(gw_.url("/single/sse"));
  EXPECT_EQ(sse.body, "data: event 1\n\ndata: event 2\n\n");
  HttpResponse after = http_get(gw_.url("/single/pid"));
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(after.body, pid) << "the instance was replaced";
}

// Python's http.server writes the head and the body separately with Nagle on:
// on a reused connection each response would wait ~40 ms for our delayed ACK.
TEST_F(GatewayTest, InstanceWritingHeadAndBodyApartIsNotSlowedByDelayedAcks) {
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/plain/")).status, 200);
  auto t0 = Clock::now();
  for (int i = 0; i < 50; i++) {
    HttpResponse r = http_get(gw_.url("/plain/"));
    ASSERT_EQ(r.status, 200) << r.error;
    ASSERT_EQ(r.body, "plain\n");
  }
  // ~2 s with delayed ACKs (50 x 40 ms); a few ms each without.
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 1.0);
}

TEST_F(GatewayTest, FunctionNameFromARegexCaptureRoutes) {
  gw_.start();
  HttpResponse echo = http_get(gw_.url("/fn/echo/x"));
  ASSERT_EQ(echo.status, 200) << echo.error;
  HttpResponse other = http_get(gw_.url("/fn/other/x"));
  ASSERT_EQ(other.status, 200) << other.error;
  // Two functions, two instances.
  EXPECT_NE(json::parse(echo.body)["pid"], json::parse(other.body)["pid"]);
}

TEST_F(GatewayTest, UnknownFunctionIs404JsonFunctionNotFound) {
  gw_.start();
  HttpResponse resp = http_get(gw_.url("/fn/nosuch/x"));
  ASSERT_EQ(resp.status, 404) << resp.error;
  EXPECT_EQ(resp.header("x-fc-error-type"), "FunctionNotFound");
  json body = json::parse(resp.body);
  EXPECT_EQ(body["errorCode"], "FunctionNotFound");
  EXPECT_FALSE(std::string(body["errorMessage"]).empty());
  EXPECT_EQ(std::string(body["requestId"]).size(), 32u);  // nginx's $request_id
}

TEST_F(GatewayTest, RewriteBreakStripsAPrefix) {
  gw_.start();
  HttpResponse resp = http_get(gw_.url("/app/inspect/x?y=1"));
  ASSERT_EQ(resp.status, 200) << resp.error;
  EXPECT_EQ(json::parse(resp.body)["path"], "/inspect/x?y=1");
}

TEST_F(GatewayTest, EventFunctionGetsRawBytesAtInvoke) {
  gw_.start();
  HttpRequest req;
  req.method = "POST";
  req.url = gw_.url("/ev/");
  req.body = std::string("\x00\x01raw\xff", 6);
  HttpResponse resp = http(req);
  ASSERT_EQ(resp.status, 200) << resp.error;
  EXPECT_EQ(resp.body, "event:" + *req.body);
}

TEST_F(GatewayTest, RunnerDownGives502FastAndRecoversWithoutTouchingNginx) {
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/inspect")).status, 200);
  gw_.stop_runner();
  HttpResponse down = http_get(gw_.url("/inspect"));
  EXPECT_EQ(down.status, 502);
  EXPECT_LT(down.total_s, 1.0);
  gw_.start_runner();
  HttpResponse up = http_get(gw_.url("/inspect"));
  EXPECT_EQ(up.status, 200) << up.error;
}

TEST_F(GatewayTest, KeepalivePoolBoundsRunnerConnections) {
  gw_.add_http_conf("  upstream fc_pool { server unix:" + gw_.runner_socket() +
                    "; keepalive 8; }\n");
  gw_.set_fc_runner("fc_pool");
  gw_.add_runner_yaml("logLevel: debug\n");
  gw_.start();
  for (int i = 0; i < 1000; i++) {
    HttpResponse resp = http_get(gw_.url("/inspect"));
    ASSERT_EQ(resp.status, 200) << "request " << i << ": " << resp.error;
  }
  // The runner logs each accepted connection once at debug level.
  std::string log = gw_.runner_log();
  size_t accepted = 0;
  for (size_t pos = 0; (pos = log.find("accepted connection", pos)) != std::string::npos; pos++)
    accepted++;
  EXPECT_GE(accepted, 1u);
  EXPECT_LE(accepted, 8u);
}

TEST_F(GatewayTest, NextUpstreamSkipsADeadRunner) {
  gw_.add_http_conf("  upstream fc_pair { server unix:" + gw_.path("dead.sock") +
                    "; server unix:" + gw_.runner_socket() + "; }\n");
  gw_.set_fc_runner("fc_pair");
  gw_.start();
  // POSTs with a body: it must reach the live runner whole after the retry.
  const std::string body = random_bytes(4000);
  for (int i = 0; i < 6; i++) {
    HttpRequest req;
    req.method = "POST";
    req.url = gw_.url("/echo");
    req.body = body;
    HttpResponse resp = http(req);
    EXPECT_EQ(resp.status, 200) << "request " << i << ": " << resp.error;
    EXPECT_TRUE(resp.body == body) << "request " << i;
  }
}

TEST_F(GatewayTest, Http2ClientWorks) {
  gw_.set_http2(true);
  gw_.start();
  HttpRequest req;
  req.method = "POST";
  req.url = gw_.url("/echo");
  req.body = random_bytes(100000);
  req.http2 = true;
  HttpResponse resp = http(req);
  ASSERT_EQ(resp.status, 200) << resp.error;
  EXPECT_TRUE(resp.body == *req.body);
}

// Bytes written straight to the runner socket: the bad connection is closed,
// nothing else is disturbed.
class MalformedFrameTest : public GatewayTest {
 protected:
  void expect_closed_by_runner(const std::string& bytes) {
    int fd = connect_unix(gw_.runner_socket());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    ssize_t n;
    // An ERROR frame may come first; then EOF.
    while ((n = read(fd, buf, sizeof buf)) > 0) {
    }
    EXPECT_EQ(n, 0) << "runner did not close the connection";
    close(fd);
    HttpResponse ok = http_get(gw_.url("/inspect"));
    EXPECT_EQ(ok.status, 200) << ok.error;
  }
};

TEST_F(MalformedFrameTest, RandomBytesCloseOnlyThatConnection) {
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/inspect")).status, 200);
  expect_closed_by_runner(random_bytes(4096));
}

TEST_F(MalformedFrameTest, OversizeLengthClosesOnlyThatConnection) {
  gw_.start();
  uint8_t header[FC_FRAME_HEADER_SIZE];
  fc_frame_header_encode(header, FC_FRAME_REQUEST, 0, 0xFFFFFFF0u);
  expect_closed_by_runner(std::string(reinterpret_cast<char*>(header), sizeof header) +
                          std::string(100, 'x'));
}

TEST_F(MalformedFrameTest, TruncatedMsgpackClosesOnlyThatConnection) {
  gw_.start();
  // A map that promises 12 entries but holds one.
  std::string payload = "\x8c\xa8" "function" "\xa4" "echo";
  uint8_t header[FC_FRAME_HEADER_SIZE];
  fc_frame_header_encode(header, FC_FRAME_REQUEST, 0, payload.size());
  expect_closed_by_runner(std::string(reinterpret_cast<char*>(header), sizeof header) + payload);
}

TEST_F(GatewayTest, NginxTestRejectsBadDirectiveValues) {
  auto [ok, out] = gw_.nginx_test_config("    location / { fc_function echo; }\n");
  EXPECT_TRUE(ok) << out;
  auto [dup_ok, dup_out] =
      gw_.nginx_test_config("    location / { fc_function a; fc_function b; }\n");
  EXPECT_FALSE(dup_ok);
  EXPECT_NE(dup_out.find("fc_function"), std::string::npos) << dup_out;
  auto [to_ok, to_out] =
      gw_.nginx_test_config("    location / { fc_function a; fc_read_timeout soon; }\n");
  EXPECT_FALSE(to_ok);
  EXPECT_NE(to_out.find("fc_read_timeout"), std::string::npos) << to_out;
  auto [nu_ok, nu_out] =
      gw_.nginx_test_config("    location / { fc_function a; fc_next_upstream sometimes; }\n");
  EXPECT_FALSE(nu_ok);
  EXPECT_NE(nu_out.find("sometimes"), std::string::npos) << nu_out;
}

// A runner that answers 503 (here: QueueFull from a function whose instance
// never listens, with maxQueueSize 0) is skipped for a POST with a body,
// which reaches the next runner whole.
TEST_F(GatewayTest, NextUpstreamRetriesABufferedPostFromItsTempFileAfterHttp503) {
  std::string busy_sock = gw_.path("busy.sock");
  write_file(gw_.path("busy.yaml"),
             "listen: unix:" + busy_sock + "\n"
             "functions:\n"
             "  echo:\n"
             "    runtime: custom\n"
             "    codeUri: " FC_E2E_APPS_DIR "\n"
             "    customRuntimeConfig: { command: [/bin/sleep], args: ['600'] }\n"
             "    maxInstances: 1\n"
             "    maxQueueSize: 0\n"
             "    initializationTimeout: 600\n");
  Process busy;
  busy.start({runner_path(), "--config", gw_.path("busy.yaml")}, gw_.path("busy.log"));
  ASSERT_TRUE(wait_until(
      [&] {
        int fd = connect_unix(busy_sock);
        if (fd >= 0) close(fd);
        return fd >= 0;
      },
      10s));
  gw_.add_http_conf("  upstream fc_busy_first { server unix:" + busy_sock + "; server unix:" +
                    gw_.runner_socket() + "; }\n");
  gw_.add_server_conf(
      "    location /retry/ { rewrite ^/retry(/.*)$ $1 break; fc_runner fc_busy_first; fc_request_buffering on;"
      " fc_next_upstream http_503 non_idempotent; fc_function echo; }\n");
  gw_.start();
  // 50 kB bodies (in the client body temp file, read back through one
  // buffer that the next try reuses) and 4 MiB ones (the 503 comes while
  // the body is still being sent).
  for (int i = 0; i < 6; i++) {
    HttpRequest req;
    req.method = "POST";
    req.url = gw_.url("/retry/echo");
    req.body = random_bytes((i < 4 ? 50000 : 4 << 20) + static_cast<size_t>(i));
    HttpResponse resp = http(req);
    EXPECT_EQ(resp.status, 200) << "request " << i << ": " << resp.body << resp.error;
    EXPECT_TRUE(resp.body == *req.body) << "request " << i << ": the body did not arrive whole";
  }
  // Round robin sent some of them to the busy runner first.
  EXPECT_NE(read_file(gw_.path("busy.log")).find("QueueFull"), std::string::npos) << read_file(gw_.path("busy.log"));
  busy.stop();
}


}  // namespace
}  // namespace fc::e2e
