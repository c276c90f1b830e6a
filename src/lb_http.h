/* Internal: one HTTP request through libcurl (lb_http.c), for the workspace APIs.
 * TLS is verified against the system CAs; plain http:// is refused unless the host is a
 * loopback address. No redirects are followed (they would carry the Authorization header
 * elsewhere). Error messages name the URL and the transport problem, never a header or body. */
#ifndef LB_HTTP_H
#define LB_HTTP_H

#include <stddef.h>

#include "lakebase.h"

#define LB_HTTP_MAX_BODY (1024 * 1024) /* default cap of a response body */

typedef enum lb_http_result {
    LB_HTTP_OK = 0,      /* a response arrived (any status) */
    LB_HTTP_NETWORK,     /* could not connect, connection dropped, TLS failure... */
    LB_HTTP_TIMEOUT,     /* connect or total timeout */
    LB_HTTP_TOO_LARGE,   /* the body exceeded max_body */
    LB_HTTP_REFUSED      /* the URL itself is not allowed (scheme, non-loopback http) */
} lb_http_result;

typedef struct lb_http_request {
    const char *method;        /* "GET" or "POST" */
    const char *url;
    const char *content_type;  /* for a body; NULL: none */
    const char *body;          /* NULL: no body */
    size_t body_len;
    const char *bearer;        /* secret: Authorization: Bearer <bearer>; NULL: none */
    const char *basic_user;    /* HTTP Basic auth when non-NULL */
    const char *basic_password;/* secret */
    double connect_timeout;    /* seconds, > 0 */
    double timeout;            /* seconds for the whole request, > 0 */
    size_t max_body;           /* 0: LB_HTTP_MAX_BODY */
} lb_http_request;

typedef struct lb_http_response {
    long status;         /* HTTP status, 0 when no response */
    char *body;          /* malloc'd, NUL-terminated (also when empty); NULL when no response */
    size_t body_len;
    double retry_after;  /* seconds from a Retry-After header, -1 when absent */
} lb_http_response;

/* Performs the request. On LB_HTTP_OK, resp holds the response (free with lb_http_response_free).
 * Otherwise err is set (kind credential, retriable for network errors and timeouts) with a
 * message "<url>: <problem>", and resp holds nothing to free. */
lb_http_result lb_http_do(const lb_http_request *req, lb_http_response *resp, lb_error *err);
void lb_http_response_free(lb_http_response *resp);

/* 1 when the URL is https://, or http:// to a loopback host (localhost, 127.0.0.0/8, ::1). */
/* localhost, [::1]/::1 or 127.0.0.0/8: where plain http:// is allowed (tests, local proxies). */
int lb_host_is_loopback(const char *host);

int lb_http_url_allowed(const char *url);

#endif
