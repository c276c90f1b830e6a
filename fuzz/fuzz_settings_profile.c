/* libFuzzer: lb_settings_load reading ~/.databrickscfg (DATABRICKS_CONFIG_FILE points at the
 * input, written to a scratch file). The first byte picks DATABRICKS_CONFIG_PROFILE (unset,
 * "prod", "DEFAULT") and whether auth also comes from the environment. Invariants: no
 * crash/leak/UB; a token or client secret of the file that carries '~' never appears in the
 * error message or describe() (unless host or client_id carry '~' too: those are echoed). */
#include "lakebase.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

static void remove_scratch(void)
{
    unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const env[] = {
        "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGSSLMODE", "PGSSLROOTCERT", "LAKEBASE_ENDPOINT",
        "DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET",
        "PGPASSWORD", "DATABRICKS_CONFIG_PROFILE", "HOME", NULL};
    int i;
    (void)argc, (void)argv;
    for (i = 0; env[i]; i++)
        unsetenv(env[i]);
    snprintf(path, sizeof path, "/tmp/lakebase-fuzz-profile.%ld", (long)getpid());
    setenv("DATABRICKS_CONFIG_FILE", path, 1);
    atexit(remove_scratch);
    return 0;
}

static int has_tilde(const char *s)
{
    return s && strchr(s, '~');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const lb_option base[] = {
        {"host", "h", NULL}, {"database", "d", NULL}, {"user", "u", NULL},
        {"endpoint", "projects/p/branches/b/endpoints/e", NULL},
    };
    static const char *const profiles[] = {NULL, "prod", "DEFAULT"};
    lb_error err = LB_ERROR_INIT;
    lb_settings *s;
    lb_profile p;
    FILE *f;
    char eb[128];
    const char *section;

    if (size < 1)
        return 0;
    section = profiles[data[0] % 3];
    if (section)
        setenv("DATABRICKS_CONFIG_PROFILE", section, 1);
    else
        unsetenv("DATABRICKS_CONFIG_PROFILE");
    if (data[0] & 4)
        setenv("DATABRICKS_CLIENT_ID", "env-client", 1);
    else
        unsetenv("DATABRICKS_CLIENT_ID");
    if (!(f = fopen(path, "wb")))
        return 0;
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);

    s = lb_settings_load(base, sizeof base / sizeof base[0], &err);
    if (lb_profile_parse((const char *)data + 1, size - 1, section ? section : "DEFAULT", &p, eb,
                         sizeof eb) == 0 &&
        !has_tilde(p.host) && !has_tilde(p.client_id)) {
        char *desc = s ? lb_settings_describe(s) : NULL;
        const char *secrets[2] = {p.token, p.client_secret};
        int i;
        for (i = 0; i < 2; i++) {
            if (!has_tilde(secrets[i]))
                continue;
            if ((err.message && strstr(err.message, secrets[i])) || (desc && strstr(desc, secrets[i])))
                abort(); /* a secret from the file was shown */
        }
        free(desc);
    }
    lb_profile_clear(&p);
    if (!s && (err.kind != LB_ERR_CONFIG || !err.message))
        abort();
    lb_settings_free(s);
    lb_error_clear(&err);
    return 0;
}
