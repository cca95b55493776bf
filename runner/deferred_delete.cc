#include "deferred_delete.h"

namespace fc {

DeferredDeleter::DeferredDeleter(uv_loop_t* loop) : immediate_(Immediate::create(loop)) {}

DeferredDeleter::~DeferredDeleter() { flush(); }

void DeferredDeleter::defer(std::unique_ptr<DeferredDeletable> object) {
  if (!object) return;
  pending_.push_back(std::move(object));
  if (pending_.size() == 1) immediate_->schedule([this] { flush(); });
}

void DeferredDeleter::flush() {
  // A destructor may defer more objects: free until nothing is left.
  while (!pending_.empty()) {
    std::vector<std::unique_ptr<DeferredDeletable>> batch;
    batch.swap(pending_);
    batch.clear();
  }
}

}  // namespace fc
