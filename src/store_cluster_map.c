/* The cluster store's nodes and slot map (see store_cluster_int.h): a
 * connection per node, the master of each of the 16384 slots, refreshed
 * from CLUSTER SLOTS at start, on errors that hint at a change (at most
 * ten times a second) and every refresh_interval_ms. A node the map no
 * longer names (seeds stay) moves to the dead list and is freed from a
 * zero-delay event, never from inside its own connection's callback.
 * Worker thread only. */
#include "store_cluster_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "util.h"

#define CL_REFRESH_MIN_US                                                      \
    100000 /* refreshes on errors: at most 10 per second */

/* ------------------------------------------------------------------ */
/* Nodes                                                               */
/* ------------------------------------------------------------------ */

/* on_connect: every node is sent the library (a replica refuses it and
 * has it from its master, so one promoted later has it too), and a map is
 * asked for if none is known yet. */
static void cl_node_connected(void *arg, rl_redis_conn_t *c)
{
    cl_node_t *n = arg;
    store_cluster_t *cl = n->cl;

    rl_redis_exec_load_library(&cl->ex, c);
    if (!cl->have_map || cl->refresh_wanted) {
        rl_store_cluster_refresh(cl);
    }
}

/* on_disconnect: a lost node may mean a failover; look again. */
static void cl_node_disconnected(void *arg, rl_redis_conn_t *c)
{
    cl_node_t *n = arg;

    rl_store_cluster_refresh(n->cl);
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
    rl_redis_exec_conn_opts(cl->conf, a->host, a->port, cl->ex.tls_ctx, &opts);
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
cl_node_t *rl_store_cluster_node_get(store_cluster_t *cl,
                                     const rl_cluster_addr_t *a)
{
    cl_node_t *n = cl_node_find(cl, a);

    return n != NULL ? n : cl_node_add(cl, a, 0);
}

/* Frees n and its connection; pending commands end with "disconnected". */
static void cl_node_free(cl_node_t *n)
{
    rl_redis_exec_forget_conn(&n->cl->ex, n->conn);
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
    cl_node_t *n = rl_store_cluster_node_get(cl, a);
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
        rl_redis_exec_warn(
            &cl->ex, "redis cluster: out of memory while applying the slot map",
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
    if (cl->ex.closing) {
        return;
    }
    if (reply == NULL) {
        cl->refresh_wanted = 1;
        rl_store_cluster_refresh(cl);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        rl_redis_exec_warn(&cl->ex,
                           "redis CLUSTER SLOTS failed (is it a cluster?)",
                           reply->str);
        return;
    }
    if (rl_cluster_slots_walk(reply, cl->refresh_host, NULL, NULL, &skipped) <
        0) {
        rl_redis_exec_warn(&cl->ex, "redis CLUSTER SLOTS reply not understood",
                           "");
        return;
    }
    if (skipped > 0) {
        rl_redis_exec_warn(
            &cl->ex,
            "redis cluster: nodes without a numeric IP address are ignored",
            "set cluster-preferred-endpoint-type ip");
    }
    cl_apply(cl, reply);
}

/* Asks a connected node for the slot map, at most once per
 * CL_REFRESH_MIN_US: a refresh asked for sooner is held back until then;
 * one asked for while no node is connected runs at the next connect. */
void rl_store_cluster_refresh(store_cluster_t *cl)
{
    static const char *const argv[2] = {"CLUSTER", "SLOTS"};
    static const size_t argvlen[2] = {7, 5};
    int64_t now = rl_mono_us();
    cl_node_t *n;

    if (cl->ex.closing || cl->refresh_inflight) {
        return;
    }
    if (cl->last_refresh_us != 0 &&
        now - cl->last_refresh_us < CL_REFRESH_MIN_US) {
        if (!cl->refresh_armed) {
            cl->refresh_armed = 1;
            rl_loop_timer_at(cl->refresh_ev,
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
    rl_store_cluster_refresh(cl);
}

/* periodic_ev: catches changes that caused no error (a new replica, a
 * failover of a master no request went to). */
static void cl_periodic(evutil_socket_t fd, short what, void *arg)
{
    rl_store_cluster_refresh(arg);
}

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

/* The map's events and the seed nodes (see store_cluster_int.h). */
int rl_store_cluster_map_init(store_cluster_t *cl)
{
    const rl_conf_store_t *conf = cl->conf;
    struct timeval every;

    cl->periodic_ev = event_new(cl->base, -1, EV_PERSIST, cl_periodic, cl);
    cl->refresh_ev = evtimer_new(cl->base, cl_refresh_timer, cl);
    cl->gc_ev = evtimer_new(cl->base, cl_gc, cl);
    if (cl->periodic_ev == NULL || cl->refresh_ev == NULL ||
        cl->gc_ev == NULL) {
        return RL_ERR;
    }
    every.tv_sec = conf->refresh_interval_ms / 1000;
    every.tv_usec = (suseconds_t)(conf->refresh_interval_ms % 1000) * 1000;
    if (conf->refresh_interval_ms <= 0) {
        every.tv_sec = 5;
    }
    event_add(cl->periodic_ev, &every);
    return cl_add_seeds(cl);
}

/* Closes every node's connection (see store_cluster_int.h). */
void rl_store_cluster_map_close(store_cluster_t *cl)
{
    cl_node_t *n;

    for (n = cl->nodes; n != NULL; n = n->next) {
        rl_redis_conn_free(n->conn);
        n->conn = NULL;
    }
    for (n = cl->dead; n != NULL; n = n->next) {
        rl_redis_conn_free(n->conn);
        n->conn = NULL;
    }
}

/* Frees the node structs and the events. */
void rl_store_cluster_map_free(store_cluster_t *cl)
{
    cl_node_t *n;

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
    rl_loop_event_free(cl->periodic_ev);
    rl_loop_event_free(cl->refresh_ev);
    rl_loop_event_free(cl->gc_ev);
}
