-- lakebase.schema: column types, modifiers, table options, DDL text, describe(). No database needed.
-- luacheck: max line length 140
local s = require("lakebase.schema")
local value = require("lakebase.value")

local function errmsg(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

describe("schema column types", function()
  local cases = {
    { s.serial, "serial" }, { s.bigserial, "bigserial" }, { s.smallint, "smallint" },
    { s.integer, "integer" }, { s.bigint, "bigint" }, { s.boolean, "boolean" }, { s.text, "text" },
    { s.real, "real" }, { s.double, "double precision" }, { s.uuid, "uuid" }, { s.json, "json" },
    { s.jsonb, "jsonb" }, { s.date, "date" }, { s.timestamp, "timestamp" },
    { s.timestamptz, "timestamptz" }, { s.interval, "interval" }, { s.bytea, "bytea" },
  }
  for _, case in ipairs(cases) do
    it("renders " .. case[2], function()
      local t = s.table("t", { c = case[1]() })
      assert.are.equal('CREATE TABLE "t" (\n  "c" ' .. case[2] .. '\n);', (s.create_table_sql(t)))
      assert.are.equal(case[2], s.describe(t).columns[1].type)
    end)
  end

  it("renders varchar and numeric with and without arguments", function()
    local t = s.table("t", {
      a = s.varchar(), b = s.varchar(40), c = s.numeric(), d = s.numeric(12), e = s.numeric(10, 2),
    })
    assert.are.equal('CREATE TABLE "t" (\n  "a" varchar,\n  "b" varchar(40),\n  "c" numeric,\n'
      .. '  "d" numeric(12),\n  "e" numeric(10, 2)\n);', (s.create_table_sql(t)))
  end)

  it("rejects bad type arguments", function()
    assert.matches("positive integer length", errmsg(s.varchar, 0))
    assert.matches("positive integer length", errmsg(s.varchar, 1.5))
    assert.matches("positive integer precision", errmsg(s.numeric, -1))
    assert.matches("scale needs a precision", errmsg(s.numeric, nil, 2))
    assert.matches("scale must be", errmsg(s.numeric, 4, 5))
  end)

  it("makes one-dimension arrays with :array()", function()
    local t = s.table("t", { a = s.integer():array(), b = s.text():array():not_null() })
    assert.are.equal('CREATE TABLE "t" (\n  "a" integer[],\n  "b" text[] NOT NULL\n);', (s.create_table_sql(t)))
    local d = s.describe(t)
    assert.are.equal("integer[]", d.columns[1].type)
    assert.is_true(d.columns[1].array)
    assert.are.equal("integer", d.columns[1].base_type)
    assert.matches("one dimension", errmsg(function() return s.integer():array():array() end))
    assert.matches("cannot be an array", errmsg(function() return s.serial():array() end))
  end)
end)

describe("schema modifiers", function()
  it("renders the example schema exactly as the migration file", function()
    local items = require("examples.schema").items
    local f = assert(io.open("examples/migrations/0001_items.sql"))
    local text = f:read("*a")
    f:close()
    local expected = text:gsub("^%-%-[^\n]*\n", "")
    assert.are.equal(expected, (s.create_table_sql(items, { if_not_exists = true })) .. "\n")
  end)

  it("renders primary key, not null, unique, defaults and references in a fixed order", function()
    local users = s.table("users", { id = s.bigserial():primary_key() })
    local t = s.table("posts", {
      id = s.serial():primary_key(),
      author = s.bigint():not_null():references(users.id, { on_delete = "cascade", on_update = "no action" }),
      slug = s.text():not_null():unique(),
      score = s.integer():default(0),
      parent = s.integer():references(function() return nil end),
    }, { schema = "blog" })
    assert.matches("references%(%) target is not a column", errmsg(s.create_table_sql, t))
    local ok_t = s.table("posts", {
      id = s.serial():primary_key(),
      author = s.bigint():not_null():references(users.id, { on_delete = "cascade", on_update = "no action" }),
      slug = s.text():not_null():unique(),
      score = s.integer():default(0),
      editor = s.bigint():references(users.id, { on_delete = "set_null" }),
    }, { schema = "blog" })
    -- the DDL lakebase.ddl writes for `lakebase generate` too: constraints under PostgreSQL's names
    assert.are.equal('CREATE TABLE "blog"."posts" (\n'
      .. '  "id" serial PRIMARY KEY,\n'
      .. '  "author" bigint NOT NULL,\n'
      .. '  "slug" text NOT NULL,\n'
      .. '  "score" integer DEFAULT 0,\n'
      .. '  "editor" bigint,\n'
      .. '  CONSTRAINT "posts_slug_key" UNIQUE ("slug"),\n'
      .. '  CONSTRAINT "posts_author_fkey" FOREIGN KEY ("author") REFERENCES "users" ("id") ON DELETE CASCADE ON UPDATE NO ACTION,\n'
      .. '  CONSTRAINT "posts_editor_fkey" FOREIGN KEY ("editor") REFERENCES "users" ("id") ON DELETE SET NULL\n'
      .. ');', (s.create_table_sql(ok_t)))
  end)

  it("gives one column's definition for ALTER TABLE", function()
    local users = s.table("users", { id = s.bigserial():primary_key() }, { schema = "auth" })
    local t = s.table("t", { owner = s.bigint():not_null():default(1):references(users.id, { on_delete = "cascade" }) })
    assert.are.equal('"owner" bigint NOT NULL DEFAULT 1 CONSTRAINT "t_owner_fkey" REFERENCES "auth"."users" ("id") ON DELETE CASCADE',
      s.column_sql(t.owner))
    assert.matches("column of a table expected", errmsg(s.column_sql, s.text()))
  end)

  it("supports self references through a function", function()
    local nodes
    nodes = s.table("nodes", {
      id = s.serial():primary_key(),
      parent = s.integer():references(function() return nodes.id end, { on_delete = "SET NULL" }),
    })
    assert.are.equal('CREATE TABLE "nodes" (\n  "id" serial PRIMARY KEY,\n  "parent" integer,\n'
      .. '  CONSTRAINT "nodes_parent_fkey" FOREIGN KEY ("parent") REFERENCES "nodes" ("id") ON DELETE SET NULL\n);',
      (s.create_table_sql(nodes)))
    local ref = s.describe(nodes).columns[2].references
    assert.are.same({ table = "nodes", column = "id", on_delete = "SET NULL" }, ref)
  end)

  it("rejects unknown referential actions", function()
    assert.matches("bad on_delete 'explode'", errmsg(function()
      return s.integer():references(s.table("u", { id = s.serial() }).id, { on_delete = "explode" })
    end))
  end)

  it("writes default literals safely", function()
    local t = s.table("d", {
      a = s.text():default("it's"),
      b = s.text():default([[back\slash ' quote]]),
      c = s.integer():default(-42),
      d = s.double():default(1.5),
      e = s.boolean():default(false),
      f = s.jsonb():default({ k = "v'" , n = { 1, 2 } }),
      g = s.text():array():default({ "a", 'q"uote', "x,y" }),
      h = s.integer():array():default({}),
      i = s.uuid():default(s.raw("gen_random_uuid()")),
      j = s.text():default(value.null),
      k = s.double():default(0 / 0),
      l = s.bytea():default("\0\255"),
    })
    local d = s.describe(t)
    local got = {}
    for _, c in ipairs(d.columns) do got[c.name] = c.default end
    assert.are.same({
      a = "'it''s'",
      b = [[E'back\\slash '' quote']],
      c = "-42",
      d = "1.5",
      e = "false",
      f = [['{"k":"v''","n":[1,2]}']],
      g = [[E'{"a","q\\"uote","x,y"}']],
      h = "'{}'",
      i = "gen_random_uuid()",
      j = "NULL",
      k = "'NaN'",
      l = [[E'\\x00ff']],
    }, got)
  end)

  it("refuses defaults that cannot be written", function()
    assert.matches("NUL byte", errmsg(s.table, "d", { a = s.text():default("a\0b") }))
    assert.matches("column d.a default: expects an integer", errmsg(s.table, "d", { a = s.integer():default("x") }))
    assert.matches("expects a boolean", errmsg(s.table, "d", { a = s.boolean():default(1) }))
    assert.matches("cannot take parameters", errmsg(s.table, "d", { a = s.text():default(s.raw("$1", "x")) }))
    assert.matches("value expected", errmsg(function() return s.text():default(nil) end))
  end)

  it("refuses modifiers once the column is in a table", function()
    local t = s.table("t", { a = s.text() })
    assert.matches("after it was added to a table", errmsg(function() return t.a:not_null() end))
  end)
end)

describe("schema tables", function()
  it("keeps declaration order, whatever the hash order", function()
    local names = { "zeta", "alpha", "mid", "beta", "omega", "gamma", "a1", "b2", "c3", "d4" }
    local defs = {}
    local cols = {}
    for _, n in ipairs(names) do defs[#defs + 1] = { n, s.text() } end
    for _, d in ipairs(defs) do cols[d[1]] = d[2] end
    local d = s.describe(s.table("t", cols))
    local got = {}
    for i, c in ipairs(d.columns) do got[i] = c.name end
    assert.are.same(names, got)
  end)

  it("quotes schema-qualified names and keeps dots inside names", function()
    local ev = s.table("events", { id = s.bigserial():primary_key() }, { schema = "analytics" })
    assert.are.equal('"analytics"."events"."id"', ev.id.qname)
    local dotted = s.table("analytics.events", { id = s.integer() })
    assert.are.equal('"analytics.events"."id"', dotted.id.qname)
  end)

  it("quotes identifiers with quotes in them", function()
    local t = s.table('we"ird', { ['co"l'] = s.text() }, { schema = 'sch"ema' })
    assert.are.equal('CREATE TABLE "sch""ema"."we""ird" (\n  "co""l" text\n);', (s.create_table_sql(t)))
    assert.are.equal('"a""b"', s.quote_ident('a"b'))
  end)

  it("refuses bad names", function()
    assert.matches("empty name", errmsg(s.table, "", { a = s.text() }))
    assert.matches("NUL byte", errmsg(s.table, "a\0b", { a = s.text() }))
    assert.matches("longer than 63 bytes", errmsg(s.table, string.rep("x", 64), { a = s.text() }))
    assert.matches("column names must be strings", errmsg(s.table, "t", { s.text() }))
    assert.matches("no columns", errmsg(s.table, "t", {}))
    assert.matches("column definition like s.text%(%) expected", errmsg(s.table, "t", { a = "text" }))
  end)

  it("errors on unknown columns and stays read-only", function()
    local t = s.table("t", { a = s.text() })
    assert.matches("table t has no column 'b'", errmsg(function() return t.b end))
    assert.matches("read%-only", errmsg(function() t.b = 1 end))
    assert.is_nil(t.__anything)
    assert.are.equal("lakebase.table(t)", tostring(t))
    assert.are.equal("lakebase.column(t.a text)", tostring(t.a))
  end)

  it("renders composite keys, unique constraints and indexes", function()
    local t = s.table("memberships", {
      org = s.integer():not_null(),
      member = s.integer():not_null(),
      role = s.text(),
      data = s.jsonb(),
    }, {
      schema = "app",
      primary_key = { "org", "member" },
      unique = { { "member", "role" }, { columns = { "role" }, name = "one_role" } },
      indexes = { { "role" }, { columns = { "data" }, using = "GIN", name = "m_data" },
        { columns = { "org", "role" }, unique = true } },
    })
    local text, stmts = s.create_table_sql(t, { if_not_exists = true })
    assert.are.equal('CREATE TABLE IF NOT EXISTS "app"."memberships" (\n'
      .. '  "org" integer NOT NULL,\n  "member" integer NOT NULL,\n  "role" text,\n  "data" jsonb,\n'
      .. '  CONSTRAINT "memberships_pkey" PRIMARY KEY ("org", "member"),\n'
      .. '  CONSTRAINT "memberships_member_role_key" UNIQUE ("member", "role"),\n'
      .. '  CONSTRAINT "one_role" UNIQUE ("role")\n);\n'
      .. 'CREATE INDEX IF NOT EXISTS "m_data" ON "app"."memberships" USING gin ("data");\n'
      .. 'CREATE UNIQUE INDEX IF NOT EXISTS "memberships_org_role_idx" ON "app"."memberships" ("org", "role");\n'
      .. 'CREATE INDEX IF NOT EXISTS "memberships_role_idx" ON "app"."memberships" ("role");',
      text)
    assert.are.equal(4, #stmts)
    assert.are.same({ 'CREATE INDEX "m_data" ON "app"."memberships" USING gin ("data")',
      'CREATE UNIQUE INDEX "memberships_org_role_idx" ON "app"."memberships" ("org", "role")',
      'CREATE INDEX "memberships_role_idx" ON "app"."memberships" ("role")' },
      s.create_index_sql(t))
    assert.are.equal('DROP TABLE IF EXISTS "app"."memberships" CASCADE',
      s.drop_table_sql(t, { if_exists = true, cascade = true }))
  end)

  it("refuses inconsistent table options", function()
    assert.matches("unknown column 'nope'", errmsg(s.table, "t", { a = s.text() }, { primary_key = { "nope" } }))
    assert.matches("already declare primary_key", errmsg(s.table, "t", { a = s.text():primary_key() },
      { primary_key = { "a" } }))
    assert.matches("several columns declare primary_key", errmsg(s.table, "t",
      { a = s.text():primary_key(), b = s.text():primary_key() }))
    assert.matches("unknown column 'x'", errmsg(s.table, "t", { a = s.text() }, { indexes = { { "x" } } }))
    assert.matches("access method", errmsg(s.table, "t", { a = s.text() },
      { indexes = { { columns = { "a" }, using = "gin; drop" } } }))
  end)

  it("describes a table as plain data", function()
    local users = s.table("users", { id = s.bigserial():primary_key() })
    local t = s.table("items", {
      id = s.serial():primary_key(),
      name = s.text():not_null():unique(),
      owner = s.bigint():references(users.id, { on_delete = "restrict" }),
      created = s.timestamptz():not_null():default_now(),
    }, { schema = "shop", indexes = { { "owner" } } })
    assert.are.same({
      name = "items", schema = "shop",
      columns = {
        { name = "id", type = "serial", base_type = "serial", array = false, not_null = true,
          primary_key = true, unique = false },
        { name = "name", type = "text", base_type = "text", array = false, not_null = true,
          primary_key = false, unique = true },
        { name = "owner", type = "bigint", base_type = "bigint", array = false, not_null = false,
          primary_key = false, unique = false,
          references = { table = "users", column = "id", on_delete = "RESTRICT" } },
        { name = "created", type = "timestamptz", base_type = "timestamptz", array = false, not_null = true,
          primary_key = false, unique = false, default = "now()" },
      },
      primary_key = { "id" },
      indexes = { { name = "items_owner_idx", columns = { "owner" }, unique = false } },
      constraints = { { kind = "primary_key", columns = { "id" } } },
    }, s.describe(t))
    assert.is_nil(getmetatable(s.describe(t)))
  end)
end)

describe("schema literals and placeholders", function()
  it("formats literals", function()
    assert.are.equal("'a''b'", s.literal("a'b"))
    assert.are.equal("12", s.literal(12))
    assert.are.equal("true", s.literal(true))
    assert.are.equal("NULL", s.literal(value.null))
    local v, err = s.literal("a\0")
    assert.is_nil(v)
    assert.matches("NUL", err)
  end)

  it("finds placeholders outside quotes, dollar quotes and comments", function()
    local pieces = assert(s.split_placeholders(
      [[select $2, '$1', "$1", E'\'$1', $$ $1 $$, $tag$ $1 $tag$, a$1 -- $1
      /* $1 /* $1 */ */ $1]], 2))
    local nums = {}
    for _, p in ipairs(pieces) do if type(p) == "number" then nums[#nums + 1] = p end end
    assert.are.same({ 2, 1 }, nums)
  end)

  it("refuses unusable raw fragments", function()
    assert.matches("placeholder %$3 but 2", errmsg(s.raw, "$3", 1, 2))
    assert.matches("argument 2 is not used", errmsg(s.raw, "$1", 1, 2))
    assert.matches("unterminated quoted string", errmsg(s.raw, "'abc $1", 1))
    assert.matches("plain table", errmsg(s.raw, "$1", { 1 }))
  end)
end)
