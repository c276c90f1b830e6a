--- drizzle-kit migration folders, read the way drizzle-orm's PostgreSQL migrator reads them.
--
-- Facts this follows (drizzle-orm `migrator.js` readMigrationFiles and `pg-core/dialect.js` migrate):
-- * the folder holds `meta/_journal.json` with `entries[]` (`idx`, `when` (epoch ms), `tag`, `breakpoints`);
--   each entry's SQL is `<tag>.sql`, taken in journal order;
-- * `hash` = sha256 hex of the whole file text; the SQL is split on `--> statement-breakpoint` (always,
--   whatever `breakpoints` says) and each chunk is executed as one simple query;
-- * the record goes to `"drizzle"."__drizzle_migrations"` (`id SERIAL PRIMARY KEY, hash text NOT NULL,
--   created_at bigint`) with `created_at` = the entry's `when`.
-- drizzle-orm decides what is pending only by comparing `when` with the newest `created_at`; the
-- runner in lakebase.migrate instead compares sets and reports what drizzle would silently skip.
--
-- Errors are lakebase error objects (lakebase.errors) of kind "migration" with `file` (the
-- journal or the migration that could not be read).
local json = require("lakebase.json")
local sha256 = require("lakebase.sha256")
local errors = require("lakebase.errors")

local _M = {}

_M.BREAKPOINT = "--> statement-breakpoint"
_M.DEFAULT_SCHEMA = "drizzle"
_M.DEFAULT_TABLE = "__drizzle_migrations"

--- The whole text of a file (binary), or nil, io.open's message (lakebase.migrate and
-- lakebase.generate read their files with it too).
local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end
_M.read_file = read_file

--- s as one word for /bin/sh (single-quoted): for make_dir, lakebase.migrate's folder listing
-- without LuaFileSystem and the CLI, the places that go through the shell.
local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
_M.sh_quote = sh_quote

--- Creates dir and its parents (mkdir -p); true, or nil, a message.
function _M.make_dir(dir)
  local ok = os.execute("mkdir -p -- " .. sh_quote(dir))
  if ok == true or ok == 0 then return true end
  return nil, "cannot create the folder " .. dir
end

--- The text drizzle-orm works with: Node's `buffer.toString()` decodes UTF-8 and replaces every
-- invalid sequence with U+FFFD (WHATWG decoder, maximal subpart), and drizzle hashes and executes
-- that string. Valid UTF-8 comes back unchanged.
function _M.node_string(bytes)
  local out, n = {}, #bytes
  local run_start = 1 -- start of the pending run of valid bytes
  local i = 1
  local REPL = "\239\191\189"
  while i <= n do
    local b = bytes:byte(i)
    if b < 0x80 then
      i = i + 1
    else
      local need, lower, upper = 0, 0x80, 0xBF
      if b >= 0xC2 and b <= 0xDF then need = 1
      elseif b >= 0xE0 and b <= 0xEF then
        need = 2
        if b == 0xE0 then lower = 0xA0 elseif b == 0xED then upper = 0x9F end
      elseif b >= 0xF0 and b <= 0xF4 then
        need = 3
        if b == 0xF0 then lower = 0x90 elseif b == 0xF4 then upper = 0x8F end
      end
      local j, ok = i + 1, need > 0
      for k = 1, need do
        local c = bytes:byte(j)
        if not c or c < lower or c > upper then ok = false break end
        lower, upper = 0x80, 0xBF
        j = j + 1
        if k == need then break end
      end
      if ok then
        i = j
      else
        -- invalid: the lead byte and the continuation bytes that were acceptable so far become one U+FFFD
        out[#out + 1] = bytes:sub(run_start, i - 1)
        out[#out + 1] = REPL
        i = (need > 0) and j or (i + 1)
        run_start = i
      end
    end
  end
  if run_start == 1 then return bytes end
  out[#out + 1] = bytes:sub(run_start)
  return table.concat(out)
end

--- True when `dir` is a drizzle-kit folder (has meta/_journal.json).
function _M.is_folder(dir)
  local f = io.open(dir .. "/meta/_journal.json", "rb")
  if f then f:close() return true end
  return false
end

--- Splits a migration's text into the chunks drizzle executes (empty chunks kept out).
function _M.split(text)
  local chunks = {}
  local pos, line = 1, 1
  while true do
    local s, e = text:find(_M.BREAKPOINT, pos, true)
    local chunk = text:sub(pos, (s or #text + 1) - 1)
    if chunk:find("%S") then
      -- line of the chunk's first non-blank character, for error messages
      local lead = chunk:match("^%s*")
      local _, nl = lead:gsub("\n", "")
      chunks[#chunks + 1] = { sql = chunk, line = line + nl }
    end
    local _, n = chunk:gsub("\n", "")
    line = line + n
    if not s then break end
    pos = e + 1
  end
  return chunks
end

-- nil, a migration error about `file`: fail(file, fmt, ...).
local function fail(file, fmt, ...)
  return nil, errors.new("migration", string.format(fmt, ...), { file = file })
end

--- Reads a drizzle-kit folder. Returns a list of migrations in journal order:
-- `{ idx, tag, when, file, path, text, hash, chunks }`, or `nil, err`.
function _M.read(dir)
  local jpath = dir .. "/meta/_journal.json"
  local text, err = read_file(jpath)
  if not text then return fail(jpath, "cannot read drizzle journal: %s", tostring(err)) end
  local journal, jerr = json.decode(text)
  if not journal then return fail(jpath, "%s: %s", jpath, tostring(jerr)) end
  if type(journal) ~= "table" or type(journal.entries) ~= "table" then
    return fail(jpath, "%s: no \"entries\" array", jpath)
  end
  if journal.dialect ~= nil and journal.dialect ~= "postgresql" and journal.dialect ~= "pg" then
    return fail(jpath, "%s: dialect is %s, expected postgresql", jpath, tostring(journal.dialect))
  end
  local out, seen_when, seen_tag = {}, {}, {}
  for i, entry in ipairs(journal.entries) do
    local tag, when = entry.tag, entry.when
    if type(tag) ~= "string" or tag == "" or tag:find("[/\\]") or tag:find("^%.") then
      return fail(jpath, "%s: entry %d has no valid \"tag\"", jpath, i)
    end
    if type(when) ~= "number" or when ~= math.floor(when) then
      return fail(jpath, "%s: entry %d (%s) has no integer \"when\"", jpath, i, tag)
    end
    if seen_tag[tag] then return fail(jpath, "%s: tag %s appears twice", jpath, tag) end
    if seen_when[when] then
      return fail(jpath, "%s: %s and %s have the same \"when\" (%.0f); drizzle-orm identifies migrations by it",
        jpath, seen_when[when], tag, when)
    end
    seen_tag[tag], seen_when[when] = true, tag
    local path = dir .. "/" .. tag .. ".sql"
    local sql, ferr = read_file(path)
    if not sql then
      return fail(path, "journal entry %s: cannot read %s (%s)", tag, path, tostring(ferr))
    end
    sql = _M.node_string(sql)
    out[#out + 1] = {
      idx = entry.idx, tag = tag, when = when, file = tag .. ".sql", path = path,
      text = sql, hash = sha256.hex(sql), chunks = _M.split(sql),
    }
  end
  return out
end

--- created_at as drizzle writes it (an integer in decimal, no exponent).
function _M.when_string(when)
  return string.format("%.0f", when)
end

return _M
