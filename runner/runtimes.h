// The built-in runtimes (python3, nodejs): how their instances are started.
// Custom runtimes run the user's command; the built-in ones run our
// bootstrap under the function's interpreter (DESIGN §6).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "config.h"

namespace fc {

// The program and arguments an instance of `fn` runs (in its codeUri).
std::vector<std::string> runtime_command(const FunctionConfig& fn);

// The bootstrap script of a built-in runtime (python3, nodejs); empty for
// custom runtimes.
std::string builtin_bootstrap(Runtime runtime);

// Where the built-in runtimes live.  Installed (make install, the fc-runner
// package) they are PREFIX/lib/fc-runner/runtimes beside PREFIX/bin/fc-runner,
// python3's native host in its python3/ directory; a binary anywhere else
// (the build tree's, a test's copy) uses the source and build trees'.
const std::string& runtimes_dir();
const std::string& python3_extension_dir();

// The interpreter a built-in runtime function runs under.
std::string runtime_interpreter(const FunctionConfig& fn);

// "3.11" for a python interpreter, or "" when it cannot tell.  Blocking
// (may run the interpreter): for start-up only, never on the loop.
std::string python_version_of(const std::string& interpreter);
// The major version of a Node.js interpreter ("20"), or empty.  Runs it.
std::string node_major_of(const std::string& interpreter);

// One warning per function whose FC runtime name asks for another version
// than its interpreter has (python3.9 on a local 3.11, nodejs18 on a local
// Node.js 20), by function name.  Blocking (runs each interpreter once): at
// start before the loop, and on reload in the thread pool (reload.cc).
std::map<std::string, std::string> runtime_version_warnings(const RunnerConfig& config);
// At start: logs them.
void warn_about_runtime_versions(const RunnerConfig& config);

}  // namespace fc
