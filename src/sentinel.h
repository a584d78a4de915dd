#ifndef RL_SENTINEL_H
#define RL_SENTINEL_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include "conf.h"
#include "store.h"

/* A Redis Sentinel client for one worker (sentinel.c): it asks the
 * sentinels of store.sentinel for the master (SENTINEL
 * get-master-addr-by-name, each node in turn), checks with ROLE that the
 * node it was told really is a master, and reports a verified master
 * through the callback. It follows a failover by listening to
 * +switch-master on one sentinel (sentinel_sub.c), by asking again when
 * its owner reports a lost connection or a READONLY reply, and by asking
 * once a second anyway (every 100 ms while no master is known).
 * Everything runs on the worker's event loop; nothing blocks. */

typedef struct rl_sentinel rl_sentinel_t;

/* A verified master: host (valid only during the call) and port. Runs on
 * the worker's loop from one of the sentinel's own callbacks, never from
 * inside a call into the sentinel. */
typedef void rl_sentinel_master_fn(void *arg, const char *host, int port);

/* Creates the client for conf->sentinel (which must be set) and starts
 * asking on the next loop iteration. conf must outlive it; tls_ctx
 * (store.tls, NULL for plain TCP) is used for the sentinels and the
 * ROLE check, and referenced, not taken. NULL on bad settings or out of
 * memory. Worker thread only. */
rl_sentinel_t *rl_sentinel_new(struct event_base *base,
                               const rl_conf_store_t *conf, SSL_CTX *tls_ctx,
                               rl_sentinel_master_fn *fn, void *arg);

/* Asks the sentinels again soon (the master's connection was lost, or
 * it answered READONLY). Safe from any callback on the worker's loop;
 * never calls the master callback before it returns. */
void rl_sentinel_reask(rl_sentinel_t *s);

/* Reports each sentinel for /ready as "sentinel host:port", "up" while
 * its query connection is up. Worker thread only. */
void rl_sentinel_nodes(rl_sentinel_t *s, rl_store_node_fn *fn, void *arg);

/* Frees s and its connections. Never from the master callback. */
void rl_sentinel_free(rl_sentinel_t *s);

/* The Sentinel store (store_sentinel.c): the standalone Redis store on
 * the master the sentinels name, replaced by a new one on a failover.
 * Decisions fail with "disconnected" while no master is known. Worker
 * thread only. */
rl_store_t *rl_store_sentinel_new(struct event_base *base,
                                  const rl_conf_store_t *conf);

/* ---- the +switch-master subscription (sentinel_sub.c) ---- */

typedef struct rl_sentinel_sub rl_sentinel_sub_t;

/* A +switch-master message: master name moved to host:port (strings
 * valid during the call); or a (re)subscription, name NULL (a message
 * may have been missed). From the subscriber's own callbacks. */
typedef void rl_sentinel_sub_fn(void *arg, const char *name, const char *host,
                                int port);

/* Subscribes to +switch-master on one of the sentinels of conf (trying
 * each in turn, with backoff) with their AUTH, over TLS with tls_ctx
 * when given (referenced). conf must outlive it. NULL on out of memory.
 * Worker thread only. */
rl_sentinel_sub_t *rl_sentinel_sub_new(struct event_base *base,
                                       const rl_conf_store_t *conf,
                                       SSL_CTX *tls_ctx, rl_sentinel_sub_fn *fn,
                                       void *arg);

/* Closes the subscription and frees sub. Never from its callback. */
void rl_sentinel_sub_free(rl_sentinel_sub_t *sub);

#endif
