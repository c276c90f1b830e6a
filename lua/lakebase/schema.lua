--- Table descriptions for the query builder and for DDL.
--
-- A table is described once with `s.table(name, columns, options)`; its columns are then reachable as
-- fields (`items.id`) and carry the condition methods the builder uses (`items.id:eq(1)`, made by
-- lakebase.cond, which this module installs and whose constructors it re-exports).
--
-- Declaration order: a Lua table literal has no order, so every column constructor (`s.text()`, ...)
-- takes a number from a process-wide counter; `s.table` orders the columns by it (ties, when one
-- column definition is reused twice in a table, by name). Writing the columns in the order you want
-- them in `CREATE TABLE` is therefore enough.
--
-- Arrays: `s.integer():array()` (one dimension). The SQL column name is the Lua key, verbatim.
local value = require("lakebase.value")
local json = require("lakebase.json")
local sqltext = require("lakebase.sql")
local ddl = require("lakebase.ddl")

local _M = {}

local null = value.null
local META = setmetatable({}, { __tostring = function() return "lakebase.schema.META" end })

-- Identifiers -----------------------------------------------------------------------------------

local MAX_IDENT = sqltext.MAX_IDENT
local check_ident = sqltext.check_ident

--- Quote an identifier for SQL (lakebase.sql.quote_ident).
_M.quote_ident = sqltext.quote_ident
local quote_ident = _M.quote_ident

-- Literals (DDL cannot take parameters) --------------------------------------------------------

local function is_integral(n)
  return n == n and n ~= math.huge and n ~= -math.huge and n == math.floor(n)
    and n >= -9007199254740992 and n <= 9007199254740992
end

local function format_number(n)
  if math.type and math.type(n) == "integer" then
    return string.format("%d", n)
  end
  if n ~= n then return "'NaN'" end
  if n == math.huge then return "'Infinity'" end
  if n == -math.huge then return "'-Infinity'" end
  if is_integral(n) then return string.format("%d", n) end
  return string.format("%.17g", n)
end

local function quote_string(str)
  if str:find("\0", 1, true) then
    return nil, "string contains a NUL byte"
  end
  -- An E'' literal reads the same whatever standard_conforming_strings is.
  if str:find("\\", 1, true) then
    return "E'" .. str:gsub("\\", "\\\\"):gsub("'", "''") .. "'"
  end
  return "'" .. str:gsub("'", "''") .. "'"
end

-- Array literal text: {"a","b"} with every element double-quoted (backslash and quote escaped).
local function array_literal(t)
  local out = {}
  for i = 1, #t do
    local e = t[i]
    if e == null then
      out[i] = "NULL"
    elseif type(e) == "number" then
      out[i] = format_number(e):gsub("'", "")
    elseif type(e) == "boolean" then
      out[i] = e and "t" or "f"
    elseif type(e) == "string" then
      out[i] = '"' .. e:gsub('[\\"]', "\\%0") .. '"'
    else
      error("array element " .. i .. " is a " .. type(e), 0)
    end
  end
  return "{" .. table.concat(out, ",") .. "}"
end

--- A Lua value as a SQL literal for DDL: numbers, booleans, strings (quoted), lakebase.null.
-- Returns the literal or nil, err.
function _M.literal(v)
  local t = type(v)
  if v == null then return "NULL" end
  if t == "number" then return format_number(v) end
  if t == "boolean" then return v and "true" or "false" end
  if t == "string" then return quote_string(v) end
  return nil, "cannot write a " .. t .. " as a SQL literal"
end

-- Column types ------------------------------------------------------------------------------------

