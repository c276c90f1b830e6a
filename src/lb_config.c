/* Settings: options > environment > ~/.databrickscfg profile, every rule of README "Settings", every
 * problem reported at once (one line per setting, naming the env variable and the option),
 * secrets never echoed. See lakebase.h for the contract. */
#include "lakebase.h"
#include "lb_buf.h"
#include "lb_http.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_VALUE 4096                 /* bytes per setting value */
#define MAX_PROFILE_FILE ((size_t)1 << 20) /* ~/.databrickscfg larger than this is refused */
#define ECHO_MAX 64                    /* bytes of a (non-secret) bad value quoted in a message */

/* ------------------------------------------------------------------------------------------
 * The option table
 * ---------------------------------------------------------------------------------------- */

enum {
    O_HOST, O_PORT, O_DATABASE, O_USER, O_SSLMODE, O_SSLROOTCERT, O_ENDPOINT, O_INSTANCE,
    O_DATABRICKS_HOST, O_TOKEN, O_CLIENT_ID, O_CLIENT_SECRET, O_PASSWORD, O_AUTH_TYPE, O_PROFILE,
    O_CLI_PATH, O_MAX, O_PROCESS_MAX_CONNECTIONS, O_IDLE_TIMEOUT, O_CONNECT_TIMEOUT,
    O_ACQUIRE_TIMEOUT, O_STATEMENT_TIMEOUT, O_APPLICATION_NAME, O_MAX_LIFETIME, O_PREPARE,
    O_KEEPALIVES, O_KEEPALIVES_IDLE, O_KEEPALIVES_INTERVAL, O_KEEPALIVES_COUNT, O_TCP_USER_TIMEOUT,
    O_MIN_IDLE, O_PREFETCH,
    O_READ_ENDPOINT, O_READ_HOST, O_READ_PORT, O_FALLBACK_TO_PRIMARY,
    O_SLOW_QUERY_MS, O_SLOW_ACQUIRE_MS,
    O_COUNT
};

/* The trailing columns of a row: where the setting is held, and how a plain one is checked. */
#define AT(f) offsetof(lb_settings, f)
#define TEXT(f) LB_OPT_TEXT, AT(f), 0, 0, 0, 0
#define CUSTOM_TEXT(f) LB_OPT_TEXT, AT(f), 1, 0, 0, 0
#define CUSTOM(kind, f) kind, AT(f), 1, 0, 0, 0
#define NO_FIELD LB_OPT_NONE, 0, 1, 0, 0, 0
#define INT(f, lo, hi) LB_OPT_INT, AT(f), 0, lo, hi, 0
#define NUMBER(f, lo, hi, lo_open) LB_OPT_NUMBER, AT(f), 0, lo, hi, lo_open
#define BOOL(f) LB_OPT_BOOL, AT(f), 0, 0, 1, 0

/* One row per setting: everything else (validation and its messages, `describe`, the pool key,
 * core.options, the CLI's env-file list, `lakebase env-example`, .env.example, the README table
 * check) is derived from it. `example` is the value env-example writes (NULL: the line is written
 * commented out). The last columns (the macros above) say where the value is held and, for a row
 * without a rule of its own in apply(), its kind and range. */
