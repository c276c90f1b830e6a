/* The event queue: what the core reports (connects, credential refreshes, slow queries, and a
 * per-query event while an on_query hook wants it) waits here until Lua takes it (lb_log_take) on
 * its next call, so a background thread never calls into Lua. A bounded ring under a mutex: when
 * it is full the oldest event is dropped and counted. Nothing is queued unless lb_log_want asked
 * for that kind of event. */
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
}

void lb_log_push(lb_event *e)
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
    if (drop)
        lb_event_free(&old);
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
