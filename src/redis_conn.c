/* One asynchronous Redis connection on one worker's event loop.
 *
 * Three layers, bottom up:
 *   transport  conn_transport_open/close: the bufferevent and its socket,
 *              plain or OpenSSL (opts.tls_ctx); nothing above it sees
 *              the difference. The OpenSSL bufferevent reports
 *              BEV_EVENT_CONNECTED once the TLS handshake succeeded.
 *   pipeline   a FIFO ring of pending commands matched in order to the
 *              replies that one redisReader decodes; one timer per
 *              connection enforces every deadline.
 *   session    connect, AUTH/SELECT/PING handshake, reconnect with capped
 *              exponential backoff, the on_connect/on_disconnect hooks.
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
#include "redis_conn.h"

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
#include "redis_tls.h"
#include "stats.h"
#include "util.h"

#define CONN_DEFAULT_CONNECT_TIMEOUT_MS 1000
#define CONN_BACKOFF_MIN_MS 10
#define CONN_BACKOFF_MAX_MS 1000
#define CONN_RING_MIN 64 /* a power of two */
#define CONN_MAX_ABANDONED 1000
#define CONN_HUNG_FACTOR 5
#define CONN_HUNG_MIN_MS 1000
#define CONN_READ_IOV 16

typedef enum {
    CONN_IDLE = 0,   /* no socket; the timer starts the next attempt */
    CONN_CONNECTING, /* TCP connect in flight; the timer is its deadline */
    CONN_HANDSHAKE,  /* AUTH / SELECT in flight; same deadline */
    CONN_READY,      /* commands accepted; the timer is the head's deadline */
    CONN_CLOSING     /* rl_redis_conn_free is running */
} conn_state_t;

typedef struct conn_pending {
    rl_redis_cb *cb; /* NULL once timed out: the late reply is dropped */
    void *arg;
    int64_t deadline_us; /* monotonic */
} conn_pending_t;

struct rl_redis_conn {
    struct event_base *base;
    char *host;
    char *username;
    char *password;
    int port;
    int timeout_ms;
    int connect_timeout_ms;
    int db;
    SSL_CTX *tls_ctx; /* NULL: plain TCP */
    char *tls_server_name;
    void (*on_connect)(void *arg, rl_redis_conn_t *c);
    void (*on_disconnect)(void *arg, rl_redis_conn_t *c);
    void *hook_arg;

    struct sockaddr_storage addr;
    int addrlen;
    struct bufferevent *bev; /* NULL when idle */
    redisReader *reader;     /* NULL when idle: every socket gets a fresh one */
    struct event *timer;
    struct event *flush; /* writes the commands of one loop pass at once */
    int flush_pending;
    int write_waiting; /* plain socket: EV_WRITE on until output drains */
    conn_state_t state;
    unsigned epoch; /* bumped on every teardown */
    int handshake_left;
    int64_t connect_deadline_us;
    int backoff_ms;
    int ever_ready;
    char last_failure[96]; /* logged once until the state changes */

    /* Pending commands, oldest first. The first nabandoned entries are
     * the timed-out ones: deadlines only grow, so they form a prefix. */
    conn_pending_t *ring;
    size_t cap; /* a power of two */
    size_t head;
    size_t len;
    size_t nabandoned;

    rl_redis_conn_stats_t stats;
};

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void conn_fail(rl_redis_conn_t *c, const char *why);

/* ------------------------------------------------------------------ */
/* Pending ring                                                        */
/* ------------------------------------------------------------------ */

/* The i-th oldest pending entry (i < len). */
static conn_pending_t *ring_at(rl_redis_conn_t *c, size_t i)
{
    return &c->ring[(c->head + i) & (c->cap - 1)];
}

/* Appends an entry, doubling the ring when full. Returns RL_OK or RL_ERR
 * (out of memory). */
static int ring_push(rl_redis_conn_t *c, rl_redis_cb *cb, void *arg,
                     int64_t deadline_us)
{
    conn_pending_t *p;

    if (c->len == c->cap) {
        size_t i;
        size_t ncap = c->cap * 2;
        conn_pending_t *n = malloc(ncap * sizeof(*n));

        if (n == NULL) {
            return RL_ERR;
        }
        for (i = 0; i < c->len; i++) {
            n[i] = *ring_at(c, i);
        }
        free(c->ring);
        c->ring = n;
        c->cap = ncap;
        c->head = 0;
    }
    p = ring_at(c, c->len);
    p->cb = cb;
    p->arg = arg;
    p->deadline_us = deadline_us;
    c->len++;
    return RL_OK;
}

