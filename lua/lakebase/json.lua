--- lakebase.json: the one JSON codec of lakebase (the C core's; query parameters and json/jsonb
-- results use the same one).
--
--   json.encode(v [, { indent = "  ", sort_keys = false }]) -> text (raises on what JSON cannot hold)
--   json.decode(text) -> value, or nil, "invalid JSON at line L (byte B): ..."
--   json.null     the null sentinel: lakebase.null (== cjson.null == ngx.null)
--   json.array(t) marks t as an array, so an empty one encodes as [] (decode marks empty arrays)
--   json(v)       the query-parameter wrapper lakebase.json(v): send v as JSON text
--
-- Object keys are written sorted unless `sort_keys = false` (stable files and diffs).
local core = require("lakebase.core")
local value = require("lakebase.value")

local _M = {
  null = core.null,
  array_mt = core.json_array_mt,
}

function _M.array(t)
  return setmetatable(t or {}, _M.array_mt)
end

function _M.encode(v, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'encode' (table expected, got " .. type(opts) .. ")", 2)
  end
  local indent = opts and opts.indent
  if indent ~= nil and type(indent) ~= "string" then
    error("bad argument #2 to 'encode' (indent must be a string)", 2)
  end
  return core.json_encode(v, indent, not (opts and opts.sort_keys == false))
end

_M.decode = core.json_decode

return setmetatable(_M, {
  __call = function(_, v) return value.json(v) end,
})
