--- lakebase.log: the logger and the tracing hooks.
--
--   lakebase.set_logger(fn)   fn(level, event, fields): level "debug" | "info" | "warn" | "error",
--                             event a name ("connect_ok", "slow_query", ...), fields a table of
--                             strings and numbers (never a secret, never a parameter value).
--                             nil: back to the default (silent in plain Lua; ngx.log under nginx);
--                             false: silent everywhere.
--   lakebase.set_hooks({ on_query = fn, on_connect = fn })   (nil or {} removes them)
--     on_query(sql, seconds, rows, err, pool, ended_at): every statement (each attempt; a script
--       or a pipeline once, with its first or failing statement's text); rows: the rows returned
--       or affected (nil when the server reports no count); err: nil or { kind, sqlstate }; pool:
--       { host, port, database, endpoint }, one table per pool shared by its calls (read it, do
--       not keep changes in it); ended_at: epoch seconds.
--     on_connect(fields): every connect attempt and its outcome (fields.event: connect_ok,
--       connect_retry (a transient failure: the pool keeps trying until acquire_timeout),
--       connect_failed (given up); duration_ms, attempt, tls, host, port, database, endpoint,
--       time: epoch seconds).
--
-- The C core queues what it observes (lb_log.c), background threads included, and this module
-- delivers it on the next call from Lua (db methods, the nginx bridge after each call); the
-- statement this state just ran is kept aside on its own thread instead (no lock, no copy):
-- a logger or hook never runs on a foreign thread, and under nginx it runs in the worker's main
-- Lua state, where it was set. With no logger and no hook, nothing is queued and nothing is
-- delivered: the query path pays one table-field test.
local core = require("lakebase.core")

local _M = { active = false }

local logger           -- the logger in force, or nil
local explicit = nil   -- what set_logger was given (nil: never called / reset to default)
local on_query, on_connect
local passive = false  -- a worker-thread Lua state under nginx: never delivers, never decides

local WANT_LOG, WANT_QUERY, WANT_CONNECT = 1, 2, 4

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

--- "k=v k2=v2" with keys sorted; strings with spaces, quotes or `=` are quoted.
function _M.format_fields(fields)
  local parts = {}
  for _, k in ipairs(sorted_keys(fields or {})) do
    local v = fields[k]
    if type(v) == "number" then
      v = (v == math.floor(v) and math.abs(v) < 2 ^ 53) and string.format("%d", v) or string.format("%.3f", v)
    else
      v = tostring(v)
      if v == "" or v:find("[%s\"=]") then v = string.format("%q", v):gsub("\\\n", "\\n") end
    end
    parts[#parts + 1] = k .. "=" .. v
  end
  return table.concat(parts, " ")
end

-- The default logger under nginx: ngx.log with the matching level.
local function ngx_logger()
  local ngx = rawget(_G, "ngx")
  local levels = { debug = ngx.DEBUG, info = ngx.INFO, warn = ngx.WARN, error = ngx.ERR }
  return function(level, event, fields)
    ngx.log(levels[level] or ngx.NOTICE, "lakebase: ", event, " ", _M.format_fields(fields))
  end
end

local function in_nginx()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.log) == "function" and ngx.get_phase ~= nil
end

-- Tells the core what to queue and decides whether this state delivers.
local function apply()
  if passive then return end
  if explicit == false then
    logger = nil
  elseif explicit then
    logger = explicit
  else
    logger = in_nginx() and ngx_logger() or nil
  end
  local mask = (logger and WANT_LOG or 0) + (on_query and WANT_QUERY or 0)
    + (on_connect and WANT_CONNECT or 0)
  core.observe(mask)
  _M.active = mask ~= 0
end

function _M.set_logger(fn)
  if fn ~= nil and fn ~= false and type(fn) ~= "function" then
    error("bad argument #1 to 'set_logger' (function, false or nil expected, got " .. type(fn) .. ")", 2)
  end
  explicit = fn
  apply()
end

function _M.set_hooks(hooks)
  if hooks ~= nil and type(hooks) ~= "table" then
    error("bad argument #1 to 'set_hooks' (table or nil expected, got " .. type(hooks) .. ")", 2)
  end
  hooks = hooks or {}
  for _, k in ipairs({ "on_query", "on_connect" }) do
    if hooks[k] ~= nil and type(hooks[k]) ~= "function" then
      error("bad argument #1 to 'set_hooks' (" .. k .. " must be a function)", 2)
    end
  end
  for k in pairs(hooks) do
    if k ~= "on_query" and k ~= "on_connect" then
      error("bad argument #1 to 'set_hooks' (unknown hook " .. tostring(k) .. ")", 2)
    end
  end
  on_query, on_connect = hooks.on_query, hooks.on_connect
  apply()
end

--- The nginx bridge: the default logger (ngx.log) unless the application chose one.
function _M.init_nginx()
  apply()
end

--- A worker-thread Lua state under nginx: events are delivered by the main state only.
function _M.passive()
  passive = true
  _M.active = false
end

-- A logger or hook that raises must not break the call that delivered to it.
local function safely(fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then
    io.stderr:write("lakebase: a logger or hook raised: ", tostring(err), "\n")
  end
end

--- An event of the Lua layers (migration applied, transaction rolled back by the reaper, ...).
function _M.emit(level, event, fields)
  if logger then safely(logger, level, event, fields or {}) end
end

-- Every event but the per-query ones, in order with them.
local function on_event(level, name, fields, time)
  if on_connect and name:sub(1, 8) == "connect_" then
    local info = { event = name, time = time }
    for k, v in pairs(fields) do info[k] = v end
    safely(on_connect, info)
  end
  if logger then
    safely(logger, level, name, fields)
  end
end

--- Delivers what the core queued to the hooks and the logger, oldest first. The per-query events
-- go to on_query from C with no table built (the hot path).
function _M.deliver()
  if not _M.active then return end
  local dropped = core.events(on_query, on_event)
  if dropped > 0 and logger then
    safely(logger, "warn", "events_dropped", { count = dropped })
  end
end

return _M
