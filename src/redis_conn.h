#ifndef RL_REDIS_CONN_H
#define RL_REDIS_CONN_H

#include <stdint.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

/* One asynchronous connection to one Redis node, driven by one worker's
 * event loop. Socket I/O through a libevent bufferevent (so TLS can be
 * layered in), RESP through hiredis (redisFormatCommandArgv to encode,
 * redisReader to decode). Commands pipeline: many can be in flight; the
 * replies come back in order and each is matched to its callback.
 *
 * Every command has a deadline (timeout_ms). Past it the callback gets
 * NULL with err "timeout" and the late reply, when it comes, is dropped.
 * When the connection is lost every pending callback gets NULL with err
 * "disconnected"; the connection is retried with capped exponential
 * backoff (10 ms doubling to 1 s) without any call from the owner.
 * Commands sent while disconnected fail at once with "disconnected".
 * On every (re)connect AUTH and SELECT are sent first if configured, then
 * a PING: the connection counts as connected only once Redis has answered
 * all of them (a hung Redis that still accepts TCP is not "connected").
 * Commands sent during that handshake fail at once with "disconnected".
 * Then the on_connect hook runs (store_redis loads its script there);
 * on_disconnect runs only when a connected connection is lost. Never call
 * rl_redis_conn_free from the connection's own callbacks or hooks. */

typedef struct rl_redis_conn rl_redis_conn_t;

/* reply is owned by the connection and freed after the callback returns;
 * it is NULL on failure, with err a static string ("timeout",
 * "disconnected", "protocol"). */
typedef void rl_redis_cb(void *arg, redisReply *reply, const char *err);

typedef struct rl_redis_conn_opts {
    const char *host;
    int port;
    int timeout_ms;         /* command deadline, > 0 */
    int connect_timeout_ms; /* default: 1000 */
    const char *username;   /* NULL: AUTH password only */
    const char *password;   /* NULL: no AUTH */
    int db;                 /* SELECT if > 0 */
    SSL_CTX *tls_ctx; /* non-NULL: TLS (the connection holds a reference) */
    const char
        *tls_server_name; /* SNI and certificate name; NULL: check host's IP */
    void (*on_connect)(void *arg, rl_redis_conn_t *c);    /* may be NULL */
    void (*on_disconnect)(void *arg, rl_redis_conn_t *c); /* may be NULL */
    void *hook_arg;
} rl_redis_conn_opts_t;

/* Creates the connection and starts connecting. Strings in opts are
 * copied. Worker thread only. */
rl_redis_conn_t *rl_redis_conn_new(struct event_base *base,
                                   const rl_redis_conn_opts_t *opts);

/* Sends one command (argv/argvlen as for redisFormatCommandArgv). cb is
 * called exactly once, maybe before this returns (when disconnected).
 * Returns 0 if queued, -1 if it failed at once (cb already called). */
int rl_redis_conn_command(rl_redis_conn_t *c, int argc, const char **argv,
                          const size_t *argvlen, rl_redis_cb *cb, void *arg);

/* 1 when the connection is up and its AUTH/SELECT handshake succeeded. */
int rl_redis_conn_connected(const rl_redis_conn_t *c);

/* Counters since creation (read by stats from the owning thread). */
typedef struct rl_redis_conn_stats {
    uint64_t commands, timeouts, errors, reconnects;
} rl_redis_conn_stats_t;
void rl_redis_conn_get_stats(const rl_redis_conn_t *c,
                             rl_redis_conn_stats_t *out);

/* Fails every pending callback with "disconnected" and frees c. */
void rl_redis_conn_free(rl_redis_conn_t *c);

#endif
