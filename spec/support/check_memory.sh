#!/usr/bin/env bash
# make check-memory: the C tests and the busted suite (Lua 5.4 and LuaJIT) against an
# ASan+UBSan build of the C core (clang), with leak detection.
#  - C tests are sanitized executables.
#  - busted runs under Lua interpreters started through wrappers (<build>/asan/bin/lua5.4,
#    luajit, lua and nginx, first in PATH) that preload the clang ASan runtime (it carries the UBSan
#    handlers too) and a small shim: dlclose() becomes a no-op, so leaks in lakebase/core.so
#    keep their symbols when the interpreter unloads it at exit, and LD_PRELOAD is removed from
#    the environment at start, so programs the specs run (curl, psql, sh: curl hangs with ASan
#    preloaded) are not sanitized, while Lua interpreters they start find the wrappers in PATH.
#  - Every sanitizer report goes to a log file; a report counts as OURS when its stack has a
#    frame in this tree's src/ (or the core.so we built). Reports from other programs the specs
#    run (psql, curl, sh) or from the interpreters alone are counted as foreign and listed, not
#    failed; spec/support/lsan.supp silences the interpreters' known leaks.
# Env: MEMORY_BUILD (default build-asan), MEMORY_INTERPS ("lua5.4 luajit"), MEMORY_SPECS (spec
# files, default all), MEMORY_SKIP_SPECS=1 / MEMORY_SKIP_C=1, LAKEBASE_RUN_DIR (default: a fresh
# <build>/run.<pid>, removed afterwards). Last line: "check-memory: ..."; exit 0 only with zero reports in our code and
# every test passing.
set -uo pipefail

# The whole script is one function, read before it runs: editing this file during a run is safe.
main() {
cd "$(dirname "$0")/../.."
root=$PWD
build=${MEMORY_BUILD:-build-asan}
# A run dir of its own (removed at the end), so concurrent runs never stop each other's fixtures.
own_run=0
if [ -z "${LAKEBASE_RUN_DIR:-}" ]; then
  export LAKEBASE_RUN_DIR="$root/$build/run.$$"
  own_run=1
fi
san="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
# -fno-sanitize-recover: UB aborts, so it can never pass unnoticed inside a spec.

asan_rt=$(clang -print-file-name=libclang_rt.asan-x86_64.so 2>/dev/null)
[ -f "$asan_rt" ] || asan_rt=/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.asan-x86_64.so
if [ ! -f "$asan_rt" ]; then
  echo "check-memory: the clang ASan runtime is missing (apt-get install clang libclang-rt-14-dev)"
  exit 1
fi

echo "== build ($build, clang, ASan+UBSan)"
if ! CFLAGS="$san" make --no-print-directory build BUILD="$build" CC=clang >"/tmp/lakebase-check-memory-build.$$" 2>&1; then
  cat "/tmp/lakebase-check-memory-build.$$"; rm -f "/tmp/lakebase-check-memory-build.$$"
  echo "check-memory: build failed"; exit 1
fi
rm -f "/tmp/lakebase-check-memory-build.$$"
cat >"$build/asan_shim.c" <<'EOF'
#include <stdlib.h>
int dlclose(void *handle);
int dlclose(void *handle) { (void)handle; return 0; }
__attribute__((constructor)) static void lakebase_asan_shim(void) { unsetenv("LD_PRELOAD"); }
EOF
clang -shared -fPIC -O1 "$build/asan_shim.c" -o "$build/asan_shim.so" || exit 1
# Wrappers in a Lua-prefix-like layout (bin/ + include/ -> /usr/include), so luarocks, which
# derives the Lua headers' place from the interpreter it finds in PATH, still finds them.
wrap="$root/$build/asan/bin"
mkdir -p "$wrap"
ln -sfn /usr/include "$root/$build/asan/include"
for prog in lua5.4 luajit lua nginx; do
  real=$(command -v "$prog") || continue
  case "$real" in "$wrap/"*) continue ;; esac
  # exec -a "$0": the program sees the wrapper as argv[0] (Lua's arg[-1]), so a script that
  # starts its own interpreter again (the CLI does) goes through the wrapper too.
  printf '#!/bin/bash\nLD_PRELOAD="%s %s" exec -a "$0" %s "$@"\n' "$asan_rt" "$root/$build/asan_shim.so" "$real" >"$wrap/$prog"
  chmod +x "$wrap/$prog"
done

logs=$(mktemp -d /tmp/lakebase-check-memory.XXXXXX)
c_pass=0 c_fail=0 s_pass=0 s_fail=0
stop_fixtures() {
  bash spec/support/fixtures.sh stop >/dev/null 2>&1 || true
  [ $own_run = 1 ] && rm -rf "$LAKEBASE_RUN_DIR"
}
trap 'stop_fixtures; rm -rf "$logs"' EXIT

