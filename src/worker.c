/* Worker threads: one event loop each, started behind a barrier so the
 * service answers only once every worker is ready. */
#include "worker.h"

#include "grpc_rls.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "log.h"
#include "loop.h"
#include "auth.h"
#include "decide.h"
#include "override.h"
#include "server.h"
#include "store_cluster.h"
#include "sentinel.h"
#include "store_redis.h"
#include "util.h"

#define RL_DRAIN_MS 5000
#define RL_START_GRACE_US 2000000

/* When this worker last gave memory back (worker thread only). */
static _Thread_local int64_t last_trim_us;

/* After a burst, or a large request (a 100 KB header, a megabyte body,
 * a JSON object of 50,000 members), the free lists and the allocator
 * keep what it used: once the worker is idle, shrink the free lists
 * (requests to 16, decision contexts to none) and hand freed pages back,
 * at most once a second, so that memory returns to where it was. Never
 * while a request is in flight. */
static void worker_trim(rl_worker_t *w)
{
    int64_t now = rl_mono_us();

    if (rl_http_server_inflight(w->http) != 0 || now - last_trim_us < 1000000) {
        return;
    }
    rl_http_server_shrink(w->http);
    rl_decide_thread_cleanup();
    if (!rl_http_server_take_large(w->http)) {
        return;
    }
    last_trim_us = now;
    malloc_trim(0);
}

static void worker_publish_store(rl_worker_t *w)
{
    __atomic_store_n(&w->store_up, rl_store_connected(w->store),
                     __ATOMIC_RELAXED);
}

/* Publishes the gauges a scrape reads (single writer: this worker). */
static void worker_publish_gauges(rl_worker_t *w)
{
    RL_STAT_SET(&w->stats, inflight, rl_http_server_inflight(w->http));
    RL_STAT_SET(&w->stats, connections, rl_http_server_connections(w->http));
    RL_STAT_SET(&w->stats, deny_cache_entries,
                rl_deny_cache_size(w->deny_cache));
}

/* Housekeeping every 50 ms: publish store state and gauges; start
 * accepting once every worker's store is up (or the start-up grace has
 * passed, so a Redis that is down at start cannot keep the service from
 * answering by its failure modes); while stopping, exit once in-flight
 * requests are done or the drain deadline has passed. */
static void worker_tick(evutil_socket_t fd, short what, void *arg)
{
    rl_worker_t *w = arg;

    worker_publish_store(w);
    if (w->stop_deadline_us == 0 && !rl_http_server_accepting(w->http) &&
        (rl_app_store_up(w->app) ||
         rl_mono_us() > w->app->started_us + RL_START_GRACE_US)) {
        rl_http_server_start_accepting(w->http);
    }
    worker_trim(w);
    worker_publish_gauges(w);
    /* Open connections count too: a last reply may still be flushing. */
    if (w->stop_deadline_us != 0 &&
        ((rl_http_server_connections(w->http) == 0 &&
          rl_grpc_server_connections(w->grpc) == 0) ||
         rl_mono_us() > w->stop_deadline_us)) {
        event_base_loopexit(w->base, NULL);
    }
}

/* (Re)builds or empties the deny cache for the worker's current conf:
 * a new generation never serves a denial decided under an older one. */
static void worker_deny_cache_sync(rl_worker_t *w)
{
    const rl_conf_ops_t *ops = &w->conf->ops;

    if (w->deny_cache == NULL ||
        ops->deny_cache_entries != w->deny_cache_entries ||
        ops->deny_cache_max_ttl_ms != w->deny_cache_ttl_ms) {
        rl_deny_cache_free(w->deny_cache);
        w->deny_cache = rl_deny_cache_new((size_t)ops->deny_cache_entries,
                                          ops->deny_cache_max_ttl_ms * 1000);
        w->deny_cache_entries = ops->deny_cache_entries;
        w->deny_cache_ttl_ms = ops->deny_cache_max_ttl_ms;
    }
    if (w->deny_cache != NULL) {
        rl_deny_cache_clear(w->deny_cache, w->conf->generation);
    }
    rl_deny_cache_self = w->deny_cache;
}

/* Adopts the conf waiting in the mailbox, if any. Requests already in
 * flight keep the conf they pinned. Worker thread. */
static void worker_adopt_conf(rl_worker_t *w)
{
    rl_confref_t *ref =
        __atomic_exchange_n(&w->next_conf, NULL, __ATOMIC_ACQ_REL);

    if (ref == NULL) {
        return;
    }
    if (rl_confref_adopt(ref) != 0) {
        rl_error("worker %d: out of memory adopting a new configuration; "
                 "keeping the old one",
                 w->id);
        return;
    }
    w->conf = rl_confref_conf(ref);
    worker_deny_cache_sync(w);
    rl_debug("worker %d: configuration generation %llu in force", w->id,
             (unsigned long long)w->conf->generation);
}

