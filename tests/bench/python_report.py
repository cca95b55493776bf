"""The python rows of `make bench`: wrk outputs -> table (mean over rounds),
then cold start against `python3 -c 'import index'`.

usage: python_report.py RESULTS_FILE FRONT_PORT COLD_PREFIX N CODE_DIR
"""
import http.client
import os
import re
import statistics
import subprocess
import sys
import time

from wrk import parse

results, front, prefix, n, code_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")
runs = {}
for line in open(results):
    target, path, front_ticks, backend_ticks, runner_ticks = line.split()
    r = parse(path)
    requests = r["requests"]
    r["front_us"] = int(front_ticks) * TICK_US / requests
    r["backend_us"] = int(backend_ticks) * TICK_US / requests
    r["runner_us"] = int(runner_ticks) * TICK_US / requests if target.startswith("fc") else 0.0
    runs.setdefault(target, []).append(r)
rows = {}
for target, rs in runs.items():
    rows[target] = {k: sum(r[k] for r in rs) / len(rs) for k in ("rps", "p50", "p99", "front_us", "backend_us", "runner_us")}
    rows[target]["errors"] = sum(r["errors"] for r in rs)

print("%-12s %11s %8s %8s %8s %13s %15s %17s" % ("python", "requests/s", "p50 ms", "p99 ms", "non-2xx",
                                                 "front CPU/req", "backend CPU/req", "(of it fc-runner)"))
for target in ("fc-wsgi", "fc-wsgi-c4", "fc-event", "uwsgi", "gunicorn"):
    if target in rows:
        r = rows[target]
        print("%-12s %11.0f %8.3f %8.3f %8d %11.1f us %13.1f us %15s" % (
            target, r["rps"], r["p50"], r["p99"], r["errors"], r["front_us"], r["backend_us"],
            "%.1f us" % r["runner_us"] if target.startswith("fc") else "-"))
print("(backend: fc = fc-runner and its instances; uwsgi, gunicorn = their processes)")
if "uwsgi" in rows:
    u = rows["uwsgi"]
    print()
    for target, goal in (("fc-wsgi", 1.0), ("fc-wsgi-c4", 1.0), ("fc-event", 1.2)):
        if target in rows:
            print("%-8s / uWSGI throughput: %.2f (target >= %.1f), p99: %.2f (target <= 1.0)" % (
                target, rows[target]["rps"] / u["rps"], goal, rows[target]["p99"] / u["p99"]))


def cold_once(i):
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", front, timeout=30)
    c.request("POST", "/py/cold/%s%d" % (prefix, i), body=b"x")
    r = c.getresponse()
    r.read(1)
    elapsed = time.monotonic() - t0
    status = r.status
    c.close()
    if status != 200:
        raise RuntimeError("cold start %d answered %d" % (i, status))
    return elapsed


def bare_once():
    t0 = time.monotonic()
    subprocess.run(["/usr/bin/python3", "-c", "import index"], cwd=code_dir, check=True)
    return time.monotonic() - t0


cold, bare = [], []
for i in range(n):
    bare.append(bare_once())
    cold.append(cold_once(i))
mc, mb = statistics.median(cold) * 1e3, statistics.median(bare) * 1e3
print()
print("python cold start, request to first byte (median of %d): %.1f ms; bare `python3 -c 'import index'`: "
      "%.1f ms; difference %.1f ms (target <= 15)" % (n, mc, mb, mc - mb))
