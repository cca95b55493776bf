// The instanceUids pool: uids handed out per function at its first
// instance start, given back with its last instance.
#include "instance_uids.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

namespace fc {
namespace {

TEST(UidPool, EachFunctionItsOwnStableUidInTheRange) {
  UidPool pool;
  pool.configure(61184, 61189, {});
  auto a = pool.acquire("a");
  auto b = pool.acquire("b");
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->uid(), b->uid());
  for (int uid : {a->uid(), b->uid()}) {
    EXPECT_GE(uid, 61184);
    EXPECT_LE(uid, 61189);
  }
  EXPECT_EQ(pool.held("a"), a->uid());
  EXPECT_EQ(pool.held("c"), -1);
  // The holders of one function share its lease.
  EXPECT_EQ(pool.acquire("a"), a);
  // Another pool (another start) gives the same name the same uid.
  UidPool again;
  again.configure(61184, 61189, {});
  auto a2 = again.acquire("a");
  ASSERT_TRUE(a2);
  EXPECT_EQ(a2->uid(), a->uid());
}

TEST(UidPool, MoreFunctionsThanUidsWhileAtMostThatManyHoldOne) {
  UidPool pool;
  pool.configure(61184, 61186, {});  // 3 uids
  std::vector<std::shared_ptr<UidPool::Lease>> held;
  std::set<int> uids;
  for (const char* name : {"f1", "f2", "f3"}) {
    held.push_back(pool.acquire(name));
    ASSERT_TRUE(held.back()) << name;
    uids.insert(held.back()->uid());
  }
  EXPECT_EQ(uids, (std::set<int>{61184, 61185, 61186}));
  EXPECT_EQ(pool.leased(), 3u);
  // The fourth at the same time: none left.
  EXPECT_EQ(pool.acquire("f4"), nullptr);
  EXPECT_EQ(pool.held("f4"), -1);
  EXPECT_EQ(pool.describe(), "61184-61186 (3 uids)");
  // One lets go (its last instance is gone, or a reload removed it): the
  // fourth gets that uid, and the fifth still waits.
  int freed = held[1]->uid();
  held[1].reset();
  EXPECT_EQ(pool.held("f2"), -1);
  auto f4 = pool.acquire("f4");
  ASSERT_TRUE(f4);
  EXPECT_EQ(f4->uid(), freed);
  EXPECT_EQ(pool.acquire("f5"), nullptr);
}

TEST(UidPool, ReservedUidsAreNeverHandedOut) {
  UidPool pool;
  pool.configure(61184, 61186, {61184, 61186});
  auto a = pool.acquire("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->uid(), 61185);
  EXPECT_EQ(pool.acquire("b"), nullptr);
}

TEST(UidPool, ANewRangeMovesOnlyNewLeases) {
  UidPool pool;
  pool.configure(61184, 61184, {});
  auto a = pool.acquire("a");
  ASSERT_TRUE(a);
  pool.configure(70000, 70000, {});
  EXPECT_EQ(pool.held("a"), 61184);
  auto b = pool.acquire("b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->uid(), 70000);
}

}  // namespace
}  // namespace fc
