// Stage 1 of the drizzle fixture schema (spec/fixtures/drizzle_basic/0000_*).
import { pgTable, serial, text, integer, timestamp, uniqueIndex } from "drizzle-orm/pg-core";

export const dzUsers = pgTable("dz_users", {
  id: serial("id").primaryKey(),
  email: text("email").notNull(),
  name: text("name"),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
}, (t) => [uniqueIndex("dz_users_email_idx").on(t.email)]);
