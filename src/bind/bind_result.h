/* Lua values <-> PostgreSQL: query parameters from Lua values (bind_params.c), PGresult rows into
 * Lua tables (bind_rows.c). */
#ifndef LB_BIND_RESULT_H
#define LB_BIND_RESULT_H

#include "bind.h"

/* Up to this many parameters need no malloc at all (the arrays live inside lb_params). */
#define LB_PARAMS_INLINE 8

/* A statement's parameters, and the lb_query that runs them (`query`). Strings borrowed from the
 * Lua stack (plain strings, and the strings inside json/array/bytea wrappers) stay valid while
 * the values stay on the stack; converted values live in `storage` or the inline number buffers
 * (owned, freed by lb_params_free). The pointers may point into the struct itself: do not copy an
 * lb_params (copying its `query` is fine). */
typedef struct lb_params {
    int n;
    Oid *types;
    const char **values;
    int *lengths;
    int *formats;
    char **storage; /* n slots, malloc'd conversions or NULL */
    /* inline room used when n <= LB_PARAMS_INLINE */
    Oid types_[LB_PARAMS_INLINE];
    const char *values_[LB_PARAMS_INLINE];
    int lengths_[LB_PARAMS_INLINE];
    int formats_[LB_PARAMS_INLINE];
    char *storage_[LB_PARAMS_INLINE];
    char numbers_[LB_PARAMS_INLINE][32]; /* text of number parameters $1..$8 */
    lb_query query; /* sql and the arrays above, for lb_*_exec and lb_*_pipeline */
} lb_params;

/* Reads the n Lua values at stack indices first..first+n-1 as the parameters of sql (borrowed:
 * p->query.sql is sql). Returns 0, or -1 with err set (kind query, not retriable) naming the bad
 * parameter ($k); on failure nothing is left to free.
 * Never raises a Lua error and never calls metamethods. Conversions:
 *   nil, lakebase.null (NULL light userdata)   SQL NULL
 *   boolean                                    bool (16), 't'/'f'
 *   integer (5.4), integral double within 2^53 (LuaJIT)   int8 (20)
 *   other numbers                              float8 (701), 17 significant digits, NaN/Infinity
 *   string                                     unknown (0), text; an embedded NUL is an error
 *   lakebase.json(v)                           unknown (0), JSON text (bind_json.c)
 *   lakebase.array(t [, of])                   one-dimension array literal: unknown (0), or
 *                                              bytea[]/json[]/jsonb[] for of = "bytea"/"json"/"jsonb";
 *                                              table elements go as JSON, lakebase.bytea as bytes
 *   lakebase.bytea(s)                          bytea (17), binary format, exact length
 *   plain table, function, userdata, thread    error */
int lb_params_collect(lua_State *L, const char *sql, int first, int n, lb_params *p,
                      lb_error *err);
void lb_params_free(lb_params *p);

/* Pushes the rows of res as an array of tables keyed by column name (decoded by type OID),
 * with the field affected_rows when the command reports a count. Returns 1 (values pushed).
 * Raises a Lua error only when Lua itself runs out of memory. Duplicate column names: the
 * later column wins. */
int lb_push_result(lua_State *L, const PGresult *res);

/* Streaming: appends the rows of single-row results (libpq single-row mode, all from one
 * statement) to the array at stack index t as t[*count + 1], ..., updating *count; decoded as
 * lb_push_result does. Raises a Lua error when Lua runs out of memory: call it protected, the
 * PGresults stay the caller's. */
void lb_append_rows(lua_State *L, int t, PGresult *const *rows, int n, lua_Integer *count);
/* Sets t.affected_rows (t a stack index) from PQcmdTuples text when it holds a count. */
void lb_set_affected_rows(lua_State *L, int t, const char *cmd_tuples);

/* Value wrappers (bind_params.c), shared with the JSON codec. */
/* The wrapper kind of the table at idx ("json", "array", "bytea") or NULL; raw access only. */
const char *lb_wrapper_kind(lua_State *L, int idx);
/* Elements of an array wrapper's table: t.n when it is a non-negative integer (so trailing nils
 * count), else the border #t. */
size_t lb_array_length(lua_State *L, int idx);
/* idx as a positive stack index. */
int lb_abs_index(lua_State *L, int idx);

/* The query path of the pool and of the pinned connections (bind_pool.c): each call runs on the
 * pinned connection pin when it is nonzero (taken for the call, given back), else on the pool,
 * and pushes its results or nil, err. Rows are streamed and decoded by the same code for both. */
/* The SQL text at idx; NULL with err set when it holds a NUL byte (libpq would cut it there). */
const char *lb_sql_arg(lua_State *L, int idx, lb_error *err);
/* query: sql at stack index 2, every argument after it is $k. */
int lb_bind_query(lua_State *L, lb_pool *pool, lb_pin_id pin);
/* query_params: sql at stack index 2, the params array (.n, may be nil) at 3, opts at 4. */
int lb_bind_query_params(lua_State *L, lb_pool *pool, lb_pin_id pin);
/* exec_script: sql at stack index 2; on a pin a true third argument runs it as a transaction
 * statement (lb_conn_exec_control). Pushes true or nil, err. */
int lb_bind_exec_script(lua_State *L, lb_pool *pool, lb_pin_id pin);
/* The pipeline at idx; err.statement = index that failed. */
int lb_bind_pipeline(lua_State *L, int idx, lb_pool *pool, lb_pin_id pin);

/* pool:begin() (bind_pin.c): pins a connection of pool (owned: never reaped) and pushes its
 * handle, or nil, err. */
int lb_bind_begin(lua_State *L, lb_pool *pool);

/* Handle classes (bind_pool.c): a metatable with methods as __index, gc as __gc and __close. */
void lb_bind_new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                       lua_CFunction tostring);
/* "what (user@host:port/database): addr", or "what (closed): addr" when p is NULL. */
void lb_bind_push_identity(lua_State *L, const char *what, lb_pool *p, const void *addr);

#endif
