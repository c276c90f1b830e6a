-- luacheck: std +ngx_lua
--- W5 handlers for bench/nginx.sh (included into examples/openresty's server block):
--   /bench/lakebase  point lookup of a pseudo-random bench_items row through lakebase.ngx (thread pool)
--   /bench/luasql    the same lookup through luasql-postgres, blocking the worker (one connection)
--   /bench/sleep     select pg_sleep(0.5) through lakebase.ngx
-- Both lookups answer the row as JSON with the same small encoder. Settings: the PG* environment.
local _M = {}

local LOOKUP = "select id, name, price, created_at, tags from bench_items where id = $1"
local N_ITEMS = 100000

local function esc(s)
  return (s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return string.format("\\u%04x", c:byte())
  end))
end

local encode
local function encode_value(v)
  local t = type(v)
  if t == "string" then return '"' .. esc(v) .. '"' end
  if t == "number" then return string.format("%.17g", v) end
  if t == "boolean" then return tostring(v) end
  if t == "table" then return encode(v) end
  return "null"
end
function encode(obj)
  local parts = {}
  for k, v in pairs(obj) do
    parts[#parts + 1] = '"' .. esc(k) .. '":' .. encode_value(v)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function reply(body)
  ngx.header["Content-Type"] = "application/json"
  ngx.print(body)
end

local function fail(status, what, err)
  ngx.log(ngx.ERR, "bench: ", what, ": ", tostring(err))
  ngx.status = status
  ngx.print('{"error":"internal error"}')
  return ngx.exit(status)
end

local db, db_err
local function lakebase_db()
  if not db and not db_err then
    db, db_err = require("lakebase.ngx").new({ application_name = "lakebase-bench" })
  end
  return db, db_err
end

function _M.init_worker()
  lakebase_db()
end

function _M.lakebase()
  local d, err = lakebase_db()
  if not d then return fail(500, "lakebase.new", err) end
  local row
  row, err = d:one(LOOKUP, math.random(1, N_ITEMS))
  if not row then return fail(500, "lookup", err or "no row") end
  reply(encode(row))
end

-- The same lookup with hooks and a logger set (bench/observe.sh): process-wide, so this route is
-- only used in an nginx of its own.
local observing = false
function _M.lakebase_obs()
  if not observing then
    observing = true
    local n = 0
    require("lakebase").set_hooks({ on_query = function() n = n + 1 end, on_connect = function() end })
    require("lakebase").set_logger(function() end)
  end
  return _M.lakebase()
end

function _M.sleep()
  local d, err = lakebase_db()
  if not d then return fail(500, "lakebase.new", err) end
  local ok
  ok, err = d:query("select pg_sleep(0.5)")
  if not ok then return fail(500, "pg_sleep", err) end
  reply('{"slept":0.5}')
end

-- luasql: one connection per worker, every call blocks the event loop (what its users get).
local conn
function _M.luasql()
  if not conn then
    local env = assert(require("luasql.postgres").postgres())
    local err
    conn, err = env:connect(os.getenv("PGDATABASE"), os.getenv("PGUSER"), os.getenv("PGPASSWORD"),
      os.getenv("PGHOST"), tonumber(os.getenv("PGPORT")))
    if not conn then return fail(500, "luasql connect", err) end
  end
  local cur, err = conn:execute(string.format(
    "select id, name, price, created_at, tags from bench_items where id = %d", math.random(1, N_ITEMS)))
  if not cur then
    conn = nil
    return fail(500, "luasql lookup", err)
  end
  local row = cur:fetch({}, "a")
  cur:close()
  if not row then return fail(500, "luasql lookup", "no row") end
  local tags = row.tags -- jsonb comes back as its text: embed it as is
  row.tags = nil
  local body = encode(row)
  reply(body:sub(1, -2) .. ',"tags":' .. tags .. "}")
end

return _M
