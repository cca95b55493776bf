// runner/limit_watch.h: the open-descriptor count of an instance's tree.
#include "limit_watch.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

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

}  // namespace
}  // namespace fc
