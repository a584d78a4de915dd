/* Cross-slot decisions on the cluster (see store_cluster_int.h): a
 * decision whose parts (gRPC descriptors, layered policies) hash to
 * different slots. One script call may only declare the keys of one
 * slot, so the op is split per slot into sub-ops, each a normal
 * single-slot op of the executor (batching, redirections, retries).
 *
 * The sub-ops run in stages, one stage per master (the sub-ops of one
 * master start in the same loop pass, so they go in one batched script
 * call), stages in ascending slot order: the same order in every
 * process. A stage that admits everything lets the next one start; a
 * denial (or a failure) ends the reservation: every sub-op that was
 * admitted is refunded with the negative of its cost (protocol v3: a
 * refund never denies and never pushes a state below empty), and the
 * stages not reached are peeked so every limit has a result. So a
 * decision is admitted only when every part admitted it, never over a
 * limit, and a denial ends up spending nothing. Peeks (cost 0) and
 * resets run every sub-op at once. Ops with penalties that span slots
 * stay "cross_slot" (on a cluster the config requires a shared hash_tag
 * for penalties). Worker thread only. */
#include "store_cluster_int.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

typedef enum { XM_RESERVE = 0, XM_REFUND, XM_PEEK } xm_phase_t;

typedef enum {
    XM_IDLE = 0, /* not started */
    XM_ADMITTED, /* reserved: refunded if the decision is denied */
    XM_ENDED     /* denied, failed, refunded or peeked */
} xm_state_t;

typedef struct xm xm_t;

/* The parts of one slot. */
typedef struct xm_sub {
    xm_t *xm;
    int slot;
    int stage;
    int nparts;
    int part[RL_MAX_OP_PARTS]; /* indexes into xm->parts */
    xm_state_t state;
    xm_phase_t phase; /* of the call out */
} xm_sub_t;

/* One cross-slot decision; owns copies of the op's parts, limits and
 * keys, since the caller's op may be gone before a later stage. */
struct xm {
    store_cluster_t *cl;
    rl_store_cb *cb;
    void *arg;
    rl_redis_cmd_kind_t kind;
    int peek; /* every cost is 0 */
    int nparts;
    rl_store_part_t parts[RL_MAX_OP_PARTS];
    rl_limit_t limits[RL_MAX_OP_LIMITS];
    int limit_off[RL_MAX_OP_PARTS]; /* part i's first limit in res */
    char *keys;
    int nsubs;
    xm_sub_t subs[RL_MAX_OP_PARTS];
    int nstages;
    int stage;         /* the stage reserving */
    int running;       /* sub-op calls out */
    int starting;      /* in a loop starting sub-ops: no advancing */
    int finishing;     /* refunds and peeks out */
    int denied;        /* a reservation was denied */
    const char *error; /* a reservation failed */
    rl_store_result_t res;
};

static void xm_advance(xm_t *x);

/* 0: every part and penalty of op names one slot (the plain path); 1:
 * the parts span slots and there are no penalties (this file); -1:
 * penalties with parts that span slots ("cross_slot"). */
