/* envoyproxy/ratelimit YAML -> ratelimitd policies (see convert_envoy.h).
 *
 * Two steps, each its own section below, after convert_yaml.c has made
 * a node tree (with lines) of each file's YAML:
 *   1. node tree -> descriptor tree per domain, checking each field the
 *      way envoyproxy/ratelimit does (unknown fields, units, duplicate
 *      composite keys, values its YAML parser types as numbers) and
 *      naming what ratelimitd cannot express;
 *   2. descriptor trees -> a flat, ordered rule list -> JSON.
 * Both are linear in the file: composite keys and policy names are
 * looked up in hash sets (jansson objects), since per-value lists of
 * tens of thousands of entries are common.
 * Everything a conversion allocates belongs to its rl_convert_t. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "convert_envoy.h"
#include "convert_yaml.h"

#define CV_MAX_PATH 8         /* descriptor entries: ratelimitd's key cap */
#define CV_MAX_FILE (1 << 24) /* bytes of one file */
#define CV_NAME_MAX 64        /* policy name length */

/* A conversion: the files read so far (their names, for errors), the
 * domains with their descriptor trees, the first error. */
typedef struct cv_desc cv_desc_t;

/* One level of a descriptor tree (a domain's top or a descriptor's
 * children) in file order, which several files of a domain extend. */
typedef struct cv_level {
    cv_desc_t **d;
    size_t n, cap;
    json_t *seen; /* composite key -> index in d; NULL while empty */
} cv_level_t;

typedef struct cv_domain {
    char *name;
    cv_level_t top;
} cv_domain_t;

struct rl_convert {
    char **files;
    size_t nfiles;
    cv_domain_t *domains;
    size_t ndomains;
    const char *file; /* the file being read (one of files) */
    char *err;
    size_t errlen;
};

/* Writes "FILE:LINE: message" into cv->err. Always -1. */
static int cv_fail(rl_convert_t *cv, const char *file, int line,
                   const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(cv->err, cv->errlen, "%s:%d: %s", file, line, msg);
    return -1;
}

/* ------------------------------------------------------------------ */
/* Step 1: node tree -> descriptor trees                               */
/* ------------------------------------------------------------------ */

/* One descriptor of the YAML file, with what its rate_limit says. */
struct cv_desc {
    char *key;
    char *value; /* NULL: any value */
    const char *file;
    int line;
    int has_limit;    /* a rate_limit block */
    int unlimited;    /* rate_limit.unlimited */
    int64_t requests; /* requests_per_unit */
    const char *per;  /* the unit as a ratelimitd duration */
    int shadow;       /* shadow_mode */
    cv_level_t children;
};

/* envoyproxy/ratelimit's units (case-insensitive) and their ratelimitd
 * periods. Week, month and year are fixed lengths there too (7, 30 and
 * 365 days counted from the Unix epoch, not calendar weeks, months or
 * years), and ratelimitd's fixed windows are aligned to the same epoch,
 * so the windows start and end at the same instants. */
static const struct {
    const char *unit;
    const char *per;
} cv_units[] = {
    {"second", "1s"}, {"minute", "1m"}, {"hour", "1h"},   {"day", "1d"},
    {"week", "7d"},   {"month", "30d"}, {"year", "365d"},
};

static void cv_desc_free(cv_desc_t *d);

/* Frees the descriptors of l and its set (not l itself). */
static void cv_level_free(cv_level_t *l)
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        cv_desc_free(l->d[i]);
    }
    free(l->d);
    json_decref(l->seen);
}

/* Frees a descriptor and its children. */
static void cv_desc_free(cv_desc_t *d)
{
    if (d == NULL) {
        return;
    }
    cv_level_free(&d->children);
    free(d->key);
    free(d->value);
    free(d);
}

/* Appends d to l->d. 0 or -1 (out of memory). */
static int cv_desc_push(cv_level_t *l, cv_desc_t *d)
{
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 8;
        cv_desc_t **a = realloc(l->d, c * sizeof(*a));
        if (a == NULL) {
            return -1;
        }
        l->d = a;
        l->cap = c;
    }
    l->d[l->n++] = d;
    return 0;
}

