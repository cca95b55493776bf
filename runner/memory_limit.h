// memorySize per instance (issue 3): a memory cgroup per instance where the
// runner can make one (cgroup v2 memory.max or v1 memory.limit_in_bytes,
// under the runner's own cgroup), else RLIMIT_AS set by the guard.  The
// guard's pid namespace init joins the cgroup before it starts the app (with
// isolation's namespaces; without, the guard moves the app in while it starts,
// then whatever the app forked before the move took effect), so the app and
// all its children end up inside.  cgroupfs reads and writes are kernel calls, not
// disk I/O, so they are done on the loop.
#pragma once

#include <cstdint>
#include <string>

namespace fc {

class MemoryLimit {
 public:
  // Finds the cgroup to create instance cgroups under (once per runner).
  // Returns a description for the start-up log.
  static std::string init();
  static void cleanup();  // removes the runner's cgroup directory at exit

  // Creates the instance's cgroup with `megabytes` as its limit; empty path
  // when cgroups are not available (the guard then uses RLIMIT_AS).
  MemoryLimit(const std::string& instance_id, int megabytes);
  ~MemoryLimit();  // removes the cgroup
  MemoryLimit(const MemoryLimit&) = delete;
  MemoryLimit& operator=(const MemoryLimit&) = delete;

  const std::string& cgroup() const { return path_; }
  int megabytes() const { return megabytes_; }
  // True once the kernel OOM-killed something in the cgroup.
  bool oom_killed() const;
  // The cgroup's memory use in bytes (v2 memory.current, v1
  // memory.usage_in_bytes: page cache included); -1 without a cgroup.
  long long current_bytes() const;

 private:
  std::string path_;
  int megabytes_;
};

}  // namespace fc
