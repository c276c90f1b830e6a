/* libFuzzer: bytea text forms (lb_bytea.c). Decodes the input (hex "\x..." or escape format)
 * into a buffer of exactly the input's size and in place; both must agree. Round trip: the
 * input hex-encoded must decode back to itself. */
#include "lb_decode.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char hexd[] = "0123456789abcdef";
    char *out = malloc(size ? size : 1), *inplace = malloc(size ? size : 1), *hex;
    long n, m;
    size_t i;

    if (!out || !inplace) {
        free(out);
        free(inplace);
        return 0;
    }
    memcpy(inplace, data, size);
    n = lb_bytea_decode((const char *)data, size, out);
    m = lb_bytea_decode(inplace, size, inplace);
    if (n != m || n > (long)size || (n > 0 && memcmp(out, inplace, (size_t)n) != 0))
        abort();
    free(out);
    free(inplace);

    hex = malloc(2 + 2 * size + 1);
    out = malloc(2 + 2 * size + 1);
    if (hex && out) {
        hex[0] = '\\', hex[1] = 'x';
        for (i = 0; i < size; i++) {
            hex[2 + 2 * i] = hexd[data[i] >> 4];
            hex[3 + 2 * i] = hexd[data[i] & 15];
        }
        n = lb_bytea_decode(hex, 2 + 2 * size, out);
        if (n != (long)size || memcmp(out, data, size) != 0)
            abort();
    }
    free(hex);
    free(out);
    return 0;
}
