/* The Redis Cluster store (see store_cluster.h): slot routing, the
 * redirections of the Redis Cluster specification, topology refresh.
 * This file holds the op state machine and the store interface; the
 * nodes and the slot map are in store_cluster_map.c (store_cluster_int.h
 * has the types both share).
 *
 * Ownership, all on one worker thread:
 *  - The store owns its nodes. A node leaves the live list when a
 *    CLUSTER SLOTS reply no longer names it (seed nodes stay), waits on
 *    the dead list, and is freed by a zero-delay event: never from inside
 *    one of its own connection's callbacks (a redis_conn rule). The slot
 *    map only ever points at live nodes.
 *  - The store owns its op contexts (free list, reused: no allocation per
 *    request in steady state). A context's command owns the argv strings,
 *    so every retry resends the same bytes. A context is in one state:
 *      FREE      on the free list
 *      WAIT      its timer will re-route it (backoff, or no node yet)
 *      INFLIGHT  a command is out; with a retry, its timer is the op's
 *                deadline
 *      ORPHAN    the deadline answered the caller; the late reply, when
 *                it comes, only frees the context
 *  - The caller's callback runs exactly once, after its context went
 *    back to the free list (or became ORPHAN), so it may start new ops.
 *
 * What is retried: only what Redis did not run. MOVED, ASK, TRYAGAIN,
 * CLUSTERDOWN, LOADING and missing-function replies mean the script did not
 * run; a command that never left (node not connected) did not run either. A
 * connection lost or a deadline passed while a command was out is not
 * retried: it may have run, and running it twice would count a request
 * twice. */
#include "store_cluster.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "stats.h"
#include "store_cluster_int.h"
#include "store_ovr.h"
#include "util.h"

#define CL_MAX_REDIRECTS 16
#define CL_BACKOFF_MIN_US                                                      \
    1000 /* TRYAGAIN / CLUSTERDOWN / no node: 1, 2, 4 .. */
#define CL_BACKOFF_MAX_US 20000 /* .. up to 20 ms between tries */

static void cl_op_dispatch(cl_op_t *o);
static void cl_op_timer(evutil_socket_t fd, short what, void *arg);
static void cl_op_reply(void *arg, redisReply *reply, const char *err);

/* ------------------------------------------------------------------ */
/* Operations                                                          */
/* ------------------------------------------------------------------ */

/* op_init: a new context gets its timer. */
static int cl_op_init(void *arg, rl_redis_exec_op_t *x)
{
    store_cluster_t *cl = arg;
    cl_op_t *o = (cl_op_t *)x;

    o->cl = cl;
    o->timer = evtimer_new(cl->base, cl_op_timer, o);
    return o->timer != NULL ? RL_OK : RL_ERR;
}

/* op_fini: a context about to be freed. */
static void cl_op_fini(void *arg, rl_redis_exec_op_t *x)
{
    cl_op_t *o = (cl_op_t *)x;

    (void)arg;
    if (o->timer != NULL) {
        event_free(o->timer);
    }
}

/* Returns a context to the executor's pool. */
static void cl_op_put(store_cluster_t *cl, cl_op_t *o)
{
    (void)cl;
    o->state = OP_FREE;
    rl_redis_exec_op_put(&o->x);
}

/* Ends o with res (status RL_OK) or with error: the context is freed, or
 * left ORPHAN while a command is still out, then the caller hears. */
static void cl_op_done(cl_op_t *o, rl_store_result_t *res, const char *error)
{
    rl_store_cb *cb = o->x.cb;
    void *arg = o->x.arg;

    evtimer_del(o->timer);
    if (o->state == OP_INFLIGHT) {
        o->state = OP_ORPHAN;
    } else {
        cl_op_put(o->cl, o);
    }
    if (res != NULL) {
        res->status = RL_OK;
        cb(arg, res);
    } else {
        rl_store_fail(cb, arg, error);
    }
}

/* The op's timer: in WAIT the next try, in INFLIGHT the deadline. A
 * deadline that passes during a retry after TRYAGAIN or CLUSTERDOWN
 * reports that reason (the slot is still migrating or down, as far as
 * anyone knows), else "timeout". */
