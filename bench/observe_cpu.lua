--- The client CPU per W1 statement (os.clock, which a loaded machine's scheduling disturbs far less
-- than wall time) with hooks and a logger off, then on, alternating in one process: what the hooks
-- cost. Metrics are kept in both (they cannot be turned off: bench/micro.c measures them alone).
-- usage: <lua> bench/observe_cpu.lua [rounds]   prints two JSON lines (workload W1-cpu)
local lakebase = require("lakebase")
local rounds, N = tonumber(arg[1]) or 5, 20000
local db = assert(lakebase.new({ sslmode = "disable", max = 1 }))

local function run()
  assert(db:query("select 1"))
  local c0 = os.clock()
  for i = 1, N do assert(db:query("select $1::int as v", i)) end
  return (os.clock() - c0) / N * 1e6
end

local res = { off = {}, on = {} }
for r = 1, rounds do
  for _, mode in ipairs(r % 2 == 1 and { "off", "on" } or { "on", "off" }) do
    if mode == "on" then
      local n = 0
      lakebase.set_hooks({ on_query = function() n = n + 1 end, on_connect = function() end })
      lakebase.set_logger(function() end)
    else
      lakebase.set_hooks(nil)
      lakebase.set_logger(nil)
    end
    res[mode][#res[mode] + 1] = run()
  end
end
local interp = jit and "LuaJIT" or _VERSION
for _, mode in ipairs({ "off", "on" }) do
  local v = res[mode]
  table.sort(v)
  io.write(string.format('{"peer":"lakebase %s (client CPU, hooks + logger %s)","workload":"W1-cpu",'
    .. '"value":%.3f,"unit":"us/query","rounds":%d}\n', interp, mode, v[math.floor((#v + 1) / 2)] or v[1], #v))
end
