--- lakebase.sha256: SHA-256 for migration checksums (drizzle-orm stores the sha256 hex of each
-- file). The digest is the C core's (src/lb_sha256.c), the one that also fingerprints settings.
local core = require("lakebase.core")

local _M = {}

--- sha256 of a string, as 64 lowercase hex digits.
function _M.hex(s)
  if type(s) ~= "string" then
    error("bad argument #1 to 'sha256.hex' (string expected, got " .. type(s) .. ")", 2)
  end
  return core.sha256_hex(s)
end

return _M
