// Runs drizzle-orm's own PostgreSQL migrator (node-postgres driver) over TLS against the test
// database, as the fixtures' admin: `node migrate.mjs <migrationsFolder>`.
// Connection from the fixtures' env (LAKEBASE_TEST_*); the CA file verifies the server certificate.
import fs from "node:fs";
import pg from "pg";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";

const folder = process.argv[2];
if (!folder) {
  console.error("usage: node migrate.mjs <migrationsFolder>");
  process.exit(2);
}
const env = process.env;
const pool = new pg.Pool({
  host: env.LAKEBASE_TEST_PGHOST,
  port: Number(env.LAKEBASE_TEST_PGPORT),
  database: env.LAKEBASE_TEST_PGDATABASE,
  user: env.LAKEBASE_TEST_ADMIN_USER,
  password: env.LAKEBASE_TEST_ADMIN_PASSWORD,
  ssl: { rejectUnauthorized: true, ca: fs.readFileSync(env.LAKEBASE_TEST_SSLROOTCERT, "utf8") },
  max: 1,
});
try {
  await migrate(drizzle(pool), { migrationsFolder: folder });
  console.log("drizzle-orm migrate: ok");
} catch (e) {
  console.error("drizzle-orm migrate failed:", e.message);
  process.exitCode = 1;
} finally {
  await pool.end();
}
