// The module's check of the headers a RESPONSE frame carries
// (ngx_http_fc_add_header): a value with NUL, CR or LF, or a name with a byte
// a header name cannot hold, makes the runner's answer invalid (502), and
// nothing of it reaches the client.  The value is checked eight bytes a step
// with the last step overlapping the one before, a byte a step below eight,
// so the bad byte is put at every position of values of several lengths.
// tests/e2e/apps/fake_runner.py's `header` function sends the header.
#include <gtest/gtest.h>

#include <string>

#include "harness.h"

namespace fc::e2e {
namespace {

std::string percent_encode(const std::string& s) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0xf];
    }
  }
  return out;
}

class ResponseHeaderTest : public GatewayFixture {
 protected:
  void SetUp() override {
    std::string sock = start_fake_runner(gw_, fake_runner_);
    ASSERT_FALSE(sock.empty());
    gw_.add_server_conf("    location = /header { fc_runner unix:" + sock + "; fc_function header; }\n");
    gw_.start();
  }

  HttpResponse get(const std::string& name, const std::string& value) {
    return http_get(gw_.url("/header?name=" + percent_encode(name) + "&value=" + percent_encode(value)));
  }

  Process fake_runner_;
};

TEST_F(ResponseHeaderTest, GoodValuesOfEveryLengthPassAsSent) {
  for (size_t len = 1; len <= 40; len++) {
    std::string value;
    for (size_t i = 0; i < len; i++) value += static_cast<char>('a' + i % 26);
    if (len >= 3) {
      value[len / 2] = (len % 2) ? '\t' : ' ';  // bytes below CR that are allowed
      value[len - 1] = '~';
    }
    HttpResponse r = get("X-Test", value);
    ASSERT_EQ(r.status, 200) << "length " << len << ": " << r.error << r.body;
    EXPECT_EQ(r.header("X-Test"), value) << "length " << len;
    EXPECT_EQ(r.body, "ok\n");
  }
}

TEST_F(ResponseHeaderTest, NulCrOrLfAnywhereInAValueIs502) {
  const char bad[] = {'\0', '\r', '\n'};
  for (size_t len : {1, 3, 7, 8, 9, 15, 16, 17, 24, 31}) {
    for (size_t at = 0; at < len; at++) {
      for (char c : bad) {
        std::string value(len, 'v');
        value[at] = c;
        HttpResponse r = get("X-Test", value);
        EXPECT_EQ(r.status, 502) << "byte " << int(c) << " at " << at << " of " << len;
        EXPECT_EQ(r.header("X-Test"), "") << "byte " << int(c) << " at " << at << " of " << len;
      }
    }
  }
  // the gateway still answers, on the same runner
  EXPECT_EQ(get("X-Test", "fine").status, 200);
  EXPECT_NE(gw_.nginx_error_log().find("runner sent invalid header"), std::string::npos);
}

TEST_F(ResponseHeaderTest, ABadByteInANameIs502) {
  for (const std::string& name : {std::string("X:Test"), std::string("X Test"), std::string("X\x01Test"),
                                 std::string("X-Test\x7f")}) {
    HttpResponse r = get(name, "v");
    EXPECT_EQ(r.status, 502) << percent_encode(name);
  }
  HttpResponse ok = get("X-Mixed-CASE_name.1", "v");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.header("x-mixed-case_name.1"), "v");
}

}  // namespace
}  // namespace fc::e2e
