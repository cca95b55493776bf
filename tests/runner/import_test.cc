// fc-runner import (runner/import.h): s.yaml shapes to a runner config that
// the runner's own parser reads back, and every piece left out is noted.

#include "import.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "config.h"

namespace fc {
namespace {

namespace fs = std::filesystem;

class ImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "fc-import-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    fs::create_directories(dir_ / "code");
    path_ = (dir_ / "s.yaml").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Imports `text` and parses the result as the runner would.
  RunnerConfig import_and_parse(const std::string& text) {
    result_ = import_s_yaml(text, path_, ImportOptions{});
    return parse_config(result_.runner_config, (dir_ / "runner.yaml").string());
  }
  bool noted(const std::string& part) const {
    for (const std::string& note : result_.notes) {
      if (note.find(part) != std::string::npos) return true;
    }
    return false;
  }
  std::string all_notes() const {
    std::string out;
    for (const std::string& note : result_.notes) out += note + "\n";
    return out;
  }

  fs::path dir_;
  std::string path_;
  ImportResult result_;
};

TEST_F(ImportTest, Fc2VarsNestedObjectsAndEnvAreResolved) {
  setenv("FC_IMPORT_TEST_A", "alpha", 1);
  setenv("FC_IMPORT_TEST_B", "beta", 1);
  RunnerConfig config = import_and_parse(R"(edition: 1.0.0
vars:
  names: { fn: from-vars }
  service:
    name: svc
    role: some-role
  timeout: 12
services:
  one:
    component: fc
    props:
      service: ${vars.service}
      function:
        name: ${vars.names.fn}
        runtime: custom
        codeUri: code
        timeout: ${vars.timeout}
        environmentVariables:
          A: ${env(FC_IMPORT_TEST_A)}
          B: x-${env.FC_IMPORT_TEST_B}-${env('FC_IMPORT_TEST_A')}
          C: ${resources.other.output}
        customRuntimeConfig: { command: [sh, -c, 'exec true'] }
)");
  ASSERT_EQ(config.functions.size(), 1u);
  const FunctionConfig& fn = config.functions[0];
  EXPECT_EQ(fn.name, "from-vars");
  EXPECT_EQ(fn.timeout_s, 12);
  EXPECT_EQ(fn.code_uri, (dir_ / "code").string());  // relative to the s.yaml
  EXPECT_EQ(fn.type, FunctionType::kHttp);            // no trigger: http, noted
  using Env = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(fn.environment, (Env{{"A", "alpha"}, {"B", "x-beta-alpha"}, {"C", "${resources.other.output}"}}));
  EXPECT_TRUE(noted("${resources.other.output}: not supported")) << all_notes();
  EXPECT_TRUE(noted("props.service: not carried over (no meaning on one machine, or not supported): role"))
      << all_notes();
  EXPECT_TRUE(noted("no trigger: imported as type http")) << all_notes();
  EXPECT_EQ(result_.functions, std::vector<std::string>{"from-vars"});
  EXPECT_NE(result_.nginx_locations.find("location /from-vars/ {\n    rewrite ^/from-vars(/.*)$ $1 break;\n"
                                         "    fc_function from-vars;\n}\n"),
            std::string::npos)
      << result_.nginx_locations;
}

TEST_F(ImportTest, Fc2TriggersDecideTheTypeAndFcCodePathsBecomeLocal) {
  RunnerConfig config = import_and_parse(R"(edition: 1.0.0
services:
  http-one:
    component: devsapp/fc@0.1.0
    props:
      function: { name: web, runtime: custom.debian10, codeUri: ./code, caPort: 9001,
                  customRuntimeConfig: { command: [/code/main], args: [--x] } }
      triggers: [{ name: t, type: http, config: { authType: function } }]
  event-one:
    component: fc
    props:
      function: { name: worker, runtime: custom, codeUri: { src: ./code }, customRuntimeConfig: { command: [sh] } }
      triggers: [{ name: t, type: oss }]
  domain:
    component: fc-domain
    props: {}
)");
  ASSERT_EQ(config.functions.size(), 2u);
  EXPECT_EQ(config.functions[0].type, FunctionType::kHttp);
  EXPECT_EQ(config.functions[0].command, std::vector<std::string>{"./main"});
  EXPECT_EQ(config.functions[0].ca_port, 9001);
  EXPECT_EQ(config.functions[1].type, FunctionType::kEvent);
  EXPECT_EQ(config.functions[1].code_uri, (dir_ / "code").string());
  EXPECT_TRUE(noted("authType function is not enforced")) << all_notes();
  EXPECT_TRUE(noted("oss trigger is not created here")) << all_notes();
  EXPECT_TRUE(noted("component fc-domain is not a function")) << all_notes();
  EXPECT_TRUE(noted("/code/main is FC's code mount; written as ./main")) << all_notes();
}

TEST_F(ImportTest, Fc3NamesMapToTheRunnerKeys) {
  RunnerConfig config = import_and_parse(R"(edition: 3.0.0
resources:
  r:
    component: fc3
    props:
      functionName: api
      runtime: custom.debian12
      code: )" + (dir_ / "code").string() + R"(
      instanceConcurrency: 5
      gpuConfig: { gpuMemorySize: 1 }
      customRuntimeConfig:
        command: [sh]
        args: [-c, 'exec true']
        port: 9123
        healthCheckConfig: { httpGetUrl: /ready }
      instanceLifecycleConfig:
        initializer: { handler: true, timeout: 7 }
        preStop: { handler: stop, timeout: 2 }
      triggers:
        - { triggerName: h, triggerType: http, triggerConfig: { authType: anonymous } }
)");
  ASSERT_EQ(config.functions.size(), 1u);
  const FunctionConfig& fn = config.functions[0];
  EXPECT_EQ(fn.name, "api");
  EXPECT_EQ(fn.ca_port, 9123);
  EXPECT_TRUE(fn.ca_port_set);
  EXPECT_EQ(fn.instance_concurrency, 5);
  EXPECT_EQ(fn.args, (std::vector<std::string>{"-c", "exec true"}));
  EXPECT_EQ(fn.initializer, "true");
  EXPECT_EQ(fn.initialization_timeout_s, 7);
  ASSERT_TRUE(fn.pre_stop.has_value());
  EXPECT_EQ(fn.pre_stop->handler, "stop");
  EXPECT_TRUE(noted("customRuntimeConfig: not carried over (no meaning on one machine, or not supported): "
                    "healthCheckConfig"))
      << all_notes();
  EXPECT_TRUE(noted("resources.r.props: not carried over (no meaning on one machine, or not supported): gpuConfig"))
      << all_notes();
}

TEST_F(ImportTest, PlaceholdersAreNotedAndAnUnusableNameFallsBackToTheKey) {
  RunnerConfig config = import_and_parse(R"(edition: 3.0.0
resources:
  my_app:
    component: fc3
    props:
      functionName: "{{ functionName }}"
      runtime: custom
      code: ./code
      customRuntimeConfig: { command: [sh] }
)");
  ASSERT_EQ(config.functions.size(), 1u);
  EXPECT_EQ(config.functions[0].name, "my_app");
  EXPECT_TRUE(noted("s.yaml:6: template placeholder {{ functionName }}")) << all_notes();
  EXPECT_TRUE(noted("unusable: the function is named my_app")) << all_notes();
}

TEST_F(ImportTest, AVarLoopAndANonSYamlAreErrors) {
  EXPECT_THROW(import_s_yaml("vars:\n  a: ${vars.a}\nservices:\n  s:\n    component: fc\n    props:\n"
                             "      function: { name: f, timeout: '${vars.a}' }\n",
                             path_, ImportOptions{}),
               ImportError);
  EXPECT_THROW(import_s_yaml("- a\n", path_, ImportOptions{}), ImportError);
  try {
    import_s_yaml("edition: 1.0.0\nservices: [\n", path_, ImportOptions{});
    ADD_FAILURE() << "no error";
  } catch (const ImportError& e) {
    EXPECT_EQ(std::string(e.what()).substr(0, path_.size() + 1), path_ + ":");
  }
}

}  // namespace
}  // namespace fc
