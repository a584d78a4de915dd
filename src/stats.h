#ifndef RL_STATS_H
#define RL_STATS_H

#include <stdint.h>

/* Every metric GET /metrics exports, declared once, one row each (the
 * twemproxy nc_stats.h idea): X(type, shape, field, name, help).
 *   type   the Prometheus TYPE word: counter, gauge or histogram
 *   shape  where the value lives and which labels its series carry:
 *     VALUE    uint64_t field of rl_stats_t, no labels
 *     REASON   uint64_t field[RL_NREASONS] of rl_stats_t, label reason
 *     POLICY   rl_stats_t's per-policy verdict slots, labels policy, verdict
 *     HIST     rl_hist_t hist_<field> of rl_stats_t, label le
 *     PVALUE   uint64_t field of rl_stats_proc_t, no labels
 *     PTIME    int64_t field of rl_stats_proc_t, unix ms, shown in seconds
 *     PINFO    const char *field of rl_stats_proc_t: value 1, label <field>
 *     PRESULT  uint64_t field[RL_NRESULTS] of rl_stats_proc_t, label result
 * The rl_stats_t and rl_stats_proc_t fields, the scrape's sums and the
 * exposition (api_metrics.c) are all expanded from this list, and
 * docs/operations.md's table is checked against it (test_docs.py). A
 * new worker counter is one VALUE row plus its RL_STAT_INC; a new process
 * value (P shapes) is one row plus the line in api_metrics.c's
 * metrics_collect that reads it. Rows are in scrape order. */
