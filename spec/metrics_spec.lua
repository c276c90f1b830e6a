-- Metrics (lb_metrics.c, lakebase.metrics): counters and histograms per series set, db:metrics(),
-- and the Prometheus text format that promtool (Debian's prometheus package) must accept.
local h = require("spec.support.helpers")
local lakebase = require("lakebase")

local function promtool_check(text)
  local f = os.tmpname()
  h.write_file(f, text)
  local out, ok = h.run("promtool check metrics < " .. h.shell_quote(f) .. " 2>&1")
  os.remove(f)
  return ok, out
end

describe("metrics", function()
  it("counts queries, errors by kind and SQLSTATE class, durations, connects and the credential", function()
    local endpoint = h.endpoint_for(h.unique("metrics"))
    local db = assert(lakebase.new(h.pat_settings({ endpoint = endpoint, max = 3,
      application_name = h.unique("lbm") })))
    assert(db:query("select 1"))
    local m0 = assert(db:metrics())
    for i = 1, 20 do assert(db:one("select $1::int as v", i)) end
    assert.is_nil(db:query("select 1/0"))                          -- 22012: class 22
    assert.is_nil(db:query("insert into no_such_table values (1)")) -- 42P01: class 42
    assert.is_nil(db:query("select 1/0"))
    local m = assert(db:metrics())
    assert.equal(m0.queries + 23, m.queries)
    local errs = {}
    for _, e in ipairs(m.errors) do errs[e.kind .. ":" .. e.class] = e.count end
    assert.equal(0, #m0.errors)
    assert.equal(2, errs["query:22"])
    assert.equal(1, errs["query:42"])
    assert.equal(m.queries, m.query.count)
    assert.is_true(m.query.sum > 0)
    assert.is_true(m.query.buckets[#m.query.buckets] <= m.query.count)
    for i = 2, #m.query.buckets do assert.is_true(m.query.buckets[i] >= m.query.buckets[i - 1]) end
    assert.is_true(m.connects >= 1)
    assert.equal(m.connects + m.connect_failures, m.connect.count)
    assert.is_true(m.wait.count >= m.queries)
    assert.equal(1, m.idle + m.in_use) -- one connection was enough for one caller
    assert.equal(0, m.waiting)
    assert.equal(3, m.max)
    assert.equal(h.env().PGHOST, m.host)
    assert.equal(endpoint, m.endpoint)
    -- its credential: one fetch, expiring about an hour from now
    assert.equal(1, m.credential.refreshes)
    assert.equal(1, m.credential.refresh.count)
    assert.is_true(m.credential.expires_at > os.time() + 60)
    db:close()
  end)

  it("prometheus(): promtool accepts a busy process's output; no user, no secret in it", function()
    local env = h.env()
    local settings = h.pat_settings({ max = 4, application_name = h.unique("lbp") })
    local db = assert(lakebase.new(settings))
    local pw = assert(lakebase.new(h.password_settings({ max = 2 })))
    for i = 1, 50 do assert(db:one("select $1::int as v", i)) end
    assert(pw:query("select 1"))
    assert.is_nil(db:query("select 1/0"))
    assert.is_nil(pw:query("select nope"))
    local text = lakebase.metrics.prometheus()
    local ok, out = promtool_check(text)
    assert.is_true(ok, out .. "\n" .. text)
    assert.matches('lakebase_queries_total{endpoint="' .. env.ENDPOINT:gsub("%p", "%%%0"), text)
    assert.matches('lakebase_errors_total{[^}]*kind="query",sqlstate_class="22"} %d', text)
    assert.matches('lakebase_query_duration_seconds_bucket{[^}]*le="%+Inf"} %d', text)
    assert.matches("lakebase_credential_expiry_seconds{", text)
    assert.matches("lakebase_connections_idle{", text)
    for _, secret in ipairs({ env.TOKEN, env.ADMIN_PASSWORD, env.CLIENT_SECRET, env.PGUSER, env.ADMIN_USER }) do
      assert.is_nil(text:find(secret, 1, true), "found a user name or secret in the metrics")
    end
    -- counters only grow
    local before = lakebase.metrics.collect()
    assert(db:query("select 2"))
    local after = lakebase.metrics.collect()
    local function total(sets, field)
      local n = 0
      for _, s in ipairs(sets) do n = n + (s[field] or 0) end
      return n
    end
    assert.equal(total(before, "queries") + 1, total(after, "queries"))
    db:close()
    pw:close()
  end)

  it("escapes label values", function()
    local text = lakebase.metrics.prometheus({ {
      kind = "credential", endpoint = 'a"b\\c\nd', refreshes = 1, refresh_failures = 0, expires_at = 0,
      refresh = { count = 0, sum = 0, buckets = (function()
        local b = {}
        for i = 1, #require("lakebase.core").metrics_bounds do b[i] = 0 end
        return b
      end)() },
    } })
    assert.matches('endpoint="a\\"b\\\\c\\nd"', text, 1, true)
    local ok, out = promtool_check(text)
    assert.is_true(ok, out)
  end)
end)
