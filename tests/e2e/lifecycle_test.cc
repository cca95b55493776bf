// Instance lifecycle and scheduling (issue 3): the initializer-gated model,
// the per-function queue, pool bounds, timeouts, crashes, fixed-port apps.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

class LifecycleTest : public GatewayFixture {
 protected:
  void SetUp() override { std::filesystem::create_directories(state_dir()); }

  std::string state_dir() const { return gw_.path("state"); }

  // A function running lifecycle_app.py, served at /<name>/...; `env` adds
  // environment variables (", NAME: value").
  void add_function(const std::string& name, const std::string& extra, const std::string& env = "",
                    const std::string& code_dir = FC_E2E_APPS_DIR) {
    add_app_function(name, "lifecycle_app.py",
                     "    environmentVariables: { STATE_DIR: " + state_dir() + env + " }\n" + extra, code_dir);
  }

  // The instance id ($fc_instance in the access log) that served the
  // request to /<fn>/...mark=<mark>; nginx logs just after responding.
  std::string served_by(const std::string& fn, const std::string& mark) {
    std::string instance = "?";
    wait_until(
        [&] {
          std::istringstream lines(gw_.access_log());
          for (std::string line; std::getline(lines, line);) {
            if (line.find("/" + fn + "/") == std::string::npos || line.find("mark=" + mark + " ") == std::string::npos)
              continue;
            std::istringstream f(line);
            std::string rid, status, cold;
            f >> rid >> status >> cold >> instance;
            return true;
          }
          return false;
        },
        2s);
    return instance;
  }

  std::vector<pid_t> started_pids() {
    std::vector<pid_t> pids;
    std::istringstream in(read_file(state_dir() + "/starts.log"));
    pid_t pid;
    double at;
    while (in >> pid >> at) pids.push_back(pid);
    return pids;
  }
};

// The seed's scenario: two invocations during a slow initializer cost one
// cold start on the critical path, not two.
TEST_F(LifecycleTest, QueuedRequestIsNotBoundToStartingInstance) {
  add_function("init", "    initializer: index.initializer\n    maxInstances: 2\n", ", INIT_SLEEP: 1");
  add_function("lazy", "    maxInstances: 2\n", ", LAZY_SLEEP: 1");
  gw_.start();

  for (const std::string fn : {"init", "lazy"}) {
    auto t0 = Clock::now();
    auto a = std::async(std::launch::async, [&] {
      HttpResponse r = http_get(gw_.url("/" + fn + "/fast?mark=a"));
      return std::make_pair(r, seconds_since(t0));
    });
    auto b = std::async(std::launch::async, [&] {
      std::this_thread::sleep_for(500ms);
      HttpResponse r = http_get(gw_.url("/" + fn + "/fast?mark=b"));
      return std::make_pair(r, seconds_since(t0));
    });
    auto [ra, ta] = a.get();
    auto [rb, tb] = b.get();
    ASSERT_EQ(ra.status, 200) << fn << ra.body;
    ASSERT_EQ(rb.status, 200) << fn << rb.body;
    if (fn == "init") {
      // The initializer ran once per started instance, with FC's headers.
      std::istringstream inits(read_file(state_dir() + "/initialize.log"));
      std::string first_line;
      ASSERT_TRUE(std::getline(inits, first_line));
      json headers = json::parse(first_line);
      std::map<std::string, std::string> h;
      for (const auto& kv : headers) h[kv[0]] = kv[1];
      EXPECT_EQ(h["x-fc-control-path"], "/initialize");
      EXPECT_EQ(h["x-fc-function-name"], "init");
      EXPECT_EQ(h["x-fc-function-initializer"], "index.initializer");
      EXPECT_FALSE(h["x-fc-request-id"].empty());
      EXPECT_TRUE(gw_.runner_logged("FC Initialize Start RequestId: " + h["x-fc-request-id"]));
      // B is served by the first instance to become ready (A's, which B did
      // not start), ~1.05 s, not by the one its arrival started.
      EXPECT_LT(tb, 2.5);
      EXPECT_EQ(served_by(fn, "b"), served_by(fn, "a"));
      EXPECT_EQ(json::parse(rb.body)["pid"], json::parse(ra.body)["pid"]);
    } else {
      // Lazy work in the handler: B pays its own 1 s on the second instance.
      EXPECT_GT(tb, 1.4);
      EXPECT_NE(served_by(fn, "b"), served_by(fn, "a"));
    }
    EXPECT_NE(served_by(fn, "a"), "-");
  }
}

