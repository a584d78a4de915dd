/* The Redis store: decisions are EVALSHA calls of the embedded decision
 * script (lua/, protocol in store.h) on the worker's rl_redis_conn. The
 * decisions a worker starts in one pass of its event loop go out as one
 * batched call (decide.lua's "batch" form): Redis pays its per-call cost
 * once for all of them, and each is still decided atomically, in order.
 *
 * Each operation borrows a context from the store's free list. The
 * context's command (redis_cmd.c) owns the key and number strings its
 * argv points into, so the caller may free its op as soon as decide()
 * returns and a NOSCRIPT retry can resend the same argv. Contexts and
 * their buffers are reused: no malloc per request in steady state beyond
 * hiredis's formatting. */
#include "store_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "cluster.h"
#include "log.h"
#include "lua_scripts.h"
#include "redis_cmd.h"
#include "redis_conn.h"
#include "store_common.h"
#include "store_ovr.h"
#include "loop.h"
#include "util.h"

#define STORE_BATCH_MAX 64
#define STORE_BATCH_FREE_MAX 8 /* idle batches kept for reuse */
/* Idle op contexts kept for reuse: one full batch's worth; past it a
 * finished op is freed, so a burst of decisions in flight does not stay
 * allocated (each keeps its argv buffers). */
#define STORE_OP_FREE_MAX STORE_BATCH_MAX

typedef struct store_redis store_redis_t;

/* One operation in flight; owned by the store, on its free list when idle. */
typedef struct store_op {
    struct store_op *next_free;
    store_redis_t *st;
    int retried; /* NOSCRIPT retry done */
    rl_store_cb *cb;
    void *arg;
    rl_redis_cmd_t cmd; /* argv and its strings; kept on reuse */
} store_op_t;

/* Decisions sent as one batched EVALSHA; owned by the store, on its free
 * list when idle (argv is kept on reuse). */
typedef struct store_batch {
    struct store_batch *next_free;
    store_redis_t *st;
    int nops;
    int retried; /* NOSCRIPT retry done */
    store_op_t *ops[STORE_BATCH_MAX];
    int argc;
    int cap;
    const char **argv;
    size_t *argvlen;
    char numkeys[24];
    char count[24];
} store_batch_t;

