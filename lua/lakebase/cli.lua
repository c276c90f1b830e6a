--- The `lakebase` command line (bin/lakebase calls `require("lakebase.cli").main(arg)`).
--
-- Settings come from the process environment and from env files: `--env-file PATH` (repeatable;
-- when given, only those files are read), otherwise `./.env.local` and `./.env` when present (in
-- that order: the first that sets a key wins, as `refresh-token` writes `.env.local`). A value in a
-- file never overrides a variable already set in the environment (see lakebase.dotenv). Lua cannot
-- change its own environment, so file values reach the library as `lakebase.new` options (the
-- env names of core.options) and reach child processes (psql) through their environment.
-- DATABRICKS_CONFIG_FILE is not an option: when a file sets it, the command runs itself again with
-- it exported. `psql` gets the credential in a private PGPASSFILE (0600, removed afterwards), not
-- in PGPASSWORD or on a command line where `ps` would show it; `refresh-token` has the C core run
-- `databricks auth token` with an argument list and no shell, so nothing in the profile name is
-- interpreted.
--
-- Exit status: 0 ok, 1 failed, 2 usage. Secrets are never printed, except by `token --show`.
local dotenv = require("lakebase.dotenv")
local drizzle = require("lakebase.drizzle")

local _M = {}

-- Environment variable -> lakebase option pairs, from the C core's settings table (core.options):
-- the one list of settings.
function _M.env_options()
  local out = {}
  for _, o in ipairs(require("lakebase.core").options) do
    if o.env then out[#out + 1] = { o.env, o.name } end
  end
  return out
end

-- Other variables the CLI reads; with env_options(), the names an env file may set without a warning.
_M.ENV_OTHER = { "DATABRICKS_CONFIG_FILE", "LAKEBASE_MIGRATIONS_DIR", "LAKEBASE_SCHEMA" }

local function known_env_names()
  local names = {}
  for _, pair in ipairs(_M.env_options()) do names[#names + 1] = pair[1] end
  for _, n in ipairs(_M.ENV_OTHER) do names[#names + 1] = n end
  return names
end

local USAGE = [[
usage: lakebase [--env-file PATH] <command> [options]

commands:
  check                 validate settings, fetch a credential, connect; print user, server, TLS, budget
  token [--show]        fetch a Lakebase credential (printed only with --show)
  psql [ARGS...]        run psql with a fresh credential (passed in a private PGPASSFILE)
  migrate [--dir D] [--dry-run] [--allow-out-of-order] [--allow-changed] [--tracking-table S.T]
          [--lock-timeout SECONDS]
                        apply pending migrations (plain NNNN_name.sql folders or drizzle-kit folders)
  migrate status [--dir D] [--tracking-table S.T]
                        list applied, pending, changed, out-of-order and clashing migrations
  new NAME [--dir D]    create the next empty migration file D/NNNN_NAME.sql
  generate [--dir D] [--schema FILE]... [--name NAME] [--dry-run] [--baseline] [--allow-destructive]
                        write the next migration from Lua schema modules (diff against the snapshot)
  refresh-token [FILE] [--profile P]
                        run `databricks auth token` and write DATABRICKS_TOKEN into FILE (.env.local)
  env-example           print an example .env (the text of .env.example)

options for every command:
  --env-file PATH       read settings from PATH (repeatable) instead of ./.env.local and ./.env
  -h, --help            help for the command
  --version             print the version
  --paths               print lua_package_path / lua_package_cpath for nginx: where this copy is

exit status: 0 ok, 1 failed, 2 usage error]]

local HELP = {
  check = [[
usage: lakebase check [--env-file PATH]

Validates the settings (every problem at once), fetches a Lakebase credential (unless PGPASSWORD is
set), connects, and prints the user, the server version, the TLS version, when the credential
expires and the connection budget: the server's max_connections, its superuser reserve, the
connections open now, and the rule hosts x nginx workers x pools x max <= what this role can hold
(hosts x nginx workers x process_max_connections when that cap is set);
then the time of each step of a cold start (DNS, TCP, TLS, authentication, first query, the
credential's HTTP call) and the measured round-trip time. Never prints the credential.]],
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
usage: lakebase new NAME [--dir D] [--env-file PATH]

Creates D/NNNN_NAME.sql (D defaults to ./migrations), numbered after the last migration.]],
  generate = [[
usage: lakebase generate [--dir D] [--schema FILE]... [--name NAME] [--dry-run] [--baseline]
                         [--allow-destructive] [--env-file PATH]

Loads the Lua schema modules (default ./schema.lua; each returns tables made with lakebase.schema),
compares them with the snapshot D/meta/lakebase_snapshot.json and writes the next migration
D/NNNN_NAME.sql (create table, add/drop column, create/drop index, add/drop constraint) and the new
snapshot. A change that may be a rename (a column dropped and another added with the same type) is
written as a commented TODO behind a guard statement that fails until the TODO is resolved, never
guessed. Destructive steps (dropping a table or a column, a type change that may not keep every
value) are written behind the same guard, as TODOs to confirm, unless --allow-destructive.
--dry-run prints the SQL instead of writing files. --baseline only records the snapshot (for a folder
whose existing migrations already create the current schema).]],
  ["refresh-token"] = [[
usage: lakebase refresh-token [FILE] [--profile P] [--timeout SECONDS] [--env-file PATH]

Runs `databricks auth token --profile P -o json` (P from --profile or DATABRICKS_CONFIG_PROFILE; without
either, `--host $DATABRICKS_HOST` when that is set, else the databricks CLI's defaults) with no shell
at all (the program is started with its argument list), killed after --timeout seconds (default 60)
or 1 MiB of output, and replaces or appends DATABRICKS_TOKEN="..." in FILE (default .env.local),
atomically and keeping the file's mode. Without FILE and without a .env.local, it creates .env.local
(mode 0600) holding only the token: the CLI reads .env.local before .env, so the token wins and the
settings in .env stay as they are.]],
  ["env-example"] = [[
usage: lakebase env-example [--env-file PATH]

Prints an example .env with every setting the library reads (redirect it to a file); the same text
as .env.example in the source tree.]],
  ["migrate status"] = [[
usage: lakebase migrate status [--dir D] [--tracking-table SCHEMA.TABLE] [--env-file PATH]

Compares the migrations folder D (default ./migrations) with the tracking table without changing
anything: one line per migration (applied with its time and duration, pending, changed, out_of_order,
clash: its number was recorded for another migration), then the counts. Exit status 1 when a
migration changed after it was applied, is out of order or clashes, else 0.]],
}

--- The example .env (`lakebase env-example`, and .env.example in the repository): one entry per
-- setting that has an environment variable, from core.options.
function _M.env_example()
  local lines = {
    "# lakebase settings: copy to .env (cp .env.example .env, or lakebase env-example > .env) and fill in.",
    "# The lakebase CLI reads ./.env.local, then ./.env (or --env-file PATH): the first file that sets a key",
    "# wins, and a variable already set in the environment wins over both. The library reads only the",
    "# process environment. With Databricks auth, DATABRICKS_HOST (or a profile) and LAKEBASE_ENDPOINT are",
    "# enough: PGHOST is read from the endpoint, PGUSER from the workspace, PGDATABASE is databricks_postgres.",
    "#   databricks postgres list-endpoints projects/<project>/branches/<branch>   -> LAKEBASE_ENDPOINT",
  }
  local function comment(text) -- "# " lines of at most 100 columns
    local line = "#"
    for word in text:gmatch("%S+") do
      if #line + 1 + #word > 100 then
        lines[#lines + 1] = line
        line = "#"
      end
      line = line .. " " .. word
    end
    lines[#lines + 1] = line
  end
  for _, o in ipairs(require("lakebase.core").options) do
    if o.env then
      lines[#lines + 1] = ""
      comment(o.doc)
      lines[#lines + 1] = (o.example and "" or "# ") .. o.env .. "=" .. (o.example or "")
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

---------------------------------------------------------------- helpers

local sh_quote = drizzle.sh_quote

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

-- A library error object already starts with its kind ("credential: ...", "connect: ..."); only a
-- plain message gets the step's name in front, so no prefix is said twice.
local function step_error(step, err)
  if type(err) == "table" and err.kind then return tostring(err) end
  return step .. ": " .. tostring(err)
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
  for _, pair in ipairs(_M.env_options()) do
    local v = self.overlay[pair[1]]
    if v ~= nil and v ~= "" then opts[pair[2]] = v end
  end
  for k, v in pairs(extra or {}) do opts[k] = v end
  return opts
end

-- The validated settings, with the host and user that were left out read from the workspace (as the
-- pool does: core.discover, once per process); s.discovered lists what was read.
function Ctx:settings()
  local lakebase = require("lakebase")
  local opts = self:options()
  local s, err = lakebase.config(opts)
  if not s then return nil, err end
  if s.auth ~= "password" and (s.host == nil or s.user == nil) then
    local d, derr = require("lakebase.core").discover(opts)
    if not d then return nil, derr end
    s.discovered = { host = s.host == nil and d.host or nil, user = s.user == nil and d.user or nil }
    s.host, s.user = s.host or d.host, s.user or d.user
  end
  return s, nil, opts
end

function Ctx:connect(extra)
  local s, err, opts = self:settings()
  if not s then return nil, err end
  for k, v in pairs(extra or {}) do opts[k] = v end
  local db, derr = require("lakebase").new(opts)
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
  local s, err, opts = self:settings()
  if not s then return nil, err end
  if s.auth == "password" then
    return self:getenv("PGPASSWORD"), nil, s
  end
  local tok, exp = require("lakebase").token(opts)
  if not tok then return nil, exp end
  return tok, exp, s
end

---------------------------------------------------------------- commands

local commands = {}

-- What the server allows: its limit, the slots only superusers may take, the connections open now
-- (this role's, this check's one included) and the role's own limit (-1: none).
local BUDGET_SQL = [[
  select current_setting('max_connections')::int as max_connections,
         current_setting('superuser_reserved_connections')::int as reserved,
         (select count(*) from pg_stat_activity where backend_type = 'client backend')::int as open,
         (select count(*) from pg_stat_activity
           where backend_type = 'client backend' and usename = current_user)::int as mine,
         (select rolconnlimit from pg_roles where rolname = current_user)::int as role_limit,
         (select rolsuper from pg_roles where rolname = current_user) as super]]

--- The connection budget lines of `lakebase check` from the server's numbers (BUDGET_SQL's row),
-- this process's pool size `max` and its process_max_connections `cap` (0 or nil: none): what
-- this role can still open, and the sizing rule.
function _M.budget_lines(f, max, cap)
  local limit = f.max_connections - (f.super and 0 or f.reserved)
  local others = f.open - f.mine -- held by other roles: not this role's to take
  local room = limit - others
  if f.role_limit and f.role_limit >= 0 and f.role_limit < room then
    room = f.role_limit
  end
  local lines = {
    ("connections: server max_connections %d, %d reserved for superusers, %d open (%d by other roles, "
      .. "%d by this role, this check's included)%s"):format(f.max_connections, f.reserved, f.open, others,
      f.mine, (f.role_limit and f.role_limit >= 0) and (", role limit " .. f.role_limit) or ""),
  }
  -- What one process may hold: the cap across its pools when set, else max per pool.
  local holds, rule, per_process, n
  if cap and cap > 0 then
    holds = ("holds at most process_max_connections = %d across its pools"):format(cap)
    rule, per_process, n = "process_max_connections", tostring(cap), cap
  else
    holds = ("opens up to max = %d per pool"):format(max)
    rule, per_process, n = "pools x max", "max = " .. max, max
  end
  lines[2] = ("budget: this role can hold %d connections; this process %s (under nginx: per worker process)")
    :format(room, holds)
  lines[3] = ("budget: keep hosts x nginx workers x %s <= %d (today: at most %d processes of %s); "
    .. "past it the server refuses with 53300 too_many_connections"):format(rule, room, math.floor(room / n),
    per_process)
  return lines
end

function commands.check(ctx, args)
  if #args > 0 then return ctx:usage("unexpected argument " .. args[1]) end
  local s, err = ctx:settings()
  if not s then
    ctx:err(tostring(err))
    return 1
  end
  ctx:out("settings: ", tostring(s))
  local what = s.instance and ("instance " .. s.instance) or ("endpoint " .. tostring(s.endpoint))
  if s.discovered and s.discovered.host then
    ctx:out("host: ", s.host, " (PGHOST unset: read from the ", what, ")")
  end
  if s.discovered and s.discovered.user then
    ctx:out("user: ", s.user, " (PGUSER unset: the workspace user of this token, SCIM Me)")
  end
  if s.auth ~= "password" and not (s.discovered and s.discovered.host) then
    -- PGHOST given: say so when it is not one of the endpoint's hosts (a copy-paste from another one).
    local d, derr = require("lakebase.core").discover(ctx:options())
    if not d then
      ctx:out("warning: could not read the hosts of the ", what, ": ", tostring(derr))
    else
      local listed = false
      for _, h in ipairs(d.hosts) do listed = listed or h:lower() == s.host:lower() end
      if not listed then
        ctx:out("warning: PGHOST ", s.host, " is not one of the hosts of the ", what, " (",
          table.concat(d.hosts, ", "), "): a host of another endpoint gets a credential it does not "
          .. "accept; unset PGHOST to use the endpoint's own")
      end
    end
  end
  if s.auth == "token" and s.client_id then
    -- As the SDKs' seed rule: a token wins over client id/secret unless auth_type says otherwise.
    ctx:out("warning: DATABRICKS_TOKEN and DATABRICKS_CLIENT_ID are both set: the token is used "
      .. "(set DATABRICKS_AUTH_TYPE=oauth-m2m for the service principal)")
  end
  local core = package.loaded["lakebase.core"] or {}
  local clock = core.monotonic or os.time
  local t0 = clock()
  local tok, exp = ctx:credential()
  local cred_time = clock() - t0
  if not tok then return ctx:fail(step_error("credential", exp)) end
  if s.auth == "password" then
    ctx:out("credential: native Postgres password (PGPASSWORD), no expiry")
  else
    ctx:out("credential: fetched (", s.auth == "m2m" and "OAuth M2M" or "workspace token", "), expires ",
      format_time(exp))
  end
  local db, derr = ctx:connect({ max = 1 })
  if not db then return ctx:fail(step_error("connect", derr)) end
  local ok, rows, qerr = pcall(db.query, db, [[
    select current_user::text as "user", version() as server, s.ssl, s.version as tls, s.cipher
      from pg_stat_ssl s where s.pid = pg_backend_pid()]])
  if not ok then rows, qerr = nil, rows end
  local fok, facts, ferr = pcall(db.one, db, BUDGET_SQL)
  if not fok then facts, ferr = nil, facts end
  if type(db.close) == "function" then pcall(db.close, db) end
  if not rows then return ctx:fail(step_error("query", qerr)) end
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
  if facts then
    for _, line in ipairs(_M.budget_lines(facts, s.max, s.process_max_connections)) do ctx:out(line) end
  else
    ctx:out("budget: unknown (", tostring(ferr), ")")
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
    if m.state == "clash" then
      extra = "  (never applied: version " .. m.version .. " is recorded for " .. tostring(m.recorded) .. ")"
    end
    ctx:out(string.format("  %-13s %s%s", m.state, m.file, extra))
  end
  for _, u in ipairs(st.unknown or {}) do
    local what = u.name or ("hash " .. tostring(u.hash):sub(1, 12) .. ", created_at " .. tostring(u.created_at))
    ctx:out(string.format("  %-13s %s", "not in folder", what))
  end
  local pending = 0
  for _, m in ipairs(st.migrations) do if m.state ~= "applied" then pending = pending + 1 end end
  local clashes = #(st.clashes or {})
  ctx:out(string.format("%d applied, %d pending, %d changed, %d out of order%s",
    #st.applied, #st.pending, #st.changed, #st.out_of_order,
    clashes > 0 and string.format(", %d with a number taken by another migration", clashes) or ""))
  return (#st.changed > 0 or #st.out_of_order > 0 or clashes > 0) and 1 or 0
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
  local function warn(msg) ctx:err("lakebase migrate: warning: ", msg) end
  if sub == "status" then
    local st, serr = migrate.status(db, { dir = dir, schema = tschema, table = ttable, warn = warn })
    if not st then return done(ctx:fail(serr)) end
    return done(print_status(ctx, st))
  end
  local res, merr = migrate.up(db, {
    dir = dir, schema = tschema, table = ttable,
    dry_run = flags["--dry-run"], allow_out_of_order = flags["--allow-out-of-order"],
    allow_changed = flags["--allow-changed"], lock_timeout = lock_timeout,
    progress = function(msg) ctx:out(msg) end, warn = warn,
  })
  if not res then return done(ctx:fail(merr)) end
  if res.dry_run then
    ctx:out(string.format("dry run: %d pending in %s (%s)", #res.pending, dir, res.kind))
  else
    ctx:out(string.format("done: %d applied, %d already applied before (%s, %s)", #res.applied, res.already,
      res.kind, res.table))
  end
  return done(0)
end

function commands.new(ctx, args)
  local flags, rest = parse_flags(ctx, args, { ["--dir"] = "value" })
  if not flags then return rest end
  if #rest ~= 1 then return ctx:usage("expected one NAME") end
  local dir = flags["--dir"] or ctx:getenv("LAKEBASE_MIGRATIONS_DIR") or "migrations"
  local made, merr = drizzle.make_dir(dir)
  if not made then return ctx:fail(merr) end
  local path, err = require("lakebase.migrate").new(dir, rest[1])
  if not path then return ctx:fail(err) end
  ctx:out("created ", path)
  return 0
end

function commands.generate(ctx, args)
  local flags, rest = parse_flags(ctx, args, { ["--dir"] = "value", ["--schema"] = "list",
    ["--name"] = "value", ["--dry-run"] = "bool", ["--baseline"] = "bool", ["--allow-destructive"] = "bool" })
  if not flags then return rest end
  if #rest > 0 then return ctx:usage("unexpected argument " .. rest[1]) end
  local dir = flags["--dir"] or ctx:getenv("LAKEBASE_MIGRATIONS_DIR") or "migrations"
  local schemas = flags["--schema"] or { ctx:getenv("LAKEBASE_SCHEMA") or "schema.lua" }
  local generate = require("lakebase.generate")
  local res, err = generate.run({
    dir = dir, schemas = schemas, name = flags["--name"], dry_run = flags["--dry-run"],
    baseline = flags["--baseline"], allow_destructive = flags["--allow-destructive"],
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
  if res.todos > 0 then
    ctx:err("lakebase generate: ", res.path, " stops at its guard until you resolve ", res.todos == 1 and "its TODO"
      or ("its " .. res.todos .. " TODOs"), res.destructive > 0 and " (destructive steps: drops or type changes)" or "",
      " and delete the guard")
  end
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
  local flags, rest = parse_flags(ctx, args, { ["--profile"] = "value", ["--timeout"] = "value" })
  if not flags then return rest end
  if #rest > 1 then return ctx:usage("expected at most one FILE") end
  local timeout = tonumber(flags["--timeout"] or "60")
  if not timeout or timeout <= 0 or timeout > 3600 then
    return ctx:usage("--timeout expects seconds (0 < s <= 3600)")
  end
  local file = rest[1] or ".env.local"
  local profile = flags["--profile"] or ctx:getenv("DATABRICKS_CONFIG_PROFILE")
  if profile == "" then profile = nil end
  local f = io.open(file, "rb")
  local text, created = "", false
  if f then
    text = f:read("*a")
    f:close()
  elseif rest[1] then
    return ctx:fail(file .. " not found: name an existing env file, or run `lakebase refresh-token` "
      .. "without FILE to keep the token in .env.local")
  else
    -- .env.local is read before .env: it holds only the token, so no placeholder in it can hide a
    -- real value in .env.
    created = true
  end
  local bin = ctx:getenv("DATABRICKS_CLI_PATH") or "databricks"
  -- Without a profile, the workspace comes from DATABRICKS_HOST (an env file's value does not reach
  -- the child's environment, so it is passed as --host).
  local host = not profile and ctx:getenv("DATABRICKS_HOST") or nil
  if host == "" then host = nil end
  ctx:out("running ", bin, " auth token", profile and (" --profile " .. profile) or "",
    host and (" --host " .. host) or "", " -o json")
  -- The core runs it (no shell, killed at the timeout or past 1 MiB of output) and reads its
  -- answer: the same code as databricks-cli auth.
  local tok, expires_at = require("lakebase.core").databricks_token(bin, profile, host, timeout)
  if not tok then
    local err = expires_at
    local msg = tostring(err.message or err):gsub("^databricks%-cli auth: ", "")
    if err.message and err.message:find("did not finish", 1, true) then msg = msg .. "; --timeout" end
    if err.message and err.message:find("not on PATH", 1, true) then
      msg = msg .. "; install it: https://docs.databricks.com/dev-tools/cli/install.html"
    end
    return ctx:fail(msg)
  end
  local new = _M.replace_token(text, tok)
  local mode = not created and file_mode(file) or "600"
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
  local expiry = ", expires " .. os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(expires_at))
  if created then
    ctx:out("DATABRICKS_TOKEN written to a new ", file, expiry,
      " (only the token: the CLI reads it before .env, where your other settings stay)")
  else
    ctx:out("DATABRICKS_TOKEN updated in ", file, expiry)
  end
  return 0
end

function commands.env_example(ctx, args)
  if #args > 0 then return ctx:usage("unexpected argument " .. args[1]) end
  ctx.stdout:write(_M.env_example())
  return 0
end
commands["env-example"] = commands.env_example
commands.env_example = nil

---------------------------------------------------------------- --paths

-- package.searchpath, which PUC Lua 5.1 lacks.
local function search(path, name)
  if package.searchpath then return package.searchpath(name, path) end
  local file = name:gsub("%.", "/")
  for template in path:gmatch("[^;]+") do
    local candidate = template:gsub("%?", file)
    local f = io.open(candidate, "r")
    if f then
      f:close()
      return candidate
    end
  end
end

--- Prints where this interpreter finds lakebase, as nginx directives for the http block (OpenResty
-- or Debian's nginx-lua), so that `lakebase --paths` run from the tree installed for LuaJIT can go
-- into an nginx include file. Lines starting with # are nginx comments.
local function print_paths(ctx)
  local mod = search(package.path, "lakebase")
  local core = search(package.cpath, "lakebase.core")
  local jit = rawget(_G, "jit")
  local interp = type(jit) == "table" and jit.version or _VERSION
  if not mod or not core then
    ctx:err("lakebase --paths: ", interp, " finds ", mod and "no lakebase.core" or "no lakebase module",
      " (install with luarocks, see README)")
    return 1
  end
  local lua_root = mod:match("^(.*)/lakebase/init%.lua$") or mod:match("^(.*)/lakebase%.lua$")
  local core_root, ext = core:match("^(.*)/lakebase/core(%.[^/]*)$")
  ctx:out("# lakebase ", tostring(require("lakebase")._VERSION), " for ", interp, ": ", core)
  if type(jit) ~= "table" then
    ctx:out("# nginx runs LuaJIT: use the paths of a LuaJIT (Lua 5.1) install in nginx")
  end
  ctx:out('lua_package_path  "', lua_root, "/?.lua;", lua_root, '/?/init.lua;;";')
  ctx:out('lua_package_cpath "', core_root, "/?", ext, ';;";')
  return 0
end

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
    elseif a == "--paths" and not cmd then
      return print_paths(ctx)
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
    ctx.stdout:write(HELP[cmd .. " " .. tostring(rest[1])] or HELP[cmd], "\n")
    return 0
  end
  local files
  if #env_files > 0 then
    files = env_files
  else
    files = { { path = ".env.local", optional = true }, { path = ".env", optional = true } }
  end
  local overlay, loaded, keys = dotenv.overlay(files)
  if not overlay then return ctx:fail(loaded) end
  ctx.overlay = overlay
  -- A misspelt key would otherwise be ignored without a word (the re-run child has said it already).
  if not os.getenv("LAKEBASE_CLI_REEXEC") then
    local known = known_env_names()
    for n, path in ipairs(loaded) do
      for _, msg in ipairs(dotenv.unknown_keys(path, keys[n], known, { "PG", "LAKEBASE_", "DATABRICKS_" })) do
        ctx:err("lakebase: warning: ", msg)
      end
    end
  end
  -- The C core reads DATABRICKS_CONFIG_FILE only from the process environment (it is not an
  -- option). When an env file sets it, run this command again with it exported; everything else,
  -- DATABRICKS_CONFIG_PROFILE (the `profile` option) included, travels as options.
  local profile_vars = {}
  for _, k in ipairs({ "DATABRICKS_CONFIG_FILE" }) do
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
