--- The bench workloads for the Lua peers: lakebase and luasql-postgres.
-- usage: <lua> bench/lua_peers.lua lakebase|luasql W1|W2|W3|W4
-- Connection from the PG* environment (both peers, plain TCP on loopback). Prints one JSON line.
local clock = require("benchclock")
local peer, workload = arg[1], arg[2]

local N_ROUNDTRIP, N_LOOKUP, W3_ROUNDS, N_INSERT = 20000, 20000, 5, 10000
local LOOKUP_SQL = "select id, name, price, created_at, tags from bench_items where id = $1"

-- Each peer offers the same three calls: scalar(i), lookup(id) -> row, rows(sql) -> array, insert(name, price).
local function lakebase_peer()
  local lakebase = require("lakebase")
  if os.getenv("BENCH_OBS") == "1" then -- bench/observe.sh: hooks and a logger on (metrics always are)
    local n = 0
    lakebase.set_hooks({ on_query = function() n = n + 1 end, on_connect = function() end })
    lakebase.set_logger(function() end)
  end
  local db = assert(lakebase.new({ sslmode = "disable", max = 1 }))
  return {
    scalar = function(i) return db:query("select $1::int as v", i)[1].v end,
    lookup = function(id) return db:query(LOOKUP_SQL, id)[1] end,
    rows = function(sql) return assert(db:query(sql)) end,
    exec = function(sql) return assert(db:query(sql)) end,
    insert = function(name, price)
      return assert(db:query("insert into bench_inserts (name, price) values ($1, $2)", name, price))
    end,
  }
end

-- luasql has no parameters: values are formatted into the SQL text (escaped), as its users do.
local function luasql_peer()
  local driver = require("luasql.postgres")
  local env = assert(driver.postgres())
  local conn = assert(env:connect(os.getenv("PGDATABASE"), os.getenv("PGUSER"), os.getenv("PGPASSWORD"),
    os.getenv("PGHOST"), tonumber(os.getenv("PGPORT"))))
  local function all(sql)
    local cur = assert(conn:execute(sql))
    local out, row = {}, cur:fetch({}, "a")
    while row do
      out[#out + 1] = row
      row = cur:fetch({}, "a")
    end
    cur:close()
    return out
  end
  return {
    scalar = function(i) return all(string.format("select %d::int as v", i))[1].v end,
    lookup = function(id) return all(string.format(
      "select id, name, price, created_at, tags from bench_items where id = %d", id))[1] end,
    rows = all,
    exec = function(sql) return assert(conn:execute(sql)) end,
    insert = function(name, price)
      return assert(conn:execute(string.format("insert into bench_inserts (name, price) values ('%s', %s)",
        conn:escape(name), price)))
    end,
  }
end

local p = assert(({ lakebase = lakebase_peer, luasql = luasql_peer })[peer], "peer: lakebase|luasql")()
local value, unit, t0
if workload == "W1" then
  p.scalar(0)
  t0 = clock.now()
  for i = 1, N_ROUNDTRIP do p.scalar(i) end
  value, unit = (clock.now() - t0) / N_ROUNDTRIP * 1e6, "us/query"
elseif workload == "W2" then
  local seed = 12345
  p.lookup(1)
  t0 = clock.now()
  for _ = 1, N_LOOKUP do
    seed = (seed * 1103515245 + 12345) % 4294967296
    local row = p.lookup(1 + math.floor(seed / 256) % 100000)
    assert(row.id)
  end
  value, unit = (clock.now() - t0) / N_LOOKUP * 1e6, "us/lookup"
elseif workload == "W3" then
  local n = 0
  t0 = clock.now()
  for _ = 1, W3_ROUNDS do
    local rows = p.rows("select * from bench_items limit 50000")
    n = n + #rows
    rows = nil -- luacheck: ignore
  end
  value, unit = n / (clock.now() - t0), "rows/s"
elseif workload == "W4" then
  p.exec("truncate bench_inserts")
  t0 = clock.now()
  for i = 1, N_INSERT do p.insert("item-" .. i, string.format("%d.%02d", i % 1000, i % 100)) end
  value, unit = N_INSERT / (clock.now() - t0), "inserts/s"
else
  error("workload: W1|W2|W3|W4")
end
local interp = jit and "LuaJIT" or _VERSION:gsub("Lua ", "Lua ")
io.write(string.format('{"peer":"%s %s","workload":"%s","value":%.3f,"unit":"%s","peak_rss_kb":%d}\n',
  peer, interp, workload, value, unit, clock.peak_rss_kb()))
