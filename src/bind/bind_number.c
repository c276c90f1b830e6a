/* Lua numbers as text: see bind_number.h. */
#include <math.h>
#include <stdio.h>
#include "bind_number.h"

/* Shortest of %.15g/%.16g/%.17g that reads back to the same double; NaN and infinities in the
 * spelling PostgreSQL accepts. The decimal point is forced to '.' whatever the C locale says. */
void lb_format_double(double d, char *out, size_t size)
{
    int prec;
    char *c;
    if (isnan(d)) {
        snprintf(out, size, "NaN");
        return;
    }
    if (isinf(d)) {
        snprintf(out, size, d > 0 ? "Infinity" : "-Infinity");
        return;
    }
    for (prec = 15; prec <= 17; prec++) {
        snprintf(out, size, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            break;
    }
    for (c = out; *c; c++)
        if (*c == ',')
            *c = '.';
}

Oid lb_format_number(lua_State *L, int idx, char *out, size_t size)
{
#if LB_HAS_INT64
    if (lua_isinteger(L, idx)) {
        snprintf(out, size, "%lld", (long long)lua_tointeger(L, idx));
        return 20;
    }
    lb_format_double((double)lua_tonumber(L, idx), out, size);
    return 701;
#else
    /* LuaJIT: a double holding an integer exactly (and not -0) goes as int8. */
    double d = (double)lua_tonumber(L, idx);
    if (d == floor(d) && fabs(d) <= LB_TWO_53 && !(d == 0 && signbit(d))) {
        snprintf(out, size, "%lld", (long long)d);
        return 20;
    }
    lb_format_double(d, out, size);
    return 701;
#endif
}


void lb_number_text(lua_State *L, int idx, char *out, size_t size)
{
    lua_Number n = lua_tonumber(L, idx);
#if LB_HAS_INT64
    if (lua_isinteger(L, idx)) {
        snprintf(out, size, "%lld", (long long)lua_tointeger(L, idx));
        return;
    }
#endif
    if (n == n && n >= -9.2e18 && n <= 9.2e18 && n == (lua_Number)(long long)n)
        snprintf(out, size, "%lld", (long long)n);
    else
        lb_format_double((double)n, out, size);
}
