// WebSocket through the gateway (issue 8, acceptance 6): the 101 reaches the
// client, bytes pass both ways unchanged, and closing from either side frees
// the instance's only slot.  Real nginx + fc-runner + an echo server on
// Debian's python3-websockets (tests/e2e/apps/ws_echo_app.py); the client is
// a small RFC 6455 framing over a TCP socket, here.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace fc::e2e {
namespace {

using namespace std::chrono_literals;

constexpr uint8_t kText = 0x1, kBinary = 0x2, kClose = 0x8;
constexpr size_t kMiB = 1 << 20;

struct Message {
  uint8_t opcode = 0;
  std::string payload;
};

class WsClient {
 public:
  ~WsClient() {
    if (fd_ >= 0) ::close(fd_);
  }

  // Connects and upgrades; returns the response head ("" on failure).
  std::string open(int port, const std::string& path) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return "";
    // The RFC 6455 example key: its accept value is known.
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
                      "Sec-WebSocket-Version: 13\r\n\r\n";
    if (!send_all(req)) return "";
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
      char c;
      if (!recv_exact(&c, 1)) return "";
      head.push_back(c);
    }
    return head;
  }

  // A masked frame, as clients send.
  bool send(uint8_t opcode, const std::string& payload) {
    std::string f;
    f.push_back(static_cast<char>(0x80 | opcode));
    size_t n = payload.size();
    if (n < 126) {
      f.push_back(static_cast<char>(0x80 | n));
    } else if (n < 65536) {
      f.push_back(static_cast<char>(0x80 | 126));
      f.push_back(static_cast<char>(n >> 8));
      f.push_back(static_cast<char>(n & 0xff));
    } else {
      f.push_back(static_cast<char>(0x80 | 127));
      for (int i = 7; i >= 0; i--) f.push_back(static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xff));
    }
    const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    f.append(reinterpret_cast<const char*>(mask), 4);
    size_t start = f.size();
    f += payload;
    for (size_t i = 0; i < n; i++) f[start + i] = static_cast<char>(f[start + i] ^ mask[i % 4]);
    return send_all(f);
  }

  // One whole message (the server does not fragment); false on EOF or error.
  bool recv(Message& m) {
    uint8_t h[2];
    if (!recv_exact(h, 2)) return false;
    m.opcode = h[0] & 0x0f;
    uint64_t n = h[1] & 0x7f;
    if (n == 126) {
      uint8_t e[2];
      if (!recv_exact(e, 2)) return false;
      n = (static_cast<uint64_t>(e[0]) << 8) | e[1];
    } else if (n == 127) {
      uint8_t e[8];
      if (!recv_exact(e, 8)) return false;
      n = 0;
      for (uint8_t b : e) n = (n << 8) | b;
    }
    m.payload.resize(n);
    return n == 0 || recv_exact(m.payload.data(), n);
  }

  // True when the peer closed the TCP connection within `timeout`.
  bool sees_eof(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

  void close_socket() {
    ::close(fd_);
    fd_ = -1;
  }

 private:
  bool send_all(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  bool recv_exact(void* buf, size_t len) {
    auto* p = static_cast<char*>(buf);
    size_t off = 0;
    while (off < len) {
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, 20000) != 1) return false;
      ssize_t n = ::recv(fd_, p + off, len - off, 0);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  int fd_ = -1;
};

class WebSocketTest : public GatewayFixture {
 protected:
  // One instance with one slot: a tunnel that kept it would make the next
  // request wait (and fail), not be served by the same pid.  A `timeout`
  // longer than the next request may wait, so that only the end of the
  // tunnel can free the slot in time (an abandoned request keeps its slot
  // up to the timeout).
  void start(int timeout_s = 30) {
    add_app_function("ws", "ws_echo_app.py",
                     "    maxInstances: 1\n    instanceConcurrency: 1\n    timeout: " +
                         std::to_string(timeout_s) + "\n    maxQueueTime: 10\n");
    // the same function with fc_buffering on: a tunnel is never buffered
    gw_.add_server_conf("    location /wsb/ { rewrite ^/wsb(/.*)$ $1 break; fc_function ws; fc_buffering on; }\n");
    gw_.start();
  }

  std::string pid_over_http() {
    HttpRequest req;
    req.url = gw_.url("/ws/pid");
    req.timeout_ms = 8000;  // < the 30 s timeout that would free a leaked slot
    HttpResponse resp = http(req);
    EXPECT_EQ(resp.status, 200) << resp.error << resp.body;
    EXPECT_LT(resp.total_s, 5.0) << "the tunnel's slot was not given back";
    return resp.body;
  }

  std::string pid_over_ws(WsClient& ws) {
    Message m;
    EXPECT_TRUE(ws.send(kText, "pid"));
    EXPECT_TRUE(ws.recv(m));
    return m.payload;
  }
};

std::string message_bytes(size_t size, unsigned seed) {
  std::mt19937 gen(seed);
  std::string s(size, '\0');
  for (auto& c : s) c = static_cast<char>(gen() & 0xff);
  return s;
}

TEST_F(WebSocketTest, HundredMessagesUpToOneMiBEchoInOrderAndAClientCloseFreesTheSlot) {
  start(1);
  WsClient ws;
  std::string head = ws.open(gw_.port(), "/ws/");
  ASSERT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
  EXPECT_NE(head.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), std::string::npos) << head;
  std::string pid = pid_over_ws(ws);
  ASSERT_FALSE(pid.empty());

  constexpr int kMessages = 100;
  std::vector<size_t> sizes;
  for (int i = 0; i < kMessages; i++) {
    sizes.push_back(i % 10 == 9 ? kMiB : 1 + (static_cast<size_t>(i) * 104729) % (256 * 1024));
  }
  // All sent from another thread while this one reads: the pipe is full
  // both ways at once, and the order must hold.
  std::thread sender([&] {
    for (int i = 0; i < kMessages; i++) {
      if (!ws.send(kBinary, message_bytes(sizes[i], static_cast<unsigned>(i)))) return;
    }
  });
  int echoed = 0;
  for (int i = 0; i < kMessages; i++) {
    Message m;
    if (!ws.recv(m)) break;
    ASSERT_EQ(m.opcode, kBinary);
    ASSERT_EQ(m.payload.size(), sizes[i]) << "message " << i;
    ASSERT_TRUE(m.payload == message_bytes(sizes[i], static_cast<unsigned>(i))) << "message " << i;
    echoed++;
  }
  sender.join();
  EXPECT_EQ(echoed, kMessages);

  // Longer than the function's timeout (1 s) without a word: not cut.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(pid_over_ws(ws), pid);

  // The client closes: the close handshake passes, then the connections end.
  ASSERT_TRUE(ws.send(kClose, std::string("\x03\xe8", 2)));
  Message m;
  ASSERT_TRUE(ws.recv(m));
  EXPECT_EQ(m.opcode, kClose);
  EXPECT_TRUE(ws.sees_eof(5s)) << "nginx kept the client connection after the tunnel ended";
  EXPECT_EQ(pid_over_http(), pid);
}

