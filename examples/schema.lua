--- The example schema shared by the quickstart and the OpenResty app.
local s = require("lakebase.schema")

local _M = {}

_M.items = s.table("items", {
  id         = s.serial():primary_key(),
  name       = s.text():not_null(),
  price      = s.numeric(10, 2),
  tags       = s.jsonb(),
  created_at = s.timestamptz():not_null():default_now(),
})

return _M
