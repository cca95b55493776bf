// runner/cgroup.h: the plumbing memory_limit.cc and isolation.cc share.
#include "cgroup.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace fc {
namespace {

TEST(Cgroup, CounterReadsTheNamedLine) {
  EXPECT_EQ(cgroup::counter("low 0\nhigh 2\nmax 7\noom 1\noom_kill 3\n", "oom_kill"), 3);
  EXPECT_EQ(cgroup::counter("low 0\nhigh 2\nmax 7\n", "max"), 7);
  EXPECT_EQ(cgroup::counter("max 7\n", "oom_kill"), 0);  // absent
  EXPECT_EQ(cgroup::counter("", "max"), 0);
}

TEST(Cgroup, WriteAndReadFile) {
  std::string path = ::testing::TempDir() + "/cgroup_test_file";
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  EXPECT_TRUE(cgroup::write_file(path, "512"));
  EXPECT_EQ(cgroup::read_file(path), "512");
  EXPECT_FALSE(cgroup::write_file(path + ".missing/x", "1"));
  EXPECT_EQ(cgroup::read_file(path + ".missing"), "");
  std::remove(path.c_str());
}

TEST(Cgroup, RemoveTreeRemovesEmptyChildrenThenTheDirectory) {
  std::string dir = ::testing::TempDir() + "/cgroup_test_tree";
  std::filesystem::remove_all(dir);
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((dir + "/i-1").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((dir + "/i-2").c_str(), 0755), 0);
  cgroup::remove_tree(dir);
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(Cgroup, NoBaseForAControllerNobodyHas) {
  cgroup::RunnerBase base = cgroup::make_runner_base("no-such-controller", "no-such.max");
  EXPECT_EQ(base.version, cgroup::Version::kNone);
  EXPECT_TRUE(base.path.empty());
}

}  // namespace
}  // namespace fc
