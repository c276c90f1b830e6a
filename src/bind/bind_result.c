/*
 * Lua values <-> PostgreSQL.
 *
 * Parameters: Lua values become text (or, for bytea, binary) parameters with a type OID the
 * server can check; no metamethod is ever called and no Lua error is raised while collecting.
 *
 * Results: rows are decoded straight from the PGresult into preallocated tables. Column names are
 * pushed once per result and reused from stack slots; values are parsed in place (no per-row
 * malloc). Strings that need rewriting (bytea, escaped array elements) go through one scratch
 * buffer per result, a Lua userdata so a memory error cannot leak it.
 *
 * JSON choices (documented in the README by the lead):
 *   encoding: a table whose keys are exactly 1..n is an array; an empty table is an object {}
 *   (wrap it as lakebase.array({}) inside lakebase.json to get []); other keys must be strings or
 *   numbers (numbers become their text); lakebase.null -> null; NaN/Infinity, functions,
 *   userdata and cycles (nesting deeper than JSON_MAX_DEPTH) are errors.
 *   decoding: objects -> tables, arrays -> sequences, null -> lakebase.null, integers that fit
 *   int64 -> integers on Lua 5.4, other numbers -> floats (precision of a double).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bind_result.h"
#include "../lb_decode.h"

#define JSON_MAX_DEPTH 1000
#define TWO_53 9007199254740992.0

/* =============================================================================================
 * Numbers as text
 * =========================================================================================== */

/* Shortest of %.15g/%.16g/%.17g that reads back to the same double; NaN and infinities in the
 * spelling PostgreSQL accepts. The decimal point is forced to '.' whatever the C locale says. */
static void format_double(double d, char *out, size_t size)
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

/* Text of the number at idx; returns the type OID to send it as (int8 or float8). */
static Oid format_number(lua_State *L, int idx, char *out, size_t size)
{
#if LB_HAS_INT64
    if (lua_isinteger(L, idx)) {
        snprintf(out, size, "%lld", (long long)lua_tointeger(L, idx));
        return 20;
    }
    format_double((double)lua_tonumber(L, idx), out, size);
    return 701;
#else
    /* LuaJIT: a double holding an integer exactly (and not -0) goes as int8. */
    double d = (double)lua_tonumber(L, idx);
    if (d == floor(d) && fabs(d) <= TWO_53 && !(d == 0 && signbit(d))) {
        snprintf(out, size, "%lld", (long long)d);
        return 20;
    }
    format_double(d, out, size);
    return 701;
#endif
}

static int abs_index(lua_State *L, int idx)
{
    return idx > 0 || idx <= LUA_REGISTRYINDEX ? idx : lua_gettop(L) + idx + 1;
}

/* The wrapper kind of the table at idx ("json", "array", "bytea") or NULL; raw access only. */
static const char *wrapper_kind(lua_State *L, int idx)
{
    const char *kind = NULL;
    lua_pushliteral(L, "__lakebase");
    lua_rawget(L, idx);
    if (lua_type(L, -1) == LUA_TSTRING) {
        kind = lua_tostring(L, -1);
        if (strcmp(kind, "json") && strcmp(kind, "array") && strcmp(kind, "bytea"))
            kind = NULL;
        else /* a literal from a fixed set: return our own copy, the stack value is popped */
            kind = kind[0] == 'j' ? "json" : kind[0] == 'a' ? "array" : "bytea";
    }
    lua_pop(L, 1);
    return kind;
}

/* =============================================================================================
 * JSON encoding (lakebase.json)
 * =========================================================================================== */

typedef struct json_enc {
    lb_buf *b;
    char why[160]; /* reason on failure */
    int oom;
} json_enc;

static int json_fail(json_enc *e, const char *why)
{
    snprintf(e->why, sizeof e->why, "%s", why);
    return -1;
}

static int json_put(json_enc *e, const char *s, size_t len)
{
    if (lb_buf_append(e->b, s, len) < 0) {
        e->oom = 1;
        return json_fail(e, "out of memory");
    }
    return 0;
}

static int json_string(json_enc *e, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, start = 0;
    if (lb_buf_reserve(e->b, len + 2) < 0 || json_put(e, "\"", 1) < 0)
        return json_fail(e, "out of memory");
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t n = 2;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        if (json_put(e, s + start, i - start) < 0 || json_put(e, esc, n) < 0)
            return -1;
        start = i + 1;
    }
    if (json_put(e, s + start, len - start) < 0)
        return -1;
    return json_put(e, "\"", 1);
}

