#!/usr/bin/env bash
# make bench: W1–W4 for raw libpq (C), luasql-postgres and lakebase on Lua 5.4 and LuaJIT, in
# interleaved rounds (peer order rotated), then the micro benchmarks and W5 under nginx; writes
# bench/RESULTS.md with medians and ratios to raw PQexecParams from this run; then bench/rtt.sh adds
# the round-trip section (every peer through the latency proxy at 20 ms RTT).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${BENCH_ROUNDS:-3}
build=${BUILD:-build}
export BUILD=$build
export LAKEBASE_RUN_DIR="$root/bench/run-$$"
out="$LAKEBASE_RUN_DIR/results.jsonl"

cleanup() {
  [ -f "$LAKEBASE_RUN_DIR/nginx/logs/nginx.pid" ] && kill "$(cat "$LAKEBASE_RUN_DIR/nginx/logs/nginx.pid")" 2>/dev/null || true
  bash spec/support/fixtures.sh stop >/dev/null 2>&1 || true
  # Keep the raw lines of the last run (bench/run-last/ is ignored by git) for report.py.
  mkdir -p "$root/bench/run-last" && cp "$out" "$root/bench/run-last/results.jsonl" 2>/dev/null || true
  rm -rf "$LAKEBASE_RUN_DIR"
}
trap cleanup EXIT

echo "== bench: PostgreSQL on loopback (fsync off) and the fake workspace"
bash spec/support/fixtures.sh start >/dev/null
# shellcheck disable=SC1091
. "$LAKEBASE_RUN_DIR/env.sh"
mkdir -p "$LAKEBASE_RUN_DIR/lua5.4" "$LAKEBASE_RUN_DIR/luajit"
: >"$out"

# Every peer: the same server, the same role, plain TCP on loopback, password auth.
export PGHOST=127.0.0.1 PGPORT=$LAKEBASE_TEST_PGPORT PGDATABASE=$LAKEBASE_TEST_PGDATABASE
export PGUSER=$LAKEBASE_TEST_ADMIN_USER PGPASSWORD=$LAKEBASE_TEST_ADMIN_PASSWORD PGSSLMODE=disable
unset LAKEBASE_ENDPOINT DATABRICKS_HOST DATABRICKS_TOKEN DATABRICKS_CLIENT_ID DATABRICKS_CLIENT_SECRET DATABRICKS_CONFIG_PROFILE
export HOME=$LAKEBASE_RUN_DIR

psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
drop table if exists bench_items, bench_inserts;
create table bench_items (id int primary key, name text, price numeric(10,2), created_at timestamptz, tags jsonb);
insert into bench_items
  select i, 'item ' || i, (i % 10000) / 100.0, now() - i * interval '1 minute',
         jsonb_build_object('color', (array['red','green','blue'])[1 + i % 3], 'n', i)
  from generate_series(1, 100000) i;
create table bench_inserts (id serial primary key, name text, price numeric(10,2));
vacuum analyze bench_items;
-- Flush the load now, so the checkpointer does not write it out during the first rounds.
checkpoint;
SQL

cc -O2 -Wall -Wextra -I"$(pg_config --includedir)" bench/raw_libpq.c -o "$LAKEBASE_RUN_DIR/raw_libpq" -lpq
cc -O2 -shared -fPIC -I/usr/include/lua5.4 bench/clock.c -o "$LAKEBASE_RUN_DIR/lua5.4/benchclock.so"
cc -O2 -shared -fPIC -I/usr/include/luajit-2.1 bench/clock.c -o "$LAKEBASE_RUN_DIR/luajit/benchclock.so"

