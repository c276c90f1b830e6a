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



/* databricks-cli auth (lb_cli_token.c): the workspace token that `databricks auth login` keeps,
 * from `<cli> auth token --profile <profile> -o json` (or `--host <host>` without a profile; the
 * CLI's own defaults with neither), run without a shell, killed at `timeout` seconds or past 1 MiB of output. Returns 0 with *token (malloc'd)
 * and *expires_at (epoch seconds, from the answer's RFC 3339 "expiry"), or -1 with err set (kind
 * credential: the CLI missing, failing, hanging or printing something else; never the token). */
int lb_cli_token(const char *cli, const char *profile, const char *host, double timeout,
                 char **token, double *expires_at, lb_error *err);
/* Parses the CLI's answer ({"access_token", "token_type", "expiry"}); the same contract. */
int lb_cli_token_parse(const char *out, size_t len, char **token, double *expires_at, lb_error *err);
#endif
