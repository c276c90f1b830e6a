-- Fewer settings to copy by hand (issue 12, items 3-6): PGHOST read from the endpoint (or the
-- provisioned instance), PGUSER from the workspace (SCIM Me) or the client id, PGDATABASE
-- databricks_postgres; provisioned instances (LAKEBASE_INSTANCE, the database credential API);
-- Lakebase's pooled hosts; the API's error details (request_id, reason), gateway pages and 401s on
-- OAuth-looking tokens. Against the fixtures and the fake workspace; the same on lua5.4 and luajit.
-- luacheck: max line length 160
local h = require("spec.support.helpers")
local lakebase = require("lakebase")
local core = require("lakebase.core")

local ws = h.workspace
local CRED = h.CRED_PATH
local q = h.shell_quote
local root = h.root()
local interp = os.getenv("LAKEBASE_TEST_INTERP") or "lua5.4"

-- A workspace-token (PAT) setup with only what a newcomer gives: no host, user or database.
local function minimal(overrides)
  local e = h.env()
  local s = { port = tonumber(e.PGPORT), sslmode = "require", sslrootcert = e.SSLROOTCERT,
    databricks_host = e.DATABRICKS_HOST, token = e.TOKEN, endpoint = h.endpoint_for(h.unique("disc")) }
  for k, v in pairs(overrides or {}) do s[k] = v end
  return s
end

local function no_secret(text)
  local e = h.env()
  for _, secret in ipairs({ e.TOKEN, e.CLIENT_SECRET, e.ADMIN_PASSWORD }) do
    assert.is_nil(text:find(secret, 1, true), "a secret in: " .. text)
  end
end

-- The real service's default database, which the fixture's server lacks: made once, like Lakebase's.
local function ensure_databricks_postgres()
  if h.psql("select 1 from pg_database where datname = 'databricks_postgres'") ~= "1" then
    h.psql("create database databricks_postgres")
    -- the workspace identity's role may create tables there, as in a Lakebase project
    assert(h.psql('grant create on schema public to "' .. h.env().PGUSER:gsub('"', '""') .. '"', { database = "databricks_postgres" }))
  end
end

