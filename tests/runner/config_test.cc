// Runner config parsing (runner/config.h): every key, the defaults, and one
// clear FILE:LINE: KEY.PATH: reason message for each kind of mistake.

#include "config.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace fc {
namespace {

namespace fs = std::filesystem;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "fc-config-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    fs::create_directories(dir_ / "fn");
    fs::create_directories(dir_ / "apps" / "flask");
    std::ofstream(dir_ / "plain-file") << "not a directory\n";
    path_ = (dir_ / "runner.yaml").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  RunnerConfig load(const std::string& text) {
    std::ofstream(path_) << text;
    return load_config(path_);
  }

  // A valid file with one python3 function `hello` whose body ends with
  // `extra` (indented as a key of the function, starting on line 5).
  static std::string with_function_keys(const std::string& extra) {
    return "functions:\n"
           "  hello:\n"
           "    runtime: python3\n"
           "    codeUri: ./fn\n" +
           extra + "\n";
  }

  // Asserts that `text` fails with exactly `path_:line: key: ...` and that
  // the reason contains `reason_part`.
  void expect_error(const std::string& text, int line, const std::string& key,
                    const std::string& reason_part) {
    SCOPED_TRACE(text);
    try {
      load(text);
      ADD_FAILURE() << "no error; expected " << key << " at line " << line;
    } catch (const ConfigError& e) {
      std::string what = e.what();
      std::string prefix = path_ + ":" + std::to_string(line) + ": " + (key.empty() ? "" : key + ": ");
      EXPECT_EQ(what.substr(0, prefix.size()), prefix) << what;
      EXPECT_NE(what.find(reason_part), std::string::npos) << what;
      EXPECT_EQ(e.file(), path_);
      EXPECT_EQ(e.line(), line);
      EXPECT_EQ(e.key(), key);
    }
  }

  // Asserts that `text` loads, and that its only function has exactly one
  // problem `path_:line: key: ...` whose reason contains `reason_part`.
  void expect_problem(const std::string& text, int line, const std::string& key,
                      const std::string& reason_part) {
    SCOPED_TRACE(text);
    RunnerConfig config;
    try {
      config = load(text);
    } catch (const ConfigError& e) {
      ADD_FAILURE() << "the whole file failed: " << e.what();
      return;
    }
    ASSERT_EQ(config.functions.size(), 1u);
    ASSERT_EQ(config.functions[0].problems.size(), 1u);
    const ConfigError& problem = config.functions[0].problems[0];
    std::string what = problem.what();
    std::string prefix = path_ + ":" + std::to_string(line) + ": " + key + ": ";
    EXPECT_EQ(what.substr(0, prefix.size()), prefix) << what;
    EXPECT_NE(what.find(reason_part), std::string::npos) << what;
    EXPECT_EQ(problem.line(), line);
    EXPECT_EQ(problem.key(), key);
    EXPECT_EQ(config.problems().size(), 1u);
  }

  void write_program(const std::string& name, const std::string& text, fs::perms perms) {
    std::ofstream(dir_ / "fn" / name) << text;
    fs::permissions(dir_ / "fn" / name, perms);
  }

  fs::path dir_;
  std::string path_;
};

// ---------------------------------------------------------------------------
// Valid files.

TEST_F(ConfigTest, FullConfigWithEveryKeyRoundTrips) {
  RunnerConfig config = load(R"(listen: 127.0.0.1:9100
listenMode: "0600"
admin: unix:/run/fc-runner/admin.sock
logLevel: debug
shutdownTimeout: 2.5
functions:
  hello:
    name: hello
    runtime: python3.10
    type: event
    codeUri: ./fn
    handler: main.handle
    initializer: main.init
    initializationTimeout: 12.5
    timeout: 30
    memorySize: 256
    instanceConcurrency: 4
    environmentVariables: { GREETING: hi, COUNT: 3, ON: true }
    caPort: 9001
    interpreter: /usr/bin/python3
    instanceLifecycleConfig:
      preStop: { handler: main.pre_stop, timeout: 5 }
      preFreeze: { handler: main.pre_freeze, timeout: 2 }
    minInstances: 1
    maxInstances: 4
    idleTimeout: 120
    maxQueueSize: 50
    maxQueueTime: 2.5
    description: ignored
  web:
    runtime: custom.debian10
    codeUri: apps/flask/
    customRuntimeConfig:
      command: [python3]
      args: [app.py, --port, "9000"]
)");
  EXPECT_EQ(config.path, path_);
  EXPECT_EQ(config.listen.kind, Address::Kind::kTcp);
  EXPECT_EQ(config.listen.host, "127.0.0.1");
  EXPECT_EQ(config.listen.port, 9100);
  EXPECT_EQ(config.listen_mode, 0600);
  ASSERT_TRUE(config.admin.has_value());
  EXPECT_EQ(config.admin->to_string(), "unix:/run/fc-runner/admin.sock");
  EXPECT_EQ(config.log_level, "debug");
  EXPECT_DOUBLE_EQ(config.shutdown_timeout_s, 2.5);
  ASSERT_EQ(config.functions.size(), 2u);

  const FunctionConfig& hello = config.functions[0];
  EXPECT_EQ(hello.name, "hello");
  EXPECT_EQ(hello.line, 7);
  EXPECT_EQ(hello.runtime, Runtime::kPython3);
  EXPECT_EQ(hello.type, FunctionType::kEvent);
  EXPECT_EQ(hello.code_uri, (dir_ / "fn").string());
  EXPECT_EQ(hello.handler, "main.handle");
  EXPECT_EQ(hello.initializer, "main.init");
  EXPECT_DOUBLE_EQ(hello.initialization_timeout_s, 12.5);
  EXPECT_DOUBLE_EQ(hello.timeout_s, 30);
  EXPECT_EQ(hello.memory_size_mb, 256);
  EXPECT_EQ(hello.instance_concurrency, 4);
  using Env = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(hello.environment, (Env{{"GREETING", "hi"}, {"COUNT", "3"}, {"ON", "true"}}));
  EXPECT_EQ(hello.ca_port, 9001);
  EXPECT_TRUE(hello.ca_port_set);
  EXPECT_EQ(hello.interpreter, "/usr/bin/python3");
  ASSERT_TRUE(hello.pre_stop.has_value());
  EXPECT_EQ(hello.pre_stop->handler, "main.pre_stop");
  EXPECT_DOUBLE_EQ(hello.pre_stop->timeout_s, 5);
  EXPECT_EQ(hello.min_instances, 1);
  EXPECT_EQ(hello.max_instances, 4);
  EXPECT_DOUBLE_EQ(hello.idle_timeout_s, 120);
  EXPECT_EQ(hello.max_queue_size, 50);
  EXPECT_DOUBLE_EQ(hello.max_queue_time_s, 2.5);

  const FunctionConfig& web = config.functions[1];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.line, 30);
  EXPECT_EQ(web.runtime, Runtime::kCustom);
  EXPECT_EQ(web.type, FunctionType::kHttp);
  EXPECT_EQ(web.code_uri, (dir_ / "apps" / "flask").string());
  EXPECT_EQ(web.command, std::vector<std::string>{"python3"});
  EXPECT_EQ(web.args, (std::vector<std::string>{"app.py", "--port", "9000"}));
  EXPECT_FALSE(web.ca_port_set);

  EXPECT_EQ(config.find("web"), &config.functions[1]);
  EXPECT_EQ(config.find("hello"), &config.functions[0]);
  EXPECT_EQ(config.find("nope"), nullptr);
}

