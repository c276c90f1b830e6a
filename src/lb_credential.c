/* The Lakebase credential cache: a process-wide registry of entries keyed by
 * settings->credential_key (workspace, endpoint, identity),
 * each holding the current Postgres credential, the M2M workspace token and the refresh state.
 *
 * Rules (README "Credentials"):
 * - a credential is served while more than REFRESH_BUFFER seconds remain; after that the next
 *   caller starts one background refresh (a detached C thread) and every caller keeps getting the
 *   cached one while it is valid; only a caller without a valid credential fetches or waits for
 *   the fetch in flight (single flight: mutex + condition variable);
 * - a failed refresh leaves a still-valid credential in service and schedules the next attempt
 *   with backoff (no hammering an endpoint that is down);
 * - without a valid credential, a refresh retries transient failures (network, timeout, 429,
 *   5xx) with exponential backoff and jitter, within connect_timeout, honouring Retry-After;
 * - expiry is decided on the monotonic clock, anchored once when the credential arrives.
 * Secrets (PAT, client secret, workspace token, credential) never enter an error message. */
#include "lakebase.h"
#include "lb_buf.h"
#include "lb_credential.h"
#include "lb_http.h"
#include "lb_metrics.h"
#include "lb_time.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define REFRESH_BUFFER 120.0  /* refresh when less than this remains (SPEC: 2 minutes) */
#define STALE_MARGIN 1.0      /* a cached credential closer than this to expiry is not served */
#define WS_BUFFER 60.0        /* the workspace token is renewed this long before expires_in */
#define RETRY_BASE 0.2        /* first retry delay within one refresh, doubled each time */
#define RETRY_CAP 2.0
#define STALE_BASE 1.0        /* first delay between refreshes that fail while the cache serves */
#define STALE_CAP 30.0
#define API_MSG_MAX 300       /* an API error message is cut to this many bytes */
#define IDLE_KEEP 16          /* unreferenced entries kept (their cache survives a release) */

#define STEP_OAUTH "oauth token"
#define STEP_CRED "lakebase credential"

struct lb_credentials {
    /* registry links, under registry_mu */
    char *key;
    int refs;
    int shared; /* 0: no key, private to its acquirer */
    lb_credentials *next;

    /* immutable after creation */
    lb_auth auth;
    char *databricks_host, *endpoint, *instance, *pat, *client_id, *client_secret, *password;
    char *profile, *cli_path; /* databricks-cli auth */
    char *oauth_url, *cred_url, *discover_url, *me_url;
    double connect_timeout;

    /* cache and refresh state, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *cred;
    double cred_expires_wall, cred_expires_mono;
    int fetching;
    uint64_t generation;   /* +1 after every refresh, successful or not */
    double next_attempt;   /* monotonic: no refresh before this while the cache is valid */
    int fail_streak;
    lb_error last_err;     /* the last refresh failure, for callers that waited on it */
    uint64_t refreshes, failures;
    lb_discovery disc;     /* what lb_credentials_discover read; disc.host NULL until then */
    uint64_t disc_attempts; /* +1 after every discovery, successful or not */
    lb_error disc_err;     /* the last discovery failure, for callers that waited on it */

    /* owned by the one fetching thread (fetching == 1) */
    char *ws_token;
    double ws_expires_mono;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static lb_credentials *registry;

/* ---- small helpers ------------------------------------------------------------------------ */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *r = malloc(la + lb + 1);
    if (r) {
        memcpy(r, a, la);
        memcpy(r + la, b, lb + 1);
    }
    return r;
}

/* Overwrites every occurrence of secret in msg with '*': defence in depth for text that came
 * from the server (an API message could echo what it received). */
static void scrub(char *msg, const char *secret)
{
    size_t n;
    char *p;

    if (!msg || !secret || (n = strlen(secret)) < 4)
        return;
    while ((p = strstr(msg, secret)) != NULL)
        memset(p, '*', n);
}

static void scrub_error(lb_credentials *c, lb_error *err, const char *extra)
{
    scrub(err->message, c->pat);
    scrub(err->message, c->client_secret);
    scrub(err->message, c->password);
    scrub(err->message, c->ws_token);
    scrub(err->message, extra);
}

/* Copy of an API text for a message: at most API_MSG_MAX bytes, control characters blanked. */
static void clean_text(char *dst, size_t cap, const char *src)
{
    size_t i = 0;

    for (; src[i] && i + 1 < cap && i < API_MSG_MAX; i++)
        dst[i] = ((unsigned char)src[i] < 0x20 || src[i] == 0x7f) ? ' ' : src[i];
    dst[i] = '\0';
    if (src[i] && i >= API_MSG_MAX && cap > i + 3) {
        memcpy(dst + i, "...", 4);
    }
}

/* ---- HTTP steps ---------------------------------------------------------------------------- */

typedef struct attempt {
    double deadline;      /* monotonic */
    double retry_after;   /* from the last failed response, -1 if none */
    long status;          /* of the last failed response, 0 if none */
} attempt;

/* The Databricks error `details[]` (google.rpc types, as databricks-sdk-go apierr reads them):
 * ErrorInfo.reason and RequestInfo.request_id. Copies into reason/rid (cleaned, cut). */
static void error_details(const cJSON *j, char *reason, size_t rlen, char *rid, size_t idlen)
{
    const cJSON *d, *details = cJSON_GetObjectItemCaseSensitive(j, "details");

    if (!cJSON_IsArray(details))
        return;
    cJSON_ArrayForEach(d, details) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "@type");
        const char *type = cJSON_IsString(t) ? t->valuestring : "";
        const size_t n = strlen(type);
        const cJSON *v = NULL;
        char *dst = NULL;
        size_t cap = 0;

        if (n >= 20 && strcmp(type + n - 20, "google.rpc.ErrorInfo") == 0)
            v = cJSON_GetObjectItemCaseSensitive(d, "reason"), dst = reason, cap = rlen;
        else if (n >= 22 && strcmp(type + n - 22, "google.rpc.RequestInfo") == 0)
            v = cJSON_GetObjectItemCaseSensitive(d, "request_id"), dst = rid, cap = idlen;
        if (dst && !dst[0] && cJSON_IsString(v))
            clean_text(dst, cap, v->valuestring);
    }
}

