/* GET /metrics: every worker's counters, summed at scrape time, in the
 * Prometheus text exposition format (version 0.0.4). The workers never
 * lock or share a cache line for this: each writes its own rl_stats_t,
 * and this reads them all with relaxed loads. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include "api.h"
#include "override.h"
#include "config.h"
#include "server.h"
#include "stats.h"
#include "worker.h"

#define METRICS_CTYPE "text/plain; version=0.0.4; charset=utf-8"

/* Where each shape's value lives: an offset into the summed rl_stats_t
 * or into the rl_stats_proc_t snapshot (POLICY reads the slots by name). */
#define METRICS_OFF_VALUE(f) offsetof(rl_stats_t, f)
#define METRICS_OFF_REASON(f) offsetof(rl_stats_t, f)
#define METRICS_OFF_POLICY(f) offsetof(rl_stats_t, f)
#define METRICS_OFF_HIST(f) offsetof(rl_stats_t, hist_##f)
#define METRICS_OFF_PVALUE(f) offsetof(rl_stats_proc_t, f)
#define METRICS_OFF_PTIME(f) offsetof(rl_stats_proc_t, f)
#define METRICS_OFF_PINFO(f) offsetof(rl_stats_proc_t, f)
#define METRICS_OFF_PRESULT(f) offsetof(rl_stats_proc_t, f)

/* One row of RL_STATS_METRICS, as data. */
typedef struct metrics_row {
    rl_metric_shape_t shape;
    const char *type;
    const char *field; /* also the label of a PINFO row */
    const char *name;
    const char *help;
    size_t off;
} metrics_row_t;

static const metrics_row_t metrics_rows[] = {
#define METRICS_ROW(type, shape, field, name, help)                            \
    {RL_METRIC_##shape, #type, #field, name, help, METRICS_OFF_##shape(field)},
    RL_STATS_METRICS(METRICS_ROW)
#undef METRICS_ROW
};

/* Writes n series of one family labelled label="names(i)". */
static void metrics_labelled(struct evbuffer *out, const char *name,
                             const char *label, const char *(*names)(int),
                             const uint64_t *v, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        evbuffer_add_printf(out, "%s{%s=\"%s\"} %llu\n", name, label, names(i),
                            (unsigned long long)v[i]);
    }
}

/* Writes one histogram's series from a summed rl_hist_t (cumulative
 * buckets, seconds). */
static void metrics_hist(struct evbuffer *out, const char *name,
                         const rl_hist_t *h)
{
    uint64_t cum = 0;
    int i;

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
static void metrics_policies(struct evbuffer *out, const char *name,
                             const rl_worker_t *w)
{
    const rl_app_t *app = w->app;
    int p, k, v;

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
            evbuffer_add_printf(out, "%s{policy=\"%s\",verdict=\"%s\"} %llu\n",
                                name, pol->name, rl_stats_verdict_name(v),
                                (unsigned long long)sum[v]);
        }
    }
}

/* Fills sum with every worker's counters, and proc with the process's
 * values, as of now (serving worker's thread). */
static void metrics_collect(rl_worker_t *w, rl_stats_t *sum,
                            rl_stats_proc_t *proc)
{
    const rl_app_t *app = w->app;
    int i;

    memset(sum, 0, sizeof(*sum));
    for (i = 0; i < app->nworkers; i++) {
        rl_stats_add(sum, &app->workers[i].stats);
    }
    /* This worker's own gauges live, not as of its last tick. */
    sum->inflight +=
        (uint64_t)rl_http_server_inflight(w->http) - w->stats.inflight;
    sum->connections +=
        (uint64_t)rl_http_server_connections(w->http) - w->stats.connections;

    proc->version = PACKAGE_VERSION;
    proc->started_ms = app->started_ms;
    proc->workers = (uint64_t)app->nworkers;
    proc->overrides = rl_override_active();
    proc->reloads[RL_RESULT_ok] =
        __atomic_load_n(&app->reloads_ok, __ATOMIC_RELAXED);
    proc->reloads[RL_RESULT_failed] =
        __atomic_load_n(&app->reloads_failed, __ATOMIC_RELAXED);
    proc->hash = w->conf->hash;
    proc->generation = w->conf->generation;
    proc->loaded_ms = __atomic_load_n(&app->reload_ms, __ATOMIC_RELAXED);
}

/* Writes every row of RL_STATS_METRICS into out: HELP, TYPE, series. */
static void metrics_render(struct evbuffer *out, rl_worker_t *w)
{
    rl_stats_t sum;
    rl_stats_proc_t proc;
    size_t i;

    metrics_collect(w, &sum, &proc);
    for (i = 0; i < sizeof(metrics_rows) / sizeof(metrics_rows[0]); i++) {
        const metrics_row_t *m = &metrics_rows[i];
        const char *s = (const char *)&sum + m->off;
        const char *p = (const char *)&proc + m->off;

        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name,
                            m->help, m->name, m->type);
        switch (m->shape) {
        case RL_METRIC_VALUE:
            evbuffer_add_printf(out, "%s %llu\n", m->name,
                                (unsigned long long)*(const uint64_t *)s);
            break;
        case RL_METRIC_REASON:
            metrics_labelled(out, m->name, "reason", rl_stats_reason_name,
                             (const uint64_t *)s, RL_NREASONS);
            break;
        case RL_METRIC_POLICY: metrics_policies(out, m->name, w); break;
        case RL_METRIC_HIST:
            metrics_hist(out, m->name, (const rl_hist_t *)s);
            break;
        case RL_METRIC_PVALUE:
            evbuffer_add_printf(out, "%s %llu\n", m->name,
                                (unsigned long long)*(const uint64_t *)p);
            break;
        case RL_METRIC_PTIME:
            evbuffer_add_printf(out, "%s %.3f\n", m->name,
                                (double)*(const int64_t *)p / 1e3);
            break;
        case RL_METRIC_PINFO:
            evbuffer_add_printf(out, "%s{%s=\"%s\"} 1\n", m->name, m->field,
                                *(const char *const *)p);
            break;
        case RL_METRIC_PRESULT:
            metrics_labelled(out, m->name, "result", rl_stats_result_name,
                             (const uint64_t *)p, RL_NRESULTS);
            break;
        }
    }
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