static const lb_option_info spec[O_COUNT] = {
    [O_HOST] = {"host", "PGHOST", 0, "a string", NULL,
                "Postgres host of the endpoint; unset: read from the endpoint (or instance) when the "
                "pool is made (required with PGPASSWORD)",
        CUSTOM_TEXT(host)},
    [O_PORT] = {"port", "PGPORT", 0, "an integer 1-65535", "5432", "Postgres port (default 5432)",
        INT(port, 1, 65535)},
    [O_DATABASE] = {"database", "PGDATABASE", 0, "a string", NULL,
                    "database name (default databricks_postgres)",
        TEXT(database)},
    [O_USER] = {"user", "PGUSER", 0, "a string", NULL,
                "the identity the token belongs to (a Postgres role for it must exist in Lakebase); "
                "unset: the service principal's client id under OAuth M2M, else your workspace user "
                "name (SCIM Me)",
        TEXT(user)},
    [O_SSLMODE] = {"sslmode", "PGSSLMODE", 0,
                   "one of require, prefer, disable, verify-full, verify-ca", "require",
                   "require = encrypted and verified (default); verify-full, verify-ca, prefer, disable",
        CUSTOM(LB_OPT_SSLMODE, sslmode)},
    [O_SSLROOTCERT] = {"sslrootcert", "PGSSLROOTCERT", 0, "a readable CA bundle file", NULL,
                       "CA bundle that signs the server's certificate (default: the system's)",
        CUSTOM_TEXT(sslrootcert)},
    [O_ENDPOINT] = {"endpoint", "LAKEBASE_ENDPOINT", 0,
                    "projects/<project>/branches/<branch>/endpoints/<endpoint>",
                    "projects/my-project/branches/production/endpoints/primary",
                    "Lakebase endpoint resource (databricks postgres list-endpoints)",
        CUSTOM_TEXT(endpoint)},
    [O_INSTANCE] = {"instance", "LAKEBASE_INSTANCE", 0,
                    "a database instance name (letters, digits and -, at most 63)", NULL,
                    "a provisioned Lakebase instance (databricks database list-database-instances), "
                    "instead of LAKEBASE_ENDPOINT",
        CUSTOM_TEXT(instance)},
    [O_DATABRICKS_HOST] = {"databricks_host", "DATABRICKS_HOST", 0, "an https:// URL",
                           "https://my-workspace.cloud.databricks.com", "workspace URL",
        CUSTOM_TEXT(databricks_host)},
    [O_TOKEN] = {"token", "DATABRICKS_TOKEN", 1, "a string", "",
                 "local development: a workspace token; `lakebase refresh-token` keeps a fresh one "
                 "in .env.local, which is read before this file",
        TEXT(token)},
    [O_CLIENT_ID] = {"client_id", "DATABRICKS_CLIENT_ID", 0, "a string", NULL,
                     "production: OAuth M2M with a service principal (PGUSER defaults to it)",
        TEXT(client_id)},
    [O_CLIENT_SECRET] = {"client_secret", "DATABRICKS_CLIENT_SECRET", 1, "a string", NULL,
                         "the service principal's OAuth secret",
        TEXT(client_secret)},
    [O_PASSWORD] = {"password", "PGPASSWORD", 1, "a string", NULL,
                    "or a native Postgres password (no Databricks calls)",
        TEXT(password)},
    [O_AUTH_TYPE] = {"auth_type", "DATABRICKS_AUTH_TYPE", 0, "one of pat, oauth-m2m, databricks-cli",
                     NULL, "force one workspace auth method: pat, oauth-m2m, or databricks-cli (the "
                     "token of `databricks auth login`, fetched with `databricks auth token`)",
        NO_FIELD},
    [O_PROFILE] = {"profile", "DATABRICKS_CONFIG_PROFILE", 0, "a string", NULL,
                   "a profile of the Databricks config file (~/.databrickscfg, or "
                   "DATABRICKS_CONFIG_FILE) for the workspace settings",
        CUSTOM_TEXT(profile)},
    [O_CLI_PATH] = {"databricks_cli_path", "DATABRICKS_CLI_PATH", 0, "a string", NULL,
                    "the databricks CLI for databricks-cli auth (default: databricks on PATH)",
        TEXT(databricks_cli_path)},
    [O_MAX] = {"max", NULL, 0, "an integer 1-1000", "10",
               "pool size per process (under nginx: per worker process)",
        INT(max, 1, 1000)},
    [O_PROCESS_MAX_CONNECTIONS] = {"process_max_connections", NULL, 0,
                                   "an integer 0-100000 (0 = no cap)", "0",
                                   "cap on the connections this process holds across every pool of "
                                   "these settings: the primary and the reader, pools that differ "
                                   "only in max or timeouts (under nginx: per worker process)",
        INT(process_max_connections, 0, 100000)},
    [O_IDLE_TIMEOUT] = {"idle_timeout", NULL, 0, "a number of seconds > 0 and <= 86400", "30",
                        "seconds an idle connection is kept",
        NUMBER(idle_timeout, 0, 86400, 1)},
    [O_CONNECT_TIMEOUT] = {"connect_timeout", NULL, 0, "a number of seconds > 0 and <= 3600", "10",
                           "seconds to connect (and to fetch a credential)",
        NUMBER(connect_timeout, 0, 3600, 1)},
    [O_ACQUIRE_TIMEOUT] = {"acquire_timeout", NULL, 0, "a number of seconds > 0 and <= 3600", "10",
                           "seconds to wait for a free connection",
        NUMBER(acquire_timeout, 0, 3600, 1)},
    [O_STATEMENT_TIMEOUT] = {"statement_timeout", NULL, 0,
                             "an integer number of milliseconds 0-2147483647", "0",
                             "milliseconds a statement may run (0: the server's default)",
        INT(statement_timeout, 0, 2147483647)},
    [O_APPLICATION_NAME] = {"application_name", NULL, 0, "printable ASCII, at most 63 bytes",
                            "lakebase", "application_name shown in pg_stat_activity",
        CUSTOM_TEXT(application_name)},
    [O_MAX_LIFETIME] = {"max_lifetime", NULL, 0, "a number of seconds 0-31536000 (0 = unlimited)",
                        "3600", "seconds a connection may live, each 90-100 % of it (0: unlimited)",
        NUMBER(max_lifetime, 0, 31536000, 0)},
    [O_PREPARE] = {"prepare", NULL, 0, "a boolean", "true",
                   "automatic per-connection prepared statements",
        BOOL(prepare)},
    [O_KEEPALIVES] = {"keepalives", NULL, 0, "a boolean", "true",
                      "TCP keepalives on every connection",
        BOOL(keepalives)},
    [O_KEEPALIVES_IDLE] = {"keepalives_idle", NULL, 0, "an integer number of seconds 1-7200", "15",
                           "seconds idle before the first keepalive probe",
        INT(keepalives_idle, 1, 7200)},
    [O_KEEPALIVES_INTERVAL] = {"keepalives_interval", NULL, 0, "an integer number of seconds 1-7200",
                               "5", "seconds between keepalive probes",
        INT(keepalives_interval, 1, 7200)},
    [O_KEEPALIVES_COUNT] = {"keepalives_count", NULL, 0, "an integer 1-127", "3",
                            "unanswered probes before a connection counts as dead",
        INT(keepalives_count, 1, 127)},
    [O_TCP_USER_TIMEOUT] = {"tcp_user_timeout", NULL, 0,
                            "a number of seconds 0-3600 (0 = the OS default)", "30",
                            "seconds sent data may stay unacknowledged before the connection is dropped",
        NUMBER(tcp_user_timeout, 0, 3600, 0)},
    [O_MIN_IDLE] = {"min_idle", NULL, 0, "an integer 0-1000, at most max", "0",
                    "connections opened at lakebase.new (init_worker under nginx) and kept idle",
        INT(min_idle, 0, 1000)},
    [O_PREFETCH] = {"prefetch", NULL, 0, "a boolean", "false",
                    "fetch the credential at lakebase.new, before the first request needs it",
        BOOL(prefetch)},
    [O_READ_ENDPOINT] = {"read_endpoint", "LAKEBASE_READ_ENDPOINT", 0,
                         "projects/<project>/branches/<branch>/endpoints/<endpoint>", NULL,
                         "read-only endpoint for db:reader() (its own pool and credential; its "
                         "host is read from it unless LAKEBASE_READ_HOST is set)",
        CUSTOM_TEXT(read_endpoint)},
    [O_READ_HOST] = {"read_host", "LAKEBASE_READ_HOST", 0, "a string", NULL,
                     "Postgres host of the read-only endpoint (unset: db:reader() is the primary)",
        CUSTOM_TEXT(read_host)},
    [O_READ_PORT] = {"read_port", "LAKEBASE_READ_PORT", 0, "an integer 1-65535", NULL,
                     "Postgres port of the read-only endpoint (default: the primary's port)",
        INT(read_port, 1, 65535)},
    [O_FALLBACK_TO_PRIMARY] = {"fallback_to_primary", NULL, 0, "a boolean", "false",
                               "db:reader() runs on the primary while the read endpoint cannot "
                               "be reached",
        BOOL(fallback_to_primary)},
    [O_SLOW_QUERY_MS] = {"slow_query_ms", NULL, 0, "an integer number of milliseconds 0-86400000",
                         "1000", "a statement slower than this is logged (slow_query, with its SQL "
                         "text and no parameter values; 0: never)",
        INT(slow_query_ms, 0, 86400000)},
    [O_SLOW_ACQUIRE_MS] = {"slow_acquire_ms", NULL, 0,
                           "an integer number of milliseconds 0-86400000", "100",
                           "a wait for a pooled connection longer than this is logged (pool_wait; "
                           "0: never)",
        INT(slow_acquire_ms, 0, 86400000)},
};

const lb_option_info *lb_options(int *count)
{
    if (count)
        *count = O_COUNT;
    return spec;
}

enum source { SRC_NONE = 0, SRC_OPTION, SRC_ENV, SRC_PROFILE };

typedef struct resolved {
    const char *value;    /* borrowed: the caller's option, getenv(), or the profile */
    const char *bad_type; /* from the option */
    enum source src;
} resolved;

/* ------------------------------------------------------------------------------------------
 * Problem list: one line per problem, in option order
 * ---------------------------------------------------------------------------------------- */

typedef struct problems {
    lb_buf text;  /* "\nline\nline...": one line per problem */
    int count;
    int oom;      /* out of memory elsewhere while checking */
    const char *profile_name; /* for labels of profile-sourced values */
} problems;

static void add_raw(problems *pr, const char *fmt, va_list ap)
{
    lb_buf_putc(&pr->text, '\n');
    lb_buf_vprintf(&pr->text, fmt, ap);
}

