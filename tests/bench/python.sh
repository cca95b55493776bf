#!/usr/bin/env bash
# The python rows of `make bench` (issue 7): wrk (1 thread, 16 connections,
# BENCH_SECONDS each, rounds alternating) through one front nginx (one
# worker) against the same hello-world app (python/hello.py)
#   fc-wsgi   nginx -> fc_function -> fc-runner -> python3 runtime, one instance (WSGI)
#   fc-wsgi-c4  the same with instanceConcurrency 4 (four requests in flight per instance)
#   fc-event  the same, an event function returning the same bytes (POSTs with a body)
#   uwsgi     nginx -> uwsgi_pass -> uWSGI (Debian plugin python3, 1 process, 1 thread)
#   gunicorn  nginx -> proxy_pass -> gunicorn (1 sync worker)
# then the cold start of a python3 event function against the bare
# `python3 -c 'import index'` of the same code.  FC_RUNNER=path runs another
# fc-runner build (a baseline).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/common.sh" py
code="$here/python"
front=$(free_port); uwsgi_port=$(free_port); gunicorn_port=$(free_port)

cat > "$work/fc-runner.yaml" <<YAML
listen: unix:$work/fc.sock
logLevel: warn
functions:
  pywsgi:
    runtime: python3
    codeUri: $code
    handler: hello.app
    maxInstances: 1
  pywsgi4:
    runtime: python3
    codeUri: $code
    handler: hello.app
    maxInstances: 1
    instanceConcurrency: 4
  pyevent:
    runtime: python3
    type: event
    codeUri: $code
    handler: hello.handler
    maxInstances: 1
YAML
for i in $(seq 0 $((cold_runs - 1))); do
  cat >> "$work/fc-runner.yaml" <<YAML
  pycold$i:
    runtime: python3
    type: event
    codeUri: $code
    handler: index.handler
YAML
done
setsid "${FC_RUNNER:-$root/build/fc-runner}" --config "$work/fc-runner.yaml" >"$work/runner.log" 2>&1 & pids+=($!)
runner_pid=$!
setsid /usr/bin/uwsgi --plugin python3 --socket "127.0.0.1:$uwsgi_port" --chdir "$code" --wsgi-file hello.py \
  --callable app --processes 1 --threads 1 --disable-logging --listen 1024 >"$work/uwsgi.log" 2>&1 & pids+=($!)
uwsgi_pid=$!
setsid /usr/bin/gunicorn --chdir "$code" -w 1 -k sync -b "127.0.0.1:$gunicorn_port" --backlog 1024 \
  hello:app >"$work/gunicorn.log" 2>&1 & pids+=($!)
gunicorn_pid=$!

{
  nginx_conf_head "$work" "worker_processes 1;" "$root/build/ngx_http_fc_module.so"
  cat <<CONF
  upstream runner { server unix:$work/fc.sock; keepalive 32; }
  server {
    listen 127.0.0.1:$front;
    keepalive_requests 1000000;
    fc_runner runner;
    location = /py/fc-wsgi { fc_function pywsgi; }
    location = /py/fc-wsgi-c4 { fc_function pywsgi4; }
    location = /py/fc-event { fc_function pyevent; }
    location ~ ^/py/cold/(?<fn>[a-z0-9]+)$ { fc_function \$fn; }
    location = /py/uwsgi { include /etc/nginx/uwsgi_params; uwsgi_pass 127.0.0.1:$uwsgi_port; }
    location = /py/gunicorn { proxy_pass http://127.0.0.1:$gunicorn_port; }
  }
}
CONF
} > "$work/nginx.conf"
start_nginx "$work" "$work/nginx.log"
nginx_pid=$!

targets=(fc-wsgi fc-wsgi-c4 fc-event uwsgi gunicorn)
for t in "${targets[@]}"; do
  wait_for "http://127.0.0.1:$front/py/$t"
  [ "$(curl -sf "http://127.0.0.1:$front/py/$t")" = hello ] || {
    echo "bench: /py/$t does not answer hello"; cat "$work"/*.log; exit 1; }
done

results="$work/results.txt"
: > "$results"
for round in $(seq "$rounds"); do
  for t in "${targets[@]}"; do
    case $t in fc-*) backend=$runner_pid ;; uwsgi) backend=$uwsgi_pid ;; gunicorn) backend=$gunicorn_pid ;; esac
    read -r front0 back0 runner0 < <(python3 "$here/cpu_ticks.py" "$nginx_pid" "$backend" "=$runner_pid")
    script=()
    [ "$t" = fc-event ] && script=(-s "$code/post.lua")
    wrk -t1 -c16 -d"${seconds}s" --latency "${script[@]}" "http://127.0.0.1:$front/py/$t" > "$work/wrk-$t-$round.txt"
    read -r front1 back1 runner1 < <(python3 "$here/cpu_ticks.py" "$nginx_pid" "$backend" "=$runner_pid")
    # CPU ticks of the front nginx and of the backend's process tree (fc:
    # the runner and its instances) during the run.
    echo "$t $work/wrk-$t-$round.txt $((front1 - front0)) $((back1 - back0)) $((runner1 - runner0))" >> "$results"
  done
done
echo
python3 "$here/python_report.py" "$results" "$front" pycold "$cold_runs" "$code"
