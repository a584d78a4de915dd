/* One connection of the HTTP server: its state machine (see http_int.h).
 * A request is read (head, then body by Content-Length or chunked),
 * handed to the handler, answered, and the next pipelined request is
 * taken; deadlines for reading and idling, a half-closed peer that still
 * gets its reply, and a client that does not read its replies paused
 * until they drain. Plain sockets are read by their own event (see
 * conn_plain_read_cb). Worker thread only. */
#include "http_int.h"

#include "errors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include "loop.h"
#include "util.h"

/* Input waiting behind a request being handled, and replies the client
 * has not read, are bounded: reading pauses past these until they drain. */
#define RL_HTTP_PENDING_INPUT_MAX 65536
#define RL_HTTP_PENDING_OUTPUT_MAX 262144
#define CONN_PEEK_IOV 16

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_process(rl_http_conn_t *c);

/* ---------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------- */

/* Gives c a zeroed request (reused from the pool when one is free).
 * Returns 0, or -1 when memory runs out. */
static int conn_req_get(rl_http_conn_t *c)
{
    rl_http_server_t *s = c->srv;

    if (c->req != NULL) {
        return 0;
    }
    if (s->nreq_pool > 0) {
        c->req = s->req_pool[--s->nreq_pool];
        memset(c->req, 0, sizeof(*c->req));
    } else {
        c->req = calloc(1, sizeof(*c->req));
        if (c->req == NULL) {
            return -1;
        }
    }
    return 0;
}

/* Returns c's request, if any, to the pool. */
static void conn_req_put(rl_http_conn_t *c)
{
    rl_http_server_t *s = c->srv;

    if (c->req == NULL) {
        return;
    }
    if (s->nreq_pool < RL_HTTP_REQ_POOL) {
        s->req_pool[s->nreq_pool++] = c->req;
    } else {
        free(c->req);
    }
    c->req = NULL;
}

/* ---------------------------------------------------------------------
 * Back-pressure: held connections
 * ------------------------------------------------------------------- */

/* Takes c off its server's held queue. */
static void conn_unhold(rl_http_conn_t *c)
{
    rl_http_server_t *s = c->srv;

    if (!c->held) {
        return;
    }
    if (c->held_prev != NULL) {
        c->held_prev->held_next = c->held_next;
    } else {
        s->held_head = c->held_next;
    }
    if (c->held_next != NULL) {
        c->held_next->held_prev = c->held_prev;
    } else {
        s->held_tail = c->held_prev;
    }
    c->held_prev = c->held_next = NULL;
    c->held = 0;
}

/* Holds c, whose next request is complete, at the end of the queue while
 * the worker's decisions are at their cap: reading stops, and so does its
 * read deadline (a held client is waiting for us, not the other way). */
static void conn_hold(rl_http_conn_t *c)
{
    rl_http_server_t *s = c->srv;

    c->held = 1;
    c->held_next = NULL;
    c->held_prev = s->held_tail;
    if (s->held_tail != NULL) {
        s->held_tail->held_next = c;
    } else {
        s->held_head = c;
    }
    s->held_tail = c;
    evtimer_del(c->timer);
}

/* 1 if c's complete request is small: a body of at most
 * RL_HTTP_SMALL_BODY bytes, one decision or a few. */
static int conn_small(const rl_http_conn_t *c)
{
    return (c->chunked ? (int64_t)c->body.len : c->content_length) <=
           RL_HTTP_SMALL_BODY;
}

/* 1 while s may not start c's complete request. Small requests have a
 * pool of their own, an eighth of the cap, so that single decisions are
 * never queued behind batches (whose weight is known only once they
 * have been parsed: the large pool may overshoot by one batch). */
static int conn_decisions_full(const rl_http_conn_t *c)
{
    const rl_http_server_t *s = c->srv;
    int64_t cap = s->limits.max_inflight_decisions;

    if (conn_small(c)) {
        return s->decisions[1] >= (cap / 8 > 0 ? cap / 8 : 1);
    }
    return s->decisions[0] >= cap;
}

