-- luacheck: std +ngx_lua
--- The lakebase OpenResty example: a small JSON API over the example `items` table
-- (examples/schema.lua, examples/migrations/0001_items.sql).
--
--   GET    /health        200 {"status":"ok"} | 503
--   GET    /items         200 [item, ...]            (?limit=1..100, default 50, newest first)
--   POST   /items         201 item | 400 {"error":..., "fields":{...}}
--   GET    /items/:id     200 item | 404
--   PATCH  /items/:id     200 item | 400 | 404
--   DELETE /items/:id     200 {"deleted":id} | 404
--   GET    /metrics       200 the Prometheus text format of every worker (lakebase.ngx.prometheus)
--   GET    /read/items    like GET /items, served by db:reader(): the read-only endpoint when
--                         LAKEBASE_READ_HOST is set (replication lag applies), else the primary
-- Database failures answer 500 {"error":"internal error"}: the details go to the error log only.
--
-- Queries are written with the query builder over examples/schema.lua; every one runs in nginx's
-- `lakebase` thread pool (lakebase.ngx), so a slow query never holds up the worker's other requests.
local lakebase = require("lakebase")
local items = require("examples.schema").items

local _M = {}

-- JSON: lakebase's own codec (the C core's), whatever cjson build is installed or none. Its null
-- is lakebase.null (the same value as ngx.null); rows from the database are plain tables, so a
-- list is marked with json.array to be written as [] when it is empty.
local json = lakebase.json

-- One db per worker process (the C pool behind it is process-wide); not per request. Inside nginx
-- lakebase.new returns the thread-pool bridge (lakebase.ngx): same API, nothing blocks the loop.
-- Its reader is bound to the read-only endpoint (its own pool and credential) when one is set.
local db, db_err, reader

function _M.init_worker()
  db, db_err = lakebase.new({ application_name = "lakebase-openresty-example" })
  if db then
    reader, db_err = db:reader()
    if not reader then db = nil end
  end
  if not db then
    ngx.log(ngx.ERR, "lakebase: ", tostring(db_err))
  end
  -- every second into the shared dict that GET /metrics reads (nginx.conf: lua_shared_dict)
  local ok, err = require("lakebase.ngx").start_metrics("lakebase_metrics", 1)
  if not ok then ngx.log(ngx.ERR, "lakebase: ", tostring(err)) end
end

--- GET /metrics: the Prometheus text of every worker, each series labelled worker="<id>".
function _M.metrics()
  local text, err = require("lakebase.ngx").prometheus("lakebase_metrics")
  if not text then
    ngx.log(ngx.ERR, "lakebase: ", tostring(err))
    return ngx.exit(500)
  end
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(text)
end

--- The worker's db (for extra locations, e.g. the spec's).
function _M.db()
  return db, db_err
end

--- The worker's reader.
function _M.reader()
  return reader, db_err
end

local function reply(status, body)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.print(json.encode(body, { sort_keys = false }))
  return ngx.exit(status)
end

local function db_failure(err)
  -- The error object names the SQLSTATE and the server's message; it never holds a secret, but
  -- neither it nor the SQL belongs in a response.
  ngx.log(ngx.ERR, "lakebase: ", tostring(err))
  return reply(500, { error = "internal error" })
end

-- The builder's terminals (all/one) call db:query_params, which lakebase.ngx runs in the pool.
local function item_columns()
  return items.id, items.name, items.price, items.tags, items.created_at
end

-- Validation --------------------------------------------------------------------------------

local function check_name(v, fields)
  if type(v) ~= "string" or v:match("^%s*$") then
    fields.name = "required: a non-empty string"
  elseif #v > 200 then
    fields.name = "at most 200 characters"
  end
end

local function check_price(v, fields)
  if v == nil or v == lakebase.null then return end
  if type(v) == "number" then v = tostring(v) end
  if type(v) ~= "string" or not (v:match("^%d+$") or v:match("^%d+%.%d%d?$")) then
    fields.price = "a decimal number with at most 2 decimals, e.g. \"3.80\""
  end
end

local function check_tags(v, fields)
  if v == nil or v == lakebase.null then return end
  if type(v) ~= "table" then
    fields.tags = "an array of strings"
    return
  end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  for i = 1, n do
    if type(v[i]) ~= "string" then
      fields.tags = "an array of strings"
      return
    end
  end
end

