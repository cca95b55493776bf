"""Cold-start row of `make bench`.

Time from request to first response byte for a cold custom-runtime function
(the quickstart's stdlib hello server) through nginx + fc-runner, against the
bare time for the same program to start and answer its first request on its
own (spawn, poll its port every 1 ms, GET).  Medians over N runs each,
alternating; the spread (quartiles of each, and of the paired differences)
follows, since one shared machine's load moves single runs by more than
the target.

usage: coldstart.py FRONT_PORT FUNCTION_PREFIX N SERVER_DIR
"""
import os
import socket
import statistics
import subprocess
import sys
import time

front, prefix, n, server_dir = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]


def first_byte(port, path, deadline):
    """Connects (retrying while refused) and returns when the first response byte arrives."""
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
    data = s.recv(1)
    s.close()
    if not data:
        raise RuntimeError("no response")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def bare_once():
    port = free_port()
    env = dict(os.environ, FC_SERVER_PORT=str(port))
    t0 = time.monotonic()
    # A session of its own, as the runner gives every instance (setsid): with
    # the kernel's autogroup scheduling a session is a scheduling group, and
    # the bare program must not share the bench's (or a build's in it).
    proc = subprocess.Popen(["/usr/bin/python3", "server.py"], cwd=server_dir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        first_byte(port, "/", t0 + 10)
        return time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()


def gateway_once(i):
    t0 = time.monotonic()
    first_byte(front, "/cold/%s%d" % (prefix, i), t0 + 10)
    return time.monotonic() - t0


bare, cold = [], []
for i in range(n):
    bare.append(bare_once())
    cold.append(gateway_once(i))

mb, mc = statistics.median(bare) * 1000, statistics.median(cold) * 1000


def spread(values):
    q = statistics.quantiles([v * 1000 for v in values], n=4) if len(values) > 1 else [values[0] * 1000] * 3
    return "%.1f / %.1f / %.1f" % (q[0], q[1], q[2])


print()
print("cold start (median of %d)   bare program %.1f ms   through fc %.1f ms   overhead %+.1f ms  (target <= +10 ms)"
      % (n, mb, mc, mc - mb))
print("  quartiles (ms): bare %s   through fc %s   paired differences %s"
      % (spread(bare), spread(cold), spread([c - b for b, c in zip(bare, cold)])))
