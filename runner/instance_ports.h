// Instance ports belong to the runner (issue 9).  Instances on the host's
// network listen on a port from the runner's own range (`instancePorts`), so
// ports are handed out, not guessed with bind(0)-then-close; and when the
// runner is root, an nftables table of its own rejects every TCP connection
// to that range that does not carry the runner's socket mark (SO_MARK needs
// CAP_NET_ADMIN, which instances do not have once they run unprivileged), and
// drops packets for it from any interface but loopback.  Instances in their
// own network namespace are not reachable from outside it at all.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace fc {

class InstancePorts;

// One port handed out; back to the range when the lease goes.
class PortLease {
 public:
  PortLease(InstancePorts& owner, int port) : owner_(owner), port_(port) {}
  ~PortLease();
  PortLease(const PortLease&) = delete;
  PortLease& operator=(const PortLease&) = delete;
  int port() const { return port_; }

 private:
  InstancePorts& owner_;
  int port_;
};

class InstancePorts {
 public:
  // The mark the runner puts on its connections to instances; the guard
  // table accepts nothing else on the range.
  static constexpr unsigned kRunnerMark = 0x46430009;

  InstancePorts(int first, int last);
  ~InstancePorts();  // removes the guard table
  InstancePorts(const InstancePorts&) = delete;
  InstancePorts& operator=(const InstancePorts&) = delete;

  // Installs the guard (start-up, may run nft: not on the loop's hot path).
  // Returns a line for the start log: what protects the ports, or why
  // nothing does.
  std::string install_guard();
  bool guarded() const { return !table_.empty(); }
  int first() const { return first_; }
  int last() const { return last_; }
  std::string range() const;  // "20000-29999"

  // A free port of the range, round robin (a port just given back is the
  // last to be reused); nullptr when every port is leased or taken by
  // another process.  A socket call per port tried, no I/O.
  std::unique_ptr<PortLease> acquire();

  // A TCP socket (non-blocking, close-on-exec) carrying the runner's mark,
  // for a connection to an instance port; -1 with errno on failure.
  static int marked_socket();

  // Why instance ports would not be protected, or empty (for --check:
  // root and a working nft).
  static std::string protection_problem();

 private:
  // The same, with `nft list tables`'s output.
  static std::string protection_problem(std::string& tables);

 public:

 private:
  friend class PortLease;
  void release(int port);

  int first_;
  int last_;
  int next_;
  std::vector<bool> leased_;
  std::string table_;  // "inet fc_runner_<pid>" once installed
};

}  // namespace fc
