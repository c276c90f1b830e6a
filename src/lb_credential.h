/* Internal: pieces of lb_credential.c that tests reach directly. */
#ifndef LB_CREDENTIAL_H
#define LB_CREDENTIAL_H

#include <stddef.h>

#include "lakebase.h"

/* Parses the body of a POST /api/2.0/postgres/credentials answer: a non-empty string "token"
 * and a parseable RFC 3339 "expire_time". Returns 0 with *token (malloc'd) and *expires_at
 * (epoch seconds), or -1 with err set (kind credential; the token never in the message). */
int lb_credential_parse_response(const char *body, size_t len, char **token, double *expires_at,
                                 lb_error *err);

/* Parses the body of a POST /oidc/v1/token answer: a non-empty string "access_token" and
 * "expires_in" (seconds; an hour when absent or not a positive number). Returns 0 with *token
 * (malloc'd) and *expires_in, or -1 with err set (kind credential). */
int lb_credential_parse_oauth(const char *body, size_t len, char **token, double *expires_in,
                              lb_error *err);

#endif