# W1–W4 pin every client process to CPU 0, and the PostgreSQL server (its postmaster, so every backend
# forked from it) to CPU 0 for the round-trip workloads W1, W2, W4 and to CPU 1 for W3. Left to the
# scheduler, whether a client and its backend shared a CPU made single runs of the same peer differ up
# to 3x on a 2-CPU VM (a round trip through a cross-CPU wakeup is slow there); pinned, runs repeat
# within a few %. W3 measures throughput, where a real server produces rows on its own CPU while the
# client decodes. micro and W5 run unpinned. BENCH_PIN=0 turns pinning off.
pin=()
postmaster=$(head -n 1 "$LAKEBASE_TEST_PGDATA/postmaster.pid" 2>/dev/null || true)
all_cpus="0-$(($(nproc) - 1))"
if [ "${BENCH_PIN:-1}" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin=(taskset -c 0)
fi
server_cpus() { # cpu-list: where the server's next backends run (no-op without pinning)
  [ ${#pin[@]} -gt 0 ] && [ -n "$postmaster" ] || return 0
  taskset -p -c "$1" "$postmaster" >/dev/null 2>&1 || echo "   (could not pin the PostgreSQL server)" >&2
}

# BENCH_BASE (default 995d6c4, the tree before the "one house" redesign; empty: none): lakebase as
# built from that commit runs as two more peers, so "no slower than before" is a ratio of one run.
base_rev=${BENCH_BASE-995d6c4}
base_dir=$LAKEBASE_RUN_DIR/base
if [ -n "$base_rev" ]; then
  mkdir -p "$base_dir" && git archive "$base_rev" | tar -x -C "$base_dir"
  make -s -C "$base_dir" -j2 build/lua5.4/lakebase/core.so build/luajit/lakebase/core.so >/dev/null
  base_short=$(git rev-parse --short "$base_rev")
fi

run_peer() { # peer-id workload
  local interp
  case $1 in
    base-*) # the same driver (this tree's bench/lua_peers.lua) over the base tree's lakebase
      interp=${1#*-}
      LUA_PATH="$base_dir/lua/?.lua;$base_dir/lua/?/init.lua;;" \
      LUA_CPATH="$LAKEBASE_RUN_DIR/$interp/?.so;$base_dir/build/$interp/?.so;;" \
        "${pin[@]}" "$interp" bench/lua_peers.lua lakebase "$2" |
        sed "s/\"peer\":\"lakebase \([^\"]*\)\"/\"peer\":\"lakebase \1 ($base_short)\"/" ;;
    raw-exec) "${pin[@]}" "$LAKEBASE_RUN_DIR/raw_libpq" exec "$2" ;;
    raw-prepared) "${pin[@]}" "$LAKEBASE_RUN_DIR/raw_libpq" prepared "$2" ;;
    luasql-*|lakebase-*)
      interp=${1#*-}
      LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" \
      LUA_CPATH="$LAKEBASE_RUN_DIR/$interp/?.so;$root/$build/$interp/?.so;;" \
        "${pin[@]}" "$interp" bench/lua_peers.lua "${1%%-*}" "$2" ;;
  esac
}

peers=(raw-exec raw-prepared luasql-lua5.4 luasql-luajit lakebase-lua5.4 lakebase-luajit)
[ -n "$base_rev" ] && peers+=(base-lua5.4 base-luajit)
for ((r = 0; r < rounds; r++)); do
  echo "== round $((r + 1))/$rounds"
  for w in W1 W2 W3 W4; do
    server_cpus 0
    [ "$w" = W3 ] && server_cpus 1
    for ((k = 0; k < ${#peers[@]}; k++)); do
      p=${peers[$(((k + r) % ${#peers[@]}))]}
      if line=$(run_peer "$p" "$w" 2>"$LAKEBASE_RUN_DIR/err.txt"); then
        # The 1-minute load average after the run: other work on the machine shows up there.
        echo "$line" | sed "s/^{/{\"round\":$r,\"load1\":$(cut -d' ' -f1 /proc/loadavg),/" >>"$out"
        echo "   $w $p: $(echo "$line" | sed -E 's/.*"value":([0-9.]+),"unit":"([^"]+)".*/\1 \2/')"
      else
        echo "   $w $p: FAILED: $(head -c 300 "$LAKEBASE_RUN_DIR/err.txt")"
      fi
    done
  done
done

server_cpus "$all_cpus"

if [ -x bench/micro.sh ]; then
  echo "== micro: credential cache hit, pool checkout+return"
  bash bench/micro.sh >>"$out" || echo "   micro: FAILED"
fi
if [ -x bench/nginx.sh ]; then
  echo "== W5: nginx"
  bash bench/nginx.sh >>"$out" || echo "   W5: FAILED"
fi

if [ -x bench/observe.sh ]; then
  echo "== observability on vs off (W1, W5)"
  bash bench/observe.sh >>"$out" || echo "   observability: FAILED"
fi

python3 bench/report.py "$out" >bench/RESULTS.md
echo "== wrote bench/RESULTS.md"
# The round-trip section (every peer through the latency proxy at 20 ms RTT), same fixtures.
if [ -f bench/rtt.sh ]; then
  echo "== round trips at ${BENCH_RTT_MS:-20} ms RTT (latency proxy)"
  bash bench/rtt.sh || echo "   round trips: FAILED"
fi
sed -n '/^## Workloads/,/^## W5/p' bench/RESULTS.md | grep -v '^## W5'
