/* The store keys of a decision (see decide_int.h): each part's base key
 * from its policy and request, its values for the top keys, and the
 * keys of the penalties its policies name, all in one buffer of the
 * caller's. Pure; worker thread only (as decide.c). */
#include "decide_int.h"

#include <string.h>
#include "policy.h"

/* Copies part d's key values out of its base key for the top keys
 * (toplen past RL_TOPKEYS_KEY_MAX: too long, not tracked). */
static void decide_part_top(decide_part_t *d, const char *key, size_t len)
{
    size_t n;
    const char *top = rl_topkeys_key_values(d->policy, key, len, &n);

    d->toplen = n;
    if (n <= RL_TOPKEYS_KEY_MAX) {
        memcpy(d->top, top, n);
    } else {
        d->toplen = RL_TOPKEYS_KEY_MAX + 1;
    }
}

/* Builds every part's key into k (limits from c). Returns 0, or -1 with
 * *bad the part that lacks *missing. */
int rl_decide_keys_parts(decide_ctx_t *c, decide_keys_t *k, int *bad,
                         const char **missing)
{
    int i, len;

    k->used = 0;
    for (i = 0; i < c->nparts; i++) {
        const decide_part_t *d = &c->parts[i];
        size_t room = sizeof(k->buf) - k->used;

        len = rl_policy_key(d->policy, c->conf->store.prefix, d->req, &d->match,
                            k->buf + k->used,
                            room < RL_KEY_MAX ? room : RL_KEY_MAX, missing);
        if (len < 0) {
            *bad = i;
            return -1;
        }
        k->parts[i].base_key = k->buf + k->used;
        k->parts[i].base_len = (size_t)len;
        decide_part_top(&c->parts[i], k->parts[i].base_key, (size_t)len);
        k->parts[i].limits = d->limits;
        k->parts[i].nlimits = d->nlimits;
        k->parts[i].cost = d->cost;
        k->used += (size_t)len + 1;
    }
    return 0;
}

/* Adds the penalties the parts name to c and their keys to k (at most
 * RL_MAX_OP_PENALTIES distinct ones). A penalty whose key field req
 * lacks does not apply to req. The hash tag is the first naming part's. */
void rl_decide_keys_penalties(decide_ctx_t *c, decide_keys_t *k)
{
    const char *missing;
    int i, j, len;

    c->npens = 0;
    for (i = 0; i < c->nparts; i++) {
        const decide_part_t *d = &c->parts[i];
        const rl_penalty_t *pen = d->policy->penalty;
        size_t room = sizeof(k->buf) - k->used;

        for (j = 0; pen != NULL && j < c->npens && c->pens[j] != pen; j++) {
        }
        if (pen == NULL || (j == c->npens && j == RL_MAX_OP_PENALTIES)) {
            continue;
        }
        if (j < c->npens) {
            c->masks[j] |= 1u << i;
            k->pens[j].step.mask = c->masks[j];
            continue;
        }
        len = rl_penalty_key(pen, c->conf->store.prefix, d->policy, &d->match,
                             d->req, k->buf + k->used,
                             room < RL_KEY_MAX ? room : RL_KEY_MAX, &missing);
        if (len < 0) {
            continue;
        }
        c->pens[j] = pen;
        c->masks[j] = 1u << i;
        k->pens[j].key = k->buf + k->used;
        k->pens[j].len = (size_t)len;
        k->pens[j].step.denials = pen->denials;
        k->pens[j].step.within_ms = pen->within_ms;
        k->pens[j].step.block_ms = pen->block_ms;
        k->pens[j].step.mask = c->masks[j];
        k->used += (size_t)len + 1;
        c->npens++;
    }
}