#define RL_STATS_METRICS(X)                                                    \
    X(gauge, PINFO, version, "ratelimitd_build_info",                          \
      "version of the running binary")                                         \
    X(gauge, PTIME, started_ms, "ratelimitd_start_time_seconds",               \
      "unix time the process started")                                         \
    X(gauge, PVALUE, workers, "ratelimitd_workers", "worker threads")          \
    X(counter, POLICY, policy, "ratelimitd_decisions_total",                   \
      "decisions by policy and verdict (error: the store failed and the "      \
      "failure_mode decided)")                                                 \
    X(counter, VALUE, http_requests, "ratelimitd_http_requests_total",         \
      "HTTP requests answered")                                                \
    X(counter, VALUE, decisions_unmatched,                                     \
      "ratelimitd_decisions_unmatched_total",                                  \
      "decision requests that no policy matched (allowed, nothing counted)")   \
    X(counter, VALUE, decisions_invalid, "ratelimitd_decisions_invalid_total", \
      "decision requests rejected as invalid (422)")                           \
    X(counter, VALUE, store_reconnects, "ratelimitd_store_reconnects_total",   \
      "store connections re-established after a loss")                         \
    X(counter, VALUE, store_redirections,                                      \
      "ratelimitd_store_redirections_total",                                   \
      "Redis Cluster redirections (MOVED, ASK) followed")                      \
    X(counter, VALUE, store_master_switches,                                   \
      "ratelimitd_store_master_switches_total",                                \
      "Sentinel: moves to a new master (one per worker)")                      \
    X(counter, VALUE, deny_cache_hits, "ratelimitd_deny_cache_hits_total",     \
      "denials answered by the local deny cache without a store round trip")   \
    X(counter, VALUE, admin_resets, "ratelimitd_admin_resets_total",           \
      "keys cleared by POST /v1/admin/reset")                                  \
    X(counter, VALUE, override_puts, "ratelimitd_override_puts_total",         \
      "admin overrides stored by PUT /v1/admin/overrides")                     \
    X(counter, VALUE, override_deletes, "ratelimitd_override_deletes_total",   \
      "admin overrides removed by DELETE /v1/admin/overrides")                 \
    X(gauge, PVALUE, overrides, "ratelimitd_admin_overrides",                  \
      "admin overrides in force, as a worker last loaded them")                \
    X(counter, VALUE, access_log_dropped,                                      \
      "ratelimitd_access_log_dropped_total",                                   \
      "access log lines dropped because the log buffer was full")              \
    X(counter, VALUE, top_keys_untracked,                                      \
      "ratelimitd_top_keys_untracked_total",                                   \
      "denials the top keys summary did not count: its worker's policy "       \
      "tables were all in use")                                                \
    X(counter, VALUE, auth_failures, "ratelimitd_auth_failures_total",         \
      "requests and gRPC calls refused by caller authentication, and admin "   \
      "requests refused for their key (401, 403, 429)")                        \
    X(counter, VALUE, tenant_auth_failures,                                    \
      "ratelimitd_tenant_auth_failures_total",                                 \
      "decisions refused by tenant verification (401, 403)")                   \
    X(counter, VALUE, decisions_allowed, "ratelimitd_decisions_allowed_total", \
      "decisions that admitted the request, all policies (also removed ones)") \
    X(counter, VALUE, decisions_denied, "ratelimitd_decisions_denied_total",   \
      "decisions that denied the request, all policies (also removed ones)")   \
    X(counter, VALUE, decisions_shadow_denied,                                 \
      "ratelimitd_decisions_shadow_denied_total",                              \
      "shadow-mode decisions that would have denied, all policies")            \
    X(counter, VALUE, decisions_degraded,                                      \
      "ratelimitd_decisions_degraded_total",                                   \
      "decisions made by the failure mode, all reasons")                       \
    X(counter, VALUE, store_errors, "ratelimitd_store_failures_total",         \
      "store operations that failed, all reasons")                             \
    X(gauge, VALUE, inflight, "ratelimitd_inflight_requests",                  \
      "requests being handled now")                                            \
    X(gauge, VALUE, connections, "ratelimitd_open_connections",                \
      "open client connections")                                               \
    X(gauge, VALUE, deny_cache_entries, "ratelimitd_deny_cache_entries",       \
      "keys held by the local deny caches of all workers")                     \
    X(counter, REASON, degraded, "ratelimitd_degraded_decisions_total",        \
      "decisions made by the policy's failure_mode because the store "         \
      "failed, by reason")                                                     \
    X(counter, REASON, store_error, "ratelimitd_store_errors_total",           \
      "store operations that failed, by reason")                               \
    X(counter, PRESULT, reloads, "ratelimitd_config_reloads_total",            \
      "configuration reloads (SIGHUP) by result; a failed one leaves the "     \
      "running configuration in force")                                        \
    X(gauge, PINFO, hash, "ratelimitd_config_info",                            \
      "the configuration in force: first 16 hex digits of the file's "         \
      "SHA-256")                                                               \
    X(gauge, PVALUE, generation, "ratelimitd_config_generation",               \
      "1 for the start-up configuration, +1 per successful reload")            \
    X(gauge, PTIME, loaded_ms, "ratelimitd_config_load_time_seconds",          \
      "unix time the configuration in force was loaded")                       \
    X(histogram, HIST, decision, "ratelimitd_decision_duration_seconds",       \
      "time from a complete decision request to its reply")                    \
    X(histogram, HIST, store, "ratelimitd_store_duration_seconds",             \
      "round trip of one store operation (one FCALL on Redis)")                \
    X(counter, VALUE, grpc_ok, "ratelimitd_grpc_calls_ok_total",               \
      "gRPC calls answered OK")                                                \
    X(counter, VALUE, grpc_invalid_argument,                                   \
      "ratelimitd_grpc_calls_invalid_argument_total",                          \
      "gRPC calls answered INVALID_ARGUMENT (malformed or oversized)")         \
    X(counter, VALUE, grpc_not_found, "ratelimitd_grpc_calls_not_found_total", \
      "gRPC calls answered NOT_FOUND (a health check of an unknown service)")  \
    X(counter, VALUE, grpc_deadline_exceeded,                                  \
      "ratelimitd_grpc_calls_deadline_exceeded_total",                         \
      "gRPC calls answered DEADLINE_EXCEEDED (grpc-timeout or "                \
      "grpc.read_timeout_ms passed)")                                          \
    X(counter, VALUE, grpc_unimplemented,                                      \
      "ratelimitd_grpc_calls_unimplemented_total",                             \
      "gRPC calls answered UNIMPLEMENTED (unknown service or method)")         \
    X(counter, VALUE, grpc_unavailable,                                        \
      "ratelimitd_grpc_calls_unavailable_total",                               \
      "gRPC calls answered UNAVAILABLE (store failure, store_failure "         \
      "unavailable)")                                                          \
    X(counter, VALUE, grpc_internal, "ratelimitd_grpc_calls_internal_total",   \
      "gRPC calls answered INTERNAL (out of memory)")                          \
    X(counter, VALUE, grpc_unauthenticated,                                    \
      "ratelimitd_grpc_calls_unauthenticated_total",                           \
      "gRPC calls answered UNAUTHENTICATED (caller authentication failed)")    \
    X(counter, VALUE, grpc_permission_denied,                                  \
      "ratelimitd_grpc_calls_permission_denied_total",                         \
      "gRPC calls answered PERMISSION_DENIED (a suspended caller)")            \
    X(counter, VALUE, grpc_resource_exhausted,                                 \
      "ratelimitd_grpc_calls_resource_exhausted_total",                        \
      "gRPC calls answered RESOURCE_EXHAUSTED (an address refused after "      \
      "repeated authentication failures, or a connection's buffer cap)")       \
    X(counter, VALUE, grpc_read_timeouts,                                      \
      "ratelimitd_grpc_read_timeouts_total",                                   \
      "gRPC requests not complete within grpc.read_timeout_ms (answered "      \
      "DEADLINE_EXCEEDED and reset)")                                          \
    X(counter, VALUE, grpc_buffer_refusals,                                    \
      "ratelimitd_grpc_buffer_refusals_total",                                 \
      "gRPC requests refused because their connection's unfinished requests "  \
      "held too many bytes (answered RESOURCE_EXHAUSTED and reset)")           \
    X(histogram, HIST, grpc, "ratelimitd_grpc_duration_seconds",               \
      "time from a complete gRPC request to its answer")

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