/* Releases c's decisions (see http_int.h). */
void rl_http_conn_release(rl_http_conn_t *c)
{
    rl_http_server_t *s = c->srv;
    struct timeval now = {0, 0};

    s->decisions[c->small] -= c->decisions;
    c->decisions = 0;
    if (s->held_head != NULL && !conn_decisions_full(s->held_head)) {
        evtimer_add(s->resume, &now);
    }
}

/* Unlinks c from its server and frees it with all it owns. */
void rl_http_conn_free(rl_http_conn_t *c)
{
    rl_http_server_t *s = c->srv;

    conn_unhold(c);

    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    s->nconns--;
    rl_loop_event_free(c->timer);
    rl_loop_event_free(c->rev);
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
    }
    conn_req_put(c);
    free(c->body.data);
    free(c->head);
    free(c);
}

/* Arms c's one timer ms milliseconds from now. */
void rl_http_conn_arm_timer(rl_http_conn_t *c, int64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    evtimer_add(c->timer, &tv);
}

/* Turns reading from c's socket on or off. */
void rl_http_conn_reading(rl_http_conn_t *c, int on)
{
    if (c->rev != NULL) {
        if (on) {
            event_add(c->rev, NULL);
        } else {
            event_del(c->rev);
        }
    } else if (on) {
        bufferevent_enable(c->bev, EV_READ);
    } else {
        bufferevent_disable(c->bev, EV_READ);
    }
}

/* Closes from the event loop, never from inside a callback chain that
 * still holds c. */
void rl_http_conn_close_soon(rl_http_conn_t *c)
{
    c->state = CONN_CLOSING;
    rl_http_conn_reading(c, 0);
    evtimer_del(c->timer);
    rl_http_conn_arm_timer(c, 0);
}

/* Pauses reading while too many replies wait for the client, or too much
 * input waits behind the request being handled; resumes once they drain. */
static void conn_update_reading(rl_http_conn_t *c)
{
    int pause;

    if (c->state == CONN_CLOSING || c->read_eof) {
        return;
    }
    pause = c->held ||
            evbuffer_get_length(bufferevent_get_output(c->bev)) >
                RL_HTTP_PENDING_OUTPUT_MAX ||
            (c->state == CONN_HANDLING &&
             evbuffer_get_length(bufferevent_get_input(c->bev)) >
                 RL_HTTP_PENDING_INPUT_MAX);
    if (pause && !c->read_paused) {
        rl_http_conn_reading(c, 0);
        c->read_paused = 1;
    } else if (!pause && c->read_paused) {
        rl_http_conn_reading(c, 1);
        c->read_paused = 0;
    }
}

/* Back to waiting for the next request on a kept-alive connection. */
static void conn_reset_request(rl_http_conn_t *c)
{
    memset(&c->scan, 0, sizeof(c->scan));
    c->head_len = 0;
    c->content_length = -1;
    c->chunked = 0;
    c->continue_sent = 0;
    c->body.len = 0;
    c->consumed = 0;
    /* An idle connection keeps only small buffers: 2,000 kept-alive
     * connections that each sent one 60 KB head hold no 120 MB. What is
     * freed here is handed back to the system once the worker is idle. */
    if (c->body.cap > RL_HTTP_BODY_KEEP) {
        free(c->body.data);
        c->body.data = NULL;
        c->body.cap = 0;
        c->srv->large_seen = 1;
    }
    if (c->head_cap > RL_HTTP_HEAD_KEEP) {
        free(c->head);
        c->head = NULL;
        c->head_cap = 0;
        c->srv->large_seen = 1;
    }
    conn_req_put(c);
}

/* ---------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------- */

