#include "guard.h"

#include "sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace fc {

bool is_guard_invocation(int argc, char** argv) {
  return argc >= 2 && std::strcmp(argv[1], "--exec-instance") == 0;
}

namespace {

// A fresh network namespace with its loopback up: the app may listen on a
// fixed port (caPort) without clashing with its siblings.
bool enter_own_network_namespace() {
  if (unshare(CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "fc-runner guard: unshare(CLONE_NEWNET): %s\n", std::strerror(errno));
    return false;
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  ok = ok && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  if (!ok) std::fprintf(stderr, "fc-runner guard: cannot bring lo up: %s\n", std::strerror(errno));
  close(fd);
  return ok;
}

// The other members of the guard's process group: the app and whatever it
// forked (that did not leave the group).
std::vector<pid_t> group_members() {
  std::vector<pid_t> pids;
  pid_t group = getpgrp(), self = getpid();
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == self) continue;
    char path[64];
    std::snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE* f = std::fopen(path, "r");
    if (f == nullptr) continue;
    char stat[512];
    size_t n = std::fread(stat, 1, sizeof(stat) - 1, f);
    std::fclose(f);
    stat[n] = '\0';
    // "pid (comm) state ppid pgrp ...": comm may hold anything, so parse
    // after its last ')'.
    const char* after = std::strrchr(stat, ')');
    char state;
    long ppid, pgrp;
    if (after != nullptr && std::sscanf(after + 1, " %c %ld %ld", &state, &ppid, &pgrp) == 3 &&
        pgrp == group) {
      pids.push_back(static_cast<pid_t>(pid));
    }
  }
  closedir(proc);
  return pids;
}

// Without a memory cgroup: memorySize as RLIMIT_AS (inherited by the app).
bool apply_address_space_limit(long megabytes) {
  if (megabytes <= 0) return true;
  rlimit limit{};
  limit.rlim_cur = limit.rlim_max = static_cast<rlim_t>(megabytes) * 1024 * 1024;
  return setrlimit(RLIMIT_AS, &limit) == 0;
}

bool join_cgroup(const std::string& procs_path, pid_t pid) {
  FILE* procs = std::fopen(procs_path.c_str(), "w");
  if (procs == nullptr) return false;
  bool ok = std::fprintf(procs, "%d", static_cast<int>(pid)) > 0;
  return std::fclose(procs) == 0 && ok;
}

// Moves the app into its memory cgroup, then whatever it forked before the
// move took effect (a shell's command, a pre-fork master's first workers),
// until a pass finds nobody left outside.  Only without namespaces (with
// them the init joins before the app starts): each pass reads every
// /proc/PID/stat of the host, CPU the app's own start would compete with.
void move_group_into_cgroup(const char* cgroup, pid_t app) {
  const std::string procs_path = std::string(cgroup) + "/cgroup.procs";
  if (!join_cgroup(procs_path, app)) {
    std::fprintf(stderr, "fc-runner guard: cannot apply memorySize (%s): %s\n", procs_path.c_str(),
                 std::strerror(errno));
    return;
  }
  constexpr int kMaxPasses = 8;
  for (int pass = 0; pass < kMaxPasses; pass++) {
    std::string inside;
    if (FILE* f = std::fopen(procs_path.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) inside.append(buf, n);
      std::fclose(f);
    }
    auto is_inside = [&inside](pid_t pid) {
      const std::string needle = std::to_string(pid);
      for (size_t at = 0; (at = inside.find(needle, at)) != std::string::npos; at += needle.size()) {
        bool starts = at == 0 || inside[at - 1] == '\n';
        bool ends = at + needle.size() == inside.size() || inside[at + needle.size()] == '\n';
        if (starts && ends) return true;
      }
      return false;
    };
    bool moved = false;
    for (pid_t pid : group_members()) {
      if (!is_inside(pid)) moved = join_cgroup(procs_path, pid) || moved;
    }
    if (!moved) return;
  }
}

