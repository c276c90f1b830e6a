/* Lua binding of pinned connections (lb_pin.c): the OpenResty bridge keeps a transaction open
 * across ngx.run_worker_thread calls, each of which may run in a different Lua state, so the
 * transaction is named by a plain integer id that any state can pass back.
 *   core.pin_new(opts, lease)          -> id | nil, err   (lease: seconds, default 60)
 *   core.pin_query(id, sql, params)    -> rows | nil, err   (as conn:query_params)
 *   core.pin_exec_script(id, sql [, control]) -> true | nil, err (control: lb_conn_exec_control)
 *   core.pin_defer(id, sql)            -> true | nil, err   (sent with the next statement)
 *   core.pin_pipeline(id, stmts)       -> results | nil, err   (as pool:pipeline)
 *   core.pin_status(id)                -> "idle" | "intrans" | "inerror" | "active" | "unknown"
 *                                         | nil, err  (libpq's transaction status; no round trip)
 *   core.pin_release(id)               -> true  (rolls back what is open, returns the connection)
 *   core.pin_exists(id)                -> boolean (not released or reaped yet)
 *   core.pin_count(), core.pin_reap()  -> integer (leased pins; pins reaped) */
#include "bind_result.h"

/* Options of the Lua layers (not settings): ignored when reading the settings table. */
static const char *const lua_only_options[] = { "thread_pool", "blocking", "lease", "log", NULL };

static lb_pin_id check_id(lua_State *L, int idx)
{
    lua_Number n = luaL_checknumber(L, idx);
    if (n < 1 || n != (lua_Number)(lb_pin_id)n)
        luaL_argerror(L, idx, "pin id expected");
    return (lb_pin_id)n;
}

static int pin_new(lua_State *L)
{
    lb_error err = LB_ERROR_INIT;
    double lease = luaL_optnumber(L, 2, 0);
    lb_settings *s;
    lb_pool *p;
    lb_pin_id id;

    s = lb_bind_check_settings(L, 1, lua_only_options, &err);
    if (!s)
        return lb_bind_fail(L, &err);
    p = lb_pool_acquire(s, &err);
    lb_settings_free(s);
    if (!p)
        return lb_bind_fail(L, &err);
    id = lb_pin_new(p, lease > 0 ? lease : LB_PIN_DEFAULT_LEASE, &err); /* 0 would be owned */
    if (!id) {
        lb_pool_release(p);
        return lb_bind_fail(L, &err);
    }
    lua_pushnumber(L, (lua_Number)id);
    return 1;
}

/* The statement runs, and its rows are built, as conn:query_params does it. */
static int pin_query(lua_State *L)
{
    return lb_bind_query_params(L, NULL, NULL, check_id(L, 1));
}

static int pin_exec_script(lua_State *L)
{
    lb_error err = LB_ERROR_INIT;
    lb_pin_id id = check_id(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    lb_conn *c = lb_pin_take(id, &err);

    if (!c)
        return lb_bind_fail(L, &err);
    if (lua_toboolean(L, 3)) /* a transaction statement (COMMIT, ROLLBACK, RELEASE ...) */
        lb_conn_exec_control(c, sql, &err);
    else
        lb_conn_exec_script(c, sql, &err);
    lb_pin_give(id, c);
    if (err.kind != LB_OK) /* judged by err: the return convention is the pool area's */
        return lb_bind_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static int pin_defer(lua_State *L)
{
    lb_error err = LB_ERROR_INIT;
    lb_pin_id id = check_id(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    lb_conn *c = lb_pin_take(id, &err);
    int rc;

    if (!c)
        return lb_bind_fail(L, &err);
    rc = lb_conn_defer(c, sql, &err);
    lb_pin_give(id, c);
    if (rc != 0)
        return lb_bind_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static int pin_pipeline(lua_State *L)
{
    return lb_bind_pipeline(L, 2, NULL, NULL, check_id(L, 1));
}

static int pin_status(lua_State *L)
{
    lb_error err = LB_ERROR_INIT;
    lb_pin_id id = check_id(L, 1);
    lb_conn *c = lb_pin_take(id, &err);
    const char *name = "unknown";

    if (!c)
        return lb_bind_fail(L, &err);
    switch (PQtransactionStatus(lb_conn_pg(c))) {
    case PQTRANS_IDLE: name = "idle"; break;
    case PQTRANS_INTRANS: name = "intrans"; break;
    case PQTRANS_INERROR: name = "inerror"; break;
    case PQTRANS_ACTIVE: name = "active"; break;
    default: break;
    }
    lb_pin_give(id, c);
    lua_pushstring(L, name);
    return 1;
}

static int pin_release(lua_State *L)
{
    lb_pin_release(check_id(L, 1));
    lua_pushboolean(L, 1);
    return 1;
}

static int pin_exists(lua_State *L)
{
    lua_pushboolean(L, lb_pin_exists(check_id(L, 1)));
    return 1;
}

static int pin_count(lua_State *L)
{
    lua_pushinteger(L, lb_pin_count());
    return 1;
}

static int pin_reap(lua_State *L)
{
    lua_pushinteger(L, lb_pin_reap());
    return 1;
}

void lb_bind_pin(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "pin_new", pin_new },
        { "pin_query", pin_query },
        { "pin_exec_script", pin_exec_script },
        { "pin_defer", pin_defer },
        { "pin_pipeline", pin_pipeline },
        { "pin_status", pin_status },
        { "pin_release", pin_release },
        { "pin_exists", pin_exists },
        { "pin_count", pin_count },
        { "pin_reap", pin_reap },
        { NULL, NULL },
    };
    lb_setfuncs(L, fns);
}
