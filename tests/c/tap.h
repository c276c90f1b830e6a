/* The small TAP harness shared by the C tests: `ok N - what` / `not ok N - what` lines (counted by
 * spec/support/run_tests.sh), and the fixtures' environment. Include once, from one test file. */
#ifndef LB_TEST_TAP_H
#define LB_TEST_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int test_no;
static int failures;

static int ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    printf("%sok %d - ", cond ? "" : "not ", ++test_no);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (!cond)
        failures++;
    return cond;
}

/* A LAKEBASE_TEST_* (or other) variable, NULL when unset or empty. */
static inline const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

#endif
