// fc-runner's command line: --check validates a config and names the file,
// line and key of what is wrong.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include "harness.h"

namespace fc::e2e {
namespace {

TEST(RunnerCli, CheckAcceptsAGoodConfig) {
  TempDir tmp;
  write_file(tmp.path() + "/ok.yaml",
             "listen: unix:" + tmp.path() + "/fc.sock\n"
             "functions:\n"
             "  hello:\n"
             "    runtime: custom\n"
             "    codeUri: .\n"
             "    customRuntimeConfig: { command: [/usr/bin/python3], args: [server.py] }\n");
  auto [rc, out] = run(runner_path() + " --config " + tmp.path() + "/ok.yaml --check");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("isolation: "), std::string::npos) << out;  // which protections apply
  EXPECT_TRUE(out.ends_with(tmp.path() + "/ok.yaml: ok\n")) << out;
}

TEST(RunnerCli, CheckNamesFileLineAndKeyOfABadValue) {
  TempDir tmp;
  write_file(tmp.path() + "/bad.yaml",
             "listen: unix:" + tmp.path() + "/fc.sock\n"
             "functions:\n"
             "  hello:\n"
             "    runtime: custom\n"
             "    codeUri: .\n"
             "    customRuntimeConfig: { command: [/usr/bin/python3] }\n"
             "    instanceConcurrency: 101\n");
  auto [rc, out] = run(runner_path() + " --config " + tmp.path() + "/bad.yaml --check");
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find(tmp.path() + "/bad.yaml:7: functions.hello.instanceConcurrency:"), std::string::npos)
      << out;
  // The same config does not start either.
  auto [start_rc, start_out] = run(runner_path() + " --config " + tmp.path() + "/bad.yaml");
  EXPECT_NE(start_rc, 0);
  EXPECT_EQ(start_out, out);
}

// The nodejs bootstrap ships (runner/runtimes/nodejs): the runtime and FC's
// versioned names pass the start-up check; versions FC does not have do not.
TEST(RunnerCli, NodejsRuntimeIsShippedAndItsFcNamesAreAccepted) {
  TempDir tmp;
  for (const char* name : {"nodejs", "nodejs12", "nodejs14", "nodejs16", "nodejs18", "nodejs20"}) {
    write_file(tmp.path() + "/node.yaml",
               "listen: unix:" + tmp.path() + "/fc.sock\n"
               "functions:\n"
               "  js:\n"
               "    runtime: " + std::string(name) + "\n"
               "    codeUri: .\n");
    auto [rc, out] = run(runner_path() + " --config " + tmp.path() + "/node.yaml --check");
    EXPECT_EQ(rc, 0) << name << ": " << out;
  }
  for (const char* name : {"nodejs10", "nodejs19", "nodejs18.1"}) {
    write_file(tmp.path() + "/node.yaml",
               "listen: unix:" + tmp.path() + "/fc.sock\n"
               "functions:\n"
               "  js:\n"
               "    runtime: " + std::string(name) + "\n"
               "    codeUri: .\n");
    auto [rc, out] = run(runner_path() + " --config " + tmp.path() + "/node.yaml --check");
    EXPECT_NE(rc, 0) << name;
    EXPECT_NE(out.find("node.yaml:4: functions.js.runtime: unsupported runtime \"" + std::string(name) + "\""),
              std::string::npos)
        << out;
  }
}

TEST(RunnerCli, ThePython3RuntimeIsShipped) {
  TempDir tmp;
  write_file(tmp.path() + "/py.yaml",
             "listen: unix:" + tmp.path() + "/fc.sock\n"
             "functions:\n"
             "  py:\n"
             "    runtime: python3.12\n"
             "    codeUri: .\n");
  auto [rc, out] = run(runner_path() + " --config " + tmp.path() + "/py.yaml --check");
  EXPECT_EQ(rc, 0) << out;
}

}  // namespace
}  // namespace fc::e2e
