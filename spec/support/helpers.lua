-- Test helpers for the specs: the fixtures' settings, the fake workspace's controls, psql as the
-- admin, PostgreSQL stop/start/restart, time. Pure Lua (no C module): io.popen/os.execute, curl,
-- psql, pg_ctl; dkjson and lua-system come with busted.
-- Secrets never reach a command line: commands read them from the environment that env.sh exports.
local json = require("dkjson")
local system = require("system")

local _M = {}

local KEYS = {
  "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "SSLROOTCERT", "DATABRICKS_HOST", "ENDPOINT", "TOKEN",
  "CLIENT_ID", "CLIENT_SECRET", "ADMIN_USER", "ADMIN_PASSWORD", "PGDATA", "PGTMP", "PGSOCKET", "PGLOG",
  "RUNDIR", "PGBIN", "WORKSPACE_PORT", "PGOSUSER", "READ_ENDPOINT", "PAM_SERVICE",
}

local function repo_root()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)/spec/support/[^/]*$")
  if dir and dir ~= "" then return dir end
  return "."
end

function _M.root() return repo_root() end

local function env_file()
  local run = os.getenv("LAKEBASE_RUN_DIR") or "spec/support/run"
  if run:sub(1, 1) ~= "/" then run = repo_root() .. "/" .. run end
  return run .. "/env.sh"
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
_M.shell_quote = shell_quote

-- Values from the process environment (busted.sh sources env.sh), else parsed from env.sh.
local cached_env
function _M.env()
  if cached_env then return cached_env end
  local e = {}
  if os.getenv("LAKEBASE_TEST_PGPORT") then
    for _, k in ipairs(KEYS) do e[k] = os.getenv("LAKEBASE_TEST_" .. k) end
  else
    local f = io.open(env_file(), "r")
    if not f then error("fixtures are not running: no " .. env_file() .. " (run spec/support/fixtures.sh start)", 2) end
    for line in f:lines() do
      local k, v = line:match("^export LAKEBASE_TEST_([%w_]+)=(.*)$")
      if k then e[k] = v:match("^'(.*)'$") or v end
    end
    f:close()
  end
  cached_env = e
  return e
end

-- A shell prefix that makes the fixture variables available to a command when this process does not
-- have them (sourcing env.sh keeps the secret values off the command line).
local function env_prefix()
  if os.getenv("LAKEBASE_TEST_ADMIN_PASSWORD") then return "" end
  return ". " .. shell_quote(env_file()) .. " && "
end
_M.env_prefix = env_prefix

-- Runs a shell command; returns stdout, exit ok, exit code. The exit code travels in the output:
-- LuaJIT's popen close does not report it.
local function run(cmd)
  local p = assert(io.popen("{ " .. cmd .. "\n}; echo \"__rc=$?\"", "r"))
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.-)__rc=(%d+)\n?$")
  if not body then return out, false, -1 end
  code = tonumber(code)
  return body, code == 0, code
end
_M.run = run

local function tmpname()
  local n = os.tmpname()
  return n
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
_M.read_file = read_file

-- Writes text to path, then chmod mode when given (e.g. "600", "755").
function _M.write_file(path, text, mode)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  if mode then os.execute("chmod " .. mode .. " " .. shell_quote(path)) end
end

--- Writes a file (replacing it); `mode` is an octal string for chmod.
function _M.write_file(path, text, mode)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  if mode then os.execute("chmod " .. mode .. " " .. shell_quote(path)) end
end

local function merge(base, overrides)
  for k, v in pairs(overrides or {}) do base[k] = v end
  return base
end

local function base_settings()
  local e = _M.env()
  return {
    host = e.PGHOST, port = tonumber(e.PGPORT), database = e.PGDATABASE,
    sslmode = "require", sslrootcert = e.SSLROOTCERT,
  }
end

-- M2M against the fixtures.
function _M.settings(overrides)
  local e = _M.env()
  local s = base_settings()
  s.user = e.PGUSER
  s.endpoint = e.ENDPOINT
  s.databricks_host = e.DATABRICKS_HOST
  s.client_id = e.CLIENT_ID
  s.client_secret = e.CLIENT_SECRET
  return merge(s, overrides)
end

-- Workspace token (PAT) against the fixtures.
function _M.pat_settings(overrides)
  local e = _M.env()
  local s = base_settings()
  s.user = e.PGUSER
  s.endpoint = e.ENDPOINT
  s.databricks_host = e.DATABRICKS_HOST
  s.token = e.TOKEN
  return merge(s, overrides)
