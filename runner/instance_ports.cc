#include "instance_ports.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace fc {

namespace {

constexpr const char* kNft = "/usr/sbin/nft";
constexpr const char* kTablePrefix = "fc_runner_";

// Runs nft with `input` on its stdin (`nft -f -`) or `args`; returns its exit
// status (-1: could not run) and its output.  Start-up and exit only.
int run_nft(const std::vector<std::string>& args, const std::string& input, std::string& output) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) return -1;
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return -1;
  }
  // Built before fork: the child only makes async-signal-safe calls.
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(kNft));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
    return -1;
  }
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    execv(kNft, argv.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  // The rules are a few hundred bytes: they fit the pipe, no deadlock.
  size_t written = 0;
  while (written < input.size()) {
    ssize_t n = write(in[1], input.data() + written, input.size() - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  close(in[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0) output.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  for (char& c : text) {
    if (c == '\n') c = ' ';
  }
  return text;
}

// Tables of runners that died without removing theirs (SIGKILL): their pid
// is gone.  A table of a live runner is never touched.
void remove_stale_tables(const std::string& listing) {
  std::istringstream lines(listing);
  for (std::string line; std::getline(lines, line);) {
    std::string prefix = std::string("table inet ") + kTablePrefix;
    if (line.rfind(prefix, 0) != 0) continue;
    std::string pid_text = line.substr(prefix.size());
    char* end = nullptr;
    long pid = std::strtol(pid_text.c_str(), &end, 10);
    if (end == pid_text.c_str() || *end != '\0' || pid <= 0) continue;
    if (kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::string ignored;
    if (run_nft({"delete", "table", "inet", kTablePrefix + pid_text}, "", ignored) == 0) {
      spdlog::info("removed the stale instance-port table {}{} of a runner that is gone", kTablePrefix, pid_text);
    }
  }
}

bool port_is_free(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int one = 1;
  // A listener (on 127.0.0.1 or the wildcard) makes the bind fail; sockets
  // in TIME_WAIT from an earlier instance do not, as they do not for apps
  // that set SO_REUSEADDR.
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return free;
}

}  // namespace

PortLease::~PortLease() { owner_.release(port_); }

InstancePorts::InstancePorts(int first, int last)
    : first_(first),
      last_(last),
      // Runners sharing a range (the default) start apart.
      next_(first + static_cast<int>(static_cast<unsigned>(getpid()) * 2654435761u % static_cast<unsigned>(last - first + 1))),
      leased_(static_cast<size_t>(last - first + 1), false) {}

InstancePorts::~InstancePorts() {
  if (table_.empty()) return;
  std::string output;
  if (run_nft({"delete", "table", "inet", table_}, "", output) != 0) {
    spdlog::warn("cannot remove the instance-port table inet {}: {}", table_, trimmed(output));
  }
}

std::string InstancePorts::range() const { return fmt::format("{}-{}", first_, last_); }

std::string InstancePorts::protection_problem() {
  std::string tables;
  return protection_problem(tables);
}

std::string InstancePorts::protection_problem(std::string& tables) {
  if (geteuid() != 0) return "the runner is not root (it needs CAP_NET_ADMIN for an nftables table)";
  if (access(kNft, X_OK) != 0) return fmt::format("{} is not there (install nftables)", kNft);
  if (run_nft({"list", "tables"}, "", tables) != 0) return fmt::format("nft does not work here: {}", trimmed(tables));
  return {};
}

std::string InstancePorts::install_guard() {
  std::string tables;
  std::string problem = protection_problem(tables);
  if (problem.empty()) {
    remove_stale_tables(tables);
    std::string name = kTablePrefix + std::to_string(getpid());
    // Loopback packets keep the sending socket's mark, so the input hook
    // sees the runner's mark on its own connections and nothing else has it.
    std::string rules = fmt::format(
        "table inet {0} {{\n"
        "  chain input {{\n"
        "    type filter hook input priority filter - 5; policy accept;\n"
        "    tcp dport {1}-{2} iifname != \"lo\" drop\n"
        "    tcp dport {1}-{2} meta mark != {3:#x} reject with tcp reset\n"
        "  }}\n"
        "}}\n",
        name, first_, last_, kRunnerMark);
    std::string output;
    int status = run_nft({"-f", "-"}, rules, output);
    if (status == 0) {
      table_ = name;
      return fmt::format(
          "instance ports {}: only the runner connects to them (nftables table inet {}: TCP without the "
          "runner's mark is rejected, other interfaces dropped)",
          range(), table_);
    }
    problem = fmt::format("nft refused the table: {}", trimmed(output));
  }
  return fmt::format("instance ports {} are NOT protected: {}; any local process can connect to an instance",
                     range(), problem);
}

std::unique_ptr<PortLease> InstancePorts::acquire() {
  const int size = last_ - first_ + 1;
  for (int i = 0; i < size; i++) {
    int port = first_ + (next_ - first_ + i) % size;
    size_t slot = static_cast<size_t>(port - first_);
    if (leased_[slot] || !port_is_free(port)) continue;
    leased_[slot] = true;
    next_ = port == last_ ? first_ : port + 1;
    return std::make_unique<PortLease>(*this, port);
  }
  return nullptr;
}

void InstancePorts::release(int port) {
  if (port >= first_ && port <= last_) leased_[static_cast<size_t>(port - first_)] = false;
}

int InstancePorts::marked_socket() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  unsigned mark = kRunnerMark;
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

}  // namespace fc
