/* The rate-limit algorithms in C for the memory store: a pure function of
 * (limits, states, now, cost). The semantics mirror the scripts in lua/ exactly
 * (see docs/algorithms.md); every quantity is an exact integer. */
#include "algo_mem.h"

#include <string.h>

#include "algo.h"

/* ------------------------------------------------------------------------
 * Integer helpers
 * ------------------------------------------------------------------------ */

/* floor(a / b) for b > 0 and any sign of a. */
static int64_t algo_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if (a % b != 0 && a < 0) {
        q--;
    }
    return q;
}

/* ceil(a / b) for b > 0 and any sign of a. */
static int64_t algo_ceil_div(int64_t a, int64_t b)
{
    return -algo_floor_div(-a, b);
}

/* The larger of a and b. */
static int64_t algo_max(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* ------------------------------------------------------------------------
 * GCRA: v[0] = theoretical arrival time, integer microseconds.
 * ------------------------------------------------------------------------ */

/* Evaluates a GCRA limit: T = ceil(period_us / requests), admits iff
 * max(tat, now) + cost*T - burst*T <= now (lua/gcra.lua). */
void rl_algo_mem_gcra(const rl_limit_t *l, const rl_limit_state_t *st,
                      int64_t now_ms, int64_t cost, rl_algo_eval_t *e)
{
    int64_t now = now_ms * 1000;
    int64_t t = algo_ceil_div(l->period_ms * 1000, l->requests);
    int64_t burst = l->burst > 0 ? l->burst : l->requests;
    int64_t tat = algo_max(st->v[0], now);
    /* cost*T only once cost <= burst: B*T is bounded at load (2^51 us),
     * a larger cost times T could overflow. */
    int64_t new_tat = cost <= burst ? tat + cost * t : 0;
    int64_t allow_at = new_tat - burst * t;

    if (cost <= burst && allow_at <= now) {
        e->ok = 1;
        e->remaining = algo_floor_div(now - allow_at, t);
        e->reset_after_ms = algo_ceil_div(new_tat - now, 1000);
        e->retry_after_ms = 0;
        e->next.v[0] = new_tat;
        e->next.expires_ms = now_ms + e->reset_after_ms;
        return;
    }
    e->ok = 0;
    e->remaining = algo_max(algo_floor_div(now - (tat - burst * t), t), 0);
    e->reset_after_ms = algo_ceil_div(tat - now, 1000);
    if (cost > burst) {
        e->retry_after_ms =
            e->reset_after_ms > 0 ? e->reset_after_ms : l->period_ms;
    } else {
        e->retry_after_ms = algo_ceil_div(allow_at - now, 1000);
    }
}

/* ------------------------------------------------------------------------
 * Fixed window: v[0] = window index, v[1] = count.
 * ------------------------------------------------------------------------ */

/* Evaluates a fixed-window limit over epoch-aligned windows
 * (lua/fixed_window.lua). */
void rl_algo_mem_fixed_window(const rl_limit_t *l, const rl_limit_state_t *st,
                              int64_t now_ms, int64_t cost, rl_algo_eval_t *e)
{
    int64_t idx = algo_floor_div(now_ms, l->period_ms);
    int64_t count = st->v[0] == idx ? st->v[1] : 0;
    int64_t reset = (idx + 1) * l->period_ms - now_ms;

    e->reset_after_ms = reset;
    if (count + cost <= l->requests) {
        e->ok = 1;
        e->remaining = l->requests - (count + cost);
        e->retry_after_ms = 0;
        e->next.v[0] = idx;
        e->next.v[1] = count + cost;
        e->next.expires_ms = now_ms + reset;
        return;
    }
    e->ok = 0;
    e->remaining = algo_max(l->requests - count, 0);
    e->retry_after_ms = reset;
}

/* ------------------------------------------------------------------------
 * Sliding window: v[0] = window index, v[1] = previous count, v[2] = current.
 * ------------------------------------------------------------------------ */

/* Evaluates a sliding-window limit: estimate = prev*(period-elapsed)/period
 * + cur, every comparison multiplied by period (lua/sliding_window.lua). */
void rl_algo_mem_sliding_window(const rl_limit_t *l, const rl_limit_state_t *st,
                                int64_t now_ms, int64_t cost, rl_algo_eval_t *e)
{
    int64_t period = l->period_ms;
    int64_t requests = l->requests;
    int64_t idx = algo_floor_div(now_ms, period);
    int64_t left = period - (now_ms - idx * period);
    int64_t prev = 0;
    int64_t cur = 0;
    int64_t cur_after;

    if (st->v[0] == idx) {
        prev = st->v[1];
        cur = st->v[2];
    } else if (st->v[0] == idx - 1) {
        prev = st->v[2];
    }
    /* (cur + cost) * period only once cost <= requests: R*P is bounded
     * at load (2^51), a larger cost times P could overflow. */
    e->ok = cost <= requests &&
            prev * left + (cur + cost) * period <= requests * period;
    cur_after = e->ok ? cur + cost : cur;
    e->remaining = algo_max(
        algo_floor_div(requests * period - prev * left - cur_after * period,
                       period),
        0);
    if (cur_after > 0) {
        e->reset_after_ms = left + period;
    } else if (prev > 0) {
        e->reset_after_ms = left;
    } else {
        e->reset_after_ms = 0;
    }
    if (e->ok) {
        e->retry_after_ms = 0;
        e->next.v[0] = idx;
        e->next.v[1] = prev;
        e->next.v[2] = cur_after;
        e->next.expires_ms = now_ms + left + period;
        return;
    }
    if (cost > requests) {
        e->retry_after_ms = e->reset_after_ms > 0 ? e->reset_after_ms : period;
    } else if (cur + cost <= requests) {
        /* prev's weight decays enough inside this window */
        e->retry_after_ms =
            left - algo_floor_div((requests - cur - cost) * period, prev);
    } else {
        /* next window: prev' = cur, cur' = 0 */
        e->retry_after_ms =
            left +
            algo_max(period - algo_floor_div((requests - cost) * period, cur),
                     0);
    }
    e->retry_after_ms = algo_max(e->retry_after_ms, 1);
}

/* ------------------------------------------------------------------------
 * The multi-limit decision
 * ------------------------------------------------------------------------ */

/* Evaluates limit l on st (an expired state counts as empty); e->next
 * starts from st so block_until is kept. */
static void algo_eval(const rl_limit_t *l, const rl_limit_state_t *st,
                      int64_t now_ms, int64_t cost, rl_algo_eval_t *e)
{
    rl_limit_state_t cur = *st;

    if (cur.expires_ms <= now_ms) {
        memset(cur.v, 0, sizeof(cur.v));
        cur.expires_ms = 0;
    }
    memset(e, 0, sizeof(*e));
    e->next = cur;
    rl_algo_get(l->algo)->mem(l, &cur, now_ms, cost, e);
}

/* 1 if l can be evaluated: a known algorithm, requests and period > 0. */
static int algo_limit_valid(const rl_limit_t *l)
{
    return rl_algo_get(l->algo) != NULL && l->requests > 0 && l->period_ms > 0;
}

/* Evaluates every limit at its cost (costs[i]) into results[] and
 * evals[], writing nothing; returns 1 if all admit. */
static int algo_evaluate(const rl_limit_t *const *limits, int n,
                         const rl_limit_state_t *states, int64_t now_ms,
                         const int64_t *costs, rl_algo_eval_t *evals,
                         rl_limit_result_t *results)
{
    int allowed = 1;
    int i;

    for (i = 0; i < n; i++) {
        const rl_limit_t *l = limits[i];
        rl_limit_result_t *r = &results[i];

        if (l->block_ms > 0 && states[i].block_until_ms > now_ms) {
            allowed = 0;
            r->blocked = 1;
            r->reset_after_ms = states[i].block_until_ms - now_ms;
            r->retry_after_ms = r->reset_after_ms;
            continue;
        }
        algo_eval(l, &states[i], now_ms, costs[i], &evals[i]);
        if (costs[i] == 0) {
            evals[i].ok = 1;
            evals[i].retry_after_ms = 0;
        }
        r->allowed = evals[i].ok;
        r->remaining = evals[i].remaining;
        r->reset_after_ms = evals[i].reset_after_ms;
        r->retry_after_ms = evals[i].retry_after_ms;
        if (!r->allowed) {
            allowed = 0;
        }
    }
    return allowed;
}

/* Writes an evaluated request: every state when admitted, else only the
 * new blocks of the limits that denied (the others reported as they
 * stand). */
static void algo_commit(const rl_limit_t *const *limits, int n,
                        rl_limit_state_t *states, int64_t now_ms,
                        const int64_t *costs, int allowed,
                        const rl_algo_eval_t *evals, rl_limit_result_t *results)
{
    int i;

    for (i = 0; i < n; i++) {
        const rl_limit_t *l = limits[i];
        rl_limit_result_t *r = &results[i];

        if (r->blocked || costs[i] == 0) {
            continue;
        }
        if (allowed) {
            states[i] = evals[i].next;
        } else if (r->allowed) {
            /* Nothing is consumed: report this limit as it stands. */
            rl_algo_eval_t peek;

            algo_eval(l, &states[i], now_ms, 0, &peek);
            r->remaining = peek.remaining;
            r->reset_after_ms = peek.reset_after_ms;
        } else if (l->block_ms > 0) {
            states[i].block_until_ms = now_ms + l->block_ms;
            r->blocked = 1;
            r->remaining = 0;
            r->retry_after_ms = algo_max(r->retry_after_ms, l->block_ms);
            r->reset_after_ms = algo_max(r->reset_after_ms, l->block_ms);
        }
    }
}

/* The all-or-nothing core over n limits given by pointer, limit i at
 * costs[i]; 0 without touching anything for invalid input. */
static int algo_decide_ptrs(const rl_limit_t *const *limits, int n,
                            rl_limit_state_t *states, int64_t now_ms,
                            const int64_t *costs, rl_limit_result_t *results)
{
    rl_algo_eval_t evals[RL_MAX_OP_LIMITS];
    int allowed;
    int i;

    if (n < 1 || n > RL_MAX_OP_LIMITS) {
        return 0;
    }
    memset(results, 0, sizeof(*results) * (size_t)n);
    for (i = 0; i < n; i++) {
        if (!algo_limit_valid(limits[i]) || costs[i] < 0) {
            for (i = 0; i < n; i++) {
                results[i].retry_after_ms = 1;
            }
            return 0;
        }
    }
    allowed = algo_evaluate(limits, n, states, now_ms, costs, evals, results);
    algo_commit(limits, n, states, now_ms, costs, allowed, evals, results);
    return allowed;
}

/* Decides one request against n limits, all or nothing; see algo_mem.h.
 * The caller owns every array; nothing is allocated. An invalid limit
 * (which rl_conf never produces) denies without touching any state. */
int rl_algo_decide(const rl_limit_t *limits, int n, rl_limit_state_t *states,
                   int64_t now_ms, int64_t cost, rl_limit_result_t *results)
{
    const rl_limit_t *ptrs[RL_MAX_LIMITS];
    int64_t costs[RL_MAX_LIMITS];
    int i;

    if (n < 1 || n > RL_MAX_LIMITS) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        ptrs[i] = &limits[i];
        costs[i] = cost;
    }
    return algo_decide_ptrs(ptrs, n, states, now_ms, costs, results);
}

