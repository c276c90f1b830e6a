-- Packaging: the two rockspecs, `make rock`, the README's install lines run into fresh trees (no
-- network), and a build against libpq/libcurl/cJSON copied into a non-standard prefix.
-- `make test` runs every spec on Lua 5.4 and on LuaJIT: the PUC interpreters' installs ride with
-- the Lua 5.4 run and LuaJIT's with its own, so each interpreter the rockspec claims is installed once.
local h = require("spec.support.helpers")

local interp = os.getenv("LAKEBASE_TEST_INTERP") or "lua5.4"
local INSTALLS = { ["lua5.4"] = { "lua5.4", "lua5.3", "lua5.1" }, luajit = { "luajit" } }
local LUA_VERSION = { ["lua5.1"] = "5.1", ["lua5.3"] = "5.3", ["lua5.4"] = "5.4", luajit = "5.1" }
local q = h.shell_quote

local root = h.run("cd " .. q(h.root()) .. " && pwd"):gsub("\n$", "")
-- LuaRocks picks the interpreter for --lua-version from PATH: the sanitizer wrappers of make
-- check-memory (<build>/asan/bin: lua, lua5.4, luajit) would stand in for lua5.1 or lua5.3 there.
local LUAROCKS_PATH = "PATH=" .. q((os.getenv("PATH") or ""):gsub("[^:]*/asan/bin:?", "")) .. " "

-- stdout+stderr, ok
local function run(cmd)
  local out, ok = h.run(cmd .. " 2>&1")
  return out, ok
end

local function read(path)
  return h.read_file(path)
end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

-- A rockspec's globals, as LuaRocks reads them.
local function load_rockspec(name)
  local env = {}
  local text = assert(read(root .. "/" .. name))
  local chunk
  if rawget(_G, "setfenv") then
    chunk = assert(loadstring(text, "@" .. name))
    setfenv(chunk, env)
  else
    chunk = assert(load(text, "@" .. name, "t", env))
  end
  chunk()
  return env
end

