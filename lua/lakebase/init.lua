--- lakebase: Databricks Lakebase Postgres for Lua (placeholder until the pool lands).
local core = require("lakebase.core")
local value = require("lakebase.value")

local _M = { _VERSION = core._VERSION }

_M.null = value.null
_M.json = value.json
_M.array = value.array
_M.bytea = value.bytea

return _M
