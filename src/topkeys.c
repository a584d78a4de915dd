/* The top limited keys summary (topkeys.h): per policy a table of
 * RL_TOPKEYS_ENTRIES keys with minute and quarter-hour counts, written by
 * its worker alone and read by any thread through per-entry sequence
 * counters and per-table generations; at most RL_TOPKEYS_TABLES tables
 * per worker, handed on from policies that went idle. */
#include "topkeys.h"

#include <stdlib.h>
#include <string.h>
#include "policy.h"
#include "stats.h"

#define TK_WORDS ((RL_TOPKEYS_KEY_MAX + 7) / 8)
#define TK_READ_TRIES 16
#define TK_FINE RL_TOPKEYS_FINE
#define TK_NQ RL_TOPKEYS_QUARTERS
/* A quarter-hour bucket sums the minute buckets of one quarter-hour, so
 * the current quarter-hour is always in the minute buckets. */
#define TK_QMIN 15
#define TK_QUARTER(min) ((min) / TK_QMIN)

_Static_assert(TK_FINE >= TK_QMIN, "a quarter-hour fits the minute buckets");
_Static_assert(TK_NQ *TK_QMIN >= RL_TOPKEYS_MINUTES - 1,
               "the longest window, rounded to quarter-hours, is kept");

/* One tracked key. Every field is atomic: the reader copies it while the
 * worker may be writing it (seq odd), and retries then. The minute
 * buckets hold the RL_TOPKEYS_FINE minutes up to last_min (minute m at
 * m % TK_FINE), the quarter-hour ones the TK_NQ quarter-hours before
 * last_min's (quarter q at q % TK_NQ). */
typedef struct tk_entry {
    _Atomic int64_t blocked_until_ms;
    _Atomic uint32_t seq;
    _Atomic uint32_t last_min;      /* the minute its buckets run to */
    _Atomic uint32_t klen;          /* key length + 1; 0: empty */
    _Atomic uint32_t last_denied_s; /* 0: none */
    _Atomic uint64_t key[TK_WORDS];
    _Atomic uint32_t denied[TK_FINE];
    _Atomic uint32_t allowed[TK_FINE];
    _Atomic uint32_t qdenied[TK_NQ];
    _Atomic uint32_t qallowed[TK_NQ];
} tk_entry_t;

_Static_assert(sizeof(tk_entry_t) <= 300, "an entry stays under 300 bytes");

/* One policy's table. The w* arrays are the worker's own contiguous copy
 * of what it scans on every decision, and ev* the largest weight it
 * evicted per quarter-hour (the error bound's floor); no other thread
 * reads them. */
typedef struct tk_table {
    _Atomic int policy;      /* the metrics slot it counts for */
    _Atomic uint32_t layout; /* the policy's key fields (rl_policy_t) */
    _Atomic uint32_t gen;    /* odd while handed to another policy */
    uint32_t last_min;       /* the minute it last counted */
    uint32_t evq[TK_NQ + 1];
    uint64_t evw[TK_NQ + 1];
    uint64_t whash[RL_TOPKEYS_ENTRIES];
    uint64_t wweight[RL_TOPKEYS_ENTRIES];
    uint32_t wmin[RL_TOPKEYS_ENTRIES];
    tk_entry_t e[RL_TOPKEYS_ENTRIES];
} tk_table_t;

/* The tables, each published once (release) and kept until
 * rl_topkeys_free; by metrics slot the table's index + 1 (0: none) and
 * the minute of its last denial no table could take (0: none). */
struct rl_topkeys {
    _Atomic(tk_table_t *) tables[RL_TOPKEYS_TABLES];
    _Atomic int ntables;
    _Atomic uint32_t refused[RL_TOPKEYS_POLICIES];
    _Atomic uint8_t dir[RL_TOPKEYS_POLICIES];
};

_Static_assert(RL_TOPKEYS_TABLES < 256, "dir holds a table index");
_Static_assert(sizeof(rl_topkeys_t) + RL_TOPKEYS_TABLES * sizeof(tk_table_t) <
                   RL_TOPKEYS_BUDGET,
               "every table allocated fits the budget");
_Static_assert(sizeof(rl_topkeys_t) +
                       (RL_TOPKEYS_TABLES + 1) * sizeof(tk_table_t) >=
                   RL_TOPKEYS_BUDGET,
               "RL_TOPKEYS_TABLES is as many as fit");

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
    for (i = 0; i < RL_TOPKEYS_TABLES; i++) {
        free(LOAD(&t->tables[i]));
    }
    free(t);
}

