/* libFuzzer: PostgreSQL one-dimension array literals (lb_pgarray.c). Reads the input as a
 * literal (delimiter ',' or ';' from the first byte) and unescapes every element; then a
 * round trip: the input quoted as one element must read back unchanged. */
#include "lb_decode.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all(const char *s, size_t len, char delim)
{
    lb_pgarray a;
    lb_pgarray_elem e;
    int rc;

    if (lb_pgarray_begin(&a, s, len, delim) != 0)
        return;
    while ((rc = lb_pgarray_next(&a, &e)) == 1) {
        if (e.p < s || e.p + e.len > s + len)
            abort(); /* elements point into the literal */
        if (e.escaped) {
            char *out = malloc(e.len ? e.len : 1);
            size_t n;
            if (!out)
                return;
            n = lb_pgarray_unescape(&e, out);
            if (n > e.len)
                abort();
            free(out);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    lb_buf b;

    if (size == 0)
        return 0;
    read_all(s + 1, size - 1, (data[0] & 1) ? ';' : ',');

    /* Round trip: {"<escaped input>"} → exactly one element equal to the input. */
    lb_buf_init(&b);
    if (lb_buf_putc(&b, '{') == 0 && lb_pgarray_append_quoted(&b, s, size) == 0 && lb_buf_putc(&b, '}') == 0) {
        lb_pgarray a;
        lb_pgarray_elem e;
        char *out;
        size_t n;

        if (lb_pgarray_begin(&a, b.data, b.len, ',') != 0 || lb_pgarray_next(&a, &e) != 1 || e.null)
            abort();
        out = malloc(e.len ? e.len : 1);
        if (out) {
            n = e.escaped ? lb_pgarray_unescape(&e, out) : (memcpy(out, e.p, e.len), e.len);
            if (n != size || memcmp(out, s, size) != 0)
                abort();
            free(out);
        }
        if (lb_pgarray_next(&a, &e) != 0)
            abort();
    }
    lb_buf_free(&b);
    return 0;
}