struct store_redis {
    rl_store_t pub;
    rl_redis_conn_t *conn;
    char name[RL_CLUSTER_NAME_MAX]; /* "host:port", for /ready */
    rl_store_common_t sc;           /* the script's SHA, warnings */
    store_op_t *free_ops;           /* at most STORE_OP_FREE_MAX */
    int nfree_ops;
    store_batch_t *open; /* decisions started in this loop pass */
    store_batch_t *free_batches;
    int nfree_batches;
    struct event *flush;            /* sends the open batch, end of the pass */
    rl_store_redis_watch_fn *watch; /* Sentinel hook; NULL without */
    void *watch_arg;
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Takes a context from the free list (or allocates one). NULL if out of
 * memory. */
static store_op_t *store_op_get(store_redis_t *st)
{
    store_op_t *o = st->free_ops;

    if (o != NULL) {
        st->free_ops = o->next_free;
        st->nfree_ops--;
    } else {
        o = calloc(1, sizeof(*o));
        if (o == NULL) {
            return NULL;
        }
        o->st = st;
    }
    o->retried = 0;
    return o;
}

/* Returns a context to the free list (its buffer is kept); past
 * STORE_OP_FREE_MAX idle ones it is freed instead. */
static void store_op_put(store_redis_t *st, store_op_t *o)
{
    if (st->nfree_ops >= STORE_OP_FREE_MAX) {
        rl_redis_cmd_free(&o->cmd);
        free(o);
        return;
    }
    o->cb = NULL;
    o->arg = NULL;
    o->next_free = st->free_ops;
    st->free_ops = o;
    st->nfree_ops++;
}

/* ------------------------------------------------------------------ */
/* Sentinel hook: the owner hears of a lost connection or a READONLY    */
/* reply (the node is no longer the master; store_sentinel.c)           */
/* ------------------------------------------------------------------ */

/* A READONLY error reply: tells the watcher. */
static void store_redis_watch_reply(store_redis_t *st, const char *error)
{
    if (st->watch != NULL && strncmp(error, "READONLY", 8) == 0) {
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

/* ------------------------------------------------------------------ */
/* Replies                                                             */
/* ------------------------------------------------------------------ */

/* Reply to an op's command: NOSCRIPT reloads and retries once (SCRIPT
 * LOAD and EVALSHA pipelined back to back), anything else ends the op.
 * The context goes back to the free list before the caller's callback
 * runs, so that callback may start new operations. */
static void store_op_reply(void *arg, redisReply *reply, const char *err)
{
    store_op_t *o = arg;
    store_redis_t *st = o->st;
    rl_store_cb *cb = o->cb;
    void *cb_arg = o->arg;
    rl_store_result_t res;
    const char *error;

    if (reply == NULL) {
        store_op_put(st, o);
        rl_store_fail(cb, cb_arg, err != NULL ? err : "disconnected");
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        store_redis_watch_reply(st, reply->str);
        if (o->cmd.kind == RL_REDIS_CMD_DECIDE && !o->retried &&
            strncmp(reply->str, "NOSCRIPT", 8) == 0) {
            o->retried = 1;
            rl_store_common_load_script(&st->sc, st->conn);
            rl_redis_conn_command(st->conn, o->cmd.argc, o->cmd.argv,
                                  o->cmd.argvlen, store_op_reply, o);
            return;
        }
        error = rl_store_common_error_reply(&st->sc, o->cmd.kind, reply->str);
        store_op_put(st, o);
        rl_store_fail(cb, cb_arg, error);
        return;
    }
    memset(&res, 0, sizeof(res));
    error = rl_redis_cmd_parse(&o->cmd, reply, &res);
    store_op_put(st, o);
    if (error != NULL) {
        rl_store_fail(cb, cb_arg, error);
        return;
    }
    res.status = RL_OK;
    cb(cb_arg, &res);
}

/* ------------------------------------------------------------------ */
/* Batches                                                             */
/* ------------------------------------------------------------------ */

/* Takes a batch from the free list (or allocates one). NULL if out of
 * memory. */
static store_batch_t *store_batch_get(store_redis_t *st)
{
    store_batch_t *b = st->free_batches;

    if (b != NULL) {
        st->free_batches = b->next_free;
        st->nfree_batches--;
    } else {
        b = calloc(1, sizeof(*b));
        if (b == NULL) {
            return NULL;
        }
        b->st = st;
    }
    b->nops = 0;
    b->retried = 0;
    return b;
}

/* Frees b and its argv arrays. */
static void store_batch_free(store_batch_t *b)
{
    free(b->argv);
    free(b->argvlen);
    free(b);
}

/* Returns b to the free list; past STORE_BATCH_FREE_MAX idle ones it is
 * freed, so a burst of batches in flight does not stay allocated. */
static void store_batch_put(store_redis_t *st, store_batch_t *b)
{
    if (st->nfree_batches >= STORE_BATCH_FREE_MAX) {
        store_batch_free(b);
        return;
    }
    b->next_free = st->free_batches;
    st->free_batches = b;
    st->nfree_batches++;
}

/* Ends every operation of b, in order: with error when given, else with
 * its element of reply (an array of b->nops). Each context goes back to
 * the free list just before its callback, which may start new
 * operations; the later ones stay b's until their turn. */
static void store_batch_finish(store_batch_t *b, const redisReply *reply,
                               const char *error)
{
    store_redis_t *st = b->st;
    int i;

    for (i = 0; i < b->nops; i++) {
        store_op_t *o = b->ops[i];
        rl_store_cb *cb = o->cb;
        void *arg = o->arg;
        rl_store_result_t res;
        const char *e = error;

        memset(&res, 0, sizeof(res));
        if (e == NULL && reply->element[i]->type == REDIS_REPLY_ERROR) {
            /* That decision alone failed (decide.lua checks each one). */
            e = rl_store_common_error_reply(&st->sc, RL_REDIS_CMD_DECIDE,
                                            reply->element[i]->str);
        } else if (e == NULL) {
            e = rl_redis_cmd_parse(&o->cmd, reply->element[i], &res);
        }
        store_op_put(st, o);
        if (e != NULL) {
            rl_store_fail(cb, arg, e);
        } else {
            res.status = RL_OK;
            cb(arg, &res);
        }
    }
    store_batch_put(st, b);
}

/* Reply to a batch: one reply per decision, in order. NOSCRIPT reloads
 * and retries the whole batch once. */
static void store_batch_reply(void *arg, redisReply *reply, const char *err)
{
    store_batch_t *b = arg;
    store_redis_t *st = b->st;

    if (reply == NULL) {
        store_batch_finish(b, NULL, err != NULL ? err : "disconnected");
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        store_redis_watch_reply(st, reply->str);
        if (!b->retried && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
            b->retried = 1;
            rl_store_common_load_script(&st->sc, st->conn);
            rl_redis_conn_command(st->conn, b->argc, b->argv, b->argvlen,
                                  store_batch_reply, b);
            return;
        }
        store_batch_finish(b, NULL,
                           rl_store_common_error_reply(
                               &st->sc, RL_REDIS_CMD_DECIDE, reply->str));
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != (size_t)b->nops) {
        store_batch_finish(b, NULL, "bad_reply");
        return;
    }
    store_batch_finish(b, reply, NULL);
}

/* Builds b's command: EVALSHA sha numkeys, every decision's keys, then
 * "batch" count and every decision's arguments (decide.lua). The strings
 * stay in each op's command. RL_OK or RL_ERR (out of memory). */
static int store_batch_build(store_redis_t *st, store_batch_t *b)
{
    int need = 5;
    int nkeys = 0;
    int i;
    int j;

    for (i = 0; i < b->nops; i++) {
        need += b->ops[i]->cmd.argc - 3;
        nkeys += b->ops[i]->cmd.nkeys;
    }
    if (need > b->cap) {
        const char **argv = realloc(b->argv, (size_t)need * sizeof(*argv));
        size_t *argvlen;

        if (argv == NULL) {
            return RL_ERR;
        }
        b->argv = argv;
        argvlen = realloc(b->argvlen, (size_t)need * sizeof(*argvlen));
        if (argvlen == NULL) {
            return RL_ERR;
        }
        b->argvlen = argvlen;
        b->cap = need;
    }
    b->argc = 0;
    b->argv[b->argc] = "EVALSHA";
    b->argvlen[b->argc++] = 7;
    b->argv[b->argc] = st->sc.sha;
    b->argvlen[b->argc++] = 40;
    b->argv[b->argc] = b->numkeys;
    b->argvlen[b->argc++] =
        (size_t)snprintf(b->numkeys, sizeof(b->numkeys), "%d", nkeys);
    for (i = 0; i < b->nops; i++) {
        const rl_redis_cmd_t *c = &b->ops[i]->cmd;

        for (j = 3; j < 3 + c->nkeys; j++) {
            b->argv[b->argc] = c->argv[j];
            b->argvlen[b->argc++] = c->argvlen[j];
        }
    }
    b->argv[b->argc] = "batch";
    b->argvlen[b->argc++] = 5;
    b->argv[b->argc] = b->count;
    b->argvlen[b->argc++] =
        (size_t)snprintf(b->count, sizeof(b->count), "%d", b->nops);
    for (i = 0; i < b->nops; i++) {
        const rl_redis_cmd_t *c = &b->ops[i]->cmd;

        for (j = 3 + c->nkeys; j < c->argc; j++) {
            b->argv[b->argc] = c->argv[j];
            b->argvlen[b->argc++] = c->argvlen[j];
        }
    }
    return RL_OK;
}

/* Sends the open batch: a lone decision as the plain one-request call. */
static void store_flush(store_redis_t *st)
{
    store_batch_t *b = st->open;
    store_op_t *o;

    if (b == NULL) {
        return;
    }
    st->open = NULL;
    if (b->nops == 1) {
        o = b->ops[0];
        store_batch_put(st, b);
        rl_redis_conn_command(st->conn, o->cmd.argc, o->cmd.argv,
                              o->cmd.argvlen, store_op_reply, o);
        return;
    }
    if (store_batch_build(st, b) != RL_OK) {
        store_batch_finish(b, NULL, "out_of_memory");
        return;
    }
    rl_redis_conn_command(st->conn, b->argc, b->argv, b->argvlen,
                          store_batch_reply, b);
}

/* The flush event: sends the batch opened in this loop pass. */
static void store_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    store_flush(arg);
}

/* Adds o to the open batch, opening one (and scheduling its flush after
 * every callback ready in this loop pass) if needed. RL_ERR if no batch
 * could be had: the caller sends o alone. */
static int store_batch_add(store_redis_t *st, store_op_t *o)
{
    if (st->open == NULL) {
        st->open = store_batch_get(st);
        if (st->open == NULL) {
            return RL_ERR;
        }
        event_active(st->flush, EV_TIMEOUT, 0);
    }
    st->open->ops[st->open->nops++] = o;
    if (st->open->nops == STORE_BATCH_MAX) {
        store_flush(st);
    }
    return RL_OK;
}

/* Starts one operation; cb gets exactly one result. */
static void store_redis_start(rl_store_t *s, const rl_store_op_t *op,
                              rl_redis_cmd_kind_t kind, rl_store_cb *cb,
                              void *arg)
{
    store_redis_t *st = s->impl;
    store_op_t *o = store_op_get(st);
    const char *bad;

    if (o == NULL) {
        rl_store_fail(cb, arg, "out_of_memory");
        return;
    }
    bad = rl_store_common_build(&st->sc, &o->cmd, op, kind);
    if (bad != NULL) {
        store_op_put(st, o);
        rl_store_fail(cb, arg, bad);
        return;
    }
    o->cb = cb;
    o->arg = arg;
    if (kind == RL_REDIS_CMD_DECIDE && rl_redis_conn_connected(st->conn) &&
        store_batch_add(st, o) == RL_OK) {
        return;
    }
    /* Anything else keeps its order behind the decisions started before. */
    store_flush(st);
    rl_redis_conn_command(st->conn, o->cmd.argc, o->cmd.argv, o->cmd.argvlen,
                          store_op_reply, o);
}

/* ------------------------------------------------------------------ */
/* Store interface                                                     */
/* ------------------------------------------------------------------ */

/* Decides op with one EVALSHA. */
static void store_redis_decide(rl_store_t *s, const rl_store_op_t *op,
                               rl_store_cb *cb, void *arg)
{
    store_redis_start(s, op, RL_REDIS_CMD_DECIDE, cb, arg);
}

/* Deletes every state and block key of op. */
static void store_redis_reset(rl_store_t *s, const rl_store_op_t *op,
                              rl_store_cb *cb, void *arg)
{
    store_redis_start(s, op, RL_REDIS_CMD_RESET, cb, arg);
}

/* 1 while the connection is up and authenticated. */
static int store_redis_connected(rl_store_t *s)
{
    store_redis_t *st = s->impl;

    return rl_redis_conn_connected(st->conn);
}

/* Frees the store: pending operations end with "disconnected" first. */
static void store_redis_free(rl_store_t *s)
{
    store_redis_t *st = s->impl;

    /* Decisions not sent yet end like the pending ones: "disconnected". */
    if (st->open != NULL) {
        store_batch_t *b = st->open;
        st->open = NULL;
        store_batch_finish(b, NULL, "disconnected");
    }
    rl_loop_event_free(st->flush);
    rl_redis_conn_free(st->conn);
    while (st->free_batches != NULL) {
        store_batch_t *b = st->free_batches;
        st->free_batches = b->next_free;
        store_batch_free(b);
    }
    while (st->free_ops != NULL) {
        store_op_t *o = st->free_ops;
        st->free_ops = o->next_free;
        rl_redis_cmd_free(&o->cmd);
        free(o);
    }
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

/* on_connect hook: every (re)connect loads the script, so a restarted or
 * flushed Redis rarely answers NOSCRIPT at all. */
static void store_redis_on_connect(void *arg, rl_redis_conn_t *c)
{
    store_redis_t *st = arg;

    rl_store_common_load_script(&st->sc, c);
}

/* The SHA1 of the decision script, lower-case hex. */
void rl_store_redis_script_sha(char out[41])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    unsigned int i;

    EVP_Digest(RL_LUA_DECIDE, strlen(RL_LUA_DECIDE), md, &mdlen, EVP_sha1(),
               NULL);
    for (i = 0; i < 20; i++) {
        out[i * 2] = hex[md[i] >> 4];
        out[i * 2 + 1] = hex[md[i] & 15];
    }
    out[40] = '\0';
}

/* Creates the store on store.address; see rl_store_redis_new_at. */
rl_store_t *rl_store_redis_new(struct event_base *base,
                               const rl_conf_store_t *conf)
{
    SSL_CTX *tls_ctx = NULL;
    rl_store_t *s;

    if (rl_store_common_tls(conf, &tls_ctx) != RL_OK) {
        return NULL;
    }
    s = rl_store_redis_new_at(base, conf, conf->host, conf->port, tls_ctx, NULL,
                              NULL);
    SSL_CTX_free(tls_ctx); /* the connection holds its own reference */
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
    rl_store_common_init(&st->sc);
    if (strchr(host, ':') != NULL) {
        snprintf(st->name, sizeof(st->name), "[%s]:%d", host, port);
    } else {
        snprintf(st->name, sizeof(st->name), "%s:%d", host, port);
    }
    st->watch = watch;
    st->watch_arg = arg;
    rl_store_common_conn_opts(conf, host, port, tls_ctx, &opts);
    opts.db = conf->db;
    opts.on_connect = store_redis_on_connect;
    opts.on_disconnect = store_redis_lost;
    opts.hook_arg = st;
    st->conn = rl_redis_conn_new(base, &opts);
    st->flush = event_new(base, -1, 0, store_flush_cb, st);
    if (st->conn == NULL || st->flush == NULL) {
        if (st->conn != NULL) {
            rl_redis_conn_free(st->conn);
        }
        rl_loop_event_free(st->flush);
        free(st);
        return NULL;
    }
    return &st->pub;
}
