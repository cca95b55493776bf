// The module's check of the headers a RESPONSE frame carries
// (ngx_http_fc_add_header): a value with NUL, CR or LF, or a name with a byte
// a header name cannot hold, makes the runner's answer invalid (502), and
// nothing of it reaches the client.  The value is checked eight bytes a step
// with the last step overlapping the one before, a byte a step below eight,
// so the bad byte is put at every position of values of several lengths.
// tests/e2e/apps/fake_runner.py's `header` function sends the header.
// Common names are looked up once, at configuration time (the module's
// known header table): each of them, in any case, must reach the client as
// any other header does, and fc_hide_header / fc_pass_header must see them.
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
    gw_.add_server_conf("    location = /header-hide-pass { fc_runner unix:" + sock +
                        "; fc_function header; fc_pass_header Server; fc_hide_header ETag;"
                        " fc_hide_header X-Hidden; add_header X-Upstream-Type $upstream_http_content_type; }\n");
    gw_.start();
  }

  HttpResponse get(const std::string& name, const std::string& value) {
    return http_get(gw_.url("/header?name=" + percent_encode(name) + "&value=" + percent_encode(value)));
  }

  // Every pair as one RESPONSE, in order.
  HttpResponse get_all(const std::string& path, const std::vector<std::pair<std::string, std::string>>& pairs) {
    std::string query;
    for (const auto& [name, value] : pairs) {
      query += (query.empty() ? "?" : "&") + std::string("name=") + percent_encode(name) +
               "&value=" + percent_encode(value);
    }
    return http_get(gw_.url(path + query));
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

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  return s;
}

// The names of the module's table that nginx passes on as they are sent.
const std::vector<std::string> kPassedKnownNames = {
    "Content-Type", "Cache-Control", "Expires", "Pragma", "Set-Cookie", "Location", "Refresh",
    "ETag", "Last-Modified", "Vary", "Link", "Content-Language", "Content-Disposition",
    "Accept-Ranges", "WWW-Authenticate", "X-Powered-By", "X-Content-Type-Options",
    "X-Frame-Options", "Strict-Transport-Security", "Access-Control-Allow-Origin"};

TEST_F(ResponseHeaderTest, EveryKnownNameInAnyCaseReachesTheClientAsSent) {
  for (const std::string& known : kPassedKnownNames) {
    for (const std::string& name : {known, lower(known), upper(known)}) {
      std::string value = "v-" + lower(known);
      HttpResponse r = get(name, value);
      ASSERT_EQ(r.status, 200) << name << ": " << r.error << r.body;
      EXPECT_EQ(r.header(known), value) << name;
      // nginx writes Content-Type itself, in its own spelling
      bool as_sent = known == "Content-Type";
      for (const auto& [n, v] : r.headers) as_sent |= (n == name && v == value);
      EXPECT_TRUE(as_sent) << name << " is not spelled as the function sent it";
      EXPECT_EQ(r.body, "ok\n") << name;
    }
  }
}

TEST_F(ResponseHeaderTest, KnownNamesKeepNginxsMeaning) {
  // Content-Length sets the body's length, in any case
  for (const char* name : {"Content-Length", "content-length", "CONTENT-LENGTH"}) {
    HttpResponse r = get_all("/header", {{name, "3"}, {"X-Other", "1"}});
    ASSERT_EQ(r.status, 200) << name << ": " << r.error;
    EXPECT_EQ(r.header("Content-Length"), "3") << name;
    EXPECT_EQ(r.body, "ok\n") << name;
  }
  // the function's Date and Server are nginx's, as with proxy_pass
  HttpResponse r = get_all("/header", {{"date", "Mon, 01 Jan 2001 00:00:00 GMT"}, {"SERVER", "fn-server"}});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header_values("Server").size(), 1u);
  EXPECT_NE(r.header("Server"), "fn-server");
  EXPECT_EQ(r.header_values("Date").size(), 1u);
  EXPECT_NE(r.header("Date"), "Mon, 01 Jan 2001 00:00:00 GMT");
  // Connection and Keep-Alive are hop-by-hop: never the function's
  r = get_all("/header", {{"Connection", "close"}, {"keep-alive", "timeout=1"}});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header("Keep-Alive"), "");
  EXPECT_NE(lower(r.header("Connection")), "close");
}

TEST_F(ResponseHeaderTest, DuplicatesAndUnknownNamesKeepTheirOrder) {
  HttpResponse r = get_all("/header", {{"Set-Cookie", "a=1"},
                                       {"X-Not-Known", "x"},
                                       {"set-cookie", "b=2"},
                                       {"Vary", "Accept"},
                                       {"VARY", "Origin"},
                                       {"Content-Typf", "near miss"},
                                       {"Content-Type", "text/x-known"}});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header_values("Set-Cookie"), (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_EQ(r.header_values("Vary"), (std::vector<std::string>{"Accept", "Origin"}));
  EXPECT_EQ(r.header("X-Not-Known"), "x");
  EXPECT_EQ(r.header("Content-Typf"), "near miss");
  EXPECT_EQ(r.header("Content-Type"), "text/x-known");
}

TEST_F(ResponseHeaderTest, HideAndPassHeaderSeeKnownAndOtherNames) {
  HttpResponse r = get_all("/header-hide-pass", {{"server", "fn-server"},
                                                 {"ETAG", "\"e1\""},
                                                 {"x-hidden", "h"},
                                                 {"content-type", "text/x-seen"}});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header("Server"), "fn-server");
  EXPECT_EQ(r.header("ETag"), "");
  EXPECT_EQ(r.header("X-Hidden"), "");
  EXPECT_EQ(r.header("Content-Type"), "text/x-seen");
  EXPECT_EQ(r.header("X-Upstream-Type"), "text/x-seen");
}

}  // namespace
}  // namespace fc::e2e
