// conf-examples/express, served as a user would run it: its own nginx.conf
// and fc-runner.yaml (ports moved to free ones, the module path made
// absolute), its app unchanged, express 4 from npm in app/node_modules.
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "harness.h"
#include "nodejs_modules.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  size_t at = 0;
  int count = 0;
  while ((at = text.find(from, at)) != std::string::npos) {
    text.replace(at, from.size(), to);
    at += to.size();
    count++;
  }
  if (count == 0) throw std::runtime_error("the example no longer contains " + from);
  return text;
}

TEST(NodejsExamples, ExpressMigrationServesTheUnchangedApp) {
  TempDir tmp;
  const std::string example = std::string(FC_SOURCE_DIR) + "/conf-examples/express";
  const std::string dir = tmp.path() + "/express";
  fs::create_directories(dir + "/app");
  for (const char* file : {"fc-runner.yaml", "nginx.conf"}) fs::copy(example + "/" + file, dir + "/" + file);
  for (const auto& entry : fs::directory_iterator(example + "/app")) {
    if (entry.path().filename() != "node_modules") fs::copy(entry.path(), fs::path(dir + "/app") / entry.path().filename());
  }
  fs::create_directory_symlink(nodejs_test_modules(), dir + "/app/node_modules");
  // The app itself is the example's, byte for byte.
  ASSERT_EQ(read_file(dir + "/app/app.js"), read_file(example + "/app/app.js"));

  const std::string front = "127.0.0.1:" + std::to_string(free_port());
  const std::string runner = "127.0.0.1:" + std::to_string(free_port());
  write_file(dir + "/fc-runner.yaml", replace_all(read_file(dir + "/fc-runner.yaml"), "127.0.0.1:9101", runner));
  std::string nginx_conf = read_file(dir + "/nginx.conf");
  nginx_conf = replace_all(nginx_conf, "127.0.0.1:9101", runner);
  nginx_conf = replace_all(nginx_conf, "127.0.0.1:8081", front);
  nginx_conf = replace_all(nginx_conf, "../ngx_http_fc_module.so", module_path());
  write_file(dir + "/nginx.conf", nginx_conf);
  fs::create_directories(dir + "/prefix/tmp");

  Process runner_process, nginx_process;
  runner_process.start({runner_path(), "--config", dir + "/fc-runner.yaml"}, tmp.path() + "/runner.log");
  std::vector<std::string> nginx_argv = {"/usr/sbin/nginx", "-p", dir + "/prefix/", "-c", dir + "/nginx.conf"};
  // nginx.conf runs its workers as www-data (issue 9).
  nginx_process.start(nginx_argv, tmp.path() + "/nginx.log");
  auto logs = [&] { return read_file(tmp.path() + "/runner.log") + read_file(tmp.path() + "/nginx.log"); };
  const std::string base = "http://" + front;
  // 502 until the runner listens; then the first request is a cold start.
  ASSERT_TRUE(wait_until([&] { return http_get(base + "/").status == 200; }, 20s)) << logs();

  HttpResponse hello = http_get(base + "/");
  ASSERT_EQ(hello.status, 200) << logs();
  EXPECT_EQ(json::parse(hello.body)["message"], "Hello from Express");

  HttpRequest post;
  post.method = "POST";
  post.url = base + "/todos";
  post.headers = {{"Content-Type", "application/json"}};
  post.body = R"({"title":"try fc"})";
  HttpResponse created = http(post);
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(json::parse(created.body)["title"], "try fc");
  EXPECT_EQ(created.header("location"), "/todos/1");
  HttpResponse list = http_get(base + "/todos");
  EXPECT_EQ(json::parse(list.body), json::parse(R"([{"id":1,"title":"try fc"}])"));

  HttpResponse ticks = http_get(base + "/ticks");
  ASSERT_EQ(ticks.status, 200);
  EXPECT_EQ(ticks.header("content-type").rfind("text/event-stream", 0), 0u) << ticks.header("content-type");
  EXPECT_EQ(ticks.body, "data: tick 1\n\ndata: tick 2\n\ndata: tick 3\n\n");
  ASSERT_GE(ticks.arrivals.size(), 2u);
  EXPECT_GT(ticks.arrivals.back().first - ticks.arrivals.front().first, 0.25);  // 400 ms apart at the source

  HttpResponse missing = http_get(base + "/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("Cannot GET /nope"), std::string::npos);

  // The runner ran it with the nodejs runtime, on the local node.
  EXPECT_NE(read_file(tmp.path() + "/runner.log").find("runtimes/nodejs/bootstrap.js"), std::string::npos)
      << logs();
  nginx_process.stop(SIGQUIT, 3s);
  runner_process.stop(SIGTERM, 5s);
}

}  // namespace
}  // namespace fc::e2e
