#!/usr/bin/env bash
# Regenerates spec/fixtures/drizzle_basic with the real drizzle-kit (three schema stages, one
# migration each). The generated folder is committed as test data; run this only to refresh it.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules ] || npm install --no-audit --no-fund
out=../../fixtures/drizzle_basic
rm -rf "$out"
for stage in v1 v2 v3; do
  DZ_SCHEMA=./schema/$stage.ts DZ_OUT=$out npx drizzle-kit generate --config drizzle.config.mjs
  sleep 1.1   # distinct journal "when" values
done
