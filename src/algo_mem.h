#ifndef RL_ALGO_MEM_H
#define RL_ALGO_MEM_H

#include <stdint.h>
#include "limit.h"

/* The algorithms in C, for the memory store. Pure functions of (state,
 * now): tests inject the clock. Semantics are exactly those of
 * the Lua scripts in lua/ (see docs/algorithms.md):
 *  - gcra: v[0] = theoretical arrival time (microseconds). Emission
 *    interval T = ceil(period_us/requests); admits if tat' - burst*T <= now.
 *  - fixed_window: windows aligned to the epoch (floor(now/period));
 *    v[0] = window index, v[1] = count.
 *  - sliding_window: v[0] = current window index, v[1] = previous window
 *    count, v[2] = current count; estimate = prev*(1 - elapsed/period) + cur.
 *  - block: once a limit with block_ms denies, block_until = now+block_ms
 *    and every request is denied until then.
 * A denied request consumes nothing from any limit; cost 0 is a peek. */

typedef struct rl_limit_state {
    int64_t v[3];
    int64_t expires_ms;     /* 0 = empty state */
    int64_t block_until_ms; /* 0 = not blocked */
} rl_limit_state_t;

/* What one algorithm says about one limit, before anything is stored. */
typedef struct rl_algo_eval {
    int ok; /* this limit alone would admit */
    int64_t remaining;
    int64_t reset_after_ms;
    int64_t retry_after_ms;
    rl_limit_state_t next; /* the state to store if the request is admitted */
} rl_algo_eval_t;

/* The algorithms' evaluations (algo_mem.c), one per row of algo.h and
 * named there: each looks at limit l on state st (an expired state
 * already counts as empty) and fills e, which arrives zeroed but for
 * e->next, a copy of *st; nothing is written. Pure; any thread. */
#define RL_ALGO_MEM_DECL(tag, word, letter, script, burst, mem)                \
    rl_algo_mem_fn mem;
RL_ALGO_ROWS(RL_ALGO_MEM_DECL)
#undef RL_ALGO_MEM_DECL

/* Decides one request of `cost` against n limits at once. states[i] is
 * the state of limits[i] (zeroed = fresh); it is updated in place only
 * when every limit admits (and block_until on the limits that deny).
 * Returns 1 if admitted, 0 if denied; results[i] is filled for each. */
int rl_algo_decide(const rl_limit_t *limits, int n, rl_limit_state_t *states,
                   int64_t now_ms, int64_t cost, rl_limit_result_t *results);

/* A layered op for rl_algo_decide_layered: n limits by pointer, each
 * with its part (1..RL_MAX_OP_PARTS), and m penalties. */
typedef struct rl_algo_layered {
    const rl_limit_t *limits[RL_MAX_OP_LIMITS];
    int part[RL_MAX_OP_LIMITS];
    int64_t costs[RL_MAX_OP_LIMITS]; /* each limit's (its part's) cost */
    int n;
    rl_penalty_step_t penalties[RL_MAX_OP_PENALTIES];
    int m;
    int64_t cost; /* > 0: a denial counts on the penalties */
} rl_algo_layered_t;

/* Decides a request over every part and penalty at once, as
 * lua/decide.lua does: a live block in pstates[j] (block_until_ms) denies,
 * counting nothing (limits reported as a peek); else the limits decide
 * all or nothing (rl_algo_decide); a denial with cost > 0 counts one on
 * every penalty whose mask holds a part that had a denying limit
 * (pstates[j].v[0] = count, expires_ms = end of its `within`), and at
 * `denials` starts its block. Returns 1 if admitted. Pure; the caller
 * owns every array. */
int rl_algo_decide_layered(const rl_algo_layered_t *op,
                           rl_limit_state_t *states, rl_limit_state_t *pstates,
                           int64_t now_ms, rl_limit_result_t *results,
                           rl_penalty_result_t *presults);

#endif
