-- The logger (lakebase.set_logger) and the hooks (lakebase.set_hooks): each event of the C core
-- and of the Lua layers, from real faults (a refused port, a credential API that refuses, a pool
-- held by a transaction, a slow statement), and no secret or parameter value in any of them.
local h = require("spec.support.helpers")
local lakebase = require("lakebase")

local captured = {}
local function capture(level, event, fields)
  captured[#captured + 1] = { level = level, event = event, fields = fields }
end

local function find(event, pred)
  for _, e in ipairs(captured) do
    if e.event == event and (not pred or pred(e.fields)) then return e end
  end
end

local function names()
  local t = {}
  for _, e in ipairs(captured) do t[#t + 1] = e.event end
  return table.concat(t, ",")
end

-- Every value a spec passes as a parameter, and the fixtures' secrets: none may be logged.
local SECRET_PARAM = "param-value-" .. h.unique("s")
local function secrets()
  local env = h.env()
  return { SECRET_PARAM, env.TOKEN, env.CLIENT_SECRET, env.ADMIN_PASSWORD }
end

describe("logger", function()
  before_each(function()
    captured = {}
    lakebase.set_logger(capture)
  end)
  after_each(function()
    lakebase.set_logger(nil)
    lakebase.set_hooks(nil)
    h.workspace.reset()
  end)

  it("is silent by default in plain Lua: nothing is queued or delivered", function()
    lakebase.set_logger(nil)
    local db = assert(lakebase.new(h.pat_settings({ endpoint = h.endpoint_for(h.unique("quiet")) })))
    assert(db:query("select 1"))
    lakebase.set_logger(capture)
    assert(db:query("select 1"))
    assert.equal(0, #captured, names())
    db:close()
  end)

  it("credential_fetched and connect_ok on a cold start (duration, attempt, TLS, expiry)", function()
    local endpoint = h.endpoint_for(h.unique("cold"))
    local db = assert(lakebase.new(h.pat_settings({ endpoint = endpoint })))
    assert(db:query("select 1"))
    local cred = assert(find("credential_fetched"), names())
    assert.equal("info", cred.level)
    assert.equal(endpoint, cred.fields.endpoint)
    assert.is_true(cred.fields.duration_ms >= 0)
    assert.is_true(cred.fields.expires_at > os.time())
    local c = assert(find("connect_ok"), names())
    assert.equal("info", c.level)
    assert.equal(1, c.fields.attempt)
    assert.matches("^TLSv1", c.fields.tls)
    assert.equal(h.env().PGDATABASE, c.fields.database)
    assert.is_nil(c.fields.user)
    db:close()
  end)

  it("credential_refresh_failed, then credential_recovered", function()
    local endpoint = h.endpoint_for(h.unique("refuse"))
    h.workspace.fault({ path = h.CRED_PATH, kind = "status", status = 403, count = 1 })
    local db = assert(lakebase.new(h.pat_settings({ endpoint = endpoint, connect_timeout = 2 })))
    local rows, err = db:query("select 1")
    assert.is_nil(rows)
    assert.equal("credential", err.kind)
    local f = assert(find("credential_refresh_failed"), names())
    assert.equal("error", f.level)
    assert.equal(403, f.fields.http_status)
    assert.equal("credential", f.fields.error_kind)
    assert(db:query("select 1"))
    local r = assert(find("credential_recovered"), names())
    assert.equal(1, r.fields.failed_attempts)
    db:close()
  end)

  it("connect_retry and connect_failed against a refused port", function()
    local port = require("spec.support.nginx").free_port()
    local db = assert(lakebase.new(h.password_settings({ port = port, acquire_timeout = 0.4 })))
    local rows, err = db:query("select 1")
    assert.is_nil(rows)
    assert.equal("connect", err.kind)
    local retry = assert(find("connect_retry"), names())
    assert.equal("warn", retry.level)
    assert.equal("connect", retry.fields.error_kind)
    local failed = assert(find("connect_failed"), names())
    assert.equal("error", failed.level)
    assert.is_true(failed.fields.attempt > retry.fields.attempt)
    db:close()
  end)

  it("slow_query: the SQL text with its placeholders, never the parameter value", function()
    local db = assert(lakebase.new(h.pat_settings({ slow_query_ms = 50 })))
    assert(db:query("select pg_sleep(0.01), $1::text as v", SECRET_PARAM))
    assert.is_nil(find("slow_query"), names())
    assert(db:query("select pg_sleep(0.1), $1::text as v", SECRET_PARAM))
    local s = assert(find("slow_query"), names())
    assert.equal("warn", s.level)
    assert.equal("select pg_sleep(0.1), $1::text as v", s.fields.sql)
    assert.is_true(s.fields.duration_ms >= 100)
    assert.equal(50, s.fields.threshold_ms)
    assert.equal(1, s.fields.rows)
    db:close()
  end)

  it("pool_wait: a checkout that waited past slow_acquire_ms", function()
    local db = assert(lakebase.new(h.pat_settings({ max = 1, slow_acquire_ms = 1, acquire_timeout = 0.2,
      application_name = h.unique("lbwait") })))
    local _, terr = db:transaction(function(tx)
      assert(tx:query("select 1"))
      local rows, err = db:query("select 2") -- the only connection is this transaction's
      assert.is_nil(rows)
      assert.equal("pool", err.kind)
      return true
    end)
    assert.is_nil(terr)
    local w = assert(find("pool_wait", function(f) return f.error_kind == "pool" end), names())
    local n = 0
    for _, e in ipairs(captured) do if e.event == "pool_wait" then n = n + 1 end end
    assert.equal(1, n, "only the queued checkout is a pool wait, not the first one's connect: " .. names())
    assert.equal("warn", w.level)
    assert.is_true(w.fields.wait_ms >= 150)
    assert.equal("pool", w.fields.error_kind)
    db:close()
  end)

  it("migration_applied", function()
    local db = assert(lakebase.new(h.password_settings({ max = 3 })))
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local tbl = h.unique("logmig")
    h.write_file(dir .. "/0001_" .. tbl .. ".sql", "create table " .. tbl .. " (id int);")
    local schema_table = "public." .. h.unique("lbmig")
    assert(require("lakebase.migrate").up(db, { dir = dir, table = schema_table }))
    local m = assert(find("migration_applied"), names())
    assert.equal("0001_" .. tbl .. ".sql", m.fields.file)
    assert.equal(1, m.fields.version)
    db:query("drop table " .. tbl)
    db:query("drop table " .. schema_table)
    os.execute("rm -rf " .. dir)
    db:close()
  end)

  it("a logger that raises does not break the query", function()
    lakebase.set_logger(function() error("logger bug") end)
    local db = assert(lakebase.new(h.pat_settings({ endpoint = h.endpoint_for(h.unique("raise")) })))
    assert(db:query("select 1"))
    db:close()
  end)

  it("refuses a logger that is not a function", function()
    assert.has_error(function() lakebase.set_logger("print") end,
      "bad argument #1 to 'set_logger' (function, false or nil expected, got string)")
    assert.has_error(function() lakebase.set_hooks({ on_qery = print }) end)
  end)

  it("no captured line holds a secret or a parameter value", function()
    -- everything above ran with the capture logger; run the secret-bearing cases once more here
    lakebase.set_hooks({ on_query = function(sql, _, _, err, pool)
      capture("debug", "on_query", { sql = sql, error = err and (err.message or err.kind),
        sqlstate = err and err.sqlstate, database = pool.database })
    end })
    local db = assert(lakebase.new(h.settings({ slow_query_ms = 1, endpoint = h.endpoint_for(h.unique("m2m")) })))
    assert(db:query("select pg_sleep(0.005), $1::text as v", SECRET_PARAM))
    -- 22P02: the server's message quotes the value ("invalid input syntax for type integer: ...")
    local _, qerr = db:query("select pg_sleep(0.005), $1::int as v", SECRET_PARAM)
    assert.equal("22P02", qerr.sqlstate)
    assert.is_truthy(tostring(qerr):find(SECRET_PARAM, 1, true)) -- the caller's error has it, the logs must not
    assert.is_truthy(find("on_query", function(f) return f.sqlstate == "22P02" end), names())
    local lines = {}
    for _, e in ipairs(captured) do
      lines[#lines + 1] = e.level .. " " .. e.event .. " " .. require("lakebase.log").format_fields(e.fields)
    end
    assert.is_true(#lines >= 3, names())
    local all = table.concat(lines, "\n")
    for _, s in ipairs(secrets()) do
      assert.is_nil(all:find(s, 1, true), "a secret or parameter value was logged:\n" .. all)
    end
    db:close()
  end)
end)

describe("hooks", function()
  after_each(function()
    lakebase.set_hooks(nil)
    lakebase.set_logger(nil)
  end)

  it("on_query: sql, seconds, rows or affected count, error, pool, end time; on_connect: every attempt", function()
    local queries, connects = {}, {}
    lakebase.set_hooks({
      on_query = function(sql, seconds, rows, err, pool, ended_at)
        queries[#queries + 1] = { sql, seconds, rows, err, pool, ended_at }
      end,
      on_connect = function(info) connects[#connects + 1] = info end,
    })
    local db = assert(lakebase.new(h.pat_settings({ endpoint = h.endpoint_for(h.unique("hooks")) })))
    assert(db:query("select generate_series(1, $1::int) as n", 3))
    assert.is_nil(db:query("select 1/0"))
    assert(db:transaction(function(tx)
      return tx:query("select 1")
    end))
    assert.equal("select generate_series(1, $1::int) as n", queries[1][1])
    assert.is_true(queries[1][2] > 0 and queries[1][2] < 5)
    assert.equal(3, queries[1][3])
    assert.is_nil(queries[1][4])
    assert.equal(h.env().PGDATABASE, queries[1][5].database)
    assert.equal(h.env().PGHOST, queries[1][5].host)
    assert.equal(queries[1][5], queries[2][5]) -- one labels table per pool
    assert.is_true(math.abs(queries[1][6] - os.time()) < 5)
    assert.equal("select 1/0", queries[2][1])
    assert.equal("query", queries[2][4].kind)
    assert.equal("22012", queries[2][4].sqlstate)
    assert.is_true(#queries >= 4, "the transaction's statements reach the hook too")
    assert.equal(1, #connects)
    assert.equal("connect_ok", connects[1].event)
    assert.is_number(connects[1].duration_ms)
    -- removed: nothing more is queued
    lakebase.set_hooks(nil)
    local n = #queries
    assert(db:query("select 1"))
    assert.equal(n, #queries)
    db:close()
  end)

  it("on_query and the logger see one call's events in order; a long statement whole", function()
    local seen = {}
    lakebase.set_logger(function(_, event) seen[#seen + 1] = event end)
    lakebase.set_hooks({
      on_query = function(sql) seen[#seen + 1] = "query:" .. #sql end,
      on_connect = function(info) seen[#seen + 1] = "hook:" .. info.event end,
    })
    local db = assert(lakebase.new(h.pat_settings({ endpoint = h.endpoint_for(h.unique("order")),
      slow_query_ms = 50 })))
    -- The first call: the connect, then the statement (kept aside by the calling thread, lb_log.c).
    assert(db:query("select 1"))
    -- A slow statement: its slow_query event, then its on_query call.
    assert(db:query("select pg_sleep(0.06)"))
    -- Longer than the kept copy (2 KiB): through the queue, whole.
    local long = "select 1 as a" .. string.rep(" ", 3000)
    assert(db:query(long))
    db:close()
    local got = table.concat(seen, ",")
    assert.equal(table.concat({ "credential_fetched", "hook:connect_ok", "connect_ok", "query:8",
      "slow_query", "query:" .. #"select pg_sleep(0.06)", "query:" .. #long }, ","), got)
  end)

  it("examples/otel_spans.lua prints one OTLP/JSON span per connect and statement", function()
    local root = h.root()
    local run_dir = os.getenv("LAKEBASE_RUN_DIR") or (root .. "/spec/support/run")
    local out, ok = h.run("cd " .. h.shell_quote(root) .. " && LAKEBASE_RUN_DIR=" .. h.shell_quote(run_dir)
      .. " . examples/fixture_env.sh && LUA_PATH='lua/?.lua;lua/?/init.lua;?.lua;;' LUA_CPATH='"
      .. (os.getenv("LUA_CPATH") or "") .. "' " .. os.getenv("LAKEBASE_TEST_INTERP") .. " examples/otel_spans.lua 2>&1")
    assert.is_true(ok, out)
    local spans = {}
    for line in out:gmatch("[^\n]+") do
      local doc = assert(lakebase.json.decode(line), line)
      spans[#spans + 1] = doc.resourceSpans[1].scopeSpans[1].spans[1]
    end
    assert.equal(4, #spans, out)
    assert.equal("connect", spans[1].name)
    assert.equal("SELECT " .. h.env().PGDATABASE, spans[2].name)
    assert.equal(3, spans[2].kind)
    assert.matches("^%x+$", spans[2].traceId)
    assert.equal(32, #spans[2].traceId)
    assert.is_true(tonumber(spans[2].endTimeUnixNano) >= tonumber(spans[2].startTimeUnixNano))
    local attrs = {}
    for _, a in ipairs(spans[3].attributes) do attrs[a.key] = a.value end
    assert.equal("select generate_series(1, 3) as n", attrs["db.query.text"].stringValue)
    assert.equal("3", attrs["db.response.returned_rows"].intValue)
    assert.equal(2, spans[4].status.code)
    assert.equal("22012", spans[4].status.message)
  end)
end)
