--- lakebase.metrics: the C core's counters and histograms (lb_metrics.c) as tables and as the
-- Prometheus text exposition format.
--
--   metrics.collect()            -> { set, ... }: every series set of this process (core.metrics)
--   metrics.prometheus([sets])   -> text: one series set per pool (labels endpoint, host, port,
--                                   database) and per credential (label endpoint); never a user
--                                   name or a secret. A set may carry `labels` (a table of extra
--                                   labels, e.g. { worker = "0" } under nginx).
--   db:metrics()                 -> the set of the db's pool, with `credential` = its credential's
local core = require("lakebase.core")

local _M = {}

local bounds = core.metrics_bounds
local concat, format, sort = table.concat, string.format, table.sort

--- Every series set of the process, as core.metrics() returns them.
function _M.collect()
  return core.metrics()
end

local function escape(v)
  return (tostring(v):gsub("[\\\n\"]", { ["\\"] = "\\\\", ["\n"] = "\\n", ['"'] = '\\"' }))
end

local function num(v)
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  if v ~= v then return "NaN" end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return format("%d", v) end
  for digits = 6, 16 do -- the shortest text that reads back as v
    local s = format("%." .. digits .. "g", v)
    if tonumber(s) == v then return s end
  end
  return format("%.17g", v)
end

-- The label text of a set: its own labels, then its extra labels (sorted), then `more`.
local function labels(set, more)
  local parts = {}
  if set.kind == "credential" then
    parts[1] = 'endpoint="' .. escape(set.endpoint) .. '"'
  else
    parts[1] = 'endpoint="' .. escape(set.endpoint) .. '"'
    parts[2] = 'host="' .. escape(set.host) .. '"'
    parts[3] = 'port="' .. escape(set.port) .. '"'
    parts[4] = 'database="' .. escape(set.database) .. '"'
  end
  if set.labels then
    local keys = {}
    for k in pairs(set.labels) do keys[#keys + 1] = k end
    sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. '="' .. escape(set.labels[k]) .. '"' end
  end
  if more then parts[#parts + 1] = more end
  return "{" .. concat(parts, ",") .. "}"
end

-- Families in output order: name, type, help, kind of set, and how to write a set's series.
local function counter(field)
  return function(out, name, set) out[#out + 1] = name .. labels(set) .. " " .. num(set[field] or 0) end
end

local function gauge(fn)
  return function(out, name, set, now) out[#out + 1] = name .. labels(set) .. " " .. num(fn(set, now)) end
end

local function histogram(field)
  return function(out, name, set)
    local h = set[field]
    for i, b in ipairs(bounds) do
      out[#out + 1] = name .. "_bucket" .. labels(set, 'le="' .. num(b) .. '"') .. " " .. num(h.buckets[i])
    end
    out[#out + 1] = name .. "_bucket" .. labels(set, 'le="+Inf"') .. " " .. num(h.count)
    out[#out + 1] = name .. "_sum" .. labels(set) .. " " .. num(h.sum)
    out[#out + 1] = name .. "_count" .. labels(set) .. " " .. num(h.count)
  end
end

local function errors(out, name, set)
  local rows = {}
  for _, e in ipairs(set.errors or {}) do rows[#rows + 1] = e end
  sort(rows, function(a, b) return a.kind .. a.class < b.kind .. b.class end)
  for _, e in ipairs(rows) do
    out[#out + 1] = name .. labels(set, 'kind="' .. escape(e.kind) .. '",sqlstate_class="'
      .. escape(e.class) .. '"') .. " " .. num(e.count)
  end
end

local function field(name) return function(s) return s[name] end end

-- name, type, help, kind of set, writer
local families = {
  { "lakebase_queries_total", "counter",
    "Statements run (each attempt; scripts and pipelines count once).", "pool", counter("queries") },
  { "lakebase_errors_total", "counter", "Failed calls by error kind and SQLSTATE class.", "pool", errors },
  { "lakebase_query_duration_seconds", "histogram",
    "Time a statement took, from send to last row.", "pool", histogram("query") },
  { "lakebase_pool_wait_duration_seconds", "histogram",
    "Time a checkout waited for a connection (connecting included).", "pool", histogram("wait") },
  { "lakebase_connect_duration_seconds", "histogram",
    "Time a connect attempt took (credential included).", "pool", histogram("connect") },
  { "lakebase_connects_total", "counter", "Connections opened.", "pool", counter("connects") },
  { "lakebase_connect_failures_total", "counter", "Connect attempts that failed.", "pool",
    counter("connect_failures") },
  { "lakebase_connections_open", "gauge", "Connections open or opening.", "pool", gauge(field("open")) },
  { "lakebase_connections_idle", "gauge", "Connections idle in the pool.", "pool", gauge(field("idle")) },
  { "lakebase_connections_in_use", "gauge", "Connections checked out.", "pool", gauge(field("in_use")) },
  { "lakebase_connections_waiting", "gauge", "Callers waiting for a connection.", "pool", gauge(field("waiting")) },
  { "lakebase_connections_max", "gauge", "Pool size (max), summed over the pools of the set.", "pool",
    gauge(field("max")) },
  { "lakebase_credential_refreshes_total", "counter", "Postgres credentials fetched.", "credential",
    counter("refreshes") },
  { "lakebase_credential_refresh_failures_total", "counter", "Credential fetches that failed.", "credential",
    counter("refresh_failures") },
  { "lakebase_credential_refresh_duration_seconds", "histogram",
    "Time a credential fetch took (retries included).", "credential", histogram("refresh") },
  { "lakebase_credential_expiry_seconds", "gauge",
    "Seconds until the cached credential expires (negative: expired; 0: none yet).", "credential",
    gauge(function(s, now) return s.expires_at > 0 and s.expires_at - now or 0 end) },
}


--- The Prometheus text exposition format (version 0.0.4) of `sets` (default: this process's).
-- `now`: epoch seconds for the expiry gauge (default os.time()).
function _M.prometheus(sets, now)
  sets = sets or core.metrics()
  now = now or os.time()
  local out = {}
  for _, f in ipairs(families) do
    local name, typ, help, kind, write = f[1], f[2], f[3], f[4], f[5]
    local head = #out
    out[#out + 1] = "# HELP " .. name .. " " .. help
    out[#out + 1] = "# TYPE " .. name .. " " .. typ
    local any = false
    for _, set in ipairs(sets) do
      if set.kind == kind then
        local before = #out
        write(out, name, set, now)
        any = any or #out > before
      end
    end
    if not any then -- no series: leave the family out
      for i = #out, head + 1, -1 do out[i] = nil end
    end
  end
  out[#out + 1] = ""
  return concat(out, "\n")
end

return _M