describe("discovery:", function()
  setup(ensure_databricks_postgres)
  before_each(function() ws.reset() end)

  it("PGHOST, PGUSER and PGDATABASE left out: the endpoint's host, the SCIM Me user, databricks_postgres; read once per process", function()
    local o = minimal()
    local s = assert(lakebase.config(o))
    assert.is_nil(s.host)
    assert.is_nil(s.user)
    assert.equal("databricks_postgres", s.database)
    local db = assert(lakebase.new(o))
    local row = assert(db:one("select current_user::text as u, current_database()::text as d"))
    assert.equal(h.env().PGUSER, row.u)
    assert.equal("databricks_postgres", row.d)
    -- another pool of the same identity and endpoint (another size), and the check's call: no new GET
    local db2 = assert(lakebase.new(minimal({ endpoint = o.endpoint, max = 3 })))
    assert(db2:one("select 1 as n"))
    local d = assert(core.discover(o))
    assert.equal("localhost", d.host)
    assert.same({ "localhost" }, d.hosts)
    assert.equal(h.env().PGUSER, d.user)
    local c = ws.counters()
    assert.equal(1, c["/api/2.0/postgres/" .. o.endpoint])
    assert.equal(1, c[h.ME_PATH])
    db:close()
    db2:close()
  end)

  it("under OAuth M2M the user is the client id: no SCIM call", function()
    local e = h.env()
    local o = minimal({ token = false, client_id = e.CLIENT_ID, client_secret = e.CLIENT_SECRET })
    o.token = nil
    local db = assert(lakebase.new(o))
    assert.equal(e.CLIENT_ID, assert(db:one("select current_user::text as u")).u)
    assert.equal(0, ws.counters()[h.ME_PATH])
    db:close()
  end)

  it("an unknown endpoint: 404 NOT_FOUND with the request id in the message and in err.request_id", function()
    local o = minimal({ endpoint = "projects/other/branches/b/endpoints/e" })
    local db, err = lakebase.new(o)
    assert.is_nil(db)
    assert.equal("credential", err.kind)
    assert.matches("lakebase endpoint: HTTP 404 NOT_FOUND: Endpoint 'projects/other/branches/b/endpoints/e' does not exist.", err.message, 1, true)
    assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", err.request_id)
    assert.matches("(reason NOT_FOUND, request_id " .. err.request_id .. ")", err.message, 1, true)
    assert.is_false(err.retriable)
    -- the credential call says the same
    local tok, cerr = lakebase.token(o)
    assert.is_nil(tok)
    assert.matches("lakebase credential: HTTP 404 NOT_FOUND", cerr.message, 1, true)
    assert.is_string(cerr.request_id)
    assert.not_equal(err.request_id, cerr.request_id)
  end)

  it("a malformed endpoint name: 400 INVALID_PARAMETER_VALUE", function()
    local o = minimal({ endpoint = h.endpoint_for(string.rep("x", 64)) })
    local db, err = lakebase.new(o)
    assert.is_nil(db)
    assert.matches("HTTP 400 INVALID_PARAMETER_VALUE: Invalid endpoint name", err.message, 1, true)
    assert.is_string(err.request_id)
  end)

  it("`lakebase check` says when PGHOST is not one of the endpoint's hosts, and nothing when it is", function()
    local e = h.env()
    local function check(host)
      -- the settings (token included) go through an env file, not the command line
      local envfile = os.tmpname()
      h.write_file(envfile, table.concat({ "PGHOST=" .. host, "PGPORT=" .. e.PGPORT, "PGSSLROOTCERT=" .. e.SSLROOTCERT,
        "PGDATABASE=" .. e.PGDATABASE, "DATABRICKS_HOST=" .. e.DATABRICKS_HOST, "DATABRICKS_TOKEN=" .. e.TOKEN,
        "LAKEBASE_ENDPOINT=" .. h.endpoint_for(h.unique("chk")), "" }, "\n"), "600")
      local out = h.run("cd /tmp && env -i PATH=" .. q(os.getenv("PATH")) .. " HOME=/nonexistent LUA_PATH=" .. q(os.getenv("LUA_PATH") or "")
        .. " LUA_CPATH=" .. q(os.getenv("LUA_CPATH") or "") .. " " .. interp .. " " .. q(root .. "/bin/lakebase")
        .. " check --env-file " .. q(envfile) .. " 2>&1")
      os.remove(envfile)
      return out
    end
    local out = check("127.0.0.1")
    assert.matches("warning: PGHOST 127.0.0.1 is not one of the hosts of the endpoint projects/p/branches/b/endpoints/chk", out, 1, true)
    assert.matches("(localhost)", out, 1, true)
    no_secret(out)
    out = check("localhost")
    assert.is_nil(out:find("warning: PGHOST", 1, true), out)
    assert.matches("\nok\n", out, 1, true)
    no_secret(out)
  end)
end)

