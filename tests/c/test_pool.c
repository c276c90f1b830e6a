/* The pool from C against the fixtures' PostgreSQL (password auth as the admin): 8 threads
 * hammering one pool (never more than max open, no error, no leak), FIFO waiting and
 * acquire_timeout, clean checkins (open/failed transactions, pending results), replacement of a
 * terminated connection, deferred statements and pipelines, the registry, and close waking
 * waiters. TAP output; without the
 * fixtures' env everything is skipped. Run it under ASan/TSan (see make check-memory). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "lakebase.h"
#include "tap.h"


/* Settings for the admin with password auth; extra options override. */
static lb_settings *settings(const char *max, const char *acquire_timeout, const char *app)
{
    lb_option opts[] = {
        { "host", env("LAKEBASE_TEST_PGHOST"), NULL },
        { "port", env("LAKEBASE_TEST_PGPORT"), NULL },
        { "database", env("LAKEBASE_TEST_PGDATABASE"), NULL },
        { "user", env("LAKEBASE_TEST_ADMIN_USER"), NULL },
        { "password", env("LAKEBASE_TEST_ADMIN_PASSWORD"), NULL },
        { "sslmode", "require", NULL },
        { "sslrootcert", env("LAKEBASE_TEST_SSLROOTCERT"), NULL },
        { "max", max, NULL },
        { "acquire_timeout", acquire_timeout, NULL },
        { "application_name", app, NULL },
    };
    lb_error err = LB_ERROR_INIT;
    lb_settings *s = lb_settings_load(opts, sizeof opts / sizeof opts[0], &err);
    if (!s) {
        printf("# settings: %s\n", err.message);
        lb_error_clear(&err);
    }
    return s;
}

static lb_pool *pool_for(const char *max, const char *acquire_timeout, const char *app)
{
    lb_error err = LB_ERROR_INIT;
    lb_settings *s = settings(max, acquire_timeout, app);
    lb_pool *p;
    if (!s)
        return NULL;
    p = lb_pool_acquire(s, &err);
    lb_settings_free(s);
    if (!p) {
        printf("# pool: %s\n", err.message);
        lb_error_clear(&err);
    }
    return p;
}

/* Runs `select $1::int + 1` on c (or through the pool when c is NULL); 1 when the answer is right. */
static int add_one(lb_pool *p, lb_conn *c, int v, lb_error *err)
{
    char buf[16];
    const char *values[1];
    const lb_query q = { .sql = "select $1::int + 1", .nparams = 1, .values = values };
    PGresult *res;
    int good;
    snprintf(buf, sizeof buf, "%d", v);
    values[0] = buf;
    res = c ? lb_conn_exec(c, &q, err) : lb_pool_exec(p, &q, err);
    if (!res)
        return 0;
    good = PQntuples(res) == 1 && atoi(PQgetvalue(res, 0, 0)) == v + 1;
    PQclear(res);
    return good;
}

/* ---- 8 threads hammering one pool ----------------------------------------------------------- */

#define THREADS 8
#define ROUNDS 300
#define HAMMER_MAX 3

typedef struct hammer {
    lb_pool *pool;
    int id, errors, wrong;
    char last_error[256];
} hammer;

static int monitor_stop; /* __atomic: the monitor thread reads it */
static int monitor_over_max;
static int monitor_samples;

static void *monitor(void *arg)
{
    lb_pool *p = arg;
    while (!__atomic_load_n(&monitor_stop, __ATOMIC_ACQUIRE)) {
        lb_pool_stats st;
        lb_pool_stats_get(p, &st);
        if (st.total > st.max || st.in_use > st.total || st.idle + st.in_use > st.total)
            monitor_over_max++;
        monitor_samples++;
        sleep_s(0.001);
    }
    return NULL;
}

static void *hammer_run(void *arg)
{
    hammer *h = arg;
    int i;
    for (i = 0; i < ROUNDS; i++) {
        lb_error err = LB_ERROR_INIT;
        int good;
        if (i % 2) {
            good = add_one(h->pool, NULL, h->id * 1000 + i, &err);
        } else {
            lb_conn *c = lb_pool_checkout(h->pool, &err);
            good = c && add_one(h->pool, c, h->id * 1000 + i, &err);
            if (c) {
                if (i % 10 == 0) /* sometimes leave a transaction open: checkin must clean it */
                    lb_conn_exec_script(c, "BEGIN; SELECT 1", &err);
                lb_pool_checkin(h->pool, c);
            }
        }
        if (!good) {
            if (err.kind != LB_OK) {
                h->errors++;
                snprintf(h->last_error, sizeof h->last_error, "%s", err.message);
            } else {
                h->wrong++;
            }
        }
        lb_error_clear(&err);
    }
    return NULL;
}

