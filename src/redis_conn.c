/* One asynchronous Redis connection on one worker's event loop.
 *
 * Three layers, bottom up:
 *   transport  conn_transport_open/close: the bufferevent and its socket,
 *              plain or OpenSSL (opts.tls_ctx); nothing above it sees
 *              the difference. The OpenSSL bufferevent reports
 *              BEV_EVENT_CONNECTED once the TLS handshake succeeded.
 *   pipeline   redis_pipe.c: a FIFO ring of pending commands matched in
 *              order to the replies that one redisReader decodes; one
 *              timer per connection enforces every deadline.
 *   session    connect, AUTH/SELECT/PING handshake, reconnect with capped
 *              exponential backoff, the on_connect/on_disconnect hooks.
 * This file holds the transport, the session and the public interface;
 * redis_conn_int.h has the struct the two files share.
 * The cluster store (store_cluster.c) sits on top: one rl_redis_conn_t per
 * node, error replies (MOVED, ASK) reach its callbacks as replies, and
 * ASKING plus the command go out as two back-to-back
 * rl_redis_conn_command calls.
 *
 * Rules the owner must keep (the header cannot say everything):
 *  - Commands issued while the handshake runs fail with "disconnected":
 *    rl_redis_conn_connected() is 0 until AUTH, SELECT (as configured)
 *    and a PING succeeded, so a server that accepts TCP but does not
 *    answer never reads as connected.
 *  - Callbacks and hooks may issue new commands and read the state, but
 *    must never call rl_redis_conn_free on the connection they came from.
 *  - A timed-out command stays in the FIFO (its callback cleared) until
 *    its late reply arrives, which is then dropped. A node that stops
 *    answering is closed and reconnected once more than
 *    CONN_MAX_ABANDONED commands wait like that, or the oldest has waited
 *    more than max(5 * timeout, CONN_HUNG_MIN_MS): memory stays bounded.
 *
 * Stats: commands = commands accepted from the owner; timeouts = commands
 * whose deadline passed; errors = error replies plus protocol errors;
 * reconnects = handshakes completed after the first one. */
#include "redis_conn_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>

#include "bev_write.h"
#include "log.h"
#include "loop.h"
#include "redis_tls.h"
#include "stats.h"
#include "util.h"

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);

/* ------------------------------------------------------------------ */
/* Transport                                                           */
/* ------------------------------------------------------------------ */

