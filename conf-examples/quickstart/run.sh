#!/usr/bin/env bash
# `make run`: serve the quickstart functions on 127.0.0.1:8080 through real
# nginx + fc-runner, in the foreground.  Ctrl-C stops both and every instance.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix="$root/build/quickstart"
mkdir -p "$prefix/tmp"

runner_pid=""
nginx_pid=""
stop() {
  trap - INT TERM EXIT
  [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null || true
  [ -n "$runner_pid" ] && kill -TERM "$runner_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# Its own session: Ctrl-C reaches the runner once, as the SIGTERM below (a
# second signal would abort in-flight requests instead of draining them).
setsid "$root/build/fc-runner" --config "$here/fc-runner.yaml" &
runner_pid=$!

# nginx's workers run as www-data (nginx.conf) and reach the runner through
# its socket's group (listenGroup); wait for the socket so the first request
# does not race the runner's start.
for _ in $(seq 100); do [ -S /run/fc-runner/quickstart.sock ] && break; sleep 0.05; done
/usr/sbin/nginx -p "$prefix/" -c "$here/nginx.conf" &
nginx_pid=$!

echo "fc-gateway quickstart on http://127.0.0.1:8080/  (Ctrl-C stops)"
echo "  curl http://127.0.0.1:8080/hello"
echo "  curl http://127.0.0.1:8080/flask/"
echo "  curl http://127.0.0.1:8080/python"
echo "  curl -d 'to be or not to be' http://127.0.0.1:8080/wordcount"
echo "  curl 'http://127.0.0.1:8080/node?name=you'"
# Whichever exits first ends the quickstart.
wait -n "$runner_pid" "$nginx_pid" || true