// The pid namespace's init (sandbox.h), started by start_init.
struct InitStart {
  const SandboxSpec* spec;
  char** command;
  const sigset_t* app_mask;
  int status_fd, host_pid_fd;      // the init's ends of the two pipes
  int guard_status_fd, guard_pid_fd;  // the guard's ends, closed in the init
  const char* memory_cgroup;
  long memory_mb;
};

int init_main(void* arg) {
  const InitStart& start = *static_cast<const InitStart*>(arg);
  close(start.guard_status_fd);
  close(start.guard_pid_fd);
  // Without a cgroup: RLIMIT_AS, inherited by the app.
  if (start.memory_cgroup == nullptr && !apply_address_space_limit(start.memory_mb)) {
    std::fprintf(stderr, "fc-runner guard: cannot apply memorySize: %s\n", std::strerror(errno));
    _exit(1);
  }
  run_sandbox_init(*start.spec, start.command, *start.app_mask, start.status_fd, start.host_pid_fd);
}

// The init shares the guard's memory (clone(CLONE_VM), on a stack of its
// own) instead of being a fork of it: a fork copies the guard's page tables
// and then both processes take copy-on-write faults on every page they
// write, ~1.5 ms of each cold start on the development VM
// (docs/isolation.md).  From here on the guard only makes system calls on
// its own stack (pipes, signals, waitpid: no malloc, no stdio, no errno it
// reads), so the two never touch the same memory; the init's later changes
// of credentials (drop_privileges) make the shared memory non-dumpable, so
// the app, under the same uid, cannot ptrace its way into it.  The kernel
// keeps oom_score_adj equal across processes sharing memory: the guard
// gets the init's -1000 (it is outside the memory cgroup anyway).  Its pid,
// or -1 (errno set).
pid_t start_init(InitStart& start) {
  constexpr size_t kInitStackBytes = 1024 * 1024;
  constexpr size_t kStackGuardBytes = 4096;
  void* stack = mmap(nullptr, kInitStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return -1;
  mprotect(stack, kStackGuardBytes, PROT_NONE);  // overflow faults instead of writing below
  return clone(init_main, static_cast<char*>(stack) + kInitStackBytes, CLONE_VM | SIGCHLD, &start);
}

}  // namespace

