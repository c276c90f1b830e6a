/* The round-trip workloads (bench/rtt.sh) in plain C over libpq, through the latency proxy:
 *   R0                 the path's round-trip time: the fastest of 20 `select 1` (PQexec)
 *   R1 exec|prepared   warm `select $1::int`, per query
 *   R2 exec|prepared   first use of a new statement on a connection (PQexecParams: unnamed, one
 *                      flight; PQprepare + PQexecPrepared: two)
 *   R3                 a transaction of 5 inserts written plainly: BEGIN, 5 x PQexecParams, COMMIT
 *   R4 seq|pipeline    100 independent inserts, one by one or in libpq's pipeline mode
 *   R5                 cold start: PQconnectdb (TCP, TLS, SCRAM) + the first query
 * usage: rtt_libpq R0|R1|R2|R3|R4|R5 [mode]; connection from the PG* environment; the proxy's control
 * port in BENCH_PROXY_CTL (flights are read from its counters). Prints one JSON line. */
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

/* The proxy's counters through its control port (the python client prints one JSON line). */
static long proxy(const char *what)
{
    char cmd[512], line[4096];
    const char *ctl = getenv("BENCH_PROXY_CTL"), *script = getenv("BENCH_PROXY_SCRIPT");
    long flights = -1;
    FILE *f;
    if (!ctl || !script)
        return -1;
    snprintf(cmd, sizeof cmd, "python3 %s ctl %s %s", script, ctl, what);
    if (!(f = popen(cmd, "r")))
        return -1;
    if (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"flights\":");
        if (p)
            flights = strtol(p + 10, NULL, 10);
    }
    pclose(f);
    return flights;
}

static void die(PGconn *conn, const char *what)
{
    fprintf(stderr, "rtt_libpq: %s: %s", what, PQerrorMessage(conn));
    exit(1);
}

static void check(PGconn *conn, PGresult *res, const char *what)
{
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        die(conn, what);
    PQclear(res);
}

static PGconn *connect_env(void)
{
    PGconn *conn = PQconnectdb("");
    if (PQstatus(conn) != CONNECTION_OK)
        die(conn, "connect");
    return conn;
}

static void insert(PGconn *conn, int i)
{
    char v[32];
    const char *values[1] = { v };
    snprintf(v, sizeof v, "rtt-%d", i);
    check(conn, PQexecParams(conn, "insert into bench_inserts (name, price) values ($1, 1)", 1,
                             NULL, values, NULL, NULL, 0), "insert");
}

int main(int argc, char **argv)
{
    const char *w = argc > 1 ? argv[1] : "R1", *mode = argc > 2 ? argv[2] : "exec";
    const char *peer = "libpq PQexecParams", *unit = "ms/query";
    double t0, value = 0;
    long flights;
    int i, n = 1;
    PGconn *conn = NULL;

    if (strcmp(w, "R5") != 0) {
        conn = connect_env();
        check(conn, PQexec(conn, "select 1"), "warm");
    }
    proxy("reset");
    t0 = now();
    if (strcmp(w, "R0") == 0) {
        double best = 1e9;
        for (i = 0; i < 20; i++) {
            double t = now();
            check(conn, PQexec(conn, "select 1"), "R0");
            t = now() - t;
            if (t < best)
                best = t;
        }
        printf("{\"peer\":\"libpq PQexec\",\"workload\":\"R0\",\"value\":%.3f,"
               "\"unit\":\"ms (fastest of 20)\",\"flights\":1}\n", best * 1000);
        PQfinish(conn);
        return 0;
    } else if (strcmp(w, "R1") == 0) {
        n = 100;
        if (strcmp(mode, "prepared") == 0) {
            peer = "libpq prepared";
            check(conn, PQprepare(conn, "r1", "select $1::int as v", 1, NULL), "prepare");
            proxy("reset");
            t0 = now();
        }
        for (i = 0; i < n; i++) {
            char v[16];
            const char *values[1] = { v };
            snprintf(v, sizeof v, "%d", i);
            check(conn, strcmp(mode, "prepared") == 0
                            ? PQexecPrepared(conn, "r1", 1, values, NULL, NULL, 0)
                            : PQexecParams(conn, "select $1::int as v", 1, NULL, values, NULL,
                                           NULL, 0), "R1");
        }
    } else if (strcmp(w, "R2") == 0) {
        n = 10;
        if (strcmp(mode, "prepared") == 0)
            peer = "libpq prepared";
        for (i = 0; i < n; i++) {
            char sql[64], name[16];
            const char *values[1] = { "1" };
            snprintf(sql, sizeof sql, "select $1::int + %d as v", i);
            snprintf(name, sizeof name, "r2_%d", i);
            if (strcmp(mode, "prepared") == 0) {
                check(conn, PQprepare(conn, name, sql, 1, NULL), "prepare");
                check(conn, PQexecPrepared(conn, name, 1, values, NULL, NULL, 0), "R2");
            } else {
                check(conn, PQexecParams(conn, sql, 1, NULL, values, NULL, NULL, 0), "R2");
            }
        }
        unit = "ms/statement";
    } else if (strcmp(w, "R3") == 0) {
        check(conn, PQexec(conn, "BEGIN"), "begin");
        for (i = 0; i < 5; i++)
            insert(conn, i);
        check(conn, PQexec(conn, "COMMIT"), "commit");
        unit = "ms/transaction";
    } else if (strcmp(w, "R4") == 0 && strcmp(mode, "pipeline") == 0) {
        peer = "libpq pipeline mode";
        if (!PQenterPipelineMode(conn))
            die(conn, "pipeline");
        for (i = 0; i < 100; i++) {
            char v[32];
            const char *values[1] = { v };
            snprintf(v, sizeof v, "rtt-%d", i);
            if (!PQsendQueryParams(conn, "insert into bench_inserts (name, price) values ($1, 1)",
                                   1, NULL, values, NULL, NULL, 0))
                die(conn, "send");
        }
        if (!PQpipelineSync(conn))
            die(conn, "sync");
        for (i = 0; i < 100; i++) {
            PGresult *r;
            check(conn, PQgetResult(conn), "R4");
            while ((r = PQgetResult(conn)) != NULL)
                PQclear(r);
        }
        PQclear(PQgetResult(conn)); /* PIPELINE_SYNC */
        PQexitPipelineMode(conn);
        unit = "ms/100 inserts";
    } else if (strcmp(w, "R4") == 0) {
        for (i = 0; i < 100; i++)
            insert(conn, i);
        unit = "ms/100 inserts";
    } else if (strcmp(w, "R5") == 0) {
        conn = connect_env();
        check(conn, PQexec(conn, "select 1"), "first query");
        unit = "ms/cold start";
    } else {
        fprintf(stderr, "usage: rtt_libpq R1|R2|R3|R4|R5 [mode]\n");
        return 2;
    }
    value = (now() - t0) * 1000 / (strcmp(w, "R1") == 0 || strcmp(w, "R2") == 0 ? n : 1);
    flights = proxy("stats");
    printf("{\"peer\":\"%s\",\"workload\":\"%s\",\"value\":%.3f,\"unit\":\"%s\","
           "\"flights\":%.2f}\n", peer, w, value, unit,
           (double)flights / (strcmp(w, "R1") == 0 || strcmp(w, "R2") == 0 ? n : 1));
    PQfinish(conn);
    return 0;
}
