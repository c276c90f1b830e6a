/* ~/.databrickscfg: the INI dialect of Python's configparser, as the Databricks SDKs read it.
 * Only the keys lakebase uses are kept (host, token, client_id, client_secret, auth_type, and
 * default_profile of [__settings__]). Error
 * messages carry line numbers, never file content: the file holds tokens. */
#include "lakebase.h"
#include "lb_buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lb_profile_clear(lb_profile *p)
{
    if (!p)
        return;
    lb_wipe_free(p->host);
    lb_wipe_free(p->token);
    lb_wipe_free(p->client_id);
    lb_wipe_free(p->client_secret);
    free(p->auth_type);
    free(p->default_profile);
    memset(p, 0, sizeof *p);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Trims [*b, *e) in place (pointer moves only). */
static void trim(const char **b, const char **e)
{
    while (*b < *e && is_space(**b))
        (*b)++;
    while (*e > *b && is_space((*e)[-1]))
        (*e)--;
}

static char *dup_range(const char *b, const char *e)
{
    size_t n = (size_t)(e - b);
    char *s = malloc(n + 1);

    if (s) {
        memcpy(s, b, n);
        s[n] = '\0';
    }
    return s;
}

/* The slot for a key (case-insensitive, as configparser lowercases keys), NULL if not ours. */
static char **slot_for(lb_profile *p, const char *b, const char *e)
{
    static const char *const names[] = {"host", "token", "client_id", "client_secret", "auth_type",
                                        "default_profile"};
    char **slots[] = {&p->host, &p->token, &p->client_id, &p->client_secret, &p->auth_type,
                      &p->default_profile};
    size_t n = (size_t)(e - b), i;

    for (i = 0; i < 6; i++)
        if (strlen(names[i]) == n && strncasecmp(names[i], b, n) == 0)
            return slots[i];
    return NULL;
}

/* Appends "\n" + [b, e) to *slot (a continuation line). */
static int append_line(char **slot, const char *b, const char *e)
{
    size_t old = strlen(*slot), n = (size_t)(e - b);
    char *s = malloc(old + 1 + n + 1);

    if (!s)
        return -1;
    memcpy(s, *slot, old);
    s[old] = '\n';
    memcpy(s + old + 1, b, n);
    s[old + 1 + n] = '\0';
    lb_wipe_free(*slot);
    *slot = s;
    return 0;
}

static int fail(lb_profile *out, char *errbuf, size_t errlen, const char *fmt, size_t line)
{
    lb_profile_clear(out);
    if (errbuf && errlen)
        snprintf(errbuf, errlen, fmt, line);
    return -1;
}

int lb_profile_parse(const char *text, size_t len, const char *section, lb_profile *out,
                     char *errbuf, size_t errlen)
{
    const char *p = text, *end = text ? text + len : NULL; /* no arithmetic on NULL */
    size_t lineno = 0;
    int in_wanted = 0;       /* inside the requested section */
    int in_section = 0;      /* inside any section */
    char **last = NULL;      /* slot of the previous key in the wanted section (continuations) */
    int last_key = 0;        /* the previous line was a key (of any section) */

    memset(out, 0, sizeof *out);
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!text)
        return 0;
    /* A UTF-8 byte order mark, as Windows editors write it. */
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end, *b = p, *e = le;
        int indented = p < le && is_space(*p) && *p != '\r';

        lineno++;
        p = nl ? nl + 1 : end;
        if (memchr(b, '\0', (size_t)(e - b)))
            return fail(out, errbuf, errlen, "line %zu: contains a NUL byte", lineno);
        trim(&b, &e);
        if (b == e || *b == '#' || *b == ';') {
            /* configparser ends a multi-line value at an empty line. */
            if (b == e)
                last_key = 0, last = NULL;
            continue;
        }
        if (indented && last_key) {
            if (last && append_line(last, b, e) != 0)
                return fail(out, errbuf, errlen, "line %zu: out of memory", lineno);
            continue;
        }
        if (*b == '[') {
            const char *close = e - 1;

            if (*close != ']' || close == b + 1)
                return fail(out, errbuf, errlen, "line %zu: malformed section header", lineno);
            in_section = 1;
            last = NULL, last_key = 0;
            if ((size_t)(close - b - 1) == 7 && memcmp(b + 1, "DEFAULT", 7) == 0)
                out->has_default = 1;
            in_wanted = section && strlen(section) == (size_t)(close - b - 1) &&
                        memcmp(b + 1, section, (size_t)(close - b - 1)) == 0;
            if (in_wanted)
                out->found = 1;
            continue;
        }
        {
            const char *sep = b, *kb = b, *ke, *vb, *ve = e;
            char **slot;

            while (sep < e && *sep != '=' && *sep != ':')
                sep++;
            if (sep == e || sep == b)
                return fail(out, errbuf, errlen, "line %zu: expected `key = value`", lineno);
            if (!in_section)
                return fail(out, errbuf, errlen, "line %zu: key outside of a [section]", lineno);
            ke = sep;
            vb = sep + 1;
            trim(&kb, &ke);
            trim(&vb, &ve);
            last_key = 1;
            last = NULL;
            if (!in_wanted || !(slot = slot_for(out, kb, ke)))
                continue;
            lb_wipe_free(*slot); /* a repeated key: the last one wins */
            if (!(*slot = dup_range(vb, ve)))
                return fail(out, errbuf, errlen, "line %zu: out of memory", lineno);
            last = slot;
        }
    }
    return 0;
}