TEST_F(LifecycleTest, InstanceConcurrencyServesFiveAtOnceAndNeverMore) {
  add_function("conc", "    instanceConcurrency: 5\n    maxInstances: 1\n");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/conc/fast")).status, 200);  // warm
  auto t0 = Clock::now();
  // One more than fits: the sixth must wait for a slot, never run beside five.
  std::vector<std::future<std::pair<HttpResponse, double>>> calls;
  for (int i = 0; i < 6; i++) {
    calls.push_back(std::async(std::launch::async, [&] {
      HttpResponse r = http_get(gw_.url("/conc/sleep?s=1"));
      return std::make_pair(r, seconds_since(t0));
    }));
  }
  std::set<int> pids;
  int peak = 0;
  std::vector<double> done;
  for (auto& c : calls) {
    auto [r, at] = c.get();
    ASSERT_EQ(r.status, 200) << r.body;
    json info = json::parse(r.body);
    EXPECT_LE(info["max_inflight"].get<int>(), 5);
    peak = std::max(peak, info["max_inflight"].get<int>());
    pids.insert(info["pid"].get<int>());
    done.push_back(at);
  }
  std::sort(done.begin(), done.end());
  EXPECT_EQ(peak, 5) << "five did not run at once";
  EXPECT_LT(done[4], 1.8) << "the first five were not served together";
  EXPECT_GT(done[5], 1.8) << "the sixth ran beside the five";
  EXPECT_EQ(pids.size(), 1u);
}

TEST_F(LifecycleTest, FullQueueIs503QueueFullAtOnce) {
  add_function("q", "    maxInstances: 1\n    maxQueueSize: 2\n");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/q/fast")).status, 200);
  auto busy = get_async("/q/sleep?s=2");
  std::this_thread::sleep_for(300ms);
  auto queued1 = get_async("/q/fast");
  auto queued2 = get_async("/q/fast");
  std::this_thread::sleep_for(300ms);
  HttpResponse fourth = http_get(gw_.url("/q/fast"));
  EXPECT_EQ(fourth.status, 503);
  EXPECT_EQ(fourth.header("x-fc-error-type"), "QueueFull");
  EXPECT_LT(fourth.total_s, 0.5);
  EXPECT_EQ(busy.get().status, 200);
  EXPECT_EQ(queued1.get().status, 200);
  EXPECT_EQ(queued2.get().status, 200);
}

TEST_F(LifecycleTest, RequestQueuedTooLongIs503QueueTimeout) {
  add_function("qt", "    maxInstances: 1\n    maxQueueTime: 1\n");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/qt/fast")).status, 200);
  auto busy = get_async("/qt/sleep?s=3");
  std::this_thread::sleep_for(300ms);
  HttpResponse queued = http_get(gw_.url("/qt/fast"));
  EXPECT_EQ(queued.status, 503);
  EXPECT_EQ(queued.header("x-fc-error-type"), "QueueTimeout");
  EXPECT_GT(queued.total_s, 0.8);
  EXPECT_LT(queued.total_s, 2.0);
  EXPECT_EQ(busy.get().status, 200);
}

TEST_F(LifecycleTest, TimeoutIs504AndTheWedgedInstanceIsReplaced) {
  add_function("to", "    timeout: 1\n");
  gw_.start();
  HttpResponse first = http_get(gw_.url("/to/pid"));
  ASSERT_EQ(first.status, 200);
  pid_t old_pid = json::parse(first.body)["pid"];
  HttpResponse slow = http_get(gw_.url("/to/sleep?s=5"));
  EXPECT_EQ(slow.status, 504);
  EXPECT_EQ(slow.header("x-fc-error-type"), "FunctionTimeout");
  EXPECT_LT(slow.total_s, 2.5);
  EXPECT_TRUE(wait_until([&] { return !pid_alive(old_pid); }, 2s)) << "old instance still alive";
  HttpResponse next = http_get(gw_.url("/to/pid"));
  EXPECT_EQ(next.status, 200);
}

