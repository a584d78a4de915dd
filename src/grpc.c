/* The gRPC listener: HTTP/2 sessions on a worker's event loop, in the
 * shape of nghttp2's examples/libevent-server.c.
 *
 * What it owns: the listening socket, one grpc_conn_t per connection
 * (its bufferevent and nghttp2 session), one rl_grpc_call_t per stream.
 * What it promises:
 *   - every stream that carries a complete request gets exactly one
 *     answer: the handler's, or one of its own (a malformed frame, a
 *     message over max_message_bytes, the deadline of grpc-timeout);
 *   - a call in the handler's hands outlives its stream and connection
 *     ("abandoned"): the late answer only frees it, nothing is sent;
 *   - flow control, PING and SETTINGS are nghttp2's; output is written
 *     to the bufferevent by the send callback and drained by libevent;
 *   - on stop, a GOAWAY names the last stream taken; streams up to it
 *     are answered, then the connection closes. */
#include "grpc.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include "log.h"
#include "stats.h"
#include "tls.h"
#include "util.h"

#define GRPC_PATH_MAX 128
#define GRPC_MAX_STREAMS 1000
#define GRPC_OUTPUT_HIGH (1024 * 1024) /* stop reading past this backlog */

typedef struct grpc_conn grpc_conn_t;

struct rl_grpc_call {
    grpc_conn_t *conn;           /* NULL once abandoned */
    rl_grpc_call_t *prev, *next; /* the connection's calls */
    int32_t stream_id;
    char path[GRPC_PATH_MAX];
    int bad_request; /* not a POST of application/grpc */
    uint8_t *in;     /* the request body received so far */
    size_t inlen, incap;
    int64_t timeout_us; /* 0: none */
    struct event *timer;
    int64_t start_us;
    int pending;  /* the handler holds it */
    int answered; /* an answer has been submitted */
    uint8_t *out; /* the reply message, length-prefixed */
    size_t outlen, outoff;
    rl_grpc_status_t status;
    char message[160];
};

struct grpc_conn {
    rl_grpc_server_t *srv;
    grpc_conn_t *prev, *next;
    struct bufferevent *bev;
    nghttp2_session *h2;
    rl_grpc_call_t *calls;
    int busy;    /* inside nghttp2_session_mem_recv: no send, no free */
    int closing; /* idle: GOAWAY sent, freed once written (or in 1 s) */
};

struct rl_grpc_server {
    struct event_base *base;
    size_t max_message; /* "max_message_bytes" (a restart-only section) */
    struct evconnlistener *listener;
    SSL_CTX *tls;
    rl_grpc_handler_fn *fn;
    void *arg;
    grpc_conn_t *conns;
    int nconns;
    int64_t max_conns;   /* "max_connections": past it, accept and close */
    struct timeval idle; /* "idle_timeout_ms" */
    int inflight;
    int stopping;
};

static void conn_free(grpc_conn_t *c);
static int conn_flush(grpc_conn_t *c);

/* ------------------------------------------------------------------------
 * Calls
 * ---------------------------------------------------------------------- */

/* Frees call once neither its stream nor a handler holds it. */
static void call_release(rl_grpc_call_t *call)
{
    if (call->conn != NULL || call->pending) {
        return;
    }
    if (call->timer != NULL) {
        event_free(call->timer);
    }
    free(call->in);
    free(call->out);
    free(call);
}

/* Detaches call from its connection (the stream closed or the
 * connection went) and frees it unless a handler holds it. */
static void call_detach(rl_grpc_call_t *call)
{
    grpc_conn_t *c = call->conn;

    if (c == NULL) {
        return;
    }
    if (call->prev != NULL) {
        call->prev->next = call->next;
    } else {
        c->calls = call->next;
    }
    if (call->next != NULL) {
        call->next->prev = call->prev;
    }
    call->conn = NULL;
    if (call->timer != NULL) {
        event_del(call->timer);
    }
    call_release(call);
}

/* Reads the reply message for nghttp2; at its end, the trailers. */
static ssize_t call_read(nghttp2_session *h2, int32_t sid, uint8_t *buf,
                         size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
    rl_grpc_call_t *call = src->ptr;
    size_t n = call->outlen - call->outoff;
    char code[4];
    nghttp2_nv trailer[] = {
        {(uint8_t *)"grpc-status", (uint8_t *)code, 11, 1,
         NGHTTP2_NV_FLAG_NONE},
    };

    if (n > length) {
        n = length;
    }
    memcpy(buf, call->out + call->outoff, n);
    call->outoff += n;
    if (call->outoff == call->outlen) {
        snprintf(code, sizeof(code), "%d", (int)call->status);
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (nghttp2_submit_trailer(h2, sid, trailer, 1) != 0) {
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
    }
    return (ssize_t)n;
}

/* Percent-encodes s into out as grpc-message wants. */
static size_t call_encode_message(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *s != '\0' && o + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch >= 0x20 && ch < 0x7f && ch != '%') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
    return o;
}

