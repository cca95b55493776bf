// fc_set_header (issue 8, acceptance 5): the headers the REQUEST frame
// carries, set by the operator like proxy_set_header.  Real nginx + fc-runner
// + tests/e2e/apps/forwarded_app.py (Flask behind Werkzeug's ProxyFix).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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
  EXPECT_EQ(seen["remote_addr"], "127.0.0.1") << seen.dump();
  EXPECT_EQ(seen["forwarded_for"], json::array({"127.0.0.1"})) << seen.dump();
}

TEST_F(SetHeaderTest, AClientForwardedForIsAppendedToNotTrusted) {
  start();
  json seen = get("/fwd/", {{"X-Forwarded-For", "1.2.3.4"}});
  ASSERT_TRUE(seen.is_object());
  // one header, the client's chain plus the address nginx saw: ProxyFix
  // trusts only the last hop
  EXPECT_EQ(seen["forwarded_for"], json::array({"1.2.3.4, 127.0.0.1"})) << seen.dump();
  EXPECT_EQ(seen["remote_addr"], "127.0.0.1") << seen.dump();
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

}  // namespace
}  // namespace fc::e2e
