#ifndef RL_DECIDE_INT_H
#define RL_DECIDE_INT_H

/* Private to the decision core: the context of a decision in flight,
 * shared by its two files.
 *   decide.c       the decision's steps: policies, tenant, overrides,
 *                  deny cache, the store call and the verdict
 *   decide_keys.c  the store keys of a decision: every part's base key
 *                  (and its top-keys values) and the penalties' keys
 * Worker thread only. */

#include <stddef.h>
#include <stdint.h>
#include "decide.h"
#include "deny_cache.h"
#include "override.h"
#include "topkeys.h"

typedef enum { DECIDE_OP_DECIDE = 0, DECIDE_OP_RESET } decide_kind_t;

/* One applied policy of a decision in flight. */
typedef struct decide_part {
    const rl_policy_t *policy;
    const rl_limit_t *limits; /* the test limits when test is set */
    int nlimits;
    int test;
    const char *override;      /* "config" / "admin" when one set the limits */
    const rl_override_t *held; /* the admin override whose limits these are,
                                * held until the decision has answered */
    rl_match_t match;
    const rl_request_t *req; /* its key's request; only while starting */
    int64_t cost;
    size_t toplen; /* its key values for the top keys (topkeys.h) */
    char top[RL_TOPKEYS_KEY_MAX];
} decide_part_t;

typedef struct decide_ctx {
    struct decide_ctx *next_free;
    const rl_conf_t *conf; /* pinned until the callback has returned */
    decide_part_t parts[RL_MAX_OP_PARTS]; /* those the store decides */
    int nparts;
    /* Every applied policy when some have no limits (decide_limitless);
     * nall 0 when none was set aside. */
    rl_verdict_part_t all[RL_MAX_OP_PARTS];
    int nall;
    const rl_penalty_t *pens[RL_MAX_OP_PENALTIES];
    unsigned masks[RL_MAX_OP_PENALTIES];
    int npens;
    decide_kind_t kind;
    int64_t cost;
    int part_costs;  /* rl_decide_items: each part has its own cost */
    int64_t sent_us; /* monotonic, when the store call went out */
    uint64_t epoch;  /* deny cache invalidation epoch at that time */
    size_t keylen;   /* 0 when the decision is not cached */
    char key[RL_DENY_KEY_MAX];
    rl_decide_cb *cb;
    void *arg;
} decide_ctx_t;

/* The keys of a decision, built in one buffer. */
typedef struct decide_keys {
    rl_store_part_t parts[RL_MAX_OP_PARTS];
    rl_store_penalty_t pens[RL_MAX_OP_PENALTIES];
    size_t used;
    /* Room for every key at its longest, so a penalty is never dropped
     * for want of space. */
    char buf[RL_KEY_MAX * (RL_MAX_OP_PARTS + RL_MAX_OP_PENALTIES)];
} decide_keys_t;

/* Builds every part's key into k (limits from c) and copies each one's
 * top-keys values into the part. Returns 0, or -1 with *bad the part
 * that lacks *missing. */
int rl_decide_keys_parts(decide_ctx_t *c, decide_keys_t *k, int *bad,
                         const char **missing);

/* Adds the penalties c's parts name to c and their keys to k (at most
 * RL_MAX_OP_PENALTIES distinct ones); a penalty whose key field a
 * request lacks does not apply to it. */
void rl_decide_keys_penalties(decide_ctx_t *c, decide_keys_t *k);

#endif
