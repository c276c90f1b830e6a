-- The fault scenarios of docs/RELIABILITY.md, each short, and the events the logger and hooks
-- receive for them: a compute waking up (refused, 57P03, 53300 → connect_retry, then connect_ok),
-- an outage longer than acquire_timeout (connect_failed), a connection cut mid-statement (on_query
-- with a connect error), the credential endpoint down while the credential is valid
-- (credential_refresh_failed in the background, then credential_recovered). The TCP fault proxy
-- (spec/support/fault_proxy.py) and the fake workspace's /_test/fault make the faults.
local h = require("spec.support.helpers")
local lakebase = require("lakebase")

local captured, queries = {}, {}

local function events(name)
  local out = {}
  for _, e in ipairs(captured) do
    if e.event == name then out[#out + 1] = e end
  end
  return out
end

local function names()
  local t = {}
  for _, e in ipairs(captured) do t[#t + 1] = e.event .. (e.fields.sqlstate and ("/" .. e.fields.sqlstate) or "") end
  return table.concat(t, ",")
end

local function until_event(db, name, seconds)
  local t0 = h.clock()
  while h.clock() - t0 < seconds do
    if #events(name) > 0 then return true end
    db:query("select 1")
    h.sleep(0.1)
  end
  return #events(name) > 0
end

describe("log events of the fault scenarios", function()
  local proxy

  before_each(function()
    captured, queries = {}, {}
    lakebase.set_logger(function(level, event, fields)
      captured[#captured + 1] = { level = level, event = event, fields = fields }
    end)
    lakebase.set_hooks({ on_query = function(sql, _, _, err) queries[#queries + 1] = { sql = sql, err = err } end })
    proxy = h.proxy_start()
  end)

  after_each(function()
    proxy:stop()
    lakebase.set_logger(nil)
    lakebase.set_hooks(nil)
    h.workspace.reset()
  end)

  it("compute waking up: connect_retry (refused, 57P03, 53300), then connect_ok; no connect_failed", function()
    local db = assert(lakebase.new(h.pat_settings({ port = proxy.port, acquire_timeout = 10,
      application_name = h.unique("lbwake") })))
    proxy:schedule("refuse 0.3\nstarting 0.7\ntoomany 0.8\npass") -- steps longer than the 0.5 s backoff cap
    proxy:wait_mode("refuse")
    assert(db:query("select 1"))
    local retries = events("connect_retry")
    local seen = {}
    for _, e in ipairs(retries) do
      assert.equal("warn", e.level)
      seen[e.fields.sqlstate or "refused"] = true
    end
    assert.is_true(seen.refused and seen["57P03"] and seen["53300"], names())
    assert.equal(1, #events("connect_ok"), names())
    assert.equal(0, #events("connect_failed"), names())
    local ok = events("connect_ok")[1]
    assert.is_true(ok.fields.attempt > #retries - 1, names())
    db:close()
  end)

  it("outage longer than acquire_timeout: connect_failed with the attempts, then connect_ok", function()
    local db = assert(lakebase.new(h.pat_settings({ port = proxy.port, acquire_timeout = 0.6,
      application_name = h.unique("lbout") })))
    proxy:schedule("refuse")
    proxy:wait_mode("refuse")
    local rows, err = db:query("select 1")
    assert.is_nil(rows)
    assert.equal("connect", err.kind)
    local failed = events("connect_failed")
    assert.equal(1, #failed, names())
    assert.equal("error", failed[1].level)
    assert.is_true(failed[1].fields.attempt >= 2)
    assert.is_true(failed[1].fields.duration_ms >= 500)
    proxy:schedule("pass")
    proxy:wait_mode("pass")
    assert(db:query("select 1"))
    assert.equal(1, #events("connect_ok"), names())
    db:close()
  end)

  it("connection cut mid-statement: on_query sees the connect error", function()
    local db = assert(lakebase.new(h.pat_settings({ port = proxy.port, application_name = h.unique("lbcut") })))
    assert(db:query("select 1")) -- a warm connection through the proxy
    proxy:schedule("pass 0.3\ndrop")
    local rows, err = db:query("select pg_sleep(1.5)")
    assert.is_nil(rows)
    assert.equal("connect", err.kind)
    local last = queries[#queries]
    assert.equal("select pg_sleep(1.5)", last.sql)
    assert.equal("connect", last.err.kind)
    db:close()
  end)

  it("credential endpoint down while the credential is valid: refresh_failed (background), then recovered", function()
    -- A 121 s credential is inside the 2-minute refresh window after 1 s: the next connect starts
    -- a background refresh while the cached credential keeps serving.
    h.workspace.config({ lifetime = 121 })
    local db = assert(lakebase.new(h.pat_settings({ endpoint = h.endpoint_for(h.unique("bgfail")),
      max_lifetime = 0.2, application_name = h.unique("lbbg") })))
    assert(db:query("select 1"))
    assert.equal(1, #events("credential_fetched"), names())
    assert.equal("caller", events("credential_fetched")[1].fields.mode)
    h.workspace.fault({ path = h.CRED_PATH, kind = "status", status = 503 })
    h.sleep(1.1)
    assert.is_true(until_event(db, "credential_refresh_failed", 5), names())
    local f = events("credential_refresh_failed")[1]
    assert.equal("warn", f.level) -- the cached credential still serves
    assert.equal("background", f.fields.mode)
    assert.equal(503, f.fields.http_status)
    h.workspace.reset()
    h.workspace.config({ lifetime = 3600 })
    assert.is_true(until_event(db, "credential_recovered", 8), names())
    local r = events("credential_recovered")[1]
    assert.equal("info", r.level)
    assert.equal("background", r.fields.mode)
    assert.is_true(r.fields.failed_attempts >= 1)
    for _, q in ipairs(queries) do assert.is_nil(q.err, "a query failed: " .. tostring(q.err and q.err.kind)) end
    db:close()
  end)
end)
