/* Micro benchmarks of the C core through its public API (src/lakebase.h):
 *   micro-credential: lb_credentials_get on a warm cache (PAT against the fake workspace), ns/op;
 *   micro-pool:       lb_pool_checkout + lb_pool_checkin of an idle connection, ns/op;
 *   micro-metrics:    what every statement adds for metrics (lb_conn.c): two monotonic clock reads
 *                     and lb_observe_query with no logger or hook, ns/op;
 *   micro-query-event: the same with an on_query hook wanting events, on the thread that delivers
 *                     them: the event kept aside and taken (lb_log_take_kept), ns/op;
 *   micro-query-event-queued: the same on any other thread (an nginx worker thread): the event
 *                     made, queued, taken (lb_log_take) and freed, ns/op.
 * usage: micro [rounds]   (settings from the LAKEBASE_TEST_* variables of the fixtures' env.sh)
 * Prints one JSON line per round and measure; report.py takes the median. */
#include "lakebase.h"
#include "lb_metrics.h"
#include "lb_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v) {
        fprintf(stderr, "micro: %s is not set (source the fixtures' env.sh)\n", name);
        exit(2);
    }
    return v;
}

static void fail(const char *what, lb_error *err)
{
    fprintf(stderr, "micro: %s: %s\n", what, err->message ? err->message : "?");
    exit(1);
}

static lb_settings *load(const lb_option *opts, size_t n)
{
    lb_error err = LB_ERROR_INIT;
    lb_settings *s = lb_settings_load(opts, n, &err);
    if (!s)
        fail("settings", &err);
    return s;
}

static void emit(const char *workload, int round, double ns, long ops)
{
    printf("{\"round\":%d,\"peer\":\"lakebase C core\",\"workload\":\"%s\",\"value\":%.1f,"
           "\"unit\":\"ns/op\",\"ops\":%ld}\n", round, workload, ns, ops);
    fflush(stdout);
}

/* Credential cache hit: the token is fetched once, then every call serves the cached copy. */
static double credential_round(lb_credentials *c, long ops)
{
    lb_error err = LB_ERROR_INIT;
    char *token = NULL;
    double expires_at, t0;
    long i;

    t0 = now();
    for (i = 0; i < ops; i++) {
        if (lb_credentials_get(c, &token, &expires_at, &err) != 0)
            fail("credential", &err);
        free(token);
    }
    return (now() - t0) / (double)ops * 1e9;
}

/* Checkout of an idle connection and its clean return. */
static double pool_round(lb_pool *p, long ops)
{
    lb_error err = LB_ERROR_INIT;
    double t0;
    long i;

    t0 = now();
    for (i = 0; i < ops; i++) {
        lb_conn *c = lb_pool_checkout(p, &err);
        if (!c)
            fail("checkout", &err);
        lb_pool_checkin(p, c);
    }
    return (now() - t0) / (double)ops * 1e9;
}

/* What a statement adds in lb_conn.c: two clock reads and its recording (and, when an on_query
 * hook wants it, its event through the queue). */
enum { NO_HOOK, HOOK_KEPT, HOOK_QUEUED };

static double observe_round(lb_metrics *m, long ops, int hook)
{
    lb_query_event q;
    lb_event ev;
    double t0;
    long i;

    lb_log_want(hook != NO_HOOK ? LB_WANT_QUERY : 0);
    lb_log_keep_queries(hook == HOOK_KEPT);
    t0 = now();
    for (i = 0; i < ops; i++) {
        double started = lb_time_mono();
        lb_observe_query(m, "select $1::int as v", lb_time_mono() - started, 1.0, NULL, NULL);
        if (hook == HOOK_KEPT)
            lb_log_take_kept(&q);
        else if (hook == HOOK_QUEUED && lb_log_take(&ev, 1, NULL) == 1)
            lb_event_free(&ev);
    }
    lb_log_keep_queries(0);
    lb_log_want(0);
    return (now() - t0) / (double)ops * 1e9;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 3, r;
    const long cred_ops = 2000000, pool_ops = 500000, obs_ops = 2000000;
    lb_error err = LB_ERROR_INIT;
    const lb_option cred_opts[] = {
        { "host", env("LAKEBASE_TEST_PGHOST"), NULL },
        { "port", env("LAKEBASE_TEST_PGPORT"), NULL },
        { "database", env("LAKEBASE_TEST_PGDATABASE"), NULL },
        { "user", env("LAKEBASE_TEST_PGUSER"), NULL },
        { "endpoint", env("LAKEBASE_TEST_ENDPOINT"), NULL },
        { "databricks_host", env("LAKEBASE_TEST_DATABRICKS_HOST"), NULL },
        { "token", env("LAKEBASE_TEST_TOKEN"), NULL },
        { "sslmode", "require", NULL },
        { "sslrootcert", env("LAKEBASE_TEST_SSLROOTCERT"), NULL },
    };
    /* The pool bench uses the same server as every other peer: password auth, plain TCP. */
    const lb_option pool_opts[] = {
        { "host", "127.0.0.1", NULL },
        { "port", env("LAKEBASE_TEST_PGPORT"), NULL },
        { "database", env("LAKEBASE_TEST_PGDATABASE"), NULL },
        { "user", env("LAKEBASE_TEST_ADMIN_USER"), NULL },
        { "password", env("LAKEBASE_TEST_ADMIN_PASSWORD"), NULL },
        { "sslmode", "disable", NULL },
        { "max", "1", NULL },
    };
    lb_settings *cs = load(cred_opts, sizeof cred_opts / sizeof cred_opts[0]);
    lb_settings *ps = load(pool_opts, sizeof pool_opts / sizeof pool_opts[0]);
    lb_credentials *cred = lb_credentials_acquire(cs, &err);
    lb_pool *pool;
    lb_metrics *metrics;
    lb_conn *c;
    char *token = NULL;
    double expires_at;

    if (cs->auth != LB_AUTH_TOKEN) { /* e.g. PGPASSWORD in the environment means password auth */
        fprintf(stderr, "micro: the credential settings did not resolve to token auth (unset PGPASSWORD)\n");
        return 1;
    }
    if (!cred)
        fail("credentials", &err);
    if (lb_credentials_get(cred, &token, &expires_at, &err) != 0) /* warm the cache */
        fail("credential", &err);
    free(token);
    if (!(pool = lb_pool_acquire(ps, &err)))
        fail("pool", &err);
    if (!(c = lb_pool_checkout(pool, &err))) /* open the one connection */
        fail("checkout", &err);
    lb_pool_checkin(pool, c);

    metrics = lb_metrics_for_pool(ps);
    credential_round(cred, cred_ops / 10); /* warm-up */
    pool_round(pool, pool_ops / 10);
    for (r = 0; r < rounds; r++) {
        emit("micro-credential", r, credential_round(cred, cred_ops), cred_ops);
        emit("micro-pool", r, pool_round(pool, pool_ops), pool_ops);
        emit("micro-metrics", r, observe_round(metrics, obs_ops, NO_HOOK), obs_ops);
        emit("micro-query-event", r, observe_round(metrics, obs_ops, HOOK_KEPT), obs_ops);
        emit("micro-query-event-queued", r, observe_round(metrics, obs_ops, HOOK_QUEUED), obs_ops);
    }

    lb_pool_close(pool);
    lb_pool_release(pool);
    lb_credentials_release(cred);
    lb_settings_free(cs);
    lb_settings_free(ps);
    return 0;
}
