/* Calls of the gRPC listener (see grpc.c, grpc_int.h): a unary call's
 * one answer, a server stream's messages and its end, the read deadline
 * of its request and the deadline of grpc-timeout. A call is freed once
 * neither its stream nor a handler holds it. Worker thread only. */
#include "grpc_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include "stats.h"
#include "util.h"

/* Frees call once neither its stream nor a handler holds it. */
static void call_release(rl_grpc_call_t *call)
{
    if (call->conn != NULL || call->pending) {
        return;
    }
    if (call->timer != NULL) {
        event_free(call->timer);
    }
    rl_grpc_call_drop_input(call);
    free(call->out);
    free(call);
}

void rl_grpc_call_drop_input(rl_grpc_call_t *call)
{
    if (call->conn != NULL) {
        call->conn->held -= call->held;
    }
    call->held = 0;
    free(call->in);
    call->in = NULL;
    call->inlen = call->incap = 0;
    /* The kept headers too: a stream answered but not closed (a client
     * that never opens its window for the answer) would hold them
     * uncounted for as long as it likes. */
    while (call->nmeta > 0) {
        free((char *)call->meta[--call->nmeta].value);
    }
}

void rl_grpc_call_detach(rl_grpc_call_t *call)
{
    grpc_conn_t *c = call->conn;
    rl_grpc_stream_end_fn *end = call->end;

    if (c == NULL) {
        return;
    }
    rl_grpc_call_drop_input(call);
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
    if (call->pending && end != NULL) {
        /* The handler answers (which frees call), now or later. */
        call->end = NULL;
        end(call->end_arg, call);
        return;
    }
    call_release(call);
}

/* Appends one length-prefixed message of len bytes to call's output,
 * dropping what was sent. 0, or -1 when memory ran out. */
static int call_append(rl_grpc_call_t *call, const uint8_t *msg, size_t len)
{
    size_t left = call->outlen - call->outoff;
    uint8_t *b;

    if (call->outoff > 0) {
        memmove(call->out, call->out + call->outoff, left);
        call->outoff = 0;
        call->outlen = left;
    }
    b = realloc(call->out, call->outlen + len + 5);
    if (b == NULL) {
        return -1;
    }
    call->out = b;
    b += call->outlen;
    b[0] = 0;
    b[1] = (uint8_t)(len >> 24);
    b[2] = (uint8_t)(len >> 16);
    b[3] = (uint8_t)(len >> 8);
    b[4] = (uint8_t)len;
    if (len > 0) {
        memcpy(b + 5, msg, len);
    }
    call->outlen += len + 5;
    return 0;
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

/* Reads the reply messages for nghttp2; a server stream with nothing
 * queued waits (deferred) until the next message or its end; at the
 * end, the trailers. */
static ssize_t call_read(nghttp2_session *h2, int32_t sid, uint8_t *buf,
                         size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
    rl_grpc_call_t *call = src->ptr;
    size_t n = call->outlen - call->outoff;
    char code[4], msg[3 * sizeof(call->message) + 1];
    nghttp2_nv trailer[] = {
        {(uint8_t *)"grpc-status", (uint8_t *)code, 11, 1,
         NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"grpc-message", (uint8_t *)msg, 12, 0,
         NGHTTP2_NV_FLAG_NONE},
    };

    if (n > length) {
        n = length;
    }
    if (n > 0) {
        memcpy(buf, call->out + call->outoff, n);
        call->outoff += n;
    }
    if (call->outoff < call->outlen) {
        return (ssize_t)n;
    }
    call->outoff = call->outlen = 0;
    if (call->stream && !call->ended) {
        return n > 0 ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
    }
    trailer[0].valuelen =
        (size_t)snprintf(code, sizeof(code), "%d", (int)call->status);
    trailer[1].valuelen = call_encode_message(call->message, msg, sizeof(msg));
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    if (nghttp2_submit_trailer(h2, sid, trailer,
                               trailer[1].valuelen > 0 ? 2 : 1) != 0) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
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
    case RL_GRPC_NOT_FOUND: RL_STAT_INC(st, grpc_not_found); break;
    case RL_GRPC_DEADLINE_EXCEEDED:
        RL_STAT_INC(st, grpc_deadline_exceeded);
        break;
    case RL_GRPC_UNIMPLEMENTED: RL_STAT_INC(st, grpc_unimplemented); break;
    case RL_GRPC_UNAVAILABLE: RL_STAT_INC(st, grpc_unavailable); break;
    case RL_GRPC_INTERNAL: RL_STAT_INC(st, grpc_internal); break;
    case RL_GRPC_UNAUTHENTICATED: RL_STAT_INC(st, grpc_unauthenticated); break;
    case RL_GRPC_PERMISSION_DENIED:
        RL_STAT_INC(st, grpc_permission_denied);
        break;
    case RL_GRPC_RESOURCE_EXHAUSTED:
        RL_STAT_INC(st, grpc_resource_exhausted);
        break;
    }
    if (!call->stream) {
        rl_hist_observe(&st->hist_grpc,
                        call->start_us > 0 ? rl_mono_us() - call->start_us : 0);
    }
}

