/*
 * Plain-C parsers and writers for PostgreSQL text forms (no Lua here): one-dimension array
 * literals ("{a,"b c",NULL}") and bytea ("\x0102..." hex, or the old escape format). Used by the
 * Lua binding to decode results and encode parameters; tested on their own in tests/c/test_decode.c.
 * Nothing here allocates except lb_buf; malformed input is reported, never read past its end.
 */
#ifndef LB_DECODE_H
#define LB_DECODE_H

#include <stddef.h>
#include "lb_buf.h"

/* ------------------------------------------------------------------------------------------
 * Array literals (lb_pgarray.c)
 * ---------------------------------------------------------------------------------------- */

/* One element as it appears in the literal: p/len point into the literal (zero copy). When
 * `escaped` is set the element holds backslash escapes: lb_pgarray_unescape gives its value. */
typedef struct lb_pgarray_elem {
    const char *p;
    size_t len;
    int null;    /* unquoted NULL (any case) */
    int escaped;
} lb_pgarray_elem;

typedef struct lb_pgarray {
    const char *s;
    size_t len;
    size_t pos;
    char delim;
    int done;
} lb_pgarray;

/* Starts reading a one-dimension literal of len bytes (an optional "[lo:hi]=" bound prefix is
 * skipped). Returns 0, or -1 when s is not a one-dimension array literal (multi-dimension
 * arrays included). */
int lb_pgarray_begin(lb_pgarray *a, const char *s, size_t len, char delim);
/* Next element: 1 with *e set, 0 after the last element (the whole literal was consumed,
 * trailing white space allowed), -1 on malformed input. */
int lb_pgarray_next(lb_pgarray *a, lb_pgarray_elem *e);
/* Writes the value of an escaped element into out (room for e->len bytes suffices; out may be
 * e->p itself only if writable). Returns the value's length. */
size_t lb_pgarray_unescape(const lb_pgarray_elem *e, char *out);

/* Appends s as a quoted array element ("..." with " and \ escaped). 0, or -1 out of memory. */
int lb_pgarray_append_quoted(lb_buf *b, const char *s, size_t len);

/* ------------------------------------------------------------------------------------------
 * bytea (lb_bytea.c)
 * ---------------------------------------------------------------------------------------- */

/* Decodes the text form of a bytea (hex "\x..." or the escape format) of len bytes into out,
 * which needs room for len bytes (the result is never longer); out may equal s (in place).
 * Returns the decoded length, or -1 on malformed input. */
long lb_bytea_decode(const char *s, size_t len, char *out);

#endif