static int json_number(json_enc *e, lua_State *L, int idx)
{
    char num[40];
    double d = (double)lua_tonumber(L, idx);
#if LB_HAS_INT64
    if (lua_isinteger(L, idx)) {
        snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
        return json_put(e, num, strlen(num));
    }
#endif
    if (isnan(d) || isinf(d))
        return json_fail(e, "NaN and Infinity have no JSON form");
    format_double(d, num, sizeof num);
    return json_put(e, num, strlen(num));
}

static int json_value(json_enc *e, lua_State *L, int idx, int depth);
static size_t array_length(lua_State *L, int idx);

/* A key of an object: strings as they are, numbers as their text. The key stays untouched on
 * the stack (lua_tolstring on a number key would break lua_next). */
static int json_key(json_enc *e, lua_State *L, int idx)
{
    size_t len;
    const char *s;
    if (lua_type(L, idx) == LUA_TSTRING) {
        s = lua_tolstring(L, idx, &len);
        return json_string(e, s, len);
    }
    if (lua_type(L, idx) == LUA_TNUMBER) {
        char num[40];
#if LB_HAS_INT64
        if (lua_isinteger(L, idx))
            snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
        else
#endif
            format_double((double)lua_tonumber(L, idx), num, sizeof num);
        return json_string(e, num, strlen(num));
    }
    snprintf(e->why, sizeof e->why, "an object key must be a string or a number, not a %s",
             lua_typename(L, lua_type(L, idx)));
    return -1;
}

static int json_table(json_enc *e, lua_State *L, int idx, int depth)
{
    const char *kind = wrapper_kind(L, idx);
    int force_array = 0, is_array = 1, rc = 0;
    size_t count = 0;
    double max = 0;

    if (kind && strcmp(kind, "bytea") == 0)
        return json_fail(e, "lakebase.bytea cannot be a JSON value");
    if (kind) { /* json(...) or array(...) inside json: encode the wrapped value */
        lua_pushliteral(L, "value");
        lua_rawget(L, idx);
        if (strcmp(kind, "array") == 0 && lua_type(L, -1) == LUA_TTABLE) {
            force_array = 1;
            idx = lua_gettop(L);
        } else {
            rc = json_value(e, L, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
            return rc;
        }
    }

    if (force_array) { /* like a lakebase.array parameter: t.n or #t elements, nil -> null */
        count = array_length(L, idx);
        max = (double)count;
    } else { /* keys exactly 1..n make an array */
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            count++;
            if (is_array) {
                double k;
                if (lua_type(L, -1) != LUA_TNUMBER) {
                    is_array = 0;
                    continue;
                }
                k = (double)lua_tonumber(L, -1);
                if (k < 1 || k != floor(k))
                    is_array = 0;
                else if (k > max)
                    max = k;
            }
        }
    }
    if (force_array || (count > 0 && is_array && max == (double)count)) {
        size_t i;
        rc = json_put(e, "[", 1);
        for (i = 1; rc == 0 && i <= count; i++) {
            if (i > 1)
                rc = json_put(e, ",", 1);
            lua_rawgeti(L, idx, (int)i);
            if (rc == 0)
                rc = json_value(e, L, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        if (rc == 0)
            rc = json_put(e, "]", 1);
    } else {
        int first = 1;
        rc = json_put(e, "{", 1);
        lua_pushnil(L);
        while (rc == 0 && lua_next(L, idx)) {
            if (!first)
                rc = json_put(e, ",", 1);
            first = 0;
            if (rc == 0)
                rc = json_key(e, L, lua_gettop(L) - 1);
            if (rc == 0)
                rc = json_put(e, ":", 1);
            if (rc == 0)
                rc = json_value(e, L, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        if (rc == 0)
            rc = json_put(e, "}", 1);
    }
    /* on failure values may be left on the stack: the caller resets the top */
    if (force_array && rc == 0)
        lua_pop(L, 1);
    return rc;
}

static int json_value(json_enc *e, lua_State *L, int idx, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return json_fail(e, "nested too deeply (a table that contains itself?)");
    if (!lua_checkstack(L, 4))
        return json_fail(e, "nested too deeply for the Lua stack");
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return json_put(e, "null", 4);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL)
            return json_put(e, "null", 4);
        break;
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? json_put(e, "true", 4) : json_put(e, "false", 5);
    case LUA_TNUMBER:
        return json_number(e, L, idx);
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        return json_string(e, s, len);
    }
    case LUA_TTABLE:
        return json_table(e, L, idx, depth);
    default:
        break;
    }
    snprintf(e->why, sizeof e->why, "a %s has no JSON form", lua_typename(L, lua_type(L, idx)));
    return -1;
}

/* =============================================================================================
 * Array literals (lakebase.array)
 * =========================================================================================== */

/* Number of elements of an array wrapper's table: t.n when it is a non-negative integer (so
 * trailing nils count), else the border #t. */
static size_t array_length(lua_State *L, int idx)
{
    size_t n;
    lua_pushliteral(L, "n");
    lua_rawget(L, idx);
    if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) >= 0 &&
        lua_tonumber(L, -1) == floor(lua_tonumber(L, -1)) && lua_tonumber(L, -1) < 2147483647.0)
        n = (size_t)lua_tonumber(L, -1);
    else
        n = (size_t)lb_rawlen(L, idx);
    lua_pop(L, 1);
    return n;
}

