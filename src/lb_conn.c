/* One libpq connection: opening it with keyword/value parameters, running statements through an
 * automatic per-connection prepared statement cache, errors with SQLSTATE/detail/hint, and the
 * health checks the pool runs on checkout and checkin. */
#include "lb_pool_int.h"
#include "lb_time.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <sys/random.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STMT_CACHE_MAX 256
#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

/* ------------------------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------------------------- */

/* libpq messages end with a newline and may span lines; keep them as they are but trimmed. */
static void set_trimmed(lb_error *err, lb_kind kind, int retriable, const char *prefix,
                        const char *msg)
{
    size_t n = msg ? strlen(msg) : 0;
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    lb_error_set(err, kind, retriable, "%s%.*s", prefix, (int)n, n ? msg : "unknown error");
}

/* Connection-level SQLSTATEs: the session is gone (admin shutdown, crash, starting up). Not
 * 08P01 on a live connection: that is our own mistake (a parameter count that does not match the
 * statement), the session goes on, and retrying cannot help. */
static int sqlstate_is_connection(const char *st)
{
    return st && ((strncmp(st, "08", 2) == 0 && strcmp(st, "08P01") != 0) ||
                  strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0);
}

static int sqlstate_is_retriable(const char *st)
{
    return st && (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 ||
                  sqlstate_is_connection(st));
}

/* A failed result (or none at all) into err; marks the connection broken when libpq lost it. */
static void result_error(lb_conn *c, const PGresult *res, lb_error *err)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    int lost = PQstatus(c->pg) != CONNECTION_OK || sqlstate_is_connection(st);

    lb_kind kind = lost ? LB_ERR_CONNECT : LB_ERR_QUERY;

    if (lost)
        c->broken = 1;
    /* statement_timeout (57014 "canceling statement due to statement timeout") is a timeout;
     * a cancel by an administrator stays a query error. */
    if (!lost && st && strcmp(st, "57014") == 0 && primary && strstr(primary, "timeout"))
        kind = LB_ERR_TIMEOUT;
    if (!lost && st && strcmp(st, "57014") == 0 && c->cancelled) {
        c->cancelled = 0;
        lb_error_set(err, LB_ERR_TIMEOUT, 0, "canceling statement due to statement timeout "
                     "(statement_timeout %d ms, enforced by lakebase: the pooler refused it as a "
                     "startup option)", c->cancel_after_ms);
        snprintf(err->sqlstate, sizeof err->sqlstate, "%s", st);
        return;
    }
    if (primary) /* a timeout may pass on a quieter server: retriable like the network */
        lb_error_set(err, kind, lost || kind == LB_ERR_TIMEOUT || sqlstate_is_retriable(st), "%s",
                     primary);
    else if (res && PQresultErrorMessage(res)[0])
        set_trimmed(err, lost ? LB_ERR_CONNECT : LB_ERR_QUERY, lost, "", PQresultErrorMessage(res));
    else
        set_trimmed(err, LB_ERR_CONNECT, 1, "connection lost: ", PQerrorMessage(c->pg));
    if (st)
        snprintf(err->sqlstate, sizeof err->sqlstate, "%s", st);
    if (res) {
        lb_error_set_field(&err->detail, PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
        lb_error_set_field(&err->hint, PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
    }
}

/* ------------------------------------------------------------------------------------------
 * Opening and closing
 * ---------------------------------------------------------------------------------------- */

/* Server NOTICEs ("table does not exist, skipping") must not reach stderr. A FATAL message
 * arriving while the connection is idle (libpq reports it as a notice) is the server saying
 * goodbye: remember it for the health check. */
static void quiet_notice(void *arg, const PGresult *res)
{
    lb_conn *c = arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (c && sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        c->goodbye = 1;
}

static const char *libpq_sslmode(lb_sslmode m)
{
    switch (m) {
    case LB_SSL_PREFER:
        return "prefer";
    case LB_SSL_DISABLE:
        return "disable";
    case LB_SSL_VERIFY_CA:
        return "verify-ca";
    case LB_SSL_REQUIRE: /* "require" means encrypted and verified (README "Settings") */
    case LB_SSL_VERIFY_FULL:
    default:
        return "verify-full";
    }
}

/* A random number per connection for statement names: behind a transaction-mode pooler many
 * clients share one server session, and a name derived from the SQL (or a counter) alone would
 * let one client run another's statement. */
static uint64_t connection_nonce(const lb_conn *c)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v)
        v = (uint64_t)(uintptr_t)c ^ ((uint64_t)getpid() << 32) ^
            (uint64_t)(lb_time_mono() * 1e9);
    return v;
}

/* PQconnectdbParams with our own deadline: libpq's connect_timeout has whole seconds only (and
 * treats 1 as 2), while a connect inside acquire_timeout must stop when the caller's time is up.
 * Returns the connection (status OK or BAD) or NULL when out of memory; *timed_out when the
 * deadline passed first (the connection is then closed and NULL returned). */
static PGconn *connect_until(const char *const *kw, const char *const *val, double deadline,
                             int *timed_out)
{
    PGconn *pg = PQconnectStartParams(kw, val, 0);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;

    *timed_out = 0;
    if (!pg || PQstatus(pg) == CONNECTION_BAD)
        return pg;
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        struct pollfd pfd;
        double left = deadline - lb_time_mono();
        int rc;

        if (left <= 0) {
            PQfinish(pg);
            *timed_out = 1;
            return NULL;
        }
        pfd.fd = PQsocket(pg);
        pfd.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        pfd.revents = 0;
        rc = poll(&pfd, 1, (int)ceil(left * 1000));
        if (rc == 0 || (rc < 0 && errno == EINTR))
            continue;
        st = PQconnectPoll(pg);
    }
    return pg;
}

/* What a failed connect means. PG 15 libpq has no SQLSTATE for startup failures: the server's
 * FATAL text is recognised instead (its wording is stable across versions). */