/* One readable line of a body that is not JSON (a gateway's HTML or plain-text page): the HTML
 * <title> when there is one, else the text without tags; whitespace collapsed, cut. */
static void body_line(const char *body, size_t len, char *out, size_t cap)
{
    const char *p = body, *end = body + len, *t = memmem(body, len, "<title>", 7);
    size_t o = 0;
    int in_tag = 0, space = 1;

    if (t) {
        const char *e = memmem(t + 7, (size_t)(end - (t + 7)), "</title>", 8);
        if (e && e > t + 7)
            p = t + 7, end = e;
    }
    for (; p < end && o + 4 < cap && o < 200; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '<') {
            in_tag = 1;
            continue;
        }
        if (in_tag) {
            in_tag = ch != '>';
            if (!in_tag && !space)
                out[o++] = ' ', space = 1;
            continue;
        }
        if (ch <= 0x20 || ch == 0x7f) {
            if (!space)
                out[o++] = ' ', space = 1;
            continue;
        }
        out[o++] = (char)ch;
        space = 0;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    if (p < end && o > 0 && o + 4 < cap)
        memcpy(out + o, "...", 3), o += 3;
    out[o] = '\0';
}

/* A token with the shape of a JWT (three base64url parts, the first "eyJ"): an OAuth access token,
 * such as `databricks auth token` prints, valid for about an hour; a PAT is "dapi...". */
static int looks_like_oauth(const char *tok)
{
    const char *d1, *d2;

    if (!tok || strncmp(tok, "eyJ", 3) != 0 || !(d1 = strchr(tok, '.')) || !(d2 = strchr(d1 + 1, '.')))
        return 0;
    return d2 > d1 + 1 && d2[1] && !strchr(d2 + 1, '.');
}

/* Error for a non-2xx answer: "<step>: HTTP <status> <error_code>: <message> (reason ...,
 * request_id ...)", err->request_id set from details[]; one readable line for an HTML or
 * plain-text body. Retriable for 429 and 5xx. */
static void http_status_error(const char *step, const lb_http_response *resp, lb_auth auth,
                              const char *bearer, lb_error *err)
{
    char code[80] = "", msg[API_MSG_MAX + 8] = "", reason[80] = "", rid[136] = "", extra[240] = "";
    cJSON *j = cJSON_ParseWithLength(resp->body, resp->body_len);
    int retriable = resp->status == 429 || resp->status >= 500;

    if (cJSON_IsObject(j)) {
        /* Databricks APIs: error_code/message; the OAuth endpoint: error/error_description. */
        const cJSON *ec = cJSON_GetObjectItemCaseSensitive(j, "error_code");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
        if (!cJSON_IsString(ec))
            ec = cJSON_GetObjectItemCaseSensitive(j, "error");
        if (!cJSON_IsString(m))
            m = cJSON_GetObjectItemCaseSensitive(j, "error_description");
        if (cJSON_IsString(ec))
            clean_text(code, sizeof code, ec->valuestring);
        if (cJSON_IsString(m))
            clean_text(msg, sizeof msg, m->valuestring);
        error_details(j, reason, sizeof reason, rid, sizeof rid);
    } else if (resp->body_len > 0) {
        body_line(resp->body, resp->body_len, msg, sizeof msg);
    }
    cJSON_Delete(j);
    if (reason[0] || rid[0])
        snprintf(extra, sizeof extra, " (%s%s%s%s%s)", reason[0] ? "reason " : "", reason,
                 reason[0] && rid[0] ? ", " : "", rid[0] ? "request_id " : "", rid);
    lb_error_set(err, LB_ERR_CREDENTIAL, retriable, "%s: HTTP %ld%s%s%s%s%s", step, resp->status,
                 code[0] ? " " : "", code, msg[0] ? ": " : "", msg, extra);
    if (rid[0])
        lb_error_set_field(&err->request_id, rid);
    /* A 401 is nearly always the setting itself: say which one and how to renew it. */
    if (resp->status != 401)
        return;
    if (strcmp(step, STEP_OAUTH) == 0)
        lb_error_set_field(&err->hint,
            "the workspace refused DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET: check both, and "
            "that the service principal belongs to the workspace at DATABRICKS_HOST");
    else if (auth == LB_AUTH_CLI)
        lb_error_set_field(&err->hint,
            "the workspace refused the token of `databricks auth token`: the login may have expired "
            "or been revoked; run `databricks auth login --host <DATABRICKS_HOST>` (or --profile "
            "<DATABRICKS_CONFIG_PROFILE>) again");
    else if (auth == LB_AUTH_TOKEN && looks_like_oauth(bearer))
        lb_error_set_field(&err->hint,
            "DATABRICKS_TOKEN looks like an OAuth token (from `databricks auth token` or "
            "`lakebase refresh-token`), which is valid for about an hour: it may have expired. Run "
            "`lakebase refresh-token` for a fresh one, or set DATABRICKS_AUTH_TYPE=databricks-cli "
            "(after `databricks auth login`) so lakebase renews it itself");
    else
        lb_error_set_field(&err->hint,
            "the workspace refused the token: a DATABRICKS_TOKEN that expired or belongs to another "
            "workspace than DATABRICKS_HOST (for local development, lakebase refresh-token "
            "writes a fresh one)");
}

/* One request with the time left until a->deadline. Returns the parsed JSON object of a 2xx
 * answer, or NULL with err set (retriable for transient failures). */
