/* The +switch-master subscription of one worker's Sentinel client.
 *
 * rl_redis_conn matches every reply to a command, so a subscription,
 * whose messages come unasked, has its own small client here: one
 * bufferevent (plain, or OpenSSL with store.tls) to one sentinel at a
 * time, AUTH with the sentinels' credentials when configured, then
 * SUBSCRIBE +switch-master. Each message names the master that moved and
 * its new address, which the owner checks (sentinel.c). Every
 * (re)subscription is reported too, since a switch may have gone by
 * unheard.
 *
 * One timer, whose meaning follows the state: next attempt (IDLE),
 * connect and subscribe deadline (CONNECTING), keep-alive (UP: a PING
 * every SUB_PING_MS; one left unanswered by the next closes the
 * connection, so a hung sentinel is left). A failure closes the socket
 * and tries the next sentinel after a backoff (100 ms doubling to 2 s).
 * The password is never logged. Worker thread only. */
#include "sentinel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>
#include <openssl/err.h>

#include "log.h"
#include "loop.h"
#include "redis_tls.h"
#include "sentinel_parse.h"
#include "util.h"

#define SUB_BACKOFF_MIN_MS 100
#define SUB_BACKOFF_MAX_MS 2000
#define SUB_CONNECT_TIMEOUT_MS 1000
#define SUB_PING_MS 2000

typedef enum { SUB_IDLE = 0, SUB_CONNECTING, SUB_UP } sub_state_t;

struct rl_sentinel_sub {
    struct event_base *base;
    const rl_conf_store_t *conf;
    SSL_CTX *tls_ctx; /* referenced; NULL: plain TCP */
    rl_sentinel_sub_fn *fn;
    void *arg;
    int node; /* the sentinel tried now */
    sub_state_t state;
    int auth_left; /* AUTH replies still due */
    int ping_out;  /* a keep-alive PING is unanswered */
    int backoff_ms;
    struct bufferevent *bev;
    redisReader *reader;
    struct event *timer;
};

/* Frees the socket and the reader. */
static void sub_close(rl_sentinel_sub_t *sub)
{
    if (sub->bev != NULL) {
        bufferevent_free(sub->bev);
        sub->bev = NULL;
    }
    if (sub->reader != NULL) {
        redisReaderFree(sub->reader);
        sub->reader = NULL;
    }
}

/* Closes, logs why (once per subscription lost), and tries the next
 * sentinel after the backoff. */
static void sub_fail(rl_sentinel_sub_t *sub, const char *why)
{
    const rl_conf_node_t *n = &sub->conf->sentinel->nodes[sub->node];
    char port[16];

    if (sub->state == SUB_UP) {
        snprintf(port, sizeof(port), "%d", n->port);
        rl_log_kv(RL_LOG_WARN, "sentinel subscription lost", "host", n->host,
                  "port", port, "reason", why, (const char *)NULL);
    }
    sub_close(sub);
    sub->state = SUB_IDLE;
    sub->node = (sub->node + 1) % sub->conf->sentinel->nnodes;
    rl_loop_timer_at(sub->timer,
                     rl_mono_us() + (int64_t)sub->backoff_ms * 1000);
    sub->backoff_ms *= 2;
    if (sub->backoff_ms > SUB_BACKOFF_MAX_MS) {
        sub->backoff_ms = SUB_BACKOFF_MAX_MS;
    }
}

/* Writes one command in RESP; RL_OK or RL_ERR. */
static int sub_send(rl_sentinel_sub_t *sub, int argc, const char **argv)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    int rc;

    if (len < 0) {
        return RL_ERR;
    }
    rc = bufferevent_write(sub->bev, cmd, (size_t)len) == 0 ? RL_OK : RL_ERR;
    redisFreeCommand(cmd);
    return rc;
}

/* One reply: AUTH's OK, the subscription, a message or a PING's pong.
 * A +switch-master message for our master (sentinel_parse.c) is told to
 * the owner; other messages are ignored. RL_ERR for anything else (the
 * caller closes). */
