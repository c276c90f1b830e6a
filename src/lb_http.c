/* One HTTP request through libcurl: timeouts, verified TLS, a capped body, Retry-After.
 * Secrets (bearer token, Basic password) only travel in the request; they are wiped from our
 * buffers afterwards and never reach an error message. */
#include "lb_http.h"
#include "lb_buf.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

/* curl_global_init is not thread-safe: run it exactly once, whoever comes first. */
static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- URL policy ---------------------------------------------------------------------------- */

int lb_host_is_loopback(const char *host)
{
    struct in_addr a4;

    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return 0;
}

int lb_http_url_allowed(const char *url)
{
    CURLU *u;
    char *scheme = NULL, *host = NULL;
    int ok = 0;

    if (!url || !(u = curl_url()))
        return 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        if (strcasecmp(scheme, "https") == 0)
            ok = 1;
        else if (strcasecmp(scheme, "http") == 0)
            ok = lb_host_is_loopback(host);
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

/* ---- response body ------------------------------------------------------------------------- */

typedef struct body_buf {
    lb_buf text;
    size_t max;
    int too_large;
} body_buf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    body_buf *b = userdata;
    size_t n = size * nmemb;

    if (n > b->max - b->text.len) {
        b->too_large = 1;
        return 0; /* makes curl abort with CURLE_WRITE_ERROR */
    }
    return lb_buf_append(&b->text, ptr, n) == 0 ? n : 0;
}

/* ---- request ------------------------------------------------------------------------------- */

static long to_ms(double seconds)
{
    long ms = (long)(seconds * 1000.0 + 0.999);
    return ms < 1 ? 1 : ms;
}

/* Wipes header strings (one may hold the bearer token) before freeing them. */
static void free_headers(struct curl_slist *h)
{
    for (struct curl_slist *i = h; i; i = i->next)
        explicit_bzero(i->data, strlen(i->data));
    curl_slist_free_all(h);
}

static struct curl_slist *build_headers(const lb_http_request *req, int *oom)
{
    struct curl_slist *h = NULL, *n;
    char line[256];

    *oom = 0;
#define ADD(s)                                                                                     \
    do {                                                                                           \
        if (!(n = curl_slist_append(h, (s)))) {                                                    \
            *oom = 1;                                                                              \
            return h;                                                                              \
        }                                                                                          \
        h = n;                                                                                     \
    } while (0)
    ADD("Accept: application/json");
    ADD("Expect:"); /* no 100-continue round trip */
    if (req->content_type) {
        snprintf(line, sizeof line, "Content-Type: %s", req->content_type);
        ADD(line);
    }
    if (req->bearer) {
        size_t len = strlen(req->bearer) + sizeof "Authorization: Bearer ";
        char *auth = malloc(len);
        if (!auth) {
            *oom = 1;
            return h;
        }
        snprintf(auth, len, "Authorization: Bearer %s", req->bearer);
        n = curl_slist_append(h, auth);
        explicit_bzero(auth, len);
        free(auth);
        if (!n) {
            *oom = 1;
            return h;
        }
        h = n;
    }
#undef ADD
    return h;
}

lb_http_result lb_http_do(const lb_http_request *req, lb_http_response *resp, lb_error *err)
{
    CURL *curl;
    CURLcode rc;
    struct curl_slist *headers = NULL;
    body_buf body;
    char errbuf[CURL_ERROR_SIZE];
    lb_http_result result = LB_HTTP_OK;
    int oom;

    memset(resp, 0, sizeof *resp);
    resp->retry_after = -1;
    lb_buf_init(&body.text);
    body.too_large = 0;
    body.max = req->max_body ? req->max_body : LB_HTTP_MAX_BODY;

    if (!lb_http_url_allowed(req->url)) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 0,
                     "%s: refused (https:// required; plain http:// only to a loopback host)",
                     req->url ? req->url : "(no url)");
        return LB_HTTP_REFUSED;
    }
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 0, "libcurl initialisation failed: %s",
                     curl_easy_strerror(global_rc));
        return LB_HTTP_NETWORK;
    }
    if (!(curl = curl_easy_init())) {
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: out of memory", req->url);
        return LB_HTTP_NETWORK;
    }
    headers = build_headers(req, &oom);
    if (oom) {
        free_headers(headers);
        curl_easy_cleanup(curl);
        lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: out of memory", req->url);
        return LB_HTTP_NETWORK;
    }

    errbuf[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, to_ms(req->connect_timeout));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, to_ms(req->timeout));
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "lakebase-lua/" LAKEBASE_VERSION);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    if (req->basic_user) {
        curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(curl, CURLOPT_USERNAME, req->basic_user);
        curl_easy_setopt(curl, CURLOPT_PASSWORD, req->basic_password ? req->basic_password : "");
    }
    if (req->method && strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    } else {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    }

    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        curl_off_t retry_after = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
        if (curl_easy_getinfo(curl, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0)
            resp->retry_after = (double)retry_after;
        if (lb_buf_reserve(&body.text, 0) < 0) { /* an empty body is "" too */
            rc = CURLE_OUT_OF_MEMORY;
        } else {
            resp->body_len = body.text.len;
            resp->body = lb_buf_take(&body.text);
        }
    }
    if (rc != CURLE_OK) {
        const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        if (body.too_large) {
            result = LB_HTTP_TOO_LARGE;
            lb_error_set(err, LB_ERR_CREDENTIAL, 0, "%s: response body larger than %zu bytes",
                         req->url, body.max);
        } else if (rc == CURLE_OPERATION_TIMEDOUT) {
            result = LB_HTTP_TIMEOUT;
            lb_error_set(err, LB_ERR_CREDENTIAL, 1, "%s: timed out (%s)", req->url, why);
        } else {
            /* A certificate that is not accepted or a URL curl cannot use stays so: retrying
             * (or calling it retriable) cannot help. */
            int permanent = rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
                            rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_ISSUER_ERROR ||
                            rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT;
            result = LB_HTTP_NETWORK;
            lb_error_set(err, LB_ERR_CREDENTIAL, !permanent, "%s: %s", req->url, why);
        }
        memset(resp, 0, sizeof *resp);
        resp->retry_after = -1;
    }
    lb_buf_wipe(&body.text); /* what is left of an answer that may hold a token */
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    free_headers(headers);
    curl_easy_cleanup(curl);
    return result;
}

void lb_http_response_free(lb_http_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}
