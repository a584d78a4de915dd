/* GET /metrics: every worker's counters, summed at scrape time, in the
 * Prometheus text exposition format (version 0.0.4). The workers never
 * lock or share a cache line for this: each writes its own rl_stats_t,
 * and this reads them all with relaxed loads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include "api.h"
#include "config.h"
#include "server.h"
#include "stats.h"
#include "worker.h"

#define METRICS_CTYPE "text/plain; version=0.0.4; charset=utf-8"

/* Plain counters: stats field, metric name, help. */
#define METRICS_COUNTERS(X)                                                    \
    X(http_requests, "ratelimitd_http_requests_total",                         \
      "HTTP requests answered")                                                \
    X(decisions_unmatched, "ratelimitd_decisions_unmatched_total",             \
      "decision requests that no policy matched (allowed, nothing counted)")   \
    X(decisions_invalid, "ratelimitd_decisions_invalid_total",                 \
      "decision requests rejected as invalid (422)")                           \
    X(store_reconnects, "ratelimitd_store_reconnects_total",                   \
      "store connections re-established after a loss")                         \
    X(store_redirections, "ratelimitd_store_redirections_total",               \
      "Redis Cluster redirections (MOVED, ASK) followed")                      \
    X(deny_cache_hits, "ratelimitd_deny_cache_hits_total",                     \
      "denials answered by the local deny cache without a store round trip")   \
    X(admin_resets, "ratelimitd_admin_resets_total",                           \
      "keys cleared by POST /v1/admin/reset")                                  \
    X(access_log_dropped, "ratelimitd_access_log_dropped_total",               \
      "access log lines dropped because the log buffer was full")

/* Gauges: stats field, metric name, help. */
#define METRICS_GAUGES(X)                                                      \
    X(inflight, "ratelimitd_inflight_requests", "requests being handled now")  \
    X(connections, "ratelimitd_open_connections", "open client connections")   \
    X(deny_cache_entries, "ratelimitd_deny_cache_entries",                     \
      "keys held by the local deny caches of all workers")

/* Writes a HELP and a TYPE line. */
static void metrics_head(struct evbuffer *out, const char *name,
                         const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        type);
}

/* Writes one histogram family from a summed rl_hist_t (cumulative
 * buckets, seconds). */
static void metrics_hist(struct evbuffer *out, const char *name,
                         const char *help, const rl_hist_t *h)
{
    uint64_t cum = 0;
    int i;

    metrics_head(out, name, "histogram", help);
    for (i = 0; i < RL_HIST_NBOUNDS; i++) {
        cum += h->bucket[i];
        evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name,
                            (double)rl_hist_bounds_us[i] / 1e6,
                            (unsigned long long)cum);
    }
    cum += h->bucket[RL_HIST_NBOUNDS];
    evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                        (unsigned long long)cum);
    evbuffer_add_printf(out, "%s_sum %.6f\n%s_count %llu\n", name,
                        (double)h->sum_us / 1e6, name,
                        (unsigned long long)h->count);
}

/* Per-policy verdict counters, for the policies of the serving worker's
 * conf (a policy that a reload removed stops being reported). */
static void metrics_policies(struct evbuffer *out, const rl_worker_t *w)
{
    const rl_app_t *app = w->app;
    int p, k, v;

    metrics_head(
        out, "ratelimitd_decisions_total", "counter",
        "decisions by policy and verdict (error: the store failed and the "
        "failure_mode decided)");
    for (p = 0; p < w->conf->npolicies; p++) {
        const rl_policy_t *pol = &w->conf->policies[p];
        uint64_t sum[RL_NVERDICTS] = {0};

        for (k = 0; k < app->nworkers; k++) {
            uint64_t one[RL_NVERDICTS];
            rl_stats_policy_read(&app->workers[k].stats, pol->stats_slot, one);
            for (v = 0; v < RL_NVERDICTS; v++) {
                sum[v] += one[v];
            }
        }
        for (v = 0; v < RL_NVERDICTS; v++) {
            evbuffer_add_printf(out,
                                "ratelimitd_decisions_total{policy=\"%s\","
                                "verdict=\"%s\"} %llu\n",
                                pol->name, rl_stats_verdict_name(v),
                                (unsigned long long)sum[v]);
        }
    }
}