static cJSON *call(lb_credentials *c, const char *step, lb_http_request *req, attempt *a,
                   lb_error *err)
{
    lb_http_response resp;
    lb_error herr = LB_ERROR_INIT;
    double left = a->deadline - lb_time_mono();
    cJSON *j;

    a->retry_after = -1;
    a->status = 0;
    if (left < 0.01) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: timed out", step);
        return NULL;
    }
    req->timeout = left;
    req->connect_timeout = c->connect_timeout < left ? c->connect_timeout : left;
    if (lb_http_do(req, &resp, &herr) != LB_HTTP_OK) {
        lb_error_set(err, LB_ERR_CREDENTIAL, herr.retriable, "%s: %s", step, herr.message);
        lb_error_clear(&herr);
        return NULL;
    }
    if (resp.status < 200 || resp.status > 299) {
        http_status_error(step, &resp, c->auth, req->bearer, err);
        a->retry_after = resp.retry_after;
        a->status = resp.status;
        lb_http_response_free(&resp);
        return NULL;
    }
    /* cJSON would decode an escaped NUL and hand back a string cut short at it: a token that is
     * not the one issued. No valid answer contains one. */
    if (memmem(resp.body, resp.body_len, "\\u0000", 6)) {
        explicit_bzero(resp.body, resp.body_len);
        lb_http_response_free(&resp);
        lb_error_set(err, LB_ERR_CREDENTIAL, 0, "%s: response contains an escaped NUL character", step);
        return NULL;
    }
    j = cJSON_ParseWithLength(resp.body, resp.body_len);
    explicit_bzero(resp.body, resp.body_len); /* it holds a token */
    lb_http_response_free(&resp);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        /* A proxy or a half-deployed service: worth another try. */
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: HTTP %ld response is not a JSON object", step,
                     resp.status);
        return NULL;
    }
    return j;
}

/* Wipes and frees a parsed response (token strings inside). */
static void json_free(cJSON *j)
{
    cJSON *t;

    if (!j)
        return;
    cJSON_ArrayForEach(t, j) {
        if (cJSON_IsString(t) && t->valuestring)
            explicit_bzero(t->valuestring, strlen(t->valuestring));
    }
    cJSON_Delete(j);
}

/* The OAuth answer: a non-empty string "access_token"; "expires_in" seconds when it is a positive
 * number (else an hour, the platform's lifetime). *token is malloc'd. */
static int parse_oauth(const cJSON *j, char **token, double *life, lb_error *err)
{
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "access_token");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, "expires_in");

    *token = NULL;
    *life = 3600;
    if (!cJSON_IsString(tok) || !tok->valuestring[0]) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 0, "%s: response has no string \"access_token\"", STEP_OAUTH);
        return -1;
    }
    if (cJSON_IsNumber(exp) && exp->valuedouble > 0 && isfinite(exp->valuedouble))
        *life = exp->valuedouble;
    if (!(*token = strdup(tok->valuestring))) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: out of memory", STEP_OAUTH);
        return -1;
    }
    return 0;
}

int lb_credential_parse_oauth(const char *body, size_t len, char **token, double *expires_in,
                              lb_error *err)
{
    cJSON *j = cJSON_ParseWithLength(body, len);
    int rc = -1;

    *token = NULL;
    *expires_in = 0;
    if (!cJSON_IsObject(j))
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: response is not a JSON object", STEP_OAUTH);
    else
        rc = parse_oauth(j, token, expires_in, err);
    json_free(j);
    return rc;
}

/* databricks-cli: the token `databricks auth login` keeps, from `databricks auth token` (given
 * connect_timeout, like every other step of a fetch). */
static int fetch_cli_token(lb_credentials *c, lb_error *err)
{
    double expires_at, life;
    char *token;
    if (lb_cli_token(c->cli_path, c->profile, c->profile ? NULL : c->databricks_host,
                     c->connect_timeout, &token, &expires_at, err) != 0)
        return -1;
    lb_wipe_free(c->ws_token);
    c->ws_token = token;
    life = expires_at - lb_time_wall();
    c->ws_expires_mono = lb_time_mono() + (life > 2 * WS_BUFFER ? life - WS_BUFFER : life / 2);
    return 0;
}

/* The workspace token for M2M (OAuth, client id/secret as HTTP Basic, as the SDKs do) or for
 * databricks-cli auth. */
static int fetch_ws_token(lb_credentials *c, attempt *a, lb_error *err)
{
    static const char form[] = "grant_type=client_credentials&scope=all-apis";
    lb_http_request req = { 0 };
    double life;
    char *token;
    cJSON *j;
    int rc;

    if (c->auth == LB_AUTH_CLI)
        return fetch_cli_token(c, err);
    req.method = "POST";
    req.url = c->oauth_url;
    req.content_type = "application/x-www-form-urlencoded";
    req.body = form;
    req.body_len = sizeof form - 1;
    req.basic_user = c->client_id;
    req.basic_password = c->client_secret;
    if (!(j = call(c, STEP_OAUTH, &req, a, err)))
        return -1;
    rc = parse_oauth(j, &token, &life, err);
    json_free(j);
    if (rc != 0)
        return -1;
    lb_wipe_free(c->ws_token);
    c->ws_token = token;
    /* Renew a minute early; a short-lived token at half its life. */
    c->ws_expires_mono = lb_time_mono() + (life > 2 * WS_BUFFER ? life - WS_BUFFER : life / 2);
    return 0;
}

typedef struct fetched {
    char *token;
    double expires_wall, expires_mono;
} fetched;

/* The credential answer: a non-empty string "token" and an RFC 3339 expiry, "expire_time" for an
 * endpoint, "expiration_time" for a provisioned instance (DatabaseCredential). */