/* Removes the oldest entry into *out (len > 0). */
static void ring_pop(rl_redis_conn_t *c, conn_pending_t *out)
{
    *out = *ring_at(c, 0);
    c->head = (c->head + 1) & (c->cap - 1);
    c->len--;
    if (c->nabandoned > 0) {
        c->nabandoned--;
    }
}

/* Empties the ring, calling every live callback with NULL "disconnected".
 * Callbacks may issue commands: the state is no longer READY, so those
 * fail at once without touching the ring. */
static void ring_fail_all(rl_redis_conn_t *c)
{
    conn_pending_t p;

    while (c->len > 0) {
        ring_pop(c, &p);
        if (p.cb != NULL) {
            p.cb(p.arg, NULL, "disconnected");
        }
    }
}

/* ------------------------------------------------------------------ */
/* Timer                                                               */
/* ------------------------------------------------------------------ */

/* Arms the connection's one timer for the monotonic time when_us. */
static void conn_timer_at(rl_redis_conn_t *c, int64_t when_us)
{
    int64_t delay = when_us - rl_mono_us();
    struct timeval tv;

    if (delay < 0) {
        delay = 0;
    }
    tv.tv_sec = (time_t)(delay / 1000000);
    tv.tv_usec = (suseconds_t)(delay % 1000000);
    evtimer_add(c->timer, &tv);
}

/* How long the oldest abandoned entry may wait past its deadline before
 * the node counts as hung. */
static int64_t conn_hung_grace_us(const rl_redis_conn_t *c)
{
    int64_t ms = (int64_t)c->timeout_ms * CONN_HUNG_FACTOR;

    if (ms < CONN_HUNG_MIN_MS) {
        ms = CONN_HUNG_MIN_MS;
    }
    return (ms - c->timeout_ms) * 1000;
}

/* READY: arms the timer for the first live deadline or the hung check of
 * the oldest abandoned entry, whichever comes first; none if idle. */
static void conn_arm_ready_timer(rl_redis_conn_t *c)
{
    int64_t when = INT64_MAX;

    if (c->nabandoned < c->len) {
        when = ring_at(c, c->nabandoned)->deadline_us;
    }
    if (c->nabandoned > 0) {
        int64_t hung = ring_at(c, 0)->deadline_us + conn_hung_grace_us(c);
        if (hung < when) {
            when = hung;
        }
    }
    if (when == INT64_MAX) {
        evtimer_del(c->timer);
    } else {
        conn_timer_at(c, when);
    }
}

/* READY timer: fails every live command past its deadline with
 * "timeout" (entries stay for their late replies), then closes the
 * connection if the node looks hung, else re-arms. */
static void conn_expire(rl_redis_conn_t *c)
{
    int64_t now = rl_mono_us();
    unsigned epoch = c->epoch;

    while (c->nabandoned < c->len) {
        conn_pending_t *p = ring_at(c, c->nabandoned);
        rl_redis_cb *cb = p->cb;
        void *arg = p->arg;

        if (p->deadline_us > now) {
            break;
        }
        p->cb = NULL;
        c->nabandoned++;
        c->stats.timeouts++;
        if (cb != NULL) {
            cb(arg, NULL, "timeout");
        }
        if (c->epoch != epoch) {
            return;
        }
    }
    if (c->nabandoned > CONN_MAX_ABANDONED ||
        (c->nabandoned > 0 &&
         now >= ring_at(c, 0)->deadline_us + conn_hung_grace_us(c))) {
        conn_fail(c, "not answering");
        return;
    }
    conn_arm_ready_timer(c);
}

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

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
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
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
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
 * socket is written by conn_flush_cb from now on, EV_WRITE only while a
 * write waits (no epoll_ctl pair and no extra loop pass per flush). */
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

/* Writes the commands queued in this loop pass with one writev; what the
 * socket does not take is left to the bufferevent (EV_WRITE on until the
 * output drains, when conn_write_cb turns it off again). */
