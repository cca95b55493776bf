// Unchanged FC apps (issue 8): FC's default ./bootstrap command, one bad
// function that does not take the others down, and `fc-runner import` of an
// FC 2.0 and an FC 3.0 s.yaml served through real nginx and runner.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "harness.h"
#include "nodejs_modules.h"

namespace fc::e2e {
namespace {

using namespace std::chrono_literals;

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

// Three instances of an app on FC's default port; its first start is done
// twice (the second in its own namespace), which on a loaded machine takes
// Django several seconds each: the requests may wait that long.
constexpr const char* kSlowStart = "    maxInstances: 3\n    initializationTimeout: 30\n    maxQueueTime: 60\n";

class FcCompatTest : public GatewayFixture {
 protected:
  std::string make_code_dir(const std::string& name) {
    std::string dir = gw_.path(name);
    std::filesystem::create_directories(dir);
    return dir;
  }

  // FC's default port (issue 8): the function `name` (its app answers
  // "... pid=P netns=N" and /slow after 3 s), with no caPort, maxInstances
  // 3, takes 3 concurrent slow requests on 3 instances, each in its own
  // network namespace (not the runner's), and the runner said why once.
  // `app_is_the_process`: the answering process is the one the runner spawned
  // (Go, node), whose pid is its host pid in its pid namespace too, so three
  // instances are three pids; a pre-fork worker (gunicorn, Django's reloader
  // child) has a pid of its own namespace, which may repeat.
  void expect_three_instances_in_own_namespaces(const std::string& name, bool app_is_the_process) {
    std::vector<std::future<HttpResponse>> calls;
    for (int i = 0; i < 3; i++) calls.push_back(get_async("/" + name + "/slow"));
    std::set<std::string> pids, namespaces;
    const std::string host_ns = std::filesystem::read_symlink("/proc/self/ns/net").string();
    for (auto& c : calls) {
      HttpResponse r = c.get();
      ASSERT_EQ(r.status, 200) << r.body << r.error;
      pids.insert(field(r.body, "pid"));
      namespaces.insert(field(r.body, "netns"));
    }
    if (app_is_the_process) {
      EXPECT_EQ(pids.size(), 3u);
    }
    EXPECT_EQ(namespaces.size(), 3u);
    EXPECT_EQ(namespaces.count(host_ns), 0u) << host_ns;
    std::string log = gw_.runner_log();
    const std::string said = "listens on FC's default port 9000 instead of $FC_SERVER_PORT";
    EXPECT_NE(log.find(said), std::string::npos) << log;
    EXPECT_EQ(log.find(said), log.rfind(said)) << log;
  }

  // "pid=12 netns=net:[4026]" -> field(body, "netns") == "net:[4026]".
  static std::string field(const std::string& body, const std::string& name) {
    std::istringstream words(body);
    for (std::string word; words >> word;) {
      if (word.rfind(name + "=", 0) == 0) return word.substr(name.size() + 1);
    }
    return "?";
  }

  void add_location(const std::string& name) {
    gw_.add_server_conf("    location /" + name + "/ { rewrite ^/" + name + "(/.*)$ $1 break; fc_function " + name +
                        "; }\n");
  }
};

// A Go HTTP function as FC's examples write it: ListenAndServe(":9000"),
// no caPort, customRuntimeConfig.command ./main.  Built here with Debian's Go.
TEST_F(FcCompatTest, GoServerOnFcDefaultPortWithoutCaPortScalesInOwnNamespaces) {
  std::string code = make_code_dir("go-app");
  write_file(code + "/main.go", R"(package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(3 * time.Second)
		}
		ns, _ := os.Readlink("/proc/self/ns/net")
		fmt.Fprintf(w, "go %s pid=%d netns=%s", r.URL.Path, os.Getpid(), ns)
	})
	http.ListenAndServe(":9000", nil)
}
)");
  auto [rc, out] = run("cd " + code + " && GO111MODULE=off GOCACHE=" + FC_BUILD_DIR +
                       "/go-cache HOME=" + gw_.dir() + " go build -o main main.go");
  ASSERT_EQ(rc, 0) << out;
  gw_.add_functions_yaml("  go:\n    runtime: custom.debian10\n    codeUri: " + code +
                         "\n    customRuntimeConfig: { command: [./main] }\n" + kSlowStart);
  add_location("go");
  gw_.start();
  HttpResponse r = http_get(gw_.url("/go/hi"));
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  EXPECT_EQ(r.body.substr(0, 6), "go /hi");
  expect_three_instances_in_own_namespaces("go", /*app_is_the_process=*/true);
}

