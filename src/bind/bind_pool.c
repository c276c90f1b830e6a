/* Lua binding of the pool (lb_pool.c, lb_conn.c).
 *   core.pool_new(opts [, ignore])   -> pool | nil, err   (ignore: extra Lua-layer option names)
 *   pool:query(sql, ...)             -> rows | nil, err   (every argument after sql is $k)
 *   pool:query_params(sql, params [, opts]) -> rows | nil, err (params: array with .n, may be nil;
 *                                    opts.idempotent: retried also when the connection died after
 *                                    the statement left)
 *   pool:exec_script(sql)            -> true | nil, err
 *   pool:begin()                     -> conn | nil, err   (a pinned connection: bind_pin.c)
 *   pool:pipeline(stmts)             -> results | nil, err   (stmts: { {sql, params}, ... },
 *                                       one flight; err.statement: the one that failed)
 *   pool:warm() -> true | nil, err (prefetch the credential, open min_idle connections),
 *   pool:stats(), pool:sweep() (close idle connections past their time), pool:close(),
 *   pool:closed(), tostring(pool)
 * The query path here (run_query, lb_bind_exec_script, lb_bind_pipeline) serves the pool and
 * the pinned connections of bind_pin.c alike. No lock is held across Lua code: a query's rows
 * are decoded (protected calls) while the server still sends them, on the checked-out
 * connection, outside the pool mutex; the pool handle keeps one reference on the process-wide
 * lb_pool. */
#include "bind_result.h"

#include <stdio.h>
#include <string.h>

#define POOL_MT "lakebase.pool"

typedef struct pool_ud {
    lb_pool *pool; /* NULL once closed */
} pool_ud;

/* Options of the Lua layers, not settings. */
static const char *const lua_only_options[] = { "thread_pool", "blocking", "lease", "log", NULL };

static pool_ud *check_pool(lua_State *L)
{
    pool_ud *u = (pool_ud *)luaL_checkudata(L, 1, POOL_MT);
    if (!u->pool)
        luaL_error(L, "attempt to use a closed lakebase pool");
    return u;
}

/* ------------------------------------------------------------------------------------------
 * Shared query plumbing
 * ---------------------------------------------------------------------------------------- */

/* Pushes params[1..n] (n = params.n, or #params) onto the stack; returns n. */
static int push_param_array(lua_State *L, int idx)
{
    int n = 0, i;
    if (lua_isnoneornil(L, idx))
        return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "n");
    if (lua_type(L, -1) == LUA_TNUMBER) {
        /* Range and integer check before the cast: (int)1e12 or (int)NaN is undefined. */
        lua_Number v = lua_tonumber(L, -1);
        n = v >= 0 && v <= 65535 && v == (lua_Number)(int)v ? (int)v : -1;
    } else
        n = (int)lb_rawlen(L, idx);
    lua_pop(L, 1);
    if (n < 0 || n > 65535)
        luaL_argerror(L, idx, "bad parameter count (n)");
    luaL_checkstack(L, n + LUA_MINSTACK, "too many parameters");
    for (i = 1; i <= n; i++)
        lua_rawgeti(L, idx, i);
    return n;
}

/* The SQL text at idx. libpq would silently cut it at a NUL byte: refuse that instead. */
const char *lb_sql_arg(lua_State *L, int idx, lb_error *err)
{
    size_t len;
    const char *sql = luaL_checklstring(L, idx, &len);
    if (strlen(sql) != len) {
        lb_error_set(err, LB_ERR_QUERY, 0, "the SQL text contains a NUL byte (at byte %zu)",
                     strlen(sql) + 1);
        return NULL;
    }
    return sql;
}

/* Streaming decode (lb_*_exec_rows): each batch of rows is appended to the rows table inside a
 * protected call, so a Lua memory error cannot skip the C core's cleanup (PGresults, draining the
 * connection, checkin); the error object is kept and raised once the core is done. */
typedef struct stream_ctx {
    lua_State *L;
    int rows_idx, fn_idx; /* stack slots of the rows table and of append_protected */
    lua_Integer count;
    PGresult *const *batch;
    int n;
    int lua_failed; /* the error object is on top of the stack */
    int gc_paused;  /* we stopped the collector: restart it when the stream ends */
} stream_ctx;

