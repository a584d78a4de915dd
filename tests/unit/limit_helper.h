#ifndef RL_TEST_LIMIT_HELPER_H
#define RL_TEST_LIMIT_HELPER_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "limit.h"

/* A limit as conf.c would build it: its algorithm, requests per period,
 * burst, block and key suffix. */
static inline rl_limit_t rl_test_limit(rl_algo_t algo, int64_t requests,
                                       int64_t period_ms, int64_t burst,
                                       int64_t block_ms, const char *suffix)
{
    rl_limit_t l;

    memset(&l, 0, sizeof(l));
    l.algo = algo;
    l.requests = requests;
    l.period_ms = period_ms;
    l.burst = burst;
    l.block_ms = block_ms;
    snprintf(l.suffix, sizeof(l.suffix), "%s", suffix);
    return l;
}

#endif
