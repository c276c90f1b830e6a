-- Behind a transaction-mode pooler (a real PgBouncer, as Lakebase's pooled hosts are): automatic
-- prepared statements must never run another client's SQL, and statement_timeout must work.
-- luacheck: max line length 140
local h = require("spec.support.helpers")
local lakebase = require("lakebase")

local root = h.root()
local interp = os.getenv("LAKEBASE_TEST_INTERP") or "lua5.4"

describe("behind a transaction-mode pooler (PgBouncer)", function()
  local dir, port

  local function pooled(overrides)
    local s = { host = "127.0.0.1", port = port, sslmode = "disable" }
    for k, v in pairs(overrides or {}) do s[k] = v end
    return h.password_settings(s)
  end

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    -- PgBouncer is not ours: no sanitizer runtime preloaded into it (make check-memory).
    local out, ok = h.run(h.env_prefix() .. "env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS -u UBSAN_OPTIONS bash "
      .. h.shell_quote(root .. "/spec/support/pgbouncer.sh") .. " start " .. h.shell_quote(dir) .. " 2>&1")
    assert(ok, "pgbouncer did not start: " .. out)
    port = tonumber(out:match("(%d+)%s*$"))
    assert(port, out)
  end)

  teardown(function()
    if dir then
      h.run("bash " .. h.shell_quote(root .. "/spec/support/pgbouncer.sh") .. " stop " .. h.shell_quote(dir)
        .. "; rm -rf " .. h.shell_quote(dir))
    end
  end)

  it("three client processes with the default settings: no wrong result, no foreign statement, exact counters", function()
    local t = h.unique("pooled")
    assert(h.psql("create table " .. t .. " (id int primary key, n int not null default 0);"
      .. " insert into " .. t .. " select g, 0 from generate_series(1, 3) g"))
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
local lakebase = require("lakebase")
local settings = assert(load("return " .. arg[1]))()
local id, iters, tbl = tonumber(arg[2]), tonumber(arg[3]), arg[4]
local db = assert(lakebase.new(settings))
local errors, wrong = 0, 0
for i = 1, iters do
  -- every client its own SQL text: a statement of another client shows as a wrong tag or count
  local rows = db:query("select $1::int * 1 as v, 'client " .. id .. "' as tag", i)
  if not rows then errors = errors + 1
  elseif rows[1].v ~= i or rows[1].tag ~= "client " .. id then wrong = wrong + 1 end
  if not db:query("update " .. tbl .. " set n = n + 1 where id = $1 and " .. id .. " > 0", id) then
    errors = errors + 1
  end
end
print(("result errors=%d wrong=%d pooler=%s"):format(errors, wrong, tostring(db:stats().pooler_detected)))
]])
    f:close()
    local s = pooled({ max = 2 })
    local lit = string.format("{ host = %q, port = %d, user = %q, password = %q, database = %q, sslmode = 'disable', max = 2 }",
      s.host, s.port, s.user, s.password, s.database)
    local cmds = {}
    for id = 1, 3 do
      cmds[id] = string.format("LUA_PATH=%s LUA_CPATH=%s %s %s %s %d 200 %s > %s.%d 2>&1 &",
        h.shell_quote(os.getenv("LUA_PATH") or ""), h.shell_quote(os.getenv("LUA_CPATH") or ""), interp,
        h.shell_quote(script), h.shell_quote(lit), id, t, script, id)
    end
    local _, ok = h.run(table.concat(cmds, " ") .. " wait")
    assert.is_true(ok)
    for id = 1, 3 do
      local out = assert(h.read_file(script .. "." .. id))
      os.remove(script .. "." .. id)
      assert.matches("result errors=0 wrong=0", out, 1, true)
    end
    os.remove(script)
    assert.are.equal("1|200\n2|200\n3|200", h.psql("select id, n from " .. t .. " order by id"))
  end)

  it("enforces statement_timeout although the pooler refuses it as a startup option", function()
    local db = assert(lakebase.new(pooled({ statement_timeout = 300, prepare = false })))
    local t0 = h.clock()
    local rows, err = db:query("select pg_sleep(5)")
    local took = h.clock() - t0
    assert.is_nil(rows)
    assert.are.equal("timeout", err.kind)
    assert.are.equal("57014", err.sqlstate)
    assert.matches("statement_timeout 300 ms", err.message, 1, true)
    assert.is_true(took < 3, "took " .. took .. " s")
    assert.are.equal(1, assert(db:one("select 1 as n")).n) -- the connection goes on
    local ok = db:transaction(function(tx)
      return tx:one("select 2 as n").n == 2
    end)
    assert.is_true(ok)
    db:close()
  end)

  it("runs a statement unprepared when the pooler lost its prepared statement, and turns preparing off", function()
    local a = assert(lakebase.new(pooled({ application_name = "pooler-a" })))
    local c = assert(lakebase.new(pooled({ application_name = "pooler-c" })))
    assert.are.equal(2, assert(a:one("select $1::int + 1 as v", 1)).v) -- prepared on server session S1
    local ok, err = c:transaction(function(tx)
      assert(tx:one("select 1 as n")) -- holds S1 until the end of this transaction
      -- a's statement was prepared on S1; PgBouncer now gives a another server session
      local row, qerr = a:one("select $1::int + 1 as v", 41)
      assert(row, tostring(qerr))
      assert.are.equal(42, row.v)
      return true
    end)
    assert.is_true(ok, tostring(err))
    assert.is_true(a:stats().pooler_detected)
    assert.is_false(c:stats().pooler_detected)
    for i = 1, 20 do -- and on: no more prepared statements in pool a
      assert.are.equal(i + 1, assert(a:one("select $1::int + 1 as v", i)).v)
    end
    -- A pool that knows it is behind a pooler migrates under the transaction-level advisory lock: the
    -- lock's server session is in a transaction while the migration runs (a session-level lock would
    -- sit on an idle server session that PgBouncer hands to other clients).
    local mdir = dir .. "/migrations"
    local tbl = h.unique("pooled_mig")
    assert(h.run("mkdir -p " .. h.shell_quote(mdir)))
    h.write_file(mdir .. "/0001_seen.lua", "return function(db)\n"
      .. "  _G.LAKEBASE_LOCK_STATES = require('spec.support.helpers').psql(\"select a.state from pg_locks l \"\n"
      .. "    .. \"join pg_stat_activity a on a.pid = l.pid where l.locktype = 'advisory' and l.granted\")\n"
      .. "  return db:query('create table " .. tbl .. " (id int)')\nend\n")
    local applied, merr = require("lakebase.migrate").up(a, { dir = mdir, table = tbl .. "_log", progress = function() end })
    assert(applied, tostring(merr))
    assert.are.equal(1, #applied.applied)
    assert.are.equal("idle in transaction", _G.LAKEBASE_LOCK_STATES)
    _G.LAKEBASE_LOCK_STATES = nil
    a:close()
    c:close()
  end)
end)
