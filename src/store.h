#ifndef RL_STORE_H
#define RL_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "limit.h"
#include "conf.h"

/* One store interface, two implementations (store_redis, store_mem).
 * Each worker thread owns its own rl_store_t and calls it only from its
 * own event loop.
 *
 * An op is one atomic step over P parts (one per applied policy: its
 * base key and limits) and M penalties. Protocol v3 of the decision
 * script (lua/decide.lua), shared by the Lua and redis_cmd.c:
 *   KEYS: per part 1: base..":l"..<its first limit's suffix> (the state
 *         and block of every limit of the part); then per penalty 1:
 *         key..":p" (its denial count, or its block)
 *   ARGV[1] = the request, binary, every number an unsigned
 *             little-endian integer of the given bytes (signed: cost):
 *     P parts (1), M penalties (1),
 *     per part: n limits (1), cost (8, signed: 0 = peek, < 0 = refund),
 *               then per limit: algo (1: 0 gcra, 1 fixed, 2 sliding),
 *               requests (7), period_ms (5), burst (7), block_ms (5)
 *     per penalty: denials (7), within_ms (5), block_ms (5), mask (1:
 *                  bit p-1 = part p)
 *   Reply: one bulk string, every number an unsigned little-endian
 *     integer of the given bytes: now_ms (6), allowed (1),
 *     per limit: allowed (1), remaining (7), reset_after_ms (6),
 *                retry_after_ms (6), blocked (1),
 *     per penalty: state (1, rl_penalty_state_t), retry_after_ms (6);
 *     7 + 21 n + 7 m bytes. Within conf.c's bounds every value fits;
 *     reset and retry are clamped to 2^48 - 1 ms all the same.
 *   Order: (1) a live penalty block denies, nothing counted, the limits
 *   reported as a peek; (2) every limit evaluated, state written only if
 *   all admit; (3) on a denial, each penalty whose mask holds a part with
 *   a denying limit counts one, and at `denials` starts its block. A
 *   refund (every cost <= 0, some < 0) gives |cost| back to each limit
 *   of its refunding parts (GCRA: TAT = max(TAT - |cost|*T, now); windows:
 *   count = max(count - |cost|, 0) in the current window), never below
 *   empty; it never denies, blocks or counts a penalty and answers as an
 *   admit (rl_redis_cmd_build_sub builds one). The keys' values are
 *   lua/decide.lua's. Time comes from TIME inside the script, once per
 *   call, so every replica shares the Redis clock.
 *   Batch form (redis_exec.c sends the decisions of a loop pass so):
 *   ARGV[1] = "batch", ARGV[2] = count, then every request; KEYS =
 *   every request's KEYS; reply = an array of one reply (bulk string)
 *   per request, or an error reply for that request alone. */

/* One part of an op: an applied policy's base key and limits. */
typedef struct rl_store_part {
    const char *base_key; /* "<prefix>:{...}..." */
    size_t base_len;
    const rl_limit_t *limits;
    int nlimits;  /* 1..RL_MAX_LIMITS */
    int64_t cost; /* with op->part_costs: this part's cost (0 = peek) */
} rl_store_part_t;

/* A penalty of an op: its key (the suffix ":p" is the store's)
 * and what it counts. */
typedef struct rl_store_penalty {
    const char *key; /* "<prefix>:{...}!<penalty>|..." */
    size_t len;
    rl_penalty_step_t step;
} rl_store_penalty_t;

/* The first five fields are the one-part form (nparts == 0); with
 * nparts > 0, parts[] replaces them. Results are in part order, each
 * part's limits in turn (rl_store_op_part). */
typedef struct rl_store_op {
    const char *base_key; /* one-part form */
    size_t base_len;
    const rl_limit_t *limits;
    int nlimits;                  /* 1..RL_MAX_LIMITS */
    int64_t cost;                 /* 0 = peek */
    const rl_store_part_t *parts; /* NULL: the one-part form */
    int nparts;                   /* 0..RL_MAX_OP_PARTS */
    const rl_store_penalty_t *penalties;
    int npenalties; /* 0..RL_MAX_OP_PENALTIES */
    int part_costs; /* 1: each part costs parts[i].cost (cost unused) */
} rl_store_op_t;

typedef struct rl_store_result {
    int status;        /* RL_OK, or RL_ERR when the store failed */
    const char *error; /* static: "timeout", "disconnected", "bad_reply",
                          "cross_slot", ... */
    int allowed;
    int64_t now_ms;                             /* the store's clock */
    rl_limit_result_t limits[RL_MAX_OP_LIMITS]; /* every part's, in order */
    rl_penalty_result_t penalties[RL_MAX_OP_PENALTIES];
} rl_store_result_t;

/* The number of parts of op (1 for the one-part form). */
static inline int rl_store_op_nparts(const rl_store_op_t *op)
{
    return op->nparts > 0 ? op->nparts : 1;
}

/* Part i of op (0-based), the one-part form included, copied into *out. */
static inline void rl_store_op_part(const rl_store_op_t *op, int i,
                                    rl_store_part_t *out)
{
    if (op->nparts > 0) {
        *out = op->parts[i];
        return;
    }
    out->base_key = op->base_key;
    out->base_len = op->base_len;
    out->limits = op->limits;
    out->nlimits = op->nlimits;
    out->cost = op->cost;
}

