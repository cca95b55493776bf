#!/usr/bin/env bash
# Installs the npm packages of package.json (express 4, raw-body) into
# build/npm/node_modules with the lock file beside it: idempotent (a stamp
# holds the lock file's checksum), safe to run from parallel tests (flock),
# never global, never in the source tree.  Called by `make npm-modules` and
# by the nodejs tests when the modules are missing.
#   install.sh [BUILD_DIR]    prints the node_modules path
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$(cd "$here/../../../.." && pwd)/build}
dest="$build/npm"
mkdir -p "$dest"
exec 9>"$dest/.lock"
flock 9
want=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$dest/.stamp" 2>/dev/null)" != "$want" ] || [ ! -d "$dest/node_modules/express" ]; then
  command -v npm >/dev/null || { echo "install.sh: npm is missing (it comes with the nodejs package)" >&2; exit 1; }
  cp "$here/package.json" "$here/package-lock.json" "$dest/"
  (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$want" > "$dest/.stamp"
fi
echo "$dest/node_modules"
