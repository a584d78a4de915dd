#ifndef RL_STORE_COMMON_H
#define RL_STORE_COMMON_H

/* Compatibility names: what the Redis stores shared now lives in the
 * executor (redis_exec.h). The Sentinel topology (sentinel.c,
 * store_sentinel.c) was written against these two; new code calls
 * redis_exec.h, and this header goes once nothing includes it. */

#include "redis_exec.h"

/* rl_redis_exec_tls. */
static inline int rl_store_common_tls(const rl_conf_store_t *conf,
                                      SSL_CTX **ctx)
{
    return rl_redis_exec_tls(conf, ctx);
}

/* rl_redis_exec_conn_opts. */
static inline void rl_store_common_conn_opts(const rl_conf_store_t *conf,
                                             const char *host, int port,
                                             SSL_CTX *tls_ctx,
                                             rl_redis_conn_opts_t *opts)
{
    rl_redis_exec_conn_opts(conf, host, port, tls_ctx, opts);
}

#endif
