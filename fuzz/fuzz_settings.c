/* libFuzzer: lb_settings_load over arbitrary option values. Each input line is one option: its
 * first byte picks the name (or an unknown name, or a bad Lua type), the rest is the value.
 * Invariants: no crash/leak/UB; a secret that carries '~' (no fixed message text has one) never
 * shows up in an error message or describe() unless a non-secret value also has '~'. */
#include "lakebase.h"

#include <stdlib.h>
#include <string.h>

static const char *const names[] = {
    "host", "port", "database", "user", "sslmode", "sslrootcert", "endpoint", "databricks_host",
    "token", "client_id", "client_secret", "password", "max", "idle_timeout", "connect_timeout",
    "acquire_timeout", "statement_timeout", "application_name", "max_lifetime", "prepare",
};
#define NNAMES (sizeof names / sizeof names[0])
#define MAXOPTS 40

static int is_secret(const char *name)
{
    return strcmp(name, "token") == 0 || strcmp(name, "client_secret") == 0 ||
           strcmp(name, "password") == 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const env[] = {
        "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGSSLMODE", "PGSSLROOTCERT", "LAKEBASE_ENDPOINT",
        "DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET",
        "PGPASSWORD", "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CONFIG_FILE", NULL};
    int i;
    (void)argc, (void)argv;
    for (i = 0; env[i]; i++)
        unsetenv(env[i]);
    setenv("HOME", "/nonexistent-lakebase-fuzz", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lb_option opts[MAXOPTS];
    char *copy = malloc(size + 1), *p, *line;
    size_t n = 0;
    int nonsecret_tilde = 0;
    lb_error err = LB_ERROR_INIT;
    lb_settings *s;

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0'; /* C strings: an embedded NUL simply ends that value early */
    p = copy;
    while (n < MAXOPTS && (line = strsep(&p, "\n")) != NULL) {
        unsigned char sel;
        if (!*line)
            continue;
        sel = (unsigned char)line[0];
        line++;
        if (sel % 24 < NNAMES) {
            opts[n].name = names[sel % 24];
            opts[n].value = line;
            opts[n].bad_type = NULL;
        } else if (sel % 24 == NNAMES) {
            opts[n].name = line; /* an unknown (or, by chance, known) name */
            opts[n].value = "x";
            opts[n].bad_type = NULL;
        } else {
            opts[n].name = names[sel % NNAMES];
            opts[n].value = NULL;
            opts[n].bad_type = "table";
        }
        if (!is_secret(opts[n].name) && strchr(opts[n].name, '~'))
            nonsecret_tilde = 1;
        if (!is_secret(opts[n].name) && opts[n].value && strchr(opts[n].value, '~'))
            nonsecret_tilde = 1;
        n++;
    }
    s = lb_settings_load(opts, n, &err);
    {
        char *desc = s ? lb_settings_describe(s) : NULL;
        size_t i;
        for (i = 0; i < n && !nonsecret_tilde; i++) {
            if (!is_secret(opts[i].name) || !opts[i].value || !strchr(opts[i].value, '~'))
                continue;
            if (err.message && strstr(err.message, opts[i].value))
                abort(); /* a secret in an error message */
            if (desc && strstr(desc, opts[i].value))
                abort(); /* a secret in describe() */
            if (s && s->key && strstr(s->key, opts[i].value))
                abort(); /* a secret in the key */
        }
        free(desc);
    }
    if (s) {
        lb_settings *c = lb_settings_copy(s);
        if (!c || strcmp(c->key, s->key) != 0)
            abort();
        if (s->port < 1 || s->port > 65535 || s->max < 1 || !s->host || !s->database || !s->user)
            abort(); /* a loaded settings object always passed every rule */
        lb_settings_free(c);
        lb_settings_free(s);
    } else if (err.kind != LB_ERR_CONFIG || !err.message) {
        abort();
    }
    lb_error_clear(&err);
    free(copy);
    return 0;
}
