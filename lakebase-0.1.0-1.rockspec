rockspec_format = "3.0"
package = "lakebase"
version = "0.1.0-1"
source = {
  url = "git+file:///dev/null", -- built from a checkout with `luarocks make`
}
description = {
  summary = "Databricks Lakebase Postgres for Lua and OpenResty: credentials, pool, query builder, migrations",
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",
}
external_dependencies = {
  PQ = { library = "pq" },
  CURL = { library = "curl" },
  CJSON = { header = "cjson/cJSON.h" },
}
build = {
  type = "make",
  build_target = "rock",
  install_target = "rock-install",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
  },
  install_variables = {
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
    INST_BINDIR = "$(BINDIR)",
  },
}
