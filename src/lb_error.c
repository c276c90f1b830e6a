/* The one error type of the C core: kind, message, SQLSTATE, detail, hint, retriable, request_id. */
#include "lakebase.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {
    "ok", "config", "credential", "connect", "query", "timeout", "pool",
};

const char *lb_kind_name(lb_kind kind)
{
    if ((int)kind < 0 || (size_t)kind >= sizeof(kind_names) / sizeof(kind_names[0]))
        return "unknown";
    return kind_names[kind];
}

void lb_error_clear(lb_error *err)
{
    if (!err)
        return;
    free(err->message);
    free(err->detail);
    free(err->hint);
    free(err->request_id);
    err->request_id = NULL;
    err->kind = LB_OK;
    err->message = NULL;
    err->detail = NULL;
    err->hint = NULL;
    err->sqlstate[0] = '\0';
    err->retriable = 0;
}

void lb_error_set(lb_error *err, lb_kind kind, int retriable, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;
    int n;

    if (!err)
        return;
    lb_error_clear(err);
    err->kind = kind;
    err->retriable = retriable;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n >= 0 && (msg = malloc((size_t)n + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    /* Out of memory still leaves a usable error: the kind is right, the message static. */
    err->message = msg ? msg : strdup("out of memory");
}

void lb_error_set_field(char **field, const char *value)
{
    free(*field);
    *field = value ? strdup(value) : NULL;
}

void lb_error_move(lb_error *dst, lb_error *src)
{
    lb_error_clear(dst);
    *dst = *src;
    src->kind = LB_OK;
    src->message = NULL;
    src->detail = NULL;
    src->hint = NULL;
    src->request_id = NULL;
    src->sqlstate[0] = '\0';
    src->retriable = 0;
}