static int parse_cred(const cJSON *j, const char *exp_field, fetched *out, lb_error *err)
{
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "token");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, exp_field);

    if (!cJSON_IsString(tok) || !tok->valuestring[0]) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 0, "%s: response has no string \"token\"", STEP_CRED);
        return -1;
    }
    if (!cJSON_IsString(exp) || lb_time_parse_rfc3339(exp->valuestring, &out->expires_wall) != 0) {
        char shown[72] = "";
        if (cJSON_IsString(exp))
            clean_text(shown, 64, exp->valuestring);
        lb_error_set(err, LB_ERR_CREDENTIAL, 0,
                     "%s: response has no parseable RFC 3339 \"%s\"%s%s%s", STEP_CRED, exp_field,
                     shown[0] ? " (got \"" : "", shown, shown[0] ? "\")" : "");
        scrub(err->message, tok->valuestring);
        return -1;
    }
    /* An answer that is already expired (clock skew, a stale cache in between) would be served
     * nowhere and fetched again on every call: refuse it plainly. */
    if (out->expires_wall <= lb_time_wall()) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 0,
                     "%s: %s is already in the past (check this machine's clock)", STEP_CRED, exp_field);
        return -1;
    }
    /* Anchor once: from now on only the monotonic clock decides. */
    out->expires_mono = lb_time_mono() + (out->expires_wall - lb_time_wall());
    if (!(out->token = strdup(tok->valuestring))) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: out of memory", STEP_CRED);
        return -1;
    }
    return 0;
}

int lb_credential_parse_response(const char *body, size_t len, char **token, double *expires_at,
                                 lb_error *err)
{
    fetched f = { NULL, 0, 0 };
    cJSON *j = cJSON_ParseWithLength(body, len);
    int rc = -1;

    *token = NULL;
    *expires_at = 0;
    if (!cJSON_IsObject(j))
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: response is not a JSON object", STEP_CRED);
    else if ((rc = parse_cred(j, "expire_time", &f, err)) == 0) {
        *token = f.token;
        *expires_at = f.expires_wall;
    }
    json_free(j);
    return rc;
}

/* One workspace API call with the workspace token of c's auth: the PAT, or the M2M / databricks-cli
 * token, fetched when missing or due; a 401 on a cached one renews it once (the workspace revoked
 * or rotated it before its expiry) and asks again. Only the thread that holds c->fetching calls it. */
static cJSON *ws_call(lb_credentials *c, const char *step, lb_http_request *req, attempt *a,
                      lb_error *err)
{
    int cached_ws;
    cJSON *j;

    if (c->auth == LB_AUTH_TOKEN) {
        req->bearer = c->pat;
        return call(c, step, req, a, err);
    }
    cached_ws = c->ws_token && lb_time_mono() < c->ws_expires_mono;
    if (!cached_ws && fetch_ws_token(c, a, err) != 0)
        return NULL;
    req->bearer = c->ws_token;
    if ((j = call(c, step, req, a, err)) != NULL || a->status != 401 || !cached_ws)
        return j;
    lb_wipe_free(c->ws_token);
    c->ws_token = NULL;
    if (fetch_ws_token(c, a, err) != 0)
        return NULL;
    req->bearer = c->ws_token;
    return call(c, step, req, a, err);
}

/* A version 4 UUID for the instance credential's request_id (idempotency of that call). */
static void uuid4(char out[37])
{
    unsigned char b[16];
    size_t got = 0;
    int i, o = 0;

    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    for (; got < sizeof b; got++) /* no entropy source: unique enough for an idempotency key */
        b[got] = (unsigned char)(lb_time_jitter() * 255.0);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (i = 0; i < 16; i++) {
        o += snprintf(out + o, (size_t)(37 - o), "%02x", b[i]);
        if (i == 3 || i == 5 || i == 7 || i == 9)
            out[o++] = '-';
    }
    out[36] = '\0';
}

/* One attempt of the credential call: POST /api/2.0/postgres/credentials {"endpoint"} for an
 * endpoint, POST /api/2.0/database/credentials {"instance_names": [name], "request_id"} for a
 * provisioned instance. */
static int fetch_once(lb_credentials *c, attempt *a, void *outp, lb_error *err)
{
    lb_http_request req = { 0 };
    cJSON *body = cJSON_CreateObject(), *names, *j;
    char *json = NULL, rid[37];
    int rc, ok;

    if (c->instance) {
        uuid4(rid);
        ok = (names = cJSON_AddArrayToObject(body, "instance_names")) != NULL &&
             cJSON_AddItemToArray(names, cJSON_CreateString(c->instance)) &&
             cJSON_AddStringToObject(body, "request_id", rid) != NULL;
    } else {
        ok = cJSON_AddStringToObject(body, "endpoint", c->endpoint) != NULL;
    }
    if (!ok || !(json = cJSON_PrintUnformatted(body))) {
        cJSON_Delete(body);
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: out of memory", STEP_CRED);
        return -1;
    }
    cJSON_Delete(body);
    req.method = "POST";
    req.url = c->cred_url;
    req.content_type = "application/json";
    req.body = json;
    req.body_len = strlen(json);
    j = ws_call(c, STEP_CRED, &req, a, err);
    cJSON_free(json);
    if (!j)
        return -1;
    rc = parse_cred(j, c->instance ? "expiration_time" : "expire_time", outp, err);
    json_free(j);
    return rc;
}

/* Runs once_fn. With `retry`, transient failures are retried with exponential backoff and jitter
 * (or Retry-After) until connect_timeout is spent; without, one attempt (the cache still serves
 * and the next attempt is scheduled by the caller). *retry_after reports the server's wish. */
typedef int (*attempt_fn)(lb_credentials *c, attempt *a, void *out, lb_error *err);

