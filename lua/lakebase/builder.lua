--- Query builder: select/insert/update/delete over tables from lakebase.schema.
--
-- `require("lakebase.builder").install(methods)` adds `select insert update delete` to a db (or tx)
-- method table. Queries are mutable: every chain method changes the query and returns it.
-- Every identifier is quoted, every value is a `$n` parameter; the only database call is
-- `db:query_params(sql, params)`.
local s = require("lakebase.schema")
local value = require("lakebase.value")
local node = require("lakebase.cond").node

local _M = {}

local null = value.null
local quote_ident = s.quote_ident
local MAX_PARAMS = 65535

-- Misuse found inside helpers travels as a table and is raised again at the user's call site.
local misuse_mt = { __tostring = function(e) return e.msg end }

local function fail(msg)
  error(setmetatable({ msg = msg }, misuse_mt), 0)
end

local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local unpack = table.unpack or unpack

local function public(f)
  return function(...)
    local r = pack(pcall(f, ...))
    if r[1] then return unpack(r, 2, r.n) end
    local e = r[2]
    if getmetatable(e) == misuse_mt then error(e.msg, 2) end
    error(e, 0)
  end
end

local function meta_of(t) return s.meta(t) end
local function is_column(x) return s.is_column(x) and rawget(x, "table") ~= nil end

-- Rendering ---------------------------------------------------------------------------------------

local function param(ctx, v)
  local p = ctx.params
  local n = p.n + 1
  if n > MAX_PARAMS then
    fail("query needs more than " .. MAX_PARAMS .. " parameters (PostgreSQL's limit); split it")
  end
  p.n = n
  p[n] = v
  return "$" .. n
end

local render, compile_select

-- A raw fragment as written (its `$n` renumbered). Placed in a query it is grouped by render():
-- see there.
local function render_raw(ctx, r)
  local out, slots = {}, {}
  for i, piece in ipairs(r.pieces) do
    if type(piece) == "number" then
      if not slots[piece] then slots[piece] = param(ctx, r.args[piece]) end
      out[i] = slots[piece]
    else
      out[i] = piece
    end
  end
  return table.concat(out)
end

local function render_list(ctx, list, sep)
  local out = {}
  for i, e in ipairs(list) do out[i] = render(ctx, e) end
  return table.concat(out, sep or ", ")
end

local function subquery(ctx, q)
  if q._kind ~= "select" then fail("a subquery must be a select query, got a " .. q._kind .. " query") end
  return "(" .. compile_select(ctx, q, {}) .. ")"
end

local renderers = {}

function renderers.cmp(ctx, e)
  return render(ctx, e.col) .. " " .. e.sym .. " " .. render(ctx, e.val)
end

function renderers.null(ctx, e)
  return render(ctx, e.col) .. (e.neg and " IS NOT NULL" or " IS NULL")
end

function renderers.like(ctx, e)
  return render(ctx, e.col) .. (e.neg and " NOT" or "") .. (e.ilike and " ILIKE " or " LIKE ") .. render(ctx, e.val)
end

function renderers.between(ctx, e)
  return render(ctx, e.col) .. " BETWEEN " .. render(ctx, e.lo) .. " AND " .. render(ctx, e.hi)
end

function renderers.in_(ctx, e)
  if e.sub then
    local inner = s.is_raw(e.sub) and render(ctx, e.sub) or subquery(ctx, e.sub)
    return render(ctx, e.col) .. (e.neg and " NOT IN " or " IN ") .. inner
  end
  if #e.items == 0 then return e.neg and "true" or "false" end
  return render(ctx, e.col) .. (e.neg and " NOT IN (" or " IN (") .. render_list(ctx, e.items) .. ")"
end
renderers["in"] = renderers.in_

local function junction(ctx, e, word, empty)
  if #e.items == 0 then return empty end
  if #e.items == 1 then return render(ctx, e.items[1]) end
  return "(" .. render_list(ctx, e.items, " " .. word .. " ") .. ")"
end

renderers["and"] = function(ctx, e) return junction(ctx, e, "AND", "true") end
renderers["or"] = function(ctx, e) return junction(ctx, e, "OR", "false") end
renderers["not"] = function(ctx, e) return "NOT (" .. render(ctx, e.item) .. ")" end

function renderers.table()
  fail("a table-form condition {col = value} is only allowed in where()")
end

