// Isolation, runner side (issue 9, docs/isolation.md): which protections the
// kernel and the runner's privilege allow (probed once at start, said in the
// log and by --check), the guard options that give an instance its view
// (sandbox.h does the work in the guard), and a pids cgroup per instance
// (maxProcesses).
#pragma once

#include <string>
#include <vector>

#include "config.h"

namespace fc {

class Isolation {
 public:
  // Probes once: privilege, namespaces, the pids cgroup.  Returns the lines
  // for the start-up log / --check ("isolation: ...").
  static std::vector<std::string> init(const RunnerConfig& config);
  static void cleanup();  // removes the runner's pids cgroup directory
  static bool namespaces_available();

  // The guard options for one instance of `fn` (everything before "--").
  // readWritePaths of the top level and the config path are the ones init() saw.
  static std::vector<std::string> guard_args(const FunctionConfig& fn, const std::string& pids_cgroup);
  // The program spawned for every instance (the guard): "/proc/self/fd/N"
  // of fc-instance-guard, opened once (next to this binary in the build tree,
  // PREFIX/lib/fc-runner when installed), so an upgrade that replaces the file
  // does not change it under a running runner; else this binary itself
  // (/proc/self/exe --exec-instance, ~30 ms slower per cold start).
  // FC_RUNNER_GUARD_EXE names another (a runner under valgrind).
  static const std::string& guard_program();
  // The uid the instances of `fn` run as (-1: the runner's own).
  static int instance_uid(const FunctionConfig& fn);
};

// maxProcesses per instance: a pids cgroup (v1 pids.max or v2), joined by
// the instance before its app starts.  Empty path without the controller;
// RLIMIT_NPROC (per uid) applies either way.
class ProcessLimit {
 public:
  ProcessLimit(const std::string& instance_id, int max_processes);
  ~ProcessLimit();
  ProcessLimit(const ProcessLimit&) = delete;
  ProcessLimit& operator=(const ProcessLimit&) = delete;

  const std::string& cgroup() const { return path_; }
  int max_processes() const { return max_; }
  // Forks refused at the limit so far (pids.events "max").
  long refused_forks() const;

 private:
  std::string path_;
  int max_;
};

}  // namespace fc
