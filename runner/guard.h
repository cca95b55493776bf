// The instance guard: `fc-runner --exec-instance RUNNER_PID [--netns] -- CMD ARGS...`.
//
// The runner spawns every instance through the guard (fc-instance-guard,
// else its own binary) in a new session (posix_spawn with
// POSIX_SPAWN_SETSID, uv_handle.h's Process: the instance is a process group
// of its own).  The guard stays as the group
// leader and the runner's direct child:
//   - it forks the app, which sets PR_SET_PDEATHSIG(SIGKILL) on the guard and
//     execvp()s CMD with the environment the runner prepared;
//   - it asks the kernel for a signal when the runner dies
//     (PR_SET_PDEATHSIG), and then SIGKILLs its whole process group, so the
//     app's own children (gunicorn workers, shell pipelines) die with it
//     even when the runner was SIGKILLed;
//   - SIGTERM/SIGINT/SIGHUP sent by the runner to the group reach the app;
//     the guard ignores them and exits with the app's status (re-raising a
//     fatal signal), so the runner sees the app's own exit.
// The runner SIGKILLs the group after the guard exits, for stragglers.
// With --netns the guard first moves into a new network namespace with its
// own loopback (apps that hard-code caPort; needs CAP_SYS_ADMIN); the runner
// reaches the app through /proc/<guard>/ns/net (netns.h).
#pragma once

namespace fc {

// True when argv asks for the guard (argv[1] == "--exec-instance").
bool is_guard_invocation(int argc, char** argv);
// Runs the guard; returns only on a usage error (exit code).
int run_guard(int argc, char** argv);

}  // namespace fc
