#include "listening_ports.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string_view>

#include "netns.h"

namespace fc {

namespace {

// A process tree deeper or wider than this is not walked further (a fork
// bomb must not make the scan expensive).
constexpr size_t kMaxProcesses = 256;

std::string read_small_file(const std::string& path) {
  std::string text;
  if (FILE* f = std::fopen(path.c_str(), "re")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  return text;
}


// Inodes of the sockets the processes hold ("socket:[12345]").
std::set<unsigned long> socket_inodes(const std::vector<int>& pids) {
  std::set<unsigned long> inodes;
  for (int pid : pids) {
    std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* fds = opendir(fd_dir.c_str());
    if (fds == nullptr) continue;
    while (dirent* fd = readdir(fds)) {
      if (fd->d_name[0] == '.') continue;
      char target[64];
      ssize_t n = readlinkat(dirfd(fds), fd->d_name, target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      if (std::strncmp(target, "socket:[", 8) != 0) continue;
      inodes.insert(std::strtoul(target + 8, nullptr, 10));
    }
    closedir(fds);
  }
  return inodes;
}

// Every TCP LISTEN socket of `family` in the netlink socket's namespace (on
// `port` only, when not 0: the kernel skips the others, so the answer stays
// small however many servers the host runs).
void dump_listeners(int nl, int family, const std::set<unsigned long>& wanted, std::vector<ListeningPort>& out,
                    int port) {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message{};
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.request.sdiag_family = static_cast<uint8_t>(family);
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = 1u << TCP_LISTEN;
  message.request.id.idiag_sport = htons(static_cast<uint16_t>(port));
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(nl, &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) return;
  alignas(nlmsghdr) char buf[16384];
  for (;;) {
    ssize_t received = recv(nl, buf, sizeof buf, 0);
    if (received <= 0) return;
    int len = static_cast<int>(received);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) return;
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      auto* diag = reinterpret_cast<inet_diag_msg*>(NLMSG_DATA(h));
      if (!wanted.contains(diag->idiag_inode)) continue;
      char address[INET6_ADDRSTRLEN] = "?";
      inet_ntop(family, diag->id.idiag_src, address, sizeof address);
      out.push_back({address, ntohs(diag->id.idiag_sport)});
    }
  }
}

}  // namespace

std::vector<int> process_tree(int root) {
  std::vector<int> pids = {root};
  for (size_t i = 0; i < pids.size() && pids.size() < kMaxProcesses; i++) {
    std::string task_dir = "/proc/" + std::to_string(pids[i]) + "/task";
    DIR* tasks = opendir(task_dir.c_str());
    if (tasks == nullptr) continue;
    while (dirent* task = readdir(tasks)) {
      if (task->d_name[0] == '.') continue;
      std::string children = read_small_file(task_dir + "/" + task->d_name + "/children");
      const char* p = children.c_str();
      char* end = nullptr;
      for (long pid; (pid = std::strtol(p, &end, 10)) > 0 && end != p; p = end) {
        if (pids.size() < kMaxProcesses) pids.push_back(static_cast<int>(pid));
      }
    }
    closedir(tasks);
  }
  return pids;
}

namespace {

std::vector<ListeningPort> listening_ports_on(int root_pid, bool own_netns, int port) {
  std::vector<ListeningPort> ports;
  if (root_pid <= 0) return ports;
  std::set<unsigned long> inodes = socket_inodes(process_tree(root_pid));
  if (inodes.empty()) return ports;
  int nl = own_netns ? socket_in_namespace_of(root_pid, AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
                     : ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return ports;
  dump_listeners(nl, AF_INET, inodes, ports, port);
  dump_listeners(nl, AF_INET6, inodes, ports, port);
  ::close(nl);
  std::sort(ports.begin(), ports.end(),
            [](const auto& a, const auto& b) { return a.port != b.port ? a.port < b.port : a.address < b.address; });
  ports.erase(std::unique(ports.begin(), ports.end(),
                          [](const auto& a, const auto& b) { return a.port == b.port && a.address == b.address; }),
              ports.end());
  return ports;
}

}  // namespace

std::vector<ListeningPort> listening_ports(int root_pid, bool own_netns) { return listening_ports_on(root_pid, own_netns, 0); }

bool holds_listener(int root_pid, bool own_netns, int port) {
  std::string fd_dir = "/proc/" + std::to_string(root_pid) + "/fd";
  DIR* readable = opendir(fd_dir.c_str());
  if (readable == nullptr) return true;
  closedir(readable);
  int nl = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return true;
  ::close(nl);
  for (const ListeningPort& found : listening_ports_on(root_pid, own_netns, port)) {
    if (found.port == port) return true;
  }
  return false;
}

std::string describe(const std::vector<ListeningPort>& ports) {
  std::string text;
  for (size_t i = 0; i < ports.size();) {
    int port = ports[i].port;
    std::string addresses;
    for (; i < ports.size() && ports[i].port == port; i++) {
      const std::string& a = ports[i].address;
      addresses += fmt::format("{}{}:{}", addresses.empty() ? "" : ", ",
                               a.find(':') != std::string::npos ? "[" + a + "]" : a, port);
    }
    text += fmt::format("{}{} ({})", text.empty() ? "" : ", ", port, addresses);
  }
  return text;
}

}  // namespace fc
