// Reload and versions (issue 10, acceptance 1-3): SIGHUP and POST /reload
// under continuous load, code changes under codeUri, a new version whose
// initializer fails, a broken config, and functions added, removed and left
// alone.
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

size_t append_to_string(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// The continuous load: `clients` threads, each with one keep-alive
// connection (one curl handle), a request every `pause` (light: the machine
// is shared).
class Load {
 public:
  struct Sample {
    Clock::time_point at;  // when the response ended
    long status;
    std::string error;
    double seconds;
    std::string body;
  };

  Load(std::string url, int clients, std::chrono::milliseconds pause) : url_(std::move(url)), pause_(pause) {
    for (int i = 0; i < clients; i++) threads_.emplace_back([this] { run(); });
  }
  ~Load() { stop(); }

  void stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  std::vector<Sample> samples() {
    std::lock_guard<std::mutex> lock(mu_);
    return samples_;
  }

 private:
  void run() {
    CURL* curl = curl_easy_init();
    std::string body;
    curl_easy_setopt(curl, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_to_string);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    std::vector<Sample> mine;
    while (!stop_) {
      body.clear();
      auto start = Clock::now();
      CURLcode rc = curl_easy_perform(curl);
      auto end = Clock::now();
      long status = 0;
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
      mine.push_back({end, status, rc == CURLE_OK ? std::string() : curl_easy_strerror(rc),
                      std::chrono::duration<double>(end - start).count(), body});
      std::this_thread::sleep_for(pause_);
    }
    curl_easy_cleanup(curl);
    std::lock_guard<std::mutex> lock(mu_);
    samples_.insert(samples_.end(), mine.begin(), mine.end());
  }

  std::string url_;
  std::chrono::milliseconds pause_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::vector<Sample> samples_;
};

struct LoadSummary {
  size_t total = 0, non_2xx = 0, errors = 0;
  double slowest_s = 0;
  std::string first_problem;
};

LoadSummary summarize(const std::vector<Load::Sample>& samples) {
  LoadSummary s;
  for (const auto& x : samples) {
    s.total++;
    s.slowest_s = std::max(s.slowest_s, x.seconds);
    if (!x.error.empty()) {
      s.errors++;
      if (s.first_problem.empty()) s.first_problem = x.error;
    } else if (x.status < 200 || x.status > 299) {
      s.non_2xx++;
      if (s.first_problem.empty()) s.first_problem = std::to_string(x.status) + " " + x.body;
    }
  }
  return s;
}

class ReloadTest : public GatewayFixture {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(gw_.path("state"));
    gw_.add_runner_yaml("admin: unix:" + admin_socket() + "\n");
  }

  std::string admin_socket() const { return gw_.path("admin.sock"); }

  // A code directory of its own with reload_app.py as app.py and `code` in
  // version.txt.
  std::string make_code_dir(const std::string& name, const std::string& code) {
    std::string dir = gw_.path(name);
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(app_path("reload_app.py"), dir + "/app.py",
                               std::filesystem::copy_options::overwrite_existing);
    write_file(dir + "/version.txt", code + "\n");
    return dir;
  }

  void add_reload_function(const std::string& name, const std::string& code_dir, const std::string& env,
                           const std::string& extra = "") {
    add_app_function(name, "app.py",
                     "    environmentVariables: { STATE_DIR: " + gw_.path("state") + ", " + env + " }\n" + extra,
                     code_dir);
  }

  // (status, body) of one admin request over the unix socket.
  std::pair<long, std::string> admin(const std::string& method, const std::string& path) {
    CURL* curl = curl_easy_init();
    std::string body;
    std::string url = "http://admin" + path;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, admin_socket().c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method == "POST") curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_to_string);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30000L);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    return {status, body};
  }

  json status() {
    auto [code, body] = admin("GET", "/status");
    EXPECT_EQ(code, 200) << body;
    return code == 200 ? json::parse(body) : json::object();
  }

  json function_status(const std::string& name) {
    json st = status();
    for (auto& fn : st["functions"]) {
      if (fn["name"] == name) return fn;
    }
    return nullptr;
  }

  // /metrics through prometheus_client's parser (harness.h).
  std::map<std::string, double> metrics() {
    auto [code, body] = admin("GET", "/metrics");
    EXPECT_EQ(code, 200);
    return parse_metrics(body, gw_.dir());
  }

  // The function serves `version` and has no instance of any other (the
  // rollout is over: old instances drained and stopped).
  bool rolled_out(const std::string& name, int version) {
    json fn = function_status(name);
    if (fn.is_null() || fn["version"] != version || !fn["candidate"].is_null()) return false;
    bool any_ready = false;
    for (auto& inst : fn["instances"]) {
      if (inst["version"] != version) return false;
      any_ready = any_ready || inst["state"] == "ready" || inst["state"] == "busy";
    }
    return any_ready;
  }

  void edit_config(const std::string& from, const std::string& to) {
    std::string text = read_file(gw_.runner_config_path());
    size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from << " not in\n" << text;
    text.replace(at, from.size(), to);
    write_file(gw_.runner_config_path(), text);
  }

  void sighup() { ASSERT_EQ(kill(gw_.runner().pid(), SIGHUP), 0); }

  static json body_of(const std::string& text) { return json::parse(text, nullptr, false); }
};

