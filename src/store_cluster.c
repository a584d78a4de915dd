/* The Redis Cluster store (see store_cluster.h): slot routing, the
 * redirections of the Redis Cluster specification, topology refresh.
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
 * CLUSTERDOWN, LOADING and NOSCRIPT replies mean the script did not run;
 * a command that never left (node not connected) did not run either. A
 * connection lost or a deadline passed while a command was out is not
 * retried: it may have run, and running it twice would count a request
 * twice. */
#include "store_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "log.h"
#include "lua_scripts.h"
#include "redis_cmd.h"
#include "redis_conn.h"
#include "stats.h"
#include "redis_tls.h"
#include "store_redis.h"
#include "util.h"

#define CL_MAX_REDIRECTS 16
#define CL_REFRESH_MIN_US                                                      \
    100000 /* refreshes on errors: at most 10 per second */
#define CL_BACKOFF_MIN_US                                                      \
    1000 /* TRYAGAIN / CLUSTERDOWN / no node: 1, 2, 4 .. */
#define CL_BACKOFF_MAX_US 20000 /* .. up to 20 ms between tries */
#define CL_WARN_INTERVAL_US 1000000

typedef struct store_cluster store_cluster_t;

typedef struct cl_node {
    struct cl_node *next; /* in the live or the dead list */
    store_cluster_t *cl;
    rl_redis_conn_t *conn;
    rl_cluster_addr_t addr;
    char name[RL_CLUSTER_NAME_MAX]; /* "host:port" */
    int seed;                       /* from store.nodes: never dropped */
    int seen;                       /* named by the last CLUSTER SLOTS */
} cl_node_t;

typedef enum { OP_FREE = 0, OP_WAIT, OP_INFLIGHT, OP_ORPHAN } cl_op_state_t;

typedef struct cl_op {
    struct cl_op *next_free;
    struct cl_op *next_all; /* every context, for the final free */
    store_cluster_t *cl;
    cl_op_state_t state;
    rl_redis_cmd_t cmd;
    rl_store_cb *cb;
    void *arg;
    struct event *timer; /* WAIT: next try; INFLIGHT after a retry: deadline */
    int slot;
    int64_t deadline_us; /* monotonic */
    int tries;           /* commands sent or attempted */
    int backoffs;
    int redirects;
    int noscript_retried;
    int asking;           /* the command out went after ASKING */
    cl_node_t *sent_to;   /* INFLIGHT: the node it went to */
    const char *error;    /* what to report if the deadline passes now */
    int error_from_reply; /* error came from Redis (TRYAGAIN ..): a later
                           * try that times out still reports it */
} cl_op_t;

struct store_cluster {
    rl_store_t pub;
    struct event_base *base;
    const rl_conf_store_t *conf;
    SSL_CTX *tls_ctx; /* NULL: plain TCP */
    char sha[41];
    cl_node_t
        *slots[RL_CLUSTER_SLOTS]; /* master of each slot, NULL: none known */
    int have_map;                 /* a CLUSTER SLOTS reply was applied */
    cl_node_t *nodes;             /* live, in order of discovery */
    cl_node_t *dead;              /* dropped, freed by gc_ev */
    cl_op_t *free_ops;
    cl_op_t *all_ops;
    struct event *periodic_ev; /* refresh every refresh_interval_ms */
    struct event *refresh_ev;  /* a refresh held back by the rate limit */
    struct event *gc_ev;       /* frees the dead list */
    int refresh_inflight;
    int refresh_armed;  /* refresh_ev is pending */
    int refresh_wanted; /* wanted while no node was reachable */
    int64_t last_refresh_us;
    unsigned rr; /* where the next refresh starts looking */
    char refresh_host[RL_CLUSTER_HOST_MAX]; /* the node asked ("" in replies) */
    int nmasters; /* of the last map, to log changes */
    int nnodes;
    int closing; /* store_cluster_free is running */
    int64_t last_warn_us;
};

