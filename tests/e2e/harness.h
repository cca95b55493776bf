// End-to-end harness: starts a real nginx (with build/ngx_http_fc_module.so)
// and a real build/fc-runner in a private temp dir on free ports, and talks to
// them as a client would (libcurl).  Every process it starts is killed in the
// destructor, and dies with the test process if that is killed (PDEATHSIG).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <csignal>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace fc::e2e {

using Clock = std::chrono::steady_clock;

// A loopback TCP port that was free a moment ago.
int free_port();

// Wall-clock seconds since the epoch, comparable with Python's time.time().
double wall_now();

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A child process in its own process group, stdout+stderr to `log_path`.
class Process {
 public:
  Process() = default;
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  void start(const std::vector<std::string>& argv, const std::string& log_path,
             const std::vector<std::string>& extra_env = {});
  // Sends `sig` to the process group, waits up to `grace` for the leader to
  // exit, then SIGKILLs the group.  Returns the wait status (or -1).
  int stop(int sig = SIGTERM, std::chrono::milliseconds grace = std::chrono::seconds(5));
  bool running();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

struct HttpResponse {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // as received, in order
  std::string body;
  std::string error;      // curl's error text when the transfer failed
  double total_s = 0;     // request start to transfer end
  // (seconds since request start, bytes) for every write libcurl made.
  std::vector<std::pair<double, size_t>> arrivals;

  std::vector<std::string> header_values(const std::string& name) const;
  std::string header(const std::string& name) const;  // first value or ""
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<std::string> body;
  bool chunked = false;     // send body with Transfer-Encoding: chunked
  bool http2 = false;       // HTTP/2 with prior knowledge
  // Sends the body in two halves with this pause between them.
  std::chrono::milliseconds pause_mid_body{0};
  double mid_body_wall_time = 0;  // out: wall_now() when the pause began
  long timeout_ms = 30000;
  // Connect from this loopback address (e.g. 127.0.0.2), so the client's
  // address differs from the runner's.
  std::string source_address;
};

HttpResponse http(HttpRequest& req);
HttpResponse http_get(const std::string& url);

// One test's gateway: runner config + nginx config + the processes.
class Gateway {
 public:
  Gateway();
  ~Gateway();

  const std::string& dir() const { return tmp_.path(); }
  std::string path(const std::string& rel) const { return dir() + "/" + rel; }
  int port() const { return port_; }
  std::string url(const std::string& path_and_query) const;
  std::string runner_socket() const { return path("fc.sock"); }

  // YAML text appended under `functions:` (indented by the caller with two
  // spaces per level, function names at two spaces).
  void add_functions_yaml(const std::string& yaml) { functions_yaml_ += yaml; }
  // Extra top-level runner config lines (e.g. "logLevel: debug").
  void add_runner_yaml(const std::string& yaml) { runner_extra_ += yaml; }
  // nginx text inside http{} (upstream blocks, log formats) and inside server{}.
  void add_http_conf(const std::string& conf) { http_conf_ += conf; }
  void add_server_conf(const std::string& conf) { server_conf_ += conf; }
  void set_http2(bool on) { http2_ = on; }
  // Run fc-runner as this user (via setpriv), e.g. "nobody".
  // Its instance ports then come from 30000-32699: a root runner's guard
  // (the default 20000-29999 of the quickstart, say) refuses the
  // unprivileged runner's unmarked connections in its range.
  void set_runner_user(const std::string& user) {
    runner_user_ = user;
    instance_port_first_ = 30000 + (instance_port_first_ - 20000) / kInstancePortCount % 27 * kInstancePortCount;
  }
  // Run fc-runner under this command line, e.g. {"prlimit", "--nofile=1024:1024", "--"}.
  void set_runner_wrapper(std::vector<std::string> argv) { runner_wrapper_ = std::move(argv); }
  // Use this fc_runner value instead of the default unix socket.
  void set_fc_runner(const std::string& value) { fc_runner_ = value; }

