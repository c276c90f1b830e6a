--- Condition and expression nodes: what `items.id:eq(5)`, `s.and_(...)`, `s.count()`, `:asc()` and
-- `:as()` build. A node is a plain table `{ op = ..., ... }` with one metatable (`expr_mt`); the
-- builder (lakebase.builder) renders it, always with `$n` parameters.
--
-- Columns and raw fragments belong to lakebase.schema, which requires this module and calls
-- `install(schema)` once: that adds the comparison methods to its columns (`eq`, `in_`, `like`,
-- `between`, `asc`, `as`, ...) and to raw fragments (`asc`, `desc`, `as`), and re-exports the
-- constructors (`s.and_`, `s.or_`, `s.not_`, `s.count`, `s.exists`, ...) so that
-- `require("lakebase.schema")` stays the one door. This module never requires the schema (no loop).
local value = require("lakebase.value")
local sqltext = require("lakebase.sql")

local _M = {}

local null = value.null
local check_ident = sqltext.check_ident

-- What the schema owns, set by install: the column test and encoding, tables, raw fragments.
local is_column, is_table, is_raw, col_label, encode

-- The methods this module adds to columns (install copies them into schema.Column).
local Column = {}

local expr_mt = {}
_M.expr_mt = expr_mt

--- A node: a plain table `{ op = ..., ... }` with the one expression metatable.
local function node(t) return setmetatable(t, expr_mt) end
_M.node = node

function _M.is_expr(x) return getmetatable(x) == expr_mt end

local function is_query(x)
  return type(x) == "table" and rawget(x, "_query") == true
end
_M.is_query = is_query

local function bound(self, method)
  if not is_column(self) then
    error("bad self to '" .. method .. "' (column expected; use ':' to call it)", 3)
  end
  if not rawget(self, "table") then
    error("'" .. method .. "' on a column definition that is not part of a table", 3)
  end
end

-- An operand compared with column c: another column, a raw fragment, an expression, or a value
-- checked and encoded by the column's type.
local function operand(c, v, method, level)
  if is_column(v) or is_raw(v) or _M.is_expr(v) or is_query(v) then return v end
  if v == nil then
    error("bad argument #1 to '" .. method .. "' on " .. col_label(c)
      .. " (nil; use lakebase.null or is_null())", level + 1)
  end
  local ev, err = encode(c, v)
  if ev == nil then error(err, level + 1) end
  return { value = ev }
end
_M.operand = operand

local CMP = { eq = "=", ne = "<>", lt = "<", le = "<=", gt = ">", ge = ">=" }
for method, sym in pairs(CMP) do
  Column[method] = function(self, v)
    bound(self, method)
    if v == null and (method == "eq" or method == "ne") then
      return node({ op = "null", col = self, neg = method == "ne" })
    end
    return node({ op = "cmp", col = self, sym = sym, val = operand(self, v, method, 2) })
  end
end

function Column:is_null()
  bound(self, "is_null")
  return node({ op = "null", col = self, neg = false })
end

function Column:is_not_null()
  bound(self, "is_not_null")
  return node({ op = "null", col = self, neg = true })
end

local function like(self, pattern, method, ilike, neg)
  bound(self, method)
  if type(pattern) ~= "string" and not is_raw(pattern) then
    error("bad argument #1 to '" .. method .. "' (pattern string expected, got " .. type(pattern) .. ")", 3)
  end
  if type(pattern) == "string" and pattern:find("\0", 1, true) then
    error("bad argument #1 to '" .. method .. "' (pattern contains a NUL byte)", 3)
  end
  return node({ op = "like", col = self, ilike = ilike, neg = neg,
    val = is_raw(pattern) and pattern or { value = pattern } })
end

function Column:like(p) return like(self, p, "like", false, false) end
function Column:ilike(p) return like(self, p, "ilike", true, false) end
function Column:not_like(p) return like(self, p, "not_like", false, true) end
function Column:not_ilike(p) return like(self, p, "not_ilike", true, true) end

local function in_list(self, list, method, neg)
  bound(self, method)
  if is_query(list) or is_raw(list) then
    return node({ op = "in", col = self, neg = neg, sub = list })
  end
  if type(list) ~= "table" or value.kind(list) then
    error("bad argument #1 to '" .. method .. "' (list of values or a select query expected)", 3)
  end
  local n = #list
  for k in pairs(list) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then
      error("bad argument #1 to '" .. method .. "' (a sequence expected; key " .. tostring(k) .. ")", 3)
    end
  end
  local items = {}
  for i = 1, n do
    if list[i] == null then
      error("bad argument #1 to '" .. method .. "' (element " .. i
        .. " is NULL, which never matches; use is_null())", 3)
    end
    items[i] = operand(self, list[i], method, 3)
  end
  return node({ op = "in", col = self, neg = neg, items = items })
end

function Column:in_(list) return in_list(self, list, "in_", false) end
function Column:not_in(list) return in_list(self, list, "not_in", true) end

function Column:between(lo, hi)
  bound(self, "between")
  return node({ op = "between", col = self, lo = operand(self, lo, "between", 2),
    hi = operand(self, hi, "between", 2) })
end

local function order(self, dir)
  if not (is_column(self) or _M.is_expr(self) or is_raw(self)) then
    error("bad self to '" .. dir:lower() .. "' (column expected; use ':' to call it)", 3)
  end
  if is_column(self) then bound(self, dir:lower()) end
  return node({ op = "order", expr = self, dir = dir })
