#include "cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fc::cgroup {

namespace {

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

bool try_base(Version version, const std::string& parent, const std::string& controller,
              const std::string& v2_limit_file, RunnerBase& found) {
  if (::access(parent.c_str(), W_OK) != 0) return false;
  sweep_dead_runners(parent);
  std::string base = fmt::format("{}/fc-runner-{}", parent, getpid());
  if (::mkdir(base.c_str(), 0755) != 0 && errno != EEXIST) return false;
  if (version == Version::kV2) {
    // Children need the controller delegated to them.
    write_file(base + "/cgroup.subtree_control", "+" + controller);
    std::string probe = base + "/probe";
    bool ok = ::mkdir(probe.c_str(), 0755) == 0 && ::access((probe + "/" + v2_limit_file).c_str(), W_OK) == 0;
    ::rmdir(probe.c_str());
    if (!ok) {
      ::rmdir(base.c_str());
      return false;
    }
  }
  found.version = version;
  found.path = base;
  return true;
}

}  // namespace

RunnerBase make_runner_base(const std::string& controller, const std::string& v2_limit_file) {
  std::istringstream lines(read_file("/proc/self/cgroup"));
  std::string line, v1_path, v2_path;
  bool have_v2 = false;
  while (std::getline(lines, line)) {
    // "ID:controllers:path"
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.empty() && line.compare(0, a, "0") == 0) {
      have_v2 = true;
      v2_path = path;
    }
    std::istringstream cs(controllers);
    std::string c;
    while (std::getline(cs, c, ',')) {
      if (c == controller) v1_path = path;
    }
  }
  RunnerBase found;
  if (!v1_path.empty() &&
      try_base(Version::kV1, "/sys/fs/cgroup/" + controller + (v1_path == "/" ? "" : v1_path), controller,
               v2_limit_file, found)) {
    return found;
  }
  if (have_v2 && read_file("/sys/fs/cgroup/cgroup.controllers").find(controller) != std::string::npos) {
    try_base(Version::kV2, "/sys/fs/cgroup" + (v2_path == "/" ? "" : v2_path), controller, v2_limit_file, found);
  }
  return found;
}

void remove_tree(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec)) ::rmdir(entry.path().c_str());
  }
  ::rmdir(dir.c_str());
}

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

long counter(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string key;
  long value = 0;
  while (in >> key >> value) {
    if (key == name) return value;
  }
  return 0;
}

}  // namespace fc::cgroup
