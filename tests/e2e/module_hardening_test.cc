// The nginx module under hostile clients and at its limits (issue 6): the
// keepalive pool of a plain `fc_runner ADDRESS;`, small bodies collected
// before they take a slot, the deadline, request/response size limits and
// function names, fc_next_upstream with a body.  Real nginx + fc-runner +
// instances of tests/e2e/apps/hardening_app.py.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "fc_limits.h"
#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

[[maybe_unused]] double seconds_since(Clock::time_point t0) {
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

[[maybe_unused]] RawResponse parse_raw(const std::string& text) {
  RawResponse r;
  size_t end = text.find("\r\n\r\n");
  if (end == std::string::npos) return r;
  r.head = text.substr(0, end);
  r.body = text.substr(end + 4);
  if (r.head.size() > 12) r.status = std::atoi(r.head.c_str() + 9);
  return r;
}

// The gateway's own error shape (DESIGN §7).
[[maybe_unused]] void expect_gateway_error(long status, const std::string& error_type, const std::string& body,
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
  // hardening_app.py as function `name`, served under /<name>/.
  void add_function(const std::string& name, const std::string& extra = "") {
    add_app_function(name, "hardening_app.py", extra);
  }

  size_t runner_connections() { return count_of(gw_.runner_log(), "accepted connection"); }
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

}  // namespace
}  // namespace fc::e2e
