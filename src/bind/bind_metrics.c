/* Lua binding of the metrics and the event queue (lb_metrics.c, lb_log.c).
 *   core.metrics()       -> { set, ... }: every series set of the process (see push_sample)
 *   core.metrics_bounds  -> the histograms' upper bounds in seconds (ascending; +Inf implied)
 *   core.observe(mask)   -> what the core queues: 1 log events, 2 per-query events, 4 connects;
 *                           the calling thread keeps its own per-query events aside (lb_log.c)
 *   core.events(on_query, on_event) -> dropped: hands the queued events, oldest first, to
 *                           on_query(sql, seconds, rows, err, pool, ended_at) or
 *                           on_event(level, name, fields, time); dropped: lost to a full queue
 * Events are taken from the process-wide queue by whichever Lua state asks first: the layer
 * above asks only where the logger and hooks live (under nginx: the worker's main Lua state). */
#include "bind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void push_count(lua_State *L, uint64_t v)
{
#if LB_HAS_INT64
    lua_pushinteger(L, (lua_Integer)v);
#else
    lua_pushnumber(L, (lua_Number)v);
#endif
}

static void set_count(lua_State *L, const char *k, uint64_t v)
{
    push_count(L, v);
    lua_setfield(L, -2, k);
}

static void set_number(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_string(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* { count =, sum =, buckets = { cumulative count per bound } } */
static void push_histogram(lua_State *L, const char *k, const lb_histogram *h)
{
    int i;
    lua_createtable(L, 0, 3);
    set_count(L, "count", h->count);
    set_number(L, "sum", h->sum);
    lua_createtable(L, LB_METRICS_BUCKETS, 0);
    for (i = 0; i < LB_METRICS_BUCKETS; i++) {
        push_count(L, h->le[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "buckets");
    lua_setfield(L, -2, k);
}

static void push_sample(lua_State *L, const lb_metrics_sample *s)
{
    int k, c, n = 0;

    lua_createtable(L, 0, 24);
    set_string(L, "kind", s->credential ? "credential" : "pool");
    set_string(L, "endpoint", s->endpoint);
    if (s->credential) {
        set_count(L, "refreshes", s->refreshes);
        set_count(L, "refresh_failures", s->refresh_failures);
        push_histogram(L, "refresh", &s->refresh);
        set_number(L, "expires_at", s->expires_at);
        return;
    }
    set_string(L, "host", s->host);
    set_count(L, "port", (uint64_t)s->port);
    set_string(L, "database", s->database);
    set_count(L, "queries", s->queries);
    set_count(L, "connects", s->connects);
    set_count(L, "connect_failures", s->connect_failures);
    push_histogram(L, "query", &s->query);
    push_histogram(L, "connect", &s->connect);
    push_histogram(L, "wait", &s->wait);
    set_count(L, "pools", (uint64_t)s->pools);
    set_count(L, "open", (uint64_t)s->open);
    set_count(L, "idle", (uint64_t)s->idle);
    set_count(L, "in_use", (uint64_t)s->in_use);
    set_count(L, "waiting", (uint64_t)s->waiting);
    set_count(L, "max", (uint64_t)s->max);
    /* errors: { { kind =, class =, count = }, ... } for the non-zero cells */
    lua_createtable(L, 0, 0);
    for (k = 1; k < LB_METRICS_KINDS; k++) {
        for (c = 0; c < LB_METRICS_CLASSES; c++) {
            if (!s->errors[k][c])
                continue;
            lua_createtable(L, 0, 3);
            set_string(L, "kind", lb_kind_name((lb_kind)k));
            set_string(L, "class", lb_metrics_class(c));
            set_count(L, "count", s->errors[k][c]);
            lua_rawseti(L, -2, ++n);
        }
    }
    lua_setfield(L, -2, "errors");
}

static int core_metrics(lua_State *L)
{
    lb_metrics_sample *s;
    size_t n, i;

    if (lb_metrics_collect(&s, &n) != 0)
        return luaL_error(L, "out of memory collecting metrics");
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        push_sample(L, &s[i]); /* may raise (memory): s leaks then, as any C array would */
        lua_rawseti(L, -2, (int)i + 1);
    }
    free(s);
    return 1;
}

/* Called by the Lua state that delivers (never by an nginx worker-thread state): its thread keeps
 * its own per-query events aside for it. */
static int core_observe(lua_State *L)
{
    unsigned mask = (unsigned)luaL_checkinteger(L, 1) & (LB_WANT_LOG | LB_WANT_QUERY | LB_WANT_CONNECT);
    lb_log_want(mask);
    lb_log_keep_queries((mask & LB_WANT_QUERY) != 0);
    return 0;
}

#define TAKE 64


/* The events are taken into a userdata batch first, so a Lua memory error while the tables are
 * built frees the rest (its __gc, or the next call) instead of leaking their texts. */
typedef struct batch {
    int n, next;
    lb_event e[TAKE];
} batch;

static int batch_gc(lua_State *L)
{
    batch *b = (batch *)lua_touserdata(L, 1);
    for (; b->next < b->n; b->next++)
        lb_event_free(&b->e[b->next]);
    b->n = 0;
    return 0;
}

/* The labels table of a series set, made once per Lua state (upvalue 2 caches them). */
static void push_pool(lua_State *L, const void *set)
{
    const char *endpoint, *host, *database;
    int port;
    lb_event e;
    lua_pushlightuserdata(L, (void *)set);
    lua_rawget(L, lua_upvalueindex(2));
    if (!lua_isnil(L, -1))
        return;
    lua_pop(L, 1);
    e.set = set;
    lb_event_pool(&e, &endpoint, &host, &database, &port);
    lua_createtable(L, 0, 4);
    set_string(L, "endpoint", endpoint);
    set_string(L, "host", host);
    set_count(L, "port", (uint64_t)port);
    set_string(L, "database", database);
    lua_pushlightuserdata(L, (void *)set);
    lua_pushvalue(L, -2);
    lua_rawset(L, lua_upvalueindex(2));
}

/* on_query(sql, seconds, rows, err, pool, ended_at) for one statement: no table is built but err
 * (failures only); pool is the set's shared labels table. A hook that raises is reported on
 * stderr (nginx's error log) and does not stop the others. */
static void call_hook(lua_State *L, int fn, const lb_query_event *q)
{
    lua_pushvalue(L, fn);
    if (q->sql)
        lua_pushstring(L, q->sql);
    else
        lua_pushnil(L);
    lua_pushnumber(L, q->seconds);
    if (q->has_rows)
        push_count(L, (uint64_t)q->rows);
    else
        lua_pushnil(L);
    if (q->error_kind) {
        lua_createtable(L, 0, 2);
        set_string(L, "kind", q->error_kind);
        if (q->sqlstate[0])
            set_string(L, "sqlstate", q->sqlstate);
    } else {
        lua_pushnil(L);
    }
    push_pool(L, q->set);
    lua_pushnumber(L, q->time);
    if (lua_pcall(L, 6, 0, 0) != 0) {
        fprintf(stderr, "lakebase: the on_query hook raised: %s\n",
                lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
        lua_pop(L, 1);
    }
}

/* The other events: on_event(level, name, fields, time). */
static void call_other(lua_State *L, int fn, const lb_event *e)
{
    static const char *const levels[] = { "debug", "info", "warn", "error" };
    int i;
    lua_pushvalue(L, fn);
    lua_pushstring(L, levels[e->level]);
    lua_pushstring(L, e->name);
    lua_createtable(L, 0, e->nfields);
    for (i = 0; i < e->nfields; i++) {
        if (e->f[i].text)
            lua_pushstring(L, e->f[i].text);
        else
            lua_pushnumber(L, e->f[i].num);
        lua_setfield(L, -2, e->f[i].key);
    }
    lua_pushnumber(L, e->time);
    if (lua_pcall(L, 4, 0, 0) != 0) {
        fprintf(stderr, "lakebase: a logger or hook raised: %s\n",
                lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
        lua_pop(L, 1);
    }
}

/* core.events(on_query, on_event): hands every queued event, oldest first, to on_query (per-query
 * events, with no table built but err) or on_event (the others); either may be nil (its events are
 * dropped). Returns the number of events lost to a full queue since the last call. The batch is an
 * upvalue, made once per Lua state (a Lua state runs one call at a time): no allocation per call,
 * and nothing at all while the queue is empty. */
static int core_events(lua_State *L)
{
    uint64_t dropped = 0, more = 0;
    int hook = lua_isfunction(L, 1) ? 1 : 0, other = lua_isfunction(L, 2) ? 2 : 0, taken = 0;
    lb_query_event kept;
    batch *b;

    if (!lb_log_pending()) {
        /* the common case with a hook: this state's own statement, kept aside (lb_log.c) */
        if (lb_log_take_kept(&kept) && hook)
            call_hook(L, hook, &kept);
        lua_pushinteger(L, 0);
        return 1;
    }
    b = (batch *)lua_touserdata(L, lua_upvalueindex(1));
    do {
        b->n = lb_log_take(b->e, TAKE, &more);
        dropped += more;
        taken += b->n;
        for (b->next = 0; b->next < b->n; b->next++) {
            const lb_event *e = &b->e[b->next];
            if (e->set && hook)
                call_hook(L, hook, &e->query);
            else if (!e->set && other)
                call_other(L, other, e);
            lb_event_free(&b->e[b->next]);
        }
    } while (b->n == TAKE && taken < 4096);
    b->n = 0;
    if (lb_log_take_kept(&kept) && hook) /* newer than everything this thread queued */
        call_hook(L, hook, &kept);
    push_count(L, dropped);
    return 1;
}

void lb_bind_metrics(lua_State *L)
{
    batch *b;
    int i;
    lua_pushcfunction(L, core_metrics);
    lua_setfield(L, -2, "metrics");
    lua_pushcfunction(L, core_observe);
    lua_setfield(L, -2, "observe");
    b = (batch *)lua_newuserdata(L, sizeof *b);
    b->n = b->next = 0;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, batch_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_newtable(L); /* labels tables by series set */
    lua_pushcclosure(L, core_events, 2);
    lua_setfield(L, -2, "events");
    lua_createtable(L, LB_METRICS_BUCKETS, 0);
    for (i = 0; i < LB_METRICS_BUCKETS; i++) {
        lua_pushnumber(L, lb_metrics_bounds[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "metrics_bounds");
}
