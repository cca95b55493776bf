// The instance's private view (issue 9, docs/isolation.md), guard side.
//
// The guard (guard.h) turns these into kernel state before the app runs:
//   - a pid namespace whose init is a small fork of the guard ("fc-init"):
//     it reaps, and hands the app's wait status to the guard through a pipe,
//     so the runner sees the app's own exit; when it ends, the kernel kills
//     whatever is left in the namespace (daemons that left the process group
//     included).  As root the app gets the same pid inside as outside
//     (clone3 set_tid), so its os.getpid() is the one /status shows.
//   - mount, IPC and UTS namespaces with a new root: the system directories
//     read-only (/usr, /etc with its secrets masked, the /lib and /bin links,
//     /sys), codeUri read-only at its own path and at /code, the built-in
//     runtimes read-only, readWritePaths writable, a private size-limited
//     /tmp, a minimal /dev, and a /proc of the instance's own pid namespace;
//     nothing else (other functions' code, the runner's config, /root, /home,
//     /run, /var).
//   - then, for the app: the function's uid/gid (no supplementary groups),
//     RLIMIT_NPROC and RLIMIT_NOFILE, PR_SET_NO_NEW_PRIVS.
// Unprivileged runners get the same in a user namespace that maps only the
// runner's own uid (when the kernel allows unprivileged user namespaces).
// Everything here runs in the guard's children, never on the runner's loop.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace fc {

struct SandboxSpec {
  bool namespaces = false;    // --sandbox: pid/mount/ipc/uts namespaces and the new root
  int uid = -1;               // --uid: drop to it (root runners only); -1 keeps the runner's
  int gid = -1;               // --gid
  std::string code_dir;       // --code: codeUri
  std::vector<std::string> read_only;   // --ro: extra read-only trees (built-in runtimes)
  std::vector<std::string> read_write;  // --rw: readWritePaths
  std::vector<std::string> hidden;      // --hide: masked (the runner's config)
  long tmp_mb = 0;            // --tmp-size: /tmp's size
  long max_processes = 0;     // --nproc: RLIMIT_NPROC
  long max_open_files = 0;    // --nofile: RLIMIT_NOFILE
  std::string pids_cgroup;    // --pids-cgroup: joined before the app starts
  // The guard's --cgroup (memorySize): with namespaces the init joins it
  // before it starts the app, so the app and all it forks are inside from
  // their first instruction (no scan of /proc to move them afterwards).
  std::string memory_cgroup;
};

// Parses one guard option at argv[i] (advancing i past its value); false when
// argv[i] is not a sandbox option.
bool parse_sandbox_option(int argc, char** argv, int& i, SandboxSpec& spec);

// Guard, before its fork: an unprivileged runner's user namespace (the
// runner's uid and gid mapped to themselves), then the new pid namespace the
// next child starts.  false with a message on stderr.
bool enter_sandbox_namespaces(const SandboxSpec& spec);

// The namespace's init (the guard's child): builds the view, starts the app
// (`command`, with `app_mask` as its signal mask) and exits once it has
// written the app's wait status to `status_fd`.  The guard writes the init's
// host pid to `host_pid_fd` (the app's host pid is picked after it).  Never
// returns.
[[noreturn]] void run_sandbox_init(const SandboxSpec& spec, char** command, const sigset_t& app_mask,
                                   int status_fd, int host_pid_fd);

// The app's side, also without namespaces: joins the pids cgroup (when not
// done by an init), drops to uid/gid, sets the rlimits and no_new_privs.
// false with a message on stderr.
bool restrict_app_process(const SandboxSpec& spec, bool join_pids_cgroup);

}  // namespace fc