static const struct {
    const char *text;
    int failure;
    const char *sqlstate;
} connect_failures[] = {
    /* pg_hba says no before any password is checked: a new credential cannot help (28000) */
    {"no pg_hba.conf entry", LB_OPEN_PERMANENT, "28000"},
    {"pg_hba.conf rejects", LB_OPEN_PERMANENT, "28000"},
    {"authentication failed", LB_OPEN_AUTH, "28P01"},
    {"password has expired", LB_OPEN_AUTH, "28P01"},
    {"28P01", LB_OPEN_AUTH, "28P01"},
    {"is starting up", LB_OPEN_TRANSIENT, "57P03"},
    {"is shutting down", LB_OPEN_TRANSIENT, "57P03"},
    {"not yet accepting connections", LB_OPEN_TRANSIENT, "57P03"},
    {"not accepting connections", LB_OPEN_TRANSIENT, "57P03"},
    {"in recovery mode", LB_OPEN_TRANSIENT, "57P03"},
    {"due to administrator command", LB_OPEN_TRANSIENT, "57P01"},
    {"due to crash of another", LB_OPEN_TRANSIENT, "57P02"},
    {"too many clients", LB_OPEN_TRANSIENT, "53300"},
    {"too many connections", LB_OPEN_TRANSIENT, "53300"},
    {"connection slots are reserved", LB_OPEN_TRANSIENT, "53300"},
    {"does not exist", LB_OPEN_PERMANENT, "3D000"},
    {"server does not support SSL", LB_OPEN_PERMANENT, ""},
    {"invalid ", LB_OPEN_PERMANENT, ""}, /* invalid connection option / sslmode / integer value */
    {"Name or service not known", LB_OPEN_PERMANENT, ""},
};

/* The usual cause of a refused login is the user name, not the credential. */
static const char *auth_hint(const lb_settings *s)
{
    switch (s->auth) {
    case LB_AUTH_PASSWORD:
        return "check PGUSER (user) and PGPASSWORD (password)";
    case LB_AUTH_M2M:
        return "PGUSER (user) must be the service principal's client id (the default when PGUSER "
               "is unset), and a Postgres role for it must exist in Lakebase (the project's "
               "Roles page, or databricks postgres create-role)";
    default:
        return "PGUSER (user) must be the identity DATABRICKS_TOKEN belongs to (your Databricks "
               "user name, e.g. you@example.com), and a Postgres role for it must exist in "
               "Lakebase (the project's Roles page, or databricks postgres create-role)";
    }
}

/* Sets err and returns the LB_OPEN_* reason for a failed connect with libpq's message msg. */
static int connect_error(const lb_settings *s, const char *msg, lb_error *err)
{
    int verify = s->sslmode == LB_SSL_REQUIRE || s->sslmode == LB_SSL_VERIFY_FULL ||
                 s->sslmode == LB_SSL_VERIFY_CA;
    size_t i;

    if (verify && (strstr(msg, "certificate verify failed") || strstr(msg, "root certificate file"))) {
        /* libpq's wording is terse; say what was checked. Retrying cannot fix a certificate. */
        set_trimmed(err, LB_ERR_CONNECT, 0, "", msg);
        lb_error_set_field(&err->hint, s->sslrootcert
            ? "the server's certificate must be signed by a CA in sslrootcert (PGSSLROOTCERT) and "
              "name the host; sslmode=require verifies both"
            : "the server's certificate must be signed by a CA in the system bundle and name the "
              "host (set sslrootcert/PGSSLROOTCERT for a private CA); sslmode=require verifies both");
        if (err->message && strlen(err->message) < 900) {
            char *m = NULL;
            if (asprintf(&m, "%s (TLS: the server's certificate was not accepted)", err->message) >= 0) {
                free(err->message);
                err->message = m;
            }
        }
        return LB_OPEN_PERMANENT;
    }
    if (verify && strstr(msg, "does not match host name")) {
        set_trimmed(err, LB_ERR_CONNECT, 0, "", msg);
        return LB_OPEN_PERMANENT;
    }
    for (i = 0; i < sizeof connect_failures / sizeof connect_failures[0]; i++) {
        if (strstr(msg, connect_failures[i].text)) {
            int f = connect_failures[i].failure;
            /* An auth failure is retriable only through the pool's one credential refresh, which
             * clears this error when it works. */
            set_trimmed(err, LB_ERR_CONNECT, f == LB_OPEN_TRANSIENT, "", msg);
            snprintf(err->sqlstate, sizeof err->sqlstate, "%s", connect_failures[i].sqlstate);
            if (f == LB_OPEN_AUTH) /* libpq says only "password authentication failed" */
                lb_error_set_field(&err->hint, auth_hint(s));
            return f;
        }
    }
    /* Refused, reset, unreachable, timed out, closed during start-up: the network or a server
     * that is not there yet. */
    set_trimmed(err, LB_ERR_CONNECT, 1, "", msg);
    return LB_OPEN_TRANSIENT;
}

lb_conn *lb_conn_open(const lb_settings *s, const char *password, double deadline, int *failure,
                      lb_error *err)
{
    const char *kw[24], *val[24];
    char port[16], timeout[16], options[64], ka_idle[16], ka_interval[16], ka_count[16], user_to[24];
    int n = 0, timed_out = 0, pooler;
    int verify = s->sslmode == LB_SSL_REQUIRE || s->sslmode == LB_SSL_VERIFY_FULL ||
                 s->sslmode == LB_SSL_VERIFY_CA;
    PGconn *pg;
    lb_conn *c;

    *failure = LB_OPEN_OK;
    if (deadline <= 0)
        deadline = lb_time_mono() + (s->connect_timeout > 0 ? s->connect_timeout : 10);
    snprintf(port, sizeof port, "%d", s->port);
    /* A backstop only (whole seconds): connect_until enforces the deadline. */
    snprintf(timeout, sizeof timeout, "%d",
             s->connect_timeout > 0 ? (int)ceil(s->connect_timeout) : 10);

    kw[n] = "host", val[n++] = s->host;
    kw[n] = "port", val[n++] = port;
    kw[n] = "dbname", val[n++] = s->database;
    kw[n] = "user", val[n++] = s->user;
    if (password)
        kw[n] = "password", val[n++] = password;
    kw[n] = "sslmode", val[n++] = libpq_sslmode(s->sslmode);
    if (verify)
        kw[n] = "sslrootcert", val[n++] = s->sslrootcert ? s->sslrootcert : SYSTEM_CA_BUNDLE;
    kw[n] = "connect_timeout", val[n++] = timeout;
    kw[n] = "application_name", val[n++] = s->application_name ? s->application_name : LB_DEFAULT_APPLICATION_NAME;
    kw[n] = "client_encoding", val[n++] = "UTF8";
    /* A peer that vanished (network cut, a compute gone without a goodbye) is found by the
     * kernel: keepalive probes on an idle connection, tcp_user_timeout on unacknowledged data. */
    kw[n] = "keepalives", val[n++] = s->keepalives ? "1" : "0";
    if (s->keepalives) {
        snprintf(ka_idle, sizeof ka_idle, "%d", s->keepalives_idle);
        snprintf(ka_interval, sizeof ka_interval, "%d", s->keepalives_interval);
        snprintf(ka_count, sizeof ka_count, "%d", s->keepalives_count);
        kw[n] = "keepalives_idle", val[n++] = ka_idle;
        kw[n] = "keepalives_interval", val[n++] = ka_interval;
        kw[n] = "keepalives_count", val[n++] = ka_count;
    }
    if (s->tcp_user_timeout > 0) {
        snprintf(user_to, sizeof user_to, "%.0f", ceil(s->tcp_user_timeout * 1000));
        kw[n] = "tcp_user_timeout", val[n++] = user_to;
    }
    /* statement_timeout travels as a startup option, which transaction-mode poolers refuse
     * (PgBouncer: "unsupported startup parameter: options"). Lakebase's pooled hosts are named
     * "-pooler.": there, and wherever the option is refused, the timeout is enforced here by
     * cancelling the statement (collect), and prepared statements stay off. */
    pooler = strstr(s->host, "-pooler.") != NULL;
    if (s->statement_timeout > 0 && !pooler) {
        snprintf(options, sizeof options, "-c statement_timeout=%d", s->statement_timeout);
        kw[n] = "options", val[n++] = options;
    }
    kw[n] = NULL, val[n] = NULL;

    pg = connect_until(kw, val, deadline, &timed_out);
    if (pg && !timed_out && PQstatus(pg) != CONNECTION_OK && !pooler && s->statement_timeout > 0 &&
        strstr(PQerrorMessage(pg), "unsupported startup parameter")) {
        PQfinish(pg);
        pooler = 1;
        kw[n - 1] = NULL, val[n - 1] = NULL;
        pg = connect_until(kw, val, deadline, &timed_out);
    }
    if (timed_out) {
        *failure = LB_OPEN_TRANSIENT;
        lb_error_set(err, LB_ERR_CONNECT, 1, "connection to %s port %d timed out", s->host, s->port);
        return NULL;
    }
    if (!pg) {
        lb_error_set(err, LB_ERR_CONNECT, 1, "out of memory opening a connection");
        *failure = LB_OPEN_TRANSIENT;
        return NULL;
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        *failure = connect_error(s, PQerrorMessage(pg), err);
        PQfinish(pg);
        return NULL;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        PQfinish(pg);
        lb_error_set(err, LB_ERR_CONNECT, 1, "out of memory opening a connection");
        return NULL;
    }
    c->pg = pg;
    PQsetNoticeReceiver(pg, quiet_notice, c);
    c->created = c->last_used = lb_time_mono();
    c->prepare = s->prepare;
    c->nonce = connection_nonce(c);
    if (pooler) {
        c->pooler = 1;
        c->prepare = 0;
        c->cancel_after_ms = s->statement_timeout;
    }
    return c;
}

