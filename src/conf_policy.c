/* The "policies" section of the configuration: each policy's match,
 * key, limits, test rule and deny reply. Algorithms come from algo.h's
 * table; patterns are compiled by policy.c. Main thread only. */
#include "conf_policy.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo.h"
#include "policy.h"
#include "reply.h"

#define CONF_MAX_KEY 8
#define CONF_REQUESTS_MAX 1000000000000LL

static const conf_range_t range_requests = {1, CONF_REQUESTS_MAX};
static const conf_range_t range_status = {400, 599};

/* The "algorithm" words, read from algo.h's rows. */
static const conf_enum_item_t algo_items[] = {
#define CONF_ALGO_ITEM(tag, word, letter, script, burst, mem)                  \
    {word, RL_ALGO_##tag},
    RL_ALGO_ROWS(CONF_ALGO_ITEM)
#undef CONF_ALGO_ITEM
};
static const conf_enum_t enum_algo = {algo_items, CONF_NELEM(algo_items)};

/* Units of a key suffix's period, largest first: the period is written in
 * the largest one that divides it exactly, so each period has one name. */
static const struct {
    const char *name;
    int64_t ms;
} suffix_units[] = {
    {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
};

static const conf_enum_item_t headers_items[] = {
    {"x-ratelimit", RL_HEADERS_X_RATELIMIT},
    {"x-ratelimit-retry-after", RL_HEADERS_X_RATELIMIT_RETRY_AFTER},
    {"ietf", RL_HEADERS_IETF},
    {"none", RL_HEADERS_NONE},
};
static const conf_enum_t enum_headers = {headers_items,
                                         CONF_NELEM(headers_items)};

static const conf_enum_item_t failure_items[] = {
    {"open", 1},
    {"closed", 0},
};
static const conf_enum_t enum_failure = {failure_items,
                                         CONF_NELEM(failure_items)};

static const conf_enum_item_t mode_items[] = {
    {"enforce", 0},
    {"shadow", 1},
};
static const conf_enum_t enum_mode = {mode_items, CONF_NELEM(mode_items)};

static const conf_enum_item_t method_items[] = {
    {"GET", 0},    {"POST", 0}, {"PUT", 0},     {"PATCH", 0},
    {"DELETE", 0}, {"HEAD", 0}, {"OPTIONS", 0},
};
static const conf_enum_t enum_method = {method_items, CONF_NELEM(method_items)};

/* Key fields written as a plain word. */
static const struct {
    const char *spec;
    rl_key_kind_t kind;
} key_words[] = {
    {"tenant", RL_KEY_TENANT}, {"user", RL_KEY_USER},   {"ip", RL_KEY_IP},
    {"method", RL_KEY_METHOD}, {"route", RL_KEY_ROUTE}, {"path", RL_KEY_PATH},
};

/* ------------------------------------------------------------------------
 * Limits
 * ---------------------------------------------------------------------- */

static const conf_field_t limit_fields[] = {
    {"requests", conf_int64, offsetof(rl_limit_t, requests), 1, &range_requests,
     NULL, NULL},
    {"per", conf_duration, offsetof(rl_limit_t, period_ms), 1, NULL, NULL,
     NULL},
    {"algorithm", conf_enum, offsetof(rl_limit_t, algo), 0, &enum_algo,
     "\"gcra\"", NULL},
    {"burst", conf_int64, offsetof(rl_limit_t, burst), 0, &range_requests, NULL,
     NULL},
    {"block", conf_duration, offsetof(rl_limit_t, block_ms), 0, NULL, NULL,
     NULL},
};
static const conf_table_t limit_table = {limit_fields, CONF_NELEM(limit_fields),
                                         NULL};

/* Writes the suffix: prefix, the algorithm's letter (algo.h), the period
 * in its largest whole unit. -1 (buf "") for an unknown algorithm. */
int rl_conf_limit_suffix(char *buf, size_t len, const char *prefix,
                         rl_algo_t algo, int64_t period_ms)
{
    const rl_algo_info_t *info = rl_algo_get(algo);
    size_t i = 0;

    if (info == NULL || period_ms < 1) {
        if (len > 0) {
            buf[0] = '\0';
        }
        return -1;
    }
    while (i + 1 < CONF_NELEM(suffix_units) &&
           period_ms % suffix_units[i].ms != 0) {
        i++;
    }
    snprintf(buf, len, "%s%c%lld%s", prefix, info->letter,
             (long long)(period_ms / suffix_units[i].ms), suffix_units[i].name);
    return 0;
}

/* The largest products a limit may have so that every step of the
 * algorithms (the lua/ scripts in doubles, algo_mem.c in int64_t) stays an
 * exact integer below 2^53 for a clock below 2^52 us (the year 2112);
 * docs/algorithms.md derives them. GCRA: burst * T <= 2^51 us, T =
 * ceil(per_us / requests), so TAT <= now + 2 * burst * T <= 2^53.
 * Sliding window: requests * per_ms <= 2^51, so prev * left + (cur +
 * cost) * per <= 3 * requests * per < 2^53. block + now and the PXAT of
 * a TAT (ms) are far below that with per and block at most 10 years. */
#define CONF_GCRA_BURST_US_MAX (1LL << 51)
#define CONF_SLIDING_PRODUCT_MAX (1LL << 51)

/* Refuses limit l (at path sub) whose numbers could leave the exact
 * range above, naming the field to change. 0 or -1. */
static int conf_limit_range(conf_ctx_t *c, const char *sub, const rl_limit_t *l)
{
    char fpath[CONF_PATH_MAX];
    int64_t t;

    if (l->algo == RL_ALGO_GCRA) {
        t = (l->period_ms * 1000 + l->requests - 1) / l->requests;
        if (l->burst > CONF_GCRA_BURST_US_MAX / t) {
            conf_path_field(fpath, sizeof(fpath), sub, "burst");
            return conf_fail(c, fpath,
                             "burst x emission interval (%lld x %lld us) "
                             "must be at most 2^51 us: at most %lld for "
                             "this requests and per",
                             (long long)l->burst, (long long)t,
                             (long long)(CONF_GCRA_BURST_US_MAX / t));
        }
    } else if (l->algo == RL_ALGO_SLIDING_WINDOW &&
               l->requests > CONF_SLIDING_PRODUCT_MAX / l->period_ms) {
        conf_path_field(fpath, sizeof(fpath), sub, "requests");
        return conf_fail(c, fpath,
                         "requests x per (%lld x %lld ms) must be at most "
                         "2^51: at most %lld for this per",
                         (long long)l->requests, (long long)l->period_ms,
                         (long long)(CONF_SLIDING_PRODUCT_MAX / l->period_ms));
    }
    return 0;
}

/* Parses an array of 1..RL_MAX_LIMITS limits into a new *out / *n;
 * suffixes get sprefix in front ("" or "t"). */
int conf_limits(conf_ctx_t *c, const char *path, json_t *v, const char *sprefix,
                rl_limit_t **out, int *n)
{
    char sub[CONF_PATH_MAX];
    char bpath[CONF_PATH_MAX];
    size_t i;
    size_t j;

    if (!json_is_array(v) || json_array_size(v) < 1 ||
        json_array_size(v) > RL_MAX_LIMITS) {
        return conf_fail(c, path, "must be an array of 1 to %d limits",
                         RL_MAX_LIMITS);
    }
    *out = calloc(json_array_size(v), sizeof(**out));
    if (*out == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    for (i = 0; i < json_array_size(v); i++) {
        rl_limit_t *l = &(*out)[i];

        (*n)++;
        conf_path_index(sub, sizeof(sub), path, i);
        if (conf_table_defaults(c, &limit_table, l) != 0 ||
            conf_object(c, sub, json_array_get(v, i), &limit_table, l) != 0) {
            return -1;
        }
        if (l->burst != 0 && !rl_algo_get(l->algo)->has_burst) {
            conf_path_field(bpath, sizeof(bpath), sub, "burst");
            return conf_fail(c, bpath, "only applies to algorithm \"gcra\"");
        }
        /* Window algorithms ignore burst; it still carries a sane value
         * because the store protocol sends it for every limit. */
        if (l->burst == 0) {
            l->burst = l->requests;
        }
        if (conf_limit_range(c, sub, l) != 0) {
            return -1;
        }
        rl_conf_limit_suffix(l->suffix, sizeof(l->suffix), sprefix, l->algo,
                             l->period_ms);
        for (j = 0; j < i; j++) {
            if (strcmp((*out)[j].suffix, l->suffix) == 0) {
                return conf_fail(
                    c, sub, "same algorithm and period as %s[%zu]",
                    strrchr(path, '.') != NULL ? strrchr(path, '.') + 1 : path,
                    j);
            }
        }
    }
    return 0;
}

/* "limits" of a policy: dst is the policy. An explicit empty list makes
 * a limit-less policy (nlimits 0): it takes the requests it matches and
 * always allows them, with nothing sent to the store. */
static int conf_policy_limits(conf_ctx_t *c, const char *path, json_t *v,
                              void *dst, const void *arg)
{
    rl_policy_t *p = dst;

    if (!json_is_array(v) || json_array_size(v) > RL_MAX_LIMITS) {
        return conf_fail(c, path, "must be an array of 0 to %d limits",
                         RL_MAX_LIMITS);
    }
    if (json_array_size(v) == 0) {
        return 0;
    }
    return conf_limits(c, path, v, "", &p->limits, &p->nlimits);
}

/* Frees a policy's limits; dst is the policy. */
static void conf_free_policy_limits(void *dst)
{
    rl_policy_t *p = dst;

    free(p->limits);
    p->limits = NULL;
    p->nlimits = 0;
}

/* "limits" of a test rule: dst is the rule. */
static int conf_test_limits(conf_ctx_t *c, const char *path, json_t *v,
                            void *dst, const void *arg)
{
    rl_test_rule_t *t = dst;

    return conf_limits(c, path, v, "t", &t->limits, &t->nlimits);
}

/* Frees a test rule's limits; dst is the rule. */
static void conf_free_test_limits(void *dst)
{
    rl_test_rule_t *t = dst;

    free(t->limits);
    t->limits = NULL;
    t->nlimits = 0;
}

/* ------------------------------------------------------------------------
 * Policy sub-objects: match, key, test, deny
 * ---------------------------------------------------------------------- */

/* "match.method": stored upper-case; any case accepted. */
static int conf_method(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                       const void *arg)
{
    char upper[16];
    const char *s;
    size_t i;

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    s = json_string_value(v);
    for (i = 0; s[i] != '\0' && i + 1 < sizeof(upper); i++) {
        upper[i] =
            (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 'a' + 'A') : s[i];
    }
    upper[i] = '\0';
    if (s[i] != '\0' || conf_enum_find(&enum_method, upper) == NULL) {
        return conf_enum_fail(c, path, &enum_method, s);
    }
    return conf_set_str(c, path, dst, upper);
}

/* "match.path": compiled into *(rl_pattern_t *)dst. */
static int conf_pattern(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                        const void *arg)
{
    char perr[160];

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    if (rl_pattern_compile(json_string_value(v), dst, perr, sizeof(perr)) !=
        0) {
        return conf_fail(c, path, "\"%s\": %s", json_string_value(v), perr);
    }
    return 0;
}

/* Frees a compiled "match.path", *(rl_pattern_t *)dst. */
static void conf_free_pattern(void *dst)
{
    rl_pattern_free(dst);
}

/* One entry of "match.descriptor": {"key": K} or {"key": K, "value": V}. */
static const conf_field_t desc_fields[] = {
    {"key", conf_string, offsetof(rl_desc_match_t, key), 1, NULL, NULL,
     conf_free_str},
    {"value", conf_string, offsetof(rl_desc_match_t, value), 0, NULL, NULL,
     conf_free_str},
};
static const conf_table_t desc_table = {desc_fields, CONF_NELEM(desc_fields),
                                        NULL};

/* "match.descriptor": a non-empty array of entries into the policy. */
static int conf_descriptor(conf_ctx_t *c, const char *path, json_t *v,
                           void *dst, const void *arg)
{
    rl_policy_t *p = dst;
    char sub[CONF_PATH_MAX];
    size_t i;

    if (!json_is_array(v) || json_array_size(v) == 0 ||
        json_array_size(v) > RL_MAX_REQ_HEADERS) {
        return conf_fail(c, path, "must be an array of 1 to %d entries",
                         RL_MAX_REQ_HEADERS);
    }
    p->desc = calloc(json_array_size(v), sizeof(*p->desc));
    if (p->desc == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    for (i = 0; i < json_array_size(v); i++) {
        conf_path_index(sub, sizeof(sub), path, i);
        p->ndesc++;
        if (conf_object(c, sub, json_array_get(v, i), &desc_table,
                        &p->desc[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Frees "match.descriptor" of the policy dst. */
static void conf_free_descriptor(void *dst)
{
    rl_policy_t *p = dst;
    int i;

    for (i = 0; i < p->ndesc; i++) {
        conf_table_free(&desc_table, &p->desc[i]);
    }
    free(p->desc);
    p->desc = NULL;
    p->ndesc = 0;
}

/* "match" holds either "path" (HTTP) or "domain" and "descriptor" (gRPC). */
static int conf_match_check(conf_ctx_t *c, const char *path, json_t *v,
                            void *base)
{
    const rl_policy_t *p = base;
    char sub[CONF_PATH_MAX];

    if (p->domain == NULL && p->path.text == NULL) {
        conf_path_field(sub, sizeof(sub), path, "path");
        return conf_fail(c, sub, "is required");
    }
    if (p->domain != NULL &&
        (p->path.text != NULL || p->method != NULL || p->ndesc == 0)) {
        return conf_fail(c, path,
                         "\"domain\" needs \"descriptor\" and "
                         "no \"path\" or \"method\"");
    }
    if (p->domain == NULL && p->ndesc > 0) {
        return conf_fail(c, path, "\"descriptor\" needs \"domain\"");
    }
    return 0;
}

/* "match": fields of the policy itself. */
static const conf_field_t match_fields[] = {
    {"method", conf_method, offsetof(rl_policy_t, method), 0, NULL, NULL,
     conf_free_str},
    {"path", conf_pattern, offsetof(rl_policy_t, path), 0, NULL, NULL,
     conf_free_pattern},
    {"domain", conf_string, offsetof(rl_policy_t, domain), 0, NULL, NULL,
     conf_free_str},
    {"descriptor", conf_descriptor, 0, 0, NULL, NULL, conf_free_descriptor},
};
static const conf_table_t match_table = {match_fields, CONF_NELEM(match_fields),
                                         conf_match_check};

/* 1 if the descriptor policy p matches an entry named key. */
static int conf_desc_has_key(const rl_policy_t *p, const char *key)
{
    int i;

    for (i = 0; i < p->ndesc; i++) {
        if (strcmp(p->desc[i].key, key) == 0) {
            return 1;
        }
    }
    return 0;
}

/* 1 if pattern p has a {name} parameter. */
static int conf_pattern_has_param(const rl_pattern_t *p, const char *name)
{
    int i;

    for (i = 0; i < p->nsegs; i++) {
        if (p->segs[i].kind == RL_SEG_PARAM &&
            strcmp(p->segs[i].text, name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Parses one key spec s at path into f, checking path.NAME against the
 * policy's pattern (p may be NULL when s is no path.NAME). */
int conf_key_field(conf_ctx_t *c, const char *path, const char *s,
                   const rl_policy_t *p, rl_key_field_t *f)
{
    size_t i;

    if (conf_set_str(c, path, &f->spec, s) != 0) {
        return -1;
    }
    for (i = 0; i < CONF_NELEM(key_words); i++) {
        if (strcmp(s, key_words[i].spec) == 0) {
            f->kind = key_words[i].kind;
            return 0;
        }
    }
    if (strncmp(s, "path.", 5) == 0) {
        f->kind = RL_KEY_PATH_PARAM;
        if (s[5] == '\0') {
            return conf_fail(c, path, "\"%s\" needs a parameter name", s);
        }
        if (!conf_pattern_has_param(&p->path, s + 5)) {
            return conf_fail(
                c, path, "\"%s\" needs a {%s} segment in match.path", s, s + 5);
        }
        return conf_set_str(c, path, &f->name, s + 5);
    }
    if (strncmp(s, "descriptor.", 11) == 0) {
        f->kind = RL_KEY_DESCRIPTOR;
        if (p == NULL || !conf_desc_has_key(p, s + 11)) {
            return conf_fail(c, path,
                             "\"%s\" needs an entry with key \"%s\" in "
                             "match.descriptor",
                             s, s + 11);
        }
        return conf_set_str(c, path, &f->name, s + 11);
    }
    if (strncmp(s, "header.", 7) == 0) {
        f->kind = RL_KEY_HEADER;
        if (!conf_is_header_name(s + 7)) {
            return conf_fail(c, path, "\"%s\" does not name a valid header", s);
        }
        if (conf_set_str(c, path, &f->name, s + 7) != 0) {
            return -1;
        }
        conf_lower(f->name);
        return 0;
    }
    return conf_fail(
        c, path,
        "\"%s\" is not a key field (tenant, user, ip, method, route, path, "
        "path.NAME, header.NAME, descriptor.NAME)",
        s);
}

/* Parses the non-empty array v of key specs at path into a new *out
 * (*n fields, freed by conf_key_list_free also after an error), checking
 * path.NAME against p's pattern and refusing repeats. 0 or -1. */
int conf_key_list(conf_ctx_t *c, const char *path, json_t *v,
                  const rl_policy_t *p, rl_key_field_t **out, int *n)
{
    char sub[CONF_PATH_MAX];
    size_t i;
    int j;

    *out = calloc(json_array_size(v), sizeof(**out));
    if (*out == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    for (i = 0; i < json_array_size(v); i++) {
        json_t *item = json_array_get(v, i);
        rl_key_field_t *f = &(*out)[i];

        conf_path_index(sub, sizeof(sub), path, i);
        if (!json_is_string(item)) {
            return conf_fail(c, sub, "must be a string");
        }
        (*n)++;
        if (conf_key_field(c, sub, json_string_value(item), p, f) != 0) {
            return -1;
        }
        for (j = 0; j < (int)i; j++) {
            if (rl_key_field_same(&(*out)[j], f)) {
                return conf_fail(c, sub, "\"%s\" repeats key[%d]", f->spec, j);
            }
        }
    }
    return 0;
}

/* Frees the n key fields at *key and the array. */
void conf_key_list_free(rl_key_field_t **key, int *n)
{
    int i;

    for (i = 0; i < *n; i++) {
        free((*key)[i].name);
        free((*key)[i].spec);
    }
    free(*key);
    *key = NULL;
    *n = 0;
}

/* "key": an array of 0..8 field specs; dst is the policy. */
static int conf_key(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                    const void *arg)
{
    rl_policy_t *p = dst;

    if (!json_is_array(v) || json_array_size(v) > CONF_MAX_KEY) {
        return conf_fail(c, path, "must be an array of 0 to %d key fields",
                         CONF_MAX_KEY);
    }
    if (json_array_size(v) == 0) {
        return 0;
    }
    return conf_key_list(c, path, v, p, &p->key, &p->nkey);
}

/* Frees a policy's key fields; dst is the policy. */
static void conf_free_key(void *dst)
{
    rl_policy_t *p = dst;

    conf_key_list_free(&p->key, &p->nkey);
}

static const conf_field_t test_fields[] = {
    {"header", conf_header_name, offsetof(rl_test_rule_t, header), 1, NULL,
     NULL, conf_free_str},
    {"value", conf_string, offsetof(rl_test_rule_t, value), 1, NULL, NULL,
     conf_free_str},
    {"limits", conf_test_limits, 0, 1, NULL, NULL, conf_free_test_limits},
};
static const conf_table_t test_table = {test_fields, CONF_NELEM(test_fields),
                                        NULL};
static const conf_alloc_t test_alloc = {&test_table, sizeof(rl_test_rule_t)};

/* "deny": fields of the policy itself. */
static const conf_field_t deny_fields[] = {
    {"status", conf_int, offsetof(rl_policy_t, deny_status), 0, &range_status,
     "429", NULL},
    {"body", conf_json, offsetof(rl_policy_t, deny_body), 0, NULL, NULL,
     conf_free_json},
};

/* "deny" as a whole: the body compiled once for the denials that use it
 * (freed in conf_free_policies). */
static int conf_deny_check(conf_ctx_t *c, const char *path, json_t *v,
                           void *base)
{
    rl_policy_t *p = base;

    (void)v;
    return conf_body_compile(c, path, p->deny_body, &p->deny_tpl);
}
static const conf_table_t deny_table = {deny_fields, CONF_NELEM(deny_fields),
                                        conf_deny_check};

/* "unavailable": the status and body of a fail-closed store failure. */
static const conf_range_t range_unavailable = {500, 599};
static const conf_field_t unavailable_fields[] = {
    {"status", conf_int, offsetof(rl_unavailable_t, status), 0,
     &range_unavailable, "503", NULL},
    {"body", conf_json, offsetof(rl_unavailable_t, body), 0, NULL, NULL,
     conf_free_json},
};
static const conf_table_t unavailable_table = {
    unavailable_fields, CONF_NELEM(unavailable_fields), NULL};
static const conf_alloc_t unavailable_alloc = {&unavailable_table,
                                               sizeof(rl_unavailable_t)};

/* "name" of a policy: an identifier not used by an earlier policy. */
static int conf_policy_name(conf_ctx_t *c, const char *path, json_t *v,
                            void *dst, const void *arg)
{
    const char *s;
    int i;

    if (conf_ident(c, path, v, dst, arg) != 0) {
        return -1;
    }
    s = json_string_value(v);
    for (i = 0; i < c->cur_policy; i++) {
        if (strcmp(c->conf->policies[i].name, s) == 0) {
            return conf_fail(c, path, "\"%s\" is used by policies[%d]", s, i);
        }
    }
    return 0;
}

static const conf_enum_item_t verify_items[] = {
    {"none", 0},
    {"hmac", 1},
};
static const conf_enum_t enum_verify = {verify_items, CONF_NELEM(verify_items)};

/* "verify_tenant" of a policy: "hmac" needs the top-level "tenants",
 * which is parsed before "policies" (see top_fields). */
static int conf_verify_tenant(conf_ctx_t *c, const char *path, json_t *v,
                              void *dst, const void *arg)
{
    if (conf_enum(c, path, v, dst, &enum_verify) != 0) {
        return -1;
    }
    if (*(int *)dst != 0 && c->conf->ntenants == 0) {
        return conf_fail(
            c, path, "\"hmac\" needs a non-empty top-level \"tenants\" list");
    }
    /* "match" is parsed first. A descriptor carries no end client's
     * request to sign, so the check could never run: refused rather
     * than counted unchecked. */
    if (*(int *)dst != 0 && c->conf->policies[c->cur_policy].domain != NULL) {
        return conf_fail(c, path,
                         "\"hmac\" applies to HTTP policies only: a gRPC "
                         "descriptor carries no tenant signature");
    }
    return 0;
}

/* "hash_tag" of a policy: 1..8 specs, each one of the policy's key
 * fields, stored as indexes into key[]; dst is the policy. */
static int conf_hash_tag(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                         const void *arg)
{
    rl_policy_t *p = dst;
    char sub[CONF_PATH_MAX];
    size_t i;
    int j;

    if (!json_is_array(v) || json_array_size(v) < 1 ||
        json_array_size(v) > RL_MAX_HASH_TAG) {
        return conf_fail(c, path, "must be an array of 1 to %d key fields",
                         RL_MAX_HASH_TAG);
    }
    for (i = 0; i < json_array_size(v); i++) {
        json_t *item = json_array_get(v, i);

        conf_path_index(sub, sizeof(sub), path, i);
        if (!json_is_string(item)) {
            return conf_fail(c, sub, "must be a string");
        }
        for (j = 0; j < p->nkey; j++) {
            if (strcmp(p->key[j].spec, json_string_value(item)) == 0) {
                break;
            }
        }
        if (j == p->nkey) {
            return conf_fail(c, sub, "\"%s\" is not in the policy's key",
                             json_string_value(item));
        }
        p->hash_tag[p->nhash_tag++] = j;
        for (j = 0; j < p->nhash_tag - 1; j++) {
            if (p->hash_tag[j] == p->hash_tag[p->nhash_tag - 1]) {
                return conf_fail(c, sub, "\"%s\" repeats hash_tag[%d]",
                                 json_string_value(item), j);
            }
        }
    }
    return 0;
}

/* "penalty" of a policy: the name of one of the top-level "penalties",
 * which are parsed before "policies"; dst is the policy's pointer. */
static int conf_policy_penalty(conf_ctx_t *c, const char *path, json_t *v,
                               void *dst, const void *arg)
{
    const rl_penalty_t **out = dst;
    int i;

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    for (i = 0; i < c->conf->npenalties; i++) {
        if (strcmp(c->conf->penalties[i].name, json_string_value(v)) == 0) {
            *out = &c->conf->penalties[i];
            return 0;
        }
    }
    return conf_fail(c, path, "\"%.64s\" is not in the top-level \"penalties\"",
                     json_string_value(v));
}

/* Table order is parse order: match comes before key, which checks
 * path.NAME against the compiled pattern, and key before hash_tag. */
static const conf_field_t policy_fields[] = {
    {"name", conf_policy_name, offsetof(rl_policy_t, name), 1, NULL, NULL,
     conf_free_str},
    {"match", conf_sub, 0, 1, &match_table, NULL, NULL},
    {"key", conf_key, 0, 0, NULL, NULL, conf_free_key},
    {"limits", conf_policy_limits, 0, 1, NULL, NULL, conf_free_policy_limits},
    {"test", conf_sub_new, offsetof(rl_policy_t, test), 0, &test_alloc, NULL,
     NULL},
    {"headers", conf_enum, offsetof(rl_policy_t, headers), 0, &enum_headers,
     "\"x-ratelimit\"", NULL},
    {"failure_mode", conf_enum, offsetof(rl_policy_t, failure_open), 0,
     &enum_failure, "\"open\"", NULL},
    {"deny", conf_sub, 0, 0, &deny_table, NULL, NULL},
    /* After "deny": a deny override's status defaults to the policy's, and
     * its body falls back to the policy's. */
    {"overrides", conf_overrides, 0, 0, NULL, NULL, conf_free_overrides},
    {"unavailable", conf_sub_new, offsetof(rl_policy_t, unavailable), 0,
     &unavailable_alloc, NULL, NULL},
    {"mode", conf_enum, offsetof(rl_policy_t, shadow), 0, &enum_mode, NULL,
     NULL},
    {"verify_tenant", conf_verify_tenant, offsetof(rl_policy_t, verify_tenant),
     0, NULL, NULL, NULL},
    {"group", conf_ident, offsetof(rl_policy_t, group), 0, NULL, "\"default\"",
     conf_free_str},
    {"hash_tag", conf_hash_tag, 0, 0, NULL, NULL, NULL},
    {"penalty", conf_policy_penalty, offsetof(rl_policy_t, penalty), 0, NULL,
     NULL, NULL},
};
static const conf_table_t policy_table = {policy_fields,
                                          CONF_NELEM(policy_fields), NULL};

/* "policies": an array (may be empty) of policies; dst is the conf. */
int conf_policies(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                  const void *arg)
{
    rl_conf_t *conf = dst;
    char sub[CONF_PATH_MAX];
    size_t i;

    if (!json_is_array(v)) {
        return conf_fail(c, path, "must be an array");
    }
    if (json_array_size(v) > (size_t)INT_MAX / 2) {
        return conf_fail(c, path, "too many policies");
    }
    if (json_array_size(v) == 0) {
        return 0;
    }
    conf->policies = calloc(json_array_size(v), sizeof(*conf->policies));
    if (conf->policies == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    for (i = 0; i < json_array_size(v); i++) {
        rl_policy_t *p = &conf->policies[i];

        conf->npolicies++;
        c->cur_policy = (int)i;
        p->index = (int)i;
        conf_path_index(sub, sizeof(sub), path, i);
        if (conf_table_defaults(c, &policy_table, p) != 0 ||
            conf_object(c, sub, json_array_get(v, i), &policy_table, p) != 0) {
            return -1;
        }
        if (p->nlimits == 0 && p->penalty != NULL) {
            char ppath[CONF_PATH_MAX];

            conf_path_field(ppath, sizeof(ppath), sub, "penalty");
            return conf_fail(c, ppath,
                             "needs limits: a policy with "
                             "\"limits\": [] never denies");
        }
    }
    if (rl_policy_desc_build(conf->policies, conf->npolicies,
                             &conf->desc_index) != 0) {
        return conf_fail(c, path, "out of memory");
    }
    return 0;
}

/* Frees every policy and the array; dst is the conf. */
void conf_free_policies(void *dst)
{
    rl_conf_t *conf = dst;
    int i;

    rl_policy_desc_free(conf->desc_index);
    conf->desc_index = NULL;
    for (i = 0; i < conf->npolicies; i++) {
        rl_reply_body_free(conf->policies[i].deny_tpl);
        conf_table_free(&policy_table, &conf->policies[i]);
    }
    free(conf->policies);
    conf->policies = NULL;
    conf->npolicies = 0;
}
