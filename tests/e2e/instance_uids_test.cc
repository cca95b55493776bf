// Per-function uids from instanceUids are handed out at a function's first
// instance start and given back with its last instance (issue 11 item 4):
// a config may name more functions than the range has uids, as long as no
// more than that many have instances at once.  Run as root (uids are only
// switched by a root runner).
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class InstanceUidsTest : public GatewayFixture {};

// 3 uids, 5 functions: three run, each as a uid of its own from the range;
// the fourth at the same time gets a 503 naming instanceUids; once one of
// the three has no instance left, its uid serves the fourth.
TEST_F(InstanceUidsTest, MoreFunctionsThanUidsRunWhileAtMostThatManyHaveInstances) {
  ASSERT_EQ(geteuid(), 0u) << "uids of their own need a root runner";
  gw_.add_runner_yaml("instanceUids: 61184-61186\n");
  // Long enough that f1 still holds its uid after f2's and f3's cold starts
  // on a loaded machine (0.5-1.1 s each at a load of 14), short enough to wait for.
  add_app_function("f1", "isolation_app.py", "    idleTimeout: 4\n");
  for (const char* name : {"f2", "f3", "f4", "f5"}) add_app_function(name, "isolation_app.py", "");
  gw_.start();

  std::set<int> uids;
  for (const char* name : {"f1", "f2", "f3"}) {
    HttpResponse r = http_get(gw_.url(std::string("/") + name + "/whoami"));
    ASSERT_EQ(r.status, 200) << name << ": " << r.body << r.error;
    int uid = json::parse(r.body)["uid"].get<int>();
    EXPECT_GE(uid, 61184) << name;
    EXPECT_LE(uid, 61186) << name;
    uids.insert(uid);
  }
  EXPECT_EQ(uids.size(), 3u) << "each function has a uid of its own";

  // f1, f2 and f3 hold all three: f4 cannot start an instance, and says why.
  HttpResponse full = http_get(gw_.url("/f4/whoami"));
  EXPECT_EQ(full.status, 503) << full.body;
  EXPECT_EQ(full.header("x-fc-error-type"), "InitializationFailed") << full.body;
  EXPECT_NE(full.body.find("no free uid in instanceUids 61184-61186 (3 uids)"), std::string::npos) << full.body;
  EXPECT_TRUE(gw_.runner_logged("function 'f4' cannot start an instance: no free uid in instanceUids"))
      << gw_.runner_log();

  // f1's instance is reaped after its idleTimeout of 4 s: its uid goes back,
  // and f4 gets one (the restart backoff of f4's refusal may delay it).
  bool served = wait_until(
      [&] {
        HttpResponse r = http_get(gw_.url("/f4/whoami"));
        if (r.status != 200) return false;
        int uid = json::parse(r.body)["uid"].get<int>();
        return uid >= 61184 && uid <= 61186;
      },
      20s);
  EXPECT_TRUE(served) << gw_.runner_log();
  // f2 still runs as its own uid, unchanged.
  HttpResponse f2 = http_get(gw_.url("/f2/whoami"));
  ASSERT_EQ(f2.status, 200) << f2.body;
  EXPECT_TRUE(uids.count(json::parse(f2.body)["uid"].get<int>()));
}

}  // namespace
}  // namespace fc::e2e