static void stmt_free(lb_stmt *st)
{
    free(st->sql);
    free(st->types);
    st->sql = NULL;
    st->types = NULL;
}

static void deferred_clear(lb_conn *c)
{
    while (c->ndeferred > 0) {
        c->ndeferred--;
        free(c->deferred[c->ndeferred]);
        c->deferred[c->ndeferred] = NULL;
    }
}

void lb_conn_close(lb_conn *c)
{
    int i;
    if (!c)
        return;
    deferred_clear(c);
    for (i = 0; i < c->nstmts; i++)
        stmt_free(&c->stmts[i]);
    free(c->stmts);
    PQfinish(c->pg);
    free(c);
}

/* ------------------------------------------------------------------------------------------
 * Health
 * ---------------------------------------------------------------------------------------- */

/* 1 when the socket has something to read (data, EOF or an error), without waiting. */
static int readable(int fd)
{
    struct pollfd pfd;
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    return poll(&pfd, 1, 0) != 0;
}

int lb_conn_alive(lb_conn *c)
{
    int fd = PQsocket(c->pg), round;
    PGnotify *n;

    if (c->broken || c->goodbye || fd < 0 || PQstatus(c->pg) != CONNECTION_OK ||
        PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        return 0;
    /* Usually nothing arrived while idle: one poll() and done. Otherwise read what came: EOF or
     * a FATAL goodbye (restart, termination) means dead; TLS session tickets, ParameterStatus
     * or notifications are harmless. EOF often follows the goodbye, hence a second look. */
    for (round = 0; round < 2 && readable(fd); round++) {
        if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK || c->goodbye)
            return 0;
        while ((n = PQnotifies(c->pg)) != NULL)
            PQfreemem(n);
    }
    return 1;
}

int lb_conn_reset(lb_conn *c)
{
    PGresult *res;
    PGTransactionStatusType ts;
    int ok;

    deferred_clear(c); /* a BEGIN nothing followed never reached the server */
    if (c->broken || PQstatus(c->pg) != CONNECTION_OK || PQisBusy(c->pg))
        return 0;
    ts = PQtransactionStatus(c->pg);
    if (ts == PQTRANS_IDLE)
        return 1;
    if (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR)
        return 0; /* active (results pending) or unknown: not worth draining */
    res = PQexec(c->pg, "ROLLBACK");
    ok = res && PQresultStatus(res) == PGRES_COMMAND_OK &&
         PQtransactionStatus(c->pg) == PQTRANS_IDLE;
    PQclear(res);
    return ok;
}

int lb_conn_in_transaction(const lb_conn *c)
{
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    return ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR || ts == PQTRANS_ACTIVE;
}

PGconn *lb_conn_pg(lb_conn *c)
{
    return c->pg;
}

/* ------------------------------------------------------------------------------------------
 * Running statements
 * ---------------------------------------------------------------------------------------- */

/* Where a pooler refused statement_timeout as a startup option (cancel_after_ms), waits for the
 * next result up to the deadline, then asks the server to cancel the statement and keeps reading:
 * the server answers 57014, which result_error reports as the timeout. Otherwise nothing: libpq's
 * PQgetResult waits. */
static void await_input(lb_conn *c, double deadline)
{
    int fd;
    if (c->cancel_after_ms <= 0) /* the usual case: one test per result, nothing else */
        return;
    if ((fd = PQsocket(c->pg)) < 0)
        return;
    while (PQisBusy(c->pg)) {
        struct pollfd pfd;
        int wait_ms = -1;
        if (!c->cancelled) {
            double left = deadline - lb_time_mono();
            if (left <= 0) {
                char why[256];
                PGcancel *cancel = PQgetCancel(c->pg);
                if (cancel) {
                    PQcancel(cancel, why, sizeof why);
                    PQfreeCancel(cancel);
                }
                c->cancelled = 1;
                continue;
            }
            wait_ms = (int)(left * 1000) + 1;
        }
        pfd.fd = fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, wait_ms) < 0 && errno != EINTR)
            return;
        if (!PQconsumeInput(c->pg))
            return;
    }
}

static double statement_deadline(lb_conn *c)
{
    c->cancelled = 0;
    return c->cancel_after_ms > 0 ? lb_time_mono() + c->cancel_after_ms / 1000.0 : 0;
}

