// The operator's CLI (issue 10, acceptance 5 and 6): `fc-runner status`,
// `reload`, `invoke` and `check` against a real runner, found through its
// config file as an operator would use them.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>

#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// stdout and stderr apart, and the exit status.
struct CliRun {
  int status = -1;
  std::string out;
  std::string err;
};

class CliTest : public GatewayFixture {
 protected:
  void SetUp() override { gw_.add_runner_yaml("admin: unix:" + gw_.path("admin.sock") + "\n"); }

  // `fc-runner ARGS --config <the gateway's config>`; `stdin_file` feeds stdin.
  CliRun cli(const std::string& args, const std::string& stdin_file = "/dev/null") {
    std::string out = gw_.path("cli.out"), err = gw_.path("cli.err");
    auto [status, merged] = run("{ " + runner_path() + " " + args + " --config " + gw_.runner_config_path() + " <" +
                                stdin_file + " >" + out + " 2>" + err + "; }");
    return {status, read_file(out), read_file(err)};
  }

  void add_event_function(const std::string& name) {
    gw_.add_functions_yaml("  " + name + ":\n    runtime: python3\n    type: event\n    codeUri: " +
                           app_path("python/event") + "\n    handler: index.handler\n");
    gw_.add_server_conf("    location /" + name + "/ { fc_function " + name + "; }\n");
  }

  HttpResponse post(const std::string& path, const std::string& body) {
    HttpRequest req;
    req.method = "POST";
    req.url = gw_.url(path);
    req.body = body;
    return http(req);
  }
};

// The row of `table` whose first cell is `first`, split on runs of spaces.
std::vector<std::string> row_of(const std::string& table, const std::string& first) {
  std::istringstream in(table);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::vector<std::string> cells;
    for (std::string w; words >> w;) cells.push_back(w);
    if (!cells.empty() && cells[0] == first) return cells;
  }
  return {};
}

// ---- status (acceptance 5) -----------------------------------------------------------------

TEST_F(CliTest, StatusShowsFunctionsInstancesInFlightQueueAndColdStarts) {
  add_event_function("echo");
  add_event_function("idle");
  gw_.start();
  HttpResponse first = post("/echo/", "one");
  ASSERT_EQ(first.status, 200) << first.body;
  ASSERT_EQ(post("/echo/", "two").body, "two");

  CliRun raw = cli("status --json");
  ASSERT_EQ(raw.status, 0) << raw.err;
  json status = json::parse(raw.out);
  const json* echo = nullptr;
  for (const auto& fn : status["functions"]) {
    if (fn["name"] == "echo") echo = &fn;
  }
  ASSERT_NE(echo, nullptr) << raw.out;
  ASSERT_EQ((*echo)["instances"].size(), 1u) << raw.out;
  const json& inst = (*echo)["instances"][0];

  CliRun st = cli("status");
  ASSERT_EQ(st.status, 0) << st.err;
  EXPECT_EQ(st.err, "");
  // The runner's line, then one row per function under a header.
  EXPECT_NE(st.out.find("fc-runner " + status["runner"]["version"].get<std::string>() + "  pid " +
                        std::to_string(status["runner"]["pid"].get<int>())),
            std::string::npos)
      << st.out;
  bool versions = echo->contains("version");  // the reload branch's /status has them
  std::vector<std::string> header = row_of(st.out, "FUNCTION");
  std::vector<std::string> expected_header = {"FUNCTION", "RUNTIME", "INSTANCES", "READY", "IN-FLIGHT",
                                              "QUEUE",    "COLD",    "STARTS",    "SERVED"};
  if (versions) expected_header.insert(expected_header.begin() + 1, "VERSION");
  EXPECT_EQ(header, expected_header) << st.out;
  size_t v = versions ? 1 : 0;
  std::vector<std::string> echo_row = row_of(st.out, "echo");
  ASSERT_EQ(echo_row.size(), 8 + v) << st.out;
  if (versions) {
    EXPECT_EQ(echo_row[1], (*echo)["version"].is_string() ? (*echo)["version"].get<std::string>()
                                                          : (*echo)["version"].dump());
  }
  EXPECT_EQ(echo_row[1 + v], "python3/event");
  EXPECT_EQ(echo_row[2 + v], "1/" + std::to_string((*echo)["limits"]["max_instances"].get<int>()));
  EXPECT_EQ(echo_row[3 + v], "1");  // ready
  EXPECT_EQ(echo_row[4 + v], "0");  // in flight
  EXPECT_EQ(echo_row[5 + v], "0");  // queue
  EXPECT_EQ(echo_row[6 + v], "1");  // one cold start for two requests
  EXPECT_EQ(echo_row[7 + v], "2");  // requests served
  std::vector<std::string> idle_row = row_of(st.out, "idle");
  ASSERT_EQ(idle_row.size(), 8 + v) << st.out;
  EXPECT_EQ(idle_row[2 + v], "0/" + std::to_string(status["functions"][1]["limits"]["max_instances"].get<int>()));
  EXPECT_EQ(idle_row[6 + v], "0");

  // The instance's own row: id, state, pid, in-flight, served, cold start.
  // (a VERSION column when the instances carry versions)
  size_t iv = inst.contains("version") ? 1 : 0;
  std::vector<std::string> inst_row = row_of(st.out, inst["id"].get<std::string>());
  ASSERT_GE(inst_row.size(), 8u + iv) << st.out;
  EXPECT_EQ(inst_row[1 + iv], "ready");
  EXPECT_EQ(inst_row[2 + iv], std::to_string(inst["pid"].get<int>()));
  EXPECT_EQ(inst_row[3 + iv], "0");
  EXPECT_EQ(inst_row[4 + iv], "2");
  EXPECT_EQ(inst_row[5 + iv] + " " + inst_row[6 + iv],
            std::to_string(inst["cold_start_ms"].get<long long>()) + " ms");
}