// gunicorn started by FC's bootstrap, binding 0.0.0.0:9000 itself.
TEST_F(FcCompatTest, GunicornBootstrapOnFcDefaultPortScalesInOwnNamespaces) {
  std::string code = make_code_dir("gunicorn9000");
  write_file(code + "/app.py",
             "import os, time\n"
             "def app(environ, start_response):\n"
             "    if environ['PATH_INFO'] == '/slow':\n"
             "        time.sleep(3)\n"
             "    body = ('gunicorn pid=%d netns=%s' % (os.getpid(), os.readlink('/proc/self/ns/net'))).encode()\n"
             "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
             "    return [body]\n");
  write_file(code + "/bootstrap", "#!/bin/bash\nexec /usr/bin/python3 -m gunicorn -b 0.0.0.0:9000 -w 1 app:app\n");
  chmod((code + "/bootstrap").c_str(), 0755);
  gw_.add_functions_yaml("  gunicorn:\n    runtime: custom\n    codeUri: " + code + "\n" + kSlowStart);
  add_location("gunicorn");
  gw_.start();
  expect_three_instances_in_own_namespaces("gunicorn", /*app_is_the_process=*/false);
}

// Django's development server as FC's Django example runs it (with its
// autoreloader: the port belongs to the reloader's child process).
TEST_F(FcCompatTest, DjangoRunserverOnFcDefaultPortScalesInOwnNamespaces) {
  std::string code = make_code_dir("django-app");
  std::filesystem::create_directories(code + "/mysite");
  write_file(code + "/manage.py",
             "import os, sys\n"
             "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n"
             "from django.core.management import execute_from_command_line\n"
             "execute_from_command_line(sys.argv)\n");
  write_file(code + "/mysite/__init__.py", "");
  write_file(code + "/mysite/settings.py",
             "SECRET_KEY = 'fc-e2e'\nDEBUG = False\nALLOWED_HOSTS = ['*']\nROOT_URLCONF = 'mysite.urls'\n"
             "INSTALLED_APPS = []\nDATABASES = {}\nUSE_TZ = True\n");
  write_file(code + "/mysite/urls.py",
             "import os, time\n"
             "from django.http import HttpResponse\n"
             "from django.urls import path\n"
             "def view(request, slow=False):\n"
             "    if slow:\n"
             "        time.sleep(3)\n"
             "    return HttpResponse('django pid=%d netns=%s' % (os.getpid(), os.readlink('/proc/self/ns/net')))\n"
             "urlpatterns = [path('slow', view, {'slow': True}), path('', view)]\n");
  write_file(code + "/bootstrap", "#!/bin/bash\nexec /usr/bin/python3 manage.py runserver 0.0.0.0:9000\n");
  chmod((code + "/bootstrap").c_str(), 0755);
  gw_.add_functions_yaml("  django:\n    runtime: custom.debian11\n    codeUri: " + code +
                         "\n" + kSlowStart);
  add_location("django");
  gw_.start();
  // Cold: the slow requests start the three instances together (a warm
  // first one would drain the queue before Django's slow start ends).
  expect_three_instances_in_own_namespaces("django", /*app_is_the_process=*/false);
  HttpResponse r = http_get(gw_.url("/django/"));
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  EXPECT_EQ(r.body.substr(0, 6), "django");
}

