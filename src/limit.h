#ifndef RL_LIMIT_H
#define RL_LIMIT_H

#include <stdint.h>
#include "algo.h"

/* A limit of a policy and what a store says about it: the types shared by
 * the config (conf.h), the stores (store.h) and the algorithms. */

#define RL_MAX_LIMITS 8 /* limits per policy or test rule */

typedef struct rl_limit {
    rl_algo_t algo;
    int64_t requests;  /* > 0 */
    int64_t period_ms; /* > 0 */
    int64_t burst;     /* gcra only: > 0, defaults to requests */
    int64_t block_ms;  /* 0 = no block */
    /* Redis key suffix naming this limit, stable across reloads as long
     * as the limit's algorithm and period do not change: the algorithm's
     * letter, then the period in the largest unit (d, h, m, s, ms) that
     * divides it: "g5m", "f10s", "s1h", "g1500ms"; test limits get a "t"
     * in front ("tg10s"). At most 24 bytes with the NUL. */
    char suffix[40];
} rl_limit_t;

typedef struct rl_limit_result {
    int allowed;
    int blocked;            /* denied because of an active block */
    int64_t remaining;      /* requests left after this decision */
    int64_t reset_after_ms; /* until the limit is fully available again */
    int64_t retry_after_ms; /* 0 if allowed; else until a request of this cost
                               can pass */
} rl_limit_result_t;

/* Layered decisions (store.h): one store op carries up to
 * RL_MAX_OP_PARTS parts (one per applied policy) with RL_MAX_OP_LIMITS
 * limits between them, and up to RL_MAX_OP_PENALTIES penalties. */
#define RL_MAX_OP_LIMITS 32
#define RL_MAX_OP_PARTS 8
#define RL_MAX_OP_PENALTIES 4

/* What a penalty counts: every denial of a part in mask (bit p-1 = part
 * p) counts one; `denials` of them within within_ms block the penalty's
 * key for block_ms. */
typedef struct rl_penalty_step {
    int64_t denials;   /* > 0 */
    int64_t within_ms; /* > 0 */
    int64_t block_ms;  /* > 0 */
    unsigned mask;
} rl_penalty_step_t;

typedef enum {
    RL_PENALTY_NONE = 0,     /* the penalty did not block */
    RL_PENALTY_BLOCKING = 1, /* its block denied this request */
    RL_PENALTY_STARTED = 2   /* this denial started its block */
} rl_penalty_state_t;

typedef struct rl_penalty_result {
    int state;              /* rl_penalty_state_t */
    int64_t retry_after_ms; /* time left of the block, 0 without one */
} rl_penalty_result_t;

#endif
