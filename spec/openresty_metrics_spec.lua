-- GET /metrics of the OpenResty example (examples/openresty, two workers): promtool accepts it,
-- and a real Prometheus server (Debian's prometheus, started here on loopback in a temp dir)
-- scrapes it every second under a short wrk load. Its query API must show counters that only grow
-- and a sum over the workers that matches the requests sent (each GET /health runs one statement).
local h = require("spec.support.helpers")
local nginx = require("spec.support.nginx")

local q = h.shell_quote
local WRK = "env -u LD_PRELOAD wrk"
-- Responses per wrk thread (one connection each): then the thread stops, so no request is left in
-- flight and wrk's count is exactly what the server ran (wrk itself still waits out -d).
local PER_THREAD = 500
local THREADS = 2

local function promtool_check(text)
  local f = os.tmpname()
  h.write_file(f, text)
  local out, ok = h.run("promtool check metrics < " .. q(f) .. " 2>&1")
  os.remove(f)
  return ok, out
end

local function prom_query(port, expr, path, extra)
  local url = "http://127.0.0.1:" .. port .. "/api/v1/" .. (path or "query")
  local out = h.run("curl -s -m 5 -G " .. q(url) .. " --data-urlencode " .. q("query=" .. expr) .. " " .. (extra or ""))
  local doc = h.json.decode(out)
  return doc and doc.status == "success" and doc.data or nil, out
end

-- The value of a scalar-ish instant query (the first sample), or nil.
local function prom_value(port, expr)
  local data = prom_query(port, expr)
  local r = data and data.result and data.result[1]
  return r and tonumber(r.value[2]) or nil
end

local function wait_for(what, fn, seconds)
  local t0 = h.clock()
  local last
  while h.clock() - t0 < seconds do
    local ok, v = fn()
    if ok then return v end
    last = v
    h.sleep(0.2)
  end
  error("timed out waiting for " .. what .. " (last: " .. tostring(last) .. ")", 2)
end

describe("openresty /metrics with Prometheus", function()
  local prefix = (os.getenv("LAKEBASE_RUN_DIR") or (h.root() .. "/spec/support/run")) .. "/openresty-metrics"
  local base, prom_pid, prom_dir

  local port

  -- Prometheus starts first (it takes a few seconds), nginx meanwhile.
  setup(function()
    prom_dir = os.tmpname()
    os.remove(prom_dir)
    assert(os.execute("mkdir -p " .. q(prom_dir .. "/data")))
    port = nginx.free_port()
    local target_port = nginx.free_port()
    h.write_file(prom_dir .. "/prometheus.yml", table.concat({
      "global:", "  scrape_interval: 1s", "  scrape_timeout: 1s",
      "scrape_configs:", "  - job_name: lakebase", "    metrics_path: /metrics",
      "    static_configs:", "      - targets: ['127.0.0.1:" .. target_port .. "']", "",
    }, "\n"))
    local pid_out = h.run("cd " .. q(prom_dir) .. " && (exec prometheus --config.file=prometheus.yml"
      .. " --storage.tsdb.path=data --web.listen-address=127.0.0.1:" .. port
      .. " >prometheus.log 2>&1 & echo $!)")
    prom_pid = assert(pid_out:match("(%d+)"), pid_out)
    base = h.example_start(prefix, "LAKEBASE_NGINX_WORKERS=2 LAKEBASE_NGINX_PORT=" .. target_port)
  end)

  teardown(function()
    if prom_pid then -- its own pid only
      os.execute("kill " .. prom_pid .. " 2>/dev/null; sleep 0.3; kill -9 " .. prom_pid .. " 2>/dev/null")
    end
    if prom_dir then os.execute("rm -rf " .. q(prom_dir)) end
    h.example_stop(prefix)
  end)

  it("promtool accepts /metrics; Prometheus sees counters that only grow and a sum that matches", function()
    for _ = 1, 4 do assert.equal(200, (nginx.curl(base .. "/health"))) end
    local status, text = nginx.curl(base .. "/metrics")
    assert.equal(200, status, text)
    local ok, out = promtool_check(text .. "\n")
    assert.is_true(ok, out .. "\n" .. text)
    assert.matches('lakebase_queries_total{[^}]*worker="[01]"} %d+', text)

    wait_for("Prometheus to scrape the example", function()
      local v = prom_value(port, "up")
      return v == 1, v
    end, 30)
    local before = wait_for("the first series", function()
      local v = prom_value(port, "sum(lakebase_queries_total)")
      return v ~= nil, v
    end, 10)
    -- nothing else runs statements now: the sum is settled once it matches a fresh /metrics
    assert.is_true(before >= 4)

    local script = os.tmpname()
    h.write_file(script, "local n = 0\nresponse = function(status)\n  n = n + 1\n"
      .. "  if status ~= 200 then io.stderr:write('status ', status, '\\n') end\n"
      .. "  if n >= " .. PER_THREAD .. " then wrk.thread:stop() end\nend\n")
    local wout, wok = h.run(WRK .. " -t" .. THREADS .. " -c" .. THREADS .. " -d4s -s " .. q(script) .. " "
      .. q(base .. "/health") .. " 2>&1")
    os.remove(script)
    assert.is_true(wok, wout)
    local sent = tonumber(wout:match("(%d+) requests in"))
    assert.equal(THREADS * PER_THREAD, sent, wout)
    assert.is_nil(wout:find("Non%-2xx"), wout)
    assert.is_nil(wout:find("status %d"), wout)

    -- the sum over workers reaches before + sent (each worker publishes every second) and stays
    local after = wait_for("sum over workers = before + requests sent", function()
      local v = prom_value(port, "sum(lakebase_queries_total)")
      return v == before + sent, v
    end, 15)
    assert.equal(before + sent, after)
    local per_worker = prom_query(port, "sum by (worker) (lakebase_queries_total)")
    local total = 0
    for _, r in ipairs(per_worker.result) do total = total + tonumber(r.value[2]) end
    assert.equal(after, total)
    assert.equal(after, prom_value(port, "sum(lakebase_query_duration_seconds_count)"))

    -- every counter series only grew over the run (also no reset in Prometheus' own terms)
    local now = os.time()
    local range = assert(prom_query(port, '{__name__=~"lakebase_.*_total|lakebase_.*_count"}', "query_range",
      "--data-urlencode start=" .. (now - 120) .. " --data-urlencode end=" .. now .. " --data-urlencode step=1"))
    assert.is_true(#range.result >= 4)
    local points = 0
    for _, series in ipairs(range.result) do
      local prev = -1
      for _, v in ipairs(series.values) do
        local x = tonumber(v[2])
        assert.is_true(x >= prev, series.metric.__name__ .. " went down: " .. prev .. " -> " .. x)
        prev = x
        points = points + 1
      end
    end
    assert.is_true(points > #range.result * 2, "Prometheus scraped more than twice during the run")
    assert.equal(0, prom_value(port, "sum(resets(lakebase_queries_total[5m]))"))
  end)
end)