TEST_F(LifecycleTest, KilledInstanceFailsOnlyItsOwnRequest) {
  add_function("crash", "    maxInstances: 2\n");
  gw_.start();
  auto timed_get = [&](std::chrono::milliseconds delay) {
    return std::async(std::launch::async, [this, delay] {
      std::this_thread::sleep_for(delay);
      HttpResponse r = http_get(gw_.url("/crash/sleep?s=2"));
      return std::make_pair(r, Clock::now());
    });
  };
  auto a = timed_get(0ms);
  auto b = timed_get(100ms);
  // Wait until both instances are busy, then kill one.
  std::vector<pid_t> busy;
  ASSERT_TRUE(wait_until(
      [&] {
        busy.clear();
        for (auto& e : std::filesystem::directory_iterator(state_dir())) {
          std::string name = e.path().filename();
          if (name.rfind("busy-", 0) == 0) busy.push_back(std::stoi(name.substr(5)));
        }
        return busy.size() == 2;
      },
      5s));
  auto killed_at = Clock::now();
  kill(busy[0], SIGKILL);
  auto [ra, done_a] = a.get();
  auto [rb, done_b] = b.get();
  bool a_failed = ra.status != 200;
  HttpResponse& failed = a_failed ? ra : rb;
  HttpResponse& served = a_failed ? rb : ra;
  double failed_after = std::chrono::duration<double>((a_failed ? done_a : done_b) - killed_at).count();
  EXPECT_EQ(failed.status, 502);
  EXPECT_EQ(failed.header("x-fc-error-type"), "InstanceCrashed");
  EXPECT_LT(failed_after, 1.0);
  EXPECT_EQ(served.status, 200);
  EXPECT_EQ(json::parse(served.body)["pid"].get<int>(), busy[1]);
  EXPECT_EQ(http_get(gw_.url("/crash/fast")).status, 200);
}

TEST_F(LifecycleTest, IdleInstanceRetiresAfterPreStopAndNextRequestColdStarts) {
  add_function("idle",
               "    idleTimeout: 1\n    minInstances: 0\n"
               "    instanceLifecycleConfig: { preStop: { handler: pre-stop, timeout: 2 } }\n");
  add_function("warm", "    idleTimeout: 1\n    minInstances: 1\n");
  gw_.start();
  HttpResponse first = http_get(gw_.url("/idle/pid"));
  ASSERT_EQ(first.status, 200);
  pid_t pid = json::parse(first.body)["pid"];
  auto last_request = Clock::now();
  ASSERT_TRUE(wait_until([&] { return !pid_alive(pid); }, 4s));
  double gone_after = seconds_since(last_request);
  EXPECT_GT(gone_after, 0.8);
  EXPECT_LT(gone_after, 3.0);
  EXPECT_NE(read_file(state_dir() + "/prestop.log").find(std::to_string(pid)), std::string::npos);

  HttpResponse second = http_get(gw_.url("/idle/pid"));
  ASSERT_EQ(second.status, 200);
  EXPECT_NE(json::parse(second.body)["pid"], pid);
  HttpResponse third = http_get(gw_.url("/idle/pid"));  // warm
  ASSERT_EQ(third.status, 200);
  // Access log: "$request_id $status $fc_cold_start $fc_instance ..."; nginx
  // writes it just after the response, so give it a moment.
  std::vector<std::string> cold_flags, instances;
  wait_until(
      [&] {
        cold_flags.clear();
        instances.clear();
        std::istringstream lines(gw_.access_log());
        for (std::string line; std::getline(lines, line);) {
          if (line.find("/idle/pid") == std::string::npos) continue;
          std::istringstream f(line);
          std::string rid, status, cold, instance;
          f >> rid >> status >> cold >> instance;
          cold_flags.push_back(cold);
          instances.push_back(instance);
        }
        return cold_flags.size() == 3;
      },
      2s);
  // Cold, cold again after the idle retirement, then warm.
  EXPECT_EQ(cold_flags, (std::vector<std::string>{"1", "1", "0"}));
  // $fc_instance names the instance: a new one after the retirement.
  ASSERT_EQ(instances.size(), 3u);
  EXPECT_NE(instances[0], instances[1]);
  EXPECT_EQ(instances[1], instances[2]);
  EXPECT_NE(instances[0], "-");
  EXPECT_TRUE(gw_.runner_logged(instances[1]));

  // minInstances: 1 starts one at boot and keeps it through idle periods.
  EXPECT_TRUE(gw_.runner_logged("[warm/"));
  HttpResponse warm = http_get(gw_.url("/warm/pid"));
  ASSERT_EQ(warm.status, 200);
  pid_t warm_pid = json::parse(warm.body)["pid"];
  std::this_thread::sleep_for(2500ms);
  EXPECT_TRUE(pid_alive(warm_pid));
}