-- kind drives parameter checks: int, num, bool, text, json, bytea.
local TYPES = {
  serial = { sql = "serial", kind = "int", serial = true },
  bigserial = { sql = "bigserial", kind = "int", serial = true },
  smallint = { sql = "smallint", kind = "int" },
  integer = { sql = "integer", kind = "int" },
  bigint = { sql = "bigint", kind = "int" },
  boolean = { sql = "boolean", kind = "bool" },
  text = { sql = "text", kind = "text" },
  varchar = { sql = "varchar", kind = "text" },
  numeric = { sql = "numeric", kind = "num" },
  real = { sql = "real", kind = "num" },
  double = { sql = "double precision", kind = "num" },
  uuid = { sql = "uuid", kind = "text" },
  json = { sql = "json", kind = "json" },
  jsonb = { sql = "jsonb", kind = "json" },
  date = { sql = "date", kind = "text" },
  timestamp = { sql = "timestamp", kind = "text" },
  timestamptz = { sql = "timestamptz", kind = "text" },
  interval = { sql = "interval", kind = "text" },
  bytea = { sql = "bytea", kind = "bytea" },
}
_M.TYPES = TYPES

local column_mt = {}
local Column = {}
column_mt.__index = Column
_M.Column = Column

local counter = 0

local function new_column(tname, sql)
  counter = counter + 1
  return setmetatable({
    _type = tname,
    _sql = sql or TYPES[tname].sql,
    _kind = TYPES[tname].kind,
    _order = counter,
  }, column_mt)
end

local function positive_int(v)
  return type(v) == "number" and v >= 1 and v == math.floor(v) and v < 2147483648
end

for name in pairs(TYPES) do
  if name ~= "varchar" and name ~= "numeric" then
    _M[name] = function()
      return new_column(name)
    end
  end
end

--- varchar(n) (n optional: plain varchar).
function _M.varchar(n)
  if n ~= nil and not positive_int(n) then
    error("bad argument #1 to 'varchar' (positive integer length expected)", 2)
  end
  return new_column("varchar", n and ("varchar(" .. string.format("%d", n) .. ")") or "varchar")
end

--- numeric(precision, scale) (both optional; scale needs precision).
function _M.numeric(p, s)
  if p ~= nil and not positive_int(p) then
    error("bad argument #1 to 'numeric' (positive integer precision expected)", 2)
  end
  if s ~= nil then
    if p == nil then error("bad argument #2 to 'numeric' (scale needs a precision)", 2) end
    if type(s) ~= "number" or s ~= math.floor(s) or s < 0 or s > p then
      error("bad argument #2 to 'numeric' (scale must be an integer between 0 and the precision)", 2)
    end
  end
  local sql = "numeric"
  if p and s then
    sql = string.format("numeric(%d, %d)", p, s)
  elseif p then
    sql = string.format("numeric(%d)", p)
  end
  return new_column("numeric", sql)
end

local function is_column(x)
  return getmetatable(x) == column_mt
end
_M.is_column = is_column

local function check_def(self, method)
  if not is_column(self) then
    error("bad self to '" .. method .. "' (column definition expected; use ':' to call it)", 3)
  end
  if rawget(self, "table") then
    error("'" .. method .. "' on column " .. rawget(self, "name") .. " after it was added to a table", 3)
  end
end

--- Make the column a one-dimension array of its type.
function Column:array()
  check_def(self, "array")
  if TYPES[self._type].serial then
    error("bad column: a " .. self._type .. " cannot be an array", 2)
  end
  if self._array then error("bad column: arrays have one dimension here", 2) end
  self._array = true
  return self
end

function Column:primary_key()
  check_def(self, "primary_key")
  self._pk = true
  return self
end

function Column:not_null()
  check_def(self, "not_null")
  self._nn = true
  return self
end

function Column:unique()
  check_def(self, "unique")
  self._unique = true
  return self
end

--- A default: a Lua value (written as a literal) or `s.raw("expr")` (no parameters).
function Column:default(v)
  check_def(self, "default")
  if v == nil then error("bad argument #1 to 'default' (value expected, got nil)", 2) end
  self._default = { v }
  return self
end

function Column:default_now()
  check_def(self, "default_now")
  self._default = { _M.raw("now()") }
  return self
end

local ACTIONS = {
  cascade = "CASCADE", restrict = "RESTRICT", no_action = "NO ACTION", set_null = "SET NULL",
  set_default = "SET DEFAULT",
}