static void cl_refresh(store_cluster_t *cl);
static void cl_op_dispatch(cl_op_t *o);
static void cl_op_timer(evutil_socket_t fd, short what, void *arg);
static void cl_op_reply(void *arg, redisReply *reply, const char *err);

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Logs a warning at most once per second per store (so per worker). */
static void cl_warn(store_cluster_t *cl, const char *what, const char *detail)
{
    int64_t now = rl_mono_us();

    if (cl->last_warn_us != 0 && now - cl->last_warn_us < CL_WARN_INTERVAL_US) {
        return;
    }
    cl->last_warn_us = now;
    rl_log_kv(RL_LOG_WARN, what, "detail", detail, (const char *)NULL);
}

/* Arms ev to fire at the monotonic time when_us. */
static void cl_timer_at(struct event *ev, int64_t when_us)
{
    int64_t delay = when_us - rl_mono_us();
    struct timeval tv;

    if (delay < 0) {
        delay = 0;
    }
    tv.tv_sec = (time_t)(delay / 1000000);
    tv.tv_usec = (suseconds_t)(delay % 1000000);
    evtimer_add(ev, &tv);
}

/* ------------------------------------------------------------------ */
/* Nodes                                                               */
/* ------------------------------------------------------------------ */

/* SCRIPT LOAD reply: only checked and logged, nothing waits for it. */
static void cl_script_loaded(void *arg, redisReply *reply, const char *err)
{
    store_cluster_t *cl = arg;

    if (reply == NULL || cl->closing) {
        return; /* a later EVALSHA reports the failure */
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        cl_warn(cl, "redis SCRIPT LOAD failed", reply->str);
    } else if (reply->type != REDIS_REPLY_STRING || reply->len != 40 ||
               memcmp(reply->str, cl->sha, 40) != 0) {
        cl_warn(cl, "redis SCRIPT LOAD returned an unexpected SHA", cl->sha);
    }
}

/* Sends SCRIPT LOAD of the decision script to n, fire and forget. */
static void cl_load_script(store_cluster_t *cl, cl_node_t *n)
{
    const char *argv[3] = {"SCRIPT", "LOAD", RL_LUA_DECIDE};
    size_t argvlen[3] = {6, 4, strlen(RL_LUA_DECIDE)};

    rl_redis_conn_command(n->conn, 3, argv, argvlen, cl_script_loaded, cl);
}

/* on_connect: every node gets the script (a replica promoted later
 * already has it), and a map is asked for if none is known yet. */
static void cl_node_connected(void *arg, rl_redis_conn_t *c)
{
    cl_node_t *n = arg;
    store_cluster_t *cl = n->cl;

    cl_load_script(cl, n);
    if (!cl->have_map || cl->refresh_wanted) {
        cl_refresh(cl);
    }
}

/* on_disconnect: a lost node may mean a failover; look again. */
static void cl_node_disconnected(void *arg, rl_redis_conn_t *c)
{
    cl_node_t *n = arg;

    cl_refresh(n->cl);
}

/* The live node at a, or NULL. */
static cl_node_t *cl_node_find(store_cluster_t *cl, const rl_cluster_addr_t *a)
{
    cl_node_t *n;

    for (n = cl->nodes; n != NULL; n = n->next) {
        if (n->addr.port == a->port && strcmp(n->addr.host, a->host) == 0) {
            return n;
        }
    }
    return NULL;
}

/* Creates a live node for a with its connection (AUTH, TLS as for every
 * node), appended to the live list. NULL on failure. */