TEST_F(LifecycleTest, FailingInitializerIs503WithItsMessageAndCannotForkBomb) {
  add_function("bad", "    initializer: index.initializer\n    maxInstances: 3\n", ", INIT_FAIL: 1");
  gw_.start();
  HttpResponse first = http_get(gw_.url("/bad/fast"));
  EXPECT_EQ(first.status, 503);
  EXPECT_EQ(first.header("x-fc-error-type"), "InitializationFailed");
  EXPECT_NE(first.body.find("init exploded"), std::string::npos) << first.body;
  auto t0 = Clock::now();
  for (int i = 0; i < 20; i++) {
    HttpResponse r = http_get(gw_.url("/bad/fast"));
    EXPECT_EQ(r.status, 503);
    auto next = t0 + std::chrono::milliseconds(500 * (i + 1));
    std::this_thread::sleep_until(next);
  }
  EXPECT_LE(started_pids().size(), 6u);
}

TEST_F(LifecycleTest, InitializerErrorStatusAndCrashAreInitializationFailedToo) {
  add_function("status404", "    initializer: index.initializer\n    maxInstances: 1\n", ", INIT_FAIL: 404");
  add_function("crashing", "    initializer: index.initializer\n    maxInstances: 1\n", ", INIT_FAIL: crash");
  gw_.start();
  HttpResponse r404 = http_get(gw_.url("/status404/fast"));
  EXPECT_EQ(r404.status, 503);
  EXPECT_EQ(r404.header("x-fc-error-type"), "InitializationFailed");
  EXPECT_NE(r404.body.find("init exploded"), std::string::npos) << r404.body;
  HttpResponse crashed = http_get(gw_.url("/crashing/fast"));
  EXPECT_EQ(crashed.status, 503);
  EXPECT_EQ(crashed.header("x-fc-error-type"), "InitializationFailed");
}

