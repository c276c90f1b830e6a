-- db:transaction: commit, rollback on error and on false, savepoints, isolation, read_only.
local h = require("spec.support.helpers")
local lakebase = require("lakebase")

describe("transactions", function()
  local db, tbl

  local function count(name)
    local row = assert(db:one("select count(*)::int as c from " .. tbl .. " where name = $1", name))
    return row.c
  end

  setup(function()
    db = assert(lakebase.new(h.password_settings()))
    tbl = h.unique("tx")
    assert(db:exec_script("create table " .. tbl .. " (id serial primary key, name text)"))
  end)

  teardown(function()
    if db then
      db:exec_script("drop table if exists " .. tbl)
      db:close()
    end
  end)

  it("commits and returns what the function returned", function()
    local a, b, c = db:transaction(function(tx)
      assert(tx:query("insert into " .. tbl .. " (name) values ($1)", "committed"))
      local row = assert(tx:one("select count(*)::int as c from " .. tbl .. " where name = $1", "committed"))
      return row.c, "two", nil
    end)
    assert.equal(1, a)
    assert.equal("two", b)
    assert.is_nil(c)
    assert.equal(1, count("committed"))
  end)

  it("runs all statements on one connection inside BEGIN", function()
    db:transaction(function(tx)
      local p1 = assert(tx:one("select pg_backend_pid() as p")).p
      local p2 = assert(tx:one("select pg_backend_pid() as p")).p
      assert.equal(p1, p2)
      local x1 = assert(tx:one("select txid_current() as x")).x
      local x2 = assert(tx:one("select txid_current() as x")).x
      assert.equal(x1, x2)
    end)
  end)

  it("rolls back when the function raises, and returns nil, err", function()
    local res, err = db:transaction(function(tx)
      assert(tx:query("insert into " .. tbl .. " (name) values ($1)", "raised"))
      error("boom")
    end)
    assert.is_nil(res)
    assert.matches("boom", tostring(err))
    assert.equal(0, count("raised"))
  end)

  it("passes a raised error object through unchanged", function()
    local obj = { code = 42 }
    local res, err = db:transaction(function() error(obj) end)
    assert.is_nil(res)
    assert.equal(obj, err)
  end)

  it("rolls back when the function returns false", function()
    local res, err = db:transaction(function(tx)
      assert(tx:query("insert into " .. tbl .. " (name) values ($1)", "false"))
      return false, "changed my mind"
    end)
    assert.is_nil(res)
    assert.equal("changed my mind", err)
    assert.equal(0, count("false"))

    res, err = db:transaction(function(tx)
      assert(tx:query("insert into " .. tbl .. " (name) values ($1)", "false"))
      return false
    end)
    assert.is_nil(res)
    assert.equal("query", err.kind)
    assert.equal(0, count("false"))
  end)

  it("reports a failed statement the function ignored instead of a silent non-commit", function()
    local res, err = db:transaction(function(tx)
      assert(tx:query("insert into " .. tbl .. " (name) values ($1)", "ignored"))
      tx:query("select 1/0")
      return "done"
    end)
    assert.is_nil(res)
    assert.equal("22012", err.sqlstate)
    assert.equal(0, count("ignored"))
  end)

  it("returns the first failure, not the 25P02 of the statements after it", function()
    local res, err = db:transaction(function(tx)
      tx:query("select 1/0")
      local r2, e2 = tx:query("select 1")
      assert.is_nil(r2)
      assert.equal("25P02", e2.sqlstate)
      return true
    end)
    assert.is_nil(res)
    assert.equal("22012", err.sqlstate)
    assert.equal(1, err.later_errors)
    assert.matches("division by zero", err.message, 1, true)
    assert.matches("1 later statement in the aborted transaction failed too", tostring(err), 1, true)
    -- a parameter refused before anything was sent does not abort the transaction
    res, err = db:transaction(function(tx)
      assert.is_nil(tx:query("select $1::text", {}))
      return tx:one("select 1 as n").n
    end)
    assert.equal(1, res, tostring(err))
  end)

  it("returns a COMMIT failure (deferred constraint)", function()
    local t = h.unique("defer")
    assert(db:exec_script("create table " .. t .. " (a int, constraint u unique (a) deferrable initially deferred)"))
    local res, err = db:transaction(function(tx)
      assert(tx:query("insert into " .. t .. " values (1), (1)"))
      return true
    end)
    assert.is_nil(res)
    assert.equal("23505", err.sqlstate)
    assert.equal(0, assert(db:one("select count(*)::int as c from " .. t)).c)
    assert(db:exec_script("drop table " .. t))
  end)

  it("nests with savepoints: an inner failure rolls back only the inner work", function()
    local ok = db:transaction(function(tx)
      assert(tx:query("insert into " .. tbl .. " (name) values ($1)", "outer"))
      local r, e = tx:transaction(function(inner)
        assert(inner:query("insert into " .. tbl .. " (name) values ($1)", "inner-failed"))
        error("inner boom")
      end)
      assert.is_nil(r)
      assert.matches("inner boom", tostring(e))
      r = tx:transaction(function(inner)
        assert(inner:query("insert into " .. tbl .. " (name) values ($1)", "inner-ok"))
        local r2, e2 = inner:transaction(function(deeper)
          deeper:query("insert into " .. tbl .. " (name) values ($1)", "deeper")
          deeper:query("select 1/0")
          return "ignored the error"
        end)
        assert.is_nil(r2)
        assert.equal("22012", e2.sqlstate)
        return "inner result"
      end)
      assert.equal("inner result", r)
      return true
    end)
    assert.is_true(ok)
    assert.equal(1, count("outer"))
    assert.equal(0, count("inner-failed"))
    assert.equal(1, count("inner-ok"))
    assert.equal(0, count("deeper"))
  end)

  it("rolls back the savepoint when the inner function returns false", function()
    db:transaction(function(tx)
      local r, e = tx:transaction(function(inner)
        assert(inner:query("insert into " .. tbl .. " (name) values ($1)", "inner-false"))
        return false, "no"
      end)
      assert.is_nil(r)
      assert.equal("no", e)
      return true
    end)
    assert.equal(0, count("inner-false"))
  end)

  it("sets the isolation level and read-only mode", function()
    local iso = db:transaction(function(tx)
      return assert(tx:one("show transaction_isolation")).transaction_isolation
    end, { isolation = "serializable" })
    assert.equal("serializable", iso)
    iso = db:transaction(function(tx)
      return assert(tx:one("show transaction_isolation")).transaction_isolation
    end, { isolation = "REPEATABLE_READ" })
    assert.equal("repeatable read", iso)

    local res, err = db:transaction(function(tx)
      assert.equal("on", assert(tx:one("show transaction_read_only")).transaction_read_only)
      local r, e = tx:query("insert into " .. tbl .. " (name) values ($1)", "ro")
      assert.is_nil(r)
      assert.equal("25006", e.sqlstate)
      return true
    end, { read_only = true })
    assert.is_nil(res)
    assert.equal("25006", err.sqlstate)
    assert.equal(0, count("ro"))
  end)

  it("refuses bad options and arguments", function()
    assert.has_error(function() db:transaction(function() end, { isolation = "chaos" }) end)
    assert.has_error(function() db:transaction(function() end, { isolation = "serializable; drop table x" }) end)
    assert.has_error(function() db:transaction("not a function") end)
    local res, err = db:transaction(function(tx)
      tx:transaction(function() end, { isolation = "serializable" })
    end)
    assert.is_nil(res)
    assert.matches("savepoint", tostring(err))
  end)

  it("refuses to use a finished transaction", function()
    local saved
    assert(db:transaction(function(tx) saved = tx return true end))
    assert.has_error(function() saved:query("select 1") end)
  end)

  it("never returns a connection to the pool inside a transaction", function()
    local d = assert(lakebase.new(h.password_settings({ max = 1, application_name = "lb_tx_clean" })))
    d:transaction(function(tx)
      assert(tx:query("insert into " .. tbl .. " (name) values ($1)", "clean"))
      tx:query("select 1/0")
      error("leave in a failed transaction")
    end)
    -- the single connection is back, idle and usable
    local row = assert(d:one("select 1 as one"))
    assert.equal(1, row.one)
    assert.equal(0, count("clean"))
    -- and it runs in autocommit again: another connection sees this insert at once
    assert(d:query("insert into " .. tbl .. " (name) values ($1)", "after"))
    assert.equal(1, count("after"))
    local st = d:stats()
    assert.equal(0, st.in_use)
    d:close()
  end)

  it("a connection whose transaction object is dropped is rolled back and returned", function()
    local d = assert(lakebase.new(h.password_settings({ max = 1, application_name = "lb_tx_gc" })))
    do
      local conn = assert(d._pool:begin())
      assert(conn:exec_script("begin"))
      assert(conn:query("insert into " .. tbl .. " (name) values ($1)", "forgotten"))
      assert.equal("transaction", conn:status())
      conn = nil -- luacheck: ignore
    end
    collectgarbage()
    collectgarbage()
    assert.equal(0, d:stats().in_use)
    assert.equal(1, assert(d:one("select 1 as one")).one)
    assert.equal(0, count("forgotten"))
    d:close()
  end)
end)