/* The cost of part i of op. */
static inline int64_t rl_store_op_cost(const rl_store_op_t *op, int i)
{
    return op->part_costs && op->nparts > 0 ? op->parts[i].cost : op->cost;
}

/* 1 if some part of op costs more than 0 (a denial then counts on the
 * penalties); -1 if a cost is negative. */
static inline int rl_store_op_counts(const rl_store_op_t *op)
{
    int i, counts = 0;

    for (i = 0; i < rl_store_op_nparts(op); i++) {
        if (rl_store_op_cost(op, i) < 0) {
            return -1;
        }
        counts |= rl_store_op_cost(op, i) > 0;
    }
    return counts;
}

/* The limits of every part of op together; -1 when there are more than
 * RL_MAX_OP_LIMITS, a part has none or more than RL_MAX_LIMITS, or the
 * parts or penalties are out of range. */
int rl_store_op_nlimits(const rl_store_op_t *op);

/* Called exactly once per operation, possibly before the call that
 * started it returns. res is only valid during the callback. */
typedef void rl_store_cb(void *arg, const rl_store_result_t *res);

typedef struct rl_store rl_store_t;

/* Called once per Redis node by the nodes op, in a stable order: name is
 * "host:port", state "up" (connected and answering) or "down". Both are
 * valid only during the call. */
typedef void rl_store_node_fn(void *arg, const char *name, const char *state);

/* The admin overrides op (store_ovr.c): one hash of overrides and its
 * version counter, changed together atomically. */
typedef enum {
    RL_STORE_OVR_VERSION = 0, /* read the version */
    RL_STORE_OVR_LOAD,        /* read the version and every entry */
    RL_STORE_OVR_PUT,         /* set field to value, drop expired entries */
    RL_STORE_OVR_DELETE       /* remove field, drop expired entries */
} rl_store_ovr_kind_t;

typedef struct rl_store_ovr_op {
    rl_store_ovr_kind_t kind;
    const char *prefix; /* the store prefix: keys "<prefix>:{overrides}" */
    const char *field;  /* PUT, DELETE: "<policy>\n<canonical key JSON>" */
    size_t field_len;
    const char *value; /* PUT: the override's JSON */
    size_t value_len;
    int64_t expires_at; /* PUT: unix s, 0 never */
    int64_t now_s;      /* unix s: entries expired by then are dropped */
} rl_store_ovr_op_t;

typedef struct rl_store_ovr_result {
    int status;                /* RL_OK or RL_ERR */
    const char *error;         /* static, on RL_ERR */
    uint64_t version;          /* after the op */
    int found;                 /* DELETE: the field existed */
    int n;                     /* LOAD: entries */
    const char *const *values; /* LOAD: each entry's JSON (NUL terminated) */
} rl_store_ovr_result_t;

/* Called exactly once per overrides op; res valid only during the call. */
typedef void rl_store_ovr_cb(void *arg, const rl_store_ovr_result_t *res);

typedef struct rl_store_ops {
    /* Decides (or peeks) the op atomically. The op and its strings may be
     * freed by the caller as soon as this returns. */
    void (*decide)(rl_store_t *s, const rl_store_op_t *op, rl_store_cb *cb,
                   void *arg);
    /* Clears every key of the op (its limits and block markers). */
    void (*reset)(rl_store_t *s, const rl_store_op_t *op, rl_store_cb *cb,
                  void *arg);
    /* The admin overrides op (see rl_store_ovr_op_t). */
    void (*overrides)(rl_store_t *s, const rl_store_ovr_op_t *op,
                      rl_store_ovr_cb *cb, void *arg);
    /* 1 if the store can answer now (a cluster: every slot has a
     * reachable master). */
    int (*connected)(rl_store_t *s);
    void (*free)(rl_store_t *s);
    /* Reports every Redis node the store talks to (/ready); NULL for a
     * store without nodes (memory). */
    void (*nodes)(rl_store_t *s, rl_store_node_fn *fn, void *arg);
} rl_store_ops_t;

struct rl_store {
    const rl_store_ops_t *ops;
    void *impl;
};

static inline void rl_store_decide(rl_store_t *s, const rl_store_op_t *op,
                                   rl_store_cb *cb, void *arg)
{
    s->ops->decide(s, op, cb, arg);
}
static inline void rl_store_reset(rl_store_t *s, const rl_store_op_t *op,
                                  rl_store_cb *cb, void *arg)
{
    s->ops->reset(s, op, cb, arg);
}
static inline int rl_store_connected(rl_store_t *s)
{
    return s->ops->connected(s);
}
static inline void rl_store_free(rl_store_t *s)
{
    if (s != NULL) {
        s->ops->free(s);
    }
}
/* 1 if the store has nodes to report. */
static inline int rl_store_has_nodes(const rl_store_t *s)
{
    return s->ops->nodes != NULL;
}
static inline void rl_store_nodes(rl_store_t *s, rl_store_node_fn *fn,
                                  void *arg)
{
    if (s->ops->nodes != NULL) {
        s->ops->nodes(s, fn, arg);
    }
}

/* Calls cb with a failed result carrying `error`. */
void rl_store_fail(rl_store_cb *cb, void *arg, const char *error);

#endif
