/* The Redis Sentinel client of one worker: which node is the master now.
 *
 * Asking: one rl_redis_conn per sentinel (the sentinels' own AUTH, TLS
 * with store.tls), each reconnecting by itself. An ask sends SENTINEL
 * get-master-addr-by-name to the sentinel that answered last, and on a
 * failure, a nil or an error reply to the next one, until one names a
 * master or every one was tried. The timer asks once a second; every
 * 100 ms while no master is known, and for 30 s after the owner reported
 * trouble (rl_sentinel_reask) or a +switch-master message; at once on a
 * (re)subscription (sentinel_sub.c).
 *
 * Verifying: a node the sentinels name that is not the current master is
 * probed on a connection of its own with the store's AUTH and TLS; only
 * if ROLE answers "master" is it reported to the owner. A node ROLE
 * refuses (a replica) is logged once and not probed again for a second,
 * however often the sentinels name it. A sentinel that has
 * not noticed a failover yet names the old master: before the switch
 * that is no news; after it, the master left is not taken back (the next
 * sentinel is asked instead) unless the owner has reported trouble with
 * the new one since. A +switch-master message's new address is checked
 * at once, without asking.
 *
 * A probe is never freed from its own callbacks: a finished one waits in
 * "dead" until the next timer callback. Worker thread only. */
#include "sentinel.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "redis_conn.h"
#include "sentinel_parse.h"
#include "stats.h"
#include "redis_exec.h"
#include "util.h"

#define SENTINEL_ASK_EVERY_MS 1000
#define SENTINEL_ASK_FAST_MS 100
#define SENTINEL_FAST_FOR_MS 30000
#define SENTINEL_MIN_TIMEOUT_MS 250 /* a sentinel query's deadline */
#define SENTINEL_REPROBE_MS 1000    /* a node ROLE refused, checked again */
#define SENTINEL_HOST_MAX RL_SENTINEL_HOST_MAX
#define SENTINEL_NAME_MAX 96
#define SENTINEL_SAID_MAX 160

/* A ROLE check of host:port on a connection of its own. */
typedef struct sentinel_probe {
    rl_sentinel_t *s;
    rl_redis_conn_t *conn;
    char host[SENTINEL_HOST_MAX];
    int port;
} sentinel_probe_t;

typedef struct sentinel_node {
    char name[SENTINEL_NAME_MAX]; /* "sentinel host:port", for /ready */
    rl_redis_conn_t *conn;
    /* What it last answered instead of a master, as logged; "" if it
     * named one since. */
    char said[SENTINEL_SAID_MAX];
} sentinel_node_t;

struct rl_sentinel {
    struct event_base *base;
    const rl_conf_store_t *conf;
    SSL_CTX *tls_ctx; /* referenced; NULL: plain TCP */
    rl_sentinel_master_fn *fn;
    void *arg;
    sentinel_node_t *nodes;
    int n;
    int first;   /* the node asked first: the last one that answered */
    int tried;   /* nodes tried by the ask in flight */
    int asking;  /* an ask is in flight */
    int closing; /* rl_sentinel_free runs: replies are ignored */
    int64_t fast_until_us;
    struct event *timer;
    rl_sentinel_sub_t *sub;
    char master[SENTINEL_HOST_MAX]; /* the verified master; "" if none */
    int master_port;
    char left[SENTINEL_HOST_MAX]; /* the master before it; "" if none */
    int left_port;
    int trouble; /* the owner reported trouble since the last switch */
    sentinel_probe_t *probe; /* the node being checked; NULL if none */
    sentinel_probe_t *dead;  /* a finished probe, freed by the timer */
    char refused[SENTINEL_HOST_MAX + 8]; /* last address refused, logged */
    int64_t refused_until_us; /* not probed again before (ROLE refusal) */
};

static void sentinel_ask_next(rl_sentinel_t *s);

/* ------------------------------------------------------------------ */
/* Verifying a master                                                  */
/* ------------------------------------------------------------------ */

/* Frees p and its connection (NULL is fine). Never from p's callbacks. */
static void sentinel_probe_free(sentinel_probe_t *p)
{
    if (p != NULL) {
        rl_redis_conn_free(p->conn);
        free(p);
    }
}

/* Retires the probe (freed by the next timer callback; one that was
 * waiting already is freed now, which is safe: it has no callback
 * running). */
static void sentinel_probe_drop(rl_sentinel_t *s)
{
    if (s->probe == NULL) {
        return;
    }
    sentinel_probe_free(s->dead);
    s->dead = s->probe;
    s->probe = NULL;
    rl_loop_timer_at(s->timer, rl_mono_us());
}

