-- The docs are tested: every ```sh, ```nginx and ```lua block of README.md and
-- examples/openresty/README.md runs against the fixtures, in file order, as a reader would run it.
-- nginx blocks must pass `nginx -t` and serve a request; sh blocks exit 0; lua blocks run to the end;
-- a plain block that starts with `$ command` shows that command's output, and must go on showing it.
-- A block that is deliberately not runnable has a marker on the line before it:
--   <!-- docs-test: skip: why -->                  not run (the reason says where it runs instead)
--   <!-- docs-test: project: ... -->               run in a project folder: migrations/, app/schema.lua
--   <!-- docs-test: prelude: LUA -->               LUA runs first (names the block takes as given)
--   <!-- docs-test: substitute: ... -->            a note for the reader; SUBSTITUTE below applies anyway
-- The workspace-specific values are replaced by the fixtures' (SUBSTITUTE), the databricks CLI is a
-- fake on PATH, and the blocks run in a database of their own (dropped at the end).
-- luacheck: max line length 140
local h = require("spec.support.helpers")
local nginx = require("spec.support.nginx")

local q = h.shell_quote
local interp = os.getenv("LAKEBASE_TEST_INTERP") or "lua5.4"
local root = os.getenv("PWD")
local build = os.getenv("LAKEBASE_BUILD") or "build"
if build:sub(1, 1) ~= "/" then build = root .. "/" .. build end

local DOCS = { "README.md", "examples/openresty/README.md" }
-- Commands a spec must never run on the machine (installs, the suite itself): a block with one of
-- these and no skip marker fails instead (e.g. when a merge lost the marker).
local NEVER_RUN = { { "%f[%w]apt%-get ", "apt-get" }, { "%f[%w]luarocks ", "luarocks" }, { "make test", "make test" },
  { "make demo", "make demo" } }
local RUN = { sh = true, nginx = true, lua = true }

--- The blocks of a Markdown file: { file, line, lang, text, marker = { kind, value } | nil }.
local function blocks_of(file)
  local out, cur, last = {}, nil, nil
  local n = 0
  for line in (h.read_file(root .. "/" .. file) .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if cur then
      if line:match("^```%s*$") then
        out[#out + 1] = cur
        cur = nil
      else
        cur.text = cur.text .. line .. "\n"
      end
    else
      local lang = line:match("^```(%S*)%s*$")
      if lang then
        local kind, value = (last or ""):match("^<!%-%- docs%-test: (%a+):?%s*(.-)%s*%-%->$")
        cur = { file = file, line = n, lang = lang, text = "", marker = kind and { kind = kind, value = value } }
      elseif line:match("%S") then
        last = line
      end
    end
  end
  return out
end

describe("the docs run as written", function()
  local e = h.env()
  local dir = h.run("mktemp -d /tmp/lakebase-docs.XXXXXX"):gsub("%s+$", "")
  local appdir, projdir, fakebin = dir .. "/app", dir .. "/project", dir .. "/bin"
  local database = "docs_" .. h.unique("t"):gsub("[^%w_]", "_")
  local port = nginx.free_port()
  local settings_file = dir .. "/settings.sh"
  -- What a real workspace does not need and the fixtures do (a port, a private CA), and the token the
  -- fake databricks CLI hands out: all a block that sets its own settings gets.
  local transport_file = dir .. "/transport.sh"

  -- SUBSTITUTE: the workspace-specific values of the docs, and what the spec runs instead.
  local SUBSTITUTE = {
    { "ep-....database.cloud.databricks.com", e.PGHOST },
    { "databricks_postgres", database },
    { "projects/my-project/branches/production/endpoints/primary", e.ENDPOINT },
    { "https://my-workspace.cloud.databricks.com", e.DATABRICKS_HOST },
    { "you@example.com", e.PGUSER },
    { "DATABRICKS_CLIENT_ID=... DATABRICKS_CLIENT_SECRET=...",
      "DATABRICKS_CLIENT_ID=" .. e.CLIENT_ID .. " DATABRICKS_CLIENT_SECRET=" .. e.CLIENT_SECRET },
    { "/usr/local/share/lua/5.1", root .. "/lua" },      -- LuaRocks' tree has the checkout's layout
    { "/usr/local/lib/lua/5.1", build .. "/luajit" },
    { "/opt/lakebase/build", build },
    { "/opt/lakebase", root },
    { "/srv/app", appdir },
    { "listen 8080;", "listen 127.0.0.1:" .. port .. ";" },
  }
  local function substitute(text)
    for _, pair in ipairs(SUBSTITUTE) do
      local from = pair[1]:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
      text = text:gsub(from, (pair[2]:gsub("%%", "%%%%")))
    end
    return text
  end

  -- The settings a deployment exports (OAuth M2M), kept in a private file rather than on a command line.
  local function write_settings()
    h.write_file(settings_file, table.concat({
      "export PGHOST=" .. q(e.PGHOST), "export PGPORT=" .. q(e.PGPORT), "export PGDATABASE=" .. q(database),
      "export PGSSLMODE=require", "export PGSSLROOTCERT=" .. q(e.SSLROOTCERT),
      "export LAKEBASE_ENDPOINT=" .. q(e.ENDPOINT), "export DATABRICKS_HOST=" .. q(e.DATABRICKS_HOST),
      "export DATABRICKS_CLIENT_ID=" .. q(e.CLIENT_ID), "export DATABRICKS_CLIENT_SECRET=" .. q(e.CLIENT_SECRET),
      "export FAKE_TOKEN=" .. q(e.TOKEN), "",
    }, "\n"), "600")
    h.write_file(transport_file, table.concat({
      "export PGPORT=" .. q(e.PGPORT), "export PGSSLROOTCERT=" .. q(e.SSLROOTCERT),
      "export FAKE_TOKEN=" .. q(e.TOKEN), "",
    }, "\n"), "600")
  end

  -- Runs a bash script in `cwd` with a clean environment plus the variables of `env_file` (if any).
  -- Returns ok, output (stdout and stderr).
  local function bash(script, cwd, env_file, extra_env)
    local path = dir .. "/block.sh"
    h.write_file(path, "set -euo pipefail\n" .. (env_file and (". " .. q(env_file) .. "\n") or "") .. script)
    local env = { "PATH=" .. q(fakebin .. ":" .. os.getenv("PATH")), "HOME=" .. q(dir),
      "LUA_PATH=" .. q(os.getenv("LUA_PATH") or ""), "LUA_CPATH=" .. q(os.getenv("LUA_CPATH") or ""),
      "LAKEBASE_TEST_INTERP=" .. interp }
    for k, v in pairs(extra_env or {}) do env[#env + 1] = k .. "=" .. q(v) end
    local out, ok = h.run("cd " .. q(cwd) .. " && env -i " .. table.concat(env, " ") .. " bash " .. q(path) .. " 2>&1")
    return ok, out
  end

  local all = {}
  for _, file in ipairs(DOCS) do
    for _, b in ipairs(blocks_of(file)) do
      if RUN[b.lang] or (b.lang == "" and b.text:match("^%$ ")) then all[#all + 1] = b end
    end
  end

  setup(function()
    os.execute("mkdir -p " .. q(appdir) .. " " .. q(projdir .. "/app") .. " " .. q(fakebin))
    write_settings()
    -- A fake databricks CLI: what the docs ask of the real one.
    h.write_file(fakebin .. "/databricks", [[
#!/bin/sh
case "$1 $2" in
  "auth token") printf '{"access_token": "%s", "token_type": "Bearer"}\n' "$FAKE_TOKEN" ;;
  "postgres list-endpoints") echo '{"endpoints": [{"name": "projects/my-project/branches/production/endpoints/primary"}]}' ;;
  "postgres get-endpoint") echo '{"status": {"hosts": {"host": "ep-....database.cloud.databricks.com"}}}' ;;
  *) echo "fake databricks: $*: not faked" >&2; exit 1 ;;
esac
]], "755")
    h.write_file(fakebin .. "/lakebase", "#!/bin/sh\nexec " .. interp .. " " .. q(root .. "/bin/lakebase") .. ' "$@"\n', "755")
    -- The project folder of the migration blocks: the examples' migrations and schema.
    os.execute("cp -r " .. q(root .. "/examples/migrations") .. " " .. q(projdir .. "/migrations")
      .. " && cp " .. q(root .. "/examples/schema.lua") .. " " .. q(projdir .. "/app/schema.lua"))
    -- The app module the nginx blocks load is the README's own.
    for _, b in ipairs(all) do
      if b.lang == "lua" and b.text:match("^%-%- /srv/app/app%.lua\n") then h.write_file(appdir .. "/app.lua", b.text) end
    end
    assert(h.psql('create database "' .. database .. '" owner "' .. e.PGUSER .. '"'))
  end)

  teardown(function()
    h.psql('drop database if exists "' .. database .. '" with (force)')
    os.execute("rm -rf " .. q(dir))
  end)

  it("finds the blocks, and every one it does not run says why", function()
    assert.is_true(#all >= 10)
    for _, b in ipairs(all) do
      if b.marker then
        assert.is_truthy(({ skip = 1, project = 1, prelude = 1, substitute = 1 })[b.marker.kind],
          b.file .. ":" .. b.line .. ": unknown marker " .. b.marker.kind)
        if b.marker.kind == "skip" then assert.matches("%S", b.marker.value) end
      end
    end
    assert.is_truthy(h.read_file(appdir .. "/app.lua"), "README.md has an app.lua block")
  end)

  for _, b in ipairs(all) do
    local kind = b.marker and b.marker.kind
    local name = string.format("%s:%d (%s)%s", b.file, b.line, b.lang == "" and "output" or b.lang,
      kind == "skip" and (" is not run: " .. b.marker.value) or "")
    it(name, function()
      if kind == "skip" then return end
      local text = substitute(b.text)
      local cwd = kind == "project" and projdir or root
      if b.lang == "sh" then
        for _, never in ipairs(NEVER_RUN) do
          assert(not text:find(never[1]), b.file .. ":" .. b.line .. " would run " .. never[2]
            .. ": mark it <!-- docs-test: skip: where it runs instead -->")
        end
        -- The example's own walk-through starts fixtures of its own, in a run dir of its own.
        local own_fixtures = text:find("fixtures.sh start", 1, true)
        -- A block that sets the settings itself starts from nothing but the transport; the later ones
        -- find the settings in place, as the reader who followed the README has them.
        local env_file = own_fixtures and nil or (kind == "substitute" and transport_file or settings_file)
        local ok, out = bash(text, cwd, env_file, own_fixtures and { LAKEBASE_RUN_DIR = dir .. "/run" } or nil)
        if own_fixtures then
          bash("bash examples/openresty/run.sh stop; bash spec/support/fixtures.sh stop", root, nil,
            { LAKEBASE_RUN_DIR = dir .. "/run" })
          assert.matches('"name":"flat white"', out, 1, true)
        end
        assert(ok, b.file .. ":" .. b.line .. " failed:\n" .. out)
        if text:find("lakebase new add_orders", 1, true) then
          assert.is_truthy(h.read_file(projdir .. "/migrations/0002_add_orders.sql"))
        end
      elseif b.lang == "lua" then
        local prelude = kind == "prelude" and (b.marker.value .. "\n") or ""
        -- Blocks use `db` as the README's first one made it.
        h.write_file(dir .. "/block.lua", prelude .. 'local db = assert(require("lakebase").new())\n' .. text)
        local ok, out = bash(interp .. " " .. q(dir .. "/block.lua"), cwd, settings_file)
        assert(ok, b.file .. ":" .. b.line .. " failed:\n" .. out)
      elseif b.lang == "" then
        local command, shown = text:match("^%$ ([^\n]*)\n(.*)$")
        os.execute("mkdir -p " .. q(dir .. "/empty"))
        local _, out = bash(command, dir .. "/empty", nil)
        assert.equal(shown, out)
      elseif b.lang == "nginx" then
        local srv = nginx.new(dir .. "/nginx", text)
        local ok, out = nginx.test(srv)
        assert(ok, b.file .. ":" .. b.line .. ": nginx -t failed:\n" .. out)
        local id = assert(h.psql("insert into items (name) values ('from the docs') returning id", { database = database }))
        local started, err = nginx.start(srv, "http://127.0.0.1:" .. port .. "/", ". " .. q(settings_file) .. " &&")
        finally(function() nginx.stop(srv) end)
        assert(started, err)
        local status, body = nginx.curl("http://127.0.0.1:" .. port .. "/?id=" .. id:match("%d+"))
        assert.equal(200, status, tostring(body) .. "\n" .. nginx.error_log(srv))
        assert.matches('"name":"from the docs"', body, 1, true)
        status = nginx.curl("http://127.0.0.1:" .. port .. "/?id=0")
        assert.equal(404, status)
      end
    end)
  end
end)
