/*
 * lakebase — C core: settings, Lakebase credentials, HTTP, a libpq pool and result helpers.
 *
 * A plain C library (no Lua here). The Lua binding in src/bind/ is one user of it; C tests
 * and benchmarks are others. Every object has one owner: x_new/x_free, x_acquire/x_release
 * (process-wide shared objects, reference counted), x_checkout/x_checkin (pool connections).
 * Errors are reported through an lb_error the caller owns; secrets never appear in one.
 * Everything here is thread-safe unless a comment says otherwise.
 */
#ifndef LAKEBASE_H
#define LAKEBASE_H

#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>

#define LAKEBASE_VERSION "0.1.0"

/* ------------------------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------------------------- */

typedef enum lb_kind {
    LB_OK = 0,
    LB_ERR_CONFIG,
    LB_ERR_CREDENTIAL,
    LB_ERR_CONNECT,
    LB_ERR_QUERY,
    LB_ERR_TIMEOUT,
    LB_ERR_POOL
} lb_kind;

typedef struct lb_error {
    lb_kind kind;        /* LB_OK when no error */
    char *message;       /* malloc'd; NULL when no error */
    char sqlstate[6];    /* "" when not from PostgreSQL */
    char *detail;        /* malloc'd or NULL */
    char *hint;          /* malloc'd or NULL */
    int retriable;       /* 1 when retrying the same call may succeed */
    char *request_id;    /* malloc'd or NULL: the workspace API's RequestInfo.request_id, to quote
                          * to Databricks support */
} lb_error;

#define LB_ERROR_INIT { LB_OK, NULL, "", NULL, NULL, 0, NULL }

