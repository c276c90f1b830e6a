#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need (only the missing ones).
# usage: deps.sh [test|bench|memory]  (the groups add to the base set)
set -euo pipefail
group=${1:-test}

packages=(
  build-essential pkg-config
  lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev lua-busted lua-check luarocks
  lua5.1 liblua5.1-0-dev lua5.3 liblua5.3-dev git zip unzip
  libpq-dev libcurl4-openssl-dev libcjson-dev
  postgresql postgresql-client libpam-modules openssl curl python3 ca-certificates
  nginx libnginx-mod-http-lua lua-resty-core
  lua-sql-postgres nodejs wrk pgbouncer prometheus
)
case "$group" in
  bench) packages+=(hyperfine valgrind) ;;
  memory) packages+=(clang libclang-rt-14-dev valgrind) ;;
esac
[ -n "${LAKEBASE_EXTRA_PACKAGES:-}" ] && read -r -a extra <<<"$LAKEBASE_EXTRA_PACKAGES" && packages+=("${extra[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# npm comes with some nodejs builds and conflicts with them; Debian's nodejs needs the npm package.
command -v npm >/dev/null 2>&1 || dpkg-query -W -f='${Status}' nodejs 2>/dev/null | grep -q 'install ok installed' || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
