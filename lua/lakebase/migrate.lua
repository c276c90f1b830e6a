--- Migration runner: plain folders (`NNNN_name.sql` / `NNNN_name.lua`) and drizzle-kit folders.
--
--   local migrate = require("lakebase.migrate")
--   local result, err = migrate.up(db, { dir = "migrations" })
--   local st = migrate.status(db, { dir = "migrations" })
--
-- Plain folders are tracked in `public.lakebase_migrations` (version, name, checksum = sha256 hex of
-- the file, applied_at, duration_ms). drizzle-kit folders (with `meta/_journal.json`) are tracked in
-- `drizzle.__drizzle_migrations` exactly as drizzle-orm records them (see lakebase.drizzle), so a Node
-- service running drizzle-orm's migrate() and a Lua service share one folder and one database.
--
-- How a run works:
-- * A connection pinned for the whole run holds the advisory lock `lock_key(<tracking table>)`
--   (session level, outside any transaction); a second runner polls for it without holding a
--   snapshot (see acquire_lock) for up to `lock_timeout` seconds, and when it gets the lock it
--   re-reads the tracking table and finds nothing left to do. The lock goes away with the
--   connection (a killed runner cannot leave it behind). The migrations run on other pool
--   connections, so the pool needs at least 2 connections (the default is 10).
-- * Each migration runs in its own transaction (drizzle-orm uses one for all; per migration means a
--   failure keeps the ones before it) and its record is written in that same transaction. A failing
--   migration is rolled back and nothing is recorded; the error names the file, the statement and its
--   line. SQL files are split into statements here (quotes, dollar quoting, comments and BEGIN ATOMIC
--   bodies respected; psql backslash commands are not SQL and are not supported) and sent in batches
--   of up to 200 statements under a savepoint; a failing batch is re-run statement by statement to
--   find the one to blame. A `.sql` file whose first line is `-- lakebase:no-transaction` runs statement by statement
--   outside a transaction (for CREATE INDEX CONCURRENTLY and the like); it is recorded only when every
--   statement succeeded.
-- * What is pending is decided by set difference. A changed applied file is refused (its checksum or
--   drizzle hash differs); a file whose number was recorded for another migration (name and checksum
--   differ) never ran and is refused naming both. A pending migration older than one already applied
--   (a merged branch) is refused unless `allow_out_of_order` (drizzle-orm would skip it silently).
local sha256 = require("lakebase.sha256")
local drizzle = require("lakebase.drizzle")
local sqltext = require("lakebase.sql")
local errors = require("lakebase.errors")
local log = require("lakebase.log")
local quote_ident = sqltext.quote_ident

local _M = {}

local load_string = loadstring or load -- PUC Lua 5.1's load takes only a function

_M.NO_TRANSACTION = "-- lakebase:no-transaction"
_M.DEFAULT_SCHEMA = "public"
_M.DEFAULT_TABLE = "lakebase_migrations"

---------------------------------------------------------------- errors

-- Migration errors are lakebase error objects (lakebase.errors) of kind "migration" unless
-- the fields name another, carrying file, statement, line, cause... as fields.
local OWN_KINDS = { migration = true, lock_timeout = true }

local function mkerr(fields)
  return errors.new(fields.kind or "migration", fields.message, fields)
end

-- An error this module made (it already names the file, statement or lock), not one to wrap.
local function own_error(e)
  return errors.is(e) and OWN_KINDS[e.kind] == true
end

local function cause_text(e)
  if type(e) == "table" then
    local msg = e.message and tostring(e.message) or tostring(e)
    if e.sqlstate and not msg:find(e.sqlstate, 1, true) then msg = msg .. " (SQLSTATE " .. e.sqlstate .. ")" end
    if e.detail and e.detail ~= "" then msg = msg .. "; detail: " .. tostring(e.detail) end
    if e.hint and e.hint ~= "" then msg = msg .. "; hint: " .. tostring(e.hint) end
    return msg
  end
  return tostring(e)
end

---------------------------------------------------------------- small helpers

local read_file = drizzle.read_file

local sh_quote = drizzle.sh_quote

local function folder_missing(dir)
  return nil, mkerr({ message = "migrations folder not found: " .. dir })
end

