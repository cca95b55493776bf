// Per-function uids from `instanceUids` (docs/isolation.md), handed out at a
// function's first instance start and given back when its last instance is
// gone (idle, removed by a reload), so a config may name any number of
// functions: only those with instances at the same time need a uid each.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace fc {

class UidPool {
 public:
  // A uid held for one function; shared by its holders, given back when
  // the last one lets go.
  class Lease {
   public:
    Lease(UidPool& pool, std::string name, int uid) : pool_(pool), name_(std::move(name)), uid_(uid) {}
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    int uid() const { return uid_; }

   private:
    UidPool& pool_;
    std::string name_;
    int uid_;
  };

  // The range (instanceUids) and the uids in it that are never handed out:
  // named `user:`s' and the passwd database's.  Leases already out keep
  // their uid (a reload that moves the range moves only new ones).
  void configure(int first, int last, std::unordered_set<int> reserved);
  // `name`'s uid: the one it holds, else a hash of the name into the range
  // (the next free one on a clash), so a function usually gets the same uid
  // in every start.  nullptr when every uid of the range is held.
  std::shared_ptr<Lease> acquire(const std::string& name);
  // The uid `name` holds now, or -1.
  int held(const std::string& name) const;
  // "61184-65519 (4336 uids)", for messages.
  std::string describe() const;
  size_t leased() const { return taken_.size(); }

 private:
  int first_ = 61184;
  int last_ = 65519;
  std::unordered_set<int> reserved_;
  std::unordered_set<int> taken_;
  std::unordered_map<std::string, std::weak_ptr<Lease>> by_name_;
};

// The runner's pool (configured at start and on reload by the Runner).
UidPool& instance_uid_pool();

}  // namespace fc
