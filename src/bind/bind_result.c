/* Lua values <-> PostgreSQL (provisional: text only; the types area replaces this file). */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "bind_result.h"

int lb_params_collect(lua_State *L, int first, int n, lb_params *p, lb_error *err)
{
    int i;
    memset(p, 0, sizeof *p);
    p->n = n;
    if (n == 0)
        return 0;
    p->types = calloc((size_t)n, sizeof *p->types);
    p->values = calloc((size_t)n, sizeof *p->values);
    p->lengths = calloc((size_t)n, sizeof *p->lengths);
    p->formats = calloc((size_t)n, sizeof *p->formats);
    p->storage = calloc((size_t)n, sizeof *p->storage);
    if (!p->types || !p->values || !p->lengths || !p->formats || !p->storage) {
        lb_params_free(p);
        lb_error_set(err, LB_ERR_QUERY, 0, "out of memory");
        return -1;
    }
    for (i = 0; i < n; i++) {
        int idx = first + i;
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
        case LUA_TLIGHTUSERDATA:
            break;
        case LUA_TBOOLEAN:
            p->values[i] = lua_toboolean(L, idx) ? "t" : "f";
            break;
        case LUA_TNUMBER:
        case LUA_TSTRING: {
            size_t len;
            const char *s = lua_tolstring(L, idx, &len); /* converts numbers in place: fine here */
            p->values[i] = s;
            p->lengths[i] = (int)len;
            break;
        }
        default:
            lb_error_set(err, LB_ERR_QUERY, 0, "parameter $%d: unsupported type %s", i + 1,
                         luaL_typename(L, idx));
            lb_params_free(p);
            return -1;
        }
    }
    return 0;
}

void lb_params_free(lb_params *p)
{
    int i;
    if (p->storage)
        for (i = 0; i < p->n; i++)
            free(p->storage[i]);
    free(p->storage);
    free(p->types);
    free(p->values);
    free(p->lengths);
    free(p->formats);
    memset(p, 0, sizeof *p);
}

int lb_push_result(lua_State *L, const PGresult *res)
{
    int nrows = PQntuples(res), ncols = PQnfields(res), r, c;
    const char *affected = PQcmdTuples((PGresult *)res);
    lua_createtable(L, nrows, 1);
    for (r = 0; r < nrows; r++) {
        lua_createtable(L, 0, ncols);
        for (c = 0; c < ncols; c++) {
            if (PQgetisnull(res, r, c))
                lua_pushlightuserdata(L, NULL);
            else
                lua_pushlstring(L, PQgetvalue(res, r, c), (size_t)PQgetlength(res, r, c));
            lua_setfield(L, -2, PQfname(res, c));
        }
        lua_rawseti(L, -2, r + 1);
    }
    if (affected && *affected) {
        lua_pushinteger(L, (lua_Integer)strtoll(affected, NULL, 10));
        lua_setfield(L, -2, "affected_rows");
    }
    return 1;
}