/* The statement left and the connection died before any answer came back (a server restart or
 * crash, a network cut): whether it ran is unknown, which the caller must hear. */
static void say_in_doubt(lb_error *err)
{
    char *m = err->message;
    err->message = NULL;
    lb_error_set(err, LB_ERR_CONNECT, 1,
                 "connection lost before the result arrived: the statement may or may not have run "
                 "(%s)", m ? m : "no answer");
    free(m);
}

/* No answer from the server, only libpq's own report that the connection is gone (its error
 * results carry no SQLSTATE): the statement was sent and its fate is unknown. */
static int lost_without_answer(lb_conn *c, const PGresult *res)
{
    return !res || (!PQresultErrorField(res, PG_DIAG_SQLSTATE) && PQstatus(c->pg) != CONNECTION_OK);
}

/* A statement that ended without a final result, or with an error (res, cleared here): whether
 * it may have run (the connection died with no answer: in doubt unless rows already arrived) or
 * may safely be sent again (the server was shutting down before it ran: 57P01-57P03, no row
 * delivered). Returns NULL with err set. */
static PGresult *statement_failed(lb_conn *c, PGresult *res, int rows_delivered, lb_error *err)
{
    int no_answer = lost_without_answer(c, res);
    if (no_answer)
        c->in_doubt = !rows_delivered;
    else {
        const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        c->retry_safe = !rows_delivered && st &&
                        (strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 ||
                         strcmp(st, "57P03") == 0);
    }
    result_error(c, res, err);
    if (no_answer)
        say_in_doubt(err);
    PQclear(res);
    return NULL;
}

/* Collects the results of the statement just sent; returns the first good one or the error. */
static PGresult *collect(lb_conn *c, lb_error *err)
{
    PGresult *res = NULL, *r;
    int failed = 0;
    double deadline = statement_deadline(c);

    while ((await_input(c, deadline), r = PQgetResult(c->pg)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
            /* The protocol is now in COPY mode: this connection cannot be reused. */
            PQclear(r);
            PQclear(res);
            c->broken = 1;
            lb_error_set(err, LB_ERR_QUERY, 0, "COPY ... FROM STDIN / TO STDOUT is not supported");
            return NULL;
        }
        if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
            if (!failed) {
                PQclear(res);
                res = r;
                failed = 1;
                continue;
            }
        } else if (!res) {
            res = r;
            continue;
        }
        PQclear(r);
    }
    if (!res || failed)
        return statement_failed(c, res, 0, err);
    if (PQstatus(c->pg) != CONNECTION_OK)
        c->broken = 1;
    return res;
}

static PGresult *send_failed(lb_conn *c, lb_error *err)
{
    c->broken = PQstatus(c->pg) != CONNECTION_OK;
    c->retry_safe = c->broken; /* nothing reached the server */
    c->in_doubt = 0;
    set_trimmed(err, c->broken ? LB_ERR_CONNECT : LB_ERR_QUERY, c->broken, "",
                PQerrorMessage(c->pg));
    return NULL;
}

/* Rows are handed over in batches: one protected call per batch on the caller's side instead
 * of one per row. Small on purpose: a batch is freed at once, and 128 rows (~270 KB of PGresults)
 * crossed malloc's trim threshold, so every batch gave pages back to the kernel and faulted them
 * in again (LuaJIT W3 0.6 M rows/s against 1.3 M with 16). */
#define ROW_BATCH 16

static int deliver(lb_rows_fn fn, void *ctx, PGresult **batch, int *n, size_t *delivered)
{
    int i, rc = fn(ctx, batch, *n);
    for (i = 0; i < *n; i++)
        PQclear(batch[i]);
    *delivered += (size_t)*n;
    *n = 0;
    return rc;
}

static void drop_batch(PGresult **batch, int *n)
{
    while (*n > 0)
        PQclear(batch[--*n]);
}

/* collect() for single-row mode: rows go to fn as they arrive (a batch is handed over when
 * full, or when the next row is not read yet, so the caller works while the server sends); the
 * final result or the first error is returned as collect() does. After fn asks to stop, the
 * rest is read and dropped so the connection is left clean. *delivered counts rows handed over. */
static PGresult *collect_rows(lb_conn *c, lb_rows_fn fn, void *ctx, size_t *delivered,
                              lb_error *err)
{
    PGresult *batch[ROW_BATCH], *res = NULL, *r;
    int n = 0, failed = 0, stopped = 0;
    double deadline = statement_deadline(c);

    *delivered = 0;
    while ((await_input(c, deadline), r = PQgetResult(c->pg)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE) {
            if (stopped || failed || res) {
                PQclear(r);
                continue;
            }
            batch[n++] = r;
            if ((n == ROW_BATCH || PQisBusy(c->pg)) && deliver(fn, ctx, batch, &n, delivered))
                stopped = 1;
            continue;
        }
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
            PQclear(r);
            PQclear(res);
            drop_batch(batch, &n);
            c->broken = 1;
            lb_error_set(err, LB_ERR_QUERY, 0, "COPY ... FROM STDIN / TO STDOUT is not supported");
            return NULL;
        }
        if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
            drop_batch(batch, &n); /* the caller discards what it got anyway */
            if (!failed) {
                PQclear(res);
                res = r;
                failed = 1;
                continue;
            }
        } else if (!res && !failed) {
            if (n > 0 && !stopped && deliver(fn, ctx, batch, &n, delivered))
                stopped = 1;
            drop_batch(batch, &n);
            res = r;
            continue;
        }
        PQclear(r);
    }
    drop_batch(batch, &n);
    if (!res || failed)
        return statement_failed(c, res, *delivered > 0, err);
    if (PQstatus(c->pg) != CONNECTION_OK)
        c->broken = 1;
    if (stopped) {
        PQclear(res);
        lb_error_set(err, LB_ERR_QUERY, 0, "stopped by the row callback");
        return NULL;
    }
    return res;
}

/* Waits for the answer of the statement just sent: whole (fn NULL) or row by row. */
static PGresult *collect_any(lb_conn *c, lb_rows_fn fn, void *ctx, size_t *delivered,
                             lb_error *err)
{
    *delivered = 0;
    if (!fn)
        return collect(c, err);
    /* libpq refuses only when not called right after the send: never silently lose the rows. */
    if (!PQsetSingleRowMode(c->pg)) {
        PQclear(collect(c, err));
        lb_error_clear(err);
        lb_error_set(err, LB_ERR_QUERY, 0, "could not read the result row by row");
        return NULL;
    }
    return collect_rows(c, fn, ctx, delivered, err);
}

static uint64_t stmt_hash(const lb_query *q)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    const unsigned char *p;
    int i;
    for (p = (const unsigned char *)q->sql; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    for (i = 0; i < q->nparams; i++)
        h = (h ^ (q->types ? q->types[i] : 0) ^ 0x9e37u) * 1099511628211ULL;
    return h;
}

