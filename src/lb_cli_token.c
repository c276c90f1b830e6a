/* databricks-cli auth: the workspace token of `databricks auth login`, read from `databricks
 * auth token` as the Databricks SDKs do (databricks-sdk-go config/cli_token_source.go): the
 * command with --profile, or --host without a profile; its JSON answer's access_token and expiry
 * (RFC 3339, nanoseconds and offsets allowed). See lb_credential.h. */
#include "lb_credential.h"
#include "lb_exec.h"
#include "lb_time.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define STEP_CLI "databricks-cli auth"
#define MAX_OUTPUT ((size_t)1 << 20)

int lb_cli_token_parse(const char *out, size_t len, char **token, double *expires_at, lb_error *err)
{
    cJSON *j = cJSON_ParseWithLength(out, len);
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "access_token");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, "expiry");
    int rc = -1;

    *token = NULL;
    *expires_at = 0;
    if (!cJSON_IsObject(j)) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 0, "%s: `databricks auth token` printed no JSON object", STEP_CLI);
    } else if (!cJSON_IsString(tok) || !tok->valuestring[0] || strpbrk(tok->valuestring, " \t\r\n")) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 0, "%s: `databricks auth token` printed no \"access_token\"", STEP_CLI);
    } else if (!cJSON_IsString(exp) || lb_time_parse_rfc3339(exp->valuestring, expires_at) != 0) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 0, "%s: `databricks auth token` printed no RFC 3339 \"expiry\"",
                     STEP_CLI);
    } else if (!(*token = strdup(tok->valuestring))) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: out of memory", STEP_CLI);
    } else {
        rc = 0;
    }
    if (cJSON_IsString(tok))
        explicit_bzero(tok->valuestring, strlen(tok->valuestring));
    cJSON_Delete(j);
    return rc;
}

/* Only printable ASCII of a CLI message reaches ours (no escape sequences, no line breaks). */
static void printable(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

int lb_cli_token(const char *cli, const char *profile, const char *host, double timeout,
                 char **token, double *expires_at, lb_error *err)
{
    const char *argv[8];
    lb_exec_result r;
    int rc, n = 0;

    *token = NULL;
    if (!cli)
        cli = "databricks";
    argv[n++] = cli, argv[n++] = "auth", argv[n++] = "token";
    if (profile)
        argv[n++] = "--profile", argv[n++] = profile;
    else if (host)
        argv[n++] = "--host", argv[n++] = host;
    /* -o json: the answer's shape stays fixed whatever the user's CLI configuration says */
    argv[n++] = "-o", argv[n++] = "json";
    argv[n] = NULL;
    if (lb_exec(argv, timeout, MAX_OUTPUT, &r, err) != 0) {
        err->kind = LB_ERR_CREDENTIAL;
        return -1;
    }
    if (!r.started) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 0, "%s: the databricks CLI (%s) is not on PATH", STEP_CLI, cli);
        lb_error_set_field(&err->hint, "install the Databricks CLI and run `databricks auth login "
                                       "--host <workspace URL>` (or set DATABRICKS_CLI_PATH)");
        rc = -1;
    } else if (r.timed_out) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: databricks auth token did not finish within %g s (killed)",
                     STEP_CLI, timeout);
        rc = -1;
    } else if (r.too_large) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 0, "%s: databricks auth token printed more than 1 MiB (killed)",
                     STEP_CLI);
        rc = -1;
    } else if (r.exit_code != 0) {
        if (r.err_line)
            printable(r.err_line);
        lb_error_set(err, LB_ERR_CREDENTIAL, 0, "%s: databricks auth token failed (exit %d)%s%s", STEP_CLI,
                     r.exit_code, r.err_line ? ": " : "", r.err_line ? r.err_line : "");
        lb_error_set_field(&err->hint, profile ? "log in again: databricks auth login --profile <profile>"
                                               : "log in again: databricks auth login --host <workspace URL>");
        rc = -1;
    } else {
        rc = lb_cli_token_parse(r.out ? r.out : "", r.out_len, token, expires_at, err);
    }
    lb_exec_result_free(&r);
    return rc;
}