/* A text field's scalar: 0, or -1 (cv->err names the field). go-yaml
 * v2 types a plain 1.5 or 18446744073709551615 as a number, which
 * envoyproxy/ratelimit's key check refuses ("error checking config"):
 * refused here too rather than read as text, which it is only quoted.
 * Its other types are text in a string field (yes, 010, a date). */
static int cv_scalar(rl_convert_t *cv, const rl_yaml_t *v, const char *field,
                     const char **out)
{
    if (v->kind != RL_YAML_SCALAR) {
        return cv_fail(cv, cv->file, v->line, "%s must be a scalar", field);
    }
    if (v->go == RL_YAML_GO_FLOAT || v->go == RL_YAML_GO_UINT64) {
        return cv_fail(cv, cv->file, v->line,
                       "%s %s is %s to envoyproxy/ratelimit's YAML parser, "
                       "which refuses the file: quote it ('%s') to mean the "
                       "text",
                       field, v->text,
                       v->go == RL_YAML_GO_FLOAT ? "a float"
                                                 : "an integer past 2^63-1",
                       v->text);
    }
    *out = v->text;
    return 0;
}

/* A boolean in the spellings of envoyproxy/ratelimit's parser (YAML
 * 1.1: true, yes, on, y, in lower case, capitalised or upper case). */
static int cv_bool(rl_convert_t *cv, const rl_yaml_t *v, const char *field,
                   int *out)
{
    if (v->kind == RL_YAML_SCALAR &&
        (v->go == RL_YAML_GO_TRUE || v->go == RL_YAML_GO_FALSE)) {
        *out = v->go == RL_YAML_GO_TRUE;
        return 0;
    }
    return cv_fail(cv, cv->file, v->line, "%s must be true or false", field);
}

/* requests_per_unit: an integer from 0 to 2^32-1 (a uint32 there). */
static int cv_requests(rl_convert_t *cv, const rl_yaml_t *v, int64_t *out)
{
    const char *s = v->text;
    int64_t n = 0;

    /* A leading zero is octal to envoyproxy/ratelimit's YAML 1.1 parser
     * ("010" is 8): refused rather than read as another number. */
    if (v->kind != RL_YAML_SCALAR || !v->plain || *s == '\0' ||
        (s[0] == '0' && s[1] != '\0')) {
        goto bad;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || n > 429496729) {
            goto bad;
        }
        n = n * 10 + (*s - '0');
    }
    if (n > 4294967295LL) {
        goto bad;
    }
    *out = n;
    return 0;
bad:
    return cv_fail(cv, cv->file, v->line,
                   "requests_per_unit must be an integer from 0 to "
                   "4294967295, in decimal without a leading zero");
}

/* Checks that map y has no key twice and only keys from allowed (a
 * NULL-terminated list). 0 or -1. */
static int cv_keys(rl_convert_t *cv, const rl_yaml_t *y, const char *what,
                   const char *const *allowed)
{
    size_t i, j;

    if (y->kind != RL_YAML_MAP) {
        return cv_fail(cv, cv->file, y->line, "%s must be a mapping", what);
    }
    for (i = 0; i < y->n; i += 2) {
        const rl_yaml_t *k = y->items[i];
        int ok = 0;

        for (j = 0; k->kind == RL_YAML_SCALAR && allowed[j] != NULL; j++) {
            ok |= strcmp(k->text, allowed[j]) == 0;
        }
        if (!ok) {
            return cv_fail(cv, cv->file, k->line, "unknown field '%s' in %s",
                           k->kind == RL_YAML_SCALAR ? k->text : "?", what);
        }
        for (j = 0; j < i; j += 2) {
            if (strcmp(y->items[j]->text, k->text) == 0) {
                return cv_fail(cv, cv->file, k->line,
                               "'%s' appears twice in %s", k->text, what);
            }
        }
    }
    return 0;
}