TEST_F(ConfigTest, DefaultsApplyWhenKeysAreLeftOut) {
  RunnerConfig config = load(with_function_keys(""));
  EXPECT_EQ(config.listen.to_string(), "unix:/run/fc-runner/fc.sock");
  EXPECT_EQ(config.listen_mode, 0660);
  EXPECT_FALSE(config.admin.has_value());
  EXPECT_EQ(config.log_level, "info");
  EXPECT_DOUBLE_EQ(config.shutdown_timeout_s, 10);
  ASSERT_EQ(config.functions.size(), 1u);
  const FunctionConfig& fn = config.functions[0];
  EXPECT_EQ(fn.type, FunctionType::kHttp);
  EXPECT_EQ(fn.handler, "index.handler");
  EXPECT_EQ(fn.initializer, "");
  EXPECT_DOUBLE_EQ(fn.initialization_timeout_s, 10);
  EXPECT_DOUBLE_EQ(fn.timeout_s, 60);
  EXPECT_EQ(fn.memory_size_mb, 512);
  EXPECT_EQ(fn.instance_concurrency, 1);
  EXPECT_TRUE(fn.environment.empty());
  EXPECT_EQ(fn.ca_port, 9000);
  EXPECT_FALSE(fn.ca_port_set);
  EXPECT_EQ(fn.interpreter, "");
  EXPECT_FALSE(fn.pre_stop.has_value());
  EXPECT_EQ(fn.min_instances, 0);
  EXPECT_EQ(fn.max_instances, 10);
  EXPECT_DOUBLE_EQ(fn.idle_timeout_s, 300);
  EXPECT_EQ(fn.max_queue_size, 100);
  EXPECT_DOUBLE_EQ(fn.max_queue_time_s, 10);
}

TEST_F(ConfigTest, FunctionsMayBeEmpty) {
  EXPECT_TRUE(load("functions: {}\n").functions.empty());
  EXPECT_TRUE(load("functions:\n").functions.empty());
}

TEST_F(ConfigTest, PreStopDefaultsAndEmptyHandlerTurnsItOff) {
  RunnerConfig config = load(with_function_keys("    instanceLifecycleConfig: { preStop: { handler: x } }"));
  ASSERT_TRUE(config.functions[0].pre_stop.has_value());
  EXPECT_DOUBLE_EQ(config.functions[0].pre_stop->timeout_s, 3);

  config = load(with_function_keys("    instanceLifecycleConfig: { preStop: { handler: '', timeout: 3 } }"));
  EXPECT_FALSE(config.functions[0].pre_stop.has_value());

  config = load(with_function_keys("    instanceLifecycleConfig: { preFreeze: { handler: x, timeout: 1 } }"));
  EXPECT_FALSE(config.functions[0].pre_stop.has_value());
}

TEST_F(ConfigTest, EnvironmentVariablesKeepFileOrderAndAreStringified) {
  RunnerConfig config = load(with_function_keys(
      "    environmentVariables:\n"
      "      ZED: 1.50\n"
      "      ALPHA: yes\n"
      "      MID: 'quoted'\n"
      "      EMPTY:\n"
      "      HEX: 0x10"));
  using Env = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(config.functions[0].environment,
            (Env{{"ZED", "1.50"}, {"ALPHA", "yes"}, {"MID", "quoted"}, {"EMPTY", ""}, {"HEX", "0x10"}}));
}

TEST_F(ConfigTest, IgnoredFcKeysAreAcceptedWithAnyValue) {
  RunnerConfig config = load(with_function_keys(
      "    description: a function\n"
      "    cpu: 0.35\n"
      "    diskSize: 512\n"
      "    instanceType: e1\n"
      "    internetAccess: true\n"
      "    logConfig: auto\n"
      "    role: acs:ram::1:role/x\n"
      "    vpcConfig: { vpcId: v, vSwitchIds: [a] }\n"
      "    nasConfig: auto\n"
      "    ossMountConfig: { mountPoints: [] }\n"
      "    layers: [acs:fc:layer]\n"
      "    tracingConfig: Enable\n"
      "    customDNS: { nameServers: [1.1.1.1] }\n"
      "    gpuMemorySize: 8192"));
  const FunctionConfig& fn = config.functions[0];
  EXPECT_EQ(fn.memory_size_mb, 512);
  EXPECT_EQ(fn.timeout_s, 60);
  // Accepted, never silently: one warning names them all, in file order.
  EXPECT_TRUE(fn.problems.empty());
  EXPECT_EQ(fn.ignored_keys,
            (std::vector<std::string>{"description", "cpu", "diskSize", "instanceType", "internetAccess",
                                      "logConfig", "role", "vpcConfig", "nasConfig", "ossMountConfig", "layers",
                                      "tracingConfig", "customDNS", "gpuMemorySize"}));
  EXPECT_EQ(fn.ignored_keys_warning(path_),
            path_ + ":2: functions.hello: keys description, cpu, diskSize, instanceType, internetAccess, logConfig, "
                    "role, vpcConfig, nasConfig, ossMountConfig, layers, tracingConfig, customDNS, gpuMemorySize "
                    "accepted but ignored (FC settings with no meaning on one machine)");
}

TEST_F(ConfigTest, OneIgnoredKeyWarnsInTheSingularAndNoneWarnsNothing) {
  RunnerConfig config = load(with_function_keys("    asyncConfiguration: { destination: x }"));
  EXPECT_EQ(config.functions[0].ignored_keys_warning(path_),
            path_ + ":2: functions.hello: key asyncConfiguration accepted but ignored "
                    "(FC settings with no meaning on one machine)");
  EXPECT_EQ(load(with_function_keys("    timeout: 3")).functions[0].ignored_keys_warning(path_), "");
}