function renderers.excluded(_, e)
  return "EXCLUDED." .. quote_ident(e.col.name)
end

function renderers.count(ctx, e)
  local fn = e.fn or "count"
  if not e.col then return fn .. "(*)" end
  return fn .. "(" .. (e.distinct and "DISTINCT " or "") .. render(ctx, e.col) .. ")"
end

function renderers.alias(ctx, e)
  return render(ctx, e.expr) .. " AS " .. quote_ident(e.name)
end

function renderers.order(ctx, e)
  -- Ordering by an aliased select item names the alias.
  local target = (s.is_expr(e.expr) and e.expr.op == "alias") and quote_ident(e.expr.name) or render(ctx, e.expr)
  return target .. " " .. e.dir .. (e.nulls and (" NULLS " .. e.nulls) or "")
end

function renderers.exists(ctx, e)
  return "EXISTS " .. subquery(ctx, e.sub)
end

-- A raw fragment is always one operand: in parentheses, so an OR (or a comma, or a lower-precedence
-- operator) inside it cannot bind to the SQL around it, e.g. the AND of a tenant filter.
-- The only place it stands bare is a whole select or returning item (render_items).
function render(ctx, e)
  if is_column(e) then return e.qname end
  if s.is_expr(e) then return renderers[e.op](ctx, e) end
  if s.is_raw(e) then return "(" .. render_raw(ctx, e) .. ")" end
  if s.is_query(e) then return subquery(ctx, e) end
  if type(e) == "table" and e.value ~= nil then return param(ctx, e.value) end
  if e == s.DEFAULT then return "DEFAULT" end
  fail("cannot place " .. tostring(e) .. " in SQL")
end

-- Conditions: table form and validation ------------------------------------------------------------------

local function column_of(t, key, what)
  local m = meta_of(t)
  if is_column(key) then
    if rawget(key, "table") ~= t then
      fail(what .. ": column " .. s.col_label(key) .. " is not a column of " .. m.display)
    end
    return key
  end
  if type(key) ~= "string" then
    fail(what .. ": keys must be column names, got a " .. type(key))
  end
  local c = m.by_name[key]
  if not c then fail(what .. ": table " .. m.display .. " has no column '" .. key .. "'") end
  return c
end

local function sort_columns(list)
  table.sort(list, function(a, b)
    local ca, cb = a[1], b[1]
    if ca.table ~= cb.table then return meta_of(ca.table).display < meta_of(cb.table).display end
    return ca._index < cb._index
  end)
  return list
end

