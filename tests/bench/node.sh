#!/usr/bin/env bash
# The node rows of `make bench` (run.sh calls this): wrk (1 thread, 16
# connections, BENCH_SECONDS each, rounds alternating), one front nginx with
# one worker, against
#   node-plain  nginx -> proxy_pass (keepalive) -> plain http.createServer (node/plain.js)
#   node-fc     nginx -> fc_function (keepalive, unix socket) -> fc-runner ->
#               the nodejs runtime running node/index.js (FC http handler), one instance
# and the cold start: request to first byte for a cold nodejs function through
# fc against `node -e "require('./index')"` of the same code, medians.
# FC_RUNNER=path runs another fc-runner build (a baseline).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/common.sh" node
node=${BENCH_NODE:-/usr/bin/node}
front=$(free_port); plain=$(free_port)

setsid "$node" "$here/node/plain.js" "$plain" >"$work/plain.log" 2>&1 & pids+=($!)

cat > "$work/fc-runner.yaml" <<YAML
listen: unix:$work/fc.sock
logLevel: warn
functions:
  hello:
    runtime: nodejs
    codeUri: $here/node
    handler: index.handler
    interpreter: $node
    instanceConcurrency: 100
    maxInstances: 1
YAML
for i in $(seq 0 $((cold_runs - 1))); do
  cat >> "$work/fc-runner.yaml" <<YAML
  cold$i:
    runtime: nodejs
    codeUri: $here/node
    handler: index.handler
    interpreter: $node
YAML
done
setsid "${FC_RUNNER:-$root/build/fc-runner}" --config "$work/fc-runner.yaml" >"$work/runner.log" 2>&1 & pids+=($!)

{
  nginx_conf_head "$work" "worker_processes 1;" "$root/build/ngx_http_fc_module.so"
  cat <<CONF
  upstream plain { server 127.0.0.1:$plain; keepalive 32; }
  upstream runner { server unix:$work/fc.sock; keepalive 32; }
  server {
    listen 127.0.0.1:$front;
    keepalive_requests 1000000;
    location = /node-plain { proxy_pass http://plain; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location = /node-fc { fc_runner runner; fc_function hello; }
    location ~ ^/cold/(?<fn>[a-z0-9]+)$ { fc_runner runner; fc_function \$fn; }
  }
}
CONF
} > "$work/nginx.conf"
start_nginx "$work" "$work/nginx.log"

for t in node-plain node-fc; do
  wait_for "http://127.0.0.1:$front/$t" 200
  body=$(curl -sf "http://127.0.0.1:$front/$t") || { echo "bench: /$t does not answer"; cat "$work"/*.log; exit 1; }
  [ "$body" = hello ] || { echo "bench: /$t answered '$body'"; exit 1; }
done

# CPU time per request of each process on the path (utime + stime ticks).
instance_pid=""
for p in $(pgrep -f "runtimes/nodejs/bootstrap.js"); do
  # The node process itself (not its guard), of the function `hello`.
  [ "$(readlink "/proc/$p/exe")" = "$(readlink -f "$node")" ] || continue
  if tr '\0' '\n' < "/proc/$p/environ" | grep -qx "FC_FUNCTION_NAME=hello"; then instance_pid=$p; break; fi
done
[ -n "$instance_pid" ] || { echo "bench: no instance of hello found"; exit 1; }
worker_pid=$(pgrep -P "$(cat "$work/nginx.pid")")
runner_pid=${pids[1]}
plain_pid=${pids[0]}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
snapshot() { for p in "$worker_pid" "$runner_pid" "$instance_pid" "$plain_pid"; do cpu_ticks "$p"; done | paste -sd' '; }

results="$work/results.txt"
: > "$results"
for round in $(seq "$rounds"); do
  for t in node-plain node-fc; do
    before=$(snapshot)
    wrk -t1 -c16 -d"${seconds}s" --latency "http://127.0.0.1:$front/$t" > "$work/wrk-$t-$round.txt"
    echo "$t $work/wrk-$t-$round.txt $before $(snapshot)" >> "$results"
  done
done

python3 - "$results" "$here" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[2])
from wrk import parse
TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")
PROCS = ("front nginx", "fc-runner", "nodejs instance", "plain node")
runs = {}
for line in open(sys.argv[1]):
    target, path, *ticks = line.split()
    r = parse(path)
    requests = r["requests"]
    before, after = ticks[:4], ticks[4:]
    runs.setdefault(target, []).append({
        **r,
        **{name: (int(a) - int(b)) * TICK_US / max(requests, 1) for name, b, a in zip(PROCS, before, after)}})
keys = ("rps", "p50", "p99", "errors") + PROCS
rows = {t: {k: sum(r[k] for r in rs) / len(rs) for k in keys} for t, rs in runs.items()}
print()
print("%-10s %12s %10s %10s %8s" % ("target", "requests/s", "p50 ms", "p99 ms", "non-2xx"))
for t in ("node-plain", "node-fc"):
    r = rows[t]
    print("%-10s %12.0f %10.3f %10.3f %8d" % (t, r["rps"], r["p50"], r["p99"], r["errors"]))
print()
print("node fc / plain http.createServer throughput: %.2f  (target >= 0.90)" % (rows["node-fc"]["rps"] / rows["node-plain"]["rps"]))
print("node fc / plain http.createServer p99:        %.2f" % (rows["node-fc"]["p99"] / rows["node-plain"]["p99"]))
print()
print("CPU us/request  %s" % "  ".join("%15s" % p for p in PROCS))
for t in ("node-plain", "node-fc"):
    print("%-14s  %s" % (t, "  ".join("%15.1f" % rows[t][p] for p in PROCS)))
PY

# Cold start, alternating: the bare load of the code, then a cold function.
python3 - "$front" "$cold_runs" "$here/node" "$node" <<'PY'
import socket, statistics, subprocess, sys, time
front, n, code, node = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
def bare():
    t0 = time.monotonic()
    subprocess.run([node, "-e", "require('./index')"], cwd=code, check=True)
    return time.monotonic() - t0
def cold(i):
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", front), timeout=10)
    s.sendall(b"GET /cold/cold%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % i)
    if not s.recv(1):
        raise RuntimeError("no response")
    s.close()
    return time.monotonic() - t0
b, c = [], []
for i in range(n):
    b.append(bare())
    c.append(cold(i))
mb, mc = statistics.median(b) * 1000, statistics.median(c) * 1000
print()
print("node cold start (median of %d)   node -e \"require('./index')\" %.1f ms   through fc %.1f ms   overhead %+.1f ms  (target <= +15 ms)"
      % (n, mb, mc, mc - mb))
PY
