/* The growable buffer (lb_buf.h). */
#include "lb_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lb_buf_init(lb_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = 0;
}

int lb_buf_reserve(lb_buf *b, size_t extra)
{
    size_t need, cap;
    char *d;
    if (b->oom)
        return -1;
    if (extra > (size_t)-1 - b->len - 1)
        goto oom;
    need = b->len + extra + 1; /* room for the terminating NUL */
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    d = realloc(b->data, cap);
    if (!d)
        goto oom;
    d[b->len] = '\0'; /* NUL-terminated even before the first append */
    b->data = d;
    b->cap = cap;
    return 0;
oom:
    b->oom = 1;
    return -1;
}

int lb_buf_append(lb_buf *b, const char *s, size_t len)
{
    if (lb_buf_reserve(b, len) < 0)
        return -1;
    if (len)
        memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int lb_buf_putc(lb_buf *b, char c)
{
    return lb_buf_append(b, &c, 1);
}

int lb_buf_vprintf(lb_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    int n;

    va_copy(cp, ap);
    n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0 || lb_buf_reserve(b, (size_t)n) < 0) {
        b->oom = 1;
        return -1;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int lb_buf_printf(lb_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = lb_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void lb_buf_free(lb_buf *b)
{
    free(b->data);
    lb_buf_init(b);
}

void lb_buf_wipe(lb_buf *b)
{
    if (b->data)
        explicit_bzero(b->data, b->cap);
    lb_buf_free(b);
}

char *lb_buf_take(lb_buf *b)
{
    char *d = b->data;
    if (b->oom) {
        free(d);
        d = NULL;
    }
    lb_buf_init(b);
    return d;
}

void lb_wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}