static cl_node_t *cl_node_add(store_cluster_t *cl, const rl_cluster_addr_t *a,
                              int seed)
{
    cl_node_t *n = calloc(1, sizeof(*n));
    cl_node_t **tail;
    rl_redis_conn_opts_t opts;

    if (n == NULL) {
        return NULL;
    }
    n->cl = cl;
    n->addr = *a;
    n->seed = seed;
    rl_cluster_addr_name(a, n->name, sizeof(n->name));
    memset(&opts, 0, sizeof(opts));
    opts.host = a->host;
    opts.port = a->port;
    opts.timeout_ms = cl->conf->timeout_ms > 0 ? cl->conf->timeout_ms : 50;
    opts.username = cl->conf->username;
    opts.password = cl->conf->password;
    opts.tls_ctx = cl->tls_ctx;
    opts.tls_server_name =
        cl->conf->tls != NULL ? cl->conf->tls->server_name : NULL;
    opts.on_connect = cl_node_connected;
    opts.on_disconnect = cl_node_disconnected;
    opts.hook_arg = n;
    n->conn = rl_redis_conn_new(cl->base, &opts);
    if (n->conn == NULL) {
        free(n);
        return NULL;
    }
    for (tail = &cl->nodes; *tail != NULL; tail = &(*tail)->next) {
    }
    *tail = n;
    return n;
}

/* The live node at a, created if new. NULL if out of memory. */
static cl_node_t *cl_node_get(store_cluster_t *cl, const rl_cluster_addr_t *a)
{
    cl_node_t *n = cl_node_find(cl, a);

    return n != NULL ? n : cl_node_add(cl, a, 0);
}

/* Frees n and its connection; pending commands end with "disconnected". */
static void cl_node_free(cl_node_t *n)
{
    rl_redis_conn_free(n->conn);
    free(n);
}

/* gc_ev: frees the nodes the topology dropped. */
static void cl_gc(evutil_socket_t fd, short what, void *arg)
{
    store_cluster_t *cl = arg;

    while (cl->dead != NULL) {
        cl_node_t *n = cl->dead;
        cl->dead = n->next;
        cl_node_free(n);
    }
}

/* ------------------------------------------------------------------ */
/* Topology                                                            */
/* ------------------------------------------------------------------ */

/* A connected live node, taking turns so one slow node does not answer
 * every refresh. NULL if none is connected. */
static cl_node_t *cl_pick_node(store_cluster_t *cl)
{
    cl_node_t *n;
    unsigned count = 0;
    unsigned i;

    for (n = cl->nodes; n != NULL; n = n->next) {
        count++;
    }
    if (count == 0) {
        return NULL;
    }
    for (i = 0; i < count; i++) {
        unsigned want = (cl->rr + i) % count;
        unsigned k = 0;

        for (n = cl->nodes; k < want; n = n->next) {
            k++;
        }
        if (rl_redis_conn_connected(n->conn)) {
            cl->rr = want + 1;
            return n;
        }
    }
    return NULL;
}

/* CLUSTER SLOTS walk callback: marks each named node seen (creating it
 * if new) and points the range's slots at its master. */
static int cl_apply_node(void *arg, int start, int end, int role,
                         const rl_cluster_addr_t *a)
{
    store_cluster_t *cl = arg;
    cl_node_t *n = cl_node_get(cl, a);
    int s;

    if (n == NULL) {
        return -1;
    }
    n->seen = 1;
    if (role == 0) {
        for (s = start; s <= end; s++) {
            cl->slots[s] = n;
        }
    }
    return 0;
}

/* Replaces the slot map by a validated CLUSTER SLOTS reply, drops the
 * nodes it no longer names (seeds stay) and logs when the shape of the
 * cluster changed. */
static void cl_apply(store_cluster_t *cl, const redisReply *r)
{
    cl_node_t **pp;
    cl_node_t *n;
    cl_node_t *prev = NULL;
    int masters = 0;
    int count = 0;
    int s;

    for (n = cl->nodes; n != NULL; n = n->next) {
        n->seen = 0;
    }
    memset(cl->slots, 0, sizeof(cl->slots));
    if (rl_cluster_slots_walk(r, cl->refresh_host, cl_apply_node, cl, NULL) <
        0) {
        cl_warn(cl, "redis cluster: out of memory while applying the slot map",
                "");
    }
    cl->have_map = 1;
    pp = &cl->nodes;
    while ((n = *pp) != NULL) {
        if (!n->seen && !n->seed) {
            *pp = n->next;
            n->next = cl->dead;
            cl->dead = n;
            continue;
        }
        count++;
        pp = &n->next;
    }
    if (cl->dead != NULL) {
        event_active(cl->gc_ev, EV_TIMEOUT, 0);
    }
    for (s = 0; s < RL_CLUSTER_SLOTS; s++) {
        if (cl->slots[s] != NULL && cl->slots[s] != prev) {
            prev = cl->slots[s];
            masters++;
        }
    }
    if (masters != cl->nmasters || count != cl->nnodes) {
        char m[16];
        char c[16];

        cl->nmasters = masters;
        cl->nnodes = count;
        snprintf(m, sizeof(m), "%d", masters);
        snprintf(c, sizeof(c), "%d", count);
        rl_log_kv(RL_LOG_INFO, "redis cluster slot map", "master_ranges", m,
                  "nodes", c, (const char *)NULL);
    }
}

