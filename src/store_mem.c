/* The memory store: one process-wide table of limit states, split into
 * shards, each a mutex plus a chained hash table keyed by the full
 * per-limit key (base ":" suffix, as in Redis). All limits of a decision
 * share the base's hash tag, so they live in one shard and are decided
 * under that one lock. Entries die when their state and block expire;
 * they are dropped when met and by a bounded sweep on every insert. */
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
#define MEM_KEYBUF 1024        /* key bytes built on the stack */

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

/* The keys of one operation, built in buf (stack) or heap. */
typedef struct mem_keys {
    char *key[RL_MAX_LIMITS];
    size_t len[RL_MAX_LIMITS];
    uint64_t hash[RL_MAX_LIMITS];
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

/* Builds base ":" suffix for every limit of op into k. Returns RL_OK, or
 * RL_ERR if memory is short. The caller frees with mem_keys_free. */
static int mem_keys_build(mem_keys_t *k, const rl_store_op_t *op)
{
    size_t total = 0;
    char *p;
    int i;

    k->heap = NULL;
    for (i = 0; i < op->nlimits; i++) {
        total += op->base_len + 1 + strlen(op->limits[i].suffix);
    }
    p = k->buf;
    if (total > sizeof(k->buf) && (p = k->heap = malloc(total)) == NULL) {
        return RL_ERR;
    }
    for (i = 0; i < op->nlimits; i++) {
        size_t slen = strlen(op->limits[i].suffix);

        k->key[i] = p;
        memcpy(p, op->base_key, op->base_len);
        p[op->base_len] = ':';
        memcpy(p + op->base_len + 1, op->limits[i].suffix, slen);
        k->len[i] = op->base_len + 1 + slen;
        k->hash[i] = mem_hash(k->key[i], k->len[i]);
        p += k->len[i];
    }
    return RL_OK;
}

/* Frees what mem_keys_build allocated. */
static void mem_keys_free(mem_keys_t *k)
{
    free(k->heap);
}

/* 1 if op can be decided: 1..RL_MAX_LIMITS valid limits, cost >= 0. */
static int mem_op_valid(const rl_store_op_t *op)
{
    int i;

    if (op->base_key == NULL || op->limits == NULL || op->nlimits < 1 ||
        op->nlimits > RL_MAX_LIMITS || op->cost < 0) {
        return 0;
    }
    for (i = 0; i < op->nlimits; i++) {
        const rl_limit_t *l = &op->limits[i];

        if (rl_algo_get(l->algo) == NULL || l->requests < 1 ||
            l->period_ms < 1) {
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
 * reported to cb, and NULL returned); then locks op's shard and returns
 * it, with *res zeroed and its clock read under the lock. The caller
 * unlocks and frees *keys. */
static mem_shard_t *mem_begin(mem_store_t *m, const rl_store_op_t *op,
                              rl_store_cb *cb, void *arg, mem_keys_t *keys,
                              rl_store_result_t *res)
{
    mem_shard_t *sh;

    if (!mem_op_valid(op)) {
        rl_store_fail(cb, arg, "bad_request");
        return NULL;
    }
    if (mem_keys_build(keys, op) != RL_OK) {
        rl_store_fail(cb, arg, "out_of_memory");
        return NULL;
    }
    memset(res, 0, sizeof(*res));
    sh = mem_shard_of(m->table, op->base_key, op->base_len);
    pthread_mutex_lock(&sh->lock);
    res->now_ms = mem_now(m);
    return sh;
}

/* Reads the state of each of op's n keys from sh (locked) into
 * states[] (zeroed when absent or expired; expired entries are dropped),
 * and the live entries into found[]. */
static void mem_load_states(mem_shard_t *sh, const mem_keys_t *keys, int n,
                            int64_t now_ms, mem_entry_t **found,
                            rl_limit_state_t *states)
{
    int i;

    for (i = 0; i < n; i++) {
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

/* Writes states[] back into sh (locked): into the found entries, or into
 * new entries for live states of new keys. Every new entry is allocated
 * before anything is written, so a shortage of memory changes nothing:
 * then "out_of_memory", else NULL. fresh[] holds what was allocated and
 * not linked (the caller frees it). */
static const char *mem_store_states(mem_shard_t *sh, const mem_keys_t *keys,
                                    int n, int64_t now_ms, mem_entry_t **found,
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
                /* two limits with one suffix: the later one wins */
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

/* Decides op under its shard's lock and calls cb once, after unlocking.
 * A shortage of memory fails the whole decision and changes nothing. */
static void mem_decide(rl_store_t *s, const rl_store_op_t *op, rl_store_cb *cb,
                       void *arg)
{
    mem_store_t *m = s->impl;
    mem_keys_t keys;
    mem_shard_t *sh;
    mem_entry_t *found[RL_MAX_LIMITS];
    mem_entry_t *fresh[RL_MAX_LIMITS] = {NULL};
    rl_limit_state_t states[RL_MAX_LIMITS];
    rl_store_result_t res;
    const char *error;
    int i;

    sh = mem_begin(m, op, cb, arg, &keys, &res);
    if (sh == NULL) {
        return;
    }
    mem_load_states(sh, &keys, op->nlimits, res.now_ms, found, states);
    res.allowed = rl_algo_decide(op->limits, op->nlimits, states, res.now_ms,
                                 op->cost, res.limits);
    error = mem_store_states(sh, &keys, op->nlimits, res.now_ms, found, fresh,
                             states);
    pthread_mutex_unlock(&sh->lock);
    for (i = 0; i < op->nlimits; i++) {
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

/* Removes every key of op (state and block alike), then calls cb once. */
static void mem_reset(rl_store_t *s, const rl_store_op_t *op, rl_store_cb *cb,
                      void *arg)
{
    mem_store_t *m = s->impl;
    mem_keys_t keys;
    mem_shard_t *sh;
    rl_store_result_t res;
    int i;

    sh = mem_begin(m, op, cb, arg, &keys, &res);
    if (sh == NULL) {
        return;
    }
    for (i = 0; i < op->nlimits; i++) {
        mem_entry_t **link;

        if (mem_find(sh, keys.key[i], keys.len[i], keys.hash[i], &link) !=
            NULL) {
            mem_unlink(sh, link);
        }
    }
    pthread_mutex_unlock(&sh->lock);
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