/* The output drained (after a write that had to wait, or any TLS write). */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    rl_http_conn_t *c = arg;

    if (evbuffer_get_length(bufferevent_get_output(bev)) != 0) {
        return;
    }
    if (c->write_waiting) {
        c->write_waiting = 0;
        bufferevent_disable(bev, EV_WRITE);
    }
    if (c->state == CONN_CLOSING) {
        rl_http_conn_free(c);
        return;
    }
    conn_update_reading(c);
    conn_process(c);
}

/* The error-table row of a parser's refusal status. */
static rl_error_t conn_status_error(int status)
{
    switch (status) {
    case 413: return RL_ERR_BODY_TOO_LARGE;
    case 431: return RL_ERR_HEADERS_TOO_LARGE;
    case 501: return RL_ERR_NOT_IMPLEMENTED;
    default: return RL_ERR_BAD_REQUEST;
    }
}

/* Sends a protocol-level error of kind in the JSON error shape (status
 * and code from the error table; msg NULL: its default message) and
 * closes. msg is a static string of the parser's, never client bytes. */
static void conn_fail(rl_http_conn_t *c, rl_error_t kind, const char *msg)
{
    char body[512];
    char id[RL_HTTP_ID_MAX];
    int len;

    if (c->req != NULL && c->req->id[0] != '\0') {
        memcpy(id, c->req->id, sizeof(id));
    } else {
        rl_http_server_new_id(c->srv, id);
    }
    len = snprintf(body, sizeof(body),
                   "{\"error\":\"%s\",\"code\":\"%s\",\"trace_id\":\"%s\"}",
                   msg != NULL ? msg : rl_error_message(kind),
                   rl_error_code(kind), id);
    rl_http_reply_write(c, id, rl_error_status(kind), NULL, NULL, 0, NULL, body,
                        (size_t)len, RL_HTTP_CONN_HDR_CLOSE);
    if (rl_http_reply_flush(c) < 0 ||
        evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        rl_http_conn_close_soon(c);
        return;
    }
    c->state = CONN_CLOSING;
    evtimer_del(c->timer);
    rl_http_conn_reading(c, 0);
    /* A peer that never reads its error must not hold the slot forever. */
    rl_http_conn_arm_timer(c, 1000);
}

/* The one timer: the read deadline, the idle timeout, or the end of a
 * flush that took too long. */
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    rl_http_conn_t *c = arg;

    switch (c->state) {
    case CONN_READING: conn_fail(c, RL_ERR_REQUEST_TIMEOUT, NULL); break;
    case CONN_HANDLING: break; /* the handler always answers; nothing to do */
    default:
        rl_http_conn_free(c); /* idle keep-alive connection, or a stuck flush */
        break;
    }
}

/* EOF, errors and timeouts of the socket. */
static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    rl_http_conn_t *c = arg;

    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        if (c->state == CONN_HANDLING) {
            /* The handler still owns the request. A peer that only shut
             * its sending side still gets the reply; a reset one does not. */
            if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
                c->read_eof = 1;
                return;
            }
            c->peer_gone = 1;
            rl_http_conn_reading(c, 0);
            bufferevent_disable(bev, EV_WRITE);
            return;
        }
        rl_http_conn_free(c);
    }
}

/* ---------------------------------------------------------------------
 * Reading a request
 * ------------------------------------------------------------------- */

/* Hands a complete request to the handler. Its head and body are copies
 * owned by the connection and its bytes leave the input, so reading may
 * go on while the handler runs (no epoll_ctl per request to pause it).
 * Returns 0, or -1 after failing the connection. */
