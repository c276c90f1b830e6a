/* Lua binding of the credential cache:
 *   core.token(opts)                       -> token, expires_at | nil, err
 *   core.credential_stats(opts)            -> { refreshes, failures, expires_at } | nil, err
 *   core.credential_invalidate(opts, tok)  -> true | nil, err
 *   core.discover(opts)                    -> { host, hosts = {...}, user } | nil, err
 *       what the workspace says of the endpoint (or instance) and of the identity: the host the
 *       pool connects to when PGHOST is unset, every host the endpoint lists, the Postgres user
 *   core.databricks_token(cli, profile, host, timeout) -> token, expires_at | nil, err
 *       the token of `databricks auth login` (lb_cli_token: the CLI's answer read once, in C, for
 *       databricks-cli auth and for `lakebase refresh-token` alike)
 * opts is the options table of lakebase.new (Lua-only options are ignored). All three share the
 * process-wide cache entry of those settings with every pool and every Lua state. */
#include "bind.h"
#include "../lb_credential.h"

#include <stdlib.h>
#include <string.h>

static const char *const lua_only_options[] = { "thread_pool", "blocking", "lease", "log", NULL };

/* The cache entry for the options at index 1, or NULL with err set. */
static lb_credentials *check_credentials(lua_State *L, lb_error *err)
{
    lb_settings *s;
    lb_credentials *c;

    if (!lua_isnoneornil(L, 1) && lua_type(L, 1) != LUA_TTABLE)
        luaL_error(L, "bad argument #1 (table expected, got %s)", luaL_typename(L, 1));
    if (!(s = lb_bind_check_settings(L, 1, lua_only_options, err)))
        return NULL;
    c = lb_credentials_acquire(s, err);
    lb_settings_free(s);
    return c;
}

/* token, expires_at (epoch seconds; nil for a native password, which does not expire). */
static int l_token(lua_State *L)
{
    lb_error err = LB_ERROR_INIT;
    lb_credentials *c = check_credentials(L, &err);
    char *token = NULL;
    double expires_at = 0;
    int rc;

    if (!c)
        return lb_bind_fail(L, &err);
    /* The Lua state is not touched while this blocks (up to connect_timeout). */
    rc = lb_credentials_get(c, &token, &expires_at, &err);
    lb_credentials_release(c);
    if (rc != 0)
        return lb_bind_fail(L, &err);
    lua_pushstring(L, token);
    explicit_bzero(token, strlen(token));
    free(token);
    if (expires_at > 0)
        lua_pushnumber(L, expires_at);
    else
        lua_pushnil(L);
    return 2;
}

static int l_stats(lua_State *L)
{
    lb_error err = LB_ERROR_INIT;
    lb_credentials *c = check_credentials(L, &err);
    lb_credential_stats st;

    if (!c)
        return lb_bind_fail(L, &err);
    lb_credentials_stats(c, &st);
    lb_credentials_release(c);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)st.refreshes);
    lua_setfield(L, -2, "refreshes");
    lua_pushinteger(L, (lua_Integer)st.failures);
    lua_setfield(L, -2, "failures");
    lua_pushnumber(L, st.expires_at);
    lua_setfield(L, -2, "expires_at");
    return 1;
}

static int l_invalidate(lua_State *L)
{
    lb_error err = LB_ERROR_INIT;
    const char *token = luaL_checkstring(L, 2);
    lb_credentials *c = check_credentials(L, &err);

    if (!c)
        return lb_bind_fail(L, &err);
    lb_credentials_invalidate(c, token);
    lb_credentials_release(c);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_discover(lua_State *L)
{
    lb_error err = LB_ERROR_INIT;
    lb_credentials *c = check_credentials(L, &err);
    lb_discovery d;
    int i, rc;

    if (!c)
        return lb_bind_fail(L, &err);
    rc = lb_credentials_discover(c, &d, &err);
    lb_credentials_release(c);
    if (rc != 0)
        return lb_bind_fail(L, &err);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, d.host);
    lua_setfield(L, -2, "host");
    if (d.user) {
        lua_pushstring(L, d.user);
        lua_setfield(L, -2, "user");
    }
    lua_createtable(L, LB_MAX_HOSTS, 0);
    for (i = 0; i < LB_MAX_HOSTS && d.hosts[i]; i++) {
        lua_pushstring(L, d.hosts[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "hosts");
    lb_discovery_clear(&d);
    return 1;
}

static int l_databricks_token(lua_State *L)
{
    const char *cli = luaL_optstring(L, 1, NULL);
    const char *profile = luaL_optstring(L, 2, NULL);
    const char *host = luaL_optstring(L, 3, NULL);
    double timeout = (double)luaL_optnumber(L, 4, 60);
    lb_error err = LB_ERROR_INIT;
    double expires_at = 0;
    char *token = NULL;

    luaL_argcheck(L, timeout > 0, 4, "seconds > 0 expected");
    if (lb_cli_token(cli, profile && *profile ? profile : NULL, host && *host ? host : NULL,
                     timeout, &token, &expires_at, &err) != 0)
        return lb_bind_fail(L, &err);
    lua_pushstring(L, token);
    explicit_bzero(token, strlen(token));
    free(token);
    lua_pushnumber(L, (lua_Number)expires_at);
    return 2;
}

void lb_bind_credential(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "credential_invalidate", l_invalidate },
        { "credential_stats", l_stats },
        { "databricks_token", l_databricks_token },
        { "discover", l_discover },
        { "token", l_token },
        { NULL, NULL },
    };
    lb_setfuncs(L, funcs);
}