/* The index of field's key in map y, or y->n. */
static size_t cv_find(const rl_yaml_t *y, const char *field)
{
    size_t i;

    for (i = 0; i + 1 < y->n && strcmp(y->items[i]->text, field) != 0; i += 2) {
    }
    return i + 1 < y->n ? i : y->n;
}

/* The value of field in map y, or NULL (absent or YAML null). */
static const rl_yaml_t *cv_get(const rl_yaml_t *y, const char *field)
{
    size_t i = cv_find(y, field);

    return i < y->n && !rl_yaml_is_null(y->items[i + 1]) ? y->items[i + 1]
                                                         : NULL;
}

/* The unit of a rate_limit block into d->per. 0 or -1. */
static int cv_unit(rl_convert_t *cv, const rl_yaml_t *v, cv_desc_t *d)
{
    const char *s = NULL;
    size_t i;

    if (cv_scalar(cv, v, "unit", &s) != 0) {
        return -1;
    }
    for (i = 0; i < sizeof(cv_units) / sizeof(cv_units[0]); i++) {
        if (strcasecmp(s, cv_units[i].unit) == 0) {
            d->per = cv_units[i].per;
            return 0;
        }
    }
    return cv_fail(cv, cv->file, v->line,
                   "invalid rate limit unit '%s' (second, minute, hour, "
                   "day, week, month, year)",
                   s);
}

/* A descriptor's rate_limit block into d. 0 or -1. */
static int cv_rate_limit(rl_convert_t *cv, const rl_yaml_t *rl, cv_desc_t *d)
{
    static const char *const fields[] = {
        "unit", "requests_per_unit", "unlimited", "name", "replaces", NULL};
    const rl_yaml_t *unit, *req, *unl, *name;
    const char *ignored;

    if (cv_keys(cv, rl, "rate_limit", fields) != 0) {
        return -1;
    }
    /* Not used, but what envoyproxy/ratelimit refuses is refused. */
    if ((name = cv_get(rl, "name")) != NULL &&
        cv_scalar(cv, name, "name", &ignored) != 0) {
        return -1;
    }
    d->has_limit = 1;
    if (cv_get(rl, "replaces") != NULL) {
        return cv_fail(cv, cv->file, rl->items[cv_find(rl, "replaces")]->line,
                       "replaces is not supported: ratelimitd decides every "
                       "matched descriptor of a request; give the replaced "
                       "policy an override for these values instead "
                       "(docs/integrations.md, migration table)");
    }
    unl = cv_get(rl, "unlimited");
    if (unl != NULL && cv_bool(cv, unl, "unlimited", &d->unlimited) != 0) {
        return -1;
    }
    unit = cv_get(rl, "unit");
    if (d->unlimited) {
        return unit == NULL ? 0
                            : cv_fail(cv, cv->file, unit->line,
                                      "should not specify rate limit unit "
                                      "when unlimited");
    }
    if (unit == NULL) {
        return cv_fail(cv, cv->file, rl->line, "rate_limit needs a unit");
    }
    if (cv_unit(cv, unit, d) != 0) {
        return -1;
    }
    if ((req = cv_get(rl, "requests_per_unit")) == NULL) {
        /* envoyproxy/ratelimit would read 0 (deny everything). */
        return cv_fail(cv, cv->file, rl->line,
                       "rate_limit needs requests_per_unit (write 0 to deny "
                       "every request)");
    }
    return cv_requests(cv, req, &d->requests);
}

static int cv_descriptors(rl_convert_t *cv, const rl_yaml_t *seq, cv_level_t *l,
                          int depth);

