// fc-instance-guard: the instance guard (guard.h) as a program of its own.
//   fc-instance-guard --exec-instance RUNNER_PID [options] -- CMD ARGS...
//
// Every cold start execs the guard before the app, so it must start in
// microseconds: this binary is linked statically against nothing but libc
// and libstdc++ (guard.cc, sandbox.cc), where fc-runner itself loads ~40
// shared libraries (libcurl, OpenSSL, yaml-cpp...), whose relocation cost
// ~30 ms of CPU per exec (docs/isolation.md, "Cold start").  `fc-runner
// --exec-instance` still works (the fallback when this file is missing).
#include <cstdio>

#include "guard.h"

int main(int argc, char** argv) {
  if (!fc::is_guard_invocation(argc, argv)) {
    std::fprintf(stderr, "fc-instance-guard: started by fc-runner only (--exec-instance RUNNER_PID ... -- CMD)\n");
    return 2;
  }
  return fc::run_guard(argc, argv);
}
