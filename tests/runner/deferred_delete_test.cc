#include "deferred_delete.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <vector>

namespace fc {
namespace {

class DeferredDeleterTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(uv_loop_init(&loop_), 0); }
  void TearDown() override {
    uv_run(&loop_, UV_RUN_DEFAULT);  // close callbacks
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was not closed";
  }
  uv_loop_t loop_{};
};

// Records its destruction; may defer another object from its destructor.
struct Tracked final : DeferredDeletable {
  Tracked(std::vector<int>& log, int id, std::function<void()> on_destroy = {})
      : log(log), id(id), on_destroy(std::move(on_destroy)) {}
  ~Tracked() override {
    log.push_back(id);
    if (on_destroy) on_destroy();
  }
  std::vector<int>& log;
  int id;
  std::function<void()> on_destroy;
};

TEST_F(DeferredDeleterTest, AnObjectDeferredFromItsOwnCallbackLivesUntilTheCallbackReturned) {
  std::vector<int> log;
  auto deleter = std::make_unique<DeferredDeleter>(&loop_);
  std::unique_ptr<Tracked> owned = std::make_unique<Tracked>(log, 1);
  Tracked* raw = owned.get();
  auto timer = Timer::create(&loop_);
  bool alive_after_defer = false;
  timer->start(1, [&] {
    deleter->defer(std::move(owned));  // "delete this" from inside its callback
    alive_after_defer = raw->id == 1 && log.empty();
  });
  uv_run(&loop_, UV_RUN_NOWAIT);
  while (log.empty() && uv_run(&loop_, UV_RUN_ONCE) != 0) {
  }
  EXPECT_TRUE(alive_after_defer);
  EXPECT_EQ(log, std::vector<int>{1});
  timer.reset();
  deleter.reset();
}

TEST_F(DeferredDeleterTest, ObjectsDeferredByADestructorAreFreedToo) {
  std::vector<int> log;
  auto deleter = std::make_unique<DeferredDeleter>(&loop_);
  DeferredDeleter* d = deleter.get();
  deleter->defer(std::make_unique<Tracked>(log, 1, [&log, d] { d->defer(std::make_unique<Tracked>(log, 2)); }));
  EXPECT_EQ(deleter->pending(), 1u);
  deleter->flush();
  EXPECT_EQ(log, (std::vector<int>{1, 2}));
  EXPECT_EQ(deleter->pending(), 0u);
  deleter.reset();
}

TEST_F(DeferredDeleterTest, ItsDestructorFreesWhatIsStillPending) {
  std::vector<int> log;
  auto deleter = std::make_unique<DeferredDeleter>(&loop_);
  deleter->defer(std::make_unique<Tracked>(log, 7));
  deleter->defer(nullptr);  // ignored
  EXPECT_TRUE(log.empty());
  deleter.reset();
  EXPECT_EQ(log, std::vector<int>{7});
}

}  // namespace
}  // namespace fc
