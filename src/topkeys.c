/* The top limited keys summary (topkeys.h): per policy a fixed table of
 * RL_TOPKEYS_ENTRIES keys with per-minute counts, written by its worker
 * alone and read by any thread through per-entry sequence counters. */
#include "topkeys.h"

#include <stdlib.h>
#include <string.h>
#include "policy.h"

#define TK_WORDS ((RL_TOPKEYS_KEY_MAX + 7) / 8)
#define TK_READ_TRIES 16

/* One tracked key. Every field is atomic: the reader copies it while the
 * worker may be writing it (seq odd), and retries then. */
typedef struct tk_entry {
    _Atomic uint32_t seq;
    _Atomic uint32_t last_min; /* the minute its buckets run to */
    _Atomic uint64_t hash;     /* 0: empty */
    _Atomic int64_t last_denied_ms;
    _Atomic int64_t blocked_until_ms;
    _Atomic uint32_t keylen;
    _Atomic uint64_t key[TK_WORDS];
    _Atomic uint32_t denied[RL_TOPKEYS_MINUTES];
    _Atomic uint32_t allowed[RL_TOPKEYS_MINUTES];
} tk_entry_t;

/* One policy's table; the w* arrays are the worker's own contiguous copy
 * of what it scans on every decision (never read by another thread). */
typedef struct tk_slot {
    uint64_t whash[RL_TOPKEYS_ENTRIES];
    uint64_t wweight[RL_TOPKEYS_ENTRIES];
    uint32_t wmin[RL_TOPKEYS_ENTRIES];
    tk_entry_t e[RL_TOPKEYS_ENTRIES];
} tk_slot_t;

/* The policy tables by metrics slot, each published once (release)
 * and kept until rl_topkeys_free; the count of those allocated. */
struct rl_topkeys {
    _Atomic(tk_slot_t *) slots[RL_TOPKEYS_POLICIES];
    _Atomic int nslots;
};

_Thread_local rl_topkeys_t *rl_topkeys_self;

#define LOAD(p) atomic_load_explicit((p), memory_order_relaxed)
#define STORE(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)

rl_topkeys_t *rl_topkeys_new(void)
{
    return calloc(1, sizeof(rl_topkeys_t));
}

void rl_topkeys_free(rl_topkeys_t *t)
{
    int i;

    if (t == NULL) {
        return;
    }
    for (i = 0; i < RL_TOPKEYS_POLICIES; i++) {
        free(LOAD(&t->slots[i]));
    }
    free(t);
}

size_t rl_topkeys_bytes(const rl_topkeys_t *t)
{
    return sizeof(*t) + (size_t)LOAD(&t->nslots) * sizeof(tk_slot_t);
}

/* FNV-1a of the key, never 0 (0 marks an empty entry). */
static uint64_t tk_hash(const char *key, size_t len)
{
    uint64_t h = 14695981039346656037ull;
    size_t i;

    for (i = 0; i < len; i++) {
        h = (h ^ (unsigned char)key[i]) * 1099511628211ull;
    }
    return h | 1;
}

/* The table of policy slot i, allocated on first use; NULL when i is
 * out of range or memory ran out. Writer only. */
static tk_slot_t *tk_slot(rl_topkeys_t *t, int i)
{
    tk_slot_t *s;

    if (i < 0 || i >= RL_TOPKEYS_POLICIES) {
        return NULL;
    }
    s = LOAD(&t->slots[i]);
    if (s == NULL && (s = calloc(1, sizeof(*s))) != NULL) {
        atomic_store_explicit(&t->slots[i], s, memory_order_release);
        STORE(&t->nslots, LOAD(&t->nslots) + 1);
    }
    return s;
}

/* The index of hash in s, or of the entry it replaces (the empty or
 * stale one, else the least weight) with *fresh set. Writer only. */