/* Once a result turns out large, the collector pauses for the rest of the decode (every object
 * built stays reachable from the rows, so its steps would be wasted work), after one step sized
 * like the heap (at most GC_STEP_MAX_KB, so a big application heap does not pay a whole cycle per
 * query): a previous, dropped result is freed first and its memory reused instead of the heap
 * growing by another result. Not when the application stopped the collector. */
#define LARGE_RESULT 256
#define GC_STEP_MAX_KB 32768

static int append_protected(lua_State *L)
{
    stream_ctx *s = (stream_ctx *)lua_touserdata(L, 1);
    if (!s->gc_paused && s->count < LARGE_RESULT && s->count + s->n >= LARGE_RESULT &&
        lb_gc_isrunning(L)) {
        int kb = lua_gc(L, LUA_GCCOUNT, 0);
        lua_gc(L, LUA_GCSTEP, kb < GC_STEP_MAX_KB ? kb : GC_STEP_MAX_KB);
        lua_gc(L, LUA_GCSTOP, 0);
        s->gc_paused = 1;
    }
    lb_append_rows(L, 2, s->batch, s->n, &s->count);
    return 0;
}

static int stream_rows(void *ctx, PGresult *const *rows, int n)
{
    stream_ctx *s = (stream_ctx *)ctx;
    lua_State *L = s->L;
    /* No allocation outside the protected call: the function was pushed once up front (LuaJIT
     * allocates a closure per lua_pushcfunction) and the stack room checked. */
    lua_pushvalue(L, s->fn_idx);
    lua_pushlightuserdata(L, s);
    lua_pushvalue(L, s->rows_idx);
    s->batch = rows;
    s->n = n;
    if (lua_pcall(L, 2, 0, 0) != 0) {
        s->lua_failed = 1;
        return 1;
    }
    return 0;
}

/* Where a call runs: on the pinned connection pin (nonzero), or on the pool. */
typedef struct target {
    lb_pool *pool;
    lb_pin_id pin;
    lb_conn *conn; /* the pin's, between target_take and target_give */
} target;

/* A pin names its connection for any Lua state: take it for the call (target_give returns it).
 * 0, or -1 with err set when the pin is gone or busy. */
static int target_take(target *t, lb_error *err)
{
    if (!t->pin)
        return 0;
    t->conn = lb_pin_take(t->pin, err);
    return t->conn ? 0 : -1;
}

static void target_give(target *t)
{
    if (t->conn) {
        lb_pin_give(t->pin, t->conn);
        t->conn = NULL;
    }
}

/* Runs sql with the n values at first.. on the target t; rows are decoded while the server still
 * sends them. flags (LB_EXEC_*) apply on the pool only: on a pin nothing is retried. */
static int run_query(lua_State *L, target t, const char *sql, int first, int n, unsigned flags)
{
    lb_error err = LB_ERROR_INIT;
    lb_params params;
    stream_ctx s;
    PGresult *res = NULL;
    char affected[32];

    /* Everything that may raise comes before the parameters own memory. */
    luaL_checkstack(L, 8, "too many parameters");
    lua_createtable(L, 0, 1);
    s.rows_idx = lua_gettop(L);
    lua_pushcfunction(L, append_protected);
    s.fn_idx = lua_gettop(L);
    s.L = L;
    s.count = 0;
    s.lua_failed = 0;
    s.gc_paused = 0;

    if (lb_params_collect(L, sql, first, n, &params, &err) != 0)
        return lb_bind_fail(L, &err);
    if (target_take(&t, &err) == 0) {
        res = t.conn ? lb_conn_exec_rows(t.conn, &params.query, stream_rows, &s, &err)
                     : lb_pool_exec_rows(t.pool, &params.query, stream_rows, &s, flags, &err);
        target_give(&t);
    }
    lb_params_free(&params);
    if (s.gc_paused)
        lua_gc(L, LUA_GCRESTART, 0);
    if (s.lua_failed) {
        PQclear(res);
        lb_error_clear(&err);
        return lua_error(L); /* the same error object (out of memory) the decode raised */
    }
    if (!res)
        return lb_bind_fail(L, &err); /* the partial rows table is dropped */
    snprintf(affected, sizeof affected, "%s", PQcmdTuples(res));
    PQclear(res);
    lua_settop(L, s.rows_idx);
    lb_set_affected_rows(L, s.rows_idx, affected);
    return 1;
}

/* exec_script of the pool and of a pin: sql at stack index 2; on a pin, a true third argument
 * marks a transaction statement (COMMIT, ROLLBACK, RELEASE ...: lb_conn_exec_control). */