/* Remembers host:port as refused, logging why once per address. */
static void sentinel_refuse(rl_sentinel_t *s, const char *host, int port,
                            const char *why)
{
    char seen[sizeof(s->refused)];
    char portstr[16];

    snprintf(seen, sizeof(seen), "%.*s:%d", SENTINEL_HOST_MAX - 1, host, port);
    if (strcmp(seen, s->refused) != 0) {
        snprintf(s->refused, sizeof(s->refused), "%s", seen);
        snprintf(portstr, sizeof(portstr), "%d", port);
        rl_log_kv(RL_LOG_WARN, why, "host", host, "port", portstr,
                  (const char *)NULL);
    }
}

/* 1 if host:port may be probed now: a numeric address (or localhost: no
 * DNS on a worker), and not refused by ROLE within the last second. */
static int sentinel_usable(rl_sentinel_t *s, const char *host, int port)
{
    char seen[sizeof(s->refused)];
    struct in6_addr a6; /* big enough for either family */

    if (strcmp(host, "localhost") != 0 && inet_pton(AF_INET, host, &a6) != 1 &&
        inet_pton(AF_INET6, host, &a6) != 1) {
        sentinel_refuse(s, host, port,
                        "sentinel named a master that is not a numeric IP "
                        "address (set resolve-hostnames no on the sentinels)");
        return 0;
    }
    snprintf(seen, sizeof(seen), "%.*s:%d", SENTINEL_HOST_MAX - 1, host, port);
    return strcmp(seen, s->refused) != 0 || rl_mono_us() >= s->refused_until_us;
}

/* Reply to ROLE on the probe: "master" makes the node the master and
 * tells the owner; anything else (a replica, an error) is refused, and
 * that node is not probed again for a second. NULL (timeout, lost): the
 * probe reconnects and asks again by itself. */
static void sentinel_role_reply(void *arg, redisReply *reply, const char *err)
{
    sentinel_probe_t *p = arg;
    rl_sentinel_t *s = p->s;
    char host[SENTINEL_HOST_MAX];
    char port[16];
    int is_master;

    (void)err;
    if (reply == NULL || s->closing || p != s->probe) {
        return;
    }
    is_master = rl_sentinel_parse_role(reply);
    snprintf(host, sizeof(host), "%s", p->host);
    snprintf(port, sizeof(port), "%d", p->port);
    if (!is_master) {
        sentinel_refuse(s, host, p->port,
                        "sentinel named a node that is not a master");
        s->refused_until_us =
            rl_mono_us() + (int64_t)SENTINEL_REPROBE_MS * 1000;
        sentinel_probe_drop(s);
        return;
    }
    snprintf(s->left, sizeof(s->left), "%s", s->master);
    s->left_port = s->master_port;
    s->trouble = 0;
    s->refused[0] = '\0'; /* a later refusal of any node is news */
    s->master_port = p->port;
    snprintf(s->master, sizeof(s->master), "%s", host);
    sentinel_probe_drop(s);
    rl_log_kv(RL_LOG_INFO, "sentinel master verified", "master",
              s->conf->sentinel->master, "host", host, "port", port,
              (const char *)NULL);
    s->fn(s->arg, host, s->master_port);
}

/* on_connect of a probe: ask the node its role (a retired probe that
 * connects late asks nothing). */
static void sentinel_probe_connected(void *arg, rl_redis_conn_t *c)
{
    static const char *const argv[] = {"ROLE"};
    static const size_t argvlen[] = {4};
    sentinel_probe_t *p = arg;

    if (p == p->s->probe) {
        rl_redis_conn_command(c, 1, (const char **)argv, argvlen,
                              sentinel_role_reply, p);
    }
}

/* A sentinel named host:port: nothing to do if it is the master already
 * or being probed; otherwise a probe replaces any other. */
static void sentinel_candidate(rl_sentinel_t *s, const char *host, int port)
{
    rl_redis_conn_opts_t opts;
    sentinel_probe_t *p = NULL;

    if (port == s->master_port && strcmp(host, s->master) == 0) {
        sentinel_probe_drop(s);
        return;
    }
    if (s->probe != NULL && port == s->probe->port &&
        strcmp(host, s->probe->host) == 0) {
        return;
    }
    sentinel_probe_drop(s);
    if (strlen(host) >= sizeof(p->host) || !sentinel_usable(s, host, port) ||
        (p = calloc(1, sizeof(*p))) == NULL) {
        return;
    }
    p->s = s;
    snprintf(p->host, sizeof(p->host), "%s", host);
    p->port = port;
    rl_redis_exec_conn_opts(s->conf, p->host, port, s->tls_ctx, &opts);
    opts.on_connect = sentinel_probe_connected;
    opts.hook_arg = p;
    p->conn = rl_redis_conn_new(s->base, &opts);
    if (p->conn == NULL) {
        free(p);
        return;
    }
    s->probe = p;
}