/* Counts an answer of status in the calling worker's stats, with the
 * time since the request was complete. No-op off a worker thread. */
static void call_count(const rl_grpc_call_t *call, rl_grpc_status_t status)
{
    rl_stats_t *st = rl_stats_self;

    if (st == NULL) {
        return;
    }
    switch (status) {
    case RL_GRPC_OK: RL_STAT_INC(st, grpc_ok); break;
    case RL_GRPC_INVALID_ARGUMENT:
        RL_STAT_INC(st, grpc_invalid_argument);
        break;
    case RL_GRPC_DEADLINE_EXCEEDED:
        RL_STAT_INC(st, grpc_deadline_exceeded);
        break;
    case RL_GRPC_UNIMPLEMENTED: RL_STAT_INC(st, grpc_unimplemented); break;
    case RL_GRPC_UNAVAILABLE: RL_STAT_INC(st, grpc_unavailable); break;
    case RL_GRPC_INTERNAL: RL_STAT_INC(st, grpc_internal); break;
    }
    rl_hist_observe(&st->hist_grpc,
                    call->start_us > 0 ? rl_mono_us() - call->start_us : 0);
}

/* Submits call's answer on its stream: headers, the message and the
 * trailers, or trailers only for an error. */
static void call_submit(rl_grpc_call_t *call)
{
    grpc_conn_t *c = call->conn;
    char code[4], msg[3 * sizeof(call->message) + 1];
    size_t mlen = call_encode_message(call->message, msg, sizeof(msg));
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
         NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"grpc-status", (uint8_t *)code, 11, 0,
         NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"grpc-message", (uint8_t *)msg, 12, mlen,
         NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider prd;

    call->answered = 1;
    call_count(call, call->status);
    if (call->timer != NULL) {
        event_del(call->timer);
    }
    if (call->status == RL_GRPC_OK) {
        prd.source.ptr = call;
        prd.read_callback = call_read;
        nghttp2_submit_response(c->h2, call->stream_id, nv, 2, &prd);
    } else {
        nv[2].valuelen =
            (size_t)snprintf(code, sizeof(code), "%d", (int)call->status);
        nghttp2_submit_response(c->h2, call->stream_id, nv, mlen > 0 ? 4 : 3,
                                NULL);
    }
}

/* Answers call with an error of grpc.c's own (not the handler's). */
static void call_fail(rl_grpc_call_t *call, rl_grpc_status_t status,
                      const char *why)
{
    if (call->answered || call->conn == NULL) {
        return;
    }
    call->status = status;
    snprintf(call->message, sizeof(call->message), "%s", why);
    call_submit(call);
}