static void test_hammer(void)
{
    pthread_t th[THREADS], mon;
    hammer hs[THREADS];
    lb_pool *p = pool_for("3", "30", "lb_c_hammer");
    lb_pool_stats st;
    int i, errors = 0, wrong = 0;
    double t0;

    if (!ok(p != NULL, "pool for the hammer test"))
        return;
    __atomic_store_n(&monitor_stop, 0, __ATOMIC_RELEASE);
    pthread_create(&mon, NULL, monitor, p);
    t0 = now();
    for (i = 0; i < THREADS; i++) {
        memset(&hs[i], 0, sizeof hs[i]);
        hs[i].pool = p;
        hs[i].id = i + 1;
        pthread_create(&th[i], NULL, hammer_run, &hs[i]);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        errors += hs[i].errors;
        wrong += hs[i].wrong;
        if (hs[i].errors)
            printf("# thread %d: %s\n", i, hs[i].last_error);
    }
    __atomic_store_n(&monitor_stop, 1, __ATOMIC_RELEASE);
    pthread_join(mon, NULL);
    ok(errors == 0 && wrong == 0, "%d threads x %d statements: %d errors, %d wrong answers (%.2fs)",
       THREADS, ROUNDS, errors, wrong, now() - t0);
    lb_pool_stats_get(p, &st);
    ok(monitor_over_max == 0, "never more than max=%d open (%d samples)", HAMMER_MAX, monitor_samples);
    ok(st.in_use == 0 && st.waiting == 0 && st.total <= HAMMER_MAX && st.idle == st.total,
       "all back: total %d idle %d in_use %d waiting %d", st.total, st.idle, st.in_use, st.waiting);
    ok(st.connects <= HAMMER_MAX && st.connect_failures == 0, "%llu connects for %d threads",
       (unsigned long long)st.connects, THREADS);
    lb_pool_release(p);
}

/* ---- waiting: FIFO order and acquire_timeout ------------------------------------------------ */

typedef struct waiter_arg {
    lb_pool *pool;
    double got_at, hold;
    int ok;
    lb_kind kind;
    int retriable;
} waiter_arg;

static void *wait_for_conn(void *arg)
{
    waiter_arg *w = arg;
    lb_error err = LB_ERROR_INIT;
    lb_conn *c = lb_pool_checkout(w->pool, &err);
    w->got_at = now();
    w->ok = c != NULL;
    w->kind = err.kind;
    w->retriable = err.retriable;
    if (c) {
        sleep_s(w->hold);
        lb_pool_checkin(w->pool, c);
    }
    lb_error_clear(&err);
    return NULL;
}

static void test_fifo(void)
{
    lb_error err = LB_ERROR_INIT;
    lb_pool *p = pool_for("1", "5", "lb_c_fifo");
    waiter_arg a, b;
    pthread_t ta, tb;
    lb_conn *c;
    lb_pool_stats st;

    if (!ok(p != NULL, "pool with max=1"))
        return;
    c = lb_pool_checkout(p, &err);
    ok(c != NULL, "first checkout");
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.pool = b.pool = p;
    a.hold = b.hold = 0.1;
    pthread_create(&ta, NULL, wait_for_conn, &a);
    sleep_s(0.1);
    pthread_create(&tb, NULL, wait_for_conn, &b);
    sleep_s(0.1);
    lb_pool_stats_get(p, &st);
    ok(st.waiting == 2 && st.total == 1, "two waiters queued, one connection (waiting %d)", st.waiting);
    lb_pool_checkin(p, c);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ok(a.ok && b.ok && a.got_at < b.got_at, "waiters served first come, first served");
    lb_pool_stats_get(p, &st);
    ok(st.connects == 1, "the connection was handed over, not reopened (%llu connects)",
       (unsigned long long)st.connects);
    lb_pool_release(p);
}

