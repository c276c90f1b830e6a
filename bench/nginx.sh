#!/usr/bin/env bash
# W5: lakebase under nginx (examples/openresty/run.sh, worker_processes 1) with bench locations
# (bench/nginx_app.lua): `wrk -t2 -c32 -d10s --latency` on the lakebase point-lookup route and on a
# luasql-postgres blocking route, interleaved for BENCH_ROUNDS rounds; then /ping latency (max of 20
# sequential requests) while a `select pg_sleep(0.5)` runs in the same worker.
# Prints JSON lines. Needs the fixtures (LAKEBASE_RUN_DIR/env.sh) and the PG* variables of the bench
# (bench/run.sh exports them: password auth over plain TCP, the same server as every other peer).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${BUILD:-build}
rounds=${BENCH_ROUNDS:-3}
duration=${BENCH_WRK_DURATION:-10s}
run_dir=${LAKEBASE_RUN_DIR:-spec/support/run}
case "$run_dir" in /*) ;; *) run_dir="$root/$run_dir" ;; esac
: "${PGHOST:?PGHOST etc. must be set (bench/run.sh does)}"
command -v wrk >/dev/null || { echo "nginx.sh: wrk is not installed" >&2; exit 1; }

export LAKEBASE_BUILD=$build LAKEBASE_NGINX_WORKERS=1 LAKEBASE_NGINX_PREFIX="$run_dir/nginx"
extra="$run_dir/bench_locations.conf"
cat >"$extra" <<'EOF'
location = /bench/lakebase {
    content_by_lua_block { require("bench.nginx_app").lakebase() }
}
location = /bench/lakebase_obs {
    content_by_lua_block { require("bench.nginx_app").lakebase_obs() }
}
location = /bench/luasql {
    content_by_lua_block { require("bench.nginx_app").luasql() }
}
location = /bench/sleep {
    content_by_lua_block { require("bench.nginx_app").sleep() }
}
EOF
export LAKEBASE_NGINX_EXTRA=$extra

stop() { bash examples/openresty/run.sh stop >/dev/null 2>&1 || true; }
trap stop EXIT
base=$(bash examples/openresty/run.sh start)

# Warm up: connections opened, statements prepared, code JIT-compiled.
for route in ${BENCH_W5_ROUTES:-lakebase luasql}; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$base/bench/$route")
  [ "$code" = 200 ] || { echo "nginx.sh: /bench/$route answered $code" >&2; tail -n 20 "$LAKEBASE_NGINX_PREFIX/logs/error.log" >&2; exit 1; }
  wrk -t2 -c32 -d2s "$base/bench/$route" >/dev/null
done

# wrk's report -> one JSON line (req/s, p50/p99 in ms, errors = non-2xx + socket errors).
to_json() { # round peer < wrk output
  python3 -c '
import json, re, sys
rnd, peer = int(sys.argv[1]), sys.argv[2]
text = sys.stdin.read()
def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]
lat = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)}
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
reqs = int(re.search(r"(\d+) requests in", text).group(1))
errors = int((re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text) or [0, 0])[1])
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
if sock:
    errors += sum(int(x) for x in sock.groups())
load1 = float(open("/proc/loadavg").read().split()[0])
print(json.dumps({"round": rnd, "peer": peer, "workload": "W5", "value": rps, "unit": "req/s",
                  "errors": errors, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"), "requests": reqs,
                  "load1": load1}))
' "$@"
}

# BENCH_W5_ROUTES, BENCH_W5_PING=0, BENCH_W5_THREADS=0 and BENCH_W5_LABEL (appended to the peer
# names) let bench/rtt.sh run only the lakebase route through the latency proxy.
label=${BENCH_W5_LABEL:-}
for ((r = 0; r < rounds; r++)); do
  read -r -a routes <<<"${BENCH_W5_ROUTES:-lakebase luasql}"
  ((r % 2)) && [ ${#routes[@]} = 2 ] && routes=("${routes[1]}" "${routes[0]}")
  for route in "${routes[@]}"; do
    case $route in
      lakebase) peer="lakebase LuaJIT (nginx$label)" ;;
      lakebase_obs) peer="lakebase LuaJIT (nginx, hooks on$label)" ;;
      luasql) peer="luasql LuaJIT (nginx, blocking$label)" ;;
    esac
    line=$(wrk -t2 -c32 -d"$duration" --latency "$base/bench/$route" | to_json "$r" "$peer")
    echo "$line"
    echo "   W5 $route: $line" >&2
  done
done

# /ping while pg_sleep(0.5) runs in the same (only) worker: the event loop must keep answering.
for ((r = 0; r < rounds && ${BENCH_W5_PING:-1}; r++)); do
  curl -s -o /dev/null "$base/bench/sleep" &
  sleeper=$!
  sleep 0.05
  max=$(for _ in $(seq 1 20); do curl -s -o /dev/null -w '%{time_total}\n' "$base/ping"; done |
    sort -g | tail -n 1)
  still=$(kill -0 "$sleeper" 2>/dev/null && echo true || echo false)
  wait "$sleeper"
  python3 -c 'import json, sys; print(json.dumps({"round": int(sys.argv[1]), "peer": "lakebase LuaJIT (nginx)",
    "workload": "W5-ping", "value": float(sys.argv[2]) * 1000, "unit": "ms", "requests": 20,
    "sleep_still_running": sys.argv[3] == "true"}))' "$r" "$max" "$still"
done

# For information (not the target): the same lakebase route with 4 thread-pool threads instead of the
# example's 16, by reloading nginx with the generated config changed (examples/ stays as it is).
conf="$LAKEBASE_NGINX_PREFIX/conf/nginx.conf"
if [ "${BENCH_W5_THREADS:-4}" != 0 ] && grep -q 'thread_pool lakebase threads=' "$conf"; then
  sed -i "s/thread_pool lakebase threads=[0-9]*/thread_pool lakebase threads=${BENCH_W5_THREADS:-4}/" "$conf"
  nginx -p "$LAKEBASE_NGINX_PREFIX" -c "$conf" -s reload 2>/dev/null
  sleep 1.5
  wrk -t2 -c32 -d2s "$base/bench/lakebase" >/dev/null
  for ((r = 0; r < rounds; r++)); do
    line=$(wrk -t2 -c32 -d"$duration" --latency "$base/bench/lakebase" |
      to_json "$r" "lakebase LuaJIT (nginx, threads=${BENCH_W5_THREADS:-4})")
    echo "$line"
    echo "   W5 lakebase threads=${BENCH_W5_THREADS:-4}: $line" >&2
  done
fi