static lb_stmt *stmt_find(lb_conn *c, uint64_t h, const lb_query *q)
{
    int i, k, n = q->nparams;
    for (i = 0; i < c->nstmts; i++) {
        lb_stmt *st = &c->stmts[i];
        if (st->hash != h || st->nparams != n || !st->sql || strcmp(st->sql, q->sql) != 0)
            continue;
        for (k = 0; k < n; k++)
            if (st->types[k] != (q->types ? q->types[k] : 0))
                break;
        if (k == n)
            return st;
    }
    return NULL;
}

/* Forgets a statement; deallocates it on the server when the session can still run commands
 * (in a failed transaction it stays until the connection closes: names are never reused). */
static void stmt_drop(lb_conn *c, lb_stmt *st)
{
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    if (!c->broken && (ts == PQTRANS_IDLE || ts == PQTRANS_INTRANS)) {
        char sql[64];
        snprintf(sql, sizeof sql, "DEALLOCATE %s", st->name);
        PQclear(PQexec(c->pg, sql));
    }
    stmt_free(st);
    *st = c->stmts[--c->nstmts];
}

/* A new cache entry in the slot after the last one (evicting the least recently used when the
 * cache is full); it counts (c->nstmts++) only once the server accepted its Parse. */
static lb_stmt *stmt_new(lb_conn *c, uint64_t h, const lb_query *q, lb_error *err)
{
    lb_stmt *st;
    int i, n = q->nparams;

    if (!c->stmts) {
        c->stmts = calloc(STMT_CACHE_MAX, sizeof *c->stmts);
        if (!c->stmts) {
            lb_error_set(err, LB_ERR_QUERY, 0, "out of memory");
            return NULL;
        }
    }
    if (c->nstmts == STMT_CACHE_MAX) {
        lb_stmt *lru = &c->stmts[0];
        for (i = 1; i < c->nstmts; i++)
            if (c->stmts[i].last_use < lru->last_use)
                lru = &c->stmts[i];
        stmt_drop(c, lru);
    }
    st = &c->stmts[c->nstmts];
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "lb%016llx_%llu", (unsigned long long)c->nonce,
             (unsigned long long)++c->next_name);
    st->sql = strdup(q->sql);
    st->types = n ? calloc((size_t)n, sizeof *st->types) : NULL;
    if (!st->sql || (n && !st->types)) {
        stmt_free(st);
        lb_error_set(err, LB_ERR_QUERY, 0, "out of memory");
        return NULL;
    }
    for (i = 0; i < n; i++)
        st->types[i] = q->types ? q->types[i] : 0;
    st->nparams = n;
    st->hash = h;
    return st;
}

/* ------------------------------------------------------------------------------------------
 * One flight: deferred statements, Parse of a new statement and Bind/Execute travel together
 * (libpq pipeline mode, one Sync), so the first use of a statement and the BEGIN of a
 * transaction cost no round trip of their own.
 * ---------------------------------------------------------------------------------------- */

int lb_conn_defer(lb_conn *c, const char *sql, lb_error *err)
{
    char *copy;
    if (c->ndeferred == LB_DEFERRED_MAX) /* deep savepoint nesting with nothing run: send now */
        return lb_conn_exec_script(c, sql, err);
    if (!(copy = strdup(sql))) {
        lb_error_set(err, LB_ERR_QUERY, 0, "out of memory");
        return -1;
    }
    c->deferred[c->ndeferred++] = copy;
    return 0;
}

/* Queues the deferred statements (extended protocol, no parameters); they are forgotten here:
 * whatever happens next, they were sent. Returns how many were queued, -1 when libpq refused. */
static int send_deferred(lb_conn *c)
{
    int i, sent = 0;
    for (i = 0; i < c->ndeferred; i++) {
        if (!PQsendQueryParams(c->pg, c->deferred[i], 0, NULL, NULL, NULL, NULL, 0)) {
            deferred_clear(c);
            return -1;
        }
        sent++;
    }
    deferred_clear(c);
    return sent;
}

/* Reads and drops whatever is left up to the Sync's answer and leaves pipeline mode; a
 * connection that cannot is marked broken. */
static void pipe_end(lb_conn *c)
{
    int nulls = 0;
    while (!PQexitPipelineMode(c->pg)) {
        PGresult *r;
        if (PQstatus(c->pg) != CONNECTION_OK) {
            c->broken = 1;
            return;
        }
        r = PQgetResult(c->pg);
        if (r) {
            nulls = 0;
            PQclear(r);
        } else if (++nulls > 2) {
            c->broken = 1; /* nothing left to read, yet libpq will not leave: do not reuse */
            return;
        }
    }
}

/* Enters pipeline mode and queues the deferred statements; returns how many, or -1 with err. */
static int pipe_begin(lb_conn *c, lb_error *err)
{
    int n;
    if (!PQenterPipelineMode(c->pg)) {
        deferred_clear(c);
        send_failed(c, err);
        return -1;
    }
    if ((n = send_deferred(c)) < 0) {
        send_failed(c, err);
        pipe_end(c);
    }
    return n;
}

/* A send in the middle of a pipeline failed: err says why; what was queued is synced and
 * drained so the connection stays in step (or is marked broken). */
static void pipe_abort(lb_conn *c, lb_error *err)
{
    send_failed(c, err);
    if (!c->broken)
        PQpipelineSync(c->pg);
    pipe_end(c);
}

/* The answers of ndeferred deferred statements: 0, or -1 with err (the first one that failed). */
static int collect_deferred(lb_conn *c, int ndeferred, lb_error *err)
{
    while (ndeferred-- > 0) {
        PGresult *r = collect(c, err);
        if (!r)
            return -1;
        PQclear(r);
    }
    return 0;
}

/* Sends Bind/Execute of q: of the prepared statement `name`, or of q->sql unprepared when name
 * is NULL. 0 when libpq refused to send. */
static int send_query(lb_conn *c, const char *name, const lb_query *q)
{
    return name ? PQsendQueryPrepared(c->pg, name, q->nparams, q->values, q->lengths, q->formats, 0)
                : PQsendQueryParams(c->pg, q->sql, q->nparams, q->types, q->values, q->lengths,
                                    q->formats, 0);
}

/* One statement in one flight: the deferred statements, the Parse of `parse` when given (a new
 * cache entry; *parsed says whether the server accepted it), then Bind/Execute of `name` (or of
 * q->sql unprepared when name is NULL), one Sync. */
