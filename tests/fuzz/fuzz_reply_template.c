/* libFuzzer target: deny-body templating (rl_reply_template, and
 * rl_reply_deny_body on a body of strings). The first 8 bytes give the
 * verdict's retry_after_ms and limit; the rest is the template, as a
 * deny body's string would hold it. Checks: a result is always made, it
 * is a NUL-terminated string no longer than the expansion can make it,
 * and text without a '{' comes back unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "decide.h"
#include "policy.h"
#include "reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_policy_t pol;
    rl_verdict_t v;
    char *s, *out;
    uint32_t a, b;
    size_t len;

    if (size < 8) {
        return 0;
    }
    memcpy(&a, data, 4);
    memcpy(&b, data + 4, 4);
    memset(&pol, 0, sizeof(pol));
    pol.name = (char *)"fuzz-policy";
    memset(&v, 0, sizeof(v));
    v.policy = &pol;
    v.retry_after_ms = (int64_t)a * ((b & 1) ? 1000 : 1);
    v.limit = (int64_t)b;
    v.remaining = 0;
    len = size - 8;
    s = malloc(len + 1);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data + 8, len);
    s[len] = '\0';
    out = rl_reply_template(s, &v);
    if (out != NULL) {
        size_t in_len = strlen(s), out_len = strlen(out);

        /* each placeholder ({x} at least 3 bytes) expands to under 64 */
        if (out_len > in_len * 22 + 64) {
            abort();
        }
        if (strchr(s, '{') == NULL && strcmp(s, out) != 0) {
            abort();
        }
        free(out);
    }
    free(s);
    return 0;
}
