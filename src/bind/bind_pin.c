/* Lua binding of pinned connections (lb_pin.c), the one transaction handle. A pin is named two
 * ways, and every function below takes either: by a pool:begin() handle (a userdata owning its
 * pin, never reaped), and by a plain integer id that any Lua state can pass back (the OpenResty
 * bridge keeps a transaction open across ngx.run_worker_thread calls, each of which may run in a
 * different Lua state). Each call takes the pin and gives it back.
 *   pool:begin()                       -> conn | nil, err   (bind_pool.c)
 *   core.pin_new(opts, lease)          -> id | nil, err   (lease: seconds, default 60)
 *   conn:query(sql, ...)               -> rows | nil, err   (every argument after sql is $k)
 *   conn:query_params / core.pin_query(id, sql, params) -> rows | nil, err
 *   conn:exec_script / core.pin_exec_script(id, sql [, control]) -> true | nil, err
 *                                         (control: COMMIT, ROLLBACK, RELEASE ...: the deferred
 *                                         statements travel with it, lb_conn_exec_control)
 *   conn:defer / core.pin_defer(id, sql) -> true | nil, err   (sent with the next statement:
 *                                         BEGIN and SAVEPOINT cost no round trip)
 *   conn:pipeline / core.pin_pipeline(id, stmts) -> results | nil, err   (as pool:pipeline)
 *   conn:status()                      -> "idle" | "active" | "transaction" | "failed" | "unknown"
 *   core.pin_status(id)                -> "idle" | "active" | "intrans" | "inerror" | "unknown"
 *                                         | nil, err  (libpq's transaction status; no round trip)
 *   conn:in_transaction()              -> boolean
 *   conn:release() (also __gc, __close) / core.pin_release(id) -> true (the id form)
 *                                         (rolls back what is open, returns the connection)
 *   core.pin_exists(id)                -> boolean (not released or reaped yet)
 *   core.pin_count(), core.pin_reap()  -> integer (leased pins; pins reaped) */
#include "bind_result.h"

#define CONN_MT "lakebase.conn"

/* pool:begin()'s handle. */
typedef struct pin_ud {
    lb_pin_id pin; /* owned (lease 0); 0 once released */
    lb_pool *pool; /* the handle's own reference, for __tostring */
} pin_ud;

/* Options of the Lua layers (not settings): ignored when reading the settings table. */
static const char *const lua_only_options[] = { "thread_pool", "blocking", "lease", "log", NULL };

static lb_pin_id check_id(lua_State *L, int idx)
{
    lua_Number n = luaL_checknumber(L, idx);
    if (n < 1 || n != (lua_Number)(lb_pin_id)n)
        luaL_argerror(L, idx, "pin id expected");
    return (lb_pin_id)n;
}

/* The pin at idx: a handle (raises once released) or an id. */
static lb_pin_id check_pin(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TUSERDATA) {
        pin_ud *u = (pin_ud *)luaL_checkudata(L, idx, CONN_MT);
        if (!u->pin)
            luaL_error(L, "attempt to use a released lakebase connection");
        return u->pin;
    }
    return check_id(L, idx);
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

int lb_bind_begin(lua_State *L, lb_pool *pool)
{
    lb_error err = LB_ERROR_INIT;
    /* Arm __gc only once the pin exists (the userdata starts empty). */
    pin_ud *u = (pin_ud *)lua_newuserdata(L, sizeof *u);
    u->pin = 0;
    u->pool = NULL;
    luaL_getmetatable(L, CONN_MT);
    lua_setmetatable(L, -2);
    lb_pool_retain(pool); /* the pin's reference */
    u->pin = lb_pin_new(pool, 0, &err);
    if (!u->pin) {
        lb_pool_release(pool);
        return lb_bind_fail(L, &err);
    }
    lb_pool_retain(pool);
    u->pool = pool;
    return 1;
}

