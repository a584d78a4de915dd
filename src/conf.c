/* The configuration file: JSON text -> validated, immutable rl_conf_t.
 *
 * Every JSON object is described by a table of field descriptors (name,
 * parser, offset into the C struct, required flag, argument), in the
 * manner of twemproxy's nc_conf.c: adding a field is one line. One driver
 * rejects unknown fields, reports missing required ones and calls each
 * parser with the field's JSON path, so every error reads
 * "policies[2].limits[0].per: "5x" is not a duration".
 * Main thread only; the result is read-only afterwards. */
#include "conf.h"

#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo_mem.h"
#include "policy.h"
#include "util.h"

#define CONF_PATH_MAX 256
#define CONF_IDENT_MAX 64
#define CONF_MAX_KEY 8
#define CONF_REQUESTS_MAX 1000000000000LL
#define CONF_HTTP_MAX 2147483647LL

/* ------------------------------------------------------------------------
 * Parsing context, errors and paths
 * ---------------------------------------------------------------------- */

typedef struct conf_ctx {
    char *err;
    size_t errlen;
    rl_conf_t *conf;       /* being built */
    int cur_policy;        /* index of the policy being parsed */
} conf_ctx_t;

/* Writes "path: message" into the context's error buffer; returns -1. */
static int conf_fail(conf_ctx_t *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int conf_fail(conf_ctx_t *c, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s", path, msg);
    return -1;
}

/* Writes the concatenation of a, b and c into out, cut to fit. */
static void conf_path_join(char *out, size_t outlen, const char *a, const char *b,
                           const char *c)
{
    const char *parts[3] = { a, b, c };
    size_t used = 0;
    size_t i;
    const char *s;

    for (i = 0; i < 3; i++) {
        for (s = parts[i]; *s != '\0' && used + 1 < outlen; s++) {
            out[used++] = *s;
        }
    }
    out[used] = '\0';
}

/* Joins parent and a field name into out ("store" + "timeout_ms"). */
static void conf_path_field(char *out, size_t outlen, const char *parent, const char *name)
{
    conf_path_join(out, outlen, parent, parent[0] == '\0' ? "" : ".", name);
}

/* Appends an array index to parent into out ("limits" + 2 -> "limits[2]"). */
static void conf_path_index(char *out, size_t outlen, const char *parent, size_t i)
{
    char idx[32];

    snprintf(idx, sizeof(idx), "[%zu]", i);
    conf_path_join(out, outlen, parent, idx, "");
}

/* Replaces *dst (freed) by a copy of s. Returns 0 or -1 on no memory. */
static int conf_set_str(conf_ctx_t *c, const char *path, char **dst, const char *s)
{
    char *copy = strdup(s);

    if (copy == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    free(*dst);
    *dst = copy;
    return 0;
}

/* 1 if s is 1..64 bytes of [A-Za-z0-9_.-] (policy names, key prefix). */
static int conf_is_ident(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 && n <= CONF_IDENT_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* 1 if s is a non-empty HTTP header name (an RFC 9110 token). */
static int conf_is_header_name(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789!#$%&'*+-.^_`|~") == n;
}

/* Lower-cases s in place. */
static void conf_lower(char *s)
{
    for (; *s != '\0'; s++) {
        if (*s >= 'A' && *s <= 'Z') {
            *s = (char)(*s - 'A' + 'a');
        }
    }
}

/* ------------------------------------------------------------------------
 * Field descriptors and the generic object driver
 * ---------------------------------------------------------------------- */

/* Parses JSON value v found at path into dst (a field of the C struct,
 * or the struct itself for composite fields). arg is the descriptor's. */
typedef int conf_parse_fn(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                          const void *arg);

typedef struct conf_field {
    const char *name;
    conf_parse_fn *parse;
    size_t offset;
    int required;
    const void *arg;
} conf_field_t;

typedef struct conf_range {
    int64_t min;
    int64_t max;
} conf_range_t;

typedef struct conf_enum_item {
    const char *name;
    int value;
} conf_enum_item_t;

typedef struct conf_enum {
    const conf_enum_item_t *items;
    size_t n;
} conf_enum_t;

#define CONF_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Checks obj against the field table: unknown fields and missing required
 * ones are errors; each present field is parsed into base + offset. */
static int conf_object(conf_ctx_t *c, const char *path, json_t *obj, const conf_field_t *fields,
                       size_t nfields, void *base)
{
    char sub[CONF_PATH_MAX];
    const char *name;
    json_t *v;
    size_t i;

    if (!json_is_object(obj)) {
        return conf_fail(c, path, "must be an object");
    }
    json_object_foreach(obj, name, v) {
        for (i = 0; i < nfields; i++) {
            if (strcmp(fields[i].name, name) == 0) {
                break;
            }
        }
        if (i == nfields) {
            conf_path_field(sub, sizeof(sub), path, name);
            return conf_fail(c, sub, "unknown field");
        }
    }
    for (i = 0; i < nfields; i++) {
        conf_path_field(sub, sizeof(sub), path, fields[i].name);
        v = json_object_get(obj, fields[i].name);
        if (v == NULL) {
            if (fields[i].required) {
                return conf_fail(c, sub, "is required");
            }
            continue;
        }
        if (fields[i].parse(c, sub, v, (char *)base + fields[i].offset, fields[i].arg) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Scalar parsers
 * ---------------------------------------------------------------------- */

/* Reads an integer within range; writes it to *(int64_t *)dst. */
static int conf_int64(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    const conf_range_t *r = arg;
    json_int_t n;

    if (!json_is_integer(v) || (n = json_integer_value(v)) < r->min || n > r->max) {
        return conf_fail(c, path, "must be an integer from %lld to %lld", (long long)r->min,
                         (long long)r->max);
    }
    *(int64_t *)dst = (int64_t)n;
    return 0;
}

/* Same as conf_int64 for an int field (ranges fit an int). */
static int conf_int(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    int64_t n = 0;

    if (conf_int64(c, path, v, &n, arg) != 0) {
        return -1;
    }
    *(int *)dst = (int)n;
    return 0;
}

/* Reads a string into *(char **)dst (replacing any default). */
static int conf_string(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    return conf_set_str(c, path, dst, json_string_value(v));
}

/* Reads a [A-Za-z0-9_.-]{1,64} string into *(char **)dst. */
static int conf_ident(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    if (!conf_is_ident(json_string_value(v))) {
        return conf_fail(c, path, "\"%s\" must be 1 to 64 characters of A-Z a-z 0-9 _ . -",
                         json_string_value(v));
    }
    return conf_set_str(c, path, dst, json_string_value(v));
}

/* Reads a header name, stored lower-case, into *(char **)dst. */
static int conf_header_name(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                            const void *arg)
{
    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    if (!conf_is_header_name(json_string_value(v))) {
        return conf_fail(c, path, "\"%s\" is not a header name", json_string_value(v));
    }
    if (conf_set_str(c, path, dst, json_string_value(v)) != 0) {
        return -1;
    }
    conf_lower(*(char **)dst);
    return 0;
}

/* Looks s up in e; returns the item or NULL. */
static const conf_enum_item_t *conf_enum_find(const conf_enum_t *e, const char *s)
{
    size_t i;

    for (i = 0; i < e->n; i++) {
        if (strcmp(e->items[i].name, s) == 0) {
            return &e->items[i];
        }
    }
    return NULL;
}

/* Reports that s is not one of e's names, listing them. */
static int conf_enum_fail(conf_ctx_t *c, const char *path, const conf_enum_t *e, const char *s)
{
    char list[256];
    size_t used = 0;
    size_t i;

    list[0] = '\0';
    for (i = 0; i < e->n && used < sizeof(list); i++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", i == 0 ? "" : ", ",
                         e->items[i].name);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
    return conf_fail(c, path, "\"%s\" is not one of %s", s, list);
}

/* Reads one of e's names; writes its value to *(int *)dst. */
static int conf_enum(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    const conf_enum_t *e = arg;
    const conf_enum_item_t *it;

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    it = conf_enum_find(e, json_string_value(v));
    if (it == NULL) {
        return conf_enum_fail(c, path, e, json_string_value(v));
    }
    *(int *)dst = it->value;
    return 0;
}

/* Reads one of e's names and keeps the name itself in *(char **)dst. */
static int conf_enum_str(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                         const void *arg)
{
    int ignored;

    if (conf_enum(c, path, v, &ignored, arg) != 0) {
        return -1;
    }
    return conf_set_str(c, path, dst, json_string_value(v));
}

/* Reads a duration string ("10s", "5m") into *(int64_t *)dst, in ms. */
static int conf_duration(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                         const void *arg)
{
    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a duration string such as \"10s\"");
    }
    if (rl_duration_parse(json_string_value(v), dst) != RL_OK) {
        return conf_fail(c, path, "\"%s\" is not a duration", json_string_value(v));
    }
    return 0;
}

/* Splits "host:port" or "[v6]:port" into a new *host and *port within
 * [minport, 65535]. */
static int conf_hostport(conf_ctx_t *c, const char *path, json_t *v, char **host, int *port,
                         int minport)
{
    const char *s;
    const char *hs;
    const char *he;
    const char *ps;
    char *copy;
    long n;
    size_t plen;

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    s = json_string_value(v);
    if (s[0] == '[') {
        hs = s + 1;
        he = strchr(hs, ']');
        if (he == NULL || he[1] != ':') {
            return conf_fail(c, path, "\"%s\" is not host:port", s);
        }
        ps = he + 2;
    } else {
        hs = s;
        he = strchr(s, ':');
        if (he == NULL || strchr(he + 1, ':') != NULL) {
            return conf_fail(c, path, "\"%s\" is not host:port", s);
        }
        ps = he + 1;
    }
    plen = strlen(ps);
    if (he == hs || plen == 0 || plen > 5 || strspn(ps, "0123456789") != plen) {
        return conf_fail(c, path, "\"%s\" is not host:port", s);
    }
    n = strtol(ps, NULL, 10);
    if (n < minport || n > 65535) {
        return conf_fail(c, path, "\"%s\": port must be from %d to 65535", s, minport);
    }
    copy = strndup(hs, (size_t)(he - hs));
    if (copy == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    free(*host);
    *host = copy;
    *port = (int)n;
    return 0;
}

/* "listen": dst is the conf. Port 0 asks the kernel for a free port. */
static int conf_listen(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    rl_conf_t *conf = dst;

    return conf_hostport(c, path, v, &conf->listen_host, &conf->listen_port, 0);
}

/* "store.address": dst is the store section. */
static int conf_address(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                        const void *arg)
{
    rl_conf_store_t *st = dst;
    struct in6_addr a6;
    struct in_addr a4;

    if (conf_hostport(c, path, v, &st->host, &st->port, 1) != 0) return -1;
    /* Workers never resolve names (a blocking call on the hot path), so
     * the address must be numeric, or localhost. */
    if (strcmp(st->host, "localhost") != 0 && inet_pton(AF_INET, st->host, &a4) != 1 &&
        inet_pton(AF_INET6, st->host, &a6) != 1) {
        return conf_fail(c, path, "\"%s\" must be a numeric IP address or localhost",
                         json_string_value(v));
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Value tables
 * ---------------------------------------------------------------------- */

static const conf_range_t range_workers = { 0, 256 };
static const conf_range_t range_timeout = { 1, 60000 };
static const conf_range_t range_db = { 0, 15 };
static const conf_range_t range_http = { 1, CONF_HTTP_MAX };
static const conf_range_t range_requests = { 1, CONF_REQUESTS_MAX };
static const conf_range_t range_status = { 400, 599 };

static const conf_enum_item_t log_level_items[] = {
    { "debug", 0 }, { "info", 1 }, { "warn", 2 }, { "error", 3 },
};
static const conf_enum_t enum_log_level = { log_level_items, CONF_NELEM(log_level_items) };

static const conf_enum_item_t store_type_items[] = {
    { "redis", RL_STORE_REDIS }, { "memory", RL_STORE_MEMORY },
};
static const conf_enum_t enum_store_type = { store_type_items, CONF_NELEM(store_type_items) };

static const conf_enum_item_t algo_items[] = {
    { "gcra", RL_ALGO_GCRA },
    { "fixed_window", RL_ALGO_FIXED_WINDOW },
    { "sliding_window", RL_ALGO_SLIDING_WINDOW },
};
static const conf_enum_t enum_algo = { algo_items, CONF_NELEM(algo_items) };

/* Key suffix letter per algorithm, indexed by rl_algo_t. */
static const char algo_letters[] = { 'g', 'f', 's' };

static const conf_enum_item_t headers_items[] = {
    { "x-ratelimit", RL_HEADERS_X_RATELIMIT },
    { "x-ratelimit-retry-after", RL_HEADERS_X_RATELIMIT_RETRY_AFTER },
    { "ietf", RL_HEADERS_IETF },
    { "none", RL_HEADERS_NONE },
};
static const conf_enum_t enum_headers = { headers_items, CONF_NELEM(headers_items) };

static const conf_enum_item_t failure_items[] = {
    { "open", 1 }, { "closed", 0 },
};
static const conf_enum_t enum_failure = { failure_items, CONF_NELEM(failure_items) };

static const conf_enum_item_t mode_items[] = {
    { "enforce", 0 }, { "shadow", 1 },
};
static const conf_enum_t enum_mode = { mode_items, CONF_NELEM(mode_items) };

static const conf_enum_item_t method_items[] = {
    { "GET", 0 }, { "POST", 0 }, { "PUT", 0 }, { "PATCH", 0 },
    { "DELETE", 0 }, { "HEAD", 0 }, { "OPTIONS", 0 },
};
static const conf_enum_t enum_method = { method_items, CONF_NELEM(method_items) };

/* Key fields written as a plain word. */
static const struct {
    const char *spec;
    rl_key_kind_t kind;
} key_words[] = {
    { "tenant", RL_KEY_TENANT }, { "user", RL_KEY_USER },   { "ip", RL_KEY_IP },
    { "method", RL_KEY_METHOD }, { "route", RL_KEY_ROUTE }, { "path", RL_KEY_PATH },
};

/* ------------------------------------------------------------------------
 * Limits
 * ---------------------------------------------------------------------- */

static const conf_field_t limit_fields[] = {
    { "requests", conf_int64, offsetof(rl_limit_t, requests), 1, &range_requests },
    { "per", conf_duration, offsetof(rl_limit_t, period_ms), 1, NULL },
    { "algorithm", conf_enum, offsetof(rl_limit_t, algo), 0, &enum_algo },
    { "burst", conf_int64, offsetof(rl_limit_t, burst), 0, &range_requests },
    { "block", conf_duration, offsetof(rl_limit_t, block_ms), 0, NULL },
};

/* Parses an array of 1..RL_MAX_LIMITS limits into a new *out / *n;
 * suffixes get sprefix in front ("" or "t"). */
static int conf_limits(conf_ctx_t *c, const char *path, json_t *v, const char *sprefix,
                       rl_limit_t **out, int *n)
{
    char sub[CONF_PATH_MAX];
    char bpath[CONF_PATH_MAX];
    size_t i;
    size_t j;

    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > RL_MAX_LIMITS) {
        return conf_fail(c, path, "must be an array of 1 to %d limits", RL_MAX_LIMITS);
    }
    *out = calloc(json_array_size(v), sizeof(**out));
    if (*out == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    for (i = 0; i < json_array_size(v); i++) {
        rl_limit_t *l = &(*out)[i];

        (*n)++;
        conf_path_index(sub, sizeof(sub), path, i);
        l->algo = RL_ALGO_GCRA;
        if (conf_object(c, sub, json_array_get(v, i), limit_fields, CONF_NELEM(limit_fields),
                        l) != 0) {
            return -1;
        }
        if (l->burst != 0 && l->algo != RL_ALGO_GCRA) {
            conf_path_field(bpath, sizeof(bpath), sub, "burst");
            return conf_fail(c, bpath, "only applies to algorithm \"gcra\"");
        }
        /* Window algorithms ignore burst; it still carries a sane value
         * because the store protocol sends it for every limit. */
        if (l->burst == 0) {
            l->burst = l->requests;
        }
        snprintf(l->suffix, sizeof(l->suffix), "%s%c%lld", sprefix, algo_letters[l->algo],
                 (long long)l->period_ms);
        for (j = 0; j < i; j++) {
            if (strcmp((*out)[j].suffix, l->suffix) == 0) {
                return conf_fail(c, sub, "same algorithm and period as %s[%zu]",
                                 strrchr(path, '.') != NULL ? strrchr(path, '.') + 1 : path, j);
            }
        }
    }
    return 0;
}

/* "limits" of a policy: dst is the policy. */
static int conf_policy_limits(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                              const void *arg)
{
    rl_policy_t *p = dst;

    return conf_limits(c, path, v, "", &p->limits, &p->nlimits);
}

/* "limits" of a test rule: dst is the rule. */
static int conf_test_limits(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                            const void *arg)
{
    rl_test_rule_t *t = dst;

    return conf_limits(c, path, v, "t", &t->limits, &t->nlimits);
}

/* ------------------------------------------------------------------------
 * Policy sub-objects: match, key, test, deny
 * ---------------------------------------------------------------------- */

/* "match.method": stored upper-case; any case accepted. */
static int conf_method(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    char upper[16];
    const char *s;
    size_t i;

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    s = json_string_value(v);
    for (i = 0; s[i] != '\0' && i + 1 < sizeof(upper); i++) {
        upper[i] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 'a' + 'A') : s[i];
    }
    upper[i] = '\0';
    if (s[i] != '\0' || conf_enum_find(&enum_method, upper) == NULL) {
        return conf_enum_fail(c, path, &enum_method, s);
    }
    return conf_set_str(c, path, dst, upper);
}

/* "match.path": compiled into *(rl_pattern_t *)dst. */
static int conf_pattern(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    char perr[160];

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    if (rl_pattern_compile(json_string_value(v), dst, perr, sizeof(perr)) != 0) {
        return conf_fail(c, path, "\"%s\": %s", json_string_value(v), perr);
    }
    return 0;
}

static const conf_field_t match_fields[] = {
    { "method", conf_method, offsetof(rl_policy_t, method), 0, NULL },
    { "path", conf_pattern, offsetof(rl_policy_t, path), 1, NULL },
};

/* "match": dst is the policy. */
static int conf_match(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    return conf_object(c, path, v, match_fields, CONF_NELEM(match_fields), dst);
}

/* 1 if pattern p has a {name} parameter. */
static int conf_pattern_has_param(const rl_pattern_t *p, const char *name)
{
    int i;

    for (i = 0; i < p->nsegs; i++) {
        if (p->segs[i].kind == RL_SEG_PARAM && strcmp(p->segs[i].text, name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Parses one key spec s at path into f, checking path.NAME against the
 * policy's pattern. */
static int conf_key_field(conf_ctx_t *c, const char *path, const char *s, const rl_policy_t *p,
                          rl_key_field_t *f)
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
            return conf_fail(c, path, "\"%s\" needs a {%s} segment in match.path", s, s + 5);
        }
        return conf_set_str(c, path, &f->name, s + 5);
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
    return conf_fail(c, path,
                     "\"%s\" is not a key field (tenant, user, ip, method, route, path, "
                     "path.NAME, header.NAME)", s);
}

/* "key": an array of 0..8 field specs; dst is the policy. */
static int conf_key(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    rl_policy_t *p = dst;
    char sub[CONF_PATH_MAX];
    size_t i;
    int j;

    if (!json_is_array(v) || json_array_size(v) > CONF_MAX_KEY) {
        return conf_fail(c, path, "must be an array of 0 to %d key fields", CONF_MAX_KEY);
    }
    if (json_array_size(v) == 0) {
        return 0;
    }
    p->key = calloc(json_array_size(v), sizeof(*p->key));
    if (p->key == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    for (i = 0; i < json_array_size(v); i++) {
        json_t *item = json_array_get(v, i);
        rl_key_field_t *f = &p->key[i];

        conf_path_index(sub, sizeof(sub), path, i);
        if (!json_is_string(item)) {
            return conf_fail(c, sub, "must be a string");
        }
        p->nkey++;
        if (conf_key_field(c, sub, json_string_value(item), p, f) != 0) {
            return -1;
        }
        for (j = 0; j < (int)i; j++) {
            if (p->key[j].kind == f->kind &&
                (f->name == NULL || strcmp(p->key[j].name, f->name) == 0)) {
                return conf_fail(c, sub, "\"%s\" repeats key[%d]", f->spec, j);
            }
        }
    }
    return 0;
}

static const conf_field_t test_fields[] = {
    { "header", conf_header_name, offsetof(rl_test_rule_t, header), 1, NULL },
    { "value", conf_string, offsetof(rl_test_rule_t, value), 1, NULL },
    { "limits", conf_test_limits, 0, 1, NULL },
};

/* "test": allocated into *(rl_test_rule_t **)dst. */
static int conf_test(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    rl_test_rule_t **t = dst;

    *t = calloc(1, sizeof(**t));
    if (*t == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    return conf_object(c, path, v, test_fields, CONF_NELEM(test_fields), *t);
}

/* "deny.body": any JSON value, deep-copied into *(json_t **)dst. */
static int conf_json(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    json_t **out = dst;

    json_decref(*out);
    *out = json_deep_copy(v);
    if (*out == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    return 0;
}

static const conf_field_t deny_fields[] = {
    { "status", conf_int, offsetof(rl_policy_t, deny_status), 0, &range_status },
    { "body", conf_json, offsetof(rl_policy_t, deny_body), 0, NULL },
};

/* "deny": dst is the policy. */
static int conf_deny(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    return conf_object(c, path, v, deny_fields, CONF_NELEM(deny_fields), dst);
}

/* "name" of a policy: an identifier not used by an earlier policy. */
static int conf_policy_name(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                            const void *arg)
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

/* Table order is parse order: match comes before key, which checks
 * path.NAME against the compiled pattern. */
static const conf_field_t policy_fields[] = {
    { "name", conf_policy_name, offsetof(rl_policy_t, name), 1, NULL },
    { "match", conf_match, 0, 1, NULL },
    { "key", conf_key, 0, 0, NULL },
    { "limits", conf_policy_limits, 0, 1, NULL },
    { "test", conf_test, offsetof(rl_policy_t, test), 0, NULL },
    { "headers", conf_enum, offsetof(rl_policy_t, headers), 0, &enum_headers },
    { "failure_mode", conf_enum, offsetof(rl_policy_t, failure_open), 0, &enum_failure },
    { "deny", conf_deny, 0, 0, NULL },
    { "mode", conf_enum, offsetof(rl_policy_t, shadow), 0, &enum_mode },
};

/* "policies": an array (may be empty) of policies; dst is the conf. */
static int conf_policies(conf_ctx_t *c, const char *path, json_t *v, void *dst,
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
        p->headers = RL_HEADERS_X_RATELIMIT;
        p->failure_open = 1;
        p->deny_status = 429;
        conf_path_index(sub, sizeof(sub), path, i);
        if (conf_object(c, sub, json_array_get(v, i), policy_fields, CONF_NELEM(policy_fields),
                        p) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Top level
 * ---------------------------------------------------------------------- */

static const conf_field_t http_fields[] = {
    { "max_body_bytes", conf_int64, offsetof(rl_conf_http_t, max_body_bytes), 0, &range_http },
    { "max_header_bytes", conf_int64, offsetof(rl_conf_http_t, max_header_bytes), 0,
      &range_http },
    { "read_timeout_ms", conf_int64, offsetof(rl_conf_http_t, read_timeout_ms), 0,
      &range_http },
    { "idle_timeout_ms", conf_int64, offsetof(rl_conf_http_t, idle_timeout_ms), 0,
      &range_http },
    { "max_connections", conf_int64, offsetof(rl_conf_http_t, max_connections), 0,
      &range_http },
};

/* "http": dst is conf->http. */
static int conf_http(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    return conf_object(c, path, v, http_fields, CONF_NELEM(http_fields), dst);
}

static const conf_field_t store_fields[] = {
    { "type", conf_enum, offsetof(rl_conf_store_t, type), 0, &enum_store_type },
    { "address", conf_address, 0, 0, NULL },
    { "timeout_ms", conf_int, offsetof(rl_conf_store_t, timeout_ms), 0, &range_timeout },
    { "prefix", conf_ident, offsetof(rl_conf_store_t, prefix), 0, NULL },
    { "username", conf_string, offsetof(rl_conf_store_t, username), 0, NULL },
    { "password", conf_string, offsetof(rl_conf_store_t, password), 0, NULL },
    { "db", conf_int, offsetof(rl_conf_store_t, db), 0, &range_db },
};

/* "store": dst is conf->store. A username needs a password (AUTH takes
 * both or the password alone). */
static int conf_store(conf_ctx_t *c, const char *path, json_t *v, void *dst, const void *arg)
{
    rl_conf_store_t *st = dst;
    char sub[CONF_PATH_MAX];

    if (conf_object(c, path, v, store_fields, CONF_NELEM(store_fields), dst) != 0) {
        return -1;
    }
    if (st->username != NULL && st->password == NULL) {
        conf_path_field(sub, sizeof(sub), path, "username");
        return conf_fail(c, sub, "needs store.password");
    }
    return 0;
}

static const conf_field_t forward_auth_fields[] = {
    { "deny_status", conf_int, offsetof(rl_conf_forward_auth_t, deny_status), 0, &range_status },
    { "tenant_header", conf_header_name, offsetof(rl_conf_forward_auth_t, tenant_header), 0,
      NULL },
    { "user_header", conf_header_name, offsetof(rl_conf_forward_auth_t, user_header), 0, NULL },
};

/* "forward_auth": dst is conf->forward_auth. */
static int conf_forward_auth(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                             const void *arg)
{
    return conf_object(c, path, v, forward_auth_fields, CONF_NELEM(forward_auth_fields), dst);
}

static const conf_field_t top_fields[] = {
    { "listen", conf_listen, 0, 0, NULL },
    { "workers", conf_int, offsetof(rl_conf_t, workers), 0, &range_workers },
    { "log_level", conf_enum_str, offsetof(rl_conf_t, log_level), 0, &enum_log_level },
    { "http", conf_http, offsetof(rl_conf_t, http), 0, NULL },
    { "store", conf_store, offsetof(rl_conf_t, store), 0, NULL },
    { "policies", conf_policies, 0, 1, NULL },
    { "forward_auth", conf_forward_auth, offsetof(rl_conf_t, forward_auth), 0, NULL },
};

/* Fills the defaults that are not strings (strings are set after the
 * parse, where still NULL). */
static void conf_defaults(rl_conf_t *conf)
{
    conf->listen_port = 8080;
    conf->http.max_body_bytes = 10485760;
    conf->http.max_header_bytes = 65536;
    conf->http.read_timeout_ms = 10000;
    conf->http.idle_timeout_ms = 60000;
    conf->http.max_connections = 10000;
    conf->store.type = RL_STORE_REDIS;
    conf->store.port = 6379;
    conf->store.timeout_ms = 50;
}

/* Sets each string default that the file left unset. */
static int conf_string_defaults(conf_ctx_t *c, rl_conf_t *conf)
{
    static const struct {
        size_t offset;
        const char *value;
    } defaults[] = {
        { offsetof(rl_conf_t, listen_host), "127.0.0.1" },
        { offsetof(rl_conf_t, log_level), "info" },
        { offsetof(rl_conf_t, store) + offsetof(rl_conf_store_t, host), "127.0.0.1" },
        { offsetof(rl_conf_t, store) + offsetof(rl_conf_store_t, prefix), "rl" },
        { offsetof(rl_conf_t, forward_auth) + offsetof(rl_conf_forward_auth_t, tenant_header),
          "x-tenant-id" },
        { offsetof(rl_conf_t, forward_auth) + offsetof(rl_conf_forward_auth_t, user_header),
          "x-user-id" },
    };
    size_t i;

    for (i = 0; i < CONF_NELEM(defaults); i++) {
        char **dst = (char **)((char *)conf + defaults[i].offset);

        if (*dst == NULL && conf_set_str(c, "config", dst, defaults[i].value) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Public API
 * ---------------------------------------------------------------------- */

/* Parses text; the returned conf is the caller's (rl_conf_free). */
rl_conf_t *rl_conf_parse(const char *text, size_t len, char *err, size_t errlen)
{
    conf_ctx_t c;
    json_error_t jerr;
    json_t *root = NULL;
    rl_conf_t *conf = NULL;
    char digest[65];

    if (errlen > 0) {
        err[0] = '\0';
    }
    c.err = err;
    c.errlen = errlen;
    c.cur_policy = 0;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(err, errlen, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        goto fail;
    }
    conf = calloc(1, sizeof(*conf));
    if (conf == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    c.conf = conf;
    conf_defaults(conf);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "top level: must be an object");
        goto fail;
    }
    if (conf_object(&c, "", root, top_fields, CONF_NELEM(top_fields), conf) != 0) {
        goto fail;
    }
    if (conf_string_defaults(&c, conf) != 0) {
        goto fail;
    }
    rl_sha256_hex(text, len, digest);
    memcpy(conf->hash, digest, 16);
    conf->hash[16] = '\0';
    json_decref(root);
    return conf;

fail:
    json_decref(root);
    rl_conf_free(conf);
    return NULL;
}

/* Reads the whole file at path, then rl_conf_parse. */
rl_conf_t *rl_conf_load(const char *path, char *err, size_t errlen)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0;
    size_t cap = 0;
    size_t n;
    rl_conf_t *conf = NULL;

    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    for (;;) {
        if (len == cap) {
            char *nb;

            cap = cap == 0 ? 65536 : cap * 2;
            nb = realloc(buf, cap);
            if (nb == NULL) {
                snprintf(err, errlen, "cannot read %s: %s", path, strerror(ENOMEM));
                goto done;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    conf = rl_conf_parse(buf, len, err, errlen);

done:
    if (f != NULL) {
        fclose(f);
    }
    free(buf);
    return conf;
}

/* Frees what policy p owns (not p itself); safe on a partly parsed one. */
static void conf_free_policy(rl_policy_t *p)
{
    int i;

    free(p->name);
    free(p->method);
    rl_pattern_free(&p->path);
    for (i = 0; i < p->nkey; i++) {
        free(p->key[i].name);
        free(p->key[i].spec);
    }
    free(p->key);
    free(p->limits);
    if (p->test != NULL) {
        free(p->test->header);
        free(p->test->value);
        free(p->test->limits);
        free(p->test);
    }
    json_decref(p->deny_body);
}

/* Frees conf and everything it owns; NULL is fine. */
void rl_conf_free(rl_conf_t *conf)
{
    int i;

    if (conf == NULL) {
        return;
    }
    for (i = 0; i < conf->npolicies; i++) {
        conf_free_policy(&conf->policies[i]);
    }
    free(conf->policies);
    free(conf->listen_host);
    free(conf->log_level);
    free(conf->store.host);
    free(conf->store.prefix);
    free(conf->store.username);
    free(conf->store.password);
    free(conf->forward_auth.tenant_header);
    free(conf->forward_auth.user_header);
    free(conf);
}

/* The policy called name, borrowed from conf; NULL if none. */
const rl_policy_t *rl_conf_policy(const rl_conf_t *conf, const char *name)
{
    int i;

    for (i = 0; i < conf->npolicies; i++) {
        if (strcmp(conf->policies[i].name, name) == 0) {
            return &conf->policies[i];
        }
    }
    return NULL;
}