/* CLUSTER SLOTS reply: a well-formed one replaces the map; anything else
 * is logged and the map is kept (a later refresh tries another node). */
static void cl_slots_reply(void *arg, redisReply *reply, const char *err)
{
    store_cluster_t *cl = arg;
    int skipped = 0;

    cl->refresh_inflight = 0;
    if (cl->closing) {
        return;
    }
    if (reply == NULL) {
        cl->refresh_wanted = 1;
        cl_refresh(cl);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        cl_warn(cl, "redis CLUSTER SLOTS failed (is it a cluster?)",
                reply->str);
        return;
    }
    if (rl_cluster_slots_walk(reply, cl->refresh_host, NULL, NULL, &skipped) <
        0) {
        cl_warn(cl, "redis CLUSTER SLOTS reply not understood", "");
        return;
    }
    if (skipped > 0) {
        cl_warn(cl,
                "redis cluster: nodes without a numeric IP address are ignored",
                "set cluster-preferred-endpoint-type ip");
    }
    cl_apply(cl, reply);
}

/* Asks a connected node for the slot map, at most once per
 * CL_REFRESH_MIN_US: a refresh asked for sooner is held back until then;
 * one asked for while no node is connected runs at the next connect. */
static void cl_refresh(store_cluster_t *cl)
{
    static const char *const argv[2] = {"CLUSTER", "SLOTS"};
    static const size_t argvlen[2] = {7, 5};
    int64_t now = rl_mono_us();
    cl_node_t *n;

    if (cl->closing || cl->refresh_inflight) {
        return;
    }
    if (cl->last_refresh_us != 0 &&
        now - cl->last_refresh_us < CL_REFRESH_MIN_US) {
        if (!cl->refresh_armed) {
            cl->refresh_armed = 1;
            cl_timer_at(cl->refresh_ev,
                        cl->last_refresh_us + CL_REFRESH_MIN_US);
        }
        return;
    }
    n = cl_pick_node(cl);
    if (n == NULL) {
        cl->refresh_wanted = 1;
        return;
    }
    cl->last_refresh_us = now;
    cl->refresh_inflight = 1;
    cl->refresh_wanted = 0;
    snprintf(cl->refresh_host, sizeof(cl->refresh_host), "%s", n->addr.host);
    rl_redis_conn_command(n->conn, 2, (const char **)argv, argvlen,
                          cl_slots_reply, cl);
}

/* refresh_ev: the held-back refresh. */
static void cl_refresh_timer(evutil_socket_t fd, short what, void *arg)
{
    store_cluster_t *cl = arg;

    cl->refresh_armed = 0;
    cl_refresh(cl);
}

/* periodic_ev: catches changes that caused no error (a new replica, a
 * failover of a master no request went to). */
static void cl_periodic(evutil_socket_t fd, short what, void *arg)
{
    cl_refresh(arg);
}

/* ------------------------------------------------------------------ */
/* Operations                                                          */
/* ------------------------------------------------------------------ */

/* Takes a context from the free list (or allocates one with its timer).
 * NULL if out of memory. */
