#!/usr/bin/env bash
# Memory at scale (issue 11 item 4), printed as a table:
#   upload     a 1 GiB chunked upload through a function that discards it:
#              peak RSS growth (VmHWM) of fc-runner and of the nginx worker
#   download   a 1 GiB download from a function, likewise
#   sse        BENCH_SSE_STREAMS (1000) concurrent SSE streams, one event per
#              second: fc-runner's RSS with all of them open
#   functions  BENCH_FUNCTIONS (10000) functions in one config: `--check`
#              time, start-up time (to the socket listening) and idle RSS
# Targets: growth <= 8 MB; sse <= 16 MB; functions <= 1 s and <= 64 MB.
#   FC_RUNNER=path picks another fc-runner binary (to measure a baseline).
#   BENCH_MEMORY_CASES="sse functions" runs only those cases (default: all).
#   BENCH_SMAPS=FILE keeps the runner's /proc/PID/smaps with the SSE streams open.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/common.sh" memory
runner_bin=${FC_RUNNER:-$root/build/fc-runner}
module_so=${FC_MODULE:-$root/build/ngx_http_fc_module.so}
streams=${BENCH_SSE_STREAMS:-1000}
nfunctions=${BENCH_FUNCTIONS:-10000}
cases=" ${BENCH_MEMORY_CASES:-upload download sse functions} "
want() { [[ $cases == *" $1 "* ]]; }
apps=$root/tests/e2e/apps
front=$(free_port)
ulimit -n 65536 2>/dev/null || true

kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }   # kB of a /proc status field
mb() { awk -v x="$1" 'BEGIN {printf "%.1f", x / 1024}'; }
wait_for_socket() { for _ in $(seq 300); do [ -S "$1" ] && return 0; sleep 0.01; done; return 1; }

cat > "$work/fc-runner.yaml" <<YAML
listen: unix:$work/fc.sock
logLevel: warn
functions:
  stream:
    runtime: custom
    codeUri: $apps
    customRuntimeConfig: { command: [/usr/bin/python3], args: [stream_app.py] }
    instanceConcurrency: 100
    maxInstances: $(( (streams + 99) / 100 + 1 ))
    maxQueueSize: $((streams * 2))
    timeout: 600
YAML
setsid "$runner_bin" --config "$work/fc-runner.yaml" >"$work/runner.log" 2>&1 & pids+=($!)
runner_pid=$!
user=()
[ "$(id -u)" = 0 ] && user=(-g "user root;")
cat > "$work/nginx.conf" <<CONF
load_module $module_so;
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $work/tmp;
  proxy_temp_path $work/tmp;
  upstream runner { server unix:$work/fc.sock; keepalive 64; }
  server {
    listen 127.0.0.1:$front backlog=4096;
    client_max_body_size 0;
    location /stream/ { rewrite ^/stream(/.*)\$ \$1 break; fc_runner runner; fc_function stream; }
  }
}
CONF
setsid /usr/sbin/nginx -p "$work/" -c "$work/nginx.conf" "${user[@]}" >"$work/nginx.log" 2>&1 & pids+=($!)
for _ in $(seq 200); do
  curl -sf "http://127.0.0.1:$front/stream/bytes?n=1" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$front/stream/bytes?n=1" >/dev/null || { echo "memory: the function does not answer"; cat "$work"/*.log; exit 1; }
worker_pid=$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)

echo "memory (issue 11 item 4; load average $(cut -d' ' -f1-3 /proc/loadavg)):"
printf "  %-44s %10s %10s\n" "case" "fc-runner" "nginx wkr"
# Peak RSS growth: VmHWM after minus VmHWM before (the peak so far).
for dir in upload download; do
  want $dir || continue
  r0=$(kb "$runner_pid" VmHWM); w0=$(kb "$worker_pid" VmHWM)
  if [ $dir = upload ]; then
    head -c 1073741824 /dev/zero | curl -sf -T - -o "$work/upload.out" "http://127.0.0.1:$front/stream/discard"
    [ "$(cat "$work/upload.out")" = 1073741824 ] || { echo "memory: upload answered $(cat "$work/upload.out")"; exit 1; }
  else
    got=$(curl -sf -o /dev/null -w '%{size_download}' "http://127.0.0.1:$front/stream/bytes?n=1073741824")
    [ "$got" = 1073741824 ] || { echo "memory: download got $got bytes"; exit 1; }
  fi
  r1=$(kb "$runner_pid" VmHWM); w1=$(kb "$worker_pid" VmHWM)
  printf "  %-44s %7s MB %7s MB\n" "1 GiB $dir, peak RSS growth (<= 8)" "$(mb $((r1 - r0)))" "$(mb $((w1 - w0)))"
