-- The mistakes a newcomer makes (issue 20), each answered by a message that says what to do:
-- nginx without `env` lines, refresh-token after `cp .env.example .env`, two migrations with one
-- number, a schema module without a table, a misspelt .env key or migration file name, a wrong
-- PGUSER, and error text without repeated prefixes. Against the fixtures; the same on lua5.4/luajit.
-- luacheck: max line length 160
local h = require("spec.support.helpers")
local nginx = require("spec.support.nginx")
local dotenv = require("lakebase.dotenv")
local migrate = require("lakebase.migrate")

local q = h.shell_quote
local interp = os.getenv("LAKEBASE_TEST_INTERP") or "lua5.4"
local root = os.getenv("PWD")
local BIN = root .. "/bin/lakebase"
local build = os.getenv("LAKEBASE_BUILD") or "build"
if build:sub(1, 1) ~= "/" then build = root .. "/" .. build end

local write = h.write_file

local function mkdtemp()
  local out = h.run("mktemp -d /tmp/lakebase-newcomer.XXXXXX")
  return (out:gsub("%s+$", ""))
end

-- The CLI in `cwd` with a clean environment; returns exit code, stdout, stderr.
local function lakebase(args, opts)
  opts = opts or {}
  local parts = { "cd " .. q(opts.cwd) .. " && env -i", "PATH=" .. q(opts.path or os.getenv("PATH")),
    "HOME=" .. q(opts.cwd), "LUA_PATH=" .. q(os.getenv("LUA_PATH") or ""),
    "LUA_CPATH=" .. q(os.getenv("LUA_CPATH") or "") }
  for k, v in pairs(opts.env or {}) do parts[#parts + 1] = k .. "=" .. q(v) end
  parts[#parts + 1] = interp .. " " .. q(BIN)
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  parts[#parts + 1] = "2>" .. q(opts.cwd .. "/.stderr")
  local out, _, code = h.run(table.concat(parts, " "))
  local err = h.read_file(opts.cwd .. "/.stderr") or ""
  os.remove(opts.cwd .. "/.stderr")
  return code, out, err
end

-- The fixtures' settings for a workspace token, as a .env (the token itself left to the caller).
local function pat_env(user)
  local e = h.env()
  return table.concat({
    "PGHOST=" .. e.PGHOST, "PGPORT=" .. e.PGPORT, "PGDATABASE=" .. e.PGDATABASE, "PGUSER=" .. user,
    "PGSSLMODE=require", "PGSSLROOTCERT=" .. e.SSLROOTCERT, "LAKEBASE_ENDPOINT=" .. e.ENDPOINT,
    "DATABRICKS_HOST=" .. e.DATABRICKS_HOST, "",
  }, "\n")
end

describe("a newcomer's mistake gets a message that says what to do:", function()
  local dir
  before_each(function() dir = mkdtemp() end)
  after_each(function() os.execute("rm -rf " .. q(dir)) end)

  it("nginx without `env` lines: the missing settings name nginx's cleared environment and the lines to add", function()
    local port = nginx.free_port()
    local srv = nginx.new(dir .. "/nginx", table.concat({
      "load_module /usr/lib/nginx/modules/ndk_http_module.so;",
      "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;",
      "worker_processes 1;",
      "thread_pool lakebase threads=2;",
      "env PGHOST;   # the only setting passed on",
      "events { worker_connections 64; }",
      "http {",
      '  lua_package_path "' .. root .. '/lua/?.lua;' .. root .. '/lua/?/init.lua;;";',
      '  lua_package_cpath "' .. build .. '/luajit/?.so;;";',
      "  client_body_temp_path " .. dir .. "/nginx/body;",
      "  server {",
      "    listen 127.0.0.1:" .. port .. ";",
      "    location / { content_by_lua_block {",
      '      local db, err = require("lakebase").new()',
      '      ngx.say(db and "configured" or tostring(err))',
      "    } }",
      "  }",
      "}", "",
    }, "\n"))
    local e = h.env()
    -- every setting is in nginx's own environment, as when it is exported in the shell
    local env = "PGHOST=" .. q(e.PGHOST) .. " PGDATABASE=" .. q(e.PGDATABASE) .. " LAKEBASE_ENDPOINT=" .. q(e.ENDPOINT)
      .. " DATABRICKS_HOST=" .. q(e.DATABRICKS_HOST) .. " DATABRICKS_CLIENT_ID=" .. q(e.CLIENT_ID)
    local ok, err = nginx.start(srv, "http://127.0.0.1:" .. port .. "/", env)
    finally(function() nginx.stop(srv) end)
    assert(ok, err)
    local status, body = nginx.curl("http://127.0.0.1:" .. port .. "/")
    assert.equal(200, status)
    assert.matches("LAKEBASE_ENDPOINT %(endpoint%): required", body)
    assert.matches("HINT: inside nginx: nginx clears its workers' environment", body, 1, true)
    assert.matches("env LAKEBASE_ENDPOINT; env DATABRICKS_HOST; "
      .. "env DATABRICKS_TOKEN; env DATABRICKS_CLIENT_ID; env DATABRICKS_CLIENT_SECRET;", body, 1, true)
    assert.not_matches("env PGHOST;", body, 1, true) -- it was passed on
  end)

  describe("refresh-token after `cp .env.example .env`", function()
    local fakebin
    before_each(function()
      fakebin = dir .. "/bin"
      os.execute("mkdir -p " .. q(fakebin))
      write(fakebin .. "/databricks", "#!/bin/sh\nprintf '{\"access_token\": \"dapi-fresh\", \"expiry\": \"2030-01-01T00:00:00Z\"}\\n'\n", "755")
    end)

    it("creates a .env.local holding only the token, which then wins over the empty placeholder in .env", function()
      os.execute("cp " .. q(root .. "/.env.example") .. " " .. q(dir .. "/.env"))
      local code, out, err = lakebase({ "refresh-token" }, { cwd = dir, path = fakebin .. ":" .. os.getenv("PATH") })
      assert.equal(0, code, out .. err)
      assert.matches("DATABRICKS_TOKEN written to a new %.env%.local, expires 2030%-01%-01T00:00:00Z %(only the token", out)
      assert.equal('DATABRICKS_TOKEN="dapi-fresh"\n', h.read_file(dir .. "/.env.local"))
      local mode = h.run("stat -c %a " .. q(dir .. "/.env.local"))
      assert.equal("600", (mode:gsub("%s", "")))
      local ov = assert(dotenv.overlay({ dir .. "/.env.local", dir .. "/.env" }, function() return nil end))
      assert.equal("dapi-fresh", ov.DATABRICKS_TOKEN)
      assert.equal("projects/my-project/branches/production/endpoints/primary", ov.LAKEBASE_ENDPOINT) -- .env's values stay
    end)

    it("an empty placeholder in .env.local no longer hides the real value in .env", function()
      write(dir .. "/.env", 'DATABRICKS_TOKEN="dapi-real"\nPGHOST=real.example.com\n')
      os.execute("cd " .. q(dir) .. " && LUA_PATH=" .. q(os.getenv("LUA_PATH") or "") .. " " .. interp .. " " .. q(BIN)
        .. " env-example > .env.local")
      local ov = assert(dotenv.overlay({ dir .. "/.env.local", dir .. "/.env" }, function() return nil end))
      assert.equal("dapi-real", ov.DATABRICKS_TOKEN)
    end)
  end)

  describe("migrations", function()
    local db, P
    setup(function() db = assert(require("lakebase").new(h.password_settings({ max = 3 }))) end)
    teardown(function() if db then db:close() end end)
    before_each(function() P = h.unique("nc") end)
    after_each(function()
      h.psql("drop table if exists " .. P .. "_a, " .. P .. "_b, " .. P .. "_track cascade")
    end)

    it("a number already used by another folder's migration names both files and is not counted as applied", function()
      os.execute("mkdir -p " .. q(dir .. "/one") .. " " .. q(dir .. "/two"))
      write(dir .. "/one/0001_create_a.sql", "create table " .. P .. "_a (id int);\n")
      write(dir .. "/two/0001_create_b.sql", "create table " .. P .. "_b (id int);\n")
      assert(migrate.up(db, { dir = dir .. "/one", table = P .. "_track" }))
      local res, err = migrate.up(db, { dir = dir .. "/two", table = P .. "_track" })
      assert.is_nil(res)
      assert.matches("0001_create_b.sql has version 1, but public." .. P .. "_track records version 1 as 0001_create_a "
        .. "(applied ", tostring(err), 1, true)
      assert.matches("), another name and content: 0001_create_b.sql has not run. Two migrations got the same number", tostring(err), 1, true)
      assert.matches("renumber 0001_create_b.sql after the newest migration", tostring(err), 1, true)
      assert.equal("0001_create_a", err.recorded)
      assert.equal("0", h.psql("select count(*) from pg_tables where tablename = '" .. P .. "_b'"))
      local st = assert(migrate.status(db, { dir = dir .. "/two", table = P .. "_track" }))
      assert.equal(0, #st.applied)
      assert.equal("clash", st.migrations[1].state)
    end)

    it("a misnamed migration file is reported, not skipped in silence", function()
      write(dir .. "/0001_create_a.sql", "create table " .. P .. "_a (id int);\n")
      write(dir .. "/0002-create-b.sql", "create table " .. P .. "_b (id int);\n")
      write(dir .. "/helpers.lua", "return {}\n") -- a helper module is not a migration
      local warnings = {}
      local res = assert(migrate.up(db, { dir = dir, table = P .. "_track",
        warn = function(msg) warnings[#warnings + 1] = msg end }))
      assert.equal(1, #res.applied)
      assert.same({ dir .. "/0002-create-b.sql is not run: a migration is named NNNN_name.sql or NNNN_name.lua; "
        .. "rename it (e.g. 0002_create-b.sql)" }, warnings)
      assert.equal("0002-create-b.sql", res.skipped[1].file)
    end)
  end)

  it("generate: a table missing from the schema modules is not dropped without a confirmation", function()
    write(dir .. "/schema.lua", [[
local s = require("lakebase.schema")
return { a = s.table("nc_a", { id = s.serial():primary_key() }), b = s.table("nc_b", { id = s.serial():primary_key() }) }
]])
    local code, out, err = lakebase({ "generate", "--dir", "m" }, { cwd = dir })
    assert.equal(0, code, out .. err)
    write(dir .. "/schema.lua", [[
local s = require("lakebase.schema")
return { a = s.table("nc_a", { id = s.serial():primary_key() }) }
]])
    code, out, err = lakebase({ "generate", "--dir", "m" }, { cwd = dir })
    assert.equal(0, code, out .. err)
    assert.matches("m/0002_drop_nc_b%.sql stops at its guard until you resolve its TODO %(destructive steps", err)
    local sql = h.read_file(dir .. "/m/0002_drop_nc_b.sql")
    assert.matches("TODO: destructive: table nc_b is no longer in the schema modules", sql, 1, true)
    assert.matches("RAISE EXCEPTION", sql, 1, true)
    local _, help = lakebase({ "generate", "--help" }, { cwd = dir })
    assert.matches("--allow-destructive", help, 1, true)
  end)

  it("a misspelt key in .env is named with the nearest setting", function()
    write(dir .. "/.env", "PGHOTS=db.example.com\nPGDATABASE=x\nMY_APP_SECRET=1\nPGAPPNAME=y\n")
    local code, out, err = lakebase({ "env-example" }, { cwd = dir })
    assert.equal(0, code)
    assert.matches("PGHOST=", out, 1, true)
    assert.matches("lakebase: warning: .env: PGHOTS is not a setting lakebase reads (ignored); did you mean PGHOST?", err, 1, true)
    assert.matches("lakebase: warning: .env: PGAPPNAME is not a setting lakebase reads (ignored)\n", err, 1, true)
    assert.not_matches("MY_APP_SECRET", err, 1, true) -- the application's own settings pass silently
    assert.not_matches("PGDATABASE", err, 1, true)
    assert.equal("PGHOST", dotenv.suggest("pghots", { "PGPORT", "PGHOST" }))
    assert.is_nil(dotenv.suggest("SOMETHING_ELSE", { "PGHOST" }))
  end)

  it("a wrong PGUSER: the hint says whose identity it must be and that the role must exist", function()
    write(dir .. "/.env", pat_env("nobody@example.com") .. "DATABRICKS_TOKEN=" .. h.env().TOKEN .. "\n", "600")
    local code, out, err = lakebase({ "check" }, { cwd = dir })
    assert.equal(1, code, out .. err)
    assert.matches("lakebase check: connect: .*password authentication failed for user \"nobody@example.com\"", err)
    assert.matches("HINT: PGUSER (user) must be the identity DATABRICKS_TOKEN belongs to (your Databricks user name", err, 1, true)
    assert.matches("a Postgres role for it must exist in Lakebase", err, 1, true)
    assert.not_matches("query: connect:", err, 1, true)
    assert.not_matches(h.env().TOKEN, out .. err, 1, true)
  end)

  it("docs and help agree: .env.example is `lakebase env-example`, every command's help names --env-file", function()
    local code, out = lakebase({ "env-example" }, { cwd = dir })
    assert.equal(0, code)
    assert.equal(h.read_file(root .. "/.env.example"), out)
    for _, cmd in ipairs({ "check", "token", "psql", "migrate", "new", "generate", "refresh-token", "env-example" }) do
      local _, help = lakebase({ cmd, "--help" }, { cwd = dir })
      assert.matches("^usage: lakebase " .. cmd:gsub("%-", "%%-"), help)
      assert.matches("--env-file PATH", help, 1, true)
    end
    local _, help = lakebase({ "migrate", "status", "--help" }, { cwd = dir })
    assert.matches("^usage: lakebase migrate status ", help)
    assert.matches("--tracking-table", help, 1, true)
  end)

  it("a credential failure is said once, not `credential: credential:`", function()
    write(dir .. "/.env", pat_env(h.env().PGUSER) .. "DATABRICKS_TOKEN=dapi-not-a-valid-token\n", "600")
    local code, out, err = lakebase({ "check" }, { cwd = dir })
    assert.equal(1, code, out .. err)
    assert.matches("lakebase check: credential: lakebase credential: HTTP 401", err, 1, true)
    assert.not_matches("credential: credential:", err, 1, true)
    assert.matches("HINT: the workspace refused the token: a DATABRICKS_TOKEN that expired or belongs to another workspace", err, 1, true)
  end)
end)
