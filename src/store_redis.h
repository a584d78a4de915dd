#ifndef RL_STORE_REDIS_H
#define RL_STORE_REDIS_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include "store.h"

/* The Redis store, standalone topology: the decision library (lua/,
 * embedded) run by the executor (redis_exec.h) on one async connection
 * per worker. The library is loaded with FUNCTION LOAD on every connect;
 * a reply that the function is missing reloads it and retries once.
 * Worker thread only. */
rl_store_t *rl_store_redis_new(struct event_base *base,
                               const rl_conf_store_t *conf);

/* Sentinel hook (store_sentinel.c): called from the store's callbacks
 * when its connection is lost or a command is answered READONLY; it must
 * not free the store. */
typedef void rl_store_redis_watch_fn(void *arg);

/* The Redis store on host:port with tls_ctx (NULL: plain TCP;
 * referenced, not taken) instead of store.address and store.tls, and
 * watch (may be NULL) told of trouble: the standalone topology on the
 * master of the moment. Worker thread only. */
rl_store_t *rl_store_redis_new_at(struct event_base *base,
                                  const rl_conf_store_t *conf, const char *host,
                                  int port, SSL_CTX *tls_ctx,
                                  rl_store_redis_watch_fn *watch, void *arg);

#endif