static void conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    rl_redis_conn_t *c = arg;
    int rc;

    (void)fd;
    (void)what;
    c->flush_pending = 0;
    if (c->bev == NULL || c->write_waiting) {
        return;
    }
    rc = rl_bev_write_now(c->bev);
    if (rc < 0) {
        /* The bufferevent retries the write and reports the error. */
        bufferevent_enable(c->bev, EV_WRITE);
        rc = 1;
    }
    c->write_waiting = rc;
}

/* The output drained after a write that had to wait. */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    rl_redis_conn_t *c = arg;

    if (c->write_waiting &&
        evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        c->write_waiting = 0;
        bufferevent_disable(bev, EV_WRITE);
    }
}

/* ------------------------------------------------------------------ */
/* Pipeline                                                            */
/* ------------------------------------------------------------------ */

/* Writes "<prefix><n>\r\n" at p; returns the bytes written. */
static size_t resp_head(char *p, char prefix, size_t n)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    size_t len = 0;

    do {
        tmp[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    p[len++] = prefix;
    memcpy(p + len, tmp + i, sizeof(tmp) - i);
    len += sizeof(tmp) - i;
    p[len++] = '\r';
    p[len++] = '\n';
    return len;
}

/* Encodes argv as a RESP array of bulk strings straight into out (one
 * reserved extent, no malloc, no printf per argument). RL_OK or RL_ERR. */
static int resp_encode(struct evbuffer *out, int argc, const char **argv,
                       const size_t *argvlen)
{
    struct evbuffer_iovec v;
    size_t need = 24 + 2;
    size_t pos = 0;
    char *p;
    int i;

    for (i = 0; i < argc; i++) {
        need += 1 + 20 + 2 + argvlen[i] + 2;
    }
    if (evbuffer_reserve_space(out, (ev_ssize_t)need, &v, 1) < 1 ||
        v.iov_len < need) {
        return RL_ERR;
    }
    p = v.iov_base;
    pos += resp_head(p + pos, '*', (size_t)argc);
    for (i = 0; i < argc; i++) {
        pos += resp_head(p + pos, '$', argvlen[i]);
        memcpy(p + pos, argv[i], argvlen[i]);
        pos += argvlen[i];
        p[pos++] = '\r';
        p[pos++] = '\n';
    }
    v.iov_len = pos;
    return evbuffer_commit_space(out, &v, 1) == 0 ? RL_OK : RL_ERR;
}

/* Encodes one command into the output buffer and queues its callback.
 * Returns RL_OK, or RL_ERR (nothing queued, cb not called). */
static int conn_send(rl_redis_conn_t *c, int argc, const char **argv,
                     const size_t *argvlen, rl_redis_cb *cb, void *arg,
                     int64_t deadline_us)
{
    if (argc < 1 || ring_push(c, cb, arg, deadline_us) != RL_OK) {
        return RL_ERR;
    }
    if (resp_encode(bufferevent_get_output(c->bev), argc, argv, argvlen) !=
        RL_OK) {
        c->len--; /* take back the entry just pushed */
        return RL_ERR;
    }
    /* Plain sockets: written once the loop has run every callback that is
     * ready now, so the commands they queue leave in one write. */
    if (c->tls_ctx == NULL && !c->flush_pending) {
        c->flush_pending = 1;
        event_active(c->flush, EV_WRITE, 0);
    }
    return RL_OK;
}

/* Pops every complete reply and hands it to the oldest pending entry.
 * Stops if a callback's action tore the connection down. */
static void conn_dispatch(rl_redis_conn_t *c)
{
    unsigned epoch = c->epoch;

    for (;;) {
        void *obj = NULL;
        redisReply *reply;
        conn_pending_t p;

        if (redisReaderGetReply(c->reader, &obj) != REDIS_OK) {
            c->stats.errors++;
            conn_fail(c, "protocol error");
            return;
        }
        if (obj == NULL) {
            break;
        }
        reply = obj;
        if (c->len == 0) {
            freeReplyObject(reply);
            c->stats.errors++;
            conn_fail(c, "reply without a command");
            return;
        }
        ring_pop(c, &p);
        if (reply->type == REDIS_REPLY_ERROR) {
            c->stats.errors++;
        }
        if (p.cb != NULL) {
            p.cb(p.arg, reply, NULL);
        }
        freeReplyObject(reply);
        if (c->epoch != epoch) {
            return;
        }
    }
}

/* Feeds everything read into the reader, then dispatches replies. */
static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    rl_redis_conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v[CONN_READ_IOV];
        int n = evbuffer_peek(in, -1, NULL, v, CONN_READ_IOV);
        size_t total = 0;
        int i;

        if (n > CONN_READ_IOV) {
            n = CONN_READ_IOV;
        }
        for (i = 0; i < n; i++) {
            if (redisReaderFeed(c->reader, v[i].iov_base, v[i].iov_len) !=
                REDIS_OK) {
                c->stats.errors++;
                conn_fail(c, "protocol error");
                return;
            }
            total += v[i].iov_len;
        }
        evbuffer_drain(in, total);
    }
    conn_dispatch(c);
}

