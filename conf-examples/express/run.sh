#!/usr/bin/env bash
# Serves the Express example on 127.0.0.1:8081 through nginx + fc-runner, in
# the foreground; installs the app's npm packages (package-lock.json) into
# app/node_modules first (once).  Ctrl-C stops both and every instance.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix="$root/build/express"
mkdir -p "$prefix/tmp"
[ -d "$here/app/node_modules/express" ] || (cd "$here/app" && npm ci --no-audit --no-fund --loglevel=error)

runner_pid=""
nginx_pid=""
stop() {
  trap - INT TERM EXIT
  [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null || true
  [ -n "$runner_pid" ] && kill -TERM "$runner_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

setsid "$root/build/fc-runner" --config "$here/fc-runner.yaml" &
runner_pid=$!
/usr/sbin/nginx -p "$prefix/" -c "$here/nginx.conf" &
nginx_pid=$!

echo "Express under fc-gateway on http://127.0.0.1:8081/  (Ctrl-C stops)"
echo "  curl http://127.0.0.1:8081/"
echo "  curl -H 'content-type: application/json' -d '{\"title\":\"try fc\"}' http://127.0.0.1:8081/todos"
echo "  curl -N http://127.0.0.1:8081/ticks"
wait -n "$runner_pid" "$nginx_pid" || true
