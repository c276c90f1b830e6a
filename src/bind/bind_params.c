/*
 * Query parameters: Lua values become text (or, for bytea, binary) parameters with a type OID
 * the server can check; no metamethod is ever called and no Lua error is raised while
 * collecting. The conversions are listed in bind_result.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bind_json.h"
#include "bind_number.h"
#include "bind_result.h"

int lb_abs_index(lua_State *L, int idx)
{
    return idx > 0 || idx <= LUA_REGISTRYINDEX ? idx : lua_gettop(L) + idx + 1;
}

/* The wrapper kind of the table at idx ("json", "array", "bytea") or NULL; raw access only. */
const char *lb_wrapper_kind(lua_State *L, int idx)
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
 * Array literals (lakebase.array)
 * =========================================================================================== */

/* Number of elements of an array wrapper's table: t.n when it is a non-negative integer (so
 * trailing nils count), else the border #t. */
size_t lb_array_length(lua_State *L, int idx)
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

/* What the elements of a lakebase.array are: plain scalars, bytes, or JSON values. */
enum { ARRAY_OF_SCALARS, ARRAY_OF_BYTEA, ARRAY_OF_JSON };

/* Appends a bytea value as the array element "\x<hex>" (hex input format, any bytes). */
static int append_bytea_element(lb_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    lb_buf text;
    size_t i;
    int rc = 0;
    lb_buf_init(&text);
    if (lb_buf_reserve(&text, 2 * len + 3) < 0 || lb_buf_append(&text, "\\x", 2) < 0)
        rc = -1;
    for (i = 0; rc == 0 && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char pair[2] = {hex[c >> 4], hex[c & 15]};
        rc = lb_buf_append(&text, pair, 2);
    }
    if (rc == 0)
        rc = lb_pgarray_append_quoted(b, text.data, text.len);
    lb_buf_free(&text);
    return rc;
}

/* Appends a table element: lakebase.bytea(s) as bytea; in a json[]/jsonb[] array any other
 * table as its JSON text (so what a jsonb[] result decodes to goes back the same way). */
static int append_table_element(lua_State *L, int idx, size_t i, int json_tables, lb_buf *b,
                                char *why, size_t whysize)
{
    const char *kind = lb_wrapper_kind(L, idx);
    lb_buf json;
    int rc;
    if (kind && kind[0] == 'b') {
        size_t len;
        const char *s;
        lua_getfield(L, idx, "value");
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            snprintf(why, whysize, "element [%zu]: lakebase.bytea needs a string", i);
            return -1;
        }
        s = lua_tolstring(L, -1, &len);
        rc = append_bytea_element(b, s, len);
        lua_pop(L, 1);
        if (rc < 0)
            snprintf(why, whysize, "out of memory");
        return rc;
    }
    if (!json_tables || (kind && kind[0] == 'a')) {
        snprintf(why, whysize, "element [%zu] is a table (one-dimension arrays only; JSON "
                 "elements need lakebase.array(t, \"jsonb\") or \"json\")", i);
        return -1;
    }
    lb_buf_init(&json);
    rc = lb_json_encode(L, idx, &json, NULL, 0, why, whysize);
    if (rc == 0 && lb_pgarray_append_quoted(b, json.data ? json.data : "", json.len) < 0) {
        snprintf(why, whysize, "out of memory");
        rc = -1;
    } else if (rc < 0) {
        char inner[160];
        snprintf(inner, sizeof inner, "%.150s", why);
        snprintf(why, whysize, "element [%zu] as JSON: %s", i, inner);
    }
    lb_buf_free(&json);
    return rc;
}

/* The array literal of the table at idx, for the element type `of` (array_type). */
static int array_literal(lua_State *L, int idx, int of, lb_buf *b, char *why, size_t whysize)
{
    size_t i, n = lb_array_length(L, idx);
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
            lb_format_number(L, -1, num, sizeof num);
            rc = lb_buf_append(b, num, strlen(num));
        } else if (t == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            if (of == ARRAY_OF_BYTEA) {
                rc = append_bytea_element(b, s, len);
            } else if (memchr(s, '\0', len)) {
                snprintf(why, whysize, "element [%zu] contains a NUL byte (bytes go as "
                         "lakebase.array(t, \"bytea\") or lakebase.bytea elements)", i);
                lua_pop(L, 1);
                return -1;
            } else {
                rc = lb_pgarray_append_quoted(b, s, len);
            }
        } else if (t == LUA_TTABLE) {
            rc = append_table_element(L, lua_gettop(L), i, of == ARRAY_OF_JSON, b, why, whysize);
            if (rc < 0) {
                lua_pop(L, 1);
                return -1;
            }
        } else {
            snprintf(why, whysize, "element [%zu] is a %s (arrays hold booleans, numbers, "
                     "strings, tables as JSON, lakebase.bytea and lakebase.null)", i,
                     lua_typename(L, t));
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

/* The array type a lakebase.array(t, of) wrapper names: its OID (0: let the server infer it
 * from the statement) and the ARRAY_OF_* of its elements; -1 for an unknown name. */
static int array_type(lua_State *L, int wrapper, Oid *oid, int *elements)
{
    const char *of;
    int rc = 0;
    *oid = 0;
    *elements = ARRAY_OF_SCALARS;
    lua_pushliteral(L, "of");
    lua_rawget(L, wrapper);
    of = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (of && strcmp(of, "bytea") == 0) {
        *oid = 1001;
        *elements = ARRAY_OF_BYTEA;
    } else if (of && strcmp(of, "json") == 0) {
        *oid = 199;
        *elements = ARRAY_OF_JSON;
    } else if (of && strcmp(of, "jsonb") == 0) {
        *oid = 3807;
        *elements = ARRAY_OF_JSON;
    } else if (lua_type(L, -1) != LUA_TNIL) {
        rc = -1;
    }
    lua_pop(L, 1);
    return rc;
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
        int elements;
        if (lua_type(L, vidx) != LUA_TTABLE) {
            lua_pop(L, 1);
            return param_fail(p, err, i + 1, "lakebase.array needs a table");
        }
        if (array_type(L, idx, &p->types[i], &elements) < 0) {
            lua_pop(L, 1);
            return param_fail(p, err, i + 1, "lakebase.array: element type must be \"bytea\", "
                              "\"json\" or \"jsonb\"");
        }
        rc = array_literal(L, vidx, elements, &b, why, sizeof why);
    } else {
        rc = lb_json_encode(L, vidx, &b, NULL, 0, why, sizeof why);
    }
    if (rc < 0) {
        char msg[260];
        snprintf(msg, sizeof msg, "%s: %s", kind[0] == 'a' ? "lakebase.array" : "lakebase.json",
                 why);
        lua_pop(L, 1);
        lb_buf_free(&b);
        return param_fail(p, err, i + 1, msg);
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

/* p->query: the statement and the arrays just filled. */
static int params_query(lb_params *p, const char *sql)
{
    p->query.sql = sql;
    p->query.nparams = p->n;
    p->query.types = p->types;
    p->query.values = p->values;
    p->query.lengths = p->lengths;
    p->query.formats = p->formats;
    return 0;
}

int lb_params_collect(lua_State *L, const char *sql, int first, int n, lb_params *p,
                      lb_error *err)
{
    int i;
    memset(p, 0, sizeof *p);
    if (n <= 0)
        return params_query(p, sql);
    first = lb_abs_index(L, first);
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
            p->types[i] = lb_format_number(L, idx, num, 32);
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
            const char *kind = lb_wrapper_kind(L, idx);
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
    return params_query(p, sql);
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

