// The nginx module under hostile clients and at its limits (issue 6): the
// keepalive pool of a plain `fc_runner ADDRESS;`, small bodies collected
// before they take a slot, the deadline, request/response size limits and
// function names, fc_next_upstream with a body.  Real nginx + fc-runner +
// instances of tests/e2e/apps/module_app.py.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "fc_limits.h"
#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = 0; (pos = text.find(what, pos)) != std::string::npos; pos += what.size()) n++;
  return n;
}

// A client on a raw socket, for what libcurl will not do: dribble a body,
// stall, send exact header lines.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{20, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawClient() { close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  bool send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // Everything until the peer closes (or the receive timeout).
  std::string read_all() {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd_, buf, sizeof buf, 0)) > 0) out.append(buf, n);
    return out;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

struct RawResponse {
  int status = 0;
  std::string head;
  std::string body;
};

RawResponse parse_raw(const std::string& text) {
  RawResponse r;
  size_t end = text.find("\r\n\r\n");
  if (end == std::string::npos) return r;
  r.head = text.substr(0, end);
  r.body = text.substr(end + 4);
  if (r.head.size() > 12) r.status = std::atoi(r.head.c_str() + 9);
  return r;
}

// The gateway's own error shape (DESIGN §7).
void expect_gateway_error(long status, const std::string& error_type, const std::string& body,
                          long want_status, const std::string& want_code) {
  EXPECT_EQ(status, want_status) << body;
  EXPECT_EQ(error_type, want_code);
  json j = json::parse(body, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << "not JSON: " << body.substr(0, 300);
  EXPECT_EQ(j.value("errorCode", ""), want_code) << body;
  EXPECT_FALSE(j.value("errorMessage", "").empty()) << body;
  EXPECT_EQ(j.value("requestId", "").size(), 32u) << body;
}

class ModuleHardeningTest : public GatewayFixture {
 protected:
  // module_app.py as function `name`, served under /<name>/.
  void add_function(const std::string& name, const std::string& extra = "") {
    add_app_function(name, "module_app.py", extra);
  }

  size_t runner_connections() { return count_of(gw_.runner_log(), "accepted connection"); }

  // tests/e2e/apps/fake_runner.py on fake.sock: its `info` function answers
  // with the REQUEST frame as JSON.  Call before gw_.start().
  std::string start_fake_runner() { return e2e::start_fake_runner(gw_, fake_runner_); }

  // The 408 tests' setup: function `name` (instanceConcurrency 1,
  // maxInstances 1, then `extra`) behind client_body_timeout 1s, started
  // and served once.  Returns that answer: its X-Pid is the instance that
  // must serve on after the timed-out request.
  HttpResponse start_behind_body_timeout(const std::string& name, const std::string& extra = "") {
    add_function(name, "    instanceConcurrency: 1\n    maxInstances: 1\n" + extra);
    gw_.add_server_conf("    client_body_timeout 1s;\n");
    gw_.start();
    HttpResponse first = http_get(gw_.url("/" + name + "/"));
    EXPECT_EQ(first.status, 200) << first.error;
    return first;
  }

  Process fake_runner_;
};

// --- 1. the keepalive pool of a plain `fc_runner ADDRESS;` -------------------

TEST_F(ModuleHardeningTest, PlainRunnerAddressKeepsItsConnectionsAlive) {
  add_function("app");
  gw_.add_runner_yaml("logLevel: debug\n");
  gw_.start();  // the harness's `fc_runner unix:...;`: no upstream{} block
  for (int i = 0; i < 200; i++) {
    HttpResponse r = http_get(gw_.url("/app/"));
    ASSERT_EQ(r.status, 200) << "request " << i << ": " << r.error;
  }
  EXPECT_GE(runner_connections(), 1u);
  EXPECT_LE(runner_connections(), 2u);
}

TEST_F(ModuleHardeningTest, FcKeepaliveZeroOpensAConnectionPerRequest) {
  add_function("app");
  gw_.add_runner_yaml("logLevel: debug\n");
  gw_.add_http_conf("  fc_keepalive 0;\n");
  gw_.start();
  for (int i = 0; i < 50; i++) {
    HttpResponse r = http_get(gw_.url("/app/"));
    ASSERT_EQ(r.status, 200) << "request " << i << ": " << r.error;
  }
  EXPECT_GE(runner_connections(), 50u);
}

TEST_F(ModuleHardeningTest, NginxTestRejectsABadFcKeepalive) {
  auto [ok, out] = gw_.nginx_test_config("    location / { fc_function a; }\n");
  EXPECT_TRUE(ok) << out;
  gw_.add_http_conf("  fc_keepalive many;\n");
  auto [bad_ok, bad_out] = gw_.nginx_test_config("    location / { fc_function a; }\n");
  EXPECT_FALSE(bad_ok);
  EXPECT_NE(bad_out.find("fc_keepalive"), std::string::npos) << bad_out;
}

// Acceptance 6: the documented default config survives a burst.
TEST_F(ModuleHardeningTest, ThousandConcurrentClientsOnTheDefaultConfigGetNo502) {
  add_function("burst",
               "    instanceConcurrency: 100\n    maxInstances: 11\n"
               "    maxQueueSize: 5000\n    maxQueueTime: 60\n");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/burst/")).status, 200);

  std::string out_path = gw_.path("wrk.out");
  std::string cmd = "timeout 40 wrk -t 2 -c 1024 -d 10s --timeout 20s " + gw_.url("/burst/") + " >" +
                    out_path + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::string out = read_file(out_path);

  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"((\d+) requests in)"))) << "wrk exit " << rc << ": " << out;
  long requests = std::stol(m[1]);
  EXPECT_GE(requests, 2000) << out;
  // Every response wrk got was a 200 ...
  EXPECT_EQ(out.find("Non-2xx"), std::string::npos) << out;

  // ... and none of the requests nginx logged ("$request_id $status ...") was
  // a 502 (those wrk left in flight at its end are logged 499).
  ASSERT_TRUE(wait_until([&] { return count_of(gw_.access_log(), "\n") >= static_cast<size_t>(requests); }, 10s));
  size_t bad_gateway = 0;
  std::istringstream in(gw_.access_log());
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > 36 && line.compare(33, 3, "502") == 0) bad_gateway++;
  }
  EXPECT_EQ(bad_gateway, 0u) << out << gw_.nginx_error_log().substr(0, 3000);
  std::cout << requests << " requests; connects refused by a full runner queue and tried again: "
            << count_of(gw_.nginx_error_log(), "connect() to unix:") << "\n";
}

