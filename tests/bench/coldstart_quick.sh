#!/bin/bash
# A quick cold-start row (docs/isolation.md, "Cold start"): runner + nginx + coldstart.py on the
# quickstart hello server, N functions.  RUNNER=path N=20 [chrt -f 10] tests/bench/coldstart_quick.sh
set -e
root=$(cd "$(dirname "$0")/../.." && pwd); here=$root/tests/bench; work=$(mktemp -d /tmp/fc-coldstart.XXXX); chmod 755 $work
front=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
n=${N:-20}
{ echo "listen: unix:$work/fc.sock"; echo "functions:"; for i in $(seq 0 $((n-1))); do echo "  cold$i:
    runtime: custom
    codeUri: $root/conf-examples/quickstart/functions/hello
    customRuntimeConfig: { command: [/usr/bin/python3], args: [server.py] }"; done; } > $work/r.yaml
mkdir -p $work/tmp
cat > $work/nginx.conf <<CONF
load_module $root/build/ngx_http_fc_module.so;
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/error.log warn; user root;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $work/tmp; proxy_temp_path $work/tmp;
  server { listen 127.0.0.1:$front;
    location ~ ^/cold/(?<fn>[a-z0-9]+)$ { fc_runner unix:$work/fc.sock; fc_function \$fn; } } }
CONF
${RUNNER:-$root/build/fc-runner} --config $work/r.yaml > $work/runner.log 2>&1 & rp=$!
/usr/sbin/nginx -p $work/ -c $work/nginx.conf > $work/nginx.log 2>&1 & np=$!
sleep 1.5
python3 $here/coldstart.py $front cold $n $root/conf-examples/quickstart/functions/hello || true
kill $np $rp; wait 2>/dev/null; rm -rf "$work"
