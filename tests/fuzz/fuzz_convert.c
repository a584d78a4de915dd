/* libFuzzer target: envoyproxy/ratelimit YAML -> ratelimitd JSON. The
 * input is up to four files separated by NUL bytes. A conversion either
 * fails with "fN.yaml:LINE: problem" naming one of the files, or prints
 * JSON that parses, with a "policies" array whose names are unique, 1-64
 * characters of A-Z a-z 0-9 _ . -. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "convert_envoy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts unless err is "fN.yaml:LINE: ..." with N < nfiles, LINE >= 1. */
static void check_error(const char *err, int nfiles)
{
    unsigned n = 0, line = 0;
    int used = 0;

    if (sscanf(err, "f%u.yaml:%u: %n", &n, &line, &used) != 2 || used == 0 ||
        (int)n >= nfiles || line < 1) {
        fprintf(stderr, "bad error line: %s\n", err);
        abort();
    }
}

/* Aborts unless json is {"policies": [...]} with valid, unique names. */
static void check_json(const char *text)
{
    json_t *root = json_loads(text, 0, NULL);
    json_t *ps = json_object_get(root, "policies"), *p, *q;
    size_t i, j;

    if (!json_is_array(ps)) {
        abort();
    }
    json_array_foreach(ps, i, p)
    {
        const char *name = json_string_value(json_object_get(p, "name"));
        size_t len = name != NULL ? strlen(name) : 0;

        if (len < 1 || len > 64 ||
            strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                         "0123456789_.-") != len ||
            !json_is_array(json_object_get(p, "limits"))) {
            abort();
        }
        for (j = 0; j < i; j++) {
            q = json_array_get(ps, j);
            if (strcmp(json_string_value(json_object_get(q, "name")), name) ==
                0) {
                abort();
            }
        }
    }
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_convert_t *cv = rl_convert_new();
    const char *p = (const char *)data, *end = p + size;
    char name[16], err[512];
    char *out = NULL;
    int nfiles = 0, rc = 0;

    while (cv != NULL && rc == 0 && nfiles < 4) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        size_t len = nul != NULL ? (size_t)(nul - p) : (size_t)(end - p);

        snprintf(name, sizeof(name), "f%d.yaml", nfiles++);
        rc = rl_convert_add(cv, name, p, len, err, sizeof(err));
        if (nul == NULL) {
            break;
        }
        p = nul + 1;
    }
    if (cv != NULL && rc == 0) {
        out = rl_convert_json(cv, err, sizeof(err));
        if (out != NULL) {
            check_json(out);
        }
    }
    if (cv != NULL && out == NULL && strcmp(err, "out of memory") != 0) {
        check_error(err, nfiles);
    }
    free(out);
    rl_convert_free(cv);
    return 0;
}