/* Frees the bufferevent (closing its socket) and the reader. */
static void conn_transport_close(rl_redis_conn_t *c)
{
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    c->write_waiting = 0;
    if (c->reader != NULL) {
        redisReaderFree(c->reader);
        c->reader = NULL;
    }
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

/* A TLS bufferevent that starts its handshake once TCP is up; the
 * bufferevent owns the SSL. NULL on failure. */
static struct bufferevent *conn_tls_bev(rl_redis_conn_t *c)
{
    SSL *ssl = SSL_new(c->tls_ctx);
    struct bufferevent *bev;

    if (ssl == NULL ||
        rl_redis_tls_prepare(ssl, c->tls_server_name, c->host) != RL_OK) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    bev = bufferevent_openssl_socket_new(
        c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    /* A server that closes without close_notify is an EOF like any other. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* Creates the bufferevent (plain, or TLS when configured) and the reader
 * and starts a non-blocking connect. Returns RL_OK, or RL_ERR with
 * nothing left open. */
static int conn_transport_open(rl_redis_conn_t *c)
{
    c->reader = redisReaderCreate();
    if (c->tls_ctx != NULL) {
        c->bev = conn_tls_bev(c);
    } else {
        c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (c->reader == NULL || c->bev == NULL) {
        goto err;
    }
    bufferevent_setcb(c->bev, rl_redis_pipe_read_cb, rl_redis_pipe_write_cb,
                      conn_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->addr,
                                   c->addrlen) < 0) {
        goto err;
    }
    return RL_OK;

err:
    conn_transport_close(c);
    return RL_ERR;
}

/* Connected socket: no Nagle delay for small pipelined commands. A plain
 * socket is written by rl_redis_pipe_flush_cb from now on, EV_WRITE only while
 * a write waits (no epoll_ctl pair and no extra loop pass per flush). */
static void conn_transport_connected(rl_redis_conn_t *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    int one = 1;

    if (fd >= 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (c->tls_ctx == NULL) {
        bufferevent_disable(c->bev, EV_WRITE);
    }
}

/* Session                                                             */
/* ------------------------------------------------------------------ */

/* Logs a connection failure once per change of its reason. Never logs
 * the password: reasons are fixed texts or Redis's own error. */
static void conn_log_failure(rl_redis_conn_t *c, const char *why)
{
    char port[16];

    if (strcmp(c->last_failure, why) == 0) {
        return;
    }
    snprintf(c->last_failure, sizeof(c->last_failure), "%s", why);
    snprintf(port, sizeof(port), "%d", c->port);
    rl_log_kv(RL_LOG_WARN, "redis connection failed", "host", c->host, "port",
              port, "reason", c->last_failure, (const char *)NULL);
}

/* Schedules the next connect attempt after the current backoff, then
 * doubles it (10 ms to 1 s). */
static void conn_schedule_reconnect(rl_redis_conn_t *c)
{
    rl_loop_timer_at(c->timer, rl_mono_us() + (int64_t)c->backoff_ms * 1000);
    c->backoff_ms *= 2;
    if (c->backoff_ms > CONN_BACKOFF_MAX_MS) {
        c->backoff_ms = CONN_BACKOFF_MAX_MS;
    }
}

/* Tears the connection down: closes the socket, fails every pending
 * callback with "disconnected", schedules a reconnect and tells the
 * owner if it was ready. Idempotent. */
void rl_redis_conn_fail(rl_redis_conn_t *c, const char *why)
{
    int was_ready = c->state == CONN_READY;

    if (c->state == CONN_IDLE || c->state == CONN_CLOSING) {
        return;
    }
    conn_log_failure(c, why);
    conn_transport_close(c);
    c->state = CONN_IDLE;
    c->epoch++;
    conn_schedule_reconnect(c);
    rl_redis_pipe_fail_all(c);
    if (was_ready && c->on_disconnect != NULL) {
        c->on_disconnect(c->hook_arg, c);
    }
}

/* Handshake done: commands are accepted from now on. */
static void conn_ready(rl_redis_conn_t *c)
{
    char port[16];

    c->state = CONN_READY;
    c->backoff_ms = CONN_BACKOFF_MIN_MS;
    if (c->ever_ready) {
        c->stats.reconnects++;
        if (rl_stats_self != NULL) {
            RL_STAT_INC(rl_stats_self, store_reconnects);
        }
    }
    c->ever_ready = 1;
    if (c->last_failure[0] != '\0') {
        snprintf(port, sizeof(port), "%d", c->port);
        rl_log_kv(RL_LOG_INFO, "redis connected", "host", c->host, "port", port,
                  (const char *)NULL);
        c->last_failure[0] = '\0';
    }
    rl_redis_pipe_arm_timer(c);
    if (c->on_connect != NULL) {
        c->on_connect(c->hook_arg, c);
    }
}

/* Reply to AUTH, SELECT or PING. NULL means the teardown is already
 * running. */
static void conn_handshake_cb(void *arg, redisReply *reply, const char *err)
{
    rl_redis_conn_t *c = arg;

    if (reply == NULL) {
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[96];
        snprintf(why, sizeof(why), "handshake rejected: %.60s", reply->str);
        rl_redis_conn_fail(c, why);
        return;
    }
    if (--c->handshake_left == 0) {
        conn_ready(c);
    }
}

/* Sends one handshake command; RL_ERR if it could not be queued. */
static int conn_handshake_send(rl_redis_conn_t *c, int argc, const char **argv)
{
    size_t lens[3];
    int i;

    for (i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    if (rl_redis_pipe_send(c, argc, argv, lens, conn_handshake_cb, c,
                           c->connect_deadline_us) != RL_OK) {
        return RL_ERR;
    }
    c->handshake_left++;
    return RL_OK;
}

/* TCP is up: sends AUTH and SELECT as configured, then PING; the
 * connection is ready when all of them succeeded. */
static void conn_on_connected(rl_redis_conn_t *c)
{
    char db[16];
    const char *argv[3];

    conn_transport_connected(c);
    c->state = CONN_HANDSHAKE;
    c->handshake_left = 0;
    if (c->password != NULL) {
        int argc = 0;
        argv[argc++] = "AUTH";
        if (c->username != NULL) {
            argv[argc++] = c->username;
        }
        argv[argc++] = c->password;
        if (conn_handshake_send(c, argc, argv) != RL_OK) {
            rl_redis_conn_fail(c, "out of memory");
            return;
        }
    }
    if (c->db > 0) {
        snprintf(db, sizeof(db), "%d", c->db);
        argv[0] = "SELECT";
        argv[1] = db;
        if (conn_handshake_send(c, 2, argv) != RL_OK) {
            rl_redis_conn_fail(c, "out of memory");
            return;
        }
    }
    /* Always last: ready only once the server really answers (one that
     * is hung or still loading accepts TCP but is not ready). */
    argv[0] = "PING";
    if (conn_handshake_send(c, 1, argv) != RL_OK) {
        rl_redis_conn_fail(c, "out of memory");
    }
}

/* Connection events: connected, EOF, socket errors. */
static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    rl_redis_conn_t *c = arg;
    char why[96];

    if (what & BEV_EVENT_CONNECTED) {
        conn_on_connected(c);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        rl_redis_conn_fail(c, "connection closed by server");
    } else if (what & BEV_EVENT_ERROR) {
        unsigned long tls_err =
            c->tls_ctx != NULL ? bufferevent_get_openssl_error(bev) : 0;

        if (tls_err != 0) {
            char reason[80];
            ERR_error_string_n(tls_err, reason, sizeof(reason));
            snprintf(why, sizeof(why), "tls: %s", reason);
            while (bufferevent_get_openssl_error(bev) != 0) {
                /* drain the rest: one reason is logged */
            }
        } else {
            snprintf(why, sizeof(why), "%s",
                     evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        }
        rl_redis_conn_fail(c, why);
    }
}

/* Starts one connect attempt, bounded by connect_timeout_ms. */
static void conn_connect(rl_redis_conn_t *c)
{
    unsigned epoch = c->epoch;

    c->state = CONN_CONNECTING;
    c->connect_deadline_us =
        rl_mono_us() + (int64_t)c->connect_timeout_ms * 1000;
    rl_loop_timer_at(c->timer, c->connect_deadline_us);
    /* A failure may already have torn down (and rescheduled) from inside
     * bufferevent_socket_connect: the epoch tells. */
    if (conn_transport_open(c) != RL_OK && c->epoch == epoch) {
        rl_redis_conn_fail(c, "cannot start a connection");
    }
}

/* Timer in CONNECTING/HANDSHAKE: the attempt took too long. */
static void conn_connect_timeout(rl_redis_conn_t *c)
{
    rl_redis_conn_fail(c, "connect timeout");
}

/* What the connection's one timer means in each state. */
static void (*const conn_timer_handlers[])(rl_redis_conn_t *c) = {
    [CONN_IDLE] = conn_connect,
    [CONN_CONNECTING] = conn_connect_timeout,
    [CONN_HANDSHAKE] = conn_connect_timeout,
    [CONN_READY] = rl_redis_pipe_expire,
    [CONN_CLOSING] = NULL,
};

/* The connection's one timer: next connect attempt, connect/handshake
 * deadline, or command deadlines, depending on the state. */
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    rl_redis_conn_t *c = arg;

    if (conn_timer_handlers[c->state] != NULL) {
        conn_timer_handlers[c->state](c);
    }
}

/* Resolves host:port without DNS: numeric IPv4/IPv6 (brackets allowed)
 * or "localhost". Returns RL_OK or RL_ERR. */
static int conn_resolve(rl_redis_conn_t *c)
{
    struct evutil_addrinfo hints;
    struct evutil_addrinfo *res = NULL;
    char host[64];
    char port[16];
    size_t len = strlen(c->host);
    const char *h = c->host;

    if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
        h++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(host)) {
        return RL_ERR;
    }
    memcpy(host, h, len);
    host[len] = '\0';
    if (strcmp(host, "localhost") == 0) {
        strcpy(host, "127.0.0.1");
    }
    snprintf(port, sizeof(port), "%d", c->port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV;
    if (evutil_getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
        return RL_ERR;
    }
    if (res->ai_addrlen > sizeof(c->addr)) {
        evutil_freeaddrinfo(res);
        return RL_ERR;
    }
    memcpy(&c->addr, res->ai_addr, res->ai_addrlen);
    c->addrlen = (int)res->ai_addrlen;
    evutil_freeaddrinfo(res);
    return RL_OK;
}

/* Frees everything c owns; pending callbacks must be done already. */
static void conn_destroy(rl_redis_conn_t *c)
{
    conn_transport_close(c);
    rl_loop_event_free(c->timer);
    rl_loop_event_free(c->flush);
    if (c->password != NULL) {
        explicit_bzero(c->password, strlen(c->password));
    }
    free(c->password);
    free(c->username);
    free(c->host);
    free(c->tls_server_name);
    SSL_CTX_free(c->tls_ctx);
    free(c->ring);
    free(c);
}

/* Copies s (NULL stays NULL); sets *failed on out of memory. */
static char *conn_strdup(const char *s, int *failed)
{
    char *d;

    if (s == NULL) {
        return NULL;
    }
    d = strdup(s);
    if (d == NULL) {
        *failed = 1;
    }
    return d;
}

/* ------------------------------------------------------------------ */
/* Public interface                                                    */
/* ------------------------------------------------------------------ */

/* Creates c; the first connect starts on the next loop iteration, so no
 * hook runs before this returns. Returns NULL on bad options (the host
 * must be numeric or "localhost": no blocking DNS on a worker). */
rl_redis_conn_t *rl_redis_conn_new(struct event_base *base,
                                   const rl_redis_conn_opts_t *opts)
{
    rl_redis_conn_t *c;
    int failed = 0;

    if (base == NULL || opts == NULL || opts->host == NULL || opts->port <= 0 ||
        opts->port > 65535 || opts->timeout_ms <= 0) {
        rl_error("redis connection: invalid options");
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->base = base;
    c->host = conn_strdup(opts->host, &failed);
    c->username = conn_strdup(opts->username, &failed);
    c->password = conn_strdup(opts->password, &failed);
    c->port = opts->port;
    c->timeout_ms = opts->timeout_ms;
    c->connect_timeout_ms = opts->connect_timeout_ms > 0
                                ? opts->connect_timeout_ms
                                : CONN_DEFAULT_CONNECT_TIMEOUT_MS;
    c->db = opts->db;
    c->tls_server_name = conn_strdup(opts->tls_server_name, &failed);
    if (opts->tls_ctx != NULL && SSL_CTX_up_ref(opts->tls_ctx) == 1) {
        c->tls_ctx = opts->tls_ctx;
    } else if (opts->tls_ctx != NULL) {
        failed = 1;
    }
    c->on_connect = opts->on_connect;
    c->on_disconnect = opts->on_disconnect;
    c->hook_arg = opts->hook_arg;
    c->backoff_ms = CONN_BACKOFF_MIN_MS;
    c->state = CONN_IDLE;
    c->cap = CONN_RING_MIN;
    c->ring = malloc(c->cap * sizeof(*c->ring));
    c->timer = evtimer_new(base, conn_timer_cb, c);
    c->flush = event_new(base, -1, 0, rl_redis_pipe_flush_cb, c);
    if (failed || c->ring == NULL || c->timer == NULL || c->flush == NULL) {
        rl_error("redis connection: out of memory");
        goto err;
    }
    if (conn_resolve(c) != RL_OK) {
        rl_log_kv(RL_LOG_ERROR,
                  "redis address must be a numeric IP address or localhost",
                  "host", c->host, (const char *)NULL);
        goto err;
    }
    rl_loop_timer_at(c->timer, rl_mono_us());
    return c;

err:
    conn_destroy(c);
    return NULL;
}

/* Queues one command with the connection's deadline. Fails at once with
 * "disconnected" unless READY. argv is copied before this returns. */
int rl_redis_conn_command(rl_redis_conn_t *c, int argc, const char **argv,
                          const size_t *argvlen, rl_redis_cb *cb, void *arg)
{
    int had_live = c->nabandoned < c->len;

    if (c->state != CONN_READY ||
        rl_redis_pipe_send(c, argc, argv, argvlen, cb, arg,
                           rl_mono_us() + (int64_t)c->timeout_ms * 1000) !=
            RL_OK) {
        if (cb != NULL) {
            cb(arg, NULL, "disconnected");
        }
        return -1;
    }
    c->stats.commands++;
    if (!had_live) {
        rl_redis_pipe_arm_timer(c);
    }
    return 0;
}

/* 1 once the handshake succeeded on the current socket. */
int rl_redis_conn_connected(const rl_redis_conn_t *c)
{
    return c != NULL && c->state == CONN_READY;
}

/* Copies the counters. Owning thread only. */
void rl_redis_conn_get_stats(const rl_redis_conn_t *c,
                             rl_redis_conn_stats_t *out)
{
    *out = c->stats;
}

/* Fails every pending callback with "disconnected" (commands they issue
 * fail at once) and frees c. Never from one of c's own callbacks. */
void rl_redis_conn_free(rl_redis_conn_t *c)
{
    if (c == NULL) {
        return;
    }
    c->state = CONN_CLOSING;
    c->epoch++;
    conn_transport_close(c);
    evtimer_del(c->timer);
    rl_redis_pipe_fail_all(c);
    conn_destroy(c);
}
