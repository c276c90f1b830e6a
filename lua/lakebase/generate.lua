--- `lakebase generate`: the next migration from Lua schema modules, diffed against a snapshot.
--
-- The schema modules return tables made with lakebase.schema (`s.table(...)`), either one table or
-- a module table whose values are tables. Each table is turned into a plain description
-- (`schema.describe`) and normalised into the snapshot format below; the snapshot of the last
-- generated migration is kept in `<dir>/meta/lakebase_snapshot.json` (commit it with the migrations).
--
-- Snapshot: `{ version = 1, tables = { ["schema.name" or "name"] = { name, schema,
--   columns = { [col] = { order, type, not_null, default } },
--   primary_key = { name, columns } | nil, uniques = { [name] = { columns } },
--   foreign_keys = { [name] = { columns, ref_schema, ref_table, ref_columns, on_delete, on_update } },
--   indexes = { [name] = { columns, unique, using } } } } }`
-- Constraints get explicit names (PostgreSQL's defaults: `<table>_pkey`, `<table>_<cols>_key`,
-- `<table>_<col>_fkey`) so later migrations can drop them by name.
--
-- Ambiguous changes are never guessed: a column dropped while another of the same type is added (or
-- a table dropped while one with the same columns is added) may be a rename. The statements are then
-- written commented out under a TODO, and the migration starts with a guard statement that raises an
-- error until someone resolves the TODO and deletes the guard. Destructive steps (drop table, drop
-- column, a type change that may not keep every value) are guarded the same way, written as they
-- would run, unless the caller allows them (`allow_destructive`, CLI --allow-destructive).
--
-- Errors are lakebase error objects (lakebase.errors): kind "schema" for the schema modules and the
-- snapshot (`file` names the one at fault), "migration" for the migrations folder.
local json = require("lakebase.json")
local errors = require("lakebase.errors")
local sqltext = require("lakebase.sql")
local ddl = require("lakebase.ddl")
local migrate = require("lakebase.migrate")
local drizzle = require("lakebase.drizzle")

local _M = {}

_M.SNAPSHOT = "meta/lakebase_snapshot.json"
local q, ident_list = sqltext.quote_ident, sqltext.ident_list
local qtable = ddl.qtable
local sorted_keys, ordered_columns = ddl.sorted_keys, ddl.ordered_columns

-- nil, an error of `kind` ("schema" or "migration") about `file`.
local function fail(kind, message, file)
  return nil, errors.new(kind, message, { file = file })
end

local function key_of(name, schema)
  return (schema and (schema .. ".") or "") .. name
end

local function same(a, b)
  return json.encode(a) == json.encode(b)
end

---------------------------------------------------------------- schema -> snapshot

--- Snapshot entry of one lakebase.schema table (from schema.describe).
_M.table_snapshot = ddl.table_snapshot

--- Snapshot of a list of lakebase.schema tables. Returns the snapshot or nil, err.
function _M.snapshot(tables)
  local s = require("lakebase.schema")
  local snap = { version = 1, tables = {} }
  for _, tbl in ipairs(tables) do
    local d = s.describe(tbl)
    local k = key_of(d.name, d.schema)
    if snap.tables[k] then return fail("schema", "table " .. k .. " is defined twice") end
    snap.tables[k] = _M.table_snapshot(d)
  end
  return snap
end

---------------------------------------------------------------- loading schema modules

