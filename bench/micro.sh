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
# Settings come from options only: the bench's PG* variables (password auth) must not turn the
# credential measure into a password copy, nor a profile or DATABRICKS_* variable change it.
env -u PGPASSWORD -u PGUSER -u PGHOST -u PGPORT -u PGDATABASE -u PGSSLMODE -u DATABRICKS_TOKEN \
  -u DATABRICKS_CLIENT_ID -u DATABRICKS_CLIENT_SECRET -u DATABRICKS_CONFIG_PROFILE -u LAKEBASE_ENDPOINT \
  -u DATABRICKS_HOST HOME="$run_dir" "$bin" "$rounds"