static void add_line(problems *pr, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void add_line(problems *pr, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    add_raw(pr, fmt, ap);
    va_end(ap);
    pr->count++;
}

/* "PGPORT (port): <what>" — env first, the way users set it; the profile named when it was the source. */
static void add_problem(problems *pr, int o, const resolved *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static void add_problem(problems *pr, int o, const resolved *r, const char *fmt, ...)
{
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (r && r->src == SRC_PROFILE)
        add_line(pr, "%s (%s, from profile [%s] of the Databricks config file): %s",
                 spec[o].env, spec[o].name, pr->profile_name ? pr->profile_name : "?", what);
    else if (spec[o].env)
        add_line(pr, "%s (%s): %s", spec[o].env, spec[o].name, what);
    else
        add_line(pr, "%s: %s", spec[o].name, what);
}

/* A value quoted for a message: printable ASCII kept, the rest as \xNN, cut at ECHO_MAX. */
static void quote(char *out, size_t outlen, const char *v)
{
    size_t o = 0, i;

    out[o++] = '"';
    for (i = 0; v[i] && o + 8 < outlen; i++) {
        unsigned char c = (unsigned char)v[i];
        if (i >= ECHO_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02X", c);
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* ------------------------------------------------------------------------------------------
 * Value checks
 * ---------------------------------------------------------------------------------------- */

/* Length of a valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len, i;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        len = 2, cp = s[0] & 0x1F;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        len = 3, cp = s[0] & 0x0F;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

/* Checks every value must pass: size, no control characters, valid UTF-8. Returns 0 when fine. */
static int check_text(problems *pr, int o, const resolved *r)
{
    const unsigned char *s = (const unsigned char *)r->value;
    size_t n = strlen(r->value), i = 0;

    if (n > MAX_VALUE) {
        add_problem(pr, o, r, "is too long (%zu bytes, at most %d)", n, MAX_VALUE);
        return -1;
    }
    while (i < n) {
        if (s[i] < 0x20 || s[i] == 0x7f) {
            if (spec[o].secret)
                add_problem(pr, o, r, "is set but contains a control character");
            else
                add_problem(pr, o, r, "contains a control character (byte 0x%02X at offset %zu)",
                            s[i], i);
            return -1;
        }
        size_t k = utf8_seq(s + i, n - i);
        if (!k) {
            if (spec[o].secret)
                add_problem(pr, o, r, "is set but is not valid UTF-8");
            else
                add_problem(pr, o, r, "is not valid UTF-8 (byte 0x%02X at offset %zu)", s[i], i);
            return -1;
        }
        i += k;
    }
    return 0;
}

/* Strict decimal integer: digits only (no sign, no spaces, no hex). */
static int parse_int(const char *v, long long lo, long long hi, long long *out)
{
    long long x = 0;
    const char *p = v;

    if (!*p)
        return -1;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        if (x > (hi - (*p - '0')) / 10)
            return -1; /* beyond hi: also stops overflow */
        x = x * 10 + (*p - '0');
    }
    if (x < lo)
        return -1;
    *out = x;
    return 0;
}

/* Strict non-negative decimal number: digits, optional fraction, optional exponent. */
static int parse_number(const char *v, double *out)
{
    const char *p = v;
    char *end;
    int digits = 0;
    double x;

    while (*p >= '0' && *p <= '9')
        p++, digits++;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            digits++;
    if (!digits)
        return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return -1;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p)
        return -1;
    errno = 0;
    x = strtod(v, &end);
    if (*end || !isfinite(x))
        return -1;
    *out = x;
    return 0;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const t[] = {"true", "1", "yes", "on"};
    static const char *const f[] = {"false", "0", "no", "off"};
    size_t i;

    for (i = 0; i < 4; i++) {
        if (strcasecmp(v, t[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(v, f[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

/* One id segment of an endpoint path: [A-Za-z0-9._-]+, not "." or "..". */
static int good_segment(const char *b, size_t n)
{
    size_t i;

    if (n == 0 || (n == 1 && b[0] == '.') || (n == 2 && b[0] == '.' && b[1] == '.'))
        return 0;
    for (i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static int good_endpoint(const char *v)
{
    static const char *const fixed[] = {"projects", "branches", "endpoints"};
    const char *p = v;
    int i;

    for (i = 0; i < 3; i++) {
        size_t n = strlen(fixed[i]);
        const char *slash;

        if (strncmp(p, fixed[i], n) != 0 || p[n] != '/')
            return 0;
        p += n + 1;
        slash = strchr(p, '/');
        if (i < 2) {
            if (!slash || !good_segment(p, (size_t)(slash - p)))
                return 0;
            p = slash + 1;
        } else if (slash || !good_segment(p, strlen(p))) {
            return 0;
        }
    }
    return 1;
}

/* Normalises a workspace URL the way the Databricks SDKs do: a bare host name gets https://,
 * scheme and host are lowercased, any path/query/fragment and trailing slash are dropped.
 * Returns a malloc'd "scheme://host[:port]" or NULL with *why set; *no_echo is set when the
 * value must not be quoted (it carries user:password@). */
static char *normalise_host(const char *v, const char **why, int *no_echo)
{
    const char *sep = strstr(v, "://"), *auth, *aend, *hb, *he, *colon = NULL;
    char scheme[8];
    char *out;
    size_t i, hn;
    long long port = 0;

    *no_echo = 0;
    if (sep) {
        size_t sn = (size_t)(sep - v);
        if (sn == 0 || sn >= sizeof scheme) {
            *why = "expected an https:// URL";
            return NULL;
        }
        for (i = 0; i < sn; i++)
            scheme[i] = (char)((v[i] >= 'A' && v[i] <= 'Z') ? v[i] + 32 : v[i]);
        scheme[sn] = '\0';
        if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
            *why = "expected an https:// URL";
            return NULL;
        }
        auth = sep + 3;
    } else {
        strcpy(scheme, "https");
        auth = v;
    }
    aend = auth + strcspn(auth, "/?#");
    if (memchr(auth, '@', (size_t)(aend - auth))) {
        *no_echo = 1;
        *why = "must not contain user information (user:password@); use token or client_id/client_secret";
        return NULL;
    }
    hb = auth;
    if (*hb == '[') {
        he = memchr(hb, ']', (size_t)(aend - hb));
        if (!he || he == hb + 1) {
            *why = "has a malformed IPv6 address";
            return NULL;
        }
        for (const char *q = hb + 1; q < he; q++)
            if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') || (*q >= 'A' && *q <= 'F') ||
                  *q == ':' || *q == '.')) {
                *why = "has a malformed IPv6 address";
                return NULL;
            }
        he++;
        if (he < aend && *he != ':') {
            *why = "has a malformed IPv6 address";
            return NULL;
        }
        if (he < aend)
            colon = he;
    } else {
        colon = memchr(hb, ':', (size_t)(aend - hb));
        he = colon ? colon : aend;
        if (he == hb) {
            *why = "has no host name";
            return NULL;
        }
        for (const char *q = hb; q < he; q++)
            if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                  *q == '-' || *q == '.')) {
                *why = "has an invalid host name";
                return NULL;
            }
    }
    if (colon) {
        char digits[8];
        size_t dn = (size_t)(aend - colon - 1);
        if (dn == 0 || dn >= sizeof digits) {
            *why = "has an invalid port";
            return NULL;
        }
        memcpy(digits, colon + 1, dn);
        digits[dn] = '\0';
        if (parse_int(digits, 1, 65535, &port) != 0) {
            *why = "has an invalid port";
            return NULL;
        }
    }
    hn = (size_t)(he - hb);
    out = malloc(strlen(scheme) + 3 + hn + 8);
    if (!out) {
        *why = "out of memory";
        return NULL;
    }
    i = (size_t)sprintf(out, "%s://", scheme);
    for (size_t j = 0; j < hn; j++)
        out[i + j] = (char)((hb[j] >= 'A' && hb[j] <= 'Z') ? hb[j] + 32 : hb[j]);
    out[i + hn] = '\0';
    if (strcmp(scheme, "http") == 0 && !lb_host_is_loopback(out + i)) {
        free(out);
        *why = "expected an https:// URL (plain http:// only for loopback hosts: localhost, 127.x.x.x, [::1])";
        return NULL;
    }
    if (colon)
        sprintf(out + i + hn, ":%lld", port);
    return out;
}

/* ------------------------------------------------------------------------------------------
 * The profile of the Databricks config file
 * ---------------------------------------------------------------------------------------- */

/* errno value read_file sets for a FIFO (reported in words: strerror has nothing apt). */
#define EFTYPE_NOT_REGULAR EINVAL

/* Reads the whole file (at most MAX_PROFILE_FILE). Returns malloc'd text or NULL with errno set
 * (EFBIG when too large). */
static char *read_file(const char *path, size_t *len)
{
    lb_buf b;
    struct stat st;
    FILE *f;
    int e = 0;
    /* O_NONBLOCK: a FIFO or device named as the config file must not hang the caller. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0) {
        e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    if (S_ISDIR(st.st_mode) || S_ISFIFO(st.st_mode)) {
        close(fd);
        errno = S_ISDIR(st.st_mode) ? EISDIR : EFTYPE_NOT_REGULAR;
        return NULL;
    }
    if (!(f = fdopen(fd, "rb"))) {
        e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    lb_buf_init(&b);
    for (;;) {
        size_t got;
        if (b.len >= MAX_PROFILE_FILE) {
            e = EFBIG;
            break;
        }
        if (lb_buf_reserve(&b, 4096) != 0) {
            e = ENOMEM;
            break;
        }
        got = fread(b.data + b.len, 1, b.cap - b.len - 1, f);
        b.len += got;
        b.data[b.len] = '\0';
        if (got == 0) {
            if (ferror(f))
                e = errno ? errno : EIO;
            break;
        }
    }
    fclose(f);
    if (e) {
        lb_buf_wipe(&b); /* the file holds tokens and client secrets */
        errno = e;
        return NULL;
    }
    *len = b.len;
    return lb_buf_take(&b);
}

static const char *getenv_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL; /* an empty variable counts as unset, as in most shells' intent */
}

/* The Databricks config file, resolved as the Databricks SDKs do (databricks-sdk-go config/
 * config_file.go):
 * - it is not read at all when no profile is named and any auth setting or the workspace host is
 *   already set (so DATABRICKS_HOST of workspace A never meets a token of [DEFAULT] for B);
 * - the profile is `profile` / DATABRICKS_CONFIG_PROFILE, else [__settings__] default_profile,
 *   else [DEFAULT] (which may then be missing);
 * - DATABRICKS_CONFIG_FILE moves the file; a leading ~ is the home folder.
 * Fills r[] for the profile keys that options and env left empty, and *used (malloc'd) with the
 * name of the profile the values came from. */
static void load_profile(problems *pr, resolved *r, lb_profile *prof, char **path_out,
                         char **used)
{
    char chosen[129];
    const char *name = r[O_PROFILE].value;
    const char *file = getenv_set("DATABRICKS_CONFIG_FILE");
    const char *home = getenv_set("HOME");
    int configured = r[O_PASSWORD].value || r[O_TOKEN].value || r[O_CLIENT_ID].value ||
                     r[O_CLIENT_SECRET].value || r[O_DATABRICKS_HOST].value;
    int fallback = 0;
    char *path, *text, errbuf[128];
    size_t len = 0;

    *used = NULL;
    if (!name && configured)
        return;
    if (name && strcmp(name, "__settings__") == 0) {
        add_line(pr, "DATABRICKS_CONFIG_PROFILE (profile): __settings__ is a reserved section name, "
                     "not a profile");
        return;
    }
    if (file && file[0] == '~' && (file[1] == '/' || !file[1]) && home) {
        path = malloc(strlen(home) + strlen(file) + 1);
        if (path)
            sprintf(path, "%s%s", home, file + 1);
    } else if (file) {
        path = strdup(file);
    } else if (home) {
        path = malloc(strlen(home) + 20);
        if (path)
            sprintf(path, "%s/.databrickscfg", home);
    } else {
        if (name)
            add_line(pr, "DATABRICKS_CONFIG_PROFILE (profile): profile [%.128s] is set but HOME is "
                         "not (set DATABRICKS_CONFIG_FILE)", name);
        return;
    }
    if (!path) {
        pr->oom = 1;
        return;
    }
    *path_out = path;
    text = read_file(path, &len);
    if (!text) {
        int e = errno;
        /* Without an explicit profile, a missing default file is the normal case. */
        if (name || (file && e != ENOENT) || (!file && e != ENOENT))
            add_line(pr, "%s: cannot read the Databricks config file %.512s: %s",
                     name ? "DATABRICKS_CONFIG_PROFILE" : (file ? "DATABRICKS_CONFIG_FILE" : "HOME"),
                     path, e == EFBIG ? "larger than 1 MiB" : e == EFTYPE_NOT_REGULAR ? "a FIFO, not a file" : strerror(e));
        return;
    }
    if (!name) { /* [__settings__] default_profile, as `databricks auth switch` writes it */
        if (lb_profile_parse(text, len, "__settings__", prof, errbuf, sizeof errbuf) == 0 &&
            prof->found && prof->default_profile && prof->default_profile[0] &&
            strcmp(prof->default_profile, "__settings__") != 0) {
            snprintf(chosen, sizeof chosen, "%s", prof->default_profile);
            name = chosen;
        } else {
            name = "DEFAULT";
            fallback = 1;
        }
        lb_profile_clear(prof);
    }
    if (lb_profile_parse(text, len, name, prof, errbuf, sizeof errbuf) != 0) {
        add_line(pr, "%s: the Databricks config file %.512s is malformed: %s",
                 file ? "DATABRICKS_CONFIG_FILE" : "DATABRICKS_CONFIG_PROFILE", path, errbuf);
    } else if (!prof->found) {
        if (!fallback)
            add_line(pr, "DATABRICKS_CONFIG_PROFILE: no profile [%.128s] in %.512s", name, path);
    } else {
        static const int keys[5] = {O_DATABRICKS_HOST, O_TOKEN, O_CLIENT_ID, O_CLIENT_SECRET, O_AUTH_TYPE};
        const char *vals[5] = {prof->host, prof->token, prof->client_id, prof->client_secret,
                               prof->auth_type};
        int i;

        if (!(*used = strdup(name)))
            pr->oom = 1;
        pr->profile_name = *used;
        for (i = 0; i < 5; i++)
            if (!r[keys[i]].value && !r[keys[i]].bad_type && vals[i] && *vals[i])
                r[keys[i]].value = vals[i], r[keys[i]].src = SRC_PROFILE;
    }
    explicit_bzero(text, len);
    free(text);
}

/* ------------------------------------------------------------------------------------------
 * Settings objects
 * ---------------------------------------------------------------------------------------- */

void lb_settings_free(lb_settings *s)
{
    if (!s)
        return;
    free(s->host);
    free(s->database);
    free(s->user);
    free(s->sslrootcert);
    free(s->endpoint);
    free(s->instance);
    free(s->databricks_host);
    lb_wipe_free(s->token);
    free(s->client_id);
    lb_wipe_free(s->client_secret);
    lb_wipe_free(s->password);
    free(s->application_name);
    free(s->profile);
    free(s->databricks_cli_path);
    free(s->read_endpoint);
    free(s->read_host);
    free(s->key);
    free(s->credential_key);
    free(s->cap_key);
    free(s);
}

static int dup_field(char **dst, const char *src)
{
    if (!src) {
        *dst = NULL;
        return 0;
    }
    *dst = strdup(src);
    return *dst ? 0 : -2; /* -2: out of memory (-1 means a reported problem) */
}

lb_settings *lb_settings_copy(const lb_settings *s)
{
    lb_settings *c;
    int bad = 0;

    if (!s || !(c = malloc(sizeof *c)))
        return NULL;
    *c = *s;
    bad |= dup_field(&c->host, s->host);
    bad |= dup_field(&c->database, s->database);
    bad |= dup_field(&c->user, s->user);
    bad |= dup_field(&c->sslrootcert, s->sslrootcert);
    bad |= dup_field(&c->endpoint, s->endpoint);
    bad |= dup_field(&c->instance, s->instance);
    bad |= dup_field(&c->databricks_host, s->databricks_host);
    bad |= dup_field(&c->token, s->token);
    bad |= dup_field(&c->client_id, s->client_id);
    bad |= dup_field(&c->client_secret, s->client_secret);
    bad |= dup_field(&c->password, s->password);
    bad |= dup_field(&c->application_name, s->application_name);
    bad |= dup_field(&c->profile, s->profile);
    bad |= dup_field(&c->databricks_cli_path, s->databricks_cli_path);
    bad |= dup_field(&c->read_endpoint, s->read_endpoint);
    bad |= dup_field(&c->read_host, s->read_host);
    bad |= dup_field(&c->key, s->key);
    bad |= dup_field(&c->credential_key, s->credential_key);
    bad |= dup_field(&c->cap_key, s->cap_key);
    if (bad) {
        lb_settings_free(c);
        return NULL;
    }
    return c;
}

const char *lb_sslmode_name(lb_sslmode m)
{
    switch (m) {
    case LB_SSL_REQUIRE: return "require";
    case LB_SSL_PREFER: return "prefer";
    case LB_SSL_DISABLE: return "disable";
    case LB_SSL_VERIFY_FULL: return "verify-full";
    case LB_SSL_VERIFY_CA: return "verify-ca";
    }
    return "?";
}

const char *lb_auth_name(lb_auth a)
{
    switch (a) {
    case LB_AUTH_PASSWORD: return "password";
    case LB_AUTH_TOKEN: return "token";
    case LB_AUTH_M2M: return "m2m";
    case LB_AUTH_CLI: return "databricks-cli";
    }
    return "?";
}

/* Netstring-style "len:value," so no two different settings can produce the same key. */
static void key_field(lb_buf *b, const char *v)
{
    if (!v)
        lb_buf_printf(b, "-,");
    else
        lb_buf_printf(b, "%zu:%s,", strlen(v), v);
}

/* Appends row o's value of s: describe's "name=value" (secrets as "(set)", unset text left out),
 * or the key's field (value only; secrets are left to the digest). */
static void put_setting(lb_buf *b, const lb_settings *s, int o, int for_key)
{
    const lb_option_info *row = &spec[o];
    const char *at = (const char *)s + row->field;
    const char *sep = b->len ? " " : "";

    if (for_key && row->secret)
        return;
    switch (row->kind) {
    case LB_OPT_NONE: /* auth_type: the auth method it and the other settings chose */
        if (for_key)
            lb_buf_printf(b, "%s,", lb_auth_name(s->auth));
        else
            lb_buf_printf(b, "%sauth=%s", sep, lb_auth_name(s->auth));
        return;
    case LB_OPT_TEXT: {
        const char *v = *(char *const *)(const void *)at;
        if (for_key)
            key_field(b, v);
        else if (v)
            lb_buf_printf(b, "%s%s=%s", sep, row->name, row->secret ? "(set)" : v);
        else if (o == O_HOST || o == O_USER) /* read from the workspace when the pool is made */
            lb_buf_printf(b, "%s%s=(from the workspace)", sep, row->name);
        return;
    }
    case LB_OPT_INT:
    case LB_OPT_BOOL: {
        int v = *(const int *)(const void *)at;
        if (for_key)
            lb_buf_printf(b, "%d,", v);
        else if (row->kind == LB_OPT_BOOL)
            lb_buf_printf(b, "%s%s=%s", sep, row->name, v ? "true" : "false");
        else
            lb_buf_printf(b, "%s%s=%d", sep, row->name, v);
        return;
    }
    case LB_OPT_NUMBER: {
        double v = *(const double *)(const void *)at;
        if (for_key)
            lb_buf_printf(b, "%.17g,", v);
        else
            lb_buf_printf(b, "%s%s=%g", sep, row->name, v);
        return;
    }
    case LB_OPT_SSLMODE:
        if (for_key)
            lb_buf_printf(b, "%s,", lb_sslmode_name(*(const lb_sslmode *)(const void *)at));
        else
            lb_buf_printf(b, "%ssslmode=%s", sep, lb_sslmode_name(*(const lb_sslmode *)(const void *)at));
        return;
    }
}

char *lb_settings_describe(const lb_settings *s)
{
    lb_buf b;
    int o;

    if (!s)
        return NULL;
    lb_buf_init(&b);
    for (o = 0; o < O_COUNT; o++)
        put_setting(&b, s, o, 0);
    return lb_buf_take(&b);
}

/* A per-process random salt, so the secret's fingerprint in the key cannot be checked against
 * guesses outside this process (keys only need to be equal within one process). */
static unsigned char salt[32];
static pthread_once_t salt_once = PTHREAD_ONCE_INIT;

static void salt_init(void)
{
    size_t got = 0;

    while (got < sizeof salt) {
        ssize_t n = getrandom(salt + got, sizeof salt - got, 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)n;
    }
    if (got < sizeof salt) {
        /* No entropy source: still distinct per process, never the secret itself. */
        unsigned long long seed = (unsigned long long)getpid() ^ (unsigned long long)(uintptr_t)&got;
        memcpy(salt, &seed, sizeof seed);
    }
}

/* A salted digest of the secret that authenticates (never the secret itself), as hex. */
static void secret_digest(const lb_settings *s, char hex[33])
{
    const char *secret = s->auth == LB_AUTH_PASSWORD ? s->password
                         : s->auth == LB_AUTH_TOKEN  ? s->token
                                                     : s->client_secret;
    unsigned char digest[32], *buf;
    size_t n = secret ? strlen(secret) : 0;
    int i;

    pthread_once(&salt_once, salt_init);
    hex[0] = '\0';
    buf = malloc(sizeof salt + 1 + n);
    if (!buf)
        return;
    memcpy(buf, salt, sizeof salt);
    buf[sizeof salt] = (unsigned char)s->auth;
    if (n)
        memcpy(buf + sizeof salt + 1, secret, n);
    lb_sha256(buf, sizeof salt + 1 + n, digest);
    explicit_bzero(buf, sizeof salt + 1 + n);
    free(buf);
    for (i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    explicit_bzero(digest, sizeof digest);
}

/* Who asks for the credential, and for what: the workspace, the endpoint and the identity (auth
 * kind, client id, secret digest). Pool size, timeouts and the like leave it unchanged, so every
 * pool of one identity shares one credential. */
static char *make_credential_key(const lb_settings *s, const char *digest)
{
    lb_buf b;

    lb_buf_init(&b);
    key_field(&b, s->databricks_host);
    key_field(&b, s->endpoint);
    key_field(&b, s->instance);
    lb_buf_printf(&b, "%s,", lb_auth_name(s->auth));
    key_field(&b, s->client_id);
    if (s->auth == LB_AUTH_CLI) { /* the identity is the CLI's login: the profile (or host) */
        key_field(&b, s->profile);
        key_field(&b, s->databricks_cli_path);
    }
    if (s->auth == LB_AUTH_PASSWORD) { /* the password is the credential: per server and role */
        key_field(&b, s->host);
        lb_buf_printf(&b, "%d,", s->port);
        key_field(&b, s->user);
    }
    lb_buf_printf(&b, "%s", digest);
    return lb_buf_take(&b);
}

/* The pools that share one process_max_connections cap (those that set one): the same workspace,
 * branch (the endpoint without its last part: a branch's primary and read-only endpoints are its
 * computes), database, user and identity. Where they connect (host, port, primary or read
 * endpoint) and how the pool is shaped (max, timeouts, application_name, the cap's value) leave it
 * unchanged, so the primary and its reader, and pools that differ only in max or timeouts, count
 * against one cap. */
static char *make_cap_key(const lb_settings *s, const char *digest)
{
    lb_buf b;
    const char *branch_end = s->endpoint ? strstr(s->endpoint, "/endpoints/") : NULL;

    lb_buf_init(&b);
    key_field(&b, s->databricks_host);
    if (branch_end)
        lb_buf_printf(&b, "%d:%.*s,", (int)(branch_end - s->endpoint),
                      (int)(branch_end - s->endpoint), s->endpoint);
    else
        key_field(&b, s->endpoint);
    key_field(&b, s->database);
    key_field(&b, s->user);
    lb_buf_printf(&b, "%s,", lb_auth_name(s->auth));
    key_field(&b, s->client_id);
    if (s->auth == LB_AUTH_CLI) {
        key_field(&b, s->profile);
        key_field(&b, s->databricks_cli_path);
    }
    lb_buf_printf(&b, "%s", digest);
    return lb_buf_take(&b);
}

/* Every setting of a pool, row by row of spec[] (a secret as the digest). */
static char *make_key(const lb_settings *s, const char *digest)
{
    lb_buf b;
    int o;

    lb_buf_init(&b);
    for (o = 0; o < O_COUNT; o++)
        put_setting(&b, s, o, 1);
    lb_buf_printf(&b, "%s", digest);
    return lb_buf_take(&b);
}

/* ------------------------------------------------------------------------------------------
 * Loading
 * ---------------------------------------------------------------------------------------- */

static int find_option(const char *name)
{
    int i;

    for (i = 0; i < O_COUNT; i++)
        if (strcmp(spec[i].name, name) == 0)
            return i;
    return -1;
}

static const char *expectation(int o)
{
    return spec[o].expect;
}

/* A row without a rule of its own: parsed by its kind within its range, stored at its field. */
static int apply_plain(problems *pr, lb_settings *s, int o, const resolved *r, const char *q)
{
    const lb_option_info *row = &spec[o];
    char *at = (char *)s + row->field;
    long long iv;
    double dv;
    int bv;

    switch (row->kind) {
    case LB_OPT_TEXT:
        return dup_field((char **)(void *)at, r->value);
    case LB_OPT_INT:
        if (parse_int(r->value, (long long)row->lo, (long long)row->hi, &iv) != 0)
            break;
        *(int *)(void *)at = (int)iv;
        return 0;
    case LB_OPT_NUMBER:
        if (parse_number(r->value, &dv) != 0 || dv < row->lo || dv > row->hi ||
            (row->lo_open && dv <= row->lo))
            break;
        *(double *)(void *)at = dv;
        return 0;
    case LB_OPT_BOOL:
        if (parse_bool(r->value, &bv) != 0) {
            add_problem(pr, o, r, "expected a boolean (true/false), got %s", q);
            return -1;
        }
        *(int *)(void *)at = bv;
        return 0;
    case LB_OPT_NONE:
    case LB_OPT_SSLMODE:
        return 0;
    }
    add_problem(pr, o, r, "expected %s, got %s", expectation(o), q);
    return -1;
}

/* Validates one present value into s. Returns 0 when fine (problems are added otherwise). */
static int apply(problems *pr, lb_settings *s, int o, const resolved *r)
{
    char q[ECHO_MAX * 4 + 16];
    const char *v = r->value;

    if (r->bad_type) {
        add_problem(pr, o, r, "expected %s, got %s", expectation(o), r->bad_type);
        return -1;
    }
    if (check_text(pr, o, r) != 0)
        return -1;
    if (!*v) {
        /* Only an option can be empty here (empty env variables count as unset). */
        add_problem(pr, o, r, spec[o].secret ? "is empty" : "must not be empty");
        return -1;
    }
    q[0] = '\0';
    if (!spec[o].secret)
        quote(q, sizeof q, v);
    if (!spec[o].custom)
        return apply_plain(pr, s, o, r, q);

    /* The rows with a rule of their own. */
    switch (o) {
    case O_HOST:
    case O_READ_HOST:
        if (strpbrk(v, " \t")) {
            add_problem(pr, o, r, "expected a host name, got %s", q);
            return -1;
        }
        return dup_field(o == O_HOST ? &s->host : &s->read_host, v);
    case O_SSLMODE: {
        static const struct { const char *n; lb_sslmode m; } modes[] = {
            {"require", LB_SSL_REQUIRE}, {"prefer", LB_SSL_PREFER}, {"disable", LB_SSL_DISABLE},
            {"verify-full", LB_SSL_VERIFY_FULL}, {"verify-ca", LB_SSL_VERIFY_CA}};
        size_t i;
        for (i = 0; i < sizeof modes / sizeof modes[0]; i++)
            if (strcmp(v, modes[i].n) == 0) {
                s->sslmode = modes[i].m;
                return 0;
            }
        add_problem(pr, o, r, "expected one of require, prefer, disable, verify-full, verify-ca, got %s", q);
        return -1;
    }
    case O_SSLROOTCERT: {
        struct stat st;
        if (stat(v, &st) != 0 || access(v, R_OK) != 0) {
            add_problem(pr, o, r, "cannot read the CA bundle %s: %s", q, strerror(errno));
            return -1;
        }
        if (S_ISDIR(st.st_mode)) {
            add_problem(pr, o, r, "expected a CA bundle file, got the directory %s", q);
            return -1;
        }
        return dup_field(&s->sslrootcert, v);
    }
    case O_ENDPOINT:
    case O_READ_ENDPOINT:
        if (!good_endpoint(v)) {
            add_problem(pr, o, r, "expected projects/<project>/branches/<branch>/endpoints/<endpoint>, got %s", q);
            return -1;
        }
        return dup_field(o == O_ENDPOINT ? &s->endpoint : &s->read_endpoint, v);
    case O_INSTANCE: {
        size_t i, n = strlen(v);
        for (i = 0; i < n; i++)
            if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
                  (v[i] >= '0' && v[i] <= '9') || v[i] == '-'))
                break;
        if (i < n || n > 63 || v[0] == '-') {
            add_problem(pr, o, r, "expected %s, got %s", expectation(o), q);
            return -1;
        }
        return dup_field(&s->instance, v);
    }
    case O_DATABRICKS_HOST: {
        const char *why = NULL;
        int no_echo = 0;
        char *norm = normalise_host(v, &why, &no_echo);
        if (!norm) {
            if (no_echo)
                add_problem(pr, o, r, "%s", why);
            else
                add_problem(pr, o, r, "%s, got %s", why, q);
            return -1;
        }
        s->databricks_host = norm;
        return 0;
    }
    case O_APPLICATION_NAME: {
        const char *p;
        /* PostgreSQL keeps 63 bytes and replaces non-ASCII with '?': refuse rather than mangle. */
        for (p = v; *p; p++)
            if ((unsigned char)*p >= 0x7f) {
                add_problem(pr, o, r, "expected printable ASCII, got %s", q);
                return -1;
            }
        if (strlen(v) > 63) {
            add_problem(pr, o, r, "is too long (%zu bytes, at most 63)", strlen(v));
            return -1;
        }
        return dup_field(&s->application_name, v);
    }
    case O_AUTH_TYPE:
        if (strcmp(v, "pat") && strcmp(v, "oauth-m2m") && strcmp(v, "databricks-cli")) {
            add_problem(pr, o, r, "expected one of pat, oauth-m2m, databricks-cli (the auth types "
                        "lakebase supports), got %s", q);
            return -1;
        }
        return 0; /* decided in lb_settings_load, with the rest of the auth rule */
    case O_PROFILE:
        return 0; /* load_profile used it; s->profile is the profile the values came from */
    }
    return 0;
}

lb_settings *lb_settings_load(const lb_option *opts, size_t nopts, lb_error *err)
{
    resolved r[O_COUNT];
    problems pr = {0};
    lb_profile prof;
    lb_settings *s;
    char *profile_path = NULL, *profile_used = NULL;
    size_t i;
    int o, oom = 0, given_password;

    memset(r, 0, sizeof r);
    memset(&prof, 0, sizeof prof);

    /* 1. options (unknown names are problems too) */
    for (i = 0; i < nopts; i++) {
        if (!opts[i].name) {
            add_line(&pr, "options: an option without a name");
            continue;
        }
        if ((o = find_option(opts[i].name)) < 0) {
            char q[ECHO_MAX * 4 + 16];
            quote(q, sizeof q, opts[i].name);
            add_line(&pr, "unknown option %s", q);
            continue;
        }
        if (!opts[i].value && !opts[i].bad_type)
            continue;
        r[o].value = opts[i].value;
        r[o].bad_type = opts[i].bad_type;
        r[o].src = SRC_OPTION;
    }
    /* 2. environment */
    for (o = 0; o < O_COUNT; o++) {
        if (r[o].src == SRC_NONE && spec[o].env && (r[o].value = getenv_set(spec[o].env)))
            r[o].src = SRC_ENV;
    }
    /* 3. profile */
    load_profile(&pr, r, &prof, &profile_path, &profile_used);

    if (!(s = calloc(1, sizeof *s))) {
        lb_profile_clear(&prof);
        free(profile_path);
        free(profile_used);
        lb_buf_free(&pr.text);
        lb_error_set(err, LB_ERR_CONFIG, 0, "out of memory");
        return NULL;
    }
    s->port = 5432;
    s->sslmode = LB_SSL_REQUIRE;
    s->max = 10;
    s->idle_timeout = 30;
    s->connect_timeout = 10;
    s->acquire_timeout = 10;
    /* Below the service's limits (idle connections closed after 24 h, any after 3 days) and
     * jittered per connection (lb_pool.c), so the pool replaces its connections on its own time. */
    s->max_lifetime = 3600;
    s->prepare = 1;
    s->slow_query_ms = 1000;
    s->slow_acquire_ms = 100;
    /* A peer gone without a goodbye is noticed within ~30 s: idle 15 s, then 3 probes 5 s apart;
     * data left unacknowledged for 30 s fails the connection (tcp_user_timeout). */
    s->keepalives = 1;
    s->keepalives_idle = 15;
    s->keepalives_interval = 5;
    s->keepalives_count = 3;
    s->tcp_user_timeout = 30;

    for (o = 0; o < O_COUNT; o++)
        if (r[o].value || r[o].bad_type)
            if (apply(&pr, s, o, &r[o]) < -1)
                oom = 1;

    if (s->min_idle > s->max && !r[O_MIN_IDLE].bad_type)
        add_problem(&pr, O_MIN_IDLE, &r[O_MIN_IDLE], "is %d, more than max (%d)", s->min_idle,
                    s->max);

    /* Required settings and the auth rule, once per missing setting. With workspace auth the host
     * and the user are read from the workspace when the first pool is made (lb_settings_discover);
     * a native password makes no Databricks calls, so it needs them given. */
    given_password = r[O_PASSWORD].value || r[O_PASSWORD].bad_type;
    if (!r[O_HOST].value && !r[O_HOST].bad_type && given_password)
        add_problem(&pr, O_HOST, NULL, "required with a password (with Databricks auth it is read "
                    "from the endpoint)");
    if (!r[O_DATABASE].value && !r[O_DATABASE].bad_type && !(s->database = strdup("databricks_postgres")))
        oom = 1;
    if (!r[O_USER].value && !r[O_USER].bad_type) {
        if (s->client_id) {
            if (!(s->user = strdup(s->client_id)))
                oom = 1;
        } else if (given_password && !r[O_CLIENT_ID].value) {
            add_problem(&pr, O_USER, NULL, "required with a password (the Postgres role)");
        }
    }
    if ((r[O_ENDPOINT].value || r[O_ENDPOINT].bad_type) && (r[O_INSTANCE].value || r[O_INSTANCE].bad_type))
        add_problem(&pr, O_INSTANCE, &r[O_INSTANCE], "set only one of LAKEBASE_ENDPOINT and "
                    "LAKEBASE_INSTANCE (endpoint, instance): an endpoint of a Lakebase project, or a "
                    "provisioned instance");
    /* Lakebase's built-in pooler (hosts with "-pooler.") runs in transaction mode and accepts only
     * native Postgres password roles: an OAuth credential is refused there at login. */
    if (s->host && !given_password && strstr(s->host, "-pooler.")) {
        char direct[300];
        const char *cut = strstr(s->host, "-pooler.");
        snprintf(direct, sizeof direct, "%.*s%.200s", (int)(cut - s->host > 90 ? 90 : cut - s->host),
                 s->host, cut + 7);
        add_problem(&pr, O_HOST, &r[O_HOST], "%.100s is Lakebase's connection pooler, which accepts "
                    "only native Postgres password roles, not the OAuth credential of Databricks auth: "
                    "connect to the direct host %s (or leave PGHOST unset), or use PGPASSWORD with a "
                    "password role", s->host, direct);
    }
    /* There (with a password), prepared statements cannot work: off unless asked for. */
    if (s->host && given_password && strstr(s->host, "-pooler.") && !r[O_PREPARE].value)
        s->prepare = 0;
    if (!given_password) {
        if (!r[O_ENDPOINT].value && !r[O_ENDPOINT].bad_type && !r[O_INSTANCE].value && !r[O_INSTANCE].bad_type)
            add_problem(&pr, O_ENDPOINT, NULL,
                        "required unless password is set (projects/<project>/branches/<branch>/endpoints/<endpoint>; "
                        "or LAKEBASE_INSTANCE for a provisioned instance)");
        if (!r[O_DATABRICKS_HOST].value && !r[O_DATABRICKS_HOST].bad_type)
            add_problem(&pr, O_DATABRICKS_HOST, NULL, "required unless password is set (the workspace URL, https://...)");
    }
    /* With Databricks auth the read endpoint's host is read from the workspace (db:reader()),
     * like the primary's; a native password makes no workspace call, so it is given. */
    if (!r[O_READ_HOST].value && !r[O_READ_HOST].bad_type) {
        if ((r[O_READ_ENDPOINT].value || r[O_READ_ENDPOINT].bad_type) && given_password)
            add_problem(&pr, O_READ_HOST, NULL, "required when read_endpoint is set with a password");
        else if (!r[O_READ_ENDPOINT].value && !r[O_READ_ENDPOINT].bad_type &&
                 (r[O_READ_PORT].value || r[O_READ_PORT].bad_type))
            add_problem(&pr, O_READ_HOST, NULL, "required when read_port is set");
    }
    s->profile = profile_used; /* owned by s now */
    profile_used = NULL;
    if (r[O_PASSWORD].value || r[O_PASSWORD].bad_type) {
        s->auth = LB_AUTH_PASSWORD;
    } else if (r[O_AUTH_TYPE].value && !r[O_AUTH_TYPE].bad_type) {
        /* auth_type forces one method, as in the Databricks SDKs. */
        const char *t = r[O_AUTH_TYPE].value;
        if (strcmp(t, "pat") == 0) {
            s->auth = LB_AUTH_TOKEN;
            if (!r[O_TOKEN].value && !r[O_TOKEN].bad_type)
                add_problem(&pr, O_AUTH_TYPE, &r[O_AUTH_TYPE], "is pat, but DATABRICKS_TOKEN (token) is not set");
        } else if (strcmp(t, "oauth-m2m") == 0) {
            s->auth = LB_AUTH_M2M;
            if (!r[O_CLIENT_ID].value || !r[O_CLIENT_SECRET].value)
                add_problem(&pr, O_AUTH_TYPE, &r[O_AUTH_TYPE], "is oauth-m2m, but DATABRICKS_CLIENT_ID "
                            "and DATABRICKS_CLIENT_SECRET (client_id, client_secret) are not both set");
        } else if (strcmp(t, "databricks-cli") == 0) {
            s->auth = LB_AUTH_CLI;
        }
    } else if (r[O_TOKEN].value || r[O_TOKEN].bad_type) {
        s->auth = LB_AUTH_TOKEN;
    } else if ((r[O_CLIENT_ID].value || r[O_CLIENT_ID].bad_type) &&
               (r[O_CLIENT_SECRET].value || r[O_CLIENT_SECRET].bad_type)) {
        s->auth = LB_AUTH_M2M;
    } else if (!r[O_AUTH_TYPE].bad_type) {
        add_line(&pr, "Set DATABRICKS_TOKEN or both DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET "
                      "(options token, or client_id and client_secret), or DATABRICKS_AUTH_TYPE="
                      "databricks-cli after `databricks auth login` (the profile it writes sets it); "
                      "or PGPASSWORD/password for a native Postgres password");
    }

    lb_profile_clear(&prof);
    free(profile_path);
    free(profile_used);
    if (pr.count || pr.oom || pr.text.oom || oom) {
        if (pr.oom || pr.text.oom || oom || !pr.text.data)
            lb_error_set(err, LB_ERR_CONFIG, 0, "invalid settings (out of memory while checking them)");
        else
            lb_error_set(err, LB_ERR_CONFIG, 0, "invalid settings (%d problem%s):%s", pr.count,
                         pr.count == 1 ? "" : "s", pr.text.data);
        lb_buf_free(&pr.text);
        lb_settings_free(s);
        return NULL;
    }
    lb_buf_free(&pr.text);
    if (s->auth == LB_AUTH_PASSWORD || s->auth == LB_AUTH_CLI) {
        /* A password makes no Databricks calls at all, and databricks-cli auth uses the CLI's
         * token only: drop workspace secrets the pool would never use. */
        lb_wipe_free(s->token);
        lb_wipe_free(s->client_secret);
        s->token = s->client_secret = NULL;
    } else if (s->auth == LB_AUTH_TOKEN) {
        lb_wipe_free(s->client_secret); /* token wins over M2M */
        s->client_secret = NULL;
    }
    {
        char digest[33];
        secret_digest(s, digest);
        s->key = make_key(s, digest);
        s->credential_key = s->key ? make_credential_key(s, digest) : NULL;
        s->cap_key = s->credential_key ? make_cap_key(s, digest) : NULL;
        explicit_bzero(digest, sizeof digest);
    }
    if (!s->key || !s->credential_key || !s->cap_key) {
        lb_settings_free(s);
        lb_error_set(err, LB_ERR_CONFIG, 0, "out of memory");
        return NULL;
    }
    return s;
}
