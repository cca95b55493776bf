#include "http_head.h"

#include <gtest/gtest.h>

#include <string>

namespace fc {
namespace {

FunctionConfig function() {
  FunctionConfig fn;
  fn.name = "hello";
  fn.handler = "index.handler";
  fn.initializer = "index.init";
  fn.memory_size_mb = 256;
  fn.timeout_s = 30;
  fn.initialization_timeout_s = 2.5;
  return fn;
}

RequestHead request(HeaderList headers) {
  RequestHead r;
  r.function = "hello";
  r.method = "GET";
  r.uri = "/a%2Fb?x=1+2";
  r.headers = std::move(headers);
  r.host = "example.com";
  return r;
}

std::string head_for(const RequestHead& r, BodyFraming framing = BodyFraming::kNone, uint64_t length = 0) {
  InstanceCall call;
  call.method = r.method;
  call.uri = r.uri;
  call.control_path = "/http-invoke";
  call.request_id = "rid-1";
  call.client = &r;
  call.framing = framing;
  call.content_length = length;
  return build_request_head(call, function_header_lines(function()));
}

TEST(HttpHead, KeepsMethodAndRawUri) {
  EXPECT_EQ(head_for(request({})).substr(0, 29), "GET /a%2Fb?x=1+2 HTTP/1.1\r\nHo");
}

TEST(HttpHead, KeepsHeaderOrderAndDuplicates) {
  std::string head = head_for(request({{"Host", "h"}, {"X-A", "1"}, {"X-B", "2"}, {"X-A", "3"}}));
  EXPECT_NE(head.find("Host: h\r\nX-A: 1\r\nX-B: 2\r\nX-A: 3\r\n"), std::string::npos) << head;
}

TEST(HttpHead, DropsHopByHopHeadersAndTheClientsLength) {
  std::string head = head_for(request({{"Connection", "close"},
                                       {"keep-alive", "5"},
                                       {"Proxy-Connection", "x"},
                                       {"TE", "trailers"},
                                       {"Transfer-Encoding", "chunked"},
                                       {"Upgrade", "websocket"},
                                       {"Content-Length", "99"},
                                       {"X-Kept", "yes"}}));
  for (const char* gone : {"Connection:", "keep-alive:", "Proxy-Connection", "TE:", "chunked", "Upgrade",
                           "99"}) {
    EXPECT_EQ(head.find(gone), std::string::npos) << gone << " in " << head;
  }
  EXPECT_NE(head.find("X-Kept: yes\r\n"), std::string::npos);
}

TEST(HttpHead, StripsClientSentFcHeadersCaseInsensitively) {
  std::string head = head_for(request({{"X-FC-Request-Id", "forged"}, {"x-fc-control-path", "/initialize"}}));
  EXPECT_EQ(head.find("forged"), std::string::npos);
  EXPECT_EQ(head.find("/initialize"), std::string::npos);
  EXPECT_NE(head.find("x-fc-request-id: rid-1\r\n"), std::string::npos);
}

TEST(HttpHead, AddsTheFcHeaders) {
  std::string head = head_for(request({}));
  for (const char* h : {"x-fc-request-id: rid-1\r\n", "x-fc-function-name: hello\r\n",
                        "x-fc-function-handler: index.handler\r\n", "x-fc-function-memory: 256\r\n",
                        "x-fc-function-timeout: 30\r\n", "x-fc-function-initializer: index.init\r\n",
                        "x-fc-initialization-timeout: 2.5\r\n", "x-fc-control-path: /http-invoke\r\n"}) {
    EXPECT_NE(head.find(h), std::string::npos) << h << " missing in " << head;
  }
}

TEST(HttpHead, AddsHostWhenTheClientSentNone) {
  EXPECT_NE(head_for(request({})).find("Host: example.com\r\n"), std::string::npos);
}

TEST(HttpHead, FramesTheBody) {
  EXPECT_NE(head_for(request({}), BodyFraming::kContentLength, 42).find("Content-Length: 42\r\n"),
            std::string::npos);
  EXPECT_NE(head_for(request({}), BodyFraming::kChunked).find("Transfer-Encoding: chunked\r\n"),
            std::string::npos);
  std::string none = head_for(request({}));
  EXPECT_EQ(none.find("Content-Length"), std::string::npos);
  EXPECT_EQ(none.substr(none.size() - 4), "\r\n\r\n");
}

TEST(HttpHead, ChoosesTheFraming) {
  EXPECT_EQ(request_framing("GET", 0), BodyFraming::kNone);
  EXPECT_EQ(request_framing("POST", 0), BodyFraming::kContentLength);
  EXPECT_EQ(request_framing("PUT", 10), BodyFraming::kContentLength);
  EXPECT_EQ(request_framing("POST", -1), BodyFraming::kChunked);
}

TEST(HttpHead, RefusesHeaderValuesThatWouldSplitTheHead) {
  std::string head = head_for(request({{"X-Evil", "a\r\nX-Injected: 1"}}));
  EXPECT_EQ(head.find("X-Injected"), std::string::npos);
}

TEST(HttpHead, ResponseHopByHopHeaders) {
  EXPECT_TRUE(is_dropped_response_header("Connection"));
  EXPECT_TRUE(is_dropped_response_header("keep-alive"));
  EXPECT_TRUE(is_dropped_response_header("Transfer-Encoding"));
  EXPECT_FALSE(is_dropped_response_header("Content-Length"));
  EXPECT_FALSE(is_dropped_response_header("Set-Cookie"));
}

RequestHead upgrade_request(HeaderList headers) {
  RequestHead r = request(std::move(headers));
  r.version = "HTTP/1.1";
  r.content_length = 0;
  return r;
}

TEST(HttpHead, AnUpgradeNeedsHttp11AnUpgradeHeaderAndTheConnectionToken) {
  EXPECT_EQ(upgrade_protocol(upgrade_request({{"Upgrade", "websocket"}, {"Connection", "keep-alive, Upgrade"}})),
            "websocket");
  EXPECT_EQ(upgrade_protocol(upgrade_request({{"Connection", "x"}, {"Upgrade", "h2c"}, {"connection", " upgrade "}})),
            "h2c");
  EXPECT_EQ(upgrade_protocol(upgrade_request({{"Upgrade", "websocket"}})), "");
  EXPECT_EQ(upgrade_protocol(upgrade_request({{"Upgrade", "websocket"}, {"Connection", "notupgrade"}})), "");
  EXPECT_EQ(upgrade_protocol(upgrade_request({{"Connection", "upgrade"}})), "");
  RequestHead http10 = upgrade_request({{"Upgrade", "websocket"}, {"Connection", "upgrade"}});
  http10.version = "HTTP/1.0";
  EXPECT_EQ(upgrade_protocol(http10), "");
  RequestHead with_body = upgrade_request({{"Upgrade", "websocket"}, {"Connection", "upgrade"}});
  with_body.content_length = 5;
  EXPECT_EQ(upgrade_protocol(with_body), "");
  RequestHead head = upgrade_request({{"Upgrade", "websocket"}, {"Connection", "upgrade"}});
  head.method = "HEAD";
  EXPECT_EQ(upgrade_protocol(head), "");
}

TEST(HttpHead, AnUpgradeIsForwardedAsConnectionUpgrade) {
  RequestHead r = upgrade_request({{"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Key", "k"}});
  InstanceCall call;
  call.method = r.method;
  call.uri = r.uri;
  call.control_path = "/http-invoke";
  call.request_id = "rid-1";
  call.client = &r;
  std::string plain = build_request_head(call, "");
  EXPECT_EQ(plain.find("Upgrade"), std::string::npos) << plain;
  std::string upgrade = upgrade_protocol(r);
  call.upgrade = upgrade;
  std::string head = build_request_head(call, "");
  EXPECT_NE(head.find("Connection: Upgrade\r\nUpgrade: websocket\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("Sec-WebSocket-Key: k\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("Connection", head.find("Connection") + 1), std::string::npos) << head;
}

// Every pair of byte values: equal, or one ASCII letter in two cases.
TEST(HttpHead, IequalsFoldsAsciiLettersOnly) {
  auto fold = [](int c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; };
  for (int x = 0; x < 256; x++) {
    for (int y = 0; y < 256; y++) {
      std::string a(1, static_cast<char>(x)), b(1, static_cast<char>(y));
      ASSERT_EQ(iequals(a, b), fold(x) == fold(y)) << x << " " << y;
    }
  }
  EXPECT_TRUE(iequals("Content-Length", "content-LENGTH"));
  EXPECT_FALSE(iequals("Content-Length", "Content-Lengt"));
  EXPECT_FALSE(iequals("x-fc-a", "x-fc-b"));
  EXPECT_TRUE(iequals("", ""));
}

// ---- instance response heads read without http_parser ------------------------

TEST(HttpHead, ReadsTheCommonResponseHead) {
  std::string bytes =
      "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length:  6 \r\n"
      "Connection: keep-alive\r\nX-Dup: a\r\nX-Dup: b\r\nX-Empty:\r\n\r\nhello\n";
  SimpleResponseHead head;
  HeaderViews headers;
  ASSERT_TRUE(parse_simple_response_head(bytes, head, headers));
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.keep_alive);
  EXPECT_EQ(head.content_length, 6u);
  EXPECT_EQ(bytes.substr(head.head_len), "hello\n");
  ASSERT_EQ(headers.size(), 7u);
  EXPECT_EQ(headers[0].first, "Server");
  EXPECT_EQ(headers[2].second, "6");
  EXPECT_EQ(headers[5].second, "b");
  EXPECT_EQ(headers[6].second, "");

  ASSERT_TRUE(parse_simple_response_head("HTTP/1.1 404\r\ncontent-length: 0\r\nCONNECTION: Close\r\n\r\n", head,
                                         headers));
  EXPECT_EQ(head.status, 404);
  EXPECT_FALSE(head.keep_alive);
  EXPECT_EQ(head.content_length, 0u);
  ASSERT_TRUE(parse_simple_response_head("HTTP/1.1 599 x\r\nContent-Length: 999999999999999999\r\n\r\n", head, headers));
  EXPECT_EQ(head.content_length, 999999999999999999u);
}

// Whatever is not of the common shape is left to http_parser, which reads
// it (or refuses it) as before: every case here must say false.
TEST(HttpHead, LeavesEveryOtherResponseHeadToHttpParser) {
  const char* const others[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",                  // not complete
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r",                // not complete
      "HTTP/1.1 200 OK\r\n",                                       // not complete
      "HTTP/1.1 20",                                               // not complete
      "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",              // HTTP/1.0 keep-alive rules
      "HTTP/1.1 200 OK\r\n\r\n",                                   // body until close
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",     // chunked
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",  // repeated
      "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n",  // 19 digits
      "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",  // interim
      "HTTP/1.1 101 Switching Protocols\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",      // no body whatever it says
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
      "HTTP/1.1 600 Bad\r\nContent-Length: 0\r\n\r\n",             // not a status
      "HTTP/1.1 199 x\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",                // bare LF
      "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n",
      "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n",  // bare CR
      "HTTP/1.1 200 OK\r\nX-A: a\tb\r\nContent-Length: 0\r\n\r\n",  // a tab
      "HTTP/1.1 200 OK\r\nX-A: a\x7f\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\nContent-Length: 0\r\n\r\n",  // obs-fold
      "HTTP/1.1 200 OK\r\nX A: a\r\nContent-Length: 0\r\n\r\n",    // not a token
      "HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\n: a\r\nContent-Length: 0\r\n\r\n",       // no name
      "HTTP/1.1 200 OK\r\nNo colon\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nConnection: upgrade\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n",
      "http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
      "",
  };
  for (const char* bytes : others) {
    SimpleResponseHead head;
    HeaderViews headers;
    EXPECT_FALSE(parse_simple_response_head(bytes, head, headers)) << bytes;
  }
  SimpleResponseHead head;
  HeaderViews headers;
  std::string nul("HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n", 49);
  EXPECT_FALSE(parse_simple_response_head(nul, head, headers));
}

}  // namespace
}  // namespace fc