describe("error details:", function()
  before_each(function() ws.reset() end)

  it("an HTML gateway page gives one readable line (its title)", function()
    ws.fault({ path = CRED, kind = "body", status = 502, content_type = "text/html", count = 50,
      body = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad Gateway</h1></center>\n"
        .. "<hr><center>nginx</center></body></html>\n" })
    local tok, err = lakebase.token(h.pat_settings({ endpoint = h.endpoint_for(h.unique("html")), connect_timeout = 0.5 }))
    assert.is_nil(tok)
    assert.matches("lakebase credential: HTTP 502: 502 Bad Gateway", err.message, 1, true)
    assert.is_nil(err.message:find("\n", 1, true))
    assert.is_nil(err.message:find("<", 1, true))
    assert.is_true(err.retriable)
  end)

  it("a plain-text body gives one line, whitespace collapsed", function()
    ws.fault({ path = CRED, kind = "body", status = 403, content_type = "text/plain", count = 5,
      body = "Access denied:\n  this IP address is not on the workspace's\taccess list\n" })
    local tok, err = lakebase.token(h.pat_settings({ endpoint = h.endpoint_for(h.unique("plain")) }))
    assert.is_nil(tok)
    assert.matches("HTTP 403: Access denied: this IP address is not on the workspace's access list$", err.message)
    assert.is_false(err.retriable)
  end)

  it("a 401 on a token that looks like an OAuth token says it may have expired and what to run", function()
    local jwt = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ5b3VAZXhhbXBsZS5jb20ifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
    local tok, err = lakebase.token(h.pat_settings({ endpoint = h.endpoint_for(h.unique("jwt")), token = jwt }))
    assert.is_nil(tok)
    assert.matches("HTTP 401 UNAUTHENTICATED", err.message, 1, true)
    assert.matches("looks like an OAuth token", err.hint, 1, true)
    assert.matches("lakebase refresh-token", err.hint, 1, true)
    assert.matches("DATABRICKS_AUTH_TYPE=databricks-cli", tostring(err), 1, true)
    assert.is_nil(tostring(err):find(jwt, 1, true))
    -- a PAT-looking token gets the other hint
    local _, perr = lakebase.token(h.pat_settings({ endpoint = h.endpoint_for(h.unique("pat")), token = "dapi0123456789abcdef0123456789abcdef" }))
    assert.is_nil(perr.hint:find("looks like an OAuth token", 1, true))
    assert.matches("expired or belongs to another workspace", perr.hint, 1, true)
  end)

  it("a 401 under databricks-cli auth says to log in again (the discovery call too)", function()
    local path = os.tmpname()
    h.write_file(path, "#!/bin/sh\nexport FAKE_DATABRICKS_TOKEN=eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.revoked\nexec "
      .. q(root .. "/spec/support/fake_databricks") .. ' "$@"\n', "700")
    local o = minimal({ auth_type = "databricks-cli", databricks_cli_path = path })
    o.token = nil
    local db, err = lakebase.new(o)
    os.remove(path)
    assert.is_nil(db)
    assert.matches("lakebase endpoint: HTTP 401 UNAUTHENTICATED", err.message, 1, true)
    assert.matches("run `databricks auth login --host", err.hint, 1, true)
    assert.is_string(err.request_id)
  end)

  it("OAuth errors ({error, error_description}) name the error and its description", function()
    local e = h.env()
    local _, err = lakebase.token({ host = "x", database = "d", user = "u", endpoint = h.endpoint_for(h.unique("oa")),
      databricks_host = e.DATABRICKS_HOST, client_id = e.CLIENT_ID, client_secret = "not-the-secret" })
    assert.matches("oauth token: HTTP 401 invalid_client: Client authentication failed", err.message, 1, true)
  end)
end)

describe("pooled hosts:", function()
  it("OAuth with a -pooler. host is a settings error that says why and names the direct host", function()
    local cfg, err = lakebase.config(minimal({ host = "ep-cool-1234-pooler.database.us-west-2.cloud.databricks.com" }))
    assert.is_nil(cfg)
    assert.equal("config", err.kind)
    assert.matches("PGHOST (host): ep-cool-1234-pooler.database.us-west-2.cloud.databricks.com is Lakebase's connection pooler, "
      .. "which accepts only native Postgres password roles", err.message, 1, true)
    assert.matches("connect to the direct host ep-cool-1234.database.us-west-2.cloud.databricks.com", err.message, 1, true)
    -- with a password it is fine, and the pool knows a transaction-mode pooler is there before any connect
    local o = h.password_settings({ host = "ep-cool-1234-pooler.invalid" })
    assert.is_false(assert(lakebase.config(o)).prepare) -- prepare defaults to false there
    assert.is_true(assert(lakebase.config(h.password_settings())).prepare)
    local db = assert(lakebase.new(o))
    assert.is_true(db:stats().pooler_detected)
    db:close()
    db = assert(lakebase.new(h.password_settings()))
    assert.is_false(db:stats().pooler_detected)
    db:close()
  end)
end)