static int tk_find(const tk_slot_t *s, uint64_t hash, uint32_t now_min,
                   int *fresh)
{
    int i, best = 0;
    uint64_t least = UINT64_MAX;

    for (i = 0; i < RL_TOPKEYS_ENTRIES; i++) {
        if (s->whash[i] == hash) {
            *fresh = 0;
            return i;
        }
    }
    *fresh = 1;
    for (i = 0; i < RL_TOPKEYS_ENTRIES; i++) {
        uint64_t w = s->wweight[i];

        if (s->whash[i] == 0 || s->wmin[i] + RL_TOPKEYS_MINUTES <= now_min) {
            w = 0;
        }
        if (w < least) {
            least = w;
            best = i;
        }
    }
    return best;
}

/* Starts entry i over for key, keeping the weight it inherits (0 for an
 * empty or stale one). Writer only, seq odd. */
static void tk_claim(tk_slot_t *s, int i, uint64_t hash, const char *key,
                     size_t len, uint32_t now_min)
{
    tk_entry_t *e = &s->e[i];
    uint64_t words[TK_WORDS];
    int j;

    if (s->whash[i] == 0 || s->wmin[i] + RL_TOPKEYS_MINUTES <= now_min) {
        s->wweight[i] = 0;
    }
    memset(words, 0, sizeof(words));
    memcpy(words, key, len);
    for (j = 0; j < TK_WORDS; j++) {
        STORE(&e->key[j], words[j]);
    }
    for (j = 0; j < RL_TOPKEYS_MINUTES; j++) {
        STORE(&e->denied[j], 0);
        STORE(&e->allowed[j], 0);
    }
    STORE(&e->keylen, (uint32_t)len);
    STORE(&e->hash, hash);
    STORE(&e->last_denied_ms, 0);
    STORE(&e->blocked_until_ms, 0);
    STORE(&e->last_min, now_min);
    s->whash[i] = hash;
    s->wmin[i] = now_min;
}

void rl_topkeys_record(rl_topkeys_t *t, int policy, const char *key, size_t len,
                       int denied, int64_t now_ms, int64_t blocked_until_ms)
{
    uint32_t now_min = (uint32_t)(now_ms / 60000);
    uint64_t hash;
    tk_slot_t *s;
    tk_entry_t *e;
    uint32_t m, seq;
    int i, fresh;

    if (t == NULL || len > RL_TOPKEYS_KEY_MAX ||
        (s = tk_slot(t, policy)) == NULL) {
        return;
    }
    hash = tk_hash(key, len);
    i = tk_find(s, hash, now_min, &fresh);
    e = &s->e[i];
    seq = LOAD(&e->seq);
    STORE(&e->seq, seq + 1);
    atomic_thread_fence(memory_order_release);
    if (fresh) {
        tk_claim(s, i, hash, key, len, now_min);
    }
    /* Clear the minutes passed since the entry was last touched. */
    for (m = s->wmin[i] + 1; m <= now_min && m <= s->wmin[i] + 60; m++) {
        STORE(&e->denied[m % RL_TOPKEYS_MINUTES], 0);
        STORE(&e->allowed[m % RL_TOPKEYS_MINUTES], 0);
    }
    if (now_min > s->wmin[i]) {
        s->wmin[i] = now_min;
        STORE(&e->last_min, now_min);
    }
    m = s->wmin[i] % RL_TOPKEYS_MINUTES;
    if (denied) {
        STORE(&e->denied[m], LOAD(&e->denied[m]) + 1);
        STORE(&e->last_denied_ms, now_ms);
    } else {
        STORE(&e->allowed[m], LOAD(&e->allowed[m]) + 1);
    }
    STORE(&e->blocked_until_ms, blocked_until_ms);
    s->wweight[i]++;
    atomic_store_explicit(&e->seq, seq + 2, memory_order_release);
}

/* Copies entry e's window into row (hash 0: empty, or it kept moving).
 * Any thread. */
