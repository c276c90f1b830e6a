/* Clocks and a strict RFC 3339 parser. The credential API reports expiry as a wall-clock
 * timestamp; the cache converts it once into a monotonic deadline so that a wall-clock jump
 * cannot make it serve an expired credential. */
#include "lb_time.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* ---- clocks ---------------------------------------------------------------------------- */

/* Stored as nanoseconds so that it can be atomic without a lock. */
static _Atomic int64_t wall_skew_ns;

static double clock_seconds(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double lb_time_mono(void)
{
    return clock_seconds(CLOCK_MONOTONIC);
}

void lb_time_timespec(double mono, struct timespec *ts)
{
    if (!(mono > 0))
        mono = 0;
    ts->tv_sec = (time_t)mono;
    ts->tv_nsec = (long)((mono - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec >= 1000000000L)
        ts->tv_nsec = 999999999L;
}

double lb_time_wall(void)
{
    return clock_seconds(CLOCK_REALTIME) + (double)atomic_load(&wall_skew_ns) / 1e9;
}

void lb_time_set_wall_skew(double seconds)
{
    atomic_store(&wall_skew_ns, (int64_t)(seconds * 1e9));
}

double lb_time_jitter(void)
{
    return 0.5 + 0.5 * ((double)arc4random() / 4294967296.0);
}

void lb_time_sleep(double seconds)
{
    struct timespec req, rem;

    if (!(seconds > 0))
        return;
    req.tv_sec = (time_t)seconds;
    req.tv_nsec = (long)((seconds - (double)req.tv_sec) * 1e9);
    if (req.tv_nsec >= 1000000000L)
        req.tv_nsec = 999999999L;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR)
        req = rem;
}

/* ---- RFC 3339 ---------------------------------------------------------------------------- */

/* Reads exactly n decimal digits at *p, advancing it; -1 when one is missing. */
static int digits(const char **p, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    return v;
}

static int expect(const char **p, char c)
{
    if (**p != c)
        return -1;
    (*p)++;
    return 0;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic: exact for any year). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int lb_time_parse_rfc3339(const char *s, double *epoch)
{
    const char *p = s;
    int year, mon, day, hour, min, sec, off = 0;
    double frac = 0.0, scale = 0.1;

    if (!s)
        return -1;
    if ((year = digits(&p, 4)) < 0 || expect(&p, '-') || (mon = digits(&p, 2)) < 0 ||
        expect(&p, '-') || (day = digits(&p, 2)) < 0)
        return -1;
    /* RFC 3339 allows a lower-case t and (section 5.6 note) a space as the separator. */
    if (*p != 'T' && *p != 't' && *p != ' ')
        return -1;
    p++;
    if ((hour = digits(&p, 2)) < 0 || expect(&p, ':') || (min = digits(&p, 2)) < 0 ||
        expect(&p, ':') || (sec = digits(&p, 2)) < 0)
        return -1;
    if (*p == '.') {
        const char *start = ++p;
        for (; *p >= '0' && *p <= '9'; p++) {
            frac += (*p - '0') * scale; /* digits beyond double precision add nothing */
            scale /= 10;
        }
        if (p == start)
            return -1;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if ((oh = digits(&p, 2)) < 0 || expect(&p, ':') || (om = digits(&p, 2)) < 0)
            return -1;
        if (oh > 23 || om > 59)
            return -1;
        off = sign * (oh * 3600 + om * 60);
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > 23 ||
        min > 59 || sec > 60) /* 60: a leap second */
        return -1;

    *epoch = (double)(days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec - off) +
             frac;
    return 0;
}
