-- lakebase.migrate with plain folders (NNNN_name.sql / .lua) against the real test PostgreSQL:
-- ordering, records, checksums, failures, out-of-order, no-transaction, concurrent runners.
-- luacheck: max line length 200
local h = require("spec.support.helpers")
local migrate = require("lakebase.migrate")
local sha256 = require("lakebase.sha256")

local interp = os.getenv("LAKEBASE_TEST_INTERP") or "lua5.4"

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function mkdtemp()
  local p = io.popen("mktemp -d /tmp/lakebase-migrate.XXXXXX")
  local d = p:read("*l")
  p:close()
  return d
end

describe("lakebase.migrate.split_statements", function()
  it("splits on top-level semicolons only", function()
    local sql = table.concat({
      "-- a comment; with a semicolon",
      "create table a (x text default 'a;b''c');",
      "insert into a values (E'\\';x'), ($$;$$), ($f$ $$ ; $f$);",
      "/* block ; /* nested ; */ still */ select 1;",
      "create function f() returns int language sql",
      "  begin atomic select case when true then 1 end; select 2; end;",
      "select \"we;ird\" from a; select 'trailing'",
    }, "\n")
    local st = migrate.split_statements(sql)
    local got = {}
    for i, s in ipairs(st) do got[i] = { s.line, s.summary } end
    assert.same({
      { 2, "create table a (x text default 'a;b''c')" },
      { 3, "insert into a values (E'\\';x'), ($$;$$), ($f$ $$ ; $f$)" },
      { 4, "select 1" },
      { 5, "create function f() returns int language sql" },
      { 7, "select \"we;ird\" from a" },
      { 7, "select 'trailing'" },
    }, got)
    assert.matches("select 2; end$", st[4].sql)
  end)

  it("drops empty statements and comment-only tails", function()
    assert.same({}, migrate.split_statements("  ;; -- nothing\n /* x */ ;"))
    assert.equal(1, #migrate.split_statements("select 1; -- done\n"))
  end)
end)

describe("lakebase.migrate (plain folders)", function()
  local db, dir, track, prefix
  local created = {}

  local function opts(extra)
    local o = { dir = dir, table = track }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  local function records()
    local out = assert(h.psql("select version || ':' || name || ':' || checksum || ':' || (duration_ms >= 0)::text from "
      .. track .. " order by version"))
    local t = {}
    for line in out:gmatch("[^\n]+") do t[#t + 1] = line end
    return t
  end

  local function exists(name)
    return assert(h.psql("select to_regclass('" .. name .. "') is not null")) == "t"
  end

  setup(function()
    db = assert(require("lakebase").new(h.settings()))
  end)

  teardown(function()
    if db then db:close() end
  end)

  before_each(function()
    dir = mkdtemp()
    prefix = h.unique("lbm")
    track = prefix .. "_track"
    created = { track }
  end)

  after_each(function()
    local drops = {}
    for _, t in ipairs(created) do drops[#drops + 1] = "drop table if exists " .. t .. " cascade;" end
    h.psql(table.concat(drops, "\n"))
    os.execute("rm -rf " .. h.shell_quote(dir))
  end)

  local function tbl(suffix)
    local name = prefix .. "_" .. suffix
    created[#created + 1] = name
    return name
  end

  it("applies in numeric order, records each with its checksum, then finds nothing to do", function()
    local a, b = tbl("a"), tbl("b")
    write(dir .. "/0002_second.sql", "insert into " .. a .. " values (2);\ncreate table " .. b .. " (id int);\n")
    write(dir .. "/0010_third.lua", "return function(db) assert(db:query('insert into " .. a .. " values (10)')) end\n")
    write(dir .. "/0001_first.sql", "create table " .. a .. " (n int);\ninsert into " .. a .. " values (1);\n")
    write(dir .. "/README.md", "not a migration")
    local msgs = {}
    local res = assert(migrate.up(db, opts({ progress = function(m) msgs[#msgs + 1] = m end })))
    assert.equal("plain", res.kind)
    assert.equal(3, #res.applied)
    assert.same({ "0001_first.sql", "0002_second.sql", "0010_third.lua" },
      { res.applied[1].file, res.applied[2].file, res.applied[3].file })
    assert.is_number(res.applied[1].duration_ms)
    assert.equal("applying 0001_first.sql (1/3)", msgs[1])
    assert.equal("1,2,10", h.psql("select string_agg(n::text, ',' order by n) from " .. a))
    assert.same({
      "1:first:" .. sha256.hex(read(dir .. "/0001_first.sql")) .. ":true",
      "2:second:" .. sha256.hex(read(dir .. "/0002_second.sql")) .. ":true",
      "10:third:" .. sha256.hex(read(dir .. "/0010_third.lua")) .. ":true",
    }, records())

    local again = assert(migrate.up(db, opts()))
    assert.equal(0, #again.applied)
    assert.equal(3, again.already)
    local st = assert(migrate.status(db, opts()))
    assert.same({ "applied", "applied", "applied" }, { st.migrations[1].state, st.migrations[2].state, st.migrations[3].state })
    assert.is_string(st.migrations[1].applied_at)
  end)

  it("rolls back a failing migration, records nothing for it, and names the file and statement", function()
    local a, b = tbl("a"), tbl("b")
    write(dir .. "/0001_ok.sql", "create table " .. a .. " (n int);\n")
    write(dir .. "/0002_bad.sql", "create table " .. b .. " (n int);\ninsert into " .. b .. " values (1);\n\n"
      .. "insert into " .. prefix .. "_missing values (1);\n")
    write(dir .. "/0003_later.sql", "insert into " .. a .. " values (3);\n")
    local res, err = migrate.up(db, opts())
    assert.is_nil(res)
    assert.equal("0002_bad.sql", err.file)
    assert.equal(4, err.line)
    assert.equal("42P01", err.sqlstate)
    assert.matches("migration 0002_bad.sql failed at statement 3 %(line 4: insert into " .. prefix .. "_missing values %(1%)%)", tostring(err))
    assert.matches("rolled back and not recorded", tostring(err))
    assert.equal(1, #err.applied)
    assert.is_true(exists(a))
    assert.is_false(exists(b))
    assert.equal(1, #records())
    assert.equal("0", h.psql("select count(*) from " .. a))
    -- fixed: the run continues where it stopped
    write(dir .. "/0002_bad.sql", "create table " .. b .. " (n int);\n")
    res = assert(migrate.up(db, opts()))
    assert.equal(2, #res.applied)
    assert.equal(3, #records())
  end)

  it("applies files with functions, DO blocks and quoted semicolons statement by statement", function()
    local a = tbl("a")
    write(dir .. "/0001_funcs.sql", table.concat({
      "-- semicolons everywhere; none of them ends a statement early",
      "create table " .. a .. " (n int, s text default 'a;b');",
      "create function " .. prefix .. "_f(x int) returns int language plpgsql as $body$",
      "begin",
      "  insert into " .. a .. " (n, s) values (x, 'from f; ok');",
      "  return x * 2;",
      "end;",
      "$body$;",
      "do $$ begin perform " .. prefix .. "_f(21); end $$;",
      "create function " .. prefix .. "_g() returns int language sql begin atomic select 1; end;",
      "insert into " .. a .. " (n) values (" .. prefix .. "_g()); /* trailing; comment */",
    }, "\n"))
    assert(migrate.up(db, opts()))
    assert.equal("1:a;b,21:from f; ok", h.psql("select string_agg(n || ':' || s, ',' order by n) from " .. a))
    h.psql("drop function " .. prefix .. "_f(int); drop function " .. prefix .. "_g()")
  end)

  it("sends long files in batches and still names the failing statement", function()
    local a = tbl("a")
    local lines = { "create table " .. a .. " (n int primary key);" }
    for i = 1, 450 do lines[#lines + 1] = "insert into " .. a .. " values (" .. i .. "); -- row " .. i end
    write(dir .. "/0001_seed.sql", table.concat(lines, "\n"))
    local dup = { "select 1;" }
    for i = 1, 450 do dup[#dup + 1] = "insert into " .. a .. " values (" .. (i + 2000) .. "); -- row " .. i end
    dup[#dup + 1] = "insert into " .. a .. " values (7);"
    dup[#dup + 1] = "insert into " .. a .. " values (3000)"
    write(dir .. "/0002_dup.sql", table.concat(dup, "\n"))
    local res, err = migrate.up(db, opts())
    assert.is_nil(res)
    assert.equal(1, #err.applied)
    assert.equal("450", h.psql("select count(*) from " .. a))
    assert.equal("0002_dup.sql", err.file)
    assert.equal("23505", err.sqlstate)
    assert.matches("failed at statement 452 %(line 452: insert into " .. a .. " values %(7%)%)", tostring(err))
  end)

  it("rolls back a Lua migration that raises, and names it", function()
    local a = tbl("a")
    write(dir .. "/0001_lua.lua", "return function(db)\n  assert(db:query('create table " .. a .. " (n int)'))\n"
      .. "  error('half way there')\nend\n")
    local res, err = migrate.up(db, opts())
    assert.is_nil(res)
    assert.equal("0001_lua.lua", err.file)
    assert.matches("^migration 0001_lua%.lua failed: .*half way there; it was rolled back and not recorded", tostring(err))
    assert.is_false(exists(a))
    write(dir .. "/0001_lua.lua", "return 42\n")
    res, err = migrate.up(db, opts())
    assert.is_nil(res)
    assert.matches("the file must return function%(db%)", tostring(err))
  end)

  it("refuses a changed applied file, naming it, unless allow_changed", function()
    local a = tbl("a")
    write(dir .. "/0001_create.sql", "create table " .. a .. " (n int);\n")
    assert(migrate.up(db, opts()))
    write(dir .. "/0001_create.sql", "create table " .. a .. " (n int, extra text);\n")
    write(dir .. "/0002_more.sql", "insert into " .. a .. " values (1);\n")
    local res, err = migrate.up(db, opts())
    assert.is_nil(res)
    assert.equal("0001_create.sql", err.file)
    assert.matches("migration 0001_create.sql changed after it was applied", tostring(err))
    assert.equal("0", h.psql("select count(*) from " .. a)) -- nothing ran
    local st = assert(migrate.status(db, opts()))
    assert.equal("changed", st.migrations[1].state)
    assert.equal("pending", st.migrations[2].state)
    res = assert(migrate.up(db, opts({ allow_changed = true })))
    assert.equal(1, #res.applied)
  end)

  it("refuses a pending migration older than an applied one unless allow_out_of_order", function()
    local a = tbl("a")
    write(dir .. "/0001_create.sql", "create table " .. a .. " (n int);\n")
    write(dir .. "/0003_three.sql", "insert into " .. a .. " values (3);\n")
    assert(migrate.up(db, opts()))
    write(dir .. "/0002_branch.sql", "insert into " .. a .. " values (2);\n")
    local res, err = migrate.up(db, opts())
    assert.is_nil(res)
    assert.matches("pending migration 0002_branch.sql is older than the newest applied migration", tostring(err))
    assert.equal("out_of_order", assert(migrate.status(db, opts())).migrations[2].state)
    local dry = assert(migrate.up(db, opts({ dry_run = true, allow_out_of_order = true })))
    assert.is_true(dry.dry_run)
    assert.equal("0002_branch.sql", dry.pending[1].file)
    assert.equal("3", h.psql("select string_agg(n::text, ',') from " .. a))
    res = assert(migrate.up(db, opts({ allow_out_of_order = true })))
    assert.equal("0002_branch.sql", res.applied[1].file)
    assert.equal("2,3", h.psql("select string_agg(n::text, ',' order by n) from " .. a))
  end)

  it("runs a -- lakebase:no-transaction file outside a transaction", function()
    local a = tbl("a")
    write(dir .. "/0001_create.sql", "create table " .. a .. " (n int);\n")
    write(dir .. "/0002_index.sql", "-- lakebase:no-transaction\ncreate index concurrently " .. prefix
      .. "_idx on " .. a .. " (n);\n")
    local res = assert(migrate.up(db, opts()))
    assert.equal(2, #res.applied)
    assert.equal("t", h.psql("select to_regclass('" .. prefix .. "_idx') is not null"))
    -- the same statement inside a transaction fails, so the marker is what made it work
    write(dir .. "/0003_again.sql", "create index concurrently " .. prefix .. "_idx2 on " .. a .. " (n);\n")
    local r2, err = migrate.up(db, opts())
    assert.is_nil(r2)
    assert.equal("25001", err.sqlstate)
  end)

  it("refuses a pool of one connection plainly instead of waiting for itself", function()
    write(dir .. "/0001_x.sql", "select 1;\n")
    local one = assert(require("lakebase").new(h.settings({ max = 1 })))
    local res, err = migrate.up(one, opts())
    one:close()
    assert.is_nil(res)
    assert.matches("migrate needs a pool of at least 2 connections", tostring(err))
  end)

  it("waits for the lock without holding a snapshot, then gives up after lock_timeout naming the holder", function()
    write(dir .. "/0001_x.sql", "select 1;\n")
    local holder_db = assert(require("lakebase").new(h.settings({ application_name = "spec lock holder" })))
    local holder = assert(rawget(holder_db, "_pool"):begin())
    local rows = assert(holder:query("select pg_backend_pid()::text as pid, pg_advisory_lock($1::bigint)",
      migrate.lock_key("public", track)))
    local holder_pid = tonumber(rows[1].pid)
    local messages, sleeps, waiter_xmins = {}, {}, {}
    local res, err = migrate.up(db, opts({
      lock_timeout = 0.6,
      progress = function(m) messages[#messages + 1] = m end,
      sleep = function(seconds)
        sleeps[#sleeps + 1] = seconds
        -- the waiting session, seen from outside between two polls: idle, no snapshot
        local r = assert(holder:query("select coalesce(backend_xmin::text, 'none') as xmin from pg_stat_activity"
          .. " where query like '%pg_try_advisory_lock%' and pid <> pg_backend_pid()"))
        waiter_xmins[#waiter_xmins + 1] = r[1] and r[1].xmin or "no waiter"
        require("lakebase.core").sleep(seconds)
      end,
    }))
    -- a db object without a core pool waits the same way, inside a transaction (the fallback)
    local proxy = setmetatable({}, { __index = function(_, k)
      local f = db[k]
      if type(f) == "function" then return function(_, ...) return f(db, ...) end end
    end })
    local res2, err2 = migrate.up(proxy, opts({ lock_timeout = 0.2 }))
    holder:release()
    holder_db:close()
    assert.is_nil(res2)
    assert.equal("lock_timeout", err2.kind)
    assert.equal(holder_pid, err2.holder.pid)
    assert.is_nil(res)
    assert.equal("lock_timeout", err.kind)
    local msg = tostring(err)
    assert.matches("gave up waiting for the migration lock on public%." .. track .. " after 0%.%d s %(lock_timeout 0%.6 s%)", msg)
    assert.matches("held by pid " .. holder_pid .. " %(application_name \"spec lock holder\", user [^,]+, client [^,]+, since %d%d%d%d%-", msg)
    assert.equal(holder_pid, err.holder.pid)
    assert.matches("waiting for another migration runner to finish", messages[1])
    assert.is_true(#sleeps >= 3)
    assert.equal(0.05, sleeps[1])
    for _, x in ipairs(waiter_xmins) do assert.equal("none", x) end
    -- nothing ran: the tracking table was not even created
    assert.equal("f", h.psql("select to_regclass('" .. track .. "') is not null"))
    -- the lock is free again: the same call now applies the migration
    assert.equal(1, #assert(migrate.up(db, opts({ lock_timeout = 0 }))).applied)
  end)

  it("counts the sleeps when a db object does not return the server's clock", function()
    local fake = {
      stats = function() return { max = 10 } end,
      transaction = function(self, fn) return fn(self) end,
      query = function(_, sql)
        if sql:find("pg_try_advisory_xact_lock", 1, true) then return { { got = false } } end
        return {}
      end,
    }
    local slept = 0
    local res, err = migrate.up(fake, opts({ lock_timeout = 1, sleep = function(sec) slept = slept + sec end }))
    assert.is_nil(res)
    assert.equal("lock_timeout", err.kind)
    assert.near(1, slept, 1e-9)
    assert.matches("after 1%.0 s %(lock_timeout 1 s%): its holder released it just now", tostring(err))
  end)

  it("refuses a bad lock_timeout as misuse", function()
    assert.has_error(function() migrate.up(db, opts({ lock_timeout = -1 })) end,
      "bad argument #2 (lock_timeout: seconds >= 0 expected, got -1)")
    assert.has_error(function() migrate.up(db, opts({ lock_timeout = "5" })) end,
      "bad argument #2 (lock_timeout: seconds >= 0 expected, got 5)")
  end)

  it("creates the next numbered file with new()", function()
    assert.equal(dir .. "/0001_init.sql", assert(migrate.new(dir, "init")))
    write(dir .. "/0041_x.sql", "")
    assert.equal(dir .. "/0042_add_users.sql", assert(migrate.new(dir, "add_users")))
    assert.is_nil((migrate.new(dir, "bad name")))
    local _, err = migrate.new("spec/fixtures/drizzle_basic", "x")
    assert.matches("drizzle%-kit folder", err)
  end)

  it("lets two concurrent runners (two processes) apply each migration once", function()
    local a = tbl("a")
    write(dir .. "/0001_slow.sql", "create table " .. a .. " (n int);\nselect pg_sleep(1.5);\n")
    write(dir .. "/0002_next.sql", "insert into " .. a .. " values (1);\n")
    local settings = h.settings()
    local parts = {}
    for k, v in pairs(settings) do
      parts[#parts + 1] = string.format("[%q] = %q", k, tostring(v))
    end
    -- the runner gets the secret from a file, not from its command line
    local script = dir .. "/runner.lua"
    write(script, table.concat({
      "local s = {" .. table.concat(parts, ", ") .. "}",
      "s.port = tonumber(s.port)",
      "local db = assert(require('lakebase').new(s))",
      "local res, err = require('lakebase.migrate').up(db, { dir = " .. string.format("%q", dir) .. ", table = "
        .. string.format("%q", track) .. ", progress = function(m) print(m) end })",
      "if not res then print('ERROR ' .. tostring(err)) os.exit(1) end",
      "print('APPLIED ' .. #res.applied)",
      "db:close()",
    }, "\n"))
    os.execute("chmod 600 " .. h.shell_quote(script))
    local cmd = string.format("(%s %s > %s/out1 2>&1 & sleep 0.3; %s %s > %s/out2 2>&1 & wait)",
      interp, h.shell_quote(script), dir, interp, h.shell_quote(script), dir)
    os.execute(cmd)
    local out1, out2 = read(dir .. "/out1"), read(dir .. "/out2")
    assert.matches("APPLIED 2", out1)
    assert.matches("waiting for another migration runner", out2)
    assert.matches("APPLIED 0", out2)
    assert.matches("nothing to apply", out2)
    assert.equal(2, #records())
    assert.equal("1", h.psql("select count(*) from " .. a))
  end)
end)