static int sub_reply(rl_sentinel_sub_t *sub, const redisReply *r)
{
    const char *want = sub->conf->sentinel->master;
    const char *msg = NULL;
    size_t len = 0;
    char host[RL_SENTINEL_HOST_MAX];
    int port;

    if (sub->auth_left > 0) {
        sub->auth_left--;
        return r->type == REDIS_REPLY_STATUS ? RL_OK : RL_ERR;
    }
    switch (rl_sentinel_parse_sub(r, &msg, &len)) {
    case RL_SENTINEL_SUB_BAD: return RL_ERR;
    case RL_SENTINEL_SUB_PONG: sub->ping_out = 0; break;
    case RL_SENTINEL_SUB_SUBSCRIBED:
        sub->state = SUB_UP;
        sub->backoff_ms = SUB_BACKOFF_MIN_MS;
        rl_loop_timer_at(sub->timer,
                         rl_mono_us() + (int64_t)SUB_PING_MS * 1000);
        sub->fn(sub->arg, NULL, NULL, 0);
        break;
    case RL_SENTINEL_SUB_MESSAGE:
        if (rl_sentinel_parse_switch(msg, len, want, host, sizeof(host),
                                     &port) == RL_OK) {
            sub->fn(sub->arg, want, host, port);
        }
        break;
    case RL_SENTINEL_SUB_OTHER: break;
    }
    return RL_OK;
}

/* Feeds what arrived to the reader and handles each reply. */
static void sub_read_cb(struct bufferevent *bev, void *arg)
{
    rl_sentinel_sub_t *sub = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    void *obj = NULL;

    if (redisReaderFeed(sub->reader, (const char *)evbuffer_pullup(in, -1),
                        len) != REDIS_OK) {
        sub_fail(sub, "protocol error");
        return;
    }
    evbuffer_drain(in, len);
    for (;;) {
        int rc;

        if (redisReaderGetReply(sub->reader, &obj) != REDIS_OK) {
            sub_fail(sub, "protocol error");
            return;
        }
        if (obj == NULL) {
            return;
        }
        rc = sub_reply(sub, obj);
        freeReplyObject(obj);
        if (rc != RL_OK) {
            sub_fail(sub, "unexpected reply (AUTH rejected?)");
            return;
        }
    }
}

/* TCP (and TLS) up: AUTH when configured, then SUBSCRIBE. */
static void sub_connected(rl_sentinel_sub_t *sub)
{
    const rl_conf_sentinel_t *sc = sub->conf->sentinel;
    const char *argv[3];
    int argc = 0;

    sub->auth_left = 0;
    if (sc->password != NULL) {
        argv[argc++] = "AUTH";
        if (sc->username != NULL) {
            argv[argc++] = sc->username;
        }
        argv[argc++] = sc->password;
        if (sub_send(sub, argc, argv) != RL_OK) {
            sub_fail(sub, "out of memory");
            return;
        }
        sub->auth_left = 1;
    }
    argv[0] = "SUBSCRIBE";
    argv[1] = "+switch-master";
    if (sub_send(sub, 2, argv) != RL_OK) {
        sub_fail(sub, "out of memory");
    }
}

/* Socket events: connected, closed, errors. */
static void sub_event_cb(struct bufferevent *bev, short what, void *arg)
{
    rl_sentinel_sub_t *sub = arg;

    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        sub_connected(sub);
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (sub->tls_ctx != NULL) {
            ERR_clear_error();
        }
        sub_fail(sub, what & BEV_EVENT_EOF ? "connection closed"
                                           : "connection error");
    }
}

