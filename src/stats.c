/* Summing per-worker counters when someone reads them, histograms, and
 * the registry that gives each policy name a counter slot. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

_Thread_local rl_stats_t *rl_stats_self;

const int64_t rl_hist_bounds_us[RL_HIST_NBOUNDS] = {
    50,    100,   250,   500,    1000,   2500,   5000,
    10000, 25000, 50000, 100000, 250000, 500000, 1000000,
};

static const char *const reason_names[] = {
#define RL_STATS_REASON_NAME(name) #name,
    RL_STATS_REASONS(RL_STATS_REASON_NAME)
#undef RL_STATS_REASON_NAME
};

static const char *const verdict_names[] = {
#define RL_STATS_VERDICT_NAME(name) #name,
    RL_STATS_VERDICTS(RL_STATS_VERDICT_NAME)
#undef RL_STATS_VERDICT_NAME
};

static const char *const result_names[] = {
#define RL_STATS_RESULT_NAME(name) #name,
    RL_STATS_RESULTS(RL_STATS_RESULT_NAME)
#undef RL_STATS_RESULT_NAME
};

/* Policy names by slot, in chunks that never move once published. Only
 * the main thread writes; scrapes read names below the published count. */
static char **name_chunks[RL_STATS_POLICY_CHUNKS];
static int name_count;

/* Adds one histogram into another with relaxed loads. */
static void hist_add(rl_hist_t *dst, const rl_hist_t *src)
{
    int i;

    for (i = 0; i <= RL_HIST_NBOUNDS; i++) {
        dst->bucket[i] += __atomic_load_n(&src->bucket[i], __ATOMIC_RELAXED);
    }
    dst->count += __atomic_load_n(&src->count, __ATOMIC_RELAXED);
    dst->sum_us += __atomic_load_n(&src->sum_us, __ATOMIC_RELAXED);
}

/* Adds n counters into dst with relaxed loads. */
static void sum_u64(uint64_t *dst, const uint64_t *src, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        dst[i] += __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    }
}

/* What rl_stats_add does for each shape's field. */
#define STATS_SUM_VALUE(f) sum_u64(&dst->f, &src->f, 1);
#define STATS_SUM_REASON(f) sum_u64(dst->f, src->f, RL_NREASONS);
#define STATS_SUM_HIST(f) hist_add(&dst->hist_##f, &src->hist_##f);
#define STATS_SUM_POLICY(f)
#define STATS_SUM_PVALUE(f)
#define STATS_SUM_PTIME(f)
#define STATS_SUM_PINFO(f)
#define STATS_SUM_PRESULT(f)

void rl_stats_add(rl_stats_t *dst, const rl_stats_t *src)
{
#define STATS_SUM(type, shape, field, name, help) STATS_SUM_##shape(field)
    RL_STATS_METRICS(STATS_SUM)
#undef STATS_SUM
}

void rl_hist_observe(rl_hist_t *h, int64_t us)
{
    int i = 0;

    if (us < 0) {
        us = 0;
    }
    while (i < RL_HIST_NBOUNDS && us > rl_hist_bounds_us[i]) {
        i++;
    }
    RL_STAT_ADDV(h->bucket[i], 1);
    RL_STAT_ADDV(h->count, 1);
    RL_STAT_ADDV(h->sum_us, (uint64_t)us);
}

rl_stats_reason_t rl_stats_reason(const char *error)
{
    int i;

    for (i = 0; error != NULL && i < RL_REASON_other; i++) {
        if (strcmp(reason_names[i], error) == 0) {
            return (rl_stats_reason_t)i;
        }
    }
    return RL_REASON_other;
}

const char *rl_stats_reason_name(int reason)
{
    return reason >= 0 && reason < RL_NREASONS ? reason_names[reason] : "other";
}

const char *rl_stats_verdict_name(int verdict)
{
    return verdict >= 0 && verdict < RL_NVERDICTS ? verdict_names[verdict]
                                                  : "error";
}

const char *rl_stats_result_name(int result)
{
    return result >= 0 && result < RL_NRESULTS ? result_names[result]
                                               : "failed";
}

