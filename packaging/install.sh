#!/usr/bin/env bash
# `make install` / `make uninstall` (and the file trees of `make deb`).
#
#   install.sh install|uninstall [module] [runner]     (both when none is named)
#
# Where things go (the Makefile passes these; Debian's layout):
#   DESTDIR                staged install root (empty: the live system)
#   PREFIX                 /usr/local: PREFIX/bin/fc-runner, its runtimes in
#                          PREFIX/lib/fc-runner/runtimes (the binary finds them
#                          there, relative to itself), PREFIX/share/doc/fc-runner
#   SYSCONFDIR             /etc: SYSCONFDIR/fc-runner/fc-runner.yaml (never overwritten)
#   SYSTEMD_UNIT_DIR       PREFIX/lib/systemd/system (systemd reads /usr/local/lib/systemd/system too)
#   SYSUSERS_DIR           PREFIX/lib/sysusers.d
#   NGX_MODULES_DIR        /usr/lib/nginx/modules (Debian nginx's --modules-path)
#   NGX_MODULES_AVAILABLE  /usr/share/nginx/modules-available (the load snippet)
#   NGX_MODULES_ENABLED    /etc/nginx/modules-enabled (its symlink; ENABLE_MODULE=0 skips
#                          it: the Debian package's postinst makes it)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD:-$root/build}

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
SYSTEMD_UNIT_DIR=${SYSTEMD_UNIT_DIR:-$PREFIX/lib/systemd/system}
SYSUSERS_DIR=${SYSUSERS_DIR:-$PREFIX/lib/sysusers.d}
NGX_MODULES_DIR=${NGX_MODULES_DIR:-/usr/lib/nginx/modules}
NGX_MODULES_AVAILABLE=${NGX_MODULES_AVAILABLE:-/usr/share/nginx/modules-available}
NGX_MODULES_ENABLED=${NGX_MODULES_ENABLED:-/etc/nginx/modules-enabled}
ENABLE_MODULE=${ENABLE_MODULE:-1}
DOC_PACKAGE=${DOC_PACKAGE:-fc-runner}

BINDIR=$PREFIX/bin
RUNTIMES_DIR=$PREFIX/lib/fc-runner/runtimes
DOCDIR=$PREFIX/share/doc/$DOC_PACKAGE
CONFDIR=$SYSCONFDIR/fc-runner
# Debian's priority for third-party modules (libnginx-mod-*: 50-mod-*.conf).
ENABLED_LINK=$NGX_MODULES_ENABLED/50-mod-http-fc.conf
SNIPPET=$NGX_MODULES_AVAILABLE/mod-http-fc.conf

action=${1:?usage: install.sh install|uninstall [module] [runner]}
shift
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(module runner)

d() { printf '%s%s' "$DESTDIR" "$1"; }
fill() {
  sed -e "s#@BINDIR@#$BINDIR#g" -e "s#@SYSCONFDIR@#$SYSCONFDIR#g" -e "s#@DOCDIR@#$DOCDIR#g" \
      -e "s#@NGX_MODULES_DIR@#$NGX_MODULES_DIR#g" "$1"
}
need() { [ -e "$1" ] || { echo "install.sh: $1 is missing: run make first" >&2; exit 1; }; }

install_module() {
  need "$build/ngx_http_fc_module.so"
  install -D -m 0644 "$build/ngx_http_fc_module.so" "$(d "$NGX_MODULES_DIR")/ngx_http_fc_module.so"
  mkdir -p "$(d "$NGX_MODULES_AVAILABLE")"
  fill "$here/mod-http-fc.conf.in" >"$(d "$SNIPPET")"
  chmod 0644 "$(d "$SNIPPET")"
  if [ "$ENABLE_MODULE" = 1 ]; then
    mkdir -p "$(d "$NGX_MODULES_ENABLED")"
    ln -sfn "$SNIPPET" "$(d "$ENABLED_LINK")"
  fi
}

uninstall_module() {
  rm -f "$(d "$ENABLED_LINK")" "$(d "$SNIPPET")" "$(d "$NGX_MODULES_DIR")/ngx_http_fc_module.so"
}

install_runner() {
  need "$build/fc-runner"
  need "$build/fc-instance-guard"
  need "$build/runtimes/python3/_fcruntime.abi3.so"
  install -D -m 0755 "$build/fc-runner" "$(d "$BINDIR")/fc-runner"
  # The instance guard every cold start execs (fc-runner finds it here, relative to itself).
  install -D -m 0755 "$build/fc-instance-guard" "$(d "$PREFIX")/lib/fc-runner/fc-instance-guard"
  local rt; rt=$(d "$RUNTIMES_DIR")
  # Every module of the runtime: bootstrap.js requires the others by relative path.
  install -D -m 0644 -t "$rt/nodejs" "$root"/runner/runtimes/nodejs/*.js
  install -D -m 0644 -t "$rt/python3" "$root/runner/runtimes/python3/bootstrap.py" \
      "$build/runtimes/python3/_fcbootstrap.py" "$build/runtimes/python3/_fcruntime.abi3.so"
  # Precompiled where an unprivileged runner could not write it.
  /usr/bin/python3 -m py_compile "$rt/python3/_fcbootstrap.py"
  local conf; conf=$(d "$CONFDIR")/fc-runner.yaml
  if [ -e "$conf" ]; then
    echo "install.sh: keeping $conf"
  else
    install -D -m 0644 "$here/fc-runner.yaml" "$conf"
  fi
  mkdir -p "$(d "$SYSTEMD_UNIT_DIR")"
  fill "$here/fc-runner.service.in" >"$(d "$SYSTEMD_UNIT_DIR")/fc-runner.service"
  chmod 0644 "$(d "$SYSTEMD_UNIT_DIR")/fc-runner.service"
  install -D -m 0644 "$here/fc-runner.sysusers" "$(d "$SYSUSERS_DIR")/fc-runner.conf"
  install -D -m 0644 -t "$(d "$DOCDIR")" "$root/README.md"
  install -D -m 0644 -t "$(d "$DOCDIR")/docs" "$root"/docs/*.md
  if [ -z "$DESTDIR" ] && [ "$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null; then
    systemd-sysusers "$SYSUSERS_DIR/fc-runner.conf"  # the user fc-runner
  fi
}

uninstall_runner() {
  rm -f "$(d "$BINDIR")/fc-runner" "$(d "$SYSTEMD_UNIT_DIR")/fc-runner.service" "$(d "$SYSUSERS_DIR")/fc-runner.conf"
  rm -rf "$(d "$PREFIX")/lib/fc-runner" "$(d "$DOCDIR")"
  # The config goes only when it is still the shipped one.
  local conf; conf=$(d "$CONFDIR")/fc-runner.yaml
  if [ -e "$conf" ] && ! cmp -s "$conf" "$here/fc-runner.yaml"; then
    echo "install.sh: keeping $conf (changed since install)"
  else
    rm -f "$conf"
    rmdir "$(d "$CONFDIR")" 2>/dev/null || true
  fi
}

for part in "${parts[@]}"; do
  case "$action:$part" in
    install:module|install:runner|uninstall:module|uninstall:runner) "${action}_$part" ;;
    *) echo "install.sh: unknown '$action $part'" >&2; exit 2 ;;
  esac
done
