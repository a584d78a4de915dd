/* A small HTTP/1.1 server on libevent bufferevents (see http.h for why it
 * is not evhttp). One rl_http_server_t per worker thread; everything here
 * runs on that worker's event loop. */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include "bev_write.h"
#include "log.h"
#include "util.h"

/* ---------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------- */

typedef enum {
    CONN_IDLE = 0, /* waiting for the first byte of a request */
    CONN_READING,  /* part of a request has arrived */
    CONN_HANDLING, /* the handler owns the request */
    CONN_CLOSING   /* flushing a last reply, then close */
} conn_state_t;

/* Free requests a server keeps for reuse; more are freed. */
#define RL_HTTP_REQ_POOL 256

struct rl_http_conn {
    rl_http_server_t *srv;
    struct bufferevent *bev;
    struct event *rev; /* plain sockets are read by this event, not by the
                        * bufferevent: saves its FIONREAD ioctl per read */
    struct event *timer;
    rl_http_conn_t *prev, *next;
    conn_state_t state;
    size_t searched;        /* bytes of input already searched for CRLFCRLF */
    size_t head_len;        /* request line + headers + CRLFCRLF */
    int64_t content_length; /* -1 none */
    int chunked;
    int continue_sent;
    char *head; /* copy of the request head, parsed in place (owned) */
    size_t head_cap;
    char *body; /* the request's body, copied or decoded (owned) */
    size_t body_len, body_cap;
    size_t consumed; /* input bytes that belong to the request */
    int peer_gone;   /* the peer reset: drop the reply */
    int read_eof;    /* the peer half-closed: reply, then close */
    int read_paused; /* see conn_update_reading */
    int dispatching; /* inside the handler's synchronous part */
    int tls;
    int write_waiting; /* plain socket: EV_WRITE on until output drains */
    uint64_t served;   /* requests handed to the handler */
    struct sockaddr_storage peer; /* the client's address */
    rl_http_req_t *req; /* from the server's pool from the first byte of a
                         * request to its reply; NULL while idle, so an idle
                         * connection holds no header table */
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
};

/* Input this large marks the server for rl_http_server_take_large. */
#define RL_HTTP_LARGE 65536

static void conn_read_cb(struct bufferevent *bev, void *arg);

#define RL_STR_(x) #x
#define RL_STR(x) RL_STR_(x)
#define RL_BUSY_LEN 62
#define RL_HTTP_STOP_GRACE_MS 250
static void conn_process(rl_http_conn_t *c);

