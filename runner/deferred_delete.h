// Deferred deletion, after Envoy's DeferredDeletable + dispatcher.deferredDelete():
// an object that ends inside one of its own callbacks (an exchange finishing
// from its instance connection's read callback, an instance whose last
// connection just closed) is handed to the DeferredDeleter, which frees it
// after the current loop iteration's callbacks, when no stack frame can
// still point into it.
#pragma once

#include <uv.h>

#include <memory>
#include <vector>

#include "uv_handle.h"

namespace fc {

class DeferredDeletable {
 public:
  virtual ~DeferredDeletable() = default;
};

class DeferredDeleter {
 public:
  explicit DeferredDeleter(uv_loop_t* loop);
  // Frees what is still pending.
  ~DeferredDeleter();
  DeferredDeleter(const DeferredDeleter&) = delete;
  DeferredDeleter& operator=(const DeferredDeleter&) = delete;

  // Frees `object` at the end of this loop iteration (null is ignored).
  void defer(std::unique_ptr<DeferredDeletable> object);
  // Frees everything pending now (shutdown, before the owners of what the
  // pending objects observe go away).
  void flush();
  size_t pending() const { return pending_.size(); }

 private:
  HandlePtr<Immediate> immediate_;
  std::vector<std::unique_ptr<DeferredDeletable>> pending_;
};

}  // namespace fc
