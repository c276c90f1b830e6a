#!/usr/bin/env bash
# Starts/stops the OpenResty example (nginx + lua-nginx-module + app.lua) on 127.0.0.1:<free port>.
#   run.sh start   prints the base URL (only that, on stdout) once /ping answers
#   run.sh stop
# Settings: the SPEC §2 variables from the environment; when PGHOST is unset, the local fixtures'
# ${LAKEBASE_RUN_DIR:-spec/support/run}/env.sh is mapped to them (OAuth M2M, like examples/run_demo.sh).
# Knobs: LAKEBASE_BUILD (build tree, default build), LAKEBASE_NGINX_WORKERS (default 1),
# LAKEBASE_NGINX_PORT (default: a free one), LAKEBASE_NGINX_EXTRA (a file included in the server
# block), LAKEBASE_NGINX_HTTP_EXTRA (one included at the http level), LAKEBASE_NGINX_PREFIX
# (default <run dir>/openresty). Logs: <prefix>/logs/error.log.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

run_dir=${LAKEBASE_RUN_DIR:-spec/support/run}
case "$run_dir" in /*) ;; *) run_dir="$root/$run_dir" ;; esac
prefix=${LAKEBASE_NGINX_PREFIX:-$run_dir/openresty}
build=${LAKEBASE_BUILD:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac

die() { echo "openresty: $*" >&2; exit 1; }

stop() {
  local pidf="$prefix/logs/nginx.pid"
  [ -f "$pidf" ] || return 0
  local pid
  pid=$(cat "$pidf" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidf"
}

map_fixture_env() {
  [ -n "${PGHOST:-}" ] && return 0
  if [ -z "${LAKEBASE_TEST_PGPORT:-}" ] && [ ! -f "$run_dir/env.sh" ]; then
    die "PGHOST is not set and no fixtures env at $run_dir/env.sh"
  fi
  # shellcheck source=examples/fixture_env.sh
  LAKEBASE_RUN_DIR=$run_dir . "$root/examples/fixture_env.sh"
  export HOME=$LAKEBASE_TEST_RUNDIR # no ~/.databrickscfg of this machine gets in the way
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# sed replacement text: escape \, & and the delimiter |.
sed_escape() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }

start() {
  command -v nginx >/dev/null || die "nginx is not installed (Debian: nginx libnginx-mod-http-lua)"
  [ -f "$build/luajit/lakebase/core.so" ] || die "no $build/luajit/lakebase/core.so: run make build"
  stop
  map_fixture_env
  mkdir -p "$prefix/logs" "$prefix/tmp" "$prefix/conf"
  : >"$prefix/logs/error.log"

  local port lua_path lua_cpath user_line="" extra="" http_extra=""
  port=${LAKEBASE_NGINX_PORT:-$(free_port)}
  lua_path="$here/?.lua;$root/lua/?.lua;$root/lua/?/init.lua;$root/?.lua"
  lua_cpath="$build/luajit/?.so"
  # As root the workers would run as nobody, who may not read the repo, the build or the CA file.
  [ "$(id -u)" = 0 ] && user_line="user root;"
  [ -n "${LAKEBASE_NGINX_EXTRA:-}" ] && extra="include $LAKEBASE_NGINX_EXTRA;"
  [ -n "${LAKEBASE_NGINX_HTTP_EXTRA:-}" ] && http_extra="include $LAKEBASE_NGINX_HTTP_EXTRA;"

  sed -e "s|@PREFIX@|$(sed_escape "$prefix")|g" \
      -e "s|@PORT@|$port|g" \
      -e "s|@LUA_PATH@|$(sed_escape "$lua_path")|g" \
      -e "s|@LUA_CPATH@|$(sed_escape "$lua_cpath")|g" \
      -e "s|@WORKERS@|${LAKEBASE_NGINX_WORKERS:-1}|g" \
      -e "s|@LOG_LEVEL@|${LAKEBASE_NGINX_LOG_LEVEL:-warn}|g" \
      -e "s|@USER@|$(sed_escape "$user_line")|g" \
      -e "s|@HTTP_EXTRA@|$(sed_escape "$http_extra")|g" \
      -e "s|@EXTRA@|$(sed_escape "$extra")|g" \
      "$here/nginx.conf" >"$prefix/conf/nginx.conf"

  # Under make check-memory (ASan runtime preloaded): the slow malloc unwinder deadlocks inside
  # libgcc's _Unwind_Find_FDE in the nginx worker (it mallocs while holding its lock, once LuaJIT
  # has registered frames); frame-pointer unwinding avoids it, our code keeps its frame pointers.
  if [ -n "${ASAN_OPTIONS:-}" ]; then
    export ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=1"
  fi
  # A core.so built with ASan (make check-memory) needs the ASan runtime loaded first: preload it
  # (and check-memory's dlclose shim, when there) into nginx only.
  local preload=""
  if nm -D "$build/luajit/lakebase/core.so" 2>/dev/null | grep -q ' U __asan_init'; then
    preload=$(clang -print-file-name=libclang_rt.asan-x86_64.so 2>/dev/null)
    [ -f "$preload" ] || die "core.so is built with ASan but the clang ASan runtime is missing"
    [ -f "$build/asan_shim.so" ] && preload="$preload $build/asan_shim.so"
  fi
  # daemon off in a session of its own (instead of nginx's own daemonizing, which hangs the
  # worker under the ASan runtime); the pid file in the prefix serves `stop`.
  LD_PRELOAD="$preload" setsid nginx -p "$prefix" -c "$prefix/conf/nginx.conf" -g 'daemon off;' \
    </dev/null >"$prefix/logs/start.log" 2>&1 &
  local npid=$! base="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if ! kill -0 "$npid" 2>/dev/null; then
      cat "$prefix/logs/start.log" >&2
      tail -n 20 "$prefix/logs/error.log" >&2
      die "nginx failed to start"
    fi
    if env -u LD_PRELOAD curl -fsS -m 1 "$base/ping" >/dev/null 2>&1; then
      echo "$base"
      return 0
    fi
    sleep 0.1
  done
  tail -n 20 "$prefix/logs/error.log" >&2
  stop
  die "nginx did not answer on $base/ping"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
