// `make run`'s quickstart, as a user would try it: the script serves the
// three example functions on 127.0.0.1:8080, and Ctrl-C leaves nothing behind.
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "harness.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Processes whose working directory is one of the quickstart's functions.
std::vector<std::string> processes_in_quickstart() {
  const std::string functions = std::string(FC_SOURCE_DIR) + "/conf-examples/quickstart/functions/";
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::error_code ec;
    auto cwd = std::filesystem::read_symlink(entry.path() / "cwd", ec);
    if (!ec && cwd.string().rfind(functions, 0) == 0)
      found.push_back(entry.path().filename().string() + " " + read_file(entry.path() / "cmdline"));
  }
  return found;
}

// The uids of the quickstart nginx's worker processes (children of the master
// started with -p .../build/quickstart/).
std::vector<uid_t> quickstart_worker_uids() {
  std::vector<uid_t> uids;
  auto field = [](const std::string& status, const std::string& name) {
    size_t at = status.find("\n" + name + ":");
    return at == std::string::npos ? -1L : std::strtol(status.c_str() + at + name.size() + 2, nullptr, 10);
  };
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string cmdline = read_file(entry.path() / "cmdline");
    if (cmdline.rfind("nginx: worker process", 0) != 0) continue;
    std::string status = read_file(entry.path() / "status");
    long ppid = field(status, "PPid");
    std::string parent = read_file("/proc/" + std::to_string(ppid) + "/cmdline");
    if (parent.find("build/quickstart/") == std::string::npos) continue;
    uids.push_back(static_cast<uid_t>(field(status, "Uid")));
  }
  return uids;
}

TEST(Quickstart, ServesItsFunctionsAndStopsCleanlyOnCtrlC) {
  TempDir tmp;
  Process quickstart;
  quickstart.start({std::string(FC_SOURCE_DIR) + "/conf-examples/quickstart/run.sh"},
                   tmp.path() + "/quickstart.log");
  ASSERT_TRUE(wait_until([] { return http_get("http://127.0.0.1:8080/").status == 200; }, 15s))
      << read_file(tmp.path() + "/quickstart.log");

  HttpResponse hello = http_get("http://127.0.0.1:8080/hello");
  ASSERT_EQ(hello.status, 200) << read_file(tmp.path() + "/quickstart.log");
  EXPECT_EQ(json::parse(hello.body)["function"], "hello");

  HttpResponse flask = http_get("http://127.0.0.1:8080/flask/");
  ASSERT_EQ(flask.status, 200) << read_file(tmp.path() + "/quickstart.log");
  EXPECT_EQ(json::parse(flask.body)["message"], "Hello from Flask");
  EXPECT_EQ(json::parse(flask.body)["path"], "/");

  HttpResponse python = http_get("http://127.0.0.1:8080/python");
  ASSERT_EQ(python.status, 200) << read_file(tmp.path() + "/quickstart.log");
  EXPECT_EQ(json::parse(python.body)["function"], "python");
  EXPECT_EQ(json::parse(python.body)["runtime"], "python3");

  HttpRequest count;
  count.method = "POST";
  count.url = "http://127.0.0.1:8080/wordcount";
  count.body = "to be or not to be";
  HttpResponse words = http(count);
  ASSERT_EQ(words.status, 200) << words.body;
  EXPECT_EQ(json::parse(words.body)["words"], 6);
  EXPECT_EQ(json::parse(words.body)["counts"]["be"], 2);

  HttpResponse node = http_get("http://127.0.0.1:8080/node?name=you");
  ASSERT_EQ(node.status, 200) << read_file(tmp.path() + "/quickstart.log");
  EXPECT_EQ(json::parse(node.body)["function"], "nodehello");
  EXPECT_EQ(json::parse(node.body)["message"].get<std::string>().rfind("Hello, you, from Node.js ", 0), 0u)
      << node.body;

  // Acceptance 5 of issue 9: nginx's workers are www-data, and reach the
  // runner through its socket's group (listenGroup), not as root.
  const passwd* www = getpwnam("www-data");
  ASSERT_NE(www, nullptr);
  std::vector<uid_t> workers = quickstart_worker_uids();
  ASSERT_FALSE(workers.empty()) << "no worker of the quickstart's nginx found";
  for (uid_t uid : workers) EXPECT_EQ(uid, www->pw_uid);
  struct stat sock {};
  ASSERT_EQ(stat("/run/fc-runner/quickstart.sock", &sock), 0);
  EXPECT_EQ(sock.st_gid, www->pw_gid);
  EXPECT_EQ(sock.st_mode & 0777, 0660u);
  EXPECT_NE(read_file(tmp.path() + "/quickstart.log").find("has group www-data"), std::string::npos);

  // The probe below sees the running instances (so its empty answer later means something).
  EXPECT_GE(processes_in_quickstart().size(), 4u);

  // Ctrl-C reaches the whole foreground process group.
  quickstart.stop(SIGINT, 15s);
  std::string log = read_file(tmp.path() + "/quickstart.log");
  // Nothing listens any more, and no instance of the quickstart is left.
  EXPECT_NE(http_get("http://127.0.0.1:8080/").status, 200);
  EXPECT_EQ(processes_in_quickstart(), std::vector<std::string>{}) << log;
}

}  // namespace
}  // namespace fc::e2e
