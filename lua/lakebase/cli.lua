--- The `lakebase` command line (bin/lakebase calls `require("lakebase.cli").main(arg)`).
--
-- Settings come from the process environment and from env files: `--env-file PATH` (repeatable;
-- when given, only those files are read), otherwise `./.env.local` and `./.env` when present (in
-- that order: the first that sets a key wins, as `refresh-token` writes `.env.local`). A value in a
-- file never overrides a variable already set in the environment (see lakebase.dotenv). Lua cannot
-- change its own environment, so file values reach the library as `lakebase.new` options (SPEC §2
-- table) and reach child processes (psql) through their environment. DATABRICKS_CONFIG_PROFILE and
-- DATABRICKS_CONFIG_FILE are not options: when a file sets them, the command runs itself again with
-- those two exported. `psql` gets the credential in a private PGPASSFILE (0600, removed afterwards),
-- not in PGPASSWORD or on a command line where `ps` would show it; `refresh-token` quotes every
-- argument of `databricks` for /bin/sh (Lua has no exec without a shell), so nothing in the profile
-- name is interpreted.
--
-- Exit status: 0 ok, 1 failed, 2 usage. Secrets are never printed, except by `token --show`.
local dotenv = require("lakebase.dotenv")

local _M = {}

-- SPEC §2: environment variable -> lakebase option.
_M.ENV_OPTIONS = {
  { "PGHOST", "host" }, { "PGPORT", "port" }, { "PGDATABASE", "database" }, { "PGUSER", "user" },
  { "PGSSLMODE", "sslmode" }, { "PGSSLROOTCERT", "sslrootcert" }, { "LAKEBASE_ENDPOINT", "endpoint" },
  { "DATABRICKS_HOST", "databricks_host" }, { "DATABRICKS_TOKEN", "token" },
  { "DATABRICKS_CLIENT_ID", "client_id" }, { "DATABRICKS_CLIENT_SECRET", "client_secret" },
  { "PGPASSWORD", "password" },
}

local USAGE = [[
usage: lakebase [--env-file PATH] <command> [options]

commands:
  check                 validate settings, fetch a credential, connect; print user, server, TLS
  token [--show]        fetch a Lakebase credential (printed only with --show)
  psql [ARGS...]        run psql with a fresh credential (passed in a private PGPASSFILE)
  migrate [--dir D] [--dry-run] [--allow-out-of-order] [--allow-changed]
                        apply pending migrations (plain NNNN_name.sql folders or drizzle-kit folders)
  migrate status [--dir D]
                        list applied, pending, changed and out-of-order migrations
  new NAME [--dir D]    create the next empty migration file D/NNNN_NAME.sql
  generate [--dir D] [--schema FILE]... [--name NAME] [--dry-run] [--baseline]
                        write the next migration from Lua schema modules (diff against the snapshot)
  refresh-token [FILE]  run `databricks auth token` and write DATABRICKS_TOKEN into FILE (.env.local)
  env-example           print an example .env

options for every command:
  --env-file PATH       read settings from PATH (repeatable) instead of ./.env.local and ./.env
  -h, --help            help for the command
  --version             print the version

exit status: 0 ok, 1 failed, 2 usage error]]