end

function Column:asc() return order(self, "ASC") end
function Column:desc() return order(self, "DESC") end

--- Select a column under another name: `items.id:as("item_id")`.
function Column:as(name)
  bound(self, "as")
  check_ident(name, "argument #1 to 'as' (alias)", 2)
  return node({ op = "alias", expr = self, name = name })
end

-- Methods of expression nodes: ordering nulls, aliases, ordering of aggregates.
local Expr = {}
expr_mt.__index = Expr

function Expr:nulls_first()
  if self.op ~= "order" then error("'nulls_first' applies to asc()/desc()", 2) end
  self.nulls = "FIRST"
  return self
end

function Expr:nulls_last()
  if self.op ~= "order" then error("'nulls_last' applies to asc()/desc()", 2) end
  self.nulls = "LAST"
  return self
end

function Expr:as(name)
  check_ident(name, "argument #1 to 'as' (alias)", 2)
  return node({ op = "alias", expr = self, name = name })
end

function Expr:asc() return order(self, "ASC") end
function Expr:desc() return order(self, "DESC") end

-- A raw fragment is an expression too (the builder wraps it in parentheses): it takes a direction
-- in order_by and an alias in a select list, s.raw("lower(name)"):desc(), s.raw("now()"):as("t").
local Raw = { asc = Expr.asc, desc = Expr.desc, as = Expr.as }

-- Aggregates compare with plain values (no column type): count():gt(5) in having().
for method, sym in pairs(CMP) do
  Expr[method] = function(self, v)
    if v == nil or (type(v) == "table" and not value.kind(v) and not is_column(v) and not is_raw(v)
        and not _M.is_expr(v)) then
      error("bad argument #1 to '" .. method .. "' (value expected)", 2)
    end
    local val = (is_column(v) or is_raw(v) or _M.is_expr(v)) and v or { value = v }
    return node({ op = "cmp", col = self, sym = sym, val = val })
  end
end

local function cond_arg(v, fname, i)
  if _M.is_expr(v) or is_raw(v) then return v end
  if type(v) == "table" and not is_column(v) and not is_table(v) and not is_query(v) and not value.kind(v) then
    return node({ op = "table", map = v })
  end
  error("bad argument #" .. i .. " to '" .. fname .. "' (condition expected, got " .. tostring(v) .. ")", 3)
end
_M.cond_arg = cond_arg

local function junction(op, fname, ...)
  local items = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if v ~= nil and v ~= false then items[#items + 1] = cond_arg(v, fname, i) end
  end
  return node({ op = op, items = items })
end

--- AND of conditions (nil and false arguments are skipped: handy for optional filters).
function _M.and_(...) return junction("and", "and_", ...) end
--- OR of conditions (nil and false arguments are skipped). An empty OR is false.
function _M.or_(...) return junction("or", "or_", ...) end

function _M.not_(c)
  return node({ op = "not", item = cond_arg(c, "not_", 1) })
end

--- In on_conflict():do_update({...}): the value proposed for insertion (EXCLUDED."col").
function _M.excluded(c)
  if not is_column(c) or not rawget(c, "table") then
    error("bad argument #1 to 'excluded' (column expected)", 2)
  end
  return node({ op = "excluded", col = c })
end

--- count(*) or count(column) / count(column, {distinct = true}) for select lists and having.
function _M.count(c, opts)
  if c ~= nil and not (is_column(c) and rawget(c, "table")) then
    error("bad argument #1 to 'count' (column or nothing expected)", 2)
  end
  return node({ op = "count", col = c, distinct = type(opts) == "table" and opts.distinct or nil })
end

-- sum, avg, min, max of a column (or expression) for select lists and having.
for _, fname in ipairs({ "sum", "avg", "min", "max" }) do
  _M[fname] = function(c)
    if not ((is_column(c) and rawget(c, "table")) or _M.is_expr(c) or is_raw(c)) then
      error("bad argument #1 to '" .. fname .. "' (column expected)", 2)
    end
    return node({ op = "count", fn = fname, col = c })
  end
end

--- EXISTS (subquery).
function _M.exists(q)
  if not is_query(q) then error("bad argument #1 to 'exists' (select query expected)", 2) end
  return node({ op = "exists", sub = q })
end

--- Escape %, _ and \ in a string so LIKE matches it literally (default escape character \).
function _M.escape_like(str)
  if type(str) ~= "string" then
    error("bad argument #1 to 'escape_like' (string expected, got " .. type(str) .. ")", 2)
  end
  return (str:gsub("[%%_\\]", "\\%0"))
end

-- The constructors and helpers that lakebase.schema re-exports under the same names.
local EXPORTS = { "expr_mt", "is_expr", "is_query", "operand", "cond_arg", "and_", "or_", "not_",
  "excluded", "count", "sum", "avg", "min", "max", "exists", "escape_like" }

--- Wires this module to lakebase.schema `s` (called once by the schema when it loads): the schema's
-- predicates and encoding, the column and raw-fragment methods, and the re-exports.
function _M.install(s)
  is_column, is_table, is_raw, col_label, encode = s.is_column, s.is_table, s.is_raw, s.col_label, s.encode
  for name, fn in pairs(Column) do s.Column[name] = fn end
  s.raw_mt.__index = Raw
  for _, name in ipairs(EXPORTS) do s[name] = _M[name] end
end

return _M
