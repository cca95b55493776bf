#!/usr/bin/env python3
"""What the private view costs a cold start (issue 9): the instance guard
spawned as the runner spawns it, to the app's first output (its exec done),
without and with the isolation options, alternating, N times each.

  tests/bench/isolation_coldstart.py build/fc-runner 40
"""
import os, subprocess, sys, time, statistics
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
runner = os.path.abspath(sys.argv[1]); code = os.path.dirname(os.path.abspath(__file__)); n = int(sys.argv[2])
sandbox = ["--nproc", "2000", "--nofile", "1024", "--uid", "62000", "--gid", "62000", "--sandbox", "--code", code,
           "--tmp-size", "512", "--ro", os.path.join(root, "runner/runtimes"), "--ro", os.path.join(root, "build/runtimes/python3")]
def once(extra):
    # spawn to the app's first output (its exec done): the part of a cold start
    t = time.perf_counter()
    p = subprocess.Popen([runner, "--exec-instance", str(os.getpid())] + extra + ["--", "/bin/echo", "up"], cwd=code, stdout=subprocess.PIPE)
    p.stdout.read(2)
    d = (time.perf_counter() - t) * 1000
    p.wait()
    return d
plain, iso = [], []
for _ in range(n):
    plain.append(once([])); iso.append(once(sandbox))
print("guard alone: median %.1f ms; guard with uid+rlimits+nnp+namespaces+root: median %.1f ms; delta of medians %.1f ms; median of paired deltas %.1f ms (n=%d)" % (
    statistics.median(plain), statistics.median(iso), statistics.median(iso) - statistics.median(plain),
    statistics.median([b - a for a, b in zip(plain, iso)]), n))
