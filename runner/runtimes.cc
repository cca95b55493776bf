#include "runtimes.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <map>
#include <regex>

namespace fc {

namespace {

// Debian's python: where python3-flask, python3-django & co. are importable.
constexpr const char* kDefaultPython = "/usr/bin/python3";
constexpr const char* kDefaultNode = "/usr/bin/node";

// The installed layout, relative to the binary's directory (PREFIX/bin).
constexpr const char* kInstalledRuntimesDir = "../lib/fc-runner/runtimes";

// PREFIX/lib/fc-runner/runtimes when this binary is an installed one, else "".
std::string installed_runtimes_dir() {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return {};
  std::string dir(exe, static_cast<size_t>(n));
  dir = dir.substr(0, dir.rfind('/') + 1) + kInstalledRuntimesDir;
  char resolved[PATH_MAX];
  if (!realpath(dir.c_str(), resolved)) return {};
  std::string found = resolved;
  return access((found + "/nodejs/bootstrap.js").c_str(), R_OK) == 0 ? found : std::string();
}

}  // namespace

const std::string& runtimes_dir() {
  static const std::string dir = [] {
    std::string installed = installed_runtimes_dir();
    return installed.empty() ? std::string(FC_RUNTIMES_DIR) : installed;
  }();
  return dir;
}

const std::string& python3_extension_dir() {
  static const std::string dir = [] {
    std::string installed = installed_runtimes_dir();
    return installed.empty() ? std::string(FC_PYTHON3_EXTENSION_DIR) : installed + "/python3";
  }();
  return dir;
}

std::string runtime_interpreter(const FunctionConfig& fn) {
  if (!fn.interpreter.empty()) return fn.interpreter;
  switch (fn.runtime) {
    case Runtime::kPython3:
      return kDefaultPython;
    case Runtime::kNodejs:
      return kDefaultNode;
    case Runtime::kCustom:
      break;
  }
  return {};
}

std::vector<std::string> runtime_command(const FunctionConfig& fn) {
  std::vector<std::string> argv;
  switch (fn.runtime) {
    case Runtime::kCustom:
      if (fn.command.empty()) {
        argv.push_back("./bootstrap");  // FC's default for custom runtimes
      } else {
        argv = fn.command;
      }
      argv.insert(argv.end(), fn.args.begin(), fn.args.end());
      break;
    case Runtime::kPython3:
      // bootstrap.py <runtime dir> <instanceConcurrency> [<preStop handler>]:
      // the native host runs that many worker threads.
      argv.push_back(runtime_interpreter(fn));
      argv.push_back(builtin_bootstrap(fn.runtime));
      argv.push_back(python3_extension_dir());
      argv.push_back(std::to_string(fn.instance_concurrency));
      if (fn.pre_stop) argv.push_back(fn.pre_stop->handler);  // FC's preStop handler: module.function
      break;
    case Runtime::kNodejs:
      argv.push_back(runtime_interpreter(fn));
      argv.push_back(builtin_bootstrap(fn.runtime));
      break;
  }
  return argv;
}

std::string builtin_bootstrap(Runtime runtime) {
  switch (runtime) {
    case Runtime::kPython3:
      return runtimes_dir() + "/python3/bootstrap.py";
    case Runtime::kNodejs:
      return runtimes_dir() + "/nodejs/bootstrap.js";
    case Runtime::kCustom:
      break;
  }
  return {};
}

std::string python_version_of(const std::string& interpreter) {
  static const std::regex versioned(R"(python(\d+\.\d+)$)");
  // Debian and virtualenvs: the interpreter is a symlink to .../python3.11.
  char resolved[PATH_MAX];
  std::string path = interpreter;
  if (path.find('/') != std::string::npos && realpath(path.c_str(), resolved)) {
    std::smatch m;
    std::string real = resolved;
    if (std::regex_search(real, m, versioned)) return m[1];
  }
  // Anything else (pyenv's shims, wrappers): ask it.
  std::string cmd = "'" + interpreter + "' -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])' 2>/dev/null";
  if (interpreter.find('\'') != std::string::npos) return {};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {};
  char buf[32] = {0};
  size_t n = fread(buf, 1, sizeof buf - 1, p);
  pclose(p);
  std::string out(buf, n);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return std::regex_match(out, std::regex(R"(\d+\.\d+)")) ? out : std::string();
}

std::string node_major_of(const std::string& interpreter) {
  if (interpreter.find('\'') != std::string::npos) return {};
  std::string command = "'" + interpreter + "' --version 2>/dev/null";
  FILE* p = popen(command.c_str(), "r");
  if (!p) return {};
  char buf[64] = {0};
  size_t n = fread(buf, 1, sizeof buf - 1, p);
  int status = pclose(p);
  std::string version(buf, n);  // "v20.20.2\n"
  if (status != 0 || version.size() < 2 || version[0] != 'v') return {};
  return version.substr(1, version.find('.') - 1);
}

std::map<std::string, std::string> runtime_version_warnings(const RunnerConfig& config) {
  // FC's versioned names ask for a version; the local interpreter runs it
  // whatever its own (asked once per interpreter).
  std::map<std::string, std::string> warnings;
  std::map<std::string, std::string> versions;
  for (const auto& fn : config.functions) {
    std::string wanted;
    const char* language = "";
    if (fn.runtime == Runtime::kPython3) {
      language = "python";
      const std::string prefix = "python";
      if (fn.runtime_name.size() > prefix.size() + 1 && fn.runtime_name.find('.') != std::string::npos) {
        wanted = fn.runtime_name.substr(prefix.size());  // "3.10"
      }
    } else if (fn.runtime == Runtime::kNodejs) {
      language = "Node.js";
      wanted = fn.runtime_version;  // "18"
    }
    if (wanted.empty()) continue;
    std::string interpreter = runtime_interpreter(fn);
    auto it = versions.find(interpreter);
    if (it == versions.end()) {
      std::string local = fn.runtime == Runtime::kPython3 ? python_version_of(interpreter) : node_major_of(interpreter);
      it = versions.emplace(interpreter, local).first;
    }
    const std::string& local = it->second;
    if (local.empty()) {
      warnings[fn.name] = fmt::format("function {}: runtime {} asked for; cannot tell the version of {}", fn.name,
                                      fn.runtime_name, interpreter);
    } else if (local != wanted) {
      warnings[fn.name] = fmt::format("function {}: runtime {} runs on the local {} {} ({})", fn.name,
                                      fn.runtime_name, language, local, interpreter);
    }
  }
  return warnings;
}

void warn_about_runtime_versions(const RunnerConfig& config) {
  for (const auto& [name, warning] : runtime_version_warnings(config)) spdlog::warn("{}", warning);
}

}  // namespace fc