TEST_F(ConfigTest, RuntimeAliasesMapToTheBaseRuntime) {
  struct Case {
    const char* name;
    Runtime runtime;
  };
  for (const Case& c : {Case{"python3", Runtime::kPython3}, Case{"python3.6", Runtime::kPython3},
                        Case{"python3.9", Runtime::kPython3},
                        Case{"python3.10", Runtime::kPython3}, Case{"python3.12", Runtime::kPython3},
                        Case{"nodejs", Runtime::kNodejs}, Case{"nodejs16", Runtime::kNodejs},
                        Case{"nodejs18", Runtime::kNodejs}, Case{"nodejs20", Runtime::kNodejs}}) {
    SCOPED_TRACE(c.name);
    RunnerConfig config = load(std::string("functions:\n  f:\n    runtime: ") + c.name + "\n    codeUri: fn\n");
    EXPECT_EQ(config.functions[0].runtime, c.runtime);
    EXPECT_EQ(config.functions[0].runtime_name, c.name);  // the version wish, for the start-up warning
  }
  for (const char* name : {"custom", "custom.debian10", "custom.debian11", "custom.debian12"}) {
    SCOPED_TRACE(name);
    RunnerConfig config = load(std::string("functions:\n  f:\n    runtime: ") + name +
                               "\n    codeUri: fn\n    customRuntimeConfig: { command: [./run] }\n");
    EXPECT_EQ(config.functions[0].runtime, Runtime::kCustom);
  }
}

TEST_F(ConfigTest, ListenModeIsOctalTextOrAnInteger) {
  struct Case {
    const char* text;
    int mode;
  };
  for (const Case& c : {Case{"\"0660\"", 0660}, Case{"'600'", 0600}, Case{"0640", 0640}, Case{"0o644", 0644},
                        Case{"432", 0660}, Case{"0", 0}, Case{"\"0777\"", 0777}}) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(load(std::string("listenMode: ") + c.text + "\nfunctions: {}\n").listen_mode, c.mode);
  }
}

// ---------------------------------------------------------------------------
// codeUri.

TEST_F(ConfigTest, RelativeCodeUriIsResolvedAgainstTheConfigDirectory) {
  std::string sibling = dir_.filename().string();
  struct Case {
    std::string code_uri;
    fs::path expected;
  };
  for (const Case& c : {Case{"./fn", dir_ / "fn"}, Case{"fn/", dir_ / "fn"}, Case{"apps/./flask", dir_ / "apps/flask"},
                        Case{"../" + sibling + "/fn", dir_ / "fn"}, Case{(dir_ / "fn").string(), dir_ / "fn"},
                        Case{".", dir_}}) {
    SCOPED_TRACE(c.code_uri);
    RunnerConfig config = load("functions:\n  f:\n    runtime: python3\n    codeUri: " + c.code_uri + "\n");
    EXPECT_EQ(config.functions[0].code_uri, c.expected.string());
    EXPECT_TRUE(fs::path(config.functions[0].code_uri).is_absolute());
  }
}

TEST_F(ConfigTest, ParseConfigResolvesAgainstTheGivenPathNotTheWorkingDirectory) {
  RunnerConfig config =
      parse_config("functions:\n  f:\n    runtime: python3\n    codeUri: fn\n", (dir_ / "never-written.yaml").string());
  EXPECT_EQ(config.functions[0].code_uri, (dir_ / "fn").string());
  EXPECT_EQ(config.path, (dir_ / "never-written.yaml").string());
}

TEST_F(ConfigTest, CodeUriMustBeAnExistingDirectory) {
  // The function cannot be served; the file still loads (its neighbours serve).
  expect_problem("functions:\n  f:\n    runtime: python3\n    codeUri: ./missing\n", 4, "functions.f.codeUri",
                 "directory " + (dir_ / "missing").string() + " does not exist");
  expect_problem("functions:\n  f:\n    runtime: python3\n    codeUri: plain-file\n", 4, "functions.f.codeUri",
                 "is not a directory");
  expect_problem("functions:\n  f:\n    runtime: python3\n", 2, "functions.f.codeUri", "required");
  expect_error("functions:\n  f:\n    runtime: python3\n    codeUri: ''\n", 4, "functions.f.codeUri",
               "must not be empty");
}

// ---------------------------------------------------------------------------
// Errors.

TEST_F(ConfigTest, UnknownKeysAreNamedWithFileLineAndSuggestion) {
  expect_error("listn: 127.0.0.1:9100\nfunctions: {}\n", 1, "listn", "unknown key (did you mean \"listen\"?)");
  expect_error(with_function_keys("    timeotu: 3"), 5, "functions.hello.timeotu",
               "unknown key (did you mean \"timeout\"?)");
  expect_error(with_function_keys("    memorysize: 3"), 5, "functions.hello.memorysize",
               "did you mean \"memorySize\"?");
  expect_error(with_function_keys("    descripton: x"), 5, "functions.hello.descripton",
               "did you mean \"description\"?");
  expect_error(with_function_keys("    instanceLifecycleConfig:\n      preStop: { handlr: x }"), 6,
               "functions.hello.instanceLifecycleConfig.preStop.handlr", "did you mean \"handler\"?");
  expect_error("functions:\n  web:\n    runtime: custom\n    codeUri: fn\n    customRuntimeConfig: { comand: [x] }\n",
               5, "functions.web.customRuntimeConfig.comand", "did you mean \"command\"?");
  expect_error(with_function_keys("    ossBucket: b"), 5, "functions.hello.ossBucket", "unknown key");
}

TEST_F(ConfigTest, UnknownKeyFarFromEveryKnownKeyGetsNoSuggestion) {
  try {
    load(with_function_keys("    zzzzzz: 1"));
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), path_ + ":5: functions.hello.zzzzzz: unknown key");
  }
}

