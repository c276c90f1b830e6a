-- lakebase.core.config / lakebase.config: every SPEC §2 rule, precedence (options > environment >
-- ~/.databrickscfg profile), all problems at once, secrets never shown.
-- The environment cannot be changed inside busted, so precedence cases run a child interpreter
-- under `env -i` with exactly the variables a case sets (and a temporary HOME).
local core = require("lakebase.core")

local interp = os.getenv("LAKEBASE_TEST_INTERP") or (rawget(_G, "jit") and "luajit" or "lua5.4")

local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local tmp_dir
local child_script

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- The child: reads the options table (Lua source) from LB_OPTS, prints OK + fields or ERR + message.
local CHILD = [[
local core = require("lakebase.core")
local src = os.getenv("LB_OPTS") or "nil"
local fn = assert((loadstring or load)("return " .. src))
local s, err = core.config(fn())
if s then
  io.write("OK\n")
  local keys = {}
  for k in pairs(s) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do io.write(k, "=", tostring(s[k]), "\n") end
  io.write("tostring=", tostring(s), "\n")
else
  io.write("ERR\n", tostring(err))
end
]]

-- Runs core.config(opts_src) in a clean environment with `env` (a table of variables).
-- Returns { ok = bool, fields = {...}, message = "...", raw = output }.
local function child(env, opts_src)
  local parts = { "env -i", "PATH=" .. sh(os.getenv("PATH") or "/usr/bin:/bin"),
    "LUA_PATH=" .. sh(package.path), "LUA_CPATH=" .. sh(package.cpath) }
  -- Sanitizer runs (spec/support/check_memory.sh) preload the ASan runtime: keep it.
  for _, k in ipairs({ "LD_PRELOAD", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS" }) do
    if os.getenv(k) then parts[#parts + 1] = k .. "=" .. sh(os.getenv(k)) end
  end
  local has_home = false
  for k, v in pairs(env or {}) do
    if k == "HOME" then has_home = true end
    parts[#parts + 1] = k .. "=" .. sh(v)
  end
  if not has_home then parts[#parts + 1] = "HOME=" .. sh(tmp_dir .. "/emptyhome") end
  if opts_src then parts[#parts + 1] = "LB_OPTS=" .. sh(opts_src) end
  parts[#parts + 1] = interp .. " " .. sh(child_script) .. " 2>&1"
  local p = assert(io.popen(table.concat(parts, " ")))
  local out = p:read("*a")
  p:close()
  local r = { raw = out, fields = {} }
  if out:sub(1, 3) == "OK\n" then
    r.ok = true
    for k, v in out:gmatch("([%w_]+)=([^\n]*)") do r.fields[k] = v end
  elseif out:sub(1, 4) == "ERR\n" then
    r.ok = false
    r.message = out:sub(5)
  else
    error("child failed: " .. out)
  end
  return r
end

-- A complete token configuration as environment variables.
local function token_env(extra)
  local e = {
    PGHOST = "db.example.com", PGDATABASE = "app", PGUSER = "svc",
    LAKEBASE_ENDPOINT = "projects/p/branches/b/endpoints/e",
    DATABRICKS_HOST = "https://ws.cloud.databricks.com", DATABRICKS_TOKEN = "dapiSPECTOKEN",
  }
  for k, v in pairs(extra or {}) do e[k] = v or nil end
  return e
end

-- A complete configuration as options, with overrides (the value NONE removes an option).
local NONE = setmetatable({}, { __tostring = function() return "NONE" end })
local function opts(over)
  local o = {
    host = "db.example.com", database = "app", user = "svc",
    endpoint = "projects/p/branches/b/endpoints/e",
    databricks_host = "https://ws.cloud.databricks.com", token = "dapiSPECTOKEN",
  }
  for k, v in pairs(over or {}) do
    if v == NONE then o[k] = nil else o[k] = v end
  end
  return o
end

local function lines_of(s)
  local t = {}
  for l in (s .. "\n"):gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

setup(function()
  local p = io.popen("mktemp -d /tmp/lb-config-spec-XXXXXX")
  tmp_dir = p:read("*l")
  p:close()
  os.execute("mkdir -p " .. sh(tmp_dir .. "/emptyhome"))
  child_script = tmp_dir .. "/child.lua"
  write(child_script, CHILD)
end)

teardown(function()
  if tmp_dir then os.execute("rm -rf " .. sh(tmp_dir)) end
end)

describe("lakebase config: options", function()
  -- In-process calls use complete options; a child covers anything the environment could change.
  it("returns the validated settings with defaults", function()
    local r = child({}, [[{ host = "h", database = "d", user = "u", password = "pwSPEC" }]])
    assert.is_true(r.ok, r.raw)
    local f = r.fields
    assert.equal("h", f.host)
    assert.equal("5432", f.port)
    assert.equal("require", f.sslmode)
    assert.equal("10", f.max)
    assert.equal("30", f.idle_timeout)
    assert.equal("10", f.connect_timeout)
    assert.equal("10", f.acquire_timeout)
    assert.equal("true", f.prepare)
    assert.equal("password", f.auth)
    assert.equal("(set)", f.password)
    assert.is_nil(f.endpoint)
  end)

  it("gives Lua types: port and max integers, prepare boolean, secrets redacted", function()
    local s = assert(core.config(opts({ port = "6000", prepare = false, max = 3, idle_timeout = 1.5 })))
    assert.equal(6000, s.port)
    assert.equal(3, s.max)
    assert.equal(1.5, s.idle_timeout)
    assert.is_false(s.prepare)
    assert.equal("(set)", s.token)
    assert.equal("token", s.auth)
    assert.not_matches("dapiSPECTOKEN", tostring(s), 1, true)
    assert.matches("lakebase.settings{", tostring(s), 1, true)
    assert.matches("token=(set)", tostring(s), 1, true)
  end)

  it("has a field for every row of the option table (core.options) that has a value", function()
    -- Every text setting given (endpoint auth: no password, instance or client secret with it).
    local given = { databricks_cli_path = "/opt/databricks", read_host = "r",
      read_endpoint = "projects/p/branches/b/endpoints/ro",
      sslrootcert = "/etc/ssl/certs/ca-certificates.crt", application_name = "app", profile = NONE }
    local s = assert(core.config(opts(given)))
    local unset = { instance = true, client_id = true, client_secret = true, password = true, profile = true }
    for _, row in ipairs(core.options) do
      local key = row.name == "auth_type" and "auth" or row.name
      if not unset[key] then assert.is_not_nil(s[key], key) end
      if row.secret and s[key] ~= nil then assert.equal("(set)", s[key], key) end
    end
    assert.equal("/opt/databricks", s.databricks_cli_path)
    assert.equal("token", s.auth)
  end)

  it("coerces a port string and accepts integral numbers", function()
    assert.equal(5433, assert(core.config(opts({ port = "5433" }))).port)
    assert.equal(5434, assert(core.config(opts({ port = 5434 }))).port)
    assert.equal(5435, assert(core.config(opts({ port = 5435.0 }))).port)
  end)

  local rejects = {
    { "port", "abc", 'PGPORT (port): expected an integer 1-65535, got "abc"' },
    { "port", 0, 'PGPORT (port): expected an integer 1-65535, got "0"' },
    { "port", 65536, 'got "65536"' },
    { "port", 5432.5, 'PGPORT (port): expected an integer 1-65535, got "5432.5"' },
    { "port", "-1", "PGPORT (port)" },
    { "sslmode", "allow", "PGSSLMODE (sslmode): expected one of require, prefer, disable, verify-full, verify-ca" },
    { "sslrootcert", "/nonexistent/ca.pem", "PGSSLROOTCERT (sslrootcert): cannot read the CA bundle" },
    { "endpoint", "projects/p/branches/b",
      "LAKEBASE_ENDPOINT (endpoint): expected projects/<project>/branches/<branch>/endpoints/<endpoint>" },
    { "endpoint", "projects/p/branches/b/endpoints/e/extra", "LAKEBASE_ENDPOINT (endpoint)" },
    { "databricks_host", "http://ws.example.com", "DATABRICKS_HOST (databricks_host): expected an https:// URL" },
    { "databricks_host", "ftp://ws.example.com", "DATABRICKS_HOST (databricks_host): expected an https:// URL" },
    { "databricks_host", "https://ws.example.com:70000", "has an invalid port" },
    { "max", 0, 'max: expected an integer 1-1000, got "0"' },
    { "max", 1001, "max: expected an integer 1-1000" },
    { "max", 2.5, "max: expected an integer 1-1000" },
    { "idle_timeout", 0, "idle_timeout: expected a number of seconds > 0" },
    { "idle_timeout", -1, "idle_timeout:" },
    { "connect_timeout", 0 / 0, "connect_timeout:" },
    { "acquire_timeout", math.huge, "acquire_timeout:" },
    { "max_lifetime", -1, "max_lifetime:" },
    { "statement_timeout", 1.5, "statement_timeout: expected an integer number of milliseconds" },
    { "statement_timeout", -1, "statement_timeout:" },
    { "application_name", string.rep("a", 64), "application_name: is too long" },
    { "application_name", "caf\195\169", "application_name: expected printable ASCII" },
    { "prepare", "maybe", "prepare: expected a boolean" },
    { "host", "", "PGHOST (host): must not be empty" },
    { "host", "a b", "PGHOST (host): expected a host name" },
    { "database", "a\tb", "PGDATABASE (database): contains a control character (byte 0x09 at offset 1)" },
    { "user", "\255\254", "PGUSER (user): is not valid UTF-8" },
    { "host", string.rep("h", 5000), "PGHOST (host): is too long (5000 bytes, at most 4096)" },
    { "host", "a\0b", "PGHOST (host): expected a string, got a string containing a NUL byte" },
    { "host", {}, "PGHOST (host): expected a string, got table" },
    { "host", true, "PGHOST (host): expected a string, got boolean" },
    { "port", print, "PGPORT (port): expected an integer 1-65535, got function" },
    { "max", core.null, "max: expected an integer 1-1000, got userdata" },
    { "prepare", {}, "prepare: expected a boolean, got table" },
    { "min_idle", -1, "min_idle: expected an integer 0-1000, at most max" },
    { "min_idle", 11, "min_idle: is 11, more than max (10)" },
    { "prefetch", "soon", "prefetch: expected a boolean" },
  }
  for _, case in ipairs(rejects) do
    local name, value, want = case[1], case[2], case[3]
    local shown = type(value) == "string" and ("%q"):format(value:sub(1, 20)) or tostring(value)
    it(("rejects %s = %s"):format(name, shown), function()
      local s, err = core.config(opts({ [name] = value }))
      assert.is_nil(s)
      assert.equal("config", err.kind)
      assert.matches(want, err.message, 1, true)
      assert.equal(2, #lines_of(err.message), err.message) -- header + exactly this problem
    end)
  end

  local accepts = {
    { "sslmode", "prefer" }, { "sslmode", "disable" }, { "sslmode", "verify-full" }, { "sslmode", "verify-ca" },
    { "sslmode", "require" }, { "port", 1 }, { "port", 65535 }, { "max", 1000 }, { "idle_timeout", 0.25 },
    { "max_lifetime", 0 }, { "statement_timeout", 0 }, { "statement_timeout", 30000 },
    { "application_name", "my-app" }, { "prepare", true }, { "prepare", "off" },
    { "min_idle", 0 }, { "min_idle", 10 }, { "prefetch", true }, { "prefetch", false },
    { "databricks_host", "http://localhost:8080" }, { "databricks_host", "http://127.0.0.1:1" },
    { "databricks_host", "http://[::1]:8080" }, { "database", "caf\195\169" },
  }
  for _, case in ipairs(accepts) do
    it(("accepts %s = %s"):format(case[1], tostring(case[2])), function()
      local s, err = core.config(opts({ [case[1]] = case[2] }))
      assert.is_table(s, err and err.message)
    end)
  end

  it("normalises databricks_host like the Databricks SDKs", function()
    local function norm(v) return assert(core.config(opts({ databricks_host = v }))).databricks_host end
    assert.equal("https://ws.cloud.databricks.com", norm("https://ws.cloud.databricks.com/"))
    assert.equal("https://ws.cloud.databricks.com", norm("HTTPS://WS.Cloud.Databricks.com"))
    assert.equal("https://adb-1.2.azuredatabricks.net", norm("adb-1.2.azuredatabricks.net"))
    assert.equal("https://ws.example.com:8443", norm("https://ws.example.com:8443/some/path?o=1#x"))
    assert.equal("http://127.0.0.1:9999", norm("http://127.0.0.1:9999/"))
  end)

  it("never echoes user information in a workspace URL", function()
    local s, err = core.config(opts({ databricks_host = "https://me:hunter2SECRET@ws.example.com" }))
    assert.is_nil(s)
    assert.matches("must not contain user information", err.message, 1, true)
    assert.not_matches("hunter2SECRET", tostring(err), 1, true)
  end)

  it("reports unknown options and non-string keys", function()
    local o = opts({ hots = "x" })
    o[1] = "positional"
    local s, err = core.config(o)
    assert.is_nil(s)
    assert.matches('unknown option "hots"', err.message, 1, true)
    assert.matches("options: 1 key of type number", err.message, 1, true)
  end)

  it("token wins over M2M, password wins over both", function()
    local s = assert(core.config(opts({ client_id = "cid", client_secret = "csSPEC" })))
    assert.equal("token", s.auth)
    assert.is_nil(s.client_secret)
    s = assert(core.config(opts({ password = "pwSPEC" })))
    assert.equal("password", s.auth)
    assert.is_nil(s.token)
    s = assert(core.config(opts({ token = NONE, client_id = "cid", client_secret = "csSPEC" })))
    assert.equal("m2m", s.auth)
    assert.equal("cid", s.client_id)
    assert.equal("(set)", s.client_secret)
  end)

  it("password needs no endpoint or databricks_host", function()
    local s = assert(core.config({ host = "h", database = "d", user = "u", password = "pwSPEC" }))
    assert.is_nil(s.endpoint)
    assert.is_nil(s.databricks_host)
  end)

  it("returns an error object whose tostring starts with the kind", function()
    local s, err = core.config(opts({ port = "x" }))
    assert.is_nil(s)
    assert.equal(core.error_mt, getmetatable(err))
    assert.matches("^config: invalid settings %(1 problem%):\nPGPORT", tostring(err))
    assert.is_false(err.retriable)
  end)

  it("raises for a non-table argument", function()
    assert.has_error(function() core.config("host=x") end, "bad argument #1 to 'config' (table expected, got string)")
  end)

  it("is exported as lakebase.config", function()
    local lakebase = require("lakebase")
    local s = assert(lakebase.config(opts()))
    assert.equal("db.example.com", s.host)
  end)
end)

describe("lakebase config: environment and profile", function()
  it("reads every setting from the environment", function()
    local r = child(token_env({ PGPORT = "6432", PGSSLMODE = "verify-full" }))
    assert.is_true(r.ok, r.raw)
    assert.equal("db.example.com", r.fields.host)
    assert.equal("6432", r.fields.port)
    assert.equal("verify-full", r.fields.sslmode)
    assert.equal("projects/p/branches/b/endpoints/e", r.fields.endpoint)
    assert.equal("https://ws.cloud.databricks.com", r.fields.databricks_host)
    assert.equal("token", r.fields.auth)
    assert.not_matches("dapiSPECTOKEN", r.raw, 1, true)
  end)

  it("options win over the environment", function()
    local r = child(token_env({ PGPORT = "6432" }), [[{ host = "opt-host", port = 7000 }]])
    assert.is_true(r.ok, r.raw)
    assert.equal("opt-host", r.fields.host)
    assert.equal("7000", r.fields.port)
    assert.equal("app", r.fields.database)
  end)

  it("an empty variable counts as unset", function()
    local r = child(token_env({ PGPORT = "" }))
    assert.is_true(r.ok, r.raw)
    assert.equal("5432", r.fields.port)
  end)

  it("user falls back to DATABRICKS_CLIENT_ID; M2M from the environment", function()
    local r = child(token_env({ PGUSER = false, DATABRICKS_TOKEN = false,
      DATABRICKS_CLIENT_ID = "sp-1234", DATABRICKS_CLIENT_SECRET = "doseSPECSECRET" }))
    assert.is_true(r.ok, r.raw)
    assert.equal("sp-1234", r.fields.user)
    assert.equal("m2m", r.fields.auth)
    assert.equal("(set)", r.fields.client_secret)
    assert.not_matches("doseSPECSECRET", r.raw, 1, true)
  end)

  it("without auth, says exactly what to set", function()
    local r = child(token_env({ DATABRICKS_TOKEN = false }))
    assert.is_false(r.ok)
    assert.matches("Set DATABRICKS_TOKEN or both DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET", r.message, 1, true)
    r = child(token_env({ DATABRICKS_TOKEN = false, DATABRICKS_CLIENT_ID = "cid" }))
    assert.is_false(r.ok)
    assert.matches("Set DATABRICKS_TOKEN or both DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET", r.message, 1, true)
  end)

  it("an empty environment lists every required setting at once (host, user and database have defaults)", function()
    local r = child({})
    assert.is_false(r.ok)
    for _, want in ipairs({ "LAKEBASE_ENDPOINT (endpoint): required", "DATABRICKS_HOST (databricks_host): required",
      "Set DATABRICKS_TOKEN or both" }) do
      assert.matches(want, r.message, 1, true)
    end
    assert.equal(4, #lines_of(r.message), r.message)
    -- a native password makes no Databricks calls: then the host and the role are required
    r = child({ PGPASSWORD = "pw" })
    assert.is_false(r.ok)
    assert.matches("PGHOST (host): required with a password", r.message, 1, true)
    assert.matches("PGUSER (user): required with a password", r.message, 1, true)
    assert.equal(3, #lines_of(r.message), r.message)
  end)

  it("an all-wrong environment: one error naming every bad variable, no secret value", function()
    local r = child({
      PGHOST = "bad host", PGPORT = "70000", PGDATABASE = "db\1", PGUSER = "\255",
      PGSSLMODE = "sometimes", PGSSLROOTCERT = "/nonexistent/ca.pem",
      LAKEBASE_ENDPOINT = "projects/p", DATABRICKS_HOST = "http://remote.example.com",
      DATABRICKS_TOKEN = "dapiALLWRONG\1SECRET", DATABRICKS_CLIENT_ID = "cid\2",
      DATABRICKS_CLIENT_SECRET = string.rep("S", 5000), PGPASSWORD = "pwALLWRONG\127SECRET",
      LAKEBASE_INSTANCE = "my_instance",
    })
    assert.is_false(r.ok)
    for _, var in ipairs({ "PGHOST (host)", "PGPORT (port)", "PGDATABASE (database)", "PGUSER (user)",
      "PGSSLMODE (sslmode)", "PGSSLROOTCERT (sslrootcert)", "LAKEBASE_ENDPOINT (endpoint)",
      "DATABRICKS_HOST (databricks_host)", "DATABRICKS_TOKEN (token): is set but contains a control character",
      "DATABRICKS_CLIENT_ID (client_id)", "DATABRICKS_CLIENT_SECRET (client_secret): is too long",
      "PGPASSWORD (password): is set but contains a control character",
      'LAKEBASE_INSTANCE (instance): expected a database instance name (letters, digits and -, at most 63), '
        .. 'got "my_instance"',
      "LAKEBASE_INSTANCE (instance): set only one of LAKEBASE_ENDPOINT and LAKEBASE_INSTANCE" }) do
      assert.matches(var, r.message, 1, true)
    end
    assert.matches("invalid settings (14 problems)", r.message, 1, true)
    assert.not_matches("ALLWRONG", r.message, 1, true)
    assert.not_matches("SSSSSSSS", r.message, 1, true)
  end)

  describe("~/.databrickscfg", function()
    local cfg = [[
; a Databricks CLI config
[DEFAULT]
host  = https://default.cloud.databricks.com
token = dapiDEFAULTSPEC

[prod]
host          = PROD.cloud.databricks.com/
client_id     = prod-sp
client_secret = prodSPECSECRET
]]
    local base = {
      PGHOST = "h", PGDATABASE = "d", PGUSER = "u", LAKEBASE_ENDPOINT = "projects/p/branches/b/endpoints/e",
    }
    local function with(extra)
      local e = {}
      for k, v in pairs(base) do e[k] = v end
      for k, v in pairs(extra) do e[k] = v end
      return e
    end
    local home

    before_each(function()
      home = tmp_dir .. "/home"
      os.execute("mkdir -p " .. sh(home))
      write(home .. "/.databrickscfg", cfg)
    end)

    it("uses [DEFAULT] when no auth is set otherwise", function()
      local r = child(with({ HOME = home }))
      assert.is_true(r.ok, r.raw)
      assert.equal("token", r.fields.auth)
      assert.equal("https://default.cloud.databricks.com", r.fields.databricks_host)
      assert.not_matches("dapiDEFAULTSPEC", r.raw, 1, true)
    end)

    it("ignores [DEFAULT] when auth is set in the environment", function()
      local r = child(with({ HOME = home, DATABRICKS_TOKEN = "dapiENV" }))
      assert.is_false(r.ok)
      assert.matches("DATABRICKS_HOST (databricks_host): required", r.message, 1, true)
    end)

    it("DATABRICKS_CONFIG_PROFILE selects a profile; the environment still wins", function()
      local r = child(with({ HOME = home, DATABRICKS_CONFIG_PROFILE = "prod" }))
      assert.is_true(r.ok, r.raw)
      assert.equal("m2m", r.fields.auth)
      assert.equal("prod-sp", r.fields.client_id)
      assert.equal("https://prod.cloud.databricks.com", r.fields.databricks_host)
      r = child(with({ HOME = home, DATABRICKS_CONFIG_PROFILE = "prod", DATABRICKS_HOST = "https://env.example.com" }))
      assert.is_true(r.ok, r.raw)
      assert.equal("https://env.example.com", r.fields.databricks_host)
      assert.equal("prod-sp", r.fields.client_id)
    end)

    it("options win over the profile", function()
      local r = child(with({ HOME = home, DATABRICKS_CONFIG_PROFILE = "prod" }), [[{ client_id = "opt-sp" }]])
      assert.is_true(r.ok, r.raw)
      assert.equal("opt-sp", r.fields.client_id)
    end)

    it("DATABRICKS_CONFIG_FILE overrides the path", function()
      local alt = tmp_dir .. "/alt.cfg"
      write(alt, "[DEFAULT]\nhost = https://alt.example.com\ntoken = dapiALT\n")
      local r = child(with({ HOME = home, DATABRICKS_CONFIG_FILE = alt }))
      assert.is_true(r.ok, r.raw)
      assert.equal("https://alt.example.com", r.fields.databricks_host)
    end)

    it("a missing profile or file is reported", function()
      local r = child(with({ HOME = home, DATABRICKS_CONFIG_PROFILE = "staging" }))
      assert.is_false(r.ok)
      assert.matches("DATABRICKS_CONFIG_PROFILE: no profile [staging] in", r.message, 1, true)
      r = child(with({ HOME = home, DATABRICKS_CONFIG_PROFILE = "prod",
        DATABRICKS_CONFIG_FILE = tmp_dir .. "/none.cfg" }))
      assert.is_false(r.ok)
      assert.matches("cannot read the Databricks config file", r.message, 1, true)
    end)

    -- Resolution as the Databricks SDKs do it (databricks-sdk-go config/config_file.go): each row is
    -- the environment and the file in, the chosen auth, host and profile (or the error) out.
    it("resolves like the Databricks SDKs: the resolution table", function()
      local login = "[DEFAULT]\nhost = https://login.cloud.databricks.com\nauth_type = databricks-cli\n"
        .. "[__settings__]\ndefault_profile = prod\n[prod]\nhost = https://prod.cloud.databricks.com\n"
        .. "client_id = prod-sp\nclient_secret = prodSPECSECRET\n"
      local rows = {
        -- a host of workspace A is never paired with [DEFAULT]'s token for workspace B
        { env = { DATABRICKS_HOST = "https://a.example.com" }, err = "Set DATABRICKS_TOKEN" },
        -- no profile named: [__settings__] default_profile, then [DEFAULT]
        { file = login, auth = "m2m", host = "https://prod.cloud.databricks.com", profile = "prod" },
        { file = login, env = { DATABRICKS_CONFIG_PROFILE = "DEFAULT" }, auth = "databricks-cli",
          host = "https://login.cloud.databricks.com", profile = "DEFAULT" },
        -- the environment forces the method
        { env = { DATABRICKS_AUTH_TYPE = "databricks-cli", DATABRICKS_HOST = "https://cli.example.com" },
          auth = "databricks-cli", host = "https://cli.example.com" },
        { env = { DATABRICKS_AUTH_TYPE = "pat", DATABRICKS_HOST = "https://x.example.com" },
          err = "DATABRICKS_AUTH_TYPE (auth_type): is pat, but DATABRICKS_TOKEN (token) is not set" },
        { env = { DATABRICKS_AUTH_TYPE = "azure-cli", DATABRICKS_HOST = "https://x.example.com",
          DATABRICKS_TOKEN = "dapiX" },
          err = "expected one of pat, oauth-m2m, databricks-cli (the auth types lakebase supports)" },
        { file = "[DEFAULT]\nhost = https://x.example.com\nauth_type = basic\n", err = "from profile [DEFAULT]" },
        { env = { DATABRICKS_CONFIG_PROFILE = "__settings__" }, file = login, err = "reserved section name" },
        -- a token still wins over client id/secret when no auth_type says otherwise
        { env = { DATABRICKS_HOST = "https://x.example.com", DATABRICKS_TOKEN = "dapiX", DATABRICKS_CLIENT_ID = "c",
          DATABRICKS_CLIENT_SECRET = "s" }, auth = "token" },
        { env = { DATABRICKS_HOST = "https://x.example.com", DATABRICKS_TOKEN = "dapiX", DATABRICKS_CLIENT_ID = "c",
          DATABRICKS_CLIENT_SECRET = "s", DATABRICKS_AUTH_TYPE = "oauth-m2m" }, auth = "m2m" },
      }
      for i, row in ipairs(rows) do
        write(home .. "/.databrickscfg", row.file or "")
        local env = with({ HOME = home })
        for k, v in pairs(row.env or {}) do env[k] = v end
        local r = child(env)
        if row.err then
          assert.is_false(r.ok, "row " .. i .. ": " .. r.raw)
          assert.matches(row.err, r.message, 1, true)
        else
          assert.is_true(r.ok, "row " .. i .. ": " .. r.raw)
          assert.equal(row.auth, r.fields.auth, "row " .. i)
          if row.host then assert.equal(row.host, r.fields.databricks_host, "row " .. i) end
          assert.equal(row.profile, r.fields.profile, "row " .. i)
        end
        assert.not_matches("prodSPECSECRET", r.raw, 1, true)
      end
    end)

    it("expands ~ in DATABRICKS_CONFIG_FILE", function()
      write(home .. "/alt.cfg", "[DEFAULT]\nhost = https://tilde.example.com\ntoken = dapiTILDE\n")
      local r = child(with({ HOME = home, DATABRICKS_CONFIG_FILE = "~/alt.cfg" }))
      assert.is_true(r.ok, r.raw)
      assert.equal("https://tilde.example.com", r.fields.databricks_host)
    end)

    it("a malformed file is reported by line, never by content", function()
      write(home .. "/.databrickscfg", "[DEFAULT]\ntoken = dapiMALFORMEDSPEC\nnot a key value line\n")
      local r = child(with({ HOME = home }))
      assert.is_false(r.ok)
      assert.matches("is malformed: line 3", r.message, 1, true)
      assert.not_matches("MALFORMEDSPEC", r.message, 1, true)
      assert.not_matches("not a key", r.message, 1, true)
    end)

    it("a bad value from the profile names the profile", function()
      write(home .. "/.databrickscfg", "[DEFAULT]\nhost = http://remote.example.com\ntoken = dapiX\n")
      local r = child(with({ HOME = home }))
      assert.is_false(r.ok)
      assert.matches("DATABRICKS_HOST (databricks_host, from profile [DEFAULT]", r.message, 1, true)
    end)
  end)
end)