static cl_op_t *cl_op_get(store_cluster_t *cl)
{
    cl_op_t *o = cl->free_ops;

    if (o != NULL) {
        cl->free_ops = o->next_free;
    } else {
        o = calloc(1, sizeof(*o));
        if (o == NULL) {
            return NULL;
        }
        o->cl = cl;
        o->timer = evtimer_new(cl->base, cl_op_timer, o);
        if (o->timer == NULL) {
            free(o);
            return NULL;
        }
        o->next_all = cl->all_ops;
        cl->all_ops = o;
    }
    o->tries = 0;
    o->backoffs = 0;
    o->redirects = 0;
    o->noscript_retried = 0;
    o->asking = 0;
    o->sent_to = NULL;
    o->error = "timeout";
    o->error_from_reply = 0;
    return o;
}

/* Returns a context to the free list (its buffer and timer are kept). */
static void cl_op_put(store_cluster_t *cl, cl_op_t *o)
{
    o->state = OP_FREE;
    o->cb = NULL;
    o->arg = NULL;
    o->next_free = cl->free_ops;
    cl->free_ops = o;
}

/* Ends o with res (status RL_OK) or with error: the context is freed, or
 * left ORPHAN while a command is still out, then the caller hears. */
static void cl_op_done(cl_op_t *o, rl_store_result_t *res, const char *error)
{
    rl_store_cb *cb = o->cb;
    void *arg = o->arg;

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

    if (o->cl->closing || left < CL_BACKOFF_MIN_US) {
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
    cl_timer_at(o->timer, now + wait);
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
        cl_refresh(o->cl);
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
        cl_timer_at(o->timer, o->deadline_us);
    }
    rl_redis_conn_command(n->conn, o->cmd.argc, o->cmd.argv, o->cmd.argvlen,
                          cl_op_reply, o);
}

/* Routes o by the slot map: to the slot's master, or waits for one
 * (asking for a fresh map) until the deadline. */
static void cl_op_dispatch(cl_op_t *o)
{
    store_cluster_t *cl = o->cl;
    cl_node_t *n = cl->slots[o->slot];

    if (cl->closing) {
        cl_op_done(o, NULL, "disconnected");
        return;
    }
    if (n == NULL) {
        o->error = cl->have_map ? "cluster_down" : "disconnected";
        o->error_from_reply = 0;
        cl_refresh(cl);
        cl_op_later(o);
        return;
    }
    cl_op_send(o, n, 0);
}

/* MOVED <slot> <addr>: the slot lives there now; the map learns it and
 * the command goes there. */
static void cl_on_moved(cl_op_t *o, cl_node_t *from, const redisReply *r)
{
    store_cluster_t *cl = o->cl;
    rl_cluster_addr_t a;
    cl_node_t *n;
    int slot;

    if (rl_cluster_parse_redirect(r->str, r->len, &slot, &a) !=
        RL_CLUSTER_REDIR_MOVED) {
        cl_warn(cl, "redis cluster: malformed MOVED", r->str);
        cl_op_done(o, NULL, "bad_reply");
        return;
    }
    if (++o->redirects > CL_MAX_REDIRECTS) {
        cl_op_done(o, NULL, "too_many_redirects");
        return;
    }
    if (rl_stats_self != NULL) {
        RL_STAT_INC(rl_stats_self, store_redirections);
    }
    n = cl_node_get(cl, &a);
    if (n == NULL) {
        cl_op_done(o, NULL, "out_of_memory");
        return;
    }
    cl->slots[slot] = n;
    cl_refresh(cl);
    cl_op_send(o, n, 0);
}

/* ASK <slot> <addr>: this once, ASKING and the command go there; the map
 * stays (the slot is being migrated). */
static void cl_on_ask(cl_op_t *o, cl_node_t *from, const redisReply *r)
{
    rl_cluster_addr_t a;
    cl_node_t *n;
    int slot;

    if (rl_cluster_parse_redirect(r->str, r->len, &slot, &a) !=
        RL_CLUSTER_REDIR_ASK) {
        cl_warn(o->cl, "redis cluster: malformed ASK", r->str);
        cl_op_done(o, NULL, "bad_reply");
        return;
    }
    if (++o->redirects > CL_MAX_REDIRECTS) {
        cl_op_done(o, NULL, "too_many_redirects");
        return;
    }
    if (rl_stats_self != NULL) {
        RL_STAT_INC(rl_stats_self, store_redirections);
    }
    n = cl_node_get(o->cl, &a);
    if (n == NULL) {
        cl_op_done(o, NULL, "out_of_memory");
        return;
    }
    cl_op_send(o, n, 1);
}

