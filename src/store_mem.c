/* The memory store: one process-wide table of limit states, split into
 * shards, each a mutex plus a chained hash table keyed by the full
 * per-limit key (base ":" suffix, as in Redis). A key's shard is chosen
 * by its hash tag. A decision locks the shards of every part and
 * penalty, in ascending shard order (so two decisions never deadlock),
 * and decides all of them under those locks: the same one atomic step
 * as lua/decide.lua. A penalty is one entry, key ":p": its denial count
 * and count window in the state, its block in block_until_ms. Entries
 * die when their state and block expire; they are dropped when met and
 * by a bounded sweep on every insert. */
#include "store_mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "algo.h"
#include "algo_mem.h"
#include "store_ovr.h"
#include "util.h"

#define MEM_SHARDS 64          /* power of two */
#define MEM_INITIAL_BUCKETS 64 /* per shard, power of two */
#define MEM_SWEEP_BUCKETS 16   /* buckets looked at per insert */
#define MEM_KEYBUF 4096        /* key bytes built on the stack */
#define MEM_MAX_KEYS (RL_MAX_OP_LIMITS + RL_MAX_OP_PENALTIES)

typedef struct mem_entry {
    struct mem_entry *next;
    uint64_t hash;
    rl_limit_state_t st;
    size_t klen;
    char key[];
} mem_entry_t;

typedef struct mem_shard {
    pthread_mutex_t lock;
    mem_entry_t **buckets;
    size_t nbuckets;
    size_t count;
    size_t sweep; /* next bucket the sweep looks at */
} mem_shard_t;

struct rl_mem_table {
    mem_shard_t shards[MEM_SHARDS];
};

/* One worker's handle: the shared table and the clock. */
typedef struct mem_store {
    rl_store_t store;
    rl_mem_table_t *table;
    int64_t (*now_ms)(void *);
    void *clock_arg;
} mem_store_t;

/* The keys of one operation, built in buf (stack) or heap: every
 * limit's, in part order, then every penalty's. */
typedef struct mem_keys {
    int n; /* limit keys */
    int m; /* penalty keys, after them */
    char *key[MEM_MAX_KEYS];
    size_t len[MEM_MAX_KEYS];
    uint64_t hash[MEM_MAX_KEYS];
    mem_shard_t *shard[MEM_MAX_KEYS];
    mem_shard_t *locked[MEM_MAX_KEYS]; /* distinct shards, ascending */
    int nlocked;
    char *heap; /* NULL when the stack buffer sufficed */
    char buf[MEM_KEYBUF];
} mem_keys_t;

/* ------------------------------------------------------------------------
 * Hashing and entries
 * ------------------------------------------------------------------------ */

/* FNV-1a 64 of len bytes. */
static uint64_t mem_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* The shard of a base key: by its hash tag (the bytes between the first
 * '{' and the next '}', if not empty), else by the whole base. */
static mem_shard_t *mem_shard_of(rl_mem_table_t *t, const char *base,
                                 size_t len)
{
    const char *open = memchr(base, '{', len);
    const char *tag = base;
    size_t tlen = len;

    if (open != NULL) {
        const char *close =
            memchr(open + 1, '}', len - (size_t)(open + 1 - base));

        if (close != NULL && close > open + 1) {
            tag = open + 1;
            tlen = (size_t)(close - tag);
        }
    }
    return &t->shards[mem_hash(tag, tlen) & (MEM_SHARDS - 1)];
}

/* 1 while an entry's state or block still matters at now. */
static int mem_live(const rl_limit_state_t *st, int64_t now_ms)
{
    return st->expires_ms > now_ms || st->block_until_ms > now_ms;
}

/* Finds key in sh; *link is set to the pointer that points at it (for
 * unlinking). Returns NULL if absent. Shard lock held. */
static mem_entry_t *mem_find(mem_shard_t *sh, const char *key, size_t len,
                             uint64_t hash, mem_entry_t ***link)
{
    mem_entry_t **p = &sh->buckets[hash & (sh->nbuckets - 1)];

    for (; *p != NULL; p = &(*p)->next) {
        if ((*p)->hash == hash && (*p)->klen == len &&
            memcmp((*p)->key, key, len) == 0) {
            *link = p;
            return *p;
        }
    }
    *link = p;
    return NULL;
}