done

# SSE: all streams open and flowing, then the runner's RSS.
if want sse; then
rss0=$(kb "$runner_pid" VmRSS)
coproc SSE { exec python3 "$here/sse_clients.py" 127.0.0.1 "$front" /stream/sse "$streams" 3 120; }
read -r line <&"${SSE[0]}" || line="failed: the clients died"
if [ "$line" = ready ]; then
  rss=$(kb "$runner_pid" VmRSS); wrss=$(kb "$worker_pid" VmRSS)
  # BENCH_SMAPS=FILE keeps the runner's mappings then, to see where the RSS is.
  [ -z "${BENCH_SMAPS:-}" ] || cat "/proc/$runner_pid/smaps" >"$BENCH_SMAPS"
  printf "  %-44s %7s MB %7s MB\n" "$streams SSE streams, RSS (<= 16; before: $(mb "$rss0"))" "$(mb "$rss")" "$(mb "$wrss")"
else
  echo "  $streams SSE streams: $line"
fi
kill "$SSE_PID" 2>/dev/null || true
wait "$SSE_PID" 2>/dev/null || true
fi
want functions || exit 0

# Many functions: --check, start-up, idle RSS.
codes=$work/fns
mkdir -p "$codes"
python3 - "$work/many.yaml" "$work/many.sock" "$nfunctions" "$root/conf-examples/quickstart/functions/hello" <<'PY'
import sys
path, sock, n, code = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open(path, "w") as f:
    # The default instanceUids range (4,336 uids) is enough: uids go to
    # functions with instances, not to every configured one.
    f.write("listen: unix:%s\nlogLevel: warn\nfunctions:\n" % sock)
    for i in range(n):
        f.write("  fn%05d:\n    runtime: custom\n    codeUri: %s\n"
                "    customRuntimeConfig: { command: [/usr/bin/python3], args: [server.py] }\n"
                "    environmentVariables: { GREETING: hello%d }\n" % (i, code, i))
PY
# CPU seconds (user + system) too: on a loaded machine the wall time is
# mostly waiting for a core.
t0=$(date +%s.%N)
TIMEFORMAT='%U %S'
check_cpu=$( { time "$runner_bin" --check --config "$work/many.yaml" >/dev/null 2>"$work/check.log"; } 2>&1 ) \
  || { echo "memory: --check failed"; cat "$work/check.log"; exit 1; }
t1=$(date +%s.%N)
setsid "$runner_bin" --config "$work/many.yaml" >"$work/many.log" 2>&1 & pids+=($!)
many_pid=$!
wait_for_socket "$work/many.sock" || { echo "memory: $nfunctions functions: no socket"; cat "$work/many.log"; exit 1; }
t2=$(date +%s.%N)
start_cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$many_pid/stat")
sleep 1
rss=$(kb "$many_pid" VmRSS)
awk -v n="$nfunctions" -v c="$(echo "$t1 - $t0" | bc)" -v s="$(echo "$t2 - $t1" | bc)" \
  -v cc="$(echo "$check_cpu" | awk '{printf "%.2f", $1 + $2}')" -v sc="$start_cpu" \
  'BEGIN {printf "  %-44s %7.2f s  (%s s CPU)\n  %-44s %7.2f s  (%s s CPU)\n", n " functions, --check (<= 1 s)", c, cc,
          n " functions, start to listening (<= 1 s)", s, sc}'
printf "  %-44s %7s MB\n" "$nfunctions functions, idle RSS (<= 64)" "$(mb "$rss")"