static int array_literal(lua_State *L, int idx, lb_buf *b, char *why, size_t whysize)
{
    size_t i, n = array_length(L, idx);
    if (lb_buf_putc(b, '{') < 0)
        goto oom;
    for (i = 1; i <= n; i++) {
        int t, rc = 0;
        if (i > 1 && lb_buf_putc(b, ',') < 0)
            goto oom;
        lua_rawgeti(L, idx, (int)i);
        t = lua_type(L, -1);
        if (t == LUA_TNIL || (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL)) {
            rc = lb_buf_append(b, "NULL", 4);
        } else if (t == LUA_TBOOLEAN) {
            rc = lb_buf_putc(b, lua_toboolean(L, -1) ? 't' : 'f');
        } else if (t == LUA_TNUMBER) {
            char num[40];
            format_number(L, -1, num, sizeof num);
            rc = lb_buf_append(b, num, strlen(num));
        } else if (t == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            if (memchr(s, '\0', len)) {
                snprintf(why, whysize, "element [%zu] contains a NUL byte", i);
                lua_pop(L, 1);
                return -1;
            }
            rc = lb_pgarray_append_quoted(b, s, len);
        } else {
            snprintf(why, whysize, "element [%zu] is a %s (one-dimension arrays of booleans, "
                     "numbers, strings and lakebase.null only)", i, lua_typename(L, t));
            lua_pop(L, 1);
            return -1;
        }
        lua_pop(L, 1);
        if (rc < 0)
            goto oom;
    }
    if (lb_buf_putc(b, '}') == 0)
        return 0;
oom:
    snprintf(why, whysize, "out of memory");
    return -1;
}

/* =============================================================================================
 * Parameters
 * =========================================================================================== */

static int param_fail(lb_params *p, lb_error *err, int k, const char *what)
{
    lb_error_set(err, LB_ERR_QUERY, 0, "parameter $%d: %s", k, what);
    lb_params_free(p);
    return -1;
}

/* Converts wrapper `kind` (the table at idx) into parameter i. */
static int param_wrapper(lua_State *L, int idx, const char *kind, lb_params *p, int i,
                         lb_error *err)
{
    char why[200];
    lb_buf b;
    int vidx, rc;

    lua_pushliteral(L, "value");
    lua_rawget(L, idx);
    vidx = lua_gettop(L);
    if (kind[0] == 'b') { /* bytea: binary format, the string itself (NUL bytes allowed) */
        size_t len;
        const char *s;
        if (lua_type(L, vidx) != LUA_TSTRING) {
            lua_pop(L, 1);
            return param_fail(p, err, i + 1, "lakebase.bytea needs a string");
        }
        s = lua_tolstring(L, vidx, &len);
        lua_pop(L, 1); /* still referenced by the wrapper table on the stack */
        if (len > 0x7fffffff)
            return param_fail(p, err, i + 1, "bytea value longer than 2 GB");
        p->types[i] = 17;
        p->values[i] = s;
        p->lengths[i] = (int)len;
        p->formats[i] = 1;
        return 0;
    }

    lb_buf_init(&b);
    if (kind[0] == 'a') {
        if (lua_type(L, vidx) != LUA_TTABLE) {
            lua_pop(L, 1);
            return param_fail(p, err, i + 1, "lakebase.array needs a table");
        }
        rc = array_literal(L, vidx, &b, why, sizeof why);
        if (rc < 0) {
            char msg[260];
            snprintf(msg, sizeof msg, "lakebase.array: %s", why);
            lua_pop(L, 1);
            lb_buf_free(&b);
            return param_fail(p, err, i + 1, msg);
        }
    } else {
        json_enc e;
        e.b = &b;
        e.why[0] = '\0';
        e.oom = 0;
        rc = json_value(&e, L, vidx, 0);
        lua_settop(L, vidx);
        if (rc < 0) {
            char msg[220];
            snprintf(msg, sizeof msg, "lakebase.json: %s", e.why);
            lua_pop(L, 1);
            lb_buf_free(&b);
            return param_fail(p, err, i + 1, msg);
        }
    }
    lua_pop(L, 1);
    if (b.len > 0x7fffffff) {
        lb_buf_free(&b);
        return param_fail(p, err, i + 1, "value longer than 2 GB");
    }
    p->lengths[i] = (int)b.len;
    p->storage[i] = lb_buf_take(&b);
    p->values[i] = p->storage[i];
    return 0;
}

