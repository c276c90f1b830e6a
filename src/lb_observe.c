/* What the pool, the connections and the credential cache report, one call per thing that
 * happened: its metrics (lb_metrics.c) and, only when Lua asked for them (lb_log_want), its event
 * (lb_log.c). Events carry names, durations, SQLSTATEs, error messages (the core's messages hold
 * no secret) and SQL text with its $n placeholders, never parameter values. */
#include "lb_metrics.h"

#include "lb_time.h"

#include <stdlib.h>
#include <string.h>

static int failed(const lb_error *err)
{
    return err && err->kind != LB_OK;
}

/* The error's kind and SQLSTATE, and its message unless it came from running a statement: the
 * server quotes values in some of those (22P02: invalid input syntax for type integer: "..."). */
static void error_fields_of(lb_event *e, const lb_error *err, int message)
{
    if (!failed(err))
        return;
    lb_event_str(e, "error_kind", lb_kind_name(err->kind));
    if (err->sqlstate[0])
        lb_event_str(e, "sqlstate", err->sqlstate);
    if (message)
        lb_event_str(e, "error", err->message);
}

static void error_fields(lb_event *e, const lb_error *err)
{
    error_fields_of(e, err, 1);
}

static void push_slow(lb_metrics *m, const char *sql, double seconds, double threshold,
                      const PGresult *res, const lb_error *err)
{
    lb_event e;
    lb_event_init(&e, LB_LOG_WARN, "slow_query");
    lb_event_labels(&e, m);
    lb_event_str(&e, "sql", sql);
    lb_event_num(&e, "duration_ms", seconds * 1000);
    lb_event_num(&e, "threshold_ms", threshold * 1000);
    if (res && PQcmdTuples((PGresult *)res)[0])
        lb_event_num(&e, "rows", (double)strtoll(PQcmdTuples((PGresult *)res), NULL, 10));
    error_fields_of(&e, err, 0);
    lb_log_push(&e);
}

/* What the on_query hook receives: no table, no copy here (lb_log_query decides). */
static void push_query(lb_metrics *m, const char *sql, double seconds, const PGresult *res,
                       const lb_error *err)
{
    lb_query_event q;
    q.set = m;
    q.sql = sql;
    q.seconds = seconds;
    q.time = lb_time_wall();
    q.has_rows = res && PQcmdTuples((PGresult *)res)[0];
    q.rows = q.has_rows ? (double)strtoll(PQcmdTuples((PGresult *)res), NULL, 10) : 0;
    q.error_kind = failed(err) ? lb_kind_name(err->kind) : NULL;
    q.sqlstate[0] = '\0';
    if (failed(err))
        memcpy(q.sqlstate, err->sqlstate, sizeof q.sqlstate);
    lb_log_query(&q);
}

void lb_observe_query(lb_metrics *m, const char *sql, double seconds, double slow,
                      const PGresult *res, const lb_error *err)
{
    unsigned want;

    lb_metrics_query(m, seconds, err);
    if (!(want = lb_log_wanted()))
        return;
    if (slow > 0 && seconds >= slow && (want & LB_WANT_LOG))
        push_slow(m, sql, seconds, slow, res, err);
    if (want & LB_WANT_QUERY) /* the on_query hook sees every statement */
        push_query(m, sql, seconds, res, err);
}

void lb_observe_connect(lb_metrics *m, lb_conn *c, double seconds, int attempt, int will_retry,
                        const lb_error *err)
{
    lb_event e;

    lb_metrics_connect(m, seconds, c != NULL);
    if (!(lb_log_wanted() & (LB_WANT_LOG | LB_WANT_CONNECT)))
        return;
    if (c)
        lb_event_init(&e, LB_LOG_INFO, "connect_ok");
    else if (will_retry)
        lb_event_init(&e, LB_LOG_WARN, "connect_retry");
    else
        lb_event_init(&e, LB_LOG_ERROR, "connect_failed");
    lb_event_labels(&e, m);
    lb_event_num(&e, "duration_ms", seconds * 1000);
    lb_event_num(&e, "attempt", attempt);
    if (c) {
        const char *tls = PQsslAttribute(lb_conn_pg(c), "protocol");
        lb_event_str(&e, "tls", tls ? tls : "none");
    }
    error_fields(&e, err);
    lb_log_push(&e);
}

void lb_observe_gave_up(lb_metrics *m, double seconds, int attempts, const lb_error *err)
{
    lb_event e;
    if (!(lb_log_wanted() & (LB_WANT_LOG | LB_WANT_CONNECT)))
        return;
    lb_event_init(&e, LB_LOG_ERROR, "connect_failed");
    lb_event_labels(&e, m);
    lb_event_num(&e, "duration_ms", seconds * 1000);
    lb_event_num(&e, "attempt", attempts);
    error_fields(&e, err);
    lb_log_push(&e);
}

void lb_observe_wait(lb_metrics *m, double seconds, int slow_ms, const lb_error *err)
{
    lb_metrics_wait(m, seconds);
    lb_metrics_error(m, err);
    if (slow_ms > 0 && seconds * 1000 >= slow_ms && (lb_log_wanted() & LB_WANT_LOG)) {
        lb_event e;
        lb_event_init(&e, LB_LOG_WARN, "pool_wait");
        lb_event_labels(&e, m);
        lb_event_num(&e, "wait_ms", seconds * 1000);
        lb_event_num(&e, "threshold_ms", slow_ms);
        error_fields(&e, err);
        lb_log_push(&e);
    }
}

void lb_observe_refresh(const char *endpoint, double seconds, int background, int failed_before,
                        long status, double expires_at, const lb_error *err)
{
    lb_metrics *m = lb_metrics_for_credential(endpoint);
    lb_event e;

    lb_metrics_refresh(m, seconds, !failed(err), expires_at);
    if (!(lb_log_wanted() & LB_WANT_LOG))
        return;
    if (failed(err))
        lb_event_init(&e, background ? LB_LOG_WARN : LB_LOG_ERROR, "credential_refresh_failed");
    else
        lb_event_init(&e, LB_LOG_INFO, failed_before ? "credential_recovered" : "credential_fetched");
    lb_event_str(&e, "endpoint", endpoint);
    lb_event_str(&e, "step", failed(err) ? NULL : "lakebase credential");
    lb_event_num(&e, "duration_ms", seconds * 1000);
    lb_event_str(&e, "mode", background ? "background" : "caller");
    if (status > 0)
        lb_event_num(&e, "http_status", (double)status);
    if (!failed(err))
        lb_event_num(&e, "expires_at", expires_at);
    if (failed_before)
        lb_event_num(&e, "failed_attempts", failed_before);
    error_fields(&e, err);
    lb_log_push(&e);
}
