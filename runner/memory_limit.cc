#include "memory_limit.h"

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>

#include <cstdlib>

#include "cgroup.h"

namespace fc {

namespace {

cgroup::RunnerBase g_base;  // the runner's directory for instance memory cgroups

}  // namespace

std::string MemoryLimit::init() {
  g_base = cgroup::make_runner_base("memory", "memory.max");
  switch (g_base.version) {
    case cgroup::Version::kV1: return fmt::format("memorySize enforced by cgroup v1 under {}", g_base.path);
    case cgroup::Version::kV2: return fmt::format("memorySize enforced by cgroup v2 under {}", g_base.path);
    case cgroup::Version::kNone: break;
  }
  return "memorySize enforced by RLIMIT_AS (no writable memory cgroup)";
}

void MemoryLimit::cleanup() {
  // Instance cgroups that were still busy when their instance went.
  if (!g_base.path.empty()) cgroup::remove_tree(g_base.path);
}

MemoryLimit::MemoryLimit(const std::string& instance_id, int megabytes) : megabytes_(megabytes) {
  if (g_base.version == cgroup::Version::kNone || megabytes <= 0) return;
  const bool v2 = g_base.version == cgroup::Version::kV2;
  std::string path = g_base.path + "/" + instance_id;
  if (::mkdir(path.c_str(), 0755) != 0) return;
  std::string bytes = std::to_string(static_cast<long long>(megabytes) * 1024 * 1024);
  bool ok = v2 ? cgroup::write_file(path + "/memory.max", bytes)
               : cgroup::write_file(path + "/memory.limit_in_bytes", bytes);
  if (v2) cgroup::write_file(path + "/memory.swap.max", "0");
  if (!ok) {
    ::rmdir(path.c_str());
    return;
  }
  path_ = path;
}

MemoryLimit::~MemoryLimit() {
  if (!path_.empty()) ::rmdir(path_.c_str());
}

long long MemoryLimit::current_bytes() const {
  if (path_.empty()) return -1;
  std::string text =
      cgroup::read_file(path_ + (g_base.version == cgroup::Version::kV2 ? "/memory.current" : "/memory.usage_in_bytes"));
  if (text.empty()) return -1;
  return std::atoll(text.c_str());
}

bool MemoryLimit::oom_killed() const {
  if (path_.empty()) return false;
  if (g_base.version == cgroup::Version::kV2) return cgroup::counter(cgroup::read_file(path_ + "/memory.events"), "oom_kill") > 0;
  return cgroup::counter(cgroup::read_file(path_ + "/memory.oom_control"), "oom_kill") > 0;
}

}  // namespace fc
