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

#include <unistd.h>
#include <openssl/ssl.h>

#include "algo_mem.h"
#include "policy.h"
#include "redis_tls.h"
#include "util.h"

#define CONF_PATH_MAX 256
#define CONF_IDENT_MAX 64
#define CONF_MAX_KEY 8
#define CONF_REQUESTS_MAX 1000000000000LL
#define CONF_HTTP_MAX 2147483647LL
#define CONF_MAX_NODES 64

/* ------------------------------------------------------------------------
 * Parsing context, errors and paths
 * ---------------------------------------------------------------------- */

typedef struct conf_ctx {
    char *err;
    size_t errlen;
    rl_conf_t *conf; /* being built */
    int cur_policy;  /* index of the policy being parsed */
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
static void conf_path_join(char *out, size_t outlen, const char *a,
                           const char *b, const char *c)
{
    const char *parts[3] = {a, b, c};
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
static void conf_path_field(char *out, size_t outlen, const char *parent,
                            const char *name)
{
    conf_path_join(out, outlen, parent, parent[0] == '\0' ? "" : ".", name);
}

/* Appends an array index to parent into out ("limits" + 2 -> "limits[2]"). */
static void conf_path_index(char *out, size_t outlen, const char *parent,
                            size_t i)
{
    char idx[32];

    snprintf(idx, sizeof(idx), "[%zu]", i);
    conf_path_join(out, outlen, parent, idx, "");
}

/* Replaces *dst (freed) by a copy of s. Returns 0 or -1 on no memory. */
static int conf_set_str(conf_ctx_t *c, const char *path, char **dst,
                        const char *s)
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
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz01234"
                     "56789_.-") == n;
}

