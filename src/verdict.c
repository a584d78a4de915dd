/* Verdicts from store results: which limit and which applied policy a
 * decision reports, for one policy, for a layered decision, and for a
 * denial answered by the deny cache (see decide.h). Pure: no I/O, no
 * clock, no allocation; any thread. */
#include "decide.h"

#include <string.h>
#include "deny_cache.h"

/* Fills v's numbers from the n limits of one policy and their results:
 * on a denial the limit that keeps the caller out longest, else the one
 * with the fewest remaining. */
static void verdict_pick(const rl_limit_t *limits, int n,
                         const rl_limit_result_t *r, int allowed,
                         rl_verdict_t *v)
{
    int i, pick = 0;

    for (i = 1; i < n; i++) {
        const rl_limit_result_t *a = &r[i], *b = &r[pick];
        if (!allowed) {
            /* Denied: describe the limit that keeps the caller out longest. */
            if (!b->allowed && a->allowed) {
                continue;
            }
            if ((!a->allowed && b->allowed) ||
                a->retry_after_ms > b->retry_after_ms) {
                pick = i;
            }
        } else if (a->remaining < b->remaining ||
                   (a->remaining == b->remaining &&
                    a->reset_after_ms > b->reset_after_ms)) {
            /* Admitted: the most restrictive limit, fewest remaining. */
            pick = i;
        }
    }
    v->limit_def = &limits[pick];
    v->limit = limits[pick].requests;
    v->remaining = r[pick].remaining;
    v->reset_after_ms = r[pick].reset_after_ms;
    v->retry_after_ms = allowed ? 0 : r[pick].retry_after_ms;
    for (i = 0; i < n; i++) {
        if (r[i].blocked && !r[i].allowed) {
            v->blocked = 1;
        }
    }
}

/* The deny status, the retry floor and shadow mode of a verdict whose
 * deciding policy and numbers are set. */
static void verdict_finish(rl_verdict_t *v)
{
    const rl_policy_t *p = v->policy;

    if (!v->allowed && v->retry_after_ms < 1) {
        v->retry_after_ms = 1;
    }
    v->status = v->allowed ? 200 : p->deny_status;
    if (!v->allowed && v->penalty_def != NULL &&
        v->penalty_def->deny_status != 0) {
        v->status = v->penalty_def->deny_status;
    }
    if (!v->allowed && p->shadow) {
        /* Shadow mode: counted and reported, never enforced. */
        v->allowed = 1;
        v->shadow_would_deny = 1;
        v->status = 200;
    }
}

void rl_decide_verdict(const rl_policy_t *p, const rl_limit_t *limits,
                       int nlimits, int test, const rl_store_result_t *res,
                       rl_verdict_t *v)
{
    memset(v, 0, sizeof(*v));
    v->policy = p;
    v->test = test;
    v->now_ms = res->now_ms;
    v->allowed = res->allowed;
    v->policies[0].policy = p;
    v->policies[0].limits = limits;
    v->policies[0].nlimits = nlimits;
    v->policies[0].results = res->limits;
    v->npolicies = 1;
    v->deny_parts = res->allowed ? 0 : 1u;
    verdict_pick(limits, nlimits, res->limits, res->allowed, v);
    verdict_finish(v);
}

/* 1 if denying part i should decide rather than part best (-1: none
 * yet): the first in file order, but an enforced policy before a shadow
 * one, so a shadow policy never hides an enforced denial. */
static int decider_better(const rl_verdict_part_t *parts, int best, int i)
{
    return best < 0 || (parts[best].policy->shadow && !parts[i].policy->shadow);
}

/* The part (0-based) that decides a layered verdict; *pen is set to the
 * blocking penalty's index, or -1. */
static int verdict_decider(const rl_verdict_part_t *parts, int nparts,
                           const unsigned *masks, int npens,
                           const rl_store_result_t *res, int *pen)
{
    int best = -1, off = 0, blocking, i, j, k;
    int64_t fewest = 0;

    *pen = -1;
    for (j = 0; j < npens; j++) {
        if (res->penalties[j].state != RL_PENALTY_NONE &&
            (*pen < 0 || res->penalties[j].retry_after_ms >
                             res->penalties[*pen].retry_after_ms)) {
            *pen = j;
        }
    }
    blocking = *pen >= 0 && res->penalties[*pen].state == RL_PENALTY_BLOCKING;
    for (i = 0; i < nparts; off += parts[i].nlimits, i++) {
        for (k = 0; k < parts[i].nlimits; k++) {
            const rl_limit_result_t *r = &res->limits[off + k];

            if (blocking && (masks[*pen] & (1u << i)) != 0 &&
                decider_better(parts, best, i)) {
                best = i;
            }
            if (!blocking && !res->allowed && !r->allowed &&
                decider_better(parts, best, i)) {
                best = i;
            }
            if (res->allowed && (best < 0 || r->remaining < fewest)) {
                best = i;
                fewest = r->remaining;
            }
        }
    }
    return best >= 0 ? best : 0;
}

