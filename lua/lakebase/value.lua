--- Parameter values that need more than a plain Lua value: NULL, JSON, arrays, bytea.
-- Wrappers are plain tables (`{ __lakebase = kind, value = v }`) so they survive being copied
-- between Lua states (ngx.run_worker_thread drops metatables); the metatable only serves tostring.
local core = require("lakebase.core")

local _M = {}

--- The SQL NULL sentinel: a light userdata NULL, equal to cjson.null and ngx.null.
_M.null = core.null

local wrapper_mt = {
  __tostring = function(w)
    if w.__lakebase == "bytea" then
      return "lakebase.bytea(" .. #w.value .. " bytes)"
    end
    return "lakebase." .. w.__lakebase .. "(...)"
  end,
}

local function wrap(kind, v)
  return setmetatable({ __lakebase = kind, value = v }, wrapper_mt)
end

--- Send `v` (any JSON-encodable Lua value) as JSON text.
function _M.json(v)
  return wrap("json", v)
end

local array_of = { bytea = true, json = true, jsonb = true }

--- Send a Lua sequence as a one-dimension PostgreSQL array. `of` names the element type when
-- the elements need it: "bytea" (strings are bytes), "json" or "jsonb" (tables are JSON values;
-- they are sent as JSON text in any array).
function _M.array(t, of)
  if type(t) ~= "table" then
    error("bad argument #1 to 'array' (table expected, got " .. type(t) .. ")", 2)
  end
  if of ~= nil and not array_of[of] then
    error("bad argument #2 to 'array' (\"bytea\", \"json\" or \"jsonb\" expected, got " .. tostring(of) .. ")", 2)
  end
  local w = wrap("array", t)
  w.of = of
  return w
end

--- Send a Lua string as binary bytea (NUL bytes allowed).
function _M.bytea(s)
  if type(s) ~= "string" then
    error("bad argument #1 to 'bytea' (string expected, got " .. type(s) .. ")", 2)
  end
  return wrap("bytea", s)
end

--- The wrapper kind of `x` ("json", "array", "bytea") or nil for anything else.
function _M.kind(x)
  if type(x) == "table" then
    local k = x.__lakebase
    if k == "json" or k == "array" or k == "bytea" then
      return k
    end
  end
  return nil
end

return _M
