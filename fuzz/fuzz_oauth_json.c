/* libFuzzer: the OAuth M2M answer parser (POST /oidc/v1/token, lb_credential.c).
 * Invariants: no crash/leak/UB; success gives a non-empty token and a positive, finite lifetime;
 * a failure is a credential error and hands back no token. */
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
    double life = 0;

    if (lb_credential_parse_oauth((const char *)data, size, &token, &life, &err) == 0) {
        if (!token || !*token || !isfinite(life) || life <= 0)
            abort();
        memset(token, 0, strlen(token));
        free(token);
    } else if (err.kind != LB_ERR_CREDENTIAL || !err.message || token) {
        abort();
    }
    lb_error_clear(&err);
    return 0;
}
