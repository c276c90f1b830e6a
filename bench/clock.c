/* bench-only Lua module: a monotonic wall clock and the process's peak RSS, for Lua 5.4 and LuaJIT. */
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>

static int clock_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* VmHWM from /proc/self/status, in KiB. */
static int clock_peak_rss_kb(lua_State *L)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "VmHWM:", 6) == 0) {
                sscanf(line + 6, "%ld", &kb);
                break;
            }
        fclose(f);
    }
    lua_pushnumber(L, (lua_Number)kb);
    return 1;
}

int luaopen_benchclock(lua_State *L);
int luaopen_benchclock(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, clock_now);
    lua_setfield(L, -2, "now");
    lua_pushcfunction(L, clock_peak_rss_kb);
    lua_setfield(L, -2, "peak_rss_kb");
    return 1;
}