void rl_stats_policy_count(rl_stats_t *st, int slot, rl_stats_verdict_t verdict)
{
    rl_stats_policy_t *chunk;

    if (slot < 0 || slot >= RL_STATS_POLICY_CHUNK * RL_STATS_POLICY_CHUNKS) {
        return;
    }
    chunk = __atomic_load_n(&st->policy[slot / RL_STATS_POLICY_CHUNK],
                            __ATOMIC_ACQUIRE);
    if (chunk != NULL) {
        RL_STAT_ADDV(chunk[slot % RL_STATS_POLICY_CHUNK].v[verdict], 1);
    }
}

void rl_stats_policy_read(const rl_stats_t *st, int slot,
                          uint64_t out[RL_NVERDICTS])
{
    const rl_stats_policy_t *chunk = NULL;
    int i;

    if (slot >= 0 && slot < RL_STATS_POLICY_CHUNK * RL_STATS_POLICY_CHUNKS) {
        chunk = __atomic_load_n(&st->policy[slot / RL_STATS_POLICY_CHUNK],
                                __ATOMIC_ACQUIRE);
    }
    for (i = 0; i < RL_NVERDICTS; i++) {
        out[i] =
            chunk != NULL
                ? __atomic_load_n(&chunk[slot % RL_STATS_POLICY_CHUNK].v[i],
                                  __ATOMIC_RELAXED)
                : 0;
    }
}

int rl_stats_policy_slot(const char *name)
{
    int n = name_count;
    int i;
    char **chunk;
    char *copy;

    for (i = 0; i < n; i++) {
        if (strcmp(name_chunks[i / RL_STATS_POLICY_CHUNK]
                              [i % RL_STATS_POLICY_CHUNK],
                   name) == 0) {
            return i;
        }
    }
    if (n >= RL_STATS_POLICY_CHUNK * RL_STATS_POLICY_CHUNKS) {
        return -1;
    }
    chunk = name_chunks[n / RL_STATS_POLICY_CHUNK];
    if (chunk == NULL) {
        chunk = calloc(RL_STATS_POLICY_CHUNK, sizeof(*chunk));
        if (chunk == NULL) {
            return -1;
        }
        __atomic_store_n(&name_chunks[n / RL_STATS_POLICY_CHUNK], chunk,
                         __ATOMIC_RELEASE);
    }
    copy = strdup(name);
    if (copy == NULL) {
        return -1;
    }
    chunk[n % RL_STATS_POLICY_CHUNK] = copy;
    __atomic_store_n(&name_count, n + 1, __ATOMIC_RELEASE);
    return n;
}

int rl_stats_policy_slots(void)
{
    return __atomic_load_n(&name_count, __ATOMIC_ACQUIRE);
}

const char *rl_stats_policy_name(int slot)
{
    char **chunk;

    if (slot < 0 || slot >= rl_stats_policy_slots()) {
        return NULL;
    }
    chunk = __atomic_load_n(&name_chunks[slot / RL_STATS_POLICY_CHUNK],
                            __ATOMIC_ACQUIRE);
    return chunk[slot % RL_STATS_POLICY_CHUNK];
}

int rl_stats_policy_reserve(rl_stats_t *st, int nslots)
{
    int c;

    for (c = 0;
         c * RL_STATS_POLICY_CHUNK < nslots && c < RL_STATS_POLICY_CHUNKS;
         c++) {
        if (st->policy[c] == NULL) {
            rl_stats_policy_t *chunk =
                calloc(RL_STATS_POLICY_CHUNK, sizeof(*chunk));
            if (chunk == NULL) {
                return -1;
            }
            __atomic_store_n(&st->policy[c], chunk, __ATOMIC_RELEASE);
        }
    }
    return 0;
}

void rl_stats_free(rl_stats_t *st)
{
    int c;

    for (c = 0; c < RL_STATS_POLICY_CHUNKS; c++) {
        free(st->policy[c]);
        st->policy[c] = NULL;
    }
}

void rl_stats_registry_free(void)
{
    int c, i;

    for (c = 0; c < RL_STATS_POLICY_CHUNKS; c++) {
        if (name_chunks[c] == NULL) {
            continue;
        }
        for (i = 0; i < RL_STATS_POLICY_CHUNK; i++) {
            free(name_chunks[c][i]);
        }
        free(name_chunks[c]);
        name_chunks[c] = NULL;
    }
    name_count = 0;
}
