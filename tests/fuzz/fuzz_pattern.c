/* libFuzzer target: path patterns and paths. The input is a pattern, a
 * newline, then a path. The pattern is compiled; a path is matched against
 * it, checked for dot-segments and encoded as a key value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    size_t plen = nl != NULL ? (size_t)(nl - (const char *)data) : size;
    const char *path = nl != NULL ? nl + 1 : "";
    size_t path_len = nl != NULL ? size - plen - 1 : 0;
    char *pattern = malloc(plen + 1), *path_copy = malloc(path_len + 1);
    char err[160], enc[RL_KEY_VALUE_MAX + 1];
    rl_pattern_t p;
    rl_match_t m;
    int i;

    if (pattern == NULL || path_copy == NULL) {
        free(pattern);
        free(path_copy);
        return 0;
    }
    memcpy(pattern, data, plen);
    pattern[plen] = '\0';
    memcpy(path_copy, path, path_len);
    path_copy[path_len] = '\0';
    memset(&p, 0, sizeof(p));
    if (rl_pattern_compile(pattern, &p, err, sizeof(err)) == 0) {
        memset(&m, 0, sizeof(m));
        if (rl_pattern_match(&p, path_copy, path_len, &m) == 1) {
            for (i = 0; i < m.nparams; i++) {
                if (m.params[i].value < path_copy ||
                    m.params[i].value + m.params[i].len >
                        path_copy + path_len) {
                    abort();
                }
            }
        }
        rl_pattern_free(&p);
    }
    (void)rl_request_path_safe(path_copy, path_len);
    if (rl_key_encode(path_copy, path_len, enc, sizeof(enc)) != strlen(enc)) {
        abort();
    }
    free(pattern);
    free(path_copy);
    return 0;
}
