--- Small JSON encoder/decoder in pure Lua for the migration tooling (drizzle journals, schema
-- snapshots, `databricks auth token -o json`). Not a general-purpose or fast JSON library.
-- Decoding: objects and arrays become tables (arrays get `array_mt`), `null` becomes `json.null`.
-- Encoding: keys sorted (stable files in git), optional indentation, arrays detected by `array_mt`
-- or by being a non-empty sequence.
local _M = {}

_M.null = setmetatable({}, { __tostring = function() return "null" end })
_M.array_mt = { __jsontype = "array" }

--- Marks a table as a JSON array (so that an empty one encodes as `[]`).
function _M.array(t)
  return setmetatable(t or {}, _M.array_mt)
end

---------------------------------------------------------------- decoding

local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function utf8_char(cp)
  if cp < 0x80 then
    return string.char(cp)
  elseif cp < 0x800 then
    return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40)
  elseif cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
    0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local decode_value

local function fail(s, pos, what)
  local line = 1
  for _ in s:sub(1, pos - 1):gmatch("\n") do line = line + 1 end
  error({ json_error = string.format("invalid JSON at line %d (byte %d): %s", line, pos, what) }, 0)
end

local function skip(s, pos)
  return s:find("[^ \t\r\n]", pos) or #s + 1
end

local function decode_string(s, pos)
  -- pos is at the opening quote
  local out, i = {}, pos + 1
  while true do
    local j = s:find('["\\%c]', i)
    if not j then fail(s, pos, "unterminated string") end
    out[#out + 1] = s:sub(i, j - 1)
    local c = s:sub(j, j)
    if c == '"' then
      return table.concat(out), j + 1
    elseif c == "\\" then
      local e = s:sub(j + 1, j + 1)
      if e == "u" then
        local hex = s:match("^%x%x%x%x", j + 2)
        if not hex then fail(s, j, "bad \\u escape") end
        local cp = tonumber(hex, 16)
        local nexti = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local lo = s:match("^\\u(%x%x%x%x)", nexti)
          lo = lo and tonumber(lo, 16)
          if lo and lo >= 0xDC00 and lo <= 0xDFFF then
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
            nexti = nexti + 6
          end
        end
        out[#out + 1] = utf8_char(cp)
        i = nexti
      elseif escapes[e] then
        out[#out + 1] = escapes[e]
        i = j + 2
      else
        fail(s, j, "bad escape")
      end
    else
      fail(s, j, "control character in string")
    end
  end
end

local function decode_number(s, pos)
  local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
  if not num or num == "" or num == "-" then fail(s, pos, "unexpected character") end
  local v = tonumber(num)
  if not v then fail(s, pos, "bad number") end
  if math.tointeger and not num:find("[.eE]") then v = math.tointeger(v) or v end
  return v, pos + #num
end

decode_value = function(s, pos, depth)
  if depth > 200 then fail(s, pos, "nesting too deep") end
  pos = skip(s, pos)
  local c = s:sub(pos, pos)
  if c == "{" then
    local obj = {}
    pos = skip(s, pos + 1)
    if s:sub(pos, pos) == "}" then return obj, pos + 1 end
    while true do
      pos = skip(s, pos)
      if s:sub(pos, pos) ~= '"' then fail(s, pos, "object key expected") end
      local key
      key, pos = decode_string(s, pos)
      pos = skip(s, pos)
      if s:sub(pos, pos) ~= ":" then fail(s, pos, "':' expected") end
      obj[key], pos = decode_value(s, pos + 1, depth + 1)
      pos = skip(s, pos)
      local d = s:sub(pos, pos)
      if d == "}" then return obj, pos + 1 end
      if d ~= "," then fail(s, pos, "',' or '}' expected") end
      pos = pos + 1
    end
  elseif c == "[" then
    local arr, n = _M.array(), 0
    pos = skip(s, pos + 1)
    if s:sub(pos, pos) == "]" then return arr, pos + 1 end
    while true do
      n = n + 1
      arr[n], pos = decode_value(s, pos, depth + 1)
      pos = skip(s, pos)
      local d = s:sub(pos, pos)
      if d == "]" then return arr, pos + 1 end
      if d ~= "," then fail(s, pos, "',' or ']' expected") end
      pos = pos + 1
    end
  elseif c == '"' then
    return decode_string(s, pos)
  elseif s:sub(pos, pos + 3) == "true" then
    return true, pos + 4
  elseif s:sub(pos, pos + 4) == "false" then
    return false, pos + 5
  elseif s:sub(pos, pos + 3) == "null" then
    return _M.null, pos + 4
  elseif c == "" then
    fail(s, pos, "unexpected end of input")
  end
  return decode_number(s, pos)
end

--- Decodes a JSON text. Returns the value, or `nil, err` for invalid input.
function _M.decode(s)
  if type(s) ~= "string" then
    error("bad argument #1 to 'json.decode' (string expected, got " .. type(s) .. ")", 2)
  end
  local ok, v, pos = pcall(decode_value, s, 1, 0)
  if not ok then
    if type(v) == "table" and v.json_error then return nil, v.json_error end
    error(v, 0)
  end
  pos = skip(s, pos)
  if pos <= #s then return nil, "invalid JSON: trailing characters at byte " .. pos end
  return v
end

---------------------------------------------------------------- encoding

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
      ["\b"] = "\\b", ["\f"] = "\\f" }
    return map[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  if getmetatable(t) == _M.array_mt then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function encode_value(v, indent, level, seen)
  local tv = type(v)
  if v == _M.null or v == nil then
    return "null"
  elseif tv == "boolean" then
    return tostring(v)
  elseif tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then error("cannot encode " .. tostring(v) .. " as JSON", 0) end
    if math.type and math.type(v) == "integer" then return tostring(v) end
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%.0f", v) end
    return string.format("%.17g", v)
  elseif tv == "string" then
    return encode_string(v)
  elseif tv == "table" then
    if seen[v] then error("cannot encode a cyclic table as JSON", 0) end
    seen[v] = true
    local nl, pad, inner = "", "", ""
    if indent then
      nl = "\n"
      pad = string.rep(indent, level)
      inner = string.rep(indent, level + 1)
    end
    local parts = {}
    local out
    if is_array(v) then
      for i = 1, #v do parts[i] = inner .. encode_value(v[i], indent, level + 1, seen) end
      out = #parts == 0 and "[]" or ("[" .. nl .. table.concat(parts, "," .. nl) .. nl .. pad .. "]")
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then
          error("cannot encode a table with non-string key " .. tostring(k) .. " as a JSON object", 0)
        end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      local sep = indent and ": " or ":"
      for i, k in ipairs(keys) do
        parts[i] = inner .. encode_string(k) .. sep .. encode_value(v[k], indent, level + 1, seen)
      end
      out = #parts == 0 and "{}" or ("{" .. nl .. table.concat(parts, "," .. nl) .. nl .. pad .. "}")
    end
    seen[v] = nil
    return out
  end
  error("cannot encode a " .. tv .. " as JSON", 0)
end

--- Encodes a value. `opts.indent` (e.g. "  ") pretty-prints. Raises on values JSON cannot hold.
function _M.encode(v, opts)
  return encode_value(v, opts and opts.indent, 0, {})
end

return _M
