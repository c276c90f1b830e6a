/* Settings (lb_config.c, lb_profile.c, lb_sha256.c): every rule of SPEC §2, precedence, the
 * profile file, all-at-once reporting, secrets never in messages. TAP output. */
#include "lakebase.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int test_no = 0, failures = 0;

static void ok(int cond, const char *name)
{
    test_no++;
    if (!cond)
        failures++;
    printf("%sok %d - %s\n", cond ? "" : "not ", test_no, name);
    fflush(stdout);
}

static const char *const env_names[] = {
    "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGSSLMODE", "PGSSLROOTCERT", "LAKEBASE_ENDPOINT",
    "DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET",
    "PGPASSWORD", "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CONFIG_FILE", NULL};

static char tmpdir[256];

static void clean_env(void)
{
    int i;
    for (i = 0; env_names[i]; i++)
        unsetenv(env_names[i]);
    setenv("HOME", tmpdir, 1); /* no ~/.databrickscfg unless a test writes one */
}

#define MAXOPT 32
typedef struct opts {
    lb_option o[MAXOPT];
    size_t n;
} opts;

static void put(opts *o, const char *name, const char *value)
{
    o->o[o->n].name = name;
    o->o[o->n].value = value;
    o->o[o->n].bad_type = NULL;
    o->n++;
}

/* A complete, valid set: token auth against a Lakebase endpoint. */
static void base(opts *o)
{
    o->n = 0;
    put(o, "host", "db.example.com");
    put(o, "database", "app");
    put(o, "user", "svc");
    put(o, "endpoint", "projects/p1/branches/main/endpoints/ep-1");
    put(o, "databricks_host", "https://ws.cloud.databricks.com");
    put(o, "token", "dapiTOKENSECRET123");
}

static lb_settings *load(opts *o, lb_error *err)
{
    lb_error_clear(err);
    return lb_settings_load(o->o, o->n, err);
}

