#ifndef RL_STATS_H
#define RL_STATS_H

#include <stdint.h>

/* Counters, declared once here and expanded into the struct and the names
 * (twemproxy's nc_stats.h idea). Each worker owns one rl_stats_t and is
 * its only writer, so an increment is a plain load and store: no lock and
 * no locked instruction on the hot path. Readers (a scrape, /ready) on
 * other threads sum them with relaxed atomic loads. */
#define RL_STATS_COUNTERS(X)                                                   \
    X(http_requests, "HTTP requests answered")                                 \
    X(decisions_allowed, "decisions that admitted the request")                \
    X(decisions_denied, "decisions that denied the request")                   \
    X(decisions_shadow_denied, "shadow-mode decisions that would have denied") \
    X(decisions_unmatched, "decisions for which no policy applied")            \
    X(decisions_invalid, "decision requests rejected as invalid")              \
    X(decisions_degraded, "decisions made by the failure mode")                \
    X(store_errors, "store operations that failed")                             \
    X(auth_failures, "requests refused by caller authentication")              \
    X(tenant_auth_failures, "decisions refused by tenant verification")

typedef struct rl_stats {
#define RL_STATS_FIELD(name, help) uint64_t name;
    RL_STATS_COUNTERS(RL_STATS_FIELD)
#undef RL_STATS_FIELD
} rl_stats_t;

/* Single-writer increment: only the owning worker calls it. */
#define RL_STAT_INC(st, field) \
    __atomic_store_n(&(st)->field, __atomic_load_n(&(st)->field, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED)

/* Adds src into dst with relaxed loads; any thread. */
void rl_stats_add(rl_stats_t *dst, const rl_stats_t *src);

#endif