static int params_alloc(lb_params *p, int n)
{
    p->n = n;
    if (n <= LB_PARAMS_INLINE) {
        p->types = p->types_;
        p->values = p->values_;
        p->lengths = p->lengths_;
        p->formats = p->formats_;
        p->storage = p->storage_;
    } else {
        p->types = malloc((size_t)n * sizeof *p->types);
        p->values = malloc((size_t)n * sizeof *p->values);
        p->lengths = malloc((size_t)n * sizeof *p->lengths);
        p->formats = malloc((size_t)n * sizeof *p->formats);
        p->storage = calloc((size_t)n, sizeof *p->storage); /* freed slot by slot on failure */
        if (!p->types || !p->values || !p->lengths || !p->formats || !p->storage)
            return -1;
    }
    memset(p->types, 0, (size_t)n * sizeof *p->types);
    memset(p->values, 0, (size_t)n * sizeof *p->values);
    memset(p->lengths, 0, (size_t)n * sizeof *p->lengths);
    memset(p->formats, 0, (size_t)n * sizeof *p->formats);
    memset(p->storage, 0, (size_t)n * sizeof *p->storage);
    return 0;
}

int lb_params_collect(lua_State *L, int first, int n, lb_params *p, lb_error *err)
{
    int i;
    memset(p, 0, sizeof *p);
    if (n <= 0)
        return 0;
    first = abs_index(L, first);
    if (!lua_checkstack(L, 8)) {
        lb_error_set(err, LB_ERR_QUERY, 0, "parameters: Lua stack exhausted");
        return -1;
    }
    if (params_alloc(p, n) < 0) {
        lb_params_free(p);
        lb_error_set(err, LB_ERR_QUERY, 0, "parameters: out of memory");
        return -1;
    }
    for (i = 0; i < n; i++) {
        int idx = first + i, t = lua_type(L, idx);
        switch (t) {
        case LUA_TNIL:
            break;
        case LUA_TLIGHTUSERDATA:
            if (lua_touserdata(L, idx) != NULL)
                return param_fail(p, err, i + 1, "unsupported type userdata (only "
                                  "lakebase.null may be a light userdata)");
            break;
        case LUA_TBOOLEAN:
            p->types[i] = 16;
            p->values[i] = lua_toboolean(L, idx) ? "t" : "f";
            p->lengths[i] = 1;
            break;
        case LUA_TNUMBER: {
            char *num;
            if (i < LB_PARAMS_INLINE) {
                num = p->numbers_[i];
            } else {
                num = p->storage[i] = malloc(32);
                if (!num)
                    return param_fail(p, err, i + 1, "out of memory");
            }
            p->types[i] = format_number(L, idx, num, 32);
            p->values[i] = num;
            p->lengths[i] = (int)strlen(num);
            break;
        }
        case LUA_TSTRING: {
            size_t len;
            const char *s = lua_tolstring(L, idx, &len);
            /* Text parameters end at a NUL: refuse instead of silently truncating. */
            if (memchr(s, '\0', len))
                return param_fail(p, err, i + 1, "string contains a NUL byte (binary data "
                                  "must be sent as lakebase.bytea(s))");
            if (len > 0x7fffffff)
                return param_fail(p, err, i + 1, "string longer than 2 GB");
            p->values[i] = s;
            p->lengths[i] = (int)len;
            break;
        }
        case LUA_TTABLE: {
            const char *kind = wrapper_kind(L, idx);
            if (!kind)
                return param_fail(p, err, i + 1, "a table must be wrapped with lakebase.json(), "
                                  "lakebase.array() or lakebase.bytea()");
            if (param_wrapper(L, idx, kind, p, i, err) < 0)
                return -1;
            break;
        }
        default: {
            char msg[96];
            snprintf(msg, sizeof msg, "unsupported type %s", lua_typename(L, t));
            return param_fail(p, err, i + 1, msg);
        }
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
    if (p->types != p->types_) {
        free(p->types);
        free(p->values);
        free(p->lengths);
        free(p->formats);
        free(p->storage);
    }
    memset(p, 0, sizeof *p);
}

/* =============================================================================================
 * Results: decoding context
 * =========================================================================================== */

typedef enum col_kind {
    K_TEXT = 0,
    K_BOOL,
    K_INT,   /* int2, int4, oid: always fit a Lua number exactly */
    K_INT8,
    K_FLOAT,
    K_JSON,
    K_BYTEA,
    K_ARRAY_BASE = 16 /* K_ARRAY_BASE + element kind */
} col_kind;

static col_kind kind_of(Oid oid)
{
    switch (oid) {
    case 16: return K_BOOL;
    case 21: case 23: case 26: return K_INT;
    case 20: return K_INT8;
    case 700: case 701: return K_FLOAT;
    case 114: case 3802: return K_JSON;
    case 17: return K_BYTEA;
    case 1000: return K_ARRAY_BASE + K_BOOL;
    case 1005: case 1007: case 1028: return K_ARRAY_BASE + K_INT;
    case 1016: return K_ARRAY_BASE + K_INT8;
    case 1021: case 1022: return K_ARRAY_BASE + K_FLOAT;
    case 199: case 3807: return K_ARRAY_BASE + K_JSON;
    case 1001: return K_ARRAY_BASE + K_BYTEA;
    case 1231: /* numeric */
    case 1009: case 1015: case 1014: case 1002: case 1003: /* text varchar bpchar char name */
    case 2951: /* uuid */
    case 1182: case 1183: case 1270: case 1115: case 1185: case 1187: /* date time timetz ts tstz interval */
        return K_ARRAY_BASE + K_TEXT;
    default: return K_TEXT;
    }
}

typedef struct decoder {
    lua_State *L;
    int scratch_idx; /* stack slot of the scratch userdata (nil until needed) */
    char *scratch;
    size_t scratch_cap;
} decoder;

/* A writable buffer of at least size bytes, valid until the next call. */
static char *scratch(decoder *d, size_t size)
{
    if (size > d->scratch_cap) {
        size_t cap = d->scratch_cap ? d->scratch_cap : 256;
        while (cap < size)
            cap *= 2;
        d->scratch = lua_newuserdata(d->L, cap);
        d->scratch_cap = cap;
        lua_replace(d->L, d->scratch_idx);
    }
    return d->scratch;
}

/* =============================================================================================
 * Results: scalars
 * =========================================================================================== */

/* Exact int64 from decimal text (optional sign, digits only). 0, or -1 if not one. */
static int parse_int64(const char *s, size_t len, long long *out)
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
static int parse_double(const char *s, size_t len, double *out)
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

static void push_int64(lua_State *L, long long v, const char *s, size_t len)
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

static void push_json(decoder *d, const char *s, size_t len);

static void push_scalar(decoder *d, col_kind k, const char *s, size_t len)
{
    lua_State *L = d->L;
    switch (k) {
    case K_BOOL:
        lua_pushboolean(L, len > 0 && s[0] == 't');
        return;
    case K_INT:
    case K_INT8: {
        long long v;
        if (parse_int64(s, len, &v) == 0) {
            push_int64(L, v, s, len);
            return;
        }
        break;
    }
    case K_FLOAT: {
        double v;
        if (parse_double(s, len, &v) == 0) {
            lua_pushnumber(L, (lua_Number)v);
            return;
        }
        break;
    }
    case K_JSON:
        push_json(d, s, len);
        return;
    case K_BYTEA: {
        char *out = scratch(d, len + 1);
        long n = lb_bytea_decode(s, len, out);
        if (n >= 0) {
            lua_pushlstring(L, out, (size_t)n);
            return;
        }
        break;
    }
    default:
        break;
    }
    lua_pushlstring(L, s, len); /* text, and anything that did not parse */
}

/* =============================================================================================
 * Results: JSON decoding straight onto the Lua stack
 * =========================================================================================== */

typedef struct json_dec {
    lua_State *L;
    const char *p, *end;
} json_dec;

static void jd_space(json_dec *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int jd_hex4(const char *p, unsigned *out)
{
    int i;
    unsigned v = 0;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t utf8_encode(unsigned cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string at j->p (the opening quote): pushed as is when it has no escapes. */
static int jd_string(json_dec *j)
{
    const char *start = ++j->p, *q = start;
    luaL_Buffer B;
    while (q < j->end && *q != '"' && *q != '\\')
        q++;
    if (q >= j->end)
        return -1;
    if (*q == '"') {
        lua_pushlstring(j->L, start, (size_t)(q - start));
        j->p = q + 1;
        return 0;
    }
    luaL_buffinit(j->L, &B);
    luaL_addlstring(&B, start, (size_t)(q - start));
    while (q < j->end && *q != '"') {
        char utf[8];
        unsigned cp, lo;
        if (*q != '\\') {
            const char *run = q;
            while (q < j->end && *q != '"' && *q != '\\')
                q++;
            luaL_addlstring(&B, run, (size_t)(q - run));
            continue;
        }
        if (q + 1 >= j->end)
            goto fail;
        switch (q[1]) {
        case '"': luaL_addchar(&B, '"'); break;
        case '\\': luaL_addchar(&B, '\\'); break;
        case '/': luaL_addchar(&B, '/'); break;
        case 'b': luaL_addchar(&B, '\b'); break;
        case 'f': luaL_addchar(&B, '\f'); break;
        case 'n': luaL_addchar(&B, '\n'); break;
        case 'r': luaL_addchar(&B, '\r'); break;
        case 't': luaL_addchar(&B, '\t'); break;
        case 'u':
            if (j->end - q < 6 || jd_hex4(q + 2, &cp) < 0)
                goto fail;
            q += 4;
            /* a surrogate pair is one code point; a lone surrogate is kept as its 3 bytes */
            if (cp >= 0xd800 && cp < 0xdc00 && j->end - q >= 8 && q[2] == '\\' && q[3] == 'u' &&
                jd_hex4(q + 4, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                q += 6;
            }
            luaL_addlstring(&B, utf, utf8_encode(cp, utf));
            break;
        default:
            goto fail;
        }
        q += 2;
    }
    if (q >= j->end)
        goto fail;
    luaL_pushresult(&B);
    j->p = q + 1;
    return 0;
fail:
    /* Lua 5.4 keeps a grown buffer in a to-be-closed slot: close it the documented way (push the
     * result) before the caller drops the stack back, or the slot dangles. */
    luaL_pushresult(&B);
    return -1;
}

static int jd_digits(json_dec *j)
{
    const char *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > s ? 0 : -1;
}

static int jd_number(json_dec *j)
{
    const char *s = j->p;
    int integral = 1;
    long long iv;
    double dv;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (jd_digits(j) < 0)
        return -1;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        integral = 0;
        if (jd_digits(j) < 0)
            return -1;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        integral = 0;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (jd_digits(j) < 0)
            return -1;
    }
    if (integral && parse_int64(s, (size_t)(j->p - s), &iv) == 0) {
#if LB_HAS_INT64
        lua_pushinteger(j->L, (lua_Integer)iv);
#else
        lua_pushnumber(j->L, (lua_Number)iv);
#endif
        return 0;
    }
    if (parse_double(s, (size_t)(j->p - s), &dv) == 0) {
        lua_pushnumber(j->L, (lua_Number)dv);
        return 0;
    }
    /* longer than 63 characters: let Lua convert the text */
    lua_pushlstring(j->L, s, (size_t)(j->p - s));
    dv = (double)lua_tonumber(j->L, -1);
    lua_pop(j->L, 1);
    lua_pushnumber(j->L, (lua_Number)dv);
    return 0;
}

static int jd_literal(json_dec *j, const char *word, size_t len)
{
    if ((size_t)(j->end - j->p) < len || memcmp(j->p, word, len) != 0)
        return -1;
    j->p += len;
    return 0;
}

static int jd_value(json_dec *j, int depth)
{
    lua_State *L = j->L;
    if (depth > JSON_MAX_DEPTH || !lua_checkstack(L, 4))
        return -1;
    jd_space(j);
    if (j->p >= j->end)
        return -1;
    switch (*j->p) {
    case '{':
        j->p++;
        lua_createtable(L, 0, 4); /* room for small objects without rehashing as keys arrive */
        jd_space(j);
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return 0;
        }
        for (;;) {
            jd_space(j);
            if (j->p >= j->end || *j->p != '"' || jd_string(j) < 0)
                return -1;
            jd_space(j);
            if (j->p >= j->end || *j->p != ':')
                return -1;
            j->p++;
            if (jd_value(j, depth + 1) < 0)
                return -1;
            lua_rawset(L, -3); /* duplicate keys: the later one wins */
            jd_space(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == '}') {
                j->p++;
                return 0;
            }
            return -1;
        }
    case '[': {
        int i = 0;
        j->p++;
        lua_newtable(L);
        jd_space(j);
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return 0;
        }
        for (;;) {
            if (jd_value(j, depth + 1) < 0)
                return -1;
            lua_rawseti(L, -2, ++i);
            jd_space(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == ']') {
                j->p++;
                return 0;
            }
            return -1;
        }
    }
    case '"':
        return jd_string(j);
    case 't':
        if (jd_literal(j, "true", 4) < 0)
            return -1;
        lua_pushboolean(L, 1);
        return 0;
    case 'f':
        if (jd_literal(j, "false", 5) < 0)
            return -1;
        lua_pushboolean(L, 0);
        return 0;
    case 'n':
        if (jd_literal(j, "null", 4) < 0)
            return -1;
        lua_pushlightuserdata(L, NULL);
        return 0;
    default:
        return jd_number(j);
    }
}

/* JSON text -> Lua value. Text the parser does not accept (the server validated it, so only
 * nesting deeper than JSON_MAX_DEPTH) comes back as the string itself. */
static void push_json(decoder *d, const char *s, size_t len)
{
    json_dec j;
    int top = lua_gettop(d->L);
    j.L = d->L;
    j.p = s;
    j.end = s + len;
    if (jd_value(&j, 0) == 0) {
        jd_space(&j);
        if (j.p == j.end)
            return;
    }
    lua_settop(d->L, top);
    lua_pushlstring(d->L, s, len);
}

/* =============================================================================================
 * Results: arrays
 * =========================================================================================== */

static void push_array(decoder *d, col_kind elem, const char *s, size_t len)
{
    lua_State *L = d->L;
    lb_pgarray a;
    lb_pgarray_elem e;
    int rc, n = 0;

    /* First pass validates and counts, so the table is created at its final size. */
    if (lb_pgarray_begin(&a, s, len, ',') < 0)
        goto as_text;
    while ((rc = lb_pgarray_next(&a, &e)) == 1)
        n++;
    if (rc < 0)
        goto as_text;

    lua_createtable(L, n, 0);
    lb_pgarray_begin(&a, s, len, ',');
    n = 0;
    while (lb_pgarray_next(&a, &e) == 1) {
        if (e.null) {
            lua_pushlightuserdata(L, NULL);
        } else if (e.escaped || elem == K_BYTEA) {
            /* unescape into scratch; bytea then decodes in place there */
            char *buf = scratch(d, e.len + 1);
            size_t vlen = e.escaped ? lb_pgarray_unescape(&e, buf) : (memcpy(buf, e.p, e.len), e.len);
            buf[vlen] = '\0';
            if (elem == K_BYTEA) {
                long bn = lb_bytea_decode(buf, vlen, buf);
                if (bn < 0)
                    lua_pushlstring(L, buf, vlen);
                else
                    lua_pushlstring(L, buf, (size_t)bn);
            } else {
                push_scalar(d, elem, buf, vlen);
            }
        } else {
            push_scalar(d, elem, e.p, e.len);
        }
        lua_rawseti(L, -2, ++n);
    }
    return;
as_text:
    lua_pushlstring(L, s, len); /* more than one dimension, or not an array literal */
}

/* =============================================================================================
 * Results: rows
 * =========================================================================================== */

#define KINDS_ON_STACK 64

/* What every row of one result shares: column names in stack slots (interned once, rows reuse
 * them), decode kinds by column, the scratch buffer. Pushes the scratch slot and the names. */
typedef struct row_shape {
    decoder d;
    int ncols, names;
    unsigned char kinds_local[KINDS_ON_STACK], *kinds;
} row_shape;

static void shape_begin(lua_State *L, row_shape *sh, const PGresult *res)
{
    int c, ncols = PQnfields(res);
    luaL_checkstack(L, ncols + 8, "too many columns");
    sh->ncols = ncols;
    sh->d.L = L;
    sh->d.scratch = NULL;
    sh->d.scratch_cap = 0;
    lua_pushnil(L);
    sh->d.scratch_idx = lua_gettop(L);
    sh->names = sh->d.scratch_idx + 1;
    for (c = 0; c < ncols; c++)
        lua_pushstring(L, PQfname(res, c));
    sh->kinds = sh->kinds_local;
    if (ncols > KINDS_ON_STACK)
        sh->kinds = lua_newuserdata(L, (size_t)ncols);
    for (c = 0; c < ncols; c++)
        sh->kinds[c] = (unsigned char)kind_of(PQftype(res, c));
}

/* Pushes row r of res as a table keyed by column name. */
static void push_row(lua_State *L, row_shape *sh, const PGresult *res, int r)
{
    int c, ncols = sh->ncols;
    lua_createtable(L, 0, ncols);
    for (c = 0; c < ncols; c++) {
        lua_pushvalue(L, sh->names + c);
        if (PQgetisnull(res, r, c)) {
            lua_pushlightuserdata(L, NULL);
        } else {
            const char *v = PQgetvalue(res, r, c);
            size_t len = (size_t)PQgetlength(res, r, c);
            if (sh->kinds[c] >= K_ARRAY_BASE)
                push_array(&sh->d, (col_kind)(sh->kinds[c] - K_ARRAY_BASE), v, len);
            else
                push_scalar(&sh->d, (col_kind)sh->kinds[c], v, len);
        }
        lua_rawset(L, -3);
    }
}

void lb_set_affected_rows(lua_State *L, int t, const char *affected)
{
    long long count;
    if (affected && *affected && parse_int64(affected, strlen(affected), &count) == 0) {
        lua_pushinteger(L, (lua_Integer)count);
        lua_setfield(L, t, "affected_rows");
    }
}

static int push_rows(lua_State *L, const PGresult *res)
{
    int nrows = PQntuples(res), r, base;
    const char *affected = PQcmdTuples((PGresult *)res);
    row_shape sh;

    luaL_checkstack(L, 4, "too many columns");
    lua_createtable(L, nrows, affected && *affected ? 1 : 0);
    base = lua_gettop(L);
    shape_begin(L, &sh, res);
    for (r = 0; r < nrows; r++) {
        push_row(L, &sh, res, r);
        lua_rawseti(L, base, r + 1);
    }
    lua_settop(L, base);
    lb_set_affected_rows(L, base, affected);
    return 1;
}

void lb_append_rows(lua_State *L, int t, PGresult *const *rows, int n, lua_Integer *count)
{
    int top = lua_gettop(L), i;
    row_shape sh;
    if (n <= 0)
        return;
    t = abs_index(L, t);
    shape_begin(L, &sh, rows[0]);
    for (i = 0; i < n; i++) {
        push_row(L, &sh, rows[i], 0);
        lua_rawseti(L, t, (int)++*count);
    }
    lua_settop(L, top);
}

static int push_rows_protected(lua_State *L)
{
    const PGresult *res = lua_touserdata(L, 1);
    lua_pop(L, 1);
    return push_rows(L, res);
}

/* Every object built here stays reachable from the result, so collector steps while building
 * a large result are wasted work (about a quarter of the decoding time): the collector pauses,
 * and a protected call makes sure it restarts even when Lua runs out of memory. */
int lb_push_result(lua_State *L, const PGresult *res)
{
    int status;
    if (PQntuples(res) < 256 || !lb_gc_isrunning(L))
        return push_rows(L, res);
    lua_pushcfunction(L, push_rows_protected);
    lua_pushlightuserdata(L, (void *)res);
    lua_gc(L, LUA_GCSTOP, 0);
    status = lua_pcall(L, 1, 1, 0);
    lua_gc(L, LUA_GCRESTART, 0);
    if (status != 0)
        lua_error(L); /* the same error object, now with the collector running */
    return 1;
}