local HELP = {
  check = [[
usage: lakebase check [--env-file PATH]

Validates the settings (every problem at once), fetches a Lakebase credential (unless PGPASSWORD is
set), connects, and prints the user, the server version, the TLS version and when the credential
expires; then the time of each step of a cold start (DNS, TCP, TLS, authentication, first query,
the credential's HTTP call) and the measured round-trip time. Never prints the credential.]],
  token = [[
usage: lakebase token [--show] [--env-file PATH]

Fetches a Lakebase credential and prints when it expires. With --show, prints only the credential on
standard output (e.g. PGPASSWORD=$(lakebase token --show)); nothing else prints it.]],
  psql = [[
usage: lakebase psql [--env-file PATH] [--] [PSQL ARGS...]

Runs psql against the configured endpoint with a fresh credential. The credential is written to a
private temporary PGPASSFILE (mode 0600, removed when psql exits), not put on a command line or in
PGPASSWORD where `ps` could show it. sslmode=require is passed to psql as verify-full, as the library
connects.]],
  migrate = [[
usage: lakebase migrate [--dir D] [--dry-run] [--allow-out-of-order] [--allow-changed]
                        [--tracking-table SCHEMA.TABLE] [--lock-timeout SECONDS] [--env-file PATH]
       lakebase migrate status [--dir D] [--tracking-table SCHEMA.TABLE] [--env-file PATH]

Applies pending migrations from D (default ./migrations): a plain folder of NNNN_name.sql / .lua files
(tracked in public.lakebase_migrations) or a drizzle-kit folder with meta/_journal.json (tracked in
drizzle.__drizzle_migrations exactly as drizzle-orm does). Each migration runs in its own transaction
(unless its first line is `-- lakebase:no-transaction`); concurrent runners wait on an advisory lock
for at most --lock-timeout seconds (default 600), then fail naming the session that holds it.
A changed applied migration, or a pending one older than the newest applied, is refused unless
--allow-changed / --allow-out-of-order. --dry-run lists what would run. --tracking-table SCHEMA.TABLE
records elsewhere (as drizzle-orm's migrationsSchema / migrationsTable).]],
  new = [[
usage: lakebase new NAME [--dir D]

Creates D/NNNN_NAME.sql (D defaults to ./migrations), numbered after the last migration.]],
  generate = [[
usage: lakebase generate [--dir D] [--schema FILE]... [--name NAME] [--dry-run] [--baseline]

Loads the Lua schema modules (default ./schema.lua; each returns tables made with lakebase.schema),
compares them with the snapshot D/meta/lakebase_snapshot.json and writes the next migration
D/NNNN_NAME.sql (create table, add/drop column, create/drop index, add/drop constraint) and the new
snapshot. A change that may be a rename (a column dropped and another added with the same type) is
written as a commented TODO behind a guard statement that fails until the TODO is resolved, never
guessed. --dry-run prints the SQL instead of writing files. --baseline only records the snapshot (for
a folder whose existing migrations already create the current schema).]],
  ["refresh-token"] = [[
usage: lakebase refresh-token [FILE] [--profile P]

Runs `databricks auth token --profile P -o json` (P from --profile or DATABRICKS_CONFIG_PROFILE; without
either, `--host $DATABRICKS_HOST` when that is set, else the databricks CLI's defaults) without a shell
interpreting any argument, and replaces or appends
DATABRICKS_TOKEN="..." in FILE (default .env.local), atomically and keeping the file's mode.]],
  ["env-example"] = [[
usage: lakebase env-example

Prints an example .env with every setting the library reads (redirect it to a file).]],
}

local ENV_EXAMPLE = [[
# lakebase settings. The lakebase CLI reads ./.env.local and ./.env (or --env-file PATH);
# the library reads only the process environment. Values already set in the environment win.

# Postgres endpoint (databricks postgres get-endpoint <endpoint>)
PGHOST=ep-example-123456.database.cloud.databricks.com
PGPORT=5432
PGDATABASE=databricks_postgres
# Your Databricks user name, or the service principal's client id (default: DATABRICKS_CLIENT_ID)
PGUSER=you@example.com
# require = encrypted and verified (default); prefer; disable
PGSSLMODE=require
# PGSSLROOTCERT=/path/to/ca.pem

# Lakebase endpoint resource and workspace
LAKEBASE_ENDPOINT=projects/my-project/branches/production/endpoints/primary
DATABRICKS_HOST=https://my-workspace.cloud.databricks.com

# Local development: a workspace token (refresh it with `lakebase refresh-token`)
DATABRICKS_TOKEN=
# DATABRICKS_CONFIG_PROFILE=DEFAULT
# Production: OAuth M2M with a service principal
# DATABRICKS_CLIENT_ID=
# DATABRICKS_CLIENT_SECRET=
# Or a native Postgres password (no Databricks calls)
# PGPASSWORD=
]]

---------------------------------------------------------------- helpers

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
_M.sh_quote = sh_quote

local function exit_status(ok, how, code)
  -- os.execute / popen:close: 5.1/LuaJIT return a number (wait status); 5.2+ return ok, "exit", code
  if type(ok) == "number" then
    if ok > 255 then return math.floor(ok / 256) end
    return ok
  end
  if how == "exit" or how == "signal" then return code end
  return ok and 0 or 1
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local Ctx = {}
Ctx.__index = Ctx

function Ctx:out(...)
  self.stdout:write(...)
  self.stdout:write("\n")
  self.stdout:flush()
end

function Ctx:err(...)
  self.stderr:write(...)
  self.stderr:write("\n")
  self.stderr:flush()
end

function Ctx:fail(msg)
  self:err("lakebase ", self.command or "", self.command and ": " or "", tostring(msg))
  return 1
end

function Ctx:usage(msg)
  self:err("lakebase ", self.command or "", self.command and ": " or "", msg)
  self:err("(see lakebase ", self.command or "", self.command and " " or "", "--help)")
  return 2
end

--- A variable: the real environment first, then the env files.
function Ctx:getenv(name)
  local v = os.getenv(name)
  if v ~= nil then return v end
  return self.overlay[name]
end

--- lakebase options carrying the env-file values (the C core reads the real environment itself).
function Ctx:options(extra)
  local opts = {}
  for _, pair in ipairs(_M.ENV_OPTIONS) do
    local v = self.overlay[pair[1]]
    if v ~= nil and v ~= "" then opts[pair[2]] = v end
  end
  for k, v in pairs(extra or {}) do opts[k] = v end
  return opts
end

local function lib()
  local lakebase = require("lakebase")
  local ok, core = pcall(require, "lakebase.core")
  local function pick(name)
    if type(lakebase[name]) == "function" then return lakebase[name] end
    if ok and type(core) == "table" and type(core[name]) == "function" then return core[name] end
    return nil
  end
  return {
    lakebase = lakebase,
    config = pick("config"),
    token = pick("token"),
    new = type(lakebase.new) == "function" and lakebase.new or nil,
  }
end

function Ctx:settings()
  local l = lib()
  if not l.config then return nil, "this build has no lakebase.config" end
  local opts = self:options()
  local s, err = l.config(opts)
  if not s then return nil, err end
  return s, nil, opts, l
end

function Ctx:connect(extra)
  local s, err, opts, l = self:settings()
  if not s then return nil, err end
  if not l.new then return nil, "this build has no lakebase.new (the pool has not landed)" end
  for k, v in pairs(extra or {}) do opts[k] = v end
  local db, derr = l.new(opts)
  if not db then return nil, derr end
  return db, nil, s
end

local function format_time(epoch)
  if type(epoch) ~= "number" then return tostring(epoch) end
  local left = epoch - os.time()
  local rel
  if left >= 0 then
    rel = left >= 3600 and string.format("in %dh%02dm", math.floor(left / 3600), math.floor(left % 3600 / 60))
      or string.format("in %dm%02ds", math.floor(left / 60), math.floor(left % 60))
  else
    rel = "expired"
  end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(epoch)) .. " (" .. rel .. ")"
end

-- Fetches the credential: token, expires_at, settings | nil, err. Password auth: the password itself.
function Ctx:credential()
  local s, err, opts, l = self:settings()
  if not s then return nil, err end
  if s.auth == "password" then
    return self:getenv("PGPASSWORD"), nil, s
  end
  if not l.token then return nil, "this build has no lakebase.token (the credential binding has not landed)" end
  local tok, exp = l.token(opts)
  if not tok then return nil, exp end
  return tok, exp, s
end

---------------------------------------------------------------- commands

local commands = {}

function commands.check(ctx, args)
  if #args > 0 then return ctx:usage("unexpected argument " .. args[1]) end
  local s, err = ctx:settings()
  if not s then
    ctx:err(tostring(err))
    return 1
  end
  ctx:out("settings: ", tostring(s))
  local core = package.loaded["lakebase.core"] or {}
  local clock = core.monotonic or os.time
  local t0 = clock()
  local tok, exp = ctx:credential()
  local cred_time = clock() - t0
  if not tok then return ctx:fail("credential: " .. tostring(exp)) end
  if s.auth == "password" then
    ctx:out("credential: native Postgres password (PGPASSWORD), no expiry")
  else
    ctx:out("credential: fetched (", s.auth == "m2m" and "OAuth M2M" or "workspace token", "), expires ",
      format_time(exp))
  end
  local db, derr = ctx:connect({ max = 1 })
  if not db then return ctx:fail("connect: " .. tostring(derr)) end
  local ok, rows, qerr = pcall(db.query, db, [[
    select current_user::text as "user", version() as server, s.ssl, s.version as tls, s.cipher
      from pg_stat_ssl s where s.pid = pg_backend_pid()]])
  if not ok then rows, qerr = nil, rows end
  if type(db.close) == "function" then pcall(db.close, db) end
  if not rows then return ctx:fail("query: " .. tostring(qerr)) end
  local r = rows[1] or {}
  ctx:out("connected: user ", tostring(r.user), " on ", s.host, ":", tostring(s.port), "/", s.database)
  ctx:out("server: ", tostring(r.server))
  local ssl = r.ssl == true or r.ssl == "t"
  ctx:out("tls: ", ssl and (tostring(r.tls) .. " (" .. tostring(r.cipher) .. "), sslmode " .. s.sslmode)
    or ("not encrypted (sslmode " .. s.sslmode .. ")"))
  local p = core.probe and core.probe(ctx:options(), tok)
  if p then
    local function ms(v) return string.format("%.1f ms", v * 1000) end
    ctx:out("cold start: dns ", ms(p.dns), ", tcp ", ms(p.tcp), ", tls ", p.tls_used and ms(p.tls) or "none",
      ", auth ", ms(p.auth), ", first query ", ms(p.first_query),
      s.auth == "password" and "" or (", credential HTTP " .. ms(cred_time)))
    ctx:out("round trip: ", ms(p.rtt), " (a query costs about one; a cold start about ",
      string.format("%.0f", (p.tcp + p.tls + p.auth + p.first_query) / math.max(p.rtt, 1e-6)),
      "; min_idle and prefetch take the cold start off the first request)")
  end
  ctx:out("ok")
  return 0
end

function commands.token(ctx, args)
  local show = false
  for _, a in ipairs(args) do
    if a == "--show" then show = true else return ctx:usage("unexpected argument " .. a) end
  end
  local tok, exp, s = ctx:credential()
  if not tok then return ctx:fail(tostring(exp)) end
  if show and s.auth == "password" then
    return ctx:fail("native Postgres password auth (PGPASSWORD): there is no Lakebase credential to show")
  end
  if show then
    ctx.stdout:write(tok, "\n")
    ctx.stdout:flush()
    return 0
  end
  if s.auth == "password" then
    ctx:out("native Postgres password auth (PGPASSWORD): no credential to fetch")
  else
    ctx:out("credential fetched for ", tostring(s.user), ", expires ", format_time(exp), " (use --show to print it)")
  end
  return 0
end

local function ca_bundle()
  for _, p in ipairs({ "/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem", "/etc/ssl/ca-bundle.pem" }) do
    if file_exists(p) then return p end
  end
  return nil
end

function commands.psql(ctx, args)
  local tok, exp, s = ctx:credential()
  if not tok then return ctx:fail(tostring(exp)) end
  local _ = exp
  -- A private password file: the secret stays off every command line and out of the environment.
  local passfile = os.tmpname() -- created 0600 by mkstemp
  local esc = function(v) return (tostring(v):gsub("\\", "\\\\"):gsub(":", "\\:")) end
  local f = io.open(passfile, "wb")
  if not f then return ctx:fail("cannot create a temporary password file") end
  f:write(table.concat({ esc(s.host), esc(s.port), esc(s.database), esc(s.user), esc(tok) }, ":"), "\n")
  f:close()
  local sslmode = s.sslmode == "require" and "verify-full" or s.sslmode
  local env = {
    "PGPASSFILE=" .. sh_quote(passfile), "PGHOST=" .. sh_quote(s.host), "PGPORT=" .. sh_quote(s.port),
    "PGDATABASE=" .. sh_quote(s.database), "PGUSER=" .. sh_quote(s.user), "PGSSLMODE=" .. sh_quote(sslmode),
  }
  local root = s.sslrootcert or ((sslmode == "verify-full" or sslmode == "verify-ca") and ca_bundle())
  if root then env[#env + 1] = "PGSSLROOTCERT=" .. sh_quote(root) end
  local psql = ctx:getenv("LAKEBASE_PSQL") or "psql"
  local cmd = { "env -u PGPASSWORD", table.concat(env, " "), sh_quote(psql) }
  for _, a in ipairs(args) do
    if a ~= "--" then cmd[#cmd + 1] = sh_quote(a) end
  end
  local ok, how, code = os.execute(table.concat(cmd, " "))
  os.remove(passfile)
  return exit_status(ok, how, code)
end

local function print_status(ctx, st)
  ctx:out(string.format("%s folder %s, tracked in %s", st.kind, st.dir, st.table))
  for _, m in ipairs(st.migrations) do
    local extra = ""
    if m.state == "applied" and m.applied_at then
      extra = "  " .. tostring(m.applied_at) .. (m.duration_ms and (" (" .. m.duration_ms .. " ms)") or "")
    end
    ctx:out(string.format("  %-13s %s%s", m.state, m.file, extra))
  end
  for _, u in ipairs(st.unknown or {}) do
    local what = u.name or ("hash " .. tostring(u.hash):sub(1, 12) .. ", created_at " .. tostring(u.created_at))
    ctx:out(string.format("  %-13s %s", "not in folder", what))
  end
  local pending = 0
  for _, m in ipairs(st.migrations) do if m.state ~= "applied" then pending = pending + 1 end end
  ctx:out(string.format("%d applied, %d pending, %d changed, %d out of order",
    #st.applied, #st.pending, #st.changed, #st.out_of_order))
  return (#st.changed > 0 or #st.out_of_order > 0) and 1 or 0
end

local function parse_flags(ctx, args, spec)
  local flags, rest = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, val = a:match("^(%-%-[%w%-]+)=(.*)$")
    name = name or a
    local kind = spec[name]
    if kind == "value" then
      if val == nil then
        i = i + 1
        val = args[i]
        if val == nil then return nil, ctx:usage(name .. " needs a value") end
      end
      if flags[name] and type(flags[name]) == "table" then
        table.insert(flags[name], val)
      else
        flags[name] = val
      end
    elseif kind == "list" then
      if val == nil then
        i = i + 1
        val = args[i]
        if val == nil then return nil, ctx:usage(name .. " needs a value") end
      end
      flags[name] = flags[name] or {}
      table.insert(flags[name], val)
    elseif kind == "bool" then
      flags[name] = true
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      return nil, ctx:usage("unknown option " .. a)
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  return flags, rest
end

function commands.migrate(ctx, args)
  local flags, rest = parse_flags(ctx, args, { ["--dir"] = "value", ["--dry-run"] = "bool",
    ["--allow-out-of-order"] = "bool", ["--allow-changed"] = "bool", ["--tracking-table"] = "value",
    ["--lock-timeout"] = "value" })
  if not flags then return rest end
  local lock_timeout = flags["--lock-timeout"]
  if lock_timeout ~= nil then
    lock_timeout = tonumber(lock_timeout)
    if not lock_timeout or lock_timeout < 0 or lock_timeout == math.huge then
      return ctx:usage("--lock-timeout expects a number of seconds >= 0")
    end
  end
  local tschema, ttable
  if flags["--tracking-table"] then
    tschema, ttable = flags["--tracking-table"]:match("^([^.]+)%.([^.]+)$")
    if not tschema then return ctx:usage("--tracking-table expects SCHEMA.TABLE") end
  end
  local sub = rest[1]
  if sub ~= nil and sub ~= "status" and sub ~= "up" then return ctx:usage("unknown subcommand " .. sub) end
  if #rest > 1 then return ctx:usage("unexpected argument " .. rest[2]) end
  local dir = flags["--dir"] or ctx:getenv("LAKEBASE_MIGRATIONS_DIR") or "migrations"
  local migrate = require("lakebase.migrate")
  -- the name another runner's lock timeout error shows for this session
  local db, err = ctx:connect({ max = 2, application_name = "lakebase migrate" })
  if not db then
    ctx:err(tostring(err))
    return 1
  end
  local function done(code)
    if type(db.close) == "function" then pcall(db.close, db) end
    return code
  end
  if sub == "status" then
    local st, serr = migrate.status(db, { dir = dir, schema = tschema, table = ttable })
    if not st then return done(ctx:fail(serr)) end
    return done(print_status(ctx, st))
  end
  local res, merr = migrate.up(db, {
    dir = dir, schema = tschema, table = ttable,
    dry_run = flags["--dry-run"], allow_out_of_order = flags["--allow-out-of-order"],
    allow_changed = flags["--allow-changed"], lock_timeout = lock_timeout,
    progress = function(msg) ctx:out(msg) end,
  })
  if not res then return done(ctx:fail(merr)) end
  if res.dry_run then
    ctx:out(string.format("dry run: %d pending in %s (%s)", #res.pending, dir, res.kind))
  else
    ctx:out(string.format("done: %d applied, %d were already applied (%s, %s)", #res.applied, res.already,
      res.kind, res.table))
  end
  return done(0)
end

function commands.new(ctx, args)
  local flags, rest = parse_flags(ctx, args, { ["--dir"] = "value" })
  if not flags then return rest end
  if #rest ~= 1 then return ctx:usage("expected one NAME") end
  local dir = flags["--dir"] or ctx:getenv("LAKEBASE_MIGRATIONS_DIR") or "migrations"
  os.execute("mkdir -p " .. sh_quote(dir))
  local path, err = require("lakebase.migrate").new(dir, rest[1])
  if not path then return ctx:fail(err) end
  ctx:out("created ", path)
  return 0
end

function commands.generate(ctx, args)
  local flags, rest = parse_flags(ctx, args, { ["--dir"] = "value", ["--schema"] = "list",
    ["--name"] = "value", ["--dry-run"] = "bool", ["--baseline"] = "bool" })
  if not flags then return rest end
  if #rest > 0 then return ctx:usage("unexpected argument " .. rest[1]) end
  local dir = flags["--dir"] or ctx:getenv("LAKEBASE_MIGRATIONS_DIR") or "migrations"
  local schemas = flags["--schema"] or { ctx:getenv("LAKEBASE_SCHEMA") or "schema.lua" }
  local generate = require("lakebase.generate")
  local res, err = generate.run({
    dir = dir, schemas = schemas, name = flags["--name"], dry_run = flags["--dry-run"],
    baseline = flags["--baseline"],
  })
  if not res then return ctx:fail(err) end
  if flags["--dry-run"] then
    if res.sql then ctx.stdout:write(res.sql) else ctx:out("no changes") end
    return 0
  end
  if flags["--baseline"] then
    ctx:out("recorded the current schema in ", res.snapshot_path, " (no migration written)")
    return 0
  end
  if not res.path then
    ctx:out("no changes against ", res.snapshot_path)
    return 0
  end
  ctx:out("wrote ", res.path, " (", res.changes, " change", res.changes == 1 and "" or "s",
    res.todos > 0 and (", " .. res.todos .. " TODO to review") or "", ") and ", res.snapshot_path)
  return 0
end

-- Replaces (or appends) DATABRICKS_TOKEN in text; returns the new text.
function _M.replace_token(text, token)
  local value = 'DATABRICKS_TOKEN="' .. token:gsub('[\\"$]', "\\%0") .. '"'
  local lines, found = {}, false
  for line in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do
    local export = line:match("^(%s*export%s+)DATABRICKS_TOKEN%s*=")
    if export or line:match("^%s*DATABRICKS_TOKEN%s*=") then
      if not found then lines[#lines + 1] = (export or "") .. value end
      found = true
    else
      lines[#lines + 1] = line
    end
  end
  if text == "" then lines = {} end
  if not found then lines[#lines + 1] = value end
  return table.concat(lines, "\n") .. "\n"
end

local function file_mode(path)
  local ok, lfs = pcall(require, "lfs")
  if ok and lfs.attributes then
    local perm = lfs.attributes(path, "permissions")
    if perm and #perm == 9 then
      local n = 0
      for i = 1, 9 do
        n = n * 2 + (perm:sub(i, i) ~= "-" and 1 or 0)
      end
      return string.format("%o", n)
    end
  end
  local p = io.popen("stat -c %a " .. sh_quote(path) .. " 2>/dev/null")
  local m = p and p:read("*l")
  if p then p:close() end
  return m and m:match("^%d+$") and m or nil
end

commands["refresh-token"] = function(ctx, args)
  local flags, rest = parse_flags(ctx, args, { ["--profile"] = "value" })
  if not flags then return rest end
  if #rest > 1 then return ctx:usage("expected at most one FILE") end
  local file = rest[1] or ".env.local"
  local profile = flags["--profile"] or ctx:getenv("DATABRICKS_CONFIG_PROFILE")
  if profile == "" then profile = nil end
  local f = io.open(file, "rb")
  if not f then
    return ctx:fail(file .. " not found: create it first (e.g. `lakebase env-example > " .. file .. "`)")
  end
  local text = f:read("*a")
  f:close()
  local bin = ctx:getenv("LAKEBASE_DATABRICKS_CLI") or "databricks"
  -- No shell parses the profile: every argument goes through single-quote escaping.
  local p = io.popen("command -v " .. sh_quote(bin) .. " 2>/dev/null")
  local found = p:read("*l")
  p:close()
  if not found or found == "" then
    return ctx:fail("the databricks CLI (" .. bin .. ") is not on PATH; "
      .. "install it: https://docs.databricks.com/dev-tools/cli/install.html")
  end
  local argv = { sh_quote(found), "auth", "token" }
  local shown = { "databricks", "auth", "token" }
  -- Without a profile, the workspace comes from DATABRICKS_HOST (an env file's value does not reach
  -- the child's environment, so it is passed as --host).
  local host = not profile and ctx:getenv("DATABRICKS_HOST") or nil
  if host == "" then host = nil end
  for _, pair in ipairs({ { "--profile", profile }, { "--host", host } }) do
    if pair[2] then
      argv[#argv + 1] = pair[1]
      argv[#argv + 1] = sh_quote(pair[2])
      shown[#shown + 1] = pair[1] .. " " .. pair[2]
    end
  end
  argv[#argv + 1] = "-o"
  argv[#argv + 1] = "json"
  local errfile = os.tmpname()
  ctx:out("running ", table.concat(shown, " "), " -o json")
  -- The exit status travels in the output: LuaJIT's popen close does not report it.
  p = io.popen("{ " .. table.concat(argv, " ") .. " </dev/null 2>" .. sh_quote(errfile) .. "; }; echo \"__rc=$?\"")
  local raw = p:read("*a")
  p:close()
  local out, rc = raw:match("^(.-)__rc=(%d+)\n?$")
  local code = tonumber(rc) or 1
  out = out or ""
  local ef = io.open(errfile, "rb")
  local errtext = ef and ef:read("*a") or ""
  if ef then ef:close() end
  os.remove(errfile)
  if code ~= 0 then
    errtext = errtext:gsub("%s+$", "")
    return ctx:fail("databricks auth token failed (exit " .. tostring(code) .. ")"
      .. (errtext ~= "" and (": " .. errtext) or ""))
  end
  local reply = require("lakebase.json").decode(out)
  local tok = type(reply) == "table" and reply.access_token
  if type(tok) ~= "string" or tok == "" or tok:find("[%c%s]") then
    return ctx:fail("databricks auth token printed no access_token (expected JSON with \"access_token\")")
  end
  local new = _M.replace_token(text, tok)
  local mode = file_mode(file) or "600"
  -- Atomic: a private temporary file in the same folder, then rename over the original.
  local tmp = file .. ".tmp." .. tostring(os.time()) .. "." .. tostring(math.random(1e6))
  local okc = os.execute("umask 077 && : > " .. sh_quote(tmp))
  if not (okc == true or okc == 0) then return ctx:fail("cannot create " .. tmp) end
  local wf = io.open(tmp, "wb")
  if not wf then os.remove(tmp) return ctx:fail("cannot write " .. tmp) end
  wf:write(new)
  wf:close()
  os.execute("chmod " .. mode .. " " .. sh_quote(tmp))
  local rok, rerr = os.rename(tmp, file)
  if not rok then
    os.remove(tmp)
    return ctx:fail("cannot replace " .. file .. ": " .. tostring(rerr))
  end
  local expiry = type(reply.expiry) == "string" and (", expires " .. reply.expiry) or ""
  ctx:out("DATABRICKS_TOKEN updated in ", file, expiry)
  return 0
end

function commands.env_example(ctx, args)
  if #args > 0 then return ctx:usage("unexpected argument " .. args[1]) end
  ctx.stdout:write(ENV_EXAMPLE)
  return 0
end
commands["env-example"] = commands.env_example
commands.env_example = nil

---------------------------------------------------------------- entry point

--- Runs the CLI with an argument list; returns the exit status.
-- `io_` may give `stdout`/`stderr` file handles (default io.stdout/io.stderr); `self_cmd`
-- (`{ interpreter, script }`, from bin/lakebase) lets the CLI run itself again with profile variables.
function _M.main(argv, io_, self_cmd)
  io_ = io_ or {}
  local ctx = setmetatable({ stdout = io_.stdout or io.stdout, stderr = io_.stderr or io.stderr, overlay = {} }, Ctx)
  argv = argv or {}
  local env_files, rest, help, cmd = {}, {}, false, nil
  local i = 1
  local passthrough = false
  while i <= #argv do
    local a = argv[i]
    if passthrough then
      rest[#rest + 1] = a
    elseif a == "--env-file" then
      i = i + 1
      if argv[i] == nil then return ctx:usage("--env-file needs a PATH") end
      env_files[#env_files + 1] = argv[i]
    elseif a:match("^%-%-env%-file=") then
      env_files[#env_files + 1] = a:sub(#"--env-file=" + 1)
    elseif a == "--help" or a == "-h" then
      help = true
    elseif a == "--version" and not cmd then
      local ok, lakebase = pcall(require, "lakebase")
      ctx:out("lakebase ", ok and tostring(lakebase._VERSION) or "(module not found)")
      return ok and 0 or 1
    elseif not cmd and a:sub(1, 1) ~= "-" then
      cmd = a
    elseif cmd == "psql" and a == "--" then
      passthrough = true
    elseif not cmd then
      return ctx:usage("unknown option " .. a)
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  if cmd == "help" then cmd, help = rest[1], true end
  if not cmd then
    ctx.stdout:write(USAGE, "\n")
    return help and 0 or 2
  end
  if not commands[cmd] then
    ctx:err("lakebase: unknown command ", cmd)
    ctx:err("(see lakebase --help)")
    return 2
  end
  ctx.command = cmd
  if help then
    ctx.stdout:write(HELP[cmd], "\n")
    return 0
  end
  local files
  if #env_files > 0 then
    files = env_files
  else
    files = { { path = ".env.local", optional = true }, { path = ".env", optional = true } }
  end
  local overlay, lerr = dotenv.overlay(files)
  if not overlay then return ctx:fail(lerr) end
  ctx.overlay = overlay
  -- The C core reads DATABRICKS_CONFIG_PROFILE / DATABRICKS_CONFIG_FILE only from the process
  -- environment (they are not options). When an env file sets them, run this command again with
  -- those two (non-secret) variables exported; everything else still travels as options.
  local profile_vars = {}
  for _, k in ipairs({ "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CONFIG_FILE" }) do
    if overlay[k] and overlay[k] ~= "" then profile_vars[#profile_vars + 1] = k .. "=" .. sh_quote(overlay[k]) end
  end
  local needs_settings = cmd == "check" or cmd == "token" or cmd == "psql" or cmd == "migrate"
  local can_rerun = self_cmd and self_cmd.interpreter and self_cmd.interpreter[1] and self_cmd.script
  if #profile_vars > 0 and needs_settings and can_rerun and not os.getenv("LAKEBASE_CLI_REEXEC") then
    local line = { "LAKEBASE_CLI_REEXEC=1", table.concat(profile_vars, " ") }
    for _, a in ipairs(self_cmd.interpreter) do line[#line + 1] = sh_quote(a) end
    line[#line + 1] = sh_quote(self_cmd.script)
    for _, a in ipairs(argv) do line[#line + 1] = sh_quote(a) end
    ctx.stdout:flush()
    return exit_status(os.execute("exec env " .. table.concat(line, " ")))
  end
  local ok, code = pcall(commands[cmd], ctx, rest)
  if not ok then
    ctx:err("lakebase ", cmd, ": internal error: ", tostring(code))
    return 1
  end
  return code
end

return _M
