rockspec_format = "3.0"
package = "lakebase"
version = "scm-1"
-- Development builds from a checkout: `luarocks --lua-version=5.4 make lakebase-scm-1.rockspec`
-- (LuaRocks builds the current folder; the URL is not fetched). The build table is the released
-- rockspec's (spec/rockspec_spec.lua checks that the two agree).
source = {
  url = "git+file://./lakebase",
}
description = {
  summary = "Databricks Lakebase Postgres for Lua and OpenResty: credentials, pool, query builder, migrations",
  detailed = [[
A C core (settings, the Lakebase credential over libcurl, a process-wide libpq pool, result
decoding) with a thin Lua binding, and Lua modules on top: query builder, migrations shared with
drizzle-kit, an OpenResty bridge and the `lakebase` command line.]],
  license = "MIT",
}
-- PUC Lua 5.1, 5.3 and 5.4 and LuaJIT 2.1 (OpenResty), each tested (README "Install"). Not 5.2 or
-- 5.5: LuaRocks refuses them here, and src/bind/compat.h stops a build against their headers.
dependencies = {
  "lua >= 5.1, < 5.5, ~= 5.2",
}
-- Found in LuaRocks' external_deps_dirs, or where PQ_DIR / PQ_INCDIR / PQ_LIBDIR (and the CURL_
-- and CJSON_ ones) point. Only cJSON's header is checked by path: Debian keeps libpq-fe.h and
-- curl/curl.h in subfolders (postgresql/, x86_64-linux-gnu/) that LuaRocks does not search.
external_dependencies = {
  PQ = { library = "pq" },
  CURL = { library = "curl" },
  CJSON = { header = "cjson/cJSON.h", library = "cjson" },
}
build = {
  type = "builtin",
  modules = {
    -- The C core: settings, credentials over libcurl, the libpq pool, result decoding.
    ["lakebase.core"] = {
      sources = {
        "src/bind/bind_config.c",
        "src/bind/bind_credential.c",
        "src/bind/bind_error.c",
        "src/bind/bind_json.c",
        "src/bind/bind_metrics.c",
        "src/bind/bind_number.c",
        "src/bind/bind_params.c",
        "src/bind/bind_pin.c",
        "src/bind/bind_pool.c",
        "src/bind/bind_rows.c",
        "src/bind/core.c",
        "src/lb_buf.c",
        "src/lb_bytea.c",
        "src/lb_cli_token.c",
        "src/lb_config.c",
        "src/lb_conn.c",
        "src/lb_credential.c",
        "src/lb_error.c",
        "src/lb_exec.c",
        "src/lb_http.c",
        "src/lb_log.c",
        "src/lb_metrics.c",
        "src/lb_observe.c",
        "src/lb_pgarray.c",
        "src/lb_pin.c",
        "src/lb_pool.c",
        "src/lb_profile.c",
        "src/lb_sha256.c",
        "src/lb_time.c",
      },
      defines = { "_GNU_SOURCE" },
      -- Debian and Ubuntu keep libpq-fe.h in include/postgresql, other systems in include.
      incdirs = { "src", "$(PQ_INCDIR)", "$(PQ_INCDIR)/postgresql", "$(CURL_INCDIR)", "$(CJSON_INCDIR)" },
      libdirs = { "$(PQ_LIBDIR)", "$(CURL_LIBDIR)", "$(CJSON_LIBDIR)" },
      libraries = { "pq", "curl", "cjson" },
    },
    ["lakebase.builder"] = "lua/lakebase/builder.lua",
    ["lakebase.cli"] = "lua/lakebase/cli.lua",
    ["lakebase.cond"] = "lua/lakebase/cond.lua",
    ["lakebase.db"] = "lua/lakebase/db.lua",
    ["lakebase.ddl"] = "lua/lakebase/ddl.lua",
    ["lakebase.dotenv"] = "lua/lakebase/dotenv.lua",
    ["lakebase.drizzle"] = "lua/lakebase/drizzle.lua",
    ["lakebase.errors"] = "lua/lakebase/errors.lua",
    ["lakebase.generate"] = "lua/lakebase/generate.lua",
    ["lakebase"] = "lua/lakebase/init.lua",
    ["lakebase.json"] = "lua/lakebase/json.lua",
    ["lakebase.log"] = "lua/lakebase/log.lua",
    ["lakebase.metrics"] = "lua/lakebase/metrics.lua",
    ["lakebase.migrate"] = "lua/lakebase/migrate.lua",
    ["lakebase.ngx"] = "lua/lakebase/ngx.lua",
    ["lakebase.schema"] = "lua/lakebase/schema.lua",
    ["lakebase.sha256"] = "lua/lakebase/sha256.lua",
    ["lakebase.sql"] = "lua/lakebase/sql.lua",
    ["lakebase.value"] = "lua/lakebase/value.lua",
  },
  install = {
    bin = { lakebase = "bin/lakebase" },
  },
}
