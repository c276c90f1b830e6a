/* lb_metrics and lb_log without a server: series sets by labels, histogram buckets, errors by
 * kind and SQLSTATE class, concurrent recording from threads, and the event queue (wanted kinds,
 * a full queue dropping the oldest). */
#include <pthread.h>
#include <string.h>

#include "tap.h"
#include "lb_metrics.h"

static lb_metrics_sample *find(lb_metrics_sample *s, size_t n, const void *set)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (s[i].set == set)
            return &s[i];
    return NULL;
}

#define THREADS 4
#define PER_THREAD 100000

static void *hammer(void *arg)
{
    int i;
    for (i = 0; i < PER_THREAD; i++)
        lb_metrics_query((lb_metrics *)arg, 0.002, NULL);
    return NULL;
}

int main(void)
{
    lb_settings s;
    lb_metrics *m, *m2, *other, *cred;
    lb_metrics_sample *all, *x;
    lb_error e = LB_ERROR_INIT;
    lb_event ev[8];
    pthread_t th[THREADS];
    uint64_t dropped = 0;
    size_t n;
    int i, got;

    memset(&s, 0, sizeof s);
    s.host = "db.example";
    s.port = 5432;
    s.database = "app";
    s.endpoint = "projects/p/branches/b/endpoints/e";
    s.user = "someone";
    m = lb_metrics_for_pool(&s);
    m2 = lb_metrics_for_pool(&s);
    s.user = "another";
    ok(m && m == m2 && lb_metrics_for_pool(&s) == m, "one set per endpoint, host, port, database (not per user)");
    s.port = 5433;
    other = lb_metrics_for_pool(&s);
    ok(other && other != m, "another port: another set");
    cred = lb_metrics_for_credential(s.endpoint);
    ok(cred && cred != m && cred == lb_metrics_for_credential(s.endpoint), "a credential set per endpoint");

    lb_metrics_query(m, 0.0004, NULL);  /* <= 0.0005 */
    lb_metrics_query(m, 0.003, NULL);   /* <= 0.005 */
    lb_metrics_query(m, 100, NULL);     /* +Inf only */
    lb_error_set(&e, LB_ERR_QUERY, 0, "division by zero");
    strcpy(e.sqlstate, "22012");
    lb_metrics_query(m, 0.001, &e);
    strcpy(e.sqlstate, "ZZ999");
    lb_metrics_query(m, 0.001, &e);
    lb_error_set(&e, LB_ERR_POOL, 1, "no free connection");
    lb_metrics_error(m, &e);
    lb_error_clear(&e);
    lb_metrics_connect(m, 0.02, 1);
    lb_metrics_connect(m, 0.5, 0);
    lb_metrics_wait(m, 0.0001);
    lb_metrics_refresh(cred, 0.1, 1, 2000000000.0);
    lb_metrics_refresh(cred, 0.2, 0, 0);

    got = lb_metrics_collect(&all, &n);
    ok(got == 0 && n >= 3, "collect: %zu sets", n);
    x = find(all, n, m);
    ok(x && x->queries == 5 && x->query.count == 5, "queries and the histogram count");
    ok(x && x->query.le[0] == 1 && x->query.le[1] == 3 && x->query.le[3] == 4 &&
       x->query.le[LB_METRICS_BUCKETS - 1] == 4, "cumulative buckets; 100 s only in +Inf");
    ok(x && x->query.sum > 100.005 && x->query.sum < 100.006, "sum in seconds (%f)", x ? x->query.sum : 0);
    ok(x && x->errors[LB_ERR_QUERY][2] == 1 && strcmp(lb_metrics_class(2), "22") == 0,
       "22012 counted under class 22");
    ok(x && x->errors[LB_ERR_QUERY][LB_METRICS_CLASSES - 1] == 1 &&
       strcmp(lb_metrics_class(LB_METRICS_CLASSES - 1), "other") == 0, "an unknown class is other");
    ok(x && x->errors[LB_ERR_POOL][0] == 1 && strcmp(lb_metrics_class(0), "none") == 0,
       "a pool error without SQLSTATE");
    ok(x && x->connects == 1 && x->connect_failures == 1 && x->connect.count == 2, "connects");
    ok(x && x->wait.count == 1 && x->pools == 0, "wait; no live pool, no gauges");
    x = find(all, n, cred);
    ok(x && x->credential && x->refreshes == 1 && x->refresh_failures == 1 &&
       x->expires_at == 2000000000.0, "credential refreshes, failures, expiry");
    free(all);

    for (i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, hammer, other);
    for (i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    lb_metrics_collect(&all, &n);
    x = find(all, n, other);
    ok(x && x->queries == THREADS * PER_THREAD && x->query.le[2] == THREADS * PER_THREAD,
       "%d threads x %d: no count lost", THREADS, PER_THREAD);
    free(all);

    /* events */
    ok(lb_log_wanted() == 0, "nothing wanted by default");
    lb_observe_query(m, "select $1", 2.0, 1.0, NULL, NULL);
    ok(lb_log_take(ev, 8, &dropped) == 0, "a slow query is not queued while no logger wants it");
    lb_log_want(LB_WANT_LOG);
    lb_observe_query(m, "select $1", 2.0, 1.0, NULL, NULL);
    lb_observe_query(m, "select 2", 0.5, 1.0, NULL, NULL);
    got = lb_log_take(ev, 8, &dropped);
    ok(got == 1 && strcmp(ev[0].name, "slow_query") == 0 && ev[0].level == LB_LOG_WARN,
       "one slow_query event (the fast one is not)");
    for (i = 0; got == 1 && i < ev[0].nfields; i++)
        if (strcmp(ev[0].f[i].key, "sql") == 0)
            ok(strcmp(ev[0].f[i].text, "select $1") == 0, "with its SQL text");
    if (got == 1)
        lb_event_free(&ev[0]);
    for (i = 0; i < 1030; i++)
        lb_observe_wait(m, 1.0, 100, NULL);
    got = lb_log_take(ev, 8, &dropped);
    ok(got == 8 && dropped == 6, "a full queue drops the oldest (%llu dropped)", (unsigned long long)dropped);
    for (i = 0; i < got; i++)
        lb_event_free(&ev[i]);
    while ((got = lb_log_take(ev, 8, NULL)) > 0)
        for (i = 0; i < got; i++)
            lb_event_free(&ev[i]);

    /* a thread that delivers its own per-query events keeps the latest aside, in order */
    {
        lb_query_event q;
        char long_sql[3000];
        memset(long_sql, 'x', sizeof long_sql - 1);
        long_sql[sizeof long_sql - 1] = '\0';
        lb_log_want(LB_WANT_LOG | LB_WANT_QUERY);
        lb_log_keep_queries(1);
        lb_observe_query(m, "select 1", 0.001, 1.0, NULL, NULL);
        ok(lb_log_pending() == 0 && lb_log_take(ev, 8, NULL) == 0, "a statement's event is kept, not queued");
        ok(lb_log_take_kept(&q) == 1 && strcmp(q.sql, "select 1") == 0 && q.set == m &&
               q.seconds == 0.001 && !q.error_kind,
           "and taken by the thread that ran it");
        ok(lb_log_take_kept(&q) == 0, "once");
        lb_observe_query(m, "select 2", 0.001, 1.0, NULL, NULL);
        lb_observe_query(m, "select 3", 2.0, 1.0, NULL, NULL); /* slow: a log event first */
        got = lb_log_take(ev, 8, NULL);
        ok(got == 2 && ev[0].set && strcmp(ev[0].query.sql, "select 2") == 0 &&
               strcmp(ev[1].name, "slow_query") == 0,
           "the kept one enters the queue before what the thread reports next");
        for (i = 0; i < got; i++)
            lb_event_free(&ev[i]);
        ok(lb_log_take_kept(&q) == 1 && strcmp(q.sql, "select 3") == 0, "the newest stays kept");
        lb_observe_query(m, long_sql, 0.001, 1.0, NULL, NULL);
        got = lb_log_take(ev, 8, NULL);
        ok(got == 1 && ev[0].set && strlen(ev[0].query.sql) == sizeof long_sql - 1 &&
               lb_log_take_kept(&q) == 0,
           "a statement longer than the kept copy is queued whole");
        for (i = 0; i < got; i++)
            lb_event_free(&ev[i]);
        lb_log_keep_queries(0);
        lb_observe_query(m, "select 4", 0.001, 1.0, NULL, NULL);
        got = lb_log_take(ev, 8, NULL);
        ok(got == 1 && strcmp(ev[0].query.sql, "select 4") == 0, "other threads queue theirs");
        for (i = 0; i < got; i++)
            lb_event_free(&ev[i]);
    }
    lb_log_want(0);

    printf("1..%d\n", test_no);
    return failures ? 1 : 0;
}
