/* The settings table (lb_options) drives validation, describe and the pool key: every row says
 * where its value is held, a row without a rule of its own has a kind and a range, and changing
 * any plain setting changes the pool key and shows in describe, while a secret shows in neither.
 * No server needed. TAP output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lakebase.h"
#include "tap.h"

/* A password configuration plus one option (name NULL: none). */
static lb_settings *load_with(const char *name, const char *value)
{
    lb_option opts[] = {
        { "host", "db.example", NULL }, { "database", "app", NULL }, { "user", "u", NULL },
        { "password", "s3cret-pw", NULL }, { "read_host", "ro.example", NULL },
        { name ? name : "port", name ? value : "5432", NULL },
    };
    lb_error err = LB_ERROR_INIT;
    lb_settings *s = lb_settings_load(opts, sizeof opts / sizeof opts[0], &err);
    if (!s) {
        printf("# %s=%s: %s\n", name ? name : "-", value ? value : "-", err.message);
        lb_error_clear(&err);
    }
    return s;
}

static void test_rows(void)
{
    int n = 0, i, no_field = 0, bad_plain = 0, overlap = 0;
    const lb_option_info *t = lb_options(&n);

    for (i = 0; i < n; i++) {
        int j;
        if (t[i].kind == LB_OPT_NONE) {
            no_field += strcmp(t[i].name, "auth_type") != 0;
            if (strcmp(t[i].name, "auth_type") != 0)
                printf("# %s: no field (kind)\n", t[i].name);
            continue;
        }
        if (!t[i].custom && (t[i].kind == LB_OPT_SSLMODE || t[i].lo > t[i].hi)) {
            bad_plain++;
            printf("# %s: a plain row needs a kind and a range\n", t[i].name);
        }
        for (j = 0; j < i; j++)
            if (t[j].kind != LB_OPT_NONE && t[j].field == t[i].field) {
                overlap++;
                printf("# %s and %s: the same field\n", t[j].name, t[i].name);
            }
    }
    ok(n > 30 && no_field == 0, "every setting but auth_type says where it is held (%d rows)", n);
    ok(bad_plain == 0, "every row without a rule of its own has a kind and a range");
    ok(overlap == 0, "no two settings share a field");
}

/* Each plain number, integer and boolean setting at another valid value: another pool key, and
 * describe shows it. */
static void test_derived(void)
{
    int n = 0, i, checked = 0, same_key = 0, undescribed = 0;
    const lb_option_info *t = lb_options(&n);
    lb_settings *base = load_with(NULL, NULL);
    char *d;

    if (!ok(base != NULL, "a base configuration loads"))
        return;
    for (i = 0; i < n; i++) {
        char value[64], shown[96];
        lb_settings *s;
        if (t[i].custom || t[i].secret || t[i].kind == LB_OPT_TEXT || t[i].kind == LB_OPT_NONE)
            continue;
        if (strcmp(t[i].name, "min_idle") == 0) /* at most max */
            snprintf(value, sizeof value, "5");
        else if (t[i].kind == LB_OPT_BOOL)
            snprintf(value, sizeof value, "%s", *(const int *)(const void *)((const char *)base + t[i].field)
                                                    ? "false" : "true");
        else
            snprintf(value, sizeof value, "%.0f", t[i].hi);
        if (!(s = load_with(t[i].name, value))) {
            same_key++;
            continue;
        }
        checked++;
        if (strcmp(s->key, base->key) == 0) {
            same_key++;
            printf("# %s=%s: the same pool key\n", t[i].name, value);
        }
        d = lb_settings_describe(s);
        snprintf(shown, sizeof shown, " %s=", t[i].name);
        if (!d || !strstr(d, shown)) {
            undescribed++;
            printf("# %s: not in describe\n", t[i].name);
        }
        free(d);
        lb_settings_free(s);
    }
    ok(checked > 15 && same_key == 0, "each of %d plain settings at another value makes another pool", checked);
    ok(undescribed == 0, "and describe shows each of them");
    d = lb_settings_describe(base);
    ok(d && strstr(d, "password=(set)") && !strstr(d, "s3cret-pw") && !strstr(base->key, "s3cret-pw") &&
           strstr(d, "host=db.example") && strstr(d, "auth=password"),
       "a secret is (set) in describe and absent from the key: %s", d ? d : "(null)");
    free(d);
    lb_settings_free(base);
}

int main(void)
{
    int n = 0, i;
    const lb_option_info *t = lb_options(&n);

    for (i = 0; i < n; i++) /* only the options given here count */
        if (t[i].env)
            unsetenv(t[i].env);
    unsetenv("DATABRICKS_CONFIG_FILE");
    test_rows();
    test_derived();
    printf("1..%d\n", test_no);
    return failures ? 1 : 0;
}