TEST_F(ConfigTest, WrongTypesNameTheExpectedType) {
  struct Case {
    std::string extra;
    int line;
    std::string key;
    std::string reason;
  };
  const std::string fn = "functions.hello.";
  for (const Case& c : {
           Case{"    timeout: \"30\"", 5, fn + "timeout", "expected a number (seconds), got the string \"30\""},
           Case{"    timeout: soon", 5, fn + "timeout", "expected a number (seconds), got the string \"soon\""},
           Case{"    timeout: [1]", 5, fn + "timeout", "expected a number (seconds), got a list"},
           Case{"    timeout:", 5, fn + "timeout", "expected a number (seconds), got an empty value"},
           Case{"    memorySize: { mb: 1 }", 5, fn + "memorySize", "expected an integer, got a map"},
           Case{"    memorySize: '128'", 5, fn + "memorySize", "expected an integer, got the string \"128\""},
           Case{"    memorySize: 128.5", 5, fn + "memorySize", "must be an integer between 64 and 32768, got 128.5"},
           Case{"    instanceConcurrency: true", 5, fn + "instanceConcurrency",
                "expected an integer, got the boolean true"},
           Case{"    handler: [a, b]", 5, fn + "handler", "expected a string, got a list"},
           Case{"    environmentVariables: [A]", 5, fn + "environmentVariables", "expected a map, got a list"},
           Case{"    environmentVariables:\n      A: { b: c }", 6, fn + "environmentVariables.A",
                "expected a string, number or boolean, got a map"},
           Case{"    instanceLifecycleConfig: { preStop: 3 }", 5, fn + "instanceLifecycleConfig.preStop",
                "expected a map, got the number 3"},
           Case{"    type: 7", 5, fn + "type", "must be http or event"},
           Case{"    interpreter: { path: x }", 5, fn + "interpreter", "expected a string, got a map"},
       }) {
    expect_error(with_function_keys(c.extra), c.line, c.key, c.reason);
  }
  const std::string custom = "functions:\n  web:\n    runtime: custom\n    codeUri: fn\n";
  expect_error(custom + "    customRuntimeConfig: { command: python3 }\n", 5,
               "functions.web.customRuntimeConfig.command", "expected a list of strings, got the string");
  expect_error(custom + "    customRuntimeConfig: { command: { a: b } }\n", 5,
               "functions.web.customRuntimeConfig.command", "expected a list of strings, got a map");
  expect_error(custom + "    customRuntimeConfig:\n      command:\n        - python3\n        - [x]\n", 8,
               "functions.web.customRuntimeConfig.command[1]", "expected a string, got a list");
  expect_error(custom + "    customRuntimeConfig: [python3]\n", 5, "functions.web.customRuntimeConfig",
               "expected a map, got a list");
  expect_error("functions: [a]\n", 1, "functions", "expected a map of function name to settings, got a list");
  expect_error("functions:\n  hello: 3\n", 2, "functions.hello", "expected a map of function settings");
  expect_error("- a\n- b\n", 1, "", "expected a map of settings at the top level, got a list");
  expect_error("listen: [1]\nfunctions: {}\n", 1, "listen", "expected a string, got a list");
  expect_error("shutdownTimeout: x\nfunctions: {}\n", 1, "shutdownTimeout", "expected a number (seconds)");
}

// Each range at both ends: the limit itself is accepted, one past it is an
// error that names the key, the line and the range.
TEST_F(ConfigTest, RangesAreCheckedAtBothEnds) {
  struct Case {
    std::string key;        // the key as written under the function
    std::string error_key;  // its full key path
    std::string value;
    bool ok;
    std::string reason;
  };
  std::vector<Case> cases;
  auto range = [&](const std::string& key, const std::string& low_bad, const std::string& low_ok,
                   const std::string& high_ok, const std::string& high_bad, const std::string& reason) {
    cases.push_back({key, "functions.hello." + key, low_bad, false, reason});
    cases.push_back({key, "", low_ok, true, ""});
    cases.push_back({key, "", high_ok, true, ""});
    cases.push_back({key, "functions.hello." + key, high_bad, false, reason});
  };
  range("initializationTimeout", "0.5", "1", "600", "600.5", "must be a number between 1 and 600");
  range("timeout", "0", "1", "86400", "86401", "must be a number between 1 and 86400");
  range("memorySize", "63", "64", "32768", "32769", "must be an integer between 64 and 32768");
  range("instanceConcurrency", "0", "1", "100", "101", "must be an integer between 1 and 100");
  range("caPort", "0", "1", "65535", "65536", "must be an integer between 1 and 65535");
  range("maxInstances", "0", "1", "1000", "1001", "must be an integer between 1 and 1000");
  range("idleTimeout", "0.9", "1", "31536000", "31536001", "must be a number between 1 and 31536000");
  range("maxQueueSize", "-1", "0", "100000", "100001", "must be an integer between 0 and 100000");
  range("maxQueueTime", "0", "0.001", "86400", "86400.1", "must be a number greater than 0 and at most 86400");
  range("memorySize", "-99999999999999999999999", "512", "512", "99999999999999999999999",
        "must be an integer between 64 and 32768");

  for (const Case& c : cases) {
    std::string text = with_function_keys("    " + c.key + ": " + c.value);
    SCOPED_TRACE(text);
    if (c.ok) {
      EXPECT_NO_THROW(load(text));
    } else {
      expect_error(text, 5, c.error_key, c.reason);
    }
  }

  // minInstances goes up to maxInstances (which goes up to 1000).
  EXPECT_EQ(load(with_function_keys("    maxInstances: 1000\n    minInstances: 1000")).functions[0].min_instances,
            1000);
  EXPECT_EQ(load(with_function_keys("    minInstances: 0")).functions[0].min_instances, 0);
  expect_error(with_function_keys("    minInstances: -1"), 5, "functions.hello.minInstances",
               "must be an integer between 0 and 1000");
  expect_error(with_function_keys("    maxInstances: 1000\n    minInstances: 1001"), 6,
               "functions.hello.minInstances", "must be an integer between 0 and 1000");

  // preStop.timeout 1..600.
  const std::string hook = "    instanceLifecycleConfig:\n      preStop: { handler: h, timeout: ";
  EXPECT_NO_THROW(load(with_function_keys(hook + "1 }")));
  EXPECT_NO_THROW(load(with_function_keys(hook + "600 }")));
  expect_error(with_function_keys(hook + "0 }"), 6, "functions.hello.instanceLifecycleConfig.preStop.timeout",
               "must be a number between 1 and 600");
  expect_error(with_function_keys(hook + "601 }"), 6, "functions.hello.instanceLifecycleConfig.preStop.timeout",
               "must be a number between 1 and 600");

  // Top level: listenBacklog 1..2^20 (default 0: the kernel's maximum),
  // frameTimeout > 0 up to 3600 (default 10), logFile relative to the file.
  EXPECT_EQ(load("functions: {}\n").listen_backlog, 0);
  EXPECT_EQ(load("functions: {}\n").frame_timeout_s, 10);
  EXPECT_EQ(load("listenBacklog: 1\nfunctions: {}\n").listen_backlog, 1);
  EXPECT_EQ(load("listenBacklog: 1048576\nfunctions: {}\n").listen_backlog, 1048576);
  expect_error("listenBacklog: 0\nfunctions: {}\n", 1, "listenBacklog", "must be an integer between 1 and 1048576");
  expect_error("listenBacklog: 1048577\nfunctions: {}\n", 1, "listenBacklog", "between 1 and 1048576");
  EXPECT_EQ(load("frameTimeout: 3600\nfunctions: {}\n").frame_timeout_s, 3600);
  expect_error("frameTimeout: 0\nfunctions: {}\n", 1, "frameTimeout", "must be a number");
  expect_error("frameTimeout: 3601\nfunctions: {}\n", 1, "frameTimeout", "must be a number");
  EXPECT_EQ(load("logFile: logs/runner.log\nfunctions: {}\n").log_file, (dir_ / "logs/runner.log").string());
  EXPECT_EQ(load("logFile: /var/log/x.log\nfunctions: {}\n").log_file, "/var/log/x.log");
  expect_error("logFile: ''\nfunctions: {}\n", 1, "logFile", "must be a file path");

  // Top level: instancePorts FIRST-LAST within 1024..65535 (default 20000-29999).
  EXPECT_EQ(load("functions: {}\n").instance_port_first, 20000);
  EXPECT_EQ(load("functions: {}\n").instance_port_last, 29999);
  RunnerConfig ports = load("instancePorts: 1024-65535\nfunctions: {}\n");
  EXPECT_EQ(ports.instance_port_first, 1024);
  EXPECT_EQ(ports.instance_port_last, 65535);
  EXPECT_EQ(load("instancePorts: 30000\nfunctions: {}\n").instance_port_last, 30000);
  for (const char* bad : {"1023-2000", "2000-65536", "3000-2000", "20000-", "x", "'20000 - 20010'"}) {
    expect_error(std::string("instancePorts: ") + bad + "\nfunctions: {}\n", 1, "instancePorts",
                 "must be a port range FIRST-LAST between 1024 and 65535");
  }

  // Function: network host | private (default: neither).
  EXPECT_EQ(load(with_function_keys("")).functions[0].network, FunctionConfig::Network::kDefault);
  EXPECT_EQ(load(with_function_keys("    network: host")).functions[0].network, FunctionConfig::Network::kHost);
  RunnerConfig priv = load(with_function_keys("    network: private"));
  EXPECT_EQ(priv.functions[0].network, FunctionConfig::Network::kPrivate);
  EXPECT_EQ(priv.functions[0].network_line, 5);
  EXPECT_NE(priv.functions[0].digest(), load(with_function_keys("")).functions[0].digest());
  expect_error(with_function_keys("    network: bridge"), 5, "functions.hello.network",
               "must be host or private, got \"bridge\"");

  // Top level: shutdownTimeout 0..86400, listenMode 0..0777.
  EXPECT_NO_THROW(load("shutdownTimeout: 0\nfunctions: {}\n"));
  EXPECT_NO_THROW(load("shutdownTimeout: 86400\nfunctions: {}\n"));
  expect_error("shutdownTimeout: -0.1\nfunctions: {}\n", 1, "shutdownTimeout", "must be a number between 0 and 86400");
  expect_error("shutdownTimeout: 86401\nfunctions: {}\n", 1, "shutdownTimeout",
               "must be a number between 0 and 86400");
  expect_error("functions: {}\nlistenMode: \"1000\"\n", 2, "listenMode", "must be a file mode between 0000 and 0777");
  expect_error("functions: {}\nlistenMode: 660\n", 2, "listenMode", "written in octal (e.g. \"0660\")");
  expect_error("functions: {}\nlistenMode: \"0680\"\n", 2, "listenMode", "must be a file mode");
  expect_error("functions: {}\nlistenMode: rw\n", 2, "listenMode", "expected an octal string");

  // Seconds may be written as floats with exponents; inf and nan are not numbers here.
  EXPECT_DOUBLE_EQ(load(with_function_keys("    timeout: 1.5e2")).functions[0].timeout_s, 150);
  expect_error(with_function_keys("    timeout: .inf"), 5, "functions.hello.timeout", "expected a number");
  expect_error(with_function_keys("    timeout: nan"), 5, "functions.hello.timeout", "expected a number");
}

