#!/usr/bin/env bash
# make demo: a local PostgreSQL (TLS, each login checked by the workspace) and a local fake
# Databricks workspace stand in for Lakebase; the quickstart and the OpenResty example run against them exactly as they would
# against a real workspace (only the environment differs). Everything started here is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/?.lua;;"
export LUA_CPATH="$root/build/lua5.4/?.so;;"

run_dir=${LAKEBASE_RUN_DIR:-spec/support/run}
case "$run_dir" in /*) ;; *) run_dir="$root/$run_dir" ;; esac
logs="$run_dir/demo"
mkdir -p "$logs"
nginx_log="$run_dir/openresty/logs/error.log"

cleanup() {
  [ -x examples/openresty/run.sh ] && bash examples/openresty/run.sh stop >/dev/null 2>&1 || true
  bash spec/support/fixtures.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

# A failing step says which step it was and where its log is (make only says "Error 1").
fail() {
  local name=$1 log=$2 more=${3:-}
  {
    echo
    echo "demo: step '$name' failed"
    if [ -s "$log" ]; then
      echo "---- last lines of $log"
      tail -n 20 "$log"
    fi
    [ -n "$more" ] && [ -s "$more" ] && { echo "---- last lines of $more"; tail -n 20 "$more"; }
    echo "demo: the whole log of step '$name': $log${more:+ (and $more)}"
  } >&2
  exit 1
}

# step NAME LOGFILE CMD...: runs CMD, its output shown and kept in LOGFILE.
step() {
  local name=$1 log=$2
  shift 2
  echo
  echo "== $name"
  if ! "$@" > >(tee "$log") 2>&1; then
    sleep 0.1 # let tee finish the log
    fail "$name" "$log"
  fi
  sleep 0.05
}

step "start a local PostgreSQL and a local fake Databricks workspace" "$logs/fixtures.log" \
  bash spec/support/fixtures.sh start
# The SPEC §2 variables, as a real deployment would set them.
# shellcheck source=examples/fixture_env.sh
LAKEBASE_RUN_DIR=$run_dir . examples/fixture_env.sh
export HOME=$LAKEBASE_TEST_RUNDIR   # no ~/.databrickscfg of this machine gets in the way

step "lakebase check" "$logs/check.log" lua5.4 bin/lakebase check
step "lakebase migrate --dir examples/migrations" "$logs/migrate.log" \
  lua5.4 bin/lakebase migrate --dir examples/migrations
step "examples/quickstart.lua" "$logs/quickstart.log" lua5.4 examples/quickstart.lua

if [ -x examples/openresty/run.sh ]; then
  # nginx + lua-nginx-module; the queries run in the 'lakebase' thread pool
  name="start examples/openresty under nginx"
  echo
  echo "== $name"
  base=$(bash examples/openresty/run.sh start 2>"$logs/openresty.log") ||
    fail "$name" "$logs/openresty.log" "$nginx_log"
  echo "$base"
  routes_log="$logs/routes.log"
  : >"$routes_log"
  # call METHOD PATH EXPECTED_STATUS [BODY]: one route; another status fails the demo.
  call() {
    local method=$1 path=$2 want=$3 body=${4:-} out status
    local args=(-s -X "$method" -w '\n%{http_code}')
    [ -n "$body" ] && args+=(-H 'content-type: application/json' -d "$body")
    out=$(curl "${args[@]}" "$base$path" 2>>"$routes_log") || out=$'\n000'
    status=${out##*$'\n'}
    printf '%-6s %-14s -> %s [%s]\n' "$method" "$path" "${out%$'\n'*}" "$status" | tee -a "$routes_log"
    [ "$status" = "$want" ] ||
      fail "$method $path (expected $want, got $status)" "$routes_log" "$nginx_log"
  }
  echo
  echo "== the example's routes"
  call GET /health 200
  call POST /items 201 '{"name":"flat white","price":"3.80","tags":["hot"]}'
  call GET /items 200
  id=$(curl -s "$base/items" | grep -o '"id":[0-9]*' | head -1 | cut -d: -f2 || true)
  call GET "/items/$id" 200
  call PATCH "/items/$id" 200 '{"price":"3.90"}'
  call DELETE "/items/$id" 200
  call POST /items 400 '{"price":"x"}'
fi
echo
echo "demo finished (logs of each step in $logs)"
