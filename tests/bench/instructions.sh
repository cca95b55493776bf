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
#   middle hop    the middle nginx (2hop) against fc-runner (fc)
# `instructions.sh [--profile DIR]` also keeps the callgrind files there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/common.sh" insn
profile_dir=
[ "${1:-}" = --profile ] && profile_dir=$2 && mkdir -p "$profile_dir"
requests=${BENCH_INSN_REQUESTS:-2000}
front=$(free_port); backend=$(free_port)
# The runner's instance guard is exec'd natively (FC_RUNNER_GUARD_EXE: under
# valgrind /proc/self/exe is the tool), so is the instance.
cg=(valgrind --tool=callgrind --compress-strings=no --compress-pos=no)

setsid "$here/backend.sh" "$backend" >"$work/backend.log" 2>&1 & pids+=($!)

cat > "$work/fc-runner.yaml" <<YAML
listen: unix:$work/fc.sock
functions:
  trivial:
    runtime: custom
    codeUri: $here
    customRuntimeConfig: { command: [$here/backend.sh] }
    instanceConcurrency: 100
    maxInstances: 1
YAML
FC_RUNNER_GUARD_EXE=$root/build/fc-runner setsid "${cg[@]}" --callgrind-out-file="$work/cg.runner" \
  "$root/build/fc-runner" --config "$work/fc-runner.yaml" >"$work/runner.log" 2>&1 & pids+=($!)
runner_pid=$!

mkdir -p "$work/middle/tmp"
cat > "$work/middle/nginx.conf" <<CONF
master_process off;
daemon off;
pid $work/middle/nginx.pid;
error_log $work/middle/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/middle/tmp;
  proxy_temp_path $work/middle/tmp;
  upstream backend { server 127.0.0.1:$backend; keepalive 32; }
  server {
    listen unix:$work/middle.sock;
    keepalive_requests 1000000;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
cat > "$work/nginx.conf" <<CONF
load_module $root/build/ngx_http_fc_module.so;
master_process off;
daemon off;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/tmp;
  proxy_temp_path $work/tmp;
  upstream middle { server unix:$work/middle.sock; keepalive 32; }
  upstream runner { server unix:$work/fc.sock; keepalive 32; }
  server {
    listen 127.0.0.1:$front;
    keepalive_requests 1000000;
    location = /2hop { proxy_pass http://middle; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location = /fc { fc_runner unix:$work/fc.sock; fc_function trivial; }
    location = /fc-upstream { fc_runner runner; fc_function trivial; }
  }
}
CONF
user=()
[ "$(id -u)" = 0 ] && user=(-g "user root;")
setsid "${cg[@]}" --callgrind-out-file="$work/cg.middle" \
  /usr/sbin/nginx -p "$work/middle/" -c "$work/middle/nginx.conf" "${user[@]}" >"$work/middle.log" 2>&1 & pids+=($!)
middle_pid=$!
setsid "${cg[@]}" --callgrind-out-file="$work/cg.front" \
  /usr/sbin/nginx -p "$work/" -c "$work/nginx.conf" "${user[@]}" >"$work/nginx.log" 2>&1 & pids+=($!)
front_pid=$!

for t in 2hop fc fc-upstream; do
  for i in $(seq 300); do
    curl -sf "http://127.0.0.1:$front/$t" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$front/$t" >/dev/null || { echo "insn: /$t does not answer"; tail "$work"/*.log; exit 1; }
done

dumps=0
# insn TARGET PEER_NAME PEER_PID: prints "TARGET front_per_request peer_per_request"
insn() {
  local t=$1 peer=$2 peer_pid=$3
  python3 "$here/fixed_load.py" "$front" "/$t" 200 16 >/dev/null   # warm-up: pools, connections
  callgrind_control -z "$front_pid" >/dev/null 2>&1
  callgrind_control -z "$peer_pid" >/dev/null 2>&1
  python3 "$here/fixed_load.py" "$front" "/$t" "$requests" 16 >/dev/null
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
} > "$work/insn.txt"
python3 - "$work/insn.txt" "$requests" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    t, f, p = line.split()
    rows[t] = (int(f), int(p))
n = int(sys.argv[2])
print("instructions per request (callgrind, %d requests, 16 connections)" % n)
print("%-12s %14s %14s" % ("target", "front nginx", "middle hop"))
for t, (f, p) in rows.items():
    print("%-12s %14.0f %14.0f   (%s)" % (t, f / n, p / n, "middle nginx" if t == "2hop" else "fc-runner"))
two = rows["2hop"]
for t in ("fc", "fc-upstream"):
    print("%-12s front nginx fc / proxy_pass: %.2f (target <= 1.00)   fc-runner / middle nginx: %.2f (target <= 1.00)"
          % (t, rows[t][0] / two[0], rows[t][1] / two[1]))
PY