/* One descriptor mapping into a new *out. 0 or -1. */
static int cv_descriptor(rl_convert_t *cv, const rl_yaml_t *y, int depth,
                         cv_desc_t **out)
{
    static const char *const fields[] = {
        "key",         "value",           "rate_limit", "descriptors",
        "shadow_mode", "detailed_metric", NULL};
    cv_desc_t *d;
    const rl_yaml_t *v;
    const char *s = NULL;
    int ignored;

    if (cv_keys(cv, y, "a descriptor", fields) != 0) {
        return -1;
    }
    if ((d = calloc(1, sizeof(*d))) == NULL) {
        return cv_fail(cv, cv->file, y->line, "out of memory");
    }
    *out = d;
    d->file = cv->file;
    d->line = y->line;
    if ((v = cv_get(y, "key")) == NULL) {
        return cv_fail(cv, cv->file, y->line, "descriptor has empty key");
    }
    if (cv_scalar(cv, v, "key", &s) != 0) {
        return -1;
    }
    if (*s == '\0') {
        return cv_fail(cv, cv->file, v->line, "descriptor has empty key");
    }
    if ((d->key = strdup(s)) == NULL) {
        return cv_fail(cv, cv->file, v->line, "out of memory");
    }
    if ((v = cv_get(y, "value")) != NULL) {
        if (cv_scalar(cv, v, "value", &s) != 0) {
            return -1;
        }
        if (*s != '\0' && s[strlen(s) - 1] == '*') {
            return cv_fail(cv, cv->file, v->line,
                           "wildcard values ('%s') are not supported: "
                           "ratelimitd matches descriptor values exactly",
                           s);
        }
        if (*s != '\0' && (d->value = strdup(s)) == NULL) {
            return cv_fail(cv, cv->file, v->line, "out of memory");
        }
    }
    if ((v = cv_get(y, "rate_limit")) != NULL && cv_rate_limit(cv, v, d) != 0) {
        return -1;
    }
    if ((v = cv_get(y, "shadow_mode")) != NULL &&
        cv_bool(cv, v, "shadow_mode", &d->shadow) != 0) {
        return -1;
    }
    if ((v = cv_get(y, "detailed_metric")) != NULL &&
        cv_bool(cv, v, "detailed_metric", &ignored) != 0) {
        return -1;
    }
    v = cv_get(y, "descriptors");
    return v == NULL ? 0 : cv_descriptors(cv, v, &d->children, depth + 1);
}

/* "key 'K'" or "key 'K' with value 'V'" for d, into buf. */
static const char *cv_describe(const cv_desc_t *d, char *buf, size_t len)
{
    snprintf(buf, len, "key '%.120s'%s%.120s%s", d->key,
             d->value ? " with value '" : "", d->value ? d->value : "",
             d->value ? "'" : "");
    return buf;
}

/* The error for d, whose composite key ck first already has. -1. */
static int cv_duplicate(rl_convert_t *cv, const cv_desc_t *first,
                        const cv_desc_t *d, const char *ck)
{
    char a[300], b[300];

    if (strcmp(first->key, d->key) == 0) {
        return cv_fail(cv, d->file, d->line,
                       "duplicate descriptor composite key '%s' (first at "
                       "%s:%d)",
                       ck, first->file, first->line);
    }
    return cv_fail(cv, d->file, d->line,
                   "duplicate descriptor composite key '%s' (first at %s:%d): "
                   "envoyproxy/ratelimit files a descriptor under KEY_VALUE, "
                   "so %s and %s are one entry there",
                   ck, first->file, first->line, cv_describe(d, a, sizeof(a)),
                   cv_describe(first, b, sizeof(b)));
}

/* Files d in l under its composite key, KEY or KEY_VALUE, refusing one
 * that l already has. envoyproxy/ratelimit keeps a level in a map by
 * that string, so {key: a, value: x} and {key: a_x} collide there (the
 * file is refused) and must here too. Takes d (freed on failure). 0 or
 * -1. */
