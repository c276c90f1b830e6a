/* The floor: the bench workloads in plain C over libpq (PQexecParams, or PQprepare+PQexecPrepared).
 * usage: raw_libpq exec|prepared W1|W2|W3|W4   (connection from the PG* environment)
 * Prints one JSON line: {"peer":..., "workload":..., "value":..., "unit":..., "peak_rss_kb":...}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libpq-fe.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_rss_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0 && sscanf(line + 6, "%ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static void die(PGconn *conn, const char *what)
{
    fprintf(stderr, "raw_libpq: %s: %s", what, PQerrorMessage(conn));
    exit(1);
}

/* One statement, either unprepared (PQexecParams) or through a statement prepared once. */
static PGresult *run(PGconn *conn, int prepared, const char *name, const char *sql, int n,
                     const char *const *values)
{
    PGresult *res = prepared ? PQexecPrepared(conn, name, n, values, NULL, NULL, 0)
                             : PQexecParams(conn, sql, n, NULL, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        die(conn, sql);
    return res;
}

static void prepare(PGconn *conn, const char *name, const char *sql, int n)
{
    PGresult *res = PQprepare(conn, name, sql, n, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die(conn, "prepare");
    PQclear(res);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "exec", *w = argc > 2 ? argv[2] : "W1";
    int prepared = strcmp(mode, "prepared") == 0;
    PGconn *conn = PQconnectdb("");
    char buf[64], buf2[64];
    const char *vals[2];
    double t0, t, value = 0;
    const char *unit = "";
    unsigned int seed = 12345;
    long sink = 0;
    int i, r, c;

    if (PQstatus(conn) != CONNECTION_OK)
        die(conn, "connect");

    if (strcmp(w, "W1") == 0) {
        const int n = 20000;
        if (prepared)
            prepare(conn, "w1", "select $1::int", 1);
        t0 = now();
        for (i = 0; i < n; i++) {
            snprintf(buf, sizeof buf, "%d", i);
            vals[0] = buf;
            PGresult *res = run(conn, prepared, "w1", "select $1::int", 1, vals);
            sink += atoi(PQgetvalue(res, 0, 0));
            PQclear(res);
        }
        t = now() - t0;
        value = t / n * 1e6;
        unit = "us/query";
    } else if (strcmp(w, "W2") == 0) {
        const int n = 20000;
        const char *sql = "select id, name, price, created_at, tags from bench_items where id = $1";
        if (prepared)
            prepare(conn, "w2", sql, 1);
        t0 = now();
        for (i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            snprintf(buf, sizeof buf, "%u", 1 + (seed >> 8) % 100000);
            vals[0] = buf;
            PGresult *res = run(conn, prepared, "w2", sql, 1, vals);
            for (c = 0; c < PQnfields(res); c++)
                sink += PQgetlength(res, 0, c);
            PQclear(res);
        }
        t = now() - t0;
        value = t / n * 1e6;
        unit = "us/lookup";
    } else if (strcmp(w, "W3") == 0) {
        const int rounds = 5;
        long rows = 0;
        const char *sql = "select * from bench_items limit 50000";
        if (prepared)
            prepare(conn, "w3", sql, 0);
        t0 = now();
        for (i = 0; i < rounds; i++) {
            PGresult *res = run(conn, prepared, "w3", sql, 0, NULL);
            for (r = 0; r < PQntuples(res); r++)
                for (c = 0; c < PQnfields(res); c++)
                    sink += PQgetisnull(res, r, c) ? 0 : PQgetvalue(res, r, c)[0];
            rows += PQntuples(res);
            PQclear(res);
        }
        t = now() - t0;
        value = rows / t;
        unit = "rows/s";
    } else if (strcmp(w, "W4") == 0) {
        const int n = 10000;
        const char *sql = "insert into bench_inserts (name, price) values ($1, $2)";
        PQclear(run(conn, 0, "", "truncate bench_inserts", 0, NULL));
        if (prepared)
            prepare(conn, "w4", sql, 2);
        t0 = now();
        for (i = 0; i < n; i++) {
            snprintf(buf, sizeof buf, "item-%d", i);
            snprintf(buf2, sizeof buf2, "%d.%02d", i % 1000, i % 100);
            vals[0] = buf;
            vals[1] = buf2;
            PQclear(run(conn, prepared, "w4", sql, 2, vals));
        }
        t = now() - t0;
        value = n / t;
        unit = "inserts/s";
    } else {
        fprintf(stderr, "raw_libpq: unknown workload %s\n", w);
        return 2;
    }
    printf("{\"peer\":\"libpq %s\",\"workload\":\"%s\",\"value\":%.3f,\"unit\":\"%s\",\"peak_rss_kb\":%ld,\"sink\":%ld}\n",
           prepared ? "prepared" : "PQexecParams", w, value, unit, peak_rss_kb(), sink % 7);
    PQfinish(conn);
    return 0;
}
