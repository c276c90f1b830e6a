-- process_max_connections: one cap on the connections this process holds across every pool of
-- the same settings (here two pools that differ in max and acquire_timeout), counted by the
-- server in pg_stat_activity. The load from 8 threads is tests/c/test_pool_cap.c; here the Lua
-- surface: the setting, the error a caller past acquire_timeout gets, and an idle connection of
-- the other pool closed for a waiter.
local h = require("spec.support.helpers")
local lakebase = require("lakebase")

describe("process_max_connections", function()
  local app, d1, d2

  -- What the server sees of this process's connections.
  local function server_count()
    return tonumber(assert(h.psql("select count(*) from pg_stat_activity where application_name = '" .. app .. "'")))
  end

  before_each(function()
    app = h.unique("lbcap")
    d1 = assert(lakebase.new(h.password_settings({ max = 3, acquire_timeout = 0.3, process_max_connections = 2,
      application_name = app })))
    d2 = assert(lakebase.new(h.password_settings({ max = 2, acquire_timeout = 5, process_max_connections = 2,
      application_name = app })))
  end)

  after_each(function()
    d1:close()
    d2:close()
  end)

  it("is a setting: 0-100000, 0 = no cap", function()
    local capped = assert(lakebase.config(h.password_settings({ process_max_connections = 2 })))
    assert.equal(2, capped.process_max_connections)
    assert.equal(0, assert(lakebase.config(h.password_settings())).process_max_connections)
    local s, err = lakebase.config(h.password_settings({ process_max_connections = -1 }))
    assert.is_nil(s)
    assert.matches("process_max_connections: expected an integer 0%-100000 %(0 = no cap%), got \"%-1\"", tostring(err))
  end)

  it("lakebase check's budget lines use the cap when it is set", function()
    local cli = require("lakebase.cli")
    local facts = { max_connections = 100, reserved = 3, open = 10, mine = 4, role_limit = -1, super = false }
    local capped = cli.budget_lines(facts, 10, 4)
    assert.equal("budget: this role can hold 91 connections; this process holds at most process_max_connections = 4 "
      .. "across its pools (under nginx: per worker process)", capped[2])
    assert.matches("keep hosts x nginx workers x process_max_connections <= 91 (today: at most 22 processes of 4)",
      capped[3], 1, true)
    assert.matches("keep hosts x nginx workers x pools x max <= 91 (today: at most 9 processes of max = 10)",
      cli.budget_lines(facts, 10, 0)[3], 1, true)
  end)

  it("two pools under one cap: the server sees at most 2; one more waits acquire_timeout and is refused naming the cap",
    function()
      local elapsed, err, seen
      assert(d1:transaction(function(t1)
        assert(t1:one("select 1 as one"))
        return d2:transaction(function(t2)
          assert(t2:one("select 1 as one"))
          seen = server_count()
          local t0 = h.clock()
          local rows
          rows, err = d1:query("select 1") -- d1 has room (max 3), the process has none
          elapsed = h.clock() - t0
          assert.is_nil(rows)
          return true
        end)
      end))
      assert.equal(2, seen)
      assert.equal("pool", err.kind)
      assert.is_true(err.retriable)
      assert.matches("process_max_connections = 2", err.message, 1, true)
      assert.matches("raise process_max_connections", err.hint, 1, true)
      assert.is_true(elapsed >= 0.28 and elapsed < 3, "waited " .. elapsed)
      assert.equal(1, d1:stats().total)
      assert.equal(0, d1:stats().waiting)
    end)

  it("a waiter closes an idle connection of the other pool instead of waiting for its idle_timeout", function()
    assert(d2:transaction(function(t2)
      return d2:transaction(function(t3) return t2:one("select 1") and t3:one("select 1") end)
    end))
    assert.equal(2, d2:stats().idle) -- the cap is full of d2's idle connections (idle_timeout 30 s)
    -- d1 waits at most its acquire_timeout (0.3 s): without closing d2's idle ones, both fail.
    assert(d1:transaction(function(t1)
      assert(t1:one("select 1 as one"))
      assert.equal(1, assert(d1:one("select 1 as one")).one) -- a second d1 connection
      assert.equal(2, server_count())
      return true
    end))
    assert.equal(0, d2:stats().total)
    assert.equal(2, d1:stats().total)
  end)
end)
