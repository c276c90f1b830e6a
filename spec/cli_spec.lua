-- bin/lakebase against the fixtures: every command's help and exit codes, .env handling, check,
-- token, psql, migrate, new, refresh-token (with a fake `databricks` on PATH), env-example.
-- Settings reach the CLI through env files written 0600 (secrets never on a command line).
-- luacheck: max line length 200
local h = require("spec.support.helpers")
local dotenv = require("lakebase.dotenv")
local _ -- placeholder for ignored results

local interp = os.getenv("LAKEBASE_TEST_INTERP") or "lua5.4"
local root = os.getenv("PWD")
local BIN = root .. "/bin/lakebase"

local write = h.write_file

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function mkdtemp()
  local p = io.popen("mktemp -d /tmp/lakebase-cli.XXXXXX")
  local d = p:read("*l")
  p:close()
  return d
end

local function sh_run(cmd)
  local p = io.popen("{ " .. cmd .. "\n}; echo \"__rc=$?\"")
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.-)__rc=(%d+)\n?$")
  return tonumber(code), body
end

-- Runs the CLI in `cwd` with a clean environment (only PATH, HOME, the Lua paths and `env`).
-- Returns exit code, stdout, stderr.
local function lakebase(args, opts)
  opts = opts or {}
  local cwd = opts.cwd
  local parts = { "cd " .. h.shell_quote(cwd) .. " && env -i",
    "PATH=" .. h.shell_quote(opts.path or os.getenv("PATH")),
    "HOME=" .. h.shell_quote(cwd),
    "LUA_PATH=" .. h.shell_quote(os.getenv("LUA_PATH") or ""),
    "LUA_CPATH=" .. h.shell_quote(os.getenv("LUA_CPATH") or "") }
  for k, v in pairs(opts.env or {}) do parts[#parts + 1] = k .. "=" .. h.shell_quote(v) end
  parts[#parts + 1] = interp .. " " .. h.shell_quote(BIN)
  for _, a in ipairs(args) do parts[#parts + 1] = h.shell_quote(a) end
  parts[#parts + 1] = "2>" .. h.shell_quote(cwd .. "/.stderr")
  local code, out = sh_run(table.concat(parts, " "))
  local err = read(cwd .. "/.stderr") or ""
  os.remove(cwd .. "/.stderr")
  return code, out, err
end

-- The fixtures' M2M settings as a .env text (PGUSER left out: it falls back to the client id).
local function m2m_env()
  local e = h.env()
  return table.concat({
    "# written by cli_spec",
    "export PGHOST=" .. e.PGHOST,
    "PGPORT=" .. e.PGPORT,
    "PGDATABASE='" .. e.PGDATABASE .. "'",
    "PGSSLMODE=require",
    'PGSSLROOTCERT="' .. e.SSLROOTCERT .. '"',
    "LAKEBASE_ENDPOINT=" .. e.ENDPOINT,
    "DATABRICKS_HOST=" .. e.DATABRICKS_HOST,
    "DATABRICKS_CLIENT_ID=" .. e.CLIENT_ID,
    "DATABRICKS_CLIENT_SECRET=" .. e.CLIENT_SECRET,
    "",
  }, "\n")
end

local COMMANDS = { "check", "token", "psql", "migrate", "new", "generate", "refresh-token", "env-example" }

describe("lakebase CLI", function()
  local dir

  before_each(function()
    dir = mkdtemp()
  end)

  after_each(function()
    os.execute("rm -rf " .. h.shell_quote(dir))
  end)

  describe("usage", function()
    it("prints help for every command with exit 0", function()
      local code, out = lakebase({ "--help" }, { cwd = dir })
      assert.equal(0, code)
      for _, c in ipairs(COMMANDS) do assert.matches(c:gsub("%-", "%%-"), out) end
      for _, c in ipairs(COMMANDS) do
        local c2, o2 = lakebase({ c, "--help" }, { cwd = dir })
        assert.equal(0, c2, c)
        assert.matches("^usage: lakebase " .. c:gsub("%-", "%%-"), o2)
      end
    end)

    it("exits 2 on usage errors and names the problem", function()
      local code, _, err = lakebase({ "frobnicate" }, { cwd = dir })
      assert.equal(2, code)
      assert.matches("unknown command frobnicate", err)
      code, _, err = lakebase({ "migrate", "--bogus" }, { cwd = dir })
      assert.equal(2, code)
      assert.matches("unknown option %-%-bogus", err)
      code, _, err = lakebase({ "migrate", "--lock-timeout", "soon" }, { cwd = dir })
      assert.equal(2, code)
      assert.matches("%-%-lock%-timeout expects a number of seconds >= 0", err)
      code = lakebase({}, { cwd = dir })
      assert.equal(2, code)
      code, _, err = lakebase({ "new" }, { cwd = dir })
      assert.equal(2, code)
      assert.matches("expected one NAME", err)
      code, _, err = lakebase({ "check", "--env-file" }, { cwd = dir })
      assert.equal(2, code)
      assert.matches("%-%-env%-file needs a PATH", err)
    end)

    it("prints the version", function()
      local code, out = lakebase({ "--version" }, { cwd = dir })
      assert.equal(0, code)
      assert.matches("^lakebase %d+%.%d+%.%d+", out)
    end)

    it("env-example prints a .env that parses and names every setting", function()
      local code, out = lakebase({ "env-example" }, { cwd = dir })
      assert.equal(0, code)
      local vars = assert(dotenv.parse(out))
      for _, k in ipairs({ "PGPORT", "PGSSLMODE", "LAKEBASE_ENDPOINT", "DATABRICKS_HOST", "DATABRICKS_TOKEN" }) do
        assert.is_not_nil(vars[k], k)
      end
      for _, k in ipairs({ "PGHOST", "PGDATABASE", "PGUSER", "LAKEBASE_INSTANCE" }) do -- defaults: commented out
        assert.is_nil(vars[k], k)
        assert.matches("\n# " .. k .. "=\n", out, 1, true)
      end
      assert.matches("DATABRICKS_CLIENT_SECRET", out)
    end)

    it("env-example and the repository's .env.example are the same text, from the settings table", function()
      local code, out = lakebase({ "env-example" }, { cwd = dir })
      assert.equal(0, code)
      assert.equal(h.read_file(h.root() .. "/.env.example"), out)
      for _, o in ipairs(require("lakebase.core").options) do
        if o.env then assert.matches(o.env .. "=", out, 1, true) end
      end
    end)

    it("the README's settings table names every setting of the settings table, with its variable", function()
      local readme = assert(h.read_file(h.root() .. "/README.md"))
      local section = assert(readme:match("\n## Settings\n(.-)\n## "))
      local documented = {}
      for names, envs in section:gmatch("\n|([^|\n]*)|([^|\n]*)|") do
        local n, e = {}, {}
        for x in names:gmatch("`([%w_]+)`") do n[#n + 1] = x end
        for x in envs:gmatch("`([%w_]+)`") do e[#e + 1] = x end
        for i, x in ipairs(n) do documented[x] = e[i] or false end
      end
      local known = {}
      for _, o in ipairs(require("lakebase.core").options) do
        known[o.name] = true
        assert.are.equal(o.env or false, documented[o.name], "README settings table: " .. o.name)
      end
      for name in pairs(documented) do
        assert.is_true(known[name] ~= nil, "README documents an unknown setting: " .. name)
      end
    end)
  end)

  describe("check", function()
    it("validates, fetches a credential, connects and prints user, server and TLS; never the secrets", function()
      write(dir .. "/.env", m2m_env(), "600")
      local code, out, err = lakebase({ "check" }, { cwd = dir })
      assert.equal(0, code, out .. err)
      local e = h.env()
      assert.matches("connected: user " .. e.CLIENT_ID:gsub("%-", "%%-"), out)
      assert.matches("server: PostgreSQL 15", out)
      assert.matches("tls: TLSv1%.[23] %(", out)
      assert.matches("credential: fetched %(OAuth M2M%), expires %d%d%d%d%-%d%d%-%d%dT", out)
      assert.not_matches(e.CLIENT_SECRET:gsub("%p", "%%%0"), out .. err)
      local c2, tok = lakebase({ "token", "--show" }, { cwd = dir })
      assert.equal(0, c2)
      tok = tok:gsub("%s+$", "")
      assert.is_true(#tok > 8)
      assert.not_matches(tok:gsub("%p", "%%%0"), out .. err)
    end)

    it("prints the same all-at-once list as lakebase.config for wrong settings, exit 1", function()
      write(dir .. "/bad.env", "PGHOST=localhost\nPGPORT=99999\nPGSSLMODE=sometimes\n", "600")
      local code, out, err = lakebase({ "check", "--env-file", "bad.env" }, { cwd = dir })
      assert.equal(1, code)
      local _, cerr = require("lakebase").config({ host = "localhost", port = "99999", sslmode = "sometimes" })
      assert.is_not_nil(cerr)
      assert.equal(tostring(cerr), (err:gsub("\n$", "")))
      assert.matches("PGPORT", err)
      assert.matches("LAKEBASE_ENDPOINT", err)
      assert.matches("PGSSLMODE", err)
      assert.equal("", out)
    end)

    it("reads --env-file instead of ./.env, and the real environment wins over files", function()
      write(dir .. "/.env", "PGHOST=wrong.invalid\n", "600")
      write(dir .. "/other.env", m2m_env(), "600")
      local code, out, err = lakebase({ "--env-file", "other.env", "check" }, { cwd = dir })
      assert.equal(0, code, out .. err)
      -- a real PGPORT overrides the file's value
      code, out, err = lakebase({ "check", "--env-file=other.env" }, { cwd = dir, env = { PGPORT = "1" } })
      assert.equal(1, code)
      assert.matches("port=1,", out)
      assert.matches("port 1 failed", err)
      -- a missing env file is an error, not silently ignored
      code, _, err = lakebase({ "check", "--env-file", "nope.env" }, { cwd = dir })
      assert.equal(1, code)
      assert.matches("env file not found: nope%.env", err)
    end)
  end)

  describe("native password auth", function()
    it("check connects with PGPASSWORD; token --show refuses to print the password", function()
      local e = h.env()
      write(dir .. "/.env", table.concat({ "PGHOST=" .. e.PGHOST, "PGPORT=" .. e.PGPORT, "PGDATABASE=" .. e.PGDATABASE,
        "PGUSER=" .. e.ADMIN_USER, 'PGPASSWORD="' .. e.ADMIN_PASSWORD .. '"', "PGSSLROOTCERT=" .. e.SSLROOTCERT, "" }, "\n"), "600")
      local code, out, err = lakebase({ "check" }, { cwd = dir })
      assert.equal(0, code, out .. err)
      assert.matches("credential: native Postgres password %(PGPASSWORD%), no expiry", out)
      assert.matches("connected: user " .. e.ADMIN_USER, out)
      assert.matches("cold start: dns [%d.]+ ms, tcp [%d.]+ ms, tls [%d.]+ ms, auth [%d.]+ ms, first query [%d.]+ ms", out)
      assert.matches("round trip: [%d.]+ ms", out)
      code, out, err = lakebase({ "token", "--show" }, { cwd = dir })
      assert.equal(1, code)
      assert.matches("there is no Lakebase credential to show", err)
      assert.not_matches(e.ADMIN_PASSWORD:gsub("%p", "%%%0"), out .. err)
    end)
  end)

  describe("databricks profile", function()
    it("uses DATABRICKS_CONFIG_PROFILE from the env file with ~/.databrickscfg (the core reads it from the environment)", function()
      local e = h.env()
      write(dir .. "/.databrickscfg", "[DEFAULT]\nhost = https://wrong.invalid\n\n[dev]\nhost = " .. e.DATABRICKS_HOST
        .. "\ntoken = " .. e.TOKEN .. "\n", "600")
      write(dir .. "/.env", table.concat({ "PGHOST=" .. e.PGHOST, "PGPORT=" .. e.PGPORT, "PGDATABASE=" .. e.PGDATABASE,
        "PGUSER=" .. e.PGUSER, "PGSSLROOTCERT=" .. e.SSLROOTCERT, "LAKEBASE_ENDPOINT=" .. e.ENDPOINT,
        "DATABRICKS_CONFIG_PROFILE=dev", "" }, "\n"), "600")
      local code, out, err = lakebase({ "check" }, { cwd = dir })
      assert.equal(0, code, out .. err)
      assert.matches("auth=token", out)
      assert.matches("credential: fetched %(workspace token%)", out)
      assert.not_matches(e.TOKEN:gsub("%p", "%%%0"), out .. err)
    end)
  end)

  describe("token and psql", function()
    it("token without --show tells when it expires but not the token", function()
      write(dir .. "/.env", m2m_env(), "600")
      local code, out = lakebase({ "token" }, { cwd = dir })
      assert.equal(0, code, out)
      assert.matches("credential fetched for .*, expires .*use %-%-show to print it", out)
      local _, tok = lakebase({ "token", "--show" }, { cwd = dir })
      tok = tok:gsub("%s+$", "")
      assert.equal(1, select(2, tok:gsub("\n", "")) + 1) -- one line, nothing else
      assert.not_matches(tok:gsub("%p", "%%%0"), out)
    end)

    it("psql gets the credential only through a private password file, removed afterwards", function()
      write(dir .. "/.env", m2m_env(), "600")
      -- a stand-in psql that records what it was given
      write(dir .. "/fakepsql", table.concat({
        "#!/bin/sh",
        "env > \"$OUT_DIR/env\"",
        "printf '%s\\n' \"$@\" > \"$OUT_DIR/args\"",
        "stat -c %a \"$PGPASSFILE\" > \"$OUT_DIR/mode\"",
        "cat \"$PGPASSFILE\" > \"$OUT_DIR/passfile\"",
        "echo \"$PGPASSFILE\" > \"$OUT_DIR/passpath\"",
        "exit 7",
      }, "\n"), "755")
      local code = lakebase({ "psql", "--", "-c", "select 1" }, { cwd = dir,
        env = { LAKEBASE_PSQL = dir .. "/fakepsql", OUT_DIR = dir, PGPASSWORD_UNRELATED = "x" } })
      assert.equal(7, code)
      local env, args, passfile = read(dir .. "/env"), read(dir .. "/args"), read(dir .. "/passfile")
      assert.equal("-c\nselect 1\n", args)
      assert.equal("600", (read(dir .. "/mode"):gsub("%s", "")))
      local e = h.env()
      local host, port, db, user, tok = passfile:match("^(.-):(%d+):(.-):(.-):(.-)\n$")
      assert.same({ e.PGHOST, e.PGPORT, e.PGDATABASE, e.CLIENT_ID }, { host, port, db, user })
      assert.is_true(#tok > 8)
      assert.not_matches(tok:gsub("%p", "%%%0"), env .. args)
      assert.not_matches("\nPGPASSWORD=", "\n" .. env)
      assert.matches("\nPGSSLMODE=verify%-full\n", "\n" .. env)
      assert.is_nil(read((read(dir .. "/passpath"):gsub("%s+$", ""))))
    end)

    it("psql connects with a fresh credential from a private password file", function()
      write(dir .. "/.env", m2m_env(), "600")
      local code, out, err = lakebase({ "psql", "--", "-X", "-A", "-t", "-c",
        "select current_user || ' ' || ssl::text from pg_stat_ssl where pid = pg_backend_pid()" }, { cwd = dir })
      assert.equal(0, code, out .. err)
      assert.equal(h.env().CLIENT_ID .. " true", (out:gsub("%s+$", "")))
      -- psql's exit status comes back
      code = lakebase({ "psql", "--", "-X", "-c", "select * from no_such_table_here" }, { cwd = dir })
      assert.is_true(code ~= 0)
    end)
  end)

  describe("migrate and new", function()
    local track_dropped

    after_each(function()
      if track_dropped then h.psql(track_dropped) end
    end)

    it("creates migrations with new, applies them with progress, shows status, dry-run", function()
      local t = h.unique("lbc")
      track_dropped = "drop table if exists " .. t .. "; drop table if exists public.lakebase_migrations"
      h.psql("drop table if exists public.lakebase_migrations")
      write(dir .. "/.env", m2m_env(), "600")
      local code, out = lakebase({ "new", "create_thing" }, { cwd = dir })
      assert.equal(0, code, out)
      assert.matches("created migrations/0001_create_thing%.sql", out)
      write(dir .. "/migrations/0001_create_thing.sql", "create table " .. t .. " (id int);\n")
      code, out = lakebase({ "new", "fill", "--dir", "migrations" }, { cwd = dir })
      assert.equal(0, code, out)
      write(dir .. "/migrations/0002_fill.sql", "insert into " .. t .. " values (1), (2);\n")

      local err
      code, out, err = lakebase({ "migrate", "--dry-run" }, { cwd = dir })
      assert.equal(0, code, out .. err)
      assert.matches("would apply 0001_create_thing%.sql", out)
      assert.matches("dry run: 2 pending", out)

      code, out, err = lakebase({ "migrate" }, { cwd = dir })
      assert.equal(0, code, out .. err)
      assert.matches("applying 0001_create_thing%.sql %(1/2%)", out)
      assert.matches("applied 0002_fill%.sql in %d+ ms", out)
      assert.matches("done: 2 applied, 0 already applied before %(plain, public%.lakebase_migrations%)", out)
      assert.equal("2", h.psql("select count(*) from " .. t))

      code, out = lakebase({ "migrate", "status" }, { cwd = dir })
      assert.equal(0, code, out)
      assert.matches("applied%s+0001_create_thing%.sql", out)
      assert.matches("2 applied, 0 pending, 0 changed, 0 out of order", out)

      write(dir .. "/migrations/0002_fill.sql", "insert into " .. t .. " values (3);\n")
      code, _, err = lakebase({ "migrate" }, { cwd = dir })
      assert.equal(1, code)
      assert.matches("migration 0002_fill%.sql changed after it was applied", err)
      code, out = lakebase({ "migrate", "status" }, { cwd = dir })
      assert.equal(1, code)
      assert.matches("changed%s+0002_fill%.sql", out)
    end)

    it("migrates a drizzle-kit folder and shows its status", function()
      write(dir .. "/.env", m2m_env(), "600")
      local drop = "drop table if exists dz_posts, dz_tags, dz_users cascade; drop schema if exists drizzle cascade"
      h.psql(drop)
      track_dropped = drop
      local fixture = root .. "/spec/fixtures/drizzle_basic"
      local code, out, err = lakebase({ "migrate", "--dir", fixture }, { cwd = dir })
      assert.equal(0, code, out .. err)
      assert.matches("done: 3 applied, 0 already applied before %(drizzle, drizzle%.__drizzle_migrations%)", out)
      code, out = lakebase({ "migrate", "status", "--dir", fixture }, { cwd = dir })
      assert.equal(0, code, out)
      assert.matches("applied%s+0002_ancient_mathemanic%.sql", out)
      assert.matches("3 applied, 0 pending", out)
    end)

    -- Issue 19 item 1: a runner waiting for the lock must hold no snapshot, or the other runner's
    -- CREATE INDEX CONCURRENTLY waits for it while it waits for the lock (a cycle PostgreSQL cannot see).
    it("runs two concurrent migrate processes through a no-transaction CREATE INDEX CONCURRENTLY", function()
      write(dir .. "/.env", m2m_env(), "600")
      local t = h.unique("lbc")
      track_dropped = "drop table if exists " .. t .. "; drop table if exists public." .. t .. "_track"
      os.execute("mkdir -p " .. h.shell_quote(dir .. "/m"))
      -- the sleep keeps the first runner busy until the second is surely waiting for the lock
      write(dir .. "/m/0001_t.sql", "create table " .. t .. " (id int primary key, v int);\n"
        .. "insert into " .. t .. " select g, g % 100 from generate_series(1, 20000) g;\nselect pg_sleep(1);\n")
      write(dir .. "/m/0002_i.sql", "-- lakebase:no-transaction\ncreate index concurrently " .. t .. "_v on " .. t .. " (v);\n")
      local env = "cd " .. h.shell_quote(dir) .. " && env -i PATH=" .. h.shell_quote(os.getenv("PATH"))
        .. " HOME=" .. h.shell_quote(dir) .. " LUA_PATH=" .. h.shell_quote(os.getenv("LUA_PATH") or "")
        .. " LUA_CPATH=" .. h.shell_quote(os.getenv("LUA_CPATH") or "")
      -- a hard timeout: a regression fails here (exit 124) instead of hanging the suite
      local one = "timeout -s KILL 40 " .. interp .. " " .. h.shell_quote(BIN) .. " migrate --dir m --tracking-table public."
        .. t .. "_track"
      local code, out = sh_run(env .. " && { " .. one .. " > out1 2>&1; echo \"rc1=$?\" >> out1; } & "
        .. env .. " && sleep 0.3 && { " .. one .. " > out2 2>&1; echo \"rc2=$?\" >> out2; } & wait")
      assert.equal(0, code, out)
      local out1, out2 = read(dir .. "/out1") or "", read(dir .. "/out2") or ""
      -- whatever a failed run left behind must not block the next specs
      h.psql("select pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid()"
        .. " and (query like '%advisory_lock%' or query like '%concurrently%')")
      assert.matches("rc1=0", out1, out1 .. out2)
      assert.matches("rc2=0", out2, out1 .. out2)
      assert.matches("waiting for another migration runner", out2)
      assert.matches("done: 0 applied, 2 already applied before", out2)
      assert.equal("t", h.psql("select indisvalid from pg_index where indexrelid = to_regclass('" .. t .. "_v')"))
      assert.equal("2", h.psql("select count(*) from public." .. t .. "_track"))
    end)

    it("gives up after --lock-timeout and names the session holding the lock, exit 1", function()
      write(dir .. "/.env", m2m_env(), "600")
      local t = h.unique("lbc")
      os.execute("mkdir -p " .. h.shell_quote(dir .. "/m"))
      write(dir .. "/m/0001_x.sql", "select 1;\n")
      local holder_db = assert(require("lakebase").new(h.settings({ application_name = "cli spec holder" })))
      local holder = assert(rawget(holder_db, "_pool"):begin())
      local pid = assert(holder:query("select pg_backend_pid()::text as pid, pg_advisory_lock($1::bigint)",
        require("lakebase.migrate").lock_key("public", t .. "_track")))[1].pid
      local code, out, err = lakebase({ "migrate", "--dir", "m", "--tracking-table", "public." .. t .. "_track",
        "--lock-timeout", "0.3" }, { cwd = dir })
      holder:release()
      holder_db:close()
      assert.equal(1, code, out .. err)
      assert.matches("waiting for another migration runner to finish %(advisory lock on public%." .. t .. "_track, lock_timeout 0%.3 s%)", out)
      assert.matches("gave up waiting for the migration lock on public%." .. t .. "_track after 0%.%d s", err)
      assert.matches("held by pid " .. pid .. " %(application_name \"cli spec holder\"", err)
    end)

    it("reports a failing migration with its file and statement, exit 1", function()
      write(dir .. "/.env", m2m_env(), "600")
      local t = h.unique("lbc")
      os.execute("mkdir -p " .. h.shell_quote(dir .. "/m"))
      write(dir .. "/m/0001_bad.sql", "select 1;\nselect * from " .. t .. "_missing;\n")
      track_dropped = "drop table if exists public.lakebase_migrations"
      local code, _, err = lakebase({ "migrate", "--dir", "m", "--tracking-table", "public." .. t .. "_track" }, { cwd = dir })
      assert.equal(1, code)
      assert.matches("migration 0001_bad%.sql failed", err)
      assert.equal("f", h.psql("select to_regclass('public.lakebase_migrations') is not null"))
      assert.equal("0", h.psql("select count(*) from " .. t .. "_track"))
      h.psql("drop table " .. t .. "_track")
      code, _, err = lakebase({ "migrate", "--tracking-table", "nodot" }, { cwd = dir })
      assert.equal(2, code)
      assert.matches("%-%-tracking%-table expects SCHEMA%.TABLE", err)
      code, _, err = lakebase({ "migrate", "--dir", "m" }, { cwd = dir })
      assert.equal(1, code)
      assert.matches("migration 0001_bad%.sql failed at statement 2 %(line 2: select %* from " .. t .. "_missing%)", err)
    end)
  end)

  describe("generate", function()
    it("writes the next migration from a schema module, then reports no changes", function()
      write(dir .. "/schema.lua", "local s = require('lakebase.schema')\n"
        .. "return { t = s.table('lbc_gen_t', { id = s.serial():primary_key(), name = s.text():not_null() }) }\n")
      local code, out, err = lakebase({ "generate", "--dry-run" }, { cwd = dir })
      assert.equal(0, code, out .. err)
      assert.matches('CREATE TABLE "lbc_gen_t"', out)
      code, out, err = lakebase({ "generate", "--name", "init" }, { cwd = dir })
      assert.equal(0, code, out .. err)
      assert.matches("wrote migrations/0001_init%.sql %(1 change%) and migrations/meta/lakebase_snapshot%.json", out)
      assert.matches('"id" serial PRIMARY KEY', read(dir .. "/migrations/0001_init.sql"))
      code, out = lakebase({ "generate", "--schema", "schema.lua" }, { cwd = dir })
      assert.equal(0, code)
      assert.matches("no changes", out)
      code, _, err = lakebase({ "generate", "--schema", "missing.lua" }, { cwd = dir })
      assert.equal(1, code)
      assert.matches("schema file not found: missing%.lua", err)
    end)
  end)

  describe("refresh-token", function()
    local fakebin

    before_each(function()
      fakebin = dir .. "/bin"
      os.execute("mkdir -p " .. h.shell_quote(fakebin))
      -- A fake databricks CLI: records its arguments one per line, prints a token as the real one does.
      write(fakebin .. "/databricks", table.concat({
        "#!/bin/sh",
        "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$FAKE_ARGS\"",
        "if [ -n \"$FAKE_FAIL\" ]; then echo 'Error: cannot load profile' >&2; exit 3; fi",
        "if [ -n \"$FAKE_HANG\" ]; then echo $$ > \"$FAKE_HANG\"; exec sleep 100; fi",
        "if [ -n \"$FAKE_BIG\" ]; then exec head -c 10000000 /dev/zero; fi",
        "printf '{\\n  \"access_token\": \"dapi-new-token-123\",\\n  \"token_type\": \"Bearer\",\\n  \"expiry\": \"2030-01-01T00:00:00Z\"\\n}\\n'",
      }, "\n"), "755")
    end)

    local function path() return fakebin .. ":" .. os.getenv("PATH") end

    it("replaces DATABRICKS_TOKEN atomically, keeps the other lines and the mode", function()
      write(dir .. "/.env.local", "# local\nPGHOST=x\nexport DATABRICKS_TOKEN=\"old-token\"\nOTHER='y'\n", "640")
      local code, out, err = lakebase({ "refresh-token" }, { cwd = dir, path = path(),
        env = { FAKE_ARGS = dir .. "/args", DATABRICKS_CONFIG_PROFILE = "dev" } })
      assert.equal(0, code, out .. err)
      assert.matches("DATABRICKS_TOKEN updated in %.env%.local, expires 2030%-01%-01T00:00:00Z", out)
      assert.not_matches("dapi%-new%-token", out .. err)
      assert.equal("# local\nPGHOST=x\nexport DATABRICKS_TOKEN=\"dapi-new-token-123\"\nOTHER='y'\n", read(dir .. "/.env.local"))
      assert.equal("auth\ntoken\n--profile\ndev\n-o\njson\n", read(dir .. "/args"))
      local _, mode = sh_run("stat -c %a " .. h.shell_quote(dir .. "/.env.local"))
      assert.equal("640", (mode:gsub("%s", "")))
      local _, ls = sh_run("ls -A " .. h.shell_quote(dir))
      assert.not_matches("tmp", ls)
      -- the new value is what the CLI then reads
      local vars = assert(dotenv.read(dir .. "/.env.local"))
      assert.equal("dapi-new-token-123", vars.DATABRICKS_TOKEN)
    end)

    it("appends DATABRICKS_TOKEN to a named file that has none", function()
      write(dir .. "/custom.env", "PGHOST=x", "600")
      local code, out, err = lakebase({ "refresh-token", "custom.env", "--profile", "p1" }, { cwd = dir, path = path(),
        env = { FAKE_ARGS = dir .. "/args" } })
      assert.equal(0, code, out .. err)
      assert.equal("PGHOST=x\nDATABRICKS_TOKEN=\"dapi-new-token-123\"\n", read(dir .. "/custom.env"))
      -- no profile: the host from the env file is passed on
      write(dir .. "/.env", "DATABRICKS_HOST=https://ws.example.com\n", "600")
      code, out, err = lakebase({ "refresh-token", "custom.env" }, { cwd = dir, path = path(),
        env = { FAKE_ARGS = dir .. "/args" } })
      assert.equal(0, code, out .. err)
      assert.equal("auth\ntoken\n--host\nhttps://ws.example.com\n-o\njson\n", read(dir .. "/args"))
    end)

    it("passes a profile with shell metacharacters as one argument, running nothing else", function()
      write(dir .. "/.env.local", "DATABRICKS_TOKEN=old\n", "600")
      local evil = "x; touch " .. dir .. "/pwned $(touch " .. dir .. "/pwned2) `touch " .. dir .. "/pwned3` ' \" \\"
      local code, out, err = lakebase({ "refresh-token" }, { cwd = dir, path = path(),
        env = { FAKE_ARGS = dir .. "/args", DATABRICKS_CONFIG_PROFILE = evil } })
      assert.equal(0, code, out .. err)
      assert.is_nil(read(dir .. "/pwned"))
      assert.is_nil(read(dir .. "/pwned2"))
      assert.is_nil(read(dir .. "/pwned3"))
      assert.equal("auth\ntoken\n--profile\n" .. evil .. "\n-o\njson\n", read(dir .. "/args"))
    end)

    it("fails clearly when the file or the databricks binary is missing, or databricks fails", function()
      local code, _, err = lakebase({ "refresh-token", "custom.env" }, { cwd = dir, path = path(),
        env = { FAKE_ARGS = dir .. "/args" } })
      assert.equal(1, code)
      assert.matches("custom%.env not found: name an existing env file, or run `lakebase refresh%-token` without FILE", err)
      write(dir .. "/.env.local", "DATABRICKS_TOKEN=old\n", "600")
      code, _, err = lakebase({ "refresh-token" }, { cwd = dir, path = "/usr/bin:/bin" })
      assert.equal(1, code)
      assert.matches("the databricks CLI %(databricks%) is not on PATH", err)
      code, _, err = lakebase({ "refresh-token" }, { cwd = dir, path = path(),
        env = { FAKE_ARGS = dir .. "/args", FAKE_FAIL = "1" } })
      assert.equal(1, code)
      assert.matches("databricks auth token failed %(exit 3%): Error: cannot load profile", err)
      assert.equal("DATABRICKS_TOKEN=old\n", read(dir .. "/.env.local"))
    end)

    it("kills a databricks that hangs or prints 10 MB, and leaves the file alone", function()
      write(dir .. "/.env.local", "DATABRICKS_TOKEN=old\n", "600")
      local t0 = h.clock()
      local code, _, err = lakebase({ "refresh-token", "--timeout", "1" }, { cwd = dir, path = path(),
        env = { FAKE_ARGS = dir .. "/args", FAKE_HANG = dir .. "/hang.pid" } })
      assert.equal(1, code)
      assert.matches("did not finish within 1 s %(killed", err)
      assert.is_true(h.clock() - t0 < 10)
      local pid = assert(read(dir .. "/hang.pid")):gsub("%s", "")
      assert.are_not.equal(0, (sh_run("kill -0 " .. pid .. " 2>/dev/null")), "the hanging databricks is still running")
      code, _, err = lakebase({ "refresh-token" }, { cwd = dir, path = path(),
        env = { FAKE_ARGS = dir .. "/args", FAKE_BIG = "1" } })
      assert.equal(1, code)
      assert.matches("printed more than 1 MiB %(killed%)", err)
      assert.equal("DATABRICKS_TOKEN=old\n", read(dir .. "/.env.local"))
    end)
  end)
end)
