/* libFuzzer target: a /v1/decide body, as the server reads it. The bytes
 * go through the fast path (rl_request_from_body: when it takes a body,
 * jansson must take it too and give the same request), the JSON parser
 * with the server's flags, rl_request_from_json,
 * the dot-segment check, policy matching and key building under a fixed
 * config, and tenant signature verification. Nothing may crash, leak or
 * trip a sanitizer; every result must be one the caller can be answered
 * with. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "auth.h"
#include "conf.h"
#include "policy.h"
#include "request.h"

static const char fuzz_conf_text[] =
    "{\"tenants\": [{\"id\": \"acme-corp\", \"secret\": "
    "\"tenant-secret-0123456789\"},"
    " {\"id\": \"gone\", \"secret\": \"tenant-secret-0123456789\", \"status\": "
    "\"suspended\"}],"
    " \"policies\": ["
    "  {\"name\": \"site\", \"match\": {\"method\": \"POST\", \"path\": "
    "\"/p/v2/{site}/x/*\"},"
    "   \"key\": [\"tenant\", \"path.site\", \"header.x-key\"], "
    "\"verify_tenant\": \"hmac\","
    "   \"limits\": [{\"requests\": 1, \"per\": \"5m\"}]},"
    "  {\"name\": \"all\", \"match\": {\"path\": \"/*\"},"
    "   \"key\": [\"tenant\", \"user\", \"ip\", \"method\", \"route\", "
    "\"path\"],"
    "   \"limits\": [{\"requests\": 5, \"per\": \"1s\"}]}]}";

static rl_conf_t *fuzz_conf;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];

    fuzz_conf = rl_conf_parse(fuzz_conf_text, sizeof(fuzz_conf_text) - 1, err,
                              sizeof(err));
    if (fuzz_conf == NULL) {
        fprintf(stderr, "fuzz config: %s\n", err);
        abort();
    }
    return 0;
}

/* 1 if the optional strings a and b are both absent or equal. */
static int fuzz_same_opt(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
           (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Aborts unless the fast path's request equals jansson's. */
static void fuzz_same_request(const rl_request_t *a, const rl_request_t *b)
{
    if (strcmp(a->method, b->method) != 0 || a->path_len != b->path_len ||
        memcmp(a->path, b->path, a->path_len) != 0 ||
        a->target_len != b->target_len ||
        memcmp(a->target, b->target, a->target_len) != 0 ||
        !fuzz_same_opt(a->tenant, b->tenant) ||
        !fuzz_same_opt(a->user, b->user) || !fuzz_same_opt(a->ip, b->ip) ||
        !fuzz_same_opt(a->policy, b->policy) || a->nheaders != b->nheaders ||
        a->cost != b->cost) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *root;
    rl_request_t req;
    rl_request_error_t rerr;
    rl_auth_error_t aerr;
    rl_match_t m;
    const rl_policy_t *p;
    const char *tenant, *missing;
    char scratch[2048];
    rl_request_t fast;
    int taken;
    char key[RL_KEY_MAX], msg[256];
    int len;

    taken = rl_request_from_body((const char *)data, size, scratch,
                                 sizeof(scratch), &fast) == 0;
    root = json_loadb((const char *)data, size,
                      JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY,
                      &jerr);
    if (root == NULL) {
        if (taken) {
            abort();
        }
        snprintf(msg, sizeof(msg), "malformed JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        return 0;
    }
    if (rl_request_from_json(root, &req, &rerr) != 0) {
        if (taken) {
            abort();
        }
        if (rerr.code == NULL || (strcmp(rerr.code, "VAL_001") != 0 &&
                                  strcmp(rerr.code, "VAL_002") != 0)) {
            abort();
        }
        json_decref(root);
        return 0;
    }
    if (req.path_len == 0 || req.path[0] != '/' ||
        rl_request_path_safe(req.path, req.path_len) != 0 || req.cost < 0 ||
        req.nheaders > RL_MAX_REQ_HEADERS) {
        abort();
    }
    if (taken) {
        fuzz_same_request(&fast, &req);
    }
    p = rl_policy_find(fuzz_conf, &req, &m);
    if (p != NULL) {
        if (p->verify_tenant) {
            if (rl_auth_tenant(fuzz_conf, &req, 1730113200, &tenant, &aerr) !=
                0) {
                if (aerr.status != 401 && aerr.status != 403) {
                    abort();
                }
            } else if (req.tenant == NULL) {
                req.tenant = tenant;
            }
        }
        len = rl_policy_key(p, "rl", &req, &m, key, sizeof(key), &missing);
        if (len >= 0 && (size_t)len != strlen(key)) {
            abort();
        }
    }
    json_decref(root);
    return 0;
}
