--- lakebase.errors: the one error object of lakebase. The C core builds its errors with the same
-- metatable (core.error_mt): `kind`, `message`, optional `sqlstate`, `detail`, `hint`,
-- `retriable` and any extra fields; `tostring(err)` reads "kind: message (SQLSTATE ...)", and
-- `"failed: " .. err` works as tostring would.
local core = require("lakebase.core")

local _M = { mt = core.error_mt }

--- A new error object: errors.new(kind, message [, fields]); `fields` (a table) becomes the
-- object itself, so extra fields (file, statement, line, holder, cause, ...) travel with it.
function _M.new(kind, message, fields)
  local e = fields or {}
  e.kind = kind
  e.message = message
  if e.retriable == nil then e.retriable = false end
  return setmetatable(e, core.error_mt)
end

--- true when x is a lakebase error object.
function _M.is(x)
  return type(x) == "table" and getmetatable(x) == core.error_mt
end

return _M
