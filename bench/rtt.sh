#!/usr/bin/env bash
# The round-trip section of bench/RESULTS.md: every peer through spec/support/latency_proxy.py at
# BENCH_RTT_MS (default 20) ms of round trip (half each way), TLS verify-full and SCRAM like a real
# Lakebase endpoint. R1–R5 for raw libpq (C), luasql-postgres and lakebase on Lua 5.4 and LuaJIT
# (bench/rtt_libpq.c, bench/rtt_peers.lua), flights read from the proxy's counters; then W5 under
# nginx through the proxy (bench/nginx.sh, lakebase route only). Run by bench/run.sh (make bench)
# with its fixtures, or alone (starts its own). Replaces the section between the rtt markers.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${BUILD:-build}
rounds=${BENCH_RTT_ROUNDS:-3}
rtt_ms=${BENCH_RTT_MS:-20}
export BUILD=$build

own=0
if [ -z "${LAKEBASE_TEST_PGPORT:-}" ]; then
  export LAKEBASE_RUN_DIR="$root/bench/run-rtt-$$"
  own=1
  bash spec/support/fixtures.sh start >/dev/null
fi
run_dir=${LAKEBASE_RUN_DIR:-spec/support/run}
case "$run_dir" in /*) ;; *) run_dir="$root/$run_dir" ;; esac
# shellcheck disable=SC1091
. "$run_dir/env.sh"
work="$run_dir/rtt"
mkdir -p "$work/lua5.4" "$work/luajit"
out="$work/rtt.jsonl"
: >"$out"
proxy_pid=
cleanup() {
  for pid in $proxy_pid; do kill "$pid" 2>/dev/null || true; done
  mkdir -p "$root/bench/run-last" && cp "$out" "$root/bench/run-last/rtt.jsonl" 2>/dev/null || true
  if [ $own = 1 ]; then bash spec/support/fixtures.sh stop >/dev/null 2>&1 || true; rm -rf "$run_dir"; fi
}
trap cleanup EXIT

export PGHOST=127.0.0.1 PGPORT=$LAKEBASE_TEST_PGPORT PGDATABASE=$LAKEBASE_TEST_PGDATABASE
export PGUSER=$LAKEBASE_TEST_ADMIN_USER PGPASSWORD=$LAKEBASE_TEST_ADMIN_PASSWORD PGSSLMODE=disable
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
create table if not exists bench_inserts (id serial primary key, name text, price numeric(10,2));
create table if not exists bench_items (id int primary key, name text, price numeric(10,2), created_at timestamptz, tags jsonb);
insert into bench_items
  select i, 'item ' || i, (i % 10000) / 100.0, now() - i * interval '1 minute',
         jsonb_build_object('color', (array['red','green','blue'])[1 + i % 3], 'n', i)
  from generate_series(1, 100000) i on conflict do nothing;
SQL

start_proxy() { # target-port name: the same delay in front of PostgreSQL and of the workspace
  python3 spec/support/latency_proxy.py serve --target "127.0.0.1:$1" \
    --delay-ms "$(python3 -c "print($rtt_ms / 2)")" --port-file "$work/$2.port" >/dev/null 2>&1 &
  proxy_pid="$proxy_pid $!"
  for _ in $(seq 1 100); do [ -s "$work/$2.port" ] && break; sleep 0.05; done
}
start_proxy "$LAKEBASE_TEST_PGPORT" proxy
start_proxy "$LAKEBASE_TEST_WORKSPACE_PORT" ws
read -r _ proxy_port proxy_ctl <"$work/proxy.port"
read -r _ ws_port ws_ctl <"$work/ws.port"
export BENCH_PROXY_CTL=$proxy_ctl BENCH_PROXY_SCRIPT="$root/spec/support/latency_proxy.py"
export BENCH_WS_PROXY_CTL=$ws_ctl BENCH_WS_HOST="http://127.0.0.1:$ws_port"
# Through the proxy, as an application off Databricks connects: TLS verified, SCRAM.
export PGHOST=localhost PGPORT=$proxy_port PGSSLMODE=verify-full PGSSLROOTCERT=$LAKEBASE_TEST_SSLROOTCERT

cc -O2 -Wall -Wextra -I"$(pg_config --includedir)" bench/rtt_libpq.c -o "$work/rtt_libpq" -lpq
cc -O2 -shared -fPIC -I/usr/include/lua5.4 bench/clock.c -o "$work/lua5.4/benchclock.so"
cc -O2 -shared -fPIC -I/usr/include/luajit-2.1 bench/clock.c -o "$work/luajit/benchclock.so"

run() { # round peer workload [mode]
  local r=$1 peer=$2 w=$3 line interp
  case $peer in
    raw) line=$("$work/rtt_libpq" "$w" "${4:-exec}") ;;
    *)
      interp=${peer#*-}
      line=$(LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" \
        LUA_CPATH="$work/$interp/?.so;$root/$build/$interp/?.so;;" "$interp" bench/rtt_peers.lua "${peer%%-*}" "$w")
      ;;
  esac
  echo "$line" | sed "s/^{/{\"round\":$r,\"rtt_ms\":$rtt_ms,/" >>"$out"
  echo "   $w $peer ${4:-}: $line" >&2
}

echo "== round trips at $rtt_ms ms RTT (latency proxy), $rounds rounds" >&2
for ((r = 0; r < rounds && ${BENCH_RTT_R:-1}; r++)); do
  run $r raw R0
  for w in R1 R2; do
    run $r raw $w exec; run $r raw $w prepared
    for p in luasql-lua5.4 luasql-luajit lakebase-lua5.4 lakebase-luajit; do run $r $p $w; done
  done
  run $r raw R3
  run $r raw R4 seq; run $r raw R4 pipeline
  run $r raw R5
  for p in luasql-lua5.4 luasql-luajit lakebase-lua5.4 lakebase-luajit; do
    run $r $p R3; run $r $p R4; run $r $p R5
  done
  for p in lakebase-lua5.4 lakebase-luajit; do run $r $p R4p; run $r $p R5w; done
  # M2M: the credential over HTTP (OAuth token, then the database credential) before TLS+SCRAM
  for p in lakebase-lua5.4 lakebase-luajit; do
    PGPASSWORD='' PGUSER=$LAKEBASE_TEST_PGUSER run $r $p R5m
  done
done

if [ "${BENCH_RTT_W5:-1}" = 1 ] && command -v wrk >/dev/null; then
  echo "== W5 through the proxy ($rtt_ms ms RTT)" >&2
  BENCH_ROUNDS=$rounds BENCH_W5_ROUTES=lakebase BENCH_W5_PING=0 BENCH_W5_THREADS=0 \
    BENCH_W5_LABEL=", RTT $rtt_ms ms" bash bench/nginx.sh | sed "s/^{/{\"rtt_ms\":$rtt_ms,/" >>"$out" ||
    echo "   W5: FAILED" >&2
fi

python3 bench/rtt_report.py "$out" bench/RESULTS.md
echo "== wrote the round-trip section of bench/RESULTS.md" >&2