/* Unlinks and frees the entry *link points at. Shard lock held. */
static void mem_unlink(mem_shard_t *sh, mem_entry_t **link)
{
    mem_entry_t *e = *link;

    *link = e->next;
    free(e);
    sh->count--;
}

/* Drops the dead entries of the next MEM_SWEEP_BUCKETS buckets. Shard
 * lock held. */
static void mem_sweep(mem_shard_t *sh, int64_t now_ms)
{
    int i;

    for (i = 0; i < MEM_SWEEP_BUCKETS; i++) {
        mem_entry_t **p = &sh->buckets[sh->sweep];

        while (*p != NULL) {
            if (mem_live(&(*p)->st, now_ms)) {
                p = &(*p)->next;
            } else {
                mem_unlink(sh, p);
            }
        }
        sh->sweep = (sh->sweep + 1) & (sh->nbuckets - 1);
    }
}

/* Doubles the bucket array when the shard is fuller than one entry per
 * bucket. Keeps the old array if memory is short. Shard lock held. */
static void mem_grow(mem_shard_t *sh)
{
    size_t n = sh->nbuckets * 2;
    mem_entry_t **b;
    size_t i;

    if (sh->count <= sh->nbuckets || (b = calloc(n, sizeof(*b))) == NULL) {
        return;
    }
    for (i = 0; i < sh->nbuckets; i++) {
        mem_entry_t *e = sh->buckets[i];

        while (e != NULL) {
            mem_entry_t *next = e->next;

            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(sh->buckets);
    sh->buckets = b;
    sh->nbuckets = n;
    sh->sweep = 0;
}

/* ------------------------------------------------------------------------
 * Keys of an operation
 * ------------------------------------------------------------------------ */

/* Appends base ":" suffix as key i of k at *p. */
static void mem_key_add(mem_keys_t *k, int i, char **p, const char *base,
                        size_t blen, const char *suffix)
{
    size_t slen = strlen(suffix);

    k->key[i] = *p;
    memcpy(*p, base, blen);
    (*p)[blen] = ':';
    memcpy(*p + blen + 1, suffix, slen);
    k->len[i] = blen + 1 + slen;
    k->hash[i] = mem_hash(k->key[i], k->len[i]);
    *p += k->len[i];
}

/* Fills k->locked with the distinct shards of k's keys, ascending. */
static void mem_keys_shards(mem_keys_t *k)
{
    int i;
    int j;

    k->nlocked = 0;
    for (i = 0; i < k->n + k->m; i++) {
        mem_shard_t *sh = k->shard[i];

        for (j = 0; j < k->nlocked && k->locked[j] < sh; j++) {
        }
        if (j < k->nlocked && k->locked[j] == sh) {
            continue;
        }
        memmove(&k->locked[j + 1], &k->locked[j],
                (size_t)(k->nlocked - j) * sizeof(k->locked[0]));
        k->locked[j] = sh;
        k->nlocked++;
    }
}

/* Builds base ":" suffix for every limit of every part of op, and
 * key ":p" for every penalty, into k, with their shards. Returns RL_OK,
 * or RL_ERR if memory is short. The caller frees with mem_keys_free. */
static int mem_keys_build(mem_keys_t *k, rl_mem_table_t *t,
                          const rl_store_op_t *op)
{
    size_t total = 0;
    char *p;
    int i;
    int j;

    k->heap = NULL;
    for (i = 0; i < rl_store_op_nparts(op); i++) {
        rl_store_part_t part;

        rl_store_op_part(op, i, &part);
        for (j = 0; j < part.nlimits; j++) {
            total += part.base_len + 1 + strlen(part.limits[j].suffix);
        }
    }
    for (i = 0; i < op->npenalties; i++) {
        total += op->penalties[i].len + 2;
    }
    p = k->buf;
    if (total > sizeof(k->buf) && (p = k->heap = malloc(total)) == NULL) {
        return RL_ERR;
    }
    k->n = 0;
    for (i = 0; i < rl_store_op_nparts(op); i++) {
        rl_store_part_t part;

        rl_store_op_part(op, i, &part);
        for (j = 0; j < part.nlimits; j++) {
            k->shard[k->n] = mem_shard_of(t, part.base_key, part.base_len);
            mem_key_add(k, k->n++, &p, part.base_key, part.base_len,
                        part.limits[j].suffix);
        }
    }
    for (k->m = 0; k->m < op->npenalties; k->m++) {
        const rl_store_penalty_t *pen = &op->penalties[k->m];

        k->shard[k->n + k->m] = mem_shard_of(t, pen->key, pen->len);
        mem_key_add(k, k->n + k->m, &p, pen->key, pen->len, "p");
    }
    mem_keys_shards(k);
    return RL_OK;
}

/* Frees what mem_keys_build allocated. */
static void mem_keys_free(mem_keys_t *k)
{
    free(k->heap);
}

/* Locks (lock 1) or unlocks (0) every shard of k, in ascending order. */
static void mem_keys_lock(mem_keys_t *k, int lock)
{
    int i;

    for (i = 0; i < k->nlocked; i++) {
        if (lock) {
            pthread_mutex_lock(&k->locked[i]->lock);
        } else {
            pthread_mutex_unlock(&k->locked[k->nlocked - 1 - i]->lock);
        }
    }
}

/* 1 if op can be decided: valid parts and limits, cost >= 0, penalties
 * that count. */
static int mem_op_valid(const rl_store_op_t *op)
{
    int i;
    int j;

    if (rl_store_op_nlimits(op) < 0 || rl_store_op_counts(op) < 0) {
        return 0;
    }
    for (i = 0; i < rl_store_op_nparts(op); i++) {
        rl_store_part_t part;

        rl_store_op_part(op, i, &part);
        for (j = 0; j < part.nlimits; j++) {
            const rl_limit_t *l = &part.limits[j];

            if (rl_algo_get(l->algo) == NULL || l->requests < 1 ||
                l->period_ms < 1) {
                return 0;
            }
        }
    }
    for (i = 0; i < op->npenalties; i++) {
        const rl_penalty_step_t *st = &op->penalties[i].step;

        if (op->penalties[i].key == NULL || st->denials < 1 ||
            st->within_ms < 1 || st->block_ms < 1) {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------------
 * Store operations
 * ------------------------------------------------------------------------ */

/* The handle's clock: the injected one, else the wall clock. */
static int64_t mem_now(mem_store_t *m)
{
    return m->now_ms != NULL ? m->now_ms(m->clock_arg) : rl_now_ms();
}

/* Starts an operation: checks op and builds its keys (a failure is
 * reported to cb, and RL_ERR returned); then locks every shard of op and
 * returns RL_OK, with *res zeroed and its clock read under the locks.
 * The caller unlocks and frees *keys. */
static int mem_begin(mem_store_t *m, const rl_store_op_t *op, rl_store_cb *cb,
                     void *arg, mem_keys_t *keys, rl_store_result_t *res)
{
    if (!mem_op_valid(op)) {
        rl_store_fail(cb, arg, "bad_request");
        return RL_ERR;
    }
    if (mem_keys_build(keys, m->table, op) != RL_OK) {
        rl_store_fail(cb, arg, "out_of_memory");
        return RL_ERR;
    }
    memset(res, 0, sizeof(*res));
    mem_keys_lock(keys, 1);
    res->now_ms = mem_now(m);
    return RL_OK;
}

/* Reads the state of each of the n keys into states[] (zeroed when
 * absent or expired; expired entries are dropped), and the live entries
 * into found[]. Every shard locked. */
static void mem_load_states(const mem_keys_t *keys, int n, int64_t now_ms,
                            mem_entry_t **found, rl_limit_state_t *states)
{
    int i;

    for (i = 0; i < n; i++) {
        mem_shard_t *sh = keys->shard[i];
        mem_entry_t **link;

        found[i] =
            mem_find(sh, keys->key[i], keys->len[i], keys->hash[i], &link);
        if (found[i] != NULL && !mem_live(&found[i]->st, now_ms)) {
            mem_unlink(sh, link);
            found[i] = NULL;
        }
        if (found[i] != NULL) {
            states[i] = found[i]->st;
        } else {
            memset(&states[i], 0, sizeof(states[i]));
        }
    }
}

/* Writes states[] back: into the found entries, or into new entries for
 * live states of new keys. Every new entry is allocated before anything
 * is written, so a shortage of memory changes nothing: then
 * "out_of_memory", else NULL. fresh[] holds what was allocated and not
 * linked (the caller frees it). Every shard locked. */
static const char *mem_store_states(const mem_keys_t *keys, int n,
                                    int64_t now_ms, mem_entry_t **found,
                                    mem_entry_t **fresh,
                                    const rl_limit_state_t *states)
{
    int i;

    for (i = 0; i < n; i++) {
        if (found[i] == NULL && mem_live(&states[i], now_ms)) {
            fresh[i] = malloc(sizeof(mem_entry_t) + keys->len[i]);
            if (fresh[i] == NULL) {
                return "out_of_memory";
            }
        }
    }
    for (i = 0; i < n; i++) {
        mem_shard_t *sh = keys->shard[i];
        mem_entry_t **link;

        if (found[i] != NULL) {
            found[i]->st = states[i];
        } else if (fresh[i] != NULL) {
            fresh[i]->hash = keys->hash[i];
            fresh[i]->st = states[i];
            fresh[i]->klen = keys->len[i];
            memcpy(fresh[i]->key, keys->key[i], keys->len[i]);
            if (mem_find(sh, keys->key[i], keys->len[i], keys->hash[i],
                         &link) != NULL) {
                /* two limits with one key: the later one wins */
                (*link)->st = states[i];
                continue;
            }
            fresh[i]->next = NULL;
            *link = fresh[i];
            fresh[i] = NULL;
            sh->count++;
            mem_sweep(sh, now_ms);
            mem_grow(sh);
        }
    }
    return NULL;
}

/* The layered form of op for the algorithms: every part's limits by
 * pointer with their part, and the penalties. */
static void mem_layered(const rl_store_op_t *op, rl_algo_layered_t *a)
{
    int i;
    int j;

    a->n = 0;
    for (i = 0; i < rl_store_op_nparts(op); i++) {
        rl_store_part_t part;

        rl_store_op_part(op, i, &part);
        for (j = 0; j < part.nlimits; j++) {
            a->limits[a->n] = &part.limits[j];
            a->costs[a->n] = rl_store_op_cost(op, i);
            a->part[a->n++] = i + 1;
        }
    }
    for (a->m = 0; a->m < op->npenalties; a->m++) {
        a->penalties[a->m] = op->penalties[a->m].step;
    }
    a->cost = rl_store_op_counts(op);
}

/* Decides op under the locks of its shards and calls cb once, after
 * unlocking. A shortage of memory fails the whole decision and changes
 * nothing. */
static void mem_decide(rl_store_t *s, const rl_store_op_t *op, rl_store_cb *cb,
                       void *arg)
{
    mem_store_t *m = s->impl;
    mem_keys_t keys;
    mem_entry_t *found[MEM_MAX_KEYS];
    mem_entry_t *fresh[MEM_MAX_KEYS] = {NULL};
    rl_limit_state_t states[MEM_MAX_KEYS];
    rl_algo_layered_t lay;
    rl_store_result_t res;
    const char *error;
    int i;

    if (mem_begin(m, op, cb, arg, &keys, &res) != RL_OK) {
        return;
    }
    mem_layered(op, &lay);
    mem_load_states(&keys, keys.n + keys.m, res.now_ms, found, states);
    res.allowed = rl_algo_decide_layered(&lay, states, states + keys.n,
                                         res.now_ms, res.limits, res.penalties);
    error = mem_store_states(&keys, keys.n + keys.m, res.now_ms, found, fresh,
                             states);
    mem_keys_lock(&keys, 0);
    for (i = 0; i < keys.n + keys.m; i++) {
        free(fresh[i]);
    }
    mem_keys_free(&keys);
    if (error != NULL) {
        rl_store_fail(cb, arg, error);
        return;
    }
    res.status = RL_OK;
    cb(arg, &res);
}

/* Removes every key of op (state, block and penalty alike), then calls
 * cb once. */
static void mem_reset(rl_store_t *s, const rl_store_op_t *op, rl_store_cb *cb,
                      void *arg)
{
    mem_store_t *m = s->impl;
    mem_keys_t keys;
    rl_store_result_t res;
    int i;

    if (mem_begin(m, op, cb, arg, &keys, &res) != RL_OK) {
        return;
    }
    for (i = 0; i < keys.n + keys.m; i++) {
        mem_entry_t **link;

        if (mem_find(keys.shard[i], keys.key[i], keys.len[i], keys.hash[i],
                     &link) != NULL) {
            mem_unlink(keys.shard[i], link);
        }
    }
    mem_keys_lock(&keys, 0);
    mem_keys_free(&keys);
    res.status = RL_OK;
    res.allowed = 1;
    cb(arg, &res);
}

/* The memory store is always available. */
static int mem_connected(rl_store_t *s)
{
    return 1;
}

/* Frees the handle; the table is left to rl_mem_table_free. */
static void mem_free(rl_store_t *s)
{
    free(s->impl);
}

static const rl_store_ops_t mem_ops = {
    .decide = mem_decide,
    .reset = mem_reset,
    .connected = mem_connected,
    .free = mem_free,
    .overrides = rl_store_ovr_mem,
};

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

/* Creates the table; the caller owns it (rl_mem_table_free). NULL if
 * memory is short. */
rl_mem_table_t *rl_mem_table_new(void)
{
    rl_mem_table_t *t = calloc(1, sizeof(*t));
    int i;

    if (t == NULL) {
        return NULL;
    }
    for (i = 0; i < MEM_SHARDS; i++) {
        mem_shard_t *sh = &t->shards[i];

        pthread_mutex_init(&sh->lock, NULL);
        sh->nbuckets = MEM_INITIAL_BUCKETS;
        sh->buckets = calloc(sh->nbuckets, sizeof(*sh->buckets));
        if (sh->buckets == NULL) {
            rl_mem_table_free(t);
            return NULL;
        }
    }
    return t;
}

/* Frees the table and every entry. No handle may be in use. */
void rl_mem_table_free(rl_mem_table_t *t)
{
    int i;

    if (t == NULL) {
        return;
    }
    for (i = 0; i < MEM_SHARDS; i++) {
        mem_shard_t *sh = &t->shards[i];
        size_t b;

        for (b = 0; sh->buckets != NULL && b < sh->nbuckets; b++) {
            while (sh->buckets[b] != NULL) {
                mem_unlink(sh, &sh->buckets[b]);
            }
        }
        free(sh->buckets);
        pthread_mutex_destroy(&sh->lock);
    }
    free(t);
}

/* Counts the stored entries (dead ones not yet dropped included). Any
 * thread. */
size_t rl_mem_table_size(rl_mem_table_t *t)
{
    size_t n = 0;
    int i;

    for (i = 0; i < MEM_SHARDS; i++) {
        pthread_mutex_lock(&t->shards[i].lock);
        n += t->shards[i].count;
        pthread_mutex_unlock(&t->shards[i].lock);
    }
    return n;
}

/* Creates a worker's handle over t; rl_store_free frees it. */
rl_store_t *rl_store_mem_new(rl_mem_table_t *t, int64_t (*now_ms)(void *),
                             void *clock_arg)
{
    mem_store_t *m = calloc(1, sizeof(*m));

    if (m == NULL) {
        return NULL;
    }
    m->store.ops = &mem_ops;
    m->store.impl = m;
    m->table = t;
    m->now_ms = now_ms;
    m->clock_arg = clock_arg;
    return &m->store;
}
