#!/usr/bin/env bash
# libFuzzer targets for every parser of the C core (make fuzz). Builds them with clang
# (-fsanitize=fuzzer,address,undefined) into ${FUZZ_BUILD:-build-fuzz} and runs each for
# ${FUZZ_SECONDS:-60} s over its committed seeds (fuzz/corpus/<target>/); new inputs go to a
# scratch corpus, crashes to <build>/artifacts/. FUZZ_SECONDS=0 only replays the seeds
# (regression mode). FUZZ_TARGETS="a b" picks targets. Prints one line per target with its
# executions and a last line "fuzz: N targets, N failed"; exits nonzero when any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${FUZZ_BUILD:-build-fuzz}
seconds=${FUZZ_SECONDS:-60}
CC=${FUZZ_CC:-clang}
all_targets="settings settings_profile profile rfc3339 credential_json oauth_json pgarray bytea result"
targets=${FUZZ_TARGETS:-$all_targets}
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="-O1 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -pthread -I$(pg_config --includedir 2>/dev/null || echo /usr/include/postgresql) -Isrc"

command -v "$CC" >/dev/null || { echo "fuzz: $CC not found (apt-get install clang)"; exit 1; }
mkdir -p "$build/obj" "$build/artifacts" "$build/work"

# The C core, instrumented for coverage and sanitizers (not linked with the fuzzer main).
objs=()
for src in src/*.c; do
  obj="$build/obj/$(basename "${src%.c}").o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ src/lakebase.h -nt "$obj" ]; then
    $CC $cflags $san -fsanitize=fuzzer-no-link -c "$src" -o "$obj" || { echo "fuzz: $src does not build"; exit 1; }
  fi
  objs+=("$obj")
done
rm -f "$build/libcore.a" && ar rcs "$build/libcore.a" "${objs[@]}"
# The Lua binding (for the result decoder target), against Lua 5.4.
bobjs=()
for src in src/bind/*.c; do
  obj="$build/obj/bind_$(basename "${src%.c}").o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ src/lakebase.h -nt "$obj" ] || [ src/bind/bind.h -nt "$obj" ]; then
    $CC $cflags -I/usr/include/lua5.4 $san -fsanitize=fuzzer-no-link -c "$src" -o "$obj" || { echo "fuzz: $src does not build"; exit 1; }
  fi
  bobjs+=("$obj")
done
rm -f "$build/libbind.a" && ar rcs "$build/libbind.a" "${bobjs[@]}"

n=0 failed=0
summary="$build/summary.md" # a Markdown table of this run, for docs/RELIABILITY.md
{
  echo "| target | seconds | executions | exec/s | corpus | result |"
  echo "|---|---|---|---|---|---|"
} >"$summary"
printf '%-16s %12s %10s %8s  %s\n' target executions "exec/s" corpus result
for t in $targets; do
  n=$((n + 1))
  bin="$build/fuzz_$t"
  extra=()
  [ "$t" = result ] && extra=(-I/usr/include/lua5.4 "$build/libbind.a")
  if ! $CC $cflags $san -fsanitize=fuzzer "fuzz/fuzz_$t.c" "${extra[@]}" "$build/libcore.a" -lpq -lcurl -lcjson -llua5.4 -lm -o "$bin" 2>"$build/$t.build.log"; then
    echo "fuzz: fuzz_$t does not build:"; cat "$build/$t.build.log"
    failed=$((failed + 1)); continue
  fi
  seeds="fuzz/corpus/$t"
  work="$build/work/$t"
  mkdir -p "$seeds" "$work"
  log="$build/$t.log"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  if [ "$seconds" = 0 ]; then
    "$bin" -runs=0 -print_final_stats=1 "$seeds" >"$log" 2>&1; rc=$?
  else
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" "$work" "$seeds" >"$log" 2>&1; rc=$?
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  corpus=$(( $(ls "$work" | wc -l) + $(ls "$seeds" | wc -l) ))
  if [ $rc = 0 ]; then result=ok; else result="FAILED (exit $rc, see $log)"; failed=$((failed + 1)); fi
  printf '%-16s %12s %10s %8s  %s\n' "$t" "${execs:-?}" "${speed:-?}" "$corpus" "$result"
  echo "| $t | $seconds | ${execs:-?} | ${speed:-?} | $corpus | ${result%% (*} |" >>"$summary"
  if [ $rc != 0 ]; then
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -5 | sed 's/^/    /'
  fi
done
echo "fuzz: $n targets, $failed failed (table: $summary)"
[ $failed = 0 ]
