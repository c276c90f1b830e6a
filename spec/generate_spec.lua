-- lakebase.generate: migrations from lakebase.schema modules, diffed against the snapshot; the
-- generated SQL is applied to the real test PostgreSQL to prove it runs.
-- luacheck: max line length 200
local h = require("spec.support.helpers")
local generate = require("lakebase.generate")
local migrate = require("lakebase.migrate")
local json = require("lakebase.json")
local errors = require("lakebase.errors")

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function mkdtemp()
  local p = io.popen("mktemp -d /tmp/lakebase-gen.XXXXXX")
  local d = p:read("*l")
  p:close()
  return d
end

local function ls(dir)
  local p = io.popen("ls -1 " .. h.shell_quote(dir))
  local out = p:read("*a")
  p:close()
  local t = {}
  for l in out:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

describe("lakebase.generate", function()
  local dir, P, schema_file

  -- A schema module with the table prefix P substituted.
  local function schema(body)
    write(schema_file, ("local s = require('lakebase.schema')\nlocal M = {}\n" .. body .. "\nreturn M\n"):gsub("P_", P .. "_"))
  end

  local function gen(extra)
    local o = { dir = dir, schemas = { schema_file } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return generate.run(o)
  end

  before_each(function()
    dir = mkdtemp()
    schema_file = dir .. "/schema.lua"
    P = h.unique("lbg")
  end)

  after_each(function()
    os.execute("rm -rf " .. h.shell_quote(dir))
  end)

  it("creates tables with named constraints, foreign keys after the tables, then indexes", function()
    schema([[
M.users = s.table("P_users", {
  id = s.serial():primary_key(),
  email = s.text():not_null():unique(),
  karma = s.integer():not_null():default(0),
}, { indexes = { { "karma" } } })
M.posts = s.table("P_posts", {
  id = s.bigserial():primary_key(),
  user_id = s.integer():not_null():references(M.users.id, { on_delete = "cascade" }),
  tags = s.text():array(),
}, { unique = { { columns = { "user_id", "tags" }, name = "P_posts_pair" } } })
]])
    local res = assert(gen())
    assert.equal(dir .. "/0001_create_" .. P .. "_posts_and_more.sql", res.path)
    assert.equal(0, res.todos)
    local sql = read(res.path)
    local want = ([[
CREATE TABLE "P_posts" (
  "id" bigserial PRIMARY KEY,
  "user_id" integer NOT NULL,
  "tags" text[],
  CONSTRAINT "P_posts_pair" UNIQUE ("user_id", "tags")
);

CREATE TABLE "P_users" (
  "id" serial PRIMARY KEY,
  "email" text NOT NULL,
  "karma" integer NOT NULL DEFAULT 0,
  CONSTRAINT "P_users_email_key" UNIQUE ("email")
);

ALTER TABLE "P_posts" ADD CONSTRAINT "P_posts_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "P_users" ("id") ON DELETE CASCADE;

CREATE INDEX "P_users_karma_idx" ON "P_users" ("karma");
]]):gsub("P_", P .. "_")
    assert.equal(want, sql:gsub("^%-%- generated[^\n]*\n", ""))
    local snap = assert(json.decode(read(dir .. "/meta/lakebase_snapshot.json")))
    assert.equal("integer", snap.tables[P .. "_posts"].columns.user_id.type)
    assert.equal(P .. "_users", snap.tables[P .. "_posts"].foreign_keys[P .. "_posts_user_id_fkey"].ref_table)
    -- unchanged schema: nothing new
    local again = assert(gen())
    assert.is_nil(again.path)
    assert.equal(0, again.changes)
    assert.equal(3, #ls(dir)) -- 0001_....sql, meta/, schema.lua
  end)

  it("adds and drops columns, indexes and constraints, alters defaults and nullability", function()
    schema([[
M.t = s.table("P_t", {
  id = s.serial():primary_key(),
  a = s.text():unique(),
  b = s.integer(),
  c = s.boolean():default(false),
}, { indexes = { { "b" } } })
]])
    assert(gen())
    schema([[
M.t = s.table("P_t", {
  id = s.serial():primary_key(),
  b = s.integer():not_null(),
  c = s.boolean():default(true),
  d = s.timestamptz():default_now(),
}, { indexes = { { columns = { "b", "c" }, name = "P_t_bc", unique = true } } })
]])
    local res = assert(gen({ name = "second", allow_destructive = true }))
    assert.equal(dir .. "/0002_second.sql", res.path)
    local want = ([[
DROP INDEX "P_t_b_idx";

ALTER TABLE "P_t" DROP CONSTRAINT "P_t_a_key";

ALTER TABLE "P_t" DROP COLUMN "a";

ALTER TABLE "P_t" ADD COLUMN "d" timestamptz DEFAULT now();

ALTER TABLE "P_t" ALTER COLUMN "b" SET NOT NULL;

ALTER TABLE "P_t" ALTER COLUMN "c" SET DEFAULT true;

CREATE UNIQUE INDEX "P_t_bc" ON "P_t" ("b", "c");
]]):gsub("P_", P .. "_")
    assert.equal(want, read(res.path):gsub("^%-%- generated[^\n]*\n", ""))
    assert.equal(7, res.changes)
  end)

  it("writes a possible column rename as a TODO behind a guard, never guessing", function()
    schema([[M.t = s.table("P_t", { id = s.serial():primary_key(), old_name = s.text(), n = s.integer() })]])
    assert(gen())
    schema([[M.t = s.table("P_t", { id = s.serial():primary_key(), new_name = s.text(), n = s.bigint() })]])
    local res = assert(gen())
    assert.equal(1, res.todos)
    local sql = read(res.path)
    assert.matches("DO %$%$ BEGIN RAISE EXCEPTION 'unresolved TODO from lakebase generate", sql)
    assert.matches("%-%- TODO: column " .. P .. "_t%.old_name was removed and new_name %(text%) was added", sql)
    assert.matches('%-%-   ALTER TABLE "' .. P .. '_t" RENAME COLUMN "old_name" TO "new_name";', sql)
    assert.matches('\n%-%- ALTER TABLE "' .. P .. '_t" DROP COLUMN "old_name";', sql)
    -- nothing about the pair runs: every statement mentioning them is commented out
    for line in sql:gmatch("[^\n]+") do
      if line:find("old_name", 1, true) or line:find("new_name", 1, true) then assert.matches("^%-%-", line) end
    end
    -- a different type is not ambiguous: a plain type change
    assert.matches('ALTER TABLE "' .. P .. '_t" ALTER COLUMN "n" SET DATA TYPE bigint;', sql)
  end)

  it("writes destructive steps (drop table, drop column, narrowing type) as TODOs behind the guard", function()
    schema([[
M.t = s.table("P_t", { id = s.serial():primary_key(), gone = s.text(), code = s.varchar(20), n = s.integer() })
M.old = s.table("P_old", { id = s.serial():primary_key() })
]])
    assert(gen())
    schema([[M.t = s.table("P_t", { id = s.serial():primary_key(), code = s.varchar(5), n = s.bigint() })]])
    local res = assert(gen())
    assert.equal(3, res.todos)
    assert.equal(3, res.destructive)
    local sql = read(res.path)
    assert.matches("needs your decision on 3 destructive steps", sql)
    assert.matches("DO %$%$ BEGIN RAISE EXCEPTION 'unresolved TODO from lakebase generate", sql)
    assert.matches("%-%- TODO: destructive: table " .. P .. "_old is no longer in the schema modules: this drops it with every row%.\n"
      .. ".-\nDROP TABLE \"" .. P .. "_old\";", sql)
    assert.matches("%-%- TODO: destructive: column " .. P .. "_t%.gone is no longer in the schema modules", sql)
    assert.matches("%-%- TODO: destructive: column " .. P .. "_t%.code changes from varchar%(20%) to varchar%(5%)", sql)
    -- the guard comes before every statement
    assert.truthy(sql:find("RAISE EXCEPTION", 1, true) < sql:find("DROP TABLE", 1, true))
    -- a widening change is not destructive
    assert.not_matches("TODO: destructive: column " .. P .. "_t%.n ", sql)
    -- with the flag: plain statements, no guard
    schema([[M.t = s.table("P_t", { id = s.serial():primary_key(), code = s.varchar(5), n = s.bigint() })]])
    local d = assert(gen({ dry_run = true, allow_destructive = true, baseline = false }))
    assert.equal(0, d.changes) -- the snapshot already has them
    assert.is_true(generate.widens("integer", "bigint"))
    assert.is_true(generate.widens("varchar(5)", "text"))
    assert.is_true(generate.widens("numeric(10, 2)", "numeric(12, 2)"))
    assert.is_false(generate.widens("numeric(10, 2)", "numeric(12, 1)"))
    assert.is_false(generate.widens("bigint", "integer"))
    assert.is_false(generate.widens("text", "integer"))
    local plain = generate.diff({ tables = { x = { name = "x", columns = { a = { order = 1, type = "text" } },
      uniques = {}, foreign_keys = {}, indexes = {} } } }, { tables = {} }, { allow_destructive = true })
    assert.equal(0, plain.todos)
    assert.equal('DROP TABLE "x";\n', plain.sql)
  end)

  it("writes a possible table rename as a TODO", function()
    schema([[M.t = s.table("P_a", { id = s.serial():primary_key(), v = s.text() })]])
    assert(gen())
    schema([[M.t = s.table("P_b", { id = s.serial():primary_key(), v = s.text() })]])
    local res = assert(gen())
    assert.equal(1, res.todos)
    local sql = read(res.path)
    assert.matches('%-%-   ALTER TABLE "' .. P .. '_a" RENAME TO "' .. P .. '_b";', sql)
    assert.not_matches('\nDROP TABLE', sql)
    assert.not_matches('\nCREATE TABLE', sql)
  end)

  it("reads a snapshot with explicit nulls and refuses a broken one", function()
    schema([[M.t = s.table("P_t", { id = s.serial():primary_key(), v = s.text() })]])
    assert(gen())
    local path = dir .. "/meta/lakebase_snapshot.json"
    write(path, (read(path):gsub('"name": "' .. P .. '_t"', '"name": "' .. P .. '_t", "schema": null')))
    assert.matches('"schema": null', read(path))
    assert.equal(0, assert(gen()).changes)
    write(path, "{ broken")
    local res, err = gen()
    assert.is_nil(res)
    assert.is_true(errors.is(err))
    assert.same({ "schema", path }, { err.kind, err.file })
    assert.matches("^schema: .*lakebase_snapshot%.json: invalid JSON", tostring(err))
  end)

  it("dry_run writes nothing; baseline records the snapshot without a migration", function()
    schema([[M.t = s.table("P_t", { id = s.serial():primary_key() })]])
    local res = assert(gen({ dry_run = true }))
    assert.matches('CREATE TABLE "' .. P .. '_t"', res.sql)
    assert.is_nil(read(dir .. "/meta/lakebase_snapshot.json"))
    res = assert(gen({ baseline = true }))
    assert.is_nil(res.path)
    assert.is_not_nil(read(dir .. "/meta/lakebase_snapshot.json"))
    assert.equal(0, assert(gen()).changes)
  end)

  it("reports schema modules that are missing or define no tables", function()
    local _, err = generate.run({ dir = dir, schemas = { dir .. "/nope.lua" } })
    assert.is_true(errors.is(err))
    assert.same({ "schema", dir .. "/nope.lua" }, { err.kind, err.file })
    assert.matches("^schema file not found: .*nope%.lua$", tostring(err)) -- the kind is not said twice
    write(dir .. "/empty.lua", "return {}")
    _, err = generate.run({ dir = dir, schemas = { dir .. "/empty.lua" } })
    assert.matches("defines no tables", "generate: " .. err)
    _, err = generate.run({ dir = "spec/fixtures/drizzle_basic", schemas = { dir .. "/empty.lua" } })
    assert.equal("migration", err.kind)
    assert.matches("drizzle%-kit folder", err)
  end)

  describe("against PostgreSQL", function()
    local db
    setup(function() db = assert(require("lakebase").new(h.settings())) end)
    teardown(function() if db then db:close() end end)

    it("the generated migrations apply in sequence, and an unresolved TODO stops its migration", function()
      local track = P .. "_track"
      local function cleanup()
        h.psql("drop table if exists " .. P .. "_posts, " .. P .. "_users, " .. track .. " cascade")
      end
      cleanup()
      finally(cleanup)
      schema([[
M.users = s.table("P_users", { id = s.serial():primary_key(), email = s.text():not_null():unique() })
M.posts = s.table("P_posts", {
  id = s.serial():primary_key(),
  user_id = s.integer():references(M.users.id),
  title = s.text():not_null(),
}, { indexes = { { "user_id" } } })
]])
      assert(gen())
      assert(migrate.up(db, { dir = dir, table = track }))
      schema([[
M.users = s.table("P_users", { id = s.serial():primary_key(), email = s.text():not_null(), karma = s.integer():not_null():default(0) })
M.posts = s.table("P_posts", {
  id = s.serial():primary_key(),
  user_id = s.integer():references(M.users.id, { on_delete = "cascade" }),
  title = s.text():not_null(),
  body = s.text(),
}, { indexes = { { columns = { "title" }, name = "P_posts_title" } } })
]])
      assert(gen())
      local res = assert(migrate.up(db, { dir = dir, table = track }))
      assert.equal(1, #res.applied)
      assert.equal("id,email,karma", h.psql("select string_agg(column_name, ',' order by ordinal_position) from information_schema.columns where table_name = '" .. P .. "_users'"))
      assert.equal(P .. "_posts_pkey," .. P .. "_posts_title", h.psql("select string_agg(indexname, ',' order by indexname) from pg_indexes where tablename = '" .. P .. "_posts'"))
      assert.equal("c", h.psql("select confdeltype from pg_constraint where conname = '" .. P .. "_posts_user_id_fkey'"))
      assert.equal("0", h.psql("select count(*) from pg_constraint where conname = '" .. P .. "_users_email_key'"))

      -- rename ambiguity: the guard stops it, nothing changes
      schema([[
M.users = s.table("P_users", { id = s.serial():primary_key(), email = s.text():not_null(), karma = s.integer():not_null():default(0) })
M.posts = s.table("P_posts", {
  id = s.serial():primary_key(),
  user_id = s.integer():references(M.users.id, { on_delete = "cascade" }),
  headline = s.text():not_null(),
  body = s.text(),
}, { indexes = { { columns = { "headline" }, name = "P_posts_title" } } })
]])
      local g3 = assert(gen())
      assert.equal(1, g3.todos)
      local r3, err = migrate.up(db, { dir = dir, table = track })
      assert.is_nil(r3)
      assert.matches("unresolved TODO from lakebase generate in this migration: read its TODO blocks, decide, then delete this guard",
        tostring(err), 1, true)
      assert.equal("t", h.psql("select count(*) = 1 from information_schema.columns where table_name = '" .. P .. "_posts' and column_name = 'title'"))
    end)
  end)
end)

describe("lakebase.schema and lakebase.generate", function()
  it("write the same DDL: the tables each one creates are identical in the catalog", function()
    local lakebase = require("lakebase")
    local s = require("lakebase.schema")
    local db = assert(lakebase.new(h.settings()))
    local users = s.table("agree_users", { id = s.bigserial():primary_key(), email = s.text():not_null():unique() })
    local posts = s.table("agree_posts", {
      id = s.serial():primary_key(),
      author = s.bigint():not_null():references(users.id, { on_delete = "cascade" }),
      title = s.varchar(80):default("untitled"),
      tags = s.text():array():default({ "a", "b" }),
      data = s.jsonb():default({ k = 1 }),
      score = s.numeric(10, 2):default(0),
      made = s.timestamptz():default_now(),
    }, { unique = { { "author", "title" } }, indexes = { { "author" }, { columns = { "data" }, using = "gin" } } })
    local by_schema = generate.diff(nil, assert(generate.snapshot({ users, posts }))).sql
    local by_create = s.create_table_sql(users) .. "\n" .. s.create_table_sql(posts)
    local a, b = h.unique("agree_a"), h.unique("agree_b")
    for schema_name, ddl in pairs({ [a] = by_create, [b] = by_schema }) do
      assert(db:exec_script("create schema " .. schema_name))
      assert(db:transaction(function(tx)
        assert(tx:exec_script("set local search_path to " .. schema_name))
        assert(tx:exec_script(ddl))
        return true
      end))
    end
    -- the catalog of one schema, its own name taken out
    local function catalog(schema_name)
      local rows = assert(db:query([[
        select 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' '
               || coalesce(column_default, '-') as line
          from information_schema.columns where table_schema = $1
        union all
        select 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
          from pg_constraint where connamespace = $1::regnamespace
        union all
        select 'index ' || indexname || ' ' || indexdef from pg_indexes where schemaname = $1
        order by 1]], schema_name))
      local out = {}
      for i, r in ipairs(rows) do out[i] = r.line:gsub(schema_name:gsub("%W", "%%%0"), "S") end
      return out
    end
    local ca, cb = catalog(a), catalog(b)
    assert.is_true(#ca > 15)
    assert.are.same(ca, cb)
    assert(db:exec_script("drop schema " .. a .. " cascade; drop schema " .. b .. " cascade"))
    db:close()
  end)
end)
