/* process_max_connections: one cap on the connections this process holds across every pool of
 * the same settings (cap_key), against the fixtures' PostgreSQL. Which settings share a cap (no
 * server needed); then two pools under one cap loaded by 8 threads while a monitor counts this
 * test's backends in pg_stat_activity (never more than the cap), waiters served within
 * acquire_timeout, and a caller past acquire_timeout refused with a retriable error naming the
 * cap. TAP output; without the fixtures' env the server part is skipped. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "lakebase.h"
#include "tap.h"

#define CAP 3
#define APP "lb_c_cap"

/* Settings from name/value pairs (NULL-terminated); NULL when refused (the reason is printed). */
static lb_settings *load(const char *const *kv)
{
    lb_option opts[32];
    size_t n = 0;
    lb_error err = LB_ERROR_INIT;
    lb_settings *s;

    for (; kv[0] && n < 32; kv += 2)
        opts[n++] = (lb_option){ kv[0], kv[1], NULL };
    s = lb_settings_load(opts, n, &err);
    if (!s) {
        printf("# settings: %s\n", err.message);
        lb_error_clear(&err);
    }
    return s;
}

/* 1 when both load and their cap keys are equal (`same`) or differ (!same). */
static int caps_compare(const char *const *a, const char *const *b, int same)
{
    lb_settings *sa = load(a), *sb = load(b);
    int r = sa && sb && (strcmp(sa->cap_key, sb->cap_key) == 0) == same;
    lb_settings_free(sa);
    lb_settings_free(sb);
    return r;
}

static void test_cap_keys(void)
{
#define PW "host", "db.example", "database", "app", "user", "u", "password", "pw"
#define TOK "databricks_host", "https://w.example", "token", "t", "database", "app", "user", "u"
    const char *primary[] = { PW, "max", "4", NULL };
    const char *other_shape[] = { PW, "max", "9", "acquire_timeout", "2", "idle_timeout", "5",
                                  "application_name", "worker", "process_max_connections", "6", NULL };
    const char *reader[] = { "host", "ro.example", "port", "5433", "database", "app", "user", "u",
                             "password", "pw", NULL };
    const char *other_db[] = { "host", "db.example", "database", "other", "user", "u", "password", "pw",
                               NULL };
    const char *other_pw[] = { "host", "db.example", "database", "app", "user", "u", "password", "pw2",
                               NULL };
    const char *tok_primary[] = { TOK, "host", "ep-1.example", "endpoint",
                                  "projects/p/branches/main/endpoints/primary", NULL };
    const char *tok_reader[] = { TOK, "host", "ep-2.example", "endpoint",
                                 "projects/p/branches/main/endpoints/read-1", NULL };
    const char *tok_branch[] = { TOK, "host", "ep-1.example", "endpoint",
                                 "projects/p/branches/dev/endpoints/primary", NULL };
    lb_settings *a = load(primary), *b = load(other_shape);

    ok(a && b && strcmp(a->key, b->key) != 0 && strcmp(a->cap_key, b->cap_key) == 0,
       "pools that differ in max, timeouts, application_name or the cap value share one cap key");
    ok(b && b->process_max_connections == 6 && a && a->process_max_connections == 0,
       "process_max_connections is read (default 0: no cap)");
    lb_settings_free(a);
    lb_settings_free(b);
    ok(caps_compare(primary, reader, 1), "a reader (another host and port, same database and role) shares it");
    ok(caps_compare(primary, other_db, 0), "another database does not");
    ok(caps_compare(primary, other_pw, 0), "another password (identity) does not");
    ok(caps_compare(tok_primary, tok_reader, 1), "a branch's primary and read endpoints share it");
    ok(caps_compare(tok_primary, tok_branch, 0), "another branch does not");
    {
        const char *bad[] = { PW, "process_max_connections", "-1", NULL };
        const char *big[] = { PW, "process_max_connections", "100001", NULL };
        lb_settings *s1 = load(bad), *s2 = load(big);
        ok(!s1 && !s2, "a negative or too large cap is refused");
        lb_settings_free(s1);
        lb_settings_free(s2);
    }
#undef PW
#undef TOK
}

/* ---- two pools, one cap, 8 threads ------------------------------------------------------- */

