/* bytea text forms: the hex format ("\x" + two hex digits per byte, PostgreSQL's default
 * output) and the older escape format (\\, \ooo octal, other bytes as they are). */
#include "lb_decode.h"

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Reads ahead of where it writes (two input bytes per output byte), so out may equal s. */
static long decode_hex(const char *s, size_t len, char *out)
{
    size_t i = 0, o = 0;
    while (i < len) {
        int hi, lo;
        if (is_space(s[i])) { /* the server accepts white space between pairs */
            i++;
            continue;
        }
        if (i + 1 >= len)
            return -1;
        hi = hexval((unsigned char)s[i]);
        lo = hexval((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[o++] = (char)(hi << 4 | lo);
        i += 2;
    }
    return (long)o;
}

static int is_octal(char c)
{
    return c >= '0' && c <= '7';
}

static long decode_escape(const char *s, size_t len, char *out)
{
    size_t i = 0, o = 0;
    while (i < len) {
        if (s[i] != '\\') {
            out[o++] = s[i++];
        } else if (i + 1 < len && s[i + 1] == '\\') {
            out[o++] = '\\';
            i += 2;
        } else if (i + 3 < len && s[i + 1] >= '0' && s[i + 1] <= '3' && is_octal(s[i + 2]) &&
                   is_octal(s[i + 3])) {
            out[o++] = (char)((s[i + 1] - '0') << 6 | (s[i + 2] - '0') << 3 | (s[i + 3] - '0'));
            i += 4;
        } else {
            return -1;
        }
    }
    return (long)o;
}

long lb_bytea_decode(const char *s, size_t len, char *out)
{
    if (len >= 2 && s[0] == '\\' && s[1] == 'x')
        return decode_hex(s + 2, len - 2, out);
    return decode_escape(s, len, out);
}
