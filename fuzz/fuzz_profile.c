/* libFuzzer: the ~/.databrickscfg parser. The first line of the input names the section to
 * look up; the rest is the file. Invariants: no crash/leak/UB; a parse error message never
 * quotes the file (it is "line N: ..."). */
#include "lakebase.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data, *nl = memchr(data, '\n', size);
    char section[64] = "DEFAULT", errbuf[128];
    lb_profile p;
    int rc;

    if (nl && (size_t)(nl - text) < sizeof section) {
        memcpy(section, text, (size_t)(nl - text));
        section[nl - text] = '\0';
        size -= (size_t)(nl - text) + 1;
        text = nl + 1;
    }
    rc = lb_profile_parse(text, size, section, &p, errbuf, sizeof errbuf);
    if (rc == 0) {
        if ((p.host || p.token || p.client_id || p.client_secret) && !p.found)
            abort(); /* values only come from the requested section */
    } else {
        if (rc != -1 || strncmp(errbuf, "line ", 5) != 0)
            abort();
        if (p.host || p.token || p.client_id || p.client_secret)
            abort(); /* cleared on error */
    }
    lb_profile_clear(&p);
    return 0;
}
