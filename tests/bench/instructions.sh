#!/usr/bin/env bash
# Instructions per request (issue 11 item 3), counted by callgrind: repeatable
# on a loaded machine where requests/s are not. The front nginx (one process,
# master_process off), the middle nginx and fc-runner (default log level) run
# under callgrind, the backend natively. For each target, after a warm-up,
# the counters are zeroed, exactly BENCH_INSN_REQUESTS requests are sent over
# 16 keep-alive connections (fixed_load.py), and the counters are dumped:
#   front nginx   /2hop (proxy_pass + upstream keepalive) against /fc (the
#                 documented default `fc_runner unix:...;`, module keepalive)
#                 and /fc-upstream (`upstream { keepalive }`)
#                 and /fc-python (the python3 runtime's hello-world WSGI app,
#                 one instance, instanceConcurrency 1: the runner's side of
#                 the python rows, issue 7; no peer)
#   middle hop    the middle nginx (2hop) against fc-runner (fc)
# `instructions.sh [--profile DIR]` also keeps the callgrind files there.
# BENCH_INSN_BODY=N: every request a POST of N body bytes instead of a GET.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/common.sh" insn
profile_dir=
[ "${1:-}" = --profile ] && profile_dir=$2 && mkdir -p "$profile_dir"
requests=${BENCH_INSN_REQUESTS:-2000}
body=${BENCH_INSN_BODY:-}
runner_bin=${FC_RUNNER:-$root/build/fc-runner}   # FC_RUNNER=path: another build (a baseline)
front=$(free_port); backend=$(free_port)
# The runner's instance guard is exec'd natively (FC_RUNNER_GUARD_EXE: under
# valgrind /proc/self/exe is the tool), so is the instance.
cg=(valgrind --tool=callgrind --compress-strings=no --compress-pos=no)

setsid "$here/backend.sh" "$backend" >"$work/backend.log" 2>&1 & pids+=($!)

{ echo "listen: unix:$work/fc.sock"; echo "functions:"; trivial_function_yaml; } > "$work/fc-runner.yaml"
cat >> "$work/fc-runner.yaml" <<YAML
  python:
    runtime: python3
    codeUri: $here/python
    handler: hello.app
    maxInstances: 1
YAML
FC_RUNNER_GUARD_EXE=$runner_bin setsid "${cg[@]}" --callgrind-out-file="$work/cg.runner" \
  "$runner_bin" --config "$work/fc-runner.yaml" >"$work/runner.log" 2>&1 & pids+=($!)
runner_pid=$!

middle_nginx_conf "master_process off;" "$backend"
{
  nginx_conf_head "$work" "master_process off;" "$root/build/ngx_http_fc_module.so"
  cat <<CONF
  upstream middle { server unix:$work/middle.sock; keepalive 32; }
  upstream runner { server unix:$work/fc.sock; keepalive 32; }
  server {
    listen 127.0.0.1:$front;
    keepalive_requests 1000000;
    location = /2hop { proxy_pass http://middle; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location = /fc { fc_runner unix:$work/fc.sock; fc_function trivial; }
    location = /fc-upstream { fc_runner runner; fc_function trivial; }
    location = /fc-python { fc_runner runner; fc_function python; }
  }
}
CONF
} > "$work/nginx.conf"
start_nginx "$work/middle" "$work/middle.log" "${cg[@]}" --callgrind-out-file="$work/cg.middle"
middle_pid=$!
start_nginx "$work" "$work/nginx.log" "${cg[@]}" --callgrind-out-file="$work/cg.front"
front_pid=$!

for t in 2hop fc fc-upstream fc-python; do wait_for "http://127.0.0.1:$front/$t" 300; done

dumps=0
# insn TARGET PEER_NAME PEER_PID: prints "TARGET front_per_request peer_per_request"
insn() {
  local t=$1 peer=$2 peer_pid=$3
  python3 "$here/fixed_load.py" "$front" "/$t" 200 16 $body >/dev/null   # warm-up: pools, connections
  callgrind_control -z "$front_pid" >/dev/null 2>&1
  callgrind_control -z "$peer_pid" >/dev/null 2>&1
  python3 "$here/fixed_load.py" "$front" "/$t" "$requests" 16 $body >/dev/null
  callgrind_control -d "$front_pid" >/dev/null 2>&1
  callgrind_control -d "$peer_pid" >/dev/null 2>&1
  local f p
  f=$(ls -t "$work"/cg.front.* | head -1); p=$(ls -t "$work/cg.$peer".* | head -1)
  if [ -n "$profile_dir" ]; then cp "$f" "$profile_dir/front-$t.cg"; cp "$p" "$profile_dir/$peer-$t.cg"; fi
  echo "$t $(awk '/^(summary|totals):/ {print $2; exit}' "$f") $(awk '/^(summary|totals):/ {print $2; exit}' "$p")"
}
{
  insn 2hop middle "$middle_pid"
  insn fc runner "$runner_pid"
  insn fc-upstream runner "$runner_pid"
  insn fc-python runner "$runner_pid"
} > "$work/insn.txt"
python3 - "$work/insn.txt" "$requests" <<'PY'
import os
import sys
rows = {}
for line in open(sys.argv[1]):
    t, f, p = line.split()
    rows[t] = (int(f), int(p))
n = int(sys.argv[2])
body = os.environ.get("BENCH_INSN_BODY")
print("instructions per request (callgrind, %d requests%s, 16 connections)"
      % (n, ", POST of %s bytes" % body if body else ""))
print("%-12s %14s %14s" % ("target", "front nginx", "middle hop"))
for t, (f, p) in rows.items():
    print("%-12s %14.0f %14.0f   (%s)" % (t, f / n, p / n, "middle nginx" if t == "2hop" else "fc-runner"))
two = rows["2hop"]
for t in ("fc", "fc-upstream"):
    print("%-12s front nginx fc / proxy_pass: %.2f (target <= 1.00)   fc-runner / middle nginx: %.2f (target <= 1.00)"
          % (t, rows[t][0] / two[0], rows[t][1] / two[1]))
PY
