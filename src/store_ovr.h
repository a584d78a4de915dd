#ifndef RL_STORE_OVR_H
#define RL_STORE_OVR_H

#include "redis_conn.h"
#include "store.h"

/* The admin overrides op of the stores (store.h's rl_store_ovr_op_t):
 * the Redis form shared by store_redis.c and store_cluster.c, and the
 * memory store's process-wide table. */

/* The hash key "<prefix>:{overrides}" into buf; its length. */
size_t rl_store_ovr_key(const char *prefix, char *buf, size_t len);

/* Runs op on c: the version poll is a GET, the rest one script (EVAL),
 * so the hash and its version change together. cb is called exactly
 * once, maybe before this returns. Worker thread of c. */
void rl_store_ovr_redis(rl_redis_conn_t *c, const rl_store_ovr_op_t *op,
                        rl_store_ovr_cb *cb, void *arg);

/* Runs op on the process-wide memory table (a mutex, a version counter);
 * cb is called before this returns. Any thread. */
void rl_store_ovr_mem(rl_store_t *s, const rl_store_ovr_op_t *op,
                      rl_store_ovr_cb *cb, void *arg);

/* Fails cb with error (static). */
void rl_store_ovr_fail(rl_store_ovr_cb *cb, void *arg, const char *error);

#endif