/* ---------------------------------------------------------------------
 * Status phrases and small helpers
 * ------------------------------------------------------------------- */

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {200, "OK"},
    {202, "Accepted"},
    {204, "No Content"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {411, "Length Required"},
    {413, "Payload Too Large"},
    {415, "Unsupported Media Type"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

const char *rl_http_reason(int status)
{
    size_t i;
    for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (reasons[i].status == status) {
            return reasons[i].reason;
        }
    }
    return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
}

void *rl_http_req_arg(const rl_http_req_t *req)
{
    return req->conn->srv->arg;
}

const struct sockaddr *rl_http_req_peer(const rl_http_req_t *req)
{
    return (const struct sockaddr *)&req->conn->peer;
}

const char *rl_http_header(const rl_http_req_t *req, const char *name,
                           size_t *len)
{
    size_t nlen = strlen(name);
    int i;
    for (i = 0; i < req->nheaders; i++) {
        if (req->headers[i].name_len == nlen &&
            strncasecmp(req->headers[i].name, name, nlen) == 0) {
            if (len != NULL) {
                *len = req->headers[i].value_len;
            }
            return req->headers[i].value;
        }
    }
    return NULL;
}

static int is_tchar(int ch)
{
    return isalnum(ch) || (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* A caller's X-Request-Id is echoed only if it is short and plain, so it
 * cannot inject headers or bloat logs. */
static int request_id_ok(const char *v, size_t len)
{
    size_t i;
    if (len == 0 || len >= RL_HTTP_ID_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (!isalnum(ch) && ch != '-' && ch != '_' && ch != '.' && ch != ':') {
            return 0;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------------
 * Connection lifecycle
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

static void conn_free(rl_http_conn_t *c)
{
    rl_http_server_t *s = c->srv;

    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    s->nconns--;
    if (c->timer != NULL) {
        event_free(c->timer);
    }
    if (c->rev != NULL) {
        event_free(c->rev);
    }
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
    }
    conn_req_put(c);
    free(c->body);
    free(c->head);
    free(c);
}

static void conn_arm_timer(rl_http_conn_t *c, int64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    evtimer_add(c->timer, &tv);
}

/* Turns reading from c's socket on or off. */
static void conn_reading(rl_http_conn_t *c, int on)
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
static void conn_close_soon(rl_http_conn_t *c)
{
    c->state = CONN_CLOSING;
    conn_reading(c, 0);
    evtimer_del(c->timer);
    conn_arm_timer(c, 0);
}

/* Grows the body buffer to at least need bytes: exactly, so ten thousand
 * kept-alive connections hold only their last small body. */
static int conn_body_reserve(rl_http_conn_t *c, size_t need)
{
    char *nb;

    if (need <= c->body_cap) {
        return 0;
    }
    nb = realloc(c->body, need);
    if (nb == NULL) {
        return -1;
    }
    c->body = nb;
    c->body_cap = need;
    return 0;
}

/* Plain sockets are written at once, from the handler's reply: EV_WRITE is
 * registered only when the socket cannot take the whole reply, which saves
 * two epoll_ctl calls per request. TLS bufferevents write on their own.
 * Returns -1 if the peer is gone. */
static int conn_flush(rl_http_conn_t *c)
{
    int rc;

    if (c->tls || c->write_waiting) {
        return 0;
    }
    rc = rl_bev_write_now(c->bev);
    if (rc < 0) {
        return -1;
    }
    c->write_waiting = rc;
    return 0;
}

/* Input waiting behind a request being handled, and replies the client
 * has not read, are bounded: reading pauses past these until they drain. */
#define RL_HTTP_PENDING_INPUT_MAX 65536
#define RL_HTTP_PENDING_OUTPUT_MAX 262144

static void conn_update_reading(rl_http_conn_t *c)
{
    int pause;

    if (c->state == CONN_CLOSING || c->read_eof) {
        return;
    }
    pause = evbuffer_get_length(bufferevent_get_output(c->bev)) >
                RL_HTTP_PENDING_OUTPUT_MAX ||
            (c->state == CONN_HANDLING &&
             evbuffer_get_length(bufferevent_get_input(c->bev)) >
                 RL_HTTP_PENDING_INPUT_MAX);
    if (pause && !c->read_paused) {
        conn_reading(c, 0);
        c->read_paused = 1;
    } else if (!pause && c->read_paused) {
        conn_reading(c, 1);
        c->read_paused = 0;
    }
}

/* Back to waiting for the next request on a kept-alive connection. */
static void conn_reset_request(rl_http_conn_t *c)
{
    c->searched = 0;
    c->head_len = 0;
    c->content_length = -1;
    c->chunked = 0;
    c->continue_sent = 0;
    c->body_len = 0;
    c->consumed = 0;
    if (c->body_cap > 65536) {
        free(c->body);
        c->body = NULL;
        c->body_cap = 0;
    }
    conn_req_put(c);
}

/* Appends len bytes of s to the reply head being built in buf (cap
 * bytes); returns the new length, or cap + 1 once it no longer fits. */
static size_t head_put(char *buf, size_t n, size_t cap, const char *s,
                       size_t len)
{
    if (n > cap || len > cap - n) {
        return cap + 1;
    }
    memcpy(buf + n, s, len);
    return n + len;
}

/* Appends an unsigned number in decimal, as head_put. */
static size_t head_put_num(char *buf, size_t n, size_t cap, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return head_put(buf, n, cap, tmp + i, sizeof(tmp) - i);
}

/* Writes a complete reply into the output buffer: the head is built in
 * one stack buffer with plain copies (no printf on the hot path) and
 * added with one call; a head too large for it falls back to printf. */
static void write_reply(rl_http_conn_t *c, const char *id, int status,
                        const char *const *names, const char *const *values,
                        int n, const char *ctype, const char *body, size_t len,
                        int close_after)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char head[2048];
    const size_t cap = sizeof(head);
    const char *reason = rl_http_reason(status);
    size_t h = 0;
    int i;

    h = head_put(head, h, cap, "HTTP/1.1 ", 9);
    h = head_put_num(head, h, cap, (uint64_t)status);
    h = head_put(head, h, cap, " ", 1);
    h = head_put(head, h, cap, reason, strlen(reason));
    h = head_put(head, h, cap, "\r\n", 2);
    for (i = 0; i < n; i++) {
        h = head_put(head, h, cap, names[i], strlen(names[i]));
        h = head_put(head, h, cap, ": ", 2);
        h = head_put(head, h, cap, values[i], strlen(values[i]));
        h = head_put(head, h, cap, "\r\n", 2);
    }
    if (body != NULL) {
        const char *ct = ctype != NULL ? ctype : "application/json";
        h = head_put(head, h, cap, "Content-Type: ", 14);
        h = head_put(head, h, cap, ct, strlen(ct));
        h = head_put(head, h, cap, "\r\n", 2);
    }
    h = head_put(head, h, cap, "Content-Length: ", 16);
    h = head_put_num(head, h, cap, body != NULL ? (uint64_t)len : 0);
    h = head_put(head, h, cap, "\r\n", 2);
    if (id[0] != '\0') {
        h = head_put(head, h, cap, "X-Request-Id: ", 14);
        h = head_put(head, h, cap, id, strlen(id));
        h = head_put(head, h, cap, "\r\n", 2);
    }
    h = close_after ? head_put(head, h, cap, "Connection: close\r\n\r\n", 21)
                    : head_put(head, h, cap, "\r\n", 2);
    if (h <= cap) {
        evbuffer_add(out, head, h);
    } else {
        evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, reason);
        for (i = 0; i < n; i++) {
            evbuffer_add_printf(out, "%s: %s\r\n", names[i], values[i]);
        }
        if (body != NULL) {
            evbuffer_add_printf(out, "Content-Type: %s\r\n",
                                ctype != NULL ? ctype : "application/json");
        }
        evbuffer_add_printf(out, "Content-Length: %zu\r\n",
                            body != NULL ? len : 0);
        if (id[0] != '\0') {
            evbuffer_add_printf(out, "X-Request-Id: %s\r\n", id);
        }
        evbuffer_add(out, close_after ? "Connection: close\r\n\r\n" : "\r\n",
                     close_after ? 21 : 2);
    }
    if (body != NULL && len > 0) {
        evbuffer_add(out, body, len);
    }
}

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
        conn_free(c);
        return;
    }
    conn_update_reading(c);
    conn_process(c);
}

/* Sends a protocol-level error in the JSON error shape and closes. */
static void conn_fail(rl_http_conn_t *c, int status, const char *code,
                      const char *msg)
{
    char body[512];
    char id[RL_HTTP_ID_MAX];
    int len;

    if (c->req != NULL && c->req->id[0] != '\0') {
        memcpy(id, c->req->id, sizeof(id));
    } else {
        snprintf(id, sizeof(id), "%s%016llx", c->srv->id_prefix,
                 (unsigned long long)++c->srv->id_seq);
    }
    len = snprintf(body, sizeof(body),
                   "{\"error\":\"%s\",\"code\":\"%s\",\"trace_id\":\"%s\"}",
                   msg, code, id);
    write_reply(c, id, status, NULL, NULL, 0, NULL, body, (size_t)len, 1);
    if (conn_flush(c) < 0 ||
        evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_close_soon(c);
        return;
    }
    c->state = CONN_CLOSING;
    evtimer_del(c->timer);
    conn_reading(c, 0);
    /* A peer that never reads its error must not hold the slot forever. */
    conn_arm_timer(c, 1000);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    rl_http_conn_t *c = arg;

    switch (c->state) {
    case CONN_READING:
        conn_fail(c, 408, "REQUEST_TIMEOUT", "request not received in time");
        break;
    case CONN_HANDLING: break; /* the handler always answers; nothing to do */
    default:
        conn_free(c); /* idle keep-alive connection, or a stuck flush */
        break;
    }
}

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
            conn_reading(c, 0);
            bufferevent_disable(bev, EV_WRITE);
            return;
        }
        conn_free(c);
    }
}