static PGresult *exec_flight(lb_conn *c, const lb_stmt *parse, const char *name, const lb_query *q,
                             lb_rows_fn fn, void *ctx, size_t *delivered, int *parsed,
                             lb_error *err)
{
    PGresult *res = NULL, *r;
    int ndeferred;

    *delivered = 0;
    *parsed = 0;
    if ((ndeferred = pipe_begin(c, err)) < 0)
        return NULL;
    if ((parse && !PQsendPrepare(c->pg, parse->name, q->sql, q->nparams, q->types)) ||
        !send_query(c, name, q) || !PQpipelineSync(c->pg)) {
        pipe_abort(c, err);
        return NULL;
    }
    if (collect_deferred(c, ndeferred, err) == 0) {
        if (parse && (r = collect(c, err)) != NULL) {
            *parsed = 1;
            PQclear(r);
        }
        if (!parse || *parsed)
            res = collect_any(c, fn, ctx, delivered, err);
    }
    pipe_end(c);
    if (res && c->broken) {
        PQclear(res);
        lb_error_set(err, LB_ERR_CONNECT, 1, "connection lost");
        return NULL;
    }
    return res;
}

/* The statement changed under the cache (DDL altered the result type): worth one retry when
 * outside a transaction. */
static int stale_statement(const lb_error *err)
{
    return strcmp(err->sqlstate, "0A000") == 0 && err->message &&
           strstr(err->message, "cached plan must not change result type");
}

/* The server does not know a statement this connection prepared (26000), or already has one by
 * a name only this connection uses (42P05): the server session is not ours alone, so a
 * transaction-mode pooler sits in the path, and prepared statements cannot work through it.
 * (DEALLOCATE/DISCARD in our own scripts empty the cache first: script_discards.) */
static int pooler_sign(const lb_error *err)
{
    return strcmp(err->sqlstate, "26000") == 0 || strcmp(err->sqlstate, "42P05") == 0;
}

void lb_conn_no_prepare(lb_conn *c)
{
    int i;
    /* No DEALLOCATE: the server session behind a pooler is not ours. */
    for (i = 0; i < c->nstmts; i++)
        stmt_free(&c->stmts[i]);
    c->nstmts = 0;
    c->prepare = 0;
}

/* A pooler answered (pooler_sign): prepared statements go off for this connection (and, through
 * the pool, for every later one). Outside a transaction the statement did not run: returns 1 so
 * the caller runs it unprepared. Inside one the error aborted the transaction: err says so
 * (retriable: the same transaction succeeds now) and 0 comes back. */
static int pooler_found(lb_conn *c, lb_error *err)
{
    char state[6];
    char *why;
    c->pooler = 1;
    lb_conn_no_prepare(c);
    if (PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
        lb_error_clear(err);
        return 1;
    }
    memcpy(state, err->sqlstate, sizeof state);
    why = err->message ? strdup(err->message) : NULL;
    lb_error_set(err, LB_ERR_QUERY, 1, "a transaction-mode connection pooler is in the path "
                 "(%s): prepared statements are now off for this pool; run the transaction "
                 "again, and set prepare = false for this host", why ? why : "statement lost");
    memcpy(err->sqlstate, state, sizeof state);
    free(why);
    return 0;
}

static int conn_usable(lb_conn *c, lb_error *err)
{
    c->retry_safe = c->in_doubt = 0;
    if (c->broken || PQstatus(c->pg) != CONNECTION_OK) {
        c->broken = 1;
        c->retry_safe = 1;
        lb_error_set(err, LB_ERR_CONNECT, 1, "connection lost");
        return 0;
    }
    return 1;
}

static PGresult *exec_any(lb_conn *c, const lb_query *q, lb_rows_fn fn, void *ctx,
                          lb_error *err)
{
    size_t delivered;
    uint64_t h;
    lb_stmt *st;
    int attempt, parsed;

    if (!conn_usable(c, err))
        return NULL;
    if (!c->prepare)
        goto unprepared;

    h = stmt_hash(q);
    for (attempt = 0; attempt < 2; attempt++) {
        PGresult *res;
        int fresh = 0;
        st = stmt_find(c, h, q);
        if (!st) {
            if (!(st = stmt_new(c, h, q, err)))
                return NULL;
            fresh = 1;
        }
        st->last_use = ++c->clock;
        if (fresh || c->ndeferred > 0) {
            res = exec_flight(c, fresh ? st : NULL, st->name, q, fn, ctx, &delivered, &parsed,
                              err);
            if (fresh && parsed)
                c->nstmts++;
            else if (fresh)
                stmt_free(st);
            if (fresh && !parsed) { /* the Parse (or a statement deferred before it) failed */
                if (!c->broken && pooler_sign(err) && pooler_found(c, err))
                    goto unprepared;
                return NULL;
            }
        } else {
            if (!send_query(c, st->name, q))
                return send_failed(c, err);
            res = collect_any(c, fn, ctx, &delivered, err);
        }
        if (res || c->broken || delivered > 0)
            return res;
        if (pooler_sign(err)) {
            if (pooler_found(c, err))
                goto unprepared;
            return NULL;
        }
        if (!stale_statement(err))
            return NULL;
        stmt_drop(c, st);
        if (PQtransactionStatus(c->pg) != PQTRANS_IDLE)
            return NULL; /* the transaction is aborted: the caller must roll back */
        lb_error_clear(err);
    }
    return NULL;

unprepared:
    if (c->ndeferred > 0)
        return exec_flight(c, NULL, NULL, q, fn, ctx, &delivered, &parsed, err);
    if (!send_query(c, NULL, q))
        return send_failed(c, err);
    return collect_any(c, fn, ctx, &delivered, err);
}

/* Every statement a caller runs is timed and recorded (lb_observe.c): the pool's series set, and
 * its event when one is wanted. A connection without a set (a probe) records nothing. */
static void observed(lb_conn *c, const char *sql, double started, const PGresult *res,
                     const lb_error *err)
{
    if (c->m)
        lb_observe_query(c->m, sql, lb_time_mono() - started, c->slow_query, res, err);
}

PGresult *lb_conn_exec_rows(lb_conn *c, const lb_query *q, lb_rows_fn row_fn, void *ctx,
                            lb_error *err)
{
    double started = lb_time_mono();
    PGresult *res = exec_any(c, q, row_fn, ctx, err);
    observed(c, q->sql, started, res, err);
    return res;
}

PGresult *lb_conn_exec(lb_conn *c, const lb_query *q, lb_error *err)
{
    return lb_conn_exec_rows(c, q, NULL, NULL, err); /* no row_fn: the whole result at once */
}

/* Scripts may throw away our prepared statements; forget them all to stay consistent. */
static int script_discards(const char *sql)
{
    return strcasestr(sql, "DISCARD") || strcasestr(sql, "DEALLOCATE");
}

