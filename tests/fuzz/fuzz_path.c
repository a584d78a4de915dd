/* libFuzzer target: request path normalisation (path.c). The first byte
 * picks the flags, the rest is the path. Checks what docs/security.md
 * promises of a normalised path: never longer than the input plus one
 * RL_PATH_OUT_LEN, starts with "/", no empty segment, no ';', no dot
 * segment, every '%' starts an escape with upper-case digits, lower-case
 * letters outside
 * escapes with RL_PATH_LOWER, and normalising again changes nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "path.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 if c is a hex digit. */
static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

/* Aborts unless out (n bytes) is a normalised path (see above). */
static void check_normal(const char *out, size_t n, int lower)
{
    size_t i;

    if (n == 0 || out[0] != '/' || (n > 1 && out[n - 1] == '/')) {
        abort();
    }
    for (i = 0; i < n; i++) {
        if (out[i] == ';' ||
            (out[i] == '/' && i + 1 < n && out[i + 1] == '/')) {
            abort();
        }
        if (lower && out[i] >= 'A' && out[i] <= 'Z' &&
            !(i >= 1 && out[i - 1] == '%') &&
            !(i >= 2 && out[i - 2] == '%' && is_hex(out[i - 1]))) {
            abort();
        }
        if (out[i] == '%' &&
            (i + 2 >= n || !is_hex(out[i + 1]) || !is_hex(out[i + 2]) ||
             (out[i + 1] >= 'a' && out[i + 1] <= 'f') ||
             (out[i + 2] >= 'a' && out[i + 2] <= 'f'))) {
            abort();
        }
    }
    if (rl_request_path_safe(out, n) != 0) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned flags;
    const char *path;
    size_t len, n1 = 0, n2 = 0;
    char *a, *b;
    int rc;

    if (size == 0) {
        return 0;
    }
    flags = data[0] & (RL_PATH_NORMALIZE | RL_PATH_LOWER);
    path = (const char *)data + 1;
    len = size - 1;
    a = malloc(RL_PATH_OUT_LEN(len));
    b = malloc(RL_PATH_OUT_LEN(RL_PATH_OUT_LEN(len)));
    if (a == NULL || b == NULL) {
        goto done;
    }
    rc = rl_path_normalize(path, len, flags, a, &n1);
    if (n1 > RL_PATH_OUT_LEN(len)) {
        abort();
    }
    if (!(flags & RL_PATH_NORMALIZE)) {
        if (rc != 0 || n1 != len) {
            abort();
        }
        goto done;
    }
    if (rc != 0) {
        goto done;
    }
    check_normal(a, n1, (flags & RL_PATH_LOWER) != 0);
    if (rl_path_normalize(a, n1, flags, b, &n2) != 0 || n2 != n1 ||
        memcmp(a, b, n1) != 0) {
        abort();
    }

done:
    free(a);
    free(b);
    return 0;
}