-- The lines of the ```sh blocks in the part of the README that `pattern` captures, comments removed.
local function readme_sh_lines(pattern, what)
  local text = assert(read(root .. "/README.md"))
  local section = assert(text:match(pattern), "README: " .. what .. " not found")
  local lines = {}
  for block in section:gmatch("```sh\n(.-)```") do
    for line in block:gmatch("[^\n]+") do lines[#lines + 1] = line:gsub("%s+#.*$", "") end
  end
  return lines
end

-- The install blocks: between "Install with LuaRocks" and the paragraph on libraries elsewhere.
local function readme_lines()
  return readme_sh_lines("\nInstall with LuaRocks(.-)\nlibpq, libcurl or cJSON elsewhere", "install section")
end

local function openresty_lines()
  return readme_sh_lines("\n## OpenResty / nginx\n(.-)\n## ", "OpenResty section")
end

-- Starts Debian's nginx with lua-nginx-module in `dir` with `http` inside its http block and one
-- location running `lua`; returns the response body, then stops nginx.
local function nginx_get(dir, http, lua)
  local port = run("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0));"
    .. " print(s.getsockname()[1])'")
  port = port:gsub("\n$", "")
  assert(os.execute("mkdir -p " .. q(dir .. "/logs") .. " " .. q(dir .. "/conf")))
  local f = assert(io.open(dir .. "/conf/nginx.conf", "w"))
  f:write(table.concat({
    "load_module /usr/lib/nginx/modules/ndk_http_module.so;",
    "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;",
    "worker_processes 1;", "error_log logs/error.log warn;", "pid logs/nginx.pid;",
    run("id -u") == "0\n" and "user root;" or "",
    "events { worker_connections 64; }",
    "http {", "  access_log off;", "  " .. http,
    "  server { listen 127.0.0.1:" .. port .. "; location / { content_by_lua_block { " .. lua .. " } } }",
    "}", "" }, "\n"))
  f:close()
  -- In the foreground, in a session of its own (as examples/openresty/run.sh does); stopped by pid.
  -- Under make check-memory, the unwinder setting that run.sh explains keeps the worker from hanging.
  local asan = os.getenv("ASAN_OPTIONS")
  asan = asan and "ASAN_OPTIONS=" .. q(asan .. ":fast_unwind_on_malloc=1") .. " " or ""
  local out, ok = run("cd " .. q(dir) .. " && (" .. asan .. "setsid nginx -p " .. q(dir)
    .. " -c conf/nginx.conf -g 'daemon off;'"
    .. " </dev/null >logs/start.log 2>&1 &) && (for i in $(seq 1 50); do"
    .. " curl -fsS -m 2 http://127.0.0.1:" .. port .. "/ 2>/dev/null && exit 0; sleep 0.1; done;"
    .. " cat logs/start.log logs/error.log; exit 1)")
  run("kill $(cat " .. q(dir .. "/logs/nginx.pid") .. ") 2>/dev/null; sleep 0.2")
  assert(ok, out)
  return out
end

-- The README commands that install for one interpreter: the lines that name its --lua-version, the
-- LuaJIT ones (LuaRocks' 5.1 made LuaJIT, then the install) also luajit; `a && b` split, apt-get
-- left out (spec/support/deps.sh installs the packages; the first test checks the names).
local function install_commands(target)
  local out = {}
  for _, line in ipairs(readme_lines()) do
    local luajit = line:find("luajit", 1, true) ~= nil
    if line:find("--lua-version=" .. LUA_VERSION[target], 1, true) and luajit == (target == "luajit") then
      for part in (line .. " && "):gmatch("(.-) && ") do
        if part:match("%S") and not part:match("^apt%-get ") then out[#out + 1] = part end
      end
    end
  end
  return out
end

describe("rockspecs", function()
  local released = load_rockspec("lakebase-0.1.0-1.rockspec")
  local scm = load_rockspec("lakebase-scm-1.rockspec")

  it("the released and the scm rockspec build the same thing", function()
    assert.equal("lakebase", released.package)
    assert.equal("scm-1", scm.version)
    assert.equal("builtin", released.build.type)
    for _, k in ipairs({ "build", "dependencies", "external_dependencies", "description" }) do
      assert.same(released[k], scm[k], k)
    end
  end)

  it("name every C source and Lua module of the tree, and the command", function()
    local core = released.build.modules["lakebase.core"]
    local want, got = {}, {}
    for f in run("cd " .. q(root) .. " && ls src/*.c src/bind/*.c"):gmatch("[^\n]+") do want[#want + 1] = f end
    for _, f in ipairs(core.sources) do got[#got + 1] = f end
    table.sort(want)
    table.sort(got)
    assert.same(want, got)
    assert.same({ "pq", "curl", "cjson" }, core.libraries)
    want, got = {}, {}
    for f in run("cd " .. q(root) .. " && find lua/lakebase -name '*.lua'"):gmatch("[^\n]+") do want[#want + 1] = f end
    for name, f in pairs(released.build.modules) do
      if name ~= "lakebase.core" then
        got[#got + 1] = f
        local expect = f == "lua/lakebase/init.lua" and "lakebase" or f:match("^lua/(.*)%.lua$"):gsub("/", ".")
        assert.equal(expect, name)
      end
    end
    table.sort(want)
    table.sort(got)
    assert.same(want, got)
    assert.same({ lakebase = "bin/lakebase" }, released.build.install.bin)
  end)

  it("the README's apt-get lines name Debian packages that are installed here", function()
    local n = 0
    for _, line in ipairs(readme_lines()) do
      for pkgs in (line .. " && "):gmatch("apt%-get install %-y (.-) && ") do
        for p in pkgs:gmatch("%S+") do
          n = n + 1
          local out, ok = run("dpkg-query -W -f='${Status}' " .. q(p))
          assert.is_true(ok and out:find("install ok installed", 1, true) ~= nil, p .. ": " .. out)
        end
      end
    end
    assert.is_true(n >= 10)
  end)

  it("pass luarocks lint", function()
    for _, f in ipairs({ "lakebase-0.1.0-1.rockspec", "lakebase-scm-1.rockspec" }) do
      local out, ok = run("cd " .. q(root) .. " && luarocks lint " .. f)
      assert.is_true(ok, out)
    end
  end)
end)

describe("make rock, then the README's install lines", function()
  local tmp, rock, pg_env

  setup(function()
    tmp = run("mktemp -d /tmp/lakebase-rock.XXXXXX"):gsub("\n$", "")
    -- The README's `make rock`, with the build folder and the rock in the temporary folder.
    local out, ok = run("cd " .. q(root) .. " && make --no-print-directory rock BUILD=" .. q(tmp .. "/build")
      .. " ROCK_DIR=" .. q(tmp))
    assert(ok, out)
    rock = tmp .. "/lakebase-0.1.0-1.src.rock"
    -- Settings for the installed copies (the fixtures' admin, a native password): a file, so that
    -- the password is on no command line.
    local e = h.env()
    local f = assert(io.open(tmp .. "/pg.env", "w"))
    f:write(("export PGHOST=%s PGPORT=%s PGDATABASE=%s PGUSER=%s PGPASSWORD=%s PGSSLMODE=require PGSSLROOTCERT=%s\n")
      :format(q(e.PGHOST), q(e.PGPORT), q(e.PGDATABASE), q(e.ADMIN_USER), q(e.ADMIN_PASSWORD), q(e.SSLROOTCERT)))
    f:close()
    pg_env = tmp .. "/pg.env"
  end)

  teardown(function()
    if tmp then os.execute("rm -rf " .. q(tmp)) end
  end)

  it("packs the checked-in rockspec and the tracked files, nothing else", function()
    assert.is_true(exists(rock))
    local list = run("unzip -Z1 " .. q(rock))
    assert.equal("lakebase-0.1.0-1.rockspec\nlakebase-0.1.0.tar.gz\n", (list:gsub("\n+$", "\n")))
    local packed = run("unzip -p " .. q(rock) .. " lakebase-0.1.0-1.rockspec")
    assert.equal(read(root .. "/lakebase-0.1.0-1.rockspec"), packed)
    local files = run("unzip -p " .. q(rock) .. " lakebase-0.1.0.tar.gz | tar -tz | grep -v '/$' | sort")
    local tracked = run("cd " .. q(root) .. " && git ls-files | sed 's|^|lakebase-0.1.0/|' | sort")
    assert.equal(tracked, files)
  end)

  -- Loads lakebase in `target` with only the tree on its paths and runs a query; returns the output.
  local function query_from_tree(target, tree)
    local v = LUA_VERSION[target]
    local code = [[local l = require("lakebase"); local db = assert(l.new());
      local rows = assert(db:query("select 1 + 1 as n")); db:close();
      io.write(l._VERSION, " ", tostring(rows[1].n), " ", jit and "jit" or _VERSION)]]
    return run("cd / && . " .. q(pg_env) .. " && LUA_PATH=" .. q(tree .. "/share/lua/" .. v .. "/?.lua;"
      .. tree .. "/share/lua/" .. v .. "/?/init.lua") .. " LUA_CPATH=" .. q(tree .. "/lib/lua/" .. v .. "/?.so")
      .. " " .. target .. " -e " .. q(code))
  end

  for _, target in ipairs(INSTALLS[interp] or {}) do
    it("installs into a fresh tree for " .. target .. "; the module and the command work from it", function()
      local v = LUA_VERSION[target]
      local home, tree = tmp .. "/home-" .. target, tmp .. "/tree-" .. target
      assert(os.execute("mkdir -p " .. q(home)))
      local cmds = install_commands(target)
      assert.is_true(#cmds >= 1, "README: no install line for " .. target)
      for _, c in ipairs(cmds) do
        -- As written, with a private HOME (LuaRocks' user config) and the tree given to installs.
        if c:match("^luarocks .* install ") then c = c:gsub("^luarocks ", "luarocks --tree " .. q(tree) .. " ") end
        local out, ok = run("cd " .. q(tmp) .. " && export HOME=" .. q(home) .. " " .. LUAROCKS_PATH .. "&& " .. c)
        assert.is_true(ok, c .. "\n" .. out)
      end
      for _, f in ipairs({ "/lib/lua/" .. v .. "/lakebase/core.so", "/share/lua/" .. v .. "/lakebase/init.lua",
        "/share/lua/" .. v .. "/lakebase/cli.lua", "/bin/lakebase" }) do
        assert.is_true(exists(tree .. f), f)
      end

      local out = query_from_tree(target, tree)
      local want = target == "luajit" and "jit" or "Lua " .. v
      assert.equal("0.1.0 2 " .. want, out)

      -- The launcher runs the interpreter it was installed for, and finds the tree's copy.
      local launcher = tree .. "/bin/lakebase"
      local exe = assert(read(launcher):match("exec '([^']+)' "), "launcher: no exec line")
      -- (by what it is: under make check-memory LuaRocks may pick a sanitizer wrapper named `lua`)
      assert.equal(want, run(q(exe) .. [[ -e 'io.write(jit and "jit" or _VERSION)']]), exe)
      local clean = "env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 HOME=" .. q(home) .. " "
      local vout, vok = run("cd / && " .. clean .. q(launcher) .. " --version")
      assert.is_true(vok, vout)
      assert.equal("lakebase 0.1.0\n", vout)
      local pout, pok = run("cd / && " .. clean .. q(launcher) .. " --paths")
      assert.is_true(pok, pout)
      assert.matches('lua_package_path  "' .. (tree .. "/share/lua/" .. v):gsub("%p", "%%%0") .. '/%?%.lua;', pout)
      assert.matches('lua_package_cpath "' .. (tree .. "/lib/lua/" .. v):gsub("%p", "%%%0") .. '/%?%.so;;";', pout)
      local cout, cok = run("cd / && . " .. q(pg_env) .. " && " .. clean .. q(launcher) .. " check")
      assert.is_true(cok, cout)
    end)
  end

  if interp == "luajit" then
    it("OpenResty and opm-style layouts, and Debian's nginx-lua finding the install (README lines)", function()
      local lines = openresty_lines()
      local function line(pat)
        for _, l in ipairs(lines) do if l:find(pat, 1, true) then return l end end
        error("README: no OpenResty line with " .. pat)
      end
      -- OpenResty's LuaJIT prefix, as /usr/local/openresty/luajit lays it out (bin/, include/luajit-2.1).
      local lj, tree = tmp .. "/openresty/luajit", tmp .. "/tree-openresty"
      assert(os.execute("mkdir -p " .. q(lj .. "/bin") .. " " .. q(lj .. "/include") .. " && ln -s "
        .. "$(command -v luajit) " .. q(lj .. "/bin/luajit") .. " && ln -s /usr/include/luajit-2.1 "
        .. q(lj .. "/include/luajit-2.1")))
      local c = line("--lua-dir="):gsub("/usr/local/openresty/luajit", lj)
        :gsub("^luarocks ", "luarocks --tree " .. q(tree) .. " ")
      local out, ok = run("cd " .. q(tmp) .. " && " .. c)
      assert.is_true(ok, c .. "\n" .. out)
      assert.truthy(out:find("-I" .. lj .. "/include/luajit-2.1 ", 1, true), out)
      local launcher = tree .. "/bin/lakebase"
      assert.equal(lj .. "/bin/luajit", read(launcher):match("exec '([^']+)' "))

      -- `lakebase --paths` into an nginx include file: nginx loads the tree's copy.
      local ngx_dir = tmp .. "/nginx-paths"
      assert(os.execute("mkdir -p " .. q(ngx_dir .. "/conf")))
      c = line("--paths"):gsub("^lakebase ", q(launcher) .. " "):gsub("/etc/nginx/", ngx_dir .. "/conf/")
      out, ok = run("cd / && env -u LUA_PATH -u LUA_CPATH " .. c)
      assert.is_true(ok, out)
      local body = nginx_get(ngx_dir, "include lakebase-paths.conf;",
        [[local l = require("lakebase"); ngx.say(l._VERSION, " ", package.searchpath("lakebase.core", package.cpath))]])
      assert.equal("0.1.0 " .. tree .. "/lib/lua/5.1/lakebase/core.so\n", body)

      -- opm-style: the two folders copied into site/lualib, which OpenResty searches by default
      -- (here given as a directive: Debian's nginx is not OpenResty); `;;` keeps LuaJIT's defaults,
      -- which hold /usr/local, where a root install for LuaJIT goes.
      local lualib = tmp .. "/openresty/site/lualib"
      assert(os.execute("mkdir -p " .. q(lualib)))
      c = line("cp -r "):gsub("/usr/local/openresty/site/lualib", lualib):gsub("/usr/local/", tree .. "/")
      out, ok = run(c)
      assert.is_true(ok, c .. "\n" .. out)
      local dirs = ('lua_package_path "%s/?.lua;%s/?/init.lua;;"; lua_package_cpath "%s/?.so;;";')
        :format(lualib, lualib, lualib)
      body = nginx_get(tmp .. "/nginx-opm", dirs, [[local l = require("lakebase");
        ngx.say(l._VERSION, " ", package.searchpath("lakebase.core", package.cpath), " ",
          package.searchpath("lakebase", package.path));
        ngx.say(package.path:find("/usr/local/share/lua/5.1/?/init.lua", 1, true) ~= nil,
          " ", package.cpath:find("/usr/local/lib/lua/5.1/?.so", 1, true) ~= nil)]])
      assert.equal("0.1.0 " .. lualib .. "/lakebase/core.so " .. lualib .. "/lakebase/init.lua\ntrue true\n", body)
    end)
  end

  if interp == "lua5.4" then
    it("builds against libpq, libcurl and cJSON in another prefix, given as LuaRocks variables", function()
      local prefix, tree = tmp .. "/prefix", tmp .. "/tree-prefix"
      local arch = run("cc -print-multiarch"):gsub("\n$", "")
      local pq_inc = run("pg_config --includedir"):gsub("\n$", "")
      local copy = table.concat({
        "mkdir -p " .. q(prefix .. "/include") .. " " .. q(prefix .. "/lib"),
        "cp " .. q(pq_inc) .. "/libpq-fe.h " .. q(pq_inc) .. "/postgres_ext.h " .. q(pq_inc) .. "/pg_config_ext.h "
          .. q(prefix .. "/include"),
        "cp -r /usr/include/" .. arch .. "/curl /usr/include/cjson " .. q(prefix .. "/include"),
        "cp -P /usr/lib/" .. arch .. "/libpq.so* /usr/lib/" .. arch .. "/libcurl.so* /usr/lib/" .. arch
          .. "/libcjson.so* " .. q(prefix .. "/lib"),
      }, " && ")
      local out, ok = run(copy)
      assert.is_true(ok, out)
      local vars = {}
      for _, d in ipairs({ "PQ", "CURL", "CJSON" }) do
        vars[#vars + 1] = d .. "_INCDIR=" .. q(prefix .. "/include") .. " " .. d .. "_LIBDIR=" .. q(prefix .. "/lib")
      end
      -- `luarocks make` in the unpacked source of the rock (a checkout's files, nothing built).
      local src = tmp .. "/build/rock/lakebase-0.1.0"
      out, ok = run("cd " .. q(src) .. " && " .. LUAROCKS_PATH .. "luarocks --lua-version=5.4 --tree " .. q(tree)
        .. " make lakebase-scm-1.rockspec " .. table.concat(vars, " "))
      assert.is_true(ok, out)
      -- The compiler and the linker were given the prefix, and libpq-fe.h was found only there
      -- (Debian's own copy sits in /usr/include/postgresql, which nothing named).
      assert.truthy(out:find("-I" .. prefix .. "/include ", 1, true), out)
      assert.truthy(out:find("-Wl,-rpath," .. prefix .. "/lib ", 1, true), out)
      assert.is_nil(out:find("/usr/include/postgresql", 1, true))
      local so = tree .. "/lib/lua/5.4/lakebase/core.so"
      local ldd = run("ldd " .. q(so))
      assert.matches("libpq%.so%.5 => " .. prefix:gsub("%p", "%%%0") .. "/lib/libpq%.so%.5", ldd)
      assert.matches("libcjson%.so%.1 => " .. prefix:gsub("%p", "%%%0") .. "/lib/libcjson%.so%.1", ldd)
      assert.equal("scm 2 Lua 5.4", (query_from_tree("lua5.4", tree):gsub("^%S+", "scm")))
    end)

    it("stops with LuaRocks' message naming the variable when a library is not where it says", function()
      local out, ok = run("cd " .. q(tmp .. "/build/rock/lakebase-0.1.0") .. " && " .. LUAROCKS_PATH
        .. "luarocks --lua-version=5.4 --tree "
        .. q(tmp .. "/tree-missing") .. " make lakebase-scm-1.rockspec PQ_LIBDIR=/nonexistent")
      assert.is_false(ok)
      assert.matches("PQ", out)
      assert.is_false(exists(tmp .. "/tree-missing/lib/lua/5.4/lakebase/core.so"))
    end)
  end
end)