TEST_F(WebSocketTest, TheServerClosingFreesTheSlot) {
  start();
  WsClient ws;
  std::string head = ws.open(gw_.port(), "/ws/");
  ASSERT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
  std::string pid = pid_over_ws(ws);
  ASSERT_TRUE(ws.send(kText, "close"));
  Message m;
  ASSERT_TRUE(ws.recv(m));
  EXPECT_EQ(m.opcode, kClose);
  ASSERT_TRUE(ws.send(kClose, m.payload.substr(0, 2)));
  EXPECT_TRUE(ws.sees_eof(5s));
  EXPECT_EQ(pid_over_http(), pid);
}

TEST_F(WebSocketTest, AClientThatJustDisconnectsFreesTheSlot) {
  start();
  WsClient ws;
  std::string head = ws.open(gw_.port(), "/ws/");
  ASSERT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
  std::string pid = pid_over_ws(ws);
  ws.close_socket();  // no close handshake: the TCP connection just ends
  EXPECT_EQ(pid_over_http(), pid);
}

// The runner's side of a tunnel is one nginx connection: when that drops
// (here the nginx worker dies; its master starts another), the runner ends
// the tunnel towards the instance too, and the slot comes back.
TEST_F(WebSocketTest, TheRunnerConnectionDroppingMidTunnelFreesTheSlot) {
  start();
  auto worker_pid = [&]() -> pid_t {
    auto [rc, children] = run("pgrep -P " + std::to_string(gw_.nginx().pid()));
    return rc == 0 ? static_cast<pid_t>(std::stoi(children)) : -1;
  };
  pid_t worker = worker_pid();
  ASSERT_GT(worker, 0);
  WsClient ws;
  std::string head = ws.open(gw_.port(), "/ws/");
  ASSERT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
  std::string pid = pid_over_ws(ws);
  ASSERT_FALSE(pid.empty());
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  EXPECT_TRUE(ws.sees_eof(5s)) << "the client's connection outlived its worker";
  ASSERT_TRUE(wait_until([&] { pid_t now = worker_pid(); return now > 0 && now != worker; }, 10s));
  // Served by the same instance within the wait: the tunnel's slot is free
  // (with it kept, the request would wait for the 30 s timeout).
  EXPECT_EQ(pid_over_http(), pid);
  EXPECT_TRUE(gw_.runner().running());
}

TEST_F(WebSocketTest, AnUpgradeRequestAnsweredWithoutA101IsAnOrdinaryResponse) {
  start();
  // The app declines to switch (its /pid is plain HTTP): a normal answer.
  HttpRequest req;
  req.url = gw_.url("/ws/pid");
  req.headers = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}};
  HttpResponse resp = http(req);
  EXPECT_EQ(resp.status, 200) << resp.error << resp.body;
  EXPECT_FALSE(resp.body.empty());
}

TEST_F(WebSocketTest, FcBufferingOnStillTunnelsAsBytesCome) {
  start();
  WsClient ws;
  std::string head = ws.open(gw_.port(), "/wsb/");
  ASSERT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
  for (size_t size : {size_t{1}, size_t{70000}, kMiB}) {
    std::string bytes = message_bytes(size, static_cast<unsigned>(size));
    ASSERT_TRUE(ws.send(kBinary, bytes));
    Message m;
    ASSERT_TRUE(ws.recv(m)) << "size " << size;
    EXPECT_TRUE(m.payload == bytes) << "size " << size;
  }
  std::string pid = pid_over_ws(ws);
  ws.close_socket();
  EXPECT_EQ(pid_over_http(), pid);
}

}  // namespace
}  // namespace fc::e2e