TEST_F(CliTest, StatusShowsARequestInFlight) {
  add_event_function("slow");
  gw_.start();
  // "sleep:" is index.instance's; index.handler echoes, so use a slow upload:
  // the request is in flight while its body is still coming.
  HttpRequest req;
  req.method = "POST";
  req.url = gw_.url("/slow/");
  req.body = std::string(1 << 20, 'x');
  req.pause_mid_body = 3000ms;
  auto pending = std::async(std::launch::async, [&] { return http(req); });
  bool seen = wait_until(
      [&] {
        std::vector<std::string> row = row_of(cli("status").out, "slow");
        return row.size() >= 8 && row[row.size() - 4] == "1";  // IN-FLIGHT
      },
      2500ms);
  EXPECT_TRUE(seen) << cli("status").out;
  EXPECT_EQ(pending.get().status, 200);
}

TEST_F(CliTest, StatusSaysWhyWhenThereIsNoAdminOrNoRunner) {
  gw_.start();
  CliRun up = cli("status");
  EXPECT_EQ(up.status, 0) << up.err;
  gw_.stop_runner();
  CliRun down = cli("status");
  EXPECT_EQ(down.status, 3);
  EXPECT_NE(down.err.find("cannot reach the runner at unix:" + gw_.path("admin.sock")), std::string::npos) << down.err;

  TempDir tmp;
  write_file(tmp.path() + "/noadmin.yaml", "listen: unix:" + tmp.path() + "/fc.sock\nfunctions: {}\n");
  auto [rc, out] = run(runner_path() + " status --config " + tmp.path() + "/noadmin.yaml");
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find(tmp.path() + "/noadmin.yaml has no admin: address"), std::string::npos) << out;
  auto [missing_rc, missing] = run(runner_path() + " status --config " + tmp.path() + "/absent.yaml");
  EXPECT_EQ(missing_rc, 2);
  EXPECT_NE(missing.find("absent.yaml"), std::string::npos) << missing;
}

// ---- reload ----------------------------------------------------------------------------------

// A stand-in admin API on a loopback port: answers POST /reload with the
// status and body in `reply_status`/`reply_body` and records what it got.
class FakeAdmin {
 public:
  explicit FakeAdmin(const std::string& dir) : dir_(dir), port_(free_port()) {
    write_file(dir_ + "/fake_admin.py",
               "import http.server, sys\n"
               "d = sys.argv[1]\n"
               "class H(http.server.BaseHTTPRequestHandler):\n"
               "    def do_POST(self):\n"
               "        open(d + '/got', 'a').write(self.command + ' ' + self.path + '\\n')\n"
               "        status = int(open(d + '/reply_status').read())\n"
               "        body = open(d + '/reply_body', 'rb').read()\n"
               "        self.send_response(status)\n"
               "        self.send_header('Content-Type', 'application/json')\n"
               "        self.send_header('Content-Length', str(len(body)))\n"
               "        self.end_headers()\n"
               "        self.wfile.write(body)\n"
               "    def log_message(self, *a): pass\n"
               "http.server.HTTPServer(('127.0.0.1', int(sys.argv[2])), H).serve_forever()\n");
    proc_.start({kPython, dir_ + "/fake_admin.py", dir_, std::to_string(port_)}, dir_ + "/fake_admin.log");
    wait_until([&] { return http_get("http://127.0.0.1:" + std::to_string(port_) + "/").status != 0; }, 10s);
    write_file(dir_ + "/cfg.yaml", "listen: unix:" + dir_ + "/fc.sock\nadmin: 127.0.0.1:" + std::to_string(port_) +
                                       "\nfunctions: {}\n");
  }
  void reply(int status, const std::string& body) {
    write_file(dir_ + "/reply_status", std::to_string(status));
    write_file(dir_ + "/reply_body", body);
  }
  std::string got() const { return read_file(dir_ + "/got"); }
  std::string config() const { return dir_ + "/cfg.yaml"; }

