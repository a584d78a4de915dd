#ifndef RL_STORE_COMMON_H
#define RL_STORE_COMMON_H

#include <stdint.h>
#include <openssl/ssl.h>
#include "conf.h"
#include "redis_cmd.h"
#include "redis_conn.h"
#include "store.h"

/* What the two Redis stores (store_redis.c, store_cluster.c) share: the
 * decision script's SHA and its SCRIPT LOAD, the warnings they log at
 * most once a second, the error each failed command kind reports, and
 * the connection settings and TLS context built from store.*. Not a
 * shared executor: each store keeps its own op state machine. Worker
 * thread only (the TLS set-up also at start-up). */

/* Embedded in each Redis store. */
typedef struct rl_store_common {
    char sha[41];         /* of the decision script */
    int64_t last_warn_us; /* monotonic, of the last warning logged */
    int closing;          /* the store is being freed: replies are ignored */
} rl_store_common_t;

/* Fills sc for a new store (the script's SHA; nothing logged yet). */
void rl_store_common_init(rl_store_common_t *sc);

/* Logs a warning "what" with detail, at most once per second per store
 * (so per worker). */
void rl_store_common_warn(rl_store_common_t *sc, const char *what,
                          const char *detail);

/* Sends SCRIPT LOAD of the decision script on conn, fire and forget: the
 * reply is only checked and logged (a later EVALSHA reports a failure). */
void rl_store_common_load_script(rl_store_common_t *sc, rl_redis_conn_t *conn);

/* An error reply to a command of kind: logged (detail is Redis's text,
 * never the command) and turned into the store error it reports
 * ("script_error", "redis_error"; static). */
const char *rl_store_common_error_reply(rl_store_common_t *sc,
                                        rl_redis_cmd_kind_t kind,
                                        const char *detail);

/* Checks op and builds its command of kind into cmd (redis_cmd.c).
 * Returns NULL, or the store error to fail the op with (static). */
const char *rl_store_common_build(rl_store_common_t *sc, rl_redis_cmd_t *cmd,
                                  const rl_store_op_t *op,
                                  rl_redis_cmd_kind_t kind);

/* store.timeout_ms, or 50 ms when unset: every command's deadline. */
int rl_store_common_timeout_ms(const rl_conf_store_t *conf);

/* Connection options for host:port from store.* (deadline, AUTH, TLS
 * with store.tls.server_name); hooks, db and hook_arg left zero. The
 * strings are borrowed from conf and host. */
void rl_store_common_conn_opts(const rl_conf_store_t *conf, const char *host,
                               int port, SSL_CTX *tls_ctx,
                               rl_redis_conn_opts_t *opts);

/* The client TLS context for store.tls into *ctx (NULL without TLS; the
 * caller frees it with SSL_CTX_free). RL_OK, or RL_ERR after logging
 * the field and the reason. */
int rl_store_common_tls(const rl_conf_store_t *conf, SSL_CTX **ctx);

#endif
