#ifndef RL_POLICY_H
#define RL_POLICY_H

#include <stddef.h>
#include <jansson.h>
#include "limit.h"
#include "request.h"

/* Policies: their types (built by conf_policy.c, read-only afterwards),
 * matching a request to one and building its Redis key. Pure, no I/O:
 * the same for every store and every front end. */

typedef enum {
    RL_KEY_TENANT = 0,
    RL_KEY_USER,
    RL_KEY_IP,
    RL_KEY_METHOD,
    RL_KEY_ROUTE,      /* the matched pattern text */
    RL_KEY_PATH,       /* the concrete path */
    RL_KEY_PATH_PARAM, /* path.NAME */
    RL_KEY_HEADER,     /* header.NAME (name stored lower-case) */
    RL_KEY_DESCRIPTOR  /* descriptor.NAME: a descriptor entry's value */
} rl_key_kind_t;

typedef struct rl_key_field {
    rl_key_kind_t kind;
    char *name; /* NAME for path.NAME / header.NAME, else NULL */
    char *spec; /* as written in the config: "path.siteIdentifier" */
} rl_key_field_t;

typedef enum {
    RL_SEG_LITERAL = 0,
    RL_SEG_PARAM /* {name} */
} rl_seg_kind_t;

typedef struct rl_segment {
    rl_seg_kind_t kind;
    char *text; /* literal text, or the parameter name */
    size_t len;
} rl_segment_t;

/* A path pattern: literal segments, {name} segments, a trailing "*". */
typedef struct rl_pattern {
    char *text; /* as written */
    rl_segment_t *segs;
    int nsegs;
    int wildcard; /* trailing "*": matches zero or more segments */
} rl_pattern_t;

typedef enum {
    RL_HEADERS_X_RATELIMIT = 0,         /* "x-ratelimit" */
    RL_HEADERS_X_RATELIMIT_RETRY_AFTER, /* "x-ratelimit-retry-after" */
    RL_HEADERS_IETF,                    /* "ietf" */
    RL_HEADERS_NONE                     /* "none" */
} rl_header_style_t;

typedef struct rl_test_rule {
    char *header; /* lower-case header name */
    char *value;  /* exact value that triggers it */
    rl_limit_t *limits;
    int nlimits;
} rl_test_rule_t;

/* "unavailable" of a policy: the reply of a store failure under
 * failure_mode closed, instead of the fixed STORE_001 one. */
typedef struct rl_unavailable {
    int status;   /* 500..599, default 503 */
    json_t *body; /* owned; may hold {trace_id} etc.; NULL = STORE_001's */
} rl_unavailable_t;
/* "penalties[]": repeated denials block a key on every policy that names
 * the penalty (see docs/configuration.md). */
typedef struct rl_penalty {
    char *name;
    rl_key_field_t *key; /* tenant, user, ip, method, header.NAME */
    int nkey;
    int64_t denials;              /* > 0 */
    int64_t within_ms;            /* > 0 */
    int64_t block_ms;             /* > 0 */
    int deny_status;              /* 0: the deciding policy's */
    json_t *deny_body;            /* owned; NULL: the deciding policy's */
    struct rl_body_tpl *deny_tpl; /* owned: deny_body compiled at load */
} rl_penalty_t;

#define RL_MAX_HASH_TAG 8

/* One entry of a descriptor match: a key, and a value when given. */
typedef struct rl_desc_match {
    char *key;
    char *value; /* NULL: any value */
} rl_desc_match_t;

