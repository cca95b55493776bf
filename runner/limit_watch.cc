#include "limit_watch.h"

#include <dirent.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <string>
#include <vector>

#include "listening_ports.h"

namespace fc {

struct LimitWatch::Job {
  uv_work_t work{};
  LimitWatch* owner;  // null once the watch is gone
  int guard_pid;
  bool private_tmp;
  LimitSample result;
};

namespace {

long count_fds(int pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return -1;
  long n = 0;
  while (dirent* entry = readdir(d)) {
    if (entry->d_name[0] != '.') n++;
  }
  closedir(d);
  return n;
}

}  // namespace

LimitSample sample_limits(int guard_pid, bool private_tmp) {
  LimitSample sample;
  if (guard_pid <= 0) return sample;
  std::vector<int> tree = process_tree(guard_pid);
  // The guard's own few descriptors do not count; RLIMIT_NOFILE is per process.
  for (size_t i = 1; i < tree.size(); i++) sample.open_files = std::max(sample.open_files, count_fds(tree[i]));
  if (private_tmp && tree.size() > 1) {
    // The guard's child (the pid namespace's init) sees the instance's root.
    std::string tmp = "/proc/" + std::to_string(tree[1]) + "/root/tmp";
    struct statvfs st {};
    if (statvfs(tmp.c_str(), &st) == 0) {
      sample.tmp_used_bytes = static_cast<long long>(st.f_blocks - st.f_bfree) * static_cast<long long>(st.f_frsize);
      sample.tmp_full = st.f_bfree == 0 || (st.f_files > 0 && st.f_ffree == 0);
    }
  }
  return sample;
}

LimitWatch::LimitWatch(uv_loop_t* loop, bool private_tmp, Done done)
    : loop_(loop), private_tmp_(private_tmp), done_(std::move(done)) {}

LimitWatch::~LimitWatch() {
  if (running_) running_->owner = nullptr;  // its after-work callback frees it
}

void LimitWatch::sample(int guard_pid) {
  if (running_ || guard_pid <= 0) return;
  auto* job = new Job{};
  job->owner = this;
  job->guard_pid = guard_pid;
  job->private_tmp = private_tmp_;
  job->work.data = job;
  int rc = uv_queue_work(
      loop_, &job->work,
      [](uv_work_t* w) {
        auto* j = static_cast<Job*>(w->data);
        j->result = sample_limits(j->guard_pid, j->private_tmp);
      },
      [](uv_work_t* w, int) {
        auto* j = static_cast<Job*>(w->data);
        LimitWatch* owner = j->owner;
        LimitSample result = j->result;
        delete j;
        if (owner == nullptr) return;
        owner->running_ = nullptr;
        owner->done_(result);
      });
  if (rc != 0) {
    delete job;
    return;
  }
  running_ = job;
  last_sample_ms_ = uv_now(loop_);
}

void LimitWatch::sample_soon(int guard_pid) {
  uint64_t now = uv_now(loop_);
  if (last_sample_ms_ == 0 || now - last_sample_ms_ >= kSampleIntervalMs) {
    sample(guard_pid);
    return;
  }
  trailing_pid_ = guard_pid;
  if (trailing_armed_) return;
  if (!trailing_) trailing_ = Timer::create(loop_);
  trailing_armed_ = true;
  arm_trailing(last_sample_ms_ + kSampleIntervalMs - now);
}

void LimitWatch::arm_trailing(uint64_t ms) {
  trailing_->start(ms, [this] {
    // The sample before may still run: this one must not be folded into
    // it, it is about what came after.
    if (running_) return arm_trailing(kSampleIntervalMs / 4);
    trailing_armed_ = false;
    sample(trailing_pid_);
  });
}

void LimitWatch::set_busy(bool busy, int guard_pid) {
  busy_pid_ = guard_pid;
  if (busy == busy_) return;
  busy_ = busy;
  if (!timer_) timer_ = Timer::create(loop_);
  if (busy) {
    arm();
  } else {
    timer_->stop();
  }
}

void LimitWatch::arm() {
  timer_->start(kSampleIntervalMs, [this] {
    sample(busy_pid_);
    if (busy_) arm();
  });
}

}  // namespace fc
