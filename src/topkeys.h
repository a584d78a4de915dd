#ifndef RL_TOPKEYS_H
#define RL_TOPKEYS_H

#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>

/* The top limited keys of one worker: a space-saving summary of denied
 * keys per policy, in fixed tables, so a decision allocates nothing past
 * a policy's first denial and takes no lock.
 *
 * Threads: the owning worker is the only writer (rl_topkeys_record).
 * Any thread may read (rl_topkeys_read, rl_topkeys_tracked) while it
 * writes: every field is an atomic read and written with relaxed order,
 * each entry is guarded by a sequence counter (odd while the worker
 * rewrites it), each table by a generation (odd while the worker hands
 * it to another policy), and a reader retries an entry whose counter
 * moved and stops at a table whose generation moved.
 *
 * Tables: policies are known by their metrics slot (policy.h
 * stats_slot: one per policy name for the life of the process). A
 * policy's table is allocated on its first denial on the worker; a
 * policy that only allows costs nothing. At most RL_TOPKEYS_TABLES
 * tables per worker: past that a denied policy takes over the table of
 * a policy that has counted nothing that any window can still show
 * (61 to 75 minutes idle, see RL_TOPKEYS_QUARTERS), cleared; else it is
 * not tracked, rl_topkeys_tracked says so over the windows that include
 * that denial, and ratelimitd_top_keys_untracked_total counts it.
 *
 * Memory: a directory of 20,568 bytes, plus per table
 * RL_TOPKEYS_ENTRIES entries of 296 bytes and 20 bytes of the writer's
 * own per entry: 80,968 bytes; every table allocated, 830,248 bytes,
 * under RL_TOPKEYS_BUDGET (rl_topkeys_bytes; checked when compiled).
 *
 * Counts: a key enters its policy's table on a denial; from then on its
 * denied and allowed decisions are counted, one bucket per wall-clock
 * minute for the last RL_TOPKEYS_FINE minutes, and one per wall-clock
 * quarter-hour (:00, :15, :30, :45) for the RL_TOPKEYS_QUARTERS before
 * the current one. A window of up to 15 minutes is exact to the minute;
 * a longer one is summed from the start of the quarter-hour its first
 * minute falls in (rl_topkeys_span). When a key enters a full table it
 * takes the place of the entry of least weight (denials since insertion
 * plus the weight it inherited); its true denied count may exceed the
 * one reported by at most that inherited weight: the larger of the
 * weight it replaced and the largest weight the table evicted in the
 * quarter-hours a window can reach (in a table that has not aged a key
 * out: the smallest weight tracked at that moment). Its allowed count
 * starts when it entered. */

#define RL_TOPKEYS_POLICIES 4096 /* metrics slots (policy names) tracked */
#define RL_TOPKEYS_ENTRIES 256   /* keys tracked per policy and worker */
#define RL_TOPKEYS_TABLES 10     /* policy tables per worker */
/* Bytes per worker for the directory and every table: 1 MB less 192 kB
 * left for GET /v1/admin/top's answer (its merge buffer of 256 rows of
 * 168 bytes a worker, and the JSON of 100 keys: about 100 kB of RSS
 * measured) and the allocator, so the summary and the API stay under
 * 1 MB of RSS per worker. */
#define RL_TOPKEYS_BUDGET ((1024 - 192) * 1024)
#define RL_TOPKEYS_MINUTES 60  /* the longest window asked */
#define RL_TOPKEYS_FINE 15     /* one-minute buckets: exact windows */
#define RL_TOPKEYS_QUARTERS 4  /* quarter-hour buckets before the current */
#define RL_TOPKEYS_KEY_MAX 120 /* longer key tails are not tracked */

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
 * RL_TOPKEYS_POLICIES - 1) in t: layout, the policy's key_layout (a
 * table counted under another is emptied first: a reload changed the
 * key fields, and its keys would read as the new ones); key, len bytes,
 * the policy's encoded key values; denied or allowed; now_ms wall clock;
 * blocked_until_ms the end of a running block (0: none). An allowed key not in
 * its policy's table, a key too long or a slot out of range is not counted; nor
 * is a denial no table can take (counted in ratelimitd_top_keys_untracked_total
 * when the calling thread has rl_stats_self). Owning worker only. */
void rl_topkeys_record(rl_topkeys_t *t, int policy, uint32_t layout,
                       const char *key, size_t len, int denied, int64_t now_ms,
                       int64_t blocked_until_ms);

/* The minutes a window of window_min minutes (1..60) sums at now_ms:
 * window_min up to RL_TOPKEYS_FINE, else back to the start of the
 * quarter-hour the window's first minute falls in (window_min to
 * window_min + 14). The current minute counts as one. Pure. */
int rl_topkeys_span(int window_min, int64_t now_ms);

/* Adds t's keys of policy (its metrics slot), counted under layout (its
 * key_layout; none under another), over the window of
 * window_min minutes (1..60, rl_topkeys_span) up to now_ms into rows (n
 * used, at most max; a key already there is summed, the later
 * last_denied_at kept, blocked or'ed). Returns the new n. Any thread. */
int rl_topkeys_read(const rl_topkeys_t *t, int policy, uint32_t layout,
                    int window_min, int64_t now_ms, rl_topkeys_row_t *rows,
                    int n, int max);

/* 0 when t could not count a denial of policy (no table free) within
 * the window of window_min minutes up to now_ms, else 1. Any thread. */
int rl_topkeys_tracked(const rl_topkeys_t *t, int policy, int window_min,
                       int64_t now_ms);

/* The key values of policy p in its base key (len bytes, as
 * rl_policy_key builds it): what follows the policy name, without a
 * closing '}'; their length in *tlen. Pure. */
const char *rl_topkeys_key_values(const struct rl_policy *p, const char *key,
                                  size_t len, size_t *tlen);

/* Sorts rows by denied, then allowed, descending. Pure. */
void rl_topkeys_sort(rl_topkeys_row_t *rows, int n);

#endif
