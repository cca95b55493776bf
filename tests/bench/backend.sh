#!/usr/bin/env bash
# The trivial backend of the benchmarks: nginx answering `return 200` on the
# port given as $1 or $FC_SERVER_PORT (so it also runs as a custom runtime).
set -euo pipefail
port=${1:-${FC_SERVER_PORT:?}}
dir=$(mktemp -d /tmp/fc-bench-backend.XXXXXX)
mkdir -p "$dir/tmp"
cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  # Every temp path in the prefix: as an instance it sees no /var/lib/nginx
  # (its private view, docs/isolation.md).
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    keepalive_requests 1000000;
    location / { default_type text/plain; return 200 "hello\n"; }
  }
}
CONF
user=()
[ "$(id -u)" = 0 ] && user=(-g "user root;")
exec /usr/sbin/nginx -p "$dir/" -c "$dir/nginx.conf" "${user[@]}"
