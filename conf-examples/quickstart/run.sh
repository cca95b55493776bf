#!/usr/bin/env bash
# `make run`: serve the quickstart functions on 127.0.0.1:8080 through real
# nginx + fc-runner, in the foreground.  Ctrl-C stops both and every instance.
# FC_QUICKSTART_PORT (default 8080) and FC_QUICKSTART_SOCKET (the runner's
# socket, default /run/fc-runner/quickstart.sock) move it elsewhere, e.g.
# when those are taken.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix="$root/build/quickstart"
mkdir -p "$prefix/tmp"

port=${FC_QUICKSTART_PORT:-8080}
default_socket=/run/fc-runner/quickstart.sock
socket=${FC_QUICKSTART_SOCKET:-$default_socket}
nginx_conf="$here/nginx.conf"
runner_conf="$here/fc-runner.yaml"
if [ "$port" != 8080 ] || [ "$socket" != "$default_socket" ]; then
  # Copies with those addresses in the prefix (codeUri made absolute: it is
  # relative to the config file).
  nginx_conf="$prefix/nginx.conf"
  runner_conf="$prefix/fc-runner.yaml"
  sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$port/g" -e "s#unix:$default_socket#unix:$socket#g" \
    "$here/nginx.conf" >"$nginx_conf"
  sed -e "s#unix:$default_socket#unix:$socket#g" -e "s#codeUri: \./#codeUri: $here/#" \
    "$here/fc-runner.yaml" >"$runner_conf"
fi

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
setsid "$root/build/fc-runner" --config "$runner_conf" &
runner_pid=$!

# nginx's workers run as www-data (nginx.conf) and reach the runner through
# its socket's group (listenGroup); wait for the socket so the first request
# does not race the runner's start.
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.05; done
/usr/sbin/nginx -p "$prefix/" -c "$nginx_conf" &
nginx_pid=$!

echo "fc-gateway quickstart on http://127.0.0.1:$port/  (Ctrl-C stops)"
echo "  curl http://127.0.0.1:$port/hello"
echo "  curl http://127.0.0.1:$port/flask/"
echo "  curl http://127.0.0.1:$port/python"
echo "  curl -d 'to be or not to be' http://127.0.0.1:$port/wordcount"
echo "  curl 'http://127.0.0.1:$port/node?name=you'"
# Whichever exits first ends the quickstart.
wait -n "$runner_pid" "$nginx_pid" || true
