-- The layers of docs/ARCHITECTURE.md, checked on the tree: the map names every source file, the C
-- core never includes Lua, and no module below the public API loads it (lakebase.ngx used to
-- require "lakebase", which required it back).
local h = require("spec.support.helpers")

local root = h.root()

local function files(dir, pattern)
  local out = {}
  local p = assert(io.popen("ls " .. h.shell_quote(root .. "/" .. dir)))
  for name in p:lines() do
    if name:match(pattern) then out[#out + 1] = name end
  end
  p:close()
  assert.is_true(#out > 0, dir .. " has no " .. pattern)
  return out
end

local function read(path)
  local f = assert(io.open(root .. "/" .. path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

describe("layers", function()
  it("docs/ARCHITECTURE.md names every file of src/, src/bind/ and lua/lakebase/", function()
    local map, missing = read("docs/ARCHITECTURE.md"), {}
    for _, d in ipairs({ { "src", "%.[ch]$" }, { "src/bind", "%.[ch]$" }, { "lua/lakebase", "%.lua$" } }) do
      for _, name in ipairs(files(d[1], d[2])) do
        if not map:find("`[^`]*" .. name:gsub("%p", "%%%0") .. "`") then missing[#missing + 1] = d[1] .. "/" .. name end
      end
    end
    assert.same({}, missing)
  end)

  it("the C core (src/*.c, src/*.h) includes no Lua header; only src/bind/ does", function()
    local offenders = {}
    for _, name in ipairs(files("src", "%.[ch]$")) do
      local text = read("src/" .. name)
      if text:find('#include%s*[<"]lua') or text:find('#include%s*[<"]lauxlib') then
        offenders[#offenders + 1] = name
      end
    end
    assert.same({}, offenders)
    assert.truthy(read("src/bind/compat.h"):find('#include%s*[<"]lua%.h[>"]'), "the check can see an include")
  end)

  it("no module of lua/lakebase/ but init.lua loads the public API module at load time", function()
    local offenders = {}
    for _, name in ipairs(files("lua/lakebase", "%.lua$")) do
      if name ~= "init.lua" then
        for line in read("lua/lakebase/" .. name):gmatch("[^\n]*") do
          -- a top-level (unindented) require("lakebase") runs when the module loads
          if line:match('^local [%w_]+%s*=%s*require%(?%s*["\']lakebase["\']%s*%)?') then
            offenders[#offenders + 1] = name
          end
        end
      end
    end
    assert.same({}, offenders)
  end)
end)
