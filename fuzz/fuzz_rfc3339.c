/* libFuzzer: the RFC 3339 parser of credential expire_time (lb_time.c). Invariants: no
 * crash/UB; an accepted time is finite and within years 0000-9999 (+/- a day of offsets). */
#include "lb_time.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    double t = 0;

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (lb_time_parse_rfc3339(s, &t) == 0) {
        if (!isfinite(t) || t < -62167219200.0 - 86400 || t > 253402300800.0 + 86400)
            abort();
    }
    free(s);
    return 0;
}
