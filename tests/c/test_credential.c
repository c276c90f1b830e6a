/* Credentials against the fake workspace and the real PostgreSQL of the fixtures: HTTP policy
 * and limits, PAT and M2M credentials that open a real connection, caching, single flight with
 * 16 threads, stale-while-failing, expiry on the monotonic clock, 429 Retry-After, 4xx handling,
 * response parsing, and no secret in any error. Needs the env of spec/support/fixtures.sh;
 * without it, only the offline tests run (the rest are reported as skipped). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "lakebase.h"
#include "tap.h"
#include "lb_credential.h"
#include "lb_http.h"
#include "lb_time.h"

#define CRED_PATH "/api/2.0/postgres/credentials"
#define OAUTH_PATH "/oidc/v1/token"


static void skip(const char *what)
{
    printf("ok %d - %s # SKIP fixtures not running\n", ++test_no, what);
}

/* ---- the fake workspace's control API ----------------------------------------------------- */

static char *ws_url(const char *path)
{
    static char url[512];
    snprintf(url, sizeof url, "%s%s", env("LAKEBASE_TEST_DATABRICKS_HOST"), path);
    return url;
}

/* Returns the parsed JSON answer (caller frees) or NULL. */
static cJSON *ws(const char *method, const char *path, const char *json)
{
    lb_http_request req = { 0 };
    lb_http_response resp;
    lb_error err = LB_ERROR_INIT;
    cJSON *j = NULL;

    req.method = method;
    req.url = ws_url(path);
    req.body = json;
    req.body_len = json ? strlen(json) : 0;
    req.content_type = json ? "application/json" : NULL;
    req.connect_timeout = 5;
    req.timeout = 10;
    if (lb_http_do(&req, &resp, &err) == LB_HTTP_OK) {
        j = cJSON_Parse(resp.body);
        lb_http_response_free(&resp);
    } else {
        printf("# control %s failed: %s\n", path, err.message);
        lb_error_clear(&err);
    }
    return j;
}

static void ws_do(const char *path, const char *json)
{
    cJSON_Delete(ws("POST", path, json));
}

static void reset(void)
{
    ws_do("/_test/reset", "{}");
}

static void lifetime(double s)
{
    char buf[64];
    snprintf(buf, sizeof buf, "{\"lifetime\": %g}", s);
    ws_do("/_test/config", buf);
}

static void fault(const char *json)
{
    ws_do("/_test/fault", json);
}

static int counter(const char *path)
{
    cJSON *j = ws("GET", "/_test/counters", NULL), *n;
    int v = -1;

    if (j) {
        n = cJSON_GetObjectItemCaseSensitive(j, path);
        v = cJSON_IsNumber(n) ? n->valueint : 0;
    }
    cJSON_Delete(j);
    return v;
}

/* The header `name` of the last request to path (malloc'd) or NULL; `body` when name is NULL. */
static char *last_request(const char *path, const char *name)
{
    char p[256];
    cJSON *j, *h, *v;
    char *r = NULL;

    snprintf(p, sizeof p, "/_test/last_request?path=%s", path);
    if (!(j = ws("GET", p, NULL)))
        return NULL;
    if (!name) {
        v = cJSON_GetObjectItemCaseSensitive(j, "body");
    } else {
        h = cJSON_GetObjectItemCaseSensitive(j, "headers");
        v = NULL;
        cJSON_ArrayForEach(v, h) {
            if (strcasecmp(v->string, name) == 0)
                break;
        }
    }
    if (cJSON_IsString(v))
        r = strdup(v->valuestring);
    cJSON_Delete(j);
    return r;
}

/* ---- settings and checks ------------------------------------------------------------------ */

static int key_seq;

/* Settings by hand (the tests do not depend on the settings area). Each call: a new cache key. */
static lb_settings *settings(lb_auth auth)
{
    lb_settings *s = calloc(1, sizeof *s);
    char key[64];

    snprintf(key, sizeof key, "test-credential-%d-%d", (int)auth, ++key_seq);
    s->auth = auth;
    s->key = strdup(key);
    s->credential_key = strdup(key);
    s->connect_timeout = 10;
    s->databricks_host = strdup(env("LAKEBASE_TEST_DATABRICKS_HOST") ? env("LAKEBASE_TEST_DATABRICKS_HOST") : "http://127.0.0.1:1");
    s->endpoint = strdup(env("LAKEBASE_TEST_ENDPOINT") ? env("LAKEBASE_TEST_ENDPOINT") : "projects/p/branches/b/endpoints/e");
    if (auth == LB_AUTH_TOKEN)
        s->token = strdup(env("LAKEBASE_TEST_TOKEN") ? env("LAKEBASE_TEST_TOKEN") : "dapi-offline");
    if (auth == LB_AUTH_M2M) {
        s->client_id = strdup(env("LAKEBASE_TEST_CLIENT_ID") ? env("LAKEBASE_TEST_CLIENT_ID") : "id");
        s->client_secret = strdup(env("LAKEBASE_TEST_CLIENT_SECRET") ? env("LAKEBASE_TEST_CLIENT_SECRET") : "secret");
    }
    if (auth == LB_AUTH_PASSWORD)
        s->password = strdup("native-password-123");
    return s;
}

