#include "isolation.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "cgroup.h"
#include "instance_uids.h"
#include "runtimes.h"

namespace fc {

namespace {

bool g_root = false;
bool g_namespaces = false;
std::string g_namespace_problem;
cgroup::RunnerBase g_pids;  // the runner's directory for instance pids cgroups
// From the config at start: readWritePaths for every function, and the file
// the instances must not see.
std::vector<std::string> g_read_write_paths;
std::string g_config_path;

// Whether the guard will be able to make its namespaces: tried once in a
// child, the way the guard does (a user namespace first when unprivileged).
bool probe_namespaces(std::string& problem) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return false;
  pid_t child = fork();
  if (child == 0) {
    ::close(fds[0]);
    const char* step = "";
    int err = 0;
    if (geteuid() != 0 && unshare(CLONE_NEWUSER) != 0) {
      step = "unshare(CLONE_NEWUSER) (unprivileged user namespaces are off)";
      err = errno;
    } else if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS) != 0) {
      step = "unshare(CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWIPC|CLONE_NEWUTS)";
      err = errno;
    }
    if (err != 0) {
      std::string text = fmt::format("{}: {}", step, std::strerror(err));
      ssize_t ignored = ::write(fds[1], text.data(), text.size());
      (void)ignored;
    }
    _exit(err == 0 ? 0 : 1);
  }
  ::close(fds[1]);
  if (child < 0) {
    ::close(fds[0]);
    problem = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  char buf[256];
  ssize_t n = ::read(fds[0], buf, sizeof(buf));
  ::close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  if (n > 0) problem.assign(buf, static_cast<size_t>(n));
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

std::vector<std::string> Isolation::init(const RunnerConfig& config) {
  g_root = geteuid() == 0;
  g_read_write_paths = config.read_write_paths;
  g_config_path = config.path;
  g_namespaces = probe_namespaces(g_namespace_problem);
  g_pids = cgroup::make_runner_base("pids", "pids.max");
  std::vector<std::string> lines;
  std::string uids;
  if (g_root) {
    uids = fmt::format("instances run as a uid of their own per function (instanceUids {}-{}) unless user: names one",
                       config.instance_uid_first, config.instance_uid_last);
  } else {
    uids = fmt::format("the runner is not root: instances run as its uid {}", geteuid());
  }
  lines.push_back(fmt::format("isolation: {}; no_new_privs; RLIMIT_NOFILE (maxOpenFiles)", uids));
  {
    char target[PATH_MAX];
    ssize_t n = ::readlink(guard_program().c_str(), target, sizeof(target) - 1);
    std::string shown = n > 0 ? std::string(target, static_cast<size_t>(n)) : guard_program();
    lines.push_back(fmt::format("isolation: instance guard {}{}", shown,
                                guard_program() == "/proc/self/exe"
                                    ? " --exec-instance (fc-instance-guard not found: ~30 ms slower cold starts)"
                                    : ""));
  }
  if (g_namespaces) {
    lines.push_back(fmt::format(
        "isolation: private view{}: own pid, mount, IPC and UTS namespaces; codeUri read-only at its path and "
        "/code; private /tmp (tmpSize); system directories read-only, /etc secrets masked; no other code, no "
        "runner config",
        g_root ? "" : " (in an unprivileged user namespace)"));
  } else {
    lines.push_back(fmt::format(
        "isolation: NO private view (the instances see the runner's file system and processes): {}",
        g_namespace_problem.empty() ? "namespaces unavailable" : g_namespace_problem));
  }
  if (!g_pids.path.empty()) {
    lines.push_back(fmt::format("isolation: maxProcesses enforced by a pids cgroup ({}) under {} and RLIMIT_NPROC",
                                g_pids.version == cgroup::Version::kV2 ? "v2" : "v1", g_pids.path));
  } else {
    lines.push_back(std::string("isolation: maxProcesses enforced by RLIMIT_NPROC only (no writable pids cgroup)") +
                    (g_root ? ", which counts all instances of a function's uid together"
                            : ", per user namespace"));
  }
  for (const FunctionConfig& fn : config.functions) {
    if (g_root && fn.uid == 0) {
      lines.push_back(fmt::format("WARNING: function {} runs as root (user: {}): its code can do anything "
                                  "the runner can",
                                  fn.name, fn.user.empty() ? "root" : fn.user));
    }
  }
  return lines;
}

void Isolation::cleanup() {
  if (!g_pids.path.empty()) cgroup::remove_tree(g_pids.path);
}

bool Isolation::namespaces_available() { return g_namespaces; }

const std::string& Isolation::guard_program() {
  static const std::string program = [] {
    const char* named = std::getenv("FC_RUNNER_GUARD_EXE");
    if (named != nullptr && *named != '\0') return std::string(named);
    char exe[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
      std::string self(exe, static_cast<size_t>(n));
      std::string dir = self.substr(0, self.rfind('/') + 1);
      for (const char* candidate : {"fc-instance-guard", "../lib/fc-runner/fc-instance-guard"}) {
        std::string path = dir + candidate;
        if (::access(path.c_str(), X_OK) != 0) continue;
        // O_PATH: exec'able through /proc/self/fd, and the inode stays ours.
        int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
        if (fd >= 0) return fmt::format("/proc/self/fd/{}", fd);
      }
    }
    return std::string("/proc/self/exe");
  }();
  return program;
}

int Isolation::instance_uid(const FunctionConfig& fn) {
  if (!g_root) return -1;
  // Without user: the uid its Function holds from instanceUids (instance_uids.h).
  return fn.user.empty() ? instance_uid_pool().held(fn.name) : fn.uid;
}

std::vector<std::string> Isolation::guard_args(const FunctionConfig& fn, const std::string& pids_cgroup) {
  std::vector<std::string> args;
  auto add = [&args](const char* option, const std::string& value) {
    args.emplace_back(option);
    args.push_back(value);
  };
  if (int uid = instance_uid(fn); uid >= 0) {
    add("--uid", std::to_string(uid));
    add("--gid", std::to_string(fn.gid >= 0 ? fn.gid : uid));
  }
  // RLIMIT_NPROC counts every task of the uid, so with a pids cgroup per
  // instance it only bounds the function as a whole (and stays out of the
  // cgroup's way, whose refusals are the ones the runner can count).
  long long nproc = pids_cgroup.empty()
                        ? fn.max_processes
                        : static_cast<long long>(fn.max_processes + 1) * std::max(1, fn.max_instances);
  add("--nproc", std::to_string(std::min<long long>(nproc, 1 << 22)));
  add("--nofile", std::to_string(fn.max_open_files));
  if (!pids_cgroup.empty()) add("--pids-cgroup", pids_cgroup);
  if (!g_namespaces) return args;
  args.emplace_back("--sandbox");
  add("--code", fn.code_uri);
  add("--tmp-size", std::to_string(fn.tmp_size_mb));
  // The built-in runtimes' bootstraps and native parts.
  if (fn.runtime != Runtime::kCustom) {
    add("--ro", runtimes_dir());
    if (fn.runtime == Runtime::kPython3) add("--ro", python3_extension_dir());
  }
  for (const std::string& path : g_read_write_paths) add("--rw", path);
  for (const std::string& path : fn.read_write_paths) add("--rw", path);
  if (!g_config_path.empty()) add("--hide", g_config_path);
  return args;
}

ProcessLimit::ProcessLimit(const std::string& instance_id, int max_processes) : max_(max_processes) {
  if (g_pids.path.empty() || max_processes <= 0) return;
  std::string path = g_pids.path + "/" + instance_id;
  if (::mkdir(path.c_str(), 0755) != 0) return;
  if (!cgroup::write_file(path + "/pids.max", std::to_string(max_processes))) {
    ::rmdir(path.c_str());
    return;
  }
  path_ = path;
}

ProcessLimit::~ProcessLimit() {
  if (!path_.empty()) ::rmdir(path_.c_str());
}

long ProcessLimit::refused_forks() const {
  if (path_.empty()) return 0;
  // "max N": forks refused because pids.max was reached.
  return cgroup::counter(cgroup::read_file(path_ + "/pids.events"), "max");
}

}  // namespace fc
