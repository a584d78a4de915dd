/* libFuzzer target: deny-body templating (rl_reply_template, and
 * rl_reply_deny_body on a body of strings). The first 8 bytes give the
 * verdict's retry_after_ms and limit; the rest is the template, as a
 * deny body's string would hold it. Checks: a result is always made, it
 * is a NUL-terminated string no longer than the expansion can make it,
 * and text without a '{' comes back unchanged. Where the rest parses as
 * JSON, that body compiled (rl_reply_body_compile) streams the bytes the
 * jansson path dumps, plain and ENSURE_ASCII. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "decide.h"
#include "policy.h"
#include "reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts unless body, as v's policy's deny body, writes the same bytes
 * compiled as through jansson, for each flag set. */
static void check_compiled(rl_policy_t *pol, rl_verdict_t *v, json_t *body)
{
    static const size_t flags_of[] = {JSON_ENCODE_ANY,
                                      JSON_ENCODE_ANY | JSON_ENSURE_ASCII};
    json_t *b;
    size_t i;

    pol->deny_body = body;
    pol->deny_tpl = NULL;
    b = rl_reply_deny_body(v);
    pol->deny_tpl = rl_reply_body_compile(body);
    for (i = 0; b != NULL && pol->deny_tpl != NULL && i < 2; i++) {
        size_t f = flags_of[i] | JSON_COMPACT | JSON_PRESERVE_ORDER;
        char *want = json_dumps(b, f);
        size_t n = rl_reply_deny_write(v, flags_of[i], NULL, 0);
        char *got = malloc(n + 1);

        if (want != NULL && got != NULL &&
            (n != strlen(want) ||
             rl_reply_deny_write(v, flags_of[i], got, n + 1) != n ||
             memcmp(got, want, n + 1) != 0)) {
            abort();
        }
        free(want);
        free(got);
    }
    json_decref(b);
    rl_reply_body_free(pol->deny_tpl);
    pol->deny_tpl = NULL;
    pol->deny_body = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_policy_t pol;
    rl_verdict_t v;
    char *s, *out;
    json_t *body;
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
    body = json_loadb((const char *)data + 8, len,
                      JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (body == NULL) {
        body = json_stringn(s, strlen(s)); /* NULL unless UTF-8 */
    }
    if (body != NULL) {
        check_compiled(&pol, &v, body);
        json_decref(body);
    }
    free(s);
    return 0;
}