typedef struct rl_policy {
    char *name;
    int index;    /* position in the file */
    char *method; /* upper-case, NULL = any method */
    rl_pattern_t path;
    rl_key_field_t *key;
    int nkey;
    rl_limit_t *limits;
    int nlimits;
    rl_test_rule_t *test; /* NULL if none */
    rl_header_style_t headers;
    int failure_open; /* "failure_mode": "open" (1) / "closed" (0) */
    rl_unavailable_t *unavailable; /* NULL: the STORE_001 reply */
    int deny_status;               /* default 429 */
    json_t *
        deny_body; /* owned; may hold {retry_after} etc.; NULL = default body */
    struct rl_body_tpl *deny_tpl; /* owned: deny_body compiled at load */
    int shadow;                   /* "mode": "shadow" */
    int verify_tenant;            /* "verify_tenant": "hmac" (1) / "none" (0) */
    int stats_slot; /* metrics slot of the policy's name (stats.c), set at load
                     */
    uint32_t key_layout; /* a hash of key[]'s specs in order, set at load:
                          * the top keys tell reloads that change them */
    struct rl_override_set *overrides; /* "overrides" (override.h); NULL */
    char *group;                       /* "group", default "default" */
    /* "hash_tag": indexes into key[] of the fields whose values form the
     * Redis Cluster hash tag, in the hash_tag's order; 0 = none. */
    int hash_tag[RL_MAX_HASH_TAG];
    int nhash_tag;
    const rl_penalty_t *penalty; /* "penalty" (in conf->penalties) or NULL */
    /* "match": {"domain", "descriptor"}: a policy for gRPC descriptors,
     * which never matches an HTTP request; domain NULL: an HTTP policy. */
    char *domain;
    rl_desc_match_t *desc;
    int ndesc;
} rl_policy_t;

struct rl_conf; /* conf.h: the policies a request is matched against */

#define RL_MAX_PARAMS 16
#define RL_KEY_MAX 2048      /* a base key never exceeds this */
#define RL_KEY_VALUE_MAX 128 /* an encoded identifier past this is hashed */
/* A hash tag's encoded values past this are written hashed, each one:
 * with prefix and name at most 64 and 8 key values of at most 128, a
 * key then always fits RL_KEY_MAX. */
#define RL_KEY_TAG_MAX 768

typedef struct rl_param {
    const char *name;  /* borrowed from the pattern */
    const char *value; /* borrowed from the path */
    size_t len;
} rl_param_t;

typedef struct rl_match {
    const rl_policy_t *policy;
    rl_param_t params[RL_MAX_PARAMS];
    int nparams;
} rl_match_t;

/* Compiles a pattern such as "/platform/v2/process/{siteIdentifier}" or
 * a pattern ending in a "*" segment into p (owned by p; free with
 * rl_pattern_free). Returns 0, or -1 with err filled ("empty parameter name",
 * "'*' must be the last segment", ...). */
int rl_pattern_compile(const char *text, rl_pattern_t *p, char *err,
                       size_t errlen);
void rl_pattern_free(rl_pattern_t *p);

/* Returns 1 if path (len bytes, no query string) matches p, filling the
 * {name} captures into m->params; 0 otherwise. Segments are compared
 * exactly; empty segments from "//" are kept (no normalisation). */
int rl_pattern_match(const rl_pattern_t *p, const char *path, size_t len,
                     rl_match_t *m);

/* As rl_pattern_match, but with nocase set literal segments compare
 * ASCII case-insensitively ("paths.case_sensitive": false); captures
 * keep the path's case. Pure. */
int rl_pattern_match_case(const rl_pattern_t *p, const char *path, size_t len,
                          int nocase, rl_match_t *m);

/* A hash of p's key fields as written, in order (FNV-1a): equal for two
 * policies whose keys read alike. Pure. */
uint32_t rl_policy_key_layout(const rl_policy_t *p);

/* The policy called name among the n policies (borrowed), or NULL. */
const rl_policy_t *rl_policy_by_name(const rl_policy_t *policies, int n,
                                     const char *name);

/* The first policy, in file order, whose method (if set) and path fit.
 * With req->policy set, that policy only (NULL if unknown or its method
 * or path does not fit). Returns NULL when none applies. */
const rl_policy_t *rl_policy_find(const struct rl_conf *conf,
                                  const rl_request_t *req, rl_match_t *m);

/* The first matching policy of each group, in file order, into
 * matches[] (at most max). With req->policy set, that policy only.
 * Returns the number found (0 when none applies). */
