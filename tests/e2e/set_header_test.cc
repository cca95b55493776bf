// fc_set_header (issue 8, acceptance 5): the headers the REQUEST frame
// carries, set by the operator like proxy_set_header.  Real nginx + fc-runner
// + tests/e2e/apps/forwarded_app.py (Flask behind Werkzeug's ProxyFix).
#include <gtest/gtest.h>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "fc_limits.h"
#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;

class SetHeaderTest : public GatewayFixture {
 protected:
  // The app under /fwd/ (the server's fc_set_header inherited) and under
  // /own/ (a location with its own fc_set_header, which replaces them all).
  void start() {
    gw_.add_functions_yaml(
        "  fwd:\n    runtime: custom\n    codeUri: " + std::string(FC_E2E_APPS_DIR) +
        "\n    customRuntimeConfig: { command: [/usr/bin/python3], args: [forwarded_app.py] }\n");
    gw_.add_server_conf(
        "    fc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "    location /fwd/ { rewrite ^/fwd(/.*)$ $1 break; fc_function fwd; }\n"
        "    location /own/ { rewrite ^/own(/.*)$ $1 break; fc_function fwd;\n"
        "        fc_set_header X-Secret \"\";\n"
        "        fc_set_header X-Seen \"$request_method $arg_v\"; }\n");
    gw_.start();
  }

  json get(const std::string& path, std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpRequest req;
    req.url = gw_.url(path);
    req.headers = std::move(headers);
    // Not the runner's address, so only the forwarded header can tell it.
    req.source_address = "127.0.0.2";
    HttpResponse resp = http(req);
    EXPECT_EQ(resp.status, 200) << resp.error << resp.body;
    return json::parse(resp.body, nullptr, false);
  }

  static std::vector<std::string> values(const json& seen, const std::string& name) {
    std::vector<std::string> out;
    for (const auto& kv : seen["headers"]) {
      std::string k = kv[0];
      if (strcasecmp(k.c_str(), name.c_str()) == 0) out.push_back(kv[1]);
    }
    return out;
  }
};

TEST_F(SetHeaderTest, ProxyFixSeesTheClientAddress) {
  start();
  json seen = get("/fwd/");
  ASSERT_TRUE(seen.is_object());
  EXPECT_EQ(seen["remote_addr"], "127.0.0.2") << seen.dump();
  EXPECT_EQ(seen["forwarded_for"], json::array({"127.0.0.2"})) << seen.dump();
}

TEST_F(SetHeaderTest, AClientForwardedForIsAppendedToNotTrusted) {
  start();
  json seen = get("/fwd/", {{"X-Forwarded-For", "1.2.3.4"}});
  ASSERT_TRUE(seen.is_object());
  // one header, the client's chain plus the address nginx saw: ProxyFix
  // trusts only the last hop
  EXPECT_EQ(seen["forwarded_for"], json::array({"1.2.3.4, 127.0.0.2"})) << seen.dump();
  EXPECT_EQ(seen["remote_addr"], "127.0.0.2") << seen.dump();
}

TEST_F(SetHeaderTest, AnEmptyValueRemovesAndVariablesExpand) {
  start();
  json seen = get("/own/?v=42", {{"X-Secret", "from-client"}, {"X-Seen", "forged"}, {"X-Kept", "yes"}});
  ASSERT_TRUE(seen.is_object());
  EXPECT_TRUE(values(seen, "X-Secret").empty()) << seen.dump();
  EXPECT_EQ(values(seen, "X-Seen"), std::vector<std::string>{"GET 42"}) << seen.dump();
  EXPECT_EQ(values(seen, "X-Kept"), std::vector<std::string>{"yes"}) << seen.dump();
  // a location with its own fc_set_header does not inherit the server's
  EXPECT_TRUE(values(seen, "X-Forwarded-For").empty()) << seen.dump();
}

TEST_F(SetHeaderTest, NginxTestRejectsAnFcHeaderName) {
  auto [ok, out] = gw_.nginx_test_config("    location / { fc_function a; fc_set_header X-Real-IP $remote_addr; }\n");
  EXPECT_TRUE(ok) << out;
  auto [bad_ok, bad_out] =
      gw_.nginx_test_config("    location / { fc_function a; fc_set_header X-Fc-Request-Id x; }\n");
  EXPECT_FALSE(bad_ok);
  EXPECT_NE(bad_out.find("belong to the runner"), std::string::npos) << bad_out;
}

// The REQUEST frame carries at most FC_MAX_HEADERS header lines, the
// client's and fc_set_header's together: exactly that many pass, one more is
// 431.  tests/e2e/apps/fake_runner.py answers with the REQUEST as JSON.
TEST_F(SetHeaderTest, SetHeadersCountTowardsTheHeaderLimit) {
  using namespace std::chrono_literals;
  std::string sock = gw_.path("fake.sock");
  Process fake_runner;
  fake_runner.start({kPython, app_path("fake_runner.py"), "unix:" + sock}, gw_.path("fake.log"));
  ASSERT_TRUE(wait_until(
      [&] {
        int fd = connect_unix(sock);
        if (fd < 0) return false;
        close(fd);
        return true;
      },
      10s))
      << read_file(gw_.path("fake.log"));
  gw_.add_server_conf("    location /hdrs/ { fc_runner unix:" + sock +
                      "; fc_function info;\n"
                      "        fc_set_header X-Added-1 a; fc_set_header X-Added-2 b; }\n");
  gw_.start();
  auto send = [&](int extra) {
    HttpRequest req;
    req.url = gw_.url("/hdrs/");
    for (int i = 0; i < extra; i++) req.headers.emplace_back("X-H" + std::to_string(i), "v");
    return http(req);
  };
  HttpResponse base = send(0);
  ASSERT_EQ(base.status, 200) << base.error << base.body;
  json seen = json::parse(base.body, nullptr, false);
  ASSERT_TRUE(seen.is_object()) << base.body;
  size_t lines = seen["headers"].size();  // curl's own headers and the two set ones
  ASSERT_LT(lines, static_cast<size_t>(FC_MAX_HEADERS));
  int room = FC_MAX_HEADERS - static_cast<int>(lines);

  HttpResponse full = send(room);
  ASSERT_EQ(full.status, 200) << full.error << full.body;
  json full_seen = json::parse(full.body, nullptr, false);
  ASSERT_TRUE(full_seen.is_object()) << full.body;
  EXPECT_EQ(full_seen["headers"].size(), static_cast<size_t>(FC_MAX_HEADERS));

  HttpResponse over = send(room + 1);
  EXPECT_EQ(over.status, 431) << over.body;
  EXPECT_EQ(over.header("x-fc-error-type"), "RequestTooLarge") << over.body;
}

}  // namespace
}  // namespace fc::e2e