// --- 2. small bodies are collected before they take a slot -----------------

// Dribbles `body` one byte per `interval` on a raw socket, in the background.
class SlowUpload {
 public:
  SlowUpload(int port, const std::string& path, std::string body, std::chrono::milliseconds interval)
      : client_(port) {
    EXPECT_TRUE(client_.connected());
    client_.send("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n");
    thread_ = std::thread([this, body, interval] {
      for (char c : body) {
        for (auto waited = 0ms; waited < interval && !stop_; waited += 10ms) std::this_thread::sleep_for(10ms);
        if (stop_ || !client_.send(std::string(1, c))) return;
      }
      response_ = parse_raw(client_.read_all());
    });
  }
  ~SlowUpload() { abandon(); }
  // Waits for the whole upload and its answer.
  RawResponse finish() {
    if (thread_.joinable()) thread_.join();
    return response_;
  }
  void abandon() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  RawClient client_;
  std::atomic<bool> stop_{false};
  RawResponse response_;
  std::thread thread_;
};

std::string pid_of(const HttpResponse& r) { return r.header("X-Pid"); }

// Acceptance 1 (front half): the function timeout never counts the wait for
// a slow client's body, so the instance is not killed under the others.
TEST_F(ModuleHardeningTest, SlowUploaderHoldsNoSlotAndGetsNoInstanceKilled) {
  add_function("slow", "    instanceConcurrency: 10\n    maxInstances: 1\n    timeout: 5\n");
  gw_.start();
  HttpResponse first = http_get(gw_.url("/slow/"));
  ASSERT_EQ(first.status, 200) << first.error;
  const std::string pid = pid_of(first);

  auto t0 = Clock::now();
  SlowUpload upload(gw_.port(), "/slow/echo", std::string(30, 'u'), 1000ms);
  std::this_thread::sleep_for(2s);
  std::vector<std::future<HttpResponse>> normal;
  for (int i = 0; i < 5; i++) normal.push_back(get_async("/slow/"));
  for (auto& f : normal) {
    HttpResponse r = f.get();
    EXPECT_EQ(r.status, 200) << r.error << r.body;
    EXPECT_EQ(pid_of(r), pid);
  }
  // Past the function's 5 s timeout with the upload still going.
  std::this_thread::sleep_for(std::chrono::milliseconds(
      std::max<long>(0, 6500 - static_cast<long>(seconds_since(t0) * 1000))));
  HttpResponse later = http_get(gw_.url("/slow/"));
  EXPECT_EQ(later.status, 200) << later.error;
  EXPECT_EQ(pid_of(later), pid) << "the instance was replaced";
  upload.abandon();
  EXPECT_EQ(gw_.runner_log().find("did not respond"), std::string::npos);
}

