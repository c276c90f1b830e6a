#!/usr/bin/env bash
# Micro benchmarks of the C core (bench/micro.c against $BUILD/liblakebase.a): credential-cache hit
# and pool checkout+return, ns/op, one JSON line per round. Needs the fixtures running
# (LAKEBASE_RUN_DIR/env.sh); bench/run.sh calls it, or run it alone after `fixtures.sh start`.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
run_dir=${LAKEBASE_RUN_DIR:-spec/support/run}
rounds=${BENCH_ROUNDS:-3}
# shellcheck disable=SC1091
. "$run_dir/env.sh"
[ -f "$build/liblakebase.a" ] || make --no-print-directory build BUILD="$build" >&2
bin="$run_dir/micro"
cc -O2 -Wall -Wextra -std=c11 -D_GNU_SOURCE -I"$(pg_config --includedir)" -Isrc bench/micro.c \
  -o "$bin" "$build/liblakebase.a" -lpq -lcurl -lcjson -pthread
"$bin" "$rounds"
