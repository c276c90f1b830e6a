--- SHA-256 in pure Lua, for migration checksums (drizzle-orm stores the sha256 hex of each file).
-- Two bodies share the padding code: Lua 5.3+ uses the native integer operators, LuaJIT/5.1 uses the
-- `bit` library. The 5.3+ body is compiled from a string with load(), so LuaJIT never parses `>>`.
local _M = {}

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
local H0 = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }

-- Message padding: 0x80, zeros, then the bit length as a 64-bit big-endian integer.
local function pad(msg)
  local len = #msg
  local bits = len * 8
  local zeros = (55 - len) % 64
  local tail = {}
  for i = 8, 1, -1 do
    tail[i] = string.char(bits % 256)
    bits = math.floor(bits / 256)
  end
  return msg .. "\128" .. string.rep("\0", zeros) .. table.concat(tail)
end

-- Body for Lua 5.3+: 64-bit integers, masked to 32 bits.
local native_src = [[
local K, H0, pad = ...
return function(msg)
  msg = pad(msg)
  local h = { table.unpack(H0) }
  local w = {}
  local M = 0xffffffff
  for chunk = 1, #msg, 64 do
    for i = 0, 15 do
      local a, b, c, d = msg:byte(chunk + i * 4, chunk + i * 4 + 3)
      w[i] = (a << 24) | (b << 16) | (c << 8) | d
    end
    for i = 16, 63 do
      local x, y = w[i - 15], w[i - 2]
      local s0 = ((x >> 7) | (x << 25)) ~ ((x >> 18) | (x << 14)) ~ (x >> 3)
      local s1 = ((y >> 17) | (y << 15)) ~ ((y >> 19) | (y << 13)) ~ (y >> 10)
      w[i] = (w[i - 16] + (s0 & M) + w[i - 7] + (s1 & M)) & M
    end
    local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
    for i = 0, 63 do
      local S1 = (((e >> 6) | (e << 26)) ~ ((e >> 11) | (e << 21)) ~ ((e >> 25) | (e << 7))) & M
      local ch = (e & f) ~ (~e & g)
      local t1 = (hh + S1 + (ch & M) + K[i + 1] + w[i]) & M
      local S0 = (((a >> 2) | (a << 30)) ~ ((a >> 13) | (a << 19)) ~ ((a >> 22) | (a << 10))) & M
      local maj = (a & b) ~ (a & c) ~ (b & c)
      local t2 = (S0 + maj) & M
      hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & M, c, b, a, (t1 + t2) & M
    end
    h[1] = (h[1] + a) & M; h[2] = (h[2] + b) & M; h[3] = (h[3] + c) & M; h[4] = (h[4] + d) & M
    h[5] = (h[5] + e) & M; h[6] = (h[6] + f) & M; h[7] = (h[7] + g) & M; h[8] = (h[8] + hh) & M
  end
  return string.format("%08x%08x%08x%08x%08x%08x%08x%08x", table.unpack(h))
end
]]

-- Body for LuaJIT / 5.1 with the `bit` library (signed 32-bit results, normalised by tobit).
local function bit_impl(bit)
  local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
  local rshift, lshift, ror, tobit, tohex = bit.rshift, bit.lshift, bit.ror, bit.tobit, bit.tohex
  local k = {}
  for i = 1, 64 do k[i] = tobit(K[i]) end
  return function(msg)
    msg = pad(msg)
    local h = {}
    for i = 1, 8 do h[i] = tobit(H0[i]) end
    local w = {}
    for chunk = 1, #msg, 64 do
      for i = 0, 15 do
        local a, b, c, d = msg:byte(chunk + i * 4, chunk + i * 4 + 3)
        w[i] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
      end
      for i = 16, 63 do
        local x, y = w[i - 15], w[i - 2]
        local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
        local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
        w[i] = tobit(w[i - 16] + s0 + w[i - 7] + s1)
      end
      local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
      for i = 0, 63 do
        local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
        local ch = bxor(band(e, f), band(bnot(e), g))
        local t1 = tobit(hh + S1 + ch + k[i + 1] + w[i])
        local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
        local maj = bxor(band(a, b), band(a, c), band(b, c))
        local t2 = tobit(S0 + maj)
        hh, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
      end
      h[1] = tobit(h[1] + a); h[2] = tobit(h[2] + b); h[3] = tobit(h[3] + c); h[4] = tobit(h[4] + d)
      h[5] = tobit(h[5] + e); h[6] = tobit(h[6] + f); h[7] = tobit(h[7] + g); h[8] = tobit(h[8] + hh)
    end
    local out = {}
    for i = 1, 8 do out[i] = tohex(h[i], 8) end
    return table.concat(out)
  end
end

local hex
if math.type and math.type(1) == "integer" then
  hex = assert(load(native_src, "=lakebase.sha256"))(K, H0, pad)
else
  local ok, bit = pcall(require, "bit")
  if not ok then bit = require("bit32") end
  if not bit.ror then bit.ror = bit.rrotate end
  if not bit.tohex then
    bit.tohex = function(x) return string.format("%08x", x % 4294967296) end
  end
  if not bit.tobit then
    bit.tobit = function(x) return x % 4294967296 end
  end
  hex = bit_impl(bit)
end

--- sha256 of a string, as 64 lowercase hex digits.
function _M.hex(s)
  if type(s) ~= "string" then
    error("bad argument #1 to 'sha256.hex' (string expected, got " .. type(s) .. ")", 2)
  end
  return hex(s)
end

return _M
