/*
 * JSON <-> Lua values: the one codec of lakebase (query parameters wrapped by lakebase.json,
 * json/jsonb results, and the lakebase.json module).
 *
 *   encoding: a table whose keys are exactly 1..n is an array; a table with the JSON array
 *   metatable (lakebase.json.array) or wrapped by lakebase.array is an array, even when empty;
 *   any other empty table is an object {}; other keys must be strings or numbers (numbers become
 *   their text); nil and lakebase.null -> null; NaN/Infinity, functions, userdata and cycles
 *   (nesting deeper than JSON_MAX_DEPTH) are errors. Numbers are written in their shortest exact
 *   form (bind_number.c).
 *   decoding: objects -> tables, arrays -> sequences (an empty one carries the JSON array
 *   metatable, so it encodes back as []), null -> lakebase.null, integers that fit int64 ->
 *   integers on Lua 5.4, other numbers -> floats (precision of a double).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bind_json.h"
#include "bind_number.h"
#include "bind_result.h"

#define JSON_MAX_DEPTH 1000


typedef struct json_enc {
    lua_State *L;
    lb_buf *b;
    const char *indent; /* pretty-print with this unit (NULL: compact) */
    size_t indent_len;
    int sort_keys;
    char why[160]; /* reason on failure */
} json_enc;

static int json_fail(json_enc *e, const char *why)
{
    snprintf(e->why, sizeof e->why, "%s", why);
    return -1;
}

static int json_put(json_enc *e, const char *s, size_t len)
{
    if (lb_buf_append(e->b, s, len) < 0)
        return json_fail(e, "out of memory");
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
    lb_format_double(d, num, sizeof num);
    return json_put(e, num, strlen(num));
}

static int json_value(json_enc *e, lua_State *L, int idx, int depth);

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
        lb_number_text(L, idx, num, sizeof num);
        return json_string(e, num, strlen(num));
    }
    snprintf(e->why, sizeof e->why, "an object key must be a string or a number, not a %s",
             lua_typename(L, lua_type(L, idx)));
    return -1;
}

/* Newline and indentation for an element at `level` (pretty mode only). */
static int json_newline(json_enc *e, int level)
{
    int i;
    if (!e->indent)
        return 0;
    if (json_put(e, "\n", 1) < 0)
        return -1;
    for (i = 0; i < level; i++)
        if (json_put(e, e->indent, e->indent_len) < 0)
            return -1;
    return 0;
}

/* 1 when the table at idx carries the JSON array metatable (lakebase.json.array(t), or an empty
 * array as lakebase.json.decode returns it). */
static int has_array_mt(lua_State *L, int idx)
{
    int yes;
    if (!lua_getmetatable(L, idx))
        return 0;
    luaL_getmetatable(L, LB_JSON_ARRAY_MT);
    yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return yes;
}

