-- Read-only endpoints (db:reader()) against a real streaming replica: a pg_basebackup -R of the test
-- PostgreSQL running as a hot standby on another loopback port (spec/support/standby.sh), started
-- by this spec only and stopped in its teardown. The standby is the fake workspace's read endpoint:
-- it lets the app role in with a credential issued for that endpoint only (PAM asks the fake).
-- luacheck: max line length 120
local h = require("spec.support.helpers")
local lakebase = require("lakebase")

local function contains(s, piece)
  return type(s) == "string" and s:find(piece, 1, true) ~= nil
end

-- Polls `fn` until it returns a true value or `seconds` pass (replication is asynchronous).
local function eventually(seconds, fn)
  local deadline = h.clock() + seconds
  repeat
    local v = fn()
    if v then return v end
    h.sleep(0.02)
  until h.clock() > deadline
  return nil
end

describe("db:reader() without a read endpoint", function()
  it("is the primary itself, with the same API", function()
    local db = assert(lakebase.new(h.password_settings({ application_name = "reader_none" })))
    local r = assert(db:reader())
    assert.are.equal(db, r)
    assert.is_false(assert(r:one("select pg_is_in_recovery() as rec")).rec)
    assert.is_nil(db:stats().reader)
    db:close()
  end)
end)

describe("read endpoint settings", function()
  it("read_endpoint needs read_host only with a password; read_port alone is refused", function()
    -- Databricks auth: the read endpoint's host is read from the workspace by db:reader()
    local s, err = lakebase.config(h.settings({ read_endpoint = h.endpoint_for("ro") }))
    assert(s, tostring(err))
    assert.is_nil(s.read_host)
    s, err = lakebase.config(h.password_settings({ read_endpoint = h.endpoint_for("ro") }))
    assert.is_nil(s)
    assert.truthy(contains(tostring(err),
      "LAKEBASE_READ_HOST (read_host): required when read_endpoint is set with a password"))
    s, err = lakebase.config(h.settings({ read_port = 5433 }))
    assert.is_nil(s)
    assert.truthy(contains(tostring(err), "LAKEBASE_READ_HOST (read_host): required when read_port is set"))
    s, err = lakebase.config(h.settings({ read_host = "ro.example.com", read_port = "x",
      fallback_to_primary = "maybe" }))
    assert.is_nil(s)
    assert.truthy(contains(tostring(err), 'LAKEBASE_READ_PORT (read_port): expected an integer 1-65535, got "x"'))
    assert.truthy(contains(tostring(err), 'fallback_to_primary: expected a boolean'))
  end)

  it("are read from the environment too and shown by config (the port defaults to the primary's)", function()
    local s = assert(lakebase.config(h.settings({ read_host = "ro.example.com", read_endpoint = h.endpoint_for("ro"),
      fallback_to_primary = true })))
    assert.are.equal("ro.example.com", s.read_host)
    assert.are.equal(s.port, s.read_port)
    assert.are.equal(h.endpoint_for("ro"), s.read_endpoint)
    assert.is_true(s.fallback_to_primary)
    assert.truthy(contains(tostring(s), "read_host=ro.example.com"))
  end)

  it("the read endpoint gets its own credential (credentials are per endpoint)", function()
    local db = assert(lakebase.new(h.settings({ read_host = h.env().PGHOST, read_endpoint = h.endpoint_for("ro-cred"),
      application_name = "reader_cred" })))
    local r = assert(db:reader())
    assert.are_not.equal(db, r)
    assert.are.equal(h.endpoint_for("ro-cred"), r._pool:settings().endpoint)
    assert.are.equal(h.env().ENDPOINT, db._pool:settings().endpoint)
    db:close()
  end)
end)