int rl_store_cluster_xm_wanted(const rl_store_op_t *op)
{
    int slot = -1;
    int i;

    if (op->nparts <= 1) {
        return 0;
    }
    for (i = 0; i < op->nparts; i++) {
        int s =
            rl_cluster_key_slot(op->parts[i].base_key, op->parts[i].base_len);

        if (slot >= 0 && s != slot) {
            return op->npenalties > 0 ? -1 : 1;
        }
        slot = s;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Plan                                                                */
/* ------------------------------------------------------------------ */

/* Copies op's parts, limits and keys into x. RL_OK or RL_ERR. */
static int xm_copy(xm_t *x, const rl_store_op_t *op)
{
    size_t need = 0;
    size_t used = 0;
    int nl = 0;
    int i;

    for (i = 0; i < op->nparts; i++) {
        need += op->parts[i].base_len;
    }
    x->keys = malloc(need + 1);
    if (x->keys == NULL) {
        return RL_ERR;
    }
    x->nparts = op->nparts;
    x->peek = 1;
    for (i = 0; i < op->nparts; i++) {
        rl_store_part_t *p = &x->parts[i];

        *p = op->parts[i];
        p->cost = rl_store_op_cost(op, i);
        x->peek &= p->cost == 0;
        memcpy(x->keys + used, p->base_key, p->base_len);
        p->base_key = x->keys + used;
        used += p->base_len;
        memcpy(&x->limits[nl], op->parts[i].limits,
               (size_t)p->nlimits * sizeof(rl_limit_t));
        p->limits = &x->limits[nl];
        x->limit_off[i] = nl;
        nl += p->nlimits;
    }
    return RL_OK;
}

/* Groups the parts per slot (in ascending slot order) and the slots
 * per master into stages (in order of their first slot). */
static void xm_plan(xm_t *x)
{
    const store_cluster_t *cl = x->cl;
    int i;
    int j;

    for (i = 0; i < x->nparts; i++) {
        int slot =
            rl_cluster_key_slot(x->parts[i].base_key, x->parts[i].base_len);
        xm_sub_t *sub;

        for (j = 0; j < x->nsubs && x->subs[j].slot < slot; j++) {
        }
        if (j == x->nsubs || x->subs[j].slot != slot) {
            memmove(&x->subs[j + 1], &x->subs[j],
                    (size_t)(x->nsubs - j) * sizeof(x->subs[0]));
            x->nsubs++;
            memset(&x->subs[j], 0, sizeof(x->subs[j]));
            x->subs[j].slot = slot;
            x->subs[j].xm = x;
        }
        sub = &x->subs[j];
        sub->part[sub->nparts++] = i;
    }
    for (i = 0; i < x->nsubs; i++) {
        const cl_node_t *n = cl->slots[x->subs[i].slot];

        x->subs[i].stage = x->nstages;
        for (j = 0; j < i; j++) {
            if (n != NULL && cl->slots[x->subs[j].slot] == n) {
                x->subs[i].stage = x->subs[j].stage;
                break;
            }
        }
        if (x->subs[i].stage == x->nstages) {
            x->nstages++;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Sub-ops                                                             */
/* ------------------------------------------------------------------ */

/* A sub-op's result: its limits go to their parts' places in x->res. */
static void xm_sub_done(void *arg, const rl_store_result_t *res)
{
    xm_sub_t *sub = arg;
    xm_t *x = sub->xm;
    int k;
    int pos = 0;

    x->running--;
    sub->state = XM_ENDED;
    if (res->status != RL_OK) {
        if (sub->phase == XM_RESERVE && x->error == NULL) {
            x->error = res->error;
        } else if (sub->phase == XM_REFUND) {
            rl_redis_exec_warn(&x->cl->ex,
                               "redis cluster: a cross-slot refund failed "
                               "(the reservation stays spent)",
                               res->error);
        }
    } else {
        if (sub->phase == XM_RESERVE && res->allowed) {
            sub->state = XM_ADMITTED;
        } else if (sub->phase != XM_REFUND && !res->allowed) {
            x->denied = 1; /* a reservation, or a peek's part, denies */
        }
        if (x->res.now_ms == 0) {
            x->res.now_ms = res->now_ms;
        }
        for (k = 0; k < sub->nparts; k++) {
            int p = sub->part[k];
            int nl = x->parts[p].nlimits;

            memcpy(&x->res.limits[x->limit_off[p]], &res->limits[pos],
                   (size_t)nl * sizeof(res->limits[0]));
            pos += nl;
        }
    }
    if (!x->starting && x->running == 0) {
        xm_advance(x);
    }
}

/* Starts sub's call of phase: its parts at their cost, its negative
 * (refund) or 0 (peek). */
static void xm_sub_start(xm_t *x, xm_sub_t *sub, xm_phase_t phase)
{
    rl_store_part_t parts[RL_MAX_OP_PARTS];
    rl_store_op_t op;
    int k;

    memset(&op, 0, sizeof(op));
    for (k = 0; k < sub->nparts; k++) {
        parts[k] = x->parts[sub->part[k]];
        if (phase == XM_REFUND) {
            parts[k].cost = -parts[k].cost;
        } else if (phase == XM_PEEK) {
            parts[k].cost = 0;
        }
    }
    op.parts = parts;
    op.nparts = sub->nparts;
    op.part_costs = 1;
    sub->phase = phase;
    x->running++;
    rl_redis_exec_start(&x->cl->ex, &op, x->kind, xm_sub_done, sub);
}

/* Starts every sub-op that want() picks, in phase; then advances if
 * they all ended at once. */
static void xm_start_all(xm_t *x, int (*want)(const xm_t *, const xm_sub_t *),
                         xm_phase_t phase)
{
    int i;

    x->starting = 1;
    for (i = 0; i < x->nsubs; i++) {
        if (want(x, &x->subs[i])) {
            xm_sub_start(x, &x->subs[i], phase);
        }
    }
    x->starting = 0;
    if (x->running == 0) {
        xm_advance(x);
    }
}

/* The sub-ops of the stage reserving now. */
static int xm_in_stage(const xm_t *x, const xm_sub_t *sub)
{
    return sub->stage == x->stage;
}

/* Every sub-op (peeks, resets). */
static int xm_every(const xm_t *x, const xm_sub_t *sub)
{
    (void)x;
    (void)sub;
    return 1;
}

/* Sub-ops to refund: admitted ones with a part that spent. */
static int xm_admitted(const xm_t *x, const xm_sub_t *sub)
{
    int k;

    if (sub->state != XM_ADMITTED) {
        return 0;
    }
    for (k = 0; k < sub->nparts; k++) {
        if (x->parts[sub->part[k]].cost > 0) {
            return 1;
        }
    }
    return 0;
}

/* Sub-ops not reached: peeked after a denial. */
static int xm_idle(const xm_t *x, const xm_sub_t *sub)
{
    (void)x;
    return sub->state == XM_IDLE;
}

/* ------------------------------------------------------------------ */
/* Stages                                                              */
/* ------------------------------------------------------------------ */

/* Answers the caller and frees x. */
static void xm_answer(xm_t *x)
{
    rl_store_cb *cb = x->cb;
    void *arg = x->arg;
    const char *error = x->error;
    int x_denied = x->denied;
    rl_store_result_t res = x->res;

    free(x->keys);
    free(x);
    if (error != NULL) {
        rl_store_fail(cb, arg, error);
        return;
    }
    res.status = RL_OK;
    res.allowed = !x_denied;
    cb(arg, &res);
}

/* Every call out ended: the next stage, the refunds, or the answer. */
static void xm_advance(xm_t *x)
{
    int i;

    if (x->finishing || x->peek || x->kind != RL_REDIS_CMD_DECIDE) {
        xm_answer(x);
        return;
    }
    if (x->error != NULL || x->denied) {
        x->finishing = 1;
        x->starting = 1;
        for (i = 0; i < x->nsubs; i++) {
            if (xm_admitted(x, &x->subs[i])) {
                xm_sub_start(x, &x->subs[i], XM_REFUND);
            } else if (x->error == NULL && xm_idle(x, &x->subs[i])) {
                xm_sub_start(x, &x->subs[i], XM_PEEK);
            }
        }
        x->starting = 0;
        if (x->running == 0) {
            xm_answer(x);
        }
        return;
    }
    if (++x->stage == x->nstages) {
        xm_answer(x);
        return;
    }
    xm_start_all(x, xm_in_stage, XM_RESERVE);
}

/* Starts a cross-slot op (see the top of the file). */
void rl_store_cluster_xm_start(store_cluster_t *cl, const rl_store_op_t *op,
                               rl_redis_cmd_kind_t kind, rl_store_cb *cb,
                               void *arg)
{
    xm_t *x;
    const char *bad = rl_redis_cmd_check(op);

    if (bad != NULL) {
        rl_store_fail(cb, arg, bad);
        return;
    }
    x = calloc(1, sizeof(*x));
    if (x == NULL || xm_copy(x, op) != RL_OK) {
        free(x);
        rl_store_fail(cb, arg, "out_of_memory");
        return;
    }
    x->cl = cl;
    x->cb = cb;
    x->arg = arg;
    x->kind = kind;
    xm_plan(x);
    if (x->peek || kind != RL_REDIS_CMD_DECIDE) {
        xm_start_all(x, xm_every, XM_PEEK);
        return;
    }
    xm_start_all(x, xm_in_stage, XM_RESERVE);
}
