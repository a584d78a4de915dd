/* Matching a request to a policy and building its Redis key. Pure: no I/O,
 * no clock, no allocation on the matching and key paths, so every worker
 * thread may call these at once on the shared, immutable conf. */
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "util.h"

/* ------------------------------------------------------------------------
 * Path patterns
 * ---------------------------------------------------------------------- */

/* 1 if c may appear in a {name} parameter name. */
static int pattern_is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_';
}

/* Frees what rl_pattern_compile put into p and zeroes p; safe on a zeroed
 * or partly compiled pattern. */
void rl_pattern_free(rl_pattern_t *p)
{
    int i;

    if (p == NULL) {
        return;
    }
    for (i = 0; i < p->nsegs; i++) {
        free(p->segs[i].text);
    }
    free(p->segs);
    free(p->text);
    memset(p, 0, sizeof(*p));
}

/* Checks one segment s (len bytes) of a pattern and appends it to p.
 * last is 1 for the final segment. Returns 0, or -1 with err filled. */
static int pattern_add_segment(rl_pattern_t *p, const char *s, size_t len,
                               int last, char *err, size_t errlen)
{
    rl_segment_t *seg;
    size_t i;
    int j;

    if (len == 1 && s[0] == '*') {
        if (!last) {
            snprintf(err, errlen, "'*' must be the last segment");
            return -1;
        }
        p->wildcard = 1;
        return 0;
    }
    seg = &p->segs[p->nsegs];
    if (len >= 2 && s[0] == '{' && s[len - 1] == '}') {
        if (len == 2) {
            snprintf(err, errlen, "empty parameter name");
            return -1;
        }
        for (i = 1; i + 1 < len; i++) {
            if (!pattern_is_name_char(s[i])) {
                snprintf(err, errlen,
                         "parameter {%.*s} must be letters, digits or '_'",
                         (int)(len - 2), s + 1);
                return -1;
            }
        }
        for (j = 0; j < p->nsegs; j++) {
            if (p->segs[j].kind == RL_SEG_PARAM && p->segs[j].len == len - 2 &&
                memcmp(p->segs[j].text, s + 1, len - 2) == 0) {
                snprintf(err, errlen, "parameter {%.*s} appears twice",
                         (int)(len - 2), s + 1);
                return -1;
            }
        }
        seg->kind = RL_SEG_PARAM;
        seg->text = strndup(s + 1, len - 2);
        seg->len = len - 2;
    } else {
        for (i = 0; i < len; i++) {
            if (s[i] == '*') {
                snprintf(err, errlen, "'*' must be a whole segment");
                return -1;
            }
            if (s[i] == '{' || s[i] == '}') {
                snprintf(err, errlen,
                         "a parameter must be a whole segment such as {id}");
                return -1;
            }
        }
        seg->kind = RL_SEG_LITERAL;
        seg->text = strndup(s, len);
        seg->len = len;
    }
    if (seg->text == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->nsegs++;
    return 0;
}

/* Compiles text into p (p owns copies of everything; free with
 * rl_pattern_free). On failure p is left zeroed and err filled. */
int rl_pattern_compile(const char *text, rl_pattern_t *p, char *err,
                       size_t errlen)
{
    const char *s;
    const char *end;
    int nparams = 0;
    size_t nslash = 0;
    int i;

    memset(p, 0, sizeof(*p));
    if (text == NULL || text[0] != '/') {
        snprintf(err, errlen, "must start with '/'");
        return -1;
    }
    if (strchr(text, '?') != NULL || strchr(text, '#') != NULL) {
        snprintf(err, errlen,
                 "must not contain '?' or '#' (patterns match the path only)");
        return -1;
    }
    for (s = text; *s != '\0'; s++) {
        nslash += (*s == '/');
    }
    p->text = strdup(text);
    p->segs = calloc(nslash, sizeof(*p->segs));
    if (p->text == NULL || p->segs == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s = text + 1;
    for (;;) {
        end = strchr(s, '/');
        if (end == NULL) {
            end = s + strlen(s);
        }
        if (pattern_add_segment(p, s, (size_t)(end - s), *end == '\0', err,
                                errlen) != 0) {
            goto fail;
        }
        if (*end == '\0') {
            break;
        }
        s = end + 1;
    }
    for (i = 0; i < p->nsegs; i++) {
        nparams += (p->segs[i].kind == RL_SEG_PARAM);
    }
    if (nparams > RL_MAX_PARAMS) {
        snprintf(err, errlen, "more than %d parameters", RL_MAX_PARAMS);
        goto fail;
    }
    return 0;

fail:
    rl_pattern_free(p);
    return -1;
}

/* 1 if segment s (n bytes) is the literal seg: byte for byte, or ASCII
 * case-insensitively when nocase is set. */
static int pattern_literal(const rl_segment_t *seg, const char *s, size_t n,
                           int nocase)
{
    if (n != seg->len) {
        return 0;
    }
    return nocase ? strncasecmp(s, seg->text, n) == 0
                  : memcmp(s, seg->text, n) == 0;
}

/* Matches path against p; captures point into path (borrowed). */
int rl_pattern_match(const rl_pattern_t *p, const char *path, size_t len,
                     rl_match_t *m)
{
    return rl_pattern_match_case(p, path, len, 0, m);
}

/* As rl_pattern_match; literal segments compare case-insensitively when
 * nocase is set. Captures point into path (borrowed). */
int rl_pattern_match_case(const rl_pattern_t *p, const char *path, size_t len,
                          int nocase, rl_match_t *m)
{
    const char *s;
    const char *end;
    const char *slash;
    size_t seglen;
    int more;
    int i;

    m->nparams = 0;
    if (path == NULL || len == 0 || path[0] != '/') {
        return 0;
    }
    s = path + 1;
    end = path + len;
    more = 1; /* "/" holds one (empty) segment */
    for (i = 0; i < p->nsegs; i++) {
        const rl_segment_t *seg = &p->segs[i];

        if (!more) {
            return 0;
        }
        slash = memchr(s, '/', (size_t)(end - s));
        seglen = (size_t)((slash != NULL ? slash : end) - s);
        if (seg->kind == RL_SEG_LITERAL) {
            if (!pattern_literal(seg, s, seglen, nocase)) {
                return 0;
            }
        } else {
            if (seglen == 0 || m->nparams >= RL_MAX_PARAMS) {
                return 0;
            }
            m->params[m->nparams].name = seg->text;
            m->params[m->nparams].value = s;
            m->params[m->nparams].len = seglen;
            m->nparams++;
        }
        if (slash != NULL) {
            s = slash + 1;
        } else {
            s = end;
            more = 0;
        }
    }
    return p->wildcard || !more;
}

/* ------------------------------------------------------------------------
 * Policy lookup
 * ---------------------------------------------------------------------- */

/* 1 if p's method filter (if any) and path pattern fit req under conf's
 * "paths" (literal segments of any case unless case_sensitive); fills
 * m. */
static int policy_fits(const struct rl_conf *conf, const rl_policy_t *p,
                       const rl_request_t *req, rl_match_t *m)
{
    if (p->domain != NULL) {
        return 0; /* a descriptor policy */
    }
    if (p->method != NULL &&
        (req->method == NULL || strcasecmp(p->method, req->method) != 0)) {
        return 0;
    }
    if (!rl_pattern_match_case(&p->path, req->path, req->path_len,
                               !conf->paths.case_sensitive, m)) {
        return 0;
    }
    m->policy = p;
    return 1;
}

uint32_t rl_policy_key_layout(const rl_policy_t *p)
{
    uint32_t h = 2166136261u;
    int i;

    for (i = 0; i < p->nkey; i++) {
        const unsigned char *c = (const unsigned char *)p->key[i].spec;

        for (; c != NULL && *c != '\0'; c++) {
            h = (h ^ *c) * 16777619u;
        }
        h = (h ^ '\n') * 16777619u; /* "a","b" is not "ab" */
    }
    return h;
}

/* The policy called name, borrowed from the array; NULL if none. */
const rl_policy_t *rl_policy_by_name(const rl_policy_t *policies, int n,
                                     const char *name)
{
    int i;

    for (i = 0; i < n; i++) {
        if (strcmp(policies[i].name, name) == 0) {
            return &policies[i];
        }
    }
    return NULL;
}

/* First fitting policy in file order, or the forced one; borrowed from
 * conf. m is filled for the returned policy. */
const rl_policy_t *rl_policy_find(const struct rl_conf *conf,
                                  const rl_request_t *req, rl_match_t *m)
{
    const rl_policy_t *p;
    int i;

    m->policy = NULL;
    m->nparams = 0;
    if (req->policy != NULL) {
        p = rl_policy_by_name(conf->policies, conf->npolicies, req->policy);
        if (p != NULL && policy_fits(conf, p, req, m)) {
            return p;
        }
        m->policy = NULL;
        m->nparams = 0;
        return NULL;
    }
    for (i = 0; i < conf->npolicies; i++) {
        if (policy_fits(conf, &conf->policies[i], req, m)) {
            return &conf->policies[i];
        }
    }
    m->policy = NULL;
    m->nparams = 0;
    return NULL;
}

/* 1 if a policy of group `group` is among the n in matches. */
static int policy_group_taken(const rl_match_t *matches, int n,
                              const char *group)
{
    int i;

    for (i = 0; i < n; i++) {
        if (strcmp(matches[i].policy->group, group) == 0) {
            return 1;
        }
    }
    return 0;
}

/* First fitting policy of each group in file order, req->policy
 * ignored; the policies are borrowed from conf. */
static int policy_find_groups(const struct rl_conf *conf,
                              const rl_request_t *req, rl_match_t *matches,
                              int max)
{
    int n = 0;
    int i;

    for (i = 0; i < conf->npolicies && n < max; i++) {
        const rl_policy_t *p = &conf->policies[i];

        if (!policy_group_taken(matches, n, p->group) &&
            policy_fits(conf, p, req, &matches[n])) {
            n++;
        }
    }
    return n;
}

/* First fitting policy of each group in file order, or the forced one;
 * the policies are borrowed from conf. */
int rl_policy_find_all(const struct rl_conf *conf, const rl_request_t *req,
                       rl_match_t *matches, int max)
{
    if (max < 1) {
        return 0;
    }
    if (req->policy != NULL) {
        return rl_policy_find(conf, req, &matches[0]) != NULL ? 1 : 0;
    }
    return policy_find_groups(conf, req, matches, max);
}

/* The first policy in file order that verifies tenants among the one req
 * names (when it fits) and those req matches without the name; borrowed
 * from conf, or NULL. */
const rl_policy_t *rl_policy_verifier(const struct rl_conf *conf,
                                      const rl_request_t *req)
{
    rl_match_t m[RL_MAX_OP_PARTS];
    const rl_policy_t *best = NULL;
    int n;
    int i;

    if (req->policy != NULL) {
        best = rl_policy_find(conf, req, &m[0]);
        if (best != NULL && !best->verify_tenant) {
            best = NULL;
        }
    }
    n = policy_find_groups(conf, req, m, RL_MAX_OP_PARTS);
    for (i = 0; i < n; i++) {
        const rl_policy_t *p = m[i].policy;

        if (p->verify_tenant && (best == NULL || p->index < best->index)) {
            best = p;
        }
    }
    return best;
}

/* The value of the descriptor entry named name (exact) of req. */
static const char *key_entry(const rl_request_t *req, const char *name,
                             size_t *len)
{
    size_t nlen = strlen(name);
    int i;

    for (i = 0; i < req->nheaders; i++) {
        if (req->headers[i].name_len == nlen &&
            memcmp(req->headers[i].name, name, nlen) == 0) {
            *len = req->headers[i].value_len;
            return req->headers[i].value;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * Keys
 * ---------------------------------------------------------------------- */

/* 1 if byte c is kept as it is inside a key; every other byte is %XX. */
static int key_is_safe(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '~' ||
           c == '@' || c == '+' || c == '-';
}

/* Percent-encodes value into out, or writes "#<sha256 hex>" when the
 * encoding would pass RL_KEY_VALUE_MAX. Encoded values never hold '#',
 * so the two forms cannot meet. out is caller-owned. */
size_t rl_key_encode(const char *value, size_t len, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t need = 0;
    size_t i;
    size_t o = 0;
    char digest[65];

    if (outlen == 0) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        need += key_is_safe((unsigned char)value[i]) ? 1 : 3;
    }
    if (need > RL_KEY_VALUE_MAX || need + 1 > outlen) {
        rl_sha256_hex(value, len, digest);
        snprintf(out, outlen, "#%s", digest);
        return strlen(out);
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];

        if (key_is_safe(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return o;
}

/* The capture named name in m, or NULL. */
static const rl_param_t *key_param(const rl_match_t *m, const char *name)
{
    int i;

    for (i = 0; i < m->nparams; i++) {
        if (strcmp(m->params[i].name, name) == 0) {
            return &m->params[i];
        }
    }
    return NULL;
}

/* The raw value of key field f for req (borrowed), or NULL if absent.
 * The method is upper-cased into tmp (caller's, RL_KEY_VALUE_MAX + 1
 * bytes); a method longer than that is used as sent (it is hashed). */
static const char *key_value(const rl_key_field_t *f, const rl_policy_t *p,
                             const rl_request_t *req, const rl_match_t *m,
                             char *tmp, size_t *len)
{
    const rl_param_t *param;
    const char *v = NULL;
    size_t i;

    switch (f->kind) {
    case RL_KEY_TENANT: v = req->tenant; break;
    case RL_KEY_USER: v = req->user; break;
    case RL_KEY_IP: v = req->ip; break;
    case RL_KEY_METHOD:
        v = req->method;
        if (v != NULL && strlen(v) <= RL_KEY_VALUE_MAX) {
            for (i = 0; v[i] != '\0'; i++) {
                tmp[i] = (v[i] >= 'a' && v[i] <= 'z') ? (char)(v[i] - 'a' + 'A')
                                                      : v[i];
            }
            tmp[i] = '\0';
            v = tmp;
        }
        break;
    case RL_KEY_ROUTE: v = p->path.text; break;
    case RL_KEY_PATH:
        if (req->key_path != NULL) {
            *len = req->key_path_len;
            return req->key_path;
        }
        *len = req->path_len;
        return req->path;
    case RL_KEY_PATH_PARAM:
        param = key_param(m, f->name);
        if (param == NULL) {
            return NULL;
        }
        *len = param->len;
        return param->value;
    case RL_KEY_HEADER: return rl_request_header(req, f->name, len);
    case RL_KEY_DESCRIPTOR: return key_entry(req, f->name, len);
    }
    if (v != NULL) {
        *len = strlen(v);
    }
    return v;
}

/* Appends sep (if not NUL) and the encoding of v (vlen bytes) to buf at
 * *o; hashed: always the "#<sha256 hex>" form (the one a long value
 * gets). 0, or -1 when buf (len bytes) is too small. */
static int key_put(char *buf, size_t len, size_t *o, char sep, const char *v,
                   size_t vlen, int hashed)
{
    char enc[RL_KEY_VALUE_MAX + 1];
    size_t elen;
    size_t need;

    if (hashed) {
        enc[0] = '#';
        rl_sha256_hex(v, vlen, enc + 1);
        elen = 65;
    } else {
        elen = rl_key_encode(v, vlen, enc, sizeof(enc));
    }
    need = elen + (sep != '\0' ? 1 : 0);

    if (*o + need + 2 > len) {
        return -1;
    }
    if (sep != '\0') {
        buf[(*o)++] = sep;
    }
    memcpy(buf + *o, enc, elen);
    *o += elen;
    return 0;
}

/* Appends literal text s (not encoded) to buf at *o; 0 or -1. */
static int key_lit(char *buf, size_t len, size_t *o, const char *s)
{
    size_t n = strlen(s);

    if (*o + n + 2 > len) {
        return -1;
    }
    memcpy(buf + *o, s, n);
    *o += n;
    return 0;
}

/* Appends the values of the n fields (sep before each but the first when
 * first_sep is NUL) of req to buf at *o, hashed or not (key_put). 0; -1
 * with *missing = the spec of an absent or empty value; -1 with *missing
 * NULL if buf is full. */
static int key_fields(const rl_key_field_t *const *fields, int n,
                      const rl_policy_t *p, const rl_request_t *req,
                      const rl_match_t *m, char first_sep, int hashed,
                      char *buf, size_t len, size_t *o, const char **missing)
{
    char tmp[RL_KEY_VALUE_MAX + 1];
    const char *v;
    size_t vlen;
    int i;

    for (i = 0; i < n; i++) {
        vlen = 0;
        v = key_value(fields[i], p, req, m, tmp, &vlen);
        if (v == NULL || vlen == 0) {
            *missing = fields[i]->spec;
            return -1;
        }
        if (key_put(buf, len, o, i == 0 ? first_sep : '|', v, vlen, hashed) !=
            0) {
            return -1;
        }
    }
    return 0;
}

/* Writes "<prefix>:{" and, with a hash_tag of policy p, "<t1>|<t2>}"
 * into buf; tag values past RL_KEY_TAG_MAX together are written again
 * hashed, which depends on the tag's values alone, so every key with
 * these values still shares their slot. Returns the length so far, or
 * -1 (see key_fields). */
static int key_open(const char *prefix, const rl_policy_t *p,
                    const rl_request_t *req, const rl_match_t *m, char *buf,
                    size_t len, const char **missing)
{
    const rl_key_field_t *tag[RL_MAX_HASH_TAG];
    size_t o = 0, start;
    int i;

    *missing = NULL;
    if (key_lit(buf, len, &o, prefix) != 0 ||
        key_lit(buf, len, &o, ":{") != 0) {
        return -1;
    }
    if (p == NULL || p->nhash_tag == 0) {
        return (int)o;
    }
    for (i = 0; i < p->nhash_tag; i++) {
        tag[i] = &p->key[p->hash_tag[i]];
    }
    start = o;
    if (key_fields(tag, p->nhash_tag, p, req, m, '\0', 0, buf, len, &o,
                   missing) != 0 &&
        *missing != NULL) {
        return -1;
    }
    if (*missing == NULL && o - start <= RL_KEY_TAG_MAX) {
        return key_lit(buf, len, &o, "}") != 0 ? -1 : (int)o;
    }
    o = start;
    if (key_fields(tag, p->nhash_tag, p, req, m, '\0', 1, buf, len, &o,
                   missing) != 0 ||
        key_lit(buf, len, &o, "}") != 0) {
        return -1;
    }
    return (int)o;
}

/* Writes the key (see policy.h) into buf (caller's). Returns its length;
 * -1 with *missing = the field's spec when a value is absent or empty;
 * -1 with *missing = NULL if buf is too small (never with len >=
 * RL_KEY_MAX and a validated conf). */
int rl_policy_key(const rl_policy_t *p, const char *prefix,
                  const rl_request_t *req, const rl_match_t *m, char *buf,
                  size_t len, const char **missing)
{
    const rl_key_field_t *fields[RL_MAX_HASH_TAG];
    int n = key_open(prefix, p, req, m, buf, len, missing);
    size_t o;
    int i;

    if (n < 0) {
        return -1;
    }
    o = (size_t)n;
    for (i = 0; i < p->nkey && i < RL_MAX_HASH_TAG; i++) {
        fields[i] = &p->key[i];
    }
    if (key_put(buf, len, &o, '\0', p->name, strlen(p->name), 0) != 0 ||
        key_fields(fields, i, p, req, m, '|', 0, buf, len, &o, missing) != 0) {
        return -1;
    }
    if (p->nhash_tag == 0) {
        buf[o++] = '}';
    }
    buf[o] = '\0';
    return (int)o;
}

const char *rl_policy_key_value(const rl_policy_t *p, int i,
                                const rl_request_t *req, const rl_match_t *m,
                                char *tmp, size_t *len)
{
    *len = 0;
    return key_value(&p->key[i], p, req, m, tmp, len);
}

/* Writes the penalty key (see policy.h) into buf (caller's). */
int rl_penalty_key(const rl_penalty_t *pen, const char *prefix,
                   const rl_policy_t *tag_of, const rl_match_t *m,
                   const rl_request_t *req, char *buf, size_t len,
                   const char **missing)
{
    const rl_key_field_t *fields[RL_MAX_HASH_TAG];
    int n = key_open(prefix, tag_of, req, m, buf, len, missing);
    int tagged = tag_of != NULL && tag_of->nhash_tag > 0;
    size_t o;
    int i;

    if (n < 0) {
        return -1;
    }
    o = (size_t)n;
    for (i = 0; i < pen->nkey && i < RL_MAX_HASH_TAG; i++) {
        fields[i] = &pen->key[i];
    }
    if (key_lit(buf, len, &o, "!") != 0 ||
        key_put(buf, len, &o, '\0', pen->name, strlen(pen->name), 0) != 0 ||
        key_fields(fields, i, NULL, req, m, '|', 0, buf, len, &o, missing) !=
            0) {
        return -1;
    }
    if (!tagged) {
        buf[o++] = '}';
    }
    buf[o] = '\0';
    return (int)o;
}

/* Same kind, and the same NAME for path.NAME / header.NAME. */
int rl_key_field_same(const rl_key_field_t *a, const rl_key_field_t *b)
{
    if (a->kind != b->kind) {
        return 0;
    }
    return a->name == NULL || b->name == NULL || strcmp(a->name, b->name) == 0;
}
