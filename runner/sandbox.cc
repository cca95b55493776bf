#include "sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace fc {

namespace {

// Where the host's tree is while the new root is built.
constexpr const char* kOldRoot = "/oldroot";
constexpr const char* kNewRoot = "/newroot";
constexpr const char* kMaskFile = "/masked";  // in the scratch root: mode 0, empty

// Read-only system trees an interpreter or an app needs; the symlinks among
// them (merged /usr: /bin -> usr/bin) are recreated as symlinks.
constexpr const char* kSystemTrees[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys"};
// Secrets under /etc: masked (files by /dev/null, directories by an empty tmpfs).
constexpr const char* kSecrets[] = {"/etc/shadow",    "/etc/shadow-",       "/etc/gshadow",  "/etc/gshadow-",
                                    "/etc/sudoers",   "/etc/sudoers.d",     "/etc/ssh",      "/etc/ssl/private",
                                    "/etc/security/opasswd", "/etc/krb5.keytab", "/etc/fc-runner"};
constexpr const char* kDevices[] = {"null", "zero", "full", "random", "urandom", "tty"};
// Symlinks in codeUri (this deep) that point outside it get their target
// bound read-only (node_modules linked in from elsewhere).
constexpr int kSymlinkScanDepth = 2;
// The old root's detach (RootBuilder::detach_old_root): polled this often,
// given up (the instance fails to start) after this long.
constexpr long kDetachPollNs = 20 * 1000;
constexpr long kDetachWaitNs = 2000L * 1000 * 1000;
// The stack of the child that makes the detach call (detach_old_root): it
// runs one system call.
constexpr size_t kDetacherStackBytes = 16 * 1024;
// The app's stack until its exec (start_app): restrict_app_process and
// execvp (which copies PATH entries onto it) run there.
constexpr size_t kAppStackBytes = 64 * 1024;

// The detacher's body: it shares the init's memory, so it makes only the
// two system calls (syscall() writes errno only if the detach fails, and
// then the init gives up anyway).
int detach_cwd_mount(void*) {
  long rc = syscall(SYS_umount2, ".", MNT_DETACH);
  syscall(SYS_exit, rc == 0 ? 0 : 1);
  return 0;
}

void say(const char* what, const std::string& path) {
  std::fprintf(stderr, "fc-runner guard: %s %s: %s\n", what, path.c_str(), std::strerror(errno));
}

bool write_text(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int saved = errno;
  ::close(fd);
  errno = saved;
  return ok;
}

bool mkdirs(const std::string& path, mode_t mode = 0755) {
  std::string at;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos + 1);
    at = path.substr(0, next);
    pos = next == std::string::npos ? path.size() : next;
    if (at.empty()) continue;
    if (::mkdir(at.c_str(), mode) != 0 && errno != EEXIST) return false;
  }
  return true;
}

// Under `tree` (equal or below).
bool is_under(const std::string& path, const std::string& tree) {
  if (tree == "/") return true;
  return path.compare(0, tree.size(), tree) == 0 && (path.size() == tree.size() || path[tree.size()] == '/');
}

