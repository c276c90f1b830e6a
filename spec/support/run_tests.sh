#!/usr/bin/env bash
# The whole suite (make test): C tests, then every spec file under Lua 5.4 and LuaJIT, against
# one set of fixtures that is stopped even on failure. Ends with "tests: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
passed=0 failed=0 skipped=0
log_dir=$(mktemp -d)

stop_fixtures() { bash spec/support/fixtures.sh stop >/dev/null 2>&1 || true; rm -rf "$log_dir"; }
trap stop_fixtures EXIT

echo "== fixtures"
if ! bash spec/support/fixtures.sh start; then
  echo "fixtures failed to start"
  echo "tests: 0 passed, 1 failed"
  exit 1
fi
# shellcheck disable=SC1091
. "${LAKEBASE_RUN_DIR:-spec/support/run}/env.sh"

# C tests print TAP lines ("ok N - ..." / "not ok N - ...").
count_tap() {
  local out=$1 rc=$2 p f s
  p=$(grep -cE '^ok [0-9]+' "$out" | head -1); s=$(grep -cE '^ok [0-9]+.*# ?SKIP' "$out" | head -1)
  f=$(grep -cE '^not ok [0-9]+' "$out" | head -1)
  p=$((p - s))
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

if [ "${LAKEBASE_SKIP_C_TESTS:-0}" != 1 ]; then
  for t in "${LAKEBASE_BUILD:-build}"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "== $t"
    out="$log_dir/c.out"
    timeout 600 "$t" >"$out" 2>&1; rc=$?
    cat "$out"
    count_tap "$out" "$rc"
  done
fi

export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/?.lua;$root/?/init.lua;;"
interps=${LAKEBASE_TEST_INTERPS:-"lua5.4 luajit"}
specs=${LAKEBASE_SPECS:-$(ls spec/*_spec.lua 2>/dev/null)}
# PUC Lua 5.1 and 5.3 (make build-compat): a subset that covers the binding, results and types,
# settings, the builder, migrations and the CLI. LAKEBASE_TEST_INTERPS="lua5.1 lua5.3" runs them all.
compat_interps=${LAKEBASE_COMPAT_INTERPS-"lua5.1 lua5.3"}
compat_specs=${LAKEBASE_COMPAT_SPECS:-"spec/config_spec.lua spec/types_spec.lua spec/query_spec.lua
  spec/json_spec.lua spec/builder_spec.lua spec/builder_db_spec.lua spec/transaction_spec.lua
  spec/migrate_spec.lua spec/schema_spec.lua spec/cli_spec.lua spec/secrets_spec.lua"}

run_specs() { # interp spec...
  local interp=$1 spec out rc summary s f e pend; shift
  export LUA_CPATH="$root/${LAKEBASE_BUILD:-build}/$interp/?.so;;" LAKEBASE_TEST_INTERP=$interp
  for spec in "$@"; do
    echo "== $interp $spec"
    out="$log_dir/spec.out"
    timeout 900 busted --lua="$interp" -o plainTerminal "$spec" >"$out" 2>&1; rc=$?
    cat "$out"
    summary=$(grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$out" | tail -1)
    if [ -z "$summary" ]; then
      echo "!! $spec did not finish under $interp (exit $rc)"
      failed=$((failed + 1)); continue
    fi
    read -r s _ _ f _ _ e _ _ pend _ <<<"$summary"
    passed=$((passed + s)); failed=$((failed + f + e)); skipped=$((skipped + pend))
    if [ "$rc" != 0 ] && [ $((f + e)) = 0 ]; then failed=$((failed + 1)); fi
  done
}
for interp in $interps; do
  # shellcheck disable=SC2086
  run_specs "$interp" $specs
done
for interp in $compat_interps; do
  case " $interps " in *" $interp "*) continue ;; esac
  # shellcheck disable=SC2086
  run_specs "$interp" $compat_specs
done

echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
