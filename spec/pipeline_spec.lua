-- Round trips: one flight per statement (first use included), transactions in k + 1 flights,
-- db:pipeline (many statements in one flight, results in order, every error path). Flight counts
-- come from the latency proxy's counters (spec/support/latency_proxy.py), never from timing.
local h = require("spec.support.helpers")
local lakebase = require("lakebase")

local function rss_kb()
  local f = io.open("/proc/self/status", "r")
  if not f then return 0 end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

describe("round trips", function()
  local px, db, tbl

  -- A fresh pool (its own application_name) of one connection, through the proxy, already
  -- connected so that the counts below are those of the statements alone.
  local function fresh_db(extra)
    local o = h.password_settings({ port = px.port, max = 1, application_name = h.unique("flights") })
    for k, v in pairs(extra or {}) do o[k] = v end
    local d = assert(lakebase.new(o))
    assert(d:query("select 1"))
    px.reset()
    return d
  end

  local function count(name)
    return assert(db:one("select count(*)::int as c from " .. tbl .. " where name = $1", name)).c
  end

  setup(function()
    px = h.proxy(h.env().PGPORT, 0)
    tbl = h.unique("pipe")
    db = fresh_db()
    assert(db:exec_script("create table " .. tbl .. " (id serial primary key, name text unique, n int)"))
  end)

  teardown(function()
    if px then px.stop() end
    -- directly, not through the proxy that just stopped
    h.psql("drop table if exists " .. tbl)
  end)

  describe("one statement", function()
    it("costs one flight on its first use on a connection (Parse travels with Execute)", function()
      local d = fresh_db()
      local rows = assert(d:query("select $1::int + 41 as v", 1))
      assert.equal(42, rows[1].v)
      assert.equal(1, px.flights())
      assert.equal(1, #px.stats().per_connection)
      px.reset()
      assert.equal(7, assert(d:query("select $1::int + 41 as v", -34))[1].v)
      assert.equal(1, px.flights())
      d:close()
    end)

    it("reports a syntax error on first use as before, and the connection goes on", function()
      local d = fresh_db()
      local rows, err = d:query("selec $1::int", 1)
      assert.is_nil(rows)
      assert.equal("42601", err.sqlstate)
      assert.equal(1, px.flights())
      assert.equal(3, assert(d:query("select $1::int as v", 3))[1].v)
      d:close()
    end)

    it("streams a large first-use result row by row in one flight", function()
      local d = fresh_db()
      local rows = assert(d:query("select g from generate_series(1, $1::int) g", 5000))
      assert.equal(5000, #rows)
      assert.equal(5000, rows[5000].g)
      assert.equal(1, px.flights())
      d:close()
    end)
  end)

  describe("transactions", function()
    it("take k + 1 flights: BEGIN travels with the first statement", function()
      local d = fresh_db()
      assert(d:transaction(function(tx)
        for i = 1, 5 do
          assert(tx:query("insert into " .. tbl .. " (name, n) values ($1, $" .. 2 .. ")", "tx5-" .. i, i))
        end
        return true
      end))
      assert.equal(6, px.flights())
      assert.equal(5, assert(d:one("select count(*)::int as c from " .. tbl .. " where name like 'tx5-%'")).c)
      d:close()
    end)

    it("with five different statements used for the first time: still 6 flights", function()
      local d = fresh_db()
      assert(d:transaction(function(tx)
        for i = 1, 5 do
          assert(tx:query("select $1::int + " .. i .. " as v", i))
        end
        return true
      end))
      assert.equal(6, px.flights())
      d:close()
    end)

    it("reports an error in the first statement as that statement's error", function()
      local d = fresh_db()
      local ok = d:transaction(function(tx)
        assert(tx:query("insert into " .. tbl .. " (name, n) values ($1, 1)", "dup-first"))
        return true
      end)
      assert.truthy(ok)
      local err
      ok, err = d:transaction(function(tx)
        local _, e = tx:query("insert into " .. tbl .. " (name, n) values ($1, 1)", "dup-first")
        assert.equal("23505", e.sqlstate)
        return true -- carried on: the transaction reports the first failure
      end)
      assert.is_nil(ok)
      assert.equal("23505", err.sqlstate)
      -- the connection went back clean:
      assert.equal(1, assert(d:one("select 1 as v")).v)
      d:close()
    end)

    it("savepoints travel with the next statement and RELEASE with the COMMIT", function()
      local d = fresh_db()
      assert(d:transaction(function(tx)
        assert(tx:query("insert into " .. tbl .. " (name, n) values ($1, 1)", "sp-outer"))
        assert(tx:transaction(function(inner)
          assert(inner:query("insert into " .. tbl .. " (name, n) values ($1, 2)", "sp-inner"))
          return true
        end))
        return true
      end))
      assert.equal(3, px.flights()) -- BEGIN+insert, SAVEPOINT+insert, RELEASE+COMMIT
      assert.equal(1, count("sp-inner"))
      px.reset()
      assert(d:transaction(function(tx)
        assert(tx:query("insert into " .. tbl .. " (name, n) values ($1, 1)", "sp-outer2"))
        local ok = tx:transaction(function(inner)
          inner:query("insert into " .. tbl .. " (name, n) values ($1, 2)", "sp-outer2") -- duplicate
          return true
        end)
        assert.is_nil(ok)
        return true
      end))
      assert.equal(1, count("sp-outer2"))
      d:close()
    end)

    it("runs again on a fresh connection when its first statement finds the connection dead", function()
      -- its own proxy: sever cuts every connection through it
      local own = h.proxy(h.env().PGPORT, 0)
      local d = assert(lakebase.new(h.password_settings({ port = own.port, max = 1,
        application_name = h.unique("sever") })))
      assert(d:query("select 1"))
      own.sever() -- the pooled connection dies unseen (the client hears it on its next send)
      local v = d:transaction(function(tx)
        assert(tx:query("insert into " .. tbl .. " (name, n) values ($1, 1)", "severed"))
        return assert(tx:one("select count(*)::int as c from " .. tbl .. " where name = $1", "severed")).c
      end)
      assert.equal(1, v)
      assert.equal(1, count("severed"))
      assert.equal(2, d:stats().connects)
      -- a later statement that meets a dead connection fails the transaction (it cannot be redone)
      assert(d:transaction(function(tx) return tx:query("select 1") end))
      local ok, err = d:transaction(function(tx)
        assert(tx:query("select 1"))
        own.sever()
        return tx:query("select 2")
      end)
      assert.is_nil(ok)
      assert.equal("connect", err.kind)
      d:close()
      own.stop()
    end)

    it("keeps BEGIN apart from a first script that does not parse: nothing runs outside the transaction",
      function()
      local d = fresh_db()
      local ok, err = d:transaction(function(tx)
        local _, e = tx:exec_script("insert into " .. tbl .. " (name, n) values ('script-1', 1);\n"
          .. "insert into " .. tbl .. " (name, n) values ('script-2', 2) garbage")
        assert.equal("42601", e.sqlstate)
        -- the transaction had begun (and the error aborted it): nothing runs outside it
        local r, e2 = tx:query("insert into " .. tbl .. " (name, n) values ($1, 3)", "script-3")
        assert.is_nil(r)
        assert.equal("25P02", e2.sqlstate)
        return true
      end)
      assert.is_nil(ok)
      assert.equal("42601", err.sqlstate)
      assert.equal(0, count("script-1") + count("script-3"))
      d:close()
    end)

    it("an empty transaction costs one flight at most", function()
      local d = fresh_db()
      assert.equal(7, d:transaction(function() return 7 end))
      assert.is_true(px.flights() <= 1)
      d:close()
    end)
  end)

  describe("db:pipeline", function()
    it("sends 100 inserts in one flight and returns every result in order", function()
      local d = fresh_db()
      local results = assert(d:pipeline(function(p)
        for i = 1, 100 do
          assert.equal(i, p:query("insert into " .. tbl .. " (name, n) values ($1, $2)", "p100-" .. i, i))
        end
      end))
      assert.equal(100, results.n)
      for i = 1, 100 do assert.equal(1, results[i].affected_rows) end
      local st = px.stats()
      assert.equal(1, st.flights, h.json.encode(st))
      assert.equal(100, assert(d:one("select count(*)::int as c from " .. tbl .. " where name like 'p100-%'")).c)
      d:close()
    end)

    it("returns rows next to statements that return none", function()
      local d = fresh_db()
      local r = assert(d:pipeline(function(p)
        p:query("insert into " .. tbl .. " (name, n) values ($1, 10)", "mixed-1")
        p:query("select name, n from " .. tbl .. " where name = $1", "mixed-1")
        p:query_params("update " .. tbl .. " set n = n + 1 where name = $1", { "mixed-1", n = 1 })
        p:query("select g from generate_series(1, 3) g")
        p:query("select n from " .. tbl .. " where name = $1", "mixed-1")
      end))
      assert.equal(5, r.n)
      assert.equal(1, r[1].affected_rows)
      assert.same({ name = "mixed-1", n = 10 }, r[2][1])
      assert.equal(1, r[3].affected_rows)
      assert.equal(3, #r[4])
      assert.equal(11, r[5][1].n)
      assert.equal(1, px.flights())
      d:close()
    end)

    it("stops at the first error, names the statement, and rolls the whole pipeline back", function()
      local d = fresh_db()
      assert(d:query("insert into " .. tbl .. " (name, n) values ($1, 0)", "mid-dup"))
      px.reset()
      local r, err = d:pipeline(function(p)
        p:query("insert into " .. tbl .. " (name, n) values ($1, 1)", "mid-1")
        p:query("insert into " .. tbl .. " (name, n) values ($1, 2)", "mid-2")
        p:query("insert into " .. tbl .. " (name, n) values ($1, 3)", "mid-dup")
        p:query("insert into " .. tbl .. " (name, n) values ($1, 4)", "mid-4")
      end)
      assert.is_nil(r)
      assert.equal(3, err.statement)
      assert.equal("23505", err.sqlstate)
      assert.matches("statement 3 of 4", err.message)
      assert.equal(1, px.flights())
      assert.equal(0, count("mid-1"))
      assert.equal(0, count("mid-4"))
      -- the connection is clean and its statements still work
      assert(d:pipeline(function(p) p:query("insert into " .. tbl .. " (name, n) values ($1, 1)", "mid-1") end))
      assert.equal(1, count("mid-1"))
      d:close()
    end)

    it("is atomic inside a transaction, which returns the pipeline's error", function()
      local d = fresh_db()
      local ok, err = d:transaction(function(tx)
        assert(tx:query("insert into " .. tbl .. " (name, n) values ($1, 1)", "txp-0"))
        local r, e = tx:pipeline(function(p)
          p:query("insert into " .. tbl .. " (name, n) values ($1, 1)", "txp-1")
          p:query("select 1/0")
        end)
        assert.is_nil(r)
        assert.equal(2, e.statement)
        return true
      end)
      assert.is_nil(ok)
      assert.equal("22012", err.sqlstate)
      assert.equal(0, count("txp-0"))
      assert.equal(0, count("txp-1"))
      px.reset()
      assert(d:transaction(function(tx)
        local r = assert(tx:pipeline(function(p)
          for i = 1, 5 do p:query("insert into " .. tbl .. " (name, n) values ($1, $2)", "txp5-" .. i, i) end
        end))
        assert.equal(5, r.n)
        return true
      end))
      assert.equal(2, px.flights()) -- BEGIN + 5 inserts, COMMIT
      d:close()
    end)

    it("reports a server that closes the connection mid-pipeline, and recovers", function()
      local d = fresh_db()
      local r, err = d:pipeline(function(p)
        p:query("insert into " .. tbl .. " (name, n) values ($1, 1)", "gone-1")
        p:query("select pg_terminate_backend(pg_backend_pid())")
        p:query("insert into " .. tbl .. " (name, n) values ($1, 3)", "gone-3")
      end)
      assert.is_nil(r)
      assert.equal("connect", err.kind)
      assert.equal(0, count("gone-1") + count("gone-3"))
      assert.equal(1, assert(d:one("select 1 as v")).v)
      d:close()
    end)

    it("runs the builder's terminals in the pipeline, shaped as they return alone", function()
      local s = require("lakebase.schema")
      local t = s.table(tbl, { id = s.serial():primary_key(), name = s.text(), n = s.integer() })
      local d = fresh_db()
      local r = assert(d:pipeline(function(p)
        p:insert(t):values({ name = "b-1", n = 1 }):exec()
        p:insert(t):values({ name = "b-2", n = 2 }):exec()
        p:select(t.n):where(t.name:eq("b-2")):one()
        p:select(t):where(t.name:eq("b-1")):count()
      end))
      assert.equal(1, r[1])
      assert.equal(1, r[2])
      assert.equal(2, r[3].n)
      assert.equal(1, r[4])
      assert.equal(1, px.flights())
      d:close()
    end)

    it("sends nothing when the function raises, and an empty pipeline is an empty result", function()
      local d = fresh_db()
      assert.has_error(function()
        d:pipeline(function(p)
          p:query("insert into " .. tbl .. " (name, n) values ($1, 1)", "raised")
          error("boom")
        end)
      end)
      assert.same({ n = 0 }, assert(d:pipeline(function() end)))
      assert.equal(0, px.flights())
      assert.equal(0, count("raised"))
      d:close()
    end)

    it("runs 10,000 statements in one pipeline with memory bounded", function()
      local d = fresh_db()
      collectgarbage()
      collectgarbage()
      local before = rss_kb()
      local r = assert(d:pipeline(function(p)
        for i = 1, 10000 do
          p:query("insert into " .. tbl .. " (name, n) values ($1, $2)", "big-" .. i, i)
        end
      end))
      local after = rss_kb()
      assert.equal(10000, r.n)
      assert.equal(10000, assert(d:one("select count(*)::int as c from " .. tbl
        .. " where name like 'big-%'")).c)
      local flights = px.flights()
      print(("\n[pipeline] 10,000 inserts in one pipeline: %d flights, RSS +%d KB"):format(
        flights - 1, after - before))
      assert.is_true(after - before < 64 * 1024, "RSS grew by " .. (after - before) .. " KB")
      d:close()
    end)
  end)

  describe("warm starts", function()
    it("min_idle + prefetch: the first request pays no connect and no credential call", function()
      local ws = h.workspace
      ws.reset()
      local wspx = h.proxy(h.env().WORKSPACE_PORT, 0)
      px.reset()
      local d = assert(lakebase.new(h.settings({ port = px.port, max = 2, min_idle = 2, prefetch = true,
        databricks_host = "http://127.0.0.1:" .. wspx.port, application_name = h.unique("warm") })))
      local st = d:stats()
      assert.equal(2, st.idle)
      assert.equal(2, st.connects)
      assert.equal(1, st.credential_refreshes)
      assert.is_true(wspx.flights() >= 2) -- OAuth token, then the database credential
      assert.equal(2, px.stats().connections)
      px.reset()
      wspx.reset()
      assert.equal(1, assert(d:one("select 1 as v")).v)
      assert.equal(1, px.flights()) -- the statement alone
      assert.equal(0, px.stats().connections)
      assert.equal(0, wspx.flights())
      st = d:stats()
      assert.equal(2, st.connects)
      assert.equal(1, st.credential_refreshes)
      d:close()
      wspx.stop()
    end)

    it("keeps min_idle connections past idle_timeout, closes the ones above it", function()
      local d = assert(lakebase.new(h.password_settings({ port = px.port, max = 3, min_idle = 1,
        idle_timeout = 0.2, application_name = h.unique("warm") })))
      assert(d:transaction(function(tx) -- two connections in use at once: one more opens
        assert(d:query("select 1"))
        return tx:query("select 2")
      end))
      assert.equal(2, d:stats().idle)
      h.sleep(0.4)
      assert.equal(1, d:stats().idle)
      d:close()
    end)

    it("prefetch alone fetches the credential at new, before any connection", function()
      local d = assert(lakebase.new(h.pat_settings({ port = px.port, prefetch = true,
        application_name = h.unique("warm") })))
      local st = d:stats()
      assert.equal(1, st.credential_refreshes)
      assert.equal(0, st.total)
      d:close()
    end)
  end)
end)