/* Sets kind/retriable/message (printf-style); clears sqlstate/detail/hint/request_id. */
void lb_error_set(lb_error *err, lb_kind kind, int retriable, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
void lb_error_set_field(char **field, const char *value); /* replace detail/hint with a copy */
void lb_error_clear(lb_error *err);                        /* free fields, back to LB_OK */
void lb_error_move(lb_error *dst, lb_error *src);          /* dst takes src's content */
const char *lb_kind_name(lb_kind kind);                     /* "config", "credential", ... */

/* ------------------------------------------------------------------------------------------
 * Settings (lb_config.c, lb_profile.c)
 * ---------------------------------------------------------------------------------------- */

typedef enum lb_sslmode {
    LB_SSL_REQUIRE = 0, /* encrypted and verified: libpq verify-full against the CA bundle */
    LB_SSL_PREFER,      /* TLS when offered, no verification */
    LB_SSL_DISABLE,
    LB_SSL_VERIFY_FULL,
    LB_SSL_VERIFY_CA
} lb_sslmode;

typedef enum lb_auth {
    LB_AUTH_PASSWORD = 0, /* native Postgres password: no Databricks calls */
    LB_AUTH_TOKEN,        /* workspace token (PAT) */
    LB_AUTH_M2M,          /* OAuth client credentials */
    LB_AUTH_CLI           /* the databricks CLI's token (`databricks auth token`): what
                           * `databricks auth login` sets up */
} lb_auth;

/* One user-supplied option (from a Lua table, a CLI, a test). value NULL = not given.
 * bad_type, when set, names the wrong type the caller saw (e.g. "table") and is reported. */
typedef struct lb_option {
    const char *name;
    const char *value;
    const char *bad_type;
} lb_option;

/* How a setting is held in lb_settings (lb_option_info.kind). */
/* What pg_stat_activity shows for a pool without application_name. */
#define LB_DEFAULT_APPLICATION_NAME "lakebase"

typedef enum lb_option_kind {
    LB_OPT_NONE = 0, /* no field of its own (auth_type decides lb_settings.auth) */
    LB_OPT_TEXT,     /* char * (malloc'd or NULL) */
    LB_OPT_INT,      /* int */
    LB_OPT_NUMBER,   /* double */
    LB_OPT_BOOL,     /* int, 0 or 1 */
    LB_OPT_SSLMODE   /* lb_sslmode */
} lb_option_kind;

/* What the library knows of each setting (one table in lb_config.c): its option name, its
 * environment variable (NULL: options only), whether it is secret, what a valid value is, an
 * example value for .env files (NULL: none) and a one-line description; then where it is held
 * (kind, field: offsetof(lb_settings, ...)) and, for a number, its range [lo, hi] (lo excluded
 * when lo_open). Validation (unless `custom`: a rule of its own in lb_config.c), describe and the
 * pool key are read from these. */
typedef struct lb_option_info {
    const char *name;
    const char *env;
    int secret;
    const char *expect;
    const char *example;
    const char *doc;
    lb_option_kind kind;
    size_t field;
    int custom;
    double lo, hi;
    int lo_open;
} lb_option_info;

/* The settings table, in the order settings are reported; *count entries. */
const lb_option_info *lb_options(int *count);

typedef struct lb_settings {
    char *host;             /* NULL with workspace auth: read from the endpoint (lb_settings_discover) */
    int port;
    char *database;
    char *user;
    lb_sslmode sslmode;
    char *sslrootcert;      /* NULL: system bundle */
    char *endpoint;         /* projects/<p>/branches/<b>/endpoints/<e> */
    char *instance;         /* a provisioned database instance (instead of endpoint), or NULL */
    char *databricks_host;  /* normalised: scheme://host[:port], no trailing slash */
    lb_auth auth;
    char *token;            /* secret */
    char *client_id;
    char *client_secret;    /* secret */
    char *password;         /* secret */
    int max;                /* pool size */
    int process_max_connections; /* cap across the pools of one cap_key in this process, 0 = none */
    double idle_timeout;    /* seconds */
    double connect_timeout; /* seconds */
    double acquire_timeout; /* seconds */
    double max_lifetime;    /* seconds, 0 = unlimited */
    int statement_timeout;  /* milliseconds, 0 = server default */
    char *application_name; /* NULL = LB_DEFAULT_APPLICATION_NAME */
    char *profile;          /* the config-file profile the workspace settings came from, or NULL */
    char *databricks_cli_path; /* the databricks CLI for databricks-cli auth (NULL: "databricks") */
    int prepare;            /* 1 (default): per-connection prepared statement cache */
    int min_idle;           /* connections opened by lb_pool_warm and kept idle (0..max) */
    int prefetch;           /* 1: lb_pool_warm fetches the credential */
    int keepalives;         /* 1 (default): TCP keepalives on every connection */
    int keepalives_idle;    /* seconds idle before the first probe */
    int keepalives_interval; /* seconds between probes */
    int keepalives_count;   /* unanswered probes before the connection counts as dead */
    double tcp_user_timeout; /* seconds sent data may stay unacknowledged, 0 = the OS default */
    char *read_endpoint;    /* read-only endpoint of db:reader() (its own credential), or NULL */
    char *read_host;        /* its Postgres host; NULL: db:reader() is the primary */
    int read_port;          /* 0: the primary's port */
    int fallback_to_primary; /* 1: db:reader() runs on the primary while the reader is down */
    int slow_query_ms;      /* statements slower than this are logged (slow_query), 0 = never */
    int slow_acquire_ms;    /* checkouts that wait longer than this are logged (pool_wait), 0 = never */
    char *key;              /* identity of a pool: equal keys share it (holds no secret in clear) */
    char *credential_key;   /* identity of a credential: workspace, endpoint, auth identity (pool
                             * sizes and timeouts do not matter); equal keys share one */
    char *cap_key;          /* the pools that share one process_max_connections count: workspace,
                             * branch, database, user, identity (not host, endpoint or pool shape) */
} lb_settings;

/* Resolves options > environment > ~/.databrickscfg profile, validates every rule, and on
 * failure reports ALL problems at once in err->message (one line per setting, naming the env
 * variable, never a secret value). Returns NULL on failure. */
lb_settings *lb_settings_load(const lb_option *opts, size_t nopts, lb_error *err);
lb_settings *lb_settings_copy(const lb_settings *s);
void lb_settings_free(lb_settings *s);
/* Names as settings and messages spell them. */
const char *lb_auth_name(lb_auth a);
const char *lb_sslmode_name(lb_sslmode m);
/* Human-readable, secrets redacted; malloc'd. */
char *lb_settings_describe(const lb_settings *s);

/* ~/.databrickscfg parsing (lb_profile.c), used by lb_settings_load and the fuzzers. INI as
 * Python's configparser reads it: `[section]`, `key = value` or `key: value`, `#`/`;` comment
 * lines, keys case-insensitive, indented lines continue a value; no inheritance from [DEFAULT]. */
typedef struct lb_profile {
    char *host, *token, *client_id, *client_secret; /* malloc'd or NULL */
    char *auth_type;       /* `auth_type = databricks-cli` as `databricks auth login` writes it */
    char *default_profile; /* [__settings__] default_profile (read with section "__settings__") */
    int found;       /* the requested section exists */
    int has_default; /* the text has a [DEFAULT] section */
} lb_profile;
/* Parses len bytes of text for `section`. Returns 0, or -1 with a message in errbuf (a line
 * number, never text from the file: it may hold secrets). out is cleared first either way. */
int lb_profile_parse(const char *text, size_t len, const char *section, lb_profile *out,
                     char *errbuf, size_t errlen);
void lb_profile_clear(lb_profile *p); /* frees and wipes the values */

/* SHA-256 (lb_sha256.c): settings keys hash secrets with it, no crypto library needed. */
void lb_sha256(const void *data, size_t len, unsigned char out[32]);

/* ------------------------------------------------------------------------------------------
 * Credentials (lb_http.c, lb_time.c, lb_credential.c)
 * ---------------------------------------------------------------------------------------- */

typedef struct lb_credentials lb_credentials;

typedef struct lb_credential_stats {
    uint64_t refreshes;   /* successful credential fetches */
    uint64_t failures;    /* failed fetch attempts */
    double expires_at;    /* epoch seconds of the cached credential, 0 if none */
} lb_credential_stats;

/* Process-wide cache entry for (databricks_host, endpoint, auth identity); reference counted. */
lb_credentials *lb_credentials_acquire(const lb_settings *s, lb_error *err);
void lb_credentials_release(lb_credentials *c);
/* A valid credential (>= 2 minutes left, or the cached one while refreshes fail and it is still
 * valid). Blocks for at most connect_timeout; concurrent callers share one refresh.
 * *token is malloc'd (caller frees, and should wipe it); *expires_at epoch seconds. */
int lb_credentials_get(lb_credentials *c, char **token, double *expires_at, lb_error *err);
/* The server refused `token` (auth failure): drop it if it is still the cached one. */
void lb_credentials_invalidate(lb_credentials *c, const char *token);
void lb_credentials_stats(lb_credentials *c, lb_credential_stats *out);

/* What the workspace says about the settings' endpoint (GET /api/2.0/postgres/<endpoint>:
 * status.hosts) or instance (GET /api/2.0/database/instances/<name>: read_write_dns, read_only_dns),
 * and who the workspace identity is (GET /api/2.0/preview/scim/v2/Me: userName; the client id
 * under M2M). Read once per cache entry (single flight with the credential refresh) and kept for
 * the life of the process. */
#define LB_MAX_HOSTS 8
typedef struct lb_discovery {
    char *host;                /* the read-write host to connect to */
    char *hosts[LB_MAX_HOSTS]; /* every host the endpoint lists (host first), NULL-terminated */
    char *user;                /* the Postgres role of the workspace identity */
} lb_discovery;
int lb_credentials_discover(lb_credentials *c, lb_discovery *out, lb_error *err);
void lb_discovery_clear(lb_discovery *d);
/* Fills s->host and s->user when they are NULL (workspace auth only) from lb_credentials_discover;
 * 0, or -1 with err set. */
int lb_settings_discover(lb_settings *s, lb_error *err);

/* ------------------------------------------------------------------------------------------
 * Pool (lb_pool.c, lb_conn.c)
 * ---------------------------------------------------------------------------------------- */

typedef struct lb_pool lb_pool;
typedef struct lb_conn lb_conn;

typedef struct lb_pool_stats {
    int total, idle, in_use, waiting, max;
    uint64_t connects, connect_failures;
    uint64_t credential_refreshes, credential_failures;
    double credential_expires_at;
    int pooler_detected; /* a transaction-mode pooler answered: prepared statements are off */
} lb_pool_stats;

/* Process-wide pool for identical settings (same key): reference counted, shared by every
 * caller (every Lua state, every thread). */
lb_pool *lb_pool_acquire(const lb_settings *s, lb_error *err);
void lb_pool_retain(lb_pool *p); /* one more reference for a holder that already has one */
void lb_pool_release(lb_pool *p);
lb_conn *lb_pool_checkout(lb_pool *p, lb_error *err);
void lb_pool_checkin(lb_pool *p, lb_conn *c); /* a connection in a bad state is discarded */
void lb_pool_stats_get(lb_pool *p, lb_pool_stats *out);
void lb_pool_close(lb_pool *p); /* close idle connections, refuse new checkouts */

/* One statement and its parameters: what every exec and pipeline call runs. types may be NULL
 * (the server infers them), lengths/formats may be NULL (all text). Borrowed: the caller keeps
 * everything alive for the call. */
typedef struct lb_query {
    const char *sql;
    int nparams;
    const Oid *types;
    const char *const *values;
    const int *lengths;
    const int *formats;
} lb_query;

/* One statement on a checked-out connection (extended protocol; prepared automatically and
 * cached per connection when settings->prepare is on). Returns a PGresult with status
 * COMMAND_OK or TUPLES_OK that the caller PQclear()s, or NULL with err set (kind query with
 * sqlstate/detail/hint for server errors, connect for a broken connection). */
PGresult *lb_conn_exec(lb_conn *c, const lb_query *q, lb_error *err);
/* Several statements, no parameters (simple protocol): migrations, scripts. */
int lb_conn_exec_script(lb_conn *c, const char *sql, lb_error *err);
/* 1 while the server reports an open (or failed) transaction on this connection. */
int lb_conn_in_transaction(const lb_conn *c);
PGconn *lb_conn_pg(lb_conn *c); /* the underlying libpq connection (for tests and benchmarks) */
/* Checkout, one statement, checkin. When the connection turns out to have died before the
 * server processed the statement (restart, admin termination), retries on a fresh one. One that
 * died after the statement left fails (kind connect, retriable, "may or may not have run").
 * Checkout opens connections with retries: refused/reset/timed-out connects, 57P01-57P03 and
 * 53300 are retried with jittered exponential backoff (shared by the pool's callers) until
 * acquire_timeout; authentication (after one credential refresh), TLS and settings errors not. */
PGresult *lb_pool_exec(lb_pool *p, const lb_query *q, lb_error *err);
int lb_pool_exec_script(lb_pool *p, const char *sql, lb_error *err); /* same, simple protocol */
/* Rows while the server still sends them (libpq single-row mode), for large results without
 * holding the whole PGresult: row_fn receives batches of single-row results (PQntuples 1 each,
 * the same columns) owned by the core and cleared after row_fn returns; no lock is held while it
 * runs. row_fn returns 0 to go on, nonzero to stop: the rest of the answer is then read and
 * dropped (the connection stays usable) and the call fails with err "stopped by the row callback".
 * Returns the final result (COMMAND_OK, or TUPLES_OK with no rows whose PQcmdTuples counts them)
 * that the caller PQclear()s, or NULL with err set; after a failure the caller discards the rows
 * it was given. Same statement cache and errors as lb_conn_exec; the pool variant retries only
 * when no row was delivered. */
typedef int (*lb_rows_fn)(void *ctx, PGresult *const *rows, int n);
PGresult *lb_conn_exec_rows(lb_conn *c, const lb_query *q, lb_rows_fn row_fn, void *ctx,
                            lb_error *err);
/* flags: LB_EXEC_IDEMPOTENT (the statement may run twice without harm) also retries a statement
 * whose connection died after it was sent, before its answer (and before any row reached row_fn);
 * without it that failure is returned: retriable, "may or may not have run". */
#define LB_EXEC_IDEMPOTENT 1u
PGresult *lb_pool_exec_rows(lb_pool *p, const lb_query *q, lb_rows_fn row_fn, void *ctx,
                            unsigned flags, lb_error *err);
const lb_settings *lb_pool_settings(lb_pool *p); /* read-only, lives as long as the pool */

/* A statement to run later, on the connection's next flight: BEGIN, SAVEPOINT, RELEASE SAVEPOINT
 * travel with the statement that follows them (transactions in k + 1 round trips). A deferred
 * statement that fails is reported by the call that sent it (that call's own statement does not
 * run); one that was never sent is dropped at checkin. Returns 0, or -1 with err set. */
int lb_conn_defer(lb_conn *c, const char *sql, lb_error *err);
/* lb_conn_exec_script for the transaction's own statements (COMMIT, ROLLBACK, RELEASE SAVEPOINT
 * ...): the deferred statements travel in the same simple query ("BEGIN; COMMIT" is one round
 * trip). A script of the application's gets a round trip for them first: a whole simple query is
 * parsed before any of it runs, and a syntax error must not take the BEGIN down with it. */
int lb_conn_exec_control(lb_conn *c, const char *sql, lb_error *err);

/* Pipelines: n statements (with anything deferred before them) in one flight, one Sync after the
 * last. Outside a transaction they form one implicit transaction: all or nothing. The first
 * failure stops the rest (the server skips them): -1 with err set and *failed its index (0-based;
 * -1 when a deferred statement or the connection failed first); on success 0 and res[0..n-1]
 * hold each statement's result for the caller to PQclear. Prepared statements are cached as
 * lb_conn_exec caches them. */
int lb_conn_pipeline(lb_conn *c, const lb_query *stmts, int n, PGresult **res, int *failed,
                     lb_error *err);
/* Checkout, lb_conn_pipeline, checkin; retried once on a fresh connection when the connection
 * had died before the server processed anything. */
int lb_pool_pipeline(lb_pool *p, const lb_query *stmts, int n, PGresult **res, int *failed,
                     lb_error *err);
/* Closes idle connections past idle_timeout/max_lifetime now (checkouts, checkins and
 * lb_pool_stats_get do it too; a timer may call it when the application is quiet). */
void lb_pool_sweep(lb_pool *p);
/* Warm start: fetches the credential now when settings->prefetch, and opens connections until
 * settings->min_idle are idle (the sweep keeps that many past idle_timeout). 0, or -1 with err
 * (the pool stays usable: connections open lazily as before). */
int lb_pool_warm(lb_pool *p, lb_error *err);

/* What a cold connect costs, step by step (seconds): name resolution, TCP, TLS, startup and
 * authentication, the first query; rtt is the fastest of five more `select 1` (one round trip). */
typedef struct lb_probe {
    double dns, tcp, tls, auth, first_query, rtt;
    int tls_used;
} lb_probe;
int lb_conn_probe(const lb_settings *s, const char *password, lb_probe *out, lb_error *err);

/* ------------------------------------------------------------------------------------------
 * Pinned connections (lb_pin.c): the one handle of a transaction. A pin holds one checked-out
 * connection under an id that any Lua state or thread can use: the OpenResty bridge's
 * transactions span calls from different states, and pool:begin() holds one in a Lua object.
 * Leased pins unused for longer than their lease are rolled back and returned by a reaper.
 * ---------------------------------------------------------------------------------------- */

typedef uint64_t lb_pin_id;
#define LB_PIN_DEFAULT_LEASE 60.0 /* core.pin_new's lease when none is given */
/* On success the pin takes over the caller's reference to p (lb_pool_acquire, lb_pool_retain)
 * and releases it with the pin; on failure the caller keeps it. lease_seconds > 0: reaped once
 * idle (not taken) for longer; <= 0: owned, never reaped: the owner releases it (pool:begin(),
 * whose transaction may sit idle between statements for as long as the application likes). */
lb_pin_id lb_pin_new(lb_pool *p, double lease_seconds, lb_error *err); /* 0 on failure */
lb_conn *lb_pin_take(lb_pin_id id, lb_error *err);  /* exclusive use until lb_pin_give */
void lb_pin_give(lb_pin_id id, lb_conn *c);
/* Rolls back an open transaction, checks the connection in; a taken pin at its holder's give. */
void lb_pin_release(lb_pin_id id);
int lb_pin_count(void); /* leased pins (the ones a reaper looks after) */
int lb_pin_exists(lb_pin_id id); /* 1 while the pin is registered (not released or reaped) */
/* Releases every pin idle (not taken) for longer than its lease; returns how many. Also run by
 * lb_pin_new and lb_pin_take, so a process that keeps using pins needs no timer. */
int lb_pin_reap(void);

/* ------------------------------------------------------------------------------------------
 * Observability (lb_metrics.c, lb_log.c): counters and histograms kept per series set (one per
 * endpoint, host, port and database: pools with those in common share one; a credential set per
 * endpoint), process-wide, never freed; and the queue of events (connects, credential refreshes,
 * slow queries, per-query events for hooks) that C work, background threads included, reports
 * for Lua to deliver on its next call.
 * ---------------------------------------------------------------------------------------- */

#define LB_METRICS_BUCKETS 15 /* upper bounds in seconds: lb_metrics_bounds */
#define LB_METRICS_CLASSES 15 /* SQLSTATE classes counted apart: lb_metrics_class */
#define LB_METRICS_KINDS 7    /* lb_kind values (LB_OK unused) */

typedef struct lb_histogram {
    uint64_t count;
    double sum;                      /* seconds */
    uint64_t le[LB_METRICS_BUCKETS]; /* cumulative: observations <= lb_metrics_bounds[i] */
} lb_histogram;

typedef struct lb_metrics_sample {
    int credential;  /* 1: a credential set (endpoint only), 0: a pool set */
    const char *endpoint, *host, *database; /* "" when unset; live as long as the process */
    int port;
    uint64_t queries, connects, connect_failures, refreshes, refresh_failures;
    uint64_t errors[LB_METRICS_KINDS][LB_METRICS_CLASSES]; /* [lb_kind][class] */
    lb_histogram query, connect, wait, refresh;
    int pools, open, idle, in_use, waiting, max; /* summed over the live pools of the set */
    double expires_at; /* credential sets: epoch seconds of the cached credential, 0 if none */
    const void *set;   /* identity of the series set */
} lb_metrics_sample;

extern const double lb_metrics_bounds[LB_METRICS_BUCKETS];
/* "none" (no SQLSTATE), "08", "22", ..., "other": the class label of errors[][i]. */
const char *lb_metrics_class(int i);
/* Every series set now: *out malloc'd (free() it), *n entries. 0, or -1 out of memory. */
int lb_metrics_collect(lb_metrics_sample **out, size_t *n);

typedef enum lb_log_level { LB_LOG_DEBUG, LB_LOG_INFO, LB_LOG_WARN, LB_LOG_ERROR } lb_log_level;
/* What to queue (lb_log_want): log events, per-query events (on_query), connect events. */
enum { LB_WANT_LOG = 1, LB_WANT_QUERY = 2, LB_WANT_CONNECT = 4 };

#define LB_EVENT_FIELDS 12
typedef struct lb_event_field {
    const char *key; /* static */
    char *text;      /* malloc'd, or NULL for a number */
    double num;
} lb_event_field;

/* One statement as the on_query hook sees it: no parameter values, no message (the server quotes
 * values in some). */
typedef struct lb_query_event {
    const void *set;        /* the series set whose labels it shares (lb_event_pool) */
    const char *sql;        /* its text with $n placeholders */
    double seconds;         /* how long it ran */
    double time;            /* epoch seconds when it ended */
    double rows;            /* rows returned or affected, when has_rows */
    int has_rows;
    const char *error_kind; /* static (lb_kind_name), or NULL when it succeeded */
    char sqlstate[6];       /* "" when none */
} lb_query_event;

typedef struct lb_event {
    lb_log_level level;
    const char *name; /* static: "connect_ok", "credential_fetched", "slow_query", "query", ... */
    double time;      /* epoch seconds when it happened */
    const void *set;  /* non-NULL for "query" events, whose content is `query` (its sql owned) */
    lb_query_event query;
    int nfields;
    lb_event_field f[LB_EVENT_FIELDS];
} lb_event;

void lb_log_want(unsigned mask); /* 0: queue nothing (the default) */
unsigned lb_log_wanted(void);
/* Takes up to max queued events (oldest first) into out; the caller frees each with
 * lb_event_free. Returns how many; *dropped: events lost to a full queue since the last call. */
int lb_log_take(lb_event *out, int max, uint64_t *dropped);
/* The labels of e->set ("" when unset). */
void lb_event_pool(const lb_event *e, const char **endpoint, const char **host,
                   const char **database, int *port);
/* 1 when something is queued (a relaxed atomic read, no lock): the cheap test before lb_log_take. */
int lb_log_pending(void);
void lb_event_free(lb_event *e);

/* A thread that delivers its own events (the Lua state holding the on_query hook runs its
 * statements there) keeps its latest per-query event aside instead of queueing it: no copy into
 * the queue, no lock. Any other event the thread queues, or its next statement, first moves the
 * kept one into the queue, so the order is the queue's. lb_log_keep_queries(1) for the calling
 * thread; lb_log_take_kept copies it out (1) or returns 0; its sql stays valid until the thread's
 * next statement. */
void lb_log_keep_queries(int on);
int lb_log_take_kept(lb_query_event *out);

#endif
