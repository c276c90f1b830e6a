/* luaopen_lakebase_core: the module table of the C core for Lua. */
#include "bind.h"

int luaopen_lakebase_core(lua_State *L);

int luaopen_lakebase_core(lua_State *L)
{
    lua_newtable(L);

    lua_pushliteral(L, LAKEBASE_VERSION);
    lua_setfield(L, -2, "_VERSION");

    /* NULL light userdata: the same value as cjson.null and ngx.null. */
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");

    lb_bind_error(L);
    lb_bind_config(L);
    lb_bind_credential(L);
    lb_bind_pool(L);
    lb_bind_pin(L);
    return 1;
}