/* *status: the HTTP status of the last attempt (0 when none was answered). */
static int with_retries(lb_credentials *c, int retry, attempt_fn once_fn, void *out,
                        double *retry_after, long *status, lb_error *err)
{
    attempt a = { 0, -1, 0 }; /* read after a try that failed before any HTTP (out of memory) */
    double delay = 0;
    int tries = 0, too_late = 0;

    a.deadline = lb_time_mono() + c->connect_timeout;
    for (;;) {
        tries++;
        if (once_fn(c, &a, out, err) == 0) {
            lb_error_clear(err); /* what an earlier try or a renewed 401 left there */
            return 0;
        }
        *retry_after = a.retry_after;
        if (!retry || !err->retriable)
            break;
        if (a.retry_after >= 0) {
            delay = a.retry_after;
        } else {
            delay = RETRY_BASE * (double)(1u << (tries < 8 ? tries - 1 : 7));
            delay = (delay > RETRY_CAP ? RETRY_CAP : delay) * lb_time_jitter();
        }
        if (lb_time_mono() + delay >= a.deadline - 0.01) {
            too_late = 1;
            break;
        }
        lb_time_sleep(delay);
        /* A loaded machine may oversleep: keep the last real failure rather than try with no
         * time left and report only "timed out". */
        if (lb_time_mono() >= a.deadline - 0.05) {
            too_late = 1;
            break;
        }
    }
    if (tries > 1 || (too_late && a.retry_after >= 0)) {
        char *m = err->message, *rid = err->request_id, *hint = err->hint;
        int retriable = err->retriable;
        err->message = err->request_id = err->hint = NULL;
        if (tries > 1)
            lb_error_set(err, LB_ERR_CREDENTIAL, retriable, "%s (gave up after %d attempts within %g s)",
                         m ? m : "failed", tries, c->connect_timeout);
        else
            lb_error_set(err, LB_ERR_CREDENTIAL, retriable, "%s (Retry-After %g s exceeds connect_timeout %g s)",
                         m ? m : "failed", a.retry_after, c->connect_timeout);
        free(m);
        err->request_id = rid;
        err->hint = hint;
    }
    *status = a.status;
    return -1;
}

/* The credential through with_retries, timed and reported (lb_observe.c: metrics, and the
 * credential_fetched / credential_recovered / credential_refresh_failed events). Only the fetching thread runs here,
 * and fail_streak changes only when it is done (refresh_done), so it is read without the lock. */
static int fetch(lb_credentials *c, int retry, fetched *out, double *retry_after, lb_error *err)
{
    double started = lb_time_mono();
    long status = 0;
    int rc = with_retries(c, retry, fetch_once, out, retry_after, &status, err);

    if (rc != 0)
        scrub_error(c, err, NULL);
    lb_observe_refresh(c->instance ? c->instance : c->endpoint, lb_time_mono() - started, !retry,
                       c->fail_streak, status, rc == 0 ? out->expires_wall : 0, rc == 0 ? NULL : err);
    return rc;
}

/* ---- discovery ------------------------------------------------------------------------------ */

#define STEP_ENDPOINT "lakebase endpoint"
#define STEP_INSTANCE "lakebase instance"
#define STEP_ME "workspace user"

static void add_host(lb_discovery *d, const cJSON *v, int *oom)
{
    int i;

    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > 253)
        return;
    for (i = 0; i < LB_MAX_HOSTS - 1 && d->hosts[i]; i++)
        if (strcmp(d->hosts[i], v->valuestring) == 0)
            return;
    if (i < LB_MAX_HOSTS - 1)
        *oom |= !(d->hosts[i] = strdup(v->valuestring));
}

/* One attempt of the whole discovery: the endpoint's (or instance's) hosts, then, under PAT and
 * databricks-cli auth, the workspace user. */
static int discover_once(lb_credentials *c, attempt *a, void *outp, lb_error *err)
{
    lb_discovery *d = outp;
    lb_http_request req = { 0 };
    const char *step = c->instance ? STEP_INSTANCE : STEP_ENDPOINT;
    const cJSON *hosts, *h;
    cJSON *j;
    int oom = 0;

    lb_discovery_clear(d);
    req.method = "GET";
    req.url = c->discover_url;
    if (!(j = ws_call(c, step, &req, a, err)))
        return -1;
    if (c->instance) { /* DatabaseInstance: read_write_dns, read_only_dns */
        add_host(d, cJSON_GetObjectItemCaseSensitive(j, "read_write_dns"), &oom);
        add_host(d, cJSON_GetObjectItemCaseSensitive(j, "read_only_dns"), &oom);
    } else { /* Endpoint: status.hosts.host first, then every other host it lists */
        hosts = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "status"), "hosts");
        add_host(d, cJSON_GetObjectItemCaseSensitive(hosts, "host"), &oom);
        for (h = cJSON_IsObject(hosts) ? hosts->child : NULL; h; h = h->next)
            add_host(d, h, &oom);
    }
    cJSON_Delete(j);
    if (!oom && d->hosts[0])
        oom |= !(d->host = strdup(d->hosts[0]));
    if (!oom && !d->host) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 0, "%s: the answer for %s has no %s (is it still being "
                     "created?)", step, c->instance ? c->instance : c->endpoint,
                     c->instance ? "\"read_write_dns\"" : "\"status.hosts.host\"");
        return -1;
    }
    if (!oom && c->auth == LB_AUTH_M2M) {
        oom |= !(d->user = strdup(c->client_id));
    } else if (!oom) {
        const cJSON *u;
        req.url = c->me_url;
        if (!(j = ws_call(c, STEP_ME, &req, a, err)))
            return -1;
        u = cJSON_GetObjectItemCaseSensitive(j, "userName");
        if (cJSON_IsString(u) && u->valuestring[0])
            oom |= !(d->user = strdup(u->valuestring));
        cJSON_Delete(j);
        if (!oom && !d->user) {
            lb_error_set(err, LB_ERR_CREDENTIAL, 0, "%s: the answer has no \"userName\" (set PGUSER)", STEP_ME);
            return -1;
        }
    }
    if (oom) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: out of memory", step);
        return -1;
    }
    return 0;
}

void lb_discovery_clear(lb_discovery *d)
{
    int i;

    free(d->host);
    free(d->user);
    for (i = 0; i < LB_MAX_HOSTS; i++)
        free(d->hosts[i]);
    memset(d, 0, sizeof *d);
}