// Acceptance 1: three config changes by SIGHUP and one code change by POST
// /reload, under continuous load against a 0.5 s initializer.
TEST_F(ReloadTest, RollingUpdatesUnderLoadDropNothingAndHideTheColdStart) {
  std::string code = make_code_dir("code", "c1");
  add_reload_function("api", code, "CONFIG_TAG: v1, INIT_SLEEP: 0.5",
                      "    initializer: index.initializer\n"
                      "    instanceConcurrency: 8\n    minInstances: 1\n    maxInstances: 2\n"
                      "    instanceLifecycleConfig: { preStop: { handler: pre-stop, timeout: 3 } }\n");
  gw_.start();
  ASSERT_TRUE(wait_until([&] { return rolled_out("api", 1); }, 10s));
  ASSERT_EQ(http_get(gw_.url("/api/whoami")).status, 200);

  auto load_start = Clock::now();
  Load load(gw_.url("/api/whoami"), 8, 10ms);
  std::this_thread::sleep_for(1s);
  std::set<int> old_pids;
  auto pids_of = [&](const json& fn) {
    for (auto& inst : fn["instances"]) old_pids.insert(inst["pid"].get<int>());
  };
  for (int v = 2; v <= 4; v++) {
    pids_of(function_status("api"));
    edit_config("CONFIG_TAG: v" + std::to_string(v - 1), "CONFIG_TAG: v" + std::to_string(v));
    sighup();
    ASSERT_TRUE(wait_until([&] { return rolled_out("api", v); }, 15s)) << function_status("api").dump(2);
    std::this_thread::sleep_for(500ms);
  }
  // The code changes: a file under codeUri, then POST /reload.
  pids_of(function_status("api"));
  write_file(code + "/version.txt", "c2\n");
  auto [code_status, reply_text] = admin("POST", "/reload");
  ASSERT_EQ(code_status, 200) << reply_text;
  json reply = body_of(reply_text);
  ASSERT_EQ(reply["functions"]["updated"].size(), 1u) << reply.dump(2);
  EXPECT_EQ(reply["functions"]["updated"][0]["name"], "api");
  EXPECT_EQ(reply["functions"]["updated"][0]["version"], 5);
  EXPECT_EQ(reply["functions"]["updated"][0]["code_changed"], true);
  EXPECT_EQ(reply["functions"]["updated"][0]["config_changed"], false);
  ASSERT_TRUE(wait_until([&] { return rolled_out("api", 5); }, 15s)) << function_status("api").dump(2);
  auto rolled_out_at = Clock::now();
  // At least 8 s of load, and a second of it after the last rollout.
  std::this_thread::sleep_until(std::max(load_start + 8500ms, rolled_out_at + 1s));
  load.stop();

  auto samples = load.samples();
  LoadSummary s = summarize(samples);
  double seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
  std::printf("load: %zu requests in %.1f s, slowest %.3f s, %zu non-2xx, %zu errors\n", s.total, seconds,
              s.slowest_s, s.non_2xx, s.errors);
  EXPECT_GE(seconds, 8.0);
  EXPECT_GT(s.total, 500u);
  EXPECT_EQ(s.non_2xx, 0u) << s.first_problem;
  EXPECT_EQ(s.errors, 0u) << s.first_problem;
  EXPECT_LT(s.slowest_s, 0.45) << "a request waited for a new version's initializer";

  // Afterwards every response comes from the newest version.
  size_t after = 0;
  std::set<std::string> seen;
  for (const auto& x : samples) {
    json who = body_of(x.body);
    if (who.is_object()) seen.insert(who["config"].get<std::string>() + "/" + who["code"].get<std::string>());
    if (x.at < rolled_out_at) continue;
    after++;
    EXPECT_EQ(who["config"], "v4") << x.body;
    EXPECT_EQ(who["code"], "c2") << x.body;
  }
  EXPECT_GT(after, 50u);
  // Every version served during the run.
  for (const char* v : {"v1/c1", "v2/c1", "v3/c1", "v4/c1", "v4/c2"}) EXPECT_EQ(seen.count(v), 1u) << v;

  // No old-version instance is left; each got /pre-stop and its process is gone.
  json fn = function_status("api");
  EXPECT_EQ(fn["version"], 5);
  for (auto& inst : fn["instances"]) {
    EXPECT_EQ(inst["version"], 5);
    old_pids.erase(inst["pid"].get<int>());
  }
  ASSERT_FALSE(old_pids.empty());
  std::string prestops = read_file(gw_.path("state/prestop.log"));
  for (int pid : old_pids) {
    EXPECT_TRUE(wait_until([&] { return !pid_alive(pid); }, 5s)) << "old instance " << pid << " still runs";
    EXPECT_NE(prestops.find(std::to_string(pid) + " "), std::string::npos) << pid << " got no /pre-stop:\n" << prestops;
  }
  auto m = metrics();
  EXPECT_EQ(m["fc_function_version{function=api}"], 5);
  EXPECT_EQ(m["fc_version_rollouts_total{function=api,result=done}"], 4);
  EXPECT_GE(m["fc_instance_exits_total{function=api,reason=update}"], static_cast<double>(old_pids.size()));
  EXPECT_EQ(m["fc_runner_reloads_total{result=applied}"], 4);
  EXPECT_TRUE(gw_.runner_logged("version 5 serves now"));
}