// Acceptance 2: slowloris against a concurrency-1 function.
TEST_F(ModuleHardeningTest, SlowlorisOnAConcurrencyOneFunctionStarvesNobody) {
  add_function("one", "    instanceConcurrency: 1\n    maxInstances: 1\n");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/one/")).status, 200);

  SlowUpload upload(gw_.port(), "/one/echo", "slowloris-body", 250ms);  // 3.5 s
  std::this_thread::sleep_for(500ms);
  for (int i = 0; i < 5; i++) {
    HttpResponse r = http_get(gw_.url("/one/"));
    EXPECT_EQ(r.status, 200) << r.error << r.body;
    EXPECT_LT(r.total_s, 0.5) << "request " << i;
    std::this_thread::sleep_for(300ms);
  }
  RawResponse slow = upload.finish();
  EXPECT_EQ(slow.status, 200) << slow.head;
  EXPECT_EQ(slow.body, "slowloris-body");
}

TEST_F(ModuleHardeningTest, StalledSmallBodyGetsJson408AndHurtsNobody) {
  HttpResponse first = start_behind_body_timeout("stall");
  ASSERT_EQ(first.status, 200);

  RawClient client(gw_.port());
  ASSERT_TRUE(client.connected());
  auto t0 = Clock::now();
  client.send("POST /stall/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nabc");
  HttpResponse during = http_get(gw_.url("/stall/"));
  EXPECT_EQ(during.status, 200) << during.error;
  RawResponse timed_out = parse_raw(client.read_all());
  double took = seconds_since(t0);
  EXPECT_EQ(timed_out.status, 408) << timed_out.head;
  EXPECT_NE(timed_out.head.find("x-fc-error-type: ClientTimeout"), std::string::npos) << timed_out.head;
  json j = json::parse(timed_out.body, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << timed_out.body;
  EXPECT_EQ(j.value("errorCode", ""), "ClientTimeout");
  EXPECT_EQ(j.value("requestId", "").size(), 32u);
  EXPECT_GE(took, 0.9);
  EXPECT_LT(took, 5.0);
  HttpResponse after = http_get(gw_.url("/stall/"));
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(pid_of(after), pid_of(first));
}

// The named limit: a body of client_body_buffer_size bytes is collected
// first, one byte more streams (instance sees it before the client is done).
TEST_F(ModuleHardeningTest, BodyUpToClientBodyBufferSizeIsCollectedLargerStreams) {
  add_app_function("echoapp", "echo_app.py", "");
  gw_.add_server_conf("    client_body_buffer_size 1k;\n");
  gw_.start();
  for (size_t size : {size_t{1024}, size_t{1025}}) {
    HttpRequest req;
    req.method = "POST";
    req.url = gw_.url("/echoapp/slow-upload");
    req.body = std::string(size, 'b');
    req.pause_mid_body = 1500ms;
    HttpResponse r = http(req);
    ASSERT_EQ(r.status, 200) << r.error;
    json info = json::parse(r.body);
    EXPECT_EQ(info["body_len"], size);
    double first = info["first_byte_at"];
    if (size == 1024) {
      EXPECT_GT(first, req.mid_body_wall_time + 1.0) << "a body that fits was streamed";
    } else {
      EXPECT_LT(first, req.mid_body_wall_time + 1.0) << "a larger body was collected";
    }
  }
}

// --- 3. the deadline: the function's timeout decides ------------------------

TEST_F(ModuleHardeningTest, WithoutFcReadTimeoutTheFunctionTimeoutDecides) {
  add_function("late", "    timeout: 2\n");
  gw_.start();
  HttpResponse r = http_get(gw_.url("/late/sleep/4"));
  expect_gateway_error(r.status, r.header("x-fc-error-type"), r.body, 504, "FunctionTimeout");
  EXPECT_GE(r.total_s, 1.5);
  EXPECT_LT(r.total_s, 3.9);
}

TEST_F(ModuleHardeningTest, ExplicitFcReadTimeoutCutsTheWaitAndIsSentAsDeadline) {
  // A function with a long timeout: only the explicit fc_read_timeout ends it.
  gw_.add_functions_yaml("  patient:\n    runtime: custom\n    codeUri: " FC_E2E_APPS_DIR
                         "\n    timeout: 30\n    customRuntimeConfig: { command: [/usr/bin/python3],"
                         " args: [module_app.py] }\n");
  gw_.add_server_conf(
      "    location /patient/ { rewrite ^/patient(/.*)$ $1 break; fc_read_timeout 1s;"
      " fc_function patient; }\n"
      "    location /fake/ { fc_runner unix:" + gw_.path("fake.sock") + "; fc_function info; }\n"
      "    location /fake-cut/ { fc_runner unix:" + gw_.path("fake.sock") +
      "; fc_read_timeout 1500ms; fc_function info; }\n");
  start_fake_runner();
  gw_.start();

  HttpResponse cut = http_get(gw_.url("/patient/sleep/6"));
  // The runner honours the deadline it was sent: its JSON 504 comes before
  // nginx's own timer would cut the wait with an HTML one.
  expect_gateway_error(cut.status, cut.header("x-fc-error-type"), cut.body, 504, "FunctionTimeout");
  EXPECT_LT(cut.total_s, 4.0) << "the wait was not cut at fc_read_timeout";

  // What the REQUEST frame carried.
  HttpResponse plain = http_get(gw_.url("/fake/"));
  ASSERT_EQ(plain.status, 200) << plain.error << plain.body;
  EXPECT_EQ(json::parse(plain.body)["deadline_ms"], 0);
  HttpResponse explicit_timeout = http_get(gw_.url("/fake-cut/"));
  ASSERT_EQ(explicit_timeout.status, 200) << explicit_timeout.error;
  EXPECT_EQ(json::parse(explicit_timeout.body)["deadline_ms"], 1500);
}

// --- 4. limits and error shapes ----------------------------------------------

// Exactly FC_MAX_HEADERS header lines pass (to the fake runner: an
// instance's HTTP parser may take fewer), one more is 431 RequestTooLarge.
TEST_F(ModuleHardeningTest, HeaderLinesUpToTheLimitPassOneMoreIs431Json) {
  gw_.add_server_conf("    large_client_header_buffers 8 64k;\n"
                      "    location /hdrs/ { fc_runner unix:" + start_fake_runner() + "; fc_function info; }\n");
  gw_.start();
  for (int total : {FC_MAX_HEADERS, FC_MAX_HEADERS + 1}) {
    std::string request = "GET /hdrs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    for (int i = 2; i < total; i++) request += "X-H" + std::to_string(i) + ": v\r\n";
    RawClient client(gw_.port());
    ASSERT_TRUE(client.send(request + "\r\n"));
    RawResponse r = parse_raw(client.read_all());
    if (total == FC_MAX_HEADERS) {
      ASSERT_EQ(r.status, 200) << r.head << r.body;
      json seen = json::parse(r.body, nullptr, false);
      ASSERT_FALSE(seen.is_discarded()) << r.body;
      EXPECT_EQ(seen["headers"].size(), static_cast<size_t>(FC_MAX_HEADERS));
    } else {
      EXPECT_EQ(r.status, 431) << r.head;
      EXPECT_NE(r.head.find("x-fc-error-type: RequestTooLarge"), std::string::npos) << r.head;
      json j = json::parse(r.body, nullptr, false);
      ASSERT_FALSE(j.is_discarded()) << r.body;
      EXPECT_EQ(j.value("errorCode", ""), "RequestTooLarge");
    }
  }
}

// The largest request whose REQUEST frame fits FC_MAX_META_PAYLOAD passes;
// one byte more is 413 RequestTooLarge JSON.
TEST_F(ModuleHardeningTest, RequestFrameUpToItsLimitPassesOneByteMoreIs413Json) {
  add_function("big");
  gw_.add_server_conf("    large_client_header_buffers 8 64k;\n");
  gw_.start();
  auto send = [&](size_t extra) {
    HttpRequest req;
    req.url = gw_.url("/big/");
    // Header lines an instance's HTTP parser takes (each under 8 KiB).
    for (int i = 0; i < 7; i++) req.headers.emplace_back("X-Fill-" + std::to_string(i), std::string(8000, 'f'));
    req.headers.emplace_back("X-Last", std::string(extra, 'l'));
    return http(req);
  };
  size_t lo = 1000, hi = 12000;  // lo passes, hi does not
  ASSERT_EQ(send(lo).status, 200);
  ASSERT_EQ(send(hi).status, 413);
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    long status = send(mid).status;
    ASSERT_TRUE(status == 200 || status == 413) << status;
    (status == 200 ? lo : hi) = mid;
  }
  // The headers that passed are within a little of the frame limit.
  size_t header_bytes = 7 * (8000 + 8) + lo + 6;
  EXPECT_LT(header_bytes, static_cast<size_t>(FC_MAX_META_PAYLOAD));
  EXPECT_GT(header_bytes, static_cast<size_t>(FC_MAX_META_PAYLOAD) - 600);
  HttpResponse over = send(hi);
  expect_gateway_error(over.status, over.header("x-fc-error-type"), over.body, 413, "RequestTooLarge");
}

