-- Runs an nginx configuration written by a spec (README blocks, configs with a mistake in them) in a
-- private prefix: `nginx -t`, then nginx in the foreground of a session of its own, until stop().
-- The pid file and the error log are forced into the prefix (-g, -e), so a config that names neither
-- never touches the machine's /run/nginx.pid or /var/log/nginx.
local h = require("spec.support.helpers")

local _M = {}

local q = h.shell_quote

-- A shell command with its stderr: exit code, output.
local function sh(cmd)
  local out, _, code = h.run("{ " .. cmd .. "\n} 2>&1")
  return code, out
end
_M.sh = sh

function _M.free_port()
  local _, out = sh([[python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); ]]
    .. [[print(s.getsockname()[1]); s.close()']])
  return tonumber(out:match("%d+"))
end

-- Directives added with -g unless the config has them (nginx refuses a duplicate).
local function globals(conf, prefix)
  local g = { "daemon off;" }
  if not conf:find("\n%s*pid%s") and not conf:find("^%s*pid%s") then g[#g + 1] = "pid " .. prefix .. "/nginx.pid;" end
  -- As root the workers would run as nobody, who may not read the checkout or the fixtures' CA file.
  if not conf:find("\n%s*user%s") and not conf:find("^%s*user%s") then g[#g + 1] = "user root;" end
  return table.concat(g, " ")
end

--- Writes `conf` into a fresh prefix. Returns a server handle.
function _M.new(prefix, conf)
  os.execute("rm -rf " .. q(prefix) .. " && mkdir -p " .. q(prefix .. "/logs") .. " " .. q(prefix .. "/conf"))
  local f = assert(io.open(prefix .. "/conf/nginx.conf", "wb"))
  f:write(conf)
  f:close()
  return { prefix = prefix, conf = conf, path = prefix .. "/conf/nginx.conf" }
end

local function cmd(srv, extra)
  return "env -u LD_PRELOAD nginx -p " .. q(srv.prefix) .. " -e " .. q(srv.prefix .. "/logs/error.log")
    .. " -c " .. q(srv.path) .. " -g " .. q(globals(srv.conf, srv.prefix)) .. " " .. (extra or "")
end

--- `nginx -t`: true, output | false, output.
function _M.test(srv)
  local code, out = sh(cmd(srv, "-t"))
  return code == 0, out
end

function _M.error_log(srv)
  return h.read_file(srv.prefix .. "/logs/error.log") or ""
end

--- Starts nginx and waits until `url` answers (any status). `env`: a shell prefix, assignments
-- (`A=1 B=2`) or a command list ending in `&&` (`. settings.sh &&`).
-- Returns true | nil, what went wrong (with the error log).
function _M.start(srv, url, env)
  local pidfile = srv.prefix .. "/nginx.pid"
  -- exec: the background job's pid is nginx's master (setsid does not fork outside a group leader).
  os.execute("( " .. (env or "") .. " exec setsid " .. cmd(srv) .. " </dev/null >" .. q(srv.prefix .. "/logs/start.log")
    .. " 2>&1 ) & echo $! > " .. q(srv.prefix .. "/launcher.pid"))
  srv.pidfile = pidfile
  for _ = 1, 100 do
    local code = sh("env -u LD_PRELOAD curl -s -o /dev/null -m 1 " .. q(url))
    if code == 0 then return true end
    local lp = h.read_file(srv.prefix .. "/launcher.pid")
    if lp and sh("kill -0 " .. lp:match("%d+")) ~= 0 then break end
    h.sleep(0.1)
  end
  return nil, "nginx did not answer on " .. url .. "\n" .. (h.read_file(srv.prefix .. "/logs/start.log") or "")
    .. _M.error_log(srv)
end

--- Stops the nginx started by start() (its own pid only).
function _M.stop(srv)
  local lp = h.read_file(srv.prefix .. "/launcher.pid")
  local pid = lp and lp:match("%d+")
  if not pid then return end
  os.execute("kill -QUIT " .. pid .. " 2>/dev/null; for i in $(seq 1 50); do kill -0 " .. pid
    .. " 2>/dev/null || break; sleep 0.1; done; kill -TERM " .. pid .. " 2>/dev/null; true")
  os.remove(srv.prefix .. "/launcher.pid")
end

--- GET (or the curl options in `args`): status, body.
function _M.curl(url, args)
  local code, out = sh("env -u LD_PRELOAD curl -s -m 10 -w '\\n%{http_code}' " .. (args or "") .. " " .. q(url))
  if code ~= 0 then return nil, out end
  local body, status = out:match("^(.*)\n(%d+)$")
  return tonumber(status), body
end

return _M
