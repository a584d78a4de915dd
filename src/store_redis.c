/* The Redis store, standalone topology: every op goes to the one
 * rl_redis_conn of the worker. The executor (redis_exec.c) does the
 * rest: the decision script (lua/, protocol in store.h), the op pool,
 * the batch of the decisions a worker starts in one loop pass
 * (decide.lua's "batch" form: Redis pays its per-call cost once for all
 * of them, and each is still decided atomically, in order), the reload
 * of a missing library, deadlines and errors.
 *
 * The topology is route(): the connection an op goes to. A "current
 * master" topology (Sentinel) is this file with route() naming the
 * master's connection of the moment. */
#include "store_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "redis_conn.h"
#include "redis_exec.h"
#include "store_ovr.h"
#include "util.h"

typedef struct store_redis {
    rl_store_t pub;
    rl_redis_conn_t *conn;
    char name[RL_CLUSTER_NAME_MAX]; /* "host:port", for /ready */
    rl_redis_exec_t ex;
    rl_store_redis_watch_fn *watch; /* Sentinel hook; NULL without */
    void *watch_arg;
} store_redis_t;

/* ------------------------------------------------------------------ */
/* Topology                                                            */
/* ------------------------------------------------------------------ */

/* Every op goes to the one connection. */
static rl_redis_conn_t *store_redis_route(void *arg, rl_redis_exec_op_t *o)
{
    store_redis_t *st = arg;

    (void)o;
    return st->conn;
}

/* An error reply: READONLY tells the watcher (the node is no longer the
 * master; store_sentinel.c). */
static void store_redis_error_reply(void *arg, const char *err)
{
    store_redis_t *st = arg;

    if (st->watch != NULL && strncmp(err, "READONLY", 8) == 0) {
        st->watch(st->watch_arg);
    }
}

/* on_disconnect hook: tells the watcher. */
static void store_redis_lost(void *arg, rl_redis_conn_t *c)
{
    store_redis_t *st = arg;

    (void)c;
    if (st->watch != NULL) {
        st->watch(st->watch_arg);
    }
}

static const rl_redis_topo_t store_redis_topo = {
    .op_size = sizeof(rl_redis_exec_op_t),
    .route = store_redis_route,
    .error_reply = store_redis_error_reply,
};

/* ------------------------------------------------------------------ */
/* Store interface                                                     */
/* ------------------------------------------------------------------ */

/* Decides op with one FCALL (or its share of a batch). */
static void store_redis_decide(rl_store_t *s, const rl_store_op_t *op,
                               rl_store_cb *cb, void *arg)
{
    store_redis_t *st = s->impl;

    rl_redis_exec_start(&st->ex, op, RL_REDIS_CMD_DECIDE, cb, arg);
}

/* Deletes every state and block key of op. */
static void store_redis_reset(rl_store_t *s, const rl_store_op_t *op,
                              rl_store_cb *cb, void *arg)
{
    store_redis_t *st = s->impl;

    rl_redis_exec_start(&st->ex, op, RL_REDIS_CMD_RESET, cb, arg);
}

/* 1 while the connection is up and authenticated. */
static int store_redis_connected(rl_store_t *s)
{
    store_redis_t *st = s->impl;

    return rl_redis_conn_connected(st->conn);
}

/* Frees the store: decisions not sent yet and pending operations end
 * with "disconnected" first. */
static void store_redis_free(rl_store_t *s)
{
    store_redis_t *st = s->impl;

    rl_redis_exec_close(&st->ex);
    if (st->conn != NULL) {
        rl_redis_conn_free(st->conn);
    }
    rl_redis_exec_free(&st->ex);
    free(st);
}

/* The one node: its address and whether the connection is up. */
static void store_redis_nodes(rl_store_t *s, rl_store_node_fn *fn, void *arg)
{
    store_redis_t *st = s->impl;

    fn(arg, st->name, rl_redis_conn_connected(st->conn) ? "up" : "down");
}

/* The admin overrides op on the one connection (store_ovr.c). */
static void store_redis_overrides(rl_store_t *s, const rl_store_ovr_op_t *op,
                                  rl_store_ovr_cb *cb, void *arg)
{
    store_redis_t *st = s->impl;

    rl_store_ovr_redis(st->conn, op, cb, arg);
}

static const rl_store_ops_t store_redis_ops = {
    .decide = store_redis_decide,
    .reset = store_redis_reset,
    .connected = store_redis_connected,
    .free = store_redis_free,
    .nodes = store_redis_nodes,
    .overrides = store_redis_overrides,
};

/* on_connect hook: every (re)connect loads the library, so a restarted or
 * flushed Redis rarely answers that the function is missing at all. */
static void store_redis_on_connect(void *arg, rl_redis_conn_t *c)
{
    store_redis_t *st = arg;

    rl_redis_exec_load_library(&st->ex, c);
}

/* Creates the store on store.address; see rl_store_redis_new_at. */
rl_store_t *rl_store_redis_new(struct event_base *base,
                               const rl_conf_store_t *conf)
{
    SSL_CTX *tls_ctx = NULL;
    rl_store_t *s;

    if (rl_redis_exec_tls(conf, &tls_ctx) != RL_OK) {
        return NULL;
    }
    s = rl_store_redis_new_at(base, conf, conf->host, conf->port, tls_ctx, NULL,
                              NULL);
    SSL_CTX_free(tls_ctx); /* the executor holds its own reference */
    return s;
}

/* Creates the store and its connection to host:port (which starts
 * connecting on the next loop iteration). Returns NULL on bad settings
 * or out of memory. */
rl_store_t *rl_store_redis_new_at(struct event_base *base,
                                  const rl_conf_store_t *conf, const char *host,
                                  int port, SSL_CTX *tls_ctx,
                                  rl_store_redis_watch_fn *watch, void *arg)
{
    store_redis_t *st = calloc(1, sizeof(*st));
    rl_redis_conn_opts_t opts;

    if (st == NULL) {
        return NULL;
    }
    st->pub.ops = &store_redis_ops;
    st->pub.impl = st;
    st->watch = watch;
    st->watch_arg = arg;
    if (strchr(host, ':') != NULL) {
        snprintf(st->name, sizeof(st->name), "[%s]:%d", host, port);
    } else {
        snprintf(st->name, sizeof(st->name), "%s:%d", host, port);
    }
    if (rl_redis_exec_init(&st->ex, base, conf, &store_redis_topo, st, 0,
                           tls_ctx) != RL_OK) {
        rl_redis_exec_free(&st->ex);
        free(st);
        return NULL;
    }
    rl_redis_exec_conn_opts(conf, host, port, tls_ctx, &opts);
    opts.db = conf->db;
    opts.on_connect = store_redis_on_connect;
    opts.on_disconnect = store_redis_lost;
    opts.hook_arg = st;
    st->conn = rl_redis_conn_new(base, &opts);
    if (st->conn == NULL) {
        store_redis_free(&st->pub);
        return NULL;
    }
    return &st->pub;
}
