/* Private to the pool area (lb_pool.c, lb_conn.c): the connection object the pool manages. */
#ifndef LB_POOL_INT_H
#define LB_POOL_INT_H

#include "lakebase.h"
#include "lb_metrics.h"

/* One cached prepared statement: the SQL text plus the parameter types it was prepared with
 * (the same SQL sent with other parameter types needs its own statement). */
typedef struct lb_stmt {
    uint64_t hash;
    char *sql;
    Oid *types;         /* nparams entries (0 = unknown), NULL when nparams is 0 */
    int nparams;
    uint64_t last_use;  /* LRU clock */
    char name[40];      /* lb<connection nonce>_<n>: never the same in two connections */
} lb_stmt;

/* Deferred statements (BEGIN, SAVEPOINT, RELEASE) waiting for the next flight. */
#define LB_DEFERRED_MAX 8

struct lb_conn {
    PGconn *pg;
    double created;     /* monotonic seconds */
    double last_used;
    int prepare;        /* settings->prepare, off once a pooler is seen */
    int pooler;         /* a transaction-mode pooler is in the path (see lb_conn.c) */
    int cancel_after_ms; /* statement_timeout enforced here (a pooler refused it at startup) */
    int cancelled;      /* the running statement was cancelled for cancel_after_ms */
    uint64_t nonce;     /* random per connection: part of every statement name */
    int broken;         /* a connection-level failure was seen: never reuse */
    int goodbye;        /* the server sent FATAL while the connection was idle */
    int retry_safe;     /* the last failure happened before the server processed the statement */
    int in_doubt;       /* or: it was sent and the connection died before its answer (and no row
                         * was delivered): retrying is safe only for an idempotent statement */
    double lifetime;    /* seconds this connection may live (max_lifetime with jitter), 0 = no limit */
    lb_stmt *stmts;
    int nstmts;
    char *deferred[LB_DEFERRED_MAX]; /* lb_conn_defer: sent ahead of the next statement */
    int ndeferred;
    uint64_t clock, next_name;
    struct lb_conn *next; /* idle list link */
    lb_metrics *m;      /* the pool's series set (NULL: not recorded, e.g. a probe) */
    double slow_query;  /* seconds: statements this slow are reported (slow_query_ms), 0 = never */
};

/* Why lb_conn_open failed, for the pool's retry decision. */
enum {
    LB_OPEN_OK = 0,
    LB_OPEN_AUTH,      /* the server refused the password: a fresh credential may help */
    LB_OPEN_TRANSIENT, /* refused/reset/timeout, 57P01-57P03, 53300: the same attempt may work later */
    LB_OPEN_PERMANENT  /* TLS verification, pg_hba, unknown database, bad parameters: never retried */
};
/* Opens a connection with the given password (may be NULL), giving up at `deadline` (monotonic
 * seconds; connect_timeout from now when 0). On failure sets err (kind connect; sqlstate when
 * recognised: 57P03, 57P01, 53300, 28P01) and *failure to one of the LB_OPEN_* reasons. */
lb_conn *lb_conn_open(const lb_settings *s, const char *password, double deadline, int *failure,
                      lb_error *err);
void lb_conn_close(lb_conn *c);
/* Checkout health check: 0 when the server closed the connection (or anything arrived
 * unexpectedly on an idle connection). Never blocks. */
int lb_conn_alive(lb_conn *c);
/* Checkin cleanup: rolls back an open or failed transaction; 0 when the connection must be
 * discarded instead of reused. */
int lb_conn_reset(lb_conn *c);
/* Stops automatic prepared statements on c: a pooler is in the path (the pool saw it on another
 * connection). */
void lb_conn_no_prepare(lb_conn *c);

/* Adds the live pools' connection figures to the samples of their series sets (lb_metrics.c). */
void lb_pool_gauges(lb_metrics_sample *s, size_t n);

#endif