/* ------------------------------------------------------------------ */
/* Asking the sentinels                                                */
/* ------------------------------------------------------------------ */

/* The sentinel the ask in flight was sent to. */
static sentinel_node_t *sentinel_asked(rl_sentinel_t *s)
{
    return &s->nodes[(s->first + s->tried - 1) % s->n];
}

/* Logs a sentinel's answer that names no master (an error, or a nil: it
 * does not monitor a master of that name) once, until it answers
 * something else: it is asked 10 times a second while none is known. */
static void sentinel_note_answer(rl_sentinel_t *s, const redisReply *reply)
{
    sentinel_node_t *node = sentinel_asked(s);
    const char *error = reply->type == REDIS_REPLY_ERROR ? reply->str : NULL;
    char said[SENTINEL_SAID_MAX];

    snprintf(said, sizeof(said), "%s",
             error != NULL                    ? error
             : reply->type == REDIS_REPLY_NIL ? "(nil)"
                                              : "(malformed)");
    if (strcmp(said, node->said) == 0) {
        return;
    }
    snprintf(node->said, sizeof(node->said), "%s", said);
    if (error != NULL) {
        rl_log_kv(RL_LOG_WARN, "sentinel refused the query", "sentinel",
                  node->name, "error", error, (const char *)NULL);
    } else {
        rl_log_kv(RL_LOG_WARN,
                  reply->type == REDIS_REPLY_NIL
                      ? "sentinel does not know the master"
                      : "sentinel answered no address for the master",
                  "sentinel", node->name, "master", s->conf->sentinel->master,
                  (const char *)NULL);
    }
}

/* Reply to SENTINEL get-master-addr-by-name: [host, port] names the
 * master; a nil (unknown name), an error, a malformed reply
 * (sentinel_parse.c) or a failure moves on to the next sentinel. */
static void sentinel_ask_reply(void *arg, redisReply *reply, const char *err)
{
    rl_sentinel_t *s = arg;
    char host[SENTINEL_HOST_MAX];
    int port;

    (void)err;
    if (s->closing) {
        return;
    }
    if (rl_sentinel_parse_master_addr(reply, host, sizeof(host), &port) ==
        RL_OK) {
        sentinel_asked(s)->said[0] = '\0';
        if (port == s->left_port && !s->trouble && strcmp(host, s->left) == 0) {
            /* A sentinel that has not heard of the switch yet. */
            sentinel_ask_next(s);
            return;
        }
        s->asking = 0;
        s->first = (s->first + s->tried - 1) % s->n;
        sentinel_candidate(s, host, port);
        return;
    }
    if (reply != NULL) {
        sentinel_note_answer(s, reply);
    }
    sentinel_ask_next(s);
}

/* Sends the query to the next connected sentinel not tried yet; ends the
 * ask when every one was tried. */
static void sentinel_ask_next(rl_sentinel_t *s)
{
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name",
                           s->conf->sentinel->master};
    size_t argvlen[3] = {8, 23, strlen(s->conf->sentinel->master)};

    while (s->tried < s->n) {
        rl_redis_conn_t *c = s->nodes[(s->first + s->tried) % s->n].conn;

        s->tried++;
        if (rl_redis_conn_connected(c)) {
            /* A failure at once calls sentinel_ask_reply, which moves on. */
            rl_redis_conn_command(c, 3, argv, argvlen, sentinel_ask_reply, s);
            return;
        }
    }
    s->asking = 0;
}

/* Starts an ask unless one is in flight. */
static void sentinel_ask(rl_sentinel_t *s)
{
    if (s->asking) {
        return;
    }
    s->asking = 1;
    s->tried = 0;
    sentinel_ask_next(s);
}

/* The timer: frees a finished probe, asks, and sets the next ask. */
static void sentinel_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    rl_sentinel_t *s = arg;
    int64_t now = rl_mono_us();
    int fast = s->master[0] == '\0' || now < s->fast_until_us;

    (void)fd;
    (void)what;
    sentinel_probe_free(s->dead);
    s->dead = NULL;
    sentinel_ask(s);
    rl_loop_timer_at(s->timer, now + (int64_t)(fast ? SENTINEL_ASK_FAST_MS
                                                    : SENTINEL_ASK_EVERY_MS) *
                                         1000);
}

/* A +switch-master message for our master: its new address is checked
 * at once, and the sentinels asked often for a while; a new subscription
 * (name NULL): ask at once. */
