#ifndef RL_WORKER_H
#define RL_WORKER_H

#include <pthread.h>
#include <event2/event.h>
#include "conf.h"
#include "http.h"
#include "stats.h"
#include "store.h"
#include "store_mem.h"

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
    rl_store_t *store;
    const rl_conf_t *conf;
    int notify_fd[2];            /* pipe: the main thread writes 's' to stop */
    struct event *notify_ev;
    struct event *tick_ev;       /* 50 ms housekeeping */
    int64_t stop_deadline_us;    /* drain deadline once stopping */
    int store_up;                /* published for /ready (atomic access) */
    rl_stats_t stats;
} rl_worker_t;

/* The process: shared by every worker, read-only after start-up. */
struct rl_app {
    const rl_conf_t *conf;
    rl_worker_t *workers;
    int nworkers;
    rl_mem_table_t *mem;         /* memory store only */
    int64_t started_ms;
    int64_t started_us;          /* monotonic */
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

#endif
