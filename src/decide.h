#ifndef RL_DECIDE_H
#define RL_DECIDE_H

#include <stdint.h>
#include "conf.h"
#include "errors.h"
#include "policy.h"
#include "request.h"
#include "store.h"

/* The decision core: one decision request in, one verdict out. Knows
 * nothing of HTTP, so every front end (/v1/decide, the batch endpoint,
 * forward-auth) calls it the same way. Worker thread only. */

/* An applied policy of a verdict: its limits (the test limits when its
 * test header applied) and, when the store answered, what it said of
 * each (NULL for a cached, degraded or unanswered verdict). */
typedef struct rl_verdict_part {
    const rl_policy_t *policy;
    const rl_limit_t *limits;
    int nlimits;
    const rl_limit_result_t *results;
} rl_verdict_part_t;

typedef struct rl_verdict {
    int allowed;               /* what the caller should do */
    const rl_policy_t *policy; /* NULL: no policy applies */
    const rl_limit_t
        *limit_def; /* the most restrictive limit (fewest remaining) */
    int64_t limit;  /* its requests */
    int64_t remaining;
    int64_t reset_after_ms;
    int64_t retry_after_ms;      /* 0 when allowed */
    int64_t now_ms;              /* the store's clock at the decision */
    int blocked;                 /* denied because of an active block */
    int degraded;                /* the store failed; failure_mode decided */
    const char *degraded_reason; /* "timeout", "disconnected", ... or NULL */
    int test;                    /* the policy's test header applied */
    int shadow_would_deny;       /* shadow policy that would have denied */
    int cached;                  /* answered by the local deny cache */
    int override_deny; /* a deny override answered: no store counts were read,
                        * so no rate-limit headers; retry_after_ms is the
                        * time until the override expires, 0 if it never
                        * does (then no Retry-After either) */
    int unlimited;     /* every applied policy has "limits": [] (no override or
                        * test limits gave it some): allowed, nothing counted,
                        * so no rate-limit headers; limit_def is NULL */
    int status; /* HTTP status a gateway should answer: 200, deny_status, or
                 * 503; for RL_DECIDE_AUTH, 401 or 403 */
    rl_error_t error; /* RL_DECIDE_AUTH only: the tenant check's RL_ERR_AUTH_*
                       * kind (errors.h) */
    /* Every applied policy (the first matching one of each group), in
     * file order; policy is one of them. */
    rl_verdict_part_t policies[RL_MAX_OP_PARTS];
    int npolicies;
    const char *override;    /* "config" / "admin" for the deciding policy, or
                              * NULL */
    const json_t *deny_body; /* a deny override's body; NULL: the policy's */
    const struct rl_body_tpl *deny_tpl; /* deny_body compiled, or NULL */
    const char *penalty;                /* the penalty that blocks, or NULL */
    const rl_penalty_t *penalty_def;    /* its definition (deny), or NULL */
    /* Bit i: policies[i] is what denies: a limit of its own, a blocking
     * penalty on its key, or the deny override of its key (other parts
     * only share the denial, a decision being atomic). 0 when nothing
     * denied, and for a degraded verdict (failure_mode decides). */
    unsigned deny_parts;
} rl_verdict_t;

typedef enum {
    RL_DECIDE_OK = 0,      /* verdict is set */
    RL_DECIDE_INVALID,     /* the request lacks a key field: 422 VAL_001 */
    RL_DECIDE_BAD_POLICY,  /* "policy" names none that fits: 422 VAL_002 */
    RL_DECIDE_UNAVAILABLE, /* store failed and failure_mode is closed: 503 */
    RL_DECIDE_AUTH /* the policy verifies tenants and the signature failed:
                    * answer v->status (401/403) with v->error; nothing
                    * was counted */
} rl_decide_status_t;

/* v and message are valid only during the callback. message is set for
 * RL_DECIDE_INVALID and RL_DECIDE_BAD_POLICY ("tenant is required for policy
 * \"x\""). For RL_DECIDE_UNAVAILABLE v is also set (allowed 0, degraded 1). For
 * RL_DECIDE_AUTH both are: v->policy, v->status, v->error and the
 * message ("invalid signature"). */