static int conn_dispatch(rl_http_conn_t *c)
{
    rl_http_server_t *s = c->srv;
    struct evbuffer *in = bufferevent_get_input(c->bev);

    if (!c->chunked) {
        size_t n = c->content_length > 0 ? (size_t)c->content_length : 0;

        if (n > 0) {
            struct evbuffer_ptr at;

            if (rl_http_parse_body_reserve(&c->body, n + 1) != RL_OK) {
                conn_fail(c, RL_ERR_OUT_OF_MEMORY, NULL);
                return -1;
            }
            evbuffer_ptr_set(in, &at, c->head_len, EVBUFFER_PTR_SET);
            if (evbuffer_copyout_from(in, &at, c->body.data, n) !=
                (ev_ssize_t)n) {
                /* conn_parse saw the whole body: never, but a short copy
                 * must not pass off stale bytes as the request's. */
                conn_fail(c, RL_ERR_INTERNAL, NULL);
                return -1;
            }
        }
        c->body.len = n;
        c->consumed = c->head_len + n;
    }
    if (c->body.len > 0) {
        c->body.data[c->body.len] = '\0';
    }
    c->req->body = c->body.len > 0 ? c->body.data : "";
    c->req->body_len = c->body.len;
    evbuffer_drain(in, c->consumed);
    c->consumed = 0;
    if (c->req->id[0] == '\0') {
        rl_http_server_new_id(s, c->req->id);
    }
    if (s->draining) {
        c->req->keep_alive = 0;
    }
    c->req->conn = c;
    c->req->start_us = rl_mono_us();
    c->state = CONN_HANDLING;
    evtimer_del(c->timer);
    s->inflight++;
    c->small = conn_small(c);
    c->decisions = 1;
    s->decisions[c->small]++;
    c->served++;
    c->dispatching = 1;
    s->handler(c->req, s->arg);
    c->dispatching = 0;
    return 0;
}

/* The first byte of a request: the idle timer stops and it gets a
 * request from the pool. Its read deadline, which starts at this first
 * byte, is armed by conn_read_deadline only if the request is still
 * incomplete once this input is parsed (in the same callback, so at the
 * same time): a request that arrived whole costs no timer. 0, or -1 after
 * failing the connection. */
static int conn_begin(rl_http_conn_t *c)
{
    c->state = CONN_READING;
    c->read_armed = 0;
    evtimer_del(c->timer);
    if (conn_req_get(c) != 0) {
        conn_fail(c, RL_ERR_OUT_OF_MEMORY, NULL);
        return -1;
    }
    return 0;
}

/* Feeds the input not scanned yet to the search for the end of the head
 * (see rl_http_parse_head_scan), straight from the input's own segments.
 * 1 when it ends at *end, 0 when more is needed, or an HTTP status with
 * *msg. */
static int conn_scan_head(rl_http_conn_t *c, struct evbuffer *in, size_t len,
                          size_t *end, const char **msg)
{
    int rc = 0;

    while (c->scan.pos < len && rc == 0) {
        struct evbuffer_iovec v[CONN_PEEK_IOV];
        struct evbuffer_ptr at;
        size_t before = c->scan.pos;
        int n, i;

        evbuffer_ptr_set(in, &at, c->scan.pos, EVBUFFER_PTR_SET);
        n = evbuffer_peek(in, -1, &at, v, CONN_PEEK_IOV);
        for (i = 0; i < n && i < CONN_PEEK_IOV && rc == 0; i++) {
            rc = rl_http_parse_head_scan(&c->scan, v[i].iov_base, v[i].iov_len,
                                         end, msg);
        }
        if (c->scan.pos == before) {
            break;
        }
    }
    return rc;
}

/* Copies out the head that ends at end of the input, after dropping the
 * empty lines before it. 1 when c->head holds it, 0 after failing the
 * connection. */
static int conn_copy_head(rl_http_conn_t *c, struct evbuffer *in, size_t end)
{
    char *head;

    evbuffer_drain(in, c->scan.skip);
    c->head_len = end - c->scan.skip;
    if (c->head_len > (size_t)c->srv->limits.max_header_bytes) {
        conn_fail(c, RL_ERR_HEADERS_TOO_LARGE, NULL);
        return 0;
    }
    /* A copy: the input buffer may move its bytes while the body is
     * still arriving, and the request's strings must stay put. */
    if (c->head_cap < c->head_len + 1) {
        head = realloc(c->head, c->head_len + 1);
        if (head == NULL) {
            conn_fail(c, RL_ERR_OUT_OF_MEMORY, NULL);
            return 0;
        }
        c->head = head;
        c->head_cap = c->head_len + 1;
    }
    evbuffer_copyout(in, c->head, c->head_len);
    c->head[c->head_len] = '\0';
    return 1;
}