TEST_F(ConfigTest, MinInstancesMustNotExceedMaxInstances) {
  expect_error(with_function_keys("    minInstances: 5\n    maxInstances: 4"), 5, "functions.hello.minInstances",
               "minInstances (5) must not exceed maxInstances (4)");
  expect_error(with_function_keys("    minInstances: 11"), 5, "functions.hello.minInstances",
               "must not exceed maxInstances (10, the default)");
  EXPECT_NO_THROW(load(with_function_keys("    minInstances: 4\n    maxInstances: 4")));
}

TEST_F(ConfigTest, FunctionNamesFollowTheFcRule) {
  for (const std::string& name : {std::string("a"), std::string("_private"), std::string("hello-world_2"),
                                  std::string("A") + std::string(127, 'x')}) {
    SCOPED_TRACE(name);
    EXPECT_NO_THROW(load("functions:\n  " + name + ":\n    runtime: python3\n    codeUri: fn\n"));
  }
  for (const std::string& name : {std::string("1abc"), std::string("-a"), std::string("a.b"),
                                  std::string("\"with space\""), std::string("A") + std::string(128, 'x')}) {
    std::string key = name.front() == '"' ? name.substr(1, name.size() - 2) : name;
    expect_error("functions:\n  ok:\n    runtime: python3\n    codeUri: fn\n  " + name +
                     ":\n    runtime: python3\n    codeUri: fn\n",
                 5, "functions." + key, "invalid function name");
  }
}

TEST_F(ConfigTest, NameKeyMustMatchTheFunctionKey) {
  EXPECT_NO_THROW(load(with_function_keys("    name: hello")));
  expect_error(with_function_keys("    name: other"), 5, "functions.hello.name", "must match the function's key");
}

TEST_F(ConfigTest, DuplicateKeysAreErrors) {
  expect_error("functions:\n  a:\n    runtime: python3\n    codeUri: fn\n  a:\n    runtime: nodejs\n    codeUri: fn\n",
               5, "functions.a", "duplicate key");
  expect_error(with_function_keys("    timeout: 3\n    timeout: 4"), 6, "functions.hello.timeout", "duplicate key");
}

TEST_F(ConfigTest, NodejsRunsUsrBinNodeUnlessToldAndKeepsFcsVersion) {
  RunnerConfig config = load(
      "functions:\n  f:\n    runtime: nodejs18\n    codeUri: fn\n"
      "  g:\n    runtime: nodejs\n    codeUri: fn\n    interpreter: /opt/node/bin/node\n");
  EXPECT_EQ(config.functions[0].interpreter, "/usr/bin/node");
  EXPECT_EQ(config.functions[0].runtime_version, "18");
  EXPECT_EQ(config.functions[1].interpreter, "/opt/node/bin/node");
  EXPECT_EQ(config.functions[1].runtime_version, "");
  for (const char* runtime : {"nodejs10", "nodejs19", "nodejs21", "nodejs18.2"}) {
    expect_problem(std::string("functions:\n  f:\n    runtime: ") + runtime + "\n    codeUri: fn\n", 3,
                   "functions.f.runtime", "FC's Node.js runtimes are nodejs12, nodejs14, nodejs16, nodejs18, nodejs20");
  }
}

