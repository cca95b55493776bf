// Installing fc-gateway (issue 10, acceptance 7 and 8): `make install` into
// a DESTDIR, the Debian packages of `make deb` on this machine, and the
// front door, `make run` from a fresh clone.  Built as its own binary
// (fc_install_tests): each case is one ctest entry with its own properties
// (tests/CMakeLists.txt): the dpkg case holds the machine's package
// database and is purged by a ctest cleanup fixture even when it fails; the
// front door builds everything from scratch and starts first.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

namespace fc::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kSource = FC_SOURCE_DIR;
// make as a user runs it, not as a sub-make of `make test` (whose jobserver
// and command-line variables MAKEFLAGS would carry in).
const std::string kMake = "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make";

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Every file and symlink under `root`, relative to it.
std::set<std::string> tree(const std::string& root) {
  std::set<std::string> found;
  if (!fs::exists(root)) return found;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_symlink() || it->is_regular_file()) found.insert(fs::relative(it->path(), root).string());
  }
  return found;
}

// Processes whose executable or working directory lies under `dir`.
std::vector<std::string> processes_under(const std::string& dir) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::error_code ec1, ec2;
    auto exe = fs::read_symlink(entry.path() / "exe", ec1);
    auto cwd = fs::read_symlink(entry.path() / "cwd", ec2);
    if ((!ec1 && exe.string().rfind(dir, 0) == 0) || (!ec2 && cwd.string().rfind(dir, 0) == 0)) {
      std::string cmd = read_file(entry.path() / "cmdline");
      std::replace(cmd.begin(), cmd.end(), '\0', ' ');
      found.push_back(entry.path().filename().string() + " " + cmd);
    }
  }
  return found;
}

// `systemd-analyze verify` of a unit, or why it could not run.
std::pair<bool, std::string> systemd_verify(const std::string& unit) {
  if (access("/usr/bin/systemd-analyze", X_OK) != 0 && access("/bin/systemd-analyze", X_OK) != 0) {
    return {true, "systemd-analyze is not installed here: the unit was not verified"};
  }
  auto [rc, out] = run("systemd-analyze verify " + unit);
  return {rc == 0 && out.find(fs::path(unit).filename().string()) == std::string::npos, out};
}

// ---- make install (acceptance 7, first half) --------------------------------------------------

