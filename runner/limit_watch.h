// maxOpenFiles and tmpSize hits (issue 9): the kernel refuses inside the
// instance (EMFILE, ENOSPC) and tells nobody, so the runner looks: it counts
// the open descriptors of each process of the instance (/proc/PID/fd, against
// RLIMIT_NOFILE = maxOpenFiles) and reads the private /tmp's free space
// (statfs of /proc/PID/root/tmp).  Sampled on libuv's thread pool, never on
// the loop: after a request ends (at most once per kSampleIntervalMs, so a
// busy instance costs the pool five samples a second, not one per request)
// and every kSampleIntervalMs while requests run (docs/isolation.md,
// "Limits when they are hit").
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>

#include "uv_handle.h"

namespace fc {

struct LimitSample {
  long open_files = -1;       // the most descriptors one process of the instance holds; -1: unknown
  long long tmp_used_bytes = -1;  // of the private /tmp; -1: none (no namespaces) or unknown
  bool tmp_full = false;      // no block or no inode left on it
};

class LimitWatch {
 public:
  static constexpr uint64_t kSampleIntervalMs = 200;
  using Done = std::function<void(const LimitSample&)>;

  // `done` runs on the loop with each sample of the tree under the guard's
  // pid; `private_tmp`: the instance has its own /tmp (namespaces).
  LimitWatch(uv_loop_t* loop, bool private_tmp, Done done);
  ~LimitWatch();  // a sample still running is dropped
  LimitWatch(const LimitWatch&) = delete;
  LimitWatch& operator=(const LimitWatch&) = delete;

  // One sample now (at most one runs at a time; a request while one runs
  // is folded into it).
  void sample(int guard_pid);
  // What a request left behind: a sample now, or kSampleIntervalMs after
  // the last one began when that was sooner (one trailing sample however
  // many requests end meanwhile).
  void sample_soon(int guard_pid);
  // Sampling every kSampleIntervalMs while `busy` (requests in flight).
  void set_busy(bool busy, int guard_pid);

 private:
  struct Job;
  uv_loop_t* loop_;
  bool private_tmp_;
  Done done_;
  Job* running_ = nullptr;
  HandlePtr<Timer> timer_;
  HandlePtr<Timer> trailing_;  // sample_soon()'s deferred sample
  bool trailing_armed_ = false;
  int trailing_pid_ = 0;
  uint64_t last_sample_ms_ = 0;  // uv_now() when the last sample was queued; 0: none yet
  bool busy_ = false;
  int busy_pid_ = 0;
  void arm();
  void arm_trailing(uint64_t ms);
};

// The thread pool side, for tests: one sample of the tree under `guard_pid`.
LimitSample sample_limits(int guard_pid, bool private_tmp);

}  // namespace fc
