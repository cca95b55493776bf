// Memory that does not grow with work (issue 11 item 4): a 1 GiB streamed
// upload through a function that discards it moves the peak RSS of neither
// the runner nor the nginx worker by more than kMaxGrowthKb.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "harness.h"

namespace fc::e2e {
namespace {

// The bound: what a stream may cost at its busiest, whatever its length.
constexpr long kMaxGrowthKb = 8 * 1024;

// A field of /proc/PID/status in kB (VmHWM: the peak RSS so far), or -1.
long status_kb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

class MemoryTest : public GatewayFixture {};

TEST_F(MemoryTest, AOneGibUploadMovesPeakRssByLessThanEightMb) {
  add_app_function("sink", "stream_app.py", "");
  gw_.add_server_conf("    location /big/ { client_max_body_size 0; rewrite ^/big(/.*)$ $1 break; fc_function sink; }\n");
  gw_.start();
  HttpResponse warm = http_get(gw_.url("/sink/bytes?n=10"));  // the instance is up, its connection open
  ASSERT_EQ(warm.status, 200) << warm.error;
  auto [rc, children] = run("pgrep -P " + std::to_string(gw_.nginx().pid()));
  ASSERT_EQ(rc, 0) << children;
  pid_t worker = std::stoi(children);
  long runner_before = status_kb(gw_.runner().pid(), "VmHWM");
  long worker_before = status_kb(worker, "VmHWM");
  ASSERT_GT(runner_before, 0);
  ASSERT_GT(worker_before, 0);

  auto [status, out] = run("head -c 1073741824 /dev/zero | curl -sS --max-time 100 -T - " + gw_.url("/big/discard"));
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(out, "1073741824") << "the function saw every byte";

  long runner_growth = status_kb(gw_.runner().pid(), "VmHWM") - runner_before;
  long worker_growth = status_kb(worker, "VmHWM") - worker_before;
  EXPECT_LT(runner_growth, kMaxGrowthKb) << "fc-runner's peak RSS grew by " << runner_growth << " kB";
  EXPECT_LT(worker_growth, kMaxGrowthKb) << "the nginx worker's peak RSS grew by " << worker_growth << " kB";
  RecordProperty("runner_growth_kb", std::to_string(runner_growth));
  RecordProperty("worker_growth_kb", std::to_string(worker_growth));
  std::cerr << "peak RSS growth: fc-runner " << runner_growth << " kB, nginx worker " << worker_growth << " kB\n";
}

}  // namespace
}  // namespace fc::e2e