int rl_policy_find_all(const struct rl_conf *conf, const rl_request_t *req,
                       rl_match_t *matches, int max);

/* The policy whose verify_tenant decides req: the first in file order,
 * among the policy req names in "policy" (if it fits) and the policies
 * req matches without the name (rl_policy_find_all), that verifies
 * tenants; NULL when none does. Naming a policy cannot skip the tenant
 * check of a policy the request would otherwise match. Borrowed from
 * conf; pure. */
const rl_policy_t *rl_policy_verifier(const struct rl_conf *conf,
                                      const rl_request_t *req);
/* The index of a conf's descriptor policies (policy_desc.c): built once
 * at load with the policies, read-only afterwards, owned by the conf. */
typedef struct rl_policy_desc_index rl_policy_desc_index_t;

/* Builds the index of the descriptor policies among the n policies
 * (borrowed: they must outlive it) into *out, the caller's (free with
 * rl_policy_desc_free); NULL when there are none. 0, or -1 when out of
 * memory. */
int rl_policy_desc_build(const rl_policy_t *policies, int n,
                         rl_policy_desc_index_t **out);

/* Frees an index from rl_policy_desc_build; NULL is fine. */
void rl_policy_desc_free(rl_policy_desc_index_t *ix);

/* The first descriptor policy in file order for domain whose entries
 * match the descriptor req (its headers are the entries, names exact,
 * in order), into m; NULL when none. Found through conf->desc_index:
 * only the policies whose first entry fits req's first one are tested.
 * No allocation, no lock, any thread. Pure. */
const rl_policy_t *rl_policy_find_descriptor(const struct rl_conf *conf,
                                             const char *domain,
                                             const rl_request_t *req,
                                             rl_match_t *m);

/* Encodes one identifier for use inside a key: bytes outside
 * [A-Za-z0-9._~@+-] become %XX, so '{', '}', ':', '|', spaces and control
 * bytes never reach the key; a result longer than RL_KEY_VALUE_MAX is
 * replaced by "#" + hex SHA-256 of the raw value. Writes a NUL terminated
 * string to out (outlen >= RL_KEY_VALUE_MAX + 1) and returns its length. */
size_t rl_key_encode(const char *value, size_t len, char *out, size_t outlen);

/* Builds the decision's base key into buf: without a hash_tag
 * "<prefix>:{<policy>|<v1>|<v2>...}" (everything between the braces is
 * the Redis Cluster hash tag, so all keys of one decision share a slot);
 * with one "<prefix>:{<t1>|<t2>}<policy>|<v1>|<v2>..." where t1.. are
 * the encoded values of the hash_tag fields. Returns the key length, or
 * -1 with *missing set to the key field's spec (e.g.
 * "path.siteIdentifier", "tenant") that the request lacks or has empty. */
int rl_policy_key(const rl_policy_t *p, const char *prefix,
                  const rl_request_t *req, const rl_match_t *m, char *buf,
                  size_t len, const char **missing);

/* The raw value of policy p's key field i for req (borrowed; a method is
 * upper-cased into tmp, RL_KEY_VALUE_MAX + 1 bytes), its length in *len;
 * NULL when absent. Pure. */
const char *rl_policy_key_value(const rl_policy_t *p, int i,
                                const rl_request_t *req, const rl_match_t *m,
                                char *tmp, size_t *len);
/* Builds the key of penalty pen for req into buf: with tag_of (a policy
 * with a hash_tag, and its match m) "<prefix>:{<tag>}!<penalty>|<v1>...",
 * else "<prefix>:{!<penalty>|<v1>...}". Returns the length, or -1 with
 * *missing set to the spec of a penalty key field req lacks (NULL when
 * buf is too small). */
int rl_penalty_key(const rl_penalty_t *pen, const char *prefix,
                   const rl_policy_t *tag_of, const rl_match_t *m,
                   const rl_request_t *req, char *buf, size_t len,
                   const char **missing);

/* 1 if key fields a and b name the same value (kind and NAME). */
int rl_key_field_same(const rl_key_field_t *a, const rl_key_field_t *b);

#endif
