#include "harness.h"

#include <sys/xattr.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace fc::e2e {

const char* kPython = "/usr/bin/python3";

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    throw std::runtime_error("free_port: bind failed");
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/fc-e2e.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
  chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  // Keep the directory of a failed test for reading its logs.
  if (std::getenv("FC_E2E_KEEP") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
}

Process::~Process() {
  if (pid_ > 0) stop(SIGKILL, std::chrono::milliseconds(2000));
}

void Process::start(const std::vector<std::string>& argv, const std::string& log_path,
                    const std::vector<std::string>& extra_env) {
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open " + log_path);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    setpgid(0, 0);
    // Dies with the test process even if the test is SIGKILLed.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, 0);
    for (const auto& kv : extra_env) putenv(const_cast<char*>(kv.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    dprintf(2, "exec %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  close(log_fd);
  setpgid(pid, pid);
  pid_ = pid;
  status_ = -1;
}

bool Process::running() {
  if (pid_ <= 0) return false;
  int status;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = status;
    // The leader is gone; make sure nothing of its group outlives it.
    kill(-pid_, SIGKILL);
    pid_ = -1;
    return false;
  }
  return true;
}

int Process::stop(int sig, std::chrono::milliseconds grace) {
  if (pid_ <= 0) return status_;
  kill(-pid_, sig);
  auto deadline = Clock::now() + grace;
  while (Clock::now() < deadline) {
    if (!running()) return status_;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(-pid_, SIGKILL);
  int status = -1;
  waitpid(pid_, &status, 0);
  status_ = status;
  pid_ = -1;
  return status_;
}

std::vector<std::string> HttpResponse::header_values(const std::string& name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : headers)
    if (strcasecmp(n.c_str(), name.c_str()) == 0) out.push_back(v);
  return out;
}

std::string HttpResponse::header(const std::string& name) const {
  auto values = header_values(name);
  return values.empty() ? std::string() : values.front();
}

namespace {

struct Transfer {
  HttpRequest* req;
  HttpResponse* resp;
  Clock::time_point started;
  size_t body_sent = 0;
  bool paused_once = false;
};

size_t on_body(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  size_t len = size * n;
  t->resp->body.append(data, len);
  t->resp->arrivals.emplace_back(
      std::chrono::duration<double>(Clock::now() - t->started).count(), len);
  return len;
}

size_t on_header(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  size_t len = size * n;
  std::string line(data, len);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) {
    t->resp->headers.clear();  // a new response (e.g. after 100 Continue)
    return len;
  }
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string value = line.substr(colon + 1);
    size_t start = value.find_first_not_of(' ');
    value = start == std::string::npos ? "" : value.substr(start);
    t->resp->headers.emplace_back(line.substr(0, colon), value);
  }
  return len;
}

size_t on_read(char* buffer, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const std::string& body = *t->req->body;
  size_t half = body.size() / 2;
  size_t limit = body.size();
  if (t->req->pause_mid_body.count() > 0 && !t->paused_once) {
    if (t->body_sent >= half) {
      t->paused_once = true;
      t->req->mid_body_wall_time = wall_now();
      // A slow client: the first half is out, the second comes later.
      std::this_thread::sleep_for(t->req->pause_mid_body);
    } else {
      limit = half;
    }
  }
  size_t len = std::min(size * n, limit - t->body_sent);
  memcpy(buffer, body.data() + t->body_sent, len);
  t->body_sent += len;
  return len;
}

}  // namespace

HttpResponse http(HttpRequest& req) {
  static bool initialized = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  (void)initialized;
  HttpResponse resp;
  Transfer t{&req, &resp, Clock::now()};
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, req.timeout_ms);
  if (!req.source_address.empty()) curl_easy_setopt(curl, CURLOPT_INTERFACE, ("host!" + req.source_address).c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(curl, CURLOPT_HTTP_VERSION,
                   req.http2 ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : CURL_HTTP_VERSION_1_1);
  if (req.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (req.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  curl_slist* headers = nullptr;
  for (const auto& [n, v] : req.headers) headers = curl_slist_append(headers, (n + ": " + v).c_str());
  headers = curl_slist_append(headers, "Expect:");
  if (req.body) {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, &t);
    if (req.chunked) {
      headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
    } else {
      curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body->size()));
    }
    // CURLOPT_UPLOAD means PUT unless told otherwise.
    if (req.method != "PUT") curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK) resp.error = curl_easy_strerror(rc);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp.status);
  resp.total_s = std::chrono::duration<double>(Clock::now() - t.started).count();
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return resp;
}