// The MS_* flags a read-only remount must keep (a user namespace may not
// drop the locked ones).
unsigned long kept_flags(const std::string& path) {
  struct statvfs st {};
  if (statvfs(path.c_str(), &st) != 0) return 0;
  unsigned long flags = 0;
  if (st.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (st.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (st.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return flags;
}

class RootBuilder {
 public:
  explicit RootBuilder(const SandboxSpec& spec) : spec_(spec) {}

  bool build(char** command) {
    // Paths are resolved while the host's tree is still the root (absolute
    // symlinks, node_modules linked in from elsewhere).
    std::string code_source = real_path(spec_.code_dir);
    if (code_source.empty()) return fail("cannot resolve codeUri", spec_.code_dir);
    std::vector<std::pair<std::string, std::string>> read_only, read_write;  // source, destination
    for (const std::string& tree : spec_.read_only) {
      std::string source = real_path(tree);
      if (!source.empty()) read_only.emplace_back(source, tree);
    }
    for (const std::string& prefix : program_prefixes(command[0])) {
      std::string source = real_path(prefix);
      if (!source.empty()) read_only.emplace_back(source, prefix);
    }
    for (const std::string& target : code_symlink_targets(code_source, 0)) read_only.emplace_back(target, target);
    for (const std::string& path : spec_.read_write) {
      std::string source = real_path(path);
      if (source.empty()) return fail("cannot bind readWritePaths entry (it must exist)", path);
      read_write.emplace_back(source, path);
    }

    // The skeleton must be traversable by the instance's uid whatever the
    // runner's umask; the app gets the umask back.
    mode_t old_umask = ::umask(022);
    struct RestoreUmask {
      mode_t mask;
      ~RestoreUmask() { ::umask(mask); }
    } restore{old_umask};
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return fail("make / private", "/");
    // A scratch root holding the old tree at /oldroot and the new at /newroot.
    if (::mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") != 0) {
      return fail("mount a scratch tmpfs on", "/tmp");
    }
    if (::mkdir("/tmp/oldroot", 0755) != 0 || ::mkdir("/tmp/newroot", 0755) != 0) return fail("mkdir in", "/tmp");
    int mask_fd = ::open("/tmp/masked", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (mask_fd < 0) return fail("create", "/tmp/masked");
    ::close(mask_fd);
    if (syscall(SYS_pivot_root, "/tmp", "/tmp/oldroot") != 0) return fail("pivot_root to", "/tmp");
    if (::chdir("/") != 0) return fail("chdir", "/");
    if (::mount("tmpfs", kNewRoot, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") != 0) {
      return fail("mount the new root on", kNewRoot);
    }

    for (const char* tree : kSystemTrees) {
      if (!add_tree(tree, false)) return false;
    }
    if (!mount_tmp() || !mount_dev()) return false;
    for (const auto& [source, dest] : read_only) {
      bool shown = false;  // by a system tree already (the private /tmp does not count)
      for (const char* tree : kSystemTrees) shown = shown || is_under(dest, tree);
      if (!shown && !add_bind(source, dest, false)) return false;
    }
    if (!add_bind(code_source, spec_.code_dir, false) || !add_bind(code_source, "/code", false)) return false;
    for (const auto& [source, dest] : read_write) {
      if (!add_bind(source, dest, true)) return false;
    }
    for (const char* secret : kSecrets) mask(secret);
    for (const std::string& path : spec_.hidden) mask(path);
    if (!make_read_only()) return false; 

    std::string proc = std::string(kNewRoot) + "/proc";
    if (!mkdirs(proc) || ::mount("proc", proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
      return fail("mount the instance's /proc on", proc);
    }
    if (::mount(nullptr, kNewRoot, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags(kNewRoot), nullptr) != 0) {
      return fail("make read-only", kNewRoot);
    }
    // Into the new root; the scratch root and the old tree go.
    if (::chdir(kNewRoot) != 0) return fail("chdir", kNewRoot);
    if (syscall(SYS_pivot_root, ".", ".") != 0) return fail("pivot_root to", kNewRoot);
    if (!detach_old_root()) return false; 
    if (::chdir(spec_.code_dir.c_str()) != 0) return fail("chdir", spec_.code_dir);
    return true;
  }

 private:
  bool fail(const char* what, const std::string& path) {
    say(what, path);
    return false;
  }

  // The old root is stacked on the new one at "/" (pivot_root(".", ".")).
  // umount2(MNT_DETACH) takes it out of the mount namespace at once, then
  // waits for an RCU grace period before it returns (~11 ms here, the
  // largest part of the view's cold-start cost): a child makes the call and
  // waits, while the init goes on once the mount is gone from its namespace
  // (/proc/self/mountinfo shows one mount at "/", no longer two).
  // The child shares the init's memory and working directory
  // (CLONE_VM|CLONE_FS, as posix_spawn's vfork-style child does, but the
  // init goes on): no copy of the page tables, ~1.5 ms of a fork on this
  // VM.  The init changes directory only once the mount is gone, so the
  // child's "." is still the new root when it resolves it.
  bool detach_old_root() {
    alignas(16) static char stack[kDetacherStackBytes];
    pid_t detacher = ::clone(detach_cwd_mount, stack + sizeof(stack), CLONE_VM | CLONE_FS | SIGCHLD, nullptr);
    if (detacher < 0) {
      if (::umount2(".", MNT_DETACH) != 0) return fail("detach the old root", "/");
      return true;
    }
    const timespec pause{0, kDetachPollNs};
    for (long waited_ns = 0; waited_ns < kDetachWaitNs; waited_ns += kDetachPollNs) {
      int roots = mounts_at_root();
      if (roots == 1) return true;
      int status = 0;
      if (roots < 0 || (waitpid(detacher, &status, WNOHANG) == detacher && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))) {
        break;
      }
      nanosleep(&pause, nullptr);
    }
    errno = ETIMEDOUT;
    return fail("detach the old root", "/");
  }

  // How many mounts /proc/self/mountinfo shows at "/" (-1: unreadable).
  static int mounts_at_root() {
    FILE* f = std::fopen("/proc/self/mountinfo", "re");
    if (f == nullptr) return -1;
    int roots = 0;
    char line[8192];
    while (std::fgets(line, sizeof(line), f)) {
      char point[8];
      if (std::sscanf(line, "%*s %*s %*s %*s %7s", point) == 1 && std::strcmp(point, "/") == 0) roots++;
    }
    std::fclose(f);
    return roots;
  }

  std::string old_path(const std::string& path) const { return kOldRoot + path; }
  std::string new_path(const std::string& path) const { return kNewRoot + path; }

  bool visible(const std::string& path) const {
    for (const std::string& tree : visible_) {
      if (is_under(path, tree)) return true;
    }
    return false;
  }

  // A system tree: bound read-only when it is a directory, recreated when a
  // symlink, skipped when absent.
  bool add_tree(const std::string& tree, bool writable) {
    struct stat st {};
    if (::lstat(old_path(tree).c_str(), &st) != 0) return true;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(old_path(tree).c_str(), target, sizeof(target) - 1);
      if (n <= 0) return true;
      target[n] = '\0';
      std::string link = new_path(tree);
      mkdirs(link.substr(0, link.rfind('/')));
      if (::symlink(target, link.c_str()) != 0 && errno != EEXIST) return fail("symlink", link);
      return true;
    }
    return add_bind(tree, tree, writable);
  }

  bool add_bind(const std::string& source, const std::string& dest, bool writable) {
    std::string from = old_path(source), to = new_path(dest);
    struct stat st {};
    if (::stat(from.c_str(), &st) != 0) return fail("cannot bind (it must exist)", source);
    if (S_ISDIR(st.st_mode)) {
      if (!mkdirs(to)) return fail("mkdir", to);
    } else {
      if (!mkdirs(to.substr(0, to.rfind('/')))) return fail("mkdir", to);
      int fd = ::open(to.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd >= 0) ::close(fd);
    }
    if (::mount(from.c_str(), to.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) return fail("bind", source);
    binds_.push_back({to, writable});
    visible_.push_back(dest);
    return true;
  }

  // A private /tmp of tmpSize, writable by everyone (sticky), as FC's.
  bool mount_tmp() {
    std::string tmp = new_path("/tmp");
    std::string options = "mode=1777";
    if (spec_.tmp_mb > 0) options += ",size=" + std::to_string(spec_.tmp_mb) + "m";
    if (!mkdirs(tmp) || ::mount("tmpfs", tmp.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
      return fail("mount the private /tmp on", tmp);
    }
    visible_.push_back("/tmp");
    return true;
  }

  // /dev with the harmless character devices, /dev/shm and the fd links.
  bool mount_dev() {
    std::string dev = new_path("/dev");
    if (!mkdirs(dev) || ::mount("tmpfs", dev.c_str(), "tmpfs", MS_NOSUID, "mode=0755,size=64k") != 0) {
      return fail("mount /dev on", dev);
    }
    for (const char* name : kDevices) {
      std::string from = old_path(std::string("/dev/") + name), to = dev + "/" + name;
      if (::access(from.c_str(), F_OK) != 0) continue;
      int fd = ::open(to.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
      if (fd >= 0) ::close(fd);
      if (::mount(from.c_str(), to.c_str(), nullptr, MS_BIND, nullptr) != 0) return fail("bind", from);
    }
    std::string shm = dev + "/shm";
    std::string shm_options = "mode=1777";
    if (spec_.tmp_mb > 0) shm_options += ",size=" + std::to_string(spec_.tmp_mb) + "m";
    if (::mkdir(shm.c_str(), 0755) != 0 ||
        ::mount("tmpfs", shm.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, shm_options.c_str()) != 0) {
      return fail("mount", shm);
    }
    const char* links[][2] = {{"/proc/self/fd", "fd"},
                              {"/proc/self/fd/0", "stdin"},
                              {"/proc/self/fd/1", "stdout"},
                              {"/proc/self/fd/2", "stderr"}};
    for (auto& link : links) {
      if (::symlink(link[0], (dev + "/" + link[1]).c_str()) != 0) return fail("symlink", dev + "/" + link[1]);
    }
    if (::mount(nullptr, dev.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, nullptr) != 0) {
      return fail("make read-only", dev);
    }
    visible_.push_back("/dev");
    return true;
  }

  static std::string real_path(const std::string& path) {
    char real[PATH_MAX];
    return ::realpath(path.c_str(), real) ? std::string(real) : std::string();
  }

  bool outside_view(const std::string& path) const {
    return !path.empty() && !visible(path) && !is_under(path, spec_.code_dir);
  }

  // An interpreter or a command outside the trees above (a virtualenv's
  // python, /opt/app/bin/server): its installation prefix, read-only.
  // Host view.
  std::vector<std::string> program_prefixes(const char* program) const {
    std::string found;
    std::string name = program;
    if (name.find('/') != std::string::npos) {
      found = name.front() == '/' ? name : spec_.code_dir + "/" + name;
    } else {
      const char* path = std::getenv("PATH");
      std::string search = path ? path : "/usr/local/bin:/usr/bin:/bin";
      size_t start = 0;
      while (start <= search.size()) {
        size_t end = search.find(':', start);
        std::string dir = search.substr(start, end == std::string::npos ? std::string::npos : end - start);
        start = end == std::string::npos ? search.size() + 1 : end + 1;
        if (dir.empty() || dir.front() != '/') continue;
        std::string candidate = dir + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) {
          found = candidate;
          break;
        }
      }
    }
    std::vector<std::string> prefixes;
    auto installation = [](const std::string& program_path) {
      std::string bin = program_path.substr(0, program_path.rfind('/'));  // .../bin
      std::string above = bin.substr(0, bin.rfind('/'));                 // the installation
      return above.empty() ? bin : above;
    };
    if (found.empty()) return prefixes;
    // A virtualenv's bin/python is a symlink to the system's: the venv as
    // named (pyvenv.cfg, site-packages) and what it resolves to.
    if (found.front() == '/' && outside_view(found)) prefixes.push_back(installation(found));
    std::string resolved = real_path(found);
    if (outside_view(resolved)) prefixes.push_back(installation(resolved));
    return prefixes;
  }

  // Targets of symlinks in codeUri (kSymlinkScanDepth deep) that point
  // outside the view.  Host view.
  std::vector<std::string> code_symlink_targets(const std::string& dir, int depth) const {
    std::vector<std::string> targets;
    if (depth >= kSymlinkScanDepth) return targets;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return targets;
    std::vector<std::string> subdirs;
    while (dirent* entry = ::readdir(d)) {
      std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      std::string path = dir + "/" + name;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        subdirs.push_back(path);
      } else if (S_ISLNK(st.st_mode)) {
        std::string target = real_path(path);
        if (outside_view(target) && !is_under(target, dir)) targets.push_back(target);
      }
    }
    ::closedir(d);
    for (const std::string& sub : subdirs) {
      for (std::string& t : code_symlink_targets(sub, depth + 1)) targets.push_back(std::move(t));
    }
    return targets;
  }

  // Something that must not be read: an empty tmpfs of mode 0 over a
  // directory, an empty file of mode 0 over a file (opening either fails
  // with EACCES, as the secret itself would for anyone but root).  Only where the new root shows it.
  void mask(const std::string& path) {
    if (!visible(path)) return;
    std::string to = new_path(path);
    struct stat st {};
    if (::lstat(to.c_str(), &st) != 0 || S_ISLNK(st.st_mode)) return;
    int rc = S_ISDIR(st.st_mode)
                 ? ::mount("tmpfs", to.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k,mode=0")
                 : ::mount(kMaskFile, to.c_str(), nullptr, MS_BIND, nullptr);
    if (rc != 0) say("cannot mask", path);
  }

  // Every mount under the new root read-only but /tmp, /dev's devices and
  // the readWritePaths (submounts of a recursive bind included).
  bool make_read_only() {
    FILE* f = std::fopen("/oldroot/proc/self/mountinfo", "r");
    if (f == nullptr) return fail("read", "/proc/self/mountinfo");
    std::vector<std::string> points;
    char line[8192];
    while (std::fgets(line, sizeof(line), f)) {
      // "id parent major:minor root mountpoint options ..."
      char point[4096];
      if (std::sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1) continue;
      std::string p = unescape(point);
      if (is_under(p, kNewRoot) && p != kNewRoot) points.push_back(p);
    }
    std::fclose(f);
    for (const std::string& p : points) {
      if (is_under(p, new_path("/dev")) || p == new_path("/tmp")) continue;
      bool writable = false;
      for (const std::string& rw : spec_.read_write) writable = writable || is_under(p, new_path(rw));
      if (writable) continue;
      if (::mount(nullptr, p.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags(p), nullptr) != 0 &&
          errno != EACCES && errno != ENOENT) {
        return fail("make read-only", p.substr(std::strlen(kNewRoot)));
      }
    }
    return true;
  }

  // mountinfo writes space, tab, newline and backslash as \ooo.
  static std::string unescape(const char* text) {
    std::string out;
    for (const char* c = text; *c; c++) {
      if (c[0] == '\\' && c[1] && c[2] && c[3]) {
        out.push_back(static_cast<char>((c[1] - '0') * 64 + (c[2] - '0') * 8 + (c[3] - '0')));
        c += 3;
      } else {
        out.push_back(*c);
      }
    }
    return out;
  }

  struct Bind {
    std::string path;
    bool writable;
  };
  const SandboxSpec& spec_;
  std::vector<Bind> binds_;
  std::vector<std::string> visible_ = {"/usr", "/etc", "/sys", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin"};
};

bool join_cgroup(const std::string& cgroup, const char* limit) {
  if (cgroup.empty()) return true;
  // "0" is the writer itself (v1 and v2).
  if (!write_text(cgroup + "/cgroup.procs", "0")) {
    say((std::string("cannot apply ") + limit + ": join").c_str(), cgroup);
    return false;
  }
  return true;
}

bool join_pids_cgroup(const std::string& cgroup) { return join_cgroup(cgroup, "maxProcesses"); }

bool drop_privileges(const SandboxSpec& spec) {
  if (geteuid() != 0 || spec.uid < 0) return true;
  gid_t gid = static_cast<gid_t>(spec.gid >= 0 ? spec.gid : spec.uid);
  // The system calls themselves (this task's credentials only): the app's
  // process may share the init's memory (start_app), where glibc's wrappers
  // would look for other threads of the init to change too.
  uid_t uid = static_cast<uid_t>(spec.uid);
  if (syscall(SYS_setgroups, 0, nullptr) != 0 || syscall(SYS_setresgid, gid, gid, gid) != 0 ||
      syscall(SYS_setresuid, uid, uid, uid) != 0) {
    say("cannot switch to uid", std::to_string(spec.uid));
    return false;
  }
  return true;
}

// What the app's process runs until its exec (AppLaunch, app_main).
struct AppLaunch {
  const SandboxSpec* spec;
  char** command;
  const sigset_t* mask;
  const char* oom_score;  // the runner's, given back to the app
};

// The app's process from its creation to its exec.  It may share the init's
// memory (start_app: a vfork-style child while the init waits), so it makes
// only system calls and formats only its failure message, and never returns.
int app_main(void* arg) {
  const AppLaunch& launch = *static_cast<const AppLaunch*>(arg);
  const SandboxSpec& spec = *launch.spec;
  prctl(PR_SET_NAME, "fc-app");
  if (!spec.memory_cgroup.empty()) {
    int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t ignored = ::write(fd, launch.oom_score, std::strlen(launch.oom_score));
      (void)ignored;
      ::close(fd);
    }
  }
  if (!restrict_app_process(spec, false)) _exit(1);
  // After the uid change, which clears it.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigprocmask(SIG_SETMASK, launch.mask, nullptr);
  execvp(launch.command[0], launch.command);
  std::fprintf(stderr, "cannot run %s: %s\n", launch.command[0], std::strerror(errno));
  _exit(127);
}

#if defined(__x86_64__)
// clone3 with a stack of the child's own: the child calls fn(arg) there and
// exits with its result (glibc's clone() on clone3, which glibc does not
// export with set_tid).  The child starts with the parent's registers but
// rax = 0 and rsp at the top of args->stack.  Returns the child's pid or
// -errno.
long clone3_on_stack(clone_args* args, int (*fn)(void*), void* arg) {
  long ret;
  register int (*r12)(void*) asm("r12") = fn;
  register void* r13 asm("r13") = arg;
  asm volatile(
      "syscall\n\t"
      "testq %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      "xorl %%ebp, %%ebp\n\t"
      "movq %%r13, %%rdi\n\t"
      "callq *%%r12\n\t"
      "movl %%eax, %%edi\n\t"
      "movl $60, %%eax\n\t"  // SYS_exit: this task only
      "syscall\n\t"
      "hlt\n\t"
      "1:\n\t"
      : "=a"(ret)
      : "0"(static_cast<long>(SYS_clone3)), "D"(args), "S"(sizeof(clone_args)), "r"(r12), "r"(r13)
      : "rcx", "r11", "memory");
  return ret;
}
constexpr bool kVforkAppStart = true;
#else
long clone3_on_stack(clone_args*, int (*)(void*), void*) { return -ENOSYS; }
constexpr bool kVforkAppStart = false;
#endif

// One clone3 of the app; its pid, or -1 with errno.  With a stack
// (x86_64): CLONE_VM|CLONE_VFORK, as posix_spawn's child: no copy of the
// init's page tables, none of the copy-on-write faults that follow a fork
// in both processes (~2 ms of a cold start on the development VM,
// docs/isolation.md); the init waits until the app has exec'd.
long clone_app_once(const pid_t* tids, size_t tid_count, AppLaunch& launch) {
  alignas(16) static char stack[kAppStackBytes];
  clone_args args{};
  args.exit_signal = SIGCHLD;
  args.set_tid = reinterpret_cast<uint64_t>(tids);
  args.set_tid_size = tid_count;
  if (kVforkAppStart) {
    args.flags = CLONE_VM | CLONE_VFORK;
    args.stack = reinterpret_cast<uint64_t>(stack);
    args.stack_size = sizeof(stack);
    long pid = clone3_on_stack(&args, app_main, &launch);
    if (pid >= 0 || -pid != ENOSYS) {
      if (pid < 0) errno = static_cast<int>(-pid);
      return pid < 0 ? -1 : pid;
    }
    // clone3 missing: fall through to the plain one (fails the same way).
    args.flags = 0;
    args.stack = 0;
    args.stack_size = 0;
  }
  long pid = syscall(SYS_clone3, &args, sizeof(args));
  if (pid == 0) app_main(&launch);
  return pid;
}

// Starts the app (app_main), at the same pid in the namespace and on the
// host when the kernel lets us choose (clone3 set_tid, root only): the first
// pid after the init's that the host's /proc (`host_proc`, opened before
// the pivot) does not show.  Else the next free pid inside.  Returns in the
// init only: the app's pid, or -1.
pid_t start_app(pid_t host_init_pid, int host_proc, AppLaunch& launch) {
  constexpr int kMaxAttempts = 16;
  constexpr long kMaxSkipped = 4096;
  int attempts = 0;
  for (long candidate = host_init_pid + 1; host_init_pid > 0 && host_proc >= 0 && attempts < kMaxAttempts &&
                                           candidate <= host_init_pid + kMaxSkipped;
       candidate++) {
    if (faccessat(host_proc, std::to_string(candidate).c_str(), F_OK, 0) == 0) continue;
    attempts++;
    pid_t tids[2] = {static_cast<pid_t>(candidate), static_cast<pid_t>(candidate)};
    long pid = clone_app_once(tids, 2, launch);
    if (pid >= 0) return static_cast<pid_t>(pid);
    if (errno != EEXIST) break;  // EINVAL past pid_max, EPERM: take any pid
  }
  long pid = clone_app_once(nullptr, 0, launch);
  if (pid >= 0 || errno != ENOSYS) return static_cast<pid_t>(pid);
  pid = fork();
  if (pid == 0) app_main(&launch);
  return static_cast<pid_t>(pid);
}

}  // namespace

bool parse_sandbox_option(int argc, char** argv, int& i, SandboxSpec& spec) {
  std::string option = argv[i];
  if (option == "--sandbox") {
    spec.namespaces = true;
    return true;
  }
  if (i + 1 >= argc) return false;
  const char* value = argv[i + 1];
  if (option == "--uid") {
    spec.uid = std::atoi(value);
  } else if (option == "--gid") {
    spec.gid = std::atoi(value);
  } else if (option == "--code") {
    spec.code_dir = value;
  } else if (option == "--ro") {
    spec.read_only.emplace_back(value);
  } else if (option == "--rw") {
    spec.read_write.emplace_back(value);
  } else if (option == "--hide") {
    spec.hidden.emplace_back(value);
  } else if (option == "--tmp-size") {
    spec.tmp_mb = std::atol(value);
  } else if (option == "--nproc") {
    spec.max_processes = std::atol(value);
  } else if (option == "--nofile") {
    spec.max_open_files = std::atol(value);
  } else if (option == "--pids-cgroup") {
    spec.pids_cgroup = value;
  } else {
    return false;
  }
  i++;
  return true;
}

bool enter_sandbox_namespaces(const SandboxSpec& spec) {
  if (!spec.namespaces) return true;
  if (geteuid() != 0) {
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (unshare(CLONE_NEWUSER) != 0) {
      say("unshare", "CLONE_NEWUSER");
      return false;
    }
    if (!write_text("/proc/self/setgroups", "deny") ||
        !write_text("/proc/self/uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1") ||
        !write_text("/proc/self/gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1")) {
      say("cannot map the runner's uid in", "its user namespace");
      return false;
    }
  }
  if (unshare(CLONE_NEWPID) != 0) {
    say("unshare", "CLONE_NEWPID");
    return false;
  }
  return true;
}

bool restrict_app_process(const SandboxSpec& spec, bool join_pids) {
  if (join_pids && !join_pids_cgroup(spec.pids_cgroup)) return false;
  if (!drop_privileges(spec)) return false;
  if (spec.max_processes > 0) {
    rlimit limit{static_cast<rlim_t>(spec.max_processes), static_cast<rlim_t>(spec.max_processes)};
    if (setrlimit(RLIMIT_NPROC, &limit) != 0) say("cannot apply maxProcesses", "RLIMIT_NPROC");
  }
  if (spec.max_open_files > 0) {
    rlimit current{};
    getrlimit(RLIMIT_NOFILE, &current);
    rlim_t wanted = static_cast<rlim_t>(spec.max_open_files);
    if (current.rlim_max != RLIM_INFINITY && wanted > current.rlim_max) wanted = current.rlim_max;
    rlimit limit{wanted, wanted};
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) say("cannot apply maxOpenFiles", "RLIMIT_NOFILE");
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    say("cannot set", "no_new_privs");
    return false;
  }
  return true;
}

void run_sandbox_init(const SandboxSpec& spec, char** command, const sigset_t& app_mask, int status_fd,
                      int host_pid_fd) {
  prctl(PR_SET_NAME, "fc-init");
  // The guard's death ends the init, and with it the namespace.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The init is in the memory cgroup with the app: never the OOM killer's
  // choice (it is tiny anyway, and without it the namespace ends); the app
  // gets the runner's score back.  Lowering it needs privilege: best effort.
  char oom_score[16] = "0";
  {
    int fd = ::open("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? ::read(fd, oom_score, sizeof(oom_score) - 1) : -1;
    if (n > 0) oom_score[n] = '\0';
    if (fd >= 0) ::close(fd);
    if (!spec.memory_cgroup.empty()) write_text("/proc/self/oom_score_adj", "-1000");
  }
  if (!join_pids_cgroup(spec.pids_cgroup) || !join_cgroup(spec.memory_cgroup, "memorySize")) _exit(1);
  if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) != 0) {
    say("unshare", "CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWUTS");
    _exit(1);
  }
  pid_t host_init_pid = 0;
  if (::read(host_pid_fd, &host_init_pid, sizeof(host_init_pid)) != sizeof(host_init_pid)) host_init_pid = 0;
  ::close(host_pid_fd);
  // The host's /proc, still mounted here: which host pids are taken.
  int host_proc = geteuid() == 0 ? ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  RootBuilder root(spec);
  if (!root.build(command)) _exit(1);

  AppLaunch launch{&spec, command, &app_mask, oom_score};
  pid_t app = start_app(host_init_pid, host_proc, launch);
  if (host_proc >= 0) ::close(host_proc);
  if (app < 0) {
    say("fork", command[0]);
    _exit(1);
  }
  // The init needs no privilege from here on either.
  bool uid_changes = geteuid() == 0 && spec.uid > 0;
  drop_privileges(spec);
  // Its memory is the guard's (guard.cc, start_init): never dumpable once
  // it runs under the app's uid, whatever fs.suid_dumpable says, so the app
  // cannot ptrace it or write its /proc/PID/mem.  (An unprivileged runner
  // keeps one uid throughout and reads these processes' /proc entries.)
  if (uid_changes) prctl(PR_SET_DUMPABLE, 0);
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t waited;
  sigemptyset(&waited);
  sigaddset(&waited, SIGCHLD);
  for (;;) {
    siginfo_t info{};
    if (sigwaitinfo(&waited, &info) < 0) continue;
    int status = 0;
    pid_t done;
    while ((done = waitpid(-1, &status, WNOHANG)) > 0) {
      if (done != app) continue;  // an orphan the init adopted
      ssize_t ignored = ::write(status_fd, &status, sizeof(status));
      (void)ignored;
      _exit(0);
    }
  }
}

}  // namespace fc