/* ---------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------- */

/* Parses the request line and headers in place (see http.h). */
int rl_http_parse_head(char *head, size_t head_len, rl_http_req_t *r,
                       int64_t *content_length, int *chunked, const char **msg)
{
    char *end = head + head_len - 2; /* points at the final CRLF */
    char *p = head, *line_end, *sp1, *sp2, *q;
    int http10;
    const char *te = NULL;

    line_end = memchr(p, '\r', (size_t)(end - p));
    if (line_end == NULL || line_end[1] != '\n') {
        *msg = "malformed request line";
        return 400;
    }
    *line_end = '\0';
    sp1 = strchr(p, ' ');
    if (sp1 == NULL) {
        *msg = "malformed request line";
        return 400;
    }
    *sp1 = '\0';
    sp2 = strchr(sp1 + 1, ' ');
    if (sp2 == NULL) {
        *msg = "malformed request line";
        return 400;
    }
    *sp2 = '\0';
    for (q = p; *q; q++) {
        if (!is_tchar((unsigned char)*q)) {
            *msg = "malformed method";
            return 400;
        }
    }
    if (*p == '\0') {
        *msg = "malformed method";
        return 400;
    }
    if (sp1[1] != '/') {
        *msg = "request target must start with /";
        return 400;
    }
    for (q = sp1 + 1; *q; q++) {
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q == 0x7f) {
            *msg = "malformed request target";
            return 400;
        }
    }
    if (strcmp(sp2 + 1, "HTTP/1.1") == 0) {
        http10 = 0;
    } else if (strcmp(sp2 + 1, "HTTP/1.0") == 0) {
        http10 = 1;
    } else {
        *msg = "unsupported HTTP version";
        return 400;
    }

    r->method = p;
    r->target = sp1 + 1;
    r->path = r->target;
    q = strchr(r->target, '?');
    r->path_len = q != NULL ? (size_t)(q - r->target) : strlen(r->target);
    r->keep_alive = !http10;

    p = line_end + 2;
    while (p < end) {
        char *colon, *v, *ve;
        line_end = memchr(p, '\r', (size_t)(end - p + 1));
        if (line_end == NULL || line_end[1] != '\n') {
            *msg = "malformed header";
            return 400;
        }
        if (*p == ' ' || *p == '\t') {
            *msg = "obsolete header folding";
            return 400;
        }
        *line_end = '\0';
        colon = strchr(p, ':');
        if (colon == NULL || colon == p) {
            *msg = "malformed header";
            return 400;
        }
        for (q = p; q < colon; q++) {
            /* No space before the colon: a smuggling shape (RFC 9112 5.1). */
            if (!is_tchar((unsigned char)*q)) {
                *msg = "malformed header name";
                return 400;
            }
        }
        v = colon + 1;
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        ve = line_end;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) {
            ve--;
        }
        *ve = '\0';
        for (q = v; q < ve; q++) {
            if ((unsigned char)*q < 0x20 && *q != '\t') {
                *msg = "control byte in header";
                return 400;
            }
        }
        if (r->nheaders == RL_HTTP_MAX_HEADERS) {
            *msg = "too many headers";
            return 431;
        }
        r->headers[r->nheaders].name = p;
        r->headers[r->nheaders].name_len = (size_t)(colon - p);
        r->headers[r->nheaders].value = v;
        r->headers[r->nheaders].value_len = (size_t)(ve - v);
        *colon = '\0';

        if (strcasecmp(p, "content-length") == 0) {
            int64_t n = 0;
            if (*v == '\0') {
                *msg = "invalid Content-Length";
                return 400;
            }
            for (q = v; *q; q++) {
                if (!isdigit((unsigned char)*q) || n > (INT64_MAX - 9) / 10) {
                    *msg = "invalid Content-Length";
                    return 400;
                }
                n = n * 10 + (*q - '0');
            }
            if (*content_length >= 0 && *content_length != n) {
                *msg = "conflicting Content-Length headers";
                return 400;
            }
            *content_length = n;
        } else if (strcasecmp(p, "transfer-encoding") == 0) {
            if (te != NULL) {
                *msg = "repeated Transfer-Encoding";
                return 400;
            }
            te = v;
        } else if (strcasecmp(p, "connection") == 0) {
            if (strcasecmp(v, "close") == 0) {
                r->keep_alive = 0;
            } else if (strcasecmp(v, "keep-alive") == 0) {
                r->keep_alive = 1;
            }
        } else if (strcasecmp(p, "x-request-id") == 0) {
            if (request_id_ok(v, (size_t)(ve - v))) {
                memcpy(r->id, v, (size_t)(ve - v) + 1);
            }
        }
        r->nheaders++;
        p = line_end + 2;
    }
    if (te != NULL) {
        /* Both framings at once is the classic smuggling shape: refuse. */
        if (*content_length >= 0) {
            *msg = "both Content-Length and Transfer-Encoding";
            return 400;
        }
        if (strcasecmp(te, "chunked") != 0) {
            *msg = "unsupported Transfer-Encoding";
            return 501;
        }
        *chunked = 1;
    }
    return 0;
}