local function collect(v, out, seen)
  local s = require("lakebase.schema")
  if s.is_table(v) then
    if not seen[v] then
      seen[v] = true
      out[#out + 1] = v
    end
    return
  end
  if type(v) == "table" then
    local keys = {}
    for k in pairs(v) do
      if type(k) == "string" or type(k) == "number" then keys[#keys + 1] = k end
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      if s.is_table(v[k]) and not seen[v[k]] then
        seen[v[k]] = true
        out[#out + 1] = v[k]
      end
    end
  end
end

--- Loads schema modules (file paths, or module names for require) and returns their tables.
function _M.load(sources)
  local out, seen = {}, {}
  for _, src in ipairs(sources) do
    local value
    local f = io.open(src, "rb")
    if f then
      f:close()
      local chunk, err = loadfile(src)
      if not chunk then return fail("schema", "cannot load schema " .. src .. ": " .. tostring(err), src) end
      local ok, v = pcall(chunk)
      if not ok then return fail("schema", "schema " .. src .. " failed: " .. tostring(v), src) end
      value = v
    else
      if src:find("[/\\]") or src:find("%.lua$") then return fail("schema", "schema file not found: " .. src, src) end
      local ok, v = pcall(require, src)
      if not ok then return fail("schema", "cannot load schema module " .. src .. ": " .. tostring(v), src) end
      value = v
    end
    local before = #out
    collect(value, out, seen)
    if #out == before then
      return fail("schema", "schema " .. src .. " defines no tables (return s.table(...) or a table of them)", src)
    end
  end
  return out
end

---------------------------------------------------------------- diff -> SQL

-- The statements of a migration end in ";".
local column_def = ddl.column_def

local function create_table_sql(t)
  return ddl.create_table(t) .. ";"
end

local function fk_sql(t, name, fk)
  return ddl.add_foreign_key(t, name, fk) .. ";"
end

local function index_sql(t, name, ix)
  return ddl.create_index(t, name, ix) .. ";"
end

local function drop_index_sql(t, name)
  return ddl.drop_index(t, name) .. ";"
end

local function column_signature(t)
  local parts = {}
  for _, name in ipairs(ordered_columns(t)) do parts[#parts + 1] = name .. " " .. t.columns[name].type end
  return table.concat(parts, ", ")
end

local function comment_out(sql)
  return (sql:gsub("[^\n]+", "-- %0"))
end

local INT_RANK = { smallint = 1, integer = 2, bigint = 3 }

-- True when every value of type `from` fits `to` unchanged (PostgreSQL casts it implicitly and
-- nothing is cut): a wider integer, real to double, a longer varchar or text, more numeric digits.
local function widens(from, to)
  if INT_RANK[from] and INT_RANK[to] then return INT_RANK[to] > INT_RANK[from] end
  if INT_RANK[from] and to == "numeric" then return true end
  if from == "real" and to == "double precision" then return true end
  local vn = from:match("^varchar%((%d+)%)$")
  if (vn or from == "varchar") and to == "text" then return true end
  local vm = to:match("^varchar%((%d+)%)$")
  if vn and vm then return tonumber(vm) >= tonumber(vn) end
  if vn and to == "varchar" then return true end
  local p1, s1 = from:match("^numeric%((%d+),%s*(%d+)%)$")
  if p1 and to == "numeric" then return true end
  local p2, s2 = to:match("^numeric%((%d+),%s*(%d+)%)$")
  if p1 and p2 then return s1 == s2 and tonumber(p2) >= tonumber(p1) end
  return false
end
_M.widens = widens

-- A destructive step (data may be lost) as a TODO: the statement is written as it would run, and
-- the guard at the top of the migration stops it until someone confirms.
local function destructive_todo(what, sql)
  return table.concat({
    "-- TODO: destructive: " .. what .. ".",
    "-- If that is intended, keep the statement and delete the guard at the top; otherwise change the",
    "-- schema modules and generate again (lakebase generate --allow-destructive writes it without a guard).",
    sql,
  }, "\n")
end

-- The statements of a migration by group, in the order the groups run: what depends on something
-- is dropped before it and added after it.
local GROUPS = { "drops_fk", "drops_index", "drops_constraint", "drops_column", "drops_table", "todos",
  "creates", "add_columns", "alter_columns", "add_constraints", "add_fks", "add_indexes" }

-- The migration being written: the statements of each group, the counts and the summary (the
-- steps' names, which name the file).
local Plan = {}
Plan.__index = Plan

local function new_plan(allow_destructive)
  local plan = setmetatable({ allow_destructive = allow_destructive, groups = {}, changes = 0, renames = 0,
    destructive = 0, summary = {} }, Plan)
  for _, g in ipairs(GROUPS) do plan.groups[g] = {} end
  return plan
end

function Plan:add(group, sql, what)
  local list = self.groups[group]
  list[#list + 1] = sql
  self.changes = self.changes + 1
  if what then self.summary[#self.summary + 1] = what end
end

-- A destructive statement stays in its place in the order, but as a TODO under the guard.
function Plan:add_destructive(group, sql, what, description)
  if self.allow_destructive then return self:add(group, sql, what) end
  self.destructive = self.destructive + 1
  self:add(group, destructive_todo(description, sql), what)
end

-- A possible rename: the statements either way, commented out under a TODO (never guessed).
function Plan:add_rename(lines, what)
  self:add("todos", table.concat(lines, "\n"), what)
  self.renames = self.renames + 1
end

-- Names (sorted) of the entries of `from` that `to` lacks or holds differently.
local function changed_names(from, to)
  local out = {}
  for _, n in ipairs(sorted_keys(from)) do
    if not to[n] or not same(from[n], to[n]) then out[#out + 1] = n end
  end
  return out
end

local function drop_constraint_sql(qt, name)
  return "ALTER TABLE " .. qt .. " DROP CONSTRAINT " .. q(name) .. ";"
end

-- Tables: one dropped while another with the same columns appears may be a rename (a TODO); the
-- others are dropped (destructive) or created with their foreign keys and indexes.
local function diff_tables(plan, old_t, new_t)
  local added, removed = {}, {}
  for _, k in ipairs(sorted_keys(new_t)) do if not old_t[k] then added[#added + 1] = k end end
  for _, k in ipairs(sorted_keys(old_t)) do if not new_t[k] then removed[#removed + 1] = k end end

  local ambiguous = {}
  for _, rk in ipairs(removed) do
    for _, ak in ipairs(added) do
      if not ambiguous[ak] and column_signature(old_t[rk]) == column_signature(new_t[ak]) then
        ambiguous[rk], ambiguous[ak] = ak, rk
        local ot, nt = old_t[rk], new_t[ak]
        plan:add_rename({
          "-- TODO: table " .. rk .. " was removed and " .. ak .. " was added with the same columns.",
          "-- If it is a rename, use:",
          "--   ALTER TABLE " .. qtable(ot) .. " RENAME TO " .. q(nt.name) .. ";",
          "-- otherwise keep these statements:",
          comment_out("DROP TABLE " .. qtable(ot) .. ";"),
          comment_out(create_table_sql(nt)),
        }, "todo_" .. nt.name)
        break
      end
    end
  end

  for _, k in ipairs(removed) do
    if not ambiguous[k] then
      plan:add_destructive("drops_table", "DROP TABLE " .. qtable(old_t[k]) .. ";", "drop_" .. old_t[k].name,
        "table " .. k .. " is no longer in the schema modules: this drops it with every row")
    end
  end
  for _, k in ipairs(added) do
    if not ambiguous[k] then
      local t = new_t[k]
      plan:add("creates", create_table_sql(t), "create_" .. t.name)
      for _, n in ipairs(sorted_keys(t.foreign_keys)) do plan:add("add_fks", fk_sql(t, n, t.foreign_keys[n])) end
      for _, n in ipairs(sorted_keys(t.indexes)) do plan:add("add_indexes", index_sql(t, n, t.indexes[n])) end
    end
  end
end

-- Foreign keys, indexes, unique and primary-key constraints of a table that changed are dropped
-- first and added again by add_constraints. Returns true when the primary key changed.
local function drop_constraints(plan, ot, nt)
  local qt = qtable(nt)
  for _, n in ipairs(changed_names(ot.foreign_keys, nt.foreign_keys)) do
    plan:add("drops_fk", drop_constraint_sql(qt, n))
  end
  for _, n in ipairs(changed_names(ot.indexes, nt.indexes)) do plan:add("drops_index", drop_index_sql(nt, n)) end
  for _, n in ipairs(changed_names(ot.uniques, nt.uniques)) do
    plan:add("drops_constraint", drop_constraint_sql(qt, n))
  end
  local opk, npk = ot.primary_key, nt.primary_key
  local pk_changed = not same(opk or {}, npk or {})
  if pk_changed and opk then plan:add("drops_constraint", drop_constraint_sql(qt, opk.name)) end
  return pk_changed
end

-- Columns of table `k` removed and added: a removed column and an added one of the same type may
-- be a rename (a TODO); the others are dropped (destructive) or added.
local function diff_columns(plan, k, ot, nt)
  local qt = qtable(nt)
  local cadd, cdrop = {}, {}
  for _, n in ipairs(ordered_columns(nt)) do if not ot.columns[n] then cadd[#cadd + 1] = n end end
  for _, n in ipairs(ordered_columns(ot)) do if not nt.columns[n] then cdrop[#cdrop + 1] = n end end
  local ambiguous = {}
  for _, dn in ipairs(cdrop) do
    for _, an in ipairs(cadd) do
      if not ambiguous[an] and ot.columns[dn].type == nt.columns[an].type then
        ambiguous[dn], ambiguous[an] = an, dn
        plan:add_rename({
          "-- TODO: column " .. k .. "." .. dn .. " was removed and " .. an .. " (" .. nt.columns[an].type
            .. ") was added. If it is a rename, use:",
          "--   ALTER TABLE " .. qt .. " RENAME COLUMN " .. q(dn) .. " TO " .. q(an) .. ";",
          "-- otherwise keep these statements (the data in " .. dn .. " is lost):",
          comment_out("ALTER TABLE " .. qt .. " DROP COLUMN " .. q(dn) .. ";"),
          comment_out("ALTER TABLE " .. qt .. " ADD COLUMN " .. column_def(an, nt.columns[an]) .. ";"),
        }, "todo_" .. an)
        break
      end
    end
  end
  for _, n in ipairs(cdrop) do
    if not ambiguous[n] then
      plan:add_destructive("drops_column", "ALTER TABLE " .. qt .. " DROP COLUMN " .. q(n) .. ";", "drop_" .. n,
        "column " .. k .. "." .. n .. " is no longer in the schema modules: this drops it and its data")
    end
  end
  for _, n in ipairs(cadd) do
    if not ambiguous[n] then
      plan:add("add_columns", "ALTER TABLE " .. qt .. " ADD COLUMN " .. column_def(n, nt.columns[n]) .. ";",
        "add_" .. n)
    end
  end
end

-- Type, default and NOT NULL of the columns table `k` keeps; a type change that may not keep every
-- value is destructive.
local function alter_columns(plan, k, ot, nt)
  local qt = qtable(nt)
  for _, n in ipairs(ordered_columns(nt)) do
    local oc, nc = ot.columns[n], nt.columns[n]
    if oc then
      local pre = "ALTER TABLE " .. qt .. " ALTER COLUMN " .. q(n)
      if oc.type ~= nc.type then
        local stmt = "-- the type of " .. n .. " changes from " .. oc.type
          .. "; add USING <expr> if PostgreSQL cannot cast it\n"
          .. pre .. " SET DATA TYPE " .. nc.type .. ";"
        if widens(oc.type, nc.type) then
          plan:add("alter_columns", stmt, "alter_" .. n)
        else
          plan:add_destructive("alter_columns", stmt, "alter_" .. n, "column " .. k .. "." .. n .. " changes from "
            .. oc.type .. " to " .. nc.type .. ", which may not hold every value (cut, rounded or refused)")
        end
      end
      local od = oc.default ~= json.null and oc.default or nil
      local nd = nc.default ~= json.null and nc.default or nil
      if od ~= nd then
        plan:add("alter_columns", pre .. (nd and (" SET DEFAULT " .. nd) or " DROP DEFAULT") .. ";", "alter_" .. n)
      end
      if (oc.not_null and true or false) ~= (nc.not_null and true or false) then
        plan:add("alter_columns", pre .. (nc.not_null and " SET NOT NULL" or " DROP NOT NULL") .. ";", "alter_" .. n)
      end
    end
  end
end

-- The primary key, unique constraints, foreign keys and indexes that are new or changed.
local function add_constraints(plan, ot, nt, pk_changed)
  local qt, npk = qtable(nt), nt.primary_key
  if pk_changed and npk then
    plan:add("add_constraints", "ALTER TABLE " .. qt .. " ADD CONSTRAINT " .. q(npk.name) .. " PRIMARY KEY ("
      .. ident_list(npk.columns) .. ");")
  end
  for _, n in ipairs(changed_names(nt.uniques, ot.uniques)) do
    plan:add("add_constraints", "ALTER TABLE " .. qt .. " ADD CONSTRAINT " .. q(n) .. " UNIQUE ("
      .. ident_list(nt.uniques[n].columns) .. ");")
  end
  for _, n in ipairs(changed_names(nt.foreign_keys, ot.foreign_keys)) do
    plan:add("add_fks", fk_sql(nt, n, nt.foreign_keys[n]))
  end
  for _, n in ipairs(changed_names(nt.indexes, ot.indexes)) do
    plan:add("add_indexes", index_sql(nt, n, nt.indexes[n]))
  end
end

-- The migration text: the guard when a TODO needs a decision, then the groups in order.
local function render(plan)
  if plan.changes == 0 then return { changes = 0, todos = 0, summary = {} } end
  local parts = {}
  local renames, destructive = plan.renames, plan.destructive
  local todos = renames + destructive
  if todos > 0 then
    local what = {}
    if renames > 0 then what[#what + 1] = renames .. " possible rename" .. (renames == 1 and "" or "s") end
    if destructive > 0 then
      what[#what + 1] = destructive .. " destructive step" .. (destructive == 1 and "" or "s")
    end
    parts[#parts + 1] = table.concat({
      "-- lakebase generate needs your decision on " .. table.concat(what, " and ")
        .. " (see the TODO blocks below).",
      "-- Resolve them, then delete this guard, which stops the migration from running as it is:",
      "DO $$ BEGIN RAISE EXCEPTION 'unresolved TODO from lakebase generate in this migration: "
        .. "read its TODO blocks, decide, then delete this guard'; END $$;",
    }, "\n")
  end
  for _, group in ipairs(GROUPS) do
    for _, stmt in ipairs(plan.groups[group]) do parts[#parts + 1] = stmt end
  end
  return { sql = table.concat(parts, "\n\n") .. "\n", changes = plan.changes, todos = todos,
    destructive = destructive, summary = plan.summary }
end

--- Compares two snapshots. Returns `{ sql = text or nil, changes = n, todos = n, summary = {...} }`.
-- Destructive steps (drop table, drop column, a type change that may not keep the data) are TODOs
-- behind the guard unless `opts.allow_destructive`.
function _M.diff(old, new, opts)
  old = old or { tables = {} }
  local plan = new_plan(opts and opts.allow_destructive)
  local old_t, new_t = old.tables or {}, new.tables or {}
  diff_tables(plan, old_t, new_t)
  for _, k in ipairs(sorted_keys(new_t)) do
    local ot, nt = old_t[k], new_t[k]
    if ot then
      local pk_changed = drop_constraints(plan, ot, nt)
      diff_columns(plan, k, ot, nt)
      alter_columns(plan, k, ot, nt)
      add_constraints(plan, ot, nt, pk_changed)
    end
  end
  return render(plan)
end

---------------------------------------------------------------- files

local function read_snapshot(path)
  local text = drizzle.read_file(path)
  if not text then return { version = 1, tables = {} } end
  local snap, err = json.decode(text)
  if not snap then return fail("schema", path .. ": " .. tostring(err), path) end
  -- a hand-edited null means "absent"
  local function strip(t)
    for k, v in pairs(t) do
      if v == json.null then t[k] = nil elseif type(v) == "table" then strip(v) end
    end
  end
  if type(snap) == "table" then strip(snap) end
  if type(snap) ~= "table" or type(snap.tables) ~= "table" then
    return fail("schema", path .. ": not a lakebase snapshot", path)
  end
  return snap
end

local function write_atomic(path, text)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return fail("migration", "cannot write " .. tmp .. ": " .. tostring(err), tmp) end
  f:write(text)
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then
    os.remove(tmp)
    return fail("migration", "cannot write " .. path .. ": " .. tostring(rerr), path)
  end
  return true
end

local function auto_name(summary)
  if #summary == 0 then return "schema" end
  local name = summary[1]
  if #summary > 1 then name = name .. "_and_more" end
  return (name:gsub("[^%w_]", "_"):sub(1, 60))
end

--- Generates the next migration. opts: `dir`, `schemas` (list of files or module names), `name`,
-- `dry_run` (return the SQL, write nothing), `baseline` (only record the snapshot: for a folder
-- whose migrations already create the current schema), `allow_destructive` (drops and narrowing type
-- changes without the guard).
-- Returns `{ sql, path, snapshot_path, changes, todos, destructive }` (`path` nil when nothing
-- changed) or nil, err.
function _M.run(opts)
  local dir = opts.dir or "migrations"
  if drizzle.is_folder(dir) then
    return fail("migration", dir .. " is a drizzle-kit folder: generate its migrations with drizzle-kit")
  end
  local tables, err = _M.load(opts.schemas or { "schema.lua" })
  if not tables then return nil, err end
  local new, serr = _M.snapshot(tables)
  if not new then return nil, serr end
  local snap_path = dir .. "/" .. _M.SNAPSHOT
  local old, rerr = read_snapshot(snap_path)
  if not old then return nil, rerr end
  local d = _M.diff(opts.baseline and new or old, new, { allow_destructive = opts.allow_destructive })
  local res = { sql = d.sql, changes = d.changes, todos = d.todos, destructive = d.destructive or 0,
    snapshot_path = snap_path }
  if opts.dry_run then return res end
  if d.changes == 0 and not opts.baseline then return res end
  local made, derr = drizzle.make_dir(dir .. "/meta")
  if not made then return fail("migration", derr, dir) end
  if not opts.baseline then
    local header = "-- generated by lakebase generate from "
      .. table.concat(opts.schemas or { "schema.lua" }, ", ") .. "\n"
    local path, merr = migrate.new(dir, opts.name or auto_name(d.summary), header .. d.sql)
    if not path then return nil, merr end
    res.path = path
  end
  local ok, werr = write_atomic(snap_path, json.encode(new, { indent = "  " }) .. "\n")
  if not ok then return nil, werr end
  return res
end

return _M