int run_guard(int argc, char** argv) {
  // argv: fc-runner --exec-instance PID [--netns] [--memory MB] [--cgroup DIR] [sandbox options] -- CMD ARGS...
  bool netns = false;
  long memory_mb = 0;
  const char* cgroup = nullptr;
  SandboxSpec sandbox;
  int i = 3;
  for (; i < argc && std::strcmp(argv[i], "--") != 0; i++) {
    if (std::strcmp(argv[i], "--netns") == 0) {
      netns = true;
    } else if (std::strcmp(argv[i], "--memory") == 0 && i + 1 < argc) {
      memory_mb = std::strtol(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--cgroup") == 0 && i + 1 < argc) {
      cgroup = argv[++i];
    } else if (!parse_sandbox_option(argc, argv, i, sandbox)) {
      break;
    }
  }
  if (argc < 3 || i + 1 >= argc || std::strcmp(argv[i], "--") != 0) {
    std::fprintf(stderr,
                 "usage: fc-runner --exec-instance RUNNER_PID [--netns] [--memory MB] [--cgroup DIR] [--sandbox] "
                 "[--uid N --gid N] [--code DIR] [--ro PATH]... [--rw PATH]... [--hide PATH]... [--tmp-size MB] "
                 "[--nproc N] [--nofile N] [--pids-cgroup DIR] -- COMMAND [ARGS...]\n");
    return 2;
  }
  if (sandbox.namespaces && cgroup != nullptr) sandbox.memory_cgroup = cgroup;  // joined by the init
  if (sandbox.namespaces && sandbox.code_dir.empty()) {
    std::fprintf(stderr, "fc-runner guard: --sandbox needs --code\n");
    return 2;
  }
  pid_t runner = static_cast<pid_t>(std::strtol(argv[2], nullptr, 10));
  char** command = argv + i + 1;
  if (netns && !enter_own_network_namespace()) return 1;
  if (!enter_sandbox_namespaces(sandbox)) return 1;

  // A signal no app sends by accident, for the runner's death.
  const int death_signal = SIGRTMIN + 3;
  sigset_t waited;
  sigemptyset(&waited);
  sigaddset(&waited, SIGCHLD);
  sigaddset(&waited, death_signal);
  sigset_t old_mask;
  sigprocmask(SIG_BLOCK, &waited, &old_mask);

  if (prctl(PR_SET_PDEATHSIG, death_signal) != 0 || getppid() != runner) {
    // The runner is already gone (or we cannot know when it goes).
    return 1;
  }
  if (getpgrp() != getpid()) setpgid(0, 0);

  // With --sandbox the child is the pid namespace's init, which starts the
  // app and reports its wait status here (the init itself cannot die of a
  // signal from inside its namespace).
  int status_pipe[2] = {-1, -1};
  if (sandbox.namespaces && pipe2(status_pipe, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "fc-runner guard: pipe: %s\n", std::strerror(errno));
    return 1;
  }
  // The init's pid on the host, for it to pick the app's (sandbox.h).
  int pid_pipe[2] = {-1, -1};
  if (sandbox.namespaces && pipe2(pid_pipe, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "fc-runner guard: pipe: %s\n", std::strerror(errno));
    return 1;
  }
  InitStart init{&sandbox, command, &old_mask, status_pipe[1], pid_pipe[0], status_pipe[0], pid_pipe[1], cgroup,
                 memory_mb};
  pid_t app = sandbox.namespaces ? start_init(init) : fork();
  if (app < 0) {
    std::fprintf(stderr, "fc-runner guard: fork: %s\n", std::strerror(errno));
    return 1;
  }
  if (app == 0) {
    pid_t guard = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != guard) _exit(1);
    // Without a cgroup: RLIMIT_AS, set here for the app only.
    if (cgroup == nullptr && !apply_address_space_limit(memory_mb)) {
      std::fprintf(stderr, "fc-runner guard: cannot apply memorySize: %s\n", std::strerror(errno));
      _exit(1);
    }
    if (!restrict_app_process(sandbox, true)) _exit(1);
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // a uid change cleared it
    if (getppid() != guard) _exit(1);
    sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    execvp(command[0], command);
    std::fprintf(stderr, "cannot run %s: %s\n", command[0], std::strerror(errno));
    _exit(127);
  }
  if (sandbox.namespaces) {
    close(status_pipe[1]);
    close(pid_pipe[0]);
    ssize_t ignored = write(pid_pipe[1], &app, sizeof(app));
    (void)ignored;
    close(pid_pipe[1]);
  }

  // Without namespaces the app goes into its memory cgroup here (with them
  // the init joined it); the guard stays outside, so an OOM kill cannot take it.
  if (cgroup != nullptr && !sandbox.namespaces) move_group_into_cgroup(cgroup, app);

  // The runner signals the group; the app handles those, the guard waits.
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);

  for (;;) {
    siginfo_t info{};
    int sig = sigwaitinfo(&waited, &info);
    if (sig < 0) continue;  // EINTR
    if (sig == death_signal) {
      if (getppid() != runner) kill(0, SIGKILL);  // the whole group, the guard too
      continue;
    }
    int status = 0;
    pid_t done;
    while ((done = waitpid(-1, &status, WNOHANG)) > 0) {
      if (done != app) continue;
      if (sandbox.namespaces) {
        // The app's own status, when the init lived to pass it on.
        int app_status = 0;
        if (read(status_pipe[0], &app_status, sizeof(app_status)) == sizeof(app_status)) status = app_status;
      }
      if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
      if (WIFSIGNALED(status)) {
        int term = WTERMSIG(status);
        signal(term, SIG_DFL);
        sigset_t unblock;
        sigemptyset(&unblock);
        sigaddset(&unblock, term);
        sigprocmask(SIG_UNBLOCK, &unblock, nullptr);
        kill(getpid(), term);
        _exit(128 + term);
      }
    }
  }
}

}  // namespace fc
