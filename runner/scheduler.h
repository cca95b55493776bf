// The scheduler's decisions (DESIGN §4), kept free of processes and sockets
// so they are unit-tested directly; Function applies them.
//
// Requests queue per function, never per instance.  A queued request goes to
// the first ready instance with a free slot; a new instance starts only while
// the queue is longer than the capacity already starting and the pool is
// below maxInstances.  Nothing binds a request to the instance started for
// it: whichever instance frees a slot or becomes ready first takes the head
// of the queue.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace fc {

struct InstanceView {
  bool ready = false;     // accepts requests now
  bool starting = false;  // spawned, not ready yet (probing or initializing)
  int in_flight = 0;
  // Its own slots (instanceConcurrency of its version); 0: the scheduler's.
  int concurrency = 0;
};

class Scheduler {
 public:
  Scheduler(int concurrency, int max_instances)
      : concurrency_(concurrency < 1 ? 1 : concurrency), max_instances_(max_instances) {}

  // Index of the first ready instance with a free slot, or -1.
  int pick(std::span<const InstanceView> instances) const;

  // How many instances to start now for `queued` waiting requests.
  int to_start(size_t queued, std::span<const InstanceView> instances) const;

  int concurrency() const { return concurrency_; }
  int max_instances() const { return max_instances_; }
  // The function learned that fewer instances can run (a fixed-port app).
  void set_max_instances(int max) { max_instances_ = max < 1 ? 1 : max; }

 private:
  int concurrency_;
  int max_instances_;
};

// Replacing failed instances (start failures, crashes before or after ready,
// timeout kills, unhealthy ones) with exponential backoff, so a function that
// always fails cannot fork-bomb the host.  Function calls on_failure() for
// every failed instance and on_success() only once an instance has served
// well for Function::kHealthyServiceMs.  Times are loop milliseconds.
class RestartBackoff {
 public:
  static constexpr uint64_t kFirstDelayMs = 500;
  static constexpr uint64_t kMaxDelayMs = 30'000;

  void on_failure(uint64_t now_ms);
  void on_success() { failures_ = 0; }
  // 0 when a start is allowed now, else the milliseconds to wait.
  uint64_t delay(uint64_t now_ms) const;
  int failures() const { return failures_; }

 private:
  int failures_ = 0;
  uint64_t last_failure_ms_ = 0;
};

}  // namespace fc
