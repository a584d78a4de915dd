#ifndef RL_GRPC_H
#define RL_GRPC_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include "conf.h"
#include "request.h"

/* The gRPC listener of one worker: its own SO_REUSEPORT socket on the
 * worker's event loop, HTTP/2 by libnghttp2 (cleartext with prior
 * knowledge, or TLS with ALPN h2), one nghttp2 session per connection,
 * one call per stream. A call's request is exactly one length-prefixed
 * message; its reply is one message and the grpc-status / grpc-message
 * trailers, or trailers only; or, for a server stream, any number of
 * messages and then the trailers. Knows nothing of the services: a
 * handler gets each complete call. Worker thread only, except where a
 * function says otherwise. */

typedef struct rl_grpc_server rl_grpc_server_t;
typedef struct rl_grpc_call rl_grpc_call_t;

/* The gRPC status codes ratelimitd answers. */
typedef enum {
    RL_GRPC_OK = 0,
    RL_GRPC_INVALID_ARGUMENT = 3,
    RL_GRPC_DEADLINE_EXCEEDED = 4,
    RL_GRPC_NOT_FOUND = 5,
    RL_GRPC_PERMISSION_DENIED = 7,
    RL_GRPC_RESOURCE_EXHAUSTED = 8,
    RL_GRPC_UNIMPLEMENTED = 12,
    RL_GRPC_INTERNAL = 13,
    RL_GRPC_UNAVAILABLE = 14,
    RL_GRPC_UNAUTHENTICATED = 16
} rl_grpc_status_t;

/* The most request header lines (metadata) a call keeps: those named in
 * the server's list, in order; later ones are dropped. With fewer names
 * than this, a dropped line means some name came twice among those
 * kept, which a reader of repeated headers sees. */
#define RL_GRPC_METADATA_MAX 8

/* A complete call: path is its ":path" ("/pkg.Service/Method"), msg the
 * message's len bytes; both valid only during the call. The handler
 * answers exactly once with rl_grpc_call_answer, now or later. */
typedef void rl_grpc_handler_fn(void *arg, rl_grpc_call_t *call,
                                const char *path, const uint8_t *msg,
                                size_t len);

/* Binds conf->listen (SO_REUSEPORT, so every worker has its own socket
 * on the one port) and, with conf->tls, loads its TLS context (ALPN h2).
 * metadata (NULL terminated, borrowed for the server's life) names the
 * request headers a call keeps for its handler (rl_grpc_call_metadata),
 * compared case-insensitively. Returns the server (free with
 * rl_grpc_server_free), or NULL with err filled. Main thread, before
 * the worker starts. */
rl_grpc_server_t *rl_grpc_server_new(struct event_base *base,
                                     const rl_conf_grpc_t *conf,
                                     rl_grpc_handler_fn *fn, void *arg,
                                     const char *const *metadata, char *err,
                                     size_t errlen);

/* Stops accepting and sends every session a GOAWAY; streams in flight
 * are still answered, then each connection closes. */
void rl_grpc_server_stop(rl_grpc_server_t *s);

/* Open connections and calls a handler holds. NULL: 0. */
int rl_grpc_server_connections(const rl_grpc_server_t *s);
int rl_grpc_server_inflight(const rl_grpc_server_t *s);

/* Closes every connection (calls in a handler's hands are abandoned:
 * their answer only frees them) and frees s. NULL is fine. */
void rl_grpc_server_free(rl_grpc_server_t *s);

/* Answers call: status RL_GRPC_OK with the len bytes of msg (copied) as
 * the reply message, else trailers only with grpc-status and
 * grpc-message (message may be NULL). A call whose deadline passed or
 * whose client went is only freed. call is invalid afterwards. */
void rl_grpc_call_answer(rl_grpc_call_t *call, rl_grpc_status_t status,
                         const uint8_t *msg, size_t len, const char *message);

/* A server stream's end before its handler answered: the client
 * cancelled or went, the grpc-timeout deadline passed, or the server is
 * stopping (the stream then ends with OK trailers). The handler must
 * forget call and answer it (which only frees it), now or later. */
typedef void rl_grpc_stream_end_fn(void *arg, rl_grpc_call_t *call);

/* Makes call (held by its handler) a server stream: its messages go out
 * with rl_grpc_call_send, and rl_grpc_call_answer ends it (any message
 * given there is the last). end(arg, call) is called at most once, as
 * rl_grpc_stream_end_fn says, never from inside rl_grpc_call_send or
 * rl_grpc_call_answer. A stream's time is not in the latency histogram. */
void rl_grpc_call_stream(rl_grpc_call_t *call, rl_grpc_stream_end_fn *end,
                         void *arg);

/* Queues one message (len bytes, copied) on server stream call; it goes
 * out as flow control allows. Returns 0, or -1 when the stream has ended
 * or memory ran out. */
int rl_grpc_call_send(rl_grpc_call_t *call, const uint8_t *msg, size_t len);

/* 1 while the call's answer still reaches its client. */
int rl_grpc_call_live(const rl_grpc_call_t *call);

/* The kept request headers of call (see RL_GRPC_METADATA_MAX) into
 * *headers; returns how many. Valid until the call is answered. */
int rl_grpc_call_metadata(const rl_grpc_call_t *call,
                          const rl_header_t **headers);

/* The client's address, or NULL once its connection went. */
const struct sockaddr *rl_grpc_call_peer(const rl_grpc_call_t *call);

/* When the call's request was complete (monotonic us). */
int64_t rl_grpc_call_start_us(const rl_grpc_call_t *call);

/* Parses a grpc-timeout value ("<1-8 digits><H|M|S|m|u|n>") into us
 * (>= 1). Returns 0, or -1 when it is malformed. Pure. */
int rl_grpc_timeout_parse(const char *v, size_t len, int64_t *us);

/* Splits a request body (the DATA of a unary call) into its message:
 * exactly one uncompressed length-prefixed message of at most max
 * bytes. Returns RL_GRPC_OK with *msg, *len set, or the status to
 * answer with *why (static). Pure. */
rl_grpc_status_t rl_grpc_frame_parse(const uint8_t *body, size_t n, size_t max,
                                     const uint8_t **msg, size_t *len,
                                     const char **why);

#endif
