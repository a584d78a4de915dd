#ifndef RL_STORE_CLUSTER_INT_H
#define RL_STORE_CLUSTER_INT_H

/* Private to the cluster store (see store_cluster.c for its ownership
 * rules): the types shared by its two files.
 *   store_cluster.c      the op state machine: routing by slot, the
 *                        redirections and retries, the store interface
 *   store_cluster_map.c  the nodes and the slot map: CLUSTER SLOTS
 *                        refreshes, discovery, dropping gone nodes
 *   store_cluster_xm.c   decisions whose parts span slots: per slot,
 *                        reserve and refund
 * Worker thread only. */

#include <stdint.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include "cluster.h"
#include "redis_cmd.h"
#include "redis_conn.h"
#include "store.h"
#include "redis_exec.h"

#define CL_MAX_REDIRECTS 16
#define CL_REFRESH_MIN_US                                                      \
    100000 /* refreshes on errors: at most 10 per second */
#define CL_BACKOFF_MIN_US                                                      \
    1000 /* TRYAGAIN / CLUSTERDOWN / no node: 1, 2, 4 .. */
#define CL_BACKOFF_MAX_US 20000 /* .. up to 20 ms between tries */

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
    rl_redis_exec_op_t x; /* the executor's part: command, callback */
    store_cluster_t *cl;
    cl_op_state_t state;
    struct event *timer; /* WAIT: next try; INFLIGHT after a retry: deadline */
    int slot;
    int64_t deadline_us; /* monotonic */
    int tries;           /* commands sent or attempted */
    int backoffs;
    int redirects;
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
    rl_redis_exec_t ex; /* script, op pool, batches, TLS, warnings */
    cl_node_t
        *slots[RL_CLUSTER_SLOTS]; /* master of each slot, NULL: none known */
    int have_map;                 /* a CLUSTER SLOTS reply was applied */
    cl_node_t *nodes;             /* live, in order of discovery */
    cl_node_t *dead;              /* dropped, freed by gc_ev */
    struct event *periodic_ev;    /* refresh every refresh_interval_ms */
    struct event *refresh_ev;     /* a refresh held back by the rate limit */
    struct event *gc_ev;          /* frees the dead list */
    int refresh_inflight;
    int refresh_armed;  /* refresh_ev is pending */
    int refresh_wanted; /* wanted while no node was reachable */
    int64_t last_refresh_us;
    unsigned rr; /* where the next refresh starts looking */
    char refresh_host[RL_CLUSTER_HOST_MAX]; /* the node asked ("" in replies) */
    int nmasters; /* of the last map, to log changes */
    int nnodes;
};

/* store_cluster_xm.c */

/* 0: op names one slot (the plain path); 1: its parts span slots, no
 * penalties (rl_store_cluster_xm_start); -1: penalties with parts that
 * span slots ("cross_slot"). */
int rl_store_cluster_xm_wanted(const rl_store_op_t *op);

/* Decides (or resets) an op whose parts span slots: per slot, in stages
 * per master, reserving and refunding (see the .c). cb gets exactly one
 * result; op may be freed once this returns. */
void rl_store_cluster_xm_start(store_cluster_t *cl, const rl_store_op_t *op,
                               rl_redis_cmd_kind_t kind, rl_store_cb *cb,
                               void *arg);

/* store_cluster_map.c */

/* Creates the map's events (periodic refresh every refresh_interval_ms,
 * held-back refresh, node GC) and a node per seed. RL_OK or RL_ERR. */
int rl_store_cluster_map_init(store_cluster_t *cl);

/* Asks a connected node for the slot map, rate-limited (see the .c). */
void rl_store_cluster_refresh(store_cluster_t *cl);

/* The live node at a, created if new. NULL if out of memory. */
cl_node_t *rl_store_cluster_node_get(store_cluster_t *cl,
                                     const rl_cluster_addr_t *a);

/* Frees every node's connection (live and dead): pending commands end
 * with "disconnected". The nodes themselves stay until
 * rl_store_cluster_map_free. */
void rl_store_cluster_map_close(store_cluster_t *cl);

/* Frees the nodes and the map's events. */
void rl_store_cluster_map_free(store_cluster_t *cl);

#endif
