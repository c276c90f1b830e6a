/* The event queue: what the core reports (connects, credential refreshes, slow queries, and a
 * per-query event while an on_query hook wants it) waits here until Lua takes it (lb_log_take) on
 * its next call, so a background thread never calls into Lua. A bounded ring under a mutex: when
 * it is full the oldest event is dropped and counted. Nothing is queued unless lb_log_want asked
 * for that kind of event. A thread that delivers its own events keeps its latest per-query event
 * aside (lb_log_keep_queries): the statement the hook is told about next costs no copy into the
 * ring and no lock, which is most of what a hook costs per query. */
#include "lb_metrics.h"
#include "lb_time.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUEUE_MAX 1024

static atomic_uint wanted;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static lb_event ring[QUEUE_MAX];
static size_t head, count;
static uint64_t dropped;
static atomic_int pending; /* count + (dropped > 0), readable without the lock */

/* Longer SQL goes through the queue: the kept copy is a fixed buffer, so keeping costs no malloc. */
#define KEPT_SQL 2048
static _Thread_local int keep;         /* this thread delivers its own per-query events */
static _Thread_local int kept_n;       /* 1 while `kept` holds one not yet taken */
static _Thread_local lb_query_event kept;
static _Thread_local char kept_sql[KEPT_SQL];

void lb_log_want(unsigned mask)
{
    atomic_store_explicit(&wanted, mask, memory_order_relaxed);
}

unsigned lb_log_wanted(void)
{
    return atomic_load_explicit(&wanted, memory_order_relaxed);
}

void lb_event_init(lb_event *e, lb_log_level level, const char *name)
{
    memset(e, 0, sizeof *e);
    e->level = level;
    e->name = name;
    e->time = lb_time_wall();
}

void lb_event_str(lb_event *e, const char *key, const char *text)
{
    if (!text || e->nfields >= LB_EVENT_FIELDS)
        return;
    if ((e->f[e->nfields].text = strdup(text)) != NULL)
        e->f[e->nfields++].key = key;
}

void lb_event_num(lb_event *e, const char *key, double num)
{
    if (e->nfields >= LB_EVENT_FIELDS)
        return;
    e->f[e->nfields].key = key;
    e->f[e->nfields].text = NULL;
    e->f[e->nfields++].num = num;
}

void lb_event_labels(lb_event *e, const lb_metrics *m)
{
    const char *endpoint, *host, *database;
    int port;
    lb_metrics_labels(m, &endpoint, &host, &database, &port);
    if (endpoint[0])
        lb_event_str(e, "endpoint", endpoint);
    if (host[0]) {
        lb_event_str(e, "host", host);
        lb_event_num(e, "port", port);
    }
    if (database[0])
        lb_event_str(e, "database", database);
}

void lb_event_pool(const lb_event *e, const char **endpoint, const char **host,
                   const char **database, int *port)
{
    lb_metrics_labels((const lb_metrics *)e->set, endpoint, host, database, port);
}

void lb_event_free(lb_event *e)
{
    int i;
    for (i = 0; i < e->nfields; i++)
        free(e->f[i].text);
    e->nfields = 0;
    free((char *)e->query.sql);
    e->query.sql = NULL;
}

static void push(lb_event *e)
{
    lb_event old;
    int drop = 0;

    pthread_mutex_lock(&mu);
    if (count == QUEUE_MAX) {
        old = ring[head];
        head = (head + 1) % QUEUE_MAX;
        count--;
        dropped++;
        drop = 1;
    }
    ring[(head + count) % QUEUE_MAX] = *e;
    count++;
    atomic_store_explicit(&pending, 1, memory_order_relaxed);
    pthread_mutex_unlock(&mu);
    e->nfields = 0; /* the queue owns the texts now */
    e->query.sql = NULL;
    if (drop)
        lb_event_free(&old);
}

static void queue_query(const lb_query_event *q)
{
    lb_event e;
    lb_event_init(&e, LB_LOG_DEBUG, "query");
    e.time = q->time;
    e.set = q->set;
    e.query = *q;
    e.query.sql = q->sql ? strdup(q->sql) : NULL;
    push(&e);
}

/* The kept event goes into the queue before anything this thread reports after it. */
static void queue_kept(void)
{
    if (kept_n) {
        kept_n = 0;
        queue_query(&kept);
    }
}

void lb_log_push(lb_event *e)
{
    queue_kept();
    push(e);
}

void lb_log_query(const lb_query_event *q)
{
    size_t len;

    queue_kept();
    if (keep && q->sql && (len = strlen(q->sql)) < KEPT_SQL) {
        kept = *q;
        memcpy(kept_sql, q->sql, len + 1);
        kept.sql = kept_sql;
        kept_n = 1;
        return;
    }
    queue_query(q);
}

void lb_log_keep_queries(int on)
{
    keep = on;
    kept_n = 0;
}

int lb_log_take_kept(lb_query_event *out)
{
    if (!kept_n)
        return 0;
    *out = kept;
    kept_n = 0;
    return 1;
}

int lb_log_pending(void)
{
    return atomic_load_explicit(&pending, memory_order_relaxed);
}

int lb_log_take(lb_event *out, int max, uint64_t *lost)
{
    int n = 0;

    if (!lb_log_pending() && !lost)
        return 0;
    pthread_mutex_lock(&mu);
    while (n < max && count > 0) {
        out[n++] = ring[head];
        head = (head + 1) % QUEUE_MAX;
        count--;
    }
    if (lost)
        *lost = dropped;
    dropped = 0;
    atomic_store_explicit(&pending, count > 0, memory_order_relaxed);
    pthread_mutex_unlock(&mu);
    return n;
}