describe("db:reader() on a streaming replica", function()
  local port

  setup(function()
    local err
    port, err = h.standby("start")
    assert(port, "the standby did not start: " .. tostring(err))
  end)

  teardown(function()
    h.standby("stop")
  end)

  local function settings(overrides)
    local s = { read_host = h.env().PGHOST, read_port = port, application_name = "reader_spec" }
    for k, v in pairs(overrides or {}) do s[k] = v end
    return h.password_settings(s)
  end

  it("reads run on the standby; the db itself stays on the primary", function()
    local db = assert(lakebase.new(settings()))
    local r = assert(db:reader())
    assert.are_not.equal(db, r)
    assert.is_true(assert(r:one("select pg_is_in_recovery() as rec")).rec)
    assert.is_false(assert(db:one("select pg_is_in_recovery() as rec")).rec)
    assert.are.equal(r, db:reader()) -- made once
    -- the same API: parameters, query_params, builder terminals, read-only transactions
    assert.are.equal(42, assert(r:one("select $1::int as n", 42)).n)
    assert.are.equal(7, assert(r:query_params("select $1::int as n", { 7 }))[1].n)
    local got = assert(r:transaction(function(tx)
      return assert(tx:one("select pg_is_in_recovery() as rec, current_setting('transaction_read_only') as ro"))
    end, { read_only = true }))
    assert.is_true(got.rec)
    assert.are.equal("on", got.ro)
    local st = db:stats()
    assert.is_table(st.reader)
    assert.is_true(st.reader.connects >= 1)
    db:close()
  end)

  it("with workspace auth the reader fetches its own credential for the read endpoint; reads run on the standby",
    function()
    local e = h.env()
    local c0 = h.workspace.counters()[h.CRED_PATH]
    local l0 = h.workspace.logins()
    local db = assert(lakebase.new(h.pat_settings({ endpoint = h.endpoint_for(h.unique("rw")),
      read_host = e.PGHOST, read_port = port, read_endpoint = e.READ_ENDPOINT, application_name = "reader_ws" })))
    local r = assert(db:reader())
    local row = assert(r:one("select pg_is_in_recovery() as rec, current_user as u"))
    assert.is_true(row.rec)
    assert.are.equal(e.PGUSER, row.u)
    -- the credential request named the read endpoint, and the standby checked that credential
    local req = assert(h.workspace.last_request(h.CRED_PATH))
    assert.are.same({ endpoint = e.READ_ENDPOINT }, h.json.decode(req.body))
    assert.are.equal(c0 + 1, h.workspace.counters()[h.CRED_PATH])
    assert.are.equal(l0.ok + 1, h.workspace.logins().ok)
    -- the primary gets a credential of its own endpoint
    assert.is_false(assert(db:one("select pg_is_in_recovery() as rec")).rec)
    assert.are.same({ endpoint = db._pool:settings().endpoint },
      h.json.decode(assert(h.workspace.last_request(h.CRED_PATH)).body))
    assert.are.equal(c0 + 2, h.workspace.counters()[h.CRED_PATH])
    assert.are.equal(1, db:stats().reader.credential_refreshes)
    assert.are.equal(0, db:stats().reader.connect_failures)
    db:close()
  end)

  it("without read_host the reader reads the read endpoint's host from the workspace, once", function()
    local e = h.env()
    local path = "/api/2.0/postgres/" .. e.READ_ENDPOINT
    local g0 = h.workspace.counters()[path] or 0
    local db = assert(lakebase.new(h.pat_settings({ endpoint = h.endpoint_for(h.unique("rw")),
      read_port = port, read_endpoint = e.READ_ENDPOINT, application_name = "reader_disc" })))
    local r = assert(db:reader())
    assert.is_true(assert(r:one("select pg_is_in_recovery() as rec")).rec)
    assert.is_true(assert(r:one("select pg_is_in_recovery() as rec")).rec)
    assert.are.equal(g0 + 1, h.workspace.counters()[path])
    assert.are.equal(e.PGHOST, r._pool:settings().host)
    db:close()
  end)

  it("the standby refuses a credential of another endpoint: the reader's login fails, not retriable", function()
    local e = h.env()
    local l0 = h.workspace.logins()
    -- a reader that asks for the primary's endpoint: a valid credential, for the wrong compute
    local db = assert(lakebase.new(h.pat_settings({ endpoint = h.endpoint_for(h.unique("rw")),
      read_host = e.PGHOST, read_port = port, read_endpoint = h.endpoint_for(h.unique("not-ro")),
      application_name = "reader_wrong", connect_timeout = 5, acquire_timeout = 5 })))
    local rows, err = assert(db:reader()):query("select 1 as n")
    assert.is_nil(rows)
    assert.are.equal("connect", err.kind)
    assert.are.equal("28P01", err.sqlstate)
    assert.is_false(err.retriable)
    assert.truthy(contains(err.message, "PAM authentication failed"), err.message)
    -- refused, refreshed once, refused again
    assert.are.equal(l0.compute + 2, h.workspace.logins().compute)
    assert.are.equal(2, db:stats().reader.credential_refreshes)
    db:close()
  end)

  it("writes through the reader fail with PostgreSQL's read-only error (SQLSTATE 25006)", function()
    local db = assert(lakebase.new(settings()))
    local r = assert(db:reader())
    local t = h.unique("ro_write")
    local rows, err = r:query("create table " .. t .. " (id int)")
    assert.is_nil(rows)
    assert.are.equal("25006", err.sqlstate)
    assert.truthy(contains(err.message, "read-only transaction"))
    assert.is_false(err.retriable)
    local ok, terr = r:transaction(function(tx)
      return assert(tx:query("create table " .. t .. " (id int)"))
    end)
    assert.is_nil(ok)
    assert.truthy(contains(tostring(terr), "25006"))
    db:close()
  end)

  it("a row written on the primary is visible on the reader once replication catches up", function()
    local db = assert(lakebase.new(settings()))
    local r = assert(db:reader())
    local t = h.unique("replicated")
    assert(db:query("create table " .. t .. " (id int primary key, v text)"))
    assert(db:query("insert into " .. t .. " (id, v) values ($1, $2)", 1, "from the primary"))
    -- poll: the standby replays asynchronously
    local row = eventually(10, function()
      local rows = r:query("select v from " .. t .. " where id = $1", 1)
      return rows and rows[1]
    end)
    assert.is_table(row, "the row never reached the standby")
    assert.are.equal("from the primary", row.v)
    -- builder terminals run on the reader too
    local s = require("lakebase.schema")
    local tbl = s.table(t, { id = s.integer():primary_key(), v = s.text() })
    assert.are.equal(1, r:select(tbl):count())
    local found = assert(r:select(tbl):where(tbl.id:eq(1)):all())
    assert.are.equal("from the primary", found[1].v)
    db:close()
  end)

  it("a reader that is down fails its queries (retriable); with fallback_to_primary they run on the primary", function()
    local db = assert(lakebase.new(settings({ connect_timeout = 2, acquire_timeout = 3 })))
    local fb = assert(lakebase.new(settings({ connect_timeout = 2, acquire_timeout = 3, fallback_to_primary = true })))
    local r, rf = assert(db:reader()), assert(fb:reader())
    assert.is_true(assert(r:one("select pg_is_in_recovery() as rec")).rec)
    assert.is_true(assert(rf:one("select pg_is_in_recovery() as rec")).rec)
    assert(h.standby("halt"))
    local ok, res = pcall(function()
      local rows, err = r:query("select 1 as n")
      assert.is_nil(rows)
      assert.is_true(err.retriable)
      assert.are.equal("connect", err.kind)
      local row = assert(rf:one("select pg_is_in_recovery() as rec"))
      assert.is_false(row.rec) -- served by the primary
      assert.is_true(rf:stats().fallbacks >= 1)
      local got = assert(rf:transaction(function(tx) return tx:one("select 2 as n") end, { read_only = true }))
      assert.are.equal(2, got.n)
    end)
    assert(h.standby("resume"))
    if not ok then error(res, 0) end
    -- back on the standby once it is up again
    local back = eventually(10, function()
      local row = rf:one("select pg_is_in_recovery() as rec")
      return row and row.rec
    end)
    assert.is_true(back)
    db:close()
    fb:close()
  end)
end)