TEST(Install, MakeInstallIntoADestdirGivesDebiansLayoutAndUninstallRemovesIt) {
  TempDir tmp;
  const std::string dest = tmp.path() + "/root";
  auto [rc, out] = run(kMake + " -s -C " + kSource + " install DESTDIR=" + dest + " PREFIX=/usr");
  ASSERT_EQ(rc, 0) << out;

  std::set<std::string> files = tree(dest);
  const std::set<std::string> expected = {
      "usr/lib/nginx/modules/ngx_http_fc_module.so",
      "usr/share/nginx/modules-available/mod-http-fc.conf",
      "etc/nginx/modules-enabled/50-mod-http-fc.conf",
      "usr/bin/fc-runner",
      "usr/lib/fc-runner/fc-instance-guard",
      "usr/lib/fc-runner/runtimes/nodejs/bootstrap.js",
      "usr/lib/fc-runner/runtimes/nodejs/fc.js",
      "usr/lib/fc-runner/runtimes/nodejs/lean_http.js",
      "usr/lib/fc-runner/runtimes/python3/bootstrap.py",
      "usr/lib/fc-runner/runtimes/python3/_fcbootstrap.py",
      "usr/lib/fc-runner/runtimes/python3/_fcruntime.abi3.so",
      "etc/fc-runner/fc-runner.yaml",
      "usr/lib/systemd/system/fc-runner.service",
      "usr/lib/sysusers.d/fc-runner.conf",
      "usr/share/doc/fc-runner/README.md",
  };
  for (const auto& f : expected) EXPECT_TRUE(files.count(f)) << f << " is not installed";
  for (const auto& f : files) {
    bool known = expected.count(f) || f.rfind("usr/share/doc/fc-runner/docs/", 0) == 0 ||
                 f.rfind("usr/lib/fc-runner/runtimes/python3/__pycache__/_fcbootstrap.", 0) == 0;
    EXPECT_TRUE(known) << "installed but not expected: " << f;
  }
  // Debian's layout: the load snippet in modules-available, enabled by a symlink.
  EXPECT_EQ(read_file(dest + "/usr/share/nginx/modules-available/mod-http-fc.conf"),
            "load_module /usr/lib/nginx/modules/ngx_http_fc_module.so;\n");
  EXPECT_EQ(fs::read_symlink(dest + "/etc/nginx/modules-enabled/50-mod-http-fc.conf").string(),
            "/usr/share/nginx/modules-available/mod-http-fc.conf");
  struct stat st {};
  ASSERT_EQ(stat((dest + "/usr/bin/fc-runner").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);

  // The unit: the properties, with the installed paths.
  std::string unit = read_file(dest + "/usr/lib/systemd/system/fc-runner.service");
  for (const char* line :
       {"Type=simple\n", "User=fc-runner\n", "RuntimeDirectory=fc-runner\n", "Restart=on-failure\n",
        "ExecStart=/usr/bin/fc-runner --config /etc/fc-runner/fc-runner.yaml\n",
        "ExecReload=/bin/kill -HUP $MAINPID\n", "ExecStartPre=+/bin/chgrp www-data /run/fc-runner\n",
        "WantedBy=multi-user.target\n"}) {
    EXPECT_NE(unit.find(line), std::string::npos) << line << " not in\n" << unit;
  }
  EXPECT_EQ(unit.find('@'), std::string::npos) << "a placeholder was left:\n" << unit;
  EXPECT_NE(read_file(dest + "/usr/lib/sysusers.d/fc-runner.conf").find("u fc-runner "), std::string::npos);

  // systemd-analyze checks ExecStart's binary: verify a copy that names the
  // staged one (the unit is otherwise the installed text).
  std::string staged_unit = tmp.path() + "/fc-runner.service";
  write_file(staged_unit,
             std::regex_replace(unit, std::regex("ExecStart=/usr/bin/fc-runner"), "ExecStart=" + dest + "/usr/bin/fc-runner"));
  auto [verified, verify_out] = systemd_verify(staged_unit);
  std::cout << "systemd-analyze verify: " << (verify_out.empty() ? "no complaints" : verify_out) << "\n";
  EXPECT_TRUE(verified) << verify_out;

  // The installed module loads into Debian's nginx and knows fc_function.
  write_file(tmp.path() + "/nginx.conf", "load_module " + dest + "/usr/lib/nginx/modules/ngx_http_fc_module.so;\n"
                                         "pid " + tmp.path() + "/nginx.pid;\nevents {}\nhttp {\n  server {\n"
                                         "    listen 127.0.0.1:" + std::to_string(free_port()) + ";\n"
                                         "    location / { fc_function hello; }\n  }\n}\n");
  auto [t_rc, t_out] = run("/usr/sbin/nginx -t -p " + tmp.path() + " -e " + tmp.path() + "/error.log -c " +
                           tmp.path() + "/nginx.conf");
  EXPECT_EQ(t_rc, 0) << t_out;

  // The installed runner: the shipped config checks, and it serves with the
  // installed runtimes (not the source tree's).
  const std::string bin = dest + "/usr/bin/fc-runner";
  auto [c_rc, c_out] = run(bin + " check --config " + dest + "/etc/fc-runner/fc-runner.yaml");
  EXPECT_EQ(c_rc, 0) << c_out;
  std::string cfg = tmp.path() + "/fc-runner.yaml";
  write_file(cfg, "listen: unix:" + tmp.path() + "/fc.sock\nadmin: unix:" + tmp.path() + "/admin.sock\nfunctions:\n"
                  "  echo:\n    runtime: python3\n    type: event\n    codeUri: " + app_path("python/event") +
                  "\n    handler: index.handler\n"
                  "  nodeecho:\n    runtime: nodejs\n    type: event\n    codeUri: " + app_path("nodejs/event") +
                  "\n    handler: index.echo\n");
  {
    Process runner;
    runner.start({bin, "--config", cfg}, tmp.path() + "/runner.log");
    ASSERT_TRUE(wait_until([&] { return fs::exists(tmp.path() + "/admin.sock"); }, 10s))
        << read_file(tmp.path() + "/runner.log");
    auto [py_rc, py] = run(bin + " invoke echo --event from-python --config " + cfg);
    EXPECT_EQ(py_rc, 0) << py << read_file(tmp.path() + "/runner.log");
    EXPECT_EQ(py, "from-python");
    auto [js_rc, js] = run(bin + " invoke nodeecho --event from-node --config " + cfg);
    EXPECT_EQ(js_rc, 0) << js << read_file(tmp.path() + "/runner.log");
    EXPECT_EQ(js, "from-node");
    auto [s_rc, s] = run("{ " + bin + " status --json --config " + cfg + " 2>/dev/null; }");
    ASSERT_EQ(s_rc, 0) << s;
    json status = json::parse(s);
    std::string runtimes = dest + "/usr/lib/fc-runner/runtimes/";
    for (const auto& fn : status["functions"]) {
      ASSERT_EQ(fn["instances"].size(), 1u) << s;
      std::string cmdline = read_file("/proc/" + std::to_string(fn["instances"][0]["pid"].get<int>()) + "/cmdline");
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
      EXPECT_NE(cmdline.find(runtimes), std::string::npos) << fn["name"] << ": " << cmdline;
    }
    runner.stop();
  }

  // uninstall: everything goes; a config changed since install stays.
  write_file(dest + "/etc/fc-runner/fc-runner.yaml", read_file(dest + "/etc/fc-runner/fc-runner.yaml") + "# mine\n");
  auto [u_rc, u_out] = run(kMake + " -s -C " + kSource + " uninstall DESTDIR=" + dest + " PREFIX=/usr");
  EXPECT_EQ(u_rc, 0) << u_out;
  EXPECT_NE(u_out.find("keeping " + dest + "/etc/fc-runner/fc-runner.yaml (changed since install)"), std::string::npos)
      << u_out;
  EXPECT_EQ(tree(dest), std::set<std::string>{"etc/fc-runner/fc-runner.yaml"});
  EXPECT_FALSE(fs::exists(dest + "/usr/lib/fc-runner"));
}

// ---- make deb, dpkg -i / -r (acceptance 7, second half) -----------------------------------------

const char* const kPackages = "fc-runner libnginx-mod-http-fc";

std::string package_status(const std::string& name) {
  // (braces: run() sends stderr to the output after the command's own redirections)
  return trim(run("{ dpkg-query -W -f='${Status}' " + name + " 2>/dev/null; }").second);
}

// dpkg refuses while another dpkg or apt holds its lock (other work on a
// shared machine): wait for it rather than fail.
std::pair<int, std::string> dpkg(const std::string& args) {
  std::pair<int, std::string> result;
  for (int attempt = 0; attempt < 120; attempt++) {
    result = run("dpkg " + args);
    if (result.first == 0 || result.second.find("lock") == std::string::npos) break;
    std::this_thread::sleep_for(1s);
  }
  return result;
}

// Whatever happens in the test, the packages go (ctest's cleanup fixture,
// install.deb_cleanup, does the same if this process is killed).
struct PurgeAtExit {
  ~PurgeAtExit() { dpkg(std::string("--purge ") + kPackages); }
};

bool user_exists(const std::string& name) { return run("getent passwd " + name).first == 0; }
bool group_exists(const std::string& name) { return run("getent group " + name).first == 0; }

TEST(Install, DebPackagesInstallPassNginxTestAndRemoveCleanly) {
  ASSERT_EQ(package_status("fc-runner"), "") << "fc-runner is installed already: the test would change it";
  ASSERT_EQ(package_status("libnginx-mod-http-fc"), "");
  ASSERT_FALSE(user_exists("fc-runner"));
  const bool had_modules_dir = fs::exists("/usr/lib/nginx/modules");
  const bool had_available_dir = fs::exists("/usr/share/nginx/modules-available");
  auto [pre_rc, pre_out] = run("/usr/sbin/nginx -t");
  ASSERT_EQ(pre_rc, 0) << "the system nginx config fails before the test: " << pre_out;

  auto [rc, out] = run(kMake + " -s -C " + kSource + " deb");
  ASSERT_EQ(rc, 0) << out;
  std::string module_deb, runner_deb;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("/libnginx-mod-http-fc_") != std::string::npos) module_deb = line;
    if (line.find("/fc-runner_") != std::string::npos) runner_deb = line;
  }
  ASSERT_TRUE(fs::exists(module_deb)) << out;
  ASSERT_TRUE(fs::exists(runner_deb)) << out;

  // The module depends on the exact ABI of the nginx-dev sources it was built
  // against, which is what the installed nginx provides.
  std::smatch m;
  std::string abisubst = read_file("/usr/share/nginx/src/debian/libnginx-mod.abisubstvars");
  ASSERT_TRUE(std::regex_search(abisubst, m, std::regex("nginx:abi=(nginx-abi-[^\\s]+)")));
  const std::string abi = m[1];
  std::string depends = run("dpkg-deb -f " + module_deb + " Depends").second;
  EXPECT_NE(depends.find(abi), std::string::npos) << depends;
  EXPECT_NE(run("dpkg-query -W -f='${Provides}' nginx").second.find(abi), std::string::npos);
  std::string contents = run("dpkg-deb -c " + module_deb).second;
  EXPECT_NE(contents.find("./usr/lib/nginx/modules/ngx_http_fc_module.so"), std::string::npos) << contents;
  EXPECT_NE(contents.find("./usr/share/nginx/modules-available/mod-http-fc.conf"), std::string::npos);
  EXPECT_EQ(contents.find("modules-enabled"), std::string::npos) << "the link is the postinst's";
  EXPECT_NE(run("dpkg-deb -c " + runner_deb).second.find("./lib/systemd/system/fc-runner.service"),
            std::string::npos);

  PurgeAtExit purge;
  auto [i_rc, i_out] = dpkg("-i " + module_deb + " " + runner_deb);
  ASSERT_EQ(i_rc, 0) << i_out;
  EXPECT_EQ(package_status("libnginx-mod-http-fc"), "install ok installed");
  EXPECT_EQ(package_status("fc-runner"), "install ok installed");
  const std::string link = "/etc/nginx/modules-enabled/50-mod-http-fc.conf";
  EXPECT_EQ(fs::read_symlink(link).string(), "/usr/share/nginx/modules-available/mod-http-fc.conf");
  EXPECT_TRUE(user_exists("fc-runner"));

  // nginx -t of the system config, with the module enabled the Debian way.
  auto [t_rc, t_out] = run("/usr/sbin/nginx -t");
  EXPECT_EQ(t_rc, 0) << t_out;
  // ... and the enabled snippet really loads it: fc_function is known.
  TempDir tmp;
  write_file(tmp.path() + "/nginx.conf", "include /etc/nginx/modules-enabled/50-mod-http-fc.conf;\npid " + tmp.path() +
                                         "/nginx.pid;\nevents {}\nhttp {\n  server {\n    listen 127.0.0.1:" +
                                         std::to_string(free_port()) + ";\n    location / { fc_function hello; }\n"
                                         "  }\n}\n");
  auto [f_rc, f_out] = run("/usr/sbin/nginx -t -p " + tmp.path() + " -e " + tmp.path() + "/error.log -c " +
                           tmp.path() + "/nginx.conf");
  EXPECT_EQ(f_rc, 0) << f_out;

  // The runner as packaged: its config checks, its unit verifies here, and
  // the postinst started nothing (no systemd running here; never a port).
  auto [c_rc, c_out] = run("/usr/bin/fc-runner check --config /etc/fc-runner/fc-runner.yaml");
  EXPECT_EQ(c_rc, 0) << c_out;
  auto [verified, verify_out] = systemd_verify("/lib/systemd/system/fc-runner.service");
  std::cout << "systemd-analyze verify: " << (verify_out.empty() ? "no complaints" : verify_out) << "\n";
  EXPECT_TRUE(verified) << verify_out;
  EXPECT_EQ(processes_under("/usr/bin/fc-runner"), std::vector<std::string>{});
  // (/run/fc-runner itself may exist: the quickstart's socket lives there.)
  if (!fs::exists("/run/systemd/system")) {
    EXPECT_FALSE(fs::exists("/run/fc-runner/fc.sock"));
    EXPECT_FALSE(fs::exists("/run/fc-runner/admin.sock"));
  }

  // dpkg -r: the files go, the module is no longer enabled, nginx -t passes.
  auto [r_rc, r_out] = dpkg(std::string("-r ") + kPackages);
  ASSERT_EQ(r_rc, 0) << r_out;
  EXPECT_EQ(package_status("fc-runner"), "deinstall ok config-files");
  // (the module's postrm stays for purge, which removes the .removed link)
  EXPECT_EQ(package_status("libnginx-mod-http-fc"), "deinstall ok config-files");
  for (const char* gone : {"/usr/bin/fc-runner", "/usr/lib/fc-runner", "/usr/lib/nginx/modules/ngx_http_fc_module.so",
                           "/usr/share/nginx/modules-available/mod-http-fc.conf", "/lib/systemd/system/fc-runner.service"}) {
    EXPECT_FALSE(fs::exists(gone)) << gone;
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(link))) << link;
  auto [rt_rc, rt_out] = run("/usr/sbin/nginx -t");
  EXPECT_EQ(rt_rc, 0) << rt_out;

  // --purge: nothing of either is left, the user and group included.
  auto [p_rc, p_out] = dpkg(std::string("--purge ") + kPackages);
  ASSERT_EQ(p_rc, 0) << p_out;
  EXPECT_EQ(package_status("fc-runner"), "");
  EXPECT_EQ(package_status("libnginx-mod-http-fc"), "");
  EXPECT_FALSE(fs::exists(fs::symlink_status(link + ".removed")));
  EXPECT_FALSE(fs::exists("/etc/fc-runner"));
  EXPECT_FALSE(fs::exists(fs::symlink_status("/etc/systemd/system/multi-user.target.wants/fc-runner.service")));
  EXPECT_FALSE(user_exists("fc-runner"));
  EXPECT_FALSE(group_exists("fc-runner"));
  EXPECT_EQ(fs::exists("/usr/lib/nginx/modules"), had_modules_dir);
  EXPECT_EQ(fs::exists("/usr/share/nginx/modules-available"), had_available_dir);
}