/* Submits the response headers of call with its messages to follow
 * (call_read). */
static void call_start(rl_grpc_call_t *call)
{
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
         NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider prd;

    prd.source.ptr = call;
    prd.read_callback = call_read;
    call->started = 1;
    nghttp2_submit_response(call->conn->h2, call->stream_id, nv, 2, &prd);
}

/* Submits call's answer on its stream: headers, the message and the
 * trailers, or trailers only for an error; for a started server stream,
 * the trailers after what is queued. */
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

    call->answered = 1;
    call->ended = 1;
    call_count(call, call->status);
    if (call->timer != NULL) {
        event_del(call->timer);
    }
    if (call->started) {
        nghttp2_session_resume_data(c->h2, call->stream_id);
    } else if (call->status == RL_GRPC_OK) {
        call_start(call);
    } else {
        nv[2].valuelen =
            (size_t)snprintf(code, sizeof(code), "%d", (int)call->status);
        nghttp2_submit_response(c->h2, call->stream_id, nv, mlen > 0 ? 4 : 3,
                                NULL);
    }
}

/* Answers call with an error of grpc.c's own (not the handler's) and
 * frees its request; grpc.c's h2_sent resets the stream once the answer
 * is out if the request is not complete. */
void rl_grpc_call_fail(rl_grpc_call_t *call, rl_grpc_status_t status,
                       const char *why)
{
    if (call->answered || call->conn == NULL) {
        return;
    }
    call->status = status;
    snprintf(call->message, sizeof(call->message), "%s", why);
    call_submit(call);
    rl_grpc_call_drop_input(call);
}

/* The call's timer ran out: before its request was complete, the read
 * deadline (a client that sends slowly or never ends its request);
 * after, the deadline of grpc-timeout before the handler answered. */
