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

# A second folder with a custom migration (drizzle-kit generate --custom): hand-written SQL with a
# plpgsql function, a trigger and dollar quoting, as teams write them for what drizzle-kit cannot.
out=../../fixtures/drizzle_custom
rm -rf "$out"
DZ_SCHEMA=./schema/v1.ts DZ_OUT=$out npx drizzle-kit generate --config drizzle.config.mjs
sleep 1.1
DZ_SCHEMA=./schema/v1.ts DZ_OUT=$out npx drizzle-kit generate --config drizzle.config.mjs --custom --name touch_trigger
custom=$(ls "$out"/0001_*.sql)
cat > "$custom" <<'SQL'
-- Custom SQL migration file, put your code below! --
CREATE FUNCTION dz_touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  -- a semicolon; and a 'quote' inside the body
  NEW.email := lower(NEW.email);
  RETURN NEW;
END;
$fn$;
--> statement-breakpoint
CREATE TRIGGER dz_users_touch BEFORE INSERT OR UPDATE ON "dz_users"
  FOR EACH ROW EXECUTE FUNCTION dz_touch();
--> statement-breakpoint
INSERT INTO "dz_users" ("email") VALUES ('Seed@Example.COM');
SQL