/* Decodes as much of a chunked body as the input holds, from offset
 * c->consumed. Returns 1 when complete, 0 when more is needed, or an HTTP
 * status on error. */
static int decode_chunked(rl_http_conn_t *c, struct evbuffer *in,
                          const char **msg)
{
    for (;;) {
        size_t avail = evbuffer_get_length(in) - c->consumed;
        struct evbuffer_ptr pos;
        char line[64];
        size_t line_len;
        char *endp;
        unsigned long long n;

        if (avail == 0) {
            return 0;
        }
        evbuffer_ptr_set(in, &pos, c->consumed, EVBUFFER_PTR_SET);
        pos = evbuffer_search_eol(in, &pos, NULL, EVBUFFER_EOL_CRLF_STRICT);
        if (pos.pos < 0) {
            if (avail > sizeof(line)) {
                *msg = "malformed chunk size";
                return 400;
            }
            return 0;
        }
        line_len = (size_t)pos.pos - c->consumed;
        if (line_len >= sizeof(line) || line_len == 0) {
            *msg = "malformed chunk size";
            return 400;
        }
        {
            struct evbuffer_ptr start;
            evbuffer_ptr_set(in, &start, c->consumed, EVBUFFER_PTR_SET);
            evbuffer_copyout_from(in, &start, line, line_len);
        }
        line[line_len] = '\0';
        if (!isxdigit((unsigned char)line[0])) {
            *msg = "malformed chunk size";
            return 400;
        }
        errno = 0;
        n = strtoull(line, &endp, 16);
        if (errno != 0 || (*endp != '\0' && *endp != ';')) {
            *msg = "malformed chunk size";
            return 400;
        }
        if (n > (unsigned long long)c->srv->limits.max_body_bytes ||
            c->body_len + n >
                (unsigned long long)c->srv->limits.max_body_bytes) {
            *msg = "request body too large";
            return 413;
        }
        if (n == 0) {
            /* Last chunk: trailers (ignored) end with an empty line. */
            size_t off = (size_t)pos.pos + 2;
            for (;;) {
                struct evbuffer_ptr tp;
                evbuffer_ptr_set(in, &tp, off, EVBUFFER_PTR_SET);
                tp = evbuffer_search_eol(in, &tp, NULL,
                                         EVBUFFER_EOL_CRLF_STRICT);
                if (tp.pos < 0) {
                    if (evbuffer_get_length(in) - off >
                        (size_t)c->srv->limits.max_header_bytes) {
                        *msg = "trailers too large";
                        return 431;
                    }
                    return 0;
                }
                if ((size_t)tp.pos == off) {
                    c->consumed = off + 2;
                    return 1;
                }
                off = (size_t)tp.pos + 2;
            }
        }
        if (evbuffer_get_length(in) < (size_t)pos.pos + 2 + n + 2) {
            return 0;
        }
        if (c->body_len + n + 1 > c->body_cap) {
            size_t cap = c->body_cap ? c->body_cap : 1024;
            while (cap < c->body_len + n + 1) {
                cap *= 2;
            }
            if (conn_body_reserve(c, cap) != 0) {
                *msg = "out of memory";
                return 503;
            }
        }
        {
            struct evbuffer_ptr dp;
            char crlf[2];
            evbuffer_ptr_set(in, &dp, (size_t)pos.pos + 2, EVBUFFER_PTR_SET);
            evbuffer_copyout_from(in, &dp, c->body + c->body_len, n);
            evbuffer_ptr_set(in, &dp, (size_t)pos.pos + 2 + n,
                             EVBUFFER_PTR_SET);
            evbuffer_copyout_from(in, &dp, crlf, 2);
            if (crlf[0] != '\r' || crlf[1] != '\n') {
                *msg = "malformed chunk";
                return 400;
            }
        }
        c->body_len += n;
        c->consumed = (size_t)pos.pos + 2 + n + 2;
    }
}

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

            if (conn_body_reserve(c, n + 1) != 0) {
                conn_fail(c, 503, "OUT_OF_MEMORY", "out of memory");
                return -1;
            }
            evbuffer_ptr_set(in, &at, c->head_len, EVBUFFER_PTR_SET);
            evbuffer_copyout_from(in, &at, c->body, n);
        }
        c->body_len = n;
        c->consumed = c->head_len + n;
    }
    if (c->body_len > 0) {
        c->body[c->body_len] = '\0';
    }
    c->req->body = c->body_len > 0 ? c->body : "";
    c->req->body_len = c->body_len;
    evbuffer_drain(in, c->consumed);
    c->consumed = 0;
    if (c->req->id[0] == '\0') {
        /* prefix + 16 hex digits of the sequence, without printf. */
        static const char hex[] = "0123456789abcdef";
        size_t plen = strlen(s->id_prefix);
        uint64_t seq = ++s->id_seq;
        int k;

        memcpy(c->req->id, s->id_prefix, plen);
        for (k = 15; k >= 0; k--) {
            c->req->id[plen + (size_t)k] = hex[seq & 15];
            seq >>= 4;
        }
        c->req->id[plen + 16] = '\0';
    }
    if (s->draining) {
        c->req->keep_alive = 0;
    }
    c->req->conn = c;
    c->req->start_us = rl_mono_us();
    c->state = CONN_HANDLING;
    evtimer_del(c->timer);
    s->inflight++;
    c->served++;
    c->dispatching = 1;
    s->handler(c->req, s->arg);
    c->dispatching = 0;
    return 0;
}

