// Robustness: interleavings where a request could be answered wrongly or an
// instance's bookkeeping could drift (crashes with work queued, stray bytes
// on idle instance connections, ...).
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class RobustnessTest : public GatewayFixture {
 protected:
  // A function running robust_app.py, served at /<name>/...
  void add_function(const std::string& name, const std::string& extra) {
    add_app_function(name, "robust_app.py", extra);
  }
};

TEST_F(RobustnessTest, StrayBytesOnAnIdleInstanceConnectionDoNotFreeASlot) {
  add_function("stray", "    instanceConcurrency: 1\n    maxInstances: 1\n");
  gw_.start();
  HttpResponse first = http_get(gw_.url("/stray/garbage"));
  ASSERT_EQ(first.status, 200);
  EXPECT_EQ(first.body, "ok");
  // The stray bytes arrive on the now idle connection, which is dropped.
  std::this_thread::sleep_for(600ms);
  auto a = get_async("/stray/sleep?s=1");
  auto b = get_async("/stray/sleep?s=1", 200ms);
  HttpResponse ra = a.get();
  HttpResponse rb = b.get();
  ASSERT_EQ(ra.status, 200);
  ASSERT_EQ(rb.status, 200);
  // instanceConcurrency 1: the second waits for the first, never runs beside it.
  EXPECT_EQ(json::parse(ra.body)["max_inflight"].get<int>(), 1);
  EXPECT_EQ(json::parse(rb.body)["max_inflight"].get<int>(), 1);
}

// The runner keeps a response head's header names and values as slices of
// the read buffer, copied out only when the head spans reads: this head
// comes 7 bytes per read, names and values cut anywhere.
TEST_F(RobustnessTest, ResponseHeadArrivingInPiecesKeepsEveryHeader) {
  add_function("dribble", "    instanceConcurrency: 1\n    maxInstances: 1\n");
  gw_.start();
  for (int i = 0; i < 2; i++) {  // the second reuses the connection
    HttpResponse r = http_get(gw_.url("/dribble/dribble"));
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "ok");
    EXPECT_EQ(r.header("x-dribbled-long-header-name"), std::string(40, 'v'));
    EXPECT_EQ(r.header("x-second"), "second value, longer than fifteen");
  }
  HttpResponse whole = http_get(gw_.url("/dribble/pid"));
  ASSERT_EQ(whole.status, 200);
  EXPECT_FALSE(json::parse(whole.body)["pid"].is_null());
}

TEST_F(RobustnessTest, LeaderDeathFailsOnlyTheRunningRequestNotTheQueuedOne) {
  // The spawned process dies while its child still holds the connection, so
  // the runner learns of the exit before the connection ends.
  add_function("crashq",
               "    instanceConcurrency: 1\n    maxInstances: 1\n"
               "    environmentVariables: { FORK_SERVER: '1' }\n");
  gw_.start();
  HttpResponse first = http_get(gw_.url("/crashq/pid"));
  ASSERT_EQ(first.status, 200);
  pid_t leader = json::parse(first.body)["leader"];
  auto running = get_async("/crashq/sleep?s=3");
  auto queued = get_async("/crashq/pid", 300ms);
  std::this_thread::sleep_for(800ms);
  kill(leader, SIGKILL);
  HttpResponse r = running.get();
  HttpResponse q = queued.get();
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(r.header("x-fc-error-type"), "InstanceCrashed");
  // The queued request never reached the dead instance: a replacement serves it.
  ASSERT_EQ(q.status, 200) << q.body;
  EXPECT_NE(json::parse(q.body)["leader"].get<int>(), leader);
}

TEST_F(RobustnessTest, InstanceIgnoringSigtermAfterPreStopIsKilledAndTheRunnerExits) {
  add_function("stubborn",
               "    instanceLifecycleConfig: { preStop: { handler: pre-stop, timeout: 3 } }\n"
               "    environmentVariables: { IGNORE_TERM: '1' }\n");
  gw_.start();
  HttpResponse first = http_get(gw_.url("/stubborn/pid"));
  ASSERT_EQ(first.status, 200);
  pid_t pid = json::parse(first.body)["pid"];
  kill(gw_.runner().pid(), SIGTERM);
  // PreStop, SIGTERM (ignored), SIGKILL after the 5 s grace.
  EXPECT_TRUE(wait_until([&] { return !gw_.runner().running(); }, 9s)) << "the runner did not exit";
  EXPECT_TRUE(gw_.runner_logged("FC PreStop End"));
  EXPECT_TRUE(wait_until([&] { return !pid_alive(pid); }, 2s)) << "the instance is still alive";
}

}  // namespace
}  // namespace fc::e2e
