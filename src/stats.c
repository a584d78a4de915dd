/* Summing per-worker counters when someone reads them. */
#include "stats.h"

void rl_stats_add(rl_stats_t *dst, const rl_stats_t *src)
{
#define RL_STATS_SUM(name, help) dst->name += __atomic_load_n(&src->name, __ATOMIC_RELAXED);
    RL_STATS_COUNTERS(RL_STATS_SUM)
#undef RL_STATS_SUM
}
