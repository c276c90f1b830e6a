/* libFuzzer: result decoding into Lua values (src/bind/bind_result.c: lb_push_result), which
 * holds the JSON decoder for json/jsonb columns and reads array literals, bytea, numbers.
 * The first input byte picks the column type; the rest is the text value of one row. A real
 * PGresult is built with libpq's own PQmakeEmptyPGresult/PQsetResultAttrs/PQsetvalue.
 * Invariants: no crash/leak/UB (deep nesting included); exactly one value pushed, a table. */
#include "../src/bind/bind_result.h"

#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const Oid types[] = {
    114,  /* json */      3802, /* jsonb */    199,  /* json[] */    3807, /* jsonb[] */
    1007, /* int4[] */    1016, /* int8[] */   1009, /* text[] */    1000, /* bool[] */
    1022, /* float8[] */  1001, /* bytea[] */  17,   /* bytea */     20,   /* int8 */
    701,  /* float8 */    1700, /* numeric */  16,   /* bool */      25,   /* text */
    21,   /* int2 */      700,  /* float4 */   1231, /* numeric[] */ 2951, /* uuid[] */
};
#define NTYPES (sizeof types / sizeof types[0])

static lua_State *L;
static const PGresult *current;

static int push(lua_State *L1)
{
    return lb_push_result(L1, current);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    PGresAttDesc att;
    PGresult *res;
    int rc;

    if (size < 1)
        return 0;
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
    }
    res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    if (!res)
        return 0;
    memset(&att, 0, sizeof att);
    att.name = (char *)"v";
    att.typid = types[data[0] % NTYPES];
    att.typlen = -1;
    att.atttypmod = -1;
    att.format = 0;
    if (!PQsetResultAttrs(res, 1, &att) ||
        !PQsetvalue(res, 0, 0, (char *)data + 1, (int)(size - 1))) {
        PQclear(res);
        return 0;
    }
    current = res;
    lua_settop(L, 0);
    lua_pushcfunction(L, push);
    rc = lua_pcall(L, 0, 1, 0);
    if (rc == LUA_OK && lua_type(L, -1) != LUA_TTABLE)
        abort();
    lua_settop(L, 0);
    PQclear(res);
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