static int discovery_copy(lb_discovery *dst, const lb_discovery *src)
{
    int i, oom = 0;

    memset(dst, 0, sizeof *dst);
    oom |= src->host && !(dst->host = strdup(src->host));
    oom |= src->user && !(dst->user = strdup(src->user));
    for (i = 0; i < LB_MAX_HOSTS && src->hosts[i]; i++)
        oom |= !(dst->hosts[i] = strdup(src->hosts[i]));
    if (oom)
        lb_discovery_clear(dst);
    return oom ? -1 : 0;
}

/* ---- cache --------------------------------------------------------------------------------- */

static int serve(lb_credentials *c, char **token, double *expires_at, lb_error *err)
{
    if (!(*token = strdup(c->cred))) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: out of memory", STEP_CRED);
        return -1;
    }
    *expires_at = c->cred_expires_wall;
    return 0;
}

static double stale_backoff(int streak, double retry_after)
{
    double d = STALE_BASE * (double)(1u << (streak < 8 ? streak - 1 : 7));
    d = (d > STALE_CAP ? STALE_CAP : d) * lb_time_jitter();
    return retry_after > d ? retry_after : d;
}

/* The outcome of a refresh into the cache (under c->mu): the new credential, or the failure and
 * the time of the next attempt. Wakes every waiter. */
static void refresh_done(lb_credentials *c, int rc, fetched *f, double retry_after, lb_error *ferr)
{
    if (rc != 0)
        scrub_error(c, ferr, c->cred);
    c->fetching = 0;
    c->generation++;
    if (rc == 0) {
        lb_wipe_free(c->cred);
        c->cred = f->token;
        f->token = NULL;
        c->cred_expires_wall = f->expires_wall;
        c->cred_expires_mono = f->expires_mono;
        c->refreshes++;
        c->fail_streak = 0;
        c->next_attempt = 0;
        lb_error_clear(&c->last_err);
    } else {
        c->failures++;
        c->fail_streak++;
        c->next_attempt = lb_time_mono() + stale_backoff(c->fail_streak, retry_after);
        lb_error_clear(&c->last_err);
        lb_error_set(&c->last_err, ferr->kind, ferr->retriable, "%s", ferr->message);
        lb_error_set_field(&c->last_err.hint, ferr->hint);
        lb_error_set_field(&c->last_err.request_id, ferr->request_id);
    }
    pthread_cond_broadcast(&c->cv);
}

static void entry_retain(lb_credentials *c);
static void entry_unretain(lb_credentials *c);

/* The background refresh: one attempt while the cached credential keeps serving (a failure
 * schedules the next one with backoff, as before). A plain C thread: no Lua runs here, so it
 * works the same under nginx. It holds a reference on the entry until it is done. */
static void *refresh_thread(void *arg)
{
    lb_credentials *c = arg;
    fetched f = { NULL, 0, 0 };
    lb_error ferr = LB_ERROR_INIT;
    double retry_after = -1;
    int rc = fetch(c, 0, &f, &retry_after, &ferr);

    pthread_mutex_lock(&c->mu);
    refresh_done(c, rc, &f, retry_after, &ferr);
    pthread_mutex_unlock(&c->mu);
    lb_error_clear(&ferr);
    lb_credentials_release(c);
    return NULL;
}

/* Starts the background refresh (c->mu held, no refresh in flight). 0 when started. */
static int refresh_in_background(lb_credentials *c)
{
    pthread_attr_t attr;
    pthread_t th;
    int rc;

    if (!c->shared) /* a private entry is freed by its one owner at any time */
        return -1;
    entry_retain(c);
    c->fetching = 1;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&th, &attr, refresh_thread, c);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        c->fetching = 0;
        entry_unretain(c); /* the caller's own reference keeps the entry */
        return -1;
    }
    return 0;
}

int lb_credentials_get(lb_credentials *c, char **token, double *expires_at, lb_error *err)
{
    double now, wait_until;
    uint64_t seen;
    int rc;

    *token = NULL;
    *expires_at = 0;
    if (c->auth == LB_AUTH_PASSWORD) {
        if (!(*token = strdup(c->password))) {
            lb_error_set(err, LB_ERR_CREDENTIAL, 1, "out of memory");
            return -1;
        }
        return 0;
    }

    /* A waiter gives the refresh in flight its whole budget plus a little. */
    wait_until = lb_time_mono() + c->connect_timeout + 1.0;
    pthread_mutex_lock(&c->mu);
    seen = c->generation;
    for (;;) {
        fetched f = { NULL, 0, 0 };
        lb_error ferr = LB_ERROR_INIT;
        double retry_after = -1;
        int valid;

        now = lb_time_mono();
        valid = c->cred && now < c->cred_expires_mono - STALE_MARGIN;
        if (c->cred && now < c->cred_expires_mono - REFRESH_BUFFER) {
            rc = serve(c, token, expires_at, err);
            break;
        }
        if (c->fetching) {
            struct timespec ts;
            if (valid) { /* stale-while-revalidate: never wait while the cache is good */
                rc = serve(c, token, expires_at, err);
                break;
            }
            if (now >= wait_until) {
                lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: timed out waiting for the refresh in progress",
                             STEP_CRED);
                rc = -1;
                break;
            }
            lb_time_timespec(wait_until, &ts);
            pthread_cond_timedwait(&c->cv, &c->mu, &ts);
            continue;
        }
        if (c->generation != seen && c->last_err.kind != LB_OK && !valid) {
            /* The refresh we waited for failed: share its error rather than start another. */
            lb_error_set(err, c->last_err.kind, c->last_err.retriable, "%s", c->last_err.message);
            lb_error_set_field(&err->hint, c->last_err.hint);
            lb_error_set_field(&err->request_id, c->last_err.request_id);
            rc = -1;
            break;
        }
        if (valid && now < c->next_attempt) { /* backoff after failures: keep serving */
            rc = serve(c, token, expires_at, err);
            break;
        }
        /* Inside the refresh window with a valid credential: fetch the next one off the request
         * path and serve this one; only a caller without a valid credential waits. */
        if (valid && refresh_in_background(c) == 0) {
            rc = serve(c, token, expires_at, err);
            break;
        }

        /* This caller refreshes; the others wait for it or use the still-valid cache. */
        c->fetching = 1;
        pthread_mutex_unlock(&c->mu);
        rc = fetch(c, !valid, &f, &retry_after, &ferr);
        pthread_mutex_lock(&c->mu);
        refresh_done(c, rc, &f, retry_after, &ferr);
        if (rc == 0) {
            rc = serve(c, token, expires_at, err);
            break;
        }
        if (c->cred && lb_time_mono() < c->cred_expires_mono - STALE_MARGIN) {
            lb_error_clear(&ferr);
            rc = serve(c, token, expires_at, err);
        } else {
            lb_error_move(err, &ferr);
            rc = -1;
        }
        break;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void lb_credentials_invalidate(lb_credentials *c, const char *token)
{
    if (!c || !token || c->auth == LB_AUTH_PASSWORD)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->cred && strcmp(c->cred, token) == 0) {
        lb_wipe_free(c->cred);
        c->cred = NULL;
        c->cred_expires_wall = 0;
        c->cred_expires_mono = 0;
        c->next_attempt = 0;
    }
    pthread_mutex_unlock(&c->mu);
}

