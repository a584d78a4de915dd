/* The outcome table (see outcome.h), expanded once into an array. */
#include "outcome.h"

#include <stddef.h>

/* Not counted per policy. */
#define RL_VERDICT_none RL_NVERDICTS

typedef struct outcome_row {
    int allowed;
    rl_outcome_reply_t reply;
    int status;
    rl_error_t error;
    size_t metric; /* offset of a uint64_t counter in rl_stats_t */
    int policy_verdict;
    const char *verdict;
} outcome_row_t;

static const outcome_row_t outcome_rows[RL_NOUTCOMES] = {
#define RL_OUTCOMES_ROW(name, allowed, reply, status, error, metric, pv, log)  \
    [RL_OUTCOME_##name] = {allowed,                                            \
                           RL_OUTCOME_REPLY_##reply,                           \
                           status,                                             \
                           RL_ERR_##error,                                     \
                           offsetof(rl_stats_t, metric),                       \
                           RL_VERDICT_##pv,                                    \
                           log},
    RL_OUTCOMES(RL_OUTCOMES_ROW)
#undef RL_OUTCOMES_ROW
};

void rl_outcome_make(rl_outcome_kind_t kind, const rl_verdict_t *v,
                     rl_error_t error, rl_outcome_t *o)
{
    const outcome_row_t *r;

    if ((int)kind < 0 || kind >= RL_NOUTCOMES) {
        kind = RL_OUTCOME_BAD_REQUEST;
        error = RL_ERR_INTERNAL;
    }
    r = &outcome_rows[kind];
    o->kind = kind;
    o->allowed = r->allowed;
    o->reply = r->reply;
    o->verdict = r->verdict;
    o->error = r->error;
    if (kind == RL_OUTCOME_TENANT_AUTH && v != NULL) {
        o->error = v->error;
    } else if (o->error == RL_ERR_NONE &&
               r->reply != RL_OUTCOME_REPLY_VERDICT) {
        o->error = error != RL_ERR_NONE ? error : RL_ERR_INTERNAL;
    }
    if (r->status == RL_OUTCOME_STATUS_DENY) {
        /* v->status: a deny override's status differs from the policy's. */
        o->status = v != NULL && v->status != 0 ? v->status
                    : v != NULL && v->policy != NULL
                        ? v->policy->deny_status
                        : rl_error_status(o->error);
    } else if (r->status == RL_OUTCOME_STATUS_UNAVAILABLE) {
        o->status =
            v != NULL && v->policy != NULL && v->policy->unavailable != NULL
                ? v->policy->unavailable->status
                : rl_error_status(o->error);
    } else if (r->status == RL_OUTCOME_STATUS_ERROR) {
        o->status = rl_error_status(o->error);
    } else {
        o->status = r->status;
    }
}

/* The row a callback's (status, verdict) falls in. */
static rl_outcome_kind_t outcome_kind(rl_decide_status_t status,
                                      const rl_verdict_t *v)
{
    switch (status) {
    case RL_DECIDE_INVALID: return RL_OUTCOME_INVALID;
    case RL_DECIDE_BAD_POLICY: return RL_OUTCOME_BAD_POLICY;
    case RL_DECIDE_AUTH: return RL_OUTCOME_TENANT_AUTH;
    case RL_DECIDE_UNAVAILABLE: return RL_OUTCOME_UNAVAILABLE;
    case RL_DECIDE_OK: break;
    }
    if (v == NULL || (v->policy == NULL && v->allowed)) {
        return RL_OUTCOME_UNMATCHED;
    }
    /* Denied without a policy (paths.unmatched "deny") is a denial. */
    if (v->degraded) {
        return v->allowed ? RL_OUTCOME_DEGRADED_OPEN : RL_OUTCOME_UNAVAILABLE;
    }
    if (v->shadow_would_deny) {
        return RL_OUTCOME_SHADOW_DENIED;
    }
    return v->allowed ? RL_OUTCOME_ALLOWED : RL_OUTCOME_DENIED;
}

void rl_outcome_of(rl_decide_status_t status, const rl_verdict_t *v,
                   rl_outcome_t *o)
{
    rl_outcome_make(outcome_kind(status, v), v, RL_ERR_NONE, o);
}

void rl_outcome_count(rl_stats_t *st, const rl_outcome_t *o,
                      const rl_verdict_t *v)
{
    const outcome_row_t *r = &outcome_rows[o->kind];

    RL_STAT_ADDV(*(uint64_t *)((char *)st + r->metric), 1);
    if (v == NULL || v->policy == NULL) {
        return;
    }
    if (v->degraded) {
        RL_STAT_ADDV(st->degraded[rl_stats_reason(v->degraded_reason)], 1);
    }
    if (r->policy_verdict != RL_NVERDICTS) {
        rl_stats_policy_count(st, v->policy->stats_slot,
                              (rl_stats_verdict_t)r->policy_verdict);
    }
}