// Response headers over fc_buffer_size: the runner's own 502 BadResponse shape.
TEST_F(ModuleHardeningTest, ResponseHeadersOverFcBufferSizeAre502BadResponseJson) {
  add_function("resp");
  gw_.add_server_conf("    location /resp2k/ { rewrite ^/resp2k(/.*)$ $1 break; fc_buffer_size 2k;"
                      " fc_function resp; }\n");
  gw_.start();
  auto status_for = [&](size_t n) { return http_get(gw_.url("/resp2k/header/" + std::to_string(n))).status; };
  size_t lo = 100, hi = 4000;
  ASSERT_EQ(status_for(lo), 200);
  ASSERT_EQ(status_for(hi), 502);
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    long status = status_for(mid);
    ASSERT_TRUE(status == 200 || status == 502) << status;
    (status == 200 ? lo : hi) = mid;
  }
  EXPECT_LT(lo, 2048u);
  EXPECT_GT(lo, 2048u - 400);
  HttpResponse over = http_get(gw_.url("/resp2k/header/" + std::to_string(hi)));
  expect_gateway_error(over.status, over.header("x-fc-error-type"), over.body, 502, "BadResponse");
  // The same function still answers, on the default fc_buffer_size too.
  EXPECT_EQ(http_get(gw_.url("/resp/header/" + std::to_string(hi))).status, 200);
  EXPECT_EQ(http_get(gw_.url("/resp2k/header/" + std::to_string(lo))).status, 200);
}

