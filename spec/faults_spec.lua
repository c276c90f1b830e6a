-- Faults survived, measured (SPEC §8, issue 9): PostgreSQL restarts and hard stops under a steady
-- query load, the credential endpoint down / dropping / rate limited / malformed / slow while a
-- credential is valid, the credential expired while the endpoint is down, token rotation, expiry and
-- revocation under load (PostgreSQL checks each login of the app role against the fake workspace,
-- as Lakebase does: every unexpired credential valid side by side, expiry at login), pool exhaustion.
-- Each scenario prints its figures (stderr) and, when LAKEBASE_FAULTS_OUT names a file, appends a
-- row to it (spec/support/faults.sh turns the rows into docs/RELIABILITY.md).
--
-- The load is one client issuing numbered INSERTs back to back (a pause of `PAUSE` between them);
-- "lost" counts inserts that were acknowledged but are not in the table afterwards.
local h = require("spec.support.helpers")
local lakebase = require("lakebase")

local CRED = h.CRED_PATH
local PAUSE = 0.01
local WORKERS = 4
local interp = os.getenv("LAKEBASE_TEST_INTERP") or (jit and "luajit" or "lua5.4")

local function fmt(x) return string.format("%.2f", x) end

-- The PAM login checks the workspace answered since the snapshot l0 (h.workspace.logins()), by outcome.
local function logins_since(l0)
  local out = {}
  for k, v in pairs(h.workspace.logins()) do out[k] = v - l0[k] end
  return setmetatable(out, { __index = function() return 0 end })
end

-- Logins the workspace refused, for any reason.
local function refused(logins)
  local n = 0
  for k, v in pairs(logins) do if k ~= "ok" then n = n + v end end
  return n
end

local function report(row)
  local line = string.format("[faults %s] %s | load: %s | failed during: %s | failed after: %s | lost: %s | %s",
    interp, row.scenario, row.load, row.during, row.after, row.lost, row.notes)
  io.stderr:write("\n", line, "\n")
  local out = os.getenv("LAKEBASE_FAULTS_OUT")
  if out and out ~= "" then
    local f = assert(io.open(out, "a"))
    f:write(table.concat({ interp, row.scenario, row.load, tostring(row.during), tostring(row.after),
      tostring(row.lost), row.notes }, "\t"), "\n")
    f:close()
  end
end

local function new_db(name, extra)
  local opts = h.settings({ application_name = "faults_" .. name, max = 4,
    endpoint = h.endpoint_for("faults_" .. name) }) -- a credential of its own
  for k, v in pairs(extra or {}) do opts[k] = v end
  local db, err = lakebase.new(opts)
  assert(db, tostring(err))
  return db
end

local function make_table(db)
  local t = h.unique("faults")
  assert(db:query("create table " .. t .. " (seq integer primary key, at timestamptz default now())"))
  return t
end

local function drop_table(t)
  h.psql("drop table if exists " .. t)
end

-- Inserts numbered rows for `duration` seconds. Returns the log: {seq, t0, t1, ok, err}.
local function run_load(db, t, duration, log, each)
  log = log or {}
  local stop = h.now() + duration
  local seq = #log
  while h.now() < stop do
    seq = seq + 1
    local t0 = h.now()
    local r, err = db:query("insert into " .. t .. " (seq) values ($1)", seq)
    log[#log + 1] = { seq = seq, t0 = t0, t1 = h.now(), ok = r ~= nil, err = err }
    if each then each(seq) end
    h.sleep(PAUSE)
  end
  return log
end

-- Acknowledged inserts missing from the table, and unacknowledged ones that made it anyway.
local function lost_rows(t, log)
  local present = {}
  local out = assert(h.psql("select seq from " .. t))
  for s in out:gmatch("%d+") do present[tonumber(s)] = true end
  local lost, ambiguous = 0, 0
  for _, q in ipairs(log) do
    if q.ok and not present[q.seq] then lost = lost + 1 end
    if not q.ok and present[q.seq] then ambiguous = ambiguous + 1 end
  end
  return lost, ambiguous
end

-- Load from several OS processes at once (each its own pool, as separate app instances): a worker
-- inserts numbered rows (seq = base + i) for `duration` seconds and writes one line per query.
local WORKER = [[
local h = require("spec.support.helpers")
local lakebase = require("lakebase")
local t, base, duration, out, name = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4], arg[5]
local db = assert(lakebase.new(h.settings({ application_name = name, max = 2 })))
local f = assert(io.open(out, "w"))
local stop, i = h.now() + duration, 0
while h.now() < stop do
  i = i + 1
  local t0 = h.now()
  local r, err = db:query("insert into " .. t .. " (seq) values ($1)", base + i)
  local kind = r and "-" or tostring(type(err) == "table" and err.kind or err)
  -- in flight when the connection died: retriable, "may or may not have run" (counted apart)
  if not r and type(err) == "table" and err.retriable and tostring(err.message):find("may or may not have run") then
    kind = "in_doubt"
  end
  f:write(string.format("%d %.4f %.4f %s %s\n", base + i, t0, h.now(), r and "ok" or "fail", kind))
  h.sleep(0.01)
end
f:close()
db:close()
os.rename(out, out .. ".done")
]]