/* Parses what the input holds. Returns 1 when a whole request is there
 * (head parsed, body complete), 0 when more is needed or after failing
 * the connection. */
static int conn_parse(rl_http_conn_t *c)
{
    rl_http_server_t *s = c->srv;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in);
    const char *msg = NULL;
    int rc;

    if (len == 0) {
        return 0;
    }
    if (len >= RL_HTTP_LARGE) {
        s->large_seen = 1;
    }
    if (c->state == CONN_IDLE) {
        c->state = CONN_READING;
        evtimer_del(c->timer);
        conn_arm_timer(c, s->limits.read_timeout_ms);
        if (conn_req_get(c) != 0) {
            conn_fail(c, 503, "OUT_OF_MEMORY", "out of memory");
            return 0;
        }
    }
    if (c->head_len == 0) {
        struct evbuffer_ptr start, found;
        size_t from = c->searched > 3 ? c->searched - 3 : 0;
        char *head;

        evbuffer_ptr_set(in, &start, from, EVBUFFER_PTR_SET);
        found = evbuffer_search(in, "\r\n\r\n", 4, &start);
        if (found.pos < 0) {
            c->searched = len;
            if (len > (size_t)s->limits.max_header_bytes) {
                conn_fail(c, 431, "HEADERS_TOO_LARGE",
                          "request headers too large");
            }
            return 0;
        }
        if ((size_t)found.pos + 4 > (size_t)s->limits.max_header_bytes) {
            conn_fail(c, 431, "HEADERS_TOO_LARGE", "request headers too large");
            return 0;
        }
        c->head_len = (size_t)found.pos + 4;
        /* A copy: the input buffer may move its bytes while the body is
         * still arriving, and the request's strings must stay put. */
        if (c->head_cap < c->head_len + 1) {
            head = realloc(c->head, c->head_len + 1);
            if (head == NULL) {
                conn_fail(c, 503, "OUT_OF_MEMORY", "out of memory");
                return 0;
            }
            c->head = head;
            c->head_cap = c->head_len + 1;
        }
        evbuffer_copyout(in, c->head, c->head_len);
        c->head[c->head_len] = '\0';
        rc = rl_http_parse_head(c->head, c->head_len, c->req,
                                &c->content_length, &c->chunked, &msg);
        if (rc != 0) {
            conn_fail(c, rc,
                      rc == 431   ? "HEADERS_TOO_LARGE"
                      : rc == 501 ? "NOT_IMPLEMENTED"
                                  : "BAD_REQUEST",
                      msg);
            return 0;
        }
        /* The body limit is enforced from the declared length, before a
         * byte of the body is read. */
        if (c->content_length > s->limits.max_body_bytes) {
            conn_fail(c, 413, "PAYLOAD_TOO_LARGE", "request body too large");
            return 0;
        }
        {
            const char *expect = rl_http_header(c->req, "expect", NULL);
            if (expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
                !c->continue_sent && (c->content_length > 0 || c->chunked)) {
                evbuffer_add(bufferevent_get_output(c->bev),
                             "HTTP/1.1 100 Continue\r\n\r\n", 25);
                c->continue_sent = 1;
                (void)conn_flush(c); /* a dead peer shows on the next read */
            }
        }
        c->consumed = c->head_len;
    }
    if (c->chunked) {
        rc = decode_chunked(c, in, &msg);
        if (rc == 0) {
            return 0;
        }
        if (rc != 1) {
            conn_fail(c, rc,
                      rc == 413   ? "PAYLOAD_TOO_LARGE"
                      : rc == 431 ? "HEADERS_TOO_LARGE"
                                  : "BAD_REQUEST",
                      msg);
            return 0;
        }
        return 1;
    }
    return c->content_length <= 0 ||
           len >= c->head_len + (size_t)c->content_length;
}