// Response headers over the runner's limits (a RESPONSE frame over
// FC_MAX_META_PAYLOAD; a head over the HTTP parser's own bound) with an
// fc_buffer_size that would take them: the same 502 BadResponse JSON, and the
// instance, whose other answers are fine, is not replaced for one of them.
TEST_F(ModuleHardeningTest, ResponseHeadersOverTheRunnersLimitAreTheSame502BadResponseJson) {
  add_function("resp", "    maxInstances: 1\n");
  gw_.add_server_conf("    location /resp256k/ { rewrite ^/resp256k(/.*)$ $1 break; fc_buffer_size 256k;"
                      " fc_buffers 4 256k; fc_busy_buffers_size 256k; fc_function resp; }\n");
  gw_.start();
  HttpResponse first = http_get(gw_.url("/resp256k/header/100"));
  ASSERT_EQ(first.status, 200) << first.error;
  // Under the frame limit (the head's other lines and the frame's own
  // fields take the rest): passes through nginx's 256k buffer.
  HttpResponse fits = http_get(gw_.url("/resp256k/header/" + std::to_string(FC_MAX_META_PAYLOAD - 1024)));
  EXPECT_EQ(fits.status, 200) << fits.body;
  EXPECT_EQ(fits.header("x-big").size(), static_cast<size_t>(FC_MAX_META_PAYLOAD - 1024));
  for (size_t n : {static_cast<size_t>(FC_MAX_META_PAYLOAD) + 100, size_t{200000}}) {
    HttpResponse over = http_get(gw_.url("/resp256k/header/" + std::to_string(n)));
    expect_gateway_error(over.status, over.header("x-fc-error-type"), over.body, 502, "BadResponse");
    EXPECT_EQ(over.header("x-big"), "") << n;
  }
  HttpResponse after = http_get(gw_.url("/resp256k/header/100"));
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(pid_of(after), pid_of(first)) << "the instance was replaced";
}