echo "== fixtures ($LAKEBASE_RUN_DIR)"
if ! bash spec/support/fixtures.sh start; then
  echo "check-memory: fixtures failed to start"; exit 1
fi
# shellcheck disable=SC1091
. "$LAKEBASE_RUN_DIR/env.sh"

supp="$root/spec/support/lsan.supp"
# exitcode=0: leaks never change an exit code (foreign programs leak too); the logs decide.
# log_exe_name: log files are asan.<program>.<pid>, so reports are attributed to their program.
# (fast_unwind_on_malloc=0 would give fuller stacks but deadlocks LuaJIT and is 20x slower.)
common="detect_leaks=1:malloc_context_size=40:exitcode=0:log_exe_name=1:log_path=$logs/asan"
export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0:exitcode=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_exe_name=1:log_path=$logs/asan"

if [ "${MEMORY_SKIP_C:-0}" != 1 ]; then
  for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "== $t"
    out="$logs/c.out"
    ASAN_OPTIONS="$common" timeout 900 "$t" >"$out" 2>&1; rc=$?
    p=$(grep -cE '^ok [0-9]+' "$out"); f=$(grep -cE '^not ok [0-9]+' "$out")
    grep -E '^not ok' "$out" | head -5
    [ "$rc" != 0 ] && [ "$f" = 0 ] && f=1
    echo "   $p passed, $f failed (exit $rc)"
    c_pass=$((c_pass + p)); c_fail=$((c_fail + f))
  done
fi

if [ "${MEMORY_SKIP_SPECS:-0}" != 1 ]; then
  export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/?.lua;$root/?/init.lua;;"
  specs=${MEMORY_SPECS:-$(ls spec/*_spec.lua)}
  for interp in ${MEMORY_INTERPS:-lua5.4 luajit}; do
    export LUA_CPATH="$root/$build/$interp/?.so;;" LAKEBASE_TEST_INTERP=$interp LAKEBASE_BUILD=$build
    for spec in $specs; do
      out="$logs/spec.out"
      PATH="$wrap:$PATH" ASAN_OPTIONS="$common" \
        timeout 900 "$wrap/$interp" "$(command -v busted)" --ignore-lua -o plainTerminal "$spec" >"$out" 2>&1; rc=$?
      summary=$(grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$out" | tail -1)
      if [ -z "$summary" ]; then
        echo "== $interp $spec: did not finish (exit $rc)"; tail -20 "$out"
        s_fail=$((s_fail + 1)); continue
      fi
      read -r s _ _ f _ _ e _ _ _ _ <<<"$summary"
      echo "== $interp $spec: $summary"
      [ $((f + e)) != 0 ] && grep -E -A3 '^(Failure|Error) ->' "$out" | head -20
      s_pass=$((s_pass + s)); s_fail=$((s_fail + f + e))
      [ "$rc" != 0 ] && [ $((f + e)) = 0 ] && s_fail=$((s_fail + 1))
    done
  done
fi

# Classify every report. In our programs (the interpreters, the C tests) a report is ours when a
# frame points into this tree's src/ or our core.so, or into libpq/libcurl/libcjson: only
# lakebase calls those there (without frame pointers in those libraries, the stack may stop
# before reaching our frame). Reports from other programs (psql, curl, sh) are foreign.
ours=0 foreign=0 ours_leak=0 ours_err=0
for f in "$logs"/asan.*; do
  [ -f "$f" ] || continue
  prog=$(basename "$f" | sed -E 's/^asan\.(.*)\.[0-9]+$/\1/')
  case "$prog" in
    lua5.4|luajit|lua|nginx|test_*) mine=1 ;;
    *) mine=0 ;;
  esac
  if [ $mine = 1 ] && grep -qE "$root/src/|lakebase/core\.so|in lb_[a-z_0-9]+ |libpq\.so|libcurl\.so|libcjson\.so" "$f"; then
    ours=$((ours + 1))
    if grep -q 'LeakSanitizer' "$f"; then ours_leak=$((ours_leak + 1)); else ours_err=$((ours_err + 1)); fi
    echo "---- sanitizer report in our code ($(basename "$f")):"
    grep -E 'ERROR|runtime error|SUMMARY|Direct leak|Indirect leak|^    #[0-9]+ ' "$f" | head -40
  else
    foreign=$((foreign + 1))
    echo "(foreign report ignored: $(basename "$f"): $(grep -m1 -E 'SUMMARY|runtime error' "$f" | cut -c1-120))"
  fi
done

echo "check-memory: C tests $c_pass passed, $c_fail failed; specs $s_pass passed, $s_fail failed;" \
  "reports in our code: $ours_err errors, $ours_leak leaks; foreign reports ignored: $foreign"
[ "$ours" = 0 ] && [ "$c_fail" = 0 ] && [ "$s_fail" = 0 ]
}
main "$@"
exit $?