local function read_json_body()
  ngx.req.read_body()
  local raw = ngx.req.get_body_data()
  if not raw or raw == "" then
    return nil, "a JSON object body is required"
  end
  local body = json.decode(raw)
  if type(body) ~= "table" then
    return nil, "the body is not a JSON object"
  end
  return body
end

local function price_value(v)
  if v == nil or v == lakebase.null then return lakebase.null end
  return tostring(v) -- numeric(10,2): sent as text, exact
end

local function tags_value(v)
  if v == nil or v == lakebase.null then return lakebase.null end
  return lakebase.json(v)
end

-- Handlers ----------------------------------------------------------------------------------

local function health()
  local row, err = db:one("select 1 as ok")
  if not row then
    ngx.log(ngx.ERR, "lakebase: health: ", tostring(err))
    return reply(503, { status = "unavailable" })
  end
  return reply(200, { status = "ok" })
end

local function list_items(from)
  local limit = tonumber(ngx.var.arg_limit or 50)
  if not limit or limit < 1 or limit > 100 or limit % 1 ~= 0 then
    return reply(400, { error = "validation failed", fields = { limit = "an integer 1..100" } })
  end
  local rows, err = from:select(item_columns()):from(items):order_by(items.id:desc()):limit(limit):all()
  if not rows then return db_failure(err) end
  rows.affected_rows = nil
  return reply(200, json.array(rows))
end

local function create_item()
  local body, berr = read_json_body()
  if not body then return reply(400, { error = berr }) end
  local fields = {}
  check_name(body.name, fields)
  check_price(body.price, fields)
  check_tags(body.tags, fields)
  if next(fields) then
    return reply(400, { error = "validation failed", fields = fields })
  end
  local row, err = db:insert(items)
    :values({ name = body.name, price = price_value(body.price), tags = tags_value(body.tags) })
    :returning(item_columns())
    :one()
  if not row then return db_failure(err) end
  return reply(201, row)
end

local function get_item(id)
  local row, err = db:select(item_columns()):from(items):where(items.id:eq(id)):one()
  if err then return db_failure(err) end
  if not row then return reply(404, { error = "item not found" }) end
  return reply(200, row)
end

local function update_item(id)
  local body, berr = read_json_body()
  if not body then return reply(400, { error = berr }) end
  local fields, set = {}, {}
  if body.name ~= nil then check_name(body.name, fields); set.name = body.name end
  if body.price ~= nil then check_price(body.price, fields); set.price = price_value(body.price) end
  if body.tags ~= nil then check_tags(body.tags, fields); set.tags = tags_value(body.tags) end
  if next(fields) then
    return reply(400, { error = "validation failed", fields = fields })
  end
  if next(set) == nil then
    return reply(400, { error = "nothing to update: give name, price or tags" })
  end
  local row, err = db:update(items):set(set):where(items.id:eq(id)):returning(item_columns()):one()
  if err then return db_failure(err) end
  if not row then return reply(404, { error = "item not found" }) end
  return reply(200, row)
end

local function delete_item(id)
  local row, err = db:delete(items):where(items.id:eq(id)):returning(items.id):one()
  if err then return db_failure(err) end
  if not row then return reply(404, { error = "item not found" }) end
  return reply(200, { deleted = row.id })
end

--- content_by_lua entry point.
function _M.handle()
  if not db then
    ngx.log(ngx.ERR, "lakebase: not configured: ", tostring(db_err))
    return reply(503, { error = "database not configured" })
  end
  local method, uri = ngx.req.get_method(), ngx.var.uri
  if uri == "/health" and method == "GET" then
    return health()
  elseif uri == "/items" then
    if method == "GET" then return list_items(db) end
    if method == "POST" then return create_item() end
    return reply(405, { error = "method not allowed" })
  end
  if uri == "/read/items" then
    if method == "GET" then return list_items(reader) end
    return reply(405, { error = "method not allowed" })
  end
  local id = uri:match("^/items/([^/]+)$")
  if not id then
    return reply(404, { error = "not found" })
  end
  if not id:match("^%d+$") or #id > 9 then
    return reply(400, { error = "validation failed", fields = { id = "a positive integer" } })
  end
  id = tonumber(id)
  if method == "GET" then return get_item(id) end
  if method == "PATCH" then return update_item(id) end
  if method == "DELETE" then return delete_item(id) end
  return reply(405, { error = "method not allowed" })
end

return _M
