#ifndef RL_TOPKEYS_H
#define RL_TOPKEYS_H

#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>

/* The top limited keys of one worker: a space-saving summary of decided
 * keys per policy, in fixed arrays allocated once (rl_topkeys_new), so a
 * decision allocates nothing and takes no lock.
 *
 * Threads: the owning worker is the only writer (rl_topkeys_record).
 * Any thread may read (rl_topkeys_read) while it writes: every field is
 * an atomic read and written with relaxed order, each entry is guarded
 * by a sequence counter (odd while the worker rewrites it), and a reader
 * retries an entry whose counter moved. Policies are known by their
 * metrics slot (policy.h stats_slot: one per policy name for the life
 * of the process), so every policy is tracked; a policy's table is
 * allocated on its first decision on the worker (the only allocation
 * here) and kept until rl_topkeys_free.
 *
 * Memory: RL_TOPKEYS_POLICIES pointers, and per policy decided on the
 * worker RL_TOPKEYS_ENTRIES entries of about 660 bytes (rl_topkeys_bytes):
 * about 170 kB per policy per worker once its table is full.
 *
 * Counts: one bucket per wall-clock minute, RL_TOPKEYS_MINUTES of them,
 * summed over the window asked for. An entry counts exactly the
 * decisions of its key since the key (re)entered the summary; when a key
 * enters a full table it takes the place of the entry of least weight
 * (decisions since insertion plus the weight it inherited), so its true
 * counts may exceed the reported ones by at most that inherited weight,
 * which is at most the smallest weight tracked at that moment. */

#define RL_TOPKEYS_POLICIES 4096 /* metrics slots (policy names) tracked */
#define RL_TOPKEYS_ENTRIES 256   /* keys tracked per policy and worker */
#define RL_TOPKEYS_MINUTES 60    /* the longest window */
#define RL_TOPKEYS_KEY_MAX 120   /* longer key tails are not tracked */

typedef struct rl_topkeys rl_topkeys_t;
struct rl_policy;

/* One key as read: the policy's encoded key values joined by '|' (as in
 * the store key), its counts over the window, the wall-clock second of
 * its last denial (0: none) and whether its last verdict was a block
 * still running. */
typedef struct rl_topkeys_row {
    uint64_t hash;
    char key[RL_TOPKEYS_KEY_MAX + 1];
    uint64_t denied;
    uint64_t allowed;
    int64_t last_denied_at;
    int blocked;
} rl_topkeys_row_t;

/* The calling worker's summary (NULL off a worker thread). */
extern _Thread_local rl_topkeys_t *rl_topkeys_self;

/* An empty summary (no policy table yet), or NULL. The caller owns it
 * (free with rl_topkeys_free once no thread reads it). Any thread. */
rl_topkeys_t *rl_topkeys_new(void);
void rl_topkeys_free(rl_topkeys_t *t);

/* The bytes t holds now: its directory and every policy table. Any
 * thread. */
size_t rl_topkeys_bytes(const rl_topkeys_t *t);

/* Counts one decided key of policy (its metrics slot, 0 to
 * RL_TOPKEYS_POLICIES - 1) in t: key, len bytes, the policy's encoded
 * key values; denied or allowed; now_ms wall clock; blocked_until_ms the
 * end of a running block (0: none). A key too long, a slot out of range
 * or a table that cannot be allocated is not counted. Owning worker
 * only. */
void rl_topkeys_record(rl_topkeys_t *t, int policy, const char *key, size_t len,
                       int denied, int64_t now_ms, int64_t blocked_until_ms);

/* Adds t's keys of policy (its metrics slot) over the last window_min
 * minutes (1..60) up to now_ms into rows (n used, at most max; a key
 * already there is summed, the later last_denied_at kept, blocked
 * or'ed). Returns the new n. Any thread. */
int rl_topkeys_read(const rl_topkeys_t *t, int policy, int window_min,
                    int64_t now_ms, rl_topkeys_row_t *rows, int n, int max);

/* The key values of policy p in its base key (len bytes, as
 * rl_policy_key builds it): what follows the policy name, without a
 * closing '}'; their length in *tlen. Pure. */
const char *rl_topkeys_key_values(const struct rl_policy *p, const char *key,
                                  size_t len, size_t *tlen);

/* Sorts rows by denied, then allowed, descending. Pure. */
void rl_topkeys_sort(rl_topkeys_row_t *rows, int n);

#endif
