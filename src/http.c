/* A small HTTP/1.1 server on libevent bufferevents (see http.h for why it
 * is not evhttp). One rl_http_server_t per worker thread; everything here
 * runs on that worker's event loop. This file is the listener: it
 * accepts, refuses past the connection cap, and drains on stop; the
 * connections live in http_conn.c (see http_int.h for the files). */
#include "http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "errors.h"
#include "log.h"
#include "loop.h"

#define RL_HTTP_STOP_GRACE_MS 250

/* The handler arg of the server that received req. */
void *rl_http_req_arg(const rl_http_req_t *req)
{
    return req->conn->srv->arg;
}

/* The client's address, as accepted. */
const struct sockaddr *rl_http_req_peer(const rl_http_req_t *req)
{
    return (const struct sockaddr *)&req->conn->peer;
}

/* See http.h: the request's weight against max_inflight_decisions. */
void rl_http_req_decisions(rl_http_req_t *req, int64_t n)
{
    rl_http_conn_t *c = req->conn;

    c->srv->decisions[c->small] += n - c->decisions;
    c->decisions = n;
}

/* See http_int.h: prefix + 16 hex digits of the sequence, without
 * printf (every request not carrying an id takes one). */
void rl_http_server_new_id(rl_http_server_t *s, char *id)
{
    static const char hex[] = "0123456789abcdef";
    size_t plen = strlen(s->id_prefix);
    uint64_t seq = ++s->id_seq;
    int k;

    memcpy(id, s->id_prefix, plen);
    for (k = 15; k >= 0; k--) {
        id[plen + (size_t)k] = hex[seq & 15];
        seq >>= 4;
    }
    id[plen + 16] = '\0';
}

/* ---------------------------------------------------------------------
 * Accepting
 * ------------------------------------------------------------------- */

/* Writes the reply a refused connection gets into buf (len bytes): the
 * error shape with a request id of its own, like every reply. Returns
 * its length. */
static int busy_reply(rl_http_server_t *s, char *buf, size_t len)
{
    char id[RL_HTTP_ID_MAX];
    char body[256];
    int n;

    rl_http_server_new_id(s, id);
    n = snprintf(body, sizeof(body),
                 "{\"error\":\"%s\",\"code\":\"%s\",\"trace_id\":\"%s\"}",
                 rl_error_message(RL_ERR_BUSY), rl_error_code(RL_ERR_BUSY), id);
    return snprintf(buf, len,
                    "HTTP/1.1 %d Service Unavailable\r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Length: %d\r\nX-Request-Id: %s\r\n"
                    "Connection: close\r\n\r\n%s",
                    rl_error_status(RL_ERR_BUSY), n, id, body);
}

/* A new client: served by a new connection, or refused while the worker
 * is full or draining. */
static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    rl_http_server_t *s = arg;

    if (s->nconns >= s->limits.max_connections || s->draining) {
        /* Refuse rather than queue without bound. Best effort: the socket
         * is fresh, so this small write does not block in practice. */
        /* On a TLS listener plain text would only garble the handshake:
         * the connection is just closed. */
        if (s->tls == NULL) {
            char buf[512];
            int n = busy_reply(s, buf, sizeof(buf));
            ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
        }
        evutil_closesocket(fd);
        return;
    }
    (void)rl_http_conn_new(s, fd, sa, salen);
}

/* accept() failed: logged; the listener goes on. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    /* EMFILE and friends: keep serving open connections; the listener
     * retries on the next readiness. */
    rl_warn("accept failed: %s", evutil_socket_error_to_string(err));
}

/* Creates the server, its listener disabled (see http.h). */
rl_http_server_t *rl_http_server_new(struct event_base *base, int fd,
                                     const rl_conf_http_t *limits,
                                     const char *id_prefix,
                                     rl_http_handler *handler, void *arg)
{
    rl_http_server_t *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->base = base;
    s->limits = *limits;
    s->handler = handler;
    s->arg = arg;
    snprintf(s->id_prefix, sizeof(s->id_prefix), "%s", id_prefix);
    s->listener = evconnlistener_new(
        base, accept_cb, s,
        LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_DISABLED, -1, fd);
    if (s->listener == NULL) {
        free(s);
        return NULL;
    }
    evconnlistener_set_error_cb(s->listener, accept_error_cb);
    s->resume = evtimer_new(base, rl_http_conn_resume_cb, s);
    if (s->resume == NULL) {
        evconnlistener_free(s->listener);
        free(s);
        return NULL;
    }
    return s;
}

/* Enables the listener once the worker is ready. */
void rl_http_server_start_accepting(rl_http_server_t *s)
{
    if (s->listener != NULL && !s->accepting) {
        evconnlistener_enable(s->listener);
        s->accepting = 1;
    }
}

/* 1 while the listener accepts. */
int rl_http_server_accepting(const rl_http_server_t *s)
{
    return s->accepting;
}

/* Borrows ctx for every connection accepted from now on. */
void rl_http_server_set_tls(rl_http_server_t *s, struct ssl_ctx_st *ctx)
{
    s->tls = ctx;
}

/* Stops accepting and drains (see http.h). */
void rl_http_server_stop_accepting(rl_http_server_t *s)
{
    rl_http_conn_t *c, *next;

    s->draining = 1;
    s->accepting = 0;
    if (s->listener != NULL) {
        /* Closes the socket too: the kernel stops completing handshakes
         * that nobody would serve. */
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    /* Idle keep-alive connections have nothing to finish. A connection
     * accepted a moment ago whose first request may already be on its
     * way gets a short grace instead (the idle timer frees it). */
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state != CONN_IDLE) {
            continue;
        }
        if (c->served > 0) {
            rl_http_conn_free(c);
        } else {
            evtimer_del(c->timer);
            rl_http_conn_arm_timer(c, RL_HTTP_STOP_GRACE_MS);
        }
    }
}

/* Reads and clears the large-request mark. */
int rl_http_server_take_large(rl_http_server_t *s)
{
    int seen = s->large_seen;
    s->large_seen = 0;
    return seen;
}

/* Frees the server's free requests beyond RL_HTTP_REQ_POOL_IDLE. */
void rl_http_server_shrink(rl_http_server_t *s)
{
    while (s->nreq_pool > RL_HTTP_REQ_POOL_IDLE) {
        free(s->req_pool[--s->nreq_pool]);
    }
}

/* Requests the handler owns now. */
int rl_http_server_inflight(const rl_http_server_t *s)
{
    return s->inflight;
}

/* Connections open now. */
int rl_http_server_connections(const rl_http_server_t *s)
{
    return s->nconns;
}

/* Frees s, its connections (unanswered) and its request pool. */
void rl_http_server_free(rl_http_server_t *s)
{
    if (s == NULL) {
        return;
    }
    if (s->listener != NULL) {
        evconnlistener_free(s->listener);
    }
    while (s->conns != NULL) {
        rl_http_conn_free(s->conns);
    }
    while (s->nreq_pool > 0) {
        free(s->req_pool[--s->nreq_pool]);
    }
    rl_loop_event_free(s->resume);
    free(s);
}