// Acceptance 2: a new version whose initializer fails never takes traffic.
TEST_F(ReloadTest, NewVersionWhoseInitializerFailsIsRefusedAndTheOldOneKeepsServing) {
  std::string code = make_code_dir("code", "c1");
  add_reload_function("api", code, "CONFIG_TAG: v1, INIT_FAIL: 0",
                      "    initializer: index.initializer\n    instanceConcurrency: 8\n    maxInstances: 2\n");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/api/whoami")).status, 200);
  int pid = function_status("api")["instances"][0]["pid"];

  Load load(gw_.url("/api/whoami"), 8, 10ms);
  std::this_thread::sleep_for(500ms);
  edit_config("CONFIG_TAG: v1, INIT_FAIL: 0", "CONFIG_TAG: v2, INIT_FAIL: 1");
  auto [code_status, reply_text] = admin("POST", "/reload");
  ASSERT_EQ(code_status, 200) << reply_text;
  EXPECT_EQ(body_of(reply_text)["functions"]["updated"][0]["version"], 2) << reply_text;
  ASSERT_TRUE(wait_until([&] { return !function_status("api")["failed_version"].is_null(); }, 10s))
      << function_status("api").dump(2);
  std::this_thread::sleep_for(1s);
  load.stop();

  auto samples = load.samples();
  LoadSummary s = summarize(samples);
  std::printf("load: %zu requests, slowest %.3f s, %zu non-2xx, %zu errors\n", s.total, s.slowest_s, s.non_2xx,
              s.errors);
  EXPECT_GT(s.total, 50u);
  EXPECT_EQ(s.non_2xx, 0u) << s.first_problem;
  EXPECT_EQ(s.errors, 0u) << s.first_problem;
  for (const auto& x : samples) EXPECT_EQ(body_of(x.body)["config"], "v1") << x.body;

  json fn = function_status("api");
  EXPECT_EQ(fn["version"], 1);
  EXPECT_TRUE(fn["candidate"].is_null());
  EXPECT_EQ(fn["failed_version"]["version"], 2);
  EXPECT_NE(fn["failed_version"]["error"].get<std::string>().find("init exploded"), std::string::npos) << fn.dump(2);
  ASSERT_TRUE(wait_until([&] { return function_status("api")["instances"].size() == 1; }, 5s));
  EXPECT_EQ(function_status("api")["instances"][0]["pid"], pid) << "the old instance was touched";
  auto m = metrics();
  EXPECT_EQ(m["fc_function_version{function=api}"], 1);
  EXPECT_EQ(m["fc_function_failed_version{function=api}"], 2);
  EXPECT_EQ(m["fc_version_rollouts_total{function=api,result=failed}"], 1);
  EXPECT_EQ(m["fc_version_rollouts_total{function=api,result=done}"], 0);
  EXPECT_TRUE(gw_.runner_logged("version 2 failed to start and takes no traffic; version 1 keeps serving"));
  EXPECT_EQ(http_get(gw_.url("/api/whoami")).status, 200);
}

