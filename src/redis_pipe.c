/* The pipeline of one Redis connection (see redis_conn.c for the layers
 * and the rules the owner keeps):
 *   ring       pending commands, oldest first, matched in order to the
 *              replies; timed-out ones stay as an "abandoned" prefix so
 *              their late replies are dropped without closing the socket
 *   deadlines  the connection's one timer, while READY, is the earliest
 *              live deadline or the hung check of the oldest abandoned
 *   RESP       commands encoded straight into the output buffer, written
 *              once per loop pass; replies decoded by one redisReader
 * Worker thread only. */
#include "redis_conn_int.h"

#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "bev_write.h"
#include "loop.h"
#include "util.h"

#define CONN_MAX_ABANDONED 1000
#define CONN_HUNG_FACTOR 5
#define CONN_HUNG_MIN_MS 1000
#define CONN_READ_IOV 16

/* ------------------------------------------------------------------ */
/* Pending ring                                                        */
/* ------------------------------------------------------------------ */

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
void rl_redis_pipe_fail_all(rl_redis_conn_t *c)
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
/* Deadlines                                                           */
/* ------------------------------------------------------------------ */

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
void rl_redis_pipe_arm_timer(rl_redis_conn_t *c)
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
        rl_loop_timer_at(c->timer, when);
    }
}

/* READY timer: fails every live command past its deadline with
 * "timeout" (entries stay for their late replies), then closes the
 * connection if the node looks hung, else re-arms. */
void rl_redis_pipe_expire(rl_redis_conn_t *c)
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
        rl_redis_conn_fail(c, "not answering");
        return;
    }
    rl_redis_pipe_arm_timer(c);
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

/* Writes the commands queued in this loop pass with one writev; what the
 * socket does not take is left to the bufferevent (EV_WRITE on until the
 * output drains, when conn_write_cb turns it off again). */
void rl_redis_pipe_flush_cb(evutil_socket_t fd, short what, void *arg)
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
void rl_redis_pipe_write_cb(struct bufferevent *bev, void *arg)
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
int rl_redis_pipe_send(rl_redis_conn_t *c, int argc, const char **argv,
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
static void pipe_dispatch(rl_redis_conn_t *c)
{
    unsigned epoch = c->epoch;

    for (;;) {
        void *obj = NULL;
        redisReply *reply;
        conn_pending_t p;

        if (redisReaderGetReply(c->reader, &obj) != REDIS_OK) {
            c->stats.errors++;
            rl_redis_conn_fail(c, "protocol error");
            return;
        }
        if (obj == NULL) {
            break;
        }
        reply = obj;
        if (c->len == 0) {
            freeReplyObject(reply);
            c->stats.errors++;
            rl_redis_conn_fail(c, "reply without a command");
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
void rl_redis_pipe_read_cb(struct bufferevent *bev, void *arg)
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
                rl_redis_conn_fail(c, "protocol error");
                return;
            }
            total += v[i].iov_len;
        }
        evbuffer_drain(in, total);
    }
    pipe_dispatch(c);
}

/* ------------------------------------------------------------------ */
