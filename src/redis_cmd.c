/* The command of one store operation: op -> argv, reply -> result. Moved
 * out of store_redis.c so the standalone and cluster stores build and
 * parse exactly the same bytes. */
#include "redis_cmd.h"

#include <stdlib.h>
#include <string.h>

#include "algo.h"
#include "util.h"

#define CMD_NUM_MAX 24 /* an int64 in decimal, with NUL */
#define CMD_BUF_MIN 1024
/* The binary request (store.h): the bytes of a part (n limits 1, cost 8),
 * a limit (algo 1, requests 7, period 5, burst 7, block 5) and a penalty
 * (denials 7, within 5, block 5, mask 1), and the bounds of its fields. */
#define CMD_PART_BYTES 9
#define CMD_LIMIT_BYTES 25
#define CMD_PENALTY_BYTES 18
#define CMD_MAX_7 ((int64_t)1 << 53) /* exact in the script's doubles */
#define CMD_MAX_5 ((int64_t)1 << 40) /* ms: 34 years */

/* Writes v in decimal at p (no NUL); returns the length. */
static size_t cmd_fmt_i64(char *p, int64_t v)
{
    char tmp[CMD_NUM_MAX];
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t n = 0;
    size_t len = 0;

    do {
        tmp[n++] = (char)('0' + (u % 10));
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        p[len++] = '-';
    }
    while (n > 0) {
        p[len++] = tmp[--n];
    }
    return len;
}

/* Makes cmd->buf hold at least need bytes. RL_OK or RL_ERR. */
static int cmd_reserve(rl_redis_cmd_t *cmd, size_t need)
{
    size_t cap = cmd->bufcap > 0 ? cmd->bufcap : CMD_BUF_MIN;
    char *b;

    if (need <= cmd->bufcap) {
        return RL_OK;
    }
    while (cap < need) {
        cap *= 2;
    }
    b = realloc(cmd->buf, cap);
    if (b == NULL) {
        return RL_ERR;
    }
    cmd->buf = b;
    cmd->bufcap = cap;
    return RL_OK;
}

/* Appends one argument of len bytes at *p (copied when src != NULL,
 * already written otherwise). */
static void cmd_arg(rl_redis_cmd_t *cmd, char **p, const char *src, size_t len)
{
    if (src != NULL) {
        memcpy(*p, src, len);
    }
    cmd->argv[cmd->argc] = *p;
    cmd->argvlen[cmd->argc] = len;
    cmd->argc++;
    *p += len;
}

/* Appends a number argument. */
static void cmd_arg_num(rl_redis_cmd_t *cmd, char **p, int64_t v)
{
    cmd_arg(cmd, p, NULL, cmd_fmt_i64(*p, v));
}

/* Appends base ":" tag suffix as one key argument. */
static void cmd_arg_key(rl_redis_cmd_t *cmd, char **p, const char *base,
                        size_t blen, const char *tag, const char *suffix)
{
    char *start = *p;
    size_t glen = strlen(tag);
    size_t slen = strlen(suffix);

    memcpy(start, base, blen);
    start[blen] = ':';
    memcpy(start + blen + 1, tag, glen);
    memcpy(start + blen + 1 + glen, suffix, slen);
    cmd_arg(cmd, p, NULL, blen + 1 + glen + slen);
}

/* Rejects ops no command can carry; refund: the costs may be negative
 * (a refund op, store.h) but not positive. */
static const char *cmd_check(const rl_store_op_t *op, int refund)
{
    int i;
    int k;

    if (rl_store_op_nlimits(op) < 0) {
        return "bad_op";
    }
    for (i = 0; i < rl_store_op_nparts(op); i++) {
        rl_store_part_t part;
        int64_t cost = rl_store_op_cost(op, i);

        rl_store_op_part(op, i, &part);
        if (part.base_len > RL_REDIS_CMD_MAX_BASE ||
            (refund ? cost > 0 : cost < 0)) {
            return "bad_op";
        }
        if (cost <= -CMD_MAX_7 || cost >= CMD_MAX_7) {
            return "bad_op";
        }
        for (k = 0; k < part.nlimits; k++) {
            const rl_limit_t *l = &part.limits[k];

            if (rl_algo_get(l->algo) == NULL || l->suffix[0] == '\0' ||
                l->requests < 1 || l->requests >= CMD_MAX_7 ||
                l->period_ms < 1 || l->period_ms >= CMD_MAX_5 || l->burst < 0 ||
                l->burst >= CMD_MAX_7 || l->block_ms < 0 ||
                l->block_ms >= CMD_MAX_5) {
                return "bad_op";
            }
        }
    }
    for (i = 0; i < op->npenalties; i++) {
        const rl_store_penalty_t *pen = &op->penalties[i];

        if (pen->key == NULL || pen->len > RL_REDIS_CMD_MAX_BASE ||
            pen->step.denials < 1 || pen->step.denials >= CMD_MAX_7 ||
            pen->step.within_ms < 1 || pen->step.within_ms >= CMD_MAX_5 ||
            pen->step.block_ms < 1 || pen->step.block_ms >= CMD_MAX_5 ||
            pen->step.mask > 0xff) {
            return "bad_op";
        }
    }
    return NULL;
}