 private:
  std::string dir_;
  int port_;
  Process proc_;
};

CliRun cli_with(const std::string& args, const std::string& dir) {
  auto [status, merged] =
      run("{ " + runner_path() + " " + args + " >" + dir + "/o 2>" + dir + "/e; }");
  return {status, read_file(dir + "/o"), read_file(dir + "/e")};
}

TEST(CliReload, PrintsTheAdminsReplyAndExitsZeroOnlyWhenItAccepted) {
  TempDir tmp;
  FakeAdmin admin(tmp.path());
  admin.reply(200, "{\"reloaded\": [\"hello\"]}\n");
  CliRun ok = cli_with("reload --config " + admin.config(), tmp.path());
  EXPECT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(ok.out, "{\"reloaded\": [\"hello\"]}\n");
  EXPECT_EQ(ok.err, "");

  std::string refusal = "{\"error\": \"InvalidConfig\", \"message\": \"/etc/x.yaml:7: functions.a.timeout: bad\"}";
  admin.reply(400, refusal);
  CliRun refused = cli_with("reload --config " + admin.config(), tmp.path());
  EXPECT_EQ(refused.status, 1);
  EXPECT_EQ(refused.out, "");
  EXPECT_EQ(refused.err, "fc-runner reload: refused (HTTP 400)\n" + refusal + "\n");

  admin.reply(501, "{\"error\": \"NotImplemented\"}\n");
  EXPECT_EQ(cli_with("reload --config " + admin.config(), tmp.path()).status, 1);
  // Each was one POST /reload.
  EXPECT_EQ(admin.got(), "POST /reload\nPOST /reload\nPOST /reload\n");
}

TEST_F(CliTest, ReloadReportsTheRunnersOwnAnswer) {
  gw_.start();
  // What the admin API answers a POST /reload (501 before reloads exist, 200 after).
  auto [rc, code] = run("curl -s -o " + gw_.path("direct.body") + " -w '%{http_code}' -X POST --unix-socket " +
                        gw_.path("admin.sock") + " http://admin/reload");
  ASSERT_EQ(rc, 0);
  int http_status = std::stoi(code);
  json direct = json::parse(read_file(gw_.path("direct.body")));
  CliRun reload = cli("reload");
  std::string reply = http_status < 300 ? reload.out : reload.err.substr(reload.err.find('\n') + 1);
  EXPECT_EQ(reload.status, http_status < 300 ? 0 : 1) << http_status << " " << reload.err;
  if (http_status >= 300) {
    EXPECT_EQ(reload.err.substr(0, reload.err.find('\n')),
              "fc-runner reload: refused (HTTP " + std::to_string(http_status) + ")");
  }
  json printed = json::parse(reply, nullptr, false);
  ASSERT_TRUE(printed.is_object()) << reload.out << reload.err;
  // The same reply (its keys; a reload's details may differ between two calls).
  std::vector<std::string> direct_keys, printed_keys;
  for (auto& [k, val] : direct.items()) direct_keys.push_back(k);
  for (auto& [k, val] : printed.items()) printed_keys.push_back(k);
  EXPECT_EQ(printed_keys, direct_keys);
  if (direct.contains("error")) {
    EXPECT_EQ(printed["error"], direct["error"]);
  }
}

// ---- invoke (acceptance 6) -------------------------------------------------------------------

TEST_F(CliTest, InvokePrintsTheResultBytesOfEventTextFileAndStdin) {
  add_event_function("echo");
  gw_.start();
  CliRun text = cli("invoke echo --event 'hello, world'");
  EXPECT_EQ(text.status, 0) << text.err;
  EXPECT_EQ(text.out, "hello, world");
  EXPECT_EQ(text.err, "");

  // Binary bytes, several DATA frames' worth (3 MiB + 7), unchanged both ways.
  std::string bytes(3 * 1024 * 1024 + 7, '\0');
  std::mt19937 rng(42);
  for (auto& c : bytes) c = static_cast<char>(rng() & 0xff);
  write_file(gw_.path("event.bin"), bytes);
  CliRun file = cli("invoke echo --event-file " + gw_.path("event.bin"));
  EXPECT_EQ(file.status, 0) << file.err;
  EXPECT_EQ(file.out.size(), bytes.size());
  EXPECT_TRUE(file.out == bytes) << "the result bytes differ from the event";

  write_file(gw_.path("stdin.txt"), "from stdin\n");
  CliRun in = cli("invoke echo -", gw_.path("stdin.txt"));
  EXPECT_EQ(in.status, 0) << in.err;
  EXPECT_EQ(in.out, "from stdin\n");

  CliRun empty = cli("invoke echo");
  EXPECT_EQ(empty.status, 0) << empty.err;
  EXPECT_EQ(empty.out, "");
  // The invocations went the way nginx's requests go: FC's lines in the runner log.
  std::string log = gw_.runner_log();
  size_t starts = 0;
  for (size_t at = log.find("FC Invoke Start"); at != std::string::npos; at = log.find("FC Invoke Start", at + 1))
    starts++;
  EXPECT_EQ(starts, 4u) << log;
}

