-- Connection budgets: `lakebase check` prints what the server allows and the sizing rule, and
-- four nginx worker processes with max = 10 each against a limit of 20 connections get no 53300
-- too_many_connections inside acquire_timeout (the pool waits and retries the connect).
-- luacheck: max line length 140
local h = require("spec.support.helpers")

local root = h.root()
local interp = os.getenv("LAKEBASE_TEST_INTERP") or "lua5.4"

-- A role of its own with a password and CONNECTION LIMIT `limit`: the server refuses its
-- connection number limit + 1 with 53300, as a compute at max_connections does, without
-- restarting the shared test server with another max_connections.
local function limited_role(limit)
  local name = h.unique("budget")
  local pw = h.unique("pw") .. h.unique("x")
  assert(h.psql(string.format("create role %s login password '%s' connection limit %d;"
    .. " grant create on schema public to %s;", name, pw, limit, name)))
  return name, pw
end

-- The load: one short statement per request, through a db each nginx worker makes once.
local BURST = [=[
location = /t/burst {
  content_by_lua_block {
    local db = package.loaded.lakebase_budget_db
    if not db then
      db = assert(require("lakebase").new({ application_name = "lakebase-budget", idle_timeout = 0.5 }))
      package.loaded.lakebase_budget_db = db
    end
    local rows, err = db:query("select pg_sleep(0.05)")
    if rows then return ngx.say("ok") end
    ngx.log(ngx.ERR, "budget: ", tostring(err))
    ngx.status = 500
    ngx.say(tostring(err.sqlstate))
  }
}
]=]

local function count_lines(path, piece)
  local n = 0
  local f = io.open(path, "r")
  if not f then return 0 end
  for line in f:lines() do
    if line:find(piece, 1, true) then n = n + 1 end
  end
  f:close()
  return n
end

describe("connection budgets", function()
  local role, pw

  setup(function()
    role, pw = limited_role(20)
  end)

  teardown(function()
    if role then
      h.psql("select pg_terminate_backend(pid) from pg_stat_activity where usename = '" .. role .. "';"
        .. " drop owned by " .. role .. "; drop role if exists " .. role)
    end
  end)

  it("lakebase check prints the server's limit, the role's connections and the sizing rule", function()
    local e = h.env()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. h.shell_quote(dir)))
    h.write_file(dir .. "/.env", table.concat({ "PGHOST=" .. e.PGHOST, "PGPORT=" .. e.PGPORT,
      "PGDATABASE=" .. e.PGDATABASE, "PGUSER=" .. role, 'PGPASSWORD="' .. pw .. '"',
      "PGSSLROOTCERT=" .. e.SSLROOTCERT, "" }, "\n"), "600")
    local out, ok = h.run("cd " .. h.shell_quote(dir) .. " && env -u PGHOST -u PGPORT -u PGUSER -u PGPASSWORD "
      .. interp .. " " .. h.shell_quote(root .. "/bin/lakebase") .. " check 2>&1")
    os.execute("rm -rf " .. h.shell_quote(dir))
    assert.is_true(ok, out)
    local maxc = tonumber(h.psql("show max_connections"))
    assert.matches("connections: server max_connections " .. maxc .. ", 3 reserved for superusers, %d+ open "
      .. "%(%d+ by other roles, 1 by this role, this check's included%), role limit 20", out)
    assert.matches("budget: this role can hold 20 connections; this process opens up to max = 10 per pool "
      .. "%(under nginx: per worker process%)", out)
    assert.matches("budget: keep hosts x nginx workers x pools x max <= 20 %(today: at most 2 processes of max = 10%)", out)
    assert.not_matches(pw, out, 1, true)
  end)

  -- Four nginx workers (four processes) with the default max = 10 each: up to 40 connections
  -- wanted, 20 allowed. The server refuses the rest with 53300; the pools retry within
  -- acquire_timeout and take the slots other workers give back (idle_timeout 0.5 s), so no request
  -- fails. (Plain Lua processes that hold several connections at once while waiting for one more
  -- do not get there: four of them hold all 20 and wait for each other until acquire_timeout.)
  it("four nginx workers with max = 10 against a limit of 20 under load: no 53300 reaches a request", function()
    local e = h.env()
    local run = os.getenv("LAKEBASE_RUN_DIR") or "spec/support/run"
    if run:sub(1, 1) ~= "/" then run = root .. "/" .. run end
    local prefix = run .. "/budget-" .. interp
    local extra, envf = prefix .. "-extra.conf", prefix .. "-env.sh"
    h.write_file(extra, BURST)
    -- the role's password reaches nginx through a private file, not a command line
    h.write_file(envf, string.format("export PGHOST=%s PGPORT=%s PGDATABASE=%s PGUSER=%s PGPASSWORD=%s PGSSLROOTCERT=%s\n",
      h.shell_quote(e.PGHOST), h.shell_quote(e.PGPORT), h.shell_quote(e.PGDATABASE), h.shell_quote(role),
      h.shell_quote(pw), h.shell_quote(e.SSLROOTCERT)), "600")
    local refused = "too many connections for role \"" .. role .. "\""
    local refused_before = count_lines(e.PGLOG, refused)
    local ok, res = pcall(function()
      local base = h.example_start(prefix, "LAKEBASE_NGINX_EXTRA=" .. h.shell_quote(extra)
        .. " LAKEBASE_NGINX_WORKERS=4", envf)
      local out = h.run("env -u LD_PRELOAD wrk -t2 -c64 -d5s " .. h.shell_quote(base .. "/t/burst") .. " 2>&1")
      local requests = tonumber(out:match("(%d+) requests in"))
      assert.is_true(requests and requests > 500, out)
      assert.not_matches("Non%-2xx", out)
      assert.not_matches("Socket errors", out) -- no request waited past wrk's 2 s either
      -- requests still waiting when wrk stopped would fail within acquire_timeout: none did
      h.sleep(1)
      assert.are.equal(0, count_lines(prefix .. "/logs/error.log", "budget: "))
      -- the limit was reached: the server refused connects, the callers never saw it
      assert.is_true(count_lines(e.PGLOG, refused) > refused_before, "the load never reached the limit")
    end)
    h.example_stop(prefix)
    os.remove(extra)
    os.remove(envf)
    if not ok then error(res, 0) end
  end)
end)