/* NOSCRIPT: that node lacks the script (a promoted replica, a new node,
 * SCRIPT FLUSH): load it there and resend once, pipelined. */
static void cl_on_noscript(cl_op_t *o, cl_node_t *from, const redisReply *r)
{
    if (o->noscript_retried || o->cmd.kind != RL_REDIS_CMD_DECIDE) {
        cl_warn(o->cl, "redis decision script failed", r->str);
        cl_op_done(o, NULL, "script_error");
        return;
    }
    o->noscript_retried = 1;
    cl_load_script(o->cl, from);
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
    {"NOSCRIPT", cl_on_noscript, NULL, 0},
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
            cl_refresh(o->cl);
        }
        cl_op_later(o);
        return;
    }
    if (o->cmd.kind == RL_REDIS_CMD_DECIDE) {
        cl_warn(o->cl, "redis decision script failed", r->str);
        cl_op_done(o, NULL, "script_error");
    } else {
        cl_warn(o->cl, "redis reset failed", r->str);
        cl_op_done(o, NULL, "redis_error");
    }
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
        cl_refresh(cl);
        cl_op_done(o, NULL, err != NULL ? err : "disconnected");
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        cl_op_error(o, from, reply);
        return;
    }
    memset(&res, 0, sizeof(res));
    error = rl_redis_cmd_parse(&o->cmd, reply, &res);
    if (error != NULL) {
        cl_op_done(o, NULL, error);
        return;
    }
    cl_op_done(o, &res, NULL);
}

/* Starts one operation; cb gets exactly one result. */
static void cl_start(rl_store_t *s, const rl_store_op_t *op,
                     rl_redis_cmd_kind_t kind, rl_store_cb *cb, void *arg)
{
    store_cluster_t *cl = s->impl;
    const char *bad = rl_redis_cmd_check(op);
    const char *key;
    size_t klen;
    cl_op_t *o;

    if (bad != NULL) {
        rl_store_fail(cb, arg, bad);
        return;
    }
    o = cl_op_get(cl);
    if (o == NULL) {
        rl_store_fail(cb, arg, "out_of_memory");
        return;
    }
    if (rl_redis_cmd_build(&o->cmd, cl->sha, op, kind) != RL_OK) {
        cl_op_put(cl, o);
        rl_store_fail(cb, arg, "out_of_memory");
        return;
    }
    key = rl_redis_cmd_first_key(&o->cmd, &klen);
    o->slot = rl_cluster_key_slot(key, klen);
    o->cb = cb;
    o->arg = arg;
    o->deadline_us =
        rl_mono_us() +
        (int64_t)(cl->conf->timeout_ms > 0 ? cl->conf->timeout_ms : 50) * 1000;
    cl_op_dispatch(o);
}

/* ------------------------------------------------------------------ */
/* Store interface                                                     */
/* ------------------------------------------------------------------ */

/* Decides op with one EVALSHA on the master of its slot. */
static void cl_decide(rl_store_t *s, const rl_store_op_t *op, rl_store_cb *cb,
                      void *arg)
{
    cl_start(s, op, RL_REDIS_CMD_DECIDE, cb, arg);
}