TEST_F(LifecycleTest, InitializerTimeoutIs503InitializationFailed) {
  add_function("slowinit",
               "    initializer: index.initializer\n    initializationTimeout: 1\n    maxInstances: 1\n",
               ", INIT_SLEEP: 5");
  gw_.start();
  HttpResponse r = http_get(gw_.url("/slowinit/fast"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("x-fc-error-type"), "InitializationFailed");
  EXPECT_GT(r.total_s, 0.9);
  EXPECT_LT(r.total_s, 3.0);
}

TEST_F(LifecycleTest, TimeoutAlsoFailsTheWedgedInstancesOtherRequests) {
  add_function("wedge", "    timeout: 2\n    instanceConcurrency: 2\n    maxInstances: 1\n");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/wedge/fast")).status, 200);
  auto stuck = get_async("/wedge/sleep?s=10");
  auto bystander = get_async("/wedge/sleep?s=5", 500ms);
  HttpResponse s = stuck.get();
  HttpResponse b = bystander.get();
  EXPECT_EQ(s.status, 504);
  EXPECT_EQ(s.header("x-fc-error-type"), "FunctionTimeout");
  // Killed with its instance at ~2 s, well before its own 5 s of work.
  EXPECT_EQ(b.status, 502);
  EXPECT_LT(b.total_s, 3.5);
  EXPECT_EQ(http_get(gw_.url("/wedge/fast")).status, 200);
}

TEST_F(LifecycleTest, MemorySizeIsEnforcedAndTheKillIsReported) {
  add_function("mem", "    memorySize: 128\n");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/mem/alloc?mb=16")).status, 200);
  HttpResponse r = http_get(gw_.url("/mem/alloc?mb=400"));
  EXPECT_EQ(r.status, 502);
  // The kill is reported as such (the start banner names memorySize too).
  const std::string kill_message = "out of memory: the instance exceeded memorySize 128 MB";
  EXPECT_NE(r.body.find(kill_message), std::string::npos) << r.body;
  EXPECT_TRUE(gw_.runner_logged(kill_message));
  EXPECT_EQ(http_get(gw_.url("/mem/alloc?mb=16")).status, 200);
}

// A shell or pre-fork master forks its workers within milliseconds of its
// start: they must end up under the instance's memory limit too.
TEST_F(LifecycleTest, ChildrenForkedAtStartAreUnderTheMemoryLimitToo) {
  gw_.add_functions_yaml(
      "  prefork:\n"
      "    runtime: custom\n"
      "    codeUri: " FC_E2E_APPS_DIR "\n"
      "    customRuntimeConfig: { command: [/bin/sh], args: [-c, '/usr/bin/python3 prefork_app.py & wait'] }\n"
      "    memorySize: 256\n");
  gw_.add_server_conf("    location /prefork/ { fc_function prefork; }\n");
  gw_.start();
  if (gw_.runner_log().find("memorySize enforced by cgroup") == std::string::npos)
    GTEST_SKIP() << "no memory cgroups here: RLIMIT_AS applies per process, children included";
  json cgroups;
  bool same = wait_until(
      [&] {
        HttpResponse r = http_get(gw_.url("/prefork/"));
        if (r.status != 200) return false;
        cgroups = json::parse(r.body);
        return cgroups["self"] == cgroups["parent"];
      },
      3s);
  EXPECT_TRUE(same) << cgroups.dump();
  EXPECT_NE(std::string(cgroups["self"]).find("/c-"), std::string::npos) << cgroups.dump();
}

TEST_F(LifecycleTest, FixedPortAppScalesWithNetworkNamespaces) {
  if (geteuid() != 0) GTEST_SKIP() << "network namespaces need root";
  add_function("fixed", "    caPort: 9000\n    maxInstances: 3\n", ", FIXED_PORT: 9000");
  gw_.start();
  std::vector<std::future<HttpResponse>> calls;
  for (int i = 0; i < 3; i++) calls.push_back(get_async("/fixed/sleep?s=1.5"));
  std::set<int> pids;
  for (auto& c : calls) {
    HttpResponse r = c.get();
    ASSERT_EQ(r.status, 200) << r.body;
    pids.insert(json::parse(r.body)["pid"].get<int>());
  }
  EXPECT_EQ(pids.size(), 3u);
}

TEST_F(LifecycleTest, FixedPortAppWithoutPrivilegeIsCappedAtOneInstanceAndSaysSo) {
  // Everything the unprivileged runner and its instance touch lives in the
  // test's own directory (the checkout may not be reachable for nobody).
  std::string code = gw_.path("code");
  std::filesystem::create_directories(code);
  std::filesystem::copy_file(app_path("lifecycle_app.py"), code + "/lifecycle_app.py");
  chmod(code.c_str(), 0755);
  chmod(state_dir().c_str(), 0777);
  add_function("fixed", "    caPort: 9000\n    maxInstances: 3\n", ", FIXED_PORT: 9000", code);
  gw_.set_runner_user("nobody");
  gw_.start();
  EXPECT_TRUE(gw_.runner_logged("capped at 1 instance")) << gw_.runner_log();
  std::vector<std::future<HttpResponse>> calls;
  for (int i = 0; i < 3; i++) calls.push_back(get_async("/fixed/sleep?s=0.5"));
  std::set<int> pids;
  for (auto& c : calls) {
    HttpResponse r = c.get();
    ASSERT_EQ(r.status, 200) << r.body;
    pids.insert(json::parse(r.body)["pid"].get<int>());
  }
  EXPECT_EQ(pids.size(), 1u);
}

TEST_F(LifecycleTest, EventFunctionErrorIsUnhandledInvocationError) {
  add_function("evt", "    type: event\n");
  gw_.start();
  HttpRequest req;
  req.method = "POST";
  req.url = gw_.url("/evt/");
  req.body = "fail";
  HttpResponse resp = http(req);
  EXPECT_EQ(resp.header("x-fc-error-type"), "UnhandledInvocationError");
  EXPECT_EQ(resp.body, "handler failed: fail");
  EXPECT_TRUE(gw_.runner_logged("Error: Unhandled function error"));
}

TEST_F(LifecycleTest, SigtermFinishesInFlightRequestsThenStopsEverything) {
  add_function("drain", "    maxInstances: 1\n");
  gw_.start();
  auto in_flight = get_async("/drain/sleep?s=1");
  ASSERT_TRUE(wait_until([&] { return started_pids().size() == 1; }, 5s));
  std::this_thread::sleep_for(300ms);
  pid_t instance = started_pids()[0];
  kill(gw_.runner().pid(), SIGTERM);
  HttpResponse r = in_flight.get();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(wait_until([&] { return !gw_.runner().running(); }, 5s));
  EXPECT_FALSE(pid_alive(instance));
  EXPECT_FALSE(std::filesystem::exists(gw_.runner_socket()));
}

TEST_F(LifecycleTest, RunnerSigkillLeavesNoInstanceBehind) {
  add_function("orphan", "    maxInstances: 2\n    minInstances: 2\n");
  gw_.start();
  ASSERT_EQ(http_get(gw_.url("/orphan/fast")).status, 200);
  ASSERT_TRUE(wait_until([&] { return started_pids().size() == 2; }, 5s));
  // Kill only the runner, not its process group: the instances must notice.
  kill(gw_.runner().pid(), SIGKILL);
  auto pids = started_pids();
  EXPECT_TRUE(wait_until(
      [&] {
        for (pid_t p : pids)
          if (pid_alive(p)) return false;
        return true;
      },
      2s));
}

}  // namespace
}  // namespace fc::e2e