/* The deferred statements joined into one simple query, followed by tail when given. */
static char *deferred_joined(const lb_conn *c, const char *tail)
{
    size_t len = (tail ? strlen(tail) : 0) + 1;
    char *all, *p;
    int i;
    for (i = 0; i < c->ndeferred; i++)
        len += strlen(c->deferred[i]) + 2;
    if (!(all = p = malloc(len)))
        return NULL;
    for (i = 0; i < c->ndeferred; i++)
        p += sprintf(p, i + 1 < c->ndeferred || tail ? "%s; " : "%s", c->deferred[i]);
    memcpy(p, tail ? tail : "", strlen(tail ? tail : "") + 1);
    return all;
}

static int simple_query(lb_conn *c, const char *sql, lb_error *err)
{
    PGresult *res;
    if (!PQsendQuery(c->pg, sql)) {
        send_failed(c, err);
        return -1;
    }
    if (!(res = collect(c, err)))
        return -1;
    PQclear(res);
    return 0;
}

/* A simple query. The deferred statements travel in front of sql when `glue` (sql is one of our
 * own transaction statements, COMMIT, ROLLBACK, RELEASE: it always parses); otherwise they go in a
 * round trip of their own first: PostgreSQL parses a whole Query message before running any of it,
 * so a script with a syntax error would take the BEGIN down with it. */
static int exec_simple(lb_conn *c, const char *sql, int glue, lb_error *err)
{
    char *all;
    int i, rc;

    if (!conn_usable(c, err))
        return -1;
    if (script_discards(sql)) {
        for (i = 0; i < c->nstmts; i++)
            stmt_free(&c->stmts[i]);
        c->nstmts = 0;
    }
    if (c->ndeferred == 0)
        return simple_query(c, sql, err);
    if (!(all = deferred_joined(c, glue ? sql : NULL))) {
        lb_error_set(err, LB_ERR_QUERY, 0, "out of memory");
        return -1;
    }
    deferred_clear(c);
    rc = simple_query(c, all, err);
    free(all);
    if (rc != 0 || glue)
        return rc;
    return simple_query(c, sql, err);
}

int lb_conn_exec_script(lb_conn *c, const char *sql, lb_error *err)
{
    double started = lb_time_mono();
    int rc = exec_simple(c, sql, 0, err);
    observed(c, sql, started, NULL, err);
    return rc;
}