/* Deletes every state and block key of op (one slot, so one DEL). */
static void cl_reset(rl_store_t *s, const rl_store_op_t *op, rl_store_cb *cb,
                     void *arg)
{
    cl_start(s, op, RL_REDIS_CMD_RESET, cb, arg);
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

/* Frees the store. Connections go first, ending every command out with
 * "disconnected"; then ops still waiting end the same way; then the
 * contexts, nodes and events. No refresh or retry starts meanwhile. */
static void cl_free(rl_store_t *s)
{
    store_cluster_t *cl = s->impl;
    cl_node_t *n;
    cl_op_t *o;

    cl->closing = 1;
    for (n = cl->nodes; n != NULL; n = n->next) {
        rl_redis_conn_free(n->conn);
        n->conn = NULL;
    }
    for (n = cl->dead; n != NULL; n = n->next) {
        rl_redis_conn_free(n->conn);
        n->conn = NULL;
    }
    for (o = cl->all_ops; o != NULL; o = o->next_all) {
        if (o->state == OP_WAIT) {
            cl_op_done(o, NULL, "disconnected");
        }
    }
    while (cl->all_ops != NULL) {
        o = cl->all_ops;
        cl->all_ops = o->next_all;
        event_free(o->timer);
        rl_redis_cmd_free(&o->cmd);
        free(o);
    }
    while (cl->nodes != NULL) {
        n = cl->nodes;
        cl->nodes = n->next;
        free(n);
    }
    while (cl->dead != NULL) {
        n = cl->dead;
        cl->dead = n->next;
        free(n);
    }
    if (cl->periodic_ev != NULL) {
        event_free(cl->periodic_ev);
    }
    if (cl->refresh_ev != NULL) {
        event_free(cl->refresh_ev);
    }
    if (cl->gc_ev != NULL) {
        event_free(cl->gc_ev);
    }
    SSL_CTX_free(cl->tls_ctx);
    free(cl);
}

static const rl_store_ops_t cl_ops = {
    .decide = cl_decide,
    .reset = cl_reset,
    .connected = cl_connected,
    .free = cl_free,
    .nodes = cl_nodes,
};

/* Seeds: "localhost" is the loopback address the cluster will report. */
static int cl_add_seeds(store_cluster_t *cl)
{
    int i;

    for (i = 0; i < cl->conf->nnodes; i++) {
        const rl_conf_node_t *cn = &cl->conf->nodes[i];
        rl_cluster_addr_t a;

        memset(&a, 0, sizeof(a));
        snprintf(a.host, sizeof(a.host), "%s",
                 strcmp(cn->host, "localhost") == 0 ? "127.0.0.1" : cn->host);
        a.port = cn->port;
        if (cl_node_find(cl, &a) == NULL && cl_node_add(cl, &a, 1) == NULL) {
            return RL_ERR;
        }
    }
    return RL_OK;
}

/* Builds the store, its events and a connection per seed node. */
rl_store_t *rl_store_cluster_new(struct event_base *base,
                                 const rl_conf_store_t *conf)
{
    store_cluster_t *cl = calloc(1, sizeof(*cl));
    struct timeval every;
    char err[256];
    const char *field;

    if (cl == NULL) {
        return NULL;
    }
    cl->pub.ops = &cl_ops;
    cl->pub.impl = cl;
    cl->base = base;
    cl->conf = conf;
    rl_store_redis_script_sha(cl->sha);
    if (conf->tls != NULL &&
        (cl->tls_ctx = rl_redis_tls_ctx_new(conf->tls, &field, err,
                                            sizeof(err))) == NULL) {
        rl_log_kv(RL_LOG_ERROR, "redis TLS set-up failed", "field",
                  field != NULL ? field : "tls", "error", err,
                  (const char *)NULL);
        goto err;
    }
    cl->periodic_ev = event_new(base, -1, EV_PERSIST, cl_periodic, cl);
    cl->refresh_ev = evtimer_new(base, cl_refresh_timer, cl);
    cl->gc_ev = evtimer_new(base, cl_gc, cl);
    if (cl->periodic_ev == NULL || cl->refresh_ev == NULL ||
        cl->gc_ev == NULL) {
        goto err;
    }
    every.tv_sec = conf->refresh_interval_ms / 1000;
    every.tv_usec = (suseconds_t)(conf->refresh_interval_ms % 1000) * 1000;
    if (conf->refresh_interval_ms <= 0) {
        every.tv_sec = 5;
    }
    event_add(cl->periodic_ev, &every);
    if (cl_add_seeds(cl) != RL_OK) {
        goto err;
    }
    return &cl->pub;

err:
    cl_free(&cl->pub);
    return NULL;
}
