// runner/limit_watch.h: the open-descriptor count of an instance's tree.
#include "limit_watch.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

namespace fc {
namespace {

// A child of this process (the "guard") holding `extra` more descriptors.
pid_t child_holding(int extra, int ready_fd) {
  pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; i < extra; i++) ::open("/dev/null", O_RDONLY);
    char c = 1;
    if (::write(ready_fd, &c, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  return pid;
}

TEST(LimitWatch, CountsTheDescriptorsOfTheGuardsChildren) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = child_holding(40, ready[1]);
  ASSERT_GT(child, 0);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  LimitSample sample = sample_limits(getpid(), false);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  close(ready[0]);
  close(ready[1]);
  // 40 opened, plus stdio and the pipe it inherited.
  EXPECT_GE(sample.open_files, 40 + 3);
  EXPECT_LT(sample.open_files, 40 + 64);
  EXPECT_EQ(sample.tmp_used_bytes, -1);  // no private /tmp asked for
  EXPECT_FALSE(sample.tmp_full);
}

TEST(LimitWatch, NothingForAGoneTree) {
  LimitSample sample = sample_limits(0, true);
  EXPECT_EQ(sample.open_files, -1);
  EXPECT_EQ(sample.tmp_used_bytes, -1);
}

// Requests ending back to back (a busy instance) cost one sample, then one
// trailing sample kSampleIntervalMs after it, however many end meanwhile.
TEST(LimitWatch, RequestEndsBackToBackAreSampledOncePerInterval) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  {
    int samples = 0;
    uint64_t last_ms = 0;
    LimitWatch watch(&loop, false, [&](const LimitSample&) {
      samples++;
      last_ms = uv_now(&loop);
    });
    uint64_t start_ms = uv_now(&loop);
    HandlePtr<Timer> ends = Timer::create(&loop);
    int ended = 0;
    // 100 request ends, one per millisecond.
    std::function<void()> end_one = [&] {
      watch.sample_soon(getpid());
      if (++ended < 100) ends->start(1, end_one);
    };
    ends->start(0, end_one);
    uv_run(&loop, UV_RUN_DEFAULT);
    EXPECT_EQ(ended, 100);
    // One at the first end; the ends within 200 ms of it fold into one
    // trailing sample at +200 ms; the rest (100 ms on a slow machine) at most
    // one more interval's worth.
    EXPECT_GE(samples, 2);
    EXPECT_LE(samples, 2 + static_cast<int>((last_ms - start_ms) / LimitWatch::kSampleIntervalMs));
    EXPECT_LT(samples, 10);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace fc