static int cv_level_add(rl_convert_t *cv, cv_level_t *l, cv_desc_t *d)
{
    size_t klen = strlen(d->key), vlen = d->value ? strlen(d->value) : 0;
    char *ck = malloc(klen + vlen + 2);
    json_t *first = NULL;
    int rc = 0;

    if (ck != NULL) {
        memcpy(ck, d->key, klen + 1);
        if (d->value != NULL) {
            ck[klen] = '_';
            memcpy(ck + klen + 1, d->value, vlen + 1);
        }
        first = l->seen != NULL ? json_object_get(l->seen, ck) : NULL;
    }
    if (first != NULL) {
        rc = cv_duplicate(cv, l->d[json_integer_value(first)], d, ck);
    } else if (ck == NULL ||
               (l->seen == NULL && (l->seen = json_object()) == NULL) ||
               json_object_set_new_nocheck(
                   l->seen, ck, json_integer((json_int_t)l->n)) != 0 ||
               cv_desc_push(l, d) != 0) {
        rc = cv_fail(cv, d->file, d->line, "out of memory");
    } else {
        d = NULL; /* l's now */
    }
    cv_desc_free(d);
    free(ck);
    return rc;
}

/* A "descriptors" list appended to l (which may hold descriptors of an
 * earlier file of the same domain). 0 or -1. */
static int cv_descriptors(rl_convert_t *cv, const rl_yaml_t *seq, cv_level_t *l,
                          int depth)
{
    size_t i;

    if (seq->kind != RL_YAML_SEQ) {
        return cv_fail(cv, cv->file, seq->line, "descriptors must be a list");
    }
    if (depth > CV_MAX_PATH) {
        return cv_fail(cv, cv->file, seq->line,
                       "descriptors nested more than %d levels: ratelimitd "
                       "keys on at most %d entries",
                       CV_MAX_PATH, CV_MAX_PATH);
    }
    for (i = 0; i < seq->n; i++) {
        cv_desc_t *d = NULL;

        if (cv_descriptor(cv, seq->items[i], depth, &d) != 0) {
            cv_desc_free(d);
            return -1;
        }
        if (cv_level_add(cv, l, d) != 0) {
            return -1;
        }
    }
    return 0;
}

/* The domain named name, added when new; NULL when out of memory. */
static cv_domain_t *cv_domain(rl_convert_t *cv, const char *name)
{
    cv_domain_t *ds;
    size_t i;

    for (i = 0; i < cv->ndomains; i++) {
        if (strcmp(cv->domains[i].name, name) == 0) {
            return &cv->domains[i];
        }
    }
    ds = realloc(cv->domains, (cv->ndomains + 1) * sizeof(*ds));
    if (ds == NULL) {
        return NULL;
    }
    cv->domains = ds;
    memset(&ds[cv->ndomains], 0, sizeof(ds[0]));
    if ((ds[cv->ndomains].name = strdup(name)) == NULL) {
        return NULL;
    }
    return &ds[cv->ndomains++];
}

/* A file's top node: domain and descriptors. 0 or -1. */
static int cv_root(rl_convert_t *cv, const rl_yaml_t *doc)
{
    static const char *const fields[] = {"domain", "descriptors", NULL};
    const rl_yaml_t *v;
    const char *name = NULL;
    cv_domain_t *dom;

    if (doc == NULL) {
        return cv_fail(cv, cv->file, 1, "config file cannot have empty domain");
    }
    if (cv_keys(cv, doc, "the file", fields) != 0) {
        return -1;
    }
    if ((v = cv_get(doc, "domain")) == NULL) {
        return cv_fail(cv, cv->file, doc->line,
                       "config file cannot have empty domain");
    }
    if (cv_scalar(cv, v, "domain", &name) != 0) {
        return -1;
    }
    if (*name == '\0') {
        return cv_fail(cv, cv->file, v->line,
                       "config file cannot have empty domain");
    }
    if ((dom = cv_domain(cv, name)) == NULL) {
        return cv_fail(cv, cv->file, v->line, "out of memory");
    }
    v = cv_get(doc, "descriptors");
    return v == NULL ? 0 : cv_descriptors(cv, v, &dom->top, 1);
}

/* See convert_envoy.h. */
rl_convert_t *rl_convert_new(void)
{
    return calloc(1, sizeof(rl_convert_t));
}

