#!/usr/bin/env bash
# make demo: a local PostgreSQL (TLS, password rotation) and a local fake Databricks workspace stand
# in for Lakebase; the quickstart and the OpenResty example run against them exactly as they would
# against a real workspace (only the environment differs). Everything started here is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/?.lua;;"
export LUA_CPATH="$root/build/lua5.4/?.so;;"

cleanup() {
  [ -x examples/openresty/run.sh ] && bash examples/openresty/run.sh stop >/dev/null 2>&1 || true
  bash spec/support/fixtures.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== starting a local PostgreSQL and a local fake Databricks workspace"
bash spec/support/fixtures.sh start
# shellcheck disable=SC1091
. "${LAKEBASE_RUN_DIR:-spec/support/run}/env.sh"

# The SPEC §2 variables, as a real deployment would set them (OAuth M2M: the Postgres role is the
# service principal's client id, so PGUSER is left unset and falls back to DATABRICKS_CLIENT_ID).
export PGHOST=$LAKEBASE_TEST_PGHOST PGPORT=$LAKEBASE_TEST_PGPORT PGDATABASE=$LAKEBASE_TEST_PGDATABASE
export PGSSLMODE=require PGSSLROOTCERT=$LAKEBASE_TEST_SSLROOTCERT
export LAKEBASE_ENDPOINT=$LAKEBASE_TEST_ENDPOINT DATABRICKS_HOST=$LAKEBASE_TEST_DATABRICKS_HOST
export DATABRICKS_CLIENT_ID=$LAKEBASE_TEST_CLIENT_ID DATABRICKS_CLIENT_SECRET=$LAKEBASE_TEST_CLIENT_SECRET
unset PGUSER PGPASSWORD DATABRICKS_TOKEN DATABRICKS_CONFIG_PROFILE
export HOME=$LAKEBASE_TEST_RUNDIR   # no ~/.databrickscfg of this machine gets in the way

echo
echo "== lakebase check"
lua5.4 bin/lakebase check
echo
echo "== lakebase migrate --dir examples/migrations"
lua5.4 bin/lakebase migrate --dir examples/migrations
echo
echo "== examples/quickstart.lua"
lua5.4 examples/quickstart.lua

if [ -x examples/openresty/run.sh ]; then
  echo
  echo "== examples/openresty (nginx + lua-nginx-module, queries in the 'lakebase' thread pool)"
  base=$(bash examples/openresty/run.sh start)
  call() {
    local method=$1 path=$2 body=${3:-}
    printf '%-6s %-14s -> ' "$method" "$path"
    if [ -n "$body" ]; then
      curl -s -X "$method" -H 'content-type: application/json' -d "$body" -w ' [%{http_code}]\n' "$base$path"
    else
      curl -s -X "$method" -w ' [%{http_code}]\n' "$base$path"
    fi
  }
  call GET /health
  call POST /items '{"name":"flat white","price":"3.80","tags":["hot"]}'
  call GET /items
  id=$(curl -s "$base/items" | grep -o '"id":[0-9]*' | tail -1 | cut -d: -f2)
  call GET "/items/$id"
  call PATCH "/items/$id" '{"price":"3.90"}'
  call DELETE "/items/$id"
  call POST /items '{"price":"x"}'
fi
echo
echo "demo finished"
