// Instance ports belong to the runner (issue 9, the network part): ports
// from the runner's own range, guarded by its nftables table so that no
// other local process (another function's instance included) connects to
// them, while default functions still reach the host's 127.0.0.1; and
// `network: private`, an own namespace with no outside access.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// /port answers this instance's {"port", "pid", "netns"}; /connect?port=N
// tries 127.0.0.1:N from inside the instance and answers "connected" or the
// error; /slow sleeps a second first.
constexpr const char* kNetApp = R"(import http.server, json, os, socket, time
from urllib.parse import urlsplit, parse_qs
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/connect":
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", int(parse_qs(url.query)["port"][0])))
                body = "connected"
            except OSError as e:
                body = "failed: %s" % e
            s.close()
        else:
            if url.path == "/slow":
                time.sleep(1)
            body = json.dumps({"port": int(os.environ["FC_SERVER_PORT"]), "pid": os.getpid(),
                               "netns": os.readlink("/proc/self/ns/net")})
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["FC_SERVER_PORT"])), H).serve_forever()
)";

// A TCP server on the host's 127.0.0.1 (a database, say), outside every
// instance: it accepts and closes.
class HostService {
 public:
  HostService() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd_, 16) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("HostService: cannot listen");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) break;
        accepted_++;
        close(c);
      }
    });
  }
  ~HostService() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  int accepted() const { return accepted_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// Whether this process (not the runner) can connect to 127.0.0.1:port.
bool test_process_connects(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

class NetworkTest : public GatewayFixture {
 protected:
  void SetUp() override {
    code_ = gw_.path("code");
    std::filesystem::create_directories(code_);
    write_file(code_ + "/net_app.py", kNetApp);
  }
  void add_function(const std::string& name, const std::string& extra = "") {
    add_app_function(name, "net_app.py", extra, code_);
  }
  json get_json(const std::string& path) {
    HttpResponse r = http_get(gw_.url(path));
    EXPECT_EQ(r.status, 200) << path << ": " << r.body << r.error;
    return r.status == 200 ? json::parse(r.body) : json::object();
  }
  std::string range() const {
    return std::to_string(gw_.instance_port_first()) + "-" +
           std::to_string(gw_.instance_port_first() + Gateway::kInstancePortCount - 1);
  }
  std::string code_;
};

TEST_F(NetworkTest, OnlyTheRunnerConnectsToAnInstancePortWhileTheHostStaysReachable) {
  HostService database;
  add_function("a");
  add_function("b");
  gw_.start();
  // Said once the listener is up, before the first instance starts.
  EXPECT_TRUE(wait_until(
      [&] {
        return gw_.runner_log().find("instance ports " + range() + ": only the runner connects to them") !=
               std::string::npos;
      },
      5s))
      << gw_.runner_log();
  int b_port = get_json("/b/port")["port"];
  EXPECT_GE(b_port, gw_.instance_port_first());
  EXPECT_LT(b_port, gw_.instance_port_first() + Gateway::kInstancePortCount);

  // From a's instance: b's port is refused, the host's service is not.
  HttpResponse to_b = http_get(gw_.url("/a/connect?port=" + std::to_string(b_port)));
  EXPECT_EQ(to_b.status, 200);
  EXPECT_NE(to_b.body.find("failed: [Errno 111] Connection refused"), std::string::npos) << to_b.body;
  HttpResponse to_db = http_get(gw_.url("/a/connect?port=" + std::to_string(database.port())));
  EXPECT_EQ(to_db.body, "connected");
  EXPECT_TRUE(wait_until([&] { return database.accepted() == 1; }, 2s)) << database.accepted();
  // Nor can any other local process (this one).
  EXPECT_FALSE(test_process_connects(b_port));
  // An instance cannot reach even its own port: it is the runner's.
  int a_port = get_json("/a/port")["port"];
  EXPECT_NE(http_get(gw_.url("/a/connect?port=" + std::to_string(a_port))).body, "connected");
  // b served throughout, on the same port.
  EXPECT_EQ(get_json("/b/port")["port"], b_port);
}

TEST_F(NetworkTest, PortsComeFromInstancePortsAndItsEndIsAClearError) {
  const int first = gw_.instance_port_first();
  gw_.add_runner_yaml("instancePorts: " + std::to_string(first) + "-" + std::to_string(first + 1) + "\n");
  add_function("pool", "    maxInstances: 3\n");
  gw_.start();
  // A slow request first: the app's port is then known to be $FC_SERVER_PORT
  // and the next two start together, one more than there are ports.
  int port = get_json("/pool/port")["port"];
  EXPECT_TRUE(port == first || port == first + 1) << port;
  std::vector<std::future<HttpResponse>> calls;
  for (int i = 0; i < 3; i++) calls.push_back(get_async("/pool/slow"));
  std::set<int> ports;
  for (auto& c : calls) {
    HttpResponse r = c.get();
    ASSERT_EQ(r.status, 200) << r.body << r.error;
    ports.insert(json::parse(r.body)["port"].get<int>());
  }
  EXPECT_EQ(ports, (std::set<int>{first, first + 1}));
  EXPECT_TRUE(gw_.runner_logged("no free port in instancePorts " + std::to_string(first) + "-" +
                                  std::to_string(first + 1) + " (2 ports, each in use): widen instancePorts"))
      << gw_.runner_log();
}

TEST_F(NetworkTest, PrivateNetworkServesButReachesNothingOutside) {
  HostService database;
  add_function("priv", "    network: private\n    maxInstances: 2\n");
  gw_.start();
  json port = get_json("/priv/port");
  EXPECT_EQ(port["port"], 9000);  // FC's port: the namespace is its own
  EXPECT_NE(port["netns"], std::filesystem::read_symlink("/proc/self/ns/net").string());
  HttpResponse to_db = http_get(gw_.url("/priv/connect?port=" + std::to_string(database.port())));
  EXPECT_EQ(to_db.status, 200);
  EXPECT_NE(to_db.body.find("failed:"), std::string::npos) << to_db.body;
  EXPECT_EQ(database.accepted(), 0);
  // Two instances, each on 9000 in its own namespace.
  auto slow_a = get_async("/priv/slow");
  auto slow_b = get_async("/priv/slow");
  HttpResponse ra = slow_a.get(), rb = slow_b.get();
  ASSERT_EQ(ra.status, 200);
  ASSERT_EQ(rb.status, 200);
  EXPECT_NE(json::parse(ra.body)["netns"], json::parse(rb.body)["netns"]);
}

TEST_F(NetworkTest, GuardTableIsTheRunnersOwnAndGoesWithIt) {
  // A table left by a runner killed with SIGKILL (its pid is gone).
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, nullptr, 0);
  const std::string stale = "fc_runner_" + std::to_string(dead);
  auto [made, made_out] = run("nft add table inet " + stale);
  ASSERT_EQ(made, 0) << made_out;
  add_function("a");
  gw_.start();
  const std::string mine = "fc_runner_" + std::to_string(gw_.runner().pid());
  EXPECT_TRUE(wait_until([&] { return run("nft list tables").second.find("table inet " + mine + "\n") != std::string::npos; }, 5s));
  auto [rc, tables] = run("nft list tables");
  EXPECT_NE(tables.find("table inet " + mine + "\n"), std::string::npos) << tables;
  EXPECT_EQ(tables.find("table inet " + stale + "\n"), std::string::npos) << tables;
  auto [rc2, rules] = run("nft list table inet " + mine);
  EXPECT_NE(rules.find("tcp dport " + range()), std::string::npos) << rules;
  EXPECT_EQ(get_json("/a/port").is_object(), true);
  gw_.stop_runner();
  auto [rc3, after] = run("nft list tables");
  EXPECT_EQ(after.find("table inet " + mine + "\n"), std::string::npos) << after;
}

TEST_F(NetworkTest, UnprivilegedRunnerSaysPortsAreNotProtectedAndCannotServePrivate) {
  chmod(code_.c_str(), 0755);
  add_function("a");
  add_function("p", "    network: private\n");
  gw_.set_runner_user("nobody");
  gw_.start();
  EXPECT_NE(get_json("/a/port")["port"], 0);
  HttpResponse p = http_get(gw_.url("/p/port"));
  EXPECT_EQ(p.status, 503);
  EXPECT_NE(p.body.find("functions.p.network: private needs network namespaces"), std::string::npos) << p.body;
  std::string log = gw_.runner_log();
  const std::string said = "instance ports " + range() + " are NOT protected: the runner is not root";
  EXPECT_NE(log.find(said), std::string::npos) << log;
  EXPECT_EQ(log.find(said), log.rfind(said)) << log;
  auto [rc, out] = run("setpriv --reuid=nobody --regid=nogroup --clear-groups " + gw_.path("fc-runner") +
                       " --config " + gw_.runner_config_path() + " --check");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("warning: instance ports " + range() + " would not be protected: the runner is not root"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(gw_.runner_config_path() + ":11: functions.p.network: private needs network namespaces"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace fc::e2e
