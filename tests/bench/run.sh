#!/usr/bin/env bash
# `make bench`: wrk (1 thread, 16 connections, BENCH_SECONDS each, rounds
# alternating between targets) against
#   direct  nginx `return 200`
#   2hop    nginx -> proxy_pass (keepalive, unix socket) -> a middle nginx
#           -> proxy_pass (keepalive) -> backend nginx   (the two-hop floor)
#   fc      nginx -> fc_function (`upstream { keepalive }`, unix socket) ->
#           fc-runner -> the same backend program as a custom-runtime instance
#   fc-default  the same with the documented default `fc_runner unix:...;`
#           (no upstream{}: the module's own keepalive pool, fc_keepalive)
# The middle nginx and fc-runner sit at the same place, each a process of its
# own with one worker/loop; the runner logs at its default level (info: the
# FC Invoke Start/End lines of every request).
# and prints requests/s, p50, p99, the fc / 2hop and fc-default / fc ratios,
# then the instructions per request of each process (instructions.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/common.sh" run
mkdir -p "$work/fn"
front=$(free_port); backend=$(free_port)

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
# One function per cold-start run, so each first request is a real cold start.
cold_runs=${BENCH_COLD_RUNS:-20}
for i in $(seq 0 $((cold_runs - 1))); do
  cat >> "$work/fc-runner.yaml" <<YAML
  cold$i:
    runtime: custom
    codeUri: $root/conf-examples/quickstart/functions/hello
    customRuntimeConfig: { command: [/usr/bin/python3], args: [server.py] }
YAML
done
setsid "$root/build/fc-runner" --config "$work/fc-runner.yaml" >"$work/runner.log" 2>&1 & pids+=($!)

# The middle hop of the floor: nginx proxying to the backend.
mkdir -p "$work/middle/tmp"
cat > "$work/middle/nginx.conf" <<CONF
worker_processes 1;
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
worker_processes 1;
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
    location = /direct { default_type text/plain; return 200 "hello\n"; }
    location = /2hop { proxy_pass http://middle; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location = /fc { fc_runner runner; fc_function trivial; }
    location = /fc-default { fc_runner unix:$work/fc.sock; fc_function trivial; }
    location ~ ^/cold/(?<fn>[a-z0-9]+)$ { fc_runner runner; fc_function \$fn; }
  }
}
CONF
user=()
[ "$(id -u)" = 0 ] && user=(-g "user root;")
setsid /usr/sbin/nginx -p "$work/middle/" -c "$work/middle/nginx.conf" "${user[@]}" >"$work/middle.log" 2>&1 & pids+=($!)
setsid /usr/sbin/nginx -p "$work/" -c "$work/nginx.conf" "${user[@]}" >"$work/nginx.log" 2>&1 & pids+=($!)

for i in $(seq 100); do
  curl -sf "http://127.0.0.1:$front/fc" >/dev/null 2>&1 && break
  sleep 0.1
done
targets=(direct 2hop fc fc-default)
for t in "${targets[@]}"; do
  curl -sf "http://127.0.0.1:$front/$t" >/dev/null || { echo "bench: /$t does not answer"; cat "$work"/*.log; exit 1; }
done

results="$work/results.txt"
: > "$results"
uptime | sed 's/^/machine: /'
for round in $(seq "$rounds"); do
  for t in "${targets[@]}"; do
    wrk -t1 -c16 -d"${seconds}s" --latency "http://127.0.0.1:$front/$t" > "$work/wrk-$t-$round.txt"
    echo "$t $work/wrk-$t-$round.txt" >> "$results"
  done
done

python3 "$here/report.py" "$results"
uptime | sed 's/^/machine: /'
"$here/instructions.sh"
python3 "$here/coldstart.py" "$front" cold "$cold_runs" "$root/conf-examples/quickstart/functions/hello"
# BENCH_CORE_ONLY=1: only the rows above (the python and node rows take minutes).
if [ "${BENCH_CORE_ONLY:-0}" != 1 ]; then
  "$here/python.sh"
  "$here/node.sh"
fi
"$here/memory.sh"
