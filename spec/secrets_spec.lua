-- Secrets never shown (SPEC §2, issue 9): distinctive token / client secret / password values go
-- through every settings, credential, pool and CLI error path, and through tostring() and stats();
-- none of them (nor the fixtures' real secrets, nor the Lakebase credential) may appear anywhere.
local h = require("spec.support.helpers")
local lakebase = require("lakebase")
local core = require("lakebase.core")

local interp = os.getenv("LAKEBASE_TEST_INTERP") or (rawget(_G, "jit") and "luajit" or "lua5.4")

local S_TOKEN = "dapiSECRETTOKEN4b7e1c9d"
local S_CLIENT = "doseSECRETCLIENT9a2f6e3"
local S_PASS = "pwSECRETPASSWORD51d0c8a"

local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Every secret a test knows about: ours, the fixtures', and credentials fetched on the way.
local secrets = { S_TOKEN, S_CLIENT, S_PASS }
local function remember(s)
  if type(s) == "string" and #s >= 8 then secrets[#secrets + 1] = s end
end

-- Fails when `text` holds a secret, or the first 12 bytes of one (a truncated echo).
local function assert_clean(text, where)
  text = tostring(text)
  for _, s in ipairs(secrets) do
    assert(not text:find(s, 1, true), ("%s shows a secret"):format(where or "output"))
    if #s >= 16 then
      assert(not text:find(s:sub(1, 12), 1, true), ("%s shows the start of a secret"):format(where or "output"))
    end
  end
  return text
end

-- Every string reachable from a table (stats, settings, error objects).
local function dump(v, seen, out)
  seen, out = seen or {}, out or {}
  if type(v) == "table" then
    if seen[v] then return out end
    seen[v] = true
    for k, x in pairs(v) do
      dump(k, seen, out)
      dump(x, seen, out)
    end
    local mt = getmetatable(v)
    if mt and mt.__tostring then out[#out + 1] = tostring(v) end
  else
    out[#out + 1] = tostring(v)
  end
  return table.concat(out, "\n")
end

local tmp_dir

setup(function()
  local p = io.popen("mktemp -d /tmp/lb-secrets-spec-XXXXXX")
  tmp_dir = p:read("*l")
  p:close()
  os.execute("mkdir -p " .. sh(tmp_dir .. "/home") .. " " .. sh(tmp_dir .. "/cwd"))
  local e = h.env()
  remember(e.TOKEN)
  remember(e.CLIENT_SECRET)
  remember(e.ADMIN_PASSWORD)
end)

teardown(function()
  pcall(h.workspace.reset)
  if tmp_dir then os.execute("rm -rf " .. sh(tmp_dir)) end
end)

-- Runs a command under `env -i` with `env` and the interpreter's paths; returns stdout+stderr.
local function clean_run(env, cmd, cwd)
  local parts = { "cd " .. sh(cwd or (tmp_dir .. "/cwd")) .. " && env -i",
    "PATH=" .. sh(os.getenv("PATH") or "/usr/bin:/bin"), "HOME=" .. sh(tmp_dir .. "/home"),
    "LUA_PATH=" .. sh(package.path), "LUA_CPATH=" .. sh(package.cpath) }
  for _, k in ipairs({ "LD_PRELOAD", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS" }) do
    if os.getenv(k) then parts[#parts + 1] = k .. "=" .. sh(os.getenv(k)) end
  end
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. sh(v) end
  parts[#parts + 1] = cmd .. " 2>&1"
  local out = h.run(table.concat(parts, " "))
  return out
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

describe("secrets: settings", function()
  local good = {
    host = "db.example.com", database = "app", user = "svc",
    endpoint = "projects/p/branches/b/endpoints/e", databricks_host = "https://ws.example.com",
  }
  local function with(t)
    local o = {}
    for k, v in pairs(good) do o[k] = v end
    for k, v in pairs(t) do o[k] = v end
    return o
  end
  local all_secrets = { token = S_TOKEN, client_id = "cid", client_secret = S_CLIENT, password = S_PASS }
  local breakages = {
    { "nothing else wrong", {} },
    { "bad port", { port = "abc" } },
    { "missing host", { host = lakebase.null } },
    { "bad sslmode", { sslmode = "nope" } },
    { "bad endpoint", { endpoint = "projects/x" } },
    { "http workspace", { databricks_host = "http://remote.example.com" } },
    { "workspace URL with the password in it", { databricks_host = "https://user:" .. S_PASS .. "@ws.example.com" } },
    { "workspace URL with the token as user", { databricks_host = "https://" .. S_TOKEN .. "@ws.example.com" } },
    { "unknown option", { colour = "blue" } },
    { "token with a newline", { token = S_TOKEN .. "\n" } },
    { "token with invalid UTF-8", { token = "\255" .. S_TOKEN } },
    { "client secret with a NUL byte", { client_secret = S_CLIENT .. "\0x" } },
    { "huge password", { password = S_PASS:rep(300) } },
    { "empty token", { token = "" } },
    { "secret of a wrong type", { token = { S_TOKEN } } },
    { "every number wrong", { max = 0, idle_timeout = -1, connect_timeout = "x", acquire_timeout = 1e9,
      statement_timeout = 1.5, max_lifetime = -2, prepare = "perhaps" } },
  }
  for _, b in ipairs(breakages) do
    it("no secret in the result or error: " .. b[1], function()
      local o = with(all_secrets)
      for k, v in pairs(b[2]) do
        if v == lakebase.null then o[k] = nil else o[k] = v end
      end
      local s, err = lakebase.config(o)
      if s then
        assert_clean(tostring(s), "tostring(settings)")
        assert_clean(dump(s), "settings fields")
      else
        assert.equal("config", err.kind)
        assert_clean(tostring(err), "tostring(err)")
        assert_clean(dump(err), "error fields")
      end
    end)
  end

  it("redacts every secret in the returned settings", function()
    local auths = { { token = S_TOKEN }, { client_id = "cid", client_secret = S_CLIENT }, { password = S_PASS } }
    for _, auth in ipairs(auths) do
      local s = assert(lakebase.config(with(auth)))
      assert_clean(tostring(s), "tostring(settings)")
      assert_clean(dump(s), "settings fields")
      for _, k in ipairs({ "token", "client_secret", "password" }) do
        assert(s[k] == nil or s[k] == "(set)", k)
      end
    end
  end)

  it("no secret from the environment in any output of a failing child", function()
    local out = clean_run({
      PGHOST = "h", PGPORT = "bad", DATABRICKS_TOKEN = S_TOKEN .. "\1", DATABRICKS_CLIENT_SECRET = S_CLIENT,
      PGPASSWORD = S_PASS:rep(200), DATABRICKS_HOST = "https://x:" .. S_CLIENT .. "@h.example.com",
    }, interp .. " -e " .. sh([[
      local core = require("lakebase.core")
      local s, err = core.config()
      print(s, err)
      local ok, e = pcall(error, err)
      print(ok, e)
    ]]))
    assert.matches("PGPORT (port)", out, 1, true)
    assert_clean(out, "child output")
  end)

  it("no secret from ~/.databrickscfg in any message", function()
    local cfg = tmp_dir .. "/secret.cfg"
    write(cfg, "[DEFAULT]\ntoken = " .. S_TOKEN .. "\nclient_secret = " .. S_CLIENT .. "\n" .. S_PASS .. "\n")
    local out = clean_run({ DATABRICKS_CONFIG_FILE = cfg, PGHOST = "h" }, interp .. " -e " .. sh([[
      print(select(2, require("lakebase.core").config()))
    ]]))
    assert.matches("malformed: line 4", out, 1, true)
    assert_clean(out, "profile error")
    write(cfg, "[DEFAULT]\ntoken = " .. S_TOKEN .. "\001\nhost = http://remote.example.com\n")
    out = clean_run({ DATABRICKS_CONFIG_FILE = cfg, PGHOST = "h" }, interp .. " -e " .. sh([[
      print(select(2, require("lakebase.core").config()))
    ]]))
    assert.matches("from profile [DEFAULT]", out, 1, true)
    assert_clean(out, "profile value error")
  end)
end)

describe("secrets: credentials", function()
  before_each(function() h.workspace.reset() end)

  it("a rejected workspace token is not echoed", function()
    local tok, err = lakebase.token(h.pat_settings({ token = S_TOKEN }))
    assert.is_nil(tok)
    assert.equal("credential", err.kind)
    assert_clean(tostring(err), "401 error")
    assert_clean(dump(err), "401 error fields")
  end)

  it("a rejected client secret is not echoed", function()
    local tok, err = lakebase.token(h.settings({ client_secret = S_CLIENT }))
    assert.is_nil(tok)
    assert_clean(tostring(err), "OAuth error")
  end)

  it("an unknown endpoint error does not show the token", function()
    local tok, err = lakebase.token(h.pat_settings({ endpoint = "projects/none/branches/b/endpoints/e" }))
    assert.is_nil(tok)
    assert_clean(tostring(err), "404 error")
  end)

  it("stats and a fetched credential's errors stay clean under every fault", function()
    local opts = h.pat_settings({ connect_timeout = 1 })
    local tok = assert(lakebase.token(opts))
    remember(tok)
    assert_clean(dump(core.credential_stats(opts)), "credential_stats")
    for _, kind in ipairs({ "malformed", "truncated", "empty", "huge", "status" }) do
      core.credential_invalidate(opts, tok)
      h.workspace.fault({ path = h.CRED_PATH, kind = kind, status = 500 })
      local t2, err = lakebase.token(opts)
      h.workspace.reset()
      if t2 then
        remember(t2)
      else
        assert_clean(tostring(err), kind .. " error")
      end
      assert_clean(dump(core.credential_stats(opts)), "credential_stats after " .. kind)
    end
  end)
end)

describe("secrets: pool", function()
  before_each(function() h.workspace.reset() end)

  it("a wrong native password is not echoed by errors, tostring or stats", function()
    local db = assert(lakebase.new(h.password_settings({ password = S_PASS, connect_timeout = 2,
      acquire_timeout = 2 })))
    local rows, err = db:query("select 1")
    assert.is_nil(rows)
    assert_clean(tostring(err), "connect error")
    assert_clean(tostring(db), "tostring(db)")
    assert_clean(dump(db:stats()), "stats")
    db:close()
  end)

  it("a wrong workspace token is not echoed by query errors", function()
    local db = assert(lakebase.new(h.pat_settings({ token = S_TOKEN, connect_timeout = 2, acquire_timeout = 2 })))
    local rows, err = db:query("select 1")
    assert.is_nil(rows)
    assert_clean(tostring(err), "query error")
    assert_clean(dump(db:stats()), "stats")
    db:close()
  end)

  it("a working M2M pool shows no secret and not its credential", function()
    local opts = h.settings()
    remember((lakebase.token(opts)))
    local db = assert(lakebase.new(opts))
    local rows = assert(db:query("select current_user as u"))
    assert.equal(h.env().PGUSER, rows[1].u)
    local _, qerr = db:query("select $1::int", "not a number")
    assert_clean(tostring(qerr), "query error")
    assert_clean(tostring(db), "tostring(db)")
    assert_clean(dump(db:stats()), "stats")
    assert_clean(tostring(lakebase.config(opts)), "tostring(config)")
    db:close()
  end)
end)

describe("secrets: CLI", function()
  local function cli(env_file_text, args)
    local f = tmp_dir .. "/cwd/test.env"
    write(f, env_file_text)
    return clean_run({}, interp .. " " .. sh(h.root() .. "/bin/lakebase") .. " --env-file " .. sh(f) .. " " .. args)
  end

  local function fixture_env(over)
    local e = h.env()
    local t = {
      PGHOST = e.PGHOST, PGPORT = e.PGPORT, PGDATABASE = e.PGDATABASE, PGUSER = e.PGUSER,
      PGSSLROOTCERT = e.SSLROOTCERT, LAKEBASE_ENDPOINT = e.ENDPOINT, DATABRICKS_HOST = e.DATABRICKS_HOST,
      DATABRICKS_TOKEN = e.TOKEN,
    }
    for k, v in pairs(over or {}) do t[k] = v or nil end
    local lines = {}
    for k, v in pairs(t) do lines[#lines + 1] = k .. "=" .. v end
    table.sort(lines)
    return table.concat(lines, "\n") .. "\n"
  end

  it("check and token with wrong secrets print no secret", function()
    local text = fixture_env({ DATABRICKS_TOKEN = S_TOKEN })
    assert_clean(cli(text, "check"), "lakebase check (bad token)")
    assert_clean(cli(text, "token"), "lakebase token (bad token)")
    text = fixture_env({ DATABRICKS_TOKEN = false, LAKEBASE_ENDPOINT = false, DATABRICKS_HOST = false,
      PGPASSWORD = S_PASS })
    assert_clean(cli(text, "check"), "lakebase check (bad password)")
    text = fixture_env({ DATABRICKS_TOKEN = false, DATABRICKS_CLIENT_ID = h.env().CLIENT_ID,
      DATABRICKS_CLIENT_SECRET = S_CLIENT, PGPORT = "bad" })
    assert_clean(cli(text, "check"), "lakebase check (bad settings)")
  end)

  it("check and token (without --show) with working secrets print no secret", function()
    local text = fixture_env()
    local out = assert_clean(cli(text, "check"), "lakebase check")
    assert.matches("connected: user", out, 1, true)
    assert_clean(cli(text, "token"), "lakebase token")
    assert_clean(cli(text, "env-example"), "lakebase env-example")
  end)
end)
