#include "scheduler.h"

#include <gtest/gtest.h>

#include <vector>

namespace fc {
namespace {

InstanceView ready(int in_flight) { return {true, false, in_flight}; }
InstanceView starting() { return {false, true, 0}; }

TEST(Scheduler, PicksTheFirstReadyInstanceWithAFreeSlot) {
  Scheduler s(2, 10);
  std::vector<InstanceView> pool = {starting(), ready(2), ready(1), ready(0)};
  EXPECT_EQ(s.pick(pool), 2);
}

TEST(Scheduler, AnInstanceOfAnotherVersionHasItsOwnSlots) {
  // During a rollout the versions may differ in instanceConcurrency.
  Scheduler s(1, 10);
  InstanceView old_version{true, false, 1, 1};
  InstanceView new_version{true, false, 1, 4};
  std::vector<InstanceView> pool = {old_version, new_version};
  EXPECT_EQ(s.pick(pool), 1);
  new_version.in_flight = 4;
  EXPECT_EQ(s.pick(std::vector<InstanceView>{old_version, new_version}), -1);
}

TEST(Scheduler, PicksNothingWhenEverySlotIsTaken) {
  Scheduler s(1, 10);
  std::vector<InstanceView> pool = {ready(1), starting()};
  EXPECT_EQ(s.pick(pool), -1);
}

TEST(Scheduler, StartsOnlyWhileTheQueueExceedsTheCapacityAlreadyStarting) {
  Scheduler s(1, 10);
  std::vector<InstanceView> one_starting = {starting()};
  // One request waits, one instance is already on its way: no second start.
  EXPECT_EQ(s.to_start(1, one_starting), 0);
  EXPECT_EQ(s.to_start(2, one_starting), 1);
  EXPECT_EQ(s.to_start(3, std::vector<InstanceView>{}), 3);
}

TEST(Scheduler, CountsConcurrencyOfStartingInstances) {
  Scheduler s(5, 10);
  std::vector<InstanceView> one_starting = {starting()};
  EXPECT_EQ(s.to_start(5, one_starting), 0);
  EXPECT_EQ(s.to_start(6, one_starting), 1);
  EXPECT_EQ(s.to_start(11, std::vector<InstanceView>{}), 3);
}

TEST(Scheduler, NeverExceedsMaxInstances) {
  Scheduler s(1, 2);
  std::vector<InstanceView> busy = {ready(1)};
  EXPECT_EQ(s.to_start(5, busy), 1);
  std::vector<InstanceView> full = {ready(1), ready(1)};
  EXPECT_EQ(s.to_start(5, full), 0);
}

TEST(Scheduler, QueuedRequestIsNotBoundToStartingInstance) {
  // A request queued while instance 1 starts goes to instance 0 once it
  // frees a slot: pick() only looks at ready instances with room.
  Scheduler s(1, 2);
  std::vector<InstanceView> pool = {ready(1), starting()};
  EXPECT_EQ(s.pick(pool), -1);
  pool[0].in_flight = 0;
  EXPECT_EQ(s.pick(pool), 0);
}

TEST(RestartBackoff, DoublesTheDelayAfterEachFailureUpToTheMaximum) {
  RestartBackoff b;
  EXPECT_EQ(b.delay(0), 0u);
  b.on_failure(1000);
  EXPECT_EQ(b.delay(1000), RestartBackoff::kFirstDelayMs);
  EXPECT_EQ(b.delay(1000 + RestartBackoff::kFirstDelayMs), 0u);
  b.on_failure(2000);
  EXPECT_EQ(b.delay(2000), 2 * RestartBackoff::kFirstDelayMs);
  for (int i = 0; i < 20; i++) b.on_failure(3000);
  EXPECT_EQ(b.delay(3000), RestartBackoff::kMaxDelayMs);
  b.on_success();
  EXPECT_EQ(b.delay(3000), 0u);
}

TEST(RestartBackoff, LimitsStartsOfAnAlwaysFailingFunction) {
  // Issue 3: 20 requests in 10 s start at most 6 instances.
  RestartBackoff b;
  int starts = 0;
  for (uint64_t now = 0; now < 10'000; now += 500) {
    if (b.delay(now) == 0) {
      starts++;
      b.on_failure(now);
    }
  }
  EXPECT_LE(starts, 6);
}

}  // namespace
}  // namespace fc