TEST_F(ConfigTest, RuntimeIsRequiredAndMustBeSupported) {
  expect_problem("functions:\n  f:\n    codeUri: fn\n", 2, "functions.f.runtime", "required");
  for (const char* runtime : {"java8", "custom-container", "python2.7", "python3.", "python3.5", "python3.13",
                              "python3.1.1", "nodejsX", "go1", "custom.debian"}) {
    // customRuntimeConfig is not judged against an unknown runtime.
    expect_problem(std::string("functions:\n  f:\n    runtime: ") + runtime +
                       "\n    codeUri: fn\n    customRuntimeConfig: { command: [x] }\n",
                   3, "functions.f.runtime", std::string("unsupported runtime \"") + runtime + "\"");
  }
}

TEST_F(ConfigTest, CustomRuntimeNeedsACommand) {
  const std::string custom = "functions:\n  web:\n    runtime: custom\n    codeUri: fn\n";
  // No command: FC's ./bootstrap in codeUri, which must be there (a problem of this function).
  expect_problem(custom, 2, "functions.web.customRuntimeConfig.command",
                 (dir_ / "fn" / "bootstrap").string() + ") does not exist; without customRuntimeConfig.command FC "
                 "runs ./bootstrap");
  expect_problem(custom + "    customRuntimeConfig: { args: [a] }\n", 5, "functions.web.customRuntimeConfig.command",
                 "\"./bootstrap\" (" + (dir_ / "fn" / "bootstrap").string() + ") does not exist");
  expect_error(custom + "    customRuntimeConfig: { command: [] }\n", 5, "functions.web.customRuntimeConfig.command",
               "must name the program to start");
  expect_error(custom + "    customRuntimeConfig: { command: [''] }\n", 5,
               "functions.web.customRuntimeConfig.command", "must name the program to start");
  expect_error(custom + "    customRuntimeConfig: { command: [x] }\n    interpreter: /usr/bin/python3\n", 6,
               "functions.web.interpreter", "only applies to the built-in runtimes");
  expect_error(with_function_keys("    customRuntimeConfig: { command: [x] }"), 5, "functions.hello.customRuntimeConfig",
               "only applies to runtime custom");
}

TEST_F(ConfigTest, PreStopNeedsAHandlerKey) {
  expect_error(with_function_keys("    instanceLifecycleConfig:\n      preStop: { timeout: 3 }"), 6,
               "functions.hello.instanceLifecycleConfig.preStop.handler", "required");
}

TEST_F(ConfigTest, TopLevelValuesAreValidated) {
  expect_error("logLevel: verbose\nfunctions: {}\n", 1, "logLevel",
               "must be one of trace, debug, info, warn, error, got \"verbose\"");
  expect_error("listen: 127.0.0.1:9100\n", 1, "functions", "required");
  expect_error("", 1, "functions", "required; the file is empty");
  expect_error("functions: {}\n---\nfunctions: {}\n", 0, "", "expected one YAML document, found 2");
}

TEST_F(ConfigTest, BadAddressesNameTheKey) {
  expect_error("listen: example.com:80\nfunctions: {}\n", 1, "listen", "host must be an IP address or localhost");
  expect_error("listen: unix:run/fc.sock\nfunctions: {}\n", 1, "listen", "unix socket path must be absolute");
  expect_error("functions: {}\nlisten: 127.0.0.1:99999\n", 2, "listen", "port must be a number between 0 and 65535");
  expect_error("functions: {}\nadmin: ::1:9100\n", 2, "admin", "an IPv6 address needs brackets");
  expect_error("listen: 127.0.0.1:9100\nadmin: localhost:9100\nfunctions: {}\n", 2, "admin",
               "must differ from listen (127.0.0.1:9100)");
  expect_error("listen: ''\nfunctions: {}\n", 1, "listen", "must not be empty");
}

TEST_F(ConfigTest, YamlSyntaxErrorsCarryTheirLine) {
  expect_error("functions:\n  hello:\n    runtime: [python3\n    codeUri: fn\n", 4, "", "YAML syntax error");
  expect_error("functions:\n  hello: a: b\n", 2, "", "YAML syntax error: illegal map value");
}

TEST_F(ConfigTest, MissingFileIsLineZero) {
  std::string missing = (dir_ / "nope.yaml").string();
  try {
    load_config(missing);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line(), 0);
    EXPECT_EQ(e.file(), missing);
    EXPECT_EQ(std::string(e.what()), missing + ":0: cannot read the config file: No such file or directory");
  }
  try {
    load_config(dir_.string());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line(), 0);
    EXPECT_NE(std::string(e.what()).find("it is a directory"), std::string::npos) << e.what();
  }
}

TEST_F(ConfigTest, ErrorMessageMatchesTheDocumentedShape) {
  try {
    load(with_function_keys("    timeout: 0"));
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), path_ + ":5: functions.hello.timeout: must be a number between 1 and 86400");
  }
}

// ---------------------------------------------------------------------------
// Addresses, names, digests.

TEST(ParseAddress, AcceptsUnixAndLiteralTcpAddresses) {
  Address a = parse_address("unix:/run/fc.sock");
  EXPECT_EQ(a.kind, Address::Kind::kUnix);
  EXPECT_EQ(a.path, "/run/fc.sock");
  EXPECT_EQ(a.to_string(), "unix:/run/fc.sock");

  a = parse_address("/tmp/x.sock");
  EXPECT_EQ(a.kind, Address::Kind::kUnix);
  EXPECT_EQ(a.to_string(), "unix:/tmp/x.sock");

  a = parse_address("127.0.0.1:9100");
  EXPECT_EQ(a.kind, Address::Kind::kTcp);
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 9100);
  EXPECT_EQ(a.to_string(), "127.0.0.1:9100");

  a = parse_address("[::1]:9100");
  EXPECT_EQ(a.kind, Address::Kind::kTcp);
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 9100);
  EXPECT_EQ(a.to_string(), "[::1]:9100");

  a = parse_address("localhost:9100");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.to_string(), "127.0.0.1:9100");

  EXPECT_EQ(parse_address("0.0.0.0:65535").port, 65535);
  EXPECT_EQ(parse_address("127.0.0.1:0").port, 0);  // any free port (tests)
  EXPECT_EQ(parse_address("unix:/" + std::string(106, 'x')).path.size(), 107u);
}

TEST(ParseAddress, RejectsWhatItCannotUseWithoutDns) {
  for (const std::string& bad :
       {std::string(""), std::string("unix:"), std::string("unix:relative.sock"), std::string("fc.sock"),
        std::string("example.com:80"), std::string("127.0.0.1"), std::string("127.0.0.1:"),
        std::string("127.0.0.1:65536"), std::string("127.0.0.1:-1"), std::string("127.0.0.1:80x"),
        std::string("::1:9100"), std::string("[::1]"), std::string("[::1:9100"), std::string("[127.0.0.1]:80"),
        std::string("256.0.0.1:80"), std::string("unix:/" + std::string(107, 'x'))}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(parse_address(bad), std::invalid_argument);
  }
}

