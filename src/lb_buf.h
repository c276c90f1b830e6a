/* The one growable buffer of the C core (libpq's PQExpBuffer idea): appends and printf, a sticky
 * out-of-memory flag (check once at the end), NUL-terminated data, and a wiping free for buffers
 * that held secrets. One owner: whoever called lb_buf_init frees it. Also lb_wipe_free. */
#ifndef LB_BUF_H
#define LB_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct lb_buf {
    char *data; /* NUL-terminated after every successful append; NULL until the first one */
    size_t len;
    size_t cap;
    int oom;    /* an append failed: later appends do nothing, lb_buf_take gives NULL */
} lb_buf;

void lb_buf_init(lb_buf *b);
int lb_buf_reserve(lb_buf *b, size_t extra); /* 0, or -1 when out of memory */
int lb_buf_append(lb_buf *b, const char *s, size_t len);
int lb_buf_putc(lb_buf *b, char c);
int lb_buf_printf(lb_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int lb_buf_vprintf(lb_buf *b, const char *fmt, va_list ap);
void lb_buf_free(lb_buf *b);
/* Overwrites the bytes (a secret was in them) before freeing. */
void lb_buf_wipe(lb_buf *b);
/* Hands data over to the caller (who free()s it); the buffer is empty afterwards. NULL after an
 * out-of-memory (the partial data is freed). */
char *lb_buf_take(lb_buf *b);

/* Overwrites a NUL-terminated secret, then frees it (NULL is fine). */
void lb_wipe_free(char *s);

#endif