// Acceptance 3: a broken config is refused whole, with file and line.
TEST_F(ReloadTest, BrokenConfigIsRefusedWithFileAndLineAndTheOldFunctionsKeepAnswering) {
  std::string code = make_code_dir("code", "c1");
  add_reload_function("api", code, "CONFIG_TAG: v1");
  add_reload_function("other", code, "CONFIG_TAG: o1");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/api/whoami")).status, 200);
  ASSERT_EQ(http_get(gw_.url("/other/whoami")).status, 200);
  json before = status();

  // A value out of range on a line of its own, and a change to another
  // function that must not be applied either.
  std::string original = read_file(gw_.runner_config_path());
  edit_config("CONFIG_TAG: o1", "CONFIG_TAG: o2");
  std::string text = read_file(gw_.runner_config_path());
  size_t at = text.find("  api:\n");
  ASSERT_NE(at, std::string::npos);
  text.insert(at + 7, "    timeout: -5\n");
  write_file(gw_.runner_config_path(), text);
  int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(at) + 7, '\n'));

  auto [code_status, reply_text] = admin("POST", "/reload");
  EXPECT_EQ(code_status, 422) << reply_text;
  json reply = body_of(reply_text);
  EXPECT_EQ(reply["ok"], false);
  EXPECT_EQ(reply["error"], "InvalidConfig");
  ASSERT_EQ(reply["errors"].size(), 1u) << reply.dump(2);
  EXPECT_EQ(reply["errors"][0]["file"], gw_.runner_config_path());
  EXPECT_EQ(reply["errors"][0]["line"], line);
  EXPECT_EQ(reply["errors"][0]["key"], "functions.api.timeout");
  std::string where = gw_.runner_config_path() + ":" + std::to_string(line) + ": functions.api.timeout";
  EXPECT_NE(reply["message"].get<std::string>().find(where), std::string::npos) << reply_text;
  EXPECT_TRUE(gw_.runner_logged("reload refused, the running config keeps serving: " + where))
      << gw_.runner_log();

  // A YAML syntax error by SIGHUP: refused in the log, with file and line.
  write_file(gw_.runner_config_path(), original + "  broken: [\n");
  sighup();
  auto refusals = [&] {
    std::string log = gw_.runner_log();
    size_t n = 0;
    for (size_t p = log.find("reload refused"); p != std::string::npos; p = log.find("reload refused", p + 1)) n++;
    return n;
  };
  ASSERT_TRUE(wait_until([&] { return refusals() == 2; }, 5s)) << gw_.runner_log();
  std::string log = gw_.runner_log();
  std::string second = log.substr(log.rfind("reload refused"));
  second = second.substr(0, second.find('\n'));
  EXPECT_NE(second.find(gw_.runner_config_path() + ":"), std::string::npos) << second;
  EXPECT_NE(second.find("YAML syntax error"), std::string::npos) << second;

  // Nothing changed: same versions, same instances, both answer as before.
  json after = status();
  for (size_t i = 0; i < before["functions"].size(); i++) {
    EXPECT_EQ(after["functions"][i]["version"], 1);
    EXPECT_EQ(after["functions"][i]["instances"][0]["pid"], before["functions"][i]["instances"][0]["pid"]);
  }
  EXPECT_EQ(body_of(http_get(gw_.url("/api/whoami")).body)["config"], "v1");
  EXPECT_EQ(body_of(http_get(gw_.url("/other/whoami")).body)["config"], "o1");
  auto m = metrics();
  EXPECT_EQ(m["fc_runner_reloads_total{result=refused}"], 2);
  EXPECT_EQ(m["fc_runner_reloads_total{result=applied}"], 0);
}