local function action(v, opt)
  if v == nil then return nil end
  local key = type(v) == "string" and v:lower():gsub("[%s_]+", "_") or nil
  local sql = key and ACTIONS[key]
  if not sql then
    error("bad " .. opt .. " '" .. tostring(v) .. "' (cascade, restrict, no action, set null or set default)", 3)
  end
  return sql
end

--- references(column, {on_delete=, on_update=}); column may be a function returning it (self reference).
function Column:references(col, opts)
  check_def(self, "references")
  if not is_column(col) and type(col) ~= "function" then
    error("bad argument #1 to 'references' (column or function returning a column expected)", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'references' (table expected)", 2)
  end
  opts = opts or {}
  self._refs = { col = col, on_delete = action(opts.on_delete, "on_delete"),
    on_update = action(opts.on_update, "on_update") }
  return self
end

-- Raw fragments -------------------------------------------------------------------------------------

local raw_mt = {}
_M.raw_mt = raw_mt

--- Split SQL text at its placeholders (lakebase.sql.split_placeholders).
_M.split_placeholders = sqltext.split_placeholders

--- A SQL fragment with its own parameters `$1..$n` (renumbered when it is placed in a query).
function _M.raw(sql, ...)
  if type(sql) ~= "string" then
    error("bad argument #1 to 'raw' (string expected, got " .. type(sql) .. ")", 2)
  end
  local n = select("#", ...)
  local args = { n = n, ... }
  for i = 1, n do
    local v = args[i]
    if v == nil then
      args[i] = null
    elseif type(v) == "string" and v:find("\0", 1, true) then
      error("bad argument #" .. (i + 1) .. " to 'raw' (string contains a NUL byte, which a text parameter"
        .. " cannot hold; use lakebase.bytea for bytes)", 2)
    elseif type(v) == "table" and not value.kind(v) then
      error("bad argument #" .. (i + 1) .. " to 'raw' (plain table: wrap it with lakebase.json, lakebase.array"
        .. " or lakebase.bytea)", 2)
    elseif v ~= null and type(v) ~= "table" and type(v) ~= "string" and type(v) ~= "number"
        and type(v) ~= "boolean" then
      error("bad argument #" .. (i + 1) .. " to 'raw' (" .. type(v) .. " cannot be a parameter)", 2)
    end
  end
  local pieces, err_or_comment = _M.split_placeholders(sql, n)
  if not pieces then error("bad argument #1 to 'raw' (" .. err_or_comment .. ")", 2) end
  if err_or_comment then
    -- A `--` comment at the end would swallow the SQL placed after the fragment (ORDER BY, LIMIT,
    -- RETURNING, the rest of a column definition): a newline ends it.
    sql = sql .. "\n"
    pieces[#pieces] = pieces[#pieces] .. "\n"
  end
  return setmetatable({ sql = sql, args = args, pieces = pieces }, raw_mt)
end

function _M.is_raw(x)
  return getmetatable(x) == raw_mt
end

-- Tables ------------------------------------------------------------------------------------------------

local table_mt = {}

table_mt.__index = function(t, k)
  if type(k) == "string" and k:sub(1, 2) ~= "__" then
    error("table " .. rawget(t, META).display .. " has no column '" .. k .. "'", 2)
  end
  return nil
end
table_mt.__newindex = function(t)
  error("table " .. rawget(t, META).display .. " is read-only", 2)
end
table_mt.__tostring = function(t)
  return "lakebase.table(" .. rawget(t, META).display .. ")"
end

column_mt.__tostring = function(c)
  local t = rawget(c, "table")
  return "lakebase.column(" .. (t and (rawget(t, META).display .. ".") or "")
    .. (rawget(c, "name") or "?") .. " " .. c._sql .. (c._array and "[]" or "") .. ")"
end

local function is_table(x)
  return type(x) == "table" and getmetatable(x) == table_mt
end
_M.is_table = is_table

--- The private description of a table object (for the builder and DDL).
function _M.meta(t)
  if not is_table(t) then return nil end
  return rawget(t, META)
end

local function name_list(list, t, what, level)
  if type(list) == "string" then list = { list } end
  if type(list) ~= "table" or #list == 0 then
    error("bad " .. what .. " (list of column names expected)", level + 1)
  end
  local out = {}
  for i, n in ipairs(list) do
    if is_column(n) then n = rawget(n, "name") end
    if type(n) ~= "string" or not t.by_name[n] then
      error("bad " .. what .. " (unknown column '" .. tostring(n) .. "')", level + 1)
    end
    out[i] = n
  end
  return out
end

--- Describe a table.
-- @param name table name (used verbatim: a dot is part of the name; use opts.schema)
-- @param columns `{ lua_name = s.type()... }`
-- @param opts `{ schema = "analytics", primary_key = {"a","b"}, unique = { {"a","b"}, {columns={"c"}, name="x"} },
--   indexes = { {"a"}, {columns={"a","b"}, unique=true, name="i", using="gin"} } }`
function _M.table(name, columns, opts)
  check_ident(name, "argument #1 to 'table' (table name)", 2)
  if type(columns) ~= "table" then
    error("bad argument #2 to 'table' (table of columns expected)", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #3 to 'table' (options table expected)", 2)
  end
  opts = opts or {}
  if opts.schema ~= nil then check_ident(opts.schema, "option 'schema'", 2) end

  local qname = (opts.schema and (quote_ident(opts.schema) .. ".") or "") .. quote_ident(name)
  local meta = {
    name = name, schema = opts.schema, qname = qname,
    display = (opts.schema and (opts.schema .. ".") or "") .. name,
    columns = {}, by_name = {}, indexes = {}, uniques = {},
  }
  local t = setmetatable({ [META] = meta }, table_mt)

  local defs = {}
  for k, def in pairs(columns) do
    if type(k) ~= "string" then
      error("bad argument #2 to 'table' (column names must be strings, got " .. type(k) .. ")", 2)
    end
    check_ident(k, "column name", 2)
    if not is_column(def) or rawget(def, "table") then
      error("bad column '" .. k .. "' (column definition like s.text() expected)", 2)
    end
    defs[#defs + 1] = { name = k, def = def }
  end
  if #defs == 0 then error("bad argument #2 to 'table' (no columns)", 2) end
  table.sort(defs, function(a, b)
    if a.def._order ~= b.def._order then return a.def._order < b.def._order end
    return a.name < b.name
  end)
  for i, d in ipairs(defs) do
    local c = {}
    for k, v in pairs(d.def) do c[k] = v end
    c.name, c.table, c.qname = d.name, t, qname .. "." .. quote_ident(d.name)
    setmetatable(c, column_mt)
    c._index = i
    meta.columns[i] = c
    meta.by_name[d.name] = c
    rawset(t, d.name, c)
  end

  -- Primary key: column-level flags or opts.primary_key, not both.
  local pk = {}
  for _, c in ipairs(meta.columns) do
    if c._pk then pk[#pk + 1] = c.name end
  end
  if opts.primary_key ~= nil then
    if #pk > 0 then
      error("bad option 'primary_key' (columns already declare primary_key())", 2)
    end
    pk = name_list(opts.primary_key, meta, "option 'primary_key'", 2)
    meta.pk_table = true
  elseif #pk > 1 then
    error("bad table " .. meta.display .. " (several columns declare primary_key(): use the primary_key option"
      .. " for a composite key)", 2)
  end
  meta.primary_key = pk

  if opts.unique ~= nil then
    if type(opts.unique) ~= "table" then error("bad option 'unique' (list expected)", 2) end
    for i, u in ipairs(opts.unique) do
      local cols, uname = u, nil
      if type(u) == "table" and u.columns then cols, uname = u.columns, u.name end
      if uname ~= nil then check_ident(uname, "unique constraint name", 2) end
      meta.uniques[i] = { columns = name_list(cols, meta, "option 'unique'", 2), name = uname }
    end
  end

  if opts.indexes ~= nil then
    if type(opts.indexes) ~= "table" then error("bad option 'indexes' (list expected)", 2) end
    for i, ix in ipairs(opts.indexes) do
      local cols, spec = ix, {}
      if type(ix) == "table" and ix.columns then cols, spec = ix.columns, ix end
      local names = name_list(cols, meta, "option 'indexes'", 2)
      local iname = spec.name or (name .. "_" .. table.concat(names, "_") .. "_idx"):sub(1, MAX_IDENT)
      check_ident(iname, "index name", 2)
      if spec.using ~= nil and (type(spec.using) ~= "string" or not spec.using:match("^%a[%w_]*$")) then
        error("bad index option 'using' (access method name such as btree or gin expected)", 2)
      end
      meta.indexes[i] = { name = iname, columns = names, unique = spec.unique and true or false,
        using = spec.using and spec.using:lower() or nil }
    end
  end

  -- Defaults are validated now, so a bad schema fails where it is written.
  for _, c in ipairs(meta.columns) do
    if c._default then
      local ok, e = pcall(_M.default_sql, c)
      if not ok then error(e, 2) end
    end
  end
  return t
end

-- Parameter checks (shared with the builder) --------------------------------------------------------

local function col_label(c)
  local t = rawget(c, "table")
  return (t and (rawget(t, META).display .. ".") or "") .. (rawget(c, "name") or "?")
end
_M.col_label = col_label

local function describe_value(v)
  if type(v) == "string" then
    if #v > 40 then return "string" end
    return "string " .. string.format("%q", v)
  end
  return type(v) .. " " .. tostring(v)
end

local function check_scalar(kind, v)
  local t = type(v)
  if kind == "int" then
    if t == "number" then
      if not is_integral(v) and not (math.type and math.type(v) == "integer") then
        return nil, "expects an integer, got " .. describe_value(v)
      end
      if math.tointeger then v = math.tointeger(v) or v end
      return v
    end
    if t == "string" then
      if not v:match("^%s*[-+]?%d+%s*$") then
        return nil, "expects an integer, got " .. describe_value(v)
      end
      return v
    end
    return nil, "expects an integer, got a " .. t
  elseif kind == "num" then
    if t == "number" or t == "string" then
      if t == "string" and v:find("\0", 1, true) then return nil, "string contains a NUL byte" end
      return v
    end
    return nil, "expects a number or a numeric string, got a " .. t
  elseif kind == "bool" then
    if t == "boolean" then return v end
    return nil, "expects a boolean, got a " .. t
  elseif kind == "text" then
    if t == "string" then
      if v:find("\0", 1, true) then
        return nil, "string contains a NUL byte (text cannot hold one; use a bytea column)"
      end
      return v
    end
    return nil, "expects a string, got a " .. t
  elseif kind == "bytea" then
    if t == "string" then return v end
    return nil, "expects a string (bytes), got a " .. t
  elseif kind == "json" then
    return v
  end
  return v
end

--- Check and wrap a Lua value for column `c`: returns the parameter value, or nil, message.
-- lakebase.null and explicit wrappers pass unchanged.
function _M.encode(c, v)
  if v == null then return null end
  if v == nil then return nil, "column " .. col_label(c) .. ": nil value (use lakebase.null for NULL)" end
  if value.kind(v) then return v end
  local kind = c._kind
  if c._array then
    if type(v) ~= "table" then
      return nil, "column " .. col_label(c) .. " is an array: expects a Lua table, got a " .. type(v)
    end
    local n = #v
    for k in pairs(v) do
      if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then
        return nil, "column " .. col_label(c) .. " is an array: expects a sequence (key " .. tostring(k) .. ")"
      end
    end
    local out = {}
    for i = 1, n do
      local e = v[i]
      if e == null or (kind == "json") then
        out[i] = e
      else
        local ev, err = check_scalar(kind, e)
        if ev == nil then return nil, "column " .. col_label(c) .. " element " .. i .. " " .. err end
        out[i] = ev
      end
    end
    return value.array(out)
  end
  if kind == "json" then
    local t = type(v)
    if t == "table" or t == "string" or t == "number" or t == "boolean" then
      return value.json(v)
    end
    return nil, "column " .. col_label(c) .. " expects a JSON value, got a " .. t
  end
  local ev, err = check_scalar(kind, v)
  if ev == nil then return nil, "column " .. col_label(c) .. " " .. err end
  if kind == "bytea" then return value.bytea(ev) end
  return ev
end

-- DDL ---------------------------------------------------------------------------------------------------

local function col_type_sql(c)
  return c._sql .. (c._array and "[]" or "")
end

--- The SQL of a column's DEFAULT expression, or nil when it has none.
function _M.default_sql(c)
  local d = c._default
  if not d then return nil end
  local v = d[1]
  if _M.is_raw(v) then
    if v.args.n > 0 then
      error("column " .. col_label(c) .. ": a DEFAULT expression cannot take parameters", 2)
    end
    return v.sql
  end
  if v == null then return "NULL" end
  local label = "column " .. col_label(c) .. " default: "
  local lit, err
  if c._array then
    if type(v) ~= "table" then error(label .. "expects a Lua table for an array column", 2) end
    local ok, text = pcall(array_literal, value.kind(v) == "array" and v.value or v)
    if not ok then error(label .. text, 2) end
    for _, e in ipairs(v) do
      if e ~= null then
        local _, cerr = check_scalar(c._kind, e)
        if cerr then error(label .. cerr, 2) end
      end
    end
    lit, err = quote_string(text)
  elseif c._kind == "json" then
    local ok, text = pcall(json.encode, value.kind(v) == "json" and v.value or v)
    if not ok then error(label .. text, 2) end
    lit, err = quote_string(text)
  elseif c._kind == "bytea" then
    if type(v) ~= "string" then error(label .. "expects a string", 2) end
    local hex = v:gsub(".", function(ch) return string.format("%02x", ch:byte()) end)
    lit = quote_string("\\x" .. hex)
  else
    local _, cerr = check_scalar(c._kind, v)
    if cerr then error(label .. cerr, 2) end
    lit, err = _M.literal(v)
  end
  if not lit then error(label .. err, 2) end
  return lit
end

local function resolve_ref(c)
  local r = c._refs
  if not r then return nil end
  local target = r.col
  if type(target) == "function" then target = target() end
  if not is_column(target) or not rawget(target, "table") then
    error("column " .. col_label(c) .. ": references() target is not a column of a table", 3)
  end
  return target, r
end

local function check_table_arg(t, fname)
  if not is_table(t) then
    error("bad argument #1 to '" .. fname .. "' (table from s.table expected)", 3)
  end
  return rawget(t, META)
end

-- DDL is written by lakebase.ddl from the table's snapshot form (the same writer as `lakebase
-- generate`, so both create the same table).
local function snapshot_of(t)
  return ddl.table_snapshot(_M.describe(t))
end

local function index_statements(snap, opts)
  local out = {}
  for _, name in ipairs(ddl.sorted_keys(snap.indexes)) do
    out[#out + 1] = ddl.create_index(snap, name, snap.indexes[name], opts)
  end
  return out
end

--- CREATE INDEX statements of a table (a list, each without the trailing semicolon).
function _M.create_index_sql(t, opts)
  check_table_arg(t, "create_index_sql")
  return index_statements(snapshot_of(t), opts)
end

--- The DDL of a table: CREATE TABLE (constraints and foreign keys inside) then its CREATE INDEX
-- statements, each ending in ";".
-- @param opts `{ if_not_exists = true }` (applies to the table and its indexes)
-- @return the DDL text, and the list of statements (without semicolons)
function _M.create_table_sql(t, opts)
  check_table_arg(t, "create_table_sql")
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'create_table_sql' (options table expected)", 2)
  end
  opts = opts or {}
  local snap = snapshot_of(t)
  local stmts = { ddl.create_table(snap, { if_not_exists = opts.if_not_exists, foreign_keys = true }) }
  for _, stmt in ipairs(index_statements(snap, opts)) do stmts[#stmts + 1] = stmt end
  local text = {}
  for i, stmt in ipairs(stmts) do text[i] = stmt .. ";" end
  return table.concat(text, "\n"), stmts
end

--- One column's definition for ALTER TABLE ... ADD COLUMN: `"name" type NOT NULL ... CONSTRAINT ...`.
function _M.column_sql(c)
  if not is_column(c) or not rawget(c, "table") then
    error("bad argument #1 to 'column_sql' (column of a table expected)", 2)
  end
  return ddl.column_with_constraints(snapshot_of(rawget(c, "table")), c.name)
end

--- DROP TABLE for a table. opts: `{ if_exists = true, cascade = true }`.
function _M.drop_table_sql(t, opts)
  local meta = check_table_arg(t, "drop_table_sql")
  opts = opts or {}
  return "DROP TABLE " .. (opts.if_exists and "IF EXISTS " or "") .. meta.qname
    .. (opts.cascade and " CASCADE" or "")
end

--- A plain, machine-readable description of a table (for snapshots and diffs).
-- `{ name, schema, columns = { {name, type, array, not_null, primary_key, unique, default, references} },
--    primary_key = {names}, indexes = { {name, columns, unique, using} },
--    constraints = { {kind = "primary_key"|"unique", name, columns} } }`
-- `type` is the SQL type as written in DDL ("numeric(10, 2)", "text[]"); `default` the SQL of the
-- DEFAULT expression; `not_null` is true for primary key columns.
function _M.describe(t)
  local meta = check_table_arg(t, "describe")
  local pkset = {}
  for _, n in ipairs(meta.primary_key) do pkset[n] = true end
  local d = { name = meta.name, schema = meta.schema, columns = {}, indexes = {}, constraints = {},
    primary_key = {} }
  for i, n in ipairs(meta.primary_key) do d.primary_key[i] = n end
  for i, c in ipairs(meta.columns) do
    local col = {
      name = c.name, type = col_type_sql(c), base_type = c._type, array = c._array and true or false,
      not_null = (c._nn or pkset[c.name]) and true or false,
      primary_key = pkset[c.name] and true or false,
      unique = c._unique and true or false,
      default = _M.default_sql(c),
    }
    local target, r = resolve_ref(c)
    if target then
      local tm = rawget(rawget(target, "table"), META)
      col.references = { table = tm.name, schema = tm.schema, column = target.name,
        on_delete = r.on_delete, on_update = r.on_update }
    end
    d.columns[i] = col
  end
  if #meta.primary_key > 0 then
    d.constraints[#d.constraints + 1] = { kind = "primary_key", columns = d.primary_key }
  end
  for _, u in ipairs(meta.uniques) do
    local cols = {}
    for i, n in ipairs(u.columns) do cols[i] = n end
    d.constraints[#d.constraints + 1] = { kind = "unique", name = u.name, columns = cols }
  end
  for i, ix in ipairs(meta.indexes) do
    local cols = {}
    for j, n in ipairs(ix.columns) do cols[j] = n end
    d.indexes[i] = { name = ix.name, columns = cols, unique = ix.unique, using = ix.using }
  end
  return d
end

--- The columns of a table, in declaration order (a new array).
function _M.columns(t)
  local meta = check_table_arg(t, "columns")
  local out = {}
  for i, c in ipairs(meta.columns) do out[i] = c end
  return out
end

--- Insert/update: the column's DEFAULT.
_M.DEFAULT = setmetatable({}, { __tostring = function() return "lakebase.schema.DEFAULT" end })

-- Conditions and expressions (lakebase.cond): the column and raw-fragment methods, and the
-- constructors re-exported here (s.and_, s.or_, s.not_, s.count, s.exists, s.escape_like, ...).
require("lakebase.cond").install(_M)

return _M