local function start_workers(t, n, duration, name)
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(WORKER)
  f:close()
  local lua = os.getenv("LAKEBASE_TEST_INTERP") or (jit and "luajit" or "lua5.4")
  local outs = {}
  for k = 1, n do
    outs[k] = os.tmpname()
    os.execute(string.format("cd %s && %s %s %s %d %s %s %s >/dev/null 2>%s.err </dev/null &", h.shell_quote(h.root()),
      lua, h.shell_quote(script), t, k * 1000000, tostring(duration), h.shell_quote(outs[k]),
      "faults_" .. name .. "_w" .. k, h.shell_quote(outs[k])))
  end
  return function()
    local log = {}
    local deadline = h.now() + duration + 60
    for k = 1, n do
      local text
      while h.now() < deadline do
        text = h.read_file(outs[k] .. ".done")
        if text then break end
        h.sleep(0.1)
      end
      local err = h.read_file(outs[k] .. ".err") or ""
      os.remove(outs[k] .. ".done"); os.remove(outs[k] .. ".err"); os.remove(outs[k])
      assert(text, "worker " .. k .. " did not finish: " .. err)
      for seq, t0, t1, ok, kind in text:gmatch("(%d+) (%S+) (%S+) (%S+) (%S+)\n") do
        log[#log + 1] = { seq = tonumber(seq), t0 = tonumber(t0), t1 = tonumber(t1), ok = ok == "ok",
          err = ok ~= "ok" and { kind = kind, message = kind } or nil }
      end
    end
    os.remove(script)
    table.sort(log, function(a, b) return a.t0 < b.t0 end)
    return log
  end
end