static lb_pool *pool_for(const char *max, const char *acquire_timeout)
{
    const char *kv[] = {
        "host", env("LAKEBASE_TEST_PGHOST"), "port", env("LAKEBASE_TEST_PGPORT"),
        "database", env("LAKEBASE_TEST_PGDATABASE"), "user", env("LAKEBASE_TEST_ADMIN_USER"),
        "password", env("LAKEBASE_TEST_ADMIN_PASSWORD"), "sslmode", "require",
        "sslrootcert", env("LAKEBASE_TEST_SSLROOTCERT"), "application_name", APP,
        "max", max, "acquire_timeout", acquire_timeout, "process_max_connections", "3", NULL };
    lb_error err = LB_ERROR_INIT;
    lb_settings *s = load(kv);
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

static int monitor_stop; /* __atomic */
static int monitor_peak, monitor_samples, monitor_errors;

/* Counts this test's backends as the server sees them, on a connection of its own. */
static void *monitor(void *arg)
{
    const char *keys[] = { "host", "port", "dbname", "user", "password", "sslmode", "sslrootcert",
                           "application_name", NULL };
    const char *values[] = { env("LAKEBASE_TEST_PGHOST"), env("LAKEBASE_TEST_PGPORT"),
                             env("LAKEBASE_TEST_PGDATABASE"), env("LAKEBASE_TEST_ADMIN_USER"),
                             env("LAKEBASE_TEST_ADMIN_PASSWORD"), "verify-full",
                             env("LAKEBASE_TEST_SSLROOTCERT"), "lb_c_cap_monitor", NULL };
    PGconn *pg = PQconnectdbParams(keys, values, 0);

    (void)arg;
    if (PQstatus(pg) != CONNECTION_OK) {
        printf("# monitor: %s", PQerrorMessage(pg));
        monitor_errors++;
        PQfinish(pg);
        return NULL;
    }
    while (!__atomic_load_n(&monitor_stop, __ATOMIC_ACQUIRE)) {
        PGresult *r = PQexec(pg, "select count(*) from pg_stat_activity where application_name = '" APP "'");
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            int n = atoi(PQgetvalue(r, 0, 0));
            if (n > monitor_peak)
                monitor_peak = n;
            monitor_samples++;
        } else {
            monitor_errors++;
        }
        PQclear(r);
        sleep_s(0.002);
    }
    PQfinish(pg);
    return NULL;
}

#define THREADS 8
#define ROUNDS 40

typedef struct worker {
    lb_pool *pool;
    int id, errors;
    double longest_wait;
    char last_error[256];
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    int i;
    for (i = 0; i < ROUNDS; i++) {
        lb_error err = LB_ERROR_INIT;
        double t0 = now(), waited;
        lb_conn *c = lb_pool_checkout(w->pool, &err);
        waited = now() - t0;
        if (waited > w->longest_wait)
            w->longest_wait = waited;
        if (!c) {
            w->errors++;
            snprintf(w->last_error, sizeof w->last_error, "%s", err.message);
        } else {
            PGresult *r = lb_conn_exec(c, &(lb_query){ .sql = "select pg_sleep(0.005)" }, &err);
            if (!r) {
                w->errors++;
                snprintf(w->last_error, sizeof w->last_error, "%s", err.message);
            }
            PQclear(r);
            lb_pool_checkin(w->pool, c);
        }
        lb_error_clear(&err);
    }
    return NULL;
}