/* The parts (bit i: part i) that deny a layered decision: those whose
 * key a blocking penalty holds, and those with a denying limit. */
static unsigned verdict_denying(const rl_verdict_part_t *parts, int nparts,
                                const unsigned *masks, int npens,
                                const rl_store_result_t *res)
{
    unsigned deny = 0;
    int off = 0, i, j, k;

    if (res->allowed) {
        return 0;
    }
    for (j = 0; j < npens; j++) {
        if (res->penalties[j].state == RL_PENALTY_BLOCKING) {
            deny |= masks[j];
        }
    }
    for (i = 0; i < nparts; off += parts[i].nlimits, i++) {
        for (k = 0; k < parts[i].nlimits; k++) {
            if (!res->limits[off + k].allowed) {
                deny |= 1u << i;
            }
        }
    }
    return deny;
}

void rl_decide_verdict_layered(const rl_verdict_part_t *parts, int nparts,
                               const rl_penalty_t *const *pens,
                               const unsigned *masks, int npens,
                               const int *tests, const rl_store_result_t *res,
                               rl_verdict_t *v)
{
    int pen, off = 0, i;
    int d = verdict_decider(parts, nparts, masks, npens, res, &pen);

    memset(v, 0, sizeof(*v));
    for (i = 0; i < nparts; i++) {
        v->policies[i] = parts[i];
        v->policies[i].results = &res->limits[off];
        off += parts[i].nlimits;
    }
    v->npolicies = nparts;
    v->policy = parts[d].policy;
    v->test = tests[d];
    v->now_ms = res->now_ms;
    v->allowed = res->allowed;
    v->deny_parts = verdict_denying(parts, nparts, masks, npens, res);
    verdict_pick(parts[d].limits, parts[d].nlimits, v->policies[d].results,
                 res->allowed, v);
    if (pen >= 0) {
        const rl_penalty_result_t *pr = &res->penalties[pen];

        v->blocked = 1;
        v->penalty = pens[pen]->name;
        v->penalty_def = pens[pen];
        if (pr->state == RL_PENALTY_BLOCKING) {
            v->remaining = 0;
        }
        if (pr->retry_after_ms > v->retry_after_ms) {
            v->retry_after_ms = pr->retry_after_ms;
        }
        if (v->reset_after_ms < v->retry_after_ms) {
            v->reset_after_ms = v->retry_after_ms;
        }
    }
    verdict_finish(v);
}

void rl_decide_verdict_unlimited(const rl_verdict_part_t *parts, int n,
                                 rl_verdict_t *v)
{
    int i;

    memset(v, 0, sizeof(*v));
    for (i = 0; i < n; i++) {
        v->policies[i] = parts[i];
        v->policies[i].results = NULL;
    }
    v->npolicies = n;
    v->policy = parts[0].policy;
    v->allowed = 1;
    v->unlimited = 1;
    v->status = 200;
}

void rl_decide_verdict_expand(const rl_verdict_part_t *all, int nall,
                              rl_verdict_t *v)
{
    rl_verdict_part_t got[RL_MAX_OP_PARTS];
    unsigned deny = v->deny_parts;
    int i, j = 0, n = v->npolicies;

    memcpy(got, v->policies, sizeof(got[0]) * (size_t)n);
    v->deny_parts = 0;
    for (i = 0; i < nall; i++) {
        if (all[i].nlimits > 0 && j < n) {
            /* A denying part keeps its bit under its new index. */
            v->deny_parts |= (deny >> j & 1u) << i;
            v->policies[i] = got[j++];
        } else {
            v->policies[i] = all[i];
            v->policies[i].results = NULL;
        }
    }
    v->npolicies = nall;
}

void rl_decide_verdict_cached(const rl_policy_t *p, const rl_limit_t *limits,
                              int test, const rl_deny_entry_t *e,
                              int64_t now_us, rl_verdict_t *v)
{
    int64_t elapsed_ms = (now_us - e->sent_us) / 1000;

    memset(v, 0, sizeof(*v));
    v->policy = p;
    v->test = test;
    v->limit_def = &limits[e->pick];
    v->limit = limits[e->pick].requests;
    v->remaining = e->remaining;
    v->retry_after_ms = e->retry_after_ms - elapsed_ms;
    if (v->retry_after_ms < 1) {
        v->retry_after_ms = 1;
    }
    v->reset_after_ms = e->reset_after_ms - elapsed_ms;
    if (v->reset_after_ms < v->retry_after_ms) {
        v->reset_after_ms = v->retry_after_ms;
    }
    v->now_ms = e->now_ms + elapsed_ms;
    v->blocked = e->blocked;
    v->cached = 1;
    v->allowed = 0;
    v->deny_parts = 1u;
    v->status = p->deny_status;
    v->policies[0].policy = p;
    v->policies[0].limits = limits;
    v->policies[0].nlimits = test ? p->test->nlimits : p->nlimits;
    v->npolicies = 1;
    if (p->shadow) {
        v->allowed = 1;
        v->shadow_would_deny = 1;
        v->status = 200;
    }
}
