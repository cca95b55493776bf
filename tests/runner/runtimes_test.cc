// How built-in runtime instances are started (runner/runtimes.cc).
#include "runtimes.h"

#include <gtest/gtest.h>

namespace fc {
namespace {

FunctionConfig python_function() {
  FunctionConfig fn;
  fn.name = "f";
  fn.runtime = Runtime::kPython3;
  fn.runtime_name = "python3";
  fn.instance_concurrency = 4;
  return fn;
}

TEST(Runtimes, Python3RunsTheBootstrapUnderDebiansPythonWithItsConcurrency) {
  std::vector<std::string> argv = runtime_command(python_function());
  ASSERT_EQ(argv.size(), 4u);
  EXPECT_EQ(argv[0], "/usr/bin/python3");
  EXPECT_EQ(argv[1], builtin_bootstrap(Runtime::kPython3));
  EXPECT_EQ(argv[2], FC_PYTHON3_EXTENSION_DIR);
  EXPECT_EQ(argv[3], "4");
}

TEST(Runtimes, TheInterpreterKeyNamesAnotherPython) {
  FunctionConfig fn = python_function();
  fn.interpreter = "/opt/venv/bin/python3";
  EXPECT_EQ(runtime_command(fn).front(), "/opt/venv/bin/python3");
}

TEST(Runtimes, CustomRuntimesRunTheirCommandOrBootstrap) {
  FunctionConfig fn;
  fn.runtime = Runtime::kCustom;
  EXPECT_EQ(runtime_command(fn), std::vector<std::string>{"./bootstrap"});
  fn.command = {"/usr/bin/python3"};
  fn.args = {"app.py"};
  EXPECT_EQ(runtime_command(fn), (std::vector<std::string>{"/usr/bin/python3", "app.py"}));
  EXPECT_EQ(builtin_bootstrap(Runtime::kCustom), "");
}

TEST(Runtimes, PythonVersionOfAnInterpreter) {
  std::string version = python_version_of("/usr/bin/python3");
  EXPECT_EQ(version.rfind("3.", 0), 0u) << version;
  EXPECT_EQ(python_version_of("/nonexistent/python3"), "");
}

}  // namespace
}  // namespace fc
