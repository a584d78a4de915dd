#ifndef RL_REDIS_CONN_INT_H
#define RL_REDIS_CONN_INT_H

/* Private to redis_conn.c and redis_pipe.c (see redis_conn.c for the
 * layers and the rules): the connection's struct and what the two files
 * call of each other. Worker thread only. */

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/ssl.h>
#include "redis_conn.h"

#define CONN_DEFAULT_CONNECT_TIMEOUT_MS 1000
#define CONN_BACKOFF_MIN_MS 10
#define CONN_BACKOFF_MAX_MS 1000
#define CONN_RING_MIN 64 /* a power of two */
#define CONN_MAX_ABANDONED 1000
#define CONN_HUNG_FACTOR 5
#define CONN_HUNG_MIN_MS 1000
#define CONN_READ_IOV 16

typedef enum {
    CONN_IDLE = 0,   /* no socket; the timer starts the next attempt */
    CONN_CONNECTING, /* TCP connect in flight; the timer is its deadline */
    CONN_HANDSHAKE,  /* AUTH / SELECT in flight; same deadline */
    CONN_READY,      /* commands accepted; the timer is the head's deadline */
    CONN_CLOSING     /* rl_redis_conn_free is running */
} conn_state_t;

typedef struct conn_pending {
    rl_redis_cb *cb; /* NULL once timed out: the late reply is dropped */
    void *arg;
    int64_t deadline_us; /* monotonic */
} conn_pending_t;

struct rl_redis_conn {
    struct event_base *base;
    char *host;
    char *username;
    char *password;
    int port;
    int timeout_ms;
    int connect_timeout_ms;
    int db;
    SSL_CTX *tls_ctx; /* NULL: plain TCP */
    char *tls_server_name;
    void (*on_connect)(void *arg, rl_redis_conn_t *c);
    void (*on_disconnect)(void *arg, rl_redis_conn_t *c);
    void *hook_arg;

    struct sockaddr_storage addr;
    int addrlen;
    struct bufferevent *bev; /* NULL when idle */
    redisReader *reader;     /* NULL when idle: every socket gets a fresh one */
    struct event *timer;
    struct event *flush; /* writes the commands of one loop pass at once */
    int flush_pending;
    int write_waiting; /* plain socket: EV_WRITE on until output drains */
    conn_state_t state;
    unsigned epoch; /* bumped on every teardown */
    int handshake_left;
    int64_t connect_deadline_us;
    int backoff_ms;
    int ever_ready;
    char last_failure[96]; /* logged once until the state changes */

    /* Pending commands, oldest first. The first nabandoned entries are
     * the timed-out ones: deadlines only grow, so they form a prefix. */
    conn_pending_t *ring;
    size_t cap; /* a power of two */
    size_t head;
    size_t len;
    size_t nabandoned;

    rl_redis_conn_stats_t stats;
};

/* redis_conn.c: tears the connection down (see there). */
void rl_redis_conn_fail(rl_redis_conn_t *c, const char *why);

/* redis_pipe.c */

/* Encodes one command into the output buffer and queues its callback
 * with its deadline. RL_OK, or RL_ERR (nothing queued, cb not called). */
int rl_redis_pipe_send(rl_redis_conn_t *c, int argc, const char **argv,
                       const size_t *argvlen, rl_redis_cb *cb, void *arg,
                       int64_t deadline_us);

/* Empties the pipeline, calling every live callback with NULL
 * "disconnected". */
void rl_redis_pipe_fail_all(rl_redis_conn_t *c);

/* READY: arms the timer for the next deadline or hung check, if any. */
void rl_redis_pipe_arm_timer(rl_redis_conn_t *c);

/* READY timer: fails the commands past their deadline; closes a node
 * that looks hung. */
void rl_redis_pipe_expire(rl_redis_conn_t *c);

/* The bufferevent's read and write callbacks, and the flush event's. */
void rl_redis_pipe_read_cb(struct bufferevent *bev, void *arg);
void rl_redis_pipe_write_cb(struct bufferevent *bev, void *arg);
void rl_redis_pipe_flush_cb(evutil_socket_t fd, short what, void *arg);

#endif
