/* Lua binding of the metrics and the event queue (lb_metrics.c, lb_log.c).
 *   core.metrics()       -> { set, ... }: every series set of the process (see push_sample)
 *   core.metrics_bounds  -> the histograms' upper bounds in seconds (ascending; +Inf implied)
 *   core.observe(mask)   -> what the core queues: 1 log events, 2 per-query events, 4 connects
 *   core.events()        -> nil when none is queued, else { {level=, event=, time=, fields={}},
 *                           ..., dropped = n } (oldest first; dropped: lost to a full queue)
 * Events are taken from the process-wide queue by whichever Lua state asks first: the layer
 * above asks only where the logger and hooks live (under nginx: the worker's main Lua state). */
#include "bind.h"

#include <stdlib.h>

static void set_count(lua_State *L, const char *k, uint64_t v)
{
#if LB_HAS_INT64
    lua_pushinteger(L, (lua_Integer)v);
#else
    lua_pushnumber(L, (lua_Number)v);
#endif
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
#if LB_HAS_INT64
        lua_pushinteger(L, (lua_Integer)h->le[i]);
#else
        lua_pushnumber(L, (lua_Number)h->le[i]);
#endif
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

static int core_observe(lua_State *L)
{
    lb_log_want((unsigned)luaL_checkinteger(L, 1) & (LB_WANT_LOG | LB_WANT_QUERY | LB_WANT_CONNECT));
    return 0;
}

#define TAKE 64

static void push_event(lua_State *L, const lb_event *e)
{
    static const char *const levels[] = { "debug", "info", "warn", "error" };
    int i;
    lua_createtable(L, 0, 4);
    set_string(L, "level", levels[e->level]);
    set_string(L, "event", e->name);
    set_number(L, "time", e->time);
    lua_createtable(L, 0, e->nfields);
    for (i = 0; i < e->nfields; i++) {
        if (e->f[i].text)
            lua_pushstring(L, e->f[i].text);
        else
            lua_pushnumber(L, e->f[i].num);
        lua_setfield(L, -2, e->f[i].key);
    }
    lua_setfield(L, -2, "fields");
}

/* The events are copied into a userdata batch first, so a Lua memory error while the tables are
 * built frees them (its __gc) instead of leaking their texts. */
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

static int core_events(lua_State *L)
{
    uint64_t dropped = 0, more = 0;
    batch *b;
    int out = 0;

    b = (batch *)lua_newuserdata(L, sizeof *b);
    b->n = b->next = 0;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, batch_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_newtable(L);
    do {
        b->n = lb_log_take(b->e, TAKE, &more);
        dropped += more;
        for (b->next = 0; b->next < b->n; b->next++) {
            push_event(L, &b->e[b->next]);
            lua_rawseti(L, -2, ++out);
            lb_event_free(&b->e[b->next]);
        }
    } while (b->n == TAKE && out < 4096);
    b->n = 0;
    if (out == 0 && dropped == 0) {
        lua_pushnil(L);
        return 1;
    }
    set_count(L, "dropped", dropped);
    return 1;
}

void lb_bind_metrics(lua_State *L)
{
    int i;
    lua_pushcfunction(L, core_metrics);
    lua_setfield(L, -2, "metrics");
    lua_pushcfunction(L, core_observe);
    lua_setfield(L, -2, "observe");
    lua_pushcfunction(L, core_events);
    lua_setfield(L, -2, "events");
    lua_createtable(L, LB_METRICS_BUCKETS, 0);
    for (i = 0; i < LB_METRICS_BUCKETS; i++) {
        lua_pushnumber(L, lb_metrics_bounds[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "metrics_bounds");
}