/* The deadline of grpc-timeout passed before the handler answered. */
static void call_deadline(evutil_socket_t fd, short what, void *arg)
{
    rl_grpc_call_t *call = arg;
    grpc_conn_t *c = call->conn;

    call_fail(call, RL_GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
    if (c != NULL && conn_flush(c) != 0) {
        conn_free(c);
    }
}

void rl_grpc_call_answer(rl_grpc_call_t *call, rl_grpc_status_t status,
                         const uint8_t *msg, size_t len, const char *message)
{
    grpc_conn_t *c = call->conn;

    call->pending = 0;
    if (c != NULL) {
        c->srv->inflight--;
    }
    if (c == NULL || call->answered) {
        call_release(call);
        return;
    }
    call->status = status;
    snprintf(call->message, sizeof(call->message), "%s",
             message != NULL ? message : "");
    if (status == RL_GRPC_OK) {
        call->out = malloc(len + 5);
        if (call->out == NULL) {
            call->status = RL_GRPC_INTERNAL;
            snprintf(call->message, sizeof(call->message), "out of memory");
        } else {
            call->out[0] = 0;
            call->out[1] = (uint8_t)(len >> 24);
            call->out[2] = (uint8_t)(len >> 16);
            call->out[3] = (uint8_t)(len >> 8);
            call->out[4] = (uint8_t)len;
            if (len > 0) {
                memcpy(call->out + 5, msg, len);
            }
            call->outlen = len + 5;
        }
    }
    call_submit(call);
    /* Answered inside the session's own callbacks: conn_read sends. */
    if (!c->busy && conn_flush(c) != 0) {
        conn_free(c);
    }
}

int rl_grpc_call_live(const rl_grpc_call_t *call)
{
    return call->conn != NULL && !call->answered;
}

int64_t rl_grpc_call_start_us(const rl_grpc_call_t *call)
{
    return call->start_us;
}

/* The request of call is complete: check its framing and hand it on. */
static void call_dispatch(rl_grpc_call_t *call)
{
    grpc_conn_t *c = call->conn;
    rl_grpc_server_t *s = c->srv;
    const uint8_t *msg = NULL;
    const char *why = NULL;
    size_t len = 0;
    rl_grpc_status_t st;

    if (call->answered) {
        return;
    }
    if (call->bad_request) {
        call_fail(call, RL_GRPC_UNIMPLEMENTED, "not a gRPC request");
        return;
    }
    st = rl_grpc_frame_parse(call->in, call->inlen, s->max_message, &msg, &len,
                             &why);
    if (st != RL_GRPC_OK) {
        call_fail(call, st, why);
        return;
    }
    call->start_us = rl_mono_us();
    if (call->timeout_us > 0) {
        struct timeval tv = {(time_t)(call->timeout_us / 1000000),
                             (suseconds_t)(call->timeout_us % 1000000)};

        call->timer = evtimer_new(s->base, call_deadline, call);
        if (call->timer != NULL) {
            evtimer_add(call->timer, &tv);
        }
    }
    call->pending = 1;
    s->inflight++;
    s->fn(s->arg, call, call->path, msg, len);
}

/* ------------------------------------------------------------------------
 * nghttp2 callbacks
 * ---------------------------------------------------------------------- */

/* Appends nghttp2's output to the bufferevent. */
static ssize_t h2_send(nghttp2_session *h2, const uint8_t *data, size_t length,
                       int flags, void *user)
{
    grpc_conn_t *c = user;

    if (evbuffer_get_length(bufferevent_get_output(c->bev)) >
        GRPC_OUTPUT_HIGH) {
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    if (bufferevent_write(c->bev, data, length) != 0) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return (ssize_t)length;
}

/* A new stream: its call. */
static int h2_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame,
                            void *user)
{
    grpc_conn_t *c = user;
    rl_grpc_call_t *call;

    if (frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    call = calloc(1, sizeof(*call));
    if (call == NULL) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    call->conn = c;
    call->stream_id = frame->hd.stream_id;
    call->bad_request = 1; /* until :method POST is seen */
    call->next = c->calls;
    if (c->calls != NULL) {
        c->calls->prev = call;
    }
    c->calls = call;
    nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id, call);
    return 0;
}

/* 1 if the header name (len bytes) is lit. */
static int h2_is(const uint8_t *name, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(name, lit, len) == 0;
}

/* One request header: :method, :path, content-type, grpc-timeout. */
static int h2_header(nghttp2_session *h2, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user)
{
    rl_grpc_call_t *call =
        nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);

    if (call == NULL || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    if (h2_is(name, namelen, ":method")) {
        call->bad_request = !h2_is(value, valuelen, "POST");
    } else if (h2_is(name, namelen, ":path")) {
        size_t n = valuelen < GRPC_PATH_MAX - 1 ? valuelen : GRPC_PATH_MAX - 1;

        memcpy(call->path, value, n);
        call->path[n] = '\0';
    } else if (h2_is(name, namelen, "content-type")) {
        if (valuelen < 16 || memcmp(value, "application/grpc", 16) != 0) {
            call->bad_request = 1;
        }
    } else if (h2_is(name, namelen, "grpc-timeout")) {
        if (rl_grpc_timeout_parse((const char *)value, valuelen,
                                  &call->timeout_us) != 0) {
            call->timeout_us = 0;
        }
    }
    return 0;
}

/* Request DATA: buffered up to the message limit (past it the call is
 * answered at once and the rest discarded). */
static int h2_data(nghttp2_session *h2, uint8_t flags, int32_t sid,
                   const uint8_t *data, size_t len, void *user)
{
    grpc_conn_t *c = user;
    rl_grpc_call_t *call = nghttp2_session_get_stream_user_data(h2, sid);
    size_t max = c->srv->max_message + 5;

    if (call == NULL || call->answered) {
        return 0;
    }
    if (call->inlen + len > max) {
        call_fail(call, RL_GRPC_INVALID_ARGUMENT,
                  "the message is larger than max_message_bytes");
        return 0;
    }
    if (call->inlen + len > call->incap) {
        size_t cap = call->incap > 0 ? call->incap : 256;
        uint8_t *b;

        while (cap < call->inlen + len) {
            cap *= 2;
        }
        b = realloc(call->in, cap);
        if (b == NULL) {
            call_fail(call, RL_GRPC_INTERNAL, "out of memory");
            return 0;
        }
        call->in = b;
        call->incap = cap;
    }
    memcpy(call->in + call->inlen, data, len);
    call->inlen += len;
    return 0;
}

/* A frame with END_STREAM completes a request. */
static int h2_frame(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    rl_grpc_call_t *call;

    if ((frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) ||
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
        return 0;
    }
    call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (call != NULL) {
        call_dispatch(call);
    }
    return 0;
}

/* The stream is gone: its call is detached (abandoned when pending). */
static int h2_close(nghttp2_session *h2, int32_t sid, uint32_t error_code,
                    void *user)
{
    rl_grpc_call_t *call = nghttp2_session_get_stream_user_data(h2, sid);

    if (call != NULL) {
        if (call->pending) {
            call->conn->srv->inflight--;
        }
        nghttp2_session_set_stream_user_data(h2, sid, NULL);
        call_detach(call);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Connections
 * ---------------------------------------------------------------------- */

/* Closes c: abandons its calls, frees its session and socket. */
static void conn_free(grpc_conn_t *c)
{
    rl_grpc_server_t *s = c->srv;

    while (c->calls != NULL) {
        if (c->calls->pending) {
            s->inflight--;
        }
        call_detach(c->calls);
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    s->nconns--;
    nghttp2_session_del(c->h2);
    bufferevent_free(c->bev);
    free(c);
}

/* Sends what the session has; 0, or -1 when c should close now (an
 * error, or nothing more to read or write and the output drained). */
static int conn_flush(grpc_conn_t *c)
{
    if (nghttp2_session_send(c->h2) != 0) {
        return -1;
    }
    if (!nghttp2_session_want_read(c->h2) &&
        !nghttp2_session_want_write(c->h2) &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        return -1;
    }
    return 0;
}

/* Input: fed to the session, then its output sent. */
static void conn_read(struct bufferevent *bev, void *arg)
{
    grpc_conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    ssize_t used;

    c->busy = 1;
    used = nghttp2_session_mem_recv(c->h2, evbuffer_pullup(in, -1), n);
    c->busy = 0;

    if (used < 0) {
        conn_free(c);
        return;
    }
    evbuffer_drain(in, (size_t)used);
    if (conn_flush(c) != 0) {
        conn_free(c);
    }
}

/* Output drained: more may be sent, or the connection may be done. */
static void conn_write(struct bufferevent *bev, void *arg)
{
    grpc_conn_t *c = arg;

    if (conn_flush(c) != 0) {
        conn_free(c);
    }
}

/* Nothing received for idle_timeout_ms: with calls open, reading goes
 * on; otherwise a GOAWAY goes out and the connection ends once it is
 * written, or a second later for a peer that does not read (or never
 * finished its TLS handshake). */
static void conn_idle(grpc_conn_t *c)
{
    struct timeval grace = {1, 0};

    if (c->calls != NULL && !c->closing) {
        bufferevent_enable(c->bev, EV_READ);
        return;
    }
    if (c->closing) {
        conn_free(c);
        return;
    }
    c->closing = 1;
    bufferevent_set_timeouts(c->bev, &grace, &grace);
    bufferevent_enable(c->bev, EV_READ);
    if (nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR) != 0 ||
        conn_flush(c) != 0) {
        conn_free(c);
    }
}

/* EOF, an error, a timeout, or the TLS handshake done (then the session
 * starts). */
static void conn_event(struct bufferevent *bev, short events, void *arg)
{
    grpc_conn_t *c = arg;

    if (events & BEV_EVENT_CONNECTED) {
        return;
    }
    if ((events & BEV_EVENT_TIMEOUT) && !(events & BEV_EVENT_ERROR)) {
        conn_idle(c);
        return;
    }
    if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        conn_free(c);
    }
}

/* The session of a new connection: callbacks, then our SETTINGS. */
static int conn_session(grpc_conn_t *c)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, GRPC_MAX_STREAMS},
    };
    int rc;

    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        return -1;
    }
    nghttp2_session_callbacks_set_send_callback(cbs, h2_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
                                                            h2_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, h2_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2_close);
    rc = nghttp2_session_server_new(&c->h2, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0) {
        c->h2 = NULL;
        return -1;
    }
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 1) != 0) {
        return -1;
    }
    return 0;
}

