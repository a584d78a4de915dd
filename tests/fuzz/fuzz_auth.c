/* libFuzzer target: caller authentication (rl_auth_caller) and the
 * bearer reader (rl_auth_bearer_key) on arbitrary requests. The first
 * byte picks the mode (hmac or bearer); the rest is the request:
 * "METHOD\nTARGET\n", then header lines "Name: value\n" up to an empty
 * line, then the body. Two callers are configured, one suspended, with
 * known secrets, so the dictionary's signatures can get far. Checks: a
 * success names a caller that is not suspended; a failure has a status
 * and code from the error table and a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "errors.h"

#define FUZZ_HEADERS 64
#define FUZZ_NOW 1700000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next line of [*p, end) (without its LF); NULL at the end. */
static const char *next_line(const char **p, const char *end, size_t *len)
{
    const char *s = *p, *nl;

    if (s >= end) {
        return NULL;
    }
    nl = memchr(s, '\n', (size_t)(end - s));
    *len = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);
    *p = nl != NULL ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char secret[] = "fuzz-secret-0123456789";
    rl_principal_t callers[2];
    rl_conf_auth_t auth;
    rl_header_t headers[FUZZ_HEADERS];
    rl_auth_input_t in;
    rl_auth_error_t err;
    const rl_principal_t *caller = NULL;
    char *copy, key_hex[65];
    const char *p, *end, *line;
    size_t len;
    int n = 0, rc;

    if (size < 1) {
        return 0;
    }
    memset(callers, 0, sizeof(callers));
    callers[0].id = "gw";
    callers[1].id = "old";
    callers[1].suspended = 1;
    for (n = 0; n < 2; n++) {
        callers[n].secret = secret;
        callers[n].secret_len = sizeof(secret) - 1;
        /* SHA-256 of "fuzz-key" */
        memcpy(
            callers[n].key_sha256,
            "231e9b2f757db8d48ecd0711b60135e1cc57a3a807be9dc12638856f17a7872c",
            65);
    }
    memset(&auth, 0, sizeof(auth));
    auth.mode = (data[0] & 1) ? RL_AUTH_BEARER : RL_AUTH_HMAC;
    auth.callers = callers;
    auth.ncallers = 2;
    auth.max_clock_skew_s = 300;
    copy = malloc(size);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data + 1, size - 1);
    p = copy;
    end = copy + size - 1;
    memset(&in, 0, sizeof(in));
    in.method = next_line(&p, end, &in.method_len);
    in.target = next_line(&p, end, &in.target_len);
    if (in.method == NULL || in.target == NULL) {
        free(copy);
        return 0;
    }
    n = 0;
    while (n < FUZZ_HEADERS && (line = next_line(&p, end, &len)) != NULL &&
           len > 0) {
        const char *colon = memchr(line, ':', len);
        size_t nl = colon != NULL ? (size_t)(colon - line) : len;
        const char *v = colon != NULL ? colon + 1 : line + len;

        while (v < line + len && *v == ' ') {
            v++;
        }
        headers[n].name = line;
        headers[n].name_len = nl;
        headers[n].value = v;
        headers[n].value_len = (size_t)(line + len - v);
        n++;
    }
    in.headers = headers;
    in.nheaders = n;
    in.body = p;
    in.body_len = (size_t)(end - p);
    rc = rl_auth_caller(&auth, &in, FUZZ_NOW, &caller, &err);
    if (rc == 0 && (caller == NULL || caller->suspended)) {
        abort();
    }
    if (rc != 0 && (err.status != rl_error_status(err.kind) ||
                    err.code == NULL || err.message[0] == '\0')) {
        abort();
    }
    rc = rl_auth_bearer_key(headers, n, key_hex, &err);
    if ((rc == 0 && strlen(key_hex) != 64) ||
        (rc != 0 && err.status != rl_error_status(err.kind))) {
        abort();
    }
    free(copy);
    return 0;
}
