-- `luarocks make` from a checkout installs a loadable module and the CLI into a tree.
local interp = os.getenv("LAKEBASE_TEST_INTERP") or "lua5.4"

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("*a")
  local ok, _, code = p:close()
  if type(ok) == "number" then code = ok; ok = (code == 0) end -- Lua 5.1 close() returns the status
  return ok == true or code == 0, out
end

local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

describe("luarocks make", function()
  local tmp, tree, lua_version, extra

  setup(function()
    local p = io.popen("mktemp -d /tmp/lakebase-rock.XXXXXX")
    tmp = p:read("*l")
    p:close()
    tree = tmp .. "/tree"
    if interp == "luajit" then
      lua_version, extra = "5.1", " LUA_INCDIR=/usr/include/luajit-2.1"
    else
      lua_version, extra = "5.4", ""
    end
    -- Build from a copy of the tracked files, so the checkout is left untouched.
    assert(run("git ls-files -z | xargs -0 cp --parents -t " .. sh_quote(tmp)
      .. " 2>/dev/null; mkdir -p " .. sh_quote(tmp)))
  end)

  teardown(function()
    if tmp then os.execute("rm -rf " .. sh_quote(tmp)) end
  end)

  it("installs the module and the CLI, and the installed copy loads", function()
    local ok, out = run("cd " .. sh_quote(tmp) .. " && luarocks --lua-version=" .. lua_version ..
      " --tree " .. sh_quote(tree) .. " make lakebase-0.1.0-1.rockspec" .. extra)
    assert.is_true(ok, out)

    local paths = string.format("LUA_PATH=%s LUA_CPATH=%s",
      sh_quote(tree .. "/share/lua/" .. lua_version .. "/?.lua;"
        .. tree .. "/share/lua/" .. lua_version .. "/?/init.lua"),
      sh_quote(tree .. "/lib/lua/" .. lua_version .. "/?.so"))
    local code = [[local l = require("lakebase"); local c = require("lakebase.core");
      assert(package.searchpath("lakebase.core", package.cpath):find("/tree/", 1, true));
      io.write(l._VERSION, " ", tostring(l.null == c.null))]]
    local ok2, out2 = run("cd / && " .. paths .. " " .. interp .. " -e " .. sh_quote(code))
    assert.is_true(ok2, out2)
    assert.matches("^%d+%.%d+%.%d+ true$", out2)

    local ok3, out3 = run(sh_quote(tree .. "/bin/lakebase") .. " --version")
    assert.is_true(ok3, out3)
    assert.matches("lakebase %d+%.%d+%.%d+", out3)
  end)
end)
