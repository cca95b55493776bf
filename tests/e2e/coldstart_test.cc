// Cold start (issue 9 acceptance 4, docs/isolation.md "Cold start, third
// round"): the connection of the runner's readiness probe carries the request
// that waited for the instance, so the app accepts one connection for its
// first request instead of an empty probe and then the request; when nobody
// waits, the probe is closed, so a server that serves one connection at a
// time is not left blocked on it.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "harness.h"

namespace fc::e2e {
namespace {

using namespace std::chrono_literals;

class ColdStartTest : public GatewayFixture {};

TEST_F(ColdStartTest, WaitingRequestRidesTheReadinessProbe) {
  add_app_function("counted", "accept_count_app.py", "");
  gw_.start();
  HttpResponse first = http_get(gw_.url("/counted/x"));
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, "connections 1\n");  // the probe's own connection
  // And the connection stays the instance's keep-alive one.
  HttpResponse second = http_get(gw_.url("/counted/x"));
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.body, "connections 1\n");
}

TEST_F(ColdStartTest, ProbeOfAnInstanceNobodyWaitsForIsClosed) {
  add_app_function("counted", "accept_count_app.py", "    minInstances: 1\n");
  gw_.start();
  ASSERT_TRUE(gw_.runner_logged("ready after", 10s)) << gw_.runner_log();
  HttpResponse response = http_get(gw_.url("/counted/x"));
  EXPECT_EQ(response.status, 200);
  // The probe (accepted, then closed: the one-at-a-time server moved on),
  // then the request's own connection.
  EXPECT_EQ(response.body, "connections 2\n");
}

}  // namespace
}  // namespace fc::e2e
