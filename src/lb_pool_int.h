/* Private to the pool area (lb_pool.c, lb_conn.c): the connection object the pool manages. */
#ifndef LB_POOL_INT_H
#define LB_POOL_INT_H

#include "lakebase.h"

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
    lb_stmt *stmts;
    int nstmts;
    char *deferred[LB_DEFERRED_MAX]; /* lb_conn_defer: sent ahead of the next statement */
    int ndeferred;
    uint64_t clock, next_name;
    struct lb_conn *next; /* idle list link */
};

double lb_monotonic(void);
/* Opens a connection with the given password (may be NULL). On failure sets err (kind connect)
 * and *auth_failed when the server refused the password. */
lb_conn *lb_conn_open(const lb_settings *s, const char *password, int *auth_failed, lb_error *err);
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

#endif