static int has(const lb_error *err, const char *needle)
{
    return err->message && strstr(err->message, needle) != NULL;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

/* A TAP diagnostic: every line of the message behind "# " (values are not printed: some are
 * binary, some secret). */
static void diag(const char *name, const char *msg)
{
    printf("# option %s: ", name);
    for (; msg && *msg; msg++) {
        putchar(*msg);
        if (*msg == '\n')
            fputs("#   ", stdout);
    }
    if (!msg)
        fputs("(loaded)", stdout);
    putchar('\n');
}

/* Loads base() with one option replaced; returns 1 when it loads. */
static int accepts(const char *name, const char *value)
{
    opts o;
    lb_error err = LB_ERROR_INIT;
    lb_settings *s;
    size_t i;
    int found = 0;

    base(&o);
    for (i = 0; i < o.n; i++)
        if (strcmp(o.o[i].name, name) == 0)
            o.o[i].value = value, found = 1;
    if (!found)
        put(&o, name, value);
    s = load(&o, &err);
    lb_settings_free(s);
    lb_error_clear(&err);
    return s != NULL;
}

/* base() with one option replaced must fail with a line containing `needle`. */
static int rejects(const char *name, const char *value, const char *needle)
{
    opts o;
    lb_error err = LB_ERROR_INIT;
    lb_settings *s;
    size_t i;
    int found = 0, good;

    base(&o);
    for (i = 0; i < o.n; i++)
        if (strcmp(o.o[i].name, name) == 0)
            o.o[i].value = value, found = 1;
    if (!found)
        put(&o, name, value);
    s = load(&o, &err);
    good = !s && err.kind == LB_ERR_CONFIG && has(&err, needle);
    if (!good)
        diag(name, err.message);
    lb_settings_free(s);
    lb_error_clear(&err);
    return good;
}

/* base() with one option replaced: 1 when the error message contains `secret`. */
static int leaks(const char *name, const char *value, const char *secret)
{
    opts o;
    lb_error err = LB_ERROR_INIT;
    lb_settings *s;
    size_t i;
    int found = 0, leaked;

    base(&o);
    for (i = 0; i < o.n; i++)
        if (strcmp(o.o[i].name, name) == 0)
            o.o[i].value = value, found = 1;
    if (!found)
        put(&o, name, value);
    s = load(&o, &err);
    leaked = has(&err, secret);
    lb_settings_free(s);
    lb_error_clear(&err);
    return leaked;
}

static char *host_of(const char *value)
{
    opts o;
    lb_error err = LB_ERROR_INIT;
    lb_settings *s;
    char *r;

    base(&o);
    o.o[4].value = value;
    s = load(&o, &err);
    r = s ? strdup(s->databricks_host) : NULL;
    lb_settings_free(s);
    lb_error_clear(&err);
    return r;
}

static int host_is(const char *value, const char *want)
{
    char *got = host_of(value);
    int good = got && strcmp(got, want) == 0;
    if (!good)
        printf("# databricks_host %s -> %s (want %s)\n", value, got ? got : "(rejected)", want);
    free(got);
    return good;
}

static void test_defaults(void)
{
    opts o;
    lb_error err = LB_ERROR_INIT;
    lb_settings *s;

    base(&o);
    s = load(&o, &err);
    ok(s != NULL, "a complete token configuration loads");
    if (!s)
        return;
    ok(s->port == 5432 && s->sslmode == LB_SSL_REQUIRE && s->max == 10 && s->idle_timeout == 30 &&
           s->connect_timeout == 10 && s->acquire_timeout == 10 && s->prepare == 1 &&
           s->max_lifetime == 3600 && s->statement_timeout == 0 && s->application_name == NULL &&
           s->sslrootcert == NULL && s->keepalives == 1 && s->keepalives_idle == 15 &&
           s->keepalives_interval == 5 && s->keepalives_count == 3 && s->tcp_user_timeout == 30,
       "defaults: port 5432, require, max 10, idle 30, connect 10, acquire 10, max_lifetime 3600, "
       "prepare on, keepalives 15/5/3, tcp_user_timeout 30");
    ok(s->auth == LB_AUTH_TOKEN, "auth is token");
    ok(s->key && !strstr(s->key, "dapiTOKENSECRET123"), "key does not hold the token");
    {
        char *d = lb_settings_describe(s);
        ok(d && strstr(d, "token=(set)") && !strstr(d, "dapiTOKENSECRET123") &&
               strstr(d, "host=db.example.com"),
           "describe shows settings, redacts the token");
        free(d);
    }
    {
        lb_settings *c = lb_settings_copy(s);
        ok(c && strcmp(c->key, s->key) == 0 && strcmp(c->token, s->token) == 0 && c->token != s->token,
           "copy is deep and keeps the key");
        lb_settings_free(c);
    }
    lb_settings_free(s);
}

static void test_port(void)
{
    ok(accepts("port", "5433") && accepts("port", "1") && accepts("port", "65535"),
       "port: \"5433\", 1 and 65535 accepted");
    ok(rejects("port", "0", "PGPORT (port): expected an integer 1-65535, got \"0\"") &&
           rejects("port", "65536", "got \"65536\"") && rejects("port", "abc", "got \"abc\"") &&
           rejects("port", "-1", "PGPORT (port)") && rejects("port", "54 32", "PGPORT") &&
           rejects("port", "5432.5", "PGPORT") && rejects("port", "0x10", "PGPORT") &&
           rejects("port", "99999999999999999999999", "PGPORT"),
       "port: 0, 65536, abc, -1, spaces, fraction, hex, overflow rejected");
}

static void test_sslmode(void)
{
    const char *modes[] = {"require", "prefer", "disable", "verify-full", "verify-ca"};
    int i, all = 1;
    for (i = 0; i < 5; i++)
        all &= accepts("sslmode", modes[i]);
    ok(all, "sslmode: require, prefer, disable, verify-full, verify-ca accepted");
    ok(rejects("sslmode", "allow", "PGSSLMODE (sslmode): expected one of require") &&
           rejects("sslmode", "REQUIRE", "PGSSLMODE"),
       "sslmode: other values rejected");
}

static void test_sslrootcert(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/ca.pem", tmpdir);
    write_file(path, "-----BEGIN CERTIFICATE-----\n");
    ok(accepts("sslrootcert", path), "sslrootcert: a readable file is accepted");
    ok(rejects("sslrootcert", "/nonexistent/ca.pem", "PGSSLROOTCERT (sslrootcert): cannot read") &&
           rejects("sslrootcert", tmpdir, "directory"),
       "sslrootcert: missing file and directory rejected");
}

static void test_endpoint(void)
{
    ok(accepts("endpoint", "projects/a-b_c.1/branches/br-2/endpoints/ep-3"), "endpoint: valid path accepted");
    ok(rejects("endpoint", "projects/p/branches/b", "LAKEBASE_ENDPOINT (endpoint): expected projects/") &&
           rejects("endpoint", "projects/p/branches/b/endpoints/", "LAKEBASE_ENDPOINT") &&
           rejects("endpoint", "projects//branches/b/endpoints/e", "LAKEBASE_ENDPOINT") &&
           rejects("endpoint", "projects/p/branches/b/endpoints/e/x", "LAKEBASE_ENDPOINT") &&
           rejects("endpoint", "projects/p/branches/../endpoints/e", "LAKEBASE_ENDPOINT") &&
           rejects("endpoint", "projects/p/branch/b/endpoints/e", "LAKEBASE_ENDPOINT") &&
           rejects("endpoint", "projects/p q/branches/b/endpoints/e", "LAKEBASE_ENDPOINT") &&
           rejects("endpoint", "/projects/p/branches/b/endpoints/e", "LAKEBASE_ENDPOINT"),
       "endpoint: short, empty ids, extra segment, '..', wrong words, spaces, leading slash rejected");
}

static void test_databricks_host(void)
{
    ok(host_is("https://ws.cloud.databricks.com/", "https://ws.cloud.databricks.com"),
       "databricks_host: trailing slash stripped");
    ok(host_is("HTTPS://WS.Cloud.Databricks.COM", "https://ws.cloud.databricks.com"),
       "databricks_host: scheme and host lowercased");
    ok(host_is("adb-123.4.azuredatabricks.net", "https://adb-123.4.azuredatabricks.net"),
       "databricks_host: a bare host name gets https://");
    ok(host_is("https://ws.example.com/?o=123#job/1", "https://ws.example.com") &&
           host_is("https://ws.example.com:8443/api/", "https://ws.example.com:8443"),
       "databricks_host: path, query and fragment dropped, port kept");
    ok(host_is("http://localhost:8080", "http://localhost:8080") &&
           host_is("http://127.0.0.1:9/", "http://127.0.0.1:9") &&
           host_is("http://127.1.2.3", "http://127.1.2.3") && host_is("http://[::1]:80", "http://[::1]:80"),
       "databricks_host: http:// allowed for localhost, 127.x, [::1]");
    ok(rejects("databricks_host", "http://ws.example.com", "DATABRICKS_HOST (databricks_host): expected an https:// URL") &&
           rejects("databricks_host", "http://127.0.0.1.evil.com", "https://") &&
           rejects("databricks_host", "http://localhost.evil.com", "https://") &&
           rejects("databricks_host", "http://[::2]", "https://"),
       "databricks_host: http:// for other hosts rejected (also look-alike loopback names)");
    ok(rejects("databricks_host", "ftp://x.com", "expected an https:// URL") &&
           rejects("databricks_host", "https://", "no host") &&
           rejects("databricks_host", "https://x.com:0", "port") &&
           rejects("databricks_host", "https://x.com:99999", "port") &&
           rejects("databricks_host", "https://x_y.com", "invalid host") &&
           rejects("databricks_host", "https://[zz]", "IPv6"),
       "databricks_host: other schemes, no host, bad port, bad host rejected");
    ok(rejects("databricks_host", "https://me:pw-SECRETPW@x.com", "user information") &&
           !leaks("databricks_host", "https://me:pw-SECRETPW@x.com", "SECRETPW"),
       "databricks_host: user:password@ rejected without echoing it");
}

static void test_numbers(void)
{
    ok(accepts("max", "1") && accepts("max", "1000") && accepts("idle_timeout", "0.5") &&
           accepts("connect_timeout", "1.5") && accepts("acquire_timeout", "3600") &&
           accepts("max_lifetime", "0") && accepts("max_lifetime", "3600") &&
           accepts("statement_timeout", "0") && accepts("statement_timeout", "2500") &&
           accepts("idle_timeout", "1e2"),
       "numbers: in-range values accepted");
    ok(rejects("max", "0", "max: expected an integer 1-1000, got \"0\"") && rejects("max", "1001", "max:") &&
           rejects("max", "2.5", "max:") && rejects("idle_timeout", "0", "idle_timeout: expected") &&
           rejects("idle_timeout", "-1", "idle_timeout:") && rejects("idle_timeout", "nan", "idle_timeout:") &&
           rejects("idle_timeout", "inf", "idle_timeout:") && rejects("connect_timeout", "3601", "connect_timeout:") &&
           rejects("acquire_timeout", "x", "acquire_timeout:") && rejects("max_lifetime", "-5", "max_lifetime:") &&
           rejects("statement_timeout", "1.5", "statement_timeout:") &&
           rejects("statement_timeout", "2147483648", "statement_timeout:") &&
           rejects("idle_timeout", "1e999", "idle_timeout:"),
       "numbers: zero, negative, NaN, Inf, too large, fractions for integers rejected");
    ok(accepts("keepalives", "false") && accepts("keepalives", "on") &&
           accepts("keepalives_idle", "1") && accepts("keepalives_idle", "7200") &&
           accepts("keepalives_interval", "2") && accepts("keepalives_count", "127") &&
           accepts("tcp_user_timeout", "0") && accepts("tcp_user_timeout", "2.5"),
       "keepalives, keepalives_idle/_interval/_count, tcp_user_timeout: in-range values accepted");
    ok(rejects("keepalives", "maybe", "keepalives: expected a boolean") &&
           rejects("keepalives_idle", "0", "keepalives_idle: expected an integer number of seconds 1-7200") &&
           rejects("keepalives_interval", "1.5", "keepalives_interval:") &&
           rejects("keepalives_count", "128", "keepalives_count: expected an integer 1-127") &&
           rejects("tcp_user_timeout", "-1", "tcp_user_timeout: expected a number of seconds 0-3600") &&
           rejects("tcp_user_timeout", "3601", "tcp_user_timeout:"),
       "keepalives, keepalives_idle/_interval/_count, tcp_user_timeout: bad values rejected");
}

static void test_misc_options(void)
{
    opts o;
    lb_error err = LB_ERROR_INIT;
    lb_settings *s;

    base(&o);
    put(&o, "prepare", "false");
    put(&o, "application_name", "my-app");
    put(&o, "statement_timeout", "1500");
    s = load(&o, &err);
    ok(s && s->prepare == 0 && s->application_name && strcmp(s->application_name, "my-app") == 0 &&
           s->statement_timeout == 1500,
       "prepare=false, application_name, statement_timeout applied");
    lb_settings_free(s);
    ok(accepts("prepare", "on") && accepts("prepare", "0") && rejects("prepare", "maybe", "prepare: expected a boolean"),
       "prepare: boolean words");
    ok(rejects("application_name", "caf\xc3\xa9", "application_name: expected printable ASCII") &&
           rejects("application_name",
                   "0123456789012345678901234567890123456789012345678901234567890123", "at most 63"),
       "application_name: non-ASCII and > 63 bytes rejected");
    ok(rejects("bogus_option", "1", "unknown option \"bogus_option\""), "unknown option reported");
    base(&o);
    o.o[0].value = NULL;
    o.o[0].bad_type = "table";
    s = load(&o, &err);
    ok(!s && has(&err, "PGHOST (host): expected a string, got table"), "bad_type reported");
    lb_settings_free(s);
    lb_error_clear(&err);
    ok(rejects("host", "", "PGHOST (host): must not be empty") && rejects("token", "", "DATABRICKS_TOKEN (token): is empty"),
       "empty option values rejected");
}

static void test_bad_text(void)
{
    char big[5000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ok(rejects("host", "a\tb", "PGHOST (host): contains a control character (byte 0x09") &&
           rejects("database", "x\x1b[31m", "control character") && rejects("user", "u\x7f", "control character"),
       "control characters rejected");
    ok(rejects("database", "\xff\xfe", "PGDATABASE (database): is not valid UTF-8") &&
           rejects("user", "\xc0\xaf", "not valid UTF-8") && rejects("user", "\xed\xa0\x80", "not valid UTF-8") &&
           rejects("user", "ab\xe2\x82", "not valid UTF-8") && accepts("database", "caf\xc3\xa9"),
       "invalid UTF-8 (also overlong, surrogates, truncated) rejected; valid accepted");
    ok(rejects("host", big, "PGHOST (host): is too long (4999 bytes, at most 4096)"), "oversized value rejected");
    ok(rejects("token", "tok\nSECRETX", "DATABRICKS_TOKEN (token): is set but contains a control character") &&
           !leaks("token", "tok\nSECRETX", "SECRETX") &&
           rejects("password", "\xffSECRETP", "PGPASSWORD (password): is set but is not valid UTF-8") &&
           !leaks("password", "\xffSECRETP", "SECRETP") &&
           rejects("client_secret", big, "DATABRICKS_CLIENT_SECRET (client_secret): is too long"),
       "bad secrets are described without their value");
}

static void test_required_and_auth(void)
{
    opts o = {0};
    lb_error err = LB_ERROR_INIT;
    lb_settings *s;

    s = load(&o, &err);
    ok(!s && !has(&err, "PGHOST") && !has(&err, "PGDATABASE") && !has(&err, "PGUSER") &&
           has(&err, "LAKEBASE_ENDPOINT (endpoint): required unless password") &&
           has(&err, "DATABRICKS_HOST (databricks_host): required unless password") &&
           has(&err, "Set DATABRICKS_TOKEN or both DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET") &&
           has(&err, "(3 problems)") && count_lines(err.message) == 3,
       "nothing set: three problems at once, one line each (host, user, database have defaults)");
    lb_error_clear(&err);

    o.n = 0;
    put(&o, "endpoint", "projects/p/branches/b/endpoints/e");
    put(&o, "databricks_host", "https://w.example.com");
    put(&o, "token", "dapiSECRET");
    s = load(&o, &err);
    ok(s && !s->host && !s->user && strcmp(s->database, "databricks_postgres") == 0,
       "workspace auth: host and user left for discovery, database databricks_postgres");
    lb_settings_free(s);

    o.n = 0;
    put(&o, "password", "pwSECRET");
    s = load(&o, &err);
    ok(!s && has(&err, "PGHOST (host): required with a password") &&
           has(&err, "PGUSER (user): required with a password") && has(&err, "(2 problems)"),
       "password: host and user required");
    lb_error_clear(&err);

    o.n = 0;
    put(&o, "host", "h");
    put(&o, "database", "d");
    put(&o, "user", "u");
    put(&o, "password", "pwSECRET");
    s = load(&o, &err);
    ok(s && s->auth == LB_AUTH_PASSWORD && !s->endpoint && !s->databricks_host,
       "password: endpoint and databricks_host not required");
    lb_settings_free(s);

    base(&o);
    put(&o, "client_id", "cid");
    put(&o, "client_secret", "csSECRET");
    s = load(&o, &err);
    ok(s && s->auth == LB_AUTH_TOKEN && s->client_secret == NULL, "token wins over M2M");
    lb_settings_free(s);

    base(&o);
    o.o[5].name = "client_id", o.o[5].value = "cid-1";
    put(&o, "client_secret", "csSECRET");
    s = load(&o, &err);
    ok(s && s->auth == LB_AUTH_M2M && strcmp(s->client_id, "cid-1") == 0, "client_id + client_secret: M2M");
    lb_settings_free(s);

    base(&o);
    o.o[5].name = "client_id", o.o[5].value = "cid-1";
    s = load(&o, &err);
    ok(!s && has(&err, "Set DATABRICKS_TOKEN or both DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET"),
       "client_id alone: the auth message");
    lb_error_clear(&err);

    base(&o);
    o.o[2].name = "client_id", o.o[2].value = "cid-user";
    o.o[5].name = "client_secret", o.o[5].value = "csSECRET";
    s = load(&o, &err);
    ok(s && strcmp(s->user, "cid-user") == 0, "user falls back to client_id");
    lb_settings_free(s);

    base(&o);
    put(&o, "password", "pwSECRET");
    s = load(&o, &err);
    ok(s && s->auth == LB_AUTH_PASSWORD && !s->token, "password wins over token (no Databricks calls)");
    lb_settings_free(s);
}

static void test_env(void)
{
    opts o = {0};
    lb_error err = LB_ERROR_INIT;
    lb_settings *s;

    setenv("PGHOST", "env-host", 1);
    setenv("PGPORT", "6543", 1);
    setenv("PGDATABASE", "envdb", 1);
    setenv("DATABRICKS_CLIENT_ID", "env-cid", 1);
    setenv("DATABRICKS_CLIENT_SECRET", "envSECRET", 1);
    setenv("LAKEBASE_ENDPOINT", "projects/a/branches/b/endpoints/c", 1);
    setenv("DATABRICKS_HOST", "https://env.example.com/", 1);
    setenv("PGSSLMODE", "prefer", 1);
    s = load(&o, &err);
    ok(s && strcmp(s->host, "env-host") == 0 && s->port == 6543 && strcmp(s->database, "envdb") == 0 &&
           strcmp(s->user, "env-cid") == 0 && s->auth == LB_AUTH_M2M && s->sslmode == LB_SSL_PREFER &&
           strcmp(s->databricks_host, "https://env.example.com") == 0,
       "environment alone: settings, user from DATABRICKS_CLIENT_ID, M2M");
    lb_settings_free(s);

    put(&o, "host", "opt-host");
    put(&o, "port", "7000");
    s = load(&o, &err);
    ok(s && strcmp(s->host, "opt-host") == 0 && s->port == 7000 && strcmp(s->database, "envdb") == 0,
       "options override the environment");
    lb_settings_free(s);

    setenv("PGPORT", "", 1);
    o.n = 0;
    s = load(&o, &err);
    ok(s && s->port == 5432, "an empty env variable counts as unset");
    lb_settings_free(s);

    setenv("PGPORT", "bad", 1);
    setenv("PGSSLMODE", "nope", 1);
    setenv("DATABRICKS_HOST", "http://remote.example.com", 1);
    setenv("DATABRICKS_CLIENT_SECRET", "VERYSECRETVALUE\x01", 1);
    s = load(&o, &err);
    ok(!s && has(&err, "PGPORT (port): expected an integer 1-65535, got \"bad\"") &&
           has(&err, "PGSSLMODE (sslmode)") && has(&err, "DATABRICKS_HOST (databricks_host)") &&
           has(&err, "DATABRICKS_CLIENT_SECRET (client_secret): is set but contains a control character") &&
           !has(&err, "VERYSECRETVALUE") && count_lines(err.message) == 4,
       "an all-wrong environment: every bad variable named, no secret");
    lb_error_clear(&err);
    clean_env();
}

static void test_profile(void)
{
    char path[512];
    opts o = {0};
    lb_error err = LB_ERROR_INIT;
    lb_settings *s;

    snprintf(path, sizeof path, "%s/.databrickscfg", tmpdir);
    write_file(path, "; comment\n[DEFAULT]\nhost = https://default.example.com\ntoken = dapiDEFAULTSECRET\n\n"
                     "[prod]\nHOST = prod.example.com/\nclient_id = prod-cid\nclient_secret: prodSECRET\n"
                     "[other]\ntoken = dapiOTHER\n");
    setenv("PGHOST", "h", 1);
    setenv("PGDATABASE", "d", 1);
    setenv("PGUSER", "u", 1);
    setenv("LAKEBASE_ENDPOINT", "projects/a/branches/b/endpoints/c", 1);

    s = load(&o, &err);
    ok(s && s->auth == LB_AUTH_TOKEN && strcmp(s->token, "dapiDEFAULTSECRET") == 0 &&
           strcmp(s->databricks_host, "https://default.example.com") == 0,
       "profile: [DEFAULT] used when no auth is set otherwise");
    lb_settings_free(s);

    setenv("DATABRICKS_CLIENT_ID", "env-cid", 1);
    setenv("DATABRICKS_CLIENT_SECRET", "envSECRET", 1);
    setenv("DATABRICKS_HOST", "https://env.example.com", 1);
    s = load(&o, &err);
    ok(s && s->auth == LB_AUTH_M2M && !s->token, "profile: [DEFAULT] ignored when auth is set in the environment");
    lb_settings_free(s);
    unsetenv("DATABRICKS_HOST");
    s = load(&o, &err);
    ok(!s && has(&err, "DATABRICKS_HOST (databricks_host): required"),
       "profile: not even the host comes from [DEFAULT] when auth is set otherwise");
    lb_error_clear(&err);
    unsetenv("DATABRICKS_CLIENT_ID");
    unsetenv("DATABRICKS_CLIENT_SECRET");

    setenv("DATABRICKS_CONFIG_PROFILE", "prod", 1);
    s = load(&o, &err);
    ok(s && s->auth == LB_AUTH_M2M && strcmp(s->client_id, "prod-cid") == 0 &&
           strcmp(s->client_secret, "prodSECRET") == 0 && strcmp(s->databricks_host, "https://prod.example.com") == 0,
       "profile: DATABRICKS_CONFIG_PROFILE selects a section (keys case-insensitive, ':' separator)");
    lb_settings_free(s);

    setenv("DATABRICKS_HOST", "https://env.example.com", 1);
    setenv("DATABRICKS_TOKEN", "dapiENV", 1);
    s = load(&o, &err);
    ok(s && strcmp(s->databricks_host, "https://env.example.com") == 0 && s->auth == LB_AUTH_TOKEN &&
           strcmp(s->token, "dapiENV") == 0 && strcmp(s->client_id, "prod-cid") == 0,
       "profile: environment overrides the profile, the profile fills the rest");
    lb_settings_free(s);
    unsetenv("DATABRICKS_HOST");
    unsetenv("DATABRICKS_TOKEN");

    setenv("DATABRICKS_CONFIG_PROFILE", "missing", 1);
    s = load(&o, &err);
    ok(!s && has(&err, "DATABRICKS_CONFIG_PROFILE: no profile [missing] in"), "profile: unknown profile reported");
    lb_error_clear(&err);

    setenv("DATABRICKS_CONFIG_PROFILE", "prod", 1);
    setenv("DATABRICKS_CONFIG_FILE", "/nonexistent/cfg", 1);
    s = load(&o, &err);
    ok(!s && has(&err, "cannot read the Databricks config file /nonexistent/cfg"),
       "profile: DATABRICKS_CONFIG_FILE overrides the path; unreadable file reported");
    lb_error_clear(&err);

    snprintf(path, sizeof path, "%s/alt.cfg", tmpdir);
    write_file(path, "[prod]\ntoken = dapiALTSECRET\nhost = https://alt.example.com\n");
    setenv("DATABRICKS_CONFIG_FILE", path, 1);
    s = load(&o, &err);
    ok(s && strcmp(s->token, "dapiALTSECRET") == 0 && strcmp(s->databricks_host, "https://alt.example.com") == 0,
       "profile: read from DATABRICKS_CONFIG_FILE");
    lb_settings_free(s);

    write_file(path, "[prod]\ntoken = dapiALTSECRET\nthis line is junk\n");
    s = load(&o, &err);
    ok(!s && has(&err, "malformed: line 3") && !has(&err, "dapiALTSECRET") && !has(&err, "junk"),
       "profile: malformed file reported by line number, no content");
    lb_error_clear(&err);

    write_file(path, "[prod]\nhost = http://remote.example.com\ntoken = tok\n");
    s = load(&o, &err);
    ok(!s && has(&err, "DATABRICKS_HOST (databricks_host, from profile [prod]"),
       "profile: a bad profile value names the profile");
    lb_error_clear(&err);

    unsetenv("DATABRICKS_CONFIG_PROFILE");
    write_file(path, "[prod]\ntoken = dapiALTSECRET\n");
    s = load(&o, &err);
    ok(!s && has(&err, "Set DATABRICKS_TOKEN"), "profile: without [DEFAULT] and no profile variable, no profile is used");
    lb_error_clear(&err);
    clean_env();
}

static void test_key(void)
{
    opts o;
    lb_error err = LB_ERROR_INIT;
    lb_settings *a, *b, *c;

    base(&o);
    a = load(&o, &err);
    b = load(&o, &err);
    o.o[5].value = "dapiOTHERTOKEN";
    c = load(&o, &err);
    ok(a && b && c && strcmp(a->key, b->key) == 0 && strcmp(a->key, c->key) != 0,
       "key: equal settings, equal keys; another secret, another key");
    lb_settings_free(c);
    base(&o);
    o.o[0].value = "db.example.co";
    o.o[1].value = "mapp";
    c = load(&o, &err);
    ok(c && strcmp(a->key, c->key) != 0, "key: fields cannot run into each other");
    lb_settings_free(c);

    /* The credential is the workspace's, the endpoint's and the identity's: pool size and
     * timeouts make another pool but not another credential. */
    base(&o);
    put(&o, "max", "3");
    put(&o, "connect_timeout", "2");
    put(&o, "application_name", "other");
    c = load(&o, &err);
    ok(c && strcmp(a->key, c->key) != 0 && strcmp(a->credential_key, c->credential_key) == 0,
       "credential key: max, timeouts and application_name do not change it");
    lb_settings_free(c);
    base(&o);
    o.o[3].value = "projects/p1/branches/main/endpoints/ep-2";
    c = load(&o, &err);
    ok(c && strcmp(a->credential_key, c->credential_key) != 0, "credential key: another endpoint, another credential");
    lb_settings_free(c);
    base(&o);
    o.o[5].value = "dapiOTHERTOKEN";
    c = load(&o, &err);
    ok(c && strcmp(a->credential_key, c->credential_key) != 0 && !strstr(c->credential_key, "dapiOTHERTOKEN"),
       "credential key: another token, another credential; the token is not in it");
    lb_settings_free(a);
    lb_settings_free(b);
    lb_settings_free(c);
}

static void test_profile_parser(void)
{
    lb_profile p;
    char eb[128];
    const char *t1 = "\xEF\xBB\xBF# c\n[a]\nToken = one\n  two\nhost=h\r\n[b]\ntoken=x\n";

    ok(lb_profile_parse(t1, strlen(t1), "a", &p, eb, sizeof eb) == 0 && p.found && !p.has_default &&
           strcmp(p.token, "one\ntwo") == 0 && strcmp(p.host, "h") == 0,
       "profile parser: BOM, comments, continuation lines, CRLF");
    lb_profile_clear(&p);
    ok(lb_profile_parse("key = v\n", 8, "a", &p, eb, sizeof eb) == -1 && strstr(eb, "line 1"),
       "profile parser: key outside a section is an error");
    ok(lb_profile_parse("[a\n", 3, "a", &p, eb, sizeof eb) == -1 && lb_profile_parse("[]\n", 3, "a", &p, eb, sizeof eb) == -1,
       "profile parser: malformed section headers are errors");
    ok(lb_profile_parse("[a]\ntoken=1\0x\n", 14, "a", &p, eb, sizeof eb) == -1 && strstr(eb, "NUL"),
       "profile parser: NUL byte is an error");
    ok(lb_profile_parse("[DEFAULT]\n[x]\ntoken=1\ntoken=2\n", 29, "x", &p, eb, sizeof eb) == 0 && p.has_default &&
           strcmp(p.token, "2") == 0,
       "profile parser: [DEFAULT] noticed, last repeated key wins");
    lb_profile_clear(&p);
    ok(lb_profile_parse("[DEFAULT]\ntoken=d\n[x]\n", 22, "x", &p, eb, sizeof eb) == 0 && p.found && !p.token,
       "profile parser: no inheritance from [DEFAULT]");
    lb_profile_clear(&p);
}

static void hex(const unsigned char *d, char *out)
{
    int i;
    for (i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void test_sha256(void)
{
    unsigned char d[32];
    char h[65];
    char *million = malloc(1000000);

    lb_sha256("", 0, d);
    hex(d, h);
    ok(strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0, "sha256(\"\")");
    lb_sha256("abc", 3, d);
    hex(d, h);
    ok(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "sha256(\"abc\")");
    lb_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, d);
    hex(d, h);
    ok(strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0,
       "sha256(56-byte message: two padding blocks)");
    memset(million, 'a', 1000000);
    lb_sha256(million, 1000000, d);
    hex(d, h);
    ok(strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0, "sha256(a x 1e6)");
    free(million);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lb-test-config-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    clean_env();
    printf("1..75\n");
    test_defaults();
    test_port();
    test_sslmode();
    test_sslrootcert();
    test_endpoint();
    test_databricks_host();
    test_numbers();
    test_misc_options();
    test_bad_text();
    test_required_and_auth();
    test_env();
    test_profile();
    test_key();
    test_profile_parser();
    test_sha256();
    {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "# could not remove %s\n", tmpdir);
    }
    if (test_no != 75)
        printf("# planned 75, ran %d\n", test_no);
    return failures ? 1 : 0;
}