size_t rl_topkeys_bytes(const rl_topkeys_t *t)
{
    return sizeof(*t) + (size_t)LOAD(&t->ntables) * sizeof(tk_table_t);
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

/* The first minute a window at now can reach: the start of the oldest
 * quarter-hour kept. Counts up to an earlier minute have expired. Pure. */
static uint32_t tk_horizon(uint32_t now)
{
    uint32_t q = TK_QUARTER(now);

    return q > TK_NQ ? (q - TK_NQ) * TK_QMIN : 0;
}

/* Whether counts up to minute last are outside every window at now.
 * Pure. */
static int tk_expired(uint32_t last, uint32_t now)
{
    return last < tk_horizon(now);
}

/* ------------------------------------------------------------------ */
/* Tables: allocated on a policy's first denial, handed on when idle   */
/* ------------------------------------------------------------------ */

/* Gives table s (index i: idle, or policy's own of another key layout)
 * to policy with layout: the old owner loses it, its entries are
 * emptied. Readers that started before see the generation move and
 * stop. Writer only. */
static void tk_hand_over(rl_topkeys_t *t, tk_table_t *s, int i, int policy,
                         uint32_t layout, uint32_t now_min)
{
    uint32_t gen = LOAD(&s->gen);
    int j;

    STORE(&s->gen, gen + 1);
    atomic_thread_fence(memory_order_release);
    STORE(&t->dir[LOAD(&s->policy)], 0);
    STORE(&s->policy, policy);
    STORE(&s->layout, layout);
    for (j = 0; j < RL_TOPKEYS_ENTRIES; j++) {
        STORE(&s->e[j].klen, 0);
    }
    memset(s->whash, 0, sizeof(s->whash));
    memset(s->wweight, 0, sizeof(s->wweight));
    memset(s->evq, 0, sizeof(s->evq));
    memset(s->evw, 0, sizeof(s->evw));
    s->last_min = now_min;
    STORE(&t->dir[policy], (uint8_t)(i + 1));
    atomic_store_explicit(&s->gen, gen + 2, memory_order_release);
}

/* A table for policy, which has none: a new one while fewer than
 * RL_TOPKEYS_TABLES exist, else the longest idle one if its counts left
 * every window; NULL if none (or memory ran out). Writer only. */
static tk_table_t *tk_assign(rl_topkeys_t *t, int policy, uint32_t layout,
                             uint32_t now_min)
{
    int n = LOAD(&t->ntables);
    tk_table_t *s, *best = NULL;
    int i, at = 0;

    if (n < RL_TOPKEYS_TABLES) {
        if ((s = calloc(1, sizeof(*s))) == NULL) {
            return NULL;
        }
        STORE(&s->policy, policy);
        STORE(&s->layout, layout);
        s->last_min = now_min;
        atomic_store_explicit(&t->tables[n], s, memory_order_release);
        STORE(&t->ntables, n + 1);
        STORE(&t->dir[policy], (uint8_t)(n + 1));
        return s;
    }
    for (i = 0; i < n; i++) {
        s = LOAD(&t->tables[i]);
        if (tk_expired(s->last_min, now_min) &&
            (best == NULL || s->last_min < best->last_min)) {
            best = s;
            at = i;
        }
    }
    if (best != NULL) {
        tk_hand_over(t, best, at, policy, layout, now_min);
    }
    return best;
}

/* Notes a denial of policy that no table could take. Writer only. */
static void tk_refuse(rl_topkeys_t *t, int policy, uint32_t now_min)
{
    STORE(&t->refused[policy], now_min);
    if (rl_stats_self != NULL) {
        RL_STAT_INC(rl_stats_self, top_keys_untracked);
    }
}

/* ------------------------------------------------------------------ */
/* Entries: space-saving over denials                                  */
/* ------------------------------------------------------------------ */

/* The index of hash in s, or -1. Writer only. */
static int tk_lookup(const tk_table_t *s, uint64_t hash)
{
    int i;

    for (i = 0; i < RL_TOPKEYS_ENTRIES; i++) {
        if (s->whash[i] == hash) {
            return i;
        }
    }
    return -1;
}

/* The entry a new key takes: an empty or expired one, else the least
 * weight. Writer only. */
static int tk_victim(const tk_table_t *s, uint32_t now_min)
{
    uint32_t horizon = tk_horizon(now_min);
    uint64_t least = UINT64_MAX;
    int i, best = 0;

    for (i = 0; i < RL_TOPKEYS_ENTRIES; i++) {
        uint64_t w = s->wweight[i];

        if (s->whash[i] == 0 || s->wmin[i] < horizon) {
            return i;
        }
        if (w < least) {
            least = w;
            best = i;
        }
    }
    return best;
}

/* The largest weight s evicted in the quarter-hours a window can reach
 * at now_min. Writer only. */
static uint64_t tk_floor(const tk_table_t *s, uint32_t now_min)
{
    uint32_t q = TK_QUARTER(now_min);
    uint64_t w = 0;
    int i;

    for (i = 0; i <= TK_NQ; i++) {
        if (s->evq[i] + TK_NQ >= q && s->evw[i] > w) {
            w = s->evw[i];
        }
    }
    return w;
}

/* Starts entry i over for key: it inherits the weight it replaces (a
 * live key's, noted as evicted) or the floor, whichever is larger.
 * Writer only, seq odd. */
static void tk_claim(tk_table_t *s, int i, uint64_t hash, const char *key,
                     size_t len, uint32_t now_min)
{
    tk_entry_t *e = &s->e[i];
    uint64_t words[TK_WORDS];
    uint64_t floor = tk_floor(s, now_min), w = 0;
    uint32_t q = TK_QUARTER(now_min);
    int j, k = (int)(q % (TK_NQ + 1));

    if (s->whash[i] != 0 && !tk_expired(s->wmin[i], now_min)) {
        w = s->wweight[i];
        if (s->evq[k] != q) {
            s->evq[k] = q;
            s->evw[k] = 0;
        }
        s->evw[k] = w > s->evw[k] ? w : s->evw[k];
    }
    s->wweight[i] = w > floor ? w : floor;
    memset(words, 0, sizeof(words));
    memcpy(words, key, len);
    for (j = 0; j < TK_WORDS; j++) {
        STORE(&e->key[j], words[j]);
    }
    for (j = 0; j < TK_FINE; j++) {
        STORE(&e->denied[j], 0);
        STORE(&e->allowed[j], 0);
    }
    for (j = 0; j < TK_NQ; j++) {
        STORE(&e->qdenied[j], 0);
        STORE(&e->qallowed[j], 0);
    }
    STORE(&e->klen, (uint32_t)len + 1);
    STORE(&e->last_denied_s, 0);
    STORE(&e->blocked_until_ms, 0);
    STORE(&e->last_min, now_min);
    s->whash[i] = hash;
    s->wmin[i] = now_min;
}

/* Moves entry e's buckets on from minute last to now: the quarter-hour
 * of last is summed into its bucket once it is over, the quarter-hours
 * and minutes skipped are cleared. Writer only, seq odd. */
static void tk_advance(tk_entry_t *e, uint32_t last, uint32_t now)
{
    uint32_t q = TK_QUARTER(last), m, d = 0, a = 0;

    if (TK_QUARTER(now) > q) {
        for (m = q * TK_QMIN; m <= last; m++) {
            d += LOAD(&e->denied[m % TK_FINE]);
            a += LOAD(&e->allowed[m % TK_FINE]);
        }
        STORE(&e->qdenied[q % TK_NQ], d);
        STORE(&e->qallowed[q % TK_NQ], a);
        for (q++; q < TK_QUARTER(now) && q <= TK_QUARTER(last) + TK_NQ; q++) {
            STORE(&e->qdenied[q % TK_NQ], 0);
            STORE(&e->qallowed[q % TK_NQ], 0);
        }
    }
    for (m = last + 1; m <= now && m <= last + TK_FINE; m++) {
        STORE(&e->denied[m % TK_FINE], 0);
        STORE(&e->allowed[m % TK_FINE], 0);
    }
}

/* Counts a decision in entry i of s (fresh: it starts over for key).
 * Writer only. */
static void tk_count(tk_table_t *s, int i, int fresh, uint64_t hash,
                     const char *key, size_t len, int denied, int64_t now_ms,
                     int64_t blocked_until_ms)
{
    uint32_t now_min = (uint32_t)(now_ms / 60000);
    tk_entry_t *e = &s->e[i];
    uint32_t m, seq = LOAD(&e->seq);

    STORE(&e->seq, seq + 1);
    atomic_thread_fence(memory_order_release);
    if (fresh) {
        tk_claim(s, i, hash, key, len, now_min);
    } else if (now_min > s->wmin[i]) {
        tk_advance(e, s->wmin[i], now_min);
        s->wmin[i] = now_min;
        STORE(&e->last_min, now_min);
    }
    m = s->wmin[i] % TK_FINE;
    if (denied) {
        STORE(&e->denied[m], LOAD(&e->denied[m]) + 1);
        STORE(&e->last_denied_s, (uint32_t)(now_ms / 1000));
        s->wweight[i]++;
    } else {
        STORE(&e->allowed[m], LOAD(&e->allowed[m]) + 1);
    }
    STORE(&e->blocked_until_ms, blocked_until_ms);
    atomic_store_explicit(&e->seq, seq + 2, memory_order_release);
    if (now_min > s->last_min) {
        s->last_min = now_min;
    }
}

void rl_topkeys_record(rl_topkeys_t *t, int policy, uint32_t layout,
                       const char *key, size_t len, int denied, int64_t now_ms,
                       int64_t blocked_until_ms)
{
    uint32_t now_min = (uint32_t)(now_ms / 60000);
    tk_table_t *s;
    uint64_t hash;
    unsigned d;
    int i, fresh = 0;

    if (t == NULL || len > RL_TOPKEYS_KEY_MAX || policy < 0 ||
        policy >= RL_TOPKEYS_POLICIES) {
        return;
    }
    d = LOAD(&t->dir[policy]);
    if (d != 0) {
        s = LOAD(&t->tables[d - 1]);
        if (LOAD(&s->layout) != layout) {
            /* A reload changed its key fields: the keys read otherwise. */
            tk_hand_over(t, s, (int)d - 1, policy, layout, now_min);
        }
    } else if (!denied) {
        return;
    } else if ((s = tk_assign(t, policy, layout, now_min)) == NULL) {
        tk_refuse(t, policy, now_min);
        return;
    }
    hash = tk_hash(key, len);
    if ((i = tk_lookup(s, hash)) < 0) {
        if (!denied) {
            return;
        }
        i = tk_victim(s, now_min);
        fresh = 1;
    }
    tk_count(s, i, fresh, hash, key, len, denied, now_ms, blocked_until_ms);
}

/* ------------------------------------------------------------------ */
/* Reading: any thread                                                 */
/* ------------------------------------------------------------------ */

/* One entry as copied. */
typedef struct tk_snap {
    uint32_t last, klen, last_denied_s;
    int64_t blocked_until_ms;
    uint64_t words[TK_WORDS];
    uint32_t d[TK_FINE], a[TK_FINE], qd[TK_NQ], qa[TK_NQ];
} tk_snap_t;

/* Copies entry e into *c; -1 when it is empty or kept moving. */
static int tk_copy(const tk_entry_t *e, tk_snap_t *c)
{
    uint32_t s1, s2;
    int tries, j;

    for (tries = 0; tries < TK_READ_TRIES; tries++) {
        s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
        c->klen = LOAD(&e->klen);
        c->last = LOAD(&e->last_min);
        c->last_denied_s = LOAD(&e->last_denied_s);
        c->blocked_until_ms = LOAD(&e->blocked_until_ms);
        for (j = 0; j < TK_WORDS; j++) {
            c->words[j] = LOAD(&e->key[j]);
        }
        for (j = 0; j < TK_FINE; j++) {
            c->d[j] = LOAD(&e->denied[j]);
            c->a[j] = LOAD(&e->allowed[j]);
        }
        for (j = 0; j < TK_NQ; j++) {
            c->qd[j] = LOAD(&e->qdenied[j]);
            c->qa[j] = LOAD(&e->qallowed[j]);
        }
        atomic_thread_fence(memory_order_acquire);
        s2 = LOAD(&e->seq);
        if (s1 == s2 && (s1 & 1) == 0) {
            return c->klen == 0 || c->klen > RL_TOPKEYS_KEY_MAX + 1 ? -1 : 0;
        }
    }
    return -1;
}

/* Adds c's counts of minute m to row (nothing if c does not hold it). */
static void tk_add_minute(const tk_snap_t *c, uint32_t m, rl_topkeys_row_t *row)
{
    if (m <= c->last && m + TK_FINE > c->last) {
        row->denied += c->d[m % TK_FINE];
        row->allowed += c->a[m % TK_FINE];
    }
}

/* Adds c's counts of quarter-hour q, whole, to row. */
static void tk_add_quarter(const tk_snap_t *c, uint32_t q,
                           rl_topkeys_row_t *row)
{
    uint32_t m;

    if (q == TK_QUARTER(c->last)) {
        for (m = q * TK_QMIN; m <= c->last; m++) {
            tk_add_minute(c, m, row);
        }
    } else if (q < TK_QUARTER(c->last) && q + TK_NQ >= TK_QUARTER(c->last)) {
        row->denied += c->qd[q % TK_NQ];
        row->allowed += c->qa[q % TK_NQ];
    }
}

int rl_topkeys_span(int window_min, int64_t now_ms)
{
    uint32_t now_min = (uint32_t)(now_ms / 60000), start;

    if (window_min < 1) {
        window_min = 1;
    }
    if (window_min > RL_TOPKEYS_MINUTES) {
        window_min = RL_TOPKEYS_MINUTES;
    }
    if (window_min <= TK_FINE) {
        return window_min;
    }
    start = now_min - (uint32_t)window_min + 1;
    return (int)(now_min - TK_QUARTER(start) * TK_QMIN + 1);
}

/* Fills row from c over the span minutes up to now_min (span as
 * rl_topkeys_span gives it for window_min). */
static void tk_row(const tk_snap_t *c, int window_min, int span,
                   uint32_t now_min, int64_t now_ms, rl_topkeys_row_t *row)
{
    uint32_t start = now_min - (uint32_t)span + 1, m, q;

    row->denied = row->allowed = 0;
    if (window_min <= TK_FINE) {
        for (m = start; m <= now_min; m++) {
            tk_add_minute(c, m, row);
        }
    } else {
        for (q = TK_QUARTER(start); q < TK_QUARTER(now_min); q++) {
            tk_add_quarter(c, q, row);
        }
        for (m = TK_QUARTER(now_min) * TK_QMIN; m <= now_min; m++) {
            tk_add_minute(c, m, row);
        }
    }
    memcpy(row->key, c->words, c->klen - 1);
    row->key[c->klen - 1] = '\0';
    row->hash = tk_hash(row->key, c->klen - 1);
    row->last_denied_at = c->last_denied_s;
    row->blocked = c->blocked_until_ms > now_ms;
}

/* Adds row into rows (n used, at most max): summed into the same key's
 * row, else appended. Returns the new n. */
static int tk_merge(rl_topkeys_row_t *rows, int n, int max,
                    const rl_topkeys_row_t *row)
{
    int j;

    for (j = 0; j < n && rows[j].hash != row->hash; j++) {
    }
    if (j < n) {
        rows[j].denied += row->denied;
        rows[j].allowed += row->allowed;
        if (row->last_denied_at > rows[j].last_denied_at) {
            rows[j].last_denied_at = row->last_denied_at;
        }
        rows[j].blocked |= row->blocked;
    } else if (n < max) {
        rows[n++] = *row;
    }
    return n;
}

/* policy's table in t if it has one (generation in *gen), else NULL. */
static const tk_table_t *tk_table_of(const rl_topkeys_t *t, int policy,
                                     uint32_t layout, uint32_t *gen)
{
    const tk_table_t *s;
    unsigned d;

    if (t == NULL || policy < 0 || policy >= RL_TOPKEYS_POLICIES ||
        (d = LOAD(&t->dir[policy])) == 0 ||
        (s = atomic_load_explicit(&t->tables[d - 1], memory_order_acquire)) ==
            NULL) {
        return NULL;
    }
    *gen = atomic_load_explicit(&s->gen, memory_order_acquire);
    return (*gen & 1) == 0 && LOAD(&s->policy) == policy &&
                   LOAD(&s->layout) == layout
               ? s
               : NULL;
}

int rl_topkeys_read(const rl_topkeys_t *t, int policy, uint32_t layout,
                    int window_min, int64_t now_ms, rl_topkeys_row_t *rows,
                    int n, int max)
{
    uint32_t now_min = (uint32_t)(now_ms / 60000), gen = 0;
    int span = rl_topkeys_span(window_min, now_ms);
    const tk_table_t *s = tk_table_of(t, policy, layout, &gen);
    rl_topkeys_row_t row;
    tk_snap_t c;
    int i;

    for (i = 0; s != NULL && i < RL_TOPKEYS_ENTRIES; i++) {
        if (tk_copy(&s->e[i], &c) != 0) {
            continue;
        }
        /* Handed to another policy meanwhile: what follows is not ours. */
        if (LOAD(&s->gen) != gen) {
            break;
        }
        tk_row(&c, window_min, span, now_min, now_ms, &row);
        if (row.denied != 0 || row.allowed != 0) {
            n = tk_merge(rows, n, max, &row);
        }
    }
    return n;
}

int rl_topkeys_tracked(const rl_topkeys_t *t, int policy, int window_min,
                       int64_t now_ms)
{
    uint32_t now_min = (uint32_t)(now_ms / 60000), r;

    if (t == NULL || policy < 0 || policy >= RL_TOPKEYS_POLICIES ||
        (r = LOAD(&t->refused[policy])) == 0) {
        return 1;
    }
    return r + (uint32_t)rl_topkeys_span(window_min, now_ms) <= now_min;
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