/* Results of a configuration reload. */
#define RL_STATS_RESULTS(X)                                                    \
    X(ok)                                                                      \
    X(failed)

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

typedef enum {
#define RL_STATS_RESULT_ENUM(name) RL_RESULT_##name,
    RL_STATS_RESULTS(RL_STATS_RESULT_ENUM)
#undef RL_STATS_RESULT_ENUM
        RL_NRESULTS
} rl_stats_result_t;
/* clang-format on */

/* The shapes of RL_STATS_METRICS (see there), for the exporter's table. */
typedef enum {
    RL_METRIC_VALUE,
    RL_METRIC_REASON,
    RL_METRIC_POLICY,
    RL_METRIC_HIST,
    RL_METRIC_PVALUE,
    RL_METRIC_PTIME,
    RL_METRIC_PINFO,
    RL_METRIC_PRESULT
} rl_metric_shape_t;

/* Histogram buckets (upper bounds, microseconds); the last bucket is
 * +Inf. Buckets are not cumulative here; the scrape adds them up. */
#define RL_HIST_NBOUNDS 14
extern const int64_t rl_hist_bounds_us[RL_HIST_NBOUNDS];

typedef struct rl_hist {
    uint64_t bucket[RL_HIST_NBOUNDS + 1];
    uint64_t count;
    uint64_t sum_us;
} rl_hist_t;

/* Per-policy counters live in chunks of slots; a slot is given to each
 * policy name once per process (rl_stats_policy_slot), so a policy that
 * survives a reload keeps counting in the same place. */
#define RL_STATS_POLICY_CHUNK 256
#define RL_STATS_POLICY_CHUNKS 256 /* at most 65536 distinct policy names */

typedef struct rl_stats_policy {
    uint64_t v[RL_NVERDICTS];
} rl_stats_policy_t;

/* The field each shape gives a struct (nothing for the other struct's). */
#define RL_STATS_FIELD_VALUE(f) uint64_t f;
#define RL_STATS_FIELD_REASON(f) uint64_t f[RL_NREASONS];
/* Allocated by the main thread before a conf using them goes live
 * (rl_stats_policy_reserve); written by the owning worker only. */
#define RL_STATS_FIELD_POLICY(f) rl_stats_policy_t *f[RL_STATS_POLICY_CHUNKS];
#define RL_STATS_FIELD_HIST(f) rl_hist_t hist_##f;
#define RL_STATS_FIELD_PVALUE(f)
#define RL_STATS_FIELD_PTIME(f)
#define RL_STATS_FIELD_PINFO(f)
#define RL_STATS_FIELD_PRESULT(f)
#define RL_STATS_PROC_FIELD_VALUE(f)
#define RL_STATS_PROC_FIELD_REASON(f)
#define RL_STATS_PROC_FIELD_POLICY(f)
#define RL_STATS_PROC_FIELD_HIST(f)
#define RL_STATS_PROC_FIELD_PVALUE(f) uint64_t f;
#define RL_STATS_PROC_FIELD_PTIME(f) int64_t f;
#define RL_STATS_PROC_FIELD_PINFO(f) const char *f;
#define RL_STATS_PROC_FIELD_PRESULT(f) uint64_t f[RL_NRESULTS];

/* One worker's metrics. Each worker owns one rl_stats_t and is its only
 * writer, so an increment is a plain load and store: no lock and no
 * locked instruction on the hot path. Readers (a scrape, /ready) on other
 * threads sum them with relaxed atomic loads. */
typedef struct rl_stats {
#define RL_STATS_FIELD(type, shape, field, name, help)                         \
    RL_STATS_FIELD_##shape(field)
    RL_STATS_METRICS(RL_STATS_FIELD)
#undef RL_STATS_FIELD
} rl_stats_t;

/* Process-wide values a scrape shows beside the workers' sums (the P
 * shapes), filled from the app and the conf in force at scrape time. */
typedef struct rl_stats_proc {
#define RL_STATS_PROC_FIELD(type, shape, field, name, help)                    \
    RL_STATS_PROC_FIELD_##shape(field)
    RL_STATS_METRICS(RL_STATS_PROC_FIELD)
#undef RL_STATS_PROC_FIELD
} rl_stats_proc_t;

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

/* Adds src into dst (VALUE, REASON and HIST fields; not the per-policy
 * chunks) with relaxed loads; any thread. */
void rl_stats_add(rl_stats_t *dst, const rl_stats_t *src);

/* Records one observation of us microseconds in h (owning worker). */
void rl_hist_observe(rl_hist_t *h, int64_t us);

/* Maps a store error string to its reason index ("other" if unknown). */
rl_stats_reason_t rl_stats_reason(const char *error);
const char *rl_stats_reason_name(int reason);
const char *rl_stats_verdict_name(int verdict);
const char *rl_stats_result_name(int result);

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
