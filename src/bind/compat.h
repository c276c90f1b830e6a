/* Lua 5.1 (PUC and LuaJIT 2.1, the OpenResty ABI) / 5.3 / 5.4 differences, in one place. */
#ifndef LB_BIND_COMPAT_H
#define LB_BIND_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM == 502 || LUA_VERSION_NUM > 504
#error "lakebase.core builds for Lua 5.1 (PUC or LuaJIT 2.1), 5.3 and 5.4; these Lua headers are another version"
#endif

#if LUA_VERSION_NUM < 502
#define lb_rawlen(L, i) lua_objlen((L), (i))
#define lb_setfuncs(L, l) luaL_register((L), NULL, (l))
/* LuaJIT numbers are doubles: an integer is a double with no fractional part. */
static inline int lb_isinteger(lua_State *L, int idx)
{
    lua_Number n;
    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
    n = lua_tonumber(L, idx);
    return n == (lua_Number)(long long)n && n >= -9223372036854775808.0 && n < 9223372036854775808.0;
}
#define LB_HAS_INT64 0
#else
#define lb_rawlen(L, i) lua_rawlen((L), (i))
#define lb_setfuncs(L, l) luaL_setfuncs((L), (l), 0)
#define lb_isinteger(L, i) lua_isinteger((L), (i))
#define LB_HAS_INT64 1
#endif

/* Whether the collector runs (the application may have stopped it). PUC Lua 5.1 cannot tell: it
 * answers "stopped", so the decoder never pauses the collector there (slower, never wrong). LuaJIT
 * 2.1 has the 5.2 option. */
#ifdef LUA_GCISRUNNING
#define lb_gc_isrunning(L) lua_gc((L), LUA_GCISRUNNING, 0)
#else
#define lb_gc_isrunning(L) 0
#endif

#endif
