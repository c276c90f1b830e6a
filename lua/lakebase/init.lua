--- lakebase: Databricks Lakebase Postgres for Lua.
--
--   local lakebase = require("lakebase")
--   local db = assert(lakebase.new({ host = ..., database = ..., endpoint = ..., ... }))
--   local rows = assert(db:query("select $1::int as n", 42))
--
-- `lakebase.new` joins the process-wide pool for identical settings (every Lua state and thread
-- of the process shares it). See lakebase.db for the db and transaction objects.
local core = require("lakebase.core")
local value = require("lakebase.value")
local db = require("lakebase.db")

local _M = { _VERSION = core._VERSION }

_M.null = value.null
-- lakebase.json(v) wraps a parameter; lakebase.json.encode/decode are the JSON codec.
_M.json = require("lakebase.json")
_M.array = value.array
_M.bytea = value.bytea

--- Validated settings (secrets redacted when printed) or nil, err.
_M.config = core.config

-- lakebase.metrics.prometheus(): every pool's counters in the Prometheus text format.
_M.metrics = require("lakebase.metrics")

-- lakebase.set_logger(fn(level, event, fields)) and lakebase.set_hooks({ on_query =, on_connect = }):
-- see lakebase.log.
local log = require("lakebase.log")
_M.set_logger = log.set_logger
_M.set_hooks = log.set_hooks

--- The Lakebase credential for tools such as psql: token, expires_at (epoch seconds) or nil, err.
_M.token = core.token

-- Inside an nginx worker (OpenResty with worker threads), queries must not block the event loop.
local function in_nginx()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and ngx.run_worker_thread ~= nil and ngx.get_phase ~= nil
end

--- A db over the shared pool for these settings, or nil, err.
-- Inside nginx this is `require("lakebase.ngx").new(opts)`: the same db API, with the blocking
-- work run in the nginx thread pool; `opts.blocking = true` asks for a plain (blocking) db.
function _M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
  end
  if not (opts and opts.blocking) and in_nginx() then
    return require("lakebase.ngx").new(opts)
  end
  db.install_builder()
  return db.new(opts)
end

return _M
