--- lakebase.ddl: the one DDL writer. A table in snapshot form (ddl.table_snapshot of
-- lakebase.schema's describe, or an entry of meta/lakebase_snapshot.json) becomes CREATE TABLE,
-- CREATE INDEX and FOREIGN KEY statements. lakebase.schema's create_table_sql and `lakebase
-- generate` both write through it, so a table gets the same DDL whichever way it is created.
--
-- Snapshot form: `{ name, schema, columns = { [name] = { order, type, not_null, default } },
--   primary_key = { name, columns }, uniques = { [name] = { columns } },
--   foreign_keys = { [name] = { columns, ref_schema, ref_table, ref_columns, on_delete, on_update } },
--   indexes = { [name] = { columns, unique, using } } }`. Constraint names are PostgreSQL's own
-- defaults (`t_pkey`, `t_c_key`, `t_c_fkey`) unless the schema names them.
-- Statements come back without the trailing semicolon.
local json = require("lakebase.json")
local sqltext = require("lakebase.sql")

local _M = {}

local q = sqltext.quote_ident
local ident_list = sqltext.ident_list
local MAX_IDENT = sqltext.MAX_IDENT

-- A snapshot file may hold JSON null where a Lua table holds nil.
local function present(v)
  return v ~= nil and v ~= json.null
end

function _M.qtable(t)
  return (present(t.schema) and (q(t.schema) .. ".") or "") .. q(t.name)
end

--- PostgreSQL's default name for a table's constraint: `<table>_<cols>_<suffix>`, cut at 63 bytes.
function _M.default_name(tname, cols, suffix)
  return (tname .. "_" .. (cols and (table.concat(cols, "_") .. "_") or "") .. suffix):sub(1, MAX_IDENT)
end

function _M.sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

--- Column names in declaration order.
function _M.ordered_columns(t)
  local names = _M.sorted_keys(t.columns)
  table.sort(names, function(a, b)
    local oa, ob = t.columns[a].order or 0, t.columns[b].order or 0
    if oa ~= ob then return oa < ob end
    return a < b
  end)
  return names
end

-- A list that stays a JSON array in the snapshot file even when empty.
local function copy_list(l)
  local out = json.array()
  for i, v in ipairs(l or {}) do out[i] = v end
  return out
end
_M.copy_list = copy_list

--- Snapshot form of a lakebase.schema table description (schema.describe).
function _M.table_snapshot(d)
  local default_name = _M.default_name
  local t = { name = d.name, schema = d.schema, columns = {}, uniques = {}, foreign_keys = {}, indexes = {} }
  for i, c in ipairs(d.columns) do
    t.columns[c.name] = { order = i, type = c.type, not_null = c.not_null and true or false, default = c.default }
    if c.unique then
      t.uniques[default_name(d.name, { c.name }, "key")] = { columns = copy_list({ c.name }) }
    end
    if c.references then
      local r = c.references
      t.foreign_keys[default_name(d.name, { c.name }, "fkey")] = {
        columns = copy_list({ c.name }), ref_schema = r.schema, ref_table = r.table,
        ref_columns = copy_list({ r.column }), on_delete = r.on_delete, on_update = r.on_update,
      }
    end
  end
  for _, con in ipairs(d.constraints or {}) do
    if con.kind == "primary_key" then
      t.primary_key = { name = con.name or default_name(d.name, nil, "pkey"), columns = copy_list(con.columns) }
    elseif con.kind == "unique" then
      t.uniques[con.name or default_name(d.name, con.columns, "key")] = { columns = copy_list(con.columns) }
    end
  end
  if not t.primary_key and d.primary_key and #d.primary_key > 0 then
    t.primary_key = { name = default_name(d.name, nil, "pkey"), columns = copy_list(d.primary_key) }
  end
  for _, ix in ipairs(d.indexes or {}) do
    t.indexes[ix.name] = { columns = copy_list(ix.columns), unique = ix.unique and true or false, using = ix.using }
  end
  return t
end

--- One column as in CREATE TABLE or ADD COLUMN: `"name" type [PRIMARY KEY | NOT NULL] [DEFAULT ...]`.
function _M.column_def(name, c, inline_pk)
  local parts = { q(name), c.type }
  if inline_pk then
    parts[#parts + 1] = "PRIMARY KEY"
  elseif c.not_null then
    parts[#parts + 1] = "NOT NULL"
  end
  if present(c.default) then parts[#parts + 1] = "DEFAULT " .. c.default end
  return table.concat(parts, " ")
end

-- The column whose PRIMARY KEY is written inline (one column, the default name), or nil.
local function inline_pk_column(t)
  local pk = t.primary_key
  if pk and #pk.columns == 1 and pk.name == _M.default_name(t.name, nil, "pkey")
      and #(t.name .. "_pkey") <= MAX_IDENT then
    return pk.columns[1]
  end
  return nil
end

-- REFERENCES ... of a foreign key (the referenced table's columns and actions).
local function references(fk)
  local ref = (present(fk.ref_schema) and (q(fk.ref_schema) .. ".") or "") .. q(fk.ref_table)
  local s = "REFERENCES " .. ref .. " (" .. ident_list(fk.ref_columns) .. ")"
  if present(fk.on_delete) then s = s .. " ON DELETE " .. fk.on_delete end
  if present(fk.on_update) then s = s .. " ON UPDATE " .. fk.on_update end
  return s
end

local function foreign_key(fk)
  return "FOREIGN KEY (" .. ident_list(fk.columns) .. ") " .. references(fk)
end

--- A column with the one-column constraints on it, for ALTER TABLE ... ADD COLUMN (the table's
-- other constraints are not the column's).
function _M.column_with_constraints(t, name)
  local parts = { _M.column_def(name, t.columns[name]) }
  for _, k in ipairs(_M.sorted_keys(t.uniques)) do
    local cols = t.uniques[k].columns
    if #cols == 1 and cols[1] == name then parts[#parts + 1] = "CONSTRAINT " .. q(k) .. " UNIQUE" end
  end
  for _, k in ipairs(_M.sorted_keys(t.foreign_keys)) do
    local fk = t.foreign_keys[k]
    if #fk.columns == 1 and fk.columns[1] == name then
      parts[#parts + 1] = "CONSTRAINT " .. q(k) .. " " .. references(fk)
    end
  end
  return table.concat(parts, " ")
end

--- CREATE TABLE. opts: `if_not_exists`; `foreign_keys = true` writes the foreign keys inside
-- (generate adds them afterwards instead, once every table exists).
function _M.create_table(t, opts)
  opts = opts or {}
  local lines = {}
  local pk, inline = t.primary_key, inline_pk_column(t)
  for _, name in ipairs(_M.ordered_columns(t)) do
    lines[#lines + 1] = "  " .. _M.column_def(name, t.columns[name], inline == name)
  end
  if pk and not inline then
    lines[#lines + 1] = "  CONSTRAINT " .. q(pk.name) .. " PRIMARY KEY (" .. ident_list(pk.columns) .. ")"
  end
  for _, name in ipairs(_M.sorted_keys(t.uniques)) do
    lines[#lines + 1] = "  CONSTRAINT " .. q(name) .. " UNIQUE (" .. ident_list(t.uniques[name].columns) .. ")"
  end
  if opts.foreign_keys then
    for _, name in ipairs(_M.sorted_keys(t.foreign_keys)) do
      lines[#lines + 1] = "  CONSTRAINT " .. q(name) .. " " .. foreign_key(t.foreign_keys[name])
    end
  end
  return "CREATE TABLE " .. (opts.if_not_exists and "IF NOT EXISTS " or "") .. _M.qtable(t)
    .. " (\n" .. table.concat(lines, ",\n") .. "\n)"
end

function _M.add_foreign_key(t, name, fk)
  return "ALTER TABLE " .. _M.qtable(t) .. " ADD CONSTRAINT " .. q(name) .. " " .. foreign_key(fk)
end

--- CREATE INDEX. opts: `if_not_exists`.
function _M.create_index(t, name, ix, opts)
  return "CREATE " .. (ix.unique and "UNIQUE " or "") .. "INDEX "
    .. ((opts and opts.if_not_exists) and "IF NOT EXISTS " or "") .. q(name) .. " ON " .. _M.qtable(t)
    .. (present(ix.using) and (" USING " .. ix.using) or "") .. " (" .. ident_list(ix.columns) .. ")"
end

function _M.drop_index(t, name)
  return "DROP INDEX " .. (present(t.schema) and (q(t.schema) .. ".") or "") .. q(name)
end

return _M