/* Counts one denial on every penalty whose mask holds a part with a
 * denying limit; at `denials` the penalty's block starts (lua/decide.lua
 * punish). */
static void algo_punish(const rl_algo_layered_t *op,
                        const rl_limit_result_t *results,
                        rl_limit_state_t *pstates, int64_t now_ms,
                        rl_penalty_result_t *presults)
{
    unsigned denied = 0;
    int i;

    for (i = 0; i < op->n; i++) {
        if (!results[i].allowed) {
            denied |= 1u << (op->part[i] - 1);
        }
    }
    for (i = 0; i < op->m; i++) {
        const rl_penalty_step_t *pen = &op->penalties[i];
        rl_limit_state_t *ps = &pstates[i];

        if ((pen->mask & denied) == 0) {
            continue;
        }
        if (ps->expires_ms <= now_ms) {
            ps->v[0] = 0;
            ps->expires_ms = now_ms + pen->within_ms;
        }
        if (++ps->v[0] >= pen->denials) {
            ps->block_until_ms = now_ms + pen->block_ms;
            ps->v[0] = 0;
            ps->expires_ms = 0;
            presults[i].state = RL_PENALTY_STARTED;
            presults[i].retry_after_ms = pen->block_ms;
        }
    }
}

/* Decides a layered op; see algo_mem.h. */
int rl_algo_decide_layered(const rl_algo_layered_t *op,
                           rl_limit_state_t *states, rl_limit_state_t *pstates,
                           int64_t now_ms, rl_limit_result_t *results,
                           rl_penalty_result_t *presults)
{
    static const int64_t peek[RL_MAX_OP_LIMITS];
    int blocked = 0;
    int allowed;
    int i;

    if (op->m < 0 || op->m > RL_MAX_OP_PENALTIES) {
        return 0;
    }
    memset(presults, 0, sizeof(*presults) * (size_t)op->m);
    for (i = 0; i < op->m; i++) {
        if (pstates[i].block_until_ms > now_ms) {
            presults[i].state = RL_PENALTY_BLOCKING;
            presults[i].retry_after_ms = pstates[i].block_until_ms - now_ms;
            blocked = 1;
        }
    }
    if (blocked) {
        /* Blocked: nothing counts, the limits are reported as a peek. */
        algo_decide_ptrs(op->limits, op->n, states, now_ms, peek, results);
        return 0;
    }
    allowed =
        algo_decide_ptrs(op->limits, op->n, states, now_ms, op->costs, results);
    if (!allowed && op->cost > 0) {
        algo_punish(op, results, pstates, now_ms, presults);
    }
    return allowed;
}
