/*
 * Results: rows are decoded straight from the PGresult into preallocated tables. Column names are
 * pushed once per result and reused from stack slots; values are parsed in place (no per-row
 * malloc). Strings that need rewriting (bytea, escaped array elements) go through one scratch
 * buffer per result, a Lua userdata so a memory error cannot leak it. json/jsonb values go
 * through the JSON codec (bind_json.c), numbers through bind_number.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bind_json.h"
#include "bind_number.h"
#include "bind_result.h"

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
 * Scalars
 * =========================================================================================== */

/* JSON text -> Lua value. Text the codec does not accept (the server validated it, so only
 * nesting deeper than the codec allows) comes back as the string itself. */
static void push_json(decoder *d, const char *s, size_t len)
{
    if (lb_json_push(d->L, s, len, NULL) < 0)
        lua_pushlstring(d->L, s, len);
}

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
        if (lb_parse_int64(s, len, &v) == 0) {
            lb_push_int64(L, v, s, len);
            return;
        }
        break;
    }
    case K_FLOAT: {
        double v;
        if (lb_parse_double(s, len, &v) == 0) {
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
    if (affected && *affected && lb_parse_int64(affected, strlen(affected), &count) == 0) {
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
    t = lb_abs_index(L, t);
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
