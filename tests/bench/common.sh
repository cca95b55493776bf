# Sourced by the bench scripts: run settings, a private work dir removed at
# exit with every process group started into `pids`, and free_port.
#   source "$here/common.sh" NAME     (the work dir is /tmp/fc-bench-NAME.XXXXXX)
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-2}
cold_runs=${BENCH_COLD_RUNS:-20}
work=$(mktemp -d "/tmp/fc-bench-${1:-run}.XXXXXX")
mkdir -p "$work/tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
