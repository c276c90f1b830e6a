/* One-dimension PostgreSQL array literals: reading the server's text output element by element
 * (zero copy unless an element holds escapes) and writing quoted elements for parameters. */
#include <stdlib.h>
#include <string.h>
#include "lb_decode.h"

/* ---------------------------------------------------------------------------------------------
 * Reading literals
 * ------------------------------------------------------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void skip_space(lb_pgarray *a)
{
    while (a->pos < a->len && is_space(a->s[a->pos]))
        a->pos++;
}

/* "[lo:hi]" or "[hi]" with optional signs: the bounds the server prints when the lower bound is
 * not 1. Returns 0 when one was consumed. */
static int skip_bound(lb_pgarray *a)
{
    int digits = 0, colon = 0;
    if (a->pos >= a->len || a->s[a->pos] != '[')
        return -1;
    a->pos++;
    while (a->pos < a->len && a->s[a->pos] != ']') {
        char c = a->s[a->pos++];
        if (c >= '0' && c <= '9')
            digits++;
        else if (c == ':' && digits && !colon)
            colon = 1, digits = 0;
        else if ((c == '-' || c == '+') && !digits)
            ;
        else
            return -1;
    }
    if (a->pos >= a->len || !digits)
        return -1;
    a->pos++;
    return 0;
}

int lb_pgarray_begin(lb_pgarray *a, const char *s, size_t len, char delim)
{
    a->s = s;
    a->len = len;
    a->pos = 0;
    a->delim = delim;
    a->done = 0;
    skip_space(a);
    if (a->pos < len && s[a->pos] == '[') {
        if (skip_bound(a) < 0)
            return -1;
        skip_space(a);
        if (a->pos < len && s[a->pos] == '[') /* a second dimension */
            return -1;
        if (a->pos >= len || s[a->pos] != '=')
            return -1;
        a->pos++;
        skip_space(a);
    }
    if (a->pos >= len || s[a->pos] != '{')
        return -1;
    a->pos++;
    skip_space(a);
    if (a->pos < len && s[a->pos] == '}') { /* empty array */
        a->pos++;
        skip_space(a);
        if (a->pos != len)
            return -1;
        a->done = 1;
    }
    return 0;
}

static int read_quoted(lb_pgarray *a, lb_pgarray_elem *e)
{
    size_t i = a->pos + 1; /* after the opening quote */
    e->p = a->s + i;
    while (i < a->len && a->s[i] != '"') {
        if (a->s[i] == '\\') {
            e->escaped = 1;
            i++;
            if (i >= a->len)
                return -1;
        }
        i++;
    }
    if (i >= a->len)
        return -1;
    e->len = (size_t)(a->s + i - e->p);
    a->pos = i + 1;
    return 0;
}

static int read_unquoted(lb_pgarray *a, lb_pgarray_elem *e)
{
    size_t i = a->pos, end = a->pos; /* end: after the last character that is not white space */
    e->p = a->s + i;
    while (i < a->len && a->s[i] != a->delim && a->s[i] != '}') {
        char c = a->s[i];
        if (c == '"' || c == '{')
            return -1;
        if (c == '\\') {
            e->escaped = 1;
            i++;
            if (i >= a->len)
                return -1;
            end = i + 1; /* an escaped space is kept */
        } else if (!is_space(c)) {
            end = i + 1;
        }
        i++;
    }
    e->len = end - a->pos;
    if (e->len == 0)
        return -1; /* "{a,,b}" */
    if (!e->escaped && e->len == 4 && (e->p[0] | 0x20) == 'n' && (e->p[1] | 0x20) == 'u' &&
        (e->p[2] | 0x20) == 'l' && (e->p[3] | 0x20) == 'l')
        e->null = 1;
    a->pos = i;
    return 0;
}

int lb_pgarray_next(lb_pgarray *a, lb_pgarray_elem *e)
{
    int rc;
    if (a->done)
        return 0;
    memset(e, 0, sizeof *e);
    skip_space(a);
    if (a->pos >= a->len)
        return -1;
    if (a->s[a->pos] == '{') /* a nested array: more than one dimension */
        return -1;
    rc = a->s[a->pos] == '"' ? read_quoted(a, e) : read_unquoted(a, e);
    if (rc < 0)
        return -1;
    skip_space(a);
    if (a->pos >= a->len)
        return -1;
    if (a->s[a->pos] == a->delim) {
        a->pos++;
        return 1;
    }
    if (a->s[a->pos] != '}')
        return -1;
    a->pos++;
    skip_space(a);
    if (a->pos != a->len)
        return -1;
    a->done = 1;
    return 1;
}

size_t lb_pgarray_unescape(const lb_pgarray_elem *e, char *out)
{
    size_t i, o = 0;
    for (i = 0; i < e->len; i++) {
        if (e->p[i] == '\\' && i + 1 < e->len)
            i++;
        out[o++] = e->p[i];
    }
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * Writing elements
 * ------------------------------------------------------------------------------------------- */

int lb_pgarray_append_quoted(lb_buf *b, const char *s, size_t len)
{
    size_t i, start = 0;
    if (lb_buf_reserve(b, len + 2) < 0 || lb_buf_putc(b, '"') < 0)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            if (lb_buf_append(b, s + start, i - start) < 0 || lb_buf_putc(b, '\\') < 0)
                return -1;
            start = i; /* the quote or backslash itself goes with the next run */
        }
    }
    if (lb_buf_append(b, s + start, len - start) < 0)
        return -1;
    return lb_buf_putc(b, '"');
}
