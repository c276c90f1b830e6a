/* lb_time: the RFC 3339 parsing table (fractional digits, Z, offsets, garbage) and the clocks. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lb_time.h"

static int test_no;
static int failures;

static void ok(int cond, const char *what)
{
    printf("%sok %d - %s\n", cond ? "" : "not ", ++test_no, what);
    if (!cond)
        failures++;
}

/* 2026-11-25T15:04:05Z as epoch seconds (date -u -d 2026-11-25T15:04:05Z +%s). */
#define BASE 1795619045.0

static void parses(const char *s, double want)
{
    char what[160];
    double got = 0;
    int rc = lb_time_parse_rfc3339(s, &got);

    snprintf(what, sizeof what, "parse %s", s);
    ok(rc == 0 && fabs(got - want) < 1e-6, what);
    if (rc != 0 || fabs(got - want) >= 1e-6)
        printf("# rc=%d got=%.9f want=%.9f\n", rc, got, want);
}

static void rejects(const char *s)
{
    char what[160];
    double got = 12345;

    snprintf(what, sizeof what, "reject \"%s\"", s ? s : "(null)");
    ok(lb_time_parse_rfc3339(s, &got) == -1 && got == 12345, what);
}

int main(void)
{
    double m1, m2, w;

    /* fractional digits: none, 3, 6, 9, and more than a double holds */
    parses("2026-11-25T15:04:05Z", BASE);
    parses("2026-11-25T15:04:05.123Z", BASE + 0.123);
    parses("2026-11-25T15:04:05.123456Z", BASE + 0.123456);
    parses("2026-11-25T15:04:05.123456789Z", BASE + 0.123456789);
    parses("2026-11-25T15:04:05.5Z", BASE + 0.5);
    parses("2026-11-25T15:04:05.123456789012345Z", BASE + 0.123456789012345);
    /* offsets: local time minus the offset is UTC */
    parses("2026-11-25T17:04:05+02:00", BASE);
    parses("2026-11-25T09:34:05-05:30", BASE);
    parses("2026-11-25T09:34:05.250-05:30", BASE + 0.25);
    parses("2026-11-25T15:04:05+00:00", BASE);
    parses("2026-11-25t15:04:05z", BASE);
    parses("2026-11-25 15:04:05Z", BASE);
    /* calendar edges */
    parses("1970-01-01T00:00:00Z", 0);
    parses("2024-02-29T00:00:00Z", 1709164800.0);
    parses("2000-03-01T00:00:00Z", 951868800.0);
    parses("2026-01-01T00:30:00+01:00", 1767223800.0);

    rejects(NULL);
    rejects("");
    rejects("garbage");
    rejects("2026-11-25");
    rejects("2026-11-25T15:04:05");          /* no zone */
    rejects("2026-11-25T15:04:05.Z");        /* dot without digits */
    rejects("2026-11-25T15:04:05Zjunk");     /* trailing text */
    rejects("2026-11-25T15:04:05+0200");     /* offset without colon */
    rejects("2026-11-25T15:04:05+02");
    rejects("2026-13-25T15:04:05Z");         /* month 13 */
    rejects("2026-02-29T15:04:05Z");         /* not a leap year */
    rejects("2026-11-31T15:04:05Z");
    rejects("2026-11-25T24:00:00Z");
    rejects("2026-11-25T15:60:00Z");
    rejects("2026-11-25T15:04:61Z");
    rejects("2026-11-25T15:04:05+24:00");
    rejects("26-11-25T15:04:05Z");
    rejects("2026-11-25X15:04:05Z");
    rejects(" 2026-11-25T15:04:05Z");
    rejects("2026-1a-25T15:04:05Z");
    rejects("1795619045");

    /* clocks */
    m1 = lb_time_mono();
    lb_time_sleep(0.05);
    m2 = lb_time_mono();
    ok(m2 - m1 >= 0.05 && m2 - m1 < 1.0, "monotonic clock advances across lb_time_sleep(0.05)");
    w = lb_time_wall();
    ok(w > BASE - 86400.0 * 365 * 2, "wall clock is a plausible epoch");
    lb_time_set_wall_skew(-3600);
    ok(fabs(lb_time_wall() - (w - 3600)) < 1.0, "wall skew shifts the wall clock (test hook)");
    ok(lb_time_mono() >= m2, "wall skew does not move the monotonic clock");
    lb_time_set_wall_skew(0);
    ok(fabs(lb_time_wall() - w) < 1.0, "wall skew back to 0");

    printf("1..%d\n", test_no);
    return failures ? 1 : 0;
}
