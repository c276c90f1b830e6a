--- lakebase's hooks as OpenTelemetry spans: every statement (on_query) and every connect attempt
-- (on_connect) becomes one line of OTLP/JSON (an ExportTraceServiceRequest holding one span), the
-- shape an OTLP/HTTP collector takes at /v1/traces, or a file exporter writes. No OpenTelemetry
-- library is needed for the format; an application that has one calls its span API in the hooks
-- instead.
--
--   local spans = require("examples.otel_spans")
--   spans.install(function(line) io.stdout:write(line, "\n") end, { service = "my-app" })
--
-- Run as a script, with the settings in the environment, it prints the spans of a few statements:
--   lua5.4 examples/otel_spans.lua
-- The span's attributes follow OpenTelemetry's database conventions: db.system, db.namespace,
-- db.query.text (the SQL with its $n placeholders: parameter values never reach a hook),
-- server.address, server.port, db.response.returned_rows, error.type (the SQLSTATE).
local json = require("lakebase.json")

local _M = {}

local function hex(bytes)
  local t = {}
  for i = 1, bytes do t[i] = string.format("%02x", math.random(0, 255)) end
  return table.concat(t)
end

local function nanos(seconds)
  return string.format("%.0f", seconds * 1e9) -- OTLP/JSON writes 64-bit integers as strings
end

local function attr(list, key, v)
  if v == nil then return end
  local value
  if type(v) == "number" and v == math.floor(v) then
    value = { intValue = string.format("%d", v) }
  elseif type(v) == "number" then
    value = { doubleValue = v }
  else
    value = { stringValue = tostring(v) }
  end
  list[#list + 1] = { key = key, value = value }
end

--- One OTLP/JSON line for a span.
function _M.line(service, span)
  return json.encode({
    resourceSpans = json.array({ {
      resource = { attributes = json.array({ { key = "service.name", value = { stringValue = service } } }) },
      scopeSpans = json.array({ { scope = { name = "lakebase" }, spans = json.array({ span }) } }),
    } }),
  }, { sort_keys = false })
end

local function span(name, ended, seconds, attributes, err_type)
  return {
    traceId = hex(16), spanId = hex(8), name = name,
    kind = 3, -- SPAN_KIND_CLIENT
    startTimeUnixNano = nanos(ended - seconds), endTimeUnixNano = nanos(ended),
    attributes = json.array(attributes),
    status = err_type and { code = 2, message = err_type } or { code = 1 },
  }
end

--- Sets lakebase's hooks so that each statement and connect attempt writes a span line.
-- write(line); opts.service: service.name (default "lakebase-app").
function _M.install(write, opts)
  local service = (opts and opts.service) or "lakebase-app"
  require("lakebase").set_hooks({
    on_query = function(sql, seconds, rows, err, pool, ended_at)
      local a = {}
      attr(a, "db.system", "postgresql")
      attr(a, "db.namespace", pool.database)
      attr(a, "db.query.text", sql)
      attr(a, "server.address", pool.host)
      attr(a, "server.port", pool.port)
      attr(a, "db.response.returned_rows", rows)
      local err_type = err and (err.sqlstate or err.kind)
      attr(a, "error.type", err_type)
      local op = sql and sql:match("^%s*(%a+)") or "pipeline"
      write(_M.line(service, span(op:upper() .. " " .. (pool.database or ""), ended_at, seconds, a, err_type)))
    end,
    on_connect = function(info)
      local a = {}
      attr(a, "db.system", "postgresql")
      attr(a, "server.address", info.host)
      attr(a, "server.port", info.port)
      attr(a, "lakebase.attempt", info.attempt)
      attr(a, "tls.protocol.version", info.tls)
      local err_type = info.event ~= "connect_ok" and (info.sqlstate or info.error_kind) or nil
      attr(a, "error.type", err_type)
      write(_M.line(service, span("connect", info.time, (info.duration_ms or 0) / 1000, a, err_type)))
    end,
  })
end

-- As a script: a few statements' spans on stdout.
if arg and arg[0] and arg[0]:match("otel_spans%.lua$") then
  local lakebase = require("lakebase")
  math.randomseed(os.time())
  _M.install(function(line) io.stdout:write(line, "\n") end, { service = "otel-spans-example" })
  local db = assert(lakebase.new())
  assert(db:query("select $1::int as n", 1))
  assert(db:query("select generate_series(1, 3) as n"))
  db:query("select 1/0") -- a failed statement: status ERROR, error.type 22012
  db:close()
end

return _M