static void tk_copy(const tk_entry_t *e, int window_min, uint32_t now_min,
                    int64_t now_ms, rl_topkeys_row_t *row)
{
    uint64_t words[TK_WORDS];
    uint32_t s1, s2, last, len;
    int tries, j, k;

    for (tries = 0; tries < TK_READ_TRIES; tries++) {
        s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
        row->hash = LOAD(&e->hash);
        last = LOAD(&e->last_min);
        len = LOAD(&e->keylen);
        row->last_denied_at = LOAD(&e->last_denied_ms) / 1000;
        row->blocked = LOAD(&e->blocked_until_ms) > now_ms;
        for (j = 0; j < TK_WORDS; j++) {
            words[j] = LOAD(&e->key[j]);
        }
        row->denied = row->allowed = 0;
        for (k = 0; k < window_min; k++) {
            uint32_t minute = now_min - (uint32_t)k;

            if (minute > last || minute + RL_TOPKEYS_MINUTES <= last) {
                continue;
            }
            row->denied += LOAD(&e->denied[minute % RL_TOPKEYS_MINUTES]);
            row->allowed += LOAD(&e->allowed[minute % RL_TOPKEYS_MINUTES]);
        }
        atomic_thread_fence(memory_order_acquire);
        s2 = LOAD(&e->seq);
        if (s1 == s2 && (s1 & 1) == 0) {
            if (len > RL_TOPKEYS_KEY_MAX) {
                len = RL_TOPKEYS_KEY_MAX;
            }
            memcpy(row->key, words, len);
            row->key[len] = '\0';
            return;
        }
    }
    row->hash = 0;
}

int rl_topkeys_read(const rl_topkeys_t *t, int policy, int window_min,
                    int64_t now_ms, rl_topkeys_row_t *rows, int n, int max)
{
    uint32_t now_min = (uint32_t)(now_ms / 60000);
    const tk_slot_t *s = NULL;
    rl_topkeys_row_t row;
    int i, j;

    if (t != NULL && policy >= 0 && policy < RL_TOPKEYS_POLICIES) {
        s = atomic_load_explicit(&t->slots[policy], memory_order_acquire);
    }
    for (i = 0; s != NULL && i < RL_TOPKEYS_ENTRIES; i++) {
        tk_copy(&s->e[i], window_min, now_min, now_ms, &row);
        if (row.hash == 0 || (row.denied == 0 && row.allowed == 0)) {
            continue;
        }
        for (j = 0; j < n && rows[j].hash != row.hash; j++) {
        }
        if (j < n) {
            rows[j].denied += row.denied;
            rows[j].allowed += row.allowed;
            if (row.last_denied_at > rows[j].last_denied_at) {
                rows[j].last_denied_at = row.last_denied_at;
            }
            rows[j].blocked |= row.blocked;
        } else if (n < max) {
            rows[n++] = row;
        }
    }
    return n;
}

/* qsort order: more denied first, then more allowed. */
static int tk_cmp(const void *a, const void *b)
{
    const rl_topkeys_row_t *x = a;
    const rl_topkeys_row_t *y = b;

    if (x->denied != y->denied) {
        return x->denied < y->denied ? 1 : -1;
    }
    if (x->allowed != y->allowed) {
        return x->allowed < y->allowed ? 1 : -1;
    }
    return 0;
}

void rl_topkeys_sort(rl_topkeys_row_t *rows, int n)
{
    qsort(rows, (size_t)n, sizeof(rows[0]), tk_cmp);
}

const char *rl_topkeys_key_values(const struct rl_policy *p, const char *key,
                                  size_t len, size_t *tlen)
{
    int n = p->nkey < RL_MAX_HASH_TAG ? p->nkey : RL_MAX_HASH_TAG;
    size_t end = len;
    size_t i;

    if (p->nhash_tag == 0 && end > 0 && key[end - 1] == '}') {
        end--;
    }
    /* Each value follows a '|'; values are encoded, so hold none. */
    i = end;
    while (n > 0 && i > 0) {
        i--;
        if (key[i] == '|' && --n == 0) {
            i++;
            break;
        }
    }
    *tlen = end - i;
    return key + i;
}
