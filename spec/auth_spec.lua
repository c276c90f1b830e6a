-- databricks-cli auth (what `databricks auth login` sets up): the C core runs `databricks auth
-- token` itself (spec/support/fake_databricks stands in for the CLI), caches the workspace token
-- until shortly before its expiry, runs the command again when needed, and says clearly when the
-- CLI is missing, fails, hangs or prints something else. And the profile-only set-up end to end.
-- luacheck: max line length 140
local h = require("spec.support.helpers")
local lakebase = require("lakebase")

local ws = h.workspace
local CRED = h.CRED_PATH
local root = h.root()
local FAKE = root .. "/spec/support/fake_databricks"

local dir
local write = h.write_file

-- A `databricks` for one case: the fake with its knobs fixed (the CLI is run with our environment,
-- and a spec cannot change its own). Returns the path and the file that logs each call.
local function cli(knobs)
  local name = h.unique("dbx")
  local log = dir .. "/" .. name .. ".log"
  local lines = { "#!/bin/sh" }
  knobs = knobs or {}
  knobs.FAKE_DATABRICKS_TOKEN = knobs.FAKE_DATABRICKS_TOKEN or h.env().TOKEN
  knobs.FAKE_DATABRICKS_LOG = log
  for k, v in pairs(knobs) do lines[#lines + 1] = "export " .. k .. "=" .. h.shell_quote(tostring(v)) end
  lines[#lines + 1] = "exec " .. h.shell_quote(FAKE) .. ' "$@"'
  local path = dir .. "/" .. name
  write(path, table.concat(lines, "\n") .. "\n", "755")
  return path, log
end

local function calls(log)
  local text = h.read_file(log) or ""
  local n = 0
  for _ in text:gmatch("[^\n]+") do n = n + 1 end
  return n, text
end

local function settings(path, overrides)
  local e = h.env()
  local s = {
    host = e.PGHOST, port = tonumber(e.PGPORT), database = e.PGDATABASE, user = e.PGUSER,
    sslmode = "require", sslrootcert = e.SSLROOTCERT, databricks_host = e.DATABRICKS_HOST,
    endpoint = h.endpoint_for(h.unique("cli")), auth_type = "databricks-cli", databricks_cli_path = path,
  }
  for k, v in pairs(overrides or {}) do s[k] = v end
  return s
end

describe("databricks-cli auth", function()
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(h.run("mkdir -p " .. h.shell_quote(dir)))
  end)
  teardown(function() h.run("rm -rf " .. h.shell_quote(dir)) end)
  before_each(function() ws.reset() end)

  it("runs `databricks auth token --host H`, caches its token, and the credential opens a connection", function()
    local path, log = cli()
    local o = settings(path)
    assert.equal("databricks-cli", assert(lakebase.config(o)).auth)
    local t1 = assert(lakebase.token(o))
    local t2 = assert(lakebase.token(o))
    assert.equal(t1, t2)
    local n, args = calls(log)
    assert.equal(1, n)
    assert.equal("auth token --host " .. h.env().DATABRICKS_HOST .. " -o json\n", args)
    local db = assert(lakebase.new(o))
    assert.equal(1, assert(db:one("select 1 as n")).n)
    db:close()
    assert.equal(1, (calls(log)))
  end)

  it("runs the command again when its token is near its expiry and a credential is needed", function()
    ws.config({ lifetime = 123 }) -- the credential refreshes when less than 2 minutes remain
    local path, log = cli({ FAKE_DATABRICKS_LIFETIME = 4 }) -- the CLI's token: renewed after 2 s
    local o = settings(path)
    local t1 = assert(lakebase.token(o))
    assert.equal(1, (calls(log)))
    h.sleep(3.2)
    -- inside the 2-minute window: the cached credential keeps serving while a background refresh
    -- needs a new workspace token, so the CLI runs again
    local t2, deadline = t1, h.clock() + 10
    while t2 == t1 and h.clock() < deadline do
      t2 = assert(lakebase.token(o))
      if t2 == t1 then h.sleep(0.1) end
    end
    assert.are_not.equal(t1, t2)
    assert.equal(2, (calls(log)))
  end)

  it("says what is wrong when the CLI is missing, fails, hangs or prints something else; no token in any of it", function()
    local secret = h.env().TOKEN
    local cases = {
      { path = dir .. "/no-such-databricks", want = "the databricks CLI %(.-%) is not on PATH", retriable = false },
      { knobs = { FAKE_DATABRICKS_MODE = "fail" }, want = "failed %(exit 1%): Error: refresh token is invalid", retriable = false },
      { knobs = { FAKE_DATABRICKS_MODE = "garbage" }, want = "printed no JSON object", retriable = false },
      { knobs = { FAKE_DATABRICKS_MODE = "big" }, want = "printed more than 1 MiB %(killed%)", retriable = false },
      { knobs = { FAKE_DATABRICKS_MODE = "hang", FAKE_DATABRICKS_PIDFILE = dir .. "/hang.pid" },
        want = "did not finish within 1 s %(killed%)", retriable = true },
    }
    for _, c in ipairs(cases) do
      local path = c.path or cli(c.knobs)
      local t0 = h.clock()
      local tok, err = lakebase.token(settings(path, { connect_timeout = 1 }))
      assert.is_nil(tok)
      assert.equal("credential", err.kind)
      assert.matches(c.want, err.message)
      assert.equal(c.retriable, err.retriable, err.message)
      assert.is_true(h.clock() - t0 < 8, "took " .. (h.clock() - t0) .. " s")
      assert.is_nil(tostring(err):find(secret, 1, true))
    end
    assert.equal(0, ws.counters()[CRED] or 0) -- no credential call without a workspace token
    local pid = assert(h.read_file(dir .. "/hang.pid")):gsub("%s", "")
    assert.is_false(select(2, h.run("kill -0 " .. pid .. " 2>/dev/null")), "the hanging databricks is still running")
  end)

  it("a config file with only a `databricks auth login` profile, plus LAKEBASE_ENDPOINT: lakebase check works", function()
    local e = h.env()
    local path, log = cli()
    local home = dir .. "/home"
    assert(h.run("mkdir -p " .. h.shell_quote(home)))
    write(home .. "/.databrickscfg", "; written by databricks auth login\n[DEFAULT]\nhost = " .. e.DATABRICKS_HOST
      .. "\nauth_type = databricks-cli\n", "600")
    local env = {
      "HOME=" .. h.shell_quote(home), "PATH=" .. h.shell_quote(os.getenv("PATH")),
      "LUA_PATH=" .. h.shell_quote(package.path), "LUA_CPATH=" .. h.shell_quote(package.cpath),
      "PGHOST=" .. e.PGHOST, "PGPORT=" .. e.PGPORT, "PGDATABASE=" .. e.PGDATABASE, "PGUSER=" .. h.shell_quote(e.PGUSER),
      "PGSSLROOTCERT=" .. h.shell_quote(e.SSLROOTCERT), "LAKEBASE_ENDPOINT=" .. h.endpoint_for(h.unique("login")),
      "DATABRICKS_CLI_PATH=" .. h.shell_quote(path),
    }
    for _, k in ipairs({ "LD_PRELOAD", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS" }) do
      if os.getenv(k) then env[#env + 1] = k .. "=" .. h.shell_quote(os.getenv(k)) end
    end
    local interp = os.getenv("LAKEBASE_TEST_INTERP") or "lua5.4"
    local out, ok = h.run("cd " .. h.shell_quote(dir) .. " && env -i " .. table.concat(env, " ") .. " " .. interp .. " "
      .. h.shell_quote(root .. "/bin/lakebase") .. " check 2>&1")
    assert.is_true(ok, out)
    assert.matches("auth=databricks%-cli", out)
    assert.matches("profile=DEFAULT", out)
    assert.is_nil(out:find(e.TOKEN, 1, true))
    local _, args = calls(log)
    assert.equal("auth token --profile DEFAULT -o json\n", args)
  end)
end)