static void settings_free(lb_settings *s)
{
    free(s->key);
    free(s->credential_key);
    free(s->databricks_host);
    free(s->endpoint);
    free(s->token);
    free(s->client_id);
    free(s->client_secret);
    free(s->password);
    free(s);
}

static lb_credentials *acquire(lb_settings *s)
{
    lb_error err = LB_ERROR_INIT;
    lb_credentials *c = lb_credentials_acquire(s, &err);
    if (!c)
        printf("# acquire failed: %s\n", err.message);
    lb_error_clear(&err);
    return c;
}

/* 1 when text contains none of the fixtures' secrets nor `extra`. */
static int no_secret(const char *text, const char *extra)
{
    const char *secrets[] = { env("LAKEBASE_TEST_TOKEN"), env("LAKEBASE_TEST_CLIENT_SECRET"),
                              env("LAKEBASE_TEST_ADMIN_PASSWORD"), extra };
    if (!text)
        return 1;
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (secrets[i] && *secrets[i] && strstr(text, secrets[i]))
            return 0;
    return 1;
}

/* Gets a credential; returns the token (caller frees) or NULL with *err. */
static char *get(lb_credentials *c, double *expires_at, lb_error *err)
{
    char *tok = NULL;
    double exp = 0;
    if (lb_credentials_get(c, &tok, &exp, err) != 0)
        return NULL;
    if (expires_at)
        *expires_at = exp;
    return tok;
}

/* Calls get until it answers something other than `old` (the background refresh landed), for at
 * most `seconds`; returns that credential (malloc'd) or NULL. */
static char *wait_new(lb_credentials *c, const char *old, double seconds)
{
    double until = lb_time_mono() + seconds;
    while (lb_time_mono() < until) {
        lb_error err = LB_ERROR_INIT;
        char *t = get(c, NULL, &err);
        lb_error_clear(&err);
        if (t && old && strcmp(t, old) != 0)
            return t;
        free(t);
        lb_time_sleep(0.02);
    }
    return NULL;
}

/* Polls the fake's counter for path until it reaches n (at most `seconds`); returns the last. */
static int wait_counter(const char *path, int n, double seconds)
{
    double until = lb_time_mono() + seconds;
    int v = counter(path);
    while (v < n && lb_time_mono() < until) {
        lb_time_sleep(0.02);
        v = counter(path);
    }
    return v;
}

/* Opens a real PostgreSQL connection with the token as the password; 1 on success. */
static int pg_connects(const char *token)
{
    const char *keys[] = { "host", "port", "dbname", "user", "password", "sslmode", "sslrootcert",
                           "connect_timeout", NULL };
    const char *vals[] = { env("LAKEBASE_TEST_PGHOST"), env("LAKEBASE_TEST_PGPORT"),
                           env("LAKEBASE_TEST_PGDATABASE"), env("LAKEBASE_TEST_PGUSER"), token,
                           "verify-full", env("LAKEBASE_TEST_SSLROOTCERT"), "5", NULL };
    PGconn *pg = PQconnectdbParams(keys, vals, 0);
    int good = 0;

    if (PQstatus(pg) == CONNECTION_OK) {
        PGresult *r = PQexec(pg, "SELECT current_user");
        good = PQresultStatus(r) == PGRES_TUPLES_OK &&
               strcmp(PQgetvalue(r, 0, 0), env("LAKEBASE_TEST_PGUSER")) == 0 && PQgetssl(pg) != NULL;
        PQclear(r);
    }
    PQfinish(pg);
    return good;
}

/* ---- offline tests -------------------------------------------------------------------------- */

static void test_url_policy(void)
{
    lb_settings *s = settings(LB_AUTH_TOKEN);
    lb_error err = LB_ERROR_INIT;

    ok(lb_http_url_allowed("https://adb-1.azuredatabricks.net"), "https URL allowed");
    ok(lb_http_url_allowed("http://127.0.0.1:8080"), "http to 127.0.0.1 allowed");
    ok(lb_http_url_allowed("http://127.5.6.7"), "http to 127.0.0.0/8 allowed");
    ok(lb_http_url_allowed("http://localhost:1"), "http to localhost allowed");
    ok(lb_http_url_allowed("http://[::1]:80"), "http to [::1] allowed");
    ok(!lb_http_url_allowed("http://example.com"), "http to a remote host refused");
    ok(!lb_http_url_allowed("http://127.0.0.1.evil.example"), "http to a look-alike host refused");
    ok(!lb_http_url_allowed("ftp://127.0.0.1"), "other schemes refused");
    ok(!lb_http_url_allowed("not a url") && !lb_http_url_allowed(NULL), "garbage refused");

    free(s->databricks_host);
    s->databricks_host = strdup("http://example.com");
    {
        lb_credentials *bad = lb_credentials_acquire(s, &err);
        ok(bad == NULL && err.kind == LB_ERR_CONFIG && strstr(err.message, "https://") != NULL,
       "acquire refuses a plain-http non-loopback workspace: %s", err.message ? err.message : "");
    }
    lb_error_clear(&err);
    settings_free(s);
}

