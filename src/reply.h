#ifndef RL_REPLY_H
#define RL_REPLY_H

#include <stddef.h>
#include <jansson.h>
#include "decide.h"

/* Verdict -> rate-limit headers, deny body and the /v1/decide JSON.
 * Pure: no I/O, no clock (times derive from v->now_ms). */

#define RL_REPLY_MAX_HEADERS 6

typedef struct rl_reply_header {
    char name[32];
    char value[1536]; /* RateLimit-Policy lists every limit of every
                       * applied policy */
} rl_reply_header_t;

/* Fills out[] with the headers of v's policy header style, plus
 * Retry-After (seconds, rounded up, >= 1) on a denial that has a retry
 * time (not a deny override without ttl). None when no policy applies.
 * Returns the number written (<= RL_REPLY_MAX_HEADERS).
 * Styles:
 *  x-ratelimit:             X-RateLimit-Limit, X-RateLimit-Remaining,
 *                           X-RateLimit-Reset (unix seconds of the reset)
 *  x-ratelimit-retry-after: X-RateLimit-Limit, X-Ratelimit-Remaining,
 *                           X-Ratelimit-Retry-After (unix seconds)
 *  ietf:                    RateLimit-Policy: one item per limit of every
 *                           applied policy, "policy-PERIOD";q=LIMIT;w=WINDOW_S
 *                           RateLimit: the item with the fewest remaining,
 *                           "policy-PERIOD";r=REMAINING;t=RESET_S
 *  none:                    nothing but Retry-After on a denial */
int rl_reply_headers(const rl_verdict_t *v, rl_reply_header_t *out);

/* Expands {retry_after} (seconds, rounded up), {retry_after_human}
 * ("2 minutes", never shorter than the wait: util.h), {limit} and
 * {policy} in s. Returns a new string (caller frees). Unknown {words},
 * {trace_id} (no request id here), and the two retry placeholders of a
 * denial without a retry time (no Retry-After either; the config and
 * the admin API refuse such a body) are left as they are. */
char *rl_reply_template(const char *s, const rl_verdict_t *v);

/* A copy of body with every string templated like rl_reply_template,
 * plus {trace_id} = trace_id (NULL: left as it is); recursive through
 * objects and arrays. For the policy's "unavailable" body. New
 * reference; NULL only when memory runs out. */
json_t *rl_reply_template_json(const json_t *body, const rl_verdict_t *v,
                               const char *trace_id);

/* A deny body compiled once (at config load, or when an override is
 * built): its compact JSON text, plain and JSON_ENSURE_ASCII, cut at the
 * placeholders inside its strings, so a denial streams it without
 * jansson (rl_reply_deny_write). Immutable; any thread may read it. */
typedef struct rl_body_tpl rl_body_tpl_t;

/* Compiles body (borrowed; not kept). The caller owns the result and
 * frees it with rl_reply_body_free; NULL only when memory runs out. */
rl_body_tpl_t *rl_reply_body_compile(const json_t *body);

/* Frees t; NULL is fine. */
void rl_reply_body_free(rl_body_tpl_t *t);

/* Writes the bytes of json_dumps(rl_reply_deny_body(v), flags |
 * JSON_COMPACT | JSON_PRESERVE_ORDER) into buf (cap bytes, NUL-terminated
 * when it fits), from the compiled body without allocating where v's
 * body was compiled; flags may hold JSON_ENSURE_ASCII and JSON_ENCODE_ANY.
 * Returns the length, >= cap when buf was too small; 0 where jansson
 * would fail (memory ran out, or a scalar body without JSON_ENCODE_ANY). */
size_t rl_reply_deny_write(const rl_verdict_t *v, size_t flags, char *buf,
                           size_t cap);

/* v's deny body as rl_reply_deny_write writes it with flags: into stack
 * (cap bytes) where it fits, else into a new string. Returns stack, the
 * new string (the caller frees it) or NULL (jansson would fail); *len is
 * its length. */
char *rl_reply_deny_text(const rl_verdict_t *v, size_t flags, char *stack,
                         size_t cap, size_t *len);

/* The deny body of v's policy with every string templated (recursively
 * through objects and arrays); the default when the policy has none is
 * {"error": "rate limit exceeded", "code": "RATE_001"}. New reference. */
json_t *rl_reply_deny_body(const rl_verdict_t *v);

/* The /v1/decide reply object: allowed, policy, limit, remaining,
 * reset_after_ms, retry_after_ms, blocked, degraded, status, headers,
 * and body (on a denial); "shadow" for shadow policies. New reference. */
json_t *rl_reply_decision(const rl_verdict_t *v);

/* Writes the bytes of json_dumps(rl_reply_decision(v), JSON_COMPACT |
 * JSON_PRESERVE_ORDER) into buf (cap bytes) without allocating (a policy's
 * own deny body excepted). Returns their length; a value >= cap means buf
 * was too small (or memory ran out) and holds nothing usable. */
size_t rl_reply_decision_write(const rl_verdict_t *v, char *buf, size_t cap);

#endif
