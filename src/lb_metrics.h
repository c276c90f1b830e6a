/* Private to the core: where the pool, the connections and the credential cache record what they
 * did (lb_metrics.c), and the events they report (lb_log.c). Recording is lock-free (relaxed
 * atomics): a query costs a few atomic adds and the caller's two clock reads. */
#ifndef LB_METRICS_H
#define LB_METRICS_H

#include "lakebase.h"

typedef struct lb_metrics lb_metrics;

/* The series set of a pool's settings (endpoint, host, port, database) or of a credential's
 * endpoint: found or created, never freed (counters must only grow). NULL out of memory, which
 * every recording function accepts. */
lb_metrics *lb_metrics_for_pool(const lb_settings *s);
lb_metrics *lb_metrics_for_credential(const char *endpoint);
void lb_metrics_labels(const lb_metrics *m, const char **endpoint, const char **host,
                       const char **database, int *port);

/* One statement (or script, or pipeline) ran for `seconds`; err NULL or LB_OK when it succeeded. */
void lb_metrics_query(lb_metrics *m, double seconds, const lb_error *err);
/* A failure that never reached the server (no connection within acquire_timeout, ...). */
void lb_metrics_error(lb_metrics *m, const lb_error *err);
void lb_metrics_connect(lb_metrics *m, double seconds, int ok);
void lb_metrics_wait(lb_metrics *m, double seconds); /* a checkout, until it had a connection */
/* A credential fetch; expires_at (epoch seconds) when it succeeded. */
void lb_metrics_refresh(lb_metrics *m, double seconds, int ok, double expires_at);

/* Events (lb_log.c). lb_event_* build one; lb_log_push queues it (taking its texts) or frees it
 * when the queue is full (the oldest is dropped). */
void lb_event_init(lb_event *e, lb_log_level level, const char *name);
void lb_event_str(lb_event *e, const char *key, const char *text); /* NULL text: skipped */
void lb_event_num(lb_event *e, const char *key, double num);
void lb_event_labels(lb_event *e, const lb_metrics *m); /* endpoint, host, port, database */
void lb_log_push(lb_event *e);
/* A per-query event: kept aside when this thread delivers its own (lb_log_keep_queries), else
 * queued with its sql copied. */
void lb_log_query(const lb_query_event *q);

/* One call per thing that happened (lb_observe.c): its metrics, and its event when one is wanted.
 * `err` is NULL (or LB_OK) on success. */
void lb_observe_query(lb_metrics *m, const char *sql, double seconds, double slow,
                      const PGresult *res, const lb_error *err);
void lb_observe_connect(lb_metrics *m, lb_conn *c, double seconds, int attempt, int will_retry,
                        const lb_error *err);
/* connect_retry for a transient failure (the pool tries again until acquire_timeout),
 * connect_failed for any other; lb_observe_gave_up: the pool stopped trying (no metrics: its
 * attempts were counted). */
void lb_observe_gave_up(lb_metrics *m, double seconds, int attempts, const lb_error *err);
void lb_observe_wait(lb_metrics *m, double seconds, int slow_ms, const lb_error *err);
/* A credential fetch of `endpoint`: recovered after failed ones (`failed_before`), in the
 * background or for a waiting caller; status the last HTTP status (0: none). */
void lb_observe_refresh(const char *endpoint, double seconds, int background, int failed_before,
                        long status, double expires_at, const lb_error *err);

#endif