// Added functions appear, removed ones drain (their in-flight request
// finishes) and go, unchanged ones keep their instances; runner-wide keys
// that cannot change live say so and keep their value.
TEST_F(ReloadTest, AddedFunctionsAppearRemovedOnesDrainAndGoUnchangedOnesAreNotTouched) {
  std::string code = make_code_dir("code", "c1");
  add_reload_function("keep", code, "CONFIG_TAG: k1");
  add_reload_function("gone", code, "CONFIG_TAG: g1");
  // nginx knows the location of the function the reload adds.
  gw_.add_server_conf("    location /fresh/ { rewrite ^/fresh(/.*)$ $1 break; fc_function fresh; }\n");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/keep/whoami")).status, 200);
  ASSERT_EQ(http_get(gw_.url("/gone/whoami")).status, 200);
  ASSERT_EQ(http_get(gw_.url("/fresh/whoami")).status, 404);
  json keep_before = function_status("keep");
  int gone_pid = function_status("gone")["instances"][0]["pid"];

  auto in_flight = get_async("/gone/sleep?s=1.5");
  std::this_thread::sleep_for(300ms);
  std::string text = read_file(gw_.runner_config_path());
  size_t at = text.find("  gone:\n");
  size_t end = text.find("\n  keep:\n");
  ASSERT_NE(at, std::string::npos);
  std::string gone_entry = end != std::string::npos && end > at ? text.substr(at, end + 1 - at) : text.substr(at);
  std::string fresh_entry = gone_entry;
  fresh_entry.replace(0, 7, "  fresh:");
  text.replace(at, gone_entry.size(), fresh_entry);
  text.replace(text.find("listen: "), 0, "listenBacklog: 77\n");
  write_file(gw_.runner_config_path(), text);

  auto [code_status, reply_text] = admin("POST", "/reload");
  ASSERT_EQ(code_status, 200) << reply_text;
  json reply = body_of(reply_text);
  // While its request runs, the removed function is listed as such.
  json draining = status()["removed_functions"];
  ASSERT_EQ(draining.size(), 1u) << draining.dump(2);
  EXPECT_EQ(draining[0]["name"], "gone");
  EXPECT_EQ(draining[0]["instances"][0]["state"], "draining");
  EXPECT_EQ(reply["functions"]["added"], json::parse(R"([{"name":"fresh","version":1}])")) << reply.dump(2);
  EXPECT_EQ(reply["functions"]["removed"], json::parse(R"(["gone"])"));
  EXPECT_EQ(reply["functions"]["unchanged"], json::parse(R"(["keep"])"));
  EXPECT_TRUE(reply["functions"]["updated"].empty());
  ASSERT_EQ(reply["restart_required"].size(), 1u) << reply.dump(2);
  EXPECT_EQ(reply["restart_required"][0]["key"], "listenBacklog");
  EXPECT_TRUE(gw_.runner_logged("listenBacklog changed from 0 to 77: that needs a restart"));

  // The removed function's request in flight finishes; new ones are 404.
  HttpResponse slow = in_flight.get();
  EXPECT_EQ(slow.status, 200) << slow.body << slow.error;
  HttpResponse gone = http_get(gw_.url("/gone/whoami"));
  EXPECT_EQ(gone.status, 404);
  EXPECT_NE(gone.body.find("FunctionNotFound"), std::string::npos) << gone.body;
  EXPECT_TRUE(wait_until([&] { return !pid_alive(gone_pid); }, 10s));
  EXPECT_TRUE(wait_until([&] { return status()["removed_functions"].empty(); }, 5s));

  HttpResponse fresh = http_get(gw_.url("/fresh/whoami"));
  EXPECT_EQ(fresh.status, 200) << fresh.body;
  EXPECT_EQ(body_of(fresh.body)["config"], "g1");

  json keep_after = function_status("keep");
  EXPECT_EQ(keep_after["version"], 1);
  ASSERT_EQ(keep_after["instances"].size(), 1u);
  EXPECT_EQ(keep_after["instances"][0]["id"], keep_before["instances"][0]["id"]);
  EXPECT_EQ(keep_after["instances"][0]["pid"], keep_before["instances"][0]["pid"]);
  EXPECT_EQ(body_of(http_get(gw_.url("/keep/whoami")).body)["pid"], keep_before["instances"][0]["pid"]);
  EXPECT_TRUE(function_status("gone").is_null());
  auto m = metrics();
  EXPECT_EQ(m["fc_instance_exits_total{function=keep,reason=update}"], 0);
  EXPECT_EQ(m.count("fc_function_version{function=gone}"), 0u);
  // The runner still listens where it did.
  EXPECT_TRUE(std::filesystem::exists(gw_.runner_socket()));
}