static void call_expired(evutil_socket_t fd, short what, void *arg)
{
    rl_grpc_call_t *call = arg;
    grpc_conn_t *c = call->conn;

    if (call->complete) {
        rl_grpc_call_fail(call, RL_GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
    } else {
        if (rl_stats_self != NULL) {
            RL_STAT_INC(rl_stats_self, grpc_read_timeouts);
        }
        rl_grpc_call_fail(call, RL_GRPC_DEADLINE_EXCEEDED,
                          "request not received within grpc.read_timeout_ms");
    }
    if (c != NULL && rl_grpc_conn_flush(c) != 0) {
        rl_grpc_conn_free(c);
    }
}

rl_grpc_call_t *rl_grpc_call_open(grpc_conn_t *c, int32_t sid)
{
    rl_grpc_call_t *call = calloc(1, sizeof(*call));

    if (call == NULL) {
        return NULL;
    }
    call->timer = evtimer_new(c->srv->base, call_expired, call);
    if (call->timer == NULL || evtimer_add(call->timer, c->srv->read) != 0) {
        call_release(call);
        return NULL;
    }
    call->conn = c;
    call->stream_id = sid;
    call->bad_request = 1; /* until :method POST is seen */
    call->next = c->calls;
    if (c->calls != NULL) {
        c->calls->prev = call;
    }
    c->calls = call;
    return call;
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
    /* A server stream's last message is optional. */
    if (status == RL_GRPC_OK && !(call->stream && len == 0) &&
        call_append(call, msg, len) != 0) {
        call->status = RL_GRPC_INTERNAL;
        snprintf(call->message, sizeof(call->message), "out of memory");
    }
    call_submit(call);
    /* Answered inside the session's own callbacks: conn_read sends. */
    if (!c->busy && rl_grpc_conn_flush(c) != 0) {
        rl_grpc_conn_free(c);
    }
}

void rl_grpc_call_stream(rl_grpc_call_t *call, rl_grpc_stream_end_fn *end,
                         void *arg)
{
    call->stream = 1;
    call->end = end;
    call->end_arg = arg;
}

int rl_grpc_call_send(rl_grpc_call_t *call, const uint8_t *msg, size_t len)
{
    grpc_conn_t *c = call->conn;

    if (!call->stream || !rl_grpc_call_live(call) ||
        call_append(call, msg, len) != 0) {
        return -1;
    }
    if (!call->started) {
        call_start(call);
    } else {
        nghttp2_session_resume_data(c->h2, call->stream_id);
    }
    /* Sent from the loop (conn_write), so that nothing here can free the
     * connection under the caller. */
    if (!c->busy) {
        bufferevent_trigger(c->bev, EV_WRITE,
                            BEV_TRIG_IGNORE_WATERMARKS |
                                BEV_TRIG_DEFER_CALLBACKS);
    }
    return 0;
}

void rl_grpc_conn_end_streams(grpc_conn_t *c)
{
    rl_grpc_call_t *call;

    for (call = c->calls; call != NULL; call = call->next) {
        if (call->stream && call->pending && !call->answered) {
            call->status = RL_GRPC_OK;
            call->message[0] = '\0';
            call_submit(call);
        }
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

int rl_grpc_call_metadata(const rl_grpc_call_t *call,
                          const rl_header_t **headers)
{
    *headers = call->meta;
    return call->nmeta;
}

const struct sockaddr *rl_grpc_call_peer(const rl_grpc_call_t *call)
{
    return call->conn != NULL ? (const struct sockaddr *)&call->conn->peer
                              : NULL;
}

/* The request of call is complete: check its framing and hand it on. */
void rl_grpc_call_dispatch(rl_grpc_call_t *call)
{
    grpc_conn_t *c = call->conn;
    rl_grpc_server_t *s = c->srv;
    const uint8_t *msg = NULL;
    const char *why = NULL;
    size_t len = 0;
    rl_grpc_status_t st;

    call->complete = 1;
    if (call->answered) {
        return;
    }
    if (call->bad_request) {
        rl_grpc_call_fail(call, RL_GRPC_UNIMPLEMENTED, "not a gRPC request");
        return;
    }
    st = rl_grpc_frame_parse(call->in, call->inlen, s->max_message, &msg, &len,
                             &why);
    if (st != RL_GRPC_OK) {
        rl_grpc_call_fail(call, st, why);
        return;
    }
    call->start_us = rl_mono_us();
    /* The read deadline gives way to grpc-timeout's, if any. */
    event_del(call->timer);
    if (call->timeout_us > 0) {
        struct timeval tv = {(time_t)(call->timeout_us / 1000000),
                             (suseconds_t)(call->timeout_us % 1000000)};

        evtimer_add(call->timer, &tv);
    }
    call->pending = 1;
    s->inflight++;
    s->fn(s->arg, call, call->path, msg, len);
    /* The handler has read the message (see rl_grpc_handler_fn). */
    rl_grpc_call_drop_input(call);
}