// An Express server hard-coding app.listen(9000), started with node.
TEST_F(FcCompatTest, ExpressServerOnFcDefaultPortScalesInOwnNamespaces) {
  std::string code = make_code_dir("express-app");
  std::filesystem::create_directory_symlink(nodejs_test_modules(), code + "/node_modules");
  write_file(code + "/app.js", R"(const express = require('express');
const fs = require('fs');
const app = express();
const answer = (req, res) => res.send(`express pid=${process.pid} netns=${fs.readlinkSync('/proc/self/ns/net')}`);
app.get('/slow', (req, res) => setTimeout(() => answer(req, res), 3000));
app.get('/', answer);
app.listen(9000, () => console.log('listening on 9000'));
)");
  gw_.add_functions_yaml("  express:\n    runtime: custom.debian12\n    codeUri: " + code +
                         "\n    customRuntimeConfig: { command: [/usr/bin/node], args: [app.js] }\n" +
                         std::string(kSlowStart));
  add_location("express");
  gw_.start();
  expect_three_instances_in_own_namespaces("express", /*app_is_the_process=*/true);
}

// Without the privilege for namespaces: one instance, and the log says why once.
TEST_F(FcCompatTest, FcDefaultPortWithoutPrivilegeRunsOneInstanceAndSaysWhy) {
  std::string code = make_code_dir("nopriv");
  write_file(code + "/app.py",
             "import http.server, os, time\n"
             "class H(http.server.BaseHTTPRequestHandler):\n"
             "    def do_GET(self):\n"
             "        if self.path == '/slow':\n"
             "            time.sleep(0.5)\n"
             "        body = ('pid=%d' % os.getpid()).encode()\n"
             "        self.send_response(200)\n"
             "        self.send_header('Content-Length', str(len(body)))\n"
             "        self.end_headers()\n"
             "        self.wfile.write(body)\n"
             "http.server.HTTPServer(('127.0.0.1', 9000), H).serve_forever()\n");
  chmod(code.c_str(), 0755);
  gw_.add_functions_yaml("  nopriv:\n    runtime: custom\n    codeUri: " + code +
                         "\n    customRuntimeConfig: { command: [/usr/bin/python3], args: [app.py] }\n"
                         "    maxInstances: 3\n");
  add_location("nopriv");
  gw_.set_runner_user("nobody");
  gw_.start();
  // The host's 9000 is shared with whatever else runs here (another test's
  // app on it): its first start may find the port taken and be retried.
  EXPECT_TRUE(wait_until([&] { return http_get(gw_.url("/nopriv/")).status == 200; }, 20s));
  std::vector<std::future<HttpResponse>> calls;
  for (int i = 0; i < 3; i++) calls.push_back(get_async("/nopriv/slow"));
  std::set<std::string> pids;
  for (auto& c : calls) {
    HttpResponse r = c.get();
    ASSERT_EQ(r.status, 200) << r.body << r.error;
    pids.insert(field(r.body, "pid"));
  }
  EXPECT_EQ(pids.size(), 1u);
  std::string log = gw_.runner_log();
  const std::string said = "capped at 1 instance instead of maxInstances 3";
  EXPECT_NE(log.find(said), std::string::npos) << log;
  EXPECT_EQ(log.find(said), log.rfind(said)) << log;
  EXPECT_NE(log.find("listens on FC's default port 9000 instead of $FC_SERVER_PORT"), std::string::npos) << log;
}

// An app on neither its $FC_SERVER_PORT nor 9000: the 503 names where it is.
TEST_F(FcCompatTest, AppOnAnotherPortFailsNamingThePortItListensOn) {
  std::string code = make_code_dir("wrong");
  write_file(code + "/app.py", kStdlibApp);
  // Flask's habit, 5000; any port that is free here.
  const int wrong = free_port();
  gw_.add_functions_yaml("  wrong:\n    runtime: custom\n    codeUri: " + code +
                         "\n    customRuntimeConfig: { command: [/usr/bin/python3], args: [app.py, '" +
                         std::to_string(wrong) + "'] }\n    initializationTimeout: 2\n");
  add_location("wrong");
  gw_.start();
  HttpResponse r = http_get(gw_.url("/wrong/"));
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.header("x-fc-error-type"), "InitializationFailed");
  EXPECT_NE(r.body.find("it listens on port " + std::to_string(wrong) + " (127.0.0.1:" + std::to_string(wrong) +
                        ") instead: listen on $FC_SERVER_PORT or set caPort: " + std::to_string(wrong)),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("nor on FC's default port 9000"), std::string::npos) << r.body;
}

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
  EXPECT_TRUE(gw_.runner_logged("function missing cannot be served"));
  EXPECT_TRUE(gw_.runner_logged("function noexec cannot be served"));
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
