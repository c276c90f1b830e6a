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
local json = require("lakebase.json")
local sha256 = require("lakebase.sha256")

local _M = {}

_M.BREAKPOINT = "--> statement-breakpoint"
_M.DEFAULT_SCHEMA = "drizzle"
_M.DEFAULT_TABLE = "__drizzle_migrations"

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
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

--- Reads a drizzle-kit folder. Returns a list of migrations in journal order:
-- `{ idx, tag, when, file, path, text, hash, chunks }`, or `nil, err`.
function _M.read(dir)
  local jpath = dir .. "/meta/_journal.json"
  local text, err = read_file(jpath)
  if not text then return nil, "cannot read drizzle journal: " .. tostring(err) end
  local journal, jerr = json.decode(text)
  if not journal then return nil, jpath .. ": " .. jerr end
  if type(journal) ~= "table" or type(journal.entries) ~= "table" then
    return nil, jpath .. ": no \"entries\" array"
  end
  if journal.dialect ~= nil and journal.dialect ~= "postgresql" and journal.dialect ~= "pg" then
    return nil, jpath .. ": dialect is " .. tostring(journal.dialect) .. ", expected postgresql"
  end
  local out, seen_when, seen_tag = {}, {}, {}
  for i, entry in ipairs(journal.entries) do
    local tag, when = entry.tag, entry.when
    if type(tag) ~= "string" or tag == "" or tag:find("[/\\]") or tag:find("^%.") then
      return nil, string.format("%s: entry %d has no valid \"tag\"", jpath, i)
    end
    if type(when) ~= "number" or when ~= math.floor(when) then
      return nil, string.format("%s: entry %d (%s) has no integer \"when\"", jpath, i, tag)
    end
    if seen_tag[tag] then return nil, string.format("%s: tag %s appears twice", jpath, tag) end
    if seen_when[when] then
      return nil, string.format("%s: %s and %s have the same \"when\" (%s); drizzle-orm identifies migrations by it",
        jpath, seen_when[when], tag, string.format("%.0f", when))
    end
    seen_tag[tag], seen_when[when] = true, tag
    local path = dir .. "/" .. tag .. ".sql"
    local sql, ferr = read_file(path)
    if not sql then
      return nil, string.format("journal entry %s: cannot read %s (%s)", tag, path, tostring(ferr))
    end
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
