-- The example schema (examples/schema.lua), as `lakebase generate` writes it.
CREATE TABLE IF NOT EXISTS "items" (
  "id" serial PRIMARY KEY,
  "name" text NOT NULL,
  "price" numeric(10, 2),
  "tags" jsonb,
  "created_at" timestamptz NOT NULL DEFAULT now()
);
