/* Pinned connections (lb_pin.c) from C against the fixtures' PostgreSQL (password auth as the
 * admin): a transaction spanning calls, exclusive take/give, release while taken (deferred to the
 * holder's give), the lease reaper (never a taken pin), owned pins (lease 0: never reaped, not
 * counted), threads sharing one pin and many pins at once, and that every connection goes back to
 * the pool rolled back. TAP output; without the
 * fixtures' env everything is skipped. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "lakebase.h"
#include "tap.h"


static lb_settings *settings(void)
{
    lb_option opts[] = {
        { "host", env("LAKEBASE_TEST_PGHOST"), NULL },
        { "port", env("LAKEBASE_TEST_PGPORT"), NULL },
        { "database", env("LAKEBASE_TEST_PGDATABASE"), NULL },
        { "user", env("LAKEBASE_TEST_ADMIN_USER"), NULL },
        { "password", env("LAKEBASE_TEST_ADMIN_PASSWORD"), NULL },
        { "sslmode", "require", NULL },
        { "sslrootcert", env("LAKEBASE_TEST_SSLROOTCERT"), NULL },
        { "max", "4", NULL },
        { "acquire_timeout", "5", NULL },
        { "application_name", "lakebase-test-pin", NULL },
    };
    lb_error err = LB_ERROR_INIT;
    lb_settings *s = lb_settings_load(opts, sizeof opts / sizeof opts[0], &err);
    if (!s) {
        printf("# settings: %s\n", err.message);
        lb_error_clear(&err);
    }
    return s;
}

static lb_settings *S;

/* A new pin on a fresh reference to the test pool (the pin owns that reference). */
static lb_pin_id new_pin(double lease)
{
    lb_error err = LB_ERROR_INIT;
    lb_pool *p = lb_pool_acquire(S, &err);
    lb_pin_id id;
    if (!p) {
        printf("# pool: %s\n", err.message);
        lb_error_clear(&err);
        return 0;
    }
    id = lb_pin_new(p, lease, &err);
    if (!id) {
        printf("# pin: %s\n", err.message);
        lb_error_clear(&err);
        lb_pool_release(p);
    }
    return id;
}

static int run(lb_pin_id id, const char *sql)
{
    lb_error err = LB_ERROR_INIT;
    lb_conn *c = lb_pin_take(id, &err);
    int rc;
    if (!c) {
        lb_error_clear(&err);
        return -1;
    }
    lb_conn_exec_script(c, sql, &err);
    rc = err.kind == LB_OK ? 0 : -1;
    lb_error_clear(&err);
    lb_pin_give(id, c);
    return rc;
}