static void cl_op_timer(evutil_socket_t fd, short what, void *arg)
{
    cl_op_t *o = arg;

    if (o->state == OP_INFLIGHT) {
        cl_op_done(o, NULL, o->error);
    } else if (o->state == OP_WAIT) {
        cl_op_dispatch(o);
    }
}

/* Waits before the next try: 1, 2, 4 .. 20 ms, cut to half the time left
 * so the try still has a chance; ends o with o->error when under a
 * millisecond is left. */
static void cl_op_later(cl_op_t *o)
{
    int64_t now = rl_mono_us();
    int64_t left = o->deadline_us - now;
    int64_t wait = (int64_t)CL_BACKOFF_MIN_US
                   << (o->backoffs < 5 ? o->backoffs : 5);

    if (o->cl->ex.closing || left < CL_BACKOFF_MIN_US) {
        cl_op_done(o, NULL, o->error);
        return;
    }
    if (wait > CL_BACKOFF_MAX_US) {
        wait = CL_BACKOFF_MAX_US;
    }
    if (wait > left / 2) {
        wait = left / 2;
    }
    o->backoffs++;
    o->state = OP_WAIT;
    rl_loop_timer_at(o->timer, now + wait);
}

/* Sends o's command to n (after ASKING when asking). A node that is not
 * connected gets nothing: the op waits and tries again (the command did
 * not leave, so that is safe). Any send but the very first, made when
 * the op started, arms the op's own timer for its deadline, since the
 * connection's deadline for this command is later. */
static void cl_op_send(cl_op_t *o, cl_node_t *n, int asking)
{
    static const char *const asking_argv[1] = {"ASKING"};
    static const size_t asking_len[1] = {6};

    if (!rl_redis_conn_connected(n->conn)) {
        o->error = "disconnected";
        o->error_from_reply = 0;
        rl_store_cluster_refresh(o->cl);
        cl_op_later(o);
        return;
    }
    if (!o->error_from_reply) {
        o->error = "timeout";
    }
    if (asking) {
        rl_redis_conn_command(n->conn, 1, (const char **)asking_argv,
                              asking_len, NULL, NULL);
    }
    o->state = OP_INFLIGHT;
    o->sent_to = n;
    o->asking = asking;
    if (o->tries++ > 0 || o->backoffs > 0) {
        rl_loop_timer_at(o->timer, o->deadline_us);
    }
    rl_redis_conn_command(n->conn, o->x.cmd.argc, o->x.cmd.argv,
                          o->x.cmd.argvlen, cl_op_reply, o);
}

/* Routes o by the slot map: to the slot's master, or waits for one
 * (asking for a fresh map) until the deadline. */
static void cl_op_dispatch(cl_op_t *o)
{
    store_cluster_t *cl = o->cl;
    cl_node_t *n = cl->slots[o->slot];

    if (cl->ex.closing) {
        cl_op_done(o, NULL, "disconnected");
        return;
    }
    if (n == NULL) {
        o->error = cl->have_map ? "cluster_down" : "disconnected";
        o->error_from_reply = 0;
        rl_store_cluster_refresh(cl);
        cl_op_later(o);
        return;
    }
    cl_op_send(o, n, 0);
}

/* The node a redirection (MOVED or ASK, as kind) names, counted as a
 * redirection; NULL after ending o (malformed, too many, out of memory).
 * *slot is the slot it names. */
static cl_node_t *cl_redirect_target(cl_op_t *o, const redisReply *r,
                                     rl_cluster_redir_t kind, int *slot)
{
    rl_cluster_addr_t a;
    cl_node_t *n;

    if (rl_cluster_parse_redirect(r->str, r->len, slot, &a) != kind) {
        rl_redis_exec_warn(&o->cl->ex,
                           kind == RL_CLUSTER_REDIR_MOVED
                               ? "redis cluster: malformed MOVED"
                               : "redis cluster: malformed ASK",
                           r->str);
        cl_op_done(o, NULL, "bad_reply");
        return NULL;
    }
    if (++o->redirects > CL_MAX_REDIRECTS) {
        cl_op_done(o, NULL, "too_many_redirects");
        return NULL;
    }
    if (rl_stats_self != NULL) {
        RL_STAT_INC(rl_stats_self, store_redirections);
    }
    n = rl_store_cluster_node_get(o->cl, &a);
    if (n == NULL) {
        cl_op_done(o, NULL, "out_of_memory");
    }
    return n;
}