static void test_password_auth(void)
{
    lb_settings *s = settings(LB_AUTH_PASSWORD);
    lb_credentials *c = acquire(s);
    lb_error err = LB_ERROR_INIT;
    lb_credential_stats st;
    double exp = -1;
    char *tok = get(c, &exp, &err);

    ok(tok && strcmp(tok, "native-password-123") == 0 && exp == 0,
       "password auth: the password as is, expires_at 0");
    lb_credentials_stats(c, &st);
    ok(st.refreshes == 0 && st.failures == 0 && st.expires_at == 0, "password auth: no refreshes");
    free(tok);
    lb_credentials_release(c);
    settings_free(s);
}

/* The OAuth answer: access_token required, expires_in optional (an hour) and only when positive. */
static void test_parse_oauth_table(void)
{
    static const struct {
        const char *body;
        double want_life; /* 0: must fail */
        const char *in_error;
    } cases[] = {
        { "{\"access_token\":\"ws-abc\",\"token_type\":\"Bearer\",\"expires_in\":3600}", 3600, NULL },
        { "{\"access_token\":\"ws-abc\",\"expires_in\":120}", 120, NULL },
        { "{\"access_token\":\"ws-abc\"}", 3600, NULL },
        { "{\"access_token\":\"ws-abc\",\"expires_in\":-5}", 3600, NULL },
        { "{\"access_token\":\"ws-abc\",\"expires_in\":\"60\"}", 3600, NULL },
        { "{\"access_token\":5,\"expires_in\":3600}", 0, "access_token" },
        { "{\"access_token\":\"\"}", 0, "access_token" },
        { "{\"error\":\"invalid_client\"}", 0, "access_token" },
        { "[]", 0, "JSON" },
        { "", 0, "JSON" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lb_error err = LB_ERROR_INIT;
        char *token = NULL;
        double life = 0;
        int rc = lb_credential_parse_oauth(cases[i].body, strlen(cases[i].body), &token, &life, &err);
        if (cases[i].want_life > 0)
            ok(rc == 0 && token && strcmp(token, "ws-abc") == 0 && life == cases[i].want_life,
               "oauth response %s -> %.0f s", cases[i].body, life);
        else
            ok(rc != 0 && !token && err.kind == LB_ERR_CREDENTIAL && err.message &&
                   strstr(err.message, cases[i].in_error) && strstr(err.message, "oauth token"),
               "oauth response %s refused (%s)", cases[i].body, err.message ? err.message : "-");
        free(token);
        lb_error_clear(&err);
    }
}

static void test_parse_table(void)
{
    static const struct {
        const char *body;
        double want; /* 0: must fail */
        const char *in_error;
    } cases[] = {
        { "{\"token\":\"tok-abcdef\",\"expire_time\":\"2036-11-25T15:04:05Z\"}", 2111238245.0, NULL },
        { "{\"token\":\"tok-abcdef\",\"expire_time\":\"2036-11-25T15:04:05.123Z\"}", 2111238245.123, NULL },
        { "{\"token\":\"tok-abcdef\",\"expire_time\":\"2036-11-25T15:04:05.123456Z\"}", 2111238245.123456, NULL },
        { "{\"token\":\"tok-abcdef\",\"expire_time\":\"2036-11-25T15:04:05.123456789Z\"}", 2111238245.123456789, NULL },
        { "{\"token\":\"tok-abcdef\",\"expire_time\":\"2036-11-25T17:04:05+02:00\"}", 2111238245.0, NULL },
        { "{\"token\":\"tok-abcdef\",\"expire_time\":\"2036-11-25T09:34:05-05:30\"}", 2111238245.0, NULL },
        { "{\"token\":\"tok-abcdef\",\"expire_time\":\"garbage\"}", 0, "expire_time" },
        { "{\"token\":\"tok-abcdef\",\"expire_time\":\"2036-11-25T15:04:05\"}", 0, "expire_time" },
        { "{\"token\":\"tok-abcdef\",\"expire_time\":2111238245}", 0, "expire_time" },
        { "{\"token\":\"tok-abcdef\"}", 0, "expire_time" },
        { "{\"expire_time\":\"2036-11-25T15:04:05Z\"}", 0, "\"token\"" },
        { "{\"token\":42,\"expire_time\":\"2036-11-25T15:04:05Z\"}", 0, "\"token\"" },
        { "{\"token\":\"\",\"expire_time\":\"2036-11-25T15:04:05Z\"}", 0, "\"token\"" },
        { "{\"token\":\"tok-abcdef\",", 0, "JSON" },
        { "[]", 0, "JSON" },
        { "", 0, "JSON" },
        /* the token must not leak through an echoed expire_time */
        { "{\"token\":\"tok-abcdef\",\"expire_time\":\"tok-abcdef\"}", 0, "expire_time" },
        /* already expired: refused rather than served nowhere and fetched on every call */
        { "{\"token\":\"tok-abcdef\",\"expire_time\":\"2001-01-01T00:00:00Z\"}", 0, "in the past" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lb_error err = LB_ERROR_INIT;
        char *tok = NULL;
        double at = 0;
        int rc = lb_credential_parse_response(cases[i].body, strlen(cases[i].body), &tok, &at, &err);
        if (cases[i].want != 0)
            ok(rc == 0 && tok && strcmp(tok, "tok-abcdef") == 0 && at > cases[i].want - 1e-6 &&
                   at < cases[i].want + 1e-6,
               "credential response %s -> %.6f", cases[i].body, at);
        else
            ok(rc == -1 && !tok && err.kind == LB_ERR_CREDENTIAL && err.message &&
                   strstr(err.message, "lakebase credential") &&
                   strstr(err.message, cases[i].in_error) && !strstr(err.message, "tok-abcdef"),
               "credential response %s rejected: %s", cases[i].body, err.message ? err.message : "");
        free(tok);
        lb_error_clear(&err);
    }
}

/* ---- HTTP against the fake --------------------------------------------------------------- */

static lb_http_result http_post_cred(lb_http_response *resp, double timeout, lb_error *err)
{
    lb_http_request req = { 0 };
    req.method = "POST";
    req.url = ws_url(CRED_PATH);
    req.body = "{\"endpoint\": \"projects/p/branches/b/endpoints/e\"}";
    req.body_len = strlen(req.body);
    req.content_type = "application/json";
    req.bearer = env("LAKEBASE_TEST_TOKEN");
    req.connect_timeout = 2;
    req.timeout = timeout;
    return lb_http_do(&req, resp, err);
}

static void test_http(void)
{
    lb_http_response resp;
    lb_error err = LB_ERROR_INIT;
    lb_http_result r;
    lb_http_request req = { 0 };
    double t0;

    reset();
    fault("{\"path\": \"" CRED_PATH "\", \"kind\": \"huge\", \"count\": 1}");
    r = http_post_cred(&resp, 10, &err);
    ok(r == LB_HTTP_TOO_LARGE && err.message && strstr(err.message, "larger than"),
       "a 10 MB body is cut at the cap: %s", err.message ? err.message : "");
    lb_error_clear(&err);

    fault("{\"path\": \"" CRED_PATH "\", \"kind\": \"delay\", \"delay\": 2.0, \"count\": 1}");
    t0 = lb_time_mono();
    r = http_post_cred(&resp, 0.4, &err);
    ok(r == LB_HTTP_TIMEOUT && err.retriable && lb_time_mono() - t0 < 1.5,
       "the total timeout ends a slow request (%.2f s): %s", lb_time_mono() - t0,
       err.message ? err.message : "");
    lb_error_clear(&err);

    fault("{\"path\": \"" CRED_PATH "\", \"kind\": \"retry_after\", \"retry_after\": 3, \"count\": 1}");
    r = http_post_cred(&resp, 10, &err);
    ok(r == LB_HTTP_OK && resp.status == 429 && resp.retry_after == 3,
       "status 429 and Retry-After captured (%ld, %.0f)", resp.status, resp.retry_after);
    if (r == LB_HTTP_OK)
        lb_http_response_free(&resp);

    r = http_post_cred(&resp, 10, &err);
    ok(r == LB_HTTP_OK && resp.status == 200 && resp.retry_after == -1 && strstr(resp.body, "expire_time"),
       "a normal answer: 200, no Retry-After, a body");
    if (r == LB_HTTP_OK)
        lb_http_response_free(&resp);
    ok(no_secret(err.message, NULL), "no secret in the HTTP errors");

    req.method = "GET";
    req.url = "http://127.0.0.1:1/x";
    req.connect_timeout = 2;
    req.timeout = 2;
    r = lb_http_do(&req, &resp, &err);
    ok(r == LB_HTTP_NETWORK && err.retriable && err.kind == LB_ERR_CREDENTIAL,
       "a refused connection is a retriable network error: %s", err.message ? err.message : "");
    lb_error_clear(&err);
    req.url = "http://example.com/x";
    r = lb_http_do(&req, &resp, &err);
    ok(r == LB_HTTP_REFUSED, "lb_http_do refuses plain http to a remote host itself");
    lb_error_clear(&err);
}

/* ---- credentials against the fake ---------------------------------------------------------- */

static void test_pat(void)
{
    lb_settings *s = settings(LB_AUTH_TOKEN);
    lb_credentials *c = acquire(s), *c2;
    lb_error err = LB_ERROR_INIT;
    lb_credential_stats st;
    double exp = 0, now = lb_time_wall();
    char *tok, *auth;
    int same = 1;

    reset();
    tok = get(c, &exp, &err);
    ok(tok != NULL && exp > now + 3500 && exp < now + 3700, "PAT: a credential expiring in ~1 h (%.0f s)",
       exp - now);
    auth = last_request(CRED_PATH, "Authorization");
    ok(auth && strncmp(auth, "Bearer ", 7) == 0 && strcmp(auth + 7, env("LAKEBASE_TEST_TOKEN")) == 0,
       "PAT: sent as the Bearer token");
    free(auth);
    auth = last_request(CRED_PATH, NULL);
    ok(auth && strstr(auth, env("LAKEBASE_TEST_ENDPOINT")) && strstr(auth, "\"endpoint\""),
       "PAT: the body names the endpoint");
    free(auth);
    ok(tok && pg_connects(tok), "PAT: the credential opens a real PostgreSQL connection (verify-full)");

    for (int i = 0; i < 50; i++) {
        char *t = get(c, NULL, &err);
        same &= t && tok && strcmp(t, tok) == 0;
        free(t);
    }
    ok(same && counter(CRED_PATH) == 1, "caching: 51 gets, one HTTP call (%d)", counter(CRED_PATH));

    c2 = acquire(s); /* same key: same entry */
    free(tok);
    tok = get(c2, NULL, &err);
    ok(c2 == c && counter(CRED_PATH) == 1, "same settings key: the same cache entry");
    lb_credentials_release(c2);

    lb_credentials_stats(c, &st);
    ok(st.refreshes == 1 && st.failures == 0 && st.expires_at == exp, "stats: 1 refresh, 0 failures, expires_at");

    lb_credentials_invalidate(c, "not-the-token");
    free(get(c, NULL, &err));
    ok(counter(CRED_PATH) == 1, "invalidate with another token keeps the cached one");
    lb_credentials_invalidate(c, tok);
    {
        char *t2 = get(c, NULL, &err);
        ok(t2 && strcmp(t2, tok) != 0 && counter(CRED_PATH) == 2,
           "invalidate with the cached token: the next get fetches a new one");
        free(t2);
    }
    free(tok);
    lb_credentials_release(c);
    settings_free(s);
}

static void test_m2m(void)
{
    lb_settings *s = settings(LB_AUTH_M2M);
    lb_credentials *c = acquire(s);
    lb_error err = LB_ERROR_INIT;
    char *tok, *auth, *body, expect[512], b64[400];
    size_t n;

    reset();
    tok = get(c, NULL, &err);
    ok(tok != NULL, "M2M: a credential %s", err.message ? err.message : "");
    ok(counter(OAUTH_PATH) == 1 && counter(CRED_PATH) == 1, "M2M: one token call, one credential call");

    /* Basic base64(client_id:client_secret), as the Databricks SDKs send it. */
    snprintf(expect, sizeof expect, "%s:%s", env("LAKEBASE_TEST_CLIENT_ID"), env("LAKEBASE_TEST_CLIENT_SECRET"));
    n = strlen(expect);
    {
        static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t o = 0;
        for (size_t i = 0; i < n; i += 3) {
            unsigned v = (unsigned char)expect[i] << 16;
            if (i + 1 < n) v |= (unsigned char)expect[i + 1] << 8;
            if (i + 2 < n) v |= (unsigned char)expect[i + 2];
            b64[o++] = t[(v >> 18) & 63];
            b64[o++] = t[(v >> 12) & 63];
            b64[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
            b64[o++] = i + 2 < n ? t[v & 63] : '=';
        }
        b64[o] = '\0';
    }
    auth = last_request(OAUTH_PATH, "Authorization");
    ok(auth && strncmp(auth, "Basic ", 6) == 0 && strcmp(auth + 6, b64) == 0,
       "M2M: client id and secret sent as HTTP Basic auth");
    free(auth);
    body = last_request(OAUTH_PATH, NULL);
    ok(body && strstr(body, "grant_type=client_credentials") && strstr(body, "scope=all-apis") &&
           !strstr(body, env("LAKEBASE_TEST_CLIENT_SECRET")),
       "M2M: form grant_type=client_credentials&scope=all-apis, no secret in the body");
    free(body);
    auth = last_request(CRED_PATH, "Authorization");
    ok(auth && strncmp(auth, "Bearer eyJ", 10) == 0, "M2M: the access token is the credential call's Bearer");
    free(auth);
    ok(tok && pg_connects(tok), "M2M: the credential opens a real PostgreSQL connection (verify-full)");

    /* The workspace token is cached: a new credential needs no new token call. */
    lb_credentials_invalidate(c, tok);
    free(tok);
    tok = get(c, NULL, &err);
    ok(tok && counter(OAUTH_PATH) == 1 && counter(CRED_PATH) == 2, "M2M: the workspace token is cached");

    /* A 401 with the cached workspace token: renew it once, then succeed. */
    lb_credentials_invalidate(c, tok);
    free(tok);
    fault("{\"path\": \"" CRED_PATH "\", \"kind\": \"status\", \"status\": 401, \"count\": 1}");
    tok = get(c, NULL, &err);
    ok(tok && counter(OAUTH_PATH) == 2 && counter(CRED_PATH) == 4,
       "M2M: a 401 renews the workspace token once (oauth %d, credential %d)", counter(OAUTH_PATH),
       counter(CRED_PATH));
    free(tok);
    lb_error_clear(&err);
    lb_credentials_release(c);
    settings_free(s);

    /* A wrong client secret: a clear oauth error, no retry, no secret in it. */
    s = settings(LB_AUTH_M2M);
    free(s->client_secret);
    s->client_secret = strdup("wrong-secret-value-0123456789");
    c = acquire(s);
    reset();
    tok = get(c, NULL, &err);
    ok(!tok && err.kind == LB_ERR_CREDENTIAL && strstr(err.message, "oauth token") &&
           strstr(err.message, "HTTP 401") && strstr(err.message, "invalid_client") &&
           no_secret(err.message, "wrong-secret-value-0123456789") && counter(OAUTH_PATH) == 1,
       "M2M: a bad client secret -> %s", err.message ? err.message : "");
    lb_error_clear(&err);
    lb_credentials_release(c);
    settings_free(s);
}

typedef struct racer {
    lb_credentials *c;
    pthread_barrier_t *start;
    char *token;
    double took;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    lb_error err = LB_ERROR_INIT;
    double t0;

    pthread_barrier_wait(r->start);
    t0 = lb_time_mono();
    r->token = get(r->c, NULL, &err);
    r->took = lb_time_mono() - t0;
    if (!r->token)
        printf("# racer failed: %s\n", err.message);
    lb_error_clear(&err);
    return NULL;
}

static void test_single_flight(void)
{
    enum { N = 16 };
    lb_settings *s = settings(LB_AUTH_TOKEN);
    lb_credentials *c = acquire(s);
    pthread_t th[N];
    racer r[N];
    pthread_barrier_t start;
    int all = 1;

    reset();
    fault("{\"path\": \"" CRED_PATH "\", \"kind\": \"delay\", \"delay\": 1.0, \"count\": 1}");
    pthread_barrier_init(&start, NULL, N);
    for (int i = 0; i < N; i++) {
        r[i] = (racer){ c, &start, NULL, 0 };
        pthread_create(&th[i], NULL, race, &r[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++)
        all &= r[i].token && r[0].token && strcmp(r[i].token, r[0].token) == 0;
    ok(all, "single flight: 16 threads all get the same credential");
    ok(counter(CRED_PATH) == 1, "single flight: 16 threads at once while the fake is slow -> %d HTTP call",
       counter(CRED_PATH));
    for (int i = 0; i < N; i++)
        free(r[i].token);
    pthread_barrier_destroy(&start);

    /* A refresh in flight does not block callers while the cached credential is still valid.
     * Lifetime 121.5 s: a fresh credential is just outside the 2-minute window, and 1.6 s later
     * just inside it, so exactly one background refresh starts (its new credential is outside). */
    reset();
    lifetime(121.5);
    {
        lb_settings *s2 = settings(LB_AUTH_TOKEN);
        lb_credentials *c2 = acquire(s2);
        lb_error err = LB_ERROR_INIT;
        char *t1 = get(c2, NULL, &err), *t;
        pthread_barrier_t go;
        pthread_t slow;
        racer sr;
        double t0, took;
        int calls;

        lb_time_sleep(1.6);

        fault("{\"path\": \"" CRED_PATH "\", \"kind\": \"delay\", \"delay\": 1.5, \"count\": 1}");
        pthread_barrier_init(&go, NULL, 2);
        sr = (racer){ c2, &go, NULL, 0 };
        pthread_create(&slow, NULL, race, &sr);
        pthread_barrier_wait(&go);
        lb_time_sleep(0.3);
        t0 = lb_time_mono();
        t = get(c2, NULL, &err);
        took = lb_time_mono() - t0;
        ok(t && t1 && strcmp(t, t1) == 0 && took < 0.3,
           "a refresh in flight: others get the still-valid credential at once (%.3f s)", took);
        pthread_join(slow, NULL);
        free(t);
        /* The caller that started it did not wait either: the refresh runs in the background. */
        t = wait_new(c2, t1, 5);
        calls = counter(CRED_PATH);
        ok(sr.token && t1 && strcmp(sr.token, t1) == 0 && sr.took < 0.3 && t && calls == 2,
           "the caller that starts the refresh gets the valid credential at once (%.3f s); the new "
           "one arrives from the background (%d calls)", sr.took, calls);
        free(t);
        free(t1);
        free(sr.token);
        pthread_barrier_destroy(&go);
        lb_credentials_release(c2);
        settings_free(s2);
    }
    lb_credentials_release(c);
    settings_free(s);
}

typedef struct finder {
    lb_credentials *c;
    pthread_barrier_t *start;
    lb_discovery d;
    int rc;
} finder;

static void *find(void *arg)
{
    finder *f = arg;
    lb_error err = LB_ERROR_INIT;

    pthread_barrier_wait(f->start);
    f->rc = lb_credentials_discover(f->c, &f->d, &err);
    if (f->rc != 0)
        printf("# discover failed: %s\n", err.message);
    lb_error_clear(&err);
    return NULL;
}

/* Discovery (endpoint host, workspace user): 16 threads at once while the endpoint GET is slow make
 * one GET of the endpoint and one of SCIM Me; every thread gets the same answer. */
static void test_discovery_single_flight(void)
{
    enum { N = 16 };
    lb_settings *s = settings(LB_AUTH_TOKEN);
    lb_credentials *c = acquire(s);
    char path[512], rule[640];
    pthread_t th[N];
    finder f[N];
    pthread_barrier_t start;
    int all = 1;

    snprintf(path, sizeof path, "/api/2.0/postgres/%s", s->endpoint);
    reset();
    snprintf(rule, sizeof rule, "{\"path\": \"%s\", \"kind\": \"delay\", \"delay\": 1.0, \"count\": 1}", path);
    fault(rule);
    pthread_barrier_init(&start, NULL, N);
    for (int i = 0; i < N; i++) {
        memset(&f[i], 0, sizeof f[i]);
        f[i].c = c;
        f[i].start = &start;
        pthread_create(&th[i], NULL, find, &f[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++)
        all &= f[i].rc == 0 && f[i].d.host && strcmp(f[i].d.host, "localhost") == 0 && f[i].d.user &&
               f[i].d.hosts[0] && strcmp(f[i].d.hosts[0], "localhost") == 0 && !f[i].d.hosts[1];
    ok(all, "discovery: 16 threads all get host localhost, one listed host and a user");
    ok(counter(path) == 1 && counter("/api/2.0/preview/scim/v2/Me") == 1,
       "discovery single flight: 16 threads at once while the endpoint GET is slow -> %d endpoint GET, %d SCIM Me",
       counter(path), counter("/api/2.0/preview/scim/v2/Me"));
    for (int i = 0; i < N; i++)
        lb_discovery_clear(&f[i].d);
    pthread_barrier_destroy(&start);
    lb_credentials_release(c);
    settings_free(s);
}

static void test_refresh_window(void)
{
    lb_settings *s = settings(LB_AUTH_TOKEN);
    lb_credentials *c = acquire(s);
    lb_error err = LB_ERROR_INIT;
    char *t1, *t2, *t3;
    int calls_before;

    reset();
    lifetime(123); /* fresh for ~3 s, then inside the 2-minute buffer */
    t1 = get(c, NULL, &err);
    free(get(c, NULL, &err));
    calls_before = counter(CRED_PATH);
    lb_time_sleep(3.2);
    t3 = get(c, NULL, &err); /* served at once; the refresh starts in the background */
    t2 = wait_new(c, t1, 5);
    free(t3);
    t3 = get(c, NULL, &err);
    ok(calls_before == 1 && counter(CRED_PATH) == 2 && t1 && t2 && strcmp(t1, t2) != 0 && t3 &&
           strcmp(t2, t3) == 0,
       "lifetime 123 s: served from cache, then within 2 minutes of expiry exactly one (background) "
       "refresh (%d, %d)", calls_before, counter(CRED_PATH));
    free(t1);
    free(t2);
    free(t3);
    lb_credentials_release(c);
    settings_free(s);
}

static void test_outage(void)
{
    static const struct {
        const char *name, *fault;
    } kinds[] = {
        { "503", "{\"path\": \"" CRED_PATH "\", \"kind\": \"status\", \"status\": 503}" },
        { "connection drop", "{\"path\": \"" CRED_PATH "\", \"kind\": \"drop\"}" },
        { "malformed JSON", "{\"path\": \"" CRED_PATH "\", \"kind\": \"malformed\"}" },
        { "truncated body", "{\"path\": \"" CRED_PATH "\", \"kind\": \"truncated\"}" },
        { "empty body", "{\"path\": \"" CRED_PATH "\", \"kind\": \"empty\"}" },
    };
    lb_settings *s = NULL;
    lb_credentials *c = NULL;
    lb_error err = LB_ERROR_INIT;
    lb_credential_stats st;
    char *t1 = NULL, *t, *t2;
    double exp1 = 0, t0, took;

    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        int served = 1;
        if (c) {
            lb_credentials_release(c);
            settings_free(s);
        }
        free(t1);
        s = settings(LB_AUTH_TOKEN);
        s->connect_timeout = 2;
        c = acquire(s);
        reset();
        lifetime(5); /* always inside the refresh window: every get wants a refresh */
        t1 = get(c, &exp1, &err);
        fault(kinds[k].fault);
        for (int i = 0; i < 10; i++) {
            t = get(c, NULL, &err);
            served &= t && t1 && strcmp(t, t1) == 0;
            free(t);
        }
        wait_counter(CRED_PATH, 2, 3); /* the background attempt */
        lb_time_sleep(0.2);            /* and no other one after it (backoff) */
        for (int i = 0; i < 10; i++) {
            t = get(c, NULL, &err);
            served &= t && t1 && strcmp(t, t1) == 0;
            free(t);
        }
        ok(served && counter(CRED_PATH) == 2,
           "outage (%s) while valid: 10 callers served the cached credential, 1 refresh attempt, then backoff (%d calls)",
           kinds[k].name, counter(CRED_PATH));
    }
    lb_credentials_stats(c, &st);
    ok(st.refreshes == 1 && st.failures == 1 && st.expires_at == exp1, "stats count the failed refresh");

    /* The wall clock jumps back an hour: expiry still follows the monotonic clock. */
    lb_time_set_wall_skew(-3600);
    lb_time_sleep(exp1 - 1.0 - (lb_time_wall() + 3600) + 0.1); /* past the serving margin */
    t0 = lb_time_mono();
    t = get(c, NULL, &err);
    took = lb_time_mono() - t0;
    ok(!t && err.kind == LB_ERR_CREDENTIAL && err.message && strstr(err.message, "lakebase credential") &&
           took <= s->connect_timeout + 0.5,
       "after expiry (wall clock set back 1 h): a credential error within connect_timeout (%.2f s): %s",
       took, err.message ? err.message : "");
    ok(no_secret(err.message, t1), "no secret in the outage error");
    lb_error_clear(&err);
    free(t);
    lb_time_set_wall_skew(0);

    reset(); /* the fake recovers */
    t2 = get(c, NULL, &err);
    ok(t2 && t1 && strcmp(t1, t2) != 0, "recovery: the next call succeeds with a new credential");
    free(t2);
    free(t1);
    lb_credentials_release(c);
    settings_free(s);

    /* Without a cache, a 503 is retried within connect_timeout and its error is explicit. */
    s = settings(LB_AUTH_TOKEN);
    s->connect_timeout = 1.5;
    c = acquire(s);
    reset();
    fault("{\"path\": \"" CRED_PATH "\", \"kind\": \"status\", \"status\": 503}");
    t0 = lb_time_mono();
    t = get(c, NULL, &err);
    took = lb_time_mono() - t0;
    ok(!t && err.retriable && strstr(err.message, "HTTP 503") && strstr(err.message, "TEMPORARILY_UNAVAILABLE") &&
           strstr(err.message, "injected fault") && counter(CRED_PATH) >= 3 && took < 2.0,
       "503 without a cache: retried with backoff (%d calls in %.2f s): %s", counter(CRED_PATH), took,
       err.message ? err.message : "");
    lb_error_clear(&err);
    free(t);
    reset();
    fault("{\"path\": \"" CRED_PATH "\", \"kind\": \"malformed\", \"count\": 1}");
    fault("{\"path\": \"" CRED_PATH "\", \"kind\": \"drop\", \"count\": 1}");
    t = get(c, NULL, &err);
    ok(t && counter(CRED_PATH) == 3, "malformed then dropped, then fine: retried to success (%d calls)",
       counter(CRED_PATH));
    free(t);
    lb_credentials_release(c);
    settings_free(s);
}

static void test_retry_after_and_4xx(void)
{
    lb_settings *s = settings(LB_AUTH_TOKEN);
    lb_credentials *c = acquire(s);
    lb_error err = LB_ERROR_INIT;
    char *t;
    double t0, took;

    reset();
    fault("{\"path\": \"" CRED_PATH "\", \"kind\": \"retry_after\", \"retry_after\": 1, \"count\": 1}");
    t0 = lb_time_mono();
    t = get(c, NULL, &err);
    took = lb_time_mono() - t0;
    ok(t && took >= 1.0 && counter(CRED_PATH) == 2, "429 Retry-After: 1 honoured: waited %.2f s, then success", took);
    free(t);
    lb_credentials_release(c);
    settings_free(s);

    /* Retry-After beyond the budget: give up at once with the 429 error. */
    s = settings(LB_AUTH_TOKEN);
    s->connect_timeout = 2;
    c = acquire(s);
    reset();
    fault("{\"path\": \"" CRED_PATH "\", \"kind\": \"retry_after\", \"retry_after\": 30, \"count\": 1}");
    t0 = lb_time_mono();
    t = get(c, NULL, &err);
    took = lb_time_mono() - t0;
    ok(!t && took < 1.0 && err.message && strstr(err.message, "HTTP 429") && strstr(err.message, "Retry-After 30 s") && counter(CRED_PATH) == 1,
       "429 with Retry-After beyond connect_timeout: fails at once, saying so (%.2f s): %s", took,
       err.message ? err.message : "");
    lb_error_clear(&err);
    lb_credentials_release(c);
    settings_free(s);

    /* A real 404 (unknown endpoint): not retried, error_code and message named. */
    s = settings(LB_AUTH_TOKEN);
    free(s->endpoint);
    s->endpoint = strdup("projects/other/branches/b/endpoints/missing");
    c = acquire(s);
    reset();
    t = get(c, NULL, &err);
    ok(!t && !err.retriable && err.kind == LB_ERR_CREDENTIAL && strstr(err.message, "lakebase credential: HTTP 404 NOT_FOUND") &&
           strstr(err.message, "does not exist") && counter(CRED_PATH) == 1 && err.request_id &&
           strlen(err.request_id) == 36 && strstr(err.message, err.request_id),
       "404: no retry, step/status/error_code/message and request_id named: %s", err.message ? err.message : "");
    lb_error_clear(&err);
    lb_credentials_release(c);
    settings_free(s);

    /* 401 with a PAT: not retried. */
    s = settings(LB_AUTH_TOKEN);
    c = acquire(s);
    reset();
    fault("{\"path\": \"" CRED_PATH "\", \"kind\": \"status\", \"status\": 401, \"count\": 1}");
    t = get(c, NULL, &err);
    ok(!t && strstr(err.message, "HTTP 401 UNAUTHENTICATED") && counter(CRED_PATH) == 1 &&
           no_secret(err.message, NULL),
       "PAT 401: no retry: %s", err.message ? err.message : "");
    lb_error_clear(&err);
    lb_credentials_release(c);
    settings_free(s);

    /* A body over the cap: a clear error. */
    s = settings(LB_AUTH_TOKEN);
    c = acquire(s);
    reset();
    fault("{\"path\": \"" CRED_PATH "\", \"kind\": \"huge\", \"count\": 1}");
    t = get(c, NULL, &err);
    ok(!t && err.message && strstr(err.message, "larger than"), "a 10 MB answer: %s",
       err.message ? err.message : "");
    lb_error_clear(&err);
    lb_credentials_release(c);
    settings_free(s);
}

int main(void)
{
    double t0 = lb_time_mono();
    int online = env("LAKEBASE_TEST_DATABRICKS_HOST") && env("LAKEBASE_TEST_PGPORT");

    test_url_policy();
    test_password_auth();
    test_parse_table();
    test_parse_oauth_table();
    if (online) {
        test_http();
        test_pat();
        test_m2m();
        test_single_flight();
        test_discovery_single_flight();
        test_refresh_window();
        test_outage();
        test_retry_after_and_4xx();
        reset();
    } else {
        skip("credentials against the fake workspace");
    }
    printf("# %.1f s\n1..%d\n", lb_time_mono() - t0, test_no);
    return failures ? 1 : 0;
}
