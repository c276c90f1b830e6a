--- lakebase.sql: SQL text, the one place that knows its lexical rules. The builder's placeholders
-- (`s.raw`), the migration runner's statement splitter and every quoted identifier use it.
--
--   sql.quote_ident(name)          "name" with embedded quotes doubled (checked: 1..63 bytes, no NUL)
--   sql.ident_list(names)          "a", "b"
--   sql.tokens(text)               iterator: kind, first, last (byte positions), see below
--   sql.split_placeholders(text, nargs)   text pieces and $n numbers (for s.raw)
--   sql.split_statements(text)     a script as statements with their line numbers (migrations)
--
-- Token kinds: "code" (a run of plain SQL), "string" ('...', E'...'), "ident" ("..."),
-- "dollar" ($tag$...$tag$), "comment" (-- to the end of the line, without the newline),
-- "block" (/* */, nested), "param" ($n), "semicolon", and "unterminated" (a quote, identifier,
-- dollar quote or comment that never ends: the token runs to the end of the text).
local _M = {}

local MAX_IDENT = 63 -- PostgreSQL's NAMEDATALEN - 1: longer names would be truncated silently
_M.MAX_IDENT = MAX_IDENT

--- Raises (at `level` above the caller) unless `name` can be an identifier.
function _M.check_ident(name, what, level)
  level = (level or 1) + 1
  if type(name) ~= "string" then
    error("bad " .. what .. " (string expected, got " .. type(name) .. ")", level)
  end
  if name == "" then
    error("bad " .. what .. " (empty name)", level)
  end
  if name:find("\0", 1, true) then
    error("bad " .. what .. " (name contains a NUL byte)", level)
  end
  if #name > MAX_IDENT then
    error("bad " .. what .. " '" .. name .. "' (longer than " .. MAX_IDENT .. " bytes)", level)
  end
end

--- Quote an identifier for SQL: `"name"` with embedded `"` doubled.
function _M.quote_ident(name)
  _M.check_ident(name, "identifier", 2)
  return '"' .. name:gsub('"', '""') .. '"'
end

function _M.ident_list(names)
  local out = {}
  for i, n in ipairs(names) do out[i] = _M.quote_ident(n) end
  return table.concat(out, ", ")
end

---------------------------------------------------------------- lexer

-- Bytes that continue an identifier (a `$` right after one is part of the name, not a quote).
local IDENT_BYTE = "[%w_$\128-\255]"

local function after_ident(text, at)
  return at > 1 and text:sub(at - 1, at - 1):match(IDENT_BYTE) ~= nil
end