TEST_F(CliTest, InvokeOfAFailingFunctionExitsNonZeroWithTheErrorOnStderr) {
  add_event_function("boom");
  gw_.start();
  CliRun r = cli("invoke boom --event fail");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "");
  // The function's error body, then what happened, with the request id.
  json error = json::parse(r.err.substr(0, r.err.find('\n')), nullptr, false);
  ASSERT_TRUE(error.is_object()) << r.err;
  EXPECT_EQ(error["errorMessage"], "the event asked to fail");
  EXPECT_EQ(error["errorType"], "ValueError");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.err, m,
                                std::regex("fc-runner invoke: boom: function error \\(UnhandledInvocationError, "
                                           "HTTP [0-9]+\\) \\(request id ([0-9a-f]{32}), instance [^)]+\\)")))
      << r.err;
  // The runner logged the same request id as failed.
  EXPECT_TRUE(gw_.runner_logged("FC Invoke End RequestId: " + m[1].str() + ", Error: Unhandled function error"))
      << gw_.runner_log();
  // The same function, another event: fine.
  CliRun ok = cli("invoke boom --event ok");
  EXPECT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(ok.out, "ok");
}

TEST_F(CliTest, InvokeReportsGatewayErrorsUsageAndAnAbsentRunner) {
  add_event_function("echo");
  gw_.start();
  CliRun missing = cli("invoke nosuch --event x");
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(missing.out, "");
  EXPECT_NE(missing.err.find("fc-runner invoke: nosuch: 404 FunctionNotFound: "), std::string::npos) << missing.err;

  EXPECT_EQ(cli("invoke").status, 2);
  CliRun two = cli("invoke echo --event a -");
  EXPECT_EQ(two.status, 2);
  EXPECT_NE(two.err.find("give one event"), std::string::npos) << two.err;
  EXPECT_EQ(cli("invoke 'bad name' --event a").status, 2);
  CliRun no_file = cli("invoke echo --event-file " + gw_.path("absent.bin"));
  EXPECT_EQ(no_file.status, 2);
  EXPECT_NE(no_file.err.find("absent.bin"), std::string::npos) << no_file.err;

  gw_.stop_runner();
  CliRun down = cli("invoke echo --event x");
  EXPECT_EQ(down.status, 3);
  EXPECT_NE(down.err.find("cannot reach the runner at unix:" + gw_.runner_socket()), std::string::npos) << down.err;
}

// ---- check -------------------------------------------------------------------------------------

TEST(CliCheck, CheckIsTheCheckFlag) {
  TempDir tmp;
  write_file(tmp.path() + "/ok.yaml", "listen: unix:" + tmp.path() + "/fc.sock\nfunctions: {}\n");
  auto [rc, out] = run(runner_path() + " check --config " + tmp.path() + "/ok.yaml");
  EXPECT_EQ(rc, 0) << out;
  // The isolation lines (which protections are in force) come first.
  const std::string ok = tmp.path() + "/ok.yaml: ok\n";
  ASSERT_GE(out.size(), ok.size()) << out;
  EXPECT_EQ(out.substr(out.size() - ok.size()), ok);
  write_file(tmp.path() + "/bad.yaml", "listen: unix:" + tmp.path() + "/fc.sock\nfunctions: {}\nmystery: 1\n");
  auto [bad_rc, bad] = run(runner_path() + " check --config " + tmp.path() + "/bad.yaml");
  EXPECT_EQ(bad_rc, 1);
  auto [flag_rc, flag] = run(runner_path() + " --config " + tmp.path() + "/bad.yaml --check");
  EXPECT_EQ(flag_rc, 1);
  EXPECT_EQ(bad, flag);
  EXPECT_NE(bad.find(tmp.path() + "/bad.yaml:3: mystery"), std::string::npos) << bad;
}

}  // namespace
}  // namespace fc::e2e
