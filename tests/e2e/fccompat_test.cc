// Unchanged FC apps (issue 8): FC's default ./bootstrap command, one bad
// function that does not take the others down, and `fc-runner import` of an
// FC 2.0 and an FC 3.0 s.yaml served through real nginx and runner.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>

#include "harness.h"

namespace fc::e2e {
namespace {

// A stdlib HTTP server that answers "<greeting> <path> pid=<pid>" on the
// port given as argv[1], or $FC_SERVER_PORT.
constexpr const char* kStdlibApp = R"(import http.server, os, sys
port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ["FC_SERVER_PORT"])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("%s %s pid=%d" % (os.environ.get("GREETING", "hello"), self.path, os.getpid())).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_POST = do_GET
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
)";

class FcCompatTest : public GatewayFixture {
 protected:
  std::string make_code_dir(const std::string& name) {
    std::string dir = gw_.path(name);
    std::filesystem::create_directories(dir);
    return dir;
  }
};

// Acceptance 2: gunicorn started by a bootstrap with no #! line and no
// customRuntimeConfig (execvp runs it with /bin/sh).
TEST_F(FcCompatTest, GunicornStartedByABootstrapWithoutShebangOrCustomRuntimeConfig) {
  std::string code = make_code_dir("gunicorn-app");
  write_file(code + "/app.py",
             "def app(environ, start_response):\n"
             "    body = ('gunicorn ' + environ['PATH_INFO']).encode()\n"
             "    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])\n"
             "    return [body]\n");
  write_file(code + "/bootstrap",
             "# no #! line: /bin/sh runs this (FC's default command is ./bootstrap)\n"
             "exec /usr/bin/python3 -m gunicorn --bind 127.0.0.1:$FC_SERVER_PORT --workers 1 app:app\n");
  chmod((code + "/bootstrap").c_str(), 0755);
  ASSERT_NE(read_file(code + "/bootstrap").substr(0, 2), "#!");
  gw_.add_functions_yaml("  gunicorn:\n    runtime: custom.debian10\n    codeUri: " + code + "\n");
  gw_.add_server_conf("    location /gunicorn/ { rewrite ^/gunicorn(/.*)$ $1 break; fc_function gunicorn; }\n");
  gw_.write_runner_config();
  auto [rc, out] = run(runner_path() + " --config " + gw_.runner_config_path() + " --check");
  EXPECT_EQ(rc, 0) << out;
  gw_.start();
  HttpResponse r = http_get(gw_.url("/gunicorn/hi"));
  EXPECT_EQ(r.status, 200) << r.body << r.error;
  EXPECT_EQ(r.body, "gunicorn /hi");
}

// Acceptance 3 (with two bad functions): the healthy one serves, each bad
// one answers 503 InitializationFailed with its reason, --check names each.
TEST_F(FcCompatTest, OneBadFunctionDoesNotTakeTheOthersDown) {
  std::string good = make_code_dir("good");
  write_file(good + "/app.py", kStdlibApp);
  std::string noexec = make_code_dir("noexec");
  write_file(noexec + "/bootstrap", "#!/bin/sh\nexec true\n");
  chmod((noexec + "/bootstrap").c_str(), 0644);
  // Lines: 2 functions:, 3 good, 7 missing (8 runtime, 9 codeUri, 10 command), 11 noexec.
  gw_.add_functions_yaml(
      "  good:\n"
      "    runtime: custom\n"
      "    codeUri: " + good + "\n"
      "    customRuntimeConfig: { command: [/usr/bin/python3], args: [app.py] }\n"
      "  missing:\n"
      "    runtime: custom\n"
      "    codeUri: " + good + "\n"
      "    customRuntimeConfig: { command: [no-such-command-fc8] }\n"
      "  noexec:\n"
      "    runtime: custom\n"
      "    codeUri: " + noexec + "\n");
  for (const char* name : {"good", "missing", "noexec"}) {
    gw_.add_server_conf(std::string("    location /") + name + "/ { rewrite ^/" + name + "(/.*)$ $1 break; fc_function " +
                        name + "; }\n");
  }
  gw_.write_runner_config();
  const std::string file = gw_.runner_config_path();
  auto [rc, out] = run(runner_path() + " --config " + file + " --check");
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find(file + ":10: functions.missing.customRuntimeConfig.command: command \"no-such-command-fc8\" "
                            "not found in PATH"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(file + ":11: functions.noexec.customRuntimeConfig.command: \"./bootstrap\" (" + noexec +
                     "/bootstrap) is not executable (fix: chmod +x " + noexec + "/bootstrap)"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find(": ok"), std::string::npos) << out;
  EXPECT_EQ(out.find("functions.good"), std::string::npos) << out;

  gw_.start();
  HttpResponse ok = http_get(gw_.url("/good/x"));
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.body.substr(0, 9), "hello /x ");
  HttpResponse missing = http_get(gw_.url("/missing/x"));
  EXPECT_EQ(missing.status, 503);
  EXPECT_EQ(missing.header("x-fc-error-type"), "InitializationFailed");
  EXPECT_NE(missing.body.find("no-such-command-fc8"), std::string::npos) << missing.body;
  HttpResponse noexec_r = http_get(gw_.url("/noexec/x"));
  EXPECT_EQ(noexec_r.status, 503);
  EXPECT_NE(noexec_r.body.find("chmod +x"), std::string::npos) << noexec_r.body;
  // Both are reported at start too, and the good one still serves after.
  EXPECT_NE(gw_.runner_log().find("function missing cannot be served"), std::string::npos);
  EXPECT_NE(gw_.runner_log().find("function noexec cannot be served"), std::string::npos);
  EXPECT_EQ(http_get(gw_.url("/good/y")).status, 200);
}

