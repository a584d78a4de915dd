#ifndef RL_STORE_CLUSTER_H
#define RL_STORE_CLUSTER_H

#include <event2/event.h>
#include "store.h"

/* The Redis Cluster store: the same decision script and protocol as
 * store_redis, routed by slot. Each worker keeps its own slot map
 * (from CLUSTER SLOTS) and one rl_redis_conn per node, so the hot path
 * takes no lock. MOVED updates the map and retries on the named node;
 * ASK sends ASKING and the command to the named node; TRYAGAIN,
 * CLUSTERDOWN and LOADING retry with a short backoff; a missing function
 * loads the library on that node and retries once; every retry stays within the
 * op's deadline (store.timeout_ms from the call). Connection errors,
 * timeouts and redirections trigger a rate-limited topology refresh,
 * and store.refresh_interval_ms a periodic one. The decisions a worker
 * starts while its loop is busy go to each master as one batched script
 * call (redis_exec.h); a batch that did not run falls back to the decisions
 * one by one. A decision whose parts span slots is decided per slot,
 * reserving and refunding (store_cluster_xm.c). Worker thread only. */

/* Creates the store: one connection per seed node (connecting on the
 * next loop iteration); the first connected node is asked for the slot
 * map. Returns NULL on bad settings (a TLS file that cannot be loaded)
 * or out of memory. conf must outlive the store. */
rl_store_t *rl_store_cluster_new(struct event_base *base,
                                 const rl_conf_store_t *conf);

#endif
