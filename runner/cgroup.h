// The cgroup plumbing the per-instance limits share (memory_limit.h for
// memorySize, isolation.h's ProcessLimit for maxProcesses): where the runner
// may create instance cgroups of a controller, and their files.  cgroupfs
// reads and writes are kernel calls, not disk I/O: done on the loop.
#pragma once

#include <string>

namespace fc::cgroup {

enum class Version { kNone, kV1, kV2 };

// The runner's own directory for instance cgroups of one controller.
struct RunnerBase {
  Version version = Version::kNone;
  std::string path;  // empty: no writable cgroup of the controller
};

// Finds and creates it once per runner: `fc-runner-PID` under the runner's
// own cgroup of `controller` ("memory", "pids"), on cgroup v1
// (/sys/fs/cgroup/CONTROLLER/...) when the runner is in such a hierarchy,
// else on v2 with the controller delegated to children (a probe child must
// show `v2_limit_file`, e.g. "pids.max", writable).  Directories left by
// runners that died without cleaning up (SIGKILL) are removed first.
RunnerBase make_runner_base(const std::string& controller, const std::string& v2_limit_file);

// Removes `dir`'s child cgroups, then `dir` (each only if empty of tasks).
void remove_tree(const std::string& dir);

bool write_file(const std::string& path, const std::string& value);
std::string read_file(const std::string& path);
// "name N" lines (memory.events, memory.oom_control, pids.events): the value of `name`, 0 when absent.
long counter(const std::string& text, const std::string& name);

}  // namespace fc::cgroup
