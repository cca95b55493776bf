// fc-runner: the sidecar daemon of fc-gateway (DESIGN §1).
//   fc-runner --config FILE [--check]
//   fc-runner status|reload|invoke|check ...   (the operator's CLI, cli.h)
//   fc-runner import S.YAML [--runner-config OUT] [--nginx-locations OUT]   (import.h)
//   fc-runner --exec-instance PID -- CMD ARGS...   (internal: the instance guard)
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "cli.h"
#include "config.h"
#include "guard.h"
#include "import.h"
#include "instance.h"
#include "instance_ports.h"
#include "isolation.h"
#include "log.h"
#include "memory_limit.h"
#include "netns.h"
#include "reload.h"
#include "runner.h"
#include "runtimes.h"

#ifndef FC_VERSION
#define FC_VERSION "0.1.0"
#endif

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: fc-runner --config FILE [--check]\n"
               "       fc-runner status|reload|invoke|check ...   (fc-runner status --help)\n"
               "       fc-runner import S.YAML [--runner-config OUT.yaml] [--nginx-locations OUT.conf]\n"
               "\n"
               "Runs the functions of FILE (YAML, Serverless Devs s.yaml property names)\n"
               "behind the fc_function directive of nginx, in the foreground.\n"
               "\n"
               "  --config FILE  the runner config\n"
               "  --check        validate FILE, print \"FILE: ok\" and exit; warnings and functions\n"
               "                 that cannot be served go to stderr (the latter: exit 1)\n"
               "  --version      print the version\n"
               "  --help         this text\n");
}

// Every connection and instance pipe is a file descriptor: take all the
// kernel allows, as nginx's worker_rlimit_nofile would, and say what it is.
std::string raise_open_file_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return "open-file limit unknown";
  if (lim.rlim_cur < lim.rlim_max) {
    rlim_t before = lim.rlim_cur;
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) lim.rlim_cur = before;
  }
  return "open-file limit " + std::to_string(lim.rlim_cur);
}

}  // namespace

int main(int argc, char** argv) {
  if (fc::is_guard_invocation(argc, argv)) return fc::run_guard(argc, argv);
  if (argc >= 2 && std::strcmp(argv[1], "import") == 0) return fc::run_import(argc - 1, argv + 1);
  if (argc >= 2 && fc::is_cli_command(argv[1])) return fc::run_cli(argc - 1, argv + 1);

  std::string config_path;
  bool check = false;
  int first = 1;
  // `fc-runner check [--config F]` is --check, with the CLI's default config.
  if (argc >= 2 && std::strcmp(argv[1], "check") == 0) {
    check = true;
    config_path = fc::kDefaultConfigPath;
    first = 2;
  }
  for (int i = first; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = arg.substr(9);
    } else if (arg == "--check") {
      check = true;
    } else if (arg == "--version") {
      std::printf("fc-runner %s\n", FC_VERSION);
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "fc-runner: unknown argument '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (config_path.empty()) {
    usage(stderr);
    return 2;
  }

  fc::RunnerConfig config;
  try {
    config = fc::load_config(config_path);
    fc::mark_unservable_functions(config);
  } catch (const fc::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", config_path.c_str(), e.what());
    return 1;
  }
  if (check) {
    // Warnings and unservable functions on stderr; any of the latter fails the check.
    for (const auto& fn : config.functions) {
      std::string warning = fn.ignored_keys_warning(config_path);
      if (!warning.empty()) std::fprintf(stderr, "warning: %s\n", warning.c_str());
    }
    std::string ports = fc::InstancePorts::protection_problem();
    if (!ports.empty()) {
      std::fprintf(stderr, "warning: instance ports %d-%d would not be protected: %s\n", config.instance_port_first,
                   config.instance_port_last, ports.c_str());
    }
    auto problems = config.problems();
    for (const fc::ConfigError* problem : problems) std::fprintf(stderr, "%s\n", problem->what());
    if (!problems.empty()) {
      std::fprintf(stderr, "%s: %zu function problem(s); the other functions would serve\n", config_path.c_str(),
                   problems.size());
      return 1;
    }
    // Which protections the instances would get, as the runner would say at start.
    for (const std::string& line : fc::Isolation::init(config)) std::printf("%s\n", line.c_str());
    fc::Isolation::cleanup();
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }

  std::string log_error;
  if (!fc::init_log(config.log_file, config.log_level, log_error,
                    config.log_format == "json" ? fc::LogFormat::kJson : fc::LogFormat::kText)) {
    std::fprintf(stderr, "%s: logFile: %s\n", config_path.c_str(), log_error.c_str());
    return 1;
  }

  // Writes to a peer that went away fail with EPIPE instead of killing us.
  signal(SIGPIPE, SIG_IGN);

  spdlog::info("{}", raise_open_file_limit());
  fc::warn_about_runtime_versions(config);
  spdlog::info("{}", fc::MemoryLimit::init());
  for (const std::string& line : fc::Isolation::init(config)) {
    if (line.rfind("WARNING", 0) == 0 || line.find("NO private view") != std::string::npos) {
      spdlog::warn("{}", line);
    } else {
      spdlog::info("{}", line);
    }
  }
  uv_loop_t* loop = uv_default_loop();
  fc::attach_log(loop);  // from here on lines are batched and never block the loop
  int status = 0;
  {
    fc::Runner runner(loop, std::move(config));
    if (runner.start()) {
      // The parsed YAML (about 8 KB a function) is freed by now, but the heap
      // would keep its pages: hand them back, so a config of many functions
      // idles at what the functions themselves cost.
      malloc_trim(0);
      uv_run(loop, UV_RUN_DEFAULT);
    } else {
      status = 1;
      runner.shutdown("start-up failed");
      uv_run(loop, UV_RUN_DEFAULT);
    }
  }
  fc::detach_log();
  uv_run(loop, UV_RUN_DEFAULT);  // close callbacks of what the runner (and the log) let go
  uv_loop_close(loop);
  fc::MemoryLimit::cleanup();
  fc::Isolation::cleanup();
  return status;
}