/* MOVED <slot> <addr>: the slot lives there now; the map learns it and
 * the command goes there. */
static void cl_on_moved(cl_op_t *o, cl_node_t *from, const redisReply *r)
{
    int slot;
    cl_node_t *n = cl_redirect_target(o, r, RL_CLUSTER_REDIR_MOVED, &slot);

    if (n == NULL) {
        return;
    }
    o->cl->slots[slot] = n;
    rl_store_cluster_refresh(o->cl);
    cl_op_send(o, n, 0);
}

/* ASK <slot> <addr>: this once, ASKING and the command go there; the map
 * stays (the slot is being migrated). */
static void cl_on_ask(cl_op_t *o, cl_node_t *from, const redisReply *r)
{
    int slot;
    cl_node_t *n = cl_redirect_target(o, r, RL_CLUSTER_REDIR_ASK, &slot);

    if (n != NULL) {
        cl_op_send(o, n, 1);
    }
}

/* The function is missing: that node lacks the library (a new node, a
 * restart without persistence, FUNCTION FLUSH): load it there and resend
 * once, pipelined. */
static void cl_on_missing_library(cl_op_t *o, cl_node_t *from,
                                  const redisReply *r)
{
    if (o->x.reload_retried || o->x.cmd.kind != RL_REDIS_CMD_DECIDE) {
        cl_op_done(
            o, NULL,
            rl_redis_exec_error_reply(&o->cl->ex, RL_REDIS_CMD_DECIDE, r->str));
        return;
    }
    o->x.reload_retried = 1;
    rl_redis_exec_load_library(&o->cl->ex, from->conn);
    cl_op_send(o, from, o->asking);
}

typedef void cl_error_fn(cl_op_t *o, cl_node_t *from, const redisReply *r);

/* Error replies the cluster store answers itself. With fn NULL the op
 * waits and tries again, reporting `error` if the deadline passes first,
 * and a refresh is asked for when `refresh` is set. */
static const struct {
    const char *prefix;
    cl_error_fn *fn;
    const char *error;
    int refresh;
} cl_error_replies[] = {
    {"MOVED ", cl_on_moved, NULL, 0},
    {"ASK ", cl_on_ask, NULL, 0},
    {RL_REDIS_EXEC_MISSING_FUNCTION, cl_on_missing_library, NULL, 0},
    {"TRYAGAIN", NULL, "tryagain", 0},        /* keys split by a migration */
    {"CLUSTERDOWN", NULL, "cluster_down", 1}, /* no master for a slot yet */
    {"LOADING", NULL, "loading", 0}, /* a restarted node reading its data */
    {"MASTERDOWN", NULL, "cluster_down", 1},
    {"READONLY", NULL, "cluster_down", 1}, /* the map points at a replica */
};

/* An error reply: a redirection or a transient state is handled; any
 * other error ends the op (logged, without the command). */
static void cl_op_error(cl_op_t *o, cl_node_t *from, const redisReply *r)
{
    size_t i;

    for (i = 0; i < sizeof(cl_error_replies) / sizeof(cl_error_replies[0]);
         i++) {
        size_t plen = strlen(cl_error_replies[i].prefix);

        if (r->len < plen ||
            memcmp(r->str, cl_error_replies[i].prefix, plen) != 0) {
            continue;
        }
        if (cl_error_replies[i].fn != NULL) {
            cl_error_replies[i].fn(o, from, r);
            return;
        }
        o->error = cl_error_replies[i].error;
        o->error_from_reply = 1;
        if (cl_error_replies[i].refresh) {
            rl_store_cluster_refresh(o->cl);
        }
        cl_op_later(o);
        return;
    }
    cl_op_done(o, NULL,
               rl_redis_exec_error_reply(&o->cl->ex, o->x.cmd.kind, r->str));
}

/* Reply to an op's command (ASKING's own reply is dropped by passing no
 * callback). NULL means the command was out when the connection was
 * lost or its deadline passed: not retried, and the map is checked. */