TEST(ConfigNames, RuntimeAndTypeToString) {
  EXPECT_STREQ(to_string(Runtime::kCustom), "custom");
  EXPECT_STREQ(to_string(Runtime::kPython3), "python3");
  EXPECT_STREQ(to_string(Runtime::kNodejs), "nodejs");
  EXPECT_STREQ(to_string(FunctionType::kHttp), "http");
  EXPECT_STREQ(to_string(FunctionType::kEvent), "event");
}

TEST(FunctionDigest, IsStableAndIgnoresOnlyTheLine) {
  FunctionConfig base;
  base.name = "hello";
  base.code_uri = "/srv/hello";
  base.handler = "index.handler";
  const std::string digest = base.digest();
  EXPECT_EQ(digest.size(), 16u);
  EXPECT_EQ(FunctionConfig(base).digest(), digest);

  FunctionConfig moved = base;
  moved.line = 42;
  EXPECT_EQ(moved.digest(), digest);

  std::vector<std::pair<const char*, std::function<void(FunctionConfig&)>>> changes = {
      {"name", [](FunctionConfig& f) { f.name = "hello2"; }},
      {"runtime", [](FunctionConfig& f) { f.runtime = Runtime::kPython3; }},
      {"type", [](FunctionConfig& f) { f.type = FunctionType::kEvent; }},
      {"code_uri", [](FunctionConfig& f) { f.code_uri = "/srv/other"; }},
      {"handler", [](FunctionConfig& f) { f.handler = "main.handler"; }},
      {"initializer", [](FunctionConfig& f) { f.initializer = "index.init"; }},
      {"initialization_timeout_s", [](FunctionConfig& f) { f.initialization_timeout_s = 10.5; }},
      {"timeout_s", [](FunctionConfig& f) { f.timeout_s = 61; }},
      {"memory_size_mb", [](FunctionConfig& f) { f.memory_size_mb = 1024; }},
      {"instance_concurrency", [](FunctionConfig& f) { f.instance_concurrency = 2; }},
      {"environment", [](FunctionConfig& f) { f.environment.emplace_back("A", "1"); }},
      {"command", [](FunctionConfig& f) { f.command = {"python3"}; }},
      {"args", [](FunctionConfig& f) { f.args = {"app.py"}; }},
      {"ca_port", [](FunctionConfig& f) { f.ca_port = 9001; }},
      {"ca_port_set", [](FunctionConfig& f) { f.ca_port_set = true; }},
      {"interpreter", [](FunctionConfig& f) { f.interpreter = "/usr/bin/python3"; }},
      {"pre_stop", [](FunctionConfig& f) { f.pre_stop = PreStopConfig{"h", 3}; }},
      {"min_instances", [](FunctionConfig& f) { f.min_instances = 1; }},
      {"max_instances", [](FunctionConfig& f) { f.max_instances = 11; }},
      {"idle_timeout_s", [](FunctionConfig& f) { f.idle_timeout_s = 301; }},
      {"max_queue_size", [](FunctionConfig& f) { f.max_queue_size = 101; }},
      {"max_queue_time_s", [](FunctionConfig& f) { f.max_queue_time_s = 10.25; }},
  };
  for (auto& [field, change] : changes) {
    FunctionConfig changed = base;
    change(changed);
    EXPECT_NE(changed.digest(), digest) << field;
  }

  // Values that only move between neighbouring fields still differ.
  FunctionConfig a = base, b = base;
  a.command = {"python3", "app.py"};
  b.command = {"python3"};
  b.args = {"app.py"};
  EXPECT_NE(a.digest(), b.digest());
  a = base;
  b = base;
  a.environment = {{"AB", "C"}};
  b.environment = {{"A", "BC"}};
  EXPECT_NE(a.digest(), b.digest());
  a = base;
  b = base;
  a.pre_stop = PreStopConfig{"h", 3};
  b.pre_stop = PreStopConfig{"h", 4};
  EXPECT_NE(a.digest(), b.digest());
}

TEST_F(ConfigTest, DigestOfAReloadedUnchangedFileIsEqual) {
  const std::string text = with_function_keys("    timeout: 30\n    environmentVariables: { A: 1 }");
  std::string first = load(text).functions[0].digest();
  EXPECT_EQ(load("# a comment moves every line\n\n" + text).functions[0].digest(), first);
  EXPECT_NE(load(with_function_keys("    timeout: 31\n    environmentVariables: { A: 1 }")).functions[0].digest(),
            first);
}

}  // namespace
}  // namespace fc

namespace fc {
namespace {

TEST_F(ConfigTest, DefaultCommandIsBootstrapInCodeUriWithOrWithoutAShebang) {
  const std::string custom = "functions:\n  web:\n    runtime: custom\n    codeUri: fn\n";
  // No #! line: execvp runs it with /bin/sh, so it is fine as long as it is executable.
  write_program("bootstrap", "exec /usr/bin/python3 -m http.server\n", fs::perms::owner_all);
  RunnerConfig config = load(custom);
  EXPECT_TRUE(config.functions[0].command.empty());  // runtime_command starts ./bootstrap
  EXPECT_TRUE(config.functions[0].problems.empty()) << config.functions[0].problems[0].what();
  config = load(custom + "    customRuntimeConfig: { args: [--verbose] }\n");
  EXPECT_TRUE(config.functions[0].problems.empty());
  EXPECT_EQ(config.functions[0].args, std::vector<std::string>{"--verbose"});
}

TEST_F(ConfigTest, BootstrapWithoutItsExecuteBitNamesTheFileAndTheFix) {
  write_program("bootstrap", "#!/bin/sh\nexec true\n", fs::perms::owner_read | fs::perms::owner_write);
  const std::string file = (dir_ / "fn" / "bootstrap").string();
  expect_problem("functions:\n  web:\n    runtime: custom.debian12\n    codeUri: fn\n", 2,
                 "functions.web.customRuntimeConfig.command", "is not executable (fix: chmod +x " + file + ")");
  expect_problem("functions:\n  web:\n    runtime: custom\n    codeUri: fn\n"
                 "    customRuntimeConfig:\n      command: [./bootstrap]\n", 6,
                 "functions.web.customRuntimeConfig.command", "chmod +x " + file);
}

TEST_F(ConfigTest, CommandMustBeFoundInPathOrAtItsPath) {
  const std::string custom = "functions:\n  web:\n    runtime: custom\n    codeUri: fn\n";
  expect_problem(custom + "    customRuntimeConfig: { command: [no-such-program-fc] }\n", 5,
                 "functions.web.customRuntimeConfig.command", "command \"no-such-program-fc\" not found in PATH");
  // The function's own PATH is the one its instance searches.
  write_program("tool", "#!/bin/sh\n", fs::perms::owner_all);
  expect_problem(custom + "    customRuntimeConfig: { command: [tool] }\n", 5,
                 "functions.web.customRuntimeConfig.command", "not found in PATH");
  RunnerConfig config = load(custom + "    customRuntimeConfig: { command: [tool] }\n"
                             "    environmentVariables: { PATH: " + (dir_ / "fn").string() + " }\n");
  EXPECT_TRUE(config.functions[0].problems.empty());
  expect_problem(custom + "    customRuntimeConfig: { command: [/nonexistent/bin/app] }\n", 5,
                 "functions.web.customRuntimeConfig.command", "/nonexistent/bin/app does not exist");
  expect_problem(custom + "    customRuntimeConfig: { command: [/tmp] }\n", 5,
                 "functions.web.customRuntimeConfig.command", "/tmp is a directory");
  EXPECT_TRUE(load(custom + "    customRuntimeConfig: { command: [sh, -c, x] }\n").functions[0].problems.empty());
  expect_problem("functions:\n  py:\n    runtime: python3\n    codeUri: fn\n    interpreter: /usr/bin/no-python\n",
                 5, "functions.py.interpreter", "/usr/bin/no-python does not exist");
}

TEST_F(ConfigTest, EachUnservableFunctionHasItsOwnProblemAndTheOthersNone) {
  RunnerConfig config = load(
      "functions:\n"
      "  good:\n"
      "    runtime: custom\n"
      "    codeUri: fn\n"
      "    customRuntimeConfig: { command: [sh] }\n"
      "  missing:\n"
      "    runtime: custom\n"
      "    codeUri: fn\n"
      "    customRuntimeConfig: { command: [no-such-program-fc] }\n"
      "  java:\n"
      "    runtime: java8\n"
      "    codeUri: nowhere\n");
  ASSERT_EQ(config.functions.size(), 3u);
  EXPECT_TRUE(config.functions[0].problems.empty());
  ASSERT_EQ(config.functions[1].problems.size(), 1u);
  EXPECT_EQ(config.functions[1].problems[0].line(), 9);
  ASSERT_EQ(config.functions[2].problems.size(), 2u);  // the runtime and the codeUri
  EXPECT_EQ(config.functions[2].problems[0].key(), "functions.java.runtime");
  EXPECT_EQ(config.functions[2].problems[1].key(), "functions.java.codeUri");
  EXPECT_EQ(config.problems().size(), 3u);
}

}  // namespace
}  // namespace fc