/* Writes every series into out. */
static void metrics_render(struct evbuffer *out, rl_worker_t *w)
{
    const rl_app_t *app = w->app;
    rl_stats_t sum;
    int i;

    memset(&sum, 0, sizeof(sum));
    for (i = 0; i < app->nworkers; i++) {
        rl_stats_add(&sum, &app->workers[i].stats);
    }
    /* This worker's own gauges live, not as of its last tick. */
    sum.inflight +=
        (uint64_t)rl_http_server_inflight(w->http) - w->stats.inflight;
    sum.connections +=
        (uint64_t)rl_http_server_connections(w->http) - w->stats.connections;

    metrics_head(out, "ratelimitd_build_info", "gauge",
                 "version of the running binary");
    evbuffer_add_printf(out, "ratelimitd_build_info{version=\"%s\"} 1\n",
                        PACKAGE_VERSION);
    metrics_head(out, "ratelimitd_start_time_seconds", "gauge",
                 "unix time the process started");
    evbuffer_add_printf(out, "ratelimitd_start_time_seconds %.3f\n",
                        (double)app->started_ms / 1e3);
    metrics_head(out, "ratelimitd_workers", "gauge", "worker threads");
    evbuffer_add_printf(out, "ratelimitd_workers %d\n", app->nworkers);

    metrics_policies(out, w);
#define METRICS_COUNTER(field, name, help)                                     \
    metrics_head(out, name, "counter", help);                                  \
    evbuffer_add_printf(out, name " %llu\n", (unsigned long long)sum.field);
    METRICS_COUNTERS(METRICS_COUNTER)
#undef METRICS_COUNTER
#define METRICS_GAUGE(field, name, help)                                       \
    metrics_head(out, name, "gauge", help);                                    \
    evbuffer_add_printf(out, name " %llu\n", (unsigned long long)sum.field);
    METRICS_GAUGES(METRICS_GAUGE)
#undef METRICS_GAUGE

    metrics_head(out, "ratelimitd_degraded_decisions_total", "counter",
                 "decisions made by the policy's failure_mode because the "
                 "store failed, by reason");
    for (i = 0; i < RL_NREASONS; i++) {
        evbuffer_add_printf(
            out, "ratelimitd_degraded_decisions_total{reason=\"%s\"} %llu\n",
            rl_stats_reason_name(i), (unsigned long long)sum.degraded[i]);
    }
    metrics_head(out, "ratelimitd_store_errors_total", "counter",
                 "store operations that failed, by reason");
    for (i = 0; i < RL_NREASONS; i++) {
        evbuffer_add_printf(
            out, "ratelimitd_store_errors_total{reason=\"%s\"} %llu\n",
            rl_stats_reason_name(i), (unsigned long long)sum.store_error[i]);
    }

    metrics_head(out, "ratelimitd_config_reloads_total", "counter",
                 "configuration reloads (SIGHUP) by result; a failed one "
                 "leaves the running "
                 "configuration in force");
    evbuffer_add_printf(out,
                        "ratelimitd_config_reloads_total{result=\"ok\"} %llu\n",
                        (unsigned long long)__atomic_load_n(&app->reloads_ok,
                                                            __ATOMIC_RELAXED));
    evbuffer_add_printf(
        out, "ratelimitd_config_reloads_total{result=\"failed\"} %llu\n",
        (unsigned long long)__atomic_load_n(&app->reloads_failed,
                                            __ATOMIC_RELAXED));
    metrics_head(out, "ratelimitd_config_info", "gauge",
                 "the configuration in force: first 16 hex digits of the "
                 "file's SHA-256");
    evbuffer_add_printf(out, "ratelimitd_config_info{hash=\"%s\"} 1\n",
                        w->conf->hash);
    metrics_head(out, "ratelimitd_config_generation", "gauge",
                 "1 for the start-up configuration, +1 per successful reload");
    evbuffer_add_printf(out, "ratelimitd_config_generation %llu\n",
                        (unsigned long long)w->conf->generation);
    metrics_head(out, "ratelimitd_config_load_time_seconds", "gauge",
                 "unix time the configuration in force was loaded");
    evbuffer_add_printf(
        out, "ratelimitd_config_load_time_seconds %.3f\n",
        (double)__atomic_load_n(&app->reload_ms, __ATOMIC_RELAXED) / 1e3);

#define METRICS_HIST(field, name, help)                                        \
    metrics_hist(out, name, help, &sum.hist_##field);
    RL_STATS_HISTOGRAMS(METRICS_HIST)
#undef METRICS_HIST
}

void rl_api_metrics(rl_worker_t *w, rl_http_req_t *req)
{
    struct evbuffer *out = evbuffer_new();
    size_t len;
    char *body;

    if (out == NULL) {
        rl_api_error(req, RL_ERR_INTERNAL, NULL);
        return;
    }
    metrics_render(out, w);
    len = evbuffer_get_length(out);
    body = (char *)evbuffer_pullup(out, -1);
    if (body == NULL && len > 0) {
        rl_api_error(req, RL_ERR_INTERNAL, NULL);
    } else {
        rl_http_reply(req, 200, NULL, NULL, 0, METRICS_CTYPE, body, len);
    }
    evbuffer_free(out);
}
