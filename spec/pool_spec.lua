-- The pool: sharing, limits, stats, health (restart, termination), credential rotation.
local h = require("spec.support.helpers")
local lakebase = require("lakebase")

local function app()
  return h.unique("lbapp")
end

local function terminate(application_name)
  return h.psql("select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = '"
    .. application_name .. "'")
end

describe("pool", function()
  teardown(function()
    h.workspace.reset()
  end)

  it("rotation: 125-second credentials, idle_timeout 1, 20 s of queries, zero failures", function()
    h.workspace.reset()
    h.workspace.config({ lifetime = 125 })
    local d = assert(lakebase.new(h.pat_settings({ idle_timeout = 1, application_name = app() })))
    local before = d:stats()
    local issued = h.workspace.counters()[h.CRED_PATH]
    local failures, n, loops, errs = 0, 0, 0, {}
    local t0 = h.clock()
    while h.clock() - t0 < 20 do
      loops = loops + 1
      for i = 1, 5 do
        local row, err = d:one("select $1::int as v", i)
        n = n + 1
        if not row or row.v ~= i then
          failures = failures + 1
          errs[#errs + 1] = tostring(err)
        end
      end
      h.sleep(1.1) -- past idle_timeout: the next query opens a new connection
    end
    local after = d:stats()
    assert.equal(0, failures, table.concat(errs, "\n"))
    assert.is_true(loops >= 8, "loops: " .. loops) -- slower under sanitizers, never this slow
    assert.equal(5 * loops, n)
    -- every round after the first found its connection idle too long and opened a new one
    assert.is_true(after.connects - before.connects >= loops - 1,
      "connects: " .. after.connects - before.connects .. " for " .. loops .. " rounds")
    assert.is_true(after.credential_refreshes - before.credential_refreshes >= 3,
      "refreshes: " .. after.credential_refreshes - before.credential_refreshes)
    assert.is_true(h.workspace.counters()[h.CRED_PATH] - issued >= 3)
    assert.is_true(after.credential_expires_at > os.time() + 100)
    assert.equal(0, after.credential_failures)
    d:close()
    h.workspace.reset()
  end)

  it("is shared by every db with identical settings", function()
    local s = h.password_settings({ application_name = app() })
    local a = assert(lakebase.new(s))
    local b = assert(lakebase.new(s))
    assert(a:one("select 1 as one"))
    assert.equal(1, b:stats().connects)
    assert(b:one("select 1 as one"))
    assert.equal(1, a:stats().connects)
    local c = assert(lakebase.new(h.password_settings({ application_name = app() })))
    assert.equal(0, c:stats().connects)
    a:close()
    assert(b:one("select 1 as one")) -- closing one db leaves the others working
    assert.has_error(function() a:query("select 1") end)
    b:close()
    c:close()
  end)

  it("opens connections lazily; a refused connect is retried with backoff until acquire_timeout", function()
    local d = assert(lakebase.new(h.password_settings({ port = 1, application_name = app(), connect_timeout = 2,
      acquire_timeout = 1.5 })))
    assert.equal(0, d:stats().total)
    local t0 = h.clock()
    local rows, err = d:query("select 1")
    local took = h.clock() - t0
    assert.is_nil(rows)
    assert.equal("connect", err.kind)
    assert.is_true(err.retriable)
    assert.matches("gave up after %d+ attempts", err.message)
    assert.truthy(took >= 1.35 and took < 2.5, "took " .. took) -- acquire_timeout ±10% (+ a loaded machine)
    local st = d:stats()
    assert.equal(0, st.total)
    assert.equal(0, st.in_use)
    -- jittered exponential backoff capped at 0.5 s: a handful of attempts, not a busy loop
    assert.truthy(st.connect_failures >= 3 and st.connect_failures <= 20, "attempts " .. st.connect_failures)
    d:close()
  end)

  it("reports a wrong password without revealing it", function()
    local secret = "wrong-password-" .. h.unique("pw")
    local d = assert(lakebase.new(h.password_settings({ password = secret, application_name = app() })))
    local rows, err = d:query("select 1")
    assert.is_nil(rows)
    assert.equal("connect", err.kind)
    assert.equal("28P01", err.sqlstate)
    assert.matches("password authentication failed", err.message)
    assert.is_false(err.retriable) -- the same call cannot succeed without a change
    assert.equal(1, d:stats().connect_failures) -- and it is not retried
    assert.is_nil(tostring(err):find(secret, 1, true))
    d:close()
  end)

  it("reports bad settings as a config error", function()
    local d, err = lakebase.new({ host = "h", database = "d", user = "u", password = "p", max = "many" })
    assert.is_nil(d)
    assert.equal("config", err.kind)
    assert.has_error(function() lakebase.new("nope") end)
  end)

  it("has stats with every field, and no secret in stats or tostring", function()
    local s = h.settings({ application_name = app() })
    local d = assert(lakebase.new(s))
    assert(d:one("select 1 as one"))
    local st = d:stats()
    for _, k in ipairs({ "total", "idle", "in_use", "waiting", "max", "connects", "connect_failures",
      "credential_refreshes", "credential_failures", "credential_expires_at" }) do
      assert.is_number(st[k], k)
    end
    assert.equal(1, st.total)
    assert.equal(1, st.idle)
    assert.equal(0, st.in_use)
    assert.equal(0, st.waiting)
    assert.equal(10, st.max)
    assert.is_true(st.credential_expires_at > os.time())
    local text = tostring(d)
    assert.matches(s.host, text, 1, true)
    assert.matches(s.database, text, 1, true)
    assert.matches(s.user, text, 1, true)
    local e = h.env()
    for _, secret in ipairs({ e.CLIENT_SECRET, e.TOKEN, e.ADMIN_PASSWORD }) do
      assert.is_nil(text:find(secret, 1, true))
      for k, v in pairs(st) do
        assert.is_nil(tostring(v):find(secret, 1, true), k)
      end
    end
    local p = assert(lakebase.new(h.password_settings()))
    assert.is_nil(tostring(p):find(e.ADMIN_PASSWORD, 1, true))
    assert.is_nil(tostring(p._pool):find(e.ADMIN_PASSWORD, 1, true))
    d:close()
    p:close()
  end)

  it("exhaustion: max 2, a third caller waits acquire_timeout, then gets a pool error", function()
    local d = assert(lakebase.new(h.password_settings({ max = 2, acquire_timeout = 0.5, application_name = app() })))
    local elapsed, err3, inner_stats
    d:transaction(function(t1)
      assert(t1:one("select 1 as one"))
      d:transaction(function(t2)
        assert(t2:one("select 1 as one"))
        local t0 = h.clock()
        local rows
        rows, err3 = d:query("select 1")
        elapsed = h.clock() - t0
        assert.is_nil(rows)
        inner_stats = d:stats()
        return true
      end)
      return true
    end)
    assert.equal("pool", err3.kind)
    assert.is_true(err3.retriable)
    assert.is_true(elapsed >= 0.45 and elapsed < 3, "waited " .. elapsed)
    assert.equal(2, inner_stats.total)
    assert.equal(2, inner_stats.in_use)
    local st = d:stats()
    assert.equal(0, st.in_use)
    assert.equal(2, st.idle)
    assert.equal(0, st.waiting)
    assert.equal(1, assert(d:one("select 1 as one")).one) -- nothing deadlocked
    d:close()
  end)

  it("never opens more than max connections", function()
    local d = assert(lakebase.new(h.password_settings({ max = 1, acquire_timeout = 0.2, application_name = app() })))
    d:transaction(function()
      local _, err = d:query("select 1")
      assert.equal("pool", err.kind)
      return true
    end)
    local st = d:stats()
    assert.equal(1, st.connects)
    assert.equal(1, st.total)
    d:close()
  end)

  it("closes idle connections after idle_timeout", function()
    local d = assert(lakebase.new(h.password_settings({ idle_timeout = 0.3, application_name = app() })))
    assert(d:one("select 1 as one"))
    local pid1 = assert(d:one("select pg_backend_pid() as p")).p
    h.sleep(0.5)
    local pid2 = assert(d:one("select pg_backend_pid() as p")).p
    assert.are_not.equal(pid1, pid2)
    local st = d:stats()
    assert.equal(2, st.connects)
    assert.equal(1, st.total)
    -- with no traffic at all, stats() (or a timer calling pool:sweep()) closes it too
    h.sleep(0.5)
    st = d:stats()
    assert.equal(0, st.total)
    assert.equal(0, st.idle)
    local gone
    for _ = 1, 20 do -- the backend exits just after our Terminate message
      gone = h.psql("select count(*) from pg_stat_activity where pid = " .. pid2) == "0"
      if gone then break end
      h.sleep(0.1)
    end
    assert.is_true(gone)
    d:close()
  end)

  it("replaces connections older than max_lifetime", function()
    local d = assert(lakebase.new(h.password_settings({ max_lifetime = 0.4, application_name = app() })))
    local pid1 = assert(d:one("select pg_backend_pid() as p")).p
    assert.equal(pid1, assert(d:one("select pg_backend_pid() as p")).p)
    h.sleep(0.6)
    local pid2 = assert(d:one("select pg_backend_pid() as p")).p
    assert.are_not.equal(pid1, pid2)
    d:close()
  end)

  it("turns TCP keepalives on by default, with the configured idle time", function()
    local pid = assert(h.read_file("/proc/self/stat")):match("^(%d+)")
    local function keepalive_timers(opts)
      local d = assert(lakebase.new(h.password_settings(opts)))
      assert(d:one("select 1 as one"))
      local out = h.run("ss -tnop state established '( dport = :" .. h.env().PGPORT .. " )'")
      d:close()
      local timers = {}
      for line in out:gmatch("[^\n]+") do
        if line:find("pid=" .. pid .. ",", 1, true) then
          timers[#timers + 1] = line:match("timer:%(keepalive,([%d%.]+)") or "none"
        end
      end
      return timers
    end
    local on = keepalive_timers({ application_name = app(), keepalives_idle = 7 })
    assert.equal(1, #on)
    assert.truthy(tonumber(on[1]) and tonumber(on[1]) <= 7, "keepalive timer " .. tostring(on[1]))
    local off = keepalive_timers({ application_name = app(), keepalives = false })
    assert.same({ "none" }, off)
  end)

  it("replaces a connection the server terminated while it was idle", function()
    local name = app()
    local d = assert(lakebase.new(h.password_settings({ application_name = name })))
    local pid1 = assert(d:one("select pg_backend_pid() as p")).p
    assert.equal("1", terminate(name))
    h.sleep(0.1)
    local row, err = d:one("select pg_backend_pid() as p")
    assert.is_table(row, tostring(err))
    assert.are_not.equal(pid1, row.p)
    d:close()
  end)

  it("keeps an idle connection that only received harmless messages (NOTIFY)", function()
    local d = assert(lakebase.new(h.password_settings({ max = 1, application_name = app() })))
    local chan = h.unique("chan")
    local pid1 = assert(d:one("select pg_backend_pid() as p")).p
    assert(d:exec_script("listen " .. chan))
    assert(h.psql("notify " .. chan .. ", 'hello'"))
    h.sleep(0.2)
    local pid2 = assert(d:one("select pg_backend_pid() as p")).p
    assert.equal(pid1, pid2)
    assert.equal(1, d:stats().connects)
    assert(d:exec_script("unlisten *"))
    d:close()
  end)

  it("an authentication failure on connect refreshes the credential and retries once", function()
    local name = app()
    local e = h.env()
    local d = assert(lakebase.new(h.settings({ application_name = name })))
    assert(d:one("select 1 as one"))
    local before = d:stats()
    -- The workspace revokes the cached credential: the next login with it is refused.
    assert.is_true(h.workspace.revoke({ all = true }) >= 1)
    terminate(name)
    h.sleep(0.1)
    local row, err = d:one("select current_user as u")
    assert.is_table(row, tostring(err))
    assert.equal(e.PGUSER, row.u)
    local after = d:stats()
    assert.equal(before.connect_failures + 1, after.connect_failures)
    assert.equal(before.credential_refreshes + 1, after.credential_refreshes)
    d:close()
  end)

  for _, mode in ipairs({ "fast", "immediate" }) do
    it("queries succeed again after a PostgreSQL restart (" .. mode .. ")", function()
      local d = assert(lakebase.new(h.password_settings({ max = 3, application_name = app() })))
      -- three idle connections that the restart kills
      d:transaction(function()
        d:transaction(function()
          d:transaction(function() return true end)
          return true
        end)
        return true
      end)
      assert.equal(3, d:stats().idle)
      for i = 1, 5 do
        assert.equal(i, assert(d:one("select $1::int as v", i)).v)
      end
      assert(h.pg_restart(mode))
      local failures, errs = 0, {}
      for i = 1, 20 do
        local row, err = d:one("select $1::int as v", i)
        if not row or row.v ~= i then
          failures = failures + 1
          errs[#errs + 1] = tostring(err)
        end
      end
      assert.equal(0, failures, table.concat(errs, "\n"))
      local ok = d:transaction(function(tx)
        return assert(tx:one("select 1 as one")).one == 1
      end)
      assert.is_true(ok)
      d:close()
    end)
  end
end)
