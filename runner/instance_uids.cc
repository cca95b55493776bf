#include "instance_uids.h"

namespace fc {

UidPool::Lease::~Lease() {
  pool_.taken_.erase(uid_);
  auto it = pool_.by_name_.find(name_);
  if (it != pool_.by_name_.end() && it->second.expired()) pool_.by_name_.erase(it);
}

void UidPool::configure(int first, int last, std::unordered_set<int> reserved) {
  first_ = first;
  last_ = last;
  reserved_ = std::move(reserved);
}

std::shared_ptr<UidPool::Lease> UidPool::acquire(const std::string& name) {
  auto it = by_name_.find(name);
  if (it != by_name_.end()) {
    if (auto lease = it->second.lock()) return lease;
  }
  const long long size = static_cast<long long>(last_) - first_ + 1;
  uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a: stable across runs and builds
  for (unsigned char c : name) hash = (hash ^ c) * 0x100000001b3ULL;
  for (long long step = 0; step < size; step++) {
    int uid = static_cast<int>(first_ + static_cast<long long>((hash + static_cast<uint64_t>(step)) % size));
    if (taken_.count(uid) || reserved_.count(uid)) continue;
    taken_.insert(uid);
    auto lease = std::make_shared<Lease>(*this, name, uid);
    by_name_[name] = lease;
    return lease;
  }
  return nullptr;
}

int UidPool::held(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return -1;
  auto lease = it->second.lock();
  return lease ? lease->uid() : -1;
}

std::string UidPool::describe() const {
  return std::to_string(first_) + "-" + std::to_string(last_) + " (" +
         std::to_string(static_cast<long long>(last_) - first_ + 1) + " uids)";
}

UidPool& instance_uid_pool() {
  static UidPool* pool = new UidPool;  // never destroyed: leases may outlive static destruction order
  return *pool;
}

}  // namespace fc
