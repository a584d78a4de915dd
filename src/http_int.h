#ifndef RL_HTTP_INT_H
#define RL_HTTP_INT_H

/* Private to the HTTP server's files; other modules use http.h.
 *   http_parse.c  the request parser and the chunked decoder (pure)
 *   http_conn.c   one connection's state machine: reading, pipelining,
 *                 keep-alive, deadlines, half-close, pausing a client
 *                 that does not read its replies
 *   http_reply.c  the reply writer: status line, headers, body, written
 *                 to the socket at once
 *   http.c        the listener: accepting, refusing, draining
 * Everything runs on the worker thread that owns the server. */

#include <stdint.h>
#include <sys/socket.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include "http.h"
#include "http_parse.h"

typedef enum {
    CONN_IDLE = 0, /* waiting for the first byte of a request */
    CONN_READING,  /* part of a request has arrived */
    CONN_HANDLING, /* the handler owns the request */
    CONN_CLOSING   /* flushing a last reply, then close */
} rl_http_conn_state_t;

/* Free requests a server keeps for reuse; more are freed. Once the
 * worker is idle, rl_http_server_shrink frees all but RL_HTTP_REQ_POOL_IDLE. */
#define RL_HTTP_REQ_POOL 256
#define RL_HTTP_REQ_POOL_IDLE 16

/* Between requests a connection keeps a head buffer of at most this many
 * bytes, and a body buffer of at most RL_HTTP_BODY_KEEP; larger ones are
 * freed when the request ends. */
#define RL_HTTP_HEAD_KEEP 4096
#define RL_HTTP_BODY_KEEP 65536

/* Back-pressure: a request body this small carries one decision or a few
 * (a batch item is at least 12 bytes); such requests have their own pool
 * of max_inflight_decisions / 8. */
#define RL_HTTP_SMALL_BODY 1024

/* Input this large marks the server for rl_http_server_take_large. */
#define RL_HTTP_LARGE 65536

struct rl_http_conn {
    rl_http_server_t *srv;
    struct bufferevent *bev;
    struct event *rev; /* plain sockets are read by this event, not by the
                        * bufferevent: saves its FIONREAD ioctl per read */
    struct event *timer;
    rl_http_conn_t *prev, *next;
    rl_http_conn_state_t state;
    size_t head_len;        /* request line + headers + CRLFCRLF */
    int64_t content_length; /* -1 none */
    int chunked;
    rl_http_chunked_t chunk;  /* the chunked decoder, while chunked */
    rl_http_head_scan_t scan; /* the search for the end of the head */
    int continue_sent;
    char *head; /* copy of the request head, parsed in place (owned) */
    size_t head_cap;
    rl_http_body_t body; /* the request's body, copied or decoded (owned) */
    size_t consumed;     /* input bytes that belong to the request */
    int peer_gone;       /* the peer reset: drop the reply */
    int read_eof;        /* the peer half-closed: reply, then close */
    int read_paused;     /* see rl_http_conn_update_reading */
    int dispatching;     /* inside the handler's synchronous part */
    int tls;
    int write_waiting; /* plain socket: EV_WRITE on until output drains */
    int read_armed;    /* the read deadline of the request being read is on */
    uint64_t served;   /* requests handed to the handler */
    struct sockaddr_storage peer; /* the client's address */
    rl_http_req_t *req; /* from the server's pool from the first byte of a
                         * request to its reply; NULL while idle, so an idle
                         * connection holds no header table */
    int64_t decisions;  /* what its request in flight weighs */
    int small;          /* ... counted in the small requests' pool */
    int held;           /* waiting in the server's held queue */
    rl_http_conn_t *held_prev, *held_next;
};

struct rl_http_server {
    struct event_base *base;
    struct evconnlistener *listener;
    rl_conf_http_t limits;
    rl_http_handler *handler;
    void *arg;
    char id_prefix[17];
    uint64_t id_seq;
    int nconns;
    int inflight;
    int draining;
    int accepting;
    rl_http_conn_t *conns;
    SSL_CTX *tls;   /* shared, read-only; NULL = plain HTTP */
    int large_seen; /* a request of RL_HTTP_LARGE bytes or more was read */
    rl_http_req_t *req_pool[RL_HTTP_REQ_POOL]; /* free requests, reused */
    int nreq_pool;
    /* Back-pressure: decisions of the requests in flight, [0] large and
     * [1] small ones (see rl_http_conn_release). At the cap a connection
     * whose request is complete is held (reading paused, in FIFO order)
     * until decisions complete. */
    int64_t decisions[2];
    rl_http_conn_t *held_head, *held_tail;
    struct event *resume; /* serves held connections, from the loop */
};

/* http.c */

/* Writes the next generated request id of s into id (RL_HTTP_ID_MAX
 * bytes): the server's prefix and 16 hex digits of its sequence. */
void rl_http_server_new_id(rl_http_server_t *s, char *id);

/* http_conn.c */

/* A connection for the accepted socket fd (owned from then on, closed on
 * failure), linked into s and waiting for its first request. NULL when
 * out of memory. */
rl_http_conn_t *rl_http_conn_new(rl_http_server_t *s, evutil_socket_t fd,
                                 const struct sockaddr *sa, int salen);

/* Unlinks and frees c with everything it owns. */
void rl_http_conn_free(rl_http_conn_t *c);

/* Arms c's one timer ms milliseconds from now. */
void rl_http_conn_arm_timer(rl_http_conn_t *c, int64_t ms);

/* Turns reading from c's socket on or off. */
void rl_http_conn_reading(rl_http_conn_t *c, int on);

/* Closes c from the event loop, never from inside a callback chain that
 * still holds it. */
void rl_http_conn_close_soon(rl_http_conn_t *c);

/* The resume event of s: takes held connections off the queue in FIFO
 * order while decisions are below the cap, and serves their input. */
void rl_http_conn_resume_cb(evutil_socket_t fd, short what, void *arg);

/* c's request has been answered: its decisions leave the count, and held
 * connections are resumed (from the loop) once there is room. */
void rl_http_conn_release(rl_http_conn_t *c);

/* The handler's reply is in c's output: ends the request, writes the
 * reply, then closes (close_after) or waits for the next request and
 * serves what the input already holds. */
void rl_http_conn_replied(rl_http_conn_t *c, int close_after);

/* http_reply.c */

/* Plain sockets are written at once, from the handler's reply: EV_WRITE is
 * registered only when the socket cannot take the whole reply, which saves
 * two epoll_ctl calls per request. TLS bufferevents write on their own.
 * Returns -1 if the peer is gone. */
int rl_http_reply_flush(rl_http_conn_t *c);

/* The Connection header of a reply: none, close, or keep-alive (to an
 * HTTP/1.0 client that asked for it). */
typedef enum {
    RL_HTTP_CONN_HDR_NONE = 0,
    RL_HTTP_CONN_HDR_CLOSE = 1,
    RL_HTTP_CONN_HDR_KEEP_ALIVE = 2
} rl_http_conn_hdr_t;

/* Appends a complete reply to c's output (not written yet): the status
 * line, the n extra headers, Content-Type (ctype, or JSON) when body is
 * not NULL, Content-Length, X-Request-Id (id, unless empty), the
 * Connection header conn, then len bytes of body. */
void rl_http_reply_write(rl_http_conn_t *c, const char *id, int status,
                         const char *const *names, const char *const *values,
                         int n, const char *ctype, const char *body, size_t len,
                         rl_http_conn_hdr_t conn);

#endif