-- Runs a pg_ctl sequence in the background after `delay` seconds; the marks file receives
-- "start <epoch>" and "up <epoch>" (PostgreSQL accepting connections again).
local function background_pg(delay, steps)
  local e = h.env()
  local marks = os.tmpname()
  local pgctl = h.as_postgres() .. h.shell_quote(e.PGBIN .. "/pg_ctl") .. " -D " .. h.shell_quote(e.PGDATA)
  local logarg = " -l " .. h.shell_quote(e.PGLOG)
  local mark = function(what) return "echo " .. what .. " $(date +%s.%N) >> " .. h.shell_quote(marks) end
  local script = { "sleep " .. delay, mark("start") }
  for _, s in ipairs(steps) do
    if s:match("^sleep") then
      script[#script + 1] = s
    else
      script[#script + 1] = pgctl .. " " .. s .. ((s:match("^start") or s:match("^restart")) and logarg or "")
    end
  end
  script[#script + 1] = mark("up")
  os.execute("( " .. table.concat(script, "; ") .. " ) >/dev/null 2>&1 </dev/null &")
  return function()
    local deadline = h.now() + 90
    while h.now() < deadline do
      local s = h.read_file(marks) or ""
      local up = s:match("up (%d+%.%d+)")
      if up then
        os.remove(marks)
        return tonumber(s:match("start (%d+%.%d+)")), tonumber(up)
      end
      h.sleep(0.1)
    end
    error("the background pg_ctl sequence did not finish")
  end
end

local ERROR_KINDS = { connect = true, query = true, timeout = true, credential = true, pool = true,
  in_doubt = true }

local function analyse(log, start, up)
  local r = { total = #log, ok = 0, before = 0, during = 0, after = 0, in_doubt = 0, kinds = {}, first_fail = nil,
    back = nil }
  for _, q in ipairs(log) do
    if q.err and q.err.kind == "in_doubt" then
      r.in_doubt = r.in_doubt + 1 -- in flight at the termination: counted apart
    elseif q.ok then
      r.ok = r.ok + 1
      if r.first_fail and not r.back and q.t0 > r.first_fail then r.back = q.t1 end
    else
      r.first_fail = r.first_fail or q.t0
      r.kinds[#r.kinds + 1] = q.err
      if q.t1 < start then r.before = r.before + 1
      elseif q.t0 <= up then r.during = r.during + 1
      else r.after = r.after + 1 end
    end
  end
  return r
end

local function check_errors(errs)
  for _, err in ipairs(errs) do
    assert.is_table(err)
    assert.truthy(ERROR_KINDS[err.kind], "unexpected error kind " .. tostring(err.kind))
    assert.is_string(err.message)
    assert.truthy(#err.message > 0)
  end
end

local function no_secret(s)
  local e = h.env()
  for _, secret in ipairs({ e.CLIENT_SECRET, e.TOKEN, e.ADMIN_PASSWORD }) do
    assert.is_nil(s:find(secret, 1, true), "a secret appears in: " .. s)
  end
end

local function kinds_summary(errs)
  local c, out = {}, {}
  for _, err in ipairs(errs) do
    local k = type(err) == "table" and (err.kind or "?") or type(err)
    c[k] = (c[k] or 0) + 1
  end
  for k, n in pairs(c) do out[#out + 1] = k .. " " .. n end
  table.sort(out)
  return #out > 0 and table.concat(out, ", ") or "none"
end

describe("faults #faults", function()
  before_each(function()
    if not h.pg_running() then h.pg_start() end
    h.workspace.reset()
  end)
  after_each(function()
    if not h.pg_running() then h.pg_start() end
    h.workspace.reset()
  end)

  for _, case in ipairs({
    { name = "PostgreSQL restart (pg_ctl restart -m fast)", key = "restart_fast",
      steps = { "restart -w -t 60 -m fast" } },
    { name = "network cut: hard stop (-m immediate), down 1.5 s, start", key = "immediate",
      steps = { "stop -w -t 60 -m immediate", "sleep 1.5", "start -w -t 60" } },
  }) do
    it(case.name .. ": queries fail only while it is down, nothing acknowledged is lost", function()
      local db = new_db(case.key)
      local t = make_table(db)
      db:close()
      local workers = start_workers(t, WORKERS, 4.0, case.key)
      local wait = background_pg(1.2, case.steps)
      local start, up = wait()
      local log = workers()
      local lost, ambiguous = lost_rows(t, log)
      drop_table(t)
      local r = analyse(log, start, up)
      local t_first, t_last = math.huge, 0
      for _, q in ipairs(log) do t_first = math.min(t_first, q.t0); t_last = math.max(t_last, q.t1) end
      local slowest = 0
      for _, q in ipairs(log) do slowest = math.max(slowest, q.t1 - q.t0) end
      report({
        scenario = case.name,
        load = string.format("%d inserts in %.1f s (%d client processes)", r.total, t_last - t_first, WORKERS),
        during = r.during, after = r.after, lost = lost,
        notes = string.format("server down %s s; slowest insert %s s (waited for the server); errors: %s; "
          .. "%d in flight at the termination (retriable, 'may or may not have run', counted apart), "
          .. "of which %d committed",
          fmt(up - start), fmt(slowest), kinds_summary(r.kinds), r.in_doubt, ambiguous),
      })
      check_errors(r.kinds)
      assert.equal(0, r.before)
      assert.equal(0, r.during, kinds_summary(r.kinds))
      assert.equal(0, r.after)
      assert.equal(0, lost)
      assert.truthy(r.in_doubt <= WORKERS * 2, "in flight: " .. r.in_doubt) -- at most 1 per connection
      assert.truthy(r.ok > 0)
      assert.truthy(slowest > 0.1 or up - start < 0.05, "the fault was never seen by the load")
    end)
  end

  it("token rotation under load (credential lifetime 125 s): zero failures", function()
    h.workspace.config({ lifetime = 125 })
    local l0 = h.workspace.logins() -- before the pool's first login
    -- max_lifetime makes connections turn over, so new ones need the current credential.
    local db = new_db("rotation", { max_lifetime = 0.5 })
    local t = make_table(db)
    local c0 = h.workspace.counters()[CRED]
    local log = run_load(db, t, 11.0)
    local rotations = h.workspace.counters()[CRED] - c0
    local logins = logins_since(l0)
    local lost = lost_rows(t, log)
    drop_table(t)
    local r = analyse(log, math.huge, math.huge)
    local st = db:stats()
    report({
      scenario = "token rotation under load (lifetime 125 s, refresh at < 120 s, connections recycled every 0.5 s)",
      load = string.format("%d inserts in %.1f s (1 client)", r.total, log[#log].t1 - log[1].t0),
      during = r.total - r.ok, after = 0, lost = lost,
      notes = string.format("%d rotations, %d connects, %d connect failures; logins checked: %d accepted, %d refused",
        rotations, st.connects, st.connect_failures, logins.ok, refused(logins)),
    })
    assert.equal(0, r.total - r.ok)
    assert.equal(0, lost)
    assert.truthy(rotations >= 2, "rotations: " .. rotations)
    assert.truthy(st.connects >= 3)
    -- every credential stays valid until it expires: a connection opened with the previous one
    -- while the next one was being fetched is never refused
    assert.equal(0, st.connect_failures)
    assert.equal(0, refused(logins))
    assert.truthy(logins.ok >= st.connects, "PostgreSQL checked every login with the workspace")
    db:close()
  end)

  it("credentials expiring during load (lifetime 3 s): zero failures", function()
    h.workspace.config({ lifetime = 3 })
    local db = new_db("short_lived", { max_lifetime = 0.5 })
    local t = make_table(db)
    local c0 = h.workspace.counters()[CRED]
    local l0 = h.workspace.logins()
    local log = run_load(db, t, 3.5)
    local issued = h.workspace.counters()[CRED] - c0
    local logins = logins_since(l0)
    local lost = lost_rows(t, log)
    drop_table(t)
    local r = analyse(log, math.huge, math.huge)
    local st = db:stats()
    report({
      scenario = "credentials expiring during load (lifetime 3 s, connections recycled every 0.5 s)",
      load = string.format("%d inserts in %.1f s (1 client)", r.total, log[#log].t1 - log[1].t0),
      during = r.total - r.ok, after = 0, lost = lost,
      notes = string.format("%d credentials issued, %d connects, %d connect failures; logins checked: %d accepted, "
        .. "%d refused as expired", issued, st.connects, st.connect_failures, logins.ok, logins.expired),
    })
    assert.equal(0, r.total - r.ok, kinds_summary(r.kinds))
    assert.equal(0, lost)
    assert.truthy(issued >= 2)
    db:close()
  end)

  it("credential revoked under load (every credential issued so far, every 0.7 s): zero failures", function()
    local db = new_db("revoked", { max_lifetime = 0.3 })
    local t = make_table(db)
    local revocations = 0
    local next_revoke = h.now() + 0.7
    local l0 = h.workspace.logins()
    local log = run_load(db, t, 3.0, nil, function()
      if h.now() >= next_revoke then
        -- the fault: the workspace revokes the library's credential (and any other issued so far)
        assert.truthy(h.workspace.revoke({ all = true }) >= 1)
        revocations = revocations + 1
        next_revoke = h.now() + 0.7
      end
    end)
    local logins = logins_since(l0)
    local lost = lost_rows(t, log)
    drop_table(t)
    local r = analyse(log, math.huge, math.huge)
    local st = db:stats()
    report({
      scenario = "credential revoked under load (every credential issued so far revoked every 0.7 s)",
      load = string.format("%d inserts in %.1f s (1 client)", r.total, log[#log].t1 - log[1].t0),
      during = r.total - r.ok, after = 0, lost = lost,
      notes = string.format("%d revocations, %d connects, %d connect failures, %d credential refreshes; "
        .. "logins checked: %d accepted, %d refused as revoked",
        revocations, st.connects, st.connect_failures, st.credential_refreshes, logins.ok, logins.revoked),
    })
    assert.equal(0, r.total - r.ok, kinds_summary(r.kinds))
    assert.equal(0, lost)
    assert.truthy(revocations >= 3)
    -- each revocation was met at a login (refused, then one refresh and a retry that succeeded)
    assert.truthy(logins.revoked >= 1, "no login met a revoked credential")
    assert.equal(logins.revoked, st.connect_failures)
    db:close()
  end)

  it("credential endpoint down / dropping / 429 / malformed / slow while the credential is valid: zero failures",
    function()
    h.workspace.config({ lifetime = 121 })
    local kinds = {
      { label = "down (HTTP 503)", fault = { kind = "status", status = 503 } },
      { label = "connection dropped", fault = { kind = "drop" } },
      { label = "rate limited (429, Retry-After: 1)", fault = { kind = "retry_after", retry_after = 1 } },
      { label = "malformed JSON", fault = { kind = "malformed" } },
      { label = "truncated body", fault = { kind = "truncated" } },
      { label = "slow (1.5 s)", fault = { kind = "delay", delay = 1.5 }, duration = 2.5 },
    }
    local dbs, tables = {}, {}
    for i = 1, #kinds do
      dbs[i] = new_db("endpoint_" .. i, { max_lifetime = 0.3 })
      tables[i] = make_table(dbs[i])
    end
    -- After 1 s a 121 s credential is inside the 2-minute refresh window: every new connection asks
    -- the endpoint for a new one, and with the endpoint failing the cached one has to carry on.
    h.sleep(1.3)
    for i, k in ipairs(kinds) do
      h.workspace.reset()
      h.workspace.config({ lifetime = 121 })
      local f = { path = CRED }
      for kk, v in pairs(k.fault) do f[kk] = v end
      h.workspace.fault(f)
      local c0 = h.workspace.counters()[CRED]
      local t0 = h.clock()
      local log = run_load(dbs[i], tables[i], k.duration or 1.5, nil, nil)
      local times = {}
      for j, q in ipairs(log) do times[j] = q.t1 - q.t0 end
      table.sort(times)
      local slowest, p90 = times[#times], times[math.ceil(#times * 0.9)]
      local attempts = h.workspace.counters()[CRED] - c0
      local lost = lost_rows(tables[i], log)
      local r = analyse(log, math.huge, math.huge)
      local st = dbs[i]:stats()
      report({
        scenario = "credential endpoint " .. k.label .. " while the credential is valid",
        load = string.format("%d inserts in %.1f s (1 client)", r.total, h.clock() - t0),
        during = r.total - r.ok, after = 0, lost = lost,
        notes = string.format("%d refresh attempts reached the endpoint; %d connects; slowest query %s s, "
          .. "90th percentile %.1f ms", attempts, st.connects, fmt(slowest), p90 * 1000),
      })
      assert.equal(0, r.total - r.ok, k.label .. ": " .. kinds_summary(r.kinds))
      assert.equal(0, lost)
      assert.truthy(attempts >= 1, k.label .. ": the fault was never exercised")
      -- The refresh runs in the background: no query waits for the endpoint. Queries go at their
      -- usual pace (90th percentile), and none took the slow endpoint's 1.5 s (a query that waited
      -- for a failing endpoint would have failed within connect_timeout: counted above). Not the
      -- slowest against a tighter bound: every 0.3 s a query opens a connection, whose login runs
      -- the PAM check (fork, exec, one HTTP call), and on the shared 2-CPU machine one such login
      -- in a run took 0.65 s to 1.1 s. The figures are in the table.
      assert.truthy(p90 < 0.2, k.label .. ": 90th percentile " .. p90)
      assert.truthy(slowest < 1.5, k.label .. ": slowest query " .. slowest)
    end
    for i = 1, #kinds do
      drop_table(tables[i])
      dbs[i]:close()
    end
  end)

  it("credential expired while the endpoint is down: a clear error, then recovery", function()
    h.workspace.config({ lifetime = 3 })
    local db = new_db("expired", { max_lifetime = 0.2, connect_timeout = 2 })
    local t = make_table(db)
    h.workspace.fault({ path = CRED, kind = "status", status = 503 })
    local e = h.env()
    -- wait for the credential (and the connections opened with it) to run out
    h.sleep(3.5)
    local t0 = h.clock()
    local r, err = db:query("insert into " .. t .. " (seq) values (1)")
    local fail_time = h.clock() - t0
    assert.is_nil(r)
    assert.equal("credential", err.kind)
    local msg = tostring(err)
    assert.matches("503", msg)
    assert.matches("TEMPORARILY_UNAVAILABLE", msg)
    no_secret(msg)
    assert.truthy(fail_time < 2 + 1.5, "took " .. fail_time)
    -- the endpoint comes back: the next query works, no restart of anything
    h.workspace.reset()
    local t1 = h.clock()
    local r2, err2 = db:query("insert into " .. t .. " (seq) values (2)")
    local recover = h.clock() - t1
    assert.is_nil(err2)
    assert.truthy(r2)
    assert.equal("2", h.psql("select seq from " .. t))
    drop_table(t)
    report({
      scenario = "credential expired while the endpoint is down (HTTP 503), then back",
      load = "1 client, single inserts",
      during = 1, after = 0, lost = 0,
      notes = string.format("error after %s s (connect_timeout 2 s): \"%s\"; recovered on the next query (%s s)",
        fmt(fail_time), (err.message:gsub("[\r\n|]", " ")):sub(1, 160), fmt(recover)),
    })
    assert.is_string(e.PGUSER)
    db:close()
  end)

  describe("through the fault proxy", function()
    local proxy
    before_each(function() proxy = h.proxy_start() end)
    after_each(function() proxy:stop() end)

    it("wake-up: refused 2 s, then 57P03 for 1 s: the first query waits about 3 s and succeeds", function()
      local db = new_db("wakeup", { port = proxy.port })
      local t = make_table(db) -- a warm connection through the proxy, which the compute's sleep ends
      local before = db:stats()
      proxy:schedule("drop 0\nrefuse 2\nstarting 1\npass")
      local fault_at = proxy:wait_mode("refuse")
      local log = run_load(db, t, 4.5)
      local marks = proxy:marks()
      local lost = lost_rows(t, log)
      drop_table(t)
      local r = analyse(log, math.huge, math.huge)
      local first = log[1]
      local st = db:stats()
      local pass_at = marks[#marks].at
      report({
        scenario = "wake-up: proxy refuses 2 s, then answers 57P03 for 1 s, then forwards",
        load = string.format("%d inserts in %.1f s (1 client)", r.total, log[#log].t1 - log[1].t0),
        during = r.total - r.ok, after = 0, lost = lost,
        notes = string.format("first insert succeeded after %s s (compute answering again after %s s); "
          .. "%d connect attempts failed meanwhile", fmt(first.t1 - fault_at), fmt(pass_at - fault_at),
          st.connect_failures - before.connect_failures),
      })
      assert.equal(0, r.total - r.ok, kinds_summary(r.kinds))
      assert.equal(0, lost)
      assert.equal("pass", marks[#marks].mode)
      assert.truthy(first.ok and first.t1 - fault_at >= 2.8 and first.t1 - fault_at < 4.5,
        "first query after " .. (first.t1 - fault_at))
      assert.truthy(st.connect_failures - before.connect_failures >= 2)
      db:close()
    end)

    it("outage longer than acquire_timeout: each query fails at acquire_timeout with a retriable error", function()
      local db = new_db("outage", { port = proxy.port, acquire_timeout = 2 })
      assert(db:query("select 1"))
      proxy:schedule("drop 0\nrefuse 6\npass")
      proxy:wait_mode("refuse")
      local took, errs = {}, {}
      for i = 1, 2 do
        local t0 = h.clock()
        local r, err = db:query("select 1")
        took[i] = h.clock() - t0
        errs[i] = err
        assert.is_nil(r)
        assert.equal("connect", err.kind)
        assert.is_true(err.retriable)
        assert.matches("acquire_timeout", err.message)
        -- ±10% of 2 s, with a little room for a loaded 2-core machine on the late side
        assert.truthy(took[i] >= 1.8 and took[i] <= 2.4, "failed after " .. took[i])
      end
      proxy:wait_mode("pass", 10)
      local t0 = h.clock()
      assert(db:query("select 1"))
      local back = h.clock() - t0
      report({
        scenario = "outage longer than acquire_timeout (2 s): proxy refuses for 6 s",
        load = "1 client, 2 queries during the outage",
        during = 2, after = 0, lost = 0,
        notes = string.format("failed after %s s and %s s (acquire_timeout 2 s): \"%s\"; the next query after "
          .. "the outage took %s s", fmt(took[1]), fmt(took[2]), (errs[1].message:gsub("[\r\n|]", " ")):sub(1, 200),
          fmt(back)),
      })
      db:close()
    end)

    it("too many connections (53300) for longer than acquire_timeout: says the limit was reached", function()
      local db = new_db("toomany", { port = proxy.port, acquire_timeout = 2 })
      assert(db:query("select 1"))
      proxy:schedule("drop 0\ntoomany 6\npass")
      proxy:wait_mode("toomany")
      local t0 = h.clock()
      local r, err = db:query("select 1")
      local took = h.clock() - t0
      assert.is_nil(r)
      assert.equal("connect", err.kind)
      assert.equal("53300", err.sqlstate)
      assert.is_true(err.retriable)
      assert.matches("connection limit was reached", err.message)
      assert.matches("max", err.hint)
      assert.truthy(took >= 1.8 and took <= 2.4, "failed after " .. took)
      report({
        scenario = "too many connections: proxy answers 53300 for 6 s, acquire_timeout 2 s",
        load = "1 client, 1 query",
        during = 1, after = 0, lost = 0,
        notes = string.format("failed after %s s: \"%s\" (hint: %s)", fmt(took),
          (err.message:gsub("[\r\n|]", " ")):sub(1, 150), err.hint),
      })
      db:close()
    end)

    it("a pg_hba.conf rejection is not retried and not retriable", function()
      local db = new_db("hba", { port = proxy.port })
      proxy:schedule("hba")
      proxy:wait_mode("hba")
      local t0 = h.clock()
      local r, err = db:query("select 1")
      assert.is_nil(r)
      assert.equal("connect", err.kind)
      assert.equal("28000", err.sqlstate)
      assert.is_false(err.retriable)
      assert.matches("pg_hba.conf", err.message)
      assert.truthy(h.clock() - t0 < 1, "took " .. (h.clock() - t0))
      assert.equal(1, db:stats().connect_failures)
      db:close()
    end)

    it("a password refused again after the credential refresh is not retriable", function()
      local db = new_db("authfail", { port = proxy.port })
      assert(db:query("select 1")) -- a cached credential and an idle connection, which the drop ends
      proxy:schedule("drop 0\nauthfail")
      proxy:wait_mode("authfail")
      local before = db:stats()
      local r, err = db:query("select 1")
      assert.is_nil(r)
      assert.equal("connect", err.kind)
      assert.equal("28P01", err.sqlstate)
      assert.is_false(err.retriable)
      local after = db:stats()
      assert.equal(2, after.connect_failures - before.connect_failures) -- the first try and one after the refresh
      assert.equal(1, after.credential_refreshes - before.credential_refreshes)
      db:close()
    end)

    it("connection cut while a statement runs: may or may not have run; idempotent ones are retried", function()
      local db = new_db("inflight", { port = proxy.port })
      assert(db:query("select 1"))
      -- not idempotent: the caller hears that it may or may not have run
      proxy:schedule("pass 0.5\ndrop 0\npass")
      local t0 = h.clock()
      local r, err = db:query("select pg_sleep(1.5)")
      local t_fail = h.clock() - t0
      assert.is_nil(r)
      assert.equal("connect", err.kind)
      assert.is_true(err.retriable)
      assert.matches("may or may not have run", err.message)
      -- idempotent: retried on a fresh connection
      proxy:schedule("pass 0.5\ndrop 0\npass")
      t0 = h.clock()
      local rows, err2 = db:query_params("select 42 as v from pg_sleep(1.5)", nil, { idempotent = true })
      local t_idem = h.clock() - t0
      assert.is_nil(err2)
      assert.equal(42, rows[1].v)
      -- inside a transaction nothing is retried: the transaction fails as a whole, retriable
      proxy:schedule("pass 0.5\ndrop 0\npass")
      local ok, terr = db:transaction(function(tx)
        assert(tx:query("select 1"))
        local _, e = tx:query_params("select pg_sleep(1.5)", nil, { idempotent = true })
        if e then error(e) end
        return true
      end)
      assert.is_nil(ok)
      assert.is_true(terr.retriable)
      assert(db:query("select 1")) -- and the pool carries on
      report({
        scenario = "connection cut (proxy reset) while a statement runs",
        load = "1 client: a plain statement, an idempotent one, one inside a transaction",
        during = 2, after = 0, lost = 0,
        notes = string.format("plain: retriable error after %s s (\"%s\"); idempotent: retried, succeeded "
          .. "after %s s; transaction: failed as a whole, retriable", fmt(t_fail),
          (err.message:gsub("[\r\n|]", " ")):sub(1, 120), fmt(t_idem)),
      })
      db:close()
    end)
  end)

  -- A real black hole needs packets that nobody acknowledges, which a loopback proxy cannot give
  -- (its kernel answers). So the client runs in its own network namespace, reaching the proxy over
  -- a veth pair, and the black hole is that link going down inside the namespace: nothing on the
  -- machine's loopback or other interfaces changes. Needs root (ip netns); skipped otherwise.
  local BLACKHOLE_CLIENT = [[
local h = require("spec.support.helpers")
local lakebase = require("lakebase")
local host, port, dev, out = arg[1], tonumber(arg[2]), arg[3], arg[4]
local f = assert(io.open(out, "w"))
local function put(k, v) f:write(k, " ", (tostring(v):gsub("%s+", " ")), "\n"); f:flush() end
local db = assert(lakebase.new(h.password_settings({ host = host, port = port, sslmode = "verify-ca",
  application_name = "faults_blackhole", max = 1, keepalives_idle = 1, keepalives_interval = 1,
  keepalives_count = 2, tcp_user_timeout = 3 })))
assert(db:query("select 1"))
-- a: the network goes dark while a statement runs
local c0 = db:stats().connects
os.execute("( sleep 0.5; ip link set " .. dev .. " down ) >/dev/null 2>&1 &")
local t0 = h.clock()
local r, err = db:query("select pg_sleep(10)")
put("a_after", h.clock() - t0 - 0.5)
put("a_ok", r ~= nil)
put("a_retriable", err and err.retriable)
put("a_msg", err and err.message)
os.execute("ip link set " .. dev .. " up")
local r2, err2 = db:query("select 1 as one")
put("a_next_ok", r2 ~= nil and r2[1].one == 1)
put("a_next_err", err2 and tostring(err2))
put("a_connects", db:stats().connects - c0)
-- b: dark while the connection is idle, back after 6 s: keepalives found it dead, checkout replaces it
c0 = db:stats().connects
os.execute("ip link set " .. dev .. " down")
h.sleep(6)
os.execute("ip link set " .. dev .. " up")
t0 = h.clock()
local r3, err3 = db:query("select 1 as one")
put("b_took", h.clock() - t0)
put("b_ok", r3 ~= nil and r3[1].one == 1)
put("b_err", err3 and tostring(err3))
put("b_connects", db:stats().connects - c0)
db:close()
f:close()
os.rename(out, out .. ".done")
]]

  it("network black hole (veth link down): a running statement fails within the keepalive bound, "
    .. "an idle connection is replaced", function()
    local n = math.floor(h.now() * 1000) % 100000 -- LuaJIT's math.random starts the same every run
    local tag = string.format("%05d", n)
    local ns, host_dev, ns_dev = "lbf" .. tag, "lbh" .. tag, "lbn" .. tag
    local net = 1 + n % 250
    local host_ip, ns_ip = "10.255." .. net .. ".1", "10.255." .. net .. ".2"
    local _, made = h.run("ip netns add " .. ns .. " 2>/dev/null")
    if not made then
      pending("needs root for ip netns (network black hole)")
      return
    end
    local proxy
    local ok, failure = pcall(function()
      local _, linked = h.run(table.concat({
        "ip link add " .. host_dev .. " type veth peer name " .. ns_dev,
        "ip link set " .. ns_dev .. " netns " .. ns,
        "ip addr add " .. host_ip .. "/30 dev " .. host_dev,
        "ip link set " .. host_dev .. " up",
        "ip netns exec " .. ns .. " ip addr add " .. ns_ip .. "/30 dev " .. ns_dev,
        "ip netns exec " .. ns .. " ip link set " .. ns_dev .. " up",
        "ip netns exec " .. ns .. " ip link set lo up",
      }, " && "))
      assert(linked, "could not set up the veth pair")
      proxy = h.proxy_start(host_ip)
      local script, out = os.tmpname(), os.tmpname()
      local sf = assert(io.open(script, "w"))
      sf:write(BLACKHOLE_CLIENT)
      sf:close()
      local lua = os.getenv("LAKEBASE_TEST_INTERP") or (jit and "luajit" or "lua5.4")
      h.run(string.format("cd %s && ip netns exec %s %s %s %s %d %s %s >%s.log 2>&1", h.shell_quote(h.root()), ns, lua,
        h.shell_quote(script), host_ip, proxy.port, ns_dev, h.shell_quote(out), h.shell_quote(out)))
      local text = h.read_file(out .. ".done")
      local log = h.read_file(out .. ".log") or ""
      os.remove(script); os.remove(out .. ".done"); os.remove(out .. ".log"); os.remove(out)
      assert(text, "the namespaced client did not finish: " .. log)
      local v = {}
      for k, val in text:gmatch("(%S+) ([^\n]*)\n") do v[k] = val end
      report({
        scenario = "network black hole (veth link down; keepalives 1 s/1 s/2, tcp_user_timeout 3 s)",
        load = "1 client in its own network namespace",
        during = 1, after = 0, lost = 0,
        notes = string.format("running statement failed %s s after the link went down (\"%s\"), retriable %s; "
          .. "next query on a new connection (%s); idle connection dark 6 s: next query served in %s s on a "
          .. "new connection, no error", fmt(tonumber(v.a_after)), (v.a_msg or ""):sub(1, 110), v.a_retriable,
          v.a_connects, fmt(tonumber(v.b_took))),
      })
      assert.equal("false", v.a_ok)
      assert.equal("true", v.a_retriable)
      -- keepalives_idle 1 s + tcp_user_timeout 3 s, with room for a loaded machine
      assert.truthy(tonumber(v.a_after) > 1 and tonumber(v.a_after) < 8, "failed after " .. v.a_after)
      assert.equal("true", v.a_next_ok, v.a_next_err)
      assert.equal("1", v.a_connects)
      assert.equal("true", v.b_ok, v.b_err)
      assert.equal("1", v.b_connects)
    end)
    if proxy then proxy:stop() end
    h.run("ip link del " .. host_dev .. " 2>/dev/null; ip netns del " .. ns .. " 2>/dev/null")
    assert(ok, failure)
  end)

  it("pool exhaustion with a waiter: a pool error after acquire_timeout, then normal service", function()
    local db = new_db("exhaustion", { max = 1, acquire_timeout = 1 })
    local waited, werr
    local ok = db:transaction(function(tx)
      assert(tx:query("select 1"))
      local t0 = h.clock()
      local r, err = db:query("select 2")
      waited, werr = h.clock() - t0, err
      assert.is_nil(r)
      return true
    end)
    assert.truthy(ok)
    assert.equal("pool", werr.kind)
    assert.truthy(waited >= 0.9 and waited < 3, "waited " .. waited)
    local r = assert(db:query("select 3 as n"))
    assert.equal(3, r[1].n)
    local st = db:stats()
    assert.equal(0, st.waiting)
    assert.equal(0, st.in_use)
    report({
      scenario = "pool exhaustion (max 1, acquire_timeout 1 s) with a waiter",
      load = "1 pinned transaction + 1 waiting query",
      during = 1, after = 0, lost = 0,
      notes = string.format("waiter got a '%s' error after %s s; next query served", werr.kind, fmt(waited)),
    })
    db:close()
  end)
end)