HttpResponse http_get(const std::string& url) {
  HttpRequest req;
  req.url = url;
  return http(req);
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

std::pair<int, std::string> run(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  if (p == nullptr) return {-1, out};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::map<std::string, double> parse_metrics(const std::string& body, const std::string& scratch_dir) {
  std::string file = scratch_dir + "/metrics.txt";
  std::string script = scratch_dir + "/parse_metrics.py";
  write_file(file, body);
  // One "key<TAB>value" line per sample: names and label values hold no tabs.
  write_file(script,
             "import sys\n"
             "from prometheus_client.parser import text_string_to_metric_families\n"
             "for family in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
             "    for s in family.samples:\n"
             "        labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))\n"
             "        print(f'{s.name}{{{labels}}}\\t{s.value!r}')\n");
  auto [rc, out] = run(std::string(kPython) + " " + script + " " + file + " 2>&1");
  EXPECT_EQ(rc, 0) << out << "\n" << body;
  std::map<std::string, double> values;
  if (rc != 0) return values;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    size_t tab = line.rfind('\t');
    if (tab == std::string::npos) continue;
    values[line.substr(0, tab)] = std::stod(line.substr(tab + 1));
  }
  return values;
}

int connect_unix(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string start_fake_runner(Gateway& gw, Process& fake_runner) {
  std::string sock = gw.path("fake.sock");
  fake_runner.start({kPython, app_path("fake_runner.py"), "unix:" + sock}, gw.path("fake.log"));
  bool up = wait_until(
      [&] {
        int fd = connect_unix(sock);
        if (fd < 0) return false;
        close(fd);
        return true;
      },
      std::chrono::seconds(10));
  EXPECT_TRUE(up) << read_file(gw.path("fake.log"));
  return up ? sock : std::string();
}

bool pid_alive(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  size_t paren = stat.rfind(')');
  return paren == std::string::npos || stat.substr(paren + 2, 1) != "Z";
}

std::future<HttpResponse> get_async(const std::string& url, std::chrono::milliseconds delay) {
  return std::async(std::launch::async, [url, delay] {
    std::this_thread::sleep_for(delay);
    return http_get(url);
  });
}

void GatewayFixture::TearDown() {
  if (HasFailure()) {
    std::cerr << "---- runner log ----\n" << gw_.runner_log().substr(0, 30000)
              << "\n---- nginx error log ----\n" << gw_.nginx_error_log().substr(0, 10000) << "\n";
  }
}

void GatewayFixture::add_app_function(const std::string& name, const std::string& script,
                                      const std::string& extra, const std::string& code_dir) {
  gw_.add_functions_yaml("  " + name + ":\n    runtime: custom\n    codeUri: " + code_dir +
                         "\n    customRuntimeConfig: { command: [/usr/bin/python3], args: [" + script +
                         "] }\n" + extra);
  gw_.add_server_conf("    location /" + name + "/ { rewrite ^/" + name + "(/.*)$ $1 break; fc_function " +
                      name + "; }\n");
}

static bool tcp_accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

std::string app_path(const std::string& name) { return std::string(FC_E2E_APPS_DIR) + "/" + name; }
std::string module_path() { return std::string(FC_BUILD_DIR) + "/ngx_http_fc_module.so"; }
std::string runner_path() { return std::string(FC_BUILD_DIR) + "/fc-runner"; }

// Tests run in parallel: each gateway takes one of 100 slices of the
// runner's default range, so runners rarely share a port (and when they do,
// the port check at allocation and the shared mark keep it harmless).
static int instance_port_slice() {
  static int next = 0;
  return 20000 + ((static_cast<int>(getpid()) * 37 + next++) % 100) * Gateway::kInstancePortCount;
}

Gateway::Gateway() : port_(free_port()), instance_port_first_(instance_port_slice()) {
  for (const char* d : {"logs", "tmp"}) std::filesystem::create_directories(path(d));
}

Gateway::~Gateway() {
  nginx_.stop(SIGQUIT, std::chrono::seconds(3));
  runner_.stop(SIGTERM, std::chrono::seconds(5));
}

std::string Gateway::url(const std::string& path_and_query) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path_and_query;
}

void Gateway::write_runner_config() {
  // Instances run as a uid of their own with a private view (issue 9): the
  // test's state directory is the one place of the test they may write.
  std::string state = path("state");
  std::filesystem::create_directories(state);
  chmod(state.c_str(), 0777);
  // Functions of one test share files there (starts.log) under different
  // uids: a default ACL makes what each creates writable by the others.
  struct __attribute__((packed)) AclEntry {
    uint16_t tag, perm;
    uint32_t id;
  };
  struct __attribute__((packed)) {
    uint32_t version = 2;
    AclEntry entries[3] = {{0x01, 7, 0xffffffff}, {0x04, 7, 0xffffffff}, {0x20, 7, 0xffffffff}};
  } acl;
  setxattr(state.c_str(), "system.posix_acl_default", &acl, sizeof(acl), 0);
  std::string ports;
  if (runner_extra_.find("instancePorts:") == std::string::npos) {
    ports = "instancePorts: " + std::to_string(instance_port_first_) + "-" +
            std::to_string(instance_port_first_ + kInstancePortCount - 1) + "\n";
  }
  // Last, so the line numbers of the test's own YAML stay what they were.
  write_file(runner_config_path(), "listen: unix:" + runner_socket() + "\n" + runner_extra_ +
                                       (functions_yaml_.empty() ? "functions: {}\n"
                                                                : "functions:\n" + functions_yaml_) +
                                       "\nreadWritePaths: [" + state + "]\n" + ports);
}

std::string Gateway::nginx_conf(const std::string& server_body) const {
  std::string d = dir();
  std::ostringstream c;
  c << "load_module " << module_path() << ";\n";
  if (geteuid() == 0) c << "user root;\n";
  c << "worker_processes 1;\n"
    << "daemon off;\n"
    << "pid " << d << "/nginx.pid;\n"
    << "error_log " << d << "/error.log info;\n"
    << "events { worker_connections 4096; }\n"
    << "http {\n"
    << "  log_format fc '$request_id $status $fc_cold_start $fc_instance \"$request\"';\n"
    << "  access_log " << d << "/access.log fc;\n"
    << "  client_body_temp_path " << d << "/tmp/body;\n"
    << "  proxy_temp_path " << d << "/tmp/proxy;\n"
    << "  fastcgi_temp_path " << d << "/tmp/fastcgi;\n"
    << "  uwsgi_temp_path " << d << "/tmp/uwsgi;\n"
    << "  scgi_temp_path " << d << "/tmp/scgi;\n"
    << "  fc_runner " << (fc_runner_.empty() ? "unix:" + runner_socket() : fc_runner_) << ";\n"
    << "  client_max_body_size 64m;\n"
    << http_conf_ << "\n"
    << "  server {\n"
    << "    listen 127.0.0.1:" << port_ << (http2_ ? " http2" : "") << ";\n"
    << server_body << "\n"
    << "  }\n"
    << "}\n";
  return c.str();
}

std::pair<bool, std::string> Gateway::nginx_test_config(const std::string& server_conf) {
  std::string conf_path = path("nginx-test.conf");
  write_file(conf_path, nginx_conf(server_conf));
  auto [status, out] = run("/usr/sbin/nginx -t -p " + dir() + " -e " + path("error-test.log") + " -c " + conf_path);
  return {status == 0, out};
}

void Gateway::start_runner() {
  write_runner_config();
  std::vector<std::string> argv = runner_wrapper_;
  std::string runner = runner_path();
  if (!runner_user_.empty()) {
    // An unprivileged runner creates its socket here, and runs from here: the
    // checkout may sit below a directory only root can enter.
    chmod(dir().c_str(), 0777);
    runner = path("fc-runner");
    std::filesystem::copy_file(runner_path(), runner, std::filesystem::copy_options::overwrite_existing);
    chmod(runner.c_str(), 0755);
    for (const std::string& a : {std::string("setpriv"), "--reuid=" + runner_user_, std::string("--regid=nogroup"),
                                 std::string("--clear-groups"), std::string("--inh-caps=-all"),
                                 std::string("--bounding-set=-all")}) {
      argv.push_back(a);
    }
  }
  for (const auto& a : {runner, std::string("--config"), runner_config_path()}) argv.push_back(a);
  runner_.start(argv, path("runner.log"));
  bool up = wait_until(
      [&] {
        int fd = connect_unix(runner_socket());
        if (fd < 0) return false;
        close(fd);
        return true;
      },
      std::chrono::seconds(10));
  if (!up) throw std::runtime_error("fc-runner did not start; log:\n" + runner_log());
  // The socket accepts before the runner has installed its port guard and
  // started its functions (their start lines follow the "instance ports"
  // one): tests that read the start-up log find it whole.
  wait_until(
      [&] {
        std::string log = runner_log();
        return log.find("instance ports ") != std::string::npos &&
               (functions_yaml_.empty() || log.find(": runtime ") != std::string::npos);
      },
      std::chrono::seconds(10));
}

bool Gateway::runner_logged(const std::string& text, std::chrono::milliseconds timeout) const {
  return wait_until([&] { return runner_log().find(text) != std::string::npos; }, timeout);
}

void Gateway::stop_runner(int sig) { runner_.stop(sig, std::chrono::seconds(5)); }

void Gateway::stop_nginx() { nginx_.stop(SIGQUIT, std::chrono::seconds(3)); }

void Gateway::start() {
  start_runner();
  std::string conf_path = path("nginx.conf");
  write_file(conf_path, nginx_conf(server_conf_));
  nginx_.start({"/usr/sbin/nginx", "-p", dir(), "-e", path("error.log"), "-c", conf_path},
               path("nginx.out"));
  bool up = wait_until([&] { return tcp_accepts(port_); }, std::chrono::seconds(10));
  if (!up) {
    throw std::runtime_error("nginx did not start; output:\n" + read_file(path("nginx.out")) +
                             read_file(path("error.log")));
  }
}

}  // namespace fc::e2e