/* 1 if op is a refund: a part with a negative cost. */
static int cmd_is_refund(const rl_store_op_t *op)
{
    int i;

    for (i = 0; i < rl_store_op_nparts(op); i++) {
        if (rl_store_op_cost(op, i) < 0) {
            return 1;
        }
    }
    return 0;
}

/* Rejects ops no command can carry. A refund (store_cluster_xm.c gives
 * back what a cross-master decision reserved) has no part that spends
 * and no penalty. */
const char *rl_redis_cmd_check(const rl_store_op_t *op)
{
    int refund = cmd_is_refund(op);

    if (refund && op->npenalties > 0) {
        return "bad_op";
    }
    return cmd_check(op, refund);
}

/* The bytes cmd's buffer needs for op (checked). */
static size_t cmd_need(const rl_store_op_t *op, int nlimits)
{
    size_t need = 64 + (size_t)(CMD_LIMIT_BYTES * nlimits +
                                CMD_PENALTY_BYTES * op->npenalties +
                                CMD_PART_BYTES * RL_MAX_OP_PARTS);
    int i;

    for (i = 0; i < rl_store_op_nparts(op); i++) {
        rl_store_part_t part;

        rl_store_op_part(op, i, &part);
        /* the key base ":l" suffix, each limit's suffix as its id */
        need += part.base_len + 3 +
                (size_t)(part.nlimits + 1) * sizeof(part.limits[0].suffix);
    }
    for (i = 0; i < op->npenalties; i++) {
        need += op->penalties[i].len + 3;
    }
    return need;
}

/* Appends every key of op (protocol v3, store.h): each part's state key,
 * named after its first limit, then each penalty's key. */
static void cmd_keys(rl_redis_cmd_t *cmd, char **p, const rl_store_op_t *op)
{
    int i;

    for (i = 0; i < rl_store_op_nparts(op); i++) {
        rl_store_part_t part;

        rl_store_op_part(op, i, &part);
        cmd_arg_key(cmd, p, part.base_key, part.base_len, "l",
                    part.limits[0].suffix);
    }
    for (i = 0; i < op->npenalties; i++) {
        const rl_store_penalty_t *pen = &op->penalties[i];

        cmd_arg_key(cmd, p, pen->key, pen->len, "p", "");
    }
}

/* Writes the low n bytes of v at p, little-endian (the script's struct
 * layouts); returns n. */
static size_t cmd_put_le(char *p, uint64_t v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
    return n;
}

/* Appends the script's one argument for op (protocol v3, store.h): the
 * binary request, every number little-endian. */
static void cmd_args(rl_redis_cmd_t *cmd, char **p, const rl_store_op_t *op)
{
    char *b = *p;
    size_t len = 0;
    int i;
    int k;

    b[len++] = (char)rl_store_op_nparts(op);
    b[len++] = (char)op->npenalties;
    for (i = 0; i < rl_store_op_nparts(op); i++) {
        rl_store_part_t part;

        rl_store_op_part(op, i, &part);
        b[len++] = (char)part.nlimits;
        len += cmd_put_le(b + len, (uint64_t)rl_store_op_cost(op, i), 8);
        for (k = 0; k < part.nlimits; k++) {
            const rl_limit_t *l = &part.limits[k];

            b[len++] = (char)rl_algo_get(l->algo)->script_id;
            len += cmd_put_le(b + len, (uint64_t)l->requests, 7);
            len += cmd_put_le(b + len, (uint64_t)l->period_ms, 5);
            len += cmd_put_le(b + len, (uint64_t)l->burst, 7);
            len += cmd_put_le(b + len, (uint64_t)l->block_ms, 5);
        }
    }
    for (i = 0; i < op->npenalties; i++) {
        const rl_penalty_step_t *st = &op->penalties[i].step;

        len += cmd_put_le(b + len, (uint64_t)st->denials, 7);
        len += cmd_put_le(b + len, (uint64_t)st->within_ms, 5);
        len += cmd_put_le(b + len, (uint64_t)st->block_ms, 5);
        b[len++] = (char)st->mask;
    }
    cmd_arg(cmd, p, NULL, len);
}

