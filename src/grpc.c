/* The gRPC listener: HTTP/2 sessions on a worker's event loop, in the
 * shape of nghttp2's examples/libevent-server.c.
 *
 * What it owns: the listening socket, one grpc_conn_t per connection
 * (its bufferevent and nghttp2 session), one rl_grpc_call_t per stream.
 * What it promises:
 *   - every stream that carries a complete request gets exactly one
 *     answer: the handler's, or one of its own (a malformed frame, a
 *     message over max_message_bytes, the deadline of grpc-timeout);
 *   - a request is complete within read_timeout_ms of its first
 *     HEADERS or is answered DEADLINE_EXCEEDED and reset, and what the
 *     unfinished requests of a connection buffer stays under max_held
 *     (past it RESOURCE_EXHAUSTED and reset): a slow or silent client
 *     holds neither memory nor, with idle_timeout_ms, its connection;
 *   - a call in the handler's hands outlives its stream and connection
 *     ("abandoned"): the late answer only frees it, nothing is sent;
 *   - flow control, PING and SETTINGS are nghttp2's; output is written
 *     to the bufferevent by the send callback and drained by libevent;
 *   - a server stream (rl_grpc_call_stream) sends its messages as the
 *     handler queues them and ends with the handler's answer, or with
 *     OK trailers on stop; its handler is told when it ends first;
 *   - on stop, a GOAWAY names the last stream taken; streams up to it
 *     are answered, then the connection closes. */
#include "grpc_int.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include "listen.h"
#include "log.h"
#include "stats.h"
#include "tls.h"
#include "util.h"

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

/* A new stream: its call, whose read deadline starts now. */
static int h2_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame,
                            void *user)
{
    rl_grpc_call_t *call;

    if (frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    call = rl_grpc_call_open(user, frame->hd.stream_id);
    if (call == NULL) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id, call);
    return 0;
}

/* Charges n more bytes of call's unfinished request to its connection.
 * Past the connection's cap the call is refused (RESOURCE_EXHAUSTED, its
 * request freed, the stream reset) rather than buffered, so many slow
 * streams cannot pin max_message_bytes each. 0, or -1 when refused. */
static int h2_charge(rl_grpc_call_t *call, size_t n)
{
    grpc_conn_t *c = call->conn;

    if (n > c->srv->max_held - c->held) {
        if (rl_stats_self != NULL) {
            RL_STAT_INC(rl_stats_self, grpc_buffer_refusals);
        }
        rl_grpc_call_fail(call, RL_GRPC_RESOURCE_EXHAUSTED,
                          "the unfinished requests of this connection hold "
                          "too many bytes");
        return -1;
    }
    c->held += n;
    call->held += n;
    return 0;
}

/* 1 if the header name (len bytes) is lit. */
static int h2_is(const uint8_t *name, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(name, lit, len) == 0;
}

/* Keeps header name: value for call's handler when the server's list
 * names it (see RL_GRPC_METADATA_MAX), charged to the connection's cap
 * (h2_charge) like the body. 0, or -1 when memory ran out. */
static int h2_keep(rl_grpc_call_t *call, const char *const *names,
                   const uint8_t *name, size_t namelen, const uint8_t *value,
                   size_t valuelen)
{
    rl_header_t *h;
    char *v;

    for (; *names != NULL; names++) {
        if (strlen(*names) == namelen &&
            strncasecmp(*names, (const char *)name, namelen) == 0) {
            break;
        }
    }
    if (*names == NULL || call->nmeta == RL_GRPC_METADATA_MAX ||
        h2_charge(call, valuelen + 1) != 0) {
        return 0;
    }
    v = malloc(valuelen + 1);
    if (v == NULL) {
        return -1;
    }
    memcpy(v, value, valuelen);
    v[valuelen] = '\0';
    h = &call->meta[call->nmeta++];
    h->name = *names;
    h->name_len = namelen;
    h->value = v;
    h->value_len = valuelen;
    return 0;
}

/* One request header: :method, :path, content-type, grpc-timeout, and
 * the ones the handler reads (h2_keep); none once the call is refused. */
static int h2_header(nghttp2_session *h2, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user)
{
    rl_grpc_call_t *call =
        nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);

    if (call == NULL || call->answered || frame->hd.type != NGHTTP2_HEADERS ||
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
    } else if (h2_keep(call, ((grpc_conn_t *)user)->srv->metadata, name,
                       namelen, value, valuelen) != 0) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

/* Request DATA: buffered up to the message limit and the connection's
 * cap (past either the call is answered at once and reset, and what
 * still comes is discarded). */
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
        rl_grpc_call_fail(call, RL_GRPC_INVALID_ARGUMENT,
                          "the message is larger than max_message_bytes");
        return 0;
    }
    if (call->inlen + len > call->incap) {
        size_t cap = call->incap > 0 ? call->incap : 256;
        uint8_t *b;

        while (cap < call->inlen + len) {
            cap *= 2;
        }
        cap = cap < max ? cap : max;
        if (h2_charge(call, cap - call->incap) != 0) {
            return 0;
        }
        b = realloc(call->in, cap);
        if (b == NULL) {
            rl_grpc_call_fail(call, RL_GRPC_INTERNAL, "out of memory");
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
        rl_grpc_call_dispatch(call);
    }
    return 0;
}

