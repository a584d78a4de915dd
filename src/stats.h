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
    X(store_errors, "store operations that failed")                            \
    X(auth_failures, "requests refused by caller authentication")              \
    X(tenant_auth_failures, "decisions refused by tenant verification")        \
    X(store_reconnects, "store connections re-established after a loss")       \
    X(store_redirections, "Redis Cluster redirections (MOVED, ASK) followed")  \
    X(deny_cache_hits, "denials answered by the local deny cache")             \
    X(admin_resets, "keys cleared through POST /v1/admin/reset")               \
    X(access_log_dropped,                                                      \
      "access log lines dropped because the buffer was full")

/* Gauges a worker publishes from its 50 ms tick (same single writer). */
#define RL_STATS_GAUGES(X)                                                     \
    X(inflight, "requests being handled")                                      \
    X(connections, "open client connections")                                  \
    X(deny_cache_entries, "keys held by the local deny cache")

/* Why a store operation failed (the store's static error strings);
 * anything else counts as "other". */
#define RL_STATS_REASONS(X)                                                    \
    X(timeout)                                                                 \
    X(disconnected)                                                            \
    X(bad_reply)                                                               \
    X(script_error)                                                            \
    X(redis_error)                                                             \
    X(protocol)                                                                \
    X(out_of_memory)                                                           \
    X(bad_op)                                                                  \
    X(tryagain)                                                                \
    X(cluster_down)                                                            \
    X(loading)                                                                 \
    X(too_many_redirects)                                                      \
    X(other)

/* Verdicts counted per policy. */
#define RL_STATS_VERDICTS(X)                                                   \
    X(allowed)                                                                 \
    X(denied)                                                                  \
    X(shadow_denied)                                                           \
    X(error)

/* clang-format off: an X-macro expansion is not a statement */
typedef enum {
#define RL_STATS_REASON_ENUM(name) RL_REASON_##name,
    RL_STATS_REASONS(RL_STATS_REASON_ENUM)
#undef RL_STATS_REASON_ENUM
        RL_NREASONS
} rl_stats_reason_t;

typedef enum {
#define RL_STATS_VERDICT_ENUM(name) RL_VERDICT_##name,
    RL_STATS_VERDICTS(RL_STATS_VERDICT_ENUM)
#undef RL_STATS_VERDICT_ENUM
        RL_NVERDICTS
} rl_stats_verdict_t;
/* clang-format on */

/* Histogram buckets (upper bounds, microseconds); the last bucket is
 * +Inf. Buckets are not cumulative here; the scrape adds them up. */
#define RL_HIST_NBOUNDS 14
extern const int64_t rl_hist_bounds_us[RL_HIST_NBOUNDS];

typedef struct rl_hist {
    uint64_t bucket[RL_HIST_NBOUNDS + 1];
    uint64_t count;
    uint64_t sum_us;
} rl_hist_t;

/* Histograms: field, metric name, help. */
#define RL_STATS_HISTOGRAMS(X)                                                 \
    X(decision, "ratelimitd_decision_duration_seconds",                        \
      "time from a complete decision request to its reply")                    \
    X(store, "ratelimitd_store_duration_seconds",                              \
      "round trip of one store operation (one EVALSHA on Redis)")

/* Per-policy counters live in chunks of slots; a slot is given to each
 * policy name once per process (rl_stats_policy_slot), so a policy that
 * survives a reload keeps counting in the same place. */
#define RL_STATS_POLICY_CHUNK 256
#define RL_STATS_POLICY_CHUNKS 256 /* at most 65536 distinct policy names */

typedef struct rl_stats_policy {
    uint64_t v[RL_NVERDICTS];
} rl_stats_policy_t;

typedef struct rl_stats {
#define RL_STATS_FIELD(name, help) uint64_t name;
    RL_STATS_COUNTERS(RL_STATS_FIELD)
    RL_STATS_GAUGES(RL_STATS_FIELD)
#undef RL_STATS_FIELD
    uint64_t degraded[RL_NREASONS];    /* decisions made by the failure mode */
    uint64_t store_error[RL_NREASONS]; /* failed store operations */
#define RL_STATS_HIST_FIELD(name, metric, help) rl_hist_t hist_##name;
    RL_STATS_HISTOGRAMS(RL_STATS_HIST_FIELD)
#undef RL_STATS_HIST_FIELD
    /* Allocated by the main thread before a conf using them goes live
     * (rl_stats_policy_reserve); written by the owning worker only. */
    rl_stats_policy_t *policy[RL_STATS_POLICY_CHUNKS];
} rl_stats_t;

/* The calling worker thread's counters (set by the worker at start);
 * NULL on other threads, where counting is skipped. */
extern _Thread_local rl_stats_t *rl_stats_self;

/* Single-writer update: only the owning worker calls these. */
#define RL_STAT_ADDV(lvalue, n)                                                \
    __atomic_store_n(&(lvalue),                                                \
                     __atomic_load_n(&(lvalue), __ATOMIC_RELAXED) + (n),       \
                     __ATOMIC_RELAXED)
#define RL_STAT_INC(st, field) RL_STAT_ADDV((st)->field, 1)
#define RL_STAT_SET(st, field, v)                                              \
    __atomic_store_n(&(st)->field, (uint64_t)(v), __ATOMIC_RELAXED)

/* Adds src into dst (counters, gauges, reasons, histograms; not the
 * per-policy chunks) with relaxed loads; any thread. */
void rl_stats_add(rl_stats_t *dst, const rl_stats_t *src);

/* Records one observation of us microseconds in h (owning worker). */
void rl_hist_observe(rl_hist_t *h, int64_t us);

/* Maps a store error string to its reason index ("other" if unknown). */
rl_stats_reason_t rl_stats_reason(const char *error);
const char *rl_stats_reason_name(int reason);
const char *rl_stats_verdict_name(int verdict);

/* Counts one verdict for the policy in slot (owning worker; slot < 0 is
 * ignored). */
void rl_stats_policy_count(rl_stats_t *st, int slot,
                           rl_stats_verdict_t verdict);

/* Reads the verdict counts of slot from st (any thread); zeros if the
 * slot was never reserved. */
void rl_stats_policy_read(const rl_stats_t *st, int slot,
                          uint64_t out[RL_NVERDICTS]);

/* The slot of a policy name, given out on first use; -1 once every slot
 * is taken (that policy is then not counted). Main thread only. */
int rl_stats_policy_slot(const char *name);

/* Number of slots given out, and the name of one (any thread). */
int rl_stats_policy_slots(void);
const char *rl_stats_policy_name(int slot);

/* Makes sure st has chunks for slots below nslots. Main thread, before
 * the conf that uses them reaches the worker. Returns 0 or -1. */
int rl_stats_policy_reserve(rl_stats_t *st, int nslots);

/* Frees st's chunks (its worker has stopped). */
void rl_stats_free(rl_stats_t *st);

/* Frees the name registry; at exit, once no thread reads it. */
void rl_stats_registry_free(void);

#endif