/* Fills cmd for op after cmd_check(op, refund) accepted it. */
static int cmd_fill(rl_redis_cmd_t *cmd, const char *fn,
                    const rl_store_op_t *op, rl_redis_cmd_kind_t kind)
{
    int nlimits = rl_store_op_nlimits(op);
    size_t fnlen = strlen(fn);
    char *p;

    if (cmd_reserve(cmd, fnlen + cmd_need(op, nlimits)) != RL_OK) {
        return RL_ERR;
    }
    p = cmd->buf;
    cmd->argc = 0;
    cmd->kind = kind;
    cmd->nlimits = nlimits;
    cmd->npenalties = op->npenalties;
    cmd->nkeys = rl_store_op_nparts(op) + op->npenalties;
    if (kind == RL_REDIS_CMD_DECIDE) {
        cmd_arg(cmd, &p, "FCALL", 5);
        cmd_arg(cmd, &p, fn, fnlen);
        cmd_arg_num(cmd, &p, cmd->nkeys);
    } else {
        cmd_arg(cmd, &p, "DEL", 3);
    }
    cmd_keys(cmd, &p, op);
    if (kind == RL_REDIS_CMD_DECIDE) {
        cmd_args(cmd, &p, op);
    }
    return RL_OK;
}

/* Fills cmd->argv for op: FCALL of the decision function, or DEL of every
 * key of the op. An op rl_redis_cmd_check refuses (an unknown algorithm,
 * say) is refused here too: RL_ERR, cmd unchanged. */
int rl_redis_cmd_build(rl_redis_cmd_t *cmd, const char *fn,
                       const rl_store_op_t *op, rl_redis_cmd_kind_t kind)
{
    if (rl_redis_cmd_check(op) != NULL) {
        return RL_ERR;
    }
    return cmd_fill(cmd, fn, op, kind);
}

/* The penalty mask of the sub-op: bit q set when the q-th kept part (in
 * order) was in mask. */
static unsigned cmd_sub_mask(unsigned mask, unsigned parts, int nparts)
{
    unsigned out = 0;
    int q = 0;
    int i;

    for (i = 0; i < nparts; i++) {
        if ((parts & (1u << i)) != 0) {
            out |= ((mask >> i) & 1u) << q;
            q++;
        }
    }
    return out;
}

/* Builds the decision command of the parts of op in parts (bit i = part
 * i) and its penalties in pens (bit j = penalty j), penalty masks
 * renumbered to the kept parts; with refund, each kept part costs minus
 * its cost in op (a refund of what op spent: store.h). RL_ERR when op is
 * refused, a mask keeps nothing it has, or out of memory; cmd is then
 * unchanged. */
int rl_redis_cmd_build_sub(rl_redis_cmd_t *cmd, const char *fn,
                           const rl_store_op_t *op, unsigned parts,
                           unsigned pens, int refund)
{
    rl_store_part_t kept[RL_MAX_OP_PARTS];
    rl_store_penalty_t kpens[RL_MAX_OP_PENALTIES];
    rl_store_op_t sub;
    int np = rl_store_op_nparts(op);
    int n = 0;
    int i;

    if (rl_redis_cmd_check(op) != NULL || parts == 0 || (parts >> np) != 0 ||
        (pens >> op->npenalties) != 0) {
        return RL_ERR;
    }
    memset(&sub, 0, sizeof(sub));
    for (i = 0; i < np; i++) {
        if ((parts & (1u << i)) != 0) {
            rl_store_op_part(op, i, &kept[n]);
            kept[n].cost =
                refund ? -rl_store_op_cost(op, i) : rl_store_op_cost(op, i);
            n++;
        }
    }
    sub.parts = kept;
    sub.nparts = n;
    sub.part_costs = 1;
    sub.penalties = kpens;
    for (i = 0; i < op->npenalties; i++) {
        if ((pens & (1u << i)) != 0) {
            kpens[sub.npenalties] = op->penalties[i];
            kpens[sub.npenalties].step.mask =
                cmd_sub_mask(op->penalties[i].step.mask, parts, np);
            sub.npenalties++;
        }
    }
    if (cmd_check(&sub, refund) != NULL) {
        return RL_ERR;
    }
    return cmd_fill(cmd, fn, &sub, RL_REDIS_CMD_DECIDE);
}

/* FCALL fn numkeys KEY... / DEL KEY...: key i's index. */
const char *rl_redis_cmd_key(const rl_redis_cmd_t *cmd, int i, size_t *len)
{
    int first = cmd->kind == RL_REDIS_CMD_DECIDE ? 3 : 1;

    *len = cmd->argvlen[first + i];
    return cmd->argv[first + i];
}