--- Names in a directory (lfs when installed, else `ls`), or nil, err.
local function list_dir(dir)
  local ok, lfs = pcall(require, "lfs")
  local names = {}
  if ok then
    local attr = lfs.attributes(dir)
    if not attr or attr.mode ~= "directory" then return folder_missing(dir) end
    for name in lfs.dir(dir) do
      if name ~= "." and name ~= ".." then names[#names + 1] = name end
    end
  else
    local p = io.popen("ls -1A -- " .. sh_quote(dir) .. " 2>/dev/null && echo '//ok'")
    local out = p:read("*a")
    p:close()
    if not out:find("//ok\n?$") then return folder_missing(dir) end
    for name in out:gmatch("[^\n]+") do
      if name ~= "//ok" then names[#names + 1] = name end
    end
  end
  table.sort(names)
  return names
end

local function truthy(v)
  return v == true or v == "t" or v == "true" or v == 1
end

-- db calls that may raise or return nil, err: normalised to value | nil, err
local function call(obj, method, ...)
  local fn = obj[method]
  if type(fn) ~= "function" then return nil, "the db object has no method " .. method end
  local ok, r, e = pcall(fn, obj, ...)
  if not ok then return nil, r end
  if r == nil and e ~= nil then return nil, e end
  return r == nil and true or r
end

-- Milliseconds on the server's clock (plain Lua has no sub-second wall clock); 0 if unavailable.
local function server_ms(conn)
  local rows = call(conn, "query", "select (extract(epoch from clock_timestamp()) * 1000)::bigint::text as ms")
  return type(rows) == "table" and rows[1] and tonumber(rows[1].ms) or 0
end

-- Runs fn(tx) in db:transaction; fn signals failure by returning nil, err (we raise to roll back).
local abort_mt = {}
local function in_transaction(db, fn)
  local failure
  local ok, r, e = pcall(db.transaction, db, function(tx)
    local res, err = fn(tx)
    if res == nil then
      failure = err
      error(setmetatable({ err = err }, abort_mt), 0)
    end
    return res
  end)
  if failure ~= nil then return nil, failure end
  if not ok then
    if type(r) == "table" and getmetatable(r) == abort_mt then return nil, r.err end
    return nil, r
  end
  if r == nil and e ~= nil then return nil, e end
  return r == nil and true or r
end

--- Splits a SQL script into statements (lakebase.sql.split_statements).
_M.split_statements = sqltext.split_statements

---------------------------------------------------------------- reading folders

--- Reads a plain folder: `NNNN_name.sql` / `NNNN_name.lua`, ordered by the number.
-- Returns a list of `{ version, name, file, path, kind = "sql"|"lua", text, checksum, no_transaction }`.
function _M.read_plain(dir)
  local names, err = list_dir(dir)
  if not names then return nil, err end
  local list, by_version = {}, {}
  list.skipped = {}
  for _, fname in ipairs(names) do
    local num, name, ext = fname:match("^(%d+)_(.+)%.(%a+)$")
    -- Any .sql file, and a .lua file with a leading number (other Lua files may be helpers).
    local looks_like = fname:match("%.[sS][qQ][lL]$") or fname:match("^%d.*%.[lL][uU][aA]$")
    if looks_like and not (num and (ext == "sql" or ext == "lua")) then
      -- A typo in the name would otherwise skip the migration without a word.
      local lead, tail = fname:match("^(%d+)[^%w_]+(.+)$")
      local suggestion = lead and (" (e.g. " .. lead .. "_" .. tail:gsub("%.(%a+)$", function(e)
        return "." .. e:lower() end) .. ")") or ""
      list.skipped[#list.skipped + 1] = {
        file = fname,
        message = string.format("%s/%s is not run: a migration is named NNNN_name.sql or NNNN_name.lua; "
          .. "rename it%s", dir, fname, suggestion),
      }
    elseif num and (ext == "sql" or ext == "lua") then
      local version = tonumber(num)
      if by_version[version] then
        return nil, mkerr({ message = string.format("two migrations have version %d: %s and %s", version,
          by_version[version], fname), file = fname })
      end
      by_version[version] = fname
      local path = dir .. "/" .. fname
      local text, rerr = read_file(path)
      if not text then
        return nil, mkerr({ message = "cannot read " .. path .. ": " .. tostring(rerr), file = fname })
      end
      local first = text:gsub("^\239\187\191", ""):match("^%s*([^\n]*)") or ""
      list[#list + 1] = {
        version = version, name = name, file = fname, path = path, kind = ext, text = text,
        checksum = sha256.hex(text),
        no_transaction = ext == "sql" and first:gsub("%s+$", ""):lower() == _M.NO_TRANSACTION,
      }
    end
  end
  table.sort(list, function(a, b) return a.version < b.version end)
  return list
end

---------------------------------------------------------------- tracking tables

local function settings(opts)
  if type(opts) ~= "table" then error("bad argument #2 (options table expected)", 3) end
  local dir = opts.dir or "migrations"
  local is_drizzle = drizzle.is_folder(dir)
  local s = {
    dir = dir,
    drizzle = is_drizzle,
    progress = opts.progress or function() end,
    warn = opts.warn or function(msg) io.stderr:write("lakebase migrate: warning: ", msg, "\n") end,
    allow_out_of_order = opts.allow_out_of_order and true or false,
    allow_changed = opts.allow_changed and true or false,
    dry_run = opts.dry_run and true or false,
    lock_timeout = opts.lock_timeout or _M.DEFAULT_LOCK_TIMEOUT,
    sleep = opts.sleep or require("lakebase.core").sleep,
  }
  local lt = s.lock_timeout
  if type(lt) ~= "number" or lt ~= lt or lt < 0 or lt == math.huge then
    error("bad argument #2 (lock_timeout: seconds >= 0 expected, got " .. tostring(lt) .. ")", 3)
  end
  if type(s.sleep) ~= "function" then
    error("bad argument #2 (sleep: function(seconds) expected, got " .. type(s.sleep) .. ")", 3)
  end
  if is_drizzle then
    s.schema = opts.schema or drizzle.DEFAULT_SCHEMA
    s.table = opts.table or drizzle.DEFAULT_TABLE
  else
    s.schema = opts.schema or _M.DEFAULT_SCHEMA
    s.table = opts.table or _M.DEFAULT_TABLE
  end
  s.qualified = quote_ident(s.schema) .. "." .. quote_ident(s.table)
  -- One lock per tracking table: runners on different tables do not wait for each other.
  s.lock_key = _M.lock_key(s.schema, s.table)
  return s
end

local function table_exists(db, s)
  local rows, err = call(db, "query", "select to_regclass($1)::text as t", s.qualified)
  if not rows then return nil, err end
  local t = rows[1] and rows[1].t
  return t ~= nil and type(t) == "string"
end

local function ensure_table(db, s)
  -- Only when missing: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema
  -- exists, and a role that only runs migrations may not have it.
  local exists, eerr = table_exists(db, s)
  if exists == nil then return nil, eerr end
  if exists then return true end
  if s.drizzle then
    -- The same DDL as drizzle-orm's migrator, so either side may create it first.
    local ok, err = call(db, "query", "CREATE SCHEMA IF NOT EXISTS " .. quote_ident(s.schema))
    if not ok then return nil, err end
    return call(db, "query", "CREATE TABLE IF NOT EXISTS " .. s.qualified .. [[ (
      id SERIAL PRIMARY KEY,
      hash text NOT NULL,
      created_at bigint
    )]])
  end
  if s.schema ~= "public" then
    local ok, err = call(db, "query", "CREATE SCHEMA IF NOT EXISTS " .. quote_ident(s.schema))
    if not ok then return nil, err end
  end
  return call(db, "query", "CREATE TABLE IF NOT EXISTS " .. s.qualified .. [[ (
    version bigint PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL
  )]])
end

local function applied_rows(db, s)
  local exists, err = table_exists(db, s)
  if exists == nil then return nil, err end
  if not exists then return {} end
  local sql
  if s.drizzle then
    sql = "select id::text as id, hash, created_at::text as created_at from " .. s.qualified .. " order by id"
  else
    sql = "select version::text as version, name, checksum, applied_at::text as applied_at,"
      .. " duration_ms::text as duration_ms from "
      .. s.qualified .. " order by version"
  end
  local rows, qerr = call(db, "query", sql)
  if not rows then return nil, qerr end
  local out = {}
  for i, r in ipairs(rows) do out[i] = r end
  return out
end

---------------------------------------------------------------- planning

-- Compares the folder with the tracking table. Returns a plan:
-- { migrations (folder order), applied = {...}, pending = {...}, changed = {...}, out_of_order = {...},
--   unknown = {...} (recorded but not in the folder) }
local function plan_plain(list, rows)
  local by_version = {}
  for _, r in ipairs(rows) do by_version[tonumber(r.version)] = r end
  local p = { migrations = list, applied = {}, pending = {}, changed = {}, out_of_order = {}, unknown = {},
    clashes = {} }
  local max_applied = nil
  for _, r in ipairs(rows) do
    local v = tonumber(r.version)
    if not max_applied or v > max_applied then max_applied = v end
  end
  local in_folder = {}
  for _, m in ipairs(list) do
    in_folder[m.version] = true
    local r = by_version[m.version]
    if r and r.name ~= m.name and r.checksum ~= m.checksum then
      -- The number was taken by another migration (another branch or folder): this file never ran.
      m.recorded = string.format("%04d_%s", m.version, tostring(r.name))
      m.applied_at = r.applied_at
      p.clashes[#p.clashes + 1] = m
    elseif r then
      m.applied_at, m.duration_ms = r.applied_at, tonumber(r.duration_ms)
      p.applied[#p.applied + 1] = m
      if r.checksum ~= m.checksum then p.changed[#p.changed + 1] = m end
    else
      p.pending[#p.pending + 1] = m
      if max_applied and m.version < max_applied then p.out_of_order[#p.out_of_order + 1] = m end
    end
  end
  for _, r in ipairs(rows) do
    if not in_folder[tonumber(r.version)] then
      p.unknown[#p.unknown + 1] = { version = tonumber(r.version), name = r.name }
    end
  end
  return p
end

local function plan_drizzle(list, rows)
  local by_when, by_hash = {}, {}
  local max_when = nil
  for _, r in ipairs(rows) do
    local w = tonumber(r.created_at)
    if w then
      by_when[w] = by_when[w] or r
      if not max_when or w > max_when then max_when = w end
    end
    by_hash[r.hash] = by_hash[r.hash] or r
  end
  local p = { migrations = list, applied = {}, pending = {}, changed = {}, out_of_order = {}, unknown = {},
    clashes = {} }
  local used = {}
  for _, m in ipairs(list) do
    m.version, m.name = m.idx, m.tag
    local r = by_when[m.when]
    if r then
      used[r] = true
      p.applied[#p.applied + 1] = m
      if r.hash ~= m.hash then p.changed[#p.changed + 1] = m end
    elseif by_hash[m.hash] and not used[by_hash[m.hash]] then
      -- recorded under another `when` (journal regenerated): the same file, so applied
      used[by_hash[m.hash]] = true
      p.applied[#p.applied + 1] = m
    else
      p.pending[#p.pending + 1] = m
      if max_when and m.when <= max_when then p.out_of_order[#p.out_of_order + 1] = m end
    end
  end
  for _, r in ipairs(rows) do
    if not used[r] then
      p.unknown[#p.unknown + 1] = { id = tonumber(r.id), hash = r.hash, created_at = r.created_at }
    end
  end
  return p
end

local function read_folder(s)
  if s.drizzle then
    return drizzle.read(s.dir) -- its errors are migration errors already
  end
  return _M.read_plain(s.dir)
end

local function make_plan(db, s)
  local list, err = read_folder(s)
  if not list then return nil, err end
  for _, sk in ipairs(list.skipped or {}) do s.warn(sk.message) end
  local rows, rerr = applied_rows(db, s)
  if not rows then
    return nil, mkerr({ message = "cannot read the tracking table " .. s.schema .. "." .. s.table .. ": "
      .. cause_text(rerr), cause = rerr })
  end
  return s.drizzle and plan_drizzle(list, rows) or plan_plain(list, rows)
end

local function names(list)
  local t = {}
  for i, m in ipairs(list) do t[i] = m.file end
  return table.concat(t, ", ")
end

-- Refusals before anything is applied.
local function check_plan(p, s)
  if #p.clashes > 0 then
    local m = p.clashes[1]
    return nil, mkerr({
      message = string.format("%s has version %d, but %s records version %d as %s (applied %s), "
        .. "another name and content: %s has not run. Two migrations got the same number (e.g. from "
        .. "two branches): renumber %s after the newest migration (lakebase new gives the next number); "
        .. "if it is %s renamed and edited, restore that file%s",
        m.file, m.version, s.schema .. "." .. s.table, m.version, m.recorded, tostring(m.applied_at),
        m.file, m.file, m.recorded, #p.clashes > 1 and string.format(" (%d files in all)", #p.clashes) or ""),
      file = m.file, recorded = m.recorded, clashes = p.clashes,
    })
  end
  if #p.changed > 0 and not s.allow_changed then
    local what = s.drizzle and "its sha256 no longer matches the hash drizzle recorded"
      or "its checksum no longer matches the one recorded"
    return nil, mkerr({
      message = string.format("%s %s changed after it was applied (%s); "
        .. "restore the applied version and put the change in a new migration",
        #p.changed == 1 and "migration" or "migrations", names(p.changed), what),
      file = p.changed[1].file, changed = p.changed,
    })
  end
  if #p.out_of_order > 0 and not s.allow_out_of_order then
    return nil, mkerr({
      message = string.format("%s %s %s older than the newest applied migration "
        .. "(out of order, e.g. from a merged branch)%s; "
        .. "check that it does not conflict, then run again with allow_out_of_order (CLI: --allow-out-of-order)",
        #p.out_of_order == 1 and "pending migration" or "pending migrations", names(p.out_of_order),
        #p.out_of_order == 1 and "is" or "are",
        s.drizzle and " — drizzle-orm's migrator would skip it silently" or ""),
      file = p.out_of_order[1].file, out_of_order = p.out_of_order,
    })
  end
  return true
end

---------------------------------------------------------------- applying

local function fail_statement(m, st, index, cause)
  local where = st and string.format(" at statement %d (line %d: %s)", index, st.line, st.summary or "") or ""
  return mkerr({
    message = string.format("migration %s failed%s: %s; it was rolled back and not recorded",
      m.file, where, cause_text(cause)),
    file = m.file, statement = st and st.sql, line = st and st.line, cause = cause,
    sqlstate = type(cause) == "table" and cause.sqlstate or nil,
  })
end

-- Statements of a migration: drizzle chunks, or our own split of a plain file.
local function statements(m)
  if m.chunks then
    local out = {}
    for i, c in ipairs(m.chunks) do
      local summary = c.sql:match("^%s*([^\n]*)"):gsub("%s+$", "")
      if #summary > 100 then summary = summary:sub(1, 97) .. "..." end
      out[i] = { sql = c.sql, line = c.line, summary = summary }
    end
    return out
  end
  return _M.split_statements(m.text)
end

local function record(tx, s, m, duration_ms)
  if s.drizzle then
    return call(tx, "query", "insert into " .. s.qualified .. ' ("hash", "created_at") values ($1, $2::bigint)',
      m.hash, drizzle.when_string(m.when))
  end
  return call(tx, "query", "insert into " .. s.qualified
    .. " (version, name, checksum, duration_ms) values ($1::bigint, $2, $3, $4::integer)",
    tostring(m.version), m.name, m.checksum, tostring(duration_ms))
end

local function run_statements(conn, m, stmts)
  for i, st in ipairs(stmts) do
    local ok, err = call(conn, "exec_script", st.sql)
    if not ok then return nil, fail_statement(m, st, i, err) end
  end
  return true
end

_M.BATCH_STATEMENTS = 200
_M.BATCH_BYTES = 256 * 1024

-- Inside a transaction: statements go in batches (one round trip each, for long seed files), each
-- batch under a savepoint; when a batch fails, it is rolled back to the savepoint and run again one
-- statement at a time, so the error names the statement that fails.
local function run_batched(tx, m, stmts)
  local i = 1
  while i <= #stmts do
    local j, bytes = i, #stmts[i].sql
    while j < #stmts and j - i + 1 < _M.BATCH_STATEMENTS and bytes + #stmts[j + 1].sql <= _M.BATCH_BYTES do
      j = j + 1
      bytes = bytes + #stmts[j].sql
    end
    if j == i or type(tx.transaction) ~= "function" then
      for k = i, j do
        local r, e = call(tx, "exec_script", stmts[k].sql)
        if not r then return nil, fail_statement(m, stmts[k], k, e) end
      end
    else
      local parts = {}
      -- "\n;" and not ";": a statement may end in a -- comment
      for k = i, j do parts[#parts + 1] = stmts[k].sql .. "\n;" end
      local ok = call(tx, "transaction", function(sp)
        local r, e = sp:exec_script(table.concat(parts, "\n"))
        if not r then error(e, 0) end
        return true
      end)
      if not ok then
        for k = i, j do
          local r, e = call(tx, "exec_script", stmts[k].sql)
          if not r then return nil, fail_statement(m, stmts[k], k, e) end
        end
      end
    end
    i = j + 1
  end
  return true
end

local function apply_one(db, s, m)
  local t0 = server_ms(db)
  if m.kind == "lua" then
    local chunk, lerr = load_string(m.text, "@" .. m.path)
    if not chunk then return nil, fail_statement(m, nil, nil, lerr) end
    local ok, fn = pcall(chunk)
    if not ok or type(fn) ~= "function" then
      return nil, fail_statement(m, nil, nil, ok and "the file must return function(db)" or fn)
    end
    local res, err = in_transaction(db, function(tx)
      local ok2, r, e = pcall(fn, tx)
      if not ok2 then return nil, fail_statement(m, nil, nil, r) end
      if r == nil and e ~= nil then return nil, fail_statement(m, nil, nil, e) end
      local dur = math.max(0, server_ms(tx) - t0)
      local rec, rerr = record(tx, s, m, dur)
      if not rec then return nil, fail_statement(m, nil, nil, rerr) end
      return dur
    end)
    if not res then return nil, err end
    return res
  end
  local stmts = statements(m)
  if m.no_transaction then
    -- One statement at a time, each its own implicit transaction; recorded only when all succeed.
    local ok, err = run_statements(db, m, stmts)
    if not ok then
      err.message = err.message:gsub("it was rolled back and not recorded",
        "it was not recorded; it ran without a transaction (-- lakebase:no-transaction), "
          .. "so the statements before the failing one stay applied")
      return nil, err
    end
    local dur = math.max(0, server_ms(db) - t0)
    local rec, rerr = record(db, s, m, dur)
    if not rec then return nil, fail_statement(m, nil, nil, rerr) end
    return dur
  end
  return in_transaction(db, function(tx)
    local ok, err = run_batched(tx, m, stmts)
    if not ok then return nil, err end
    local dur = math.max(0, server_ms(tx) - t0)
    local rec, rerr = record(tx, s, m, dur)
    if not rec then return nil, fail_statement(m, nil, nil, rerr) end
    return dur
  end)
end

-- How a runner waits for another one's lock: it polls pg_try_advisory_lock and sleeps in between
-- (doubling from LOCK_POLL_FIRST up to LOCK_POLL_MAX seconds). A blocking pg_advisory_lock would sit
-- in a statement, holding a snapshot, for as long as it waits; CREATE INDEX CONCURRENTLY in the
-- holder's no-transaction migration waits for every older snapshot to go away, so the two would wait
-- for each other forever. Between polls the waiting connection is idle: no snapshot.
_M.DEFAULT_LOCK_TIMEOUT = 600
local LOCK_POLL_FIRST, LOCK_POLL_MAX = 0.05, 1

--- The advisory lock key (a decimal string, < 2^48) of the runner lock for a tracking table.
function _M.lock_key(schema, tbl)
  local h = sha256.hex("lakebase.migrate:" .. schema .. "." .. tbl)
  return string.format("%.0f", tonumber(h:sub(1, 12), 16))
end

-- Who holds the runner lock, from pg_locks and pg_stat_activity (a bigint advisory key is stored as
-- classid = high 32 bits, objid = low 32 bits, objsubid = 1). Fields the server hides from this role
-- stay nil.
local function lock_holder(conn, s)
  local rows = call(conn, "query", [[
    select l.pid::text as pid, a.application_name, host(a.client_addr) as client_addr,
      coalesce(a.xact_start, a.query_start)::text as since, a.usename::text as usename
    from pg_locks l left join pg_stat_activity a on a.pid = l.pid
    where l.locktype = 'advisory' and l.granted and l.objsubid = 1
      and l.classid = ($1::bigint >> 32)::oid and l.objid = ($1::bigint & 4294967295)::oid
      and l.database = (select oid from pg_database where datname = current_database())
    limit 1]], s.lock_key)
  local r = type(rows) == "table" and rows[1]
  if not r then return nil end
  local function field(v) return type(v) == "string" and v or nil end
  return { pid = tonumber(r.pid), application_name = field(r.application_name),
    client_addr = field(r.client_addr), since = field(r.since), user = field(r.usename) }
end

local function lock_timeout_error(conn, s, waited_ms)
  local holder = lock_holder(conn, s)
  local who
  if holder then
    -- a session that connected over a Unix socket has no client address
    who = string.format("held by pid %d (application_name %s, user %s, client %s, since %s); "
      .. "if that runner is stuck, end it with select pg_terminate_backend(%d)",
      holder.pid, string.format("%q", holder.application_name or "?"), holder.user or "?",
      holder.client_addr or "local socket or hidden", holder.since or "?", holder.pid)
  else
    who = "its holder released it just now; run again"
  end
  return mkerr({
    kind = "lock_timeout",
    message = string.format("gave up waiting for the migration lock on %s.%s after %.1f s (lock_timeout %g s): %s",
      s.schema, s.table, waited_ms / 1000, s.lock_timeout, who),
    holder = holder,
  })
end

-- Takes the runner lock with `try_sql` (pg_try_advisory_lock or its xact form) on conn, polling as
-- described above. The time waited is read from the server's clock (it counts slow round trips
-- too), or is the sum of the sleeps when a db object does not return it. Returns true, or nil, err.
local function acquire_lock(conn, s, try_sql)
  local sql = try_sql .. ", (extract(epoch from clock_timestamp()) * 1000)::bigint::text as now_ms"
  local started_ms, slept_ms, delay = nil, 0, LOCK_POLL_FIRST
  while true do
    local rows, err = call(conn, "query", sql, s.lock_key)
    if not rows then
      return nil, mkerr({ message = "cannot take the migration lock: " .. cause_text(err), cause = err })
    end
    if truthy(rows[1] and rows[1].got) then return true end
    local now_ms = tonumber(rows[1] and rows[1].now_ms)
    if slept_ms == 0 then
      started_ms = now_ms
      s.progress(string.format("waiting for another migration runner to finish (advisory lock on %s.%s, "
        .. "lock_timeout %g s)", s.schema, s.table, s.lock_timeout))
    end
    local waited_ms = (now_ms and started_ms) and now_ms - started_ms or slept_ms
    local left = s.lock_timeout - waited_ms / 1000
    if left <= 0 then return nil, lock_timeout_error(conn, s, waited_ms) end
    local pause = math.min(delay, left)
    s.sleep(pause)
    slept_ms = slept_ms + pause * 1000
    delay = math.min(delay * 2, LOCK_POLL_MAX)
  end
end

-- Runs fn() while holding the runner lock (see the module comment).
-- Preferred: a session-level advisory lock on one connection of the pool (db:with_connection)
-- that runs nothing else, so it is idle outside any transaction and holds no snapshot while the
-- migrations run on other connections; its pg_stat_activity.query_start is then when it took the
-- lock. Behind a transaction-mode pooler (stats().pooler_detected: a -pooler. host or a pooler
-- seen) and for db objects without with_connection (the nginx bridge): the transaction-level lock
-- in an open transaction, idle between statements; no session state.
local function with_lock(db, s, fn)
  local okst, st = pcall(function() return db:stats() end)
  if okst and type(st) == "table" and tonumber(st.max) and tonumber(st.max) < 2 then
    return nil, mkerr({ message = "migrate needs a pool of at least 2 connections (one holds the lock, "
      .. "another runs the migrations); this db has max = " .. tostring(st.max) })
  end
  -- Behind a transaction-mode pooler (Lakebase's -pooler. hosts, or one detected) a session-level
  -- lock would stay on a server session this runner no longer has: the transaction-level lock.
  local pooled = okst and type(st) == "table" and st.pooler_detected == true
  if not pooled and type(db) == "table" and type(db.with_connection) == "function" then
    local connected = false
    local okc, r1, r2 = pcall(db.with_connection, db, function(conn)
      connected = true
      local got, lerr = acquire_lock(conn, s, "select pg_try_advisory_lock($1::bigint) as got")
      if not got then return nil, lerr end
      local ok, f1, f2 = pcall(fn)
      call(conn, "query", "select pg_advisory_unlock($1::bigint)", s.lock_key)
      if not ok then error(f1, 0) end
      return f1, f2
    end)
    if not okc then error(r1, 0) end
    if not connected then -- no connection for the lock
      return nil, mkerr({ message = "cannot take the migration lock: " .. cause_text(r2), cause = r2 })
    end
    return r1, r2
  end

  local result, ferr
  local ok, err = in_transaction(db, function(tx)
    local got, lerr = acquire_lock(tx, s, "select pg_try_advisory_xact_lock($1::bigint) as got")
    if not got then return nil, lerr end
    result, ferr = fn()
    return true
  end)
  if not ok then
    if own_error(err) then return nil, err end
    return nil, mkerr({ message = "cannot take the migration lock: " .. cause_text(err), cause = err })
  end
  return result, ferr
end

local function summary_of(p, s)
  return {
    kind = s.drizzle and "drizzle" or "plain",
    dir = s.dir,
    table = s.schema .. "." .. s.table,
    applied = {}, pending = p.pending, already = #p.applied,
    changed = p.changed, out_of_order = p.out_of_order, unknown = p.unknown, clashes = p.clashes,
    skipped = p.migrations.skipped or {},
  }
end

local function describe(m)
  return m.file
end

--- Applies pending migrations. Options: `dir` (default "migrations"), `dry_run`, `allow_out_of_order`,
-- `allow_changed`, `schema`/`table` (tracking table), `progress` (function(msg)), `warn` (function(msg)
-- for files skipped because of their name; default: a line on stderr), `lock_timeout`
-- (seconds to wait for another runner, default 600; then `nil, err` with `err.kind == "lock_timeout"`
-- and `err.holder = { pid, application_name, user, client_addr, since }`), `sleep` (function(seconds)
-- used between lock polls; default lakebase.core.sleep, pass ngx.sleep under OpenResty).
-- Returns `{ kind, dir, table, applied = { {file, version, name, duration_ms}... }, pending, already, ... }`
-- (with `dry_run`: nothing applied, `pending` lists what would run), or `nil, err` (`err.message`,
-- `err.file`, `err.statement`, `err.cause`; tostring(err) gives the message). On a failure part-way,
-- `err.applied` lists what was applied before it.
function _M.up(db, opts)
  if type(db) ~= "table" and type(db) ~= "userdata" then
    error("bad argument #1 to 'migrate.up' (db expected)", 2)
  end
  local s = settings(opts or {})
  if s.dry_run then
    local p, err = make_plan(db, s)
    if not p then return nil, err end
    local ok, cerr = check_plan(p, s)
    if not ok then return nil, cerr end
    local out = summary_of(p, s)
    out.dry_run = true
    for _, m in ipairs(p.pending) do s.progress("would apply " .. describe(m)) end
    return out
  end

  return with_lock(db, s, function()
    local ok, err = ensure_table(db, s)
    if not ok then
      return nil, mkerr({ message = "cannot create the tracking table " .. s.schema .. "." .. s.table .. ": "
        .. cause_text(err), cause = err })
    end
    local p, perr = make_plan(db, s)
    if not p then return nil, perr end
    local cok, cerr = check_plan(p, s)
    if not cok then return nil, cerr end
    local out = summary_of(p, s)
    if #p.pending == 0 then
      s.progress("nothing to apply (" .. #p.applied .. " already applied)")
      return out
    end
    for i, m in ipairs(p.pending) do
      s.progress(string.format("applying %s (%d/%d)", describe(m), i, #p.pending))
      local dur, aerr = apply_one(db, s, m)
      if not dur then
        if not own_error(aerr) then aerr = fail_statement(m, nil, nil, aerr) end
        aerr.applied = out.applied
        return nil, aerr
      end
      out.applied[#out.applied + 1] = { file = m.file, version = m.version, name = m.name, duration_ms = dur }
      log.emit("info", "migration_applied", { file = m.file, version = m.version, name = m.name, duration_ms = dur })
      s.progress(string.format("applied %s in %d ms", describe(m), dur))
    end
    out.pending = {}
    return out
  end)
end

--- Compares the folder with the database without changing anything.
-- Returns `{ kind, dir, table, migrations = { {file, version, name, state = "applied"|"pending"|"changed"|
-- "out_of_order"|"clash", applied_at, duration_ms, recorded}... }, applied, pending, changed, out_of_order,
-- unknown, clashes, skipped }` or nil, err. "clash": another migration (`recorded`) was applied under
-- this file's number; `skipped`: files that look like migrations but are not named NNNN_name.sql/.lua.
function _M.status(db, opts)
  if type(db) ~= "table" and type(db) ~= "userdata" then
    error("bad argument #1 to 'migrate.status' (db expected)", 2)
  end
  local s = settings(opts or {})
  local p, err = make_plan(db, s)
  if not p then return nil, err end
  local flag = {}
  for _, m in ipairs(p.changed) do flag[m] = "changed" end
  for _, m in ipairs(p.out_of_order) do flag[m] = "out_of_order" end
  for _, m in ipairs(p.clashes) do flag[m] = "clash" end
  local applied = {}
  for _, m in ipairs(p.applied) do applied[m] = true end
  local rows = {}
  for _, m in ipairs(p.migrations) do
    rows[#rows + 1] = {
      file = m.file, version = m.version, name = m.name,
      state = flag[m] or (applied[m] and "applied" or "pending"),
      applied_at = m.applied_at, duration_ms = m.duration_ms, recorded = m.recorded,
    }
  end
  local out = summary_of(p, s)
  out.migrations = rows
  out.applied = p.applied
  return out
end

--- Creates the next plain migration file `NNNN_name.sql` in dir. Returns the path or nil, err.
function _M.new(dir, name, body)
  if type(name) ~= "string" or not name:match("^[%w_%-]+$") then
    return nil, mkerr({ message = "migration name must be letters, digits, '_' or '-': " .. tostring(name) })
  end
  if drizzle.is_folder(dir) then
    return nil, mkerr({ message = dir .. " is a drizzle-kit folder (meta/_journal.json); "
      .. "create migrations there with `drizzle-kit generate` (or --custom)" })
  end
  local list, err = _M.read_plain(dir)
  if not list then return nil, err end
  local last = list[#list]
  local version = last and last.version + 1 or 1
  local path = string.format("%s/%04d_%s.sql", dir, version, name)
  local f, ferr = io.open(path, "wb")
  if not f then return nil, mkerr({ message = "cannot create " .. path .. ": " .. tostring(ferr) }) end
  f:write(body or ("-- " .. name .. "\n"))
  f:close()
  return path
end

_M.quote_ident = quote_ident

return _M
