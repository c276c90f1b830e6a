// Stage 3 (spec/fixtures/drizzle_basic/0002_*): drop a column, add a table.
import { pgTable, serial, text, integer, timestamp, uniqueIndex, index } from "drizzle-orm/pg-core";

export const dzUsers = pgTable("dz_users", {
  id: serial("id").primaryKey(),
  email: text("email").notNull(),
  karma: integer("karma").notNull().default(0),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
}, (t) => [uniqueIndex("dz_users_email_idx").on(t.email)]);

export const dzPosts = pgTable("dz_posts", {
  id: serial("id").primaryKey(),
  userId: integer("user_id").notNull().references(() => dzUsers.id, { onDelete: "cascade" }),
  title: text("title").notNull(),
  body: text("body"),
}, (t) => [index("dz_posts_user_idx").on(t.userId)]);

export const dzTags = pgTable("dz_tags", {
  id: serial("id").primaryKey(),
  label: text("label").notNull().unique(),
});
