/* TAP tests for the plain-C text-form parsers: array literals and bytea. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lb_decode.h"

static int test_no = 0, failures = 0;

static void ok(int cond, const char *what)
{
    test_no++;
    if (!cond)
        failures++;
    printf("%s %d - %s\n", cond ? "ok" : "not ok", test_no, what);
}

/* Decodes a literal into "a|b|<NULL>|..." (values unescaped), or "ERROR". */
static void render_array(const char *lit, char *out, size_t outsz)
{
    lb_pgarray a;
    lb_pgarray_elem e;
    int rc, first = 1;
    size_t o = 0;
    char tmp[256];
    out[0] = '\0';
    if (lb_pgarray_begin(&a, lit, strlen(lit), ',') < 0) {
        snprintf(out, outsz, "ERROR");
        return;
    }
    while ((rc = lb_pgarray_next(&a, &e)) == 1) {
        const char *v = e.p;
        size_t n = e.len;
        if (e.escaped) {
            n = lb_pgarray_unescape(&e, tmp);
            v = tmp;
        }
        o += (size_t)snprintf(out + o, outsz - o, "%s%.*s", first ? "" : "|",
                              e.null ? 6 : (int)n, e.null ? "<NULL>" : v);
        first = 0;
    }
    if (rc < 0)
        snprintf(out, outsz, "ERROR");
}

static const struct {
    const char *lit, *want;
} arrays[] = {
    {"{}", ""},
    {" { } ", ""},
    {"{1,2,3}", "1|2|3"},
    {"{1}", "1"},
    {"{NULL,null,\"NULL\",Null}", "<NULL>|<NULL>|NULL|<NULL>"},
    {"{\"a,b\",\"c\\\"d\",\"e\\\\f\",\"{g}\",\" h \"}", "a,b|c\"d|e\\f|{g}| h "},
    {"{\"\"}", ""},
    {"{ a , b c ,d}", "a|b c|d"},
    {"{a\\,b,c\\ }", "a,b|c "},
    {"{\"2026-01-01 00:00:00+00\",\"x\"}", "2026-01-01 00:00:00+00|x"},
    {"[0:2]={7,8,9}", "7|8|9"},
    {"[-1:0]={7,8}", "7|8"},
    {"{t,f}", "t|f"},
    {"{\"\\\\x00ff\"}", "\\x00ff"},
    {"{NULLx,xNULL}", "NULLx|xNULL"},
    /* malformed or more than one dimension */
    {"{{1,2},{3,4}}", "ERROR"},
    {"[1:2][1:2]={{1,2},{3,4}}", "ERROR"},
    {"", "ERROR"},
    {"{", "ERROR"},
    {"{1,2", "ERROR"},
    {"{1,}", "ERROR"},
    {"{,1}", "ERROR"},
    {"{a,,b}", "ERROR"},
    {"{\"abc}", "ERROR"},
    {"{\"a\"b}", "ERROR"},
    {"{a\"b\"}", "ERROR"},
    {"{1} x", "ERROR"},
    {"{} x", "ERROR"},
    {"1,2", "ERROR"},
    {"{a\\", "ERROR"},
    {"{\"a\\", "ERROR"},
    {"[1:2={1}", "ERROR"},
    {"[]={1}", "ERROR"},
    {"[1:2]{1}", "ERROR"},
    {"{a}}", "ERROR"},
};

static void test_arrays(void)
{
    size_t i;
    char got[512], what[600];
    for (i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        render_array(arrays[i].lit, got, sizeof got);
        snprintf(what, sizeof what, "array literal '%s' -> '%s'", arrays[i].lit, arrays[i].want);
        ok(strcmp(got, arrays[i].want) == 0, what);
        if (strcmp(got, arrays[i].want) != 0)
            printf("# got '%s'\n", got);
    }
}

/* Every strict prefix of a valid literal is malformed, and reading it stays inside its bytes
 * (the copy is exactly that long, so a read past its end would show under ASan). */
static void test_array_truncations(void)
{
    const char *lit = "{\"a\\\"b\",NULL,c,\"d,e\"}";
    size_t n, len = strlen(lit);
    int all = 1;
    for (n = 0; n < len; n++) {
        char *copy = malloc(n ? n : 1);
        lb_pgarray a;
        lb_pgarray_elem e;
        int rc = 0;
        memcpy(copy, lit, n);
        if (lb_pgarray_begin(&a, copy, n, ',') == 0)
            while ((rc = lb_pgarray_next(&a, &e)) == 1)
                ;
        else
            rc = -1;
        if (rc != -1)
            all = 0;
        free(copy);
    }
    ok(all, "every truncation of a literal is reported malformed");
}

static void test_array_delim(void)
{
    lb_pgarray a;
    lb_pgarray_elem e;
    const char *lit = "{(1,2),(3,4);(5,6),(7,8)}";
    int n = 0;
    ok(lb_pgarray_begin(&a, lit, strlen(lit), ';') == 0, "begin with ';' delimiter");
    while (lb_pgarray_next(&a, &e) == 1)
        n++;
    ok(n == 2, "';' delimiter splits box arrays in two");
}