static void cl_op_reply(void *arg, redisReply *reply, const char *err)
{
    cl_op_t *o = arg;
    store_cluster_t *cl = o->cl;
    cl_node_t *from = o->sent_to;
    rl_store_result_t res;
    const char *error;

    o->sent_to = NULL;
    if (o->state == OP_ORPHAN) {
        cl_op_put(cl, o);
        return;
    }
    o->state =
        OP_WAIT; /* nothing out any more; the handlers below move it on */
    evtimer_del(o->timer);
    if (reply == NULL) {
        rl_store_cluster_refresh(cl);
        cl_op_done(o, NULL, err != NULL ? err : "disconnected");
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        cl_op_error(o, from, reply);
        return;
    }
    memset(&res, 0, sizeof(res));
    error = rl_redis_cmd_parse(&o->x.cmd, reply, &res);
    if (error != NULL) {
        cl_op_done(o, NULL, error);
        return;
    }
    cl_op_done(o, &res, NULL);
}

/* 1 if every key of cmd hashes to slot: one script may touch one slot
 * only. The load-time hash_tag rule (conf.c) makes a layered op pass. */
static int cl_one_slot(const rl_redis_cmd_t *cmd, int slot)
{
    const char *key;
    size_t klen;
    int i;

    for (i = 1; i < cmd->nkeys; i++) {
        key = rl_redis_cmd_key(cmd, i, &klen);
        if (rl_cluster_key_slot(key, klen) != slot) {
            return 0;
        }
    }
    return 1;
}

/* prepare: a built op gets its slot (every key must share it) and its
 * deadline, and starts waiting for its route. */
static const char *cl_op_prepare(void *arg, rl_redis_exec_op_t *x)
{
    store_cluster_t *cl = arg;
    cl_op_t *o = (cl_op_t *)x;
    const char *key;
    size_t klen;

    key = rl_redis_cmd_first_key(&o->x.cmd, &klen);
    o->slot = rl_cluster_key_slot(key, klen);
    if (!cl_one_slot(&o->x.cmd, o->slot)) {
        return "cross_slot";
    }
    o->state = OP_WAIT;
    o->tries = 0;
    o->backoffs = 0;
    o->redirects = 0;
    o->asking = 0;
    o->sent_to = NULL;
    o->error = "timeout";
    o->error_from_reply = 0;
    o->deadline_us =
        rl_mono_us() + (int64_t)rl_redis_exec_timeout_ms(cl->conf) * 1000;
    return NULL;
}

/* route: the connection of the slot's master, NULL when none is known. */
static rl_redis_conn_t *cl_op_route(void *arg, rl_redis_exec_op_t *x)
{
    store_cluster_t *cl = arg;
    cl_node_t *n = cl->slots[((cl_op_t *)x)->slot];

    return n != NULL ? n->conn : NULL;
}

/* send: the op alone through the state machine; after a batch that did
 * not run (retry), its own timer keeps its deadline. */
static void cl_op_send_alone(void *arg, rl_redis_exec_op_t *x, int retry)
{
    cl_op_t *o = (cl_op_t *)x;

    (void)arg;
    if (retry) {
        o->tries++;
    }
    cl_op_dispatch(o);
}

static const rl_redis_topo_t cl_topo = {
    .op_size = sizeof(cl_op_t),
    .op_init = cl_op_init,
    .op_fini = cl_op_fini,
    .prepare = cl_op_prepare,
    .route = cl_op_route,
    .send = cl_op_send_alone,
    .flush_when_idle = 1,
};

/* Starts op: on its slot's master, or split per slot when its parts span
 * slots (store_cluster_xm.c). */
static void cl_start(store_cluster_t *cl, const rl_store_op_t *op,
                     rl_redis_cmd_kind_t kind, rl_store_cb *cb, void *arg)
{
    switch (rl_store_cluster_xm_wanted(op)) {
    case 1: rl_store_cluster_xm_start(cl, op, kind, cb, arg); return;
    case -1: rl_store_fail(cb, arg, "cross_slot"); return;
    default: rl_redis_exec_start(&cl->ex, op, kind, cb, arg);
    }
}

/* ------------------------------------------------------------------ */
/* Store interface                                                     */
/* ------------------------------------------------------------------ */

/* Decides op with one FCALL on the master of its slot (or its share
 * of a batch), or per slot when its parts span slots. */
static void cl_decide(rl_store_t *s, const rl_store_op_t *op, rl_store_cb *cb,
                      void *arg)
{
    cl_start(s->impl, op, RL_REDIS_CMD_DECIDE, cb, arg);
}

