/* The reply writer of the HTTP server: the status line, the headers and
 * the body, built without printf on the hot path and written to a plain
 * socket at once (see http_int.h). Worker thread only. */
#include "http_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <event2/buffer.h>
#include "bev_write.h"

/* ---------------------------------------------------------------------
 * Status phrases
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

/* The reason phrase of a status; a generic one for codes not listed. */
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

/* ---------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------- */

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

/* Writes the n bytes of a complete reply at p: straight to a plain
 * socket when nothing waits before them (one send, no copy into the
 * output buffer and no chain to allocate and free); what the socket does
 * not take, and every reply of a TLS connection or behind pending
 * output, goes to the output buffer, which rl_http_reply_flush writes
 * (and where a dead peer shows). */
static void reply_send(rl_http_conn_t *c, const char *p, size_t n)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    if (!c->tls && !c->write_waiting && evbuffer_get_length(out) == 0) {
        ssize_t w = send(bufferevent_getfd(c->bev), p, n, MSG_NOSIGNAL);

        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
    }
    if (n > 0) {
        evbuffer_add(out, p, n);
    }
}

/* The end of a reply head, by rl_http_conn_hdr_t. */
static const char *const conn_hdr[] = {"\r\n", "Connection: close\r\n\r\n",
                                       "Connection: keep-alive\r\n\r\n"};

/* Writes a complete reply: the head is built in one stack buffer with
 * plain copies (no printf on the hot path), the body after it when it
 * fits, and the whole sent with reply_send; a head too large for the
 * buffer falls back to printf into the output buffer. */
void rl_http_reply_write(rl_http_conn_t *c, const char *id, int status,
                         const char *const *names, const char *const *values,
                         int n, const char *ctype, const char *body, size_t len,
                         rl_http_conn_hdr_t conn)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char head[8192];
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
    h = head_put(head, h, cap, conn_hdr[conn], strlen(conn_hdr[conn]));
    if (h <= cap && (body == NULL || len <= cap - h)) {
        if (body != NULL && len > 0) {
            memcpy(head + h, body, len);
            h += len;
        }
        reply_send(c, head, h);
        return;
    }
    if (h <= cap) {
        reply_send(c, head, h);
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
        evbuffer_add(out, conn_hdr[conn], strlen(conn_hdr[conn]));
    }
    if (body != NULL && len > 0) {
        evbuffer_add(out, body, len);
    }
}

/* Plain sockets are written at once, from the handler's reply: EV_WRITE is
 * registered only when the socket cannot take the whole reply, which saves
 * two epoll_ctl calls per request. TLS bufferevents write on their own.
 * Returns -1 if the peer is gone. */
int rl_http_reply_flush(rl_http_conn_t *c)
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

/* Answers req (see http.h); the connection takes it from there. */
void rl_http_reply(rl_http_req_t *req, int status, const char *const *names,
                   const char *const *values, int n, const char *ctype,
                   const char *body, size_t len)
{
    rl_http_conn_t *c = req->conn;
    rl_http_server_t *s = c->srv;
    /* A half-closed peer still gets the requests it sent before its FIN:
     * the connection closes after the last of them. */
    int close_after = !req->keep_alive || s->draining ||
                      (c->read_eof &&
                       evbuffer_get_length(bufferevent_get_input(c->bev)) == 0);

    s->inflight--;
    rl_http_conn_release(c);
    if (c->peer_gone) {
        rl_http_conn_close_soon(c);
        return;
    }
    if (strcmp(req->method, "HEAD") == 0) {
        /* Headers only: a body would be read as the start of the next
         * reply on a kept-alive connection. */
        body = NULL;
        len = 0;
    }
    rl_http_reply_write(c, req->id, status, names, values, n, ctype, body, len,
                        close_after            ? RL_HTTP_CONN_HDR_CLOSE
                        : req->keep_alive == 2 ? RL_HTTP_CONN_HDR_KEEP_ALIVE
                                               : RL_HTTP_CONN_HDR_NONE);
    rl_http_conn_replied(c, close_after);
}
