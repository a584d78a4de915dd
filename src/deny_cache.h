#ifndef RL_DENY_CACHE_H
#define RL_DENY_CACHE_H

#include <stddef.h>
#include <stdint.h>

/* The exact local deny cache. Each worker remembers keys that the store
 * denied until a known time and answers them itself until then, without
 * a round trip. Exact because, before that time, a key's state in the
 * store can only become more restrictive (docs/algorithms.md proves it).
 *
 * Per worker, bounded, no lock: a set-associative table (4 ways per
 * bucket, the entry ending soonest is evicted). Times are the local
 * monotonic clock in microseconds, passed in (pure: tests inject them).
 * An entry serves requests of the same key, the same limit set (normal or
 * test), the same conf generation and the same cost: a larger cost would
 * be denied too, but it may wait longer, or trip a limit with a block
 * that the smaller one did not, and only the store knows. */

#define RL_DENY_KEY_MAX 120 /* longer base keys are not cached */
#define RL_DENY_WAYS 4

typedef struct rl_deny_entry {
    uint64_t hash;
    uint64_t gen;      /* conf generation that decided it */
    int64_t until_us;  /* serve until (monotonic); 0 = empty slot */
    int64_t sent_us;   /* monotonic time the store call was sent */
    uint64_t epoch;    /* rl_deny_cache_epoch() when it was sent */
    int64_t now_ms;    /* the store's clock at the denial */
    int64_t cost;      /* the denied cost */
    int64_t remaining; /* the verdict's limit, as decided */
    int64_t reset_after_ms;
    int64_t retry_after_ms;
    int64_t serve_ms; /* answered for this long from sent_us (0: retry's) */
    int16_t pick;     /* index of the limit the verdict describes */
    uint8_t blocked;
    uint8_t test;
    uint16_t keylen;
    char key[RL_DENY_KEY_MAX];
} rl_deny_entry_t;

typedef struct rl_deny_cache rl_deny_cache_t;

/* A cache of about `entries` keys (rounded up to a power of two, at
 * least 4) whose entries live at most max_ttl_us. NULL if entries is 0
 * or memory runs out. */
rl_deny_cache_t *rl_deny_cache_new(size_t entries, int64_t max_ttl_us);
void rl_deny_cache_free(rl_deny_cache_t *c);

/* Empties the cache and sets the conf generation it serves. */
void rl_deny_cache_clear(rl_deny_cache_t *c, uint64_t gen);

/* Slots in use (expired entries not yet reused included), and capacity. */
size_t rl_deny_cache_size(const rl_deny_cache_t *c);
size_t rl_deny_cache_capacity(const rl_deny_cache_t *c);

/* The entry that denies (key, test) for a request of cost at now_us
 * under conf generation gen, or NULL. The entry stays owned by the
 * cache and is valid until the next call on it. */
const rl_deny_entry_t *rl_deny_cache_get(rl_deny_cache_t *c, uint64_t gen,
                                         const char *key, size_t len, int test,
                                         int64_t cost, int64_t now_us);

/* Remembers a denial: e's verdict fields, sent_us, epoch, now_ms, cost
 * and retry_after_ms must be set; key, hash, gen and until_us are filled
 * here. Ignored when the key is too long, gen is not the cache's, or the
 * denial is too short to be worth it (see rl_deny_until_us). */
void rl_deny_cache_put(rl_deny_cache_t *c, uint64_t gen, const char *key,
                       size_t len, int test, rl_deny_entry_t *e);

/* Forgets (key, test): a cost-0 peek saw the store's state. */
void rl_deny_cache_drop(rl_deny_cache_t *c, const char *key, size_t len,
                        int test);

/* Until when (local monotonic) a denial may be served from the cache:
 * the store call was sent at sent_us, so the store's clock read the
 * denial's now_ms after that; retry_after_ms is rounded up to whole ms,
 * so 1 ms comes off, and 1/1000 more for the two clocks' rate difference.
 * Capped at max_ttl_us; 0 (do not cache) when nothing is left. Pure. */
int64_t rl_deny_until_us(int64_t sent_us, int64_t retry_after_ms,
                         int64_t max_ttl_us);

/* Makes every worker's cache empty itself before its next lookup: an
 * admin reset made some key less restrictive. Any thread. A denial whose
 * store call was sent before the invalidation (its epoch is older) is
 * not remembered. */
void rl_deny_cache_invalidate_all(void);
uint64_t rl_deny_cache_epoch(void);

/* The calling worker's cache (set by the worker); NULL elsewhere. */
extern _Thread_local rl_deny_cache_t *rl_deny_cache_self;

#endif