// ---- isolation keys (issue 9) -----------------------------------------------------------------

namespace fc {
namespace {

TEST_F(ConfigTest, IsolationDefaults) {
  RunnerConfig config = load(with_function_keys(""));
  const FunctionConfig& fn = config.functions.at(0);
  EXPECT_EQ(config.instance_uid_first, 61184);
  EXPECT_EQ(config.instance_uid_last, 65519);
  EXPECT_EQ(config.listen_gid, -1);
  // A uid of its own comes at the first instance start (UidPool), not here.
  EXPECT_EQ(fn.uid, -1);
  EXPECT_EQ(fn.gid, -1);
  EXPECT_EQ(fn.max_processes, 1024);
  EXPECT_EQ(fn.max_open_files, 1024);
  EXPECT_EQ(fn.tmp_size_mb, 512);
}

TEST_F(ConfigTest, MoreFunctionsThanInstanceUidsLoad) {
  // Uids are handed out per running function (instance_uids_test.cc): a
  // range of one uid takes any number of functions.
  RunnerConfig config = load("instanceUids: 61184-61184\nfunctions:\n"
                             "  a: { runtime: python3, codeUri: ./fn }\n"
                             "  b: { runtime: python3, codeUri: ./fn }\n"
                             "  c: { runtime: python3, codeUri: ./fn, user: nobody }\n");
  EXPECT_TRUE(config.problems().empty()) << config.problems()[0]->what();
  EXPECT_EQ(config.functions.size(), 3u);
}

TEST_F(ConfigTest, ReservedInstanceUidsAreAccountsAndNamedUsersInTheRange) {
  const passwd* nobody = getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  int account = static_cast<int>(nobody->pw_uid);
  int named = account + 1;  // a number no account has: named as user:, kept out too
  ASSERT_EQ(getpwuid(static_cast<uid_t>(named)), nullptr);
  std::string range = std::to_string(account - 1) + "-" + std::to_string(named + 1);
  RunnerConfig config = load("instanceUids: " + range + "\n" +
                             with_function_keys("    user: \"" + std::to_string(named) + "\"\n"));
  EXPECT_EQ(config.reserved_instance_uids, (std::vector<int>{account, named}));
}

TEST_F(ConfigTest, IsolationKeysAtTheirLimits) {
  RunnerConfig config = load(with_function_keys("    maxProcesses: 8\n    maxOpenFiles: 16\n    tmpSize: 1\n"
                                                "    user: root\n    readWritePaths: [./fn, /var/tmp]\n"));
  const FunctionConfig& fn = config.functions.at(0);
  EXPECT_EQ(fn.max_processes, 8);
  EXPECT_EQ(fn.max_open_files, 16);
  EXPECT_EQ(fn.tmp_size_mb, 1);
  EXPECT_EQ(fn.uid, 0);
  EXPECT_EQ(fn.gid, 0);
  ASSERT_EQ(fn.read_write_paths.size(), 2u);
  EXPECT_EQ(fn.read_write_paths[0], (dir_ / "fn").string());
  expect_error(with_function_keys("    maxProcesses: 7"), 5, "functions.hello.maxProcesses", "between 8 and");
  expect_error(with_function_keys("    maxOpenFiles: 15"), 5, "functions.hello.maxOpenFiles", "between 16 and");
  expect_error(with_function_keys("    tmpSize: 0"), 5, "functions.hello.tmpSize", "between 1 and");
  expect_error(with_function_keys("    readWritePaths: [/]"), 5, "functions.hello.readWritePaths", "must not be /");
  expect_error("instanceUids: 999-2000\n" + with_function_keys(""), 1, "instanceUids", "1000 <= FIRST <= LAST");
  expect_error("instanceUids: 70000-60000\n" + with_function_keys(""), 1, "instanceUids", "FIRST-LAST");
  expect_error("listenGroup: no-such-group-fc9\n" + with_function_keys(""), 1, "listenGroup", "no such group");
  expect_problem(with_function_keys("    user: no-such-user-fc9"), 5, "functions.hello.user", "no such user");
}

TEST_F(ConfigTest, ListenGroupAndNamedGroup) {
  RunnerConfig config = load("listenGroup: \"0\"\n" + with_function_keys("    user: nobody\n    group: \"0\"\n"));
  EXPECT_EQ(config.listen_gid, 0);
  EXPECT_EQ(config.functions.at(0).gid, 0);
  EXPECT_NE(config.functions.at(0).uid, 0);
}

}  // namespace
}  // namespace fc
