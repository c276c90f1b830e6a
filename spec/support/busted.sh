#!/usr/bin/env bash
# Runs busted for one interpreter with the build's paths: spec/support/busted.sh lua5.4|luajit [busted args]
# Starts the fixtures when they are not running (and stops what it started).
set -uo pipefail
cd "$(dirname "$0")/../.."
interp=${1:?usage: busted.sh lua5.4|luajit [busted args]}; shift
root=$PWD
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/?.lua;$root/?/init.lua;;"
export LUA_CPATH="$root/${LAKEBASE_BUILD:-build}/$interp/?.so;;"
export LAKEBASE_TEST_INTERP=$interp

started=0
if [ -z "${LAKEBASE_TEST_PGPORT:-}" ]; then
  if [ ! -f "${LAKEBASE_RUN_DIR:-spec/support/run}/env.sh" ] || ! bash spec/support/fixtures.sh status >/dev/null 2>&1; then
    bash spec/support/fixtures.sh start >&2 || { echo "busted.sh: fixtures failed to start" >&2; exit 1; }
    started=1
  fi
  # shellcheck disable=SC1091
  . "${LAKEBASE_RUN_DIR:-spec/support/run}/env.sh"
fi
busted --lua="$interp" "$@"
rc=$?
[ $started = 1 ] && bash spec/support/fixtures.sh stop >&2
exit $rc