/* 1 if s is a non-empty HTTP header name (an RFC 9110 token). */
static int conf_is_header_name(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
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
static int conf_object(conf_ctx_t *c, const char *path, json_t *obj,
                       const conf_field_t *fields, size_t nfields, void *base)
{
    char sub[CONF_PATH_MAX];
    const char *name;
    json_t *v;
    size_t i;

    if (!json_is_object(obj)) {
        return conf_fail(c, path, "must be an object");
    }
    json_object_foreach(obj, name, v)
    {
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
        if (fields[i].parse(c, sub, v, (char *)base + fields[i].offset,
                            fields[i].arg) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Scalar parsers
 * ---------------------------------------------------------------------- */

/* Reads an integer within range; writes it to *(int64_t *)dst. */
static int conf_int64(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                      const void *arg)
{
    const conf_range_t *r = arg;
    json_int_t n;

    if (!json_is_integer(v) || (n = json_integer_value(v)) < r->min ||
        n > r->max) {
        return conf_fail(c, path, "must be an integer from %lld to %lld",
                         (long long)r->min, (long long)r->max);
    }
    *(int64_t *)dst = (int64_t)n;
    return 0;
}

/* Same as conf_int64 for an int field (ranges fit an int). */
static int conf_int(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                    const void *arg)
{
    int64_t n = 0;

    if (conf_int64(c, path, v, &n, arg) != 0) {
        return -1;
    }
    *(int *)dst = (int)n;
    return 0;
}

/* Reads a string into *(char **)dst (replacing any default). */
static int conf_string(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                       const void *arg)
{
    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    return conf_set_str(c, path, dst, json_string_value(v));
}

/* Reads a [A-Za-z0-9_.-]{1,64} string into *(char **)dst. */
static int conf_ident(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                      const void *arg)
{
    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    if (!conf_is_ident(json_string_value(v))) {
        return conf_fail(
            c, path, "\"%s\" must be 1 to 64 characters of A-Z a-z 0-9 _ . -",
            json_string_value(v));
    }
    return conf_set_str(c, path, dst, json_string_value(v));
}

/* Reads a header name, stored lower-case, into *(char **)dst. */
static int conf_header_name(conf_ctx_t *c, const char *path, json_t *v,
                            void *dst, const void *arg)
{
    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    if (!conf_is_header_name(json_string_value(v))) {
        return conf_fail(c, path, "\"%s\" is not a header name",
                         json_string_value(v));
    }
    if (conf_set_str(c, path, dst, json_string_value(v)) != 0) {
        return -1;
    }
    conf_lower(*(char **)dst);
    return 0;
}

/* Looks s up in e; returns the item or NULL. */
static const conf_enum_item_t *conf_enum_find(const conf_enum_t *e,
                                              const char *s)
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
static int conf_enum_fail(conf_ctx_t *c, const char *path, const conf_enum_t *e,
                          const char *s)
{
    char list[256];
    size_t used = 0;
    size_t i;

    list[0] = '\0';
    for (i = 0; i < e->n && used < sizeof(list); i++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s%s",
                         i == 0 ? "" : ", ", e->items[i].name);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
    return conf_fail(c, path, "\"%s\" is not one of %s", s, list);
}

/* Reads one of e's names; writes its value to *(int *)dst. */
static int conf_enum(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                     const void *arg)
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
        return conf_fail(c, path, "\"%s\" is not a duration",
                         json_string_value(v));
    }
    return 0;
}

/* Splits "host:port" or "[v6]:port" into a new *host and *port within
 * [minport, 65535]. */
static int conf_hostport(conf_ctx_t *c, const char *path, json_t *v,
                         char **host, int *port, int minport)
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
        return conf_fail(c, path, "\"%s\": port must be from %d to 65535", s,
                         minport);
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
static int conf_listen(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                       const void *arg)
{
    rl_conf_t *conf = dst;

    return conf_hostport(c, path, v, &conf->listen_host, &conf->listen_port, 0);
}

/* Reads a Redis "host:port" into *host and *port. Workers never resolve
 * names (a blocking call on the hot path), so the host must be numeric,
 * or localhost. */
static int conf_redis_hostport(conf_ctx_t *c, const char *path, json_t *v,
                               char **host, int *port)
{
    struct in6_addr a6;
    struct in_addr a4;

    if (conf_hostport(c, path, v, host, port, 1) != 0) {
        return -1;
    }
    if (strcmp(*host, "localhost") != 0 &&
        inet_pton(AF_INET, *host, &a4) != 1 &&
        inet_pton(AF_INET6, *host, &a6) != 1) {
        return conf_fail(c, path,
                         "\"%s\" must be a numeric IP address or localhost",
                         json_string_value(v));
    }
    return 0;
}

/* "store.address": dst is the store section. */
static int conf_address(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                        const void *arg)
{
    rl_conf_store_t *st = dst;

    return conf_redis_hostport(c, path, v, &st->host, &st->port);
}

/* "store.nodes": 1..64 distinct seed nodes; dst is the store section. */
static int conf_nodes(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                      const void *arg)
{
    rl_conf_store_t *st = dst;
    char sub[CONF_PATH_MAX];
    size_t i;
    int j;

    if (!json_is_array(v) || json_array_size(v) < 1 ||
        json_array_size(v) > CONF_MAX_NODES) {
        return conf_fail(c, path,
                         "must be an array of 1 to %d \"host:port\" strings",
                         CONF_MAX_NODES);
    }
    st->nodes = calloc(json_array_size(v), sizeof(*st->nodes));
    if (st->nodes == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    for (i = 0; i < json_array_size(v); i++) {
        rl_conf_node_t *n = &st->nodes[i];

        conf_path_index(sub, sizeof(sub), path, i);
        st->nnodes++;
        if (conf_redis_hostport(c, sub, json_array_get(v, i), &n->host,
                                &n->port) != 0) {
            return -1;
        }
        for (j = 0; j < (int)i; j++) {
            if (st->nodes[j].port == n->port &&
                strcmp(st->nodes[j].host, n->host) == 0) {
                return conf_fail(c, sub, "\"%s\" repeats nodes[%d]",
                                 json_string_value(json_array_get(v, i)), j);
            }
        }
    }
    return 0;
}

/* Reads true or false into *(int *)dst. */
static int conf_bool(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                     const void *arg)
{
    if (!json_is_boolean(v)) {
        return conf_fail(c, path, "must be true or false");
    }
    *(int *)dst = json_is_true(v);
    return 0;
}

/* Reads the path of a file ratelimitd must be able to read, into
 * *(char **)dst. */
static int conf_file(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                     const void *arg)
{
    const char *s;

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    s = json_string_value(v);
    if (s[0] == '\0' || access(s, R_OK) != 0) {
        return conf_fail(c, path, "cannot read \"%s\": %s", s,
                         s[0] == '\0' ? "empty path" : strerror(errno));
    }
    return conf_set_str(c, path, dst, s);
}

/* ------------------------------------------------------------------------
 * Value tables
 * ---------------------------------------------------------------------- */

static const conf_range_t range_workers = {0, 256};
static const conf_range_t range_timeout = {1, 60000};
static const conf_range_t range_db = {0, 15};
static const conf_range_t range_http = {1, CONF_HTTP_MAX};
static const conf_range_t range_requests = {1, CONF_REQUESTS_MAX};
static const conf_range_t range_status = {400, 599};
static const conf_range_t range_refresh = {100, 3600000};

static const conf_enum_item_t log_level_items[] = {
    {"debug", 0},
    {"info", 1},
    {"warn", 2},
    {"error", 3},
};
static const conf_enum_t enum_log_level = {log_level_items,
                                           CONF_NELEM(log_level_items)};

static const conf_enum_item_t store_type_items[] = {
    {"redis", RL_STORE_REDIS},
    {"memory", RL_STORE_MEMORY},
};
static const conf_enum_t enum_store_type = {store_type_items,
                                            CONF_NELEM(store_type_items)};

static const conf_enum_item_t algo_items[] = {
    {"gcra", RL_ALGO_GCRA},
    {"fixed_window", RL_ALGO_FIXED_WINDOW},
    {"sliding_window", RL_ALGO_SLIDING_WINDOW},
};
static const conf_enum_t enum_algo = {algo_items, CONF_NELEM(algo_items)};

/* Key suffix letter per algorithm, indexed by rl_algo_t. */
static const char algo_letters[] = {'g', 'f', 's'};

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
    {"requests", conf_int64, offsetof(rl_limit_t, requests), 1,
     &range_requests},
    {"per", conf_duration, offsetof(rl_limit_t, period_ms), 1, NULL},
    {"algorithm", conf_enum, offsetof(rl_limit_t, algo), 0, &enum_algo},
    {"burst", conf_int64, offsetof(rl_limit_t, burst), 0, &range_requests},
    {"block", conf_duration, offsetof(rl_limit_t, block_ms), 0, NULL},
};

void rl_conf_limit_suffix(char *buf, size_t len, const char *prefix,
                          rl_algo_t algo, int64_t period_ms)
{
    size_t i = 0;

    while (i + 1 < CONF_NELEM(suffix_units) &&
           period_ms % suffix_units[i].ms != 0) {
        i++;
    }
    snprintf(buf, len, "%s%c%lld%s", prefix, algo_letters[algo],
             (long long)(period_ms / suffix_units[i].ms), suffix_units[i].name);
}

/* Parses an array of 1..RL_MAX_LIMITS limits into a new *out / *n;
 * suffixes get sprefix in front ("" or "t"). */
static int conf_limits(conf_ctx_t *c, const char *path, json_t *v,
                       const char *sprefix, rl_limit_t **out, int *n)
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
        l->algo = RL_ALGO_GCRA;
        if (conf_object(c, sub, json_array_get(v, i), limit_fields,
                        CONF_NELEM(limit_fields), l) != 0) {
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

/* "limits" of a policy: dst is the policy. */
static int conf_policy_limits(conf_ctx_t *c, const char *path, json_t *v,
                              void *dst, const void *arg)
{
    rl_policy_t *p = dst;

    return conf_limits(c, path, v, "", &p->limits, &p->nlimits);
}

/* "limits" of a test rule: dst is the rule. */
static int conf_test_limits(conf_ctx_t *c, const char *path, json_t *v,
                            void *dst, const void *arg)
{
    rl_test_rule_t *t = dst;

    return conf_limits(c, path, v, "t", &t->limits, &t->nlimits);
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

static const conf_field_t match_fields[] = {
    {"method", conf_method, offsetof(rl_policy_t, method), 0, NULL},
    {"path", conf_pattern, offsetof(rl_policy_t, path), 1, NULL},
};

/* "match": dst is the policy. */
static int conf_match(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                      const void *arg)
{
    return conf_object(c, path, v, match_fields, CONF_NELEM(match_fields), dst);
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
 * policy's pattern. */
static int conf_key_field(conf_ctx_t *c, const char *path, const char *s,
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
        "path.NAME, header.NAME)",
        s);
}

/* "key": an array of 0..8 field specs; dst is the policy. */
static int conf_key(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                    const void *arg)
{
    rl_policy_t *p = dst;
    char sub[CONF_PATH_MAX];
    size_t i;
    int j;

    if (!json_is_array(v) || json_array_size(v) > CONF_MAX_KEY) {
        return conf_fail(c, path, "must be an array of 0 to %d key fields",
                         CONF_MAX_KEY);
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
    {"header", conf_header_name, offsetof(rl_test_rule_t, header), 1, NULL},
    {"value", conf_string, offsetof(rl_test_rule_t, value), 1, NULL},
    {"limits", conf_test_limits, 0, 1, NULL},
};

/* "test": allocated into *(rl_test_rule_t **)dst. */
static int conf_test(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                     const void *arg)
{
    rl_test_rule_t **t = dst;

    *t = calloc(1, sizeof(**t));
    if (*t == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    return conf_object(c, path, v, test_fields, CONF_NELEM(test_fields), *t);
}

/* "deny.body": any JSON value, deep-copied into *(json_t **)dst. */
static int conf_json(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                     const void *arg)
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
    {"status", conf_int, offsetof(rl_policy_t, deny_status), 0, &range_status},
    {"body", conf_json, offsetof(rl_policy_t, deny_body), 0, NULL},
};

/* "deny": dst is the policy. */
static int conf_deny(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                     const void *arg)
{
    return conf_object(c, path, v, deny_fields, CONF_NELEM(deny_fields), dst);
}

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
    return 0;
}

/* Table order is parse order: match comes before key, which checks
 * path.NAME against the compiled pattern. */
static const conf_field_t policy_fields[] = {
    {"name", conf_policy_name, offsetof(rl_policy_t, name), 1, NULL},
    {"match", conf_match, 0, 1, NULL},
    {"key", conf_key, 0, 0, NULL},
    {"limits", conf_policy_limits, 0, 1, NULL},
    {"test", conf_test, offsetof(rl_policy_t, test), 0, NULL},
    {"headers", conf_enum, offsetof(rl_policy_t, headers), 0, &enum_headers},
    {"failure_mode", conf_enum, offsetof(rl_policy_t, failure_open), 0,
     &enum_failure},
    {"deny", conf_deny, 0, 0, NULL},
    {"mode", conf_enum, offsetof(rl_policy_t, shadow), 0, &enum_mode},
    {"verify_tenant", conf_verify_tenant, offsetof(rl_policy_t, verify_tenant),
     0, NULL},
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
        if (conf_object(c, sub, json_array_get(v, i), policy_fields,
                        CONF_NELEM(policy_fields), p) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Callers, tenants and TLS
 *
 * A principal (a caller of the API, or a tenant) is read into a
 * conf_principal_src_t first, so that its secret can come from exactly one
 * of "secret", "secret_file" and "secret_env", then moved into an
 * rl_principal_t. No error message ever holds a secret's value.
 * ---------------------------------------------------------------------- */

#define CONF_PRINCIPAL_ID_MAX 128
#define CONF_PRINCIPALS_MAX 100000
#define CONF_SECRET_MIN 16
#define CONF_SECRET_MAX 4096
#define CONF_PROTECT_MAX 16

typedef struct conf_principal_src {
    char *id;
    char *secret;
    char *secret_file;
    char *secret_env;
    char *key_sha256;
    int suspended;
} conf_principal_src_t;

static const conf_range_t range_skew = {1, 86400};
static const conf_range_t range_failures = {1, 1000000};

static const conf_enum_item_t status_items[] = {
    {"active", 0},
    {"suspended", 1},
};
static const conf_enum_t enum_status = {status_items, CONF_NELEM(status_items)};

static const conf_enum_item_t auth_mode_items[] = {
    {"none", RL_AUTH_NONE},
    {"hmac", RL_AUTH_HMAC},
    {"bearer", RL_AUTH_BEARER},
};
static const conf_enum_t enum_auth_mode = {auth_mode_items,
                                           CONF_NELEM(auth_mode_items)};

static const conf_enum_item_t tls_version_items[] = {
    {"1.2", 12},
    {"1.3", 13},
};
static const conf_enum_t enum_tls_version = {tls_version_items,
                                             CONF_NELEM(tls_version_items)};

/* Overwrites then frees s (a secret or a copy of one); NULL is fine. */
static void conf_free_secret(char *s)
{
    if (s != NULL) {
        rl_wipe(s, strlen(s));
        free(s);
    }
}

/* Frees n principals and the array (secrets wiped first). */
static void conf_free_principals(rl_principal_t *list, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        free(list[i].id);
        if (list[i].secret != NULL) {
            rl_wipe(list[i].secret, list[i].secret_len);
            free(list[i].secret);
        }
    }
    free(list);
}

/* Frees what a principal source holds. */
static void conf_principal_src_free(conf_principal_src_t *src)
{
    free(src->id);
    conf_free_secret(src->secret);
    free(src->secret_file);
    free(src->secret_env);
    free(src->key_sha256);
}

/* "id" of a principal: 1-128 visible ASCII characters (it travels in
 * X-Caller-Id and X-Tenant-Id headers). */
static int conf_principal_id(conf_ctx_t *c, const char *path, json_t *v,
                             void *dst, const void *arg)
{
    const char *s;
    size_t i, n;

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    s = json_string_value(v);
    n = json_string_length(v);
    for (i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            break;
        }
    }
    if (n == 0 || n > CONF_PRINCIPAL_ID_MAX || i < n) {
        return conf_fail(c, path, "must be 1 to %d visible ASCII characters",
                         CONF_PRINCIPAL_ID_MAX);
    }
    return conf_set_str(c, path, dst, s);
}

static const conf_field_t principal_fields[] = {
    {"id", conf_principal_id, offsetof(conf_principal_src_t, id), 1, NULL},
    {"secret", conf_string, offsetof(conf_principal_src_t, secret), 0, NULL},
    {"secret_file", conf_string, offsetof(conf_principal_src_t, secret_file), 0,
     NULL},
    {"secret_env", conf_string, offsetof(conf_principal_src_t, secret_env), 0,
     NULL},
    {"key_sha256", conf_string, offsetof(conf_principal_src_t, key_sha256), 0,
     NULL},
    {"status", conf_enum, offsetof(conf_principal_src_t, suspended), 0,
     &enum_status},
};

/* Reads the secret file at fname into a new *out / *len, without its
 * final line break. */
static int conf_read_secret_file(conf_ctx_t *c, const char *path,
                                 const char *fname, unsigned char **out,
                                 size_t *len)
{
    unsigned char buf[CONF_SECRET_MAX + 1];
    FILE *f = fopen(fname, "rb");
    size_t n;
    int rc = -1;

    if (f == NULL) {
        return conf_fail(c, path, "cannot read %s: %s", fname, strerror(errno));
    }
    n = fread(buf, 1, sizeof(buf), f);
    if (ferror(f)) {
        conf_fail(c, path, "cannot read %s: %s", fname, strerror(errno));
        goto done;
    }
    if (n > CONF_SECRET_MAX) {
        conf_fail(c, path, "%s is larger than %d bytes", fname,
                  CONF_SECRET_MAX);
        goto done;
    }
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r') {
            n--;
        }
    }
    *out = malloc(n + 1);
    if (*out == NULL) {
        conf_fail(c, path, "out of memory");
        goto done;
    }
    memcpy(*out, buf, n);
    (*out)[n] = '\0';
    *len = n;
    rc = 0;

done:
    rl_wipe(buf, sizeof(buf));
    fclose(f);
    return rc;
}

/* Moves src's secret, from whichever single source it names, into p. */
static int conf_principal_secret(conf_ctx_t *c, const char *path,
                                 conf_principal_src_t *src, rl_principal_t *p)
{
    char sub[CONF_PATH_MAX];
    int sources = (src->secret != NULL) + (src->secret_file != NULL) +
                  (src->secret_env != NULL);

    if (src->key_sha256 != NULL) {
        conf_path_field(sub, sizeof(sub), path, "key_sha256");
        return conf_fail(c, sub, "only for auth mode \"bearer\"");
    }
    if (sources != 1) {
        return conf_fail(
            c, path, "needs exactly one of secret, secret_file, secret_env");
    }
    if (src->secret != NULL) {
        conf_path_field(sub, sizeof(sub), path, "secret");
        p->secret_len = strlen(src->secret);
        p->secret = (unsigned char *)src->secret;
        src->secret = NULL;
    } else if (src->secret_file != NULL) {
        conf_path_field(sub, sizeof(sub), path, "secret_file");
        if (conf_read_secret_file(c, sub, src->secret_file, &p->secret,
                                  &p->secret_len) != 0) {
            return -1;
        }
    } else {
        const char *val = getenv(src->secret_env);

        conf_path_field(sub, sizeof(sub), path, "secret_env");
        if (val == NULL || val[0] == '\0') {
            return conf_fail(c, sub,
                             "environment variable %s is not set or empty",
                             src->secret_env);
        }
        p->secret_len = strlen(val);
        p->secret = (unsigned char *)strdup(val);
        if (p->secret == NULL) {
            return conf_fail(c, sub, "out of memory");
        }
    }
    if (p->secret_len < CONF_SECRET_MIN || p->secret_len > CONF_SECRET_MAX) {
        return conf_fail(c, sub, "the secret must be %d to %d bytes long",
                         CONF_SECRET_MIN, CONF_SECRET_MAX);
    }
    return 0;
}

/* Moves src's key hash into p (bearer callers). */
static int conf_principal_key(conf_ctx_t *c, const char *path,
                              conf_principal_src_t *src, rl_principal_t *p)
{
    char sub[CONF_PATH_MAX];
    size_t i;

    if (src->secret != NULL || src->secret_file != NULL ||
        src->secret_env != NULL) {
        return conf_fail(c, path,
                         "auth mode \"bearer\" takes key_sha256, not a secret");
    }
    conf_path_field(sub, sizeof(sub), path, "key_sha256");
    if (src->key_sha256 == NULL) {
        return conf_fail(c, sub, "is required");
    }
    if (strlen(src->key_sha256) != 64 ||
        strspn(src->key_sha256, "0123456789abcdefABCDEF") != 64) {
        return conf_fail(c, sub,
                         "must be 64 hex digits (the SHA-256 of the key)");
    }
    for (i = 0; i < 64; i++) {
        char ch = src->key_sha256[i];
        p->key_sha256[i] =
            (ch >= 'A' && ch <= 'F') ? (char)(ch - 'A' + 'a') : ch;
    }
    p->key_sha256[64] = '\0';
    return 0;
}

/* Orders principals by id (byte order), so lookups can bisect. */
static int conf_principal_cmp(const void *a, const void *b)
{
    return strcmp(((const rl_principal_t *)a)->id,
                  ((const rl_principal_t *)b)->id);
}

/* Parses an array of principals at path into a new *out / *n, sorted by
 * id. mode is RL_AUTH_HMAC (secrets) or RL_AUTH_BEARER (key hashes). */
static int conf_principals(conf_ctx_t *c, const char *path, json_t *v,
                           rl_principal_t **out, int *n, rl_auth_mode_t mode)
{
    char sub[CONF_PATH_MAX];
    size_t i;
    int rc;

    if (!json_is_array(v) || json_array_size(v) > CONF_PRINCIPALS_MAX) {
        return conf_fail(c, path, "must be an array of at most %d entries",
                         CONF_PRINCIPALS_MAX);
    }
    if (json_array_size(v) == 0) {
        return 0;
    }
    *out = calloc(json_array_size(v), sizeof(**out));
    if (*out == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    for (i = 0; i < json_array_size(v); i++) {
        conf_principal_src_t src;
        rl_principal_t *p = &(*out)[i];

        memset(&src, 0, sizeof(src));
        (*n)++;
        conf_path_index(sub, sizeof(sub), path, i);
        rc = conf_object(c, sub, json_array_get(v, i), principal_fields,
                         CONF_NELEM(principal_fields), &src);
        if (rc == 0) {
            p->id = src.id;
            src.id = NULL;
            p->suspended = src.suspended;
            rc = mode == RL_AUTH_BEARER
                     ? conf_principal_key(c, sub, &src, p)
                     : conf_principal_secret(c, sub, &src, p);
        }
        conf_principal_src_free(&src);
        if (rc != 0) {
            return -1;
        }
    }
    qsort(*out, (size_t)*n, sizeof(**out), conf_principal_cmp);
    for (i = 1; i < (size_t)*n; i++) {
        if (strcmp((*out)[i - 1].id, (*out)[i].id) == 0) {
            return conf_fail(c, path, "id \"%s\" appears more than once",
                             (*out)[i].id);
        }
    }
    return 0;
}

/* "auth.callers": dst is the auth section; "mode" was parsed first. */
static int conf_callers(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                        const void *arg)
{
    rl_conf_auth_t *a = dst;

    if (a->mode == RL_AUTH_NONE) {
        return conf_fail(c, path, "auth mode \"none\" takes no callers");
    }
    return conf_principals(c, path, v, &a->callers, &a->ncallers, a->mode);
}

/* "auth.protect_paths": endpoints open by default (/health, /ready,
 * /metrics) that should require caller authentication too. */
static int conf_protect_paths(conf_ctx_t *c, const char *path, json_t *v,
                              void *dst, const void *arg)
{
    rl_conf_auth_t *a = dst;
    char sub[CONF_PATH_MAX];
    size_t i;

    if (!json_is_array(v) || json_array_size(v) > CONF_PROTECT_MAX) {
        return conf_fail(c, path, "must be an array of at most %d paths",
                         CONF_PROTECT_MAX);
    }
    if (json_array_size(v) == 0) {
        return 0;
    }
    a->protect_paths = calloc(json_array_size(v), sizeof(*a->protect_paths));
    if (a->protect_paths == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    for (i = 0; i < json_array_size(v); i++) {
        json_t *item = json_array_get(v, i);

        conf_path_index(sub, sizeof(sub), path, i);
        if (!json_is_string(item) || json_string_value(item)[0] != '/') {
            return conf_fail(c, sub, "must be a path starting with \"/\"");
        }
        if (conf_set_str(c, sub, &a->protect_paths[i],
                         json_string_value(item)) != 0) {
            return -1;
        }
        a->nprotect++;
    }
    return 0;
}

/* Table order is parse order: callers need the mode. */
static const conf_field_t auth_fields[] = {
    {"mode", conf_enum, offsetof(rl_conf_auth_t, mode), 0, &enum_auth_mode},
    {"callers", conf_callers, 0, 0, NULL},
    {"max_clock_skew_s", conf_int64, offsetof(rl_conf_auth_t, max_clock_skew_s),
     0, &range_skew},
    {"max_failures", conf_int64, offsetof(rl_conf_auth_t, max_failures), 0,
     &range_failures},
    {"failure_window", conf_duration,
     offsetof(rl_conf_auth_t, failure_window_ms), 0, NULL},
    {"protect_paths", conf_protect_paths, 0, 0, NULL},
};

/* "auth": dst is conf->auth. hmac and bearer need at least one caller. */
static int conf_auth(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                     const void *arg)
{
    rl_conf_auth_t *a = dst;
    char sub[CONF_PATH_MAX];

    if (conf_object(c, path, v, auth_fields, CONF_NELEM(auth_fields), dst) !=
        0) {
        return -1;
    }
    if (a->mode != RL_AUTH_NONE && a->ncallers == 0) {
        conf_path_field(sub, sizeof(sub), path, "callers");
        return conf_fail(c, sub, "auth mode \"%s\" needs at least one caller",
                         a->mode == RL_AUTH_HMAC ? "hmac" : "bearer");
    }
    return 0;
}

/* "tenants": the tenants whose signatures policies with "verify_tenant"
 * check; dst is the conf. */
static int conf_tenants(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                        const void *arg)
{
    rl_conf_t *conf = dst;

    return conf_principals(c, path, v, &conf->tenants, &conf->ntenants,
                           RL_AUTH_HMAC);
}

static const conf_field_t listen_tls_fields[] = {
    {"cert_file", conf_string, offsetof(rl_conf_listen_tls_t, cert_file), 1,
     NULL},
    {"key_file", conf_string, offsetof(rl_conf_listen_tls_t, key_file), 1,
     NULL},
    {"min_version", conf_enum, offsetof(rl_conf_listen_tls_t, min_version), 0,
     &enum_tls_version},
};

/* "tls": dst is conf->tls. The files are loaded when the service starts
 * (and by --check-config), not here. */
static int conf_listen_tls(conf_ctx_t *c, const char *path, json_t *v,
                           void *dst, const void *arg)
{
    return conf_object(c, path, v, listen_tls_fields,
                       CONF_NELEM(listen_tls_fields), dst);
}

/* ------------------------------------------------------------------------
 * Top level
 * ---------------------------------------------------------------------- */

static const conf_field_t http_fields[] = {
    {"max_body_bytes", conf_int64, offsetof(rl_conf_http_t, max_body_bytes), 0,
     &range_http},
    {"max_header_bytes", conf_int64, offsetof(rl_conf_http_t, max_header_bytes),
     0, &range_http},
    {"read_timeout_ms", conf_int64, offsetof(rl_conf_http_t, read_timeout_ms),
     0, &range_http},
    {"idle_timeout_ms", conf_int64, offsetof(rl_conf_http_t, idle_timeout_ms),
     0, &range_http},
    {"max_connections", conf_int64, offsetof(rl_conf_http_t, max_connections),
     0, &range_http},
};

/* "http": dst is conf->http. */
static int conf_http(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                     const void *arg)
{
    return conf_object(c, path, v, http_fields, CONF_NELEM(http_fields), dst);
}

static const conf_field_t tls_fields[] = {
    {"ca_file", conf_file, offsetof(rl_conf_tls_t, ca_file), 0, NULL},
    {"cert_file", conf_file, offsetof(rl_conf_tls_t, cert_file), 0, NULL},
    {"key_file", conf_file, offsetof(rl_conf_tls_t, key_file), 0, NULL},
    {"server_name", conf_string, offsetof(rl_conf_tls_t, server_name), 0, NULL},
};

/* "store.tls": allocated into *(rl_conf_tls_t **)dst. The certificate
 * and key come as a pair, and are loaded once here so that a bad file
 * fails the config check instead of every connection. */
static int conf_tls(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                    const void *arg)
{
    rl_conf_tls_t **t = dst;
    char sub[CONF_PATH_MAX];
    char terr[384];
    const char *field;
    SSL_CTX *ctx;

    *t = calloc(1, sizeof(**t));
    if (*t == NULL) {
        return conf_fail(c, path, "out of memory");
    }
    if (conf_object(c, path, v, tls_fields, CONF_NELEM(tls_fields), *t) != 0) {
        return -1;
    }
    if (((*t)->cert_file == NULL) != ((*t)->key_file == NULL)) {
        conf_path_field(sub, sizeof(sub), path,
                        (*t)->cert_file == NULL ? "key_file" : "cert_file");
        return conf_fail(c, sub, "needs store.tls.%s",
                         (*t)->cert_file == NULL ? "cert_file" : "key_file");
    }
    if ((*t)->server_name != NULL && (*t)->server_name[0] == '\0') {
        conf_path_field(sub, sizeof(sub), path, "server_name");
        return conf_fail(c, sub, "must not be empty");
    }
    ctx = rl_redis_tls_ctx_new(*t, &field, terr, sizeof(terr));
    if (ctx == NULL) {
        if (field != NULL) {
            conf_path_field(sub, sizeof(sub), path, field);
        }
        return conf_fail(c, field != NULL ? sub : path, "%s", terr);
    }
    SSL_CTX_free(ctx);
    return 0;
}

static const conf_field_t store_fields[] = {
    {"type", conf_enum, offsetof(rl_conf_store_t, type), 0, &enum_store_type},
    {"address", conf_address, 0, 0, NULL},
    {"timeout_ms", conf_int, offsetof(rl_conf_store_t, timeout_ms), 0,
     &range_timeout},
    {"prefix", conf_ident, offsetof(rl_conf_store_t, prefix), 0, NULL},
    {"username", conf_string, offsetof(rl_conf_store_t, username), 0, NULL},
    {"password", conf_string, offsetof(rl_conf_store_t, password), 0, NULL},
    {"db", conf_int, offsetof(rl_conf_store_t, db), 0, &range_db},
    {"cluster", conf_bool, offsetof(rl_conf_store_t, cluster), 0, NULL},
    {"nodes", conf_nodes, 0, 0, NULL},
    {"refresh_interval_ms", conf_int,
     offsetof(rl_conf_store_t, refresh_interval_ms), 0, &range_refresh},
    {"tls", conf_tls, offsetof(rl_conf_store_t, tls), 0, NULL},
};

/* Store fields that only make sense in one mode: a field given in the
 * other mode is an error, not silently ignored. */
static const struct {
    const char *field;
    int cluster; /* the mode the field belongs to */
    const char *problem;
} store_mode_fields[] = {
    {"nodes", 1, "only applies with \"cluster\": true"},
    {"refresh_interval_ms", 1, "only applies with \"cluster\": true"},
    {"address", 0,
     "not used with \"cluster\": true; list the seed nodes in store.nodes"},
};

/* "store": dst is conf->store. A username needs a password (AUTH takes
 * both or the password alone); a cluster needs seed nodes and db 0. */
static int conf_store(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                      const void *arg)
{
    rl_conf_store_t *st = dst;
    char sub[CONF_PATH_MAX];
    size_t i;

    if (conf_object(c, path, v, store_fields, CONF_NELEM(store_fields), dst) !=
        0) {
        return -1;
    }
    if (st->username != NULL && st->password == NULL) {
        conf_path_field(sub, sizeof(sub), path, "username");
        return conf_fail(c, sub, "needs store.password");
    }
    for (i = 0; i < CONF_NELEM(store_mode_fields); i++) {
        if (store_mode_fields[i].cluster != st->cluster &&
            json_object_get(v, store_mode_fields[i].field) != NULL) {
            conf_path_field(sub, sizeof(sub), path, store_mode_fields[i].field);
            return conf_fail(c, sub, "%s", store_mode_fields[i].problem);
        }
    }
    if (st->cluster && st->nnodes == 0) {
        conf_path_field(sub, sizeof(sub), path, "nodes");
        return conf_fail(c, sub, "is required with \"cluster\": true");
    }
    if (st->cluster && st->db != 0) {
        conf_path_field(sub, sizeof(sub), path, "db");
        return conf_fail(
            c, sub,
            "must be 0 with \"cluster\": true (a cluster has one database)");
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Operations: admin, access_log, deny_cache
 * ---------------------------------------------------------------------- */

static const conf_range_t range_cache_entries = {0, 1048576};

/* Reads a number from 0 to 1 into *(double *)dst. */
static int conf_fraction(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                         const void *arg)
{
    double d;

    if (!json_is_number(v) || (d = json_number_value(v)) < 0.0 || d > 1.0) {
        return conf_fail(c, path, "must be a number from 0 to 1");
    }
    *(double *)dst = d;
    return 0;
}

/* Reads 64 hex digits (a SHA-256), stored lower-case, into *(char **)dst.
 * The value is never echoed in the error. */
static int conf_sha256(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                       const void *arg)
{
    const char *s;

    if (!json_is_string(v)) {
        return conf_fail(c, path, "must be a string");
    }
    s = json_string_value(v);
    if (strlen(s) != 64 || strspn(s, "0123456789abcdefABCDEF") != 64) {
        return conf_fail(
            c, path, "must be 64 hexadecimal digits (the SHA-256 of the key)");
    }
    if (conf_set_str(c, path, dst, s) != 0) {
        return -1;
    }
    conf_lower(*(char **)dst);
    return 0;
}

static const conf_field_t admin_fields[] = {
    {"enabled", conf_bool, offsetof(rl_conf_admin_t, enabled), 0, NULL},
    {"key_sha256", conf_sha256, offsetof(rl_conf_admin_t, key_sha256), 0, NULL},
};

/* "admin": dst is conf->admin. Enabled admin endpoints need a key. */
static int conf_admin(conf_ctx_t *c, const char *path, json_t *v, void *dst,
                      const void *arg)
{
    rl_conf_admin_t *a = dst;
    char sub[CONF_PATH_MAX];

    if (conf_object(c, path, v, admin_fields, CONF_NELEM(admin_fields), dst) !=
        0) {
        return -1;
    }
    if (a->enabled && a->key_sha256 == NULL) {
        conf_path_field(sub, sizeof(sub), path, "key_sha256");
        return conf_fail(c, sub, "is required when admin.enabled is true");
    }
    return 0;
}

static const conf_field_t access_log_fields[] = {
    {"sample", conf_fraction, offsetof(rl_conf_ops_t, access_log_sample), 0,
     NULL},
};

/* "access_log": dst is conf->ops. */
static int conf_access_log(conf_ctx_t *c, const char *path, json_t *v,
                           void *dst, const void *arg)
{
    return conf_object(c, path, v, access_log_fields,
                       CONF_NELEM(access_log_fields), dst);
}

static const conf_field_t deny_cache_fields[] = {
    {"entries", conf_int64, offsetof(rl_conf_ops_t, deny_cache_entries), 0,
     &range_cache_entries},
    {"max_ttl", conf_duration, offsetof(rl_conf_ops_t, deny_cache_max_ttl_ms),
     0, NULL},
};

/* "deny_cache": dst is conf->ops. */
static int conf_deny_cache(conf_ctx_t *c, const char *path, json_t *v,
                           void *dst, const void *arg)
{
    return conf_object(c, path, v, deny_cache_fields,
                       CONF_NELEM(deny_cache_fields), dst);
}

static const conf_field_t forward_auth_fields[] = {
    {"deny_status", conf_int, offsetof(rl_conf_forward_auth_t, deny_status), 0,
     &range_status},
    {"tenant_header", conf_header_name,
     offsetof(rl_conf_forward_auth_t, tenant_header), 0, NULL},
    {"user_header", conf_header_name,
     offsetof(rl_conf_forward_auth_t, user_header), 0, NULL},
};

/* "forward_auth": dst is conf->forward_auth. */
static int conf_forward_auth(conf_ctx_t *c, const char *path, json_t *v,
                             void *dst, const void *arg)
{
    return conf_object(c, path, v, forward_auth_fields,
                       CONF_NELEM(forward_auth_fields), dst);
}

static const conf_field_t top_fields[] = {
    {"listen", conf_listen, 0, 0, NULL},
    {"workers", conf_int, offsetof(rl_conf_t, workers), 0, &range_workers},
    {"log_level", conf_enum_str, offsetof(rl_conf_t, log_level), 0,
     &enum_log_level},
    {"http", conf_http, offsetof(rl_conf_t, http), 0, NULL},
    {"store", conf_store, offsetof(rl_conf_t, store), 0, NULL},
    /* auth and tenants before policies: verify_tenant checks tenants. */
    {"auth", conf_auth, offsetof(rl_conf_t, auth), 0, NULL},
    {"tenants", conf_tenants, 0, 0, NULL},
    {"tls", conf_listen_tls, offsetof(rl_conf_t, tls), 0, NULL},
    {"policies", conf_policies, 0, 1, NULL},
    {"admin", conf_admin, offsetof(rl_conf_t, admin), 0, NULL},
    {"access_log", conf_access_log, offsetof(rl_conf_t, ops), 0, NULL},
    {"deny_cache", conf_deny_cache, offsetof(rl_conf_t, ops), 0, NULL},
    {"forward_auth", conf_forward_auth, offsetof(rl_conf_t, forward_auth), 0,
     NULL},
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
    conf->store.refresh_interval_ms = 5000;
    conf->auth.max_clock_skew_s = 300;
    conf->auth.max_failures = 10;
    conf->auth.failure_window_ms = 60000;
    conf->tls.min_version = 12;
    conf->ops.deny_cache_entries = 16384;
    conf->ops.deny_cache_max_ttl_ms = 10000;
}

/* Sets each string default that the file left unset. */
static int conf_string_defaults(conf_ctx_t *c, rl_conf_t *conf)
{
    static const struct {
        size_t offset;
        const char *value;
    } defaults[] = {
        {offsetof(rl_conf_t, listen_host), "127.0.0.1"},
        {offsetof(rl_conf_t, log_level), "info"},
        {offsetof(rl_conf_t, store) + offsetof(rl_conf_store_t, host),
         "127.0.0.1"},
        {offsetof(rl_conf_t, store) + offsetof(rl_conf_store_t, prefix), "rl"},
        {offsetof(rl_conf_t, forward_auth) +
             offsetof(rl_conf_forward_auth_t, tenant_header),
         "x-tenant-id"},
        {offsetof(rl_conf_t, forward_auth) +
             offsetof(rl_conf_forward_auth_t, user_header),
         "x-user-id"},
    };
    size_t i;

    for (i = 0; i < CONF_NELEM(defaults); i++) {
        char **dst = (char **)((char *)conf + defaults[i].offset);

        if (*dst == NULL &&
            conf_set_str(c, "config", dst, defaults[i].value) != 0) {
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
        /* The parser quotes the text near the error ("near 'abc'"), which
         * may be part of a secret: only the position is reported. */
        char *near = strstr(jerr.text, " near '");
        if (near != NULL) {
            *near = '\0';
        }
        snprintf(err, errlen, "line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
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
    if (conf_object(&c, "", root, top_fields, CONF_NELEM(top_fields), conf) !=
        0) {
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
                snprintf(err, errlen, "cannot read %s: %s", path,
                         strerror(ENOMEM));
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
    if (buf != NULL) {
        rl_wipe(buf, len); /* the text may hold secrets */
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
    if (conf->store.password != NULL) {
        explicit_bzero(conf->store.password, strlen(conf->store.password));
    }
    free(conf->store.password);
    for (i = 0; i < conf->store.nnodes; i++) {
        free(conf->store.nodes[i].host);
    }
    free(conf->store.nodes);
    if (conf->store.tls != NULL) {
        free(conf->store.tls->ca_file);
        free(conf->store.tls->cert_file);
        free(conf->store.tls->key_file);
        free(conf->store.tls->server_name);
        free(conf->store.tls);
    }
    conf_free_principals(conf->auth.callers, conf->auth.ncallers);
    conf_free_principals(conf->tenants, conf->ntenants);
    for (i = 0; i < conf->auth.nprotect; i++) {
        free(conf->auth.protect_paths[i]);
    }
    free(conf->auth.protect_paths);
    free(conf->tls.cert_file);
    free(conf->tls.key_file);
    free(conf->admin.key_sha256);
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
