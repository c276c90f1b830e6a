/* Running a program without a shell (lb_exec.c): for `databricks auth token` and the like. */
#ifndef LB_EXEC_H
#define LB_EXEC_H

#include <stddef.h>
#include "lakebase.h"

typedef struct lb_exec_result {
    int started;      /* 0: the program could not be started (not_found says why) */
    int not_found;    /* argv[0] is not on PATH (or not executable) */
    int exit_code;    /* its exit status; -1 when it was killed */
    int timed_out;    /* killed at the timeout */
    int too_large;    /* killed: it printed more than max_out bytes */
    char *out;        /* stdout, NUL-terminated (malloc'd, wiped on free: it may hold a token) */
    size_t out_len;
    char *err_line;   /* the first non-empty line of stderr, at most 300 bytes, or NULL */
} lb_exec_result;

/* Runs argv[0] (looked up in PATH) with argv, stdin from /dev/null, in a process group of its
 * own; collects stdout up to max_out bytes and stderr's first line; kills the group (SIGKILL) at
 * `timeout` seconds or when stdout grows past max_out; always reaps it. Returns 0 with *r filled
 * (r->started = 0 when it could not start), or -1 with err set for a failure of our own (out of
 * memory, no pipes). */
int lb_exec(const char *const *argv, double timeout, size_t max_out, lb_exec_result *r,
            lb_error *err);
void lb_exec_result_free(lb_exec_result *r);

#endif