/* Serves every whole request the input holds, one after another: a
 * handler that answers at once returns the connection to CONN_IDLE and
 * the loop takes the next pipelined request (a loop, not a recursion, so
 * a long pipeline cannot exhaust the stack). */
static void conn_process(rl_http_conn_t *c)
{
    while ((c->state == CONN_IDLE || c->state == CONN_READING) &&
           !c->read_paused) {
        if (!conn_parse(c) || conn_dispatch(c) != 0) {
            return;
        }
    }
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

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
    conn_reading(c, 0);
    conn_event_cb(
        c->bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR),
        c);
}

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

void rl_http_reply(rl_http_req_t *req, int status, const char *const *names,
                   const char *const *values, int n, const char *ctype,
                   const char *body, size_t len)
{
    rl_http_conn_t *c = req->conn;
    rl_http_server_t *s = c->srv;
    int close_after = !req->keep_alive || s->draining || c->read_eof;

    s->inflight--;
    if (c->peer_gone) {
        conn_close_soon(c);
        return;
    }
    if (strcmp(req->method, "HEAD") == 0) {
        /* Headers only: a body would be read as the start of the next
         * reply on a kept-alive connection. */
        body = NULL;
        len = 0;
    }
    write_reply(c, req->id, status, names, values, n, ctype, body, len,
                close_after);
    conn_reset_request(c);
    if (conn_flush(c) < 0) {
        conn_close_soon(c);
        return;
    }
    if (close_after) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
            conn_close_soon(c);
            return;
        }
        c->state = CONN_CLOSING;
        conn_reading(c, 0);
        conn_arm_timer(c, 5000);
        return;
    }
    c->state = CONN_IDLE;
    conn_arm_timer(c, s->limits.idle_timeout_ms);
    /* A client that pipelines without reading waits for its replies to
     * drain (conn_write_cb resumes it). */
    conn_update_reading(c);
    /* Inside conn_process's loop, that loop takes the next request. */
    if (!c->dispatching) {
        conn_process(c);
    }
}