-- Validate a Lua-table map {col = value} against table t: a sorted list of {column, operand}.
local function map_entries(t, map, what, encode_null)
  local list = {}
  for k, v in pairs(map) do
    local c
    if is_column(k) then
      c = k
    else
      c = column_of(t, k, what)
    end
    local val
    if v == null and not encode_null then
      val = null
    elseif is_column(v) or s.is_raw(v) or s.is_expr(v) or v == s.DEFAULT or s.is_query(v) then
      val = v
    else
      local ev, err = s.encode(c, v)
      if ev == nil then fail(what .. ": " .. err) end
      val = { value = ev }
    end
    list[#list + 1] = { c, val }
  end
  return sort_columns(list)
end

-- An empty AND (from {} or s.and_(nil)) filters nothing.
local function is_empty(e)
  return s.is_expr(e) and e.op == "and" and #e.items == 0
end

-- Replace table-form nodes (at any depth) by AND of equalities over table t; check the node kinds.
local function resolve(t, e, what)
  if s.is_raw(e) then return e end
  if not s.is_expr(e) then
    fail(what .. ": condition expected (column comparison, s.and_/or_/not_, s.raw or {col = value}), got "
      .. tostring(e))
  end
  if e.op == "table" then
    if not t then fail(what .. ": a {col = value} condition needs the query's table") end
    local items = {}
    for i, entry in ipairs(map_entries(t, e.map, what, false)) do
      local c, v = entry[1], entry[2]
      if v == null then
        items[i] = node({ op = "null", col = c, neg = false })
      elseif v == s.DEFAULT then
        fail(what .. ": DEFAULT is not a value to compare with")
      else
        items[i] = node({ op = "cmp", col = c, sym = "=", val = v })
      end
    end
    return node({ op = "and", items = items })
  end
  if e.op == "and" or e.op == "or" then
    -- An empty AND is true: it drops out of an AND and makes an OR true (no filter at all).
    local items = {}
    for _, item in ipairs(e.items) do
      local r = resolve(t, item, what)
      if is_empty(r) then
        if e.op == "or" then return r end
      else
        items[#items + 1] = r
      end
    end
    return node({ op = e.op, items = items })
  end
  if e.op == "not" then
    local r = resolve(t, e.item, what)
    if is_empty(r) then return node({ op = "or", items = {} }) end -- NOT true
    return node({ op = "not", item = r })
  end
  if e.op == "order" or e.op == "alias" or e.op == "excluded" then
    fail(what .. ": " .. e.op .. " is not a condition")
  end
  return e
end

local function to_cond(t, v, what)
  if v == nil then fail(what .. ": condition expected, got nil") end
  if type(v) == "table" and not s.is_expr(v) and not s.is_raw(v) and not is_column(v)
      and not s.is_table(v) and not s.is_query(v) and not value.kind(v) then
    v = node({ op = "table", map = v })
  end
  return resolve(t, v, what)
end

local function add_where(q, list, cond, what)
  local c = to_cond(q:_main(), cond, what)
  if not is_empty(c) then list[#list + 1] = c end
end

local function render_where(ctx, list)
  if #list == 0 then return "" end
  if #list == 1 then return " WHERE " .. render(ctx, list[1]) end
  local out = {}
  for i, c in ipairs(list) do out[i] = render(ctx, c) end
  return " WHERE " .. table.concat(out, " AND ")
end

-- Select-list items: a table (all its columns), a column, an expression or raw.
local function check_item(v, what)
  if s.is_table(v) or is_column(v) or s.is_raw(v) or s.is_expr(v) then return v end
  if s.is_column(v) then fail(what .. ": column definition is not part of a table") end
  if type(v) == "string" then
    fail(what .. ": got the string '" .. v .. "'; pass a column (items.name) or s.raw(sql)")
  end
  fail(what .. ": column, table or expression expected, got " .. tostring(v))
end

-- A raw item stands bare: it is a whole list item and may carry its own alias (s.raw("1 AS one")),
-- and nothing binds looser than the comma after it.
local function render_items(ctx, items)
  local out = {}
  for _, v in ipairs(items) do
    if s.is_table(v) then
      for _, c in ipairs(meta_of(v).columns) do out[#out + 1] = c.qname end
    elseif s.is_raw(v) then
      out[#out + 1] = render_raw(ctx, v)
    else
      out[#out + 1] = render(ctx, v)
    end
  end
  return table.concat(out, ", ")
end

local function non_negative_int(n, what)
  if type(n) ~= "number" or n < 0 or n ~= math.floor(n) or n ~= n or n == math.huge then
    fail(what .. ": non-negative integer expected, got " .. tostring(n))
  end
  if math.tointeger then n = math.tointeger(n) or n end
  return n
end

-- Query objects ---------------------------------------------------------------------------------------------

local methods = { select = {}, insert = {}, update = {}, delete = {} }
local query_mt = {}
for kind, m in pairs(methods) do
  query_mt[kind] = {
    __index = function(_, k)
      local f = m[k]
      if f then return f end
      if type(k) == "string" and k:sub(1, 1) ~= "_" then
        error(kind .. " query has no method '" .. k .. "'", 2)
      end
      return nil
    end,
    __tostring = function(q)
      local t = q:_main()
      return "lakebase." .. kind .. "(" .. (t and meta_of(t).display or "") .. ")"
    end,
  }
end

local function new_query(kind, db, t)
  return setmetatable({ _query = true, _kind = kind, _db = db, _table = t, _where = {}, _returning = nil },
    query_mt[kind])
end

local function define(kinds, name, f)
  local wrapped = public(f)
  for k in kinds:gmatch("%a+") do methods[k][name] = wrapped end
end

local function main_table(q)
  if q._table then return q._table end
  for _, v in ipairs(q._items or {}) do
    if s.is_table(v) then return v end
    if is_column(v) then return v.table end
    if s.is_expr(v) and v.op == "alias" and is_column(v.expr) then return v.expr.table end
  end
  return nil
end
for _, m in pairs(methods) do m._main = main_table end

local function check_table(t, what)
  if not s.is_table(t) then fail(what .. ": table from s.table expected, got " .. tostring(t)) end
  return t
end

-- where(cond): cond is a condition, s.raw, or {col = value} over the query's table. Calls add up (AND).
define("select update delete", "where", function(q, cond)
  add_where(q, q._where, cond, "where")
  return q
end)

define("update delete", "all_rows", function(q)
  q._all_rows = true
  return q
end)

-- returning(...): columns/expressions; no argument = every column of the table.
define("insert update delete", "returning", function(q, ...)
  local items = {}
  for i = 1, select("#", ...) do items[i] = check_item((select(i, ...)), "returning") end
  if #items == 0 then items[1] = q._table end
  q._returning = items
  return q
end)

local function render_returning(ctx, q)
  if not q._returning then return "" end
  return " RETURNING " .. render_items(ctx, q._returning)
end

-- select ------------------------------------------------------------------------------------------------------

define("select", "from", function(q, t)
  q._table = check_table(t, "from")
  return q
end)

define("select", "distinct", function(q)
  q._distinct = true
  return q
end)

local function join(kind)
  return function(q, t, on)
    check_table(t, kind:lower() .. " join")
    local item = { kind = kind, table = t }
    if kind ~= "CROSS" then
      if on == nil then fail(kind:lower() .. " join: an on condition is needed") end
      if type(on) == "table" and not s.is_expr(on) and not s.is_raw(on) then
        fail(kind:lower() .. " join: on must be a condition such as a.id:eq(b.a_id), not a table")
      end
      item.on = resolve(nil, on, kind:lower() .. " join")
    end
    q._joins = q._joins or {}
    q._joins[#q._joins + 1] = item
    return q
  end
end
define("select", "inner_join", join("INNER"))
define("select", "join", join("INNER"))
define("select", "left_join", join("LEFT"))
define("select", "right_join", join("RIGHT"))
define("select", "full_join", join("FULL"))
define("select", "cross_join", join("CROSS"))

define("select", "group_by", function(q, ...)
  q._group = q._group or {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if not (is_column(v) or s.is_raw(v) or s.is_expr(v)) then
      fail("group_by: column or expression expected, got " .. tostring(v))
    end
    q._group[#q._group + 1] = v
  end
  return q
end)

define("select", "having", function(q, cond)
  q._having = q._having or {}
  add_where(q, q._having, cond, "having")
  return q
end)

-- order_by(items.id, items.name:desc():nulls_last(), s.raw("random()")); calls add up.
define("select", "order_by", function(q, ...)
  q._order = q._order or {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if not (is_column(v) or s.is_raw(v) or s.is_expr(v)) then
      if type(v) == "string" then
        fail("order_by: got the string '" .. v .. "'; pass a column (items.name:desc()) or s.raw(sql)")
      end
      fail("order_by: column or ordering expected, got " .. tostring(v))
    end
    q._order[#q._order + 1] = v
  end
  return q
end)

define("select", "limit", function(q, n)
  q._limit = n ~= nil and non_negative_int(n, "limit") or nil
  return q
end)

define("select", "offset", function(q, n)
  q._offset = n ~= nil and non_negative_int(n, "offset") or nil
  return q
end)

local LOCKS = { update = "FOR UPDATE", no_key_update = "FOR NO KEY UPDATE", share = "FOR SHARE",
  key_share = "FOR KEY SHARE" }

--- for_update(), or lock("share"|"update"|..., { skip_locked = true } | { nowait = true }).
define("select", "lock", function(q, mode, opts)
  local sql = LOCKS[mode or "update"]
  if not sql then fail("lock: mode update, no_key_update, share or key_share expected") end
  opts = opts or {}
  if opts.skip_locked then sql = sql .. " SKIP LOCKED" elseif opts.nowait then sql = sql .. " NOWAIT" end
  q._lock = sql
  return q
end)

define("select", "for_update", function(q, opts)
  return methods.select.lock(q, "update", opts)
end)

define("select", "as_count", function(q)
  local c = {}
  for k, v in pairs(q) do c[k] = v end
  c._count = true
  return setmetatable(c, getmetatable(q))
end)

function compile_select(ctx, q, opts)
  local t = q:_main()
  if q._count then
    local wrap = q._group or q._limit or q._offset or q._distinct
    if wrap then
      local inner = {}
      for k, v in pairs(q) do inner[k] = v end
      inner._count = nil
      inner._order = nil
      local sql = compile_select(ctx, setmetatable(inner, getmetatable(q)), {})
      return 'SELECT count(*) AS "count" FROM (' .. sql .. ') AS "counted"'
    end
  end
  local parts = { "SELECT " }
  if q._distinct and not q._count then parts[#parts + 1] = "DISTINCT " end
  if q._count then
    parts[#parts + 1] = 'count(*) AS "count"'
  elseif q._items and #q._items > 0 then
    parts[#parts + 1] = render_items(ctx, q._items)
  else
    parts[#parts + 1] = "*"
  end
  if t then parts[#parts + 1] = " FROM " .. meta_of(t).qname end
  for _, j in ipairs(q._joins or {}) do
    if not t then fail("join without a from() table") end
    parts[#parts + 1] = " " .. j.kind .. " JOIN " .. meta_of(j.table).qname
    if j.on then parts[#parts + 1] = " ON " .. render(ctx, j.on) end
  end
  parts[#parts + 1] = render_where(ctx, q._where)
  if q._group and #q._group > 0 then
    parts[#parts + 1] = " GROUP BY " .. render_list(ctx, q._group)
  end
  if q._having and #q._having > 0 then
    local h = render_where(ctx, q._having)
    parts[#parts + 1] = " HAVING " .. h:sub(8)
  end
  if not q._count then
    if q._order and #q._order > 0 then
      parts[#parts + 1] = " ORDER BY " .. render_list(ctx, q._order)
    end
    local limit = q._limit
    if limit == nil and opts.one then limit = 1 end
    if limit ~= nil then parts[#parts + 1] = " LIMIT " .. param(ctx, limit) end
    if q._offset ~= nil then parts[#parts + 1] = " OFFSET " .. param(ctx, q._offset) end
    if q._lock then parts[#parts + 1] = " " .. q._lock end
  end
  return table.concat(parts)
end

-- insert ------------------------------------------------------------------------------------------------------

local function is_row_list(v)
  return type(v) == "table" and v[1] ~= nil and type(v[1]) == "table" and not value.kind(v[1])
    and not is_column(v[1]) and not s.is_raw(v[1]) and not s.is_expr(v[1])
end

-- values(row, row, ...) or values({row, row, ...}); rows are {column = value}; calls add up.
-- A lone empty table is refused (an empty list of rows would otherwise insert a row of defaults):
-- default_values() says that explicitly.
define("insert", "values", function(q, ...)
  local rows = pack(...)
  if rows.n == 1 and type(rows[1]) == "table" and next(rows[1]) == nil then
    fail("values: empty table (no rows); for one row of defaults call default_values()")
  end
  if rows.n == 1 and is_row_list(rows[1]) then rows = rows[1]; rows.n = #rows end
  if rows.n == 0 then fail("values: at least one row expected") end
  q._rows = q._rows or {}
  for i = 1, rows.n do
    local row = rows[i]
    if type(row) ~= "table" or value.kind(row) or s.is_table(row) or s.is_expr(row) or s.is_raw(row)
        or is_column(row) then
      fail("values: row " .. i .. " must be a table {column = value}, got " .. tostring(row))
    end
    local entries = map_entries(q._table, row, "values (row " .. i .. ")", true)
    local map = {}
    for _, e in ipairs(entries) do
      if s.is_expr(e[2]) then
        fail("values (row " .. i .. "): column " .. s.col_label(e[1]) .. " cannot take an expression")
      end
      if e[1].table ~= q._table then
        fail("values (row " .. i .. "): column " .. s.col_label(e[1]) .. " is not a column of "
          .. meta_of(q._table).display)
      end
      map[e[1]] = e[2]
    end
    q._rows[#q._rows + 1] = map
  end
  return q
end)

-- default_values(): INSERT ... DEFAULT VALUES (one row of defaults).
define("insert", "default_values", function(q)
  q._rows = q._rows or {}
  q._rows[#q._rows + 1] = {}
  return q
end)

-- on_conflict(col, ...): the conflict target (columns of the table); none = any conflict (do_nothing only).
define("insert", "on_conflict", function(q, ...)
  local target = {}
  for i = 1, select("#", ...) do
    target[i] = column_of(q._table, (select(i, ...)), "on_conflict")
  end
  q._conflict = { target = target }
  return q
end)

define("insert", "do_nothing", function(q)
  if not q._conflict then fail("do_nothing: call on_conflict(...) first") end
  q._conflict.action = "nothing"
  return q
end)

-- do_update({col = value | s.excluded(col) | column | s.raw}, where_condition); with no table: every
-- inserted column except the target takes its EXCLUDED value.
define("insert", "do_update", function(q, set, cond)
  local c = q._conflict
  if not c then fail("do_update: call on_conflict(...) first") end
  if #c.target == 0 then fail("do_update: on_conflict needs target columns for DO UPDATE") end
  if set ~= nil and (type(set) ~= "table" or value.kind(set) or s.is_expr(set)) then
    fail("do_update: table {column = value} expected")
  end
  c.action = "update"
  if set ~= nil then
    c.set = map_entries(q._table, set, "do_update", true)
    if #c.set == 0 then fail("do_update: no column to set") end
  else
    c.set = nil
  end
  c.where = cond ~= nil and to_cond(q._table, cond, "do_update") or nil
  return q
end)

local function compile_insert(ctx, q)
  local m = meta_of(q._table)
  if not q._rows then fail("insert into " .. m.display .. ": call values(...) first") end
  -- Union of the keys of all rows, in declaration order; a row without a key gets DEFAULT.
  local used = {}
  for _, row in ipairs(q._rows) do
    for c in pairs(row) do used[c] = true end
  end
  local cols = {}
  for _, c in ipairs(m.columns) do
    if used[c] then cols[#cols + 1] = c end
  end
  local parts = { "INSERT INTO " .. m.qname }
  if #cols == 0 and #q._rows == 1 then
    parts[#parts + 1] = " DEFAULT VALUES"
  else
    if #cols == 0 then cols[1] = m.columns[1] end
    local names = {}
    for i, c in ipairs(cols) do names[i] = quote_ident(c.name) end
    parts[#parts + 1] = " (" .. table.concat(names, ", ") .. ") VALUES "
    local tuples = {}
    for r, row in ipairs(q._rows) do
      local vals = {}
      for i, c in ipairs(cols) do
        local v = row[c]
        if v == nil or v == s.DEFAULT then
          vals[i] = "DEFAULT"
        elseif v == null then
          vals[i] = param(ctx, null)
        else
          vals[i] = render(ctx, v)
        end
      end
      tuples[r] = "(" .. table.concat(vals, ", ") .. ")"
    end
    parts[#parts + 1] = table.concat(tuples, ", ")
  end
  local c = q._conflict
  if c then
    if not c.action then fail("on_conflict: finish with do_nothing() or do_update(...)") end
    parts[#parts + 1] = " ON CONFLICT"
    if #c.target > 0 then
      local names = {}
      for i, col in ipairs(c.target) do names[i] = quote_ident(col.name) end
      parts[#parts + 1] = " (" .. table.concat(names, ", ") .. ")"
    end
    if c.action == "nothing" then
      parts[#parts + 1] = " DO NOTHING"
    else
      local sets = {}
      if c.set then
        for i, e in ipairs(c.set) do
          local v = e[2]
          local rhs = v == null and param(ctx, null) or render(ctx, v)
          sets[i] = quote_ident(e[1].name) .. " = " .. rhs
        end
      else
        local target = {}
        for _, col in ipairs(c.target) do target[col] = true end
        for _, col in ipairs(cols) do
          if not target[col] then
            sets[#sets + 1] = quote_ident(col.name) .. " = EXCLUDED." .. quote_ident(col.name)
          end
        end
        if #sets == 0 then fail("do_update: every inserted column is in the conflict target; nothing to update") end
      end
      parts[#parts + 1] = " DO UPDATE SET " .. table.concat(sets, ", ")
      if c.where and not is_empty(c.where) then parts[#parts + 1] = " WHERE " .. render(ctx, c.where) end
    end
  end
  parts[#parts + 1] = render_returning(ctx, q)
  return table.concat(parts)
end

-- update ------------------------------------------------------------------------------------------------------

-- set({column = value | column | s.raw | s.DEFAULT}); calls merge.
define("update", "set", function(q, map)
  if type(map) ~= "table" or value.kind(map) or s.is_expr(map) or s.is_table(map) then
    fail("set: table {column = value} expected")
  end
  q._set = q._set or {}
  for _, e in ipairs(map_entries(q._table, map, "set", true)) do
    if e[1].table ~= q._table then
      fail("set: column " .. s.col_label(e[1]) .. " is not a column of " .. meta_of(q._table).display)
    end
    if s.is_expr(e[2]) then
      fail("set: column " .. s.col_label(e[1]) .. " cannot take an expression (use s.raw for SQL)")
    end
    q._set[e[1]] = e[2]
  end
  return q
end)

local function guard(q, verb)
  if #q._where == 0 and not q._all_rows then
    fail("refusing to " .. verb .. " every row of " .. meta_of(q._table).display
      .. ": add where(...) or call all_rows()")
  end
end

local function compile_update(ctx, q)
  local m = meta_of(q._table)
  local sets = {}
  for _, c in ipairs(m.columns) do
    local v = q._set and q._set[c]
    if v ~= nil then
      local rhs = v == null and param(ctx, null) or render(ctx, v)
      sets[#sets + 1] = quote_ident(c.name) .. " = " .. rhs
    end
  end
  if #sets == 0 then fail("update " .. m.display .. ": call set({...}) with at least one column") end
  guard(q, "update")
  return "UPDATE " .. m.qname .. " SET " .. table.concat(sets, ", ") .. render_where(ctx, q._where)
    .. render_returning(ctx, q)
end

local function compile_delete(ctx, q)
  guard(q, "delete")
  return "DELETE FROM " .. meta_of(q._table).qname .. render_where(ctx, q._where) .. render_returning(ctx, q)
end

-- Terminals ----------------------------------------------------------------------------------------------------

local compilers = { select = compile_select, insert = compile_insert, update = compile_update,
  delete = compile_delete }

local function compile(q, opts)
  local ctx = { params = { n = 0 } }
  local sql = compilers[q._kind](ctx, q, opts or {})
  return sql, ctx.params
end

--- The SQL text and its parameters (an array with `.n`).
define("select insert update delete", "to_sql", function(q)
  return compile(q)
end)

-- Runs q; `shape` turns the rows into what the terminal returns. Inside db:pipeline the
-- statement is queued instead (the pipeline applies shape to its result when it has run).
local function run(q, opts, shape)
  local db = q._db
  local ok, qp = pcall(function() return db.query_params end)
  if not ok or qp == nil then
    fail("this query has no database to run on (built without a db); use to_sql()")
  end
  local sql, params = compile(q, opts)
  if rawget(db, "_pipeline") then
    return db:_queue(sql, params, shape)
  end
  local rows, err = db:query_params(sql, params)
  if not rows or not shape then return rows, err end
  return shape(rows)
end

local function first_row(rows) return rows[1] end
local function affected(rows) return rows.affected_rows or #rows end
local function count_of(rows)
  local n = rows[1] and rows[1].count
  return tonumber(n) or n
end

--- All rows (an array, with `affected_rows` when the server reports a count), or nil, err.
define("select insert update delete", "all", function(q)
  return run(q)
end)

--- The first row, nil when there is none, or nil, err. A select without limit() gets LIMIT 1.
define("select insert update delete", "one", function(q)
  return run(q, { one = true }, first_row)
end)

--- The number of affected rows (for a select: rows returned), or nil, err.
define("select insert update delete", "exec", function(q)
  return run(q, nil, affected)
end)

--- count(*) of what the select would return (ignoring order_by), or nil, err.
define("select", "count", function(q)
  return run(methods.select.as_count(q), nil, count_of)
end)

-- Entry points --------------------------------------------------------------------------------------------------

--- db:select(...): tables, columns, s.count(), aliases or s.raw; the first table (or the first column's
-- table) is the FROM table unless from() says otherwise.
_M.select = public(function(db, ...)
  local q = new_query("select", db, nil)
  q._table = nil
  q._items = {}
  for i = 1, select("#", ...) do
    q._items[i] = check_item((select(i, ...)), "select")
  end
  return q
end)

_M.insert = public(function(db, t)
  return new_query("insert", db, check_table(t, "insert"))
end)

_M.update = public(function(db, t)
  return new_query("update", db, check_table(t, "update"))
end)

_M.delete = public(function(db, t)
  return new_query("delete", db, check_table(t, "delete"))
end)

--- Add select/insert/update/delete to a db or tx method table.
function _M.install(mt)
  if type(mt) ~= "table" then error("bad argument #1 to 'install' (method table expected)", 2) end
  mt.select = _M.select
  mt.insert = _M.insert
  mt.update = _M.update
  mt.delete = _M.delete
  return mt
end

return _M