/* What the writer produces reads back to the same values. */
static void test_array_write(void)
{
    const char *vals[] = {"", "plain", "a,b", "q\"uote", "back\\slash", "{br}", " sp ", "NULL", "\xc3\xa9"};
    size_t i, nvals = sizeof vals / sizeof vals[0];
    lb_buf b;
    lb_pgarray a;
    lb_pgarray_elem e;
    char tmp[64];
    int same = 1;
    lb_buf_init(&b);
    lb_buf_putc(&b, '{');
    for (i = 0; i < nvals; i++) {
        if (i)
            lb_buf_putc(&b, ',');
        lb_pgarray_append_quoted(&b, vals[i], strlen(vals[i]));
    }
    lb_buf_putc(&b, '}');
    ok(strcmp(b.data, "{\"\",\"plain\",\"a,b\",\"q\\\"uote\",\"back\\\\slash\",\"{br}\",\" sp \",\"NULL\",\"\xc3\xa9\"}") == 0,
       "quoted writer escapes quotes and backslashes");
    lb_pgarray_begin(&a, b.data, b.len, ',');
    for (i = 0; i < nvals; i++) {
        size_t n;
        const char *v;
        if (lb_pgarray_next(&a, &e) != 1 || e.null) {
            same = 0;
            break;
        }
        n = e.escaped ? lb_pgarray_unescape(&e, tmp) : e.len;
        v = e.escaped ? tmp : e.p;
        if (n != strlen(vals[i]) || memcmp(v, vals[i], n) != 0)
            same = 0;
    }
    ok(same && lb_pgarray_next(&a, &e) == 0, "written literal reads back to the same values");
    lb_buf_free(&b);
    ok(b.data == NULL && b.len == 0, "lb_buf_free empties the buffer");
}

static void test_buf(void)
{
    lb_buf b;
    size_t i;
    int good = 1;
    char *taken;
    lb_buf_init(&b);
    for (i = 0; i < 100000; i++)
        if (lb_buf_putc(&b, (char)('a' + i % 26)) < 0)
            good = 0;
    ok(good && b.len == 100000 && b.data[100000] == '\0' && b.data[99999] == 'a' + 99999 % 26,
       "lb_buf grows to 100000 bytes, NUL-terminated");
    taken = lb_buf_take(&b);
    ok(taken != NULL && b.data == NULL && b.len == 0, "lb_buf_take hands the data over");
    free(taken);
    ok(lb_buf_reserve(&b, (size_t)-1) == -1, "lb_buf_reserve refuses an impossible size");
    lb_buf_free(&b);
}

static const struct {
    const char *in;
    size_t inlen;
    const char *want;
    long wantlen; /* -1: malformed */
} byteas[] = {
    {"\\x", 2, "", 0},
    {"\\x00", 4, "\0", 1},
    {"\\x0001ff7F", 10, "\0\1\xff\x7f", 4},
    {"\\x6c 61\n6b", 10, "lak", 3},
    {"\\xABCDEF", 8, "\xab\xcd\xef", 3},
    {"\\x0", 3, NULL, -1},
    {"\\x0g", 4, NULL, -1},
    {"\\xzz", 4, NULL, -1},
    {"\\x012", 5, NULL, -1},
    {"", 0, "", 0},
    {"abc", 3, "abc", 3},
    {"a\\\\b", 4, "a\\b", 3},
    {"\\000\\377x", 9, "\0\xffx", 3},
    {"\\", 1, NULL, -1},
    {"\\4", 2, NULL, -1},
    {"\\400", 4, NULL, -1},
    {"\\08", 3, NULL, -1},
    {"\\00", 3, NULL, -1},
};

static void test_bytea(void)
{
    size_t i;
    char out[64], what[128];
    for (i = 0; i < sizeof byteas / sizeof byteas[0]; i++) {
        long n = lb_bytea_decode(byteas[i].in, byteas[i].inlen, out);
        int good = n == byteas[i].wantlen &&
                   (n < 0 || memcmp(out, byteas[i].want, (size_t)n) == 0);
        snprintf(what, sizeof what, "bytea case %zu (%zu input bytes) -> %ld", i + 1,
                 byteas[i].inlen, byteas[i].wantlen);
        ok(good, what);
    }
}

static void test_bytea_in_place(void)
{
    char s[] = "\\x68656c6c6f00ff";
    long n = lb_bytea_decode(s, strlen(s), s);
    ok(n == 7 && memcmp(s, "hello\0\xff", 7) == 0, "bytea hex decodes in place");
}

/* All 256 byte values encoded in hex decode back exactly. */
static void test_bytea_all_bytes(void)
{
    char hex[2 + 512 + 1], out[512];
    int i, good = 1;
    long n;
    hex[0] = '\\';
    hex[1] = 'x';
    for (i = 0; i < 256; i++)
        sprintf(hex + 2 + 2 * i, "%02x", i);
    n = lb_bytea_decode(hex, 2 + 512, out);
    for (i = 0; i < 256 && n == 256; i++)
        if ((unsigned char)out[i] != i)
            good = 0;
    ok(n == 256 && good, "all 256 byte values decode from hex");
}

int main(void)
{
    test_arrays();
    test_array_truncations();
    test_array_delim();
    test_array_write();
    test_buf();
    test_bytea();
    test_bytea_in_place();
    test_bytea_all_bytes();
    printf("1..%d\n", test_no);
    return failures ? 1 : 0;
}
