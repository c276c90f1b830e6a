#!/usr/bin/env bash
# The cost of observability: W1 (Lua 5.4 and LuaJIT) and W5 (nginx) with metrics, hooks and a
# logger on, against the same workloads built from the tree before observability existed (off),
# interleaved round by round in the same run. Prints JSON lines (workloads W1-obs and W5-obs).
#   on : this tree; lakebase.set_hooks({ on_query, on_connect }) and lakebase.set_logger set
#        (BENCH_OBS=1 in bench/lua_peers.lua; the /bench/lakebase_obs route under nginx)
#   off: BENCH_OBS_BASE (default 212342a: main just before observability merged, no metrics, no
#        hooks), built into the run directory
# BENCH_OBS_ROUNDS rounds (default 9) of W5 runs of BENCH_OBS_WRK_DURATION (default 8 s): single
# rounds differ by up to ±20 % here, and the target is 3 %.
# Needs the fixtures and the PG* variables of bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${BENCH_OBS_ROUNDS:-9}
build=${BUILD:-build}
run_dir=${LAKEBASE_RUN_DIR:?bench/run.sh sets it}
base_rev=${BENCH_OBS_BASE:-212342a}
base=$run_dir/obs-base

rm -rf "$base" && mkdir -p "$base"
git archive "$base_rev" | tar -x -C "$base"
make -s -C "$base" -j2 build/lua5.4/lakebase/core.so build/luajit/lakebase/core.so >/dev/null
short=$(git rev-parse --short "$base_rev")

w1() { # tree interp obs label
  LUA_PATH="$1/lua/?.lua;$1/lua/?/init.lua;;" LUA_CPATH="$run_dir/$2/?.so;$1/build/$2/?.so;;" BENCH_OBS=$3 \
    taskset -c 0 "$2" "$1/bench/lua_peers.lua" lakebase W1 |
    sed -e "s/\"workload\":\"W1\"/\"workload\":\"W1-obs\"/" -e "s/\"peer\":\"\\([^\"]*\\)\"/\"peer\":\"\\1 ($4)\"/"
}

w5() { # tree route label
  (cd "$1" && BUILD=build BENCH_ROUNDS=1 BENCH_W5_ROUTES=$2 BENCH_W5_PING=0 BENCH_W5_THREADS=0 \
    BENCH_WRK_DURATION=${BENCH_OBS_WRK_DURATION:-8s} bash bench/nginx.sh 2>/dev/null) |
    sed -e "s/\"workload\": \"W5\"/\"workload\": \"W5-obs\"/" -e "s/\"peer\": \"[^\"]*\"/\"peer\": \"lakebase LuaJIT (nginx, $3)\"/"
}

# W1 as bench/run.sh runs it: client and server (the postmaster, so every backend) on CPU 0.
postmaster=$(head -n 1 "${LAKEBASE_TEST_PGDATA:-/nonexistent}/postmaster.pid" 2>/dev/null || true)
server_cpus() { [ -n "$postmaster" ] && taskset -p -c "$1" "$postmaster" >/dev/null 2>&1 || true; }
trap 'server_cpus "0-$(($(nproc) - 1))"' EXIT

for ((r = 0; r < rounds; r++)); do
  echo "== observability round $((r + 1))/$rounds" >&2
  server_cpus 0
  for interp in lua5.4 luajit; do
    if ((r % 2)); then order="on off"; else order="off on"; fi
    for mode in $order; do
      if [ "$mode" = on ]; then line=$(w1 "$root" "$interp" 1 "metrics + hooks + logger on")
      else line=$(w1 "$base" "$interp" 0 "observability off, $short"); fi
      echo "$line" | sed "s/^{/{\"round\":$r,/"
      echo "   W1 $interp $mode: $(echo "$line" | sed -E 's/.*"value":([0-9.]+).*/\1/') us/query" >&2
    done
  done
  server_cpus "0-$(($(nproc) - 1))" # W5 unpinned, as in bench/nginx.sh
  if ((r % 2)); then order="on off"; else order="off on"; fi
  for mode in $order; do
    if [ "$mode" = on ]; then line=$(w5 "$root" lakebase_obs "metrics + hooks + logger on")
    else line=$(w5 "$base" lakebase "observability off, $short"); fi
    echo "$line" | sed "s/\"round\": 0/\"round\": $r/"
    echo "   W5 $mode: $(echo "$line" | sed -E 's/.*"value": ([0-9.]+).*/\1/') req/s" >&2
  done
done
# Client CPU per statement, hooks off/on alternating in one process (bench/observe_cpu.lua).
server_cpus 0
for interp in lua5.4 luajit; do
  LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" LUA_CPATH="$root/$build/$interp/?.so;;" \
    taskset -c 0 "$interp" bench/observe_cpu.lua "$rounds" | tee /dev/stderr
done
rm -rf "$base"
