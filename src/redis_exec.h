#ifndef RL_REDIS_EXEC_H
#define RL_REDIS_EXEC_H

#include <stdint.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include "conf.h"
#include "redis_cmd.h"
#include "redis_conn.h"
#include "store.h"

/* The one script executor of every Redis topology (standalone, cluster,
 * sentinel). It owns:
 *  - the decision library (lua_scripts.h): FUNCTION LOAD on every
 *    connect, and when a call answers that the function is missing (a
 *    flushed or restarted Redis, a promoted replica without it) one
 *    reload and one retry;
 *  - the op pool: each op's context (rl_redis_exec_op_t, or a topology's
 *    larger struct that starts with one) and its command (redis_cmd.c),
 *    reused, so no allocation per request in steady state;
 *  - batching: the decisions a worker starts in one loop pass go to
 *    their connection as one FCALL per connection (decide.lua's "batch"
 *    form), up to 64; a lone decision goes as the plain call. With the
 *    topology's flush_when_idle (the cluster, where a pass's decisions
 *    are split over the masters), a batch is sent only once the worker's
 *    loop has nothing else ready (the flush event has the idle priority
 *    of loop.h), so a busy loop gathers several passes' decisions into
 *    each master's call, and 1 ms after its first decision at the latest
 *    (flush_late): Redis pays its per-call cost once for more decisions.
 *    (On one Redis a pass's batch is already large, and waiting cost gRPC
 *    throughput more than it saved Redis);
 *  - deadlines (store.timeout_ms, 50 ms when unset), error strings and
 *    the warnings logged at most once a second;
 *  - the connection settings (AUTH, TLS) of store.*.
 *
 * A topology only says which connection an op goes to (route), and may
 * send an op alone its own way (send: the cluster's redirections). The
 * topology interface:
 *    route(arg, o)  the connection o goes to now, or NULL when none is
 *                   known (then send() takes it, or it fails
 *                   "disconnected"). Standalone: the one connection;
 *                   cluster: the master of the op's slot; sentinel: the
 *                   current master.
 *    send(arg, o, retry)  optional: sends o alone and ends it (the
 *                   cluster state machine). retry is 1 when o already
 *                   went out once in a batch that did not run. Without
 *                   it the executor sends o on route() itself.
 * A batch answered with an error that says it did not run (MOVED, ASK,
 * TRYAGAIN, CLUSTERDOWN, LOADING, READONLY, a key not local) falls back
 * to send() one by one when the topology has one, so resharding and
 * failover stay exact; anything else ends every op of the batch.
 *
 * With cross_slot set (the cluster), a batch declares no KEYS: Redis 7.0
 * answers CROSSSLOT to declared keys of several slots even with the
 * function's allow-cross-slot-keys flag, and accepts undeclared keys of
 * every slot the node owns. The call is then
 *    FCALL fn 0 "keys" nkeys key.. "batch" count request-ARGV..
 * A request of it whose key is not served there now answers "NOTLOCAL
 * ..." in its element, with nothing of it run (the script reads every
 * key of a request before it writes one); the executor sends that
 * decision alone, the topology's way, and takes the others' elements.
 * Worker thread only. */

typedef struct rl_redis_exec rl_redis_exec_t;
typedef struct rl_redis_exec_op rl_redis_exec_op_t;

/* One op in flight; the executor's (a topology's struct may start with
 * it). */
struct rl_redis_exec_op {
    rl_redis_exec_op_t *next_free;
    rl_redis_exec_op_t *prev_all; /* every context of the pool */
    rl_redis_exec_op_t *next_all;
    rl_redis_exec_t *ex;
    rl_redis_cmd_t cmd; /* argv and its strings; kept on reuse */
    rl_store_cb *cb;
    void *arg;
    rl_redis_conn_t *conn; /* where the executor sent it alone */
    int reload_retried;    /* the library was reloaded for it once */
    int in_use;
};

typedef struct rl_redis_topo {
    size_t op_size; /* of the topology's op struct, >= sizeof(exec op) */
    /* A new context (timers ..): RL_OK or RL_ERR; may be NULL. */
    int (*op_init)(void *arg, rl_redis_exec_op_t *o);
    /* A context about to be freed; may be NULL. */
    void (*op_fini)(void *arg, rl_redis_exec_op_t *o);
    /* A built op before it is routed: NULL, or the error to fail it with
     * (static); may be NULL. */
    const char *(*prepare)(void *arg, rl_redis_exec_op_t *o);
    rl_redis_conn_t *(*route)(void *arg, rl_redis_exec_op_t *o);
    void (*send)(void *arg, rl_redis_exec_op_t *o, int retry);
    /* 1: a batch waits for the loop to go idle (up to 1 ms) before it is
     * sent: a topology whose pass splits over several connections. */
    int flush_when_idle;
    /* Told of every error reply the executor handles (Sentinel: READONLY
     * means the master moved); may be NULL. Must not free the store. */
    void (*error_reply)(void *arg, const char *err);
} rl_redis_topo_t;