  void start();  // writes configs, starts runner then nginx, waits for both
  void start_runner();
  void stop_runner(int sig = SIGTERM);
  void stop_nginx();
  Process& runner() { return runner_; }
  Process& nginx() { return nginx_; }

  std::string runner_log() const { return read_file(path("runner.log")); }
  // Whether `text` shows up in the runner log within `timeout`: log lines are
  // written at the end of the runner's loop turn, so one can trail the reply
  // it is about.
  bool runner_logged(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(3)) const;
  std::string nginx_error_log() const { return read_file(path("error.log")); }
  std::string access_log() const { return read_file(path("access.log")); }

  // `nginx -t` on a config with `locations` as the server's content;
  // returns (exit ok, output).
  std::pair<bool, std::string> nginx_test_config(const std::string& server_conf);

  // This gateway's own `instancePorts` (kInstancePortCount ports), unless
  // the test's runner yaml names one.
  static constexpr int kInstancePortCount = 100;
  int instance_port_first() const { return instance_port_first_; }

  std::string runner_config_path() const { return path("fc-runner.yaml"); }
  void write_runner_config();

 private:
  std::string nginx_conf(const std::string& server_body) const;

  TempDir tmp_;
  int port_;
  int instance_port_first_;
  bool http2_ = false;
  std::string fc_runner_;
  std::string runner_user_;
  std::vector<std::string> runner_wrapper_;
  std::string functions_yaml_;
  std::string runner_extra_;
  std::string http_conf_;
  std::string server_conf_;
  Process runner_;
  Process nginx_;
};

// Path helpers for the test's own apps and build outputs.
std::string app_path(const std::string& name);   // tests/e2e/apps/<name>
std::string module_path();                        // build/ngx_http_fc_module.so
std::string runner_path();                        // build/fc-runner
extern const char* kPython;                       // /usr/bin/python3

// Polls `cond` every 10 ms until true or `timeout`; returns its last value.
bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout);

// Runs `cmd` with /bin/sh; returns (exit status or -1, stdout and stderr).
std::pair<int, std::string> run(const std::string& cmd);

// A /metrics body through prometheus_client's own parser (Debian's
// python3-prometheus-client): {"name{k=v,...}": value} with labels sorted.
// The body and script go to `scratch_dir`; a parse failure adds a test
// failure (with the parser's error and the body) and returns what was read.
std::map<std::string, double> parse_metrics(const std::string& body, const std::string& scratch_dir);

// Connects to a unix socket; -1 on failure.
int connect_unix(const std::string& path);

// tests/e2e/apps/fake_runner.py started in `fake_runner` on `gw`'s fake.sock
// (its log: fake.log); returns the socket path once it accepts, or adds a
// test failure (with its log) and returns "" if it does not within 10 s.
// Call before gw.start(); point a location at it with
// `fc_runner unix:<path>;`.
std::string start_fake_runner(Gateway& gw, Process& fake_runner);

// Alive and not a zombie (an orphan's zombie may wait a while for its reaper).
bool pid_alive(pid_t pid);

// GET `url` on another thread, after `delay`.
std::future<HttpResponse> get_async(const std::string& url,
                                    std::chrono::milliseconds delay = std::chrono::milliseconds(0));

// The common fixture: one Gateway, whose logs are printed when a test fails,
// and functions that run a script of tests/e2e/apps/ served under /<name>/.
class GatewayFixture : public ::testing::Test {
 protected:
  void TearDown() override;

  // A custom-runtime function running `script` with /usr/bin/python3 from
  // `code_dir`; `extra` is more YAML of the function (4-space indented).
  // Requests to /<name>/x reach it as /x.
  void add_app_function(const std::string& name, const std::string& script, const std::string& extra,
                        const std::string& code_dir = FC_E2E_APPS_DIR);

  std::future<HttpResponse> get_async(const std::string& path,
                                      std::chrono::milliseconds delay = std::chrono::milliseconds(0)) {
    return e2e::get_async(gw_.url(path), delay);
  }

  Gateway gw_;
};

}  // namespace fc::e2e