end

-- Native Postgres password (the superuser), no Databricks at all.
function _M.password_settings(overrides)
  local e = _M.env()
  local s = base_settings()
  s.user = e.ADMIN_USER
  s.password = e.ADMIN_PASSWORD
  return merge(s, overrides)
end

-- psql over TLS (sslmode=verify-full with the test CA), as the admin by default.
-- opts: database, user, password (written to a private PGPASSFILE, never on the command line),
-- host, sslmode, sslrootcert, connect_timeout, raw (keep the trailing newline).
-- Returns the output (unaligned, tuples only, "|" separated) or nil, error text.
function _M.psql(sql, opts)
  opts = opts or {}
  local e = _M.env()
  local sqlfile, errfile = tmpname(), tmpname()
  local f = assert(io.open(sqlfile, "wb"))
  f:write(sql)
  f:close()
  local user = opts.user or e.ADMIN_USER
  local host = opts.host or e.PGHOST
  local db = opts.database or e.PGDATABASE
  local auth, passfile
  if opts.password then
    passfile = tmpname() -- os.tmpname creates it with mode 0600
    local esc = function(v) return (tostring(v):gsub("\\", "\\\\"):gsub(":", "\\:")) end
    local pf = assert(io.open(passfile, "wb"))
    pf:write(table.concat({ esc(host), esc(e.PGPORT), esc(db), esc(user), esc(opts.password) }, ":"), "\n")
    pf:close()
    auth = "PGPASSFILE=" .. shell_quote(passfile)
  else
    auth = env_prefix() .. "PGPASSWORD=\"$LAKEBASE_TEST_ADMIN_PASSWORD\""
  end
  local cmd = auth .. " PGCONNECT_TIMEOUT=" .. (opts.connect_timeout or 10)
    .. " psql -X -q -A -t -v ON_ERROR_STOP=1 -w"
    .. " " .. shell_quote(string.format("host=%s port=%s dbname=%s user=%s sslmode=%s sslrootcert=%s",
      host, e.PGPORT, db, user, opts.sslmode or "verify-full", opts.sslrootcert or e.SSLROOTCERT))
    .. " -f " .. shell_quote(sqlfile) .. " 2>" .. shell_quote(errfile)
  local out, ok = run(cmd)
  local err = read_file(errfile) or ""
  os.remove(sqlfile)
  os.remove(errfile)
  if passfile then os.remove(passfile) end
  if not ok then return nil, (err ~= "" and err or "psql failed") end
  if not opts.raw then out = out:gsub("\n$", "") end
  return out
end

-- The command prefix that runs a program as the OS user owning the cluster (root cannot run it).
local as_pg_prefix
function _M.as_postgres()
  if not as_pg_prefix then
    local uid = run("id -u")
    local owner = shell_quote(_M.env().PGOSUSER or "postgres")
    as_pg_prefix = uid:match("^0%s*$") and ("runuser -u " .. owner .. " -- ") or ""
  end
  return as_pg_prefix
end

local function pg_ctl(args)
  local e = _M.env()
  local cmd = _M.as_postgres() .. shell_quote(e.PGBIN .. "/pg_ctl") .. " -D " .. shell_quote(e.PGDATA)
    .. " " .. args .. " 2>&1"
  local out, ok = run(cmd)
  if not ok then return nil, out end
  return true
end

local function logarg()
  local e = _M.env()
  return " -l " .. shell_quote(e.PGLOG or (e.PGTMP .. "/postgres.log"))
end

-- pg_ctl restart -m fast|immediate (waits until PostgreSQL accepts connections again).
function _M.pg_restart(mode)
  return pg_ctl("restart -w -t 60 -m " .. (mode or "fast") .. logarg())
end

function _M.pg_stop(mode)
  return pg_ctl("stop -w -t 60 -m " .. (mode or "fast"))
end

function _M.pg_start()
  return pg_ctl("start -w -t 60" .. logarg())
end

function _M.pg_running()
  return pg_ctl("status") == true
end

--- The streaming replica (spec/support/standby.sh), for the specs that need it only:
-- standby("start") returns its port; "halt", "resume", "stop" return true; nil, output on failure.
function _M.standby(cmd)
  local out, ok = run(env_prefix() .. "bash " .. shell_quote(repo_root() .. "/spec/support/standby.sh")
    .. " " .. cmd .. " 2>&1")
  if not ok then return nil, out end
  if cmd == "start" then return tonumber(out:match("(%d+)%s*$")) end
  return true