void lb_credentials_stats(lb_credentials *c, lb_credential_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    out->refreshes = c->refreshes;
    out->failures = c->failures;
    out->expires_at = c->cred ? c->cred_expires_wall : 0;
    pthread_mutex_unlock(&c->mu);
}

/* Single flight with the credential refresh (the same c->fetching slot: the workspace token is the
 * fetching thread's); the answer is kept for the life of the entry, a failure is shared with the
 * callers that waited for it and retried by the next caller after them. */
int lb_credentials_discover(lb_credentials *c, lb_discovery *out, lb_error *err)
{
    double wait_until = lb_time_mono() + c->connect_timeout + 1.0, retry_after = -1;
    long status = 0; /* not reported: discovery has no metric of its own */
    lb_discovery d;
    lb_error derr = LB_ERROR_INIT;
    uint64_t seen;
    int rc;

    memset(out, 0, sizeof *out);
    memset(&d, 0, sizeof d);
    if (c->auth == LB_AUTH_PASSWORD) {
        lb_error_set(err, LB_ERR_CONFIG, 0, "discovery needs workspace auth (not a native password)");
        return -1;
    }
    pthread_mutex_lock(&c->mu);
    seen = c->disc_attempts;
    while (!c->disc.host && c->fetching) {
        struct timespec ts;
        if (lb_time_mono() >= wait_until) {
            pthread_mutex_unlock(&c->mu);
            lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: timed out waiting for the workspace call in "
                         "progress", c->instance ? STEP_INSTANCE : STEP_ENDPOINT);
            return -1;
        }
        lb_time_timespec(wait_until, &ts);
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    if (c->disc.host) {
        rc = discovery_copy(out, &c->disc);
        pthread_mutex_unlock(&c->mu);
        if (rc != 0)
            lb_error_set(err, LB_ERR_CREDENTIAL, 1, "out of memory");
        return rc;
    }
    if (c->disc_attempts != seen && c->disc_err.kind != LB_OK) {
        lb_error_set(err, c->disc_err.kind, c->disc_err.retriable, "%s", c->disc_err.message);
        lb_error_set_field(&err->hint, c->disc_err.hint);
        lb_error_set_field(&err->request_id, c->disc_err.request_id);
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    c->fetching = 1;
    pthread_mutex_unlock(&c->mu);
    rc = with_retries(c, 1, discover_once, &d, &retry_after, &status, &derr);
    pthread_mutex_lock(&c->mu);
    c->fetching = 0;
    c->disc_attempts++;
    lb_error_clear(&c->disc_err);
    if (rc == 0) {
        lb_discovery_clear(&c->disc);
        c->disc = d;
        rc = discovery_copy(out, &c->disc);
        if (rc != 0)
            lb_error_set(err, LB_ERR_CREDENTIAL, 1, "out of memory");
    } else {
        lb_discovery_clear(&d);
        scrub_error(c, &derr, NULL);
        lb_error_set(&c->disc_err, derr.kind, derr.retriable, "%s", derr.message);
        lb_error_set_field(&c->disc_err.hint, derr.hint);
        lb_error_set_field(&c->disc_err.request_id, derr.request_id);
        lb_error_move(err, &derr);
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int lb_settings_discover(lb_settings *s, lb_error *err)
{
    lb_credentials *c;
    lb_discovery d;
    int rc;

    if (s->auth == LB_AUTH_PASSWORD || (s->host && s->user))
        return 0;
    if (!(c = lb_credentials_acquire(s, err)))
        return -1;
    rc = lb_credentials_discover(c, &d, err);
    lb_credentials_release(c);
    if (rc != 0)
        return -1;
    if (!s->host) {
        s->host = d.host;
        d.host = NULL;
    }
    if (!s->user) {
        s->user = d.user;
        d.user = NULL;
    }
    lb_discovery_clear(&d);
    return 0;
}

/* ---- registry ------------------------------------------------------------------------------ */

static void entry_free(lb_credentials *c)
{
    if (!c)
        return;
    free(c->key);
    free(c->databricks_host);
    free(c->endpoint);
    free(c->instance);
    free(c->discover_url);
    free(c->me_url);
    lb_discovery_clear(&c->disc);
    lb_error_clear(&c->disc_err);
    lb_wipe_free(c->pat);
    free(c->client_id);
    lb_wipe_free(c->client_secret);
    lb_wipe_free(c->password);
    free(c->oauth_url);
    free(c->cred_url);
    free(c->profile);
    free(c->cli_path);
    lb_wipe_free(c->cred);
    lb_wipe_free(c->ws_token);
    lb_error_clear(&c->last_err);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

static int check_settings(const lb_settings *s, lb_error *err)
{
    if (!s) {
        lb_error_set(err, LB_ERR_CONFIG, 0, "credentials: no settings");
        return -1;
    }
    if (s->auth == LB_AUTH_PASSWORD) {
        if (!s->password) {
            lb_error_set(err, LB_ERR_CONFIG, 0, "credentials: password auth without a password");
            return -1;
        }
        return 0;
    }
    if (!s->databricks_host || (!s->endpoint == !s->instance)) {
        lb_error_set(err, LB_ERR_CONFIG, 0,
                     "credentials: databricks_host and one of endpoint and instance are required");
        return -1;
    }
    if (!lb_http_url_allowed(s->databricks_host)) {
        lb_error_set(err, LB_ERR_CONFIG, 0,
                     "credentials: databricks_host must be https:// (plain http:// only for a loopback host)");
        return -1;
    }
    if (s->auth == LB_AUTH_TOKEN && !s->token) {
        lb_error_set(err, LB_ERR_CONFIG, 0, "credentials: token auth without a token");
        return -1;
    }
    if (s->auth == LB_AUTH_M2M && (!s->client_id || !s->client_secret)) {
        lb_error_set(err, LB_ERR_CONFIG, 0, "credentials: M2M auth needs client_id and client_secret");
        return -1;
    }
    return 0;
}

static lb_credentials *entry_new(const lb_settings *s, lb_error *err)
{
    lb_credentials *c = calloc(1, sizeof *c);
    pthread_condattr_t ca;
    int oom = 0;

    if (!c) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* timed waits immune to clock jumps */
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    c->refs = 1;
    c->auth = s->auth;
    c->connect_timeout = s->connect_timeout > 0 ? s->connect_timeout : 10.0;
    c->key = dup_or_null(s->credential_key);
    c->shared = s->credential_key != NULL;
    oom |= s->credential_key && !c->key;
    if (s->auth == LB_AUTH_PASSWORD) {
        oom |= !(c->password = strdup(s->password));
    } else {
        oom |= !(c->databricks_host = strdup(s->databricks_host));
        lb_buf u;
        lb_buf_init(&u);
        if (s->instance) {
            oom |= !(c->instance = strdup(s->instance));
            oom |= !(c->cred_url = concat(s->databricks_host, "/api/2.0/database/credentials"));
            lb_buf_printf(&u, "%s/api/2.0/database/instances/%s", s->databricks_host, s->instance);
        } else {
            oom |= !(c->endpoint = strdup(s->endpoint));
            oom |= !(c->cred_url = concat(s->databricks_host, "/api/2.0/postgres/credentials"));
            lb_buf_printf(&u, "%s/api/2.0/postgres/%s", s->databricks_host, s->endpoint);
        }
        oom |= !(c->discover_url = lb_buf_take(&u));
        oom |= !(c->me_url = concat(s->databricks_host, "/api/2.0/preview/scim/v2/Me"));
        oom |= !(c->oauth_url = concat(s->databricks_host, "/oidc/v1/token"));
        if (s->auth == LB_AUTH_TOKEN) {
            oom |= !(c->pat = strdup(s->token));
        } else if (s->auth == LB_AUTH_CLI) {
            c->profile = dup_or_null(s->profile);
            c->cli_path = dup_or_null(s->databricks_cli_path);
            oom |= (s->profile && !c->profile) || (s->databricks_cli_path && !c->cli_path);
        } else {
            oom |= !(c->client_id = strdup(s->client_id));
            oom |= !(c->client_secret = strdup(s->client_secret));
        }
    }
    if (oom) {
        entry_free(c);
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "out of memory");
        return NULL;
    }
    return c;
}

static void entry_retain(lb_credentials *c)
{
    pthread_mutex_lock(&registry_mu);
    c->refs++;
    pthread_mutex_unlock(&registry_mu);
}

static void entry_unretain(lb_credentials *c)
{
    pthread_mutex_lock(&registry_mu);
    c->refs--;
    pthread_mutex_unlock(&registry_mu);
}

/* Keeps at most IDLE_KEEP unreferenced entries; drops the oldest (nearest the tail). */
static void evict_idle(void)
{
    lb_credentials **pp, *victim = NULL, **victim_pp = NULL;
    int idle = 0;

    for (pp = &registry; *pp; pp = &(*pp)->next) {
        if ((*pp)->refs == 0) {
            idle++;
            victim = *pp;
            victim_pp = pp;
        }
    }
    if (idle > IDLE_KEEP && victim) {
        *victim_pp = victim->next;
        entry_free(victim);
    }
}

lb_credentials *lb_credentials_acquire(const lb_settings *s, lb_error *err)
{
    lb_credentials *c;

    if (check_settings(s, err) != 0)
        return NULL;
    if (!s->credential_key) /* no identity to share under: a private entry */
        return entry_new(s, err);
    pthread_mutex_lock(&registry_mu);
    for (c = registry; c; c = c->next) {
        if (strcmp(c->key, s->credential_key) == 0) {
            c->refs++;
            pthread_mutex_unlock(&registry_mu);
            return c;
        }
    }
    if ((c = entry_new(s, err)) != NULL) {
        c->next = registry;
        registry = c;
        evict_idle();
    }
    pthread_mutex_unlock(&registry_mu);
    return c;
}

void lb_credentials_release(lb_credentials *c)
{
    if (!c)
        return;
    if (!c->shared) {
        entry_free(c);
        return;
    }
    pthread_mutex_lock(&registry_mu);
    /* At 0 the entry stays registered (and its cache warm) until evict_idle needs the room:
     * short-lived users such as lakebase.token() then share one credential. */
    c->refs--;
    evict_idle();
    pthread_mutex_unlock(&registry_mu);
}