/* ---------------------------------------------------------------------
 * Accepting
 * ------------------------------------------------------------------- */

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    rl_http_server_t *s = arg;
    rl_http_conn_t *c;
    int one = 1;

    if (s->nconns >= s->limits.max_connections || s->draining) {
        /* Refuse rather than queue without bound. Best effort: the socket
         * is fresh, so this small write does not block in practice. */
#define RL_BUSY_BODY                                                           \
    "{\"error\":\"too many connections\",\"code\":\"BUSY\",\"trace_id\":null}"
        static const char busy[] =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
            "application/json\r\n"
            "Connection: close\r\nContent-Length: " RL_STR(
                RL_BUSY_LEN) "\r\n\r\n" RL_BUSY_BODY;
        /* On a TLS listener plain text would only garble the handshake:
         * the connection is just closed. */
        if (s->tls == NULL) {
            ssize_t w =
                send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
        }
        evutil_closesocket(fd);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        evutil_closesocket(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->srv = s;
    if (salen > 0 && (size_t)salen <= sizeof(c->peer)) {
        memcpy(&c->peer, sa, (size_t)salen);
    }
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
        /* Written by conn_flush; EV_WRITE only while a write waits. */
        if (c->bev != NULL) {
            bufferevent_disable(c->bev, EV_WRITE);
        }
        c->rev =
            event_new(s->base, fd, EV_READ | EV_PERSIST, conn_plain_read_cb, c);
    }
    c->tls = s->tls != NULL;
    c->timer = evtimer_new(s->base, conn_timer_cb, c);
    if (c->bev == NULL || c->timer == NULL || (!c->tls && c->rev == NULL)) {
        if (c->rev != NULL) {
            event_free(c->rev);
        }
        if (c->bev != NULL) {
            bufferevent_free(c->bev);
        } else {
            evutil_closesocket(fd);
        }
        if (c->timer != NULL) {
            event_free(c->timer);
        }
        free(c);
        return;
    }
    c->content_length = -1;
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->nconns++;
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    conn_reading(c, 1);
    c->state = CONN_IDLE;
    /* A TLS handshake is part of reading the first request: a client that
     * stalls in it is cut off by the read timeout. */
    conn_arm_timer(c, s->tls != NULL && s->limits.read_timeout_ms <
                                            s->limits.idle_timeout_ms
                          ? s->limits.read_timeout_ms
                          : s->limits.idle_timeout_ms);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    /* EMFILE and friends: keep serving open connections; the listener
     * retries on the next readiness. */
    rl_warn("accept failed: %s", evutil_socket_error_to_string(err));
}

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
    return s;
}

