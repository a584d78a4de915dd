#ifndef RL_ALGO_MEM_H
#define RL_ALGO_MEM_H

#include <stdint.h>
#include "conf.h"

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

#define RL_MAX_LIMITS 8

typedef struct rl_limit_state {
    int64_t v[3];
    int64_t expires_ms;     /* 0 = empty state */
    int64_t block_until_ms; /* 0 = not blocked */
} rl_limit_state_t;

typedef struct rl_limit_result {
    int allowed;
    int blocked;            /* denied because of an active block */
    int64_t remaining;      /* requests left after this decision */
    int64_t reset_after_ms; /* until the limit is fully available again */
    int64_t retry_after_ms; /* 0 if allowed; else until a request of this cost
                               can pass */
} rl_limit_result_t;

/* Decides one request of `cost` against n limits at once. states[i] is
 * the state of limits[i] (zeroed = fresh); it is updated in place only
 * when every limit admits (and block_until on the limits that deny).
 * Returns 1 if admitted, 0 if denied; results[i] is filled for each. */
int rl_algo_decide(const rl_limit_t *limits, int n, rl_limit_state_t *states,
                   int64_t now_ms, int64_t cost, rl_limit_result_t *results);

#endif