/* Deletes every state and block key of op (one DEL per slot). */
static void cl_reset(rl_store_t *s, const rl_store_op_t *op, rl_store_cb *cb,
                     void *arg)
{
    cl_start(s->impl, op, RL_REDIS_CMD_RESET, cb, arg);
}

/* 1 when a map is known and every slot's master is connected. */
static int cl_connected(rl_store_t *s)
{
    store_cluster_t *cl = s->impl;
    const cl_node_t *prev = NULL;
    int i;

    if (!cl->have_map) {
        return 0;
    }
    for (i = 0; i < RL_CLUSTER_SLOTS; i++) {
        const cl_node_t *n = cl->slots[i];

        if (n == NULL) {
            return 0;
        }
        if (n != prev) {
            if (!rl_redis_conn_connected(n->conn)) {
                return 0;
            }
            prev = n;
        }
    }
    return 1;
}

/* Every live node, in order of discovery, up or down. */
static void cl_nodes(rl_store_t *s, rl_store_node_fn *fn, void *arg)
{
    store_cluster_t *cl = s->impl;
    const cl_node_t *n;

    for (n = cl->nodes; n != NULL; n = n->next) {
        fn(arg, n->name, rl_redis_conn_connected(n->conn) ? "up" : "down");
    }
}

/* cl_free's sweep: an op waiting for its next try ends now. */
static void cl_end_waiting(void *arg, rl_redis_exec_op_t *x)
{
    cl_op_t *o = (cl_op_t *)x;

    (void)arg;
    if (o->state == OP_WAIT) {
        cl_op_done(o, NULL, "disconnected");
    }
}

/* Frees the store. Decisions not sent yet end with "disconnected", then
 * connections go, ending every command out the same way; then ops still
 * waiting; then the contexts, nodes and events. No refresh or retry
 * starts meanwhile. */
static void cl_free(rl_store_t *s)
{
    store_cluster_t *cl = s->impl;

    rl_redis_exec_close(&cl->ex);
    rl_store_cluster_map_close(cl);
    rl_redis_exec_each_op(&cl->ex, cl_end_waiting, NULL);
    rl_store_cluster_map_free(cl);
    rl_redis_exec_free(&cl->ex);
    free(cl);
}

/* The admin overrides op on the master of the hash key's slot; not
 * retried (a redirection asks for a new map, and the next poll or the
 * admin's next try goes to the new master). */
static void cl_overrides(rl_store_t *s, const rl_store_ovr_op_t *op,
                         rl_store_ovr_cb *cb, void *arg)
{
    store_cluster_t *cl = s->impl;
    char key[256];
    size_t n = rl_store_ovr_key(op->prefix, key, sizeof(key));
    cl_node_t *node = cl->slots[rl_cluster_key_slot(key, n)];

    if (node == NULL || !rl_redis_conn_connected(node->conn)) {
        rl_store_cluster_refresh(cl);
        rl_store_ovr_fail(cb, arg, "disconnected");
        return;
    }
    rl_store_ovr_redis(node->conn, op, cb, arg);
}

static const rl_store_ops_t cl_ops = {
    .decide = cl_decide,
    .reset = cl_reset,
    .connected = cl_connected,
    .free = cl_free,
    .nodes = cl_nodes,
    .overrides = cl_overrides,
};

/* Builds the store, its events and a connection per seed node. */
rl_store_t *rl_store_cluster_new(struct event_base *base,
                                 const rl_conf_store_t *conf)
{
    store_cluster_t *cl = calloc(1, sizeof(*cl));
    SSL_CTX *tls_ctx = NULL;

    if (cl == NULL) {
        return NULL;
    }
    cl->pub.ops = &cl_ops;
    cl->pub.impl = cl;
    cl->base = base;
    cl->conf = conf;
    if (rl_redis_exec_tls(conf, &tls_ctx) != RL_OK ||
        rl_redis_exec_init(&cl->ex, base, conf, &cl_topo, cl, 1, tls_ctx) !=
            RL_OK ||
        rl_store_cluster_map_init(cl) != RL_OK) {
        SSL_CTX_free(tls_ctx);
        cl_free(&cl->pub);
        return NULL;
    }
    SSL_CTX_free(tls_ctx); /* the executor holds its own reference */
    return &cl->pub;
}
