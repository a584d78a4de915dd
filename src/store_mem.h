#ifndef RL_STORE_MEM_H
#define RL_STORE_MEM_H

#include "store.h"

/* The memory store: one table per process, shared by every worker,
 * split in shards by the hash tag of the key (so all limits of one
 * decision are in one shard and decided under that shard's lock).
 * Entries expire when their state does; a sweep frees them lazily. */

typedef struct rl_mem_table rl_mem_table_t;

/* Creates the shared table. Main thread; free after all workers stopped. */
rl_mem_table_t *rl_mem_table_new(void);
void rl_mem_table_free(rl_mem_table_t *t);
/* Number of stored entries, expired ones not yet swept included. */
size_t rl_mem_table_size(rl_mem_table_t *t);

/* A store handle over the shared table, one per worker. The clock is
 * injectable for tests: now_ms(clock_arg) is used when now_ms is not
 * NULL, else the wall clock. Callbacks run synchronously. */
rl_store_t *rl_store_mem_new(rl_mem_table_t *t, int64_t (*now_ms)(void *),
                             void *clock_arg);

#endif