// A body larger than client_body_buffer_size streams to the instance; when
// the client stalls it past client_body_timeout, that request alone fails
// with 408 (nginx logs it so and closes the client's connection without a
// response, as it does for proxy_pass: a body stalled in the middle leaves no
// place for one), the instance connection that carried it is ended (the app
// reads EOF), and the instance serves on with its slot given back.
TEST_F(ModuleHardeningTest, StalledStreamedBodyGets408AndOnlyItsInstanceConnectionEnds) {
  gw_.add_runner_yaml("logLevel: debug\n");
  HttpResponse first = start_behind_body_timeout("stream", "    timeout: 30\n");
  ASSERT_EQ(first.status, 200);

  RawClient client(gw_.port());
  ASSERT_TRUE(client.connected());
  auto t0 = Clock::now();
  ASSERT_TRUE(client.send("POST /stream/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n" +
                          std::string(100000, 's')));
  std::string answer = client.read_all();
  double took = seconds_since(t0);
  EXPECT_EQ(answer.find("HTTP/1.1 2"), std::string::npos) << answer.substr(0, 300);
  EXPECT_GE(took, 0.9);
  EXPECT_LT(took, 5.0);
  EXPECT_TRUE(wait_until([&] { return gw_.access_log().find(" 408 ") != std::string::npos; }, 3s))
      << gw_.access_log();
  // Its body was streaming: the runner ended it on the instance connection.
  EXPECT_TRUE(wait_until([&] { return gw_.runner_logged("the client left"); }, 3s)) << gw_.runner_log();
  // instanceConcurrency 1: the slot came back, on the same process.
  HttpResponse after = http_get(gw_.url("/stream/"));
  EXPECT_EQ(after.status, 200) << after.error;
  EXPECT_LT(after.total_s, 2.0);
  EXPECT_EQ(pid_of(after), pid_of(first)) << "the instance was replaced";
  EXPECT_EQ(gw_.runner_log().find("killed"), std::string::npos);
}

// --- 5. function names from variables ----------------------------------------

class FunctionNameTest : public ModuleHardeningTest {
 protected:
  void SetUp() override {
    add_function("app");
    gw_.add_server_conf("    large_client_header_buffers 4 32k;\n"
                        "    location ~ ^/anyfn/(?<fn>[^/]+)/ { fc_function $fn; }\n");
    gw_.start();
  }
};

TEST_F(FunctionNameTest, NameWithCrLfIs404JsonAndForgesNoLogLine) {
  HttpResponse r = http_get(gw_.url("/anyfn/evil%0D%0A2026/01/01%20forged%20line/x"));
  expect_gateway_error(r.status, r.header("x-fc-error-type"), r.body, 404, "FunctionNotFound");
  std::string message = json::parse(r.body).value("errorMessage", "");
  EXPECT_NE(message.find("evil\\x0D\\x0A2026"), std::string::npos) << message;
  for (const std::string& log : {gw_.nginx_error_log(), gw_.runner_log()}) {
    EXPECT_EQ(log.find("\n2026/01/01 forged"), std::string::npos) << log;
  }
  EXPECT_NE(gw_.nginx_error_log().find("evil\\x0D\\x0A2026"), std::string::npos);
  EXPECT_EQ(gw_.runner_log().find("evil"), std::string::npos) << "the invalid name reached the runner";
  EXPECT_EQ(http_get(gw_.url("/app/")).status, 200);
}

TEST_F(FunctionNameTest, TenThousandCharacterNameIs404JsonCut) {
  HttpResponse r = http_get(gw_.url("/anyfn/" + std::string(10000, 'n') + "/x"));
  expect_gateway_error(r.status, r.header("x-fc-error-type"), r.body, 404, "FunctionNotFound");
  std::string message = json::parse(r.body).value("errorMessage", "");
  EXPECT_NE(message.find(std::string(64, 'n') + "..."), std::string::npos) << message;
  EXPECT_EQ(message.find(std::string(65, 'n')), std::string::npos);
  // The module's line names it cut (nginx adds the raw request line itself).
  std::string log = gw_.nginx_error_log();
  size_t at = log.find("invalid function name \"");
  ASSERT_NE(at, std::string::npos) << log.substr(0, 2000);
  EXPECT_EQ(log.substr(at, 23 + 64 + 4), "invalid function name \"" + std::string(64, 'n') + "...\"");
  EXPECT_EQ(gw_.runner_log().find(std::string(65, 'n')), std::string::npos);
}

