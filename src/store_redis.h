#ifndef RL_STORE_REDIS_H
#define RL_STORE_REDIS_H

#include <event2/event.h>
#include "store.h"

/* The Redis store: the decision script (lua/, embedded) run with EVALSHA
 * on one async connection per worker. The script is loaded with SCRIPT
 * LOAD on every connect; a NOSCRIPT reply reloads it and retries once.
 * Worker thread only. */
rl_store_t *rl_store_redis_new(struct event_base *base,
                               const rl_conf_store_t *conf);

/* The SHA1 of RL_LUA_DECIDE in lower-case hex (41 bytes). Pure. */
void rl_store_redis_script_sha(char out[41]);

#endif
