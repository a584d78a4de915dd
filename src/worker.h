#ifndef RL_WORKER_H
#define RL_WORKER_H

#include <pthread.h>
#include <event2/event.h>
#include <jansson.h>
#include "access_log.h"
#include "conf.h"
#include "confref.h"
#include "decide.h"
#include "deny_cache.h"
#include "grpc.h"
#include "http.h"
#include "stats.h"
#include "store.h"
#include "store_mem.h"
#include "topkeys.h"

/* A worker thread: its own event_base (created without locks: only a
 * byte on the notify pipe crosses threads, memcached-style), HTTP server
 * on its own listening socket, store connection and counters. */

typedef struct rl_app rl_app_t;

typedef struct rl_worker {
    int id;
    rl_app_t *app;
    pthread_t thread;
    struct event_base *base;
    int listen_fd;
    rl_http_server_t *http;
    rl_grpc_server_t *grpc; /* NULL: no "grpc" section */
    rl_store_t *store;
    const rl_conf_t *conf; /* the current conf (swapped by a reload) */
    rl_confref_t
        *next_conf; /* mailbox: a reload's conf not yet adopted (atomic) */
    rl_deny_cache_t *deny_cache; /* NULL when "deny_cache.entries" is 0 */
    int64_t deny_cache_entries;  /* the settings it was built with */
    int64_t deny_cache_ttl_ms;
    uint64_t rng;     /* access log sampling (xorshift) */
    int notify_fd[2]; /* pipe: the main thread writes 's' to stop, 'r' to reload
                       */
    struct event *notify_ev;
    struct event *tick_ev;    /* 50 ms housekeeping */
    int64_t stop_deadline_us; /* drain deadline once stopping */
    int store_up;             /* published for /ready (atomic access) */
    rl_topkeys_t *topkeys;    /* written here, read by any worker */
    int started, joined;      /* main thread: the thread ran / has ended */
    rl_stats_t stats;
} rl_worker_t;

/* The process: shared by every worker. Read-only after start-up except
 * the reload fields, which the main thread writes (atomics where a
 * scrape reads them). */
struct rl_app {
    const rl_conf_t *conf; /* the main thread's current conf */
    rl_worker_t *workers;
    int nworkers;
    rl_mem_table_t *mem; /* memory store only */
    int64_t started_ms;
    int64_t started_us; /* monotonic */
    rl_access_log_t *access_log;
    /* Reload (reload.c), main thread. */
    rl_confref_t *conf_ref; /* the main thread's reference to conf */
    const char *conf_path;
    json_t *conf_json; /* the running file, to compare restart-only sections */
    int listen_overridden; /* --listen given: "listen" is not compared */
    int verbose;           /* -v: the log level stays debug */
    uint64_t generation;
    uint64_t reloads_ok;     /* atomic */
    uint64_t reloads_failed; /* atomic */
    int64_t reload_ms; /* atomic: wall clock of the last successful (re)load */
};

/* Creates the worker's loop, store and HTTP server (main thread, before
 * start). Returns 0 or -1. */
int rl_worker_init(rl_worker_t *w, rl_app_t *app, int id, int listen_fd);

/* Starts the thread; rl_worker_stop asks it to drain (any thread);
 * rl_worker_join waits for it and frees its resources. */
int rl_worker_start(rl_worker_t *w);
void rl_worker_stop(rl_worker_t *w);
void rl_worker_join(rl_worker_t *w);

/* Frees what rl_worker_init built, for a worker whose thread has ended or
 * never started. Main thread. */
void rl_worker_destroy(rl_worker_t *w);

/* 1 if every worker's store connection is up (any thread). */
int rl_app_store_up(const rl_app_t *app);

/* Hands ref to w: the worker adopts it on its next loop iteration. The
 * caller gives w one reference. Main thread. */
void rl_worker_send_conf(rl_worker_t *w, rl_confref_t *ref);

/* Writes one sampled access log line for a finished decision (the
 * worker's own thread): request id, policy name (NULL: none), verdict
 * word and the status the client got, as the outcome table says
 * (api.c's rl_api_access_log). */
void rl_worker_access_log(rl_worker_t *w, const char *id, const char *policy,
                          const char *verdict, int status, int64_t latency_us,
                          int cached);

#endif