// An app on a fixed caPort capped at one instance (no network namespace per
// instance with maxInstances 1) cannot overlap versions: the old instance
// stops before the new one starts, and requests meanwhile wait, not fail.
TEST_F(ReloadTest, FixedPortAppWithOneInstanceIsUpdatedStopThenStart) {
  std::string code = make_code_dir("code", "c1");
  int port = free_port();
  add_reload_function("fixed", code, "CONFIG_TAG: v1",
                      "    caPort: " + std::to_string(port) + "\n    maxInstances: 1\n");
  gw_.start();
  HttpResponse first = http_get(gw_.url("/fixed/whoami"));
  ASSERT_EQ(first.status, 200) << first.body;
  int old_pid = body_of(first.body)["pid"];
  edit_config("CONFIG_TAG: v1", "CONFIG_TAG: v2");
  sighup();
  ASSERT_TRUE(wait_until([&] { return function_status("fixed")["version"] == 2; }, 10s));
  HttpResponse second = http_get(gw_.url("/fixed/whoami"));
  EXPECT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(body_of(second.body)["config"], "v2") << second.body;
  EXPECT_NE(body_of(second.body)["pid"], old_pid);
  EXPECT_FALSE(pid_alive(old_pid));
  EXPECT_TRUE(gw_.runner_logged("version 1 stops before it starts"));
  EXPECT_EQ(metrics()["fc_instance_failures_total{function=fixed}"], 0);
}