static void test_timeout(void)
{
    lb_error err = LB_ERROR_INIT;
    lb_pool *p = pool_for("1", "0.3", "lb_c_timeout");
    waiter_arg w;
    pthread_t t;
    lb_conn *c;
    double t0, waited;

    if (!ok(p != NULL, "pool with max=1, acquire_timeout=0.3"))
        return;
    c = lb_pool_checkout(p, &err);
    memset(&w, 0, sizeof w);
    w.pool = p;
    t0 = now();
    pthread_create(&t, NULL, wait_for_conn, &w);
    pthread_join(t, NULL);
    waited = w.got_at - t0;
    ok(!w.ok && w.kind == LB_ERR_POOL && w.retriable, "a third caller gets a retriable pool error");
    ok(waited >= 0.28 && waited < 2.0, "after acquire_timeout (waited %.2fs)", waited);
    lb_pool_checkin(p, c);
    c = lb_pool_checkout(p, &err);
    ok(c != NULL, "and the pool still works");
    lb_pool_checkin(p, c);
    lb_pool_release(p);
}

/* ---- clean checkins -------------------------------------------------------------------------- */

static void test_clean_checkin(void)
{
    lb_error err = LB_ERROR_INIT;
    lb_pool *p = pool_for("1", "5", "lb_c_clean");
    lb_conn *c;
    lb_pool_stats st;

    if (!ok(p != NULL, "pool for the checkin tests"))
        return;
    c = lb_pool_checkout(p, &err);
    ok(c && lb_conn_exec_script(c, "BEGIN; CREATE TEMP TABLE lb_dirty (a int)", &err) == 0 &&
           lb_conn_in_transaction(c), "open transaction");
    lb_pool_checkin(p, c);
    c = lb_pool_checkout(p, &err);
    ok(c && PQtransactionStatus(lb_conn_pg(c)) == PQTRANS_IDLE, "comes back idle (rolled back)");
    ok(c && lb_conn_exec_script(c, "SELECT 1 FROM lb_dirty", &err) != 0 &&
           strcmp(err.sqlstate, "42P01") == 0, "and its work was rolled back");
    lb_error_clear(&err);

    ok(lb_conn_exec_script(c, "BEGIN; SELECT 1/0", &err) != 0 &&
           PQtransactionStatus(lb_conn_pg(c)) == PQTRANS_INERROR, "failed transaction");
    lb_error_clear(&err);
    lb_pool_checkin(p, c);
    c = lb_pool_checkout(p, &err);
    ok(c && PQtransactionStatus(lb_conn_pg(c)) == PQTRANS_IDLE && add_one(p, c, 1, &err),
       "comes back idle and usable");

    /* results nobody read: the connection is discarded, not reused */
    PQsendQuery(lb_conn_pg(c), "SELECT pg_sleep(0.05)");
    lb_pool_checkin(p, c);
    lb_pool_stats_get(p, &st);
    ok(st.total == 0 && st.connects == 1, "a connection with pending results is discarded");
    c = lb_pool_checkout(p, &err);
    ok(c && add_one(p, c, 2, &err), "a new one replaces it");
    lb_pool_checkin(p, c);
    lb_pool_release(p);
}

/* ---- deferred statements and pipelines ----------------------------------------------------- */