/* The bufferevent for node n, plain or TLS; NULL on failure. */
static struct bufferevent *sub_bev(rl_sentinel_sub_t *sub,
                                   const rl_conf_node_t *n)
{
    const rl_conf_tls_t *tls = sub->conf->tls;
    struct bufferevent *bev;
    SSL *ssl;

    if (sub->tls_ctx == NULL) {
        return bufferevent_socket_new(sub->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    ssl = SSL_new(sub->tls_ctx);
    if (ssl == NULL ||
        rl_redis_tls_prepare(ssl, tls != NULL ? tls->server_name : NULL,
                             n->host) != RL_OK) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    bev = bufferevent_openssl_socket_new(
        sub->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* Starts a non-blocking connect to the current sentinel. */
static void sub_connect(rl_sentinel_sub_t *sub)
{
    const rl_conf_node_t *n = &sub->conf->sentinel->nodes[sub->node];
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    char addr[96];

    snprintf(
        addr, sizeof(addr), strchr(n->host, ':') != NULL ? "[%s]:%d" : "%s:%d",
        strcmp(n->host, "localhost") == 0 ? "127.0.0.1" : n->host, n->port);
    sub->state = SUB_CONNECTING;
    sub->ping_out = 0;
    rl_loop_timer_at(sub->timer,
                     rl_mono_us() + (int64_t)SUB_CONNECT_TIMEOUT_MS * 1000);
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) != 0) {
        sub_fail(sub, "bad address");
        return;
    }
    sub->reader = redisReaderCreate();
    sub->bev = sub_bev(sub, n);
    if (sub->reader == NULL || sub->bev == NULL) {
        sub_fail(sub, "out of memory");
        return;
    }
    bufferevent_setcb(sub->bev, sub_read_cb, NULL, sub_event_cb, sub);
    bufferevent_enable(sub->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(sub->bev, (struct sockaddr *)&ss, sslen) <
            0 &&
        sub->state == SUB_CONNECTING && sub->bev != NULL) {
        sub_fail(sub, "cannot connect");
    }
}

/* The timer: next attempt, deadline, or keep-alive (by state). */
static void sub_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    rl_sentinel_sub_t *sub = arg;
    const char *ping[] = {"PING"};

    (void)fd;
    (void)what;
    if (sub->state == SUB_IDLE) {
        sub_connect(sub);
    } else if (sub->state == SUB_CONNECTING) {
        sub_fail(sub, "connect timeout");
    } else if (sub->ping_out) {
        sub_fail(sub, "no answer to PING");
    } else if (sub_send(sub, 1, ping) != RL_OK) {
        sub_fail(sub, "out of memory");
    } else {
        sub->ping_out = 1;
        rl_loop_timer_at(sub->timer,
                         rl_mono_us() + (int64_t)SUB_PING_MS * 1000);
    }
}

/* ------------------------------------------------------------------ */
/* Public interface                                                    */
/* ------------------------------------------------------------------ */

/* Creates the subscriber; the first connect is on the next loop pass. */
rl_sentinel_sub_t *rl_sentinel_sub_new(struct event_base *base,
                                       const rl_conf_store_t *conf,
                                       SSL_CTX *tls_ctx, rl_sentinel_sub_fn *fn,
                                       void *arg)
{
    rl_sentinel_sub_t *sub = calloc(1, sizeof(*sub));

    if (sub == NULL) {
        return NULL;
    }
    sub->base = base;
    sub->conf = conf;
    sub->fn = fn;
    sub->arg = arg;
    sub->backoff_ms = SUB_BACKOFF_MIN_MS;
    sub->timer = evtimer_new(base, sub_timer_cb, sub);
    if (tls_ctx != NULL && SSL_CTX_up_ref(tls_ctx) == 1) {
        sub->tls_ctx = tls_ctx;
    }
    if (sub->timer == NULL || (tls_ctx != NULL && sub->tls_ctx == NULL)) {
        rl_sentinel_sub_free(sub);
        return NULL;
    }
    rl_loop_timer_at(sub->timer, rl_mono_us());
    return sub;
}

/* Closes and frees sub. */
void rl_sentinel_sub_free(rl_sentinel_sub_t *sub)
{
    if (sub == NULL) {
        return;
    }
    sub_close(sub);
    rl_loop_event_free(sub->timer);
    SSL_CTX_free(sub->tls_ctx);
    free(sub);
}