describe("provisioned instances:", function()
  setup(ensure_databricks_postgres)
  before_each(function() ws.reset() end)

  it("LAKEBASE_INSTANCE: the database credential API (instance_names, request_id, expiration_time) and read_write_dns", function()
    local o = minimal({ endpoint = false, instance = "inst-" .. h.unique("i"):gsub("_", "-") })
    o.endpoint = nil
    local db = assert(lakebase.new(o))
    local row = assert(db:one("select current_user::text as u, current_database()::text as d"))
    assert.equal(h.env().PGUSER, row.u)
    assert.equal("databricks_postgres", row.d)
    local req = ws.last_request("/api/2.0/database/credentials")
    local body = require("lakebase.json").decode(req.body)
    assert.same({ o.instance }, body.instance_names)
    assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", body.request_id)
    local c = ws.counters()
    assert.equal(1, c["/api/2.0/database/instances/" .. o.instance])
    assert.equal(0, c[CRED])
    local tok, exp = lakebase.token(o)
    assert.is_string(tok)
    assert.is_true(exp > os.time() + 3000)
    db:close()
  end)

  it("an unknown instance: 404 NOT_FOUND; a bad name and endpoint plus instance: config errors, all at once", function()
    local o = minimal({ instance = "missing-db" })
    o.endpoint = nil
    local _, err = lakebase.new(o)
    assert.matches("lakebase instance: HTTP 404 NOT_FOUND: Database instance 'missing-db' does not exist.", err.message, 1, true)
    local _, cerr = lakebase.config(minimal({ instance = "bad name!" }))
    assert.matches("invalid settings (2 problems)", cerr.message, 1, true)
    assert.matches('LAKEBASE_INSTANCE (instance): expected a database instance name (letters, digits and -, at most 63), got "bad name!"',
      cerr.message, 1, true)
    assert.matches("LAKEBASE_INSTANCE (instance): set only one of LAKEBASE_ENDPOINT and LAKEBASE_INSTANCE", cerr.message, 1, true)
  end)
end)

describe("a newcomer with only `databricks auth login` and LAKEBASE_ENDPOINT", function()
  setup(ensure_databricks_postgres)

  it("runs `lakebase check`, `lakebase migrate` and a query", function()
    local e = h.env()
    local home = os.tmpname()
    os.remove(home)
    assert(h.run("mkdir -p " .. q(home .. "/bin")))
    -- what `databricks auth login --host H` writes: the host and the auth type, no token
    h.write_file(home .. "/.databrickscfg", "[DEFAULT]\nhost = " .. e.DATABRICKS_HOST .. "\nauth_type = databricks-cli\n", "600")
    -- `databricks` on PATH: the fake CLI with its token (the knob lives in the wrapper, not on a command line)
    h.write_file(home .. "/bin/databricks", "#!/bin/sh\nexport FAKE_DATABRICKS_TOKEN=" .. q(e.TOKEN) .. "\nexec "
      .. q(root .. "/spec/support/fake_databricks") .. ' "$@"\n', "700")
    -- the fixture's own particulars: its port and test CA (Lakebase itself is on 5432 with a public CA)
    local env = "env -i PATH=" .. q(home .. "/bin:" .. os.getenv("PATH")) .. " HOME=" .. q(home)
      .. " LUA_PATH=" .. q(os.getenv("LUA_PATH") or "") .. " LUA_CPATH=" .. q(os.getenv("LUA_CPATH") or "")
      .. " PGPORT=" .. e.PGPORT .. " PGSSLROOTCERT=" .. q(e.SSLROOTCERT)
      .. " LAKEBASE_ENDPOINT=" .. q(h.endpoint_for(h.unique("newcomer")))
    local out, ok = h.run("cd " .. q(home) .. " && " .. env .. " " .. interp .. " " .. q(root .. "/bin/lakebase") .. " check 2>&1")
    assert.is_true(ok, out)
    assert.matches("host: localhost (PGHOST unset: read from the endpoint", out, 1, true)
    assert.matches("user: " .. e.PGUSER .. " (PGUSER unset", out, 1, true)
    assert.matches("connected: user " .. e.PGUSER .. " on localhost:" .. e.PGPORT .. "/databricks_postgres", out, 1, true)
    no_secret(out)
    out, ok = h.run("cd " .. q(root) .. " && " .. env .. " " .. interp .. " " .. q(root .. "/bin/lakebase")
      .. " migrate --dir examples/migrations 2>&1")
    assert.is_true(ok, out)
    assert.matches("done: %d applied", out) -- (the other interpreter's run may have applied it already)
    no_secret(out)
    local script = home .. "/q.lua"
    h.write_file(script, 'local db = assert(require("lakebase").new())\n'
      .. 'print(assert(db:one("select 40 + $1::int + count(*) as n from items where false", 2)).n)\n')
    out, ok = h.run("cd " .. q(home) .. " && " .. env .. " " .. interp .. " " .. q(script) .. " 2>&1")
    assert.is_true(ok, out)
    assert.equal("42\n", out)
    h.run("rm -rf " .. q(home))
  end)
end)