static void test_two_pools_one_cap(void)
{
    lb_pool *a = pool_for("4", "10"), *b = pool_for("3", "8");
    pthread_t th[THREADS], mon;
    worker ws[THREADS];
    lb_pool_stats sa, sb;
    double t0, longest = 0;
    int i, errors = 0;

    if (!ok(a && b && a != b, "two pools (max 4 and 3) under process_max_connections = %d", CAP)) {
        lb_pool_release(a);
        lb_pool_release(b);
        return;
    }
    __atomic_store_n(&monitor_stop, 0, __ATOMIC_RELEASE);
    pthread_create(&mon, NULL, monitor, NULL);
    t0 = now();
    for (i = 0; i < THREADS; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        ws[i].pool = i % 2 ? b : a;
        ws[i].id = i;
        pthread_create(&th[i], NULL, work, &ws[i]);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        errors += ws[i].errors;
        if (ws[i].longest_wait > longest)
            longest = ws[i].longest_wait;
        if (ws[i].errors)
            printf("# thread %d: %s\n", i, ws[i].last_error);
    }
    __atomic_store_n(&monitor_stop, 1, __ATOMIC_RELEASE);
    pthread_join(mon, NULL);
    ok(errors == 0, "%d threads x %d checkouts over both pools: %d errors (%.2fs)", THREADS, ROUNDS,
       errors, now() - t0);
    ok(longest < 8, "every waiter got a connection within acquire_timeout (longest wait %.3fs)", longest);
    ok(monitor_errors == 0 && monitor_samples > 10 && monitor_peak >= 2 && monitor_peak <= CAP,
       "the server saw at most %d connections of this process (peak %d in %d samples)", CAP,
       monitor_peak, monitor_samples);
    lb_pool_stats_get(a, &sa);
    lb_pool_stats_get(b, &sb);
    ok(sa.total + sb.total <= CAP && sa.in_use == 0 && sb.in_use == 0 && sa.waiting == 0 &&
           sb.waiting == 0,
       "all back: %d + %d open, none waiting (%llu connects)", sa.total, sb.total,
       (unsigned long long)(sa.connects + sb.connects));
    lb_pool_release(a);
    lb_pool_release(b);
}

/* The cap is full of checked-out connections: a caller of either pool waits its acquire_timeout
 * and is refused naming the cap; an idle connection of the other pool is closed for a waiter. */
static void test_full_cap(void)
{
    lb_error err = LB_ERROR_INIT;
    lb_pool *a = pool_for("4", "0.3"), *b = pool_for("3", "5");
    lb_conn *held[CAP] = { NULL };
    lb_conn *c;
    lb_pool_stats st;
    double t0, waited;
    int i, got = 0;

    if (!ok(a && b, "two pools for the full-cap test")) {
        lb_pool_release(a);
        lb_pool_release(b);
        return;
    }
    for (i = 0; i < CAP; i++)
        got += (held[i] = lb_pool_checkout(i == 0 ? a : b, &err)) != NULL;
    ok(got == CAP, "%d connections checked out (1 from the first pool, 2 from the second)", got);
    lb_error_clear(&err);
    t0 = now();
    c = lb_pool_checkout(a, &err);
    waited = now() - t0;
    ok(!c && err.kind == LB_ERR_POOL && err.retriable && err.message &&
           strstr(err.message, "process_max_connections = 3") != NULL,
       "one more (the first pool has room, the process has none) is refused: %s",
       err.message ? err.message : "(no error)");
    ok(waited >= 0.28 && waited < 2, "after acquire_timeout (waited %.2fs)", waited);
    lb_error_clear(&err);
    lb_pool_stats_get(a, &st);
    ok(st.total == 1 && st.waiting == 0, "the first pool opened nothing more (total %d)", st.total);

    /* The second pool gives back one connection (it stays idle there): the first pool's waiter
     * closes it and opens its own rather than wait for that pool's idle_timeout. */
    lb_pool_checkin(b, held[2]);
    held[2] = NULL;
    t0 = now();
    c = lb_pool_checkout(a, &err);
    waited = now() - t0;
    /* acquire_timeout is 0.3 s and the other pool's idle_timeout 30 s: only closing it serves this */
    ok(c != NULL, "an idle connection of the other pool is closed for it (%.3fs)", waited);
    lb_pool_stats_get(b, &st);
    ok(st.total == 1 && st.idle == 0, "the other pool has 1 left (total %d, idle %d)", st.total, st.idle);
    lb_error_clear(&err);
    if (c)
        lb_pool_checkin(a, c);
    for (i = 0; i < CAP; i++)
        if (held[i])
            lb_pool_checkin(i == 0 ? a : b, held[i]);
    lb_pool_release(a);
    lb_pool_release(b);
}

int main(void)
{
    test_cap_keys();
    if (!env("LAKEBASE_TEST_PGPORT") || !env("LAKEBASE_TEST_ADMIN_PASSWORD")) {
        printf("# the server part is skipped: fixtures not running (source the run dir's env.sh)\n");
        printf("1..%d\n", test_no);
        return failures ? 1 : 0;
    }
    test_two_pools_one_cap();
    test_full_cap();
    printf("1..%d\n", test_no);
    return failures ? 1 : 0;
}