// FC keys with no meaning here: one warning per function, at --check and start.
TEST_F(FcCompatTest, IgnoredFcKeysWarnOncePerFunction) {
  std::string good = make_code_dir("good");
  write_file(good + "/app.py", kStdlibApp);
  gw_.add_functions_yaml("  good:\n    runtime: custom.debian11\n    codeUri: " + good +
                         "\n    customRuntimeConfig: { command: [/usr/bin/python3], args: [app.py] }\n"
                         "    vpcConfig: { vpcId: v }\n    role: r\n    layers: [l]\n");
  gw_.add_server_conf("    location /good/ { rewrite ^/good(/.*)$ $1 break; fc_function good; }\n");
  gw_.write_runner_config();
  auto [rc, out] = run(runner_path() + " --config " + gw_.runner_config_path() + " --check");
  EXPECT_EQ(rc, 0) << out;
  const std::string warning = "functions.good: keys vpcConfig, role, layers accepted but ignored";
  EXPECT_NE(out.find("warning: " + gw_.runner_config_path() + ":3: " + warning), std::string::npos) << out;
  EXPECT_EQ(out.find(warning), out.rfind(warning)) << out;
  gw_.start();
  EXPECT_EQ(http_get(gw_.url("/good/")).status, 200);
  std::string log = gw_.runner_log();
  EXPECT_NE(log.find(warning), std::string::npos) << log;
  EXPECT_EQ(log.find(warning), log.rfind(warning)) << log;
}

// Acceptance 4: import, --check, serve with the printed locations.
class ImportTest : public FcCompatTest {
 protected:
  // Imports `s_yaml` (written to <dir>/project/s.yaml), checks the result,
  // and hands its functions and locations to the gateway.
  void import_and_start(const std::string& s_yaml, const std::vector<std::string>& env = {}) {
    std::string project = make_code_dir("project");
    write_file(project + "/s.yaml", s_yaml);
    std::string env_prefix;
    for (const auto& e : env) env_prefix += e + " ";
    auto [rc, out] = run("cd " + gw_.dir() + " && " + env_prefix + runner_path() + " import project/s.yaml --listen unix:" +
                         gw_.runner_socket() + " --runner-config imported.yaml --nginx-locations locations.conf");
    import_output_ = out;
    ASSERT_EQ(rc, 0) << out;
    auto [check_rc, check_out] = run(runner_path() + " --config " + gw_.path("imported.yaml") + " --check");
    ASSERT_EQ(check_rc, 0) << check_out << "\n" << read_file(gw_.path("imported.yaml"));
    std::string config = read_file(gw_.path("imported.yaml"));
    size_t at = config.find("\nfunctions:\n");
    ASSERT_NE(at, std::string::npos) << config;
    gw_.add_functions_yaml(config.substr(at + 12));
    gw_.add_server_conf(read_file(gw_.path("locations.conf")));
    gw_.start();
  }
  std::string import_output_;
};