static void test_defer_pipeline(void)
{
    lb_error err = LB_ERROR_INIT;
    lb_pool *p = pool_for("1", "5", "lb_c_pipeline");
    const char *one[1] = { "1" }, *two[1] = { "2" };
    lb_query q[3];
    PGresult *res[3];
    PGresult *r;
    lb_conn *c;
    int failed = 0;

    if (!ok(p != NULL, "pool for the pipeline tests"))
        return;
    c = lb_pool_checkout(p, &err);
    ok(c && lb_conn_defer(c, "BEGIN", &err) == 0 && !lb_conn_in_transaction(c),
       "a deferred BEGIN sends nothing");
    r = c ? lb_conn_exec(c, &(lb_query){ .sql = "SELECT $1::int AS v", .nparams = 1, .values = one },
                          &err) : NULL;
    ok(r && strcmp(PQgetvalue(r, 0, 0), "1") == 0 && lb_conn_in_transaction(c),
       "it travels with the next statement");
    PQclear(r);
    lb_pool_checkin(p, c);
    c = lb_pool_checkout(p, &err);
    ok(c && lb_conn_defer(c, "BEGIN", &err) == 0, "deferred again");
    lb_pool_checkin(p, c); /* never sent: dropped at checkin */
    c = lb_pool_checkout(p, &err);
    r = c ? lb_conn_exec(c, &(lb_query){ .sql = "SELECT 1" }, &err) : NULL;
    ok(r && !lb_conn_in_transaction(c), "a deferred statement nothing followed is dropped");
    PQclear(r);

    memset(q, 0, sizeof q);
    q[0].sql = "SELECT $1::int AS v", q[0].nparams = 1, q[0].values = one;
    q[1].sql = "SELECT $1::int AS v", q[1].nparams = 1, q[1].values = two;
    q[2].sql = "SELECT 3 AS v";
    ok(c && lb_conn_pipeline(c, q, 3, res, &failed, &err) == 0 &&
           strcmp(PQgetvalue(res[0], 0, 0), "1") == 0 && strcmp(PQgetvalue(res[1], 0, 0), "2") == 0 &&
           strcmp(PQgetvalue(res[2], 0, 0), "3") == 0, "a pipeline returns every result in order");
    if (!err.message) {
        PQclear(res[0]);
        PQclear(res[1]);
        PQclear(res[2]);
    }
    lb_error_clear(&err);
    q[1].sql = "SELECT 1/0";
    q[1].nparams = 0, q[1].values = NULL;
    ok(c && lb_conn_pipeline(c, q, 3, res, &failed, &err) != 0 && failed == 1 &&
           strcmp(err.sqlstate, "22012") == 0 && res[0] == NULL && res[2] == NULL,
       "the first failure stops it and names its index");
    lb_error_clear(&err);
    ok(c && lb_conn_pipeline(c, q, 1, res, &failed, &err) == 0 && !lb_conn_in_transaction(c),
       "the connection goes on");
    if (res[0])
        PQclear(res[0]);
    lb_pool_checkin(p, c);
    ok(lb_pool_pipeline(p, q, 1, res, &failed, &err) == 0, "lb_pool_pipeline");
    PQclear(res[0]);
    lb_error_clear(&err);
    lb_pool_release(p);
}

/* ---- a connection the server killed is replaced --------------------------------------------- */

static void test_terminated(void)
{
    lb_error err = LB_ERROR_INIT;
    lb_pool *p = pool_for("2", "5", "lb_c_kill");
    lb_pool *admin = pool_for("1", "5", "lb_c_killer");
    lb_conn *c;
    PGresult *res;
    char pid[16];
    const char *values[1] = { pid };
    const lb_query terminate = { .sql = "select pg_terminate_backend($1::int)", .nparams = 1,
                                 .values = values };
    lb_pool_stats st;
    int dead;

    if (!ok(p && admin, "pools for the termination test"))
        return;
    c = lb_pool_checkout(p, &err);
    snprintf(pid, sizeof pid, "%d", c ? PQbackendPID(lb_conn_pg(c)) : 0);
    lb_pool_checkin(p, c);
    res = lb_pool_exec(admin, &terminate, &err);
    ok(res && strcmp(PQgetvalue(res, 0, 0), "t") == 0, "terminated backend %s", pid);
    PQclear(res);
    sleep_s(0.1);
    ok(add_one(p, NULL, 41, &err), "the next statement succeeds");
    lb_pool_stats_get(p, &st);
    ok(st.connects == 2 && st.total == 1, "on a new connection (%llu connects, total %d)",
       (unsigned long long)st.connects, st.total);
    lb_error_clear(&err);

    /* a statement on a connection whose backend is gone: a retriable connect error, and the
     * checkin drops the connection */
    c = lb_pool_checkout(p, &err);
    snprintf(pid, sizeof pid, "%d", c ? PQbackendPID(lb_conn_pg(c)) : 0);
    res = lb_pool_exec(admin, &terminate, &err);
    PQclear(res);
    sleep_s(0.1);
    dead = c && !add_one(p, c, 1, &err);
    ok(dead && err.kind == LB_ERR_CONNECT && err.retriable,
       "a statement on a terminated connection: retriable connect error (%s)",
       err.message ? err.message : "none");
    lb_error_clear(&err);
    lb_pool_checkin(p, c);
    lb_pool_stats_get(p, &st);
    ok(st.total == 0 && st.idle == 0, "the broken connection is not returned (total %d)", st.total);
    lb_pool_release(p);
    lb_pool_release(admin);
}

/* ---- registry and close ----------------------------------------------------------------------- */

