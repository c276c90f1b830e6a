/* Numbers between Lua and text: the one place that decides how a Lua number is written for
 * PostgreSQL and JSON, and how decimal text becomes a Lua number. Parsers are inline: the row
 * decoder calls them once per cell. */
#ifndef LB_BIND_NUMBER_H
#define LB_BIND_NUMBER_H

#include <string.h>
#include <stdlib.h>
#include "bind.h"

/* Largest integer a double holds exactly (LuaJIT's numbers). */
#define LB_TWO_53 9007199254740992.0

/* Shortest text that reads back to d ("NaN", "Infinity" as PostgreSQL spells them); '.' always. */
void lb_format_double(double d, char *out, size_t size);
/* The number at idx as a person writes it: integral values without a fraction, others in their
 * shortest exact form (object keys, messages). */
void lb_number_text(lua_State *L, int idx, char *out, size_t size);
/* Text of the number at idx; returns the type OID to send it as (int8 20 or float8 701). */
Oid lb_format_number(lua_State *L, int idx, char *out, size_t size);

/* Exact int64 from decimal text (optional sign, digits only). 0, or -1 if not one. */
static inline int lb_parse_int64(const char *s, size_t len, long long *out)
{
    unsigned long long v = 0, limit;
    size_t i = 0;
    int neg = 0;
    if (len && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == len)
        return -1;
    limit = neg ? (unsigned long long)9223372036854775807LL + 1 : 9223372036854775807ULL;
    for (; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9 || v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (long long)(0 - v) : (long long)v;
    return 0;
}

/* A double from text of len bytes that is not necessarily NUL-terminated. */
static inline int lb_parse_double(const char *s, size_t len, double *out)
{
    char tmp[64];
    char *end;
    if (len == 0 || len >= sizeof tmp)
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    *out = strtod(tmp, &end);
    return *end == '\0' ? 0 : -1;
}

static inline void lb_push_int64(lua_State *L, long long v, const char *s, size_t len)
{
#if LB_HAS_INT64
    (void)s;
    (void)len;
    lua_pushinteger(L, (lua_Integer)v);
#else
    /* LuaJIT: a double holds integers exactly up to 2^53; beyond that the exact text. */
    if (v >= -9007199254740992LL && v <= 9007199254740992LL)
        lua_pushnumber(L, (lua_Number)v);
    else
        lua_pushlstring(L, s, len);
#endif
}


#endif