/* The notify pipe: 'r' = a new conf is in the mailbox, 's' = stop. */
static void worker_notify(evutil_socket_t fd, short what, void *arg)
{
    rl_worker_t *w = arg;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf));
    int stop = 0;
    ssize_t i;

    if (n <= 0) {
        return;
    }
    for (i = 0; i < n; i++) {
        if (buf[i] == 's') {
            stop = 1;
        }
    }
    worker_adopt_conf(w);
    if (!stop || w->stop_deadline_us != 0) {
        return;
    }
    w->stop_deadline_us = rl_mono_us() + (int64_t)RL_DRAIN_MS * 1000;
    rl_http_server_stop_accepting(w->http);
    rl_grpc_server_stop(w->grpc);
    worker_tick(-1, 0, w);
}

void rl_worker_send_conf(rl_worker_t *w, rl_confref_t *ref)
{
    rl_confref_t *old =
        __atomic_exchange_n(&w->next_conf, ref, __ATOMIC_ACQ_REL);
    ssize_t n;

    /* A conf the worker never picked up is replaced: drop its reference. */
    rl_confref_release(old);
    do {
        n = write(w->notify_fd[1], "r", 1);
    } while (n < 0 && errno == EINTR);
}

void rl_worker_access_log(rl_worker_t *w, const char *id, const char *policy,
                          const char *verdict, int status, int64_t latency_us,
                          int cached)
{
    double sample = w->conf->ops.access_log_sample;
    char line[768];
    size_t n;
    uint64_t x;

    if (sample <= 0.0 || w->app->access_log == NULL) {
        return;
    }
    if (sample < 1.0) {
        x = w->rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w->rng = x;
        if ((double)(x >> 11) * (1.0 / 9007199254740992.0) >= sample) {
            return;
        }
    }
    n = rl_access_log_format(line, sizeof(line), rl_now_ms(), id, policy,
                             verdict, status, latency_us, cached);
    if (n == 0 || rl_access_log_push(w->app->access_log, w->id, line, n) != 0) {
        RL_STAT_INC(&w->stats, access_log_dropped);
    }
}

/* The worker's store for store.type and its topology (cluster,
 * Sentinel, standalone); NULL on failure. Worker thread. */
static rl_store_t *worker_store_new(rl_worker_t *w, rl_app_t *app,
                                    const rl_conf_t *conf)
{
    if (conf->store.type == RL_STORE_MEMORY) {
        return rl_store_mem_new(app->mem, NULL, NULL);
    }
    if (conf->store.cluster) {
        return rl_store_cluster_new(w->base, &conf->store);
    }
    if (conf->store.sentinel != NULL) {
        return rl_store_sentinel_new(w->base, &conf->store);
    }
    return rl_store_redis_new(w->base, &conf->store);
}

/* The worker's gRPC listener, when conf has a "grpc" section. 0 or -1. */
static int worker_grpc_init(rl_worker_t *w, const rl_conf_t *conf)
{
    char err[256];

    if (conf->grpc == NULL) {
        return 0;
    }
    w->grpc = rl_grpc_server_new(w->base, conf->grpc, rl_grpc_rls_handle, w,
                                 rl_auth_caller_headers, err, sizeof(err));
    if (w->grpc == NULL) {
        rl_error("worker %d: %s", w->id, err);
        return -1;
    }
    return 0;
}

int rl_worker_init(rl_worker_t *w, rl_app_t *app, int id, int listen_fd)
{
    const rl_conf_t *conf = app->conf;
    struct event_config *cfg = NULL;
    struct timeval tick = {0, 50000};
    char prefix[17];

    memset(w, 0, sizeof(*w));
    w->id = id;
    w->app = app;
    w->conf = conf;
    w->listen_fd = listen_fd;
    w->notify_fd[0] = w->notify_fd[1] = -1;

    cfg = event_config_new();
    if (cfg == NULL) {
        goto err;
    }
    /* The changelist folds a read that is disabled at dispatch and enabled
     * again by a reply in the same loop iteration (a deny-cache hit, the
     * memory store) into no epoll_ctl at all. No fd is dup()ed here. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK |
                                   EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (w->base == NULL ||
        event_base_priority_init(w->base, RL_LOOP_PRIORITIES) != 0) {
        goto err;
    }

    if (pipe2(w->notify_fd, O_NONBLOCK | O_CLOEXEC) != 0) {
        goto err;
    }
    w->notify_ev = event_new(w->base, w->notify_fd[0], EV_READ | EV_PERSIST,
                             worker_notify, w);
    w->tick_ev = event_new(w->base, -1, EV_PERSIST, worker_tick, w);
    if (w->notify_ev == NULL || w->tick_ev == NULL) {
        goto err;
    }
    event_add(w->notify_ev, NULL);
    event_add(w->tick_ev, &tick);

    w->store = worker_store_new(w, app, conf);
    w->topkeys = rl_topkeys_new();
    if (w->store == NULL || w->topkeys == NULL) {
        goto err;
    }

    /* Request ids: a random per-worker prefix plus a counter, unique
     * without a syscall per request. */
    {
        char id32[33];
        rl_random_id(id32, sizeof(id32));
        memcpy(prefix, id32, 16);
        prefix[16] = '\0';
    }
    w->http = rl_http_server_new(w->base, listen_fd, &conf->http, prefix,
                                 rl_server_handle, w);
    if (w->http == NULL) {
        goto err;
    }
    if (worker_grpc_init(w, conf) != 0) {
        goto err;
    }
    {
        /* Seed of the access log sampling: 16 random hex digits. */
        char seed[33];
        rl_random_id(seed, sizeof(seed));
        w->rng = strtoull(seed + 16, NULL, 16) | 1;
    }
    return 0;

err:
    rl_error("worker %d: initialisation failed", id);
    return -1;
}