static void test_registry_close(void)
{
    lb_error err = LB_ERROR_INIT;
    lb_pool *a = pool_for("1", "5", "lb_c_reg");
    lb_pool *b = pool_for("1", "5", "lb_c_reg");
    lb_pool *other = pool_for("1", "5", "lb_c_reg2");
    waiter_arg w;
    pthread_t t;
    lb_conn *c;
    double t0;

    ok(a && a == b && other && other != a, "identical settings share one pool, others do not");
    if (!a || !b || !other)
        return;
    lb_pool_release(b);
    lb_pool_release(other);

    c = lb_pool_checkout(a, &err);
    memset(&w, 0, sizeof w);
    w.pool = a;
    t0 = now();
    pthread_create(&t, NULL, wait_for_conn, &w);
    sleep_s(0.1);
    lb_pool_close(a);
    pthread_join(t, NULL);
    ok(!w.ok && w.kind == LB_ERR_POOL && w.got_at - t0 < 1.0, "close wakes a waiter with a pool error");
    ok(lb_pool_checkout(a, &err) == NULL && err.kind == LB_ERR_POOL, "no checkout after close");
    lb_error_clear(&err);
    lb_pool_checkin(a, c); /* discarded: the pool is closed */
    b = pool_for("1", "5", "lb_c_reg");
    ok(b && b != a, "a closed pool leaves the registry: the same settings get a new one");
    ok(b && add_one(b, NULL, 7, &err), "which works");
    lb_error_clear(&err);
    lb_pool_release(b);
    lb_pool_release(a);
}

/* ---- the registry under concurrent acquire/release (refs reaching zero while others join) --- */

typedef struct churn {
    const lb_settings *s;
    int errors;
} churn;

static void *churn_run(void *arg)
{
    churn *ch = arg;
    int i;
    for (i = 0; i < 40; i++) {
        lb_error err = LB_ERROR_INIT;
        lb_pool *p = lb_pool_acquire(ch->s, &err);
        if (!p || !add_one(p, NULL, i, &err))
            ch->errors++;
        lb_error_clear(&err);
        lb_pool_release(p);
    }
    return NULL;
}

static void test_registry_threads(void)
{
    lb_settings *s = settings("4", "30", "lb_c_churn");
    pthread_t th[THREADS];
    churn ch[THREADS];
    int i, errors = 0;

    if (!ok(s != NULL, "settings for the registry churn"))
        return;
    for (i = 0; i < THREADS; i++) {
        ch[i].s = s;
        ch[i].errors = 0;
        pthread_create(&th[i], NULL, churn_run, &ch[i]);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        errors += ch[i].errors;
    }
    ok(errors == 0, "%d threads acquiring, querying and releasing one pool: %d errors", THREADS,
       errors);
    lb_settings_free(s);
}

/* ---- 200 callers and a server that refuses: the pool's attempts stay bounded ----------------- */

#define STORM_CALLERS 200
#define STORM_MAX "4"

typedef struct storm {
    lb_pool *pool;
    double took;
    int kind, retriable;
} storm;

static void *storm_run(void *arg)
{
    storm *st = arg;
    lb_error err = LB_ERROR_INIT;
    double t0 = now();
    PGresult *res = lb_pool_exec(st->pool, &(lb_query){ .sql = "select 1" }, &err);
    st->took = now() - t0;
    st->kind = res ? LB_OK : (int)err.kind;
    st->retriable = err.retriable;
    PQclear(res);
    lb_error_clear(&err);
    return NULL;
}

/* A port where nothing listens (bound once, then closed): every connect is refused at once. */
static int closed_port(void)
{
    char cmd[] = "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); "
                 "print(s.getsockname()[1])'";
    FILE *f = popen(cmd, "r");
    int port = 0;
    if (f) {
        if (fscanf(f, "%d", &port) != 1)
            port = 0;
        pclose(f);
    }
    return port;
}