/* A new connection: its bufferevent (TLS when configured) and session. */
static void srv_accept(struct evconnlistener *l, evutil_socket_t fd,
                       struct sockaddr *sa, int salen, void *arg)
{
    rl_grpc_server_t *s = arg;
    grpc_conn_t *c = calloc(1, sizeof(*c));
    SSL *ssl = NULL;
    int one = 1;

    if (c == NULL || s->nconns >= s->max_conns) {
        /* Refused rather than queued without bound. */
        free(c);
        close(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (s->tls != NULL && (ssl = SSL_new(s->tls)) != NULL) {
        c->bev = bufferevent_openssl_socket_new(
            s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    } else if (s->tls == NULL) {
        c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (c->bev == NULL) {
        if (ssl != NULL) {
            SSL_free(ssl);
        }
        close(fd);
        free(c);
        return;
    }
    c->srv = s;
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->nconns++;
    if (conn_session(c) != 0) {
        conn_free(c);
        return;
    }
    bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
    bufferevent_set_timeouts(c->bev, &s->idle, NULL);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (conn_flush(c) != 0) {
        conn_free(c);
    }
}

/* ------------------------------------------------------------------------
 * The server
 * ---------------------------------------------------------------------- */

/* ALPN: h2 or nothing. */
static int srv_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                    const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel;

    if (nghttp2_select_next_protocol(&sel, outlen, in, inlen) != 1) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* A non-blocking listening socket on host:port with SO_REUSEPORT, or
 * -1 with err filled. */
static int srv_socket(const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints, *ai = NULL;
    char portstr[8];
    int fd, one = 1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host[0] != '\0' ? host : NULL, portstr, &hints, &ai) != 0) {
        snprintf(err, errlen, "grpc.listen: cannot resolve %s", host);
        return -1;
    }
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errlen, "grpc.listen: cannot listen on %s:%d: %s", host,
                 port, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

rl_grpc_server_t *rl_grpc_server_new(struct event_base *base,
                                     const rl_conf_grpc_t *conf,
                                     rl_grpc_handler_fn *fn, void *arg,
                                     char *err, size_t errlen)
{
    rl_grpc_server_t *s = calloc(1, sizeof(*s));
    int fd = -1;

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->max_message = (size_t)conf->max_message_bytes;
    s->max_conns = conf->max_connections;
    s->idle.tv_sec = (time_t)(conf->idle_timeout_ms / 1000);
    s->idle.tv_usec = (suseconds_t)(conf->idle_timeout_ms % 1000) * 1000;
    s->fn = fn;
    s->arg = arg;
    if (conf->tls.cert_file != NULL) {
        s->tls = rl_tls_ctx_new(&conf->tls, err, errlen);
        if (s->tls == NULL) {
            goto err;
        }
        SSL_CTX_set_alpn_select_cb(s->tls, srv_alpn, NULL);
    }
    fd = srv_socket(conf->listen_host, conf->listen_port, err, errlen);
    if (fd < 0) {
        goto err;
    }
    s->listener =
        evconnlistener_new(base, srv_accept, s, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (s->listener == NULL) {
        close(fd);
        snprintf(err, errlen, "grpc.listen: out of memory");
        goto err;
    }
    return s;

err:
    rl_grpc_server_free(s);
    return NULL;
}

void rl_grpc_server_stop(rl_grpc_server_t *s)
{
    grpc_conn_t *c, *next;

    if (s == NULL || s->stopping) {
        return;
    }
    s->stopping = 1;
    evconnlistener_disable(s->listener);
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->h2),
                              NGHTTP2_NO_ERROR, NULL, 0);
        if (conn_flush(c) != 0) {
            conn_free(c);
        }
    }
}

int rl_grpc_server_connections(const rl_grpc_server_t *s)
{
    return s != NULL ? s->nconns : 0;
}

int rl_grpc_server_inflight(const rl_grpc_server_t *s)
{
    return s != NULL ? s->inflight : 0;
}

void rl_grpc_server_free(rl_grpc_server_t *s)
{
    if (s == NULL) {
        return;
    }
    while (s->conns != NULL) {
        conn_free(s->conns);
    }
    if (s->listener != NULL) {
        evconnlistener_free(s->listener);
    }
    SSL_CTX_free(s->tls);
    free(s);
}
