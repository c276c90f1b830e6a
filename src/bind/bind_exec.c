/* core.exec(argv [, { timeout = seconds, max_output = bytes }]): runs a program without a shell
 * (lb_exec.c). Returns { started, not_found, code, timed_out, too_large, stdout, stderr (its first
 * line) }, or nil, err when it could not even try (out of memory, no pipes). */
#include "bind.h"
#include "../lb_exec.h"

#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 64

static double opt_number(lua_State *L, int idx, const char *field, double dflt)
{
    double v = dflt;
    if (lua_type(L, idx) == LUA_TTABLE) {
        lua_getfield(L, idx, field);
        if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) > 0)
            v = (double)lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    return v;
}

static int core_exec(lua_State *L)
{
    const char *argv[MAX_ARGS + 1];
    lb_exec_result r;
    lb_error err = LB_ERROR_INIT;
    int i, n;
    double timeout, max_out;

    luaL_checktype(L, 1, LUA_TTABLE);
    n = (int)lb_rawlen(L, 1);
    luaL_argcheck(L, n >= 1 && n <= MAX_ARGS, 1, "1 to 64 arguments expected");
    for (i = 0; i < n; i++) {
        size_t len;
        lua_rawgeti(L, 1, i + 1);
        argv[i] = lua_tolstring(L, -1, &len); /* stays valid: the table holds it */
        luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING && strlen(argv[i]) == len, 1,
                      "strings without NUL bytes expected");
        lua_pop(L, 1);
    }
    argv[n] = NULL;
    timeout = opt_number(L, 2, "timeout", 30);
    max_out = opt_number(L, 2, "max_output", 1 << 20);
    if (lb_exec(argv, timeout, (size_t)max_out, &r, &err) != 0)
        return lb_bind_fail(L, &err);
    lua_createtable(L, 0, 7);
    lua_pushboolean(L, r.started);
    lua_setfield(L, -2, "started");
    lua_pushboolean(L, r.not_found);
    lua_setfield(L, -2, "not_found");
    lua_pushinteger(L, r.exit_code);
    lua_setfield(L, -2, "code");
    lua_pushboolean(L, r.timed_out);
    lua_setfield(L, -2, "timed_out");
    lua_pushboolean(L, r.too_large);
    lua_setfield(L, -2, "too_large");
    if (r.out) {
        lua_pushlstring(L, r.out, r.out_len);
        lua_setfield(L, -2, "stdout");
    }
    if (r.err_line) {
        lua_pushstring(L, r.err_line);
        lua_setfield(L, -2, "stderr");
    }
    lb_exec_result_free(&r);
    return 1;
}

void lb_bind_exec(lua_State *L)
{
    lua_pushcfunction(L, core_exec);
    lua_setfield(L, -2, "exec");
}