// ---- the front door (acceptance 8) --------------------------------------------------------------

// Kills what is left under a directory (the runner of `make run` has its own
// session, so a killed test would not take it along).
struct KillUnderAtExit {
  std::string dir;
  ~KillUnderAtExit() {
    for (const auto& p : processes_under(dir)) kill(std::stoi(p.substr(0, p.find(' '))), SIGKILL);
  }
};

TEST(FrontDoor, MakeRunFromAFreshCloneServesTheQuickstart) {
  TempDir tmp;
  const std::string clone = tmp.path() + "/fc-gateway";
  std::string head = trim(run("git -C " + kSource + " rev-parse HEAD").second);
  ASSERT_TRUE(std::regex_match(head, std::regex("[0-9a-f]{40}"))) << head;
  auto [c_rc, c_out] = run("git clone -q " + kSource + " " + clone + " && git -C " + clone + " checkout -q --detach " + head);
  ASSERT_EQ(c_rc, 0) << c_out;
  ASSERT_FALSE(fs::exists(clone + "/build"));
  KillUnderAtExit cleanup{clone + "/"};

  // The quickstart's port and socket are its own here (the defaults, 8080 and
  // /run/fc-runner/quickstart.sock, belong to the Quickstart test and to
  // whoever runs make run).  The socket stays under /run/fc-runner: nginx's
  // www-data workers cannot reach into this test's 0700 temp dir.
  int port = free_port();
  const std::string socket = "/run/fc-runner/frontdoor-" + std::to_string(port) + ".sock";
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  const std::string log = tmp.path() + "/make-run.log";
  auto t0 = Clock::now();
  Process make;
  make.start({"env", "-u", "MAKEFLAGS", "-u", "MFLAGS", "-u", "MAKELEVEL", "make", "-C", clone, "run"}, log,
             {"FC_QUICKSTART_PORT=" + std::to_string(port), "FC_QUICKSTART_SOCKET=" + socket,
              "JOBS=2"});
  // A from-scratch build: about 6 minutes on an idle 2-core machine, up to
  // half an hour when five other builds share it.
  bool up = wait_until([&] { return http_get(url + "/").status == 200 || !make.running(); }, 1800s) &&
            make.running();
  double build_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "make run from a fresh clone: serving after " << build_s << " s\n";
  ASSERT_TRUE(up) << read_file(log).substr(0, 20000);

  HttpResponse index = http_get(url + "/");
  EXPECT_NE(index.body.find("curl " + url + "/hello"), std::string::npos) << index.body;
  HttpResponse hello = http_get(url + "/hello");
  ASSERT_EQ(hello.status, 200) << read_file(log);
  EXPECT_EQ(json::parse(hello.body)["function"], "hello");
  HttpResponse python = http_get(url + "/python");
  ASSERT_EQ(python.status, 200) << read_file(log);
  EXPECT_EQ(json::parse(python.body)["runtime"], "python3");
  HttpRequest count;
  count.method = "POST";
  count.url = url + "/wordcount";
  count.body = "to be or not to be";
  HttpResponse words = http(count);
  ASSERT_EQ(words.status, 200) << words.body;
  EXPECT_EQ(json::parse(words.body)["words"], 6);
  // It is the clone's build that serves.
  EXPECT_FALSE(processes_under(clone + "/build/fc-runner").empty());
  EXPECT_FALSE(processes_under(clone + "/conf-examples/quickstart/functions/").empty());

  // Ctrl-C: make, the quickstart, nginx, the runner and its instances all go.
  make.stop(SIGINT, 20s);
  EXPECT_TRUE(wait_until([&] { return processes_under(clone + "/").empty(); }, 10s))
      << ::testing::PrintToString(processes_under(clone + "/"));
  EXPECT_NE(http_get(url + "/").status, 200);
}

}  // namespace
}  // namespace fc::e2e
