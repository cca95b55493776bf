// Network namespaces per instance (issue 3): apps that listen on a fixed
// caPort each get their own namespace (created by the guard), and the runner
// opens its sockets to them inside it.  setns() applies to the calling
// thread only, and the loop thread switches back at once, so every other
// socket of the runner stays in the runner's own namespace.
#pragma once

namespace fc {

// True when this process may create network namespaces (probed once at
// start-up with a throwaway unshare in a child).
bool network_namespaces_available();
// Why a `network: private` function cannot be served without them.
inline constexpr const char* kPrivateNetworkNeedsRoot =
    "private needs network namespaces, which the runner cannot create (it needs root)";

// A non-blocking TCP socket created in the network namespace of `pid`, or
// -1 (errno set) when it cannot be had, or -2 when `pid` still shares the
// runner's namespace (the guard has not unshared yet: try again shortly).
int socket_in_namespace_of(int pid);
// The same for any socket(domain, type, protocol), e.g. a NETLINK_SOCK_DIAG
// one to list the namespace's listening sockets.
int socket_in_namespace_of(int pid, int domain, int type, int protocol);

}  // namespace fc