/* Looks for the head in the len bytes of input. Empty lines before a
 * request line leave the connection idle; its first byte begins the
 * request (conn_begin). 1 when c->head holds the head, 0 when more is
 * needed or after failing the connection. */
static int conn_read_head(rl_http_conn_t *c, struct evbuffer *in, size_t len)
{
    const char *msg = NULL;
    size_t end = 0;
    int rc = conn_scan_head(c, in, len, &end, &msg);

    if (c->state == CONN_IDLE && c->scan.pos == c->scan.skip && rc == 0) {
        return 0;
    }
    if (c->state == CONN_IDLE && conn_begin(c) != 0) {
        return 0;
    }
    if (rc == 1) {
        return conn_copy_head(c, in, end);
    }
    if (rc != 0) {
        conn_fail(c, conn_status_error(rc), msg);
    } else if (c->scan.pos - c->scan.skip >
               (size_t)c->srv->limits.max_header_bytes) {
        conn_fail(c, RL_ERR_HEADERS_TOO_LARGE, NULL);
    }
    return 0;
}

/* Parses the copied head and checks the declared body length, before a
 * byte of the body is read; answers Expect: 100-continue. 1 when the body
 * may follow, 0 after failing the connection. */
static int conn_parse_head(rl_http_conn_t *c)
{
    const char *msg = NULL;
    const char *expect;
    int rc = rl_http_parse_head(c->head, c->head_len, c->req,
                                &c->content_length, &c->chunked, &msg);

    if (rc != 0) {
        conn_fail(c, conn_status_error(rc), msg);
        return 0;
    }
    if (c->content_length > c->srv->limits.max_body_bytes) {
        conn_fail(c, RL_ERR_BODY_TOO_LARGE, NULL);
        return 0;
    }
    expect = rl_http_header(c->req, "expect", NULL);
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
        !c->continue_sent && (c->content_length > 0 || c->chunked)) {
        evbuffer_add(bufferevent_get_output(c->bev),
                     "HTTP/1.1 100 Continue\r\n\r\n", 25);
        c->continue_sent = 1;
        (void)rl_http_reply_flush(c); /* a dead peer shows on the next read */
    }
    c->consumed = c->head_len;
    if (c->chunked) {
        rl_http_parse_chunked_init(&c->chunk);
    }
    return 1;
}

/* Feeds the bytes of a chunked body that arrived since the last call to
 * the decoder, straight from the input's own segments. 1 when the body
 * is complete (c->consumed ends it), 0 when more is needed or after
 * failing the connection. */
static int conn_read_chunked(rl_http_conn_t *c, struct evbuffer *in)
{
    const rl_conf_http_t *lim = &c->srv->limits;
    size_t total = evbuffer_get_length(in);
    const char *msg = NULL;
    int rc = 0;

    while (c->consumed < total && rc == 0) {
        struct evbuffer_iovec v[CONN_PEEK_IOV];
        struct evbuffer_ptr at;
        size_t before = c->consumed;
        int n, i;

        evbuffer_ptr_set(in, &at, c->consumed, EVBUFFER_PTR_SET);
        n = evbuffer_peek(in, -1, &at, v, CONN_PEEK_IOV);
        for (i = 0; i < n && i < CONN_PEEK_IOV && rc == 0; i++) {
            size_t used = v[i].iov_len;

            rc = rl_http_parse_chunked(&c->chunk, v[i].iov_base, v[i].iov_len,
                                       c->consumed + v[i].iov_len >= total,
                                       &c->body, lim->max_body_bytes,
                                       lim->max_header_bytes, &used, &msg);
            c->consumed += used;
        }
        if (c->consumed == before) {
            break;
        }
    }
    if (rc == 0 || rc == 1) {
        return rc;
    }
    conn_fail(c, conn_status_error(rc), msg);
    return 0;
}