struct rl_redis_exec {
    struct event_base *base;
    const rl_conf_store_t *conf;
    const rl_redis_topo_t *topo;
    void *topo_arg;
    int cross_slot;       /* batches declare no keys (cluster) */
    int64_t last_warn_us; /* monotonic, of the last warning logged */
    int closing;          /* being freed: replies are ignored */
    SSL_CTX *tls_ctx;     /* referenced; NULL: plain TCP */
    rl_redis_exec_op_t *free_ops;
    int nfree_ops;
    rl_redis_exec_op_t *all_ops;
    struct exec_batch *open; /* batches not sent yet, one per conn */
    struct exec_batch *free_batches;
    int nfree_batches;
    struct event *flush;      /* sends the open batches (end of pass, or
                                 idle on a cluster) */
    struct event *flush_late; /* or 1 ms after the first was opened */
};

/* Sets ex up for conf (the flush event); tls_ctx
 * (NULL: plain TCP) is referenced for every connection, not taken.
 * RL_OK, or RL_ERR (out of memory); on RL_ERR rl_redis_exec_free still
 * frees what was made. */
int rl_redis_exec_init(rl_redis_exec_t *ex, struct event_base *base,
                       const rl_conf_store_t *conf, const rl_redis_topo_t *topo,
                       void *topo_arg, int cross_slot, SSL_CTX *tls_ctx);

/* Marks ex closing and ends the decisions not sent yet with
 * "disconnected" (call before freeing the connections). */
void rl_redis_exec_close(rl_redis_exec_t *ex);

/* Frees the pool, the batches, the event and its TLS reference (after
 * every connection was freed). */
void rl_redis_exec_free(rl_redis_exec_t *ex);

/* Starts op of kind: builds its command, routes it, adds a decision to
 * its connection's batch or sends it alone. cb gets exactly one result,
 * maybe before this returns. op may be freed once this returns. */
void rl_redis_exec_start(rl_redis_exec_t *ex, const rl_store_op_t *op,
                         rl_redis_cmd_kind_t kind, rl_store_cb *cb, void *arg);

/* Sends the open batch of conn now (to keep the order of a command sent
 * alone behind it). */
void rl_redis_exec_flush_conn(rl_redis_exec_t *ex, rl_redis_conn_t *conn);

/* Takes back the open batch of conn, unsent, before conn is freed: its
 * decisions go alone the topology's way (they never left), or end
 * "disconnected" without a send(). */
void rl_redis_exec_forget_conn(rl_redis_exec_t *ex, rl_redis_conn_t *conn);

/* Returns o to the pool (its command's buffers are kept). */
void rl_redis_exec_op_put(rl_redis_exec_op_t *o);

/* Ends o: back to the pool, then cb with res (status set to RL_OK) or
 * with error. */
void rl_redis_exec_op_end(rl_redis_exec_op_t *o, rl_store_result_t *res,
                          const char *error);

/* Calls fn for every context in use (the cluster ends its waiting ops at
 * free); fn may end the op it is given. */
void rl_redis_exec_each_op(rl_redis_exec_t *ex,
                           void (*fn)(void *arg, rl_redis_exec_op_t *o),
                           void *arg);

/* Decodes a non-error reply to o's command and ends o with it. */
void rl_redis_exec_op_reply(rl_redis_exec_op_t *o, const redisReply *reply);

/* Logs "what" with detail, at most once per second per executor. */
void rl_redis_exec_warn(rl_redis_exec_t *ex, const char *what,
                        const char *detail);

/* Sends FUNCTION LOAD of the decision library on conn, fire and forget
 * (a later FCALL reports a failure). A library of that name that exists
 * already is this one (the name holds its SHA1): not a failure. */
void rl_redis_exec_load_library(rl_redis_exec_t *ex, rl_redis_conn_t *conn);

/* The error FCALL answers when the function is missing on that server
 * (EVALSHA's NOSCRIPT), and 1 if err is it. */
#define RL_REDIS_EXEC_MISSING_FUNCTION "ERR Function not found"
int rl_redis_exec_missing_library(const char *err);

/* An error reply to a command of kind: logged (Redis's text, never the
 * command) and named ("script_error", "redis_error"; static). */
const char *rl_redis_exec_error_reply(rl_redis_exec_t *ex,
                                      rl_redis_cmd_kind_t kind,
                                      const char *detail);

/* 1 if an error reply means the script did not run (a redirection, a
 * transient cluster state, a batch key not local). */
int rl_redis_exec_not_run(const char *err, size_t len);

/* store.timeout_ms, or 50 ms when unset: every command's deadline. */
int rl_redis_exec_timeout_ms(const rl_conf_store_t *conf);

/* Connection options for host:port from store.* (deadline, AUTH, TLS
 * through tls_ctx with store.tls.server_name); hooks and db left zero.
 * The strings are borrowed from conf and host. */
void rl_redis_exec_conn_opts(const rl_conf_store_t *conf, const char *host,
                             int port, SSL_CTX *tls_ctx,
                             rl_redis_conn_opts_t *opts);

/* The client TLS context for store.tls into *ctx (NULL without TLS; the
 * caller frees it with SSL_CTX_free). RL_OK, or RL_ERR after logging
 * the field and the reason. Worker thread or start-up. */
int rl_redis_exec_tls(const rl_conf_store_t *conf, SSL_CTX **ctx);

#endif