static int pin_query_args(lua_State *L)
{
    return lb_bind_query(L, NULL, check_pin(L, 1));
}

static int pin_query(lua_State *L)
{
    return lb_bind_query_params(L, NULL, check_pin(L, 1));
}

static int pin_exec_script(lua_State *L)
{
    return lb_bind_exec_script(L, NULL, check_pin(L, 1));
}

static int pin_pipeline(lua_State *L)
{
    return lb_bind_pipeline(L, 2, NULL, check_pin(L, 1));
}

static int pin_defer(lua_State *L)
{
    lb_error err = LB_ERROR_INIT;
    lb_pin_id id = check_pin(L, 1);
    const char *sql = lb_sql_arg(L, 2, &err);
    lb_conn *c = sql ? lb_pin_take(id, &err) : NULL;
    int rc = -1;

    if (c) {
        rc = lb_conn_defer(c, sql, &err);
        lb_pin_give(id, c);
    }
    if (rc != 0)
        return lb_bind_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* libpq's transaction status, no round trip: a handle says it in lakebase.db's words (what its
 * transaction rules ask before COMMIT), an id in libpq's (core.pin_status). */
static int pin_status(lua_State *L)
{
    static const char *const handle_names[] = { "idle", "active", "transaction", "failed" };
    static const char *const id_names[] = { "idle", "active", "intrans", "inerror" };
    lb_error err = LB_ERROR_INIT;
    const char *const *names = lua_type(L, 1) == LUA_TUSERDATA ? handle_names : id_names;
    lb_pin_id id = check_pin(L, 1);
    lb_conn *c = lb_pin_take(id, &err);
    const char *name = "unknown";

    if (!c)
        return lb_bind_fail(L, &err);
    switch (PQtransactionStatus(lb_conn_pg(c))) {
    case PQTRANS_IDLE: name = names[0]; break;
    case PQTRANS_ACTIVE: name = names[1]; break;
    case PQTRANS_INTRANS: name = names[2]; break;
    case PQTRANS_INERROR: name = names[3]; break;
    default: break;
    }
    lb_pin_give(id, c);
    lua_pushstring(L, name);
    return 1;
}

static int pin_in_transaction(lua_State *L)
{
    lb_error err = LB_ERROR_INIT;
    lb_pin_id id = check_pin(L, 1);
    lb_conn *c = lb_pin_take(id, &err);

    if (!c)
        return lb_bind_fail(L, &err);
    lua_pushboolean(L, lb_conn_in_transaction(c));
    lb_pin_give(id, c);
    return 1;
}

/* Rolls back what is open and returns the connection (lb_pin_release). Idempotent. A handle's
 * release (also its __gc and __close) returns nothing, as conn:release() always did. */
static int pin_release(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TUSERDATA) {
        pin_ud *u = (pin_ud *)luaL_checkudata(L, 1, CONN_MT);
        if (u->pin) {
            lb_pin_id id = u->pin;
            lb_pool *p = u->pool;
            u->pin = 0;
            u->pool = NULL;
            lb_pin_release(id);
            lb_pool_release(p);
        }
        return 0;
    }
    lb_pin_release(check_id(L, 1));
    lua_pushboolean(L, 1);
    return 1;
}

static int pin_tostring(lua_State *L)
{
    pin_ud *u = (pin_ud *)luaL_checkudata(L, 1, CONN_MT);
    lb_bind_push_identity(L, CONN_MT, u->pool, u);
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
    static const luaL_Reg methods[] = {
        { "defer", pin_defer },
        { "exec_script", pin_exec_script },
        { "in_transaction", pin_in_transaction },
        { "pipeline", pin_pipeline },
        { "query", pin_query_args },
        { "query_params", pin_query },
        { "release", pin_release },
        { "status", pin_status },
        { NULL, NULL },
    };
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
    lb_bind_new_class(L, CONN_MT, methods, pin_release, pin_tostring);
    lb_setfuncs(L, fns);
}