/* See convert_envoy.h. */
void rl_convert_free(rl_convert_t *cv)
{
    size_t i;

    if (cv == NULL) {
        return;
    }
    for (i = 0; i < cv->ndomains; i++) {
        cv_level_free(&cv->domains[i].top);
        free(cv->domains[i].name);
    }
    free(cv->domains);
    for (i = 0; i < cv->nfiles; i++) {
        free(cv->files[i]);
    }
    free(cv->files);
    free(cv);
}

/* See convert_envoy.h. */
int rl_convert_add(rl_convert_t *cv, const char *file, const char *text,
                   size_t len, char *err, size_t errlen)
{
    char **files = realloc(cv->files, (cv->nfiles + 1) * sizeof(*files));
    rl_yaml_t *doc = NULL;
    char msg[300];
    int line;
    int rc;

    cv->err = err;
    cv->errlen = errlen;
    if (files == NULL) {
        return cv_fail(cv, file, 1, "out of memory");
    }
    cv->files = files;
    if ((files[cv->nfiles] = strdup(file)) == NULL) {
        return cv_fail(cv, file, 1, "out of memory");
    }
    cv->file = files[cv->nfiles++];
    if (rl_yaml_parse(text, len, &doc, &line, msg, sizeof(msg)) != 0) {
        return cv_fail(cv, cv->file, line, "%s", msg);
    }
    rc = cv_root(cv, doc);
    rl_yaml_free(doc);
    return rc;
}

/* See convert_envoy.h. */
int rl_convert_add_file(rl_convert_t *cv, const char *path, char *err,
                        size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len;
    int rc = -1;

    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    buf = malloc(CV_MAX_FILE + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    len = fread(buf, 1, CV_MAX_FILE + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    } else if (len > CV_MAX_FILE) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, CV_MAX_FILE);
    } else {
        rc = rl_convert_add(cv, path, buf, len, err, errlen);
    }
out:
    free(buf);
    fclose(f);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Step 2: descriptor trees -> ordered rules -> JSON                   */
/* ------------------------------------------------------------------ */

/* One descriptor with a rate_limit and the path of entries to it. */
typedef struct cv_rule {
    const char *domain;
    const cv_desc_t *path[CV_MAX_PATH];
    int depth;
} cv_rule_t;

typedef struct cv_rules {
    cv_rule_t *r;
    size_t n, cap;
} cv_rules_t;

/* Appends the rules under list (path[0..depth-1] leading to it) in
 * first-match order: at each level the entries with a value first, each
 * followed by its own subtree. 0 or -1 (out of memory). */
