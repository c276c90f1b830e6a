/* luaopen_lakebase_core: the module table of the C core for Lua. */
#include "bind.h"
#include "bind_json.h"
#include "../lb_time.h"

int luaopen_lakebase_core(lua_State *L);

/* core.sha256_hex(s): the SHA-256 of a string as 64 lowercase hex digits (migration checksums;
 * drizzle-orm stores the same digest of each file). */
static int core_sha256_hex(lua_State *L)
{
    static const char digits[] = "0123456789abcdef";
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char digest[32];
    char hex[64];
    int i;

    lb_sha256(s, len, digest);
    for (i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    lua_pushlstring(L, hex, sizeof hex);
    return 1;
}

/* core.sleep(seconds): blocks the calling thread (the migration runner's backoff while it waits for
 * another runner's lock; plain Lua has no sub-second sleep). */
static int core_sleep(lua_State *L)
{
    lb_time_sleep(luaL_checknumber(L, 1));
    return 0;
}

/* core.monotonic(): seconds on a monotonic clock (lakebase check times the credential call). */
static int core_monotonic(lua_State *L)
{
    lua_pushnumber(L, lb_time_mono());
    return 1;
}

int luaopen_lakebase_core(lua_State *L)
{
    lua_newtable(L);

    lua_pushliteral(L, LAKEBASE_VERSION);
    lua_setfield(L, -2, "_VERSION");

    /* NULL light userdata: the same value as cjson.null and ngx.null. */
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");

    lua_pushcfunction(L, core_sha256_hex);
    lua_setfield(L, -2, "sha256_hex");

    lua_pushcfunction(L, core_sleep);
    lua_setfield(L, -2, "sleep");

    lua_pushcfunction(L, core_monotonic);
    lua_setfield(L, -2, "monotonic");

    lb_bind_error(L);
    lb_bind_config(L);
    lb_bind_credential(L);
    lb_bind_pool(L);
    lb_bind_pin(L);
    lb_bind_metrics(L);
    lb_bind_json(L);
    return 1;
}
