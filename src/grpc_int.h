#ifndef RL_GRPC_INT_H
#define RL_GRPC_INT_H

/* Private to the gRPC listener (see grpc.c for what it owns and
 * promises): the types shared by its two files.
 *   grpc.c       nghttp2 callbacks, connections, the server
 *   grpc_call.c  calls: their answers, server streams, deadlines
 * Worker thread only. */

#include <stddef.h>
#include <stdint.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include "grpc.h"

#define GRPC_PATH_MAX 128
/* Concurrent streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS):
 * room for an Envoy worker's calls while the store is slow. Memory does
 * not grow with it: what unfinished requests buffer is capped per
 * connection (GRPC_HELD_MESSAGES), so a stream without its request costs
 * only its call and nghttp2's stream, about 1 KB. */
#define GRPC_MAX_STREAMS 1000
/* What the unfinished requests of a connection may hold at once (their
 * bodies and kept header values): this many requests of
 * max_message_bytes, and never less than GRPC_HELD_MIN, so that the
 * header values of many small calls fit too. */
#define GRPC_HELD_MESSAGES 4
#define GRPC_HELD_MIN (1024 * 1024)
#define GRPC_OUTPUT_HIGH (1024 * 1024) /* stop reading past this backlog */

typedef struct grpc_conn grpc_conn_t;

struct rl_grpc_call {
    grpc_conn_t *conn;           /* NULL once abandoned */
    rl_grpc_call_t *prev, *next; /* the connection's calls */
    int32_t stream_id;
    char path[GRPC_PATH_MAX];
    int bad_request;                        /* not a POST of application/grpc */
    rl_header_t meta[RL_GRPC_METADATA_MAX]; /* values owned (malloc) */
    int nmeta;
    uint8_t *in; /* the request body received so far */
    size_t inlen, incap;
    size_t held;        /* bytes of in and meta charged to conn->held */
    int complete;       /* END_STREAM came: the request is all here */
    int64_t timeout_us; /* 0: none */
    /* Until the request is complete, its read deadline
     * (grpc.read_timeout_ms from the first HEADERS); then the deadline of
     * grpc-timeout, if any. */
    struct event *timer;
    int64_t start_us;
    int pending;  /* the handler holds it */
    int answered; /* an answer has been submitted */
    uint8_t *out; /* the reply message(s), length-prefixed */
    size_t outlen, outoff;
    /* A server stream (rl_grpc_call_stream): end is its handler's end
     * callback until called; started once the response headers went
     * out (messages follow as they are sent); ended once its status is
     * set (the trailers follow the last message). */
    int stream;
    rl_grpc_stream_end_fn *end;
    void *end_arg;
    int started;
    int ended;
    rl_grpc_status_t status;
    char message[160];
};

struct grpc_conn {
    rl_grpc_server_t *srv;
    grpc_conn_t *prev, *next;
    struct bufferevent *bev;
    nghttp2_session *h2;
    rl_grpc_call_t *calls;
    struct sockaddr_storage peer;
    size_t held; /* what the calls' unfinished requests hold, <= max_held */
    int busy;    /* inside nghttp2_session_mem_recv: no send, no free */
    int closing; /* idle: GOAWAY sent, freed once written (or in 1 s) */
};

struct rl_grpc_server {
    struct event_base *base;
    size_t max_message; /* "max_message_bytes" (a restart-only section) */
    size_t max_held;    /* per connection: GRPC_HELD_MESSAGES requests */
    const struct timeval *read; /* "read_timeout_ms" (a common timeout) */
    struct evconnlistener *listener;
    SSL_CTX *tls;
    rl_grpc_handler_fn *fn;
    void *arg;
    const char *const *metadata; /* the header names calls keep */
    grpc_conn_t *conns;
    int nconns;
    int64_t max_conns;   /* "max_connections": past it, accept and close */
    struct timeval idle; /* "idle_timeout_ms" */
    int inflight;
    int stopping;
};

/* A new call for stream sid of c, linked into c's calls, its read
 * deadline running; NULL when memory ran out. */
rl_grpc_call_t *rl_grpc_call_open(grpc_conn_t *c, int32_t sid);

/* Frees what call's request holds (its body and its kept headers, once
 * the handler has read them) and gives it back to the connection's
 * cap. */
void rl_grpc_call_drop_input(rl_grpc_call_t *call);

/* Detaches call from its connection (the stream closed or the
 * connection went) and frees it unless a handler holds it; a server
 * stream's handler is told (rl_grpc_stream_end_fn). */
void rl_grpc_call_detach(rl_grpc_call_t *call);

/* The request of call is complete: check its framing and hand it on. */
void rl_grpc_call_dispatch(rl_grpc_call_t *call);

/* Answers call with an error of the listener's own (not the handler's)
 * and frees its request; one answered before its request is complete
 * is then reset (NO_ERROR), so the client stops sending and the stream
 * closes. */
void rl_grpc_call_fail(rl_grpc_call_t *call, rl_grpc_status_t status,
                       const char *why);

/* Ends every server stream of c with OK trailers (its handler is told);
 * called on stop, after the GOAWAY. */
void rl_grpc_conn_end_streams(grpc_conn_t *c);

/* Closes c: abandons its calls, frees its session and socket. */
void rl_grpc_conn_free(grpc_conn_t *c);

/* Sends what the session has; 0, or -1 when c should close now (an
 * error, or nothing more to read or write and the output drained). */
int rl_grpc_conn_flush(grpc_conn_t *c);

#endif
