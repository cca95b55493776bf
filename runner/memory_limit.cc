#include "memory_limit.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>

#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fc {

namespace {

enum class Version { kNone, kV1, kV2 };
Version g_version = Version::kNone;
std::string g_base;  // the runner's directory for instance cgroups

bool write_file(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
  ::close(fd);
  return ok;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "name N" lines (memory.events, memory.oom_control): the value of `name`.
long counter(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string key;
  long value = 0;
  while (in >> key >> value) {
    if (key == name) return value;
  }
  return 0;
}

// Removes `dir`'s child cgroups, then `dir` (each only if empty of tasks).
void remove_tree(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec)) ::rmdir(entry.path().c_str());
  }
  ::rmdir(dir.c_str());
}

// Directories of runners that died without cleaning up (SIGKILL).
void sweep_dead_runners(const std::string& parent) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(parent, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("fc-runner-", 0) != 0) continue;
    long pid = std::strtol(name.c_str() + 10, nullptr, 10);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) remove_tree(entry.path().string());
  }
}

bool try_base(Version version, const std::string& parent) {
  sweep_dead_runners(parent);
  std::string base = fmt::format("{}/fc-runner-{}", parent, getpid());
  if (::mkdir(base.c_str(), 0755) != 0 && errno != EEXIST) return false;
  if (version == Version::kV2) {
    // Children need the memory controller delegated to them.
    write_file(base + "/cgroup.subtree_control", "+memory");
    std::string probe = base + "/probe";
    bool ok = ::mkdir(probe.c_str(), 0755) == 0 && ::access((probe + "/memory.max").c_str(), W_OK) == 0;
    ::rmdir(probe.c_str());
    if (!ok) {
      ::rmdir(base.c_str());
      return false;
    }
  }
  g_version = version;
  g_base = base;
  return true;
}

}  // namespace

std::string MemoryLimit::init() {
  std::string self = read_file("/proc/self/cgroup");
  std::istringstream lines(self);
  std::string line;
  std::string v1_path, v2_path;
  bool have_v2 = false;
  while (std::getline(lines, line)) {
    // "ID:controllers:path"
    size_t a = line.find(':');
    size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (controllers.empty() && line.compare(0, a, "0") == 0) {
      have_v2 = true;
      v2_path = path;
    }
    std::istringstream cs(controllers);
    std::string c;
    while (std::getline(cs, c, ',')) {
      if (c == "memory") v1_path = path;
    }
  }
  if (!v1_path.empty() && ::access("/sys/fs/cgroup/memory", W_OK) == 0 &&
      try_base(Version::kV1, "/sys/fs/cgroup/memory" + (v1_path == "/" ? "" : v1_path))) {
    return fmt::format("memorySize enforced by cgroup v1 under {}", g_base);
  }
  if (have_v2 && read_file("/sys/fs/cgroup/cgroup.controllers").find("memory") != std::string::npos &&
      try_base(Version::kV2, "/sys/fs/cgroup" + (v2_path == "/" ? "" : v2_path))) {
    return fmt::format("memorySize enforced by cgroup v2 under {}", g_base);
  }
  return "memorySize enforced by RLIMIT_AS (no writable memory cgroup)";
}

void MemoryLimit::cleanup() {
  // Instance cgroups that were still busy when their instance went.
  if (!g_base.empty()) remove_tree(g_base);
}

bool MemoryLimit::cgroups_available() { return g_version != Version::kNone; }

MemoryLimit::MemoryLimit(const std::string& instance_id, int megabytes) : megabytes_(megabytes) {
  if (g_version == Version::kNone || megabytes <= 0) return;
  std::string path = g_base + "/" + instance_id;
  if (::mkdir(path.c_str(), 0755) != 0) return;
  std::string bytes = std::to_string(static_cast<long long>(megabytes) * 1024 * 1024);
  bool ok = g_version == Version::kV2 ? write_file(path + "/memory.max", bytes)
                                      : write_file(path + "/memory.limit_in_bytes", bytes);
  if (g_version == Version::kV2) write_file(path + "/memory.swap.max", "0");
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
  std::string text = read_file(path_ + (g_version == Version::kV2 ? "/memory.current" : "/memory.usage_in_bytes"));
  if (text.empty()) return -1;
  return std::atoll(text.c_str());
}

bool MemoryLimit::oom_killed() const {
  if (path_.empty()) return false;
  if (g_version == Version::kV2) return counter(read_file(path_ + "/memory.events"), "oom_kill") > 0;
  return counter(read_file(path_ + "/memory.oom_control"), "oom_kill") > 0;
}

}  // namespace fc
