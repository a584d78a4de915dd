/* The exact local deny cache (see deny_cache.h and docs/algorithms.md). */
#include "deny_cache.h"

#include <stdlib.h>
#include <string.h>

_Thread_local rl_deny_cache_t *rl_deny_cache_self;

/* Bumped by rl_deny_cache_invalidate_all; each cache compares it with the
 * value it last saw (a relaxed load of a line that is almost never
 * written). */
static uint64_t invalidate_epoch;

struct rl_deny_cache {
    rl_deny_entry_t *slots; /* nbuckets * RL_DENY_WAYS */
    size_t mask;            /* nbuckets - 1 */
    size_t used;
    int64_t max_ttl_us;
    uint64_t gen;
    uint64_t epoch;
};

/* FNV-1a over the key and the test flag. */
static uint64_t deny_hash(const char *key, size_t len, int test)
{
    uint64_t h = 1469598103934665603ULL;
    size_t i;

    for (i = 0; i < len; i++) {
        h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
    }
    h = (h ^ (unsigned)(test ? 1 : 0)) * 1099511628211ULL;
    return h;
}

rl_deny_cache_t *rl_deny_cache_new(size_t entries, int64_t max_ttl_us)
{
    rl_deny_cache_t *c;
    size_t nb = 1;

    if (entries == 0) {
        return NULL;
    }
    while (nb * RL_DENY_WAYS < entries) {
        nb *= 2;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    /* calloc: untouched pages of a large table cost no memory. */
    c->slots = calloc(nb * RL_DENY_WAYS, sizeof(*c->slots));
    if (c->slots == NULL) {
        free(c);
        return NULL;
    }
    c->mask = nb - 1;
    c->max_ttl_us = max_ttl_us;
    c->epoch = __atomic_load_n(&invalidate_epoch, __ATOMIC_RELAXED);
    return c;
}

void rl_deny_cache_free(rl_deny_cache_t *c)
{
    if (c == NULL) {
        return;
    }
    free(c->slots);
    free(c);
}

void rl_deny_cache_clear(rl_deny_cache_t *c, uint64_t gen)
{
    size_t i;

    if (c->used > 0) {
        for (i = 0; i <= c->mask; i++) {
            rl_deny_entry_t *b = &c->slots[i * RL_DENY_WAYS];
            int w;
            for (w = 0; w < RL_DENY_WAYS; w++) {
                b[w].until_us = 0;
            }
        }
    }
    c->used = 0;
    c->gen = gen;
}

size_t rl_deny_cache_size(const rl_deny_cache_t *c)
{
    return c != NULL ? c->used : 0;
}

size_t rl_deny_cache_capacity(const rl_deny_cache_t *c)
{
    return c != NULL ? (c->mask + 1) * RL_DENY_WAYS : 0;
}

/* Empties the cache if an invalidation happened since it last looked. */
static void deny_check_epoch(rl_deny_cache_t *c)
{
    uint64_t e = __atomic_load_n(&invalidate_epoch, __ATOMIC_ACQUIRE);

    if (e != c->epoch) {
        rl_deny_cache_clear(c, c->gen);
        c->epoch = e;
    }
}

/* The slot holding (key, test) in its bucket, or NULL. */
static rl_deny_entry_t *deny_find(rl_deny_cache_t *c, uint64_t h,
                                  const char *key, size_t len, int test)
{
    rl_deny_entry_t *b = &c->slots[(h & c->mask) * RL_DENY_WAYS];
    int w;

    for (w = 0; w < RL_DENY_WAYS; w++) {
        rl_deny_entry_t *e = &b[w];
        if (e->until_us != 0 && e->hash == h && e->keylen == len &&
            e->test == (test ? 1 : 0) && memcmp(e->key, key, len) == 0) {
            return e;
        }
    }
    return NULL;
}

const rl_deny_entry_t *rl_deny_cache_get(rl_deny_cache_t *c, uint64_t gen,
                                         const char *key, size_t len, int test,
                                         int64_t cost, int64_t now_us)
{
    rl_deny_entry_t *e;

    if (c == NULL || len > RL_DENY_KEY_MAX || c->used == 0) {
        return NULL;
    }
    deny_check_epoch(c);
    if (gen != c->gen) {
        return NULL;
    }
    e = deny_find(c, deny_hash(key, len, test), key, len, test);
    if (e == NULL) {
        return NULL;
    }
    if (e->until_us <= now_us) {
        e->until_us = 0;
        c->used--;
        return NULL;
    }
    return cost == e->cost && e->gen == gen ? e : NULL;
}

int64_t rl_deny_until_us(int64_t sent_us, int64_t retry_after_ms,
                         int64_t max_ttl_us)
{
    int64_t ttl;

    if (retry_after_ms <= 1) {
        return 0;
    }
    ttl = (retry_after_ms - 1) * 1000;
    ttl -= ttl / 1000;
    if (ttl > max_ttl_us) {
        ttl = max_ttl_us;
    }
    return ttl > 0 ? sent_us + ttl : 0;
}

void rl_deny_cache_put(rl_deny_cache_t *c, uint64_t gen, const char *key,
                       size_t len, int test, rl_deny_entry_t *e)
{
    uint64_t h;
    rl_deny_entry_t *b;
    rl_deny_entry_t *slot;
    int64_t until;
    int w;

    if (c == NULL || len > RL_DENY_KEY_MAX) {
        return;
    }
    deny_check_epoch(c);
    until = rl_deny_until_us(e->sent_us,
                             e->serve_ms > 0 ? e->serve_ms : e->retry_after_ms,
                             c->max_ttl_us);
    if (gen != c->gen || until == 0 || e->epoch != c->epoch) {
        return;
    }
    h = deny_hash(key, len, test);
    slot = deny_find(c, h, key, len, test);
    if (slot == NULL) {
        b = &c->slots[(h & c->mask) * RL_DENY_WAYS];
        slot = &b[0];
        for (w = 0; w < RL_DENY_WAYS; w++) {
            if (b[w].until_us == 0) {
                slot = &b[w];
                break;
            }
            if (b[w].until_us < slot->until_us) {
                slot = &b[w];
            }
        }
        if (slot->until_us == 0) {
            c->used++;
        }
    }
    *slot = *e;
    slot->hash = h;
    slot->gen = gen;
    slot->until_us = until;
    slot->test = test ? 1 : 0;
    slot->keylen = (uint16_t)len;
    memcpy(slot->key, key, len);
}

void rl_deny_cache_drop(rl_deny_cache_t *c, const char *key, size_t len,
                        int test)
{
    rl_deny_entry_t *e;

    if (c == NULL || len > RL_DENY_KEY_MAX) {
        return;
    }
    e = deny_find(c, deny_hash(key, len, test), key, len, test);
    if (e != NULL) {
        e->until_us = 0;
        c->used--;
    }
}

void rl_deny_cache_invalidate_all(void)
{
    __atomic_add_fetch(&invalidate_epoch, 1, __ATOMIC_RELEASE);
}

uint64_t rl_deny_cache_epoch(void)
{
    return __atomic_load_n(&invalidate_epoch, __ATOMIC_ACQUIRE);
}