int lb_bind_exec_script(lua_State *L, lb_pool *pool, lb_pin_id pin)
{
    lb_error err = LB_ERROR_INIT;
    target t = { pool, pin, NULL };
    const char *sql = lb_sql_arg(L, 2, &err);
    int rc = -1;
    if (sql && target_take(&t, &err) == 0) {
        rc = !t.conn                ? lb_pool_exec_script(t.pool, sql, &err)
             : lua_toboolean(L, 3) ? lb_conn_exec_control(t.conn, sql, &err)
                                   : lb_conn_exec_script(t.conn, sql, &err);
        target_give(&t);
    }
    if (rc != 0)
        return lb_bind_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* Pipelines: the statements at idx (an array of { sql, params }, params an array with .n or
 * nil, checked by the Lua layer) in one flight, on the pool or on the pinned connection `pin`.
 * Pushes the array of results (each as query returns it) or nil, err where err.statement is the
 * index of the statement that failed. The work arrays are userdata: nothing leaks if Lua
 * raises (out of memory) while they are filled. */
int lb_bind_pipeline(lua_State *L, int idx, lb_pool *pool, lb_pin_id pin)
{
    lb_error err = LB_ERROR_INIT;
    target t = { pool, pin, NULL };
    lb_params *params;
    lb_query *q;
    PGresult **res;
    int n, k, top, failed = -1, rc, collected = 0;

    idx = lb_abs_index(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    n = (int)lb_rawlen(L, idx);
    if (n == 0) {
        lua_createtable(L, 0, 0);
        return 1;
    }
    params = (lb_params *)lua_newuserdata(L, (size_t)n * sizeof *params);
    q = (lb_query *)lua_newuserdata(L, (size_t)n * sizeof *q);
    res = (PGresult **)lua_newuserdata(L, (size_t)n * sizeof(PGresult *));
    top = lua_gettop(L);
    luaL_checkstack(L, 8, "pipeline");
    for (k = 0; k < n && !err.message; k++) {
        const char *sql;
        int np = 0, i;
        lua_settop(L, top);
        lua_rawgeti(L, idx, k + 1);
        lua_rawgeti(L, top + 1, 1);
        sql = lua_tostring(L, -1); /* kept alive by the statements table */
        lua_rawgeti(L, top + 1, 2);
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "n");
            np = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : (int)lb_rawlen(L, top + 3);
            lua_pop(L, 1);
        }
        if (!sql || np < 0 || np > 65535) {
            lb_error_set(&err, LB_ERR_QUERY, 0, "bad statement in the pipeline");
            failed = k;
            break;
        }
        if (!lua_checkstack(L, np + LUA_MINSTACK)) {
            lb_error_set(&err, LB_ERR_QUERY, 0, "too many parameters");
            failed = k;
            break;
        }
        for (i = 1; i <= np; i++)
            lua_rawgeti(L, top + 3, i);
        if (lb_params_collect(L, sql, top + 4, np, &params[k], &err) != 0) {
            failed = k;
            break;
        }
        collected = k + 1;
        q[k] = params[k].query;
    }
    lua_settop(L, top);
    rc = -1;
    if (!err.message && target_take(&t, &err) == 0) {
        rc = t.conn ? lb_conn_pipeline(t.conn, q, n, res, &failed, &err)
                    : lb_pool_pipeline(t.pool, q, n, res, &failed, &err);
        target_give(&t);
    }
    for (k = 0; k < collected; k++)
        lb_params_free(&params[k]);
    if (rc != 0) {
        lb_bind_fail(L, &err);
        if (failed >= 0) {
            lua_pushinteger(L, failed + 1);
            lua_setfield(L, -2, "statement");
        }
        return 2;
    }
    lua_createtable(L, n, 0);
    for (k = 0; k < n; k++) {
        lb_push_result(L, res[k]);
        PQclear(res[k]);
        res[k] = NULL;
        lua_rawseti(L, -2, k + 1);
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------
 * Pool
 * ---------------------------------------------------------------------------------------- */

static int pool_new(lua_State *L)
{
    lb_error err = LB_ERROR_INIT;
    const char *ignore[32];
    size_t n = 0, i;
    lb_settings *s;
    lb_pool *p;
    pool_ud *u;

    for (i = 0; lua_only_options[i]; i++)
        ignore[n++] = lua_only_options[i];
    if (lua_type(L, 2) == LUA_TTABLE) {
        size_t len = lb_rawlen(L, 2);
        for (i = 1; i <= len && n < 31; i++) {
            lua_rawgeti(L, 2, (int)i);
            if (lua_type(L, -1) == LUA_TSTRING)
                ignore[n++] = lua_tostring(L, -1); /* anchored by the table at index 2 */
            lua_pop(L, 1);
        }
    }
    ignore[n] = NULL;

    s = lb_bind_check_settings(L, 1, ignore, &err);
    if (!s)
        return lb_bind_fail(L, &err);
    /* Arm __gc only once the pool exists (the userdata starts empty). */
    u = (pool_ud *)lua_newuserdata(L, sizeof *u);
    u->pool = NULL;
    luaL_getmetatable(L, POOL_MT);
    lua_setmetatable(L, -2);
    p = lb_pool_acquire(s, &err);
    lb_settings_free(s);
    if (!p)
        return lb_bind_fail(L, &err);
    u->pool = p;
    return 1;
}

/* core.probe(opts, password) -> { dns, tcp, tls, auth, first_query, rtt (seconds), tls_used }
 * | nil, err: a cold connect timed step by step (lakebase check). */
static int probe(lua_State *L)
{
    lb_error err = LB_ERROR_INIT;
    const char *password = luaL_optstring(L, 2, NULL);
    lb_settings *s = lb_bind_check_settings(L, 1, lua_only_options, &err);
    lb_probe pr;
    int rc;

    if (!s)
        return lb_bind_fail(L, &err);
    if (lb_settings_discover(s, &err) != 0) {
        lb_settings_free(s);
        return lb_bind_fail(L, &err);
    }
    rc = lb_conn_probe(s, password ? password : s->password, &pr, &err);
    lb_settings_free(s);
    if (rc != 0)
        return lb_bind_fail(L, &err);
    {
        const char *const names[] = { "dns", "tcp", "tls", "auth", "first_query", "rtt" };
        const double secs[] = { pr.dns, pr.tcp, pr.tls, pr.auth, pr.first_query, pr.rtt };
        size_t i;
        lua_createtable(L, 0, 7);
        for (i = 0; i < sizeof secs / sizeof secs[0]; i++) {
            lua_pushnumber(L, secs[i]);
            lua_setfield(L, -2, names[i]);
        }
    }
    lua_pushboolean(L, pr.tls_used);
    lua_setfield(L, -2, "tls_used");
    return 1;
}

/* query of the pool and of a pin: sql at stack index 2, every argument after it is $k. */
int lb_bind_query(lua_State *L, lb_pool *pool, lb_pin_id pin)
{
    lb_error err = LB_ERROR_INIT;
    const char *sql = lb_sql_arg(L, 2, &err);
    if (!sql)
        return lb_bind_fail(L, &err);
    return run_query(L, (target){ pool, pin, NULL }, sql, 3, lua_gettop(L) - 2, 0);
}

static int pool_query(lua_State *L)
{
    return lb_bind_query(L, check_pool(L)->pool, 0);
}

/* opts at idx (nil or a table) into LB_EXEC_* flags. */
static unsigned exec_flags(lua_State *L, int idx)
{
    unsigned flags = 0;
    if (lua_isnoneornil(L, idx))
        return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "idempotent");
    if (lua_toboolean(L, -1))
        flags |= LB_EXEC_IDEMPOTENT;
    lua_pop(L, 1);
    return flags;
}

/* query_params of the pool and of a pinned connection (bind_result.h); opts are checked for
 * both, though on a pin nothing is retried. */
int lb_bind_query_params(lua_State *L, lb_pool *pool, lb_pin_id pin)
{
    lb_error err = LB_ERROR_INIT;
    const char *sql = lb_sql_arg(L, 2, &err);
    unsigned flags;
    int n;
    if (!sql)
        return lb_bind_fail(L, &err);
    lua_settop(L, 4);
    flags = exec_flags(L, 4);
    n = push_param_array(L, 3);
    return run_query(L, (target){ pool, pin, NULL }, sql, 5, n, flags);
}

static int pool_query_params(lua_State *L)
{
    return lb_bind_query_params(L, check_pool(L)->pool, 0);
}

static int pool_exec_script(lua_State *L)
{
    return lb_bind_exec_script(L, check_pool(L)->pool, 0);
}

static int pool_begin(lua_State *L)
{
    return lb_bind_begin(L, check_pool(L)->pool);
}

static void set_int(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
#if LB_HAS_INT64
    if (v == (double)(lua_Integer)v) {
        lua_pop(L, 1);
        lua_pushinteger(L, (lua_Integer)v);
    }
#endif
    lua_setfield(L, -2, k);
}

static int pool_pipeline(lua_State *L)
{
    pool_ud *u = check_pool(L);
    return lb_bind_pipeline(L, 2, u->pool, 0);
}

static int pool_stats(lua_State *L)
{
    pool_ud *u = check_pool(L);
    lb_pool_stats st;
    lb_pool_stats_get(u->pool, &st);
    lua_createtable(L, 0, 11);
    set_int(L, "total", st.total);
    set_int(L, "idle", st.idle);
    set_int(L, "in_use", st.in_use);
    set_int(L, "waiting", st.waiting);
    set_int(L, "max", st.max);
    set_int(L, "connects", (double)st.connects);
    set_int(L, "connect_failures", (double)st.connect_failures);
    set_int(L, "credential_refreshes", (double)st.credential_refreshes);
    set_int(L, "credential_failures", (double)st.credential_failures);
    lua_pushnumber(L, st.credential_expires_at);
    lua_setfield(L, -2, "credential_expires_at");
    lua_pushboolean(L, st.pooler_detected);
    lua_setfield(L, -2, "pooler_detected");
    return 1;
}

/* The pool's resolved settings (secrets as "(set)"): db:reader() derives the read side from them. */
static int pool_settings(lua_State *L)
{
    pool_ud *u = check_pool(L);
    lb_bind_push_settings(L, lb_pool_settings(u->pool));
    return 1;
}

/* Drops this handle's share of the process-wide pool; the connections close when the last
 * handle (in any Lua state) lets go. */
static int pool_close(lua_State *L)
{
    pool_ud *u = (pool_ud *)luaL_checkudata(L, 1, POOL_MT);
    if (u->pool) {
        lb_pool_release(u->pool);
        u->pool = NULL;
    }
    return 0;
}

static int pool_sweep(lua_State *L)
{
    pool_ud *u = check_pool(L);
    lb_pool_sweep(u->pool);
    return 0;
}

static int pool_warm(lua_State *L)
{
    lb_error err = LB_ERROR_INIT;
    pool_ud *u = check_pool(L);
    if (lb_pool_warm(u->pool, &err) != 0)
        return lb_bind_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static int pool_closed(lua_State *L)
{
    pool_ud *u = (pool_ud *)luaL_checkudata(L, 1, POOL_MT);
    lua_pushboolean(L, u->pool == NULL);
    return 1;
}

void lb_bind_push_identity(lua_State *L, const char *what, lb_pool *p, const void *addr)
{
    if (!p) {
        lua_pushfstring(L, "%s (closed): %p", what, addr);
    } else {
        const lb_settings *s = lb_pool_settings(p);
        lua_pushfstring(L, "%s (%s@%s:%d/%s): %p", what, s->user ? s->user : "?",
                        s->host ? s->host : "?", s->port, s->database ? s->database : "?", addr);
    }
}

static int pool_tostring(lua_State *L)
{
    pool_ud *u = (pool_ud *)luaL_checkudata(L, 1, POOL_MT);
    lb_bind_push_identity(L, "lakebase.pool", u->pool, u);
    return 1;
}

/* ------------------------------------------------------------------------------------------
 * Registration
 * ---------------------------------------------------------------------------------------- */

static const luaL_Reg pool_methods[] = {
    { "begin", pool_begin },
    { "close", pool_close },
    { "closed", pool_closed },
    { "exec_script", pool_exec_script },
    { "pipeline", pool_pipeline },
    { "query", pool_query },
    { "query_params", pool_query_params },
    { "settings", pool_settings },
    { "stats", pool_stats },
    { "sweep", pool_sweep },
    { "warm", pool_warm },
    { NULL, NULL },
};

void lb_bind_new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                       lua_CFunction tostring)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    lb_setfuncs(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
}

void lb_bind_pool(lua_State *L)
{
    lb_bind_new_class(L, POOL_MT, pool_methods, pool_close, pool_tostring);
    lua_pushcfunction(L, pool_new);
    lua_setfield(L, -2, "pool_new");
    lua_pushcfunction(L, probe);
    lua_setfield(L, -2, "probe");
}