static void sentinel_sub_event(void *arg, const char *name, const char *host,
                               int port)
{
    rl_sentinel_t *s = arg;

    if (name == NULL) {
        rl_loop_timer_at(s->timer, rl_mono_us());
    } else if (strcmp(name, s->conf->sentinel->master) == 0) {
        s->fast_until_us = rl_mono_us() + (int64_t)SENTINEL_FAST_FOR_MS * 1000;
        sentinel_candidate(s, host, port);
    }
}

/* ------------------------------------------------------------------ */
/* Public interface                                                    */
/* ------------------------------------------------------------------ */

/* Asks soon, and every 100 ms for a while (see the top of the file);
 * the master we left last may be taken back now. */
void rl_sentinel_reask(rl_sentinel_t *s)
{
    s->trouble = 1;
    s->fast_until_us = rl_mono_us() + (int64_t)SENTINEL_FAST_FOR_MS * 1000;
    rl_loop_timer_at(s->timer, rl_mono_us());
}

/* Each sentinel and whether its query connection is up. */
void rl_sentinel_nodes(rl_sentinel_t *s, rl_store_node_fn *fn, void *arg)
{
    int i;

    for (i = 0; i < s->n; i++) {
        fn(arg, s->nodes[i].name,
           rl_redis_conn_connected(s->nodes[i].conn) ? "up" : "down");
    }
}

/* Frees the connections, the subscription and s. */
void rl_sentinel_free(rl_sentinel_t *s)
{
    int i;

    if (s == NULL) {
        return;
    }
    s->closing = 1;
    rl_loop_event_free(s->timer);
    rl_sentinel_sub_free(s->sub);
    sentinel_probe_free(s->probe);
    sentinel_probe_free(s->dead);
    for (i = 0; i < s->n; i++) {
        rl_redis_conn_free(s->nodes[i].conn);
    }
    free(s->nodes);
    SSL_CTX_free(s->tls_ctx);
    free(s);
}

/* One query connection per sentinel; RL_OK or RL_ERR. */
static int sentinel_open_nodes(rl_sentinel_t *s)
{
    const rl_conf_sentinel_t *sc = s->conf->sentinel;
    rl_redis_conn_opts_t opts;
    int i;

    s->nodes = calloc((size_t)sc->nnodes, sizeof(*s->nodes));
    if (s->nodes == NULL) {
        return RL_ERR;
    }
    for (i = 0; i < sc->nnodes; i++) {
        const rl_conf_node_t *cn = &sc->nodes[i];

        snprintf(s->nodes[i].name, sizeof(s->nodes[i].name),
                 strchr(cn->host, ':') != NULL ? "sentinel [%s]:%d"
                                               : "sentinel %s:%d",
                 cn->host, cn->port);
        rl_redis_exec_conn_opts(s->conf, cn->host, cn->port, s->tls_ctx, &opts);
        opts.username = sc->username;
        opts.password = sc->password;
        if (opts.timeout_ms < SENTINEL_MIN_TIMEOUT_MS) {
            opts.timeout_ms = SENTINEL_MIN_TIMEOUT_MS;
        }
        s->nodes[i].conn = rl_redis_conn_new(s->base, &opts);
        s->n++;
        if (s->nodes[i].conn == NULL) {
            return RL_ERR;
        }
    }
    return RL_OK;
}

/* Creates the client; see sentinel.h. */
rl_sentinel_t *rl_sentinel_new(struct event_base *base,
                               const rl_conf_store_t *conf, SSL_CTX *tls_ctx,
                               rl_sentinel_master_fn *fn, void *arg)
{
    rl_sentinel_t *s;

    if (conf->sentinel == NULL || conf->sentinel->nnodes < 1) {
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->base = base;
    s->conf = conf;
    s->fn = fn;
    s->arg = arg;
    if (tls_ctx != NULL && SSL_CTX_up_ref(tls_ctx) == 1) {
        s->tls_ctx = tls_ctx;
    }
    s->timer = evtimer_new(base, sentinel_timer_cb, s);
    if ((tls_ctx != NULL && s->tls_ctx == NULL) || s->timer == NULL ||
        sentinel_open_nodes(s) != RL_OK) {
        goto err;
    }
    s->sub = rl_sentinel_sub_new(base, conf, s->tls_ctx, sentinel_sub_event, s);
    if (s->sub == NULL) {
        goto err;
    }
    /* The query connections are up at the earliest one pass from now. */
    rl_loop_timer_at(s->timer, rl_mono_us() + 10000);
    return s;

err:
    rl_sentinel_free(s);
    return NULL;
}