static int json_array(json_enc *e, lua_State *L, int idx, size_t count, int depth)
{
    size_t i;
    int rc = json_put(e, "[", 1);
    for (i = 1; rc == 0 && i <= count; i++) {
        if (i > 1)
            rc = json_put(e, ",", 1);
        if (rc == 0)
            rc = json_newline(e, depth + 1);
        lua_rawgeti(L, idx, (int)i);
        if (rc == 0)
            rc = json_value(e, L, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    if (rc == 0 && count > 0)
        rc = json_newline(e, depth);
    return rc == 0 ? json_put(e, "]", 1) : rc;
}

/* One member of an object being sorted: its key text (anchored in a scratch table) and the
 * slot of its value in that table. */
typedef struct json_member {
    const char *key;
    size_t len;
    int slot;
} json_member;

static int member_cmp(const void *a, const void *b)
{
    const json_member *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The object at idx with its `count` members in byte order of their keys (stable files). */
static int json_object_sorted(json_enc *e, lua_State *L, int idx, size_t count, int depth)
{
    const char *colon = e->indent ? ": " : ":";
    json_member *m;
    size_t i, n = 0;
    int t, rc = 0;

    if (count > 0x3fffffff)
        return json_fail(e, "object too large");
    lua_createtable(L, (int)(2 * count), 0); /* key text, value, key text, value, ... */
    t = lua_gettop(L);
    m = lua_newuserdata(L, count * sizeof *m); /* collected by Lua: nothing leaks on error */
    lua_pushnil(L);
    while (n < count && lua_next(L, idx)) {
        if (lua_type(L, -2) == LUA_TNUMBER) {
            char num[40];
            lb_number_text(L, -2, num, sizeof num);
            lua_pushstring(L, num);
        } else if (lua_type(L, -2) == LUA_TSTRING) {
            lua_pushvalue(L, -2);
        } else {
            return json_key(e, L, lua_gettop(L) - 1); /* the error message; caller resets top */
        }
        lua_rawseti(L, t, (int)(2 * n + 1));
        lua_rawseti(L, t, (int)(2 * n + 2));
        lua_rawgeti(L, t, (int)(2 * n + 1));
        m[n].key = lua_tolstring(L, -1, &m[n].len); /* stays valid: t holds the string */
        m[n].slot = (int)(2 * n + 2);
        lua_pop(L, 1);
        n++;
    }
    qsort(m, n, sizeof *m, member_cmp);
    rc = json_put(e, "{", 1);
    for (i = 0; rc == 0 && i < n; i++) {
        if (i > 0)
            rc = json_put(e, ",", 1);
        if (rc == 0)
            rc = json_newline(e, depth + 1);
        if (rc == 0)
            rc = json_string(e, m[i].key, m[i].len);
        if (rc == 0)
            rc = json_put(e, colon, strlen(colon));
        lua_rawgeti(L, t, m[i].slot);
        if (rc == 0)
            rc = json_value(e, L, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    if (rc == 0 && n > 0)
        rc = json_newline(e, depth);
    if (rc == 0)
        rc = json_put(e, "}", 1);
    lua_pop(L, 2);
    return rc;
}

static int json_object(json_enc *e, lua_State *L, int idx, size_t count, int depth)
{
    const char *colon = e->indent ? ": " : ":";
    int rc, first = 1;
    if (e->sort_keys)
        return json_object_sorted(e, L, idx, count, depth);
    rc = json_put(e, "{", 1);
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, idx)) {
        if (!first)
            rc = json_put(e, ",", 1);
        first = 0;
        if (rc == 0)
            rc = json_newline(e, depth + 1);
        if (rc == 0)
            rc = json_key(e, L, lua_gettop(L) - 1);
        if (rc == 0)
            rc = json_put(e, colon, strlen(colon));
        if (rc == 0)
            rc = json_value(e, L, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    if (rc == 0 && !first)
        rc = json_newline(e, depth);
    return rc == 0 ? json_put(e, "}", 1) : rc;
}

/* A table: an array when wrapped by lakebase.array, marked with the JSON array metatable, or
 * keyed exactly 1..n (n > 0); otherwise an object. On failure values may be left on the stack:
 * the caller resets the top. */
static int json_table(json_enc *e, lua_State *L, int idx, int depth)
{
    const char *kind = lb_wrapper_kind(L, idx);
    int is_array = 1, rc;
    size_t count = 0;
    double max = 0;

    if (kind && strcmp(kind, "bytea") == 0)
        return json_fail(e, "lakebase.bytea cannot be a JSON value");
    if (kind) { /* json(...) or array(...) inside json: encode the wrapped value */
        lua_pushliteral(L, "value");
        lua_rawget(L, idx);
        if (strcmp(kind, "array") == 0 && lua_type(L, -1) == LUA_TTABLE) {
            /* like a lakebase.array parameter: t.n or #t elements, nil -> null */
            rc = json_array(e, L, lua_gettop(L), lb_array_length(L, lua_gettop(L)), depth);
        } else {
            rc = json_value(e, L, lua_gettop(L), depth + 1);
        }
        lua_pop(L, 1);
        return rc;
    }
    if (has_array_mt(L, idx))
        return json_array(e, L, idx, (size_t)lb_rawlen(L, idx), depth);

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
    if (count > 0 && is_array && max == (double)count)
        return json_array(e, L, idx, count, depth);
    return json_object(e, L, idx, count, depth);
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
    if (integral && lb_parse_int64(s, (size_t)(j->p - s), &iv) == 0) {
#if LB_HAS_INT64
        lua_pushinteger(j->L, (lua_Integer)iv);
#else
        lua_pushnumber(j->L, (lua_Number)iv);
#endif
        return 0;
    }
    if (lb_parse_double(s, (size_t)(j->p - s), &dv) == 0) {
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
            /* marked, so that it encodes back as [] and not as {} */
            luaL_getmetatable(L, LB_JSON_ARRAY_MT);
            lua_setmetatable(L, -2);
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

int lb_json_push(lua_State *L, const char *s, size_t len, size_t *error_at)
{
    json_dec j;
    int top = lua_gettop(L);
    j.L = L;
    j.p = s;
    j.end = s + len;
    if (jd_value(&j, 0) == 0) {
        jd_space(&j);
        if (j.p == j.end)
            return 0;
        lua_settop(L, top);
        if (error_at)
            *error_at = (size_t)(j.p - s);
        return -2;
    }
    lua_settop(L, top);
    if (error_at)
        *error_at = (size_t)(j.p - s);
    return -1;
}

int lb_json_encode(lua_State *L, int idx, lb_buf *b, const char *indent, int sort_keys,
                   char *why, size_t why_size)
{
    json_enc e;
    int top = lua_gettop(L), rc;
    e.L = L;
    e.b = b;
    e.indent = indent && *indent ? indent : NULL;
    e.indent_len = e.indent ? strlen(e.indent) : 0;
    e.sort_keys = sort_keys;
    e.why[0] = '\0';
    rc = json_value(&e, L, lb_abs_index(L, idx), 0);
    lua_settop(L, top);
    if (rc < 0)
        snprintf(why, why_size, "%s", e.why);
    return rc;
}

/* =============================================================================================
 * core.json_encode / core.json_decode (lakebase.json)
 * =========================================================================================== */

/* core.json_encode(v [, indent [, sort_keys]]) -> text; raises on a value JSON cannot hold. */
static int core_json_encode(lua_State *L)
{
    char why[160];
    lb_buf b;
    const char *indent = luaL_optstring(L, 2, NULL);
    int sort_keys = lua_toboolean(L, 3), rc;
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    lb_buf_init(&b);
    rc = lb_json_encode(L, 1, &b, indent, sort_keys, why, sizeof why);
    if (rc < 0) {
        lb_buf_free(&b);
        return luaL_error(L, "lakebase.json.encode: %s", why);
    }
    lua_pushlstring(L, b.data ? b.data : "", b.len); /* may raise on OOM: b is then lost once */
    lb_buf_free(&b);
    return 1;
}

/* core.json_decode(text) -> value, or nil, message naming the line and byte. */
static int core_json_decode(lua_State *L)
{
    size_t len, at = 0, i, line = 1;
    const char *s = luaL_checklstring(L, 1, &len);
    int rc = lb_json_push(L, s, len, &at);
    if (rc == 0)
        return 1;
    for (i = 0; i < at && i < len; i++)
        if (s[i] == '\n')
            line++;
    lua_pushnil(L);
    lua_pushfstring(L, "invalid JSON at line %d (byte %d): %s", (int)line, (int)at + 1,
                    rc == -2 ? "trailing characters after the value"
                             : at >= len ? "unexpected end of input" : "unexpected character");
    return 2;
}

void lb_bind_json(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"json_encode", core_json_encode},
        {"json_decode", core_json_decode},
        {NULL, NULL},
    };
    lb_setfuncs(L, funcs);
    luaL_newmetatable(L, LB_JSON_ARRAY_MT);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__jsontype");
    lua_setfield(L, -2, "json_array_mt");
}
