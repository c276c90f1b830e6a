/* Metrics of the pools and credentials: series sets in a process-wide registry, counters and
 * fixed-bucket histograms as relaxed C11 atomics (recording takes no lock), read by
 * lb_metrics_collect. Gauges (connections open, idle, in use, waiting) are the pools' own
 * figures, read at collection (lb_pool_gauges). */
#include "lb_metrics.h"
#include "lb_pool_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

const double lb_metrics_bounds[LB_METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};

/* The SQLSTATE classes an operator tells apart; everything else is "other". */
static const char *const classes[LB_METRICS_CLASSES] = {
    "none", "08", "22", "23", "25", "28", "40", "42", "53", "54", "55", "57", "58", "XX", "other",
};

typedef struct hist {
    atomic_uint_least64_t bucket[LB_METRICS_BUCKETS + 1]; /* not cumulative; the last is +Inf */
    atomic_uint_least64_t sum_ns;
} hist;

struct lb_metrics {
    lb_metrics *next;
    int credential;
    char *endpoint, *host, *database;
    int port;
    atomic_uint_least64_t queries, connects, connect_failures, refreshes, refresh_failures;
    atomic_uint_least64_t errors[LB_METRICS_KINDS][LB_METRICS_CLASSES];
    hist query, connect, wait, refresh;
    _Atomic double expires_at;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static lb_metrics *registry;
static size_t registry_n;

const char *lb_metrics_class(int i)
{
    return i >= 0 && i < LB_METRICS_CLASSES ? classes[i] : "other";
}

static int same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static lb_metrics *find_or_add(int credential, const char *endpoint, const char *host,
                               const char *database, int port)
{
    lb_metrics *m;

    pthread_mutex_lock(&registry_mu);
    for (m = registry; m; m = m->next) {
        if (m->credential == credential && m->port == port && same(m->endpoint, endpoint) &&
            same(m->host, host) && same(m->database, database))
            break;
    }
    if (!m && (m = calloc(1, sizeof *m)) != NULL) {
        m->credential = credential;
        m->port = port;
        m->endpoint = strdup(endpoint ? endpoint : "");
        m->host = strdup(host ? host : "");
        m->database = strdup(database ? database : "");
        if (!m->endpoint || !m->host || !m->database) {
            free(m->endpoint);
            free(m->host);
            free(m->database);
            free(m);
            m = NULL;
        } else {
            m->next = registry;
            registry = m;
            registry_n++;
        }
    }
    pthread_mutex_unlock(&registry_mu);
    return m;
}

lb_metrics *lb_metrics_for_pool(const lb_settings *s)
{
    return find_or_add(0, s->endpoint, s->host, s->database, s->port);
}

lb_metrics *lb_metrics_for_credential(const char *endpoint)
{
    return find_or_add(1, endpoint, NULL, NULL, 0);
}

void lb_metrics_labels(const lb_metrics *m, const char **endpoint, const char **host,
                       const char **database, int *port)
{
    *endpoint = m ? m->endpoint : "";
    *host = m ? m->host : "";
    *database = m ? m->database : "";
    *port = m ? m->port : 0;
}

/* ---- recording ----------------------------------------------------------------------------- */

#define ADD(counter) atomic_fetch_add_explicit(&(counter), 1, memory_order_relaxed)

static void observe(hist *h, double seconds)
{
    int i = 0;
    if (seconds < 0)
        seconds = 0;
    while (i < LB_METRICS_BUCKETS && seconds > lb_metrics_bounds[i])
        i++;
    ADD(h->bucket[i]);
    atomic_fetch_add_explicit(&h->sum_ns, (uint_least64_t)(seconds * 1e9), memory_order_relaxed);
}

static int class_index(const char *sqlstate)
{
    int i;
    if (!sqlstate || !sqlstate[0])
        return 0;
    for (i = 1; i < LB_METRICS_CLASSES - 1; i++)
        if (classes[i][0] == sqlstate[0] && classes[i][1] == sqlstate[1])
            return i;
    return LB_METRICS_CLASSES - 1;
}

void lb_metrics_error(lb_metrics *m, const lb_error *err)
{
    int kind;
    if (!m || !err || err->kind == LB_OK)
        return;
    kind = (int)err->kind < LB_METRICS_KINDS ? (int)err->kind : LB_ERR_QUERY;
    ADD(m->errors[kind][class_index(err->sqlstate)]);
}

void lb_metrics_query(lb_metrics *m, double seconds, const lb_error *err)
{
    if (!m)
        return;
    ADD(m->queries);
    observe(&m->query, seconds);
    lb_metrics_error(m, err);
}

void lb_metrics_connect(lb_metrics *m, double seconds, int ok)
{
    if (!m)
        return;
    if (ok)
        ADD(m->connects);
    else
        ADD(m->connect_failures);
    observe(&m->connect, seconds);
}

void lb_metrics_wait(lb_metrics *m, double seconds)
{
    if (m)
        observe(&m->wait, seconds);
}

void lb_metrics_refresh(lb_metrics *m, double seconds, int ok, double expires_at)
{
    if (!m)
        return;
    if (ok) {
        ADD(m->refreshes);
        atomic_store_explicit(&m->expires_at, expires_at, memory_order_relaxed);
    } else {
        ADD(m->refresh_failures);
    }
    observe(&m->refresh, seconds);
}

/* ---- collection ---------------------------------------------------------------------------- */

#define LOAD(counter) atomic_load_explicit(&(counter), memory_order_relaxed)

static void read_hist(const hist *h, lb_histogram *out)
{
    uint64_t total = 0;
    int i;
    for (i = 0; i < LB_METRICS_BUCKETS; i++) {
        total += LOAD(h->bucket[i]);
        out->le[i] = total;
    }
    out->count = total + LOAD(h->bucket[LB_METRICS_BUCKETS]);
    out->sum = (double)LOAD(h->sum_ns) / 1e9;
}

int lb_metrics_collect(lb_metrics_sample **out, size_t *n)
{
    lb_metrics_sample *s;
    lb_metrics *m;
    size_t i = 0;
    int k, c;

    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&registry_mu);
    s = calloc(registry_n ? registry_n : 1, sizeof *s);
    if (!s) {
        pthread_mutex_unlock(&registry_mu);
        return -1;
    }
    for (m = registry; m; m = m->next, i++) {
        s[i].set = m;
        s[i].credential = m->credential;
        s[i].endpoint = m->endpoint;
        s[i].host = m->host;
        s[i].database = m->database;
        s[i].port = m->port;
        s[i].queries = LOAD(m->queries);
        s[i].connects = LOAD(m->connects);
        s[i].connect_failures = LOAD(m->connect_failures);
        s[i].refreshes = LOAD(m->refreshes);
        s[i].refresh_failures = LOAD(m->refresh_failures);
        for (k = 0; k < LB_METRICS_KINDS; k++)
            for (c = 0; c < LB_METRICS_CLASSES; c++)
                s[i].errors[k][c] = LOAD(m->errors[k][c]);
        read_hist(&m->query, &s[i].query);
        read_hist(&m->connect, &s[i].connect);
        read_hist(&m->wait, &s[i].wait);
        read_hist(&m->refresh, &s[i].refresh);
        s[i].expires_at = atomic_load_explicit(&m->expires_at, memory_order_relaxed);
    }
    pthread_mutex_unlock(&registry_mu);
    lb_pool_gauges(s, i);
    *out = s;
    *n = i;
    return 0;
}
