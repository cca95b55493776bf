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

{ echo "listen: unix:$work/fc.sock"; echo "functions:"; trivial_function_yaml; } > "$work/fc-runner.yaml"
# One function per cold-start run, so each first request is a real cold start.
for i in $(seq 0 $((cold_runs - 1))); do
  cat >> "$work/fc-runner.yaml" <<YAML
  cold$i:
    runtime: custom
    codeUri: $root/conf-examples/quickstart/functions/hello
    customRuntimeConfig: { command: [/usr/bin/python3], args: [server.py] }
YAML
done
setsid "${FC_RUNNER:-$root/build/fc-runner}" --config "$work/fc-runner.yaml" >"$work/runner.log" 2>&1 & pids+=($!)

# The middle hop of the floor: nginx proxying to the backend.
middle_nginx_conf "worker_processes 1;" "$backend"

{
  nginx_conf_head "$work" "worker_processes 1;" "$root/build/ngx_http_fc_module.so"
  cat <<CONF
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
} > "$work/nginx.conf"
start_nginx "$work/middle" "$work/middle.log"
start_nginx "$work" "$work/nginx.log"

wait_for "http://127.0.0.1:$front/fc"
targets=(direct 2hop fc fc-default)
for t in "${targets[@]}"; do wait_for "http://127.0.0.1:$front/$t" 1; done

# BENCH_COLD_ONLY=1: only the cold-start row (FC_RUNNER=path: another
# runner build, for a before/after pair).
if [ "${BENCH_COLD_ONLY:-0}" = 1 ]; then
  uptime | sed 's/^/machine: /'
  python3 "$here/coldstart.py" "$front" cold "$cold_runs" "$root/conf-examples/quickstart/functions/hello"
  exit 0
fi

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