int lb_conn_exec_control(lb_conn *c, const char *sql, lb_error *err)
{
    double started = lb_time_mono();
    int rc = exec_simple(c, sql, 1, err);
    observed(c, sql, started, NULL, err);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Pipelines
 * ---------------------------------------------------------------------------------------- */

/* Cache bookkeeping for one pipeline: the entries whose Parse it carries (new[k] for stmts[k]). */
typedef struct pipe_plan {
    lb_stmt **use;   /* statement to Bind/Execute for stmts[k], NULL: unprepared */
    char *fresh;     /* 1 when stmts[k] carries the Parse of use[k] */
} pipe_plan;

/* Decides, statement by statement, what travels: a cached statement is reused, a new one is
 * prepared once (later uses in the same pipeline bind it), and once the cache is full the rest
 * go unprepared (evicting inside a pipeline would need a round trip). New entries are appended
 * to the cache now and counted at once; those whose Parse fails are removed by pipe_forget. */
static int pipe_plan_make(lb_conn *c, const lb_query *q, int n, pipe_plan *pl, lb_error *err)
{
    int k;
    pl->use = calloc((size_t)n, sizeof(lb_stmt *));
    pl->fresh = calloc((size_t)n, 1);
    if (!pl->use || !pl->fresh) {
        lb_error_set(err, LB_ERR_QUERY, 0, "out of memory");
        return -1;
    }
    if (!c->prepare)
        return 0;
    if (!c->stmts && !(c->stmts = calloc(STMT_CACHE_MAX, sizeof *c->stmts))) {
        lb_error_set(err, LB_ERR_QUERY, 0, "out of memory");
        return -1;
    }
    for (k = 0; k < n; k++) {
        uint64_t h = stmt_hash(&q[k]);
        lb_stmt *st = stmt_find(c, h, &q[k]);
        if (!st && c->nstmts < STMT_CACHE_MAX) {
            if (!(st = stmt_new(c, h, &q[k], err)))
                return -1;
            c->nstmts++;
            pl->fresh[k] = 1;
        }
        if (st)
            st->last_use = ++c->clock;
        pl->use[k] = st;
    }
    return 0;
}

/* Removes the cache entry named `name` (its Parse did not run or failed). */
static void pipe_forget(lb_conn *c, const char *name)
{
    int i;
    for (i = 0; i < c->nstmts; i++) {
        if (strcmp(c->stmts[i].name, name) == 0) {
            stmt_free(&c->stmts[i]);
            c->stmts[i] = c->stmts[--c->nstmts];
            return;
        }
    }
}

static void pipe_plan_free(pipe_plan *pl)
{
    free(pl->use);
    free(pl->fresh);
}

static int pipe_run(lb_conn *c, const lb_query *q, int n, PGresult **res, int *failed,
                    lb_error *err)
{
    pipe_plan pl = { NULL, NULL };
    char (*names)[40] = NULL;
    int k, ndeferred, rc = -1, sent = 0;

    *failed = -1;
    for (k = 0; k < n; k++)
        res[k] = NULL;
    if (pipe_plan_make(c, q, n, &pl, err) != 0 ||
        !(names = calloc((size_t)n, sizeof *names))) {
        for (k = 0; k < n; k++)
            if (pl.fresh && pl.fresh[k])
                pipe_forget(c, pl.use[k]->name);
        if (!err->message)
            lb_error_set(err, LB_ERR_QUERY, 0, "out of memory");
        pipe_plan_free(&pl);
        return -1;
    }
    /* Cache entries move when one is removed: remember the names of the new ones. */
    for (k = 0; k < n; k++)
        if (pl.fresh[k])
            snprintf(names[k], sizeof names[k], "%s", pl.use[k]->name);

    if ((ndeferred = pipe_begin(c, err)) < 0)
        goto out;
    for (k = 0; k < n; k++, sent++) {
        lb_stmt *st = pl.use[k];
        if (pl.fresh[k] && !PQsendPrepare(c->pg, st->name, q[k].sql, q[k].nparams, q[k].types))
            break;
        if (!send_query(c, st ? st->name : NULL, &q[k]))
            break;
    }
    if (sent < n || !PQpipelineSync(c->pg)) {
        *failed = sent < n ? sent : -1;
        pipe_abort(c, err);
        goto out;
    }
    if (collect_deferred(c, ndeferred, err) != 0) {
        pipe_end(c);
        goto out;
    }
    for (k = 0; k < n; k++) {
        if (pl.fresh[k]) {
            PGresult *r = collect(c, err);
            if (!r) {
                *failed = k;
                break;
            }
            PQclear(r);
            names[k][0] = 0; /* parsed: the entry stays */
        }
        if (!(res[k] = collect(c, err))) {
            *failed = k;
            break;
        }
    }
    pipe_end(c);
    rc = k == n && !c->broken ? 0 : -1;
    if (rc != 0 && k == n) {
        *failed = -1;
        lb_error_set(err, LB_ERR_CONNECT, 1, "connection lost");
    }
out:
    for (k = 0; k < n; k++)
        if (names[k][0])
            pipe_forget(c, names[k]);
    if (rc != 0)
        for (k = 0; k < n; k++) {
            PQclear(res[k]);
            res[k] = NULL;
        }
    free(names);
    pipe_plan_free(&pl);
    return rc;
}

int lb_conn_pipeline(lb_conn *c, const lb_query *stmts, int n, PGresult **res, int *failed,
                     lb_error *err)
{
    double started = lb_time_mono();
    int rc;

    *failed = -1;
    if (n <= 0)
        return 0;
    if (!conn_usable(c, err))
        return -1;
    rc = pipe_run(c, stmts, n, res, failed, err);
    /* A pooler refused a prepared statement: outside a transaction the pipeline rolled back as a
     * whole (one implicit transaction), so it runs again unprepared. */
    if (rc != 0 && !c->broken && pooler_sign(err) && pooler_found(c, err))
        rc = pipe_run(c, stmts, n, res, failed, err);
    if (rc != 0 && err->message && *failed >= 0) {
        char *m = NULL;
        if (asprintf(&m, "statement %d of %d in the pipeline: %s", *failed + 1, n,
                     err->message) >= 0) {
            free(err->message);
            err->message = m;
        }
    }
    observed(c, stmts[rc != 0 && *failed >= 0 ? *failed : 0].sql, started, NULL, rc ? err : NULL);
    return rc;
}

/* lb_pool_exec's retry, for pipelines: once more on a fresh connection when the first one had
 * died before the server processed anything. */
int lb_pool_pipeline(lb_pool *p, const lb_query *stmts, int n, PGresult **res, int *failed,
                     lb_error *err)
{
    int attempt, rc = -1;
    for (attempt = 0; attempt < 2; attempt++) {
        lb_conn *c = lb_pool_checkout(p, err);
        int again;
        if (!c)
            return -1;
        rc = lb_conn_pipeline(c, stmts, n, res, failed, err);
        again = rc != 0 && c->broken && c->retry_safe && attempt == 0;
        lb_pool_checkin(p, c);
        if (!again)
            break;
        lb_error_clear(err);
    }
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Cold start probe (lakebase check)
 * ---------------------------------------------------------------------------------------- */

/* Waits until libpq's socket is ready in the direction PQconnectPoll asked for. */
static int probe_wait(PGconn *pg, PostgresPollingStatusType st, double deadline)
{
    struct pollfd pfd;
    int left = (int)((deadline - lb_time_mono()) * 1000);
    if (left <= 0)
        return -1;
    pfd.fd = PQsocket(pg);
    pfd.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    pfd.revents = 0;
    return poll(&pfd, 1, left) > 0 ? 0 : -1;
}

int lb_conn_probe(const lb_settings *s, const char *password, lb_probe *out, lb_error *err)
{
    /* The same keywords as lb_conn_open, minus the statement_timeout option: a probe runs
     * nothing that could take long. */
    static const char *const names[] = { "host", "port", "dbname", "user", "password", "sslmode",
                                         "sslrootcert", "application_name", NULL };
    const char *kw[10], *val[10];
    const char *vals[8];
    char port[16];
    int verify = s->sslmode == LB_SSL_REQUIRE || s->sslmode == LB_SSL_VERIFY_FULL ||
                 s->sslmode == LB_SSL_VERIFY_CA;
    int i, n = 0, tcp_done = 0, tls_done = 0;
    double t0, now, deadline;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    PGconn *pg;

    memset(out, 0, sizeof *out);
    snprintf(port, sizeof port, "%d", s->port);
    vals[0] = s->host, vals[1] = port, vals[2] = s->database, vals[3] = s->user;
    vals[4] = password, vals[5] = libpq_sslmode(s->sslmode);
    vals[6] = verify ? (s->sslrootcert ? s->sslrootcert : SYSTEM_CA_BUNDLE) : NULL;
    vals[7] = "lakebase check";
    for (i = 0; names[i]; i++)
        if (vals[i])
            kw[n] = names[i], val[n++] = vals[i];
    kw[n] = NULL, val[n] = NULL;

    t0 = lb_time_mono();
    deadline = t0 + (s->connect_timeout > 0 ? s->connect_timeout : 10);
    pg = PQconnectStartParams(kw, val, 0); /* resolves the host name here */
    now = lb_time_mono();
    out->dns = now - t0;
    t0 = now;
    while (pg && PQstatus(pg) != CONNECTION_BAD) {
        ConnStatusType cs;
        if (st == PGRES_POLLING_OK)
            break;
        if (probe_wait(pg, st, deadline) != 0) {
            PQfinish(pg);
            lb_error_set(err, LB_ERR_TIMEOUT, 1, "connect: no answer within connect_timeout");
            return -1;
        }
        st = PQconnectPoll(pg);
        cs = PQstatus(pg);
        now = lb_time_mono();
        if (!tcp_done && cs != CONNECTION_STARTED) {
            out->tcp = now - t0, t0 = now, tcp_done = 1;
        }
        if (tcp_done && !tls_done && cs != CONNECTION_MADE && cs != CONNECTION_SSL_STARTUP) {
            out->tls = PQsslInUse(pg) ? now - t0 : 0;
            if (PQsslInUse(pg))
                t0 = now;
            tls_done = 1;
        }
    }
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        set_trimmed(err, LB_ERR_CONNECT, 1, "connect: ", pg ? PQerrorMessage(pg) : "out of memory");
        PQfinish(pg);
        return -1;
    }
    out->auth = lb_time_mono() - t0;
    out->tls_used = PQsslInUse(pg);
    for (i = 0; i < 6; i++) {
        PGresult *r;
        t0 = lb_time_mono();
        r = PQexec(pg, "select 1");
        now = lb_time_mono() - t0;
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            set_trimmed(err, LB_ERR_QUERY, 0, "first query: ", PQresultErrorMessage(r));
            PQclear(r);
            PQfinish(pg);
            return -1;
        }
        PQclear(r);
        if (i == 0)
            out->first_query = now;
        else if (i == 1 || now < out->rtt)
            out->rtt = now;
    }
    PQfinish(pg);
    return 0;
}
