#ifndef RL_HTTP_H
#define RL_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>
#include "conf.h"
#include "request.h"

/* A small HTTP/1.1 server on bufferevents, one per worker thread. It is
 * ours rather than evhttp so that every limit answers in the project's
 * JSON error shape (413 from Content-Length before the body is read, 431
 * past max_header_bytes), slow clients are cut off by an absolute
 * deadline, connections are capped per worker, and TLS can be layered
 * in with an OpenSSL bufferevent. Requests on one connection are served
 * one at a time, in order (pipelined requests wait in the input buffer).
 * Worker thread only. */

#define RL_HTTP_MAX_HEADERS 64
#define RL_HTTP_ID_MAX 129

typedef struct rl_http_server rl_http_server_t;
typedef struct rl_http_conn rl_http_conn_t;

typedef struct rl_http_req {
    rl_http_conn_t *conn;
    const char *method; /* as sent: "POST" */
    const char *target; /* as sent, with the query string */
    const char *path; /* target without the query string (not NUL terminated at
                         path_len!) */
    size_t path_len;
    rl_header_t headers[RL_HTTP_MAX_HEADERS];
    int nheaders;
    const char *body; /* body_len bytes, not NUL terminated */
    size_t body_len;
    int keep_alive;          /* 0: close after the reply; 1: persistent; 2: an
                                HTTP/1.0 request that asked for keep-alive, which
                                the reply must then say */
    int64_t start_us;        /* monotonic, when the request was complete */
    char id[RL_HTTP_ID_MAX]; /* X-Request-Id: echoed, or generated */
} rl_http_req_t;

/* Called once per complete request. The handler must answer it exactly
 * once with rl_http_reply (now or later from the same thread). The request
 * and its strings stay valid until then. */
typedef void rl_http_handler(rl_http_req_t *req, void *arg);

/* Creates a server on base for the listening socket fd, which it owns
 * from then on (closed when it stops accepting or is freed). It accepts
 * nothing until rl_http_server_start_accepting; until then the kernel
 * holds new connections in the backlog. */
rl_http_server_t *rl_http_server_new(struct event_base *base, int fd,
                                     const rl_conf_http_t *limits,
                                     const char *id_prefix,
                                     rl_http_handler *handler, void *arg);

void rl_http_server_start_accepting(rl_http_server_t *s);
int rl_http_server_accepting(const rl_http_server_t *s);
/* Serves TLS on s from now on: every accepted connection gets an SSL
 * object from ctx (borrowed: created at start-up, shared read-only by
 * every worker, freed after the workers stop). Main thread, before the
 * worker starts. */
struct ssl_ctx_st;
void rl_http_server_set_tls(rl_http_server_t *s, struct ssl_ctx_st *ctx);

/* Stops accepting; open connections finish their request and close. */
void rl_http_server_stop_accepting(rl_http_server_t *s);

/* 1 if a request of 64 KB or more (head and body) was read since the
 * last call, which clears the mark. The worker then gives the memory
 * such a request used back to the system once idle. */
int rl_http_server_take_large(rl_http_server_t *s);

/* Gives back what the server kept from a burst: its pool of free
 * requests shrinks to 16 (at most 256 are kept while busy). Worker
 * thread, between requests. */
void rl_http_server_shrink(rl_http_server_t *s);

/* Requests being handled and connections open now. */
int rl_http_server_inflight(const rl_http_server_t *s);
int rl_http_server_connections(const rl_http_server_t *s);

/* Closes every connection (answering none) and frees s. */
void rl_http_server_free(rl_http_server_t *s);

/* The handler arg of the server that received req. */
void *rl_http_req_arg(const rl_http_req_t *req);

/* The address of the client that sent req (AF_INET or AF_INET6). */
const struct sockaddr *rl_http_req_peer(const rl_http_req_t *req);

/* Says that req carries n decisions (a batch of n items; a request
 * weighs 1 otherwise), for http.max_inflight_decisions. Worker thread,
 * before req is answered. */
void rl_http_req_decisions(rl_http_req_t *req, int64_t n);

/* The request parser (rl_http_parse_head) is in http_parse.h. */

/* Header lookup on a request, case-insensitive; NULL if absent. */
const char *rl_http_header(const rl_http_req_t *req, const char *name,
                           size_t *len);

/* Answers req: status, extra headers (name/value arrays, n entries, may be
 * 0), and body (len bytes, content type application/json unless ctype
 * says otherwise; NULL for none). Adds Content-Length, X-Request-Id and
 * Connection headers. req is invalid afterwards. */
void rl_http_reply(rl_http_req_t *req, int status, const char *const *names,
                   const char *const *values, int n, const char *ctype,
                   const char *body, size_t len);

/* Reason phrase of a status code ("Too Many Requests"). */
const char *rl_http_reason(int status);

#endif