end

--- Creates the example's `items` table (examples/migrations/0001_items.sql) on `db` unless it
-- exists; returns true when it created it (the caller drops it again).
function _M.ensure_example_items(db)
  if assert(db:one("select to_regclass('public.items') is not null as e")).e then
    return false
  end
  local sql = assert(read_file(repo_root() .. "/examples/migrations/0001_items.sql"))
  assert(db:exec_script(sql))
  return true
end

--- Undoes ensure_example_items (drops the table when it created it) and closes db.
function _M.release_example_items(db, created)
  if not db then return end
  if created then db:exec_script("drop table if exists items") end
  db:close()
end

--- Starts the OpenResty example (examples/openresty/run.sh) in `prefix` with extra environment
-- assignments `env` (shell text, e.g. "LAKEBASE_NGINX_WORKERS=1"), after sourcing the shell file
-- `source` when given (settings with a secret: off the command line); returns its base URL or raises.
function _M.example_start(prefix, env, source)
  local out, ok = run("cd " .. shell_quote(repo_root()) .. " && "
    .. (source and (". " .. shell_quote(source) .. " && ") or "") .. "LAKEBASE_NGINX_PREFIX=" .. shell_quote(prefix)
    .. " " .. (env or "") .. " bash examples/openresty/run.sh start 2>&1")
  assert(ok, "run.sh start failed: " .. out)
  local base = out:match("(http://127%.0%.0%.1:%d+)%s*$")
  assert(base, "run.sh start printed no base URL: " .. out)
  return base
end

function _M.example_stop(prefix)
  run("cd " .. shell_quote(repo_root()) .. " && LAKEBASE_NGINX_PREFIX=" .. shell_quote(prefix)
    .. " bash examples/openresty/run.sh stop 2>&1")
end

--- Runs the Lua program `source` in one process per entry of `argsets` (each a list of arguments),
-- all at once, with this interpreter and the build's paths; returns their outputs (stdout and
-- stderr), in order.
function _M.lua_processes(source, argsets)
  local script = tmpname()
  _M.write_file(script, source)
  local interp = os.getenv("LAKEBASE_TEST_INTERP") or "lua5.4"
  local cmds = {}
  for i, args in ipairs(argsets) do
    local quoted = {}
    for j, a in ipairs(args) do quoted[j] = shell_quote(a) end
    cmds[i] = string.format("LUA_PATH=%s LUA_CPATH=%s %s %s %s > %s.%d 2>&1 &",
      shell_quote(os.getenv("LUA_PATH") or ""), shell_quote(os.getenv("LUA_CPATH") or ""), interp,
      shell_quote(script), table.concat(quoted, " "), shell_quote(script), i)
  end
  local _, ok = run(table.concat(cmds, " ") .. " wait")
  assert(ok, "could not run the processes")
  local outs = {}
  for i = 1, #argsets do
    outs[i] = read_file(script .. "." .. i) or ""
    os.remove(script .. "." .. i)
  end
  os.remove(script)
  return outs
end

function _M.sleep(s)
  system.sleep(s)
end

function _M.now()
  return system.gettime()
end

-- Monotonic seconds (for measuring durations).
function _M.clock()
  return system.monotime()
end

local unique_n = 0
-- An endpoint of the fake workspace of its own (the fake serves any id under its project and
-- branch): the credential cache is keyed by workspace, endpoint and identity, so a case that needs
-- a credential of its own (counting fetches, faults) names its own endpoint.
function _M.endpoint_for(name)
  return "projects/p/branches/b/endpoints/" .. tostring(name):gsub("[^%w._-]", "-")
end

function _M.unique(prefix)
  unique_n = unique_n + 1
  -- os.tmpname creates a file with a name unique on this machine: its suffix tells processes apart.
  local name = os.tmpname()
  os.remove(name)
  local tag = (name:match("([%w]+)$") or ""):lower():gsub("[^%w]", "")
  return string.format("%s_%d_%d_%s", prefix or "t", math.floor(system.gettime() * 1000) % 100000000, unique_n, tag)
end

-- HTTP to the fake workspace through curl; returns status, decoded body (or raw text), raw text.
local function write_tmp(content)
  local name = tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(content)
  f:close()
  return name
end

