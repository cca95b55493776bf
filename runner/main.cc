// fc-runner: the sidecar daemon of fc-gateway (DESIGN §1).
//   fc-runner --config FILE [--check]
//   fc-runner --exec-instance PID -- CMD ARGS...   (internal: the instance guard)
#include <signal.h>
#include <unistd.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "config.h"
#include "guard.h"
#include "instance.h"
#include "memory_limit.h"
#include "runner.h"
#include "runtimes.h"

#ifndef FC_VERSION
#define FC_VERSION "0.1.0"
#endif

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: fc-runner --config FILE [--check]\n"
               "\n"
               "Runs the functions of FILE (YAML, Serverless Devs s.yaml property names)\n"
               "behind the fc_function directive of nginx, in the foreground.\n"
               "\n"
               "  --config FILE  the runner config\n"
               "  --check        validate FILE, print \"FILE: ok\" and exit\n"
               "  --version      print the version\n"
               "  --help         this text\n");
}

// The built-in runtimes' bootstraps are not shipped yet: say so at start, in
// the config's terms, rather than failing every instance start later.
void require_shipped_runtimes(const fc::RunnerConfig& config) {
  for (const auto& fn : config.functions) {
    std::string bootstrap = fc::builtin_bootstrap(fn.runtime);
    if (!bootstrap.empty() && access(bootstrap.c_str(), R_OK) != 0) {
      throw fc::ConfigError(config.path, fn.line, "functions." + fn.name + ".runtime",
                            std::string("runtime ") + fc::to_string(fn.runtime) +
                                " is not available in this build yet (no " + bootstrap +
                                "); use runtime: custom with customRuntimeConfig");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (fc::is_guard_invocation(argc, argv)) return fc::run_guard(argc, argv);

  std::string config_path;
  bool check = false;
  for (int i = 1; i < argc; i++) {
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
    require_shipped_runtimes(config);
  } catch (const fc::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", config_path.c_str(), e.what());
    return 1;
  }
  if (check) {
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }

  auto logger = spdlog::stderr_color_mt("fc-runner");
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::flush_on(spdlog::level::trace);

  // Writes to a peer that went away fail with EPIPE instead of killing us.
  signal(SIGPIPE, SIG_IGN);

  fc::warn_about_runtime_versions(config);
  spdlog::info("{}", fc::MemoryLimit::init());
  uv_loop_t* loop = uv_default_loop();
  int status = 0;
  {
    fc::Runner runner(loop, std::move(config));
    if (runner.start()) {
      uv_run(loop, UV_RUN_DEFAULT);
    } else {
      status = 1;
      runner.shutdown("start-up failed");
      uv_run(loop, UV_RUN_DEFAULT);
    }
  }
  uv_run(loop, UV_RUN_DEFAULT);  // close callbacks of what the runner let go
  uv_loop_close(loop);
  fc::MemoryLimit::cleanup();
  return status;
}