// A request pipelined behind POST /reload waits for the reload's answer and
// is answered after it, on the same connection.
TEST_F(ReloadTest, RequestPipelinedBehindAReloadIsAnsweredAfterIt) {
  std::string code = make_code_dir("code", "c1");
  add_reload_function("api", code, "CONFIG_TAG: v1");
  gw_.start();
  int fd = connect_unix(admin_socket());
  ASSERT_GE(fd, 0);
  std::string both =
      "POST /reload HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n"
      "GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, both.data(), both.size(), MSG_NOSIGNAL), static_cast<ssize_t>(both.size()));
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string in;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) in.append(buf, static_cast<size_t>(n));
  ::close(fd);
  size_t reload = in.find("HTTP/1.1 200");
  size_t health = in.find("HTTP/1.1 200", reload + 1);
  ASSERT_NE(reload, std::string::npos) << in;
  ASSERT_NE(health, std::string::npos) << in;
  EXPECT_NE(in.substr(reload, health - reload).find("\"unchanged\""), std::string::npos) << in;
  EXPECT_NE(in.substr(health).find("ok\n"), std::string::npos) << in;
}

// FC's versioned runtime names run on the local interpreter with a warning
// (issue 7); a function that a reload adds or changes is (re)started, so it
// hears the warning again, while an unchanged one does not.
TEST_F(ReloadTest, RuntimeVersionWarningComesAgainForFunctionsAReloadAddsOrChanges) {
  std::string code = make_code_dir("code", "c1");
  add_reload_function("keep", code, "CONFIG_TAG: k1");
  std::string events = gw_.path("events");
  std::filesystem::create_directories(events);
  write_file(events + "/index.py", "def handler(event, context):\n    return b'v:' + event\n");
  gw_.add_server_conf("    location /old/ { fc_function old; }\n");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/keep/whoami")).status, 200);
  const std::string warning = "function old: runtime python3.9 runs on the local python 3";
  auto warnings_in = [&](const std::string& log) {
    size_t n = 0;
    for (size_t at = log.find(warning); at != std::string::npos; at = log.find(warning, at + 1)) n++;
    return n;
  };
  auto reload_with = [&](const std::string& env) {
    // "old" goes first under functions:, before "keep" (runner-wide keys
    // follow the functions in the harness's file).
    std::string text = read_file(gw_.runner_config_path());
    size_t at = text.find("  old:\n");
    if (at != std::string::npos) text.erase(at, text.find("  keep:\n") - at);
    text.insert(text.find("functions:\n") + 11, "  old:\n    runtime: python3.9\n    type: event\n    codeUri: " +
                                                     events + "\n    handler: index.handler\n"
                                                     "    environmentVariables: { TAG: " + env + " }\n");
    write_file(gw_.runner_config_path(), text);
    auto [status, reply] = admin("POST", "/reload");
    EXPECT_EQ(status, 200) << reply;
    return body_of(reply);
  };

  // Added: warned in the log and in the reply.
  json added = reload_with("a");
  EXPECT_EQ(added["functions"]["added"], json::parse(R"([{"name":"old","version":1}])")) << added.dump(2);
  ASSERT_EQ(added["warnings"].size(), 1u) << added.dump(2);
  EXPECT_NE(added["warnings"][0].get<std::string>().find(warning), std::string::npos) << added.dump(2);
  EXPECT_TRUE(gw_.runner_logged(warning));
  HttpRequest req;
  req.method = "POST";
  req.url = gw_.url("/old/");
  req.body = "x";
  HttpResponse served = http(req);
  EXPECT_EQ(served.status, 200) << served.body;
  EXPECT_EQ(served.body, "v:x");

  // Unchanged: no new warning.
  json same = reload_with("a");
  EXPECT_EQ(same["functions"]["unchanged"].size(), 2u) << same.dump(2);
  EXPECT_TRUE(same["warnings"].empty()) << same.dump(2);

  // Changed: a new version starts and is warned about again.
  json changed = reload_with("b");
  ASSERT_EQ(changed["functions"]["updated"].size(), 1u) << changed.dump(2);
  ASSERT_EQ(changed["warnings"].size(), 1u) << changed.dump(2);
  EXPECT_TRUE(wait_until([&] { return warnings_in(gw_.runner_log()) == 2; }, 3s)) << gw_.runner_log();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(warnings_in(gw_.runner_log()), 2u);
}

}  // namespace
}  // namespace fc::e2e