/* Parses what the input holds. Returns 1 when a whole request is there
 * (head parsed, body complete), 0 when more is needed or after failing
 * the connection. */
static int conn_parse(rl_http_conn_t *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in);

    if (len == 0) {
        return 0;
    }
    if (len >= RL_HTTP_LARGE) {
        c->srv->large_seen = 1;
    }
    if (c->head_len == 0 &&
        (!conn_read_head(c, in, len) || !conn_parse_head(c))) {
        return 0;
    }
    if (c->chunked) {
        return conn_read_chunked(c, in);
    }
    /* Again: reading the head drained the empty lines before it. */
    len = evbuffer_get_length(in);
    return c->content_length <= 0 ||
           len >= c->head_len + (size_t)c->content_length;
}

/* Arms the read deadline of a request still arriving (see conn_begin),
 * once per request. */
static void conn_read_deadline(rl_http_conn_t *c)
{
    if (c->state == CONN_READING && !c->read_armed) {
        c->read_armed = 1;
        rl_http_conn_arm_timer(c, c->srv->limits.read_timeout_ms);
    }
}

/* Serves every whole request the input holds, one after another: a
 * handler that answers at once returns the connection to CONN_IDLE and
 * the loop takes the next pipelined request (a loop, not a recursion, so
 * a long pipeline cannot exhaust the stack). */
static void conn_process(rl_http_conn_t *c)
{
    while ((c->state == CONN_IDLE || c->state == CONN_READING) &&
           !c->read_paused) {
        if (!conn_parse(c)) {
            /* A half-closed peer sends nothing more: what is left of its
             * input can never complete a request. */
            if (c->read_eof && c->state != CONN_CLOSING) {
                rl_http_conn_close_soon(c);
                return;
            }
            conn_read_deadline(c);
            return;
        }
        if (conn_decisions_full(c)) {
            conn_hold(c); /* the whole request waits for room */
            conn_update_reading(c);
            return;
        }
        if (conn_dispatch(c) != 0) {
            return;
        }
    }
}

/* Reads what a plain socket holds into the input as bufferevent would,
 * without its FIONREAD ioctl. A fresh request asks for a small extent (an
 * allocation of 4 KB once the input is empty); a request still arriving
 * for a large one. */
static void conn_plain_read_cb(evutil_socket_t fd, short what, void *arg)
{
    rl_http_conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v;
    ssize_t n = -1;
    int err = 0;

    (void)what;
    /* The bufferevent freezes its input's end; it unfreezes the same way
     * around its own reads. */
    evbuffer_unfreeze(in, 0);
    if (evbuffer_reserve_space(in, evbuffer_get_length(in) > 0 ? 16384 : 2048,
                               &v, 1) == 1) {
        n = recv(fd, v.iov_base, v.iov_len, 0);
        err = errno;
        if (n > 0) {
            v.iov_len = (size_t)n;
            evbuffer_commit_space(in, &v, 1);
        }
    }
    evbuffer_freeze(in, 0);
    if (n > 0) {
        conn_read_cb(c->bev, c);
        return;
    }
    if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)) {
        return;
    }
    rl_http_conn_reading(c, 0);
    conn_event_cb(
        c->bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR),
        c);
}

/* Input arrived (from conn_plain_read_cb, or a TLS bufferevent). */
static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    rl_http_conn_t *c = arg;

    if (c->state == CONN_HANDLING) {
        /* Pipelined bytes wait for the reply; only their amount is checked. */
        conn_update_reading(c);
        return;
    }
    conn_process(c);
}