static void test_connect_storm(void)
{
    char port[16];
    lb_option opts[] = {
        { "host", "127.0.0.1", NULL },
        { "port", port, NULL },
        { "database", "d", NULL },
        { "user", "u", NULL },
        { "password", "p", NULL },
        { "sslmode", "disable", NULL },
        { "max", STORM_MAX, NULL },
        { "acquire_timeout", "2", NULL },
        { "application_name", "lb_c_storm", NULL },
    };
    static storm st[STORM_CALLERS];
    pthread_t th[STORM_CALLERS];
    lb_error err = LB_ERROR_INIT;
    lb_settings *s;
    lb_pool *p;
    lb_pool_stats ps;
    int i, connect_errors = 0, retriable = 0;
    double slowest = 0, fastest = 1e9;
    uint64_t attempts;

    snprintf(port, sizeof port, "%d", closed_port());
    s = lb_settings_load(opts, sizeof opts / sizeof opts[0], &err);
    if (!ok(s != NULL, "settings for the connect storm"))
        return;
    p = lb_pool_acquire(s, &err);
    lb_settings_free(s);
    if (!ok(p != NULL, "pool for the connect storm"))
        return;
    for (i = 0; i < STORM_CALLERS; i++) {
        st[i].pool = p;
        pthread_create(&th[i], NULL, storm_run, &st[i]);
    }
    for (i = 0; i < STORM_CALLERS; i++) {
        pthread_join(th[i], NULL);
        connect_errors += st[i].kind == LB_ERR_CONNECT;
        retriable += st[i].retriable;
        slowest = st[i].took > slowest ? st[i].took : slowest;
        fastest = st[i].took < fastest ? st[i].took : fastest;
    }
    lb_pool_stats_get(p, &ps);
    attempts = ps.connects + ps.connect_failures;
    ok(connect_errors == STORM_CALLERS && retriable == STORM_CALLERS,
       "%d callers, server refusing: every one gets a retriable connect error (%d connect, %d "
       "retriable)", STORM_CALLERS, connect_errors, retriable);
    ok(fastest >= 1.8 && slowest < 3.5,
       "each gives up at acquire_timeout 2 s (fastest %.2f s, slowest %.2f s)", fastest, slowest);
    /* Backoff steps of 0.025-0.5 s shared by the pool: about 12 steps in 2 s, at most max (4)
     * attempts each. Without the shared backoff it would be hundreds. */
    ok(attempts >= 4 && attempts <= 4 * 16,
       "connect attempts bounded by the shared backoff: %llu in 2 s for %d callers (max %s)",
       (unsigned long long)attempts, STORM_CALLERS, STORM_MAX);
    printf("# connect storm: %llu attempts, %d callers, fastest %.2f s, slowest %.2f s\n",
           (unsigned long long)attempts, STORM_CALLERS, fastest, slowest);
    lb_pool_release(p);
}

/* ---- 200 callers through a hard stop of the real server (make test-faults) ------------------ */

#define RESTART_SECONDS 4.0

typedef struct through {
    lb_pool *pool;
    int ok, failed, in_doubt;
    char last_error[200];
} through;

static void *through_run(void *arg)
{
    through *t = arg;
    double stop = now() + RESTART_SECONDS;
    while (now() < stop) {
        lb_error err = LB_ERROR_INIT;
        PGresult *res = lb_pool_exec(t->pool, &(lb_query){ .sql = "select 1" }, &err);
        if (res)
            t->ok++;
        else if (err.retriable && err.message && strstr(err.message, "may or may not have run"))
            t->in_doubt++;
        else {
            t->failed++;
            snprintf(t->last_error, sizeof t->last_error, "%s", err.message ? err.message : "?");
        }
        PQclear(res);
        lb_error_clear(&err);
        sleep_s(0.01);
    }
    return NULL;
}

/* pg_ctl as the cluster's OS user, in the background: stop -m immediate, 1.5 s down, start.
 * Writes the epoch seconds of "down" and "up" to marks. */
static int background_hard_stop(const char *marks)
{
    char cmd[2048];
    const char *bin = env("LAKEBASE_TEST_PGBIN"), *data = env("LAKEBASE_TEST_PGDATA");
    const char *log = env("LAKEBASE_TEST_PGLOG"), *user = env("LAKEBASE_TEST_PGOSUSER");
    const char *as = getuid() == 0 ? "runuser -u " : "";
    if (!bin || !data || !log)
        return -1;
    snprintf(cmd, sizeof cmd,
             "( sleep 1; date +%%s.%%N > '%s'; %s%s%s '%s/pg_ctl' -D '%s' stop -w -t 60 -m immediate; "
             "sleep 1.5; %s%s%s '%s/pg_ctl' -D '%s' -l '%s' start -w -t 60; date +%%s.%%N >> '%s' ) "
             ">/dev/null 2>&1 &",
             marks, as, getuid() == 0 ? (user ? user : "postgres") : "", getuid() == 0 ? " --" : "",
             bin, data, as, getuid() == 0 ? (user ? user : "postgres") : "", getuid() == 0 ? " --" : "",
             bin, data, log, marks);
    return system(cmd);
}

