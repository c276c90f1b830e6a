/* Internal: clocks and RFC 3339 timestamps for the credential cache (lb_time.c). */
#ifndef LB_TIME_H
#define LB_TIME_H

/* Parses an RFC 3339 date-time ("2026-11-25T15:04:05.123456789Z", "...+02:00", "...-05:30"):
 * any number of fractional digits, `Z` or a numeric offset, nothing after it. Strict: a
 * malformed or out-of-range field is an error. Returns 0 and *epoch (seconds since 1970, UTC)
 * on success, -1 on failure. */
int lb_time_parse_rfc3339(const char *s, double *epoch);

/* Seconds on CLOCK_MONOTONIC: for deadlines and expiry decisions (never jumps). */
double lb_time_mono(void);
/* A monotonic time (lb_time_mono's seconds) as the timespec of pthread_cond_timedwait on a
 * condition variable whose clock is CLOCK_MONOTONIC. */
struct timespec;
void lb_time_timespec(double mono, struct timespec *ts);
/* Seconds since the epoch on the wall clock (plus the test skew below). */
double lb_time_wall(void);
/* Sleeps for `seconds` (restarted after signals); non-positive returns at once. */
void lb_time_sleep(double seconds);
/* 0.5 .. 1.0, for "equal jitter" backoff: clients that failed together do not retry together. */
double lb_time_jitter(void);

/* Tests only: shifts what lb_time_wall reports by `seconds`, to simulate a wall-clock jump. */
void lb_time_set_wall_skew(double seconds);

#endif
