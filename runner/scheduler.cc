#include "scheduler.h"

#include <algorithm>

namespace fc {

int Scheduler::pick(std::span<const InstanceView> instances) const {
  for (size_t i = 0; i < instances.size(); i++) {
    int slots = instances[i].concurrency > 0 ? instances[i].concurrency : concurrency_;
    if (instances[i].ready && instances[i].in_flight < slots) return static_cast<int>(i);
  }
  return -1;
}

int Scheduler::to_start(size_t queued, std::span<const InstanceView> instances) const {
  size_t starting_capacity = 0;
  for (const auto& inst : instances) {
    if (inst.starting) starting_capacity += static_cast<size_t>(concurrency_);
  }
  int count = static_cast<int>(instances.size());
  int start = 0;
  while (queued > starting_capacity && count + start < max_instances_) {
    start++;
    starting_capacity += static_cast<size_t>(concurrency_);
  }
  return start;
}

void RestartBackoff::on_failure(uint64_t now_ms) {
  failures_++;
  last_failure_ms_ = now_ms;
}

uint64_t RestartBackoff::delay(uint64_t now_ms) const {
  if (failures_ == 0) return 0;
  uint64_t wait = kFirstDelayMs;
  for (int i = 1; i < failures_ && wait < kMaxDelayMs; i++) wait *= 2;
  wait = std::min(wait, kMaxDelayMs);
  uint64_t until = last_failure_ms_ + wait;
  return until > now_ms ? until - now_ms : 0;
}

}  // namespace fc