static int cv_collect(cv_rules_t *rs, const char *domain, const cv_level_t *l,
                      const cv_desc_t **path, int depth)
{
    int pass;
    size_t i;

    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < l->n; i++) {
            const cv_desc_t *d = l->d[i];

            if ((d->value != NULL) != (pass == 0)) {
                continue;
            }
            path[depth] = d;
            if (d->has_limit) {
                if (rs->n == rs->cap) {
                    size_t c = rs->cap ? rs->cap * 2 : 16;
                    cv_rule_t *r = realloc(rs->r, c * sizeof(*r));
                    if (r == NULL) {
                        return -1;
                    }
                    rs->r = r;
                    rs->cap = c;
                }
                rs->r[rs->n].domain = domain;
                memcpy(rs->r[rs->n].path, path,
                       (size_t)(depth + 1) * sizeof(path[0]));
                rs->r[rs->n++].depth = depth + 1;
            }
            if (cv_collect(rs, domain, &d->children, path, depth + 1) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* Whether c may appear in a policy name. */
static int cv_name_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

/* Appends s to name (at *len, capacity cap), bytes outside the policy
 * name alphabet as '-'; *hash takes the raw bytes (FNV-1a). */
static void cv_name_add(char *name, size_t *len, size_t cap, const char *s,
                        uint32_t *hash)
{
    for (; *s != '\0'; s++) {
        *hash = (*hash ^ (unsigned char)*s) * 16777619u;
        if (*len + 1 < cap) {
            name[(*len)++] = cv_name_char((unsigned char)*s) ? *s : '-';
        }
    }
    name[*len] = '\0';
}

/* The policy name of r: "DOMAIN.KEY[_VALUE].KEY..." with bytes outside
 * A-Z a-z 0-9 _ . - as '-'; when that is over 64 characters or already
 * in names (the set of those given so far), its first 55 and '-' and 8
 * hex digits of a hash of the raw path. 0, or -1 when even that is
 * taken. */
static int cv_name(const cv_rule_t *r, const json_t *names, char *name)
{
    char buf[1024];
    size_t len = 0;
    uint32_t hash = 2166136261u;
    int i;

    buf[0] = '\0';
    cv_name_add(buf, &len, sizeof(buf), r->domain, &hash);
    for (i = 0; i < r->depth; i++) {
        cv_name_add(buf, &len, sizeof(buf), ".", &hash);
        cv_name_add(buf, &len, sizeof(buf), r->path[i]->key, &hash);
        if (r->path[i]->value != NULL) {
            cv_name_add(buf, &len, sizeof(buf), "_", &hash);
            cv_name_add(buf, &len, sizeof(buf), r->path[i]->value, &hash);
        }
    }
    if (len <= CV_NAME_MAX && json_object_get(names, buf) == NULL) {
        memcpy(name, buf, len + 1);
        return 0;
    }
    snprintf(name, CV_NAME_MAX + 1, "%.55s-%08x", buf, (unsigned)hash);
    return json_object_get(names, name) != NULL ? -1 : 0;
}

/* "match" and "key" of r into p. 0 or -1 (out of memory). */
static int cv_match_key(const cv_rule_t *r, json_t *p)
{
    json_t *entries = json_array(), *key = json_array(), *match;
    char field[600];
    int i, rc = 0;

    match = json_pack("{s:s, s:o}", "domain", r->domain, "descriptor", entries);
    for (i = 0; i < r->depth && entries != NULL && key != NULL; i++) {
        const cv_desc_t *d = r->path[i];
        json_t *e = json_pack("{s:s}", "key", d->key);

        if (d->value != NULL) {
            rc |= json_object_set_new(e, "value", json_string(d->value));
        } else {
            snprintf(field, sizeof(field), "descriptor.%s", d->key);
            rc |= json_array_append_new(key, json_string(field));
        }
        rc |= json_array_append_new(entries, e);
    }
    rc |= json_object_set_new(p, "match", match);
    rc |= json_object_set_new(p, "key", key);
    return rc != 0 || match == NULL ? -1 : 0;
}

/* requests_per_unit 0 (deny every request): ratelimitd limits admit at
 * least one, so the policy also keys on its first fixed entry and a
 * "deny" override for that one value denies each request, counting
 * nothing; its one limit is never consulted. 0 or -1 (cv->err set). */
static int cv_deny_all(rl_convert_t *cv, const cv_rule_t *r, json_t *p)
{
    const cv_desc_t *leaf = r->path[r->depth - 1];
    json_t *key = json_object_get(p, "key");
    char field[600];
    int i;

    for (i = 0; i < r->depth && r->path[i]->value == NULL; i++) {
    }
    if (i == r->depth) {
        return cv_fail(cv, leaf->file, leaf->line,
                       "requests_per_unit 0 needs an entry with a value in "
                       "its path: a ratelimitd limit admits at least one "
                       "request, and only an override (keyed by a value) "
                       "denies all");
    }
    if (json_array_size(key) >= CV_MAX_PATH) {
        return cv_fail(cv, leaf->file, leaf->line, "too many key entries");
    }
    snprintf(field, sizeof(field), "descriptor.%s", r->path[i]->key);
    if (json_array_append_new(key, json_string(field)) != 0 ||
        json_object_set_new(p, "overrides",
                            json_pack("[{s:{s:s}, s:{s:i}}]", "key", field,
                                      r->path[i]->value, "deny", "status",
                                      429)) != 0) {
        return cv_fail(cv, leaf->file, leaf->line, "out of memory");
    }
    return 0;
}

/* The limits of r's policy p (none for an unlimited leaf: allowed and,
 * as it is matched before any more general policy, counted by none),
 * its header style and mode. 0 or -1 (out of memory). */
static int cv_limits(const cv_rule_t *r, json_t *p)
{
    const cv_desc_t *leaf = r->path[r->depth - 1];
    int rc;

    if (leaf->unlimited) {
        rc = json_object_set_new(p, "key", json_array());
        rc |= json_object_set_new(p, "limits", json_array());
    } else {
        rc = json_object_set_new(
            p, "limits",
            json_pack("[{s:I, s:s, s:s}]", "requests",
                      (json_int_t)(leaf->requests > 0 ? leaf->requests : 1),
                      "per", leaf->per, "algorithm", "fixed_window"));
    }
    /* envoyproxy/ratelimit answers without rate-limit headers (unless
     * its LIMIT_RESPONSE_HEADERS_ENABLED is set), and the Envoy in front
     * builds its own (enable_x_ratelimit_headers): ratelimitd's, sent on
     * every answer, would give clients each header twice. */
    rc |= json_object_set_new(p, "headers", json_string("none"));
    if (!leaf->unlimited && leaf->shadow) {
        rc |= json_object_set_new(p, "mode", json_string("shadow"));
    }
    return rc != 0 ? -1 : 0;
}

/* The policy of r, appended to policies; its name is added to names.
 * 0 or -1 (cv->err set). */
static int cv_policy(rl_convert_t *cv, const cv_rule_t *r, json_t *policies,
                     json_t *names)
{
    const cv_desc_t *leaf = r->path[r->depth - 1];
    char name[CV_NAME_MAX + 1];
    json_t *p;
    int i, j;

    for (i = 0; i < r->depth; i++) {
        for (j = 0; j < i; j++) {
            if (strcmp(r->path[i]->key, r->path[j]->key) == 0) {
                return cv_fail(cv, r->path[i]->file, r->path[i]->line,
                               "key '%s' appears twice in one descriptor "
                               "path: a ratelimitd key names it once",
                               r->path[i]->key);
            }
        }
    }
    if (cv_name(r, names, name) != 0) {
        return cv_fail(cv, leaf->file, leaf->line,
                       "no unique policy name for this descriptor");
    }
    p = json_pack("{s:s}", "name", name);
    if (p == NULL || json_array_append_new(policies, p) != 0 ||
        json_object_set_new_nocheck(names, name, json_true()) != 0 ||
        cv_match_key(r, p) != 0 || cv_limits(r, p) != 0) {
        return cv_fail(cv, leaf->file, leaf->line, "out of memory");
    }
    return !leaf->unlimited && leaf->requests == 0 ? cv_deny_all(cv, r, p) : 0;
}

/* See convert_envoy.h. */
char *rl_convert_json(rl_convert_t *cv, char *err, size_t errlen)
{
    const cv_desc_t *path[CV_MAX_PATH + 1];
    cv_rules_t rs = {NULL, 0, 0};
    json_t *policies = json_array(), *names = json_object(), *root = NULL;
    char *out = NULL, *text = NULL;
    size_t i;

    cv->err = err;
    snprintf(err, errlen, "out of memory");
    cv->errlen = errlen;
    for (i = 0; i < cv->ndomains; i++) {
        if (cv_collect(&rs, cv->domains[i].name, &cv->domains[i].top, path,
                       0) != 0) {
            goto out;
        }
    }
    if (policies == NULL || names == NULL) {
        goto out;
    }
    for (i = 0; i < rs.n; i++) {
        if (cv_policy(cv, &rs.r[i], policies, names) != 0) {
            goto out;
        }
    }
    root = json_pack("{s:O}", "policies", policies);
    text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (text != NULL && (out = malloc(strlen(text) + 2)) != NULL) {
        sprintf(out, "%s\n", text);
    }
out:
    free(text);
    json_decref(root);
    json_decref(names);
    json_decref(policies);
    free(rs.r);
    return out;
}
