--- The round-trip workloads (bench/rtt.sh) for the Lua peers, through the latency proxy.
-- usage: <lua> bench/rtt_peers.lua lakebase|luasql R1|R2|R3|R4|R4p|R5|R5w
--   R1 warm `select $1::int` (per query)     R2 first use of a new statement (per statement)
--   R3 a transaction of 5 inserts            R4 100 inserts one by one; R4p the same in db:pipeline
--   R5 cold start: new + first query         R5w lakebase with min_idle = 1, prefetch = true: the
--                                                first request after new (new itself not timed)
--   R5m lakebase cold start with OAuth M2M: the credential's HTTP calls (through a second proxy in
--       front of the fake workspace, BENCH_WS_PROXY_CTL) + TLS + SCRAM + the first query
-- Connection from the PG* environment; flights from the proxy (BENCH_PROXY_CTL). One JSON line.
local clock = require("benchclock")
local peer, workload = arg[1], arg[2]
local interp = jit and "LuaJIT" or _VERSION

local function proxy(what, ctl)
  local p = io.popen("python3 " .. os.getenv("BENCH_PROXY_SCRIPT") .. " ctl "
    .. (ctl or os.getenv("BENCH_PROXY_CTL")) .. " " .. what)
  local out = p:read("*a")
  p:close()
  return tonumber(out:match('"flights": (%d+)'))
end

local function lakebase_peer(extra)
  local lakebase = require("lakebase")
  local opts = { sslrootcert = os.getenv("PGSSLROOTCERT"), max = 1, application_name = "rtt-" .. workload }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local db = assert(lakebase.new(opts))
  return {
    query = function(sql, ...) return assert(db:query(sql, ...)) end,
    tx = function(fn) return assert(db:transaction(function(tx)
      fn(function(sql, ...) return assert(tx:query(sql, ...)) end)
      return true
    end)) end,
    pipeline = function(fn) return assert(db:pipeline(fn)) end,
  }
end

-- luasql has no parameters: values are formatted into the SQL text, as its users do.
local function luasql_peer()
  local driver = require("luasql.postgres")
  local env = assert(driver.postgres())
  local conn = assert(env:connect(string.format("host=%s port=%s dbname=%s user=%s password=%s sslmode=%s "
    .. "sslrootcert=%s", os.getenv("PGHOST"), os.getenv("PGPORT"), os.getenv("PGDATABASE"), os.getenv("PGUSER"),
    os.getenv("PGPASSWORD"), os.getenv("PGSSLMODE"), os.getenv("PGSSLROOTCERT"))))
  local function fmt(sql, ...)
    local args = { ... }
    return (sql:gsub("%$(%d+)", function(k)
      local v = args[tonumber(k)]
      return type(v) == "number" and tostring(v) or ("'" .. conn:escape(tostring(v)) .. "'")
    end))
  end
  local function query(sql, ...)
    local cur = assert(conn:execute(fmt(sql, ...)))
    if type(cur) ~= "userdata" then return cur end -- a row count
    local out = {}
    for row in function() return cur:fetch({}, "a") end do out[#out + 1] = row end
    cur:close()
    return out
  end
  return {
    query = query,
    tx = function(fn)
      conn:setautocommit(false)
      fn(query)
      assert(conn:commit())
      conn:setautocommit(true)
    end,
  }
end

local INSERT = "insert into bench_inserts (name, price) values ($1, 1)"
local make = assert(({ lakebase = lakebase_peer, luasql = luasql_peer })[peer], "peer: lakebase|luasql")
local p, n, unit, t0
if workload ~= "R5" and workload ~= "R5w" and workload ~= "R5m" then
  p = make()
  p.query("select 1")
end
if workload == "R5w" then
  assert(peer == "lakebase", "R5w: lakebase only")
  p = make({ min_idle = 1, prefetch = true })
end
proxy("reset")
if workload == "R5m" then proxy("reset", os.getenv("BENCH_WS_PROXY_CTL")) end
t0 = clock.now()
if workload == "R1" then
  n, unit = 100, "ms/query"
  for i = 1, n do p.query("select $1::int as v", i) end
elseif workload == "R2" then
  n, unit = 10, "ms/statement"
  for i = 1, n do p.query("select $1::int + " .. i .. " as v", 1) end
elseif workload == "R3" then
  n, unit = 1, "ms/transaction"
  p.tx(function(q) for i = 1, 5 do q(INSERT, "rtt-" .. i) end end)
elseif workload == "R4" then
  n, unit = 1, "ms/100 inserts"
  for i = 1, 100 do p.query(INSERT, "rtt-" .. i) end
elseif workload == "R4p" then
  assert(p.pipeline, "R4p: lakebase only")
  n, unit = 1, "ms/100 inserts"
  p.pipeline(function(pl) for i = 1, 100 do pl:query(INSERT, "rtt-" .. i) end end)
elseif workload == "R5" then
  n, unit = 1, "ms/cold start"
  p = make()
  p.query("select 1")
elseif workload == "R5w" then
  n, unit = 1, "ms/first request"
  p.query("select 1")
elseif workload == "R5m" then
  n, unit = 1, "ms/cold start"
  p = make({ endpoint = os.getenv("LAKEBASE_TEST_ENDPOINT"), databricks_host = os.getenv("BENCH_WS_HOST"),
    client_id = os.getenv("LAKEBASE_TEST_CLIENT_ID"), client_secret = os.getenv("LAKEBASE_TEST_CLIENT_SECRET") })
  p.query("select 1")
else
  error("workload: R1|R2|R3|R4|R4p|R5|R5w|R5m")
end
local ms = (clock.now() - t0) * 1000 / n
local flights = proxy("stats") / n
if workload == "R5m" then flights = flights + proxy("stats", os.getenv("BENCH_WS_PROXY_CTL")) end
local label = peer .. " " .. interp .. ((workload == "R4p" and " db:pipeline")
  or (workload == "R5w" and " min_idle+prefetch") or (workload == "R5m" and " M2M (HTTP credential)") or "")
io.write(string.format('{"peer":"%s","workload":"%s","value":%.3f,"unit":"%s","flights":%.2f}\n',
  label, workload:sub(1, 2), ms, unit, flights))