static void *worker_main(void *arg)
{
    rl_worker_t *w = arg;

    rl_stats_self = &w->stats;
    rl_topkeys_self = w->topkeys;
    worker_adopt_conf(w);
    worker_deny_cache_sync(w);
    if (rl_override_worker_start(w->base, w->store, &w->conf) != 0) {
        rl_error("worker %d: admin overrides not polled (out of memory)",
                 w->id);
    }
    event_base_dispatch(w->base);
    rl_override_worker_stop();
    /* Pending store operations end here, on this thread, so the decision
     * contexts they free return to this thread's list before it goes
     * (and unpin their confs). */
    rl_store_free(w->store);
    w->store = NULL;
    rl_decide_thread_cleanup();
    rl_auth_thread_cleanup();
    rl_confref_thread_cleanup();
    rl_confref_release(
        __atomic_exchange_n(&w->next_conf, NULL, __ATOMIC_ACQ_REL));
    rl_stats_self = NULL;
    rl_deny_cache_self = NULL;
    rl_topkeys_self = NULL;
    return NULL;
}

int rl_worker_start(rl_worker_t *w)
{
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        return -1;
    }
    w->started = 1;
    return 0;
}

/* Frees the top keys of every started worker once all of them are
 * joined: until then a running one may read them (GET /v1/admin/top).
 * Main thread. */
static void worker_topkeys_release(rl_app_t *app)
{
    int i;

    for (i = 0; i < app->nworkers; i++) {
        if (app->workers[i].started && !app->workers[i].joined) {
            return;
        }
    }
    for (i = 0; i < app->nworkers; i++) {
        if (app->workers[i].started) {
            rl_topkeys_free(app->workers[i].topkeys);
            app->workers[i].topkeys = NULL;
        }
    }
}

void rl_worker_stop(rl_worker_t *w)
{
    ssize_t n;
    do {
        n = write(w->notify_fd[1], "s", 1);
    } while (n < 0 && errno == EINTR);
}

void rl_worker_destroy(rl_worker_t *w)
{
    /* A started worker's store went first, on its own thread
     * (worker_main): failing its pending operations answered their
     * requests while the HTTP server still held their connections. */
    rl_store_free(w->store);
    w->store = NULL;
    rl_grpc_server_free(w->grpc);
    w->grpc = NULL;
    rl_http_server_free(w->http);
    w->http = NULL;
    if (!w->started) { /* a started one's go with the last join */
        rl_topkeys_free(w->topkeys);
        w->topkeys = NULL;
    }
    if (w->tick_ev != NULL) {
        event_free(w->tick_ev);
    }
    if (w->notify_ev != NULL) {
        event_free(w->notify_ev);
    }
    if (w->notify_fd[0] >= 0) {
        close(w->notify_fd[0]);
    }
    if (w->notify_fd[1] >= 0) {
        close(w->notify_fd[1]);
    }
    if (w->base != NULL) {
        event_base_free(w->base);
    }
    w->tick_ev = w->notify_ev = NULL;
    w->notify_fd[0] = w->notify_fd[1] = -1;
    w->base = NULL;
    rl_deny_cache_free(w->deny_cache);
    w->deny_cache = NULL;
    rl_stats_free(&w->stats);
    rl_confref_release(w->next_conf);
    w->next_conf = NULL;
}

void rl_worker_join(rl_worker_t *w)
{
    pthread_join(w->thread, NULL);
    w->joined = 1;
    worker_topkeys_release(w->app);
    rl_worker_destroy(w);
}

int rl_app_store_up(const rl_app_t *app)
{
    int i;
    for (i = 0; i < app->nworkers; i++) {
        if (!__atomic_load_n(&app->workers[i].store_up, __ATOMIC_RELAXED)) {
            return 0;
        }
    }
    return 1;
}
