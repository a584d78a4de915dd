/* The Sentinel store: the standalone Redis store (store_redis.c) on the
 * master that the worker's Sentinel client (sentinel.c) has verified.
 *
 * A new master replaces the store: a new standalone store is made on it,
 * and the old one is freed at once (its pending operations end with
 * "disconnected", and their callbacks may start new ones, which go to the
 * new store). That happens only from the Sentinel client's callbacks,
 * never from the old store's own, so freeing it there is safe. The old
 * store's connection loss and READONLY replies reach the client through
 * the store's watch hook, and make it ask the sentinels again.
 *
 * Until a master is known, decisions fail with "disconnected" (the
 * policy's failure_mode decides, at once) and /ready says not ready.
 * The TLS context is made once here, so no worker reads a file on a
 * failover. Worker thread only. */
#include "sentinel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stats.h"
#include "redis_exec.h"
#include "store_redis.h"
#include "util.h"

typedef struct store_sentinel {
    rl_store_t pub;
    struct event_base *base;
    const rl_conf_store_t *conf;
    SSL_CTX *tls_ctx;   /* store.tls; NULL: plain TCP */
    rl_sentinel_t *sl;  /* asks the sentinels */
    rl_store_t *master; /* on the verified master; NULL while none */
} store_sentinel_t;

/* The master's store has trouble (lost, READONLY): ask again. From the
 * master store's callbacks; frees nothing. */
static void store_sentinel_watch(void *arg)
{
    store_sentinel_t *ss = arg;

    rl_sentinel_reask(ss->sl);
}

/* A verified master (sentinel.c): a store on it replaces the old one. */
static void store_sentinel_master(void *arg, const char *host, int port)
{
    store_sentinel_t *ss = arg;
    rl_store_t *old = ss->master;
    rl_store_t *st;

    st = rl_store_redis_new_at(ss->base, ss->conf, host, port, ss->tls_ctx,
                               store_sentinel_watch, ss);
    if (st == NULL) {
        rl_log_kv(RL_LOG_ERROR, "sentinel: cannot use the master", "host", host,
                  (const char *)NULL);
        return;
    }
    ss->master = st;
    if (old != NULL) {
        if (rl_stats_self != NULL) {
            RL_STAT_INC(rl_stats_self, store_master_switches);
        }
        rl_store_free(old);
    }
}

/* Decides on the master, or fails "disconnected" while none is known. */
static void store_sentinel_decide(rl_store_t *s, const rl_store_op_t *op,
                                  rl_store_cb *cb, void *arg)
{
    store_sentinel_t *ss = s->impl;

    if (ss->master == NULL) {
        rl_store_fail(cb, arg, "disconnected");
        return;
    }
    rl_store_decide(ss->master, op, cb, arg);
}

/* Resets on the master, or fails "disconnected" while none is known. */
static void store_sentinel_reset(rl_store_t *s, const rl_store_op_t *op,
                                 rl_store_cb *cb, void *arg)
{
    store_sentinel_t *ss = s->impl;

    if (ss->master == NULL) {
        rl_store_fail(cb, arg, "disconnected");
        return;
    }
    rl_store_reset(ss->master, op, cb, arg);
}

/* The overrides op on the master; "disconnected" while none is known. */
static void store_sentinel_overrides(rl_store_t *s, const rl_store_ovr_op_t *op,
                                     rl_store_ovr_cb *cb, void *arg)
{
    store_sentinel_t *ss = s->impl;
    rl_store_ovr_result_t res;

    if (ss->master == NULL) {
        memset(&res, 0, sizeof(res));
        res.status = RL_ERR;
        res.error = "disconnected";
        cb(arg, &res);
        return;
    }
    ss->master->ops->overrides(ss->master, op, cb, arg);
}

/* 1 while a verified master's connection is up. */
static int store_sentinel_connected(rl_store_t *s)
{
    store_sentinel_t *ss = s->impl;

    return ss->master != NULL && rl_store_connected(ss->master);
}

/* The master ("host:port", "up" or "down"), then every sentinel. */
static void store_sentinel_nodes(rl_store_t *s, rl_store_node_fn *fn, void *arg)
{
    store_sentinel_t *ss = s->impl;

    if (ss->master != NULL) {
        rl_store_nodes(ss->master, fn, arg);
    }
    rl_sentinel_nodes(ss->sl, fn, arg);
}

/* Frees the master's store (its pending operations end with
 * "disconnected"), then the Sentinel client. */
static void store_sentinel_free(rl_store_t *s)
{
    store_sentinel_t *ss = s->impl;
    rl_store_t *master = ss->master;

    /* Operations started by the callbacks of the ones failed now fail at
     * once, "disconnected". */
    ss->master = NULL;
    rl_store_free(master);
    rl_sentinel_free(ss->sl);
    SSL_CTX_free(ss->tls_ctx);
    free(ss);
}

static const rl_store_ops_t store_sentinel_ops = {
    .decide = store_sentinel_decide,
    .reset = store_sentinel_reset,
    .connected = store_sentinel_connected,
    .free = store_sentinel_free,
    .nodes = store_sentinel_nodes,
    .overrides = store_sentinel_overrides,
};

/* Creates the store; see sentinel.h. */
rl_store_t *rl_store_sentinel_new(struct event_base *base,
                                  const rl_conf_store_t *conf)
{
    store_sentinel_t *ss = calloc(1, sizeof(*ss));

    if (ss == NULL) {
        return NULL;
    }
    ss->pub.ops = &store_sentinel_ops;
    ss->pub.impl = ss;
    ss->base = base;
    ss->conf = conf;
    if (rl_redis_exec_tls(conf, &ss->tls_ctx) != RL_OK) {
        free(ss);
        return NULL;
    }
    ss->sl =
        rl_sentinel_new(base, conf, ss->tls_ctx, store_sentinel_master, ss);
    if (ss->sl == NULL) {
        SSL_CTX_free(ss->tls_ctx);
        free(ss);
        return NULL;
    }
    return &ss->pub;
}