-- HTTP to the fake workspace through curl; headers and body go through files (they may hold secrets).
-- opts: content_type, timeout (seconds). Returns status, decoded JSON body (or nil), raw text, response headers text,
-- curl exit code.
local function http(method, path, body, headers, opts)
  local e = _M.env()
  local bodyfile, hdrfile = tmpname(), tmpname()
  local tmp = {}
  local cmd = "curl -sS -m " .. ((opts and opts.timeout) or 30)
    .. " -o " .. shell_quote(bodyfile) .. " -D " .. shell_quote(hdrfile)
    .. " -w '%{http_code}' -X " .. method
  local hs = {}
  for _, hd in ipairs(headers or {}) do hs[#hs + 1] = hd end
  if body then
    hs[#hs + 1] = "Content-Type: " .. ((opts and opts.content_type) or "application/json")
    local bf = write_tmp(body)
    tmp[#tmp + 1] = bf
    cmd = cmd .. " --data-binary @" .. shell_quote(bf)
  end
  if #hs > 0 then
    local hf = write_tmp(table.concat(hs, "\n") .. "\n")
    tmp[#tmp + 1] = hf
    cmd = cmd .. " -H @" .. shell_quote(hf)
  end
  cmd = cmd .. " " .. shell_quote(e.DATABRICKS_HOST .. path) .. " 2>/dev/null"
  local out, _, code = run(cmd)
  local text = read_file(bodyfile) or ""
  local rhead = read_file(hdrfile) or ""
  os.remove(bodyfile)
  os.remove(hdrfile)
  for _, n in ipairs(tmp) do os.remove(n) end
  local status = tonumber(out) or 0
  local okd, decoded = pcall(json.decode, text) -- a JSON bomb may exhaust the decoder's stack
  if not okd then decoded = nil end
  -- curl's exit code tells the transport failures apart (18 partial body, 52 empty reply).
  return status, decoded, text, rhead, code
end
_M.http = http

local workspace = {}
_M.workspace = workspace

local function control(path, t)
  local status, decoded, text = http("POST", path, json.encode(t or {}))
  if status ~= 200 then error("workspace control " .. path .. " failed: HTTP " .. status .. " " .. text, 3) end
  return decoded
end

function workspace.reset() return control("/_test/reset", {}) end
-- t: {lifetime=s, oauth_lifetime=s, deny_logins=bool}
function workspace.config(t) return control("/_test/config", t) end
-- Revokes one credential ({token = t}) or every one issued so far ({all = true}); returns how many.
function workspace.revoke(t) return control("/_test/revoke", t).revoked end
-- t: {path=..., kind=..., status=..., retry_after=..., delay=..., count=...}
function workspace.fault(t) return control("/_test/fault", t) end

function workspace.counters()
  local status, decoded, text = http("GET", "/_test/counters")
  if status ~= 200 then error("workspace counters failed: HTTP " .. status .. " " .. text, 2) end
  return setmetatable(decoded, { __index = function() return 0 end })
end

-- The PAM login checks since the last reset, by outcome: {ok = n, expired = n, revoked = n, ...}.
function workspace.logins()
  local status, decoded, text = http("GET", "/_test/logins")
  if status ~= 200 then error("workspace logins failed: HTTP " .. status .. " " .. text, 2) end
  return setmetatable(decoded, { __index = function() return 0 end })
end

function workspace.last_request(path)
  local status, decoded = http("GET", "/_test/last_request?path=" .. path)
  if status ~= 200 then return nil end
  return decoded
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function _M.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local d1, d2 = math.floor(n / 262144) % 64, math.floor(n / 4096) % 64
    local d3, d4 = math.floor(n / 64) % 64, n % 64
    out[#out + 1] = B64:sub(d1 + 1, d1 + 1) .. B64:sub(d2 + 1, d2 + 1)
      .. (b and B64:sub(d3 + 1, d3 + 1) or "=") .. (c and B64:sub(d4 + 1, d4 + 1) or "=")
  end
  return table.concat(out)
end

-- The TCP fault proxy (spec/support/fault_proxy.py) in front of the test PostgreSQL, on loopback (or
-- on `listen`, the host side of a test veth pair).
-- Returns an object: .port, :schedule(text) (one step a line: "<mode> [seconds]"; see the proxy),
-- :marks() (list of {mode, at epoch}), :stop(). The proxy runs until stop() (by its own pid).
function _M.proxy_start(listen)
  local e = _M.env()
  local run_dir = env_file():gsub("/env%.sh$", "")
  local base = os.tmpname()
  local p = { port_file = base .. ".port", control = base .. ".ctl", marks_file = base .. ".marks",
    pid_file = base .. ".pid" }
  os.remove(base)
  local f = assert(io.open(p.control, "w"))
  f:write("pass\n")
  f:close()
  os.execute(string.format("%spython3 %s %s %s %s %s %s %s >/dev/null 2>%s </dev/null & echo $! > %s",
    listen and ("FAULT_PROXY_LISTEN=" .. shell_quote(listen) .. " ") or "",
    shell_quote(repo_root() .. "/spec/support/fault_proxy.py"), shell_quote(p.port_file), e.PGPORT,
    shell_quote(p.control), shell_quote(p.marks_file), shell_quote(run_dir .. "/pki/server.pem"),
    shell_quote(run_dir .. "/pki/server.key"), shell_quote(base .. ".err"), shell_quote(p.pid_file)))
  local deadline = _M.clock() + 10
  while _M.clock() < deadline do
    local port = read_file(p.port_file)
    if port and port ~= "" then
      p.port = tonumber(port)
      break
    end
    _M.sleep(0.05)
  end
  assert(p.port, "the fault proxy did not start: " .. (read_file(base .. ".err") or ""))
  p.pid = tonumber(read_file(p.pid_file))
  os.remove(base .. ".err")
  function p:schedule(text)
    local tmp = self.control .. ".tmp"
    local cf = assert(io.open(tmp, "w"))
    cf:write(text, "\n# ", tostring(_M.now()), "\n") -- always new text: the schedule restarts
    cf:close()
    os.rename(tmp, self.control)
  end
  function p:marks()
    local out = {}
    for mode, at in (read_file(self.marks_file) or ""):gmatch("(%S+) (%d+%.%d+)\n") do
      out[#out + 1] = { mode = mode, at = tonumber(at) }
    end
    return out
  end
  -- Waits until the proxy reached `mode` (its latest mark); returns the epoch it began.
  function p:wait_mode(mode, timeout)
    local until_ = _M.clock() + (timeout or 10)
    while _M.clock() < until_ do
      local m = self:marks()
      if #m > 0 and m[#m].mode == mode then return m[#m].at end
      _M.sleep(0.01)
    end
    error("the fault proxy never reached mode " .. mode)
  end
  function p:stop()
    if self.pid then os.execute("kill " .. self.pid .. " 2>/dev/null") end
    self.pid = nil
    for _, n in ipairs({ self.port_file, self.control, self.marks_file, self.pid_file }) do os.remove(n) end
  end
  return p
end

-- A latency proxy (spec/support/latency_proxy.py) in front of 127.0.0.1:target_port, adding
-- delay_ms one way in each direction. Returns an object: port (connect here), stats() (flights,
-- connections, bytes_up, bytes_down, per_connection), reset(), delay(ms), stop(). Flight counts
-- follow the order of the bytes, not timing: specs assert on them.
function _M.proxy(target_port, delay_ms)
  local port_file = os.tmpname()
  os.remove(port_file)
  local script = repo_root() .. "/spec/support/latency_proxy.py"
  local out = run("python3 " .. shell_quote(script) .. " serve --target 127.0.0.1:" .. target_port
    .. " --delay-ms " .. (delay_ms or 0) .. " --port-file " .. shell_quote(port_file)
    .. " >/dev/null 2>&1 & echo $!")
  local pid = assert(tonumber(out:match("(%d+)")), "latency proxy did not start")
  local line
  for _ = 1, 200 do
    line = read_file(port_file)
    if line then break end
    _M.sleep(0.02)
  end
  os.remove(port_file)
  local data, ctl = assert(line, "latency proxy wrote no port"):match("port (%d+) (%d+)")
  local p = { port = tonumber(data), control = tonumber(ctl), pid = pid }
  local function call(words)
    return run("python3 " .. shell_quote(script) .. " ctl " .. ctl .. " " .. words)
  end
  function p.stats()
    local text = call("stats")
    return (json.decode(text))
  end
  function p.flights() return p.stats().flights end
  function p.reset() call("reset") end
  function p.delay(ms) call("delay " .. ms) end
  function p.sever() call("sever") end
  function p.stop() os.execute("kill " .. pid .. " 2>/dev/null") end
  return p
end

_M.json = json
_M.CRED_PATH = "/api/2.0/postgres/credentials"
_M.TOKEN_PATH = "/oidc/v1/token"
_M.ME_PATH = "/api/2.0/preview/scim/v2/Me"

return _M