TEST_F(ImportTest, Fc2SYamlWithVarsAndAnHttpTriggerServes) {
  std::string code = make_code_dir("project/code");
  write_file(code + "/server.py", kStdlibApp);
  import_and_start(R"(edition: 1.0.0
name: fc2-app
access: "{{ access }}"
vars:
  region: cn-hangzhou
  service:
    name: web-service
    description: demo
    logConfig: auto
  greeting: bonjour
services:
  web:
    component: devsapp/fc
    actions:
      pre-deploy:
        - run: echo build
          path: ./code
    props:
      region: ${vars.region}
      service: ${vars.service}
      function:
        name: hello-web
        runtime: custom.debian10
        codeUri: ./code
        timeout: 30
        memorySize: 256
        vpcConfig: auto
        environmentVariables:
          GREETING: ${vars.greeting}-${env(FC8_WHO)}
        customRuntimeConfig:
          command:
            - /usr/bin/python3
          args:
            - /code/server.py
      triggers:
        - name: http-trigger
          type: http
          config:
            authType: anonymous
            methods: [GET, POST]
      customDomains:
        - domainName: auto
)",
                   {"FC8_WHO=world"});
  HttpResponse r = http_get(gw_.url("/hello-web/some/path?q=1"));
  EXPECT_EQ(r.status, 200) << r.body << r.error;
  EXPECT_EQ(r.body.substr(0, r.body.find(" pid=")), "bonjour-world /some/path?q=1");
  // What was not carried over is listed, with the s.yaml's file:line.
  for (const char* piece : {"access (cloud credentials)", "actions (build hooks", "customDomains", "vpcConfig",
                            "logConfig", "/code/server.py is FC's code mount"}) {
    EXPECT_NE(import_output_.find(piece), std::string::npos) << piece << "\n" << import_output_;
  }
  EXPECT_NE(import_output_.find("project/s.yaml:15: services.web.actions"), std::string::npos) << import_output_;
  std::string config = read_file(gw_.path("imported.yaml"));
  EXPECT_NE(config.find("type: http"), std::string::npos) << config;
  EXPECT_NE(config.find("codeUri: " + code + "\n"), std::string::npos) << config;
}

TEST_F(ImportTest, Fc3SYamlWithCaPortServes) {
  std::string code = make_code_dir("project/src");
  write_file(code + "/server.py", kStdlibApp);
  int port = free_port();
  import_and_start(R"(edition: 3.0.0
name: fc3-app
vars:
  region: cn-hangzhou
  port: )" + std::to_string(port) + R"(
resources:
  api:
    component: fc3
    props:
      region: ${vars.region}
      functionName: fc3-api
      runtime: custom.debian12
      code: ./src
      handler: index.handler
      cpu: 0.35
      memorySize: 512
      timeout: 10
      environmentVariables:
        GREETING: ${env.FC8_GREETING}
      customRuntimeConfig:
        command: [/usr/bin/python3, server.py]
        args: ['${vars.port}']
        port: ${vars.port}
      triggers:
        - triggerName: httpTrigger
          triggerType: http
          triggerConfig:
            authType: anonymous
            methods: [GET]
  timer:
    component: fc3
    props:
      functionName: fc3-timer
      runtime: custom
      code: ./src
      customRuntimeConfig:
        command: [/usr/bin/python3, server.py]
      triggers:
        - triggerName: every-minute
          triggerType: timer
          triggerConfig: { cronExpression: '0 * * * * *' }
)",
                   {"FC8_GREETING=hola"});
  HttpResponse r = http_get(gw_.url("/fc3-api/x"));
  EXPECT_EQ(r.status, 200) << r.body << r.error;
  EXPECT_EQ(r.body.substr(0, r.body.find(" pid=")), "hola /x");
  HttpResponse event = http_get(gw_.url("/fc3-timer/"));
  // An event function: the runner sends POST /invoke, the app answers its path.
  EXPECT_EQ(event.status, 200) << event.body << event.error;
  EXPECT_EQ(event.body.substr(0, event.body.find(" pid=")), "hello /invoke");
  std::string config = read_file(gw_.path("imported.yaml"));
  EXPECT_NE(config.find("caPort: " + std::to_string(port)), std::string::npos) << config;
  EXPECT_NE(config.find("type: event"), std::string::npos) << config;
  EXPECT_NE(import_output_.find("timer trigger is not created here"), std::string::npos) << import_output_;
  EXPECT_NE(import_output_.find("not carried over (no meaning on one machine, or not supported): cpu"),
            std::string::npos)
      << import_output_;
}

TEST(ImportCli, ABrokenSYamlIsAnErrorWithFileAndLine) {
  TempDir tmp;
  write_file(tmp.path() + "/s.yaml", "edition: 3.0.0\nresources:\n  a: [\n");
  auto [rc, out] = run(runner_path() + " import " + tmp.path() + "/s.yaml");
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find(tmp.path() + "/s.yaml:"), std::string::npos) << out;
  write_file(tmp.path() + "/s.yaml", "edition: 3.0.0\nname: x\n");
  auto [rc2, out2] = run(runner_path() + " import " + tmp.path() + "/s.yaml");
  EXPECT_EQ(rc2, 1);
  EXPECT_NE(out2.find("no services: (FC 2.0) or resources: (FC 3.0)"), std::string::npos) << out2;
}

}  // namespace
}  // namespace fc::e2e