static void test_storm_through_restart(void)
{
    enum { N = 200 };
    static through t[N];
    pthread_t th[N];
    char marks[] = "/tmp/lb_storm_XXXXXX";
    lb_pool *p = pool_for("4", "10", "lb_c_storm_restart");
    lb_pool_stats before, after;
    int i, ok_n = 0, failed = 0, in_doubt = 0, fd;
    double down = 0, up = 0, outage;
    uint64_t attempts;
    FILE *f;

    if (!ok(p != NULL, "pool for 200 callers through a hard stop"))
        return;
    fd = mkstemp(marks);
    if (fd >= 0)
        close(fd);
    {
        lb_error warm = LB_ERROR_INIT; /* a live connection in the pool before the stop */
        add_one(p, NULL, 1, &warm);
        lb_error_clear(&warm);
    }
    lb_pool_stats_get(p, &before);
    if (!ok(background_hard_stop(marks) == 0, "pg_ctl stop -m immediate / start in the background"))
        return;
    for (i = 0; i < N; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].pool = p;
        pthread_create(&th[i], NULL, through_run, &t[i]);
    }
    for (i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok_n += t[i].ok;
        failed += t[i].failed;
        in_doubt += t[i].in_doubt;
    }
    for (i = 0; i < 600 && up == 0; i++) { /* the start may still be finishing */
        if ((f = fopen(marks, "r")) != NULL) {
            if (fscanf(f, "%lf %lf", &down, &up) != 2)
                up = 0;
            fclose(f);
        }
        if (up == 0)
            sleep_s(0.1);
    }
    unlink(marks);
    lb_pool_stats_get(p, &after);
    attempts = after.connect_failures - before.connect_failures;
    outage = up - down;
    for (i = 0; i < N && failed; i++)
        if (t[i].failed) {
            printf("# failure: %s\n", t[i].last_error);
            break;
        }
    ok(failed == 0 && ok_n > 0,
       "200 callers, max 4, hard stop 1.5 s: %d queries ok, %d failed, %d in flight at the stop",
       ok_n, failed, in_doubt);
    ok(in_doubt <= 4, "in flight at the stop: at most one per connection (%d)", in_doubt);
    /* Steps of at least 0.025 s growing to 0.25-0.5 s: about (outage / 0.25 + 8) steps, at most
     * max (4) attempts each; 200 independent callers would make thousands. */
    ok(up > 0 && (double)attempts <= 4.0 * (outage / 0.25 + 8),
       "failed connect attempts during the %.2f s outage: %llu for 200 callers (max 4)", outage,
       (unsigned long long)attempts);
    if (env("LAKEBASE_FAULTS_OUT")) {
        FILE *rows = fopen(env("LAKEBASE_FAULTS_OUT"), "a");
        if (rows) {
            fprintf(rows,
                    "C (test_pool)\t200 callers through a hard stop (-m immediate, down 1.5 s), pool max 4"
                    "\t%d queries in %.0f s (200 threads)\t%d\t0\t0\tserver down %.2f s; %llu failed "
                    "connect attempts in all (at most max = 4 per backoff step); %d in flight at the stop "
                    "(retriable, counted apart)\n",
                    ok_n + failed + in_doubt, RESTART_SECONDS, failed, outage,
                    (unsigned long long)attempts, in_doubt);
            fclose(rows);
        }
    }
    lb_pool_release(p);
}

int main(int argc, char **argv)
{
    if (!env("LAKEBASE_TEST_PGPORT") || !env("LAKEBASE_TEST_ADMIN_PASSWORD")) {
        printf("1..0 # SKIP fixtures not running (source the run dir's env.sh)\n");
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "storm") == 0) { /* make test-faults: restarts the server */
        test_storm_through_restart();
        printf("1..%d\n", test_no);
        return failures ? 1 : 0;
    }
    test_hammer();
    test_fifo();
    test_timeout();
    test_clean_checkin();
    test_defer_pipeline();
    test_terminated();
    test_registry_close();
    test_registry_threads();
    test_connect_storm();
    printf("1..%d\n", test_no);
    return failures ? 1 : 0;
}
