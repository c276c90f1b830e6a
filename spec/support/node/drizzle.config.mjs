// drizzle-kit configuration for regenerating the fixtures (see generate-fixtures.sh).
export default {
  dialect: "postgresql",
  schema: process.env.DZ_SCHEMA || "./schema/v1.ts",
  out: process.env.DZ_OUT || "../../fixtures/drizzle_basic",
};
