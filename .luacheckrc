-- luacheck options for `make lint` (luacheck lua bin spec) and spec/support/static_analysis.sh.
std = "max"              -- the code runs on Lua 5.4 and on LuaJIT (5.1 with extensions): allow both
max_line_length = 120
codes = true

-- busted's globals in the specs (luacheck also applies this to *_spec.lua by itself).
files["spec"] = { std = "+busted" }

-- Generated or third-party files that may sit in the tree.
exclude_files = {
  "spec/support/run/**",
  "spec/support/node/node_modules/**",
  "build*/**",
}