-- The end of the token that starts at i with byte c, and its kind.
local function token_at(text, i, c, len)
  if c == "'" then
    -- E'...' takes backslash escapes; the E must not end another word (name'...' is not one).
    local escapes = i > 1 and text:sub(i - 1, i - 1):match("[eE]") and not after_ident(text, i - 1)
    local j = i + 1
    while j <= len do
      local d = text:sub(j, j)
      if escapes and d == "\\" then
        j = j + 2
      elseif d == "'" then
        if text:sub(j + 1, j + 1) ~= "'" then return j, "string" end
        j = j + 2
      else
        j = j + 1
      end
    end
    return len, "unterminated"
  elseif c == '"' then
    local j = i + 1
    while true do
      local k = text:find('"', j, true)
      if not k then return len, "unterminated" end
      if text:sub(k + 1, k + 1) ~= '"' then return k, "ident" end
      j = k + 2
    end
  elseif c == "-" and text:sub(i + 1, i + 1) == "-" then
    local k = text:find("\n", i, true)
    return k and k - 1 or len, "comment"
  elseif c == "/" and text:sub(i + 1, i + 1) == "*" then
    local depth, j = 1, i + 2
    while j <= len do
      local two = text:sub(j, j + 1)
      if two == "/*" then
        depth, j = depth + 1, j + 2
      elseif two == "*/" then
        depth, j = depth - 1, j + 2
        if depth == 0 then return j - 1, "block" end
      else
        j = j + 1
      end
    end
    return len, "unterminated"
  elseif c == "$" and not after_ident(text, i) then
    local digits = text:match("^%d+", i + 1)
    if digits then return i + #digits, "param" end
    local tag = text:match("^%$[%a_\128-\255][%w_\128-\255]*%$", i) or (text:sub(i, i + 1) == "$$" and "$$")
    if tag then
      local _, stop = text:find(tag, i + #tag, true)
      if stop then return stop, "dollar" end
      return len, "unterminated"
    end
  elseif c == ";" then
    return i, "semicolon"
  end
  local k = text:find("[-'\"/$;]", i + 1) -- plain SQL runs up to the next byte that may start a token
  return (k or len + 1) - 1, "code"
end

--- Iterates over the tokens of `text`: `for kind, first, last in sql.tokens(text) do ... end`.
function _M.tokens(text)
  local i, len = 1, #text
  return function()
    if i > len then return nil end
    local first = i
    local last, kind = token_at(text, i, text:sub(i, i), len)
    i = last + 1
    return kind, first, last
  end
end

local UNTERMINATED = {
  ["'"] = "unterminated quoted string", ['"'] = "unterminated quoted identifier",
  ["$"] = "unterminated dollar-quoted string", ["/"] = "unterminated comment",
}

--- Split SQL text at its placeholders `$1..$n` (outside quotes, dollar quotes and comments).
-- Returns a list alternating text and argument numbers, and true when the text ends inside a `--`
-- comment; or nil, err when a placeholder is out of range, an argument is never used (PostgreSQL
-- could not type it) or a quote is unterminated.
function _M.split_placeholders(text, nargs)
  local pieces, used, start, ends_in_comment = {}, {}, 1, false
  for kind, first, last in _M.tokens(text) do
    ends_in_comment = kind == "comment" and last == #text
    if kind == "unterminated" then
      return nil, UNTERMINATED[text:sub(first, first)]
    elseif kind == "param" then
      local digits = text:sub(first + 1, last)
      local k = tonumber(digits)
      if k < 1 or k > nargs then
        return nil, "placeholder $" .. digits .. " but " .. nargs .. " argument(s)"
      end
      pieces[#pieces + 1] = text:sub(start, first - 1)
      pieces[#pieces + 1] = k
      used[k] = true
      start = last + 1
    end
  end
  pieces[#pieces + 1] = text:sub(start)
  for k = 1, nargs do
    if not used[k] then return nil, "argument " .. k .. " is not used as $" .. k end
  end
  return pieces, ends_in_comment
end

---------------------------------------------------------------- statements

-- Depth of BEGIN ATOMIC ... END blocks still open in `code` (strings and comments removed).
local function atomic_depth(code)
  local depth = 0
  for word in code:lower():gmatch("%f[%w_][%w_]+") do
    if word == "atomic" then
      depth = depth + 1
    elseif word == "case" then
      if depth > 0 then depth = depth + 1 end
    elseif word == "end" then
      if depth > 0 then depth = depth - 1 end
    end
  end
  return depth
end

local function has_begin_atomic(code)
  return code:lower():find("%f[%w_]begin%s+atomic%f[^%w_]") ~= nil
end

-- What a token contributes to the code of a statement (for BEGIN ATOMIC detection).
local CODE_OF = { string = " '' ", ident = ' "" ', dollar = " $$ ", param = " $1 " }

--- Splits a SQL script into statements at semicolons outside quotes, dollar quotes, comments and
-- BEGIN ATOMIC bodies. Returns a list of `{ sql = text, line = line of its first code,
-- summary = its first code line (shortened) }`; statements with no code are dropped.
function _M.split_statements(text)
  local out = {}
  local stmt_start, first_code, code = 1, nil, {}
  local line, lines_counted_to = 1, 0

  local function line_at(pos) -- lines are counted forward only, once
    local _, n = text:sub(lines_counted_to + 1, pos - 1):gsub("\n", "")
    line, lines_counted_to = line + n, pos - 1
    return line
  end

  local function finish(stop)
    if first_code then
      local summary = text:sub(first_code, stop):match("^[^\n]*"):gsub("%s+$", "")
      if #summary > 100 then summary = summary:sub(1, 97) .. "..." end
      out[#out + 1] = { sql = (text:sub(stmt_start, stop):gsub("^%s*\n", "")), line = line_at(first_code),
        summary = summary }
    end
    first_code, code = nil, {}
  end

  for kind, first, last in _M.tokens(text) do
    if kind == "semicolon" then
      local c = table.concat(code)
      if has_begin_atomic(c) and atomic_depth(c) > 0 then
        code[#code + 1] = ";"
      else
        finish(first - 1)
        stmt_start = last + 1
      end
    elseif kind ~= "comment" and kind ~= "block" and not (kind == "unterminated" and text:sub(first, first) == "/") then
      local piece = CODE_OF[kind] or text:sub(first, last)
      local lead = piece:find("%S")
      if not first_code and lead then first_code = kind == "code" and first + lead - 1 or first end
      code[#code + 1] = piece
    end
  end
  finish(#text)
  return out
end

return _M
