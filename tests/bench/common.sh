# Sourced by the bench scripts: run settings, a private work dir removed at
# exit with every process group started into `pids`, and free_port.
#   source "$here/common.sh" NAME     (the work dir is /tmp/fc-bench-NAME.XXXXXX)
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-2}
cold_runs=${BENCH_COLD_RUNS:-20}
work=$(mktemp -d "/tmp/fc-bench-${1:-run}.XXXXXX")
mkdir -p "$work/tmp"
pids=()
# A process that outlives SIGTERM by 20 s (fc-runner under valgrind, which
# lacks pidfd_open, has been seen to) is killed: a bench never hangs at exit.
cleanup() {
  local p alive deadline=$((SECONDS + 20))
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  while [ "$SECONDS" -lt "$deadline" ]; do
    alive=0
    for p in "${pids[@]}"; do  # a zombie (not yet waited for) has exited
      case "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" in ''|Z) ;; *) alive=1 ;; esac
    done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The running user's option for nginx: as root, workers stay root (they must
# reach the runner's socket in the work dir).
nginx_user=()
[ "$(id -u)" = 0 ] && nginx_user=(-g "user root;")

# nginx_conf_head DIR PROCESS_LINE [MODULE_SO]: the start of an nginx.conf
# whose prefix, pid, error log and temp paths are all in DIR, up to and
# including `http {` and `access_log off;`; the caller adds its upstreams and
# servers and the closing brace.  PROCESS_LINE: "worker_processes 1;" or
# "master_process off;" (one process, for callgrind).
nginx_conf_head() {
  local dir=$1 process=$2 module=${3:-}
  mkdir -p "$dir/tmp"
  [ -n "$module" ] && echo "load_module $module;"
  cat <<CONF
$process
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
CONF
}

# start_nginx DIR LOG [WRAPPER...]: nginx -p DIR -c DIR/nginx.conf in a
# process group of its own (cleaned up at exit); $! is its pid.
start_nginx() {
  local dir=$1 log=$2
  shift 2
  setsid "$@" /usr/sbin/nginx -p "$dir/" -c "$dir/nginx.conf" "${nginx_user[@]}" >"$log" 2>&1 &
  pids+=($!)
}

# wait_for URL [TRIES]: polls (0.1 s apart) until URL answers 2xx; on
# failure prints the work dir's logs and exits.
wait_for() {
  local url=$1 tries=${2:-100}
  for _ in $(seq "$tries"); do
    curl -sf "$url" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench: $url does not answer"
  tail -n 20 "$work"/*.log
  exit 1
}

# trivial_function_yaml: the runner's `trivial` function (backend.sh as a
# custom runtime, one instance taking every request), indented for
# `functions:`; the fc rows of run.sh and instructions.sh serve it.
trivial_function_yaml() {
  cat <<YAML
  trivial:
    runtime: custom
    codeUri: $here
    customRuntimeConfig: { command: [$here/backend.sh] }
    instanceConcurrency: 100
    maxInstances: 1
YAML
}

# middle_nginx_conf PROCESS_LINE BACKEND_PORT: the two-hop floor's middle
# nginx (proxy_pass with keepalive to the backend, on $work/middle.sock),
# written to $work/middle/nginx.conf; run.sh and instructions.sh measure it.
middle_nginx_conf() {
  local process=$1 backend_port=$2
  mkdir -p "$work/middle"
  {
    nginx_conf_head "$work/middle" "$process"
    cat <<CONF
  upstream backend { server 127.0.0.1:$backend_port; keepalive 32; }
  server {
    listen unix:$work/middle.sock;
    keepalive_requests 1000000;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  } > "$work/middle/nginx.conf"
}