/* A frame went out. An answer that ends a stream whose request is not
 * complete (too slow, too large) is followed by RST_STREAM NO_ERROR, as
 * gRPC's own servers do (RFC 9113 8.1): the client has its status, stops
 * sending, and the stream stops counting against the connection's
 * although END_STREAM never comes. Only now: a stream being reset drops
 * what is still queued for it, the answer included. */
static int h2_sent(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    rl_grpc_call_t *call;

    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
        return 0;
    }
    call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (call != NULL && !call->complete) {
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
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
        rl_grpc_call_detach(call);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Connections
 * ---------------------------------------------------------------------- */

/* Closes c: abandons its calls, frees its session and socket. */
void rl_grpc_conn_free(grpc_conn_t *c)
{
    rl_grpc_server_t *s = c->srv;

    while (c->calls != NULL) {
        if (c->calls->pending) {
            s->inflight--;
        }
        rl_grpc_call_detach(c->calls);
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
int rl_grpc_conn_flush(grpc_conn_t *c)
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
        rl_grpc_conn_free(c);
        return;
    }
    evbuffer_drain(in, (size_t)used);
    if (rl_grpc_conn_flush(c) != 0) {
        rl_grpc_conn_free(c);
    }
}

/* Output drained: more may be sent, or the connection may be done. */
static void conn_write(struct bufferevent *bev, void *arg)
{
    grpc_conn_t *c = arg;

    if (rl_grpc_conn_flush(c) != 0) {
        rl_grpc_conn_free(c);
    }
}

/* 1 if a handler holds a call of c: its request is complete and the
 * answer is awaited (the store, or a server stream). */
static int conn_waiting(const grpc_conn_t *c)
{
    const rl_grpc_call_t *call;

    for (call = c->calls; call != NULL; call = call->next) {
        if (call->pending) {
            return 1;
        }
    }
    return 0;
}

/* Nothing received for idle_timeout_ms: while a handler holds a call,
 * reading goes on; otherwise (unfinished requests do not count, or a
 * client could keep its connection by never ending one) a GOAWAY goes
 * out and the connection ends once it is written, or a second later for
 * a peer that does not read (or never finished its TLS handshake). */
static void conn_idle(grpc_conn_t *c)
{
    struct timeval grace = {1, 0};

    if (!c->closing && conn_waiting(c)) {
        bufferevent_enable(c->bev, EV_READ);
        return;
    }
    if (c->closing) {
        rl_grpc_conn_free(c);
        return;
    }
    c->closing = 1;
    bufferevent_set_timeouts(c->bev, &grace, &grace);
    bufferevent_enable(c->bev, EV_READ);
    if (nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR) != 0 ||
        rl_grpc_conn_flush(c) != 0) {
        rl_grpc_conn_free(c);
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
        rl_grpc_conn_free(c);
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
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, h2_sent);
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
    if (salen > 0 && (size_t)salen <= sizeof(c->peer)) {
        memcpy(&c->peer, sa, (size_t)salen);
    }
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
        rl_grpc_conn_free(c);
        return;
    }
    bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
    bufferevent_set_timeouts(c->bev, &s->idle, NULL);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (rl_grpc_conn_flush(c) != 0) {
        rl_grpc_conn_free(c);
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

rl_grpc_server_t *rl_grpc_server_new(struct event_base *base,
                                     const rl_conf_grpc_t *conf,
                                     rl_grpc_handler_fn *fn, void *arg,
                                     const char *const *metadata, char *err,
                                     size_t errlen)
{
    rl_grpc_server_t *s = calloc(1, sizeof(*s));
    struct timeval rtv;
    int fd = -1;
    int bound;

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->max_message = (size_t)conf->max_message_bytes;
    s->max_held = GRPC_HELD_MESSAGES * (s->max_message + 5);
    if (s->max_held < GRPC_HELD_MIN) {
        s->max_held = GRPC_HELD_MIN;
    }
    s->max_conns = conf->max_connections;
    s->idle.tv_sec = (time_t)(conf->idle_timeout_ms / 1000);
    s->idle.tv_usec = (suseconds_t)(conf->idle_timeout_ms % 1000) * 1000;
    rtv.tv_sec = (time_t)(conf->read_timeout_ms / 1000);
    rtv.tv_usec = (suseconds_t)(conf->read_timeout_ms % 1000) * 1000;
    /* Every stream has this deadline: one queue, not a heap entry each. */
    s->read = event_base_init_common_timeout(base, &rtv);
    if (s->read == NULL) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    s->fn = fn;
    s->arg = arg;
    s->metadata = metadata;
    if (conf->tls.cert_file != NULL) {
        s->tls = rl_tls_ctx_new(&conf->tls, "grpc.tls", err, errlen);
        if (s->tls == NULL) {
            goto err;
        }
        SSL_CTX_set_alpn_select_cb(s->tls, srv_alpn, NULL);
    }
    fd = rl_listen_socket("grpc.listen", conf->listen_host, conf->listen_port,
                          &bound, err, errlen);
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
        rl_grpc_conn_end_streams(c);
        if (rl_grpc_conn_flush(c) != 0) {
            rl_grpc_conn_free(c);
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
        rl_grpc_conn_free(s->conns);
    }
    if (s->listener != NULL) {
        evconnlistener_free(s->listener);
    }
    SSL_CTX_free(s->tls);
    free(s);
}