/* ------------------------------------------------------------------ */
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
    conn_timer_at(c, rl_mono_us() + (int64_t)c->backoff_ms * 1000);
    c->backoff_ms *= 2;
    if (c->backoff_ms > CONN_BACKOFF_MAX_MS) {
        c->backoff_ms = CONN_BACKOFF_MAX_MS;
    }
}

/* Tears the connection down: closes the socket, fails every pending
 * callback with "disconnected", schedules a reconnect and tells the
 * owner if it was ready. Idempotent. */
static void conn_fail(rl_redis_conn_t *c, const char *why)
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
    ring_fail_all(c);
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
    conn_arm_ready_timer(c);
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
        conn_fail(c, why);
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
    if (conn_send(c, argc, argv, lens, conn_handshake_cb, c,
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
            conn_fail(c, "out of memory");
            return;
        }
    }
    if (c->db > 0) {
        snprintf(db, sizeof(db), "%d", c->db);
        argv[0] = "SELECT";
        argv[1] = db;
        if (conn_handshake_send(c, 2, argv) != RL_OK) {
            conn_fail(c, "out of memory");
            return;
        }
    }
    /* Always last: ready only once the server really answers (one that
     * is hung or still loading accepts TCP but is not ready). */
    argv[0] = "PING";
    if (conn_handshake_send(c, 1, argv) != RL_OK) {
        conn_fail(c, "out of memory");
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
        conn_fail(c, "connection closed by server");
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
        conn_fail(c, why);
    }
}

/* Starts one connect attempt, bounded by connect_timeout_ms. */
static void conn_connect(rl_redis_conn_t *c)
{
    unsigned epoch = c->epoch;

    c->state = CONN_CONNECTING;
    c->connect_deadline_us =
        rl_mono_us() + (int64_t)c->connect_timeout_ms * 1000;
    conn_timer_at(c, c->connect_deadline_us);
    /* A failure may already have torn down (and rescheduled) from inside
     * bufferevent_socket_connect: the epoch tells. */
    if (conn_transport_open(c) != RL_OK && c->epoch == epoch) {
        conn_fail(c, "cannot start a connection");
    }
}

/* Timer in CONNECTING/HANDSHAKE: the attempt took too long. */
static void conn_connect_timeout(rl_redis_conn_t *c)
{
    conn_fail(c, "connect timeout");
}

/* What the connection's one timer means in each state. */
static void (*const conn_timer_handlers[])(rl_redis_conn_t *c) = {
    [CONN_IDLE] = conn_connect,
    [CONN_CONNECTING] = conn_connect_timeout,
    [CONN_HANDSHAKE] = conn_connect_timeout,
    [CONN_READY] = conn_expire,
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
    if (c->timer != NULL) {
        event_free(c->timer);
    }
    if (c->flush != NULL) {
        event_free(c->flush);
    }
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
    c->flush = event_new(base, -1, 0, conn_flush_cb, c);
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
    conn_timer_at(c, rl_mono_us());
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
        conn_send(c, argc, argv, argvlen, cb, arg,
                  rl_mono_us() + (int64_t)c->timeout_ms * 1000) != RL_OK) {
        if (cb != NULL) {
            cb(arg, NULL, "disconnected");
        }
        return -1;
    }
    c->stats.commands++;
    if (!had_live) {
        conn_arm_ready_timer(c);
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
    ring_fail_all(c);
    conn_destroy(c);
}
