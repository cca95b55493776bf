#!/usr/bin/env bash
# `make deb`: two Debian packages from the build, with dpkg-deb:
#   libnginx-mod-http-fc  the module, depending on the exact nginx ABI of the
#                         nginx-dev sources it was built against (as dh_nginx)
#   fc-runner             the runner, its runtimes, config, systemd unit
# into $BUILD/deb/ (printed, one path a line).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD:-$root/build}
ngx_src=${NGX_SRC:-/usr/share/nginx/src}
out=$build/deb
version=$(sed -n 's/^#define FC_VERSION "\(.*\)"$/\1/p' "$root/runner/main.cc")
arch=$(dpkg --print-architecture)

# dh_nginx's substvar: the ABI the sources declare; else what the installed nginx provides.
nginx_abi=$(sed -n 's/^nginx:abi=//p' "$ngx_src/debian/libnginx-mod.abisubstvars" 2>/dev/null || true)
if [ -z "$nginx_abi" ]; then
  nginx_abi=$(dpkg-query -W -f='${Provides}' nginx 2>/dev/null | tr ',' '\n' | grep -o 'nginx-abi-[^ ]*' | head -1 || true)
fi
[ -n "$nginx_abi" ] || { echo "deb.sh: cannot tell the nginx ABI (no $ngx_src/debian/libnginx-mod.abisubstvars)" >&2; exit 1; }

# The shared libraries' packages, as dpkg-shlibdeps works them out.
shlibdeps() {
  local work; work=$(mktemp -d)
  mkdir "$work/debian"
  printf 'Source: fc-gateway\n\nPackage: fc-gateway\nArchitecture: any\n' >"$work/debian/control"
  (cd "$work" && dpkg-shlibdeps -O "$@" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
  rm -rf "$work"
}

package() {  # package NAME PART
  local name=$1 part=$2 tree=$out/$1
  rm -rf "$tree"
  DESTDIR=$tree PREFIX=/usr SYSCONFDIR=/etc SYSTEMD_UNIT_DIR=/lib/systemd/system \
    SYSUSERS_DIR=/usr/lib/sysusers.d ENABLE_MODULE=0 BUILD=$build "$here/install.sh" install "$part" >/dev/null
  local elves=()
  while IFS= read -r f; do
    strip --strip-debug "$f"
    elves+=("$f")
  done < <(find "$tree" -type f \( -name '*.so' -o -perm -u+x \) -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; -print)
  local shlibs; shlibs=$(shlibdeps "${elves[@]}")
  mkdir -p "$tree/DEBIAN"
  sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@NGINX_ABI@/$nginx_abi/" \
      -e "s/@SHLIBS@/$shlibs/" -e "s/@INSTALLED_SIZE@/$(du -sk --exclude=DEBIAN "$tree" | cut -f1)/" \
      "$here/deb/$name/control.in" >"$tree/DEBIAN/control"
  for script in postinst prerm postrm conffiles; do
    [ -e "$here/deb/$name/$script" ] || continue
    install -m "$([ $script = conffiles ] && echo 0644 || echo 0755)" "$here/deb/$name/$script" "$tree/DEBIAN/"
  done
  (cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
  local deb=$out/${name}_${version}_${arch}.deb
  dpkg-deb --root-owner-group -Zxz --build "$tree" "$deb" >/dev/null
  rm -rf "$tree"
  echo "$deb"
}

mkdir -p "$out"
package libnginx-mod-http-fc module
package fc-runner runner