/* After the reply is written: closes, or back to idle (see http_int.h). */
void rl_http_conn_replied(rl_http_conn_t *c, int close_after)
{
    rl_http_server_t *s = c->srv;

    conn_reset_request(c);
    if (rl_http_reply_flush(c) < 0) {
        rl_http_conn_close_soon(c);
        return;
    }
    if (close_after) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
            rl_http_conn_close_soon(c);
            return;
        }
        c->state = CONN_CLOSING;
        rl_http_conn_reading(c, 0);
        rl_http_conn_arm_timer(c, 5000);
        return;
    }
    c->state = CONN_IDLE;
    rl_http_conn_arm_timer(c, s->limits.idle_timeout_ms);
    /* A client that pipelines without reading waits for its replies to
     * drain (conn_write_cb resumes it). */
    conn_update_reading(c);
    /* Inside conn_process's loop, that loop takes the next request. */
    if (!c->dispatching) {
        conn_process(c);
    }
}

/* Serves held connections in FIFO order while there is room (see
 * http_int.h). One that fills the cap again goes back to the queue. */
void rl_http_conn_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    rl_http_server_t *s = arg;
    rl_http_conn_t *last = s->held_tail;

    (void)fd;
    (void)what;
    while (s->held_head != NULL && !conn_decisions_full(s->held_head)) {
        rl_http_conn_t *c = s->held_head;
        int end = c == last;

        conn_unhold(c);
        conn_update_reading(c);
        conn_process(c);
        if (end) {
            break;
        }
    }
}

/* ---------------------------------------------------------------------
 * A new connection
 * ------------------------------------------------------------------- */

/* Gives c its bufferevent on fd (TLS when the server serves it), the
 * read event of a plain socket and its timer. 0, or -1 with fd closed
 * and nothing of this left. */
static int conn_open(rl_http_conn_t *c, evutil_socket_t fd)
{
    rl_http_server_t *s = c->srv;

    if (s->tls != NULL) {
        /* The SSL object belongs to the bufferevent from here on (freed
         * with it: BEV_OPT_CLOSE_ON_FREE). */
        SSL *ssl = SSL_new(s->tls);
        if (ssl != NULL) {
            c->bev = bufferevent_openssl_socket_new(s->base, fd, ssl,
                                                    BUFFEREVENT_SSL_ACCEPTING,
                                                    BEV_OPT_CLOSE_ON_FREE);
            if (c->bev == NULL) {
                SSL_free(ssl);
            } else {
                bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
            }
        }
    } else {
        c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
        /* Written by rl_http_reply_flush; EV_WRITE only while a write
         * waits. */
        if (c->bev != NULL) {
            bufferevent_disable(c->bev, EV_WRITE);
        }
        c->rev =
            event_new(s->base, fd, EV_READ | EV_PERSIST, conn_plain_read_cb, c);
    }
    c->tls = s->tls != NULL;
    c->timer = evtimer_new(s->base, conn_timer_cb, c);
    if (c->bev != NULL && c->timer != NULL && (c->tls || c->rev != NULL)) {
        return 0;
    }
    rl_loop_event_free(c->rev);
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
    } else {
        evutil_closesocket(fd);
    }
    rl_loop_event_free(c->timer);
    return -1;
}

/* Sets up a connection for an accepted socket (see http_int.h). */
rl_http_conn_t *rl_http_conn_new(rl_http_server_t *s, evutil_socket_t fd,
                                 const struct sockaddr *sa, int salen)
{
    rl_http_conn_t *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL) {
        evutil_closesocket(fd);
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->srv = s;
    if (salen > 0 && (size_t)salen <= sizeof(c->peer)) {
        memcpy(&c->peer, sa, (size_t)salen);
    }
    if (conn_open(c, fd) != 0) {
        free(c);
        return NULL;
    }
    c->content_length = -1;
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->nconns++;
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    rl_http_conn_reading(c, 1);
    c->state = CONN_IDLE;
    /* A TLS handshake is part of reading the first request: a client that
     * stalls in it is cut off by the read timeout. */
    rl_http_conn_arm_timer(c, s->tls != NULL && s->limits.read_timeout_ms <
                                                    s->limits.idle_timeout_ms
                                  ? s->limits.read_timeout_ms
                                  : s->limits.idle_timeout_ms);
    return c;
}
