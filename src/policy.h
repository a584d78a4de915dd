#ifndef RL_POLICY_H
#define RL_POLICY_H

#include <stddef.h>
#include "conf.h"
#include "request.h"

/* Matching a request to a policy and building its Redis key. Pure, no
 * I/O: the same for every store and every front end. */

#define RL_MAX_PARAMS 16
#define RL_KEY_MAX 2048      /* a base key never exceeds this */
#define RL_KEY_VALUE_MAX 128 /* an encoded identifier past this is hashed */

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

/* The first policy, in file order, whose method (if set) and path fit.
 * With req->policy set, that policy only (NULL if unknown or its method
 * or path does not fit). Returns NULL when none applies. */
const rl_policy_t *rl_policy_find(const rl_conf_t *conf,
                                  const rl_request_t *req, rl_match_t *m);

/* Encodes one identifier for use inside a key: bytes outside
 * [A-Za-z0-9._~@+-] become %XX, so '{', '}', ':', '|', spaces and control
 * bytes never reach the key; a result longer than RL_KEY_VALUE_MAX is
 * replaced by "#" + hex SHA-256 of the raw value. Writes a NUL terminated
 * string to out (outlen >= RL_KEY_VALUE_MAX + 1) and returns its length. */
size_t rl_key_encode(const char *value, size_t len, char *out, size_t outlen);

/* Builds the decision's base key "<prefix>:{<policy>|<v1>|<v2>...}" into
 * buf; everything between the braces is the Redis Cluster hash tag, so
 * all keys of one decision share a slot. Returns the key length, or -1
 * with *missing set to the key field's spec (e.g. "path.siteIdentifier",
 * "tenant") that the request lacks or has empty. */
int rl_policy_key(const rl_policy_t *p, const char *prefix,
                  const rl_request_t *req, const rl_match_t *m, char *buf,
                  size_t len, const char **missing);

#endif