/* Number of rows of the test table, seen from outside any pin. */
static long count_rows(lb_pool *p)
{
    lb_error err = LB_ERROR_INIT;
    lb_conn *c = lb_pool_checkout(p, &err);
    PGresult *r;
    long n = -1;
    if (!c) {
        lb_error_clear(&err);
        return -1;
    }
    r = lb_conn_exec(c, &(lb_query){ .sql = "select count(*) from lakebase_test_pin" }, &err);
    if (r) {
        n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    lb_error_clear(&err);
    lb_pool_checkin(p, c);
    return n;
}

static int in_use(lb_pool *p)
{
    lb_pool_stats st;
    lb_pool_stats_get(p, &st);
    return st.in_use;
}

/* ---- threads sharing one pin: take is exclusive ---- */

static pthread_mutex_t holders_mu = PTHREAD_MUTEX_INITIALIZER;
static int holders, max_holders, shared_ok, shared_busy;

static void *share_one(void *arg)
{
    lb_pin_id id = *(lb_pin_id *)arg;
    int i;
    for (i = 0; i < 200; i++) {
        lb_error err = LB_ERROR_INIT;
        lb_conn *c = lb_pin_take(id, &err);
        if (!c) {
            pthread_mutex_lock(&holders_mu);
            shared_busy++;
            pthread_mutex_unlock(&holders_mu);
            lb_error_clear(&err);
            continue;
        }
        pthread_mutex_lock(&holders_mu);
        holders++;
        if (holders > max_holders)
            max_holders = holders;
        pthread_mutex_unlock(&holders_mu);
        lb_conn_exec_script(c, "select 1", &err);
        pthread_mutex_lock(&holders_mu);
        holders--;
        if (err.kind == LB_OK)
            shared_ok++;
        pthread_mutex_unlock(&holders_mu);
        lb_error_clear(&err);
        lb_pin_give(id, c);
    }
    return NULL;
}

/* ---- many pins at once ---- */

static int many_errors;

static void *many_pins(void *arg)
{
    int i;
    (void)arg;
    for (i = 0; i < 25; i++) {
        lb_pin_id id = new_pin(30);
        int bad = !id || run(id, "BEGIN") != 0 ||
                  run(id, "insert into lakebase_test_pin values (1)") != 0;
        if (id)
            lb_pin_release(id); /* rolls the insert back */
        if (bad) {
            pthread_mutex_lock(&holders_mu);
            many_errors++;
            pthread_mutex_unlock(&holders_mu);
        }
    }
    return NULL;
}

int main(void)
{
    lb_error err = LB_ERROR_INIT;
    lb_pool *p;
    lb_pin_id id, id2;
    lb_conn *c, *c2;
    pthread_t th[8];
    int i;

    if (!env("LAKEBASE_TEST_PGPORT") || !env("LAKEBASE_TEST_ADMIN_PASSWORD")) {
        printf("1..0 # SKIP fixtures env not set\n");
        return 0;
    }
    S = settings();
    if (!S) {
        printf("not ok 1 - settings\n1..1\n");
        return 1;
    }
    p = lb_pool_acquire(S, &err); /* the test's own reference, for checks from outside */
    if (!ok(p != NULL, "pool")) {
        printf("# %s\n1..%d\n", err.message, test_no);
        return 1;
    }
    c = lb_pool_checkout(p, &err);
    ok(c && lb_conn_exec_script(c, "drop table if exists lakebase_test_pin;"
                                   "create table lakebase_test_pin (v int)", &err) == 0 &&
           err.kind == LB_OK,
       "test table");
    lb_error_clear(&err);
    if (c)
        lb_pool_checkin(p, c);

    /* a transaction across calls, rolled back by release */
    id = new_pin(30);
    ok(id != 0 && lb_pin_count() == 1 && lb_pin_exists(id), "lb_pin_new registers a pin");
    ok(run(id, "BEGIN") == 0 && run(id, "insert into lakebase_test_pin values (1), (2)") == 0,
       "statements in one transaction over several takes");
    c = lb_pin_take(id, &err);
    ok(c && lb_conn_in_transaction(c), "the pinned connection stays in the transaction");
    if (c)
        lb_pin_give(id, c);
    ok(count_rows(p) == 0, "uncommitted rows invisible outside");
    ok(in_use(p) == 1, "the pin holds one connection");
    lb_pin_release(id);
    ok(lb_pin_count() == 0 && !lb_pin_exists(id), "release unregisters");
    ok(in_use(p) == 0 && count_rows(p) == 0, "release rolled back and checked the connection in");
    c = lb_pin_take(id, &err);
    ok(!c && err.kind == LB_ERR_POOL && strstr(err.message, "no longer open") != NULL,
       "take after release: pool error (%s)", err.message ? err.message : "");
    lb_error_clear(&err);
    lb_pin_release(id); /* twice: harmless */

    /* exclusive take; release while taken is deferred to the holder's give */
    id = new_pin(30);
    c = lb_pin_take(id, &err);
    c2 = lb_pin_take(id, &err);
    ok(c && !c2 && err.kind == LB_ERR_POOL && strstr(err.message, "in use") != NULL,
       "a second take while taken fails (%s)", err.message ? err.message : "");
    lb_error_clear(&err);
    lb_conn_exec_script(c, "BEGIN; insert into lakebase_test_pin values (3)", &err);
    lb_error_clear(&err);
    lb_pin_release(id);
    ok(lb_pin_count() == 1 && in_use(p) == 1, "release while taken waits for the holder");
    c2 = lb_pin_take(id, &err);
    ok(!c2 && err.kind == LB_ERR_POOL, "no new take once released");
    lb_error_clear(&err);
    lb_pin_give(id, c);
    ok(lb_pin_count() == 0 && in_use(p) == 0 && count_rows(p) == 0,
       "give finishes the release: rolled back, checked in");

    /* the lease reaper */
    id = new_pin(0.2);
    id2 = new_pin(0.2);
    ok(run(id, "BEGIN") == 0 && run(id2, "BEGIN") == 0, "two short-lease pins");
    ok(lb_pin_reap() == 0, "nothing to reap before the lease runs out");
    c2 = lb_pin_take(id2, &err); /* taken: must survive the reaper */
    sleep_s(0.35);
    ok(lb_pin_reap() == 1 && !lb_pin_exists(id) && lb_pin_exists(id2),
       "the idle pin is reaped, the taken one is not");
    if (c2)
        lb_pin_give(id2, c2);
    ok(lb_pin_reap() == 0 && lb_pin_exists(id2), "a give restarts the lease");
    sleep_s(0.35);
    c = lb_pin_take(id2, &err); /* take reaps first: the pin is gone by now */
    ok(!c && !lb_pin_exists(id2) && lb_pin_count() == 0, "lb_pin_take runs the reaper too");
    lb_error_clear(&err);
    ok(in_use(p) == 0, "reaped connections are back in the pool");

    /* an owned pin (lease 0, pool:begin()): never reaped, not counted among the leased */
    id = new_pin(0);
    id2 = new_pin(0.2);
    ok(id != 0 && lb_pin_exists(id) && lb_pin_count() == 1, "an owned pin is not counted");
    ok(run(id, "BEGIN") == 0 && run(id, "insert into lakebase_test_pin values (5)") == 0,
       "an owned pin runs a transaction");
    sleep_s(0.35);
    ok(lb_pin_reap() == 1 && lb_pin_exists(id) && !lb_pin_exists(id2),
       "the reaper takes the leased pin, never the owned one");
    c = lb_pin_take(id, &err);
    ok(c && lb_conn_in_transaction(c), "the owned pin's transaction is still open");
    lb_error_clear(&err);
    if (c)
        lb_pin_give(id, c);
    lb_pin_release(id);
    ok(!lb_pin_exists(id) && in_use(p) == 0 && count_rows(p) == 0,
       "releasing an owned pin rolls back and checks the connection in");

    /* threads sharing one pin */
    id = new_pin(30);
    for (i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, share_one, &id);
    for (i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ok(max_holders == 1, "never two holders of one pin at once (max %d)", max_holders);
    ok(shared_ok > 0 && shared_ok + shared_busy == 800, "%d statements ran, %d takes refused",
       shared_ok, shared_busy);
    lb_pin_release(id);

    /* many pins from many threads on a 4-connection pool */
    for (i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, many_pins, NULL);
    for (i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    ok(many_errors == 0, "200 pins from 8 threads on 4 connections: no error (%d)", many_errors);
    ok(lb_pin_count() == 0 && in_use(p) == 0 && count_rows(p) == 0,
       "all released, rolled back, checked in");

    c = lb_pool_checkout(p, &err);
    if (c) {
        lb_conn_exec_script(c, "drop table if exists lakebase_test_pin", &err);
        lb_pool_checkin(p, c);
    }
    lb_error_clear(&err);
    lb_pool_release(p);
    lb_settings_free(S);
    printf("1..%d\n", test_no);
    return failures ? 1 : 0;
}