void rl_http_server_start_accepting(rl_http_server_t *s)
{
    if (s->listener != NULL && !s->accepting) {
        evconnlistener_enable(s->listener);
        s->accepting = 1;
    }
}

int rl_http_server_accepting(const rl_http_server_t *s)
{
    return s->accepting;
}

void rl_http_server_set_tls(rl_http_server_t *s, struct ssl_ctx_st *ctx)
{
    s->tls = ctx;
}

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
            conn_free(c);
        } else {
            evtimer_del(c->timer);
            conn_arm_timer(c, RL_HTTP_STOP_GRACE_MS);
        }
    }
}

int rl_http_server_take_large(rl_http_server_t *s)
{
    int seen = s->large_seen;
    s->large_seen = 0;
    return seen;
}

int rl_http_server_inflight(const rl_http_server_t *s)
{
    return s->inflight;
}

int rl_http_server_connections(const rl_http_server_t *s)
{
    return s->nconns;
}

void rl_http_server_free(rl_http_server_t *s)
{
    if (s == NULL) {
        return;
    }
    if (s->listener != NULL) {
        evconnlistener_free(s->listener);
    }
    while (s->conns != NULL) {
        conn_free(s->conns);
    }
    while (s->nreq_pool > 0) {
        free(s->req_pool[--s->nreq_pool]);
    }
    free(s);
}
