// Stage 2 of the drizzle fixture schema (spec/fixtures/drizzle_basic/0001_*): a second table with a
// foreign key, a new column, and a function whose body contains the breakpoint-free dollar quoting.
import { pgTable, serial, text, integer, timestamp, uniqueIndex, index } from "drizzle-orm/pg-core";

export const dzUsers = pgTable("dz_users", {
  id: serial("id").primaryKey(),
  email: text("email").notNull(),
  name: text("name"),
  karma: integer("karma").notNull().default(0),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
}, (t) => [uniqueIndex("dz_users_email_idx").on(t.email)]);

export const dzPosts = pgTable("dz_posts", {
  id: serial("id").primaryKey(),
  userId: integer("user_id").notNull().references(() => dzUsers.id, { onDelete: "cascade" }),
  title: text("title").notNull(),
  body: text("body"),
}, (t) => [index("dz_posts_user_idx").on(t.userId)]);