// At the limit: a valid 128-character name goes to the runner (its own 404),
// a 129-character one is refused by the module.
TEST_F(FunctionNameTest, NameOfTheMaximumLengthReachesTheRunnerOneMoreDoesNot) {
  HttpResponse longest = http_get(gw_.url("/anyfn/" + std::string(FC_MAX_FUNCTION_NAME, 'm') + "/x"));
  expect_gateway_error(longest.status, longest.header("x-fc-error-type"), longest.body, 404, "FunctionNotFound");
  EXPECT_NE(json::parse(longest.body).value("errorMessage", "").find(std::string(FC_MAX_FUNCTION_NAME, 'm')),
            std::string::npos)
      << longest.body;
  HttpResponse over = http_get(gw_.url("/anyfn/" + std::string(FC_MAX_FUNCTION_NAME + 1, 'm') + "/x"));
  expect_gateway_error(over.status, over.header("x-fc-error-type"), over.body, 404, "FunctionNotFound");
  EXPECT_NE(json::parse(over.body).value("errorMessage", "").find(std::string(64, 'm') + "..."), std::string::npos)
      << over.body;
}

// --- 6. fc_next_upstream retries a POST with its body ------------------------

TEST_F(ModuleHardeningTest, NextUpstreamRetriesAPostWithItsWholeBodyAfter503) {
  // Runner A: the function's initializer fails, so A answers 503.
  std::string a_sock = gw_.path("a.sock");
  write_file(gw_.path("a.yaml"), "listen: unix:" + a_sock +
                                     "\nfunctions:\n  retry:\n    runtime: custom\n    codeUri: " FC_E2E_APPS_DIR
                                     "\n    initializer: index.initializer\n    maxInstances: 1\n"
                                     "    environmentVariables: { INIT_FAIL: '1' }\n"
                                     "    customRuntimeConfig: { command: [/usr/bin/python3],"
                                     " args: [module_app.py] }\n");
  Process runner_a;
  runner_a.start({runner_path(), "--config", gw_.path("a.yaml")}, gw_.path("a.log"));
  ASSERT_TRUE(wait_until([&] { return connect_unix(a_sock) >= 0; }, 10s)) << read_file(gw_.path("a.log"));
  // Runner B (the harness's): the same function, working.
  gw_.add_functions_yaml("  retry:\n    runtime: custom\n    codeUri: " FC_E2E_APPS_DIR
                         "\n    customRuntimeConfig: { command: [/usr/bin/python3], args: [module_app.py] }\n");
  gw_.add_http_conf("  upstream fc_ab { server unix:" + a_sock + "; server unix:" + gw_.runner_socket() + "; }\n");
  gw_.add_server_conf("    location /retry/ { rewrite ^/retry(/.*)$ $1 break; fc_runner fc_ab;"
                      " fc_next_upstream error timeout http_503 non_idempotent; fc_function retry; }\n");
  gw_.start();

  std::string body;
  for (int i = 0; i < 3000; i++) body += static_cast<char>('a' + i % 26);
  for (int i = 0; i < 4; i++) {
    HttpRequest req;
    req.method = "POST";
    req.url = gw_.url("/retry/echo");
    req.body = body;
    req.pause_mid_body = 300ms;  // not all read with the headers: collected, not streamed
    HttpResponse r = http(req);
    EXPECT_EQ(r.status, 200) << "request " << i << ": " << r.error << r.body;
    EXPECT_EQ(r.body.size(), body.size()) << "request " << i;
    EXPECT_TRUE(r.body == body) << "request " << i;
  }
  // The first request was answered 503 by A before B served it.
  EXPECT_NE(read_file(gw_.path("a.log")).find("InitializationFailed"), std::string::npos)
      << read_file(gw_.path("a.log"));
  runner_a.stop();
}

}  // namespace
}  // namespace fc::e2e