typedef void rl_decide_cb(void *arg, rl_decide_status_t status,
                          const rl_verdict_t *v, const char *message);

/* Decides req under conf with store. req may be freed once this returns.
 * cb is called exactly once, possibly before this returns. */
void rl_decide(const rl_conf_t *conf, rl_store_t *store,
               const rl_request_t *req, rl_decide_cb *cb, void *arg);

/* A pre-matched part of a decision (the gRPC front end): a policy and
 * its match, the request its key and overrides are built from, its
 * cost, and limits that replace the policy's (NULL: the policy's or an
 * override's). limits must live until the callback has returned; req
 * only until rl_decide_items returns. */
typedef struct rl_decide_item {
    rl_match_t match;
    const rl_request_t *req;
    int64_t cost; /* 0 = peek */
    const rl_limit_t *limits;
    int nlimits;
} rl_decide_item_t;

/* Decides the n (1..RL_MAX_OP_PARTS) items as the parts of one atomic
 * step, each at its own cost, without tenant signatures or the deny
 * cache; answers like rl_decide (v->policies[i] is items[i]'s part). */
void rl_decide_items(const rl_conf_t *conf, rl_store_t *store,
                     const rl_decide_item_t *items, int n, rl_decide_cb *cb,
                     void *arg);

/* Clears the state of req's key for its policy (the limits req would be
 * decided against: the test limits when its test header is present),
 * through the store's reset. cb gets RL_DECIDE_OK with v->policy and
 * v->test set, RL_DECIDE_BAD_POLICY when no policy applies (or "policy"
 * names none that fits), RL_DECIDE_INVALID when a key field is missing,
 * or RL_DECIDE_UNAVAILABLE / a degraded v when the store failed. Every
 * worker's deny cache is invalidated once the store has answered. */
void rl_decide_reset(const rl_conf_t *conf, rl_store_t *store,
                     const rl_request_t *req, rl_decide_cb *cb, void *arg);

/* Frees the calling thread's recycled decision contexts; a worker calls
 * it once its loop has ended and no decision is pending. */
void rl_decide_thread_cleanup(void);

/* Builds the verdict from a store result for policy p alone (pure; used
 * by rl_decide and tested on its own). */
void rl_decide_verdict(const rl_policy_t *p, const rl_limit_t *limits,
                       int nlimits, int test, const rl_store_result_t *res,
                       rl_verdict_t *v);

/* Builds the verdict of a layered decision (pure): parts[] are the
 * applied policies in file order, each with its limits; res holds their
 * results in that order and the penalties' (pens[j] the definition of
 * the op's penalty j, masks[j] its parts). The deciding policy: a
 * blocking penalty's first part, else the first part with a denying
 * limit, else the part with the fewest remaining (tie: file order). The
 * denying parts (deny_parts): those of every blocking penalty and those
 * with a denying limit. */
void rl_decide_verdict_layered(const rl_verdict_part_t *parts, int nparts,
                               const rl_penalty_t *const *pens,
                               const unsigned *masks, int npens,
                               const int *tests, const rl_store_result_t *res,
                               rl_verdict_t *v);

/* The verdict of a decision whose n applied policies (parts, file
 * order) all have no limits: allowed by the first, nothing counted, no
 * store call (pure). */
void rl_decide_verdict_unlimited(const rl_verdict_part_t *parts, int n,
                                 rl_verdict_t *v);

/* Puts the limit-less parts back into v->policies: all[] are every
 * applied policy in file order (nlimits 0: one without limits, which the
 * store never saw); v->policies held only the others, in that order.
 * Afterwards v->policies[i] is all[i]'s part (pure). */
void rl_decide_verdict_expand(const rl_verdict_part_t *all, int nall,
                              rl_verdict_t *v);

struct rl_deny_entry;

/* Builds the verdict of a denial answered by the deny cache entry e at
 * local monotonic time now_us (pure; limits are the set e was decided
 * on). Times in it are the cached ones minus the time elapsed since. */
void rl_decide_verdict_cached(const rl_policy_t *p, const rl_limit_t *limits,
                              int test, const struct rl_deny_entry *e,
                              int64_t now_us, rl_verdict_t *v);

#endif
