// Where an instance does listen, read from its own sockets: the TCP sockets
// in LISTEN state of its network namespace (NETLINK_SOCK_DIAG, inet_diag),
// kept when their inode is one of the socket descriptors of the instance's
// processes (the guard and every descendant, /proc/PID/fd).  Used to find an
// app that listens on FC's default port 9000 instead of $FC_SERVER_PORT, and
// to name the ports of an app that never listens where it is expected.
// procfs and netlink answers come from the kernel's memory: no disk I/O, so
// this runs on the loop (measured in the README).
#pragma once

#include <string>
#include <vector>

namespace fc {

struct ListeningPort {
  std::string address;  // "127.0.0.1", "0.0.0.0", "::"
  int port = 0;
};

// The ports the process tree under `root_pid` listens on, sorted by port,
// each address once.  `own_netns`: the tree lives in its own network
// namespace (the dump is taken there).  Empty when it listens on none or
// the tree is gone.
std::vector<ListeningPort> listening_ports(int root_pid, bool own_netns);

// Whether the tree under `root_pid` itself holds a listener on `port`
// (so the port's accepting is its own, not another process's); true when
// that cannot be told (its /proc/PID/fd or netlink is not readable).
bool holds_listener(int root_pid, bool own_netns, int port);

// `root_pid` and its descendants (host pids, from /proc/PID/task/TID/children),
// breadth first, at most 256 (a fork bomb must not make a walk expensive).
std::vector<int> process_tree(int root_pid);

// "5000 (0.0.0.0:5000), 8080 (127.0.0.1:8080)"; "" for none.
std::string describe(const std::vector<ListeningPort>& ports);

}  // namespace fc
