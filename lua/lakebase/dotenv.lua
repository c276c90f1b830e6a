--- .env files for the lakebase CLI (the library itself reads only the process environment).
--
-- Format: `KEY=value` lines; blank lines and `#` comments are ignored; an optional `export ` prefix;
-- values unquoted (trimmed, a ` #` starts a comment), in single quotes (literal) or in double quotes
-- (escapes `\n \r \t \" \\ \$`, may span lines). Keys are `[A-Za-z_][A-Za-z0-9_]*`.
--
-- Precedence (decided here, as Node's dotenv does): a value in the file never overrides a variable
-- that is already set in the real environment, even to an empty string. Between several files, the
-- first one that sets a key to a non-empty value wins. Lua cannot change its own environment, so the
-- result is an overlay table the CLI passes on (as lakebase options, or into a child's environment).
--
-- Errors are lakebase error objects (lakebase.errors) of kind "config" with `file` and, for a bad
-- line, `line` and `key`; they name the file and line, never the value (it may be a secret).
local errors = require("lakebase.errors")

local _M = {}

-- nil, a config error at `file:line` (`key` when known).
local function bad_line(file, line, key, what)
  local msg = string.format("%s:%d: %s%s", file, line, key and (key .. ": ") or "", what)
  return nil, errors.new("config", msg, { file = file, line = line, key = key })
end

local dq_escapes = { n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["$"] = "$" }

--- Parses .env text. Returns `vars, order` (a map and the keys in file order) or `nil, err`.
-- `name` is used in error messages (default ".env").
function _M.parse(text, name)
  if type(text) ~= "string" then
    error("bad argument #1 to 'dotenv.parse' (string expected, got " .. type(text) .. ")", 2)
  end
  name = name or ".env"
  text = text:gsub("^\239\187\191", ""):gsub("\r\n", "\n")
  local vars, order = {}, {}
  local pos, line = 1, 1
  local len = #text
  while pos <= len do
    local eol = text:find("\n", pos, true) or len + 1
    local raw = text:sub(pos, eol - 1)
    local start_line = line
    local body = raw:match("^%s*(.-)%s*$")
    if body == "" or body:sub(1, 1) == "#" then
      pos, line = eol + 1, line + 1
    else
      local rest = body:match("^export%s+(.*)$") or body
      local key, after = rest:match("^([%a_][%w_]*)%s*=%s*(.*)$")
      if not key then
        return bad_line(name, start_line, nil, "expected KEY=value")
      end
      local value
      local q = after:sub(1, 1)
      if q == "'" then
        -- Single quotes: literal up to the next quote, on this line.
        local close = after:find("'", 2, true)
        if not close then
          return bad_line(name, start_line, key, "missing closing single quote")
        end
        value = after:sub(2, close - 1)
        local tail = after:sub(close + 1)
        if not (tail:match("^%s*$") or tail:match("^%s+#")) then
          return bad_line(name, start_line, key, "unexpected text after the closing quote")
        end
        pos, line = eol + 1, line + 1
      elseif q == '"' then
        -- Double quotes: escapes, and the value may continue on the following lines.
        local out = {}
        local i = pos + (raw:find('"', 1, true) or 1) -- index just after the opening quote in text
        local closed = false
        while i <= len do
          local c = text:sub(i, i)
          if c == "\\" and i < len then
            local e = text:sub(i + 1, i + 1)
            out[#out + 1] = dq_escapes[e] or ("\\" .. e)
            if e == "\n" then line = line + 1 end
            i = i + 2
          elseif c == '"' then
            closed = true
            i = i + 1
            break
          else
            if c == "\n" then line = line + 1 end
            out[#out + 1] = c
            i = i + 1
          end
        end
        if not closed then
          return bad_line(name, start_line, key, "missing closing double quote")
        end
        value = table.concat(out)
        eol = text:find("\n", i, true) or len + 1
        local tail = text:sub(i, eol - 1)
        if not (tail:match("^%s*$") or tail:match("^%s+#")) then
          return bad_line(name, start_line, key, "unexpected text after the closing quote")
        end
        pos, line = eol + 1, line + 1
      else
        -- Unquoted: a '#' preceded by whitespace starts a comment.
        value = after:gsub("%s+#.*$", ""):match("^(.-)%s*$")
        if value:sub(1, 1) == "#" then value = "" end
        pos, line = eol + 1, line + 1
      end
      if vars[key] == nil then order[#order + 1] = key end
      vars[key] = value
    end
  end
  return vars, order
end

--- Reads and parses a file. Returns `vars, order` or `nil, err` (a missing file is an error here).
function _M.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, errors.new("config", "cannot read env file " .. tostring(err), { file = path }) end
  local text = f:read("*a")
  f:close()
  return _M.parse(text, path)
end

--- Builds the overlay from several files: keys set in the real environment (`getenv`, default
-- os.getenv) are left out; among the files the first that sets a key to a non-empty value wins.
-- Returns `overlay, loaded_paths, keys` (keys[i]: the keys of loaded_paths[i], in file order) or
-- `nil, err`. Paths with `optional = true` entries may be missing:
-- `files` is a list of `{ path = ..., optional = bool }` or plain path strings (required).
function _M.overlay(files, getenv)
  getenv = getenv or os.getenv
  local overlay, loaded, keys = {}, {}, {}
  for _, entry in ipairs(files) do
    local path, optional = entry, false
    if type(entry) == "table" then path, optional = entry.path, entry.optional end
    local f = io.open(path, "rb")
    if f then
      f:close()
      local vars, order = _M.read(path)
      if not vars then return nil, order end
      for _, k in ipairs(order) do
        -- An empty value counts as unset (as in the settings): a placeholder such as
        -- `DATABRICKS_TOKEN=` in .env.local must not hide the real token in .env.
        if (overlay[k] == nil or overlay[k] == "") and getenv(k) == nil then overlay[k] = vars[k] end
      end
      loaded[#loaded + 1] = path
      keys[#loaded] = order
    elseif not optional then
      return nil, errors.new("config", "env file not found: " .. path, { file = path })
    end
  end
  return overlay, loaded, keys
end

-- Optimal string alignment distance (a swap of two neighbours counts as one edit: PGHOTS).
local function distance(a, b)
  local prev2, prev = {}, {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local d = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        d = math.min(d, prev2[j - 2] + 1)
      end
      cur[j] = d
    end
    prev2, prev = prev, cur
  end
  return prev[#b]
end

--- The known name nearest to `name` (case-insensitive, at most 2 edits), or nil.
function _M.suggest(name, known)
  local best, best_d
  local upper = name:upper()
  for _, k in ipairs(known) do
    local d = distance(upper, k:upper())
    if d <= 2 and d < #k / 2 and (not best_d or d < best_d) then best, best_d = k, d end
  end
  return best
end

--- Warnings for keys that look like settings but are not among `known`: a key near a known name
-- (a typo such as PGHOTS), or one with a prefix of `prefixes` (PG, DATABRICKS_, ...). Other keys
-- are the application's own and pass silently. Returns a list of messages.
function _M.unknown_keys(path, order, known, prefixes)
  local is_known, out = {}, {}
  for _, k in ipairs(known) do is_known[k] = true end
  for _, key in ipairs(order) do
    if not is_known[key] then
      local near = _M.suggest(key, known)
      local ours = false
      for _, p in ipairs(prefixes or {}) do
        if key:sub(1, #p) == p then ours = true end
      end
      if near then
        out[#out + 1] = string.format("%s: %s is not a setting lakebase reads (ignored); did you mean %s?",
          path, key, near)
      elseif ours then
        out[#out + 1] = string.format("%s: %s is not a setting lakebase reads (ignored)", path, key)
      end
    end
  end
  return out
end

return _M