/* The first key of cmd (its first part's). */
const char *rl_redis_cmd_first_key(const rl_redis_cmd_t *cmd, size_t *len)
{
    return rl_redis_cmd_key(cmd, 0, len);
}

/* The script's reply (store.h): the bytes of a flag (allowed, blocked, a
 * penalty's state), of a time in ms, of a count (remaining); of the head
 * (now_ms, allowed), of a limit (allowed, remaining, reset_after_ms,
 * retry_after_ms, blocked) and of a penalty (state, retry_after_ms). */
#define CMD_FLAG 1
#define CMD_MS 6
#define CMD_COUNT 7
#define CMD_REPLY_HEAD (CMD_MS + CMD_FLAG)
#define CMD_REPLY_LIMIT (CMD_FLAG + CMD_COUNT + 2 * CMD_MS + CMD_FLAG)
#define CMD_REPLY_PENALTY (CMD_FLAG + CMD_MS)

/* Reads the unsigned little-endian integer of n bytes at *p (n <= 7:
 * never negative) and moves *p past it. */
static int64_t cmd_take(const unsigned char **p, int n)
{
    uint64_t v = 0;
    int i;

    for (i = n - 1; i >= 0; i--) {
        v = (v << 8) | (*p)[i];
    }
    *p += n;
    return (int64_t)v;
}

/* Reads a one-byte flag at *p into *out; 0 if it is not 0 or 1. */
static int cmd_take_flag(const unsigned char **p, int *out)
{
    *out = (int)cmd_take(p, CMD_FLAG);
    return *out == 0 || *out == 1;
}

/* Decodes the script's reply: one bulk string of exactly the bytes of
 * cmd's limits and penalties, flags 0 or 1 and penalty states in range
 * (store.h); "bad_reply" otherwise. r stays the caller's. */
static const char *cmd_parse_decide(const rl_redis_cmd_t *cmd,
                                    const redisReply *r, rl_store_result_t *res)
{
    const unsigned char *p = (const unsigned char *)r->str;
    int k;

    if (r->type != REDIS_REPLY_STRING ||
        r->len != CMD_REPLY_HEAD + CMD_REPLY_LIMIT * (size_t)cmd->nlimits +
                      CMD_REPLY_PENALTY * (size_t)cmd->npenalties) {
        return "bad_reply";
    }
    res->now_ms = cmd_take(&p, CMD_MS);
    if (!cmd_take_flag(&p, &res->allowed)) {
        return "bad_reply";
    }
    for (k = 0; k < cmd->nlimits; k++) {
        rl_limit_result_t *l = &res->limits[k];

        if (!cmd_take_flag(&p, &l->allowed)) {
            return "bad_reply";
        }
        l->remaining = cmd_take(&p, CMD_COUNT);
        l->reset_after_ms = cmd_take(&p, CMD_MS);
        l->retry_after_ms = cmd_take(&p, CMD_MS);
        if (!cmd_take_flag(&p, &l->blocked)) {
            return "bad_reply";
        }
    }
    for (k = 0; k < cmd->npenalties; k++) {
        int state = (int)cmd_take(&p, CMD_FLAG);

        if (state < RL_PENALTY_NONE || state > RL_PENALTY_STARTED) {
            return "bad_reply";
        }
        res->penalties[k].state = state;
        res->penalties[k].retry_after_ms = cmd_take(&p, CMD_MS);
    }
    return NULL;
}

/* Decodes DEL's integer reply: the keys are gone, the next request is
 * admitted. */
static const char *cmd_parse_reset(const rl_redis_cmd_t *cmd,
                                   const redisReply *r, rl_store_result_t *res)
{
    if (r->type != REDIS_REPLY_INTEGER) {
        return "bad_reply";
    }
    res->allowed = 1;
    return NULL;
}

typedef const char *cmd_parse_fn(const rl_redis_cmd_t *cmd, const redisReply *r,
                                 rl_store_result_t *res);

static cmd_parse_fn *const cmd_parsers[] = {
    [RL_REDIS_CMD_DECIDE] = cmd_parse_decide,
    [RL_REDIS_CMD_RESET] = cmd_parse_reset,
};

/* Dispatches on the command's kind. */
const char *rl_redis_cmd_parse(const rl_redis_cmd_t *cmd, const redisReply *r,
                               rl_store_result_t *res)
{
    return cmd_parsers[cmd->kind](cmd, r, res);
}

/* Frees cmd's buffer; cmd itself is the caller's. */
void rl_redis_cmd_free(rl_redis_cmd_t *cmd)
{
    free(cmd->buf);
    cmd->buf = NULL;
    cmd->bufcap = 0;
}
