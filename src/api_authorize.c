/* /v1/authorize, any method, any sub-path: forward authentication for
 * gateways (nginx auth_request, Envoy ext_authz, Traefik ForwardAuth,
 * Caddy forward_auth). The decision request is built from the incoming
 * request's headers, and only from the ones forward_auth names: the
 * original method and URI from forward_auth.method_header / uri_header
 * (or, set to null, the request's own method and the path below
 * /v1/authorize, the Envoy way), the client address from
 * forward_auth.client_ip. Nothing is guessed from other headers, so a
 * header the client adds cannot change the decision. The verdict is
 * answered with a status the gateway understands: 200 and no body to
 * let the request pass, the deny status, body and headers to refuse
 * it. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "api.h"
#include "decide.h"
#include "reply.h"
#include "request.h"
#include "server.h"
#include "util.h"
#include "worker.h"

#define AUTHORIZE_PREFIX "/v1/authorize"

/* One entry of a comma-separated header list, borrowed from the request. */
typedef struct authorize_item {
    const char *p;
    size_t len;
} authorize_item_t;

/* The value of header name into *v (NULL when absent or empty; borrowed
 * from req) and *len. RL_ERR_NONE, or INVALID_HEADER with msg when it
 * is on more than one line: which copy a proxy set and which the client
 * sent is anyone's guess, so neither is used. */
static rl_error_t authorize_header(const rl_http_req_t *req, const char *name,
                                   const char **v, size_t *len, char *msg,
                                   size_t msglen)
{
    size_t nlen = strlen(name);
    int i, lines = 0;

    *v = NULL;
    *len = 0;
    for (i = 0; i < req->nheaders; i++) {
        const rl_header_t *h = &req->headers[i];

        if (h->name_len != nlen || strncasecmp(h->name, name, nlen) != 0) {
            continue;
        }
        if (++lines > 1) {
            *v = NULL;
            snprintf(msg, msglen, "%s appears more than once", name);
            return RL_ERR_INVALID_HEADER;
        }
        if (h->value_len > 0) {
            *v = h->value;
            *len = h->value_len;
        }
    }
    return RL_ERR_NONE;
}

/* Splits every line of header name in req, in order, into its
 * comma-separated entries (spaces trimmed, empty ones skipped), as if
 * the lines were joined with commas (RFC 9110 5.3). Fills items (max
 * entries); returns the number of entries, max + 1 when there are more,
 * and the number of lines in *lines. */
static int authorize_list(const rl_http_req_t *req, const char *name,
                          authorize_item_t *items, int max, int *lines)
{
    size_t nlen = strlen(name);
    int i, n = 0;

    *lines = 0;
    for (i = 0; i < req->nheaders; i++) {
        const rl_header_t *h = &req->headers[i];
        const char *p = h->value, *end = h->value + h->value_len;

        if (h->name_len != nlen || strncasecmp(h->name, name, nlen) != 0) {
            continue;
        }
        (*lines)++;
        while (p < end) {
            const char *c = memchr(p, ',', (size_t)(end - p));
            const char *e = c != NULL ? c : end;
            const char *b = p;

            while (b < e && (*b == ' ' || *b == '\t')) {
                b++;
            }
            while (e > b && (e[-1] == ' ' || e[-1] == '\t')) {
                e--;
            }
            if (e > b) {
                if (n == max) {
                    return max + 1;
                }
                items[n].p = b;
                items[n++].len = (size_t)(e - b);
            }
            p = c != NULL ? c + 1 : end;
        }
    }
    return n;
}

/* The TCP peer's address as text into buf; NULL for a family without
 * one. */
static const char *authorize_peer(const rl_http_req_t *req, char *buf)
{
    const struct sockaddr *sa = rl_http_req_peer(req);
    const void *addr = NULL;

    if (sa->sa_family == AF_INET) {
        addr = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        addr = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    }
    if (addr == NULL ||
        inet_ntop(sa->sa_family, addr, buf, RL_REQUEST_IP_MAX) == NULL) {
        return NULL;
    }
    return buf;
}

/* The client address forward_auth.client_ip names, canonical, into buf
 * (RL_REQUEST_IP_MAX bytes): the TCP peer, the header whole, or the
 * entry trusted_hops from the right of the header's joined lines.
 * *ip is NULL when the header is absent. RL_ERR_NONE, or
 * INVALID_HEADER with msg for too many entries, too few, a repeated
 * single-address header, or an entry that is not an address. */
static rl_error_t authorize_ip(const rl_conf_client_ip_t *cf,
                               const rl_http_req_t *req, char *buf,
                               const char **ip, char *msg, size_t msglen)
{
    authorize_item_t items[RL_CONF_FORWARD_MAX_HOPS];
    int n, lines, want = cf->trusted_hops > 0 ? cf->trusted_hops : 1;

    *ip = NULL;
    if (cf->header == NULL) {
        *ip = authorize_peer(req, buf);
        return RL_ERR_NONE;
    }
    n = authorize_list(req, cf->header, items, RL_CONF_FORWARD_MAX_HOPS,
                       &lines);
    if (lines == 0) {
        return RL_ERR_NONE;
    }
    if (n > RL_CONF_FORWARD_MAX_HOPS) {
        snprintf(msg, msglen, "%s has more than %d entries", cf->header,
                 RL_CONF_FORWARD_MAX_HOPS);
        return RL_ERR_INVALID_HEADER;
    }
    if (cf->trusted_hops == 0 && (lines > 1 || n > 1)) {
        snprintf(msg, msglen, "%s must hold one address", cf->header);
        return RL_ERR_INVALID_HEADER;
    }
    if (n < want) {
        snprintf(msg, msglen,
                 "%s has %d entries, forward_auth.client_ip.trusted_hops "
                 "is %d",
                 cf->header, n, want);
        return RL_ERR_INVALID_HEADER;
    }
    if (rl_request_ip_canon(items[n - want].p, items[n - want].len, buf) != 0) {
        snprintf(msg, msglen,
                 "%s: entry %d from the right is not an IP address", cf->header,
                 want);
        return RL_ERR_INVALID_HEADER;
    }
    *ip = buf;
    return RL_ERR_NONE;
}

/* The original method and path: from the configured headers (400
 * MISSING_HEADER when absent), or, configured null, the request's own
 * method and the path below /v1/authorize. Borrowed from req. */
static rl_error_t authorize_target(const rl_conf_forward_auth_t *fa,
                                   const rl_http_req_t *req, rl_request_t *dr,
                                   char *msg, size_t msglen)
{
    size_t plen = sizeof(AUTHORIZE_PREFIX) - 1, n;
    rl_error_t kind;

    dr->method = req->method;
    if (fa->method_header != NULL) {
        kind = authorize_header(req, fa->method_header, &dr->method, &n, msg,
                                msglen);
        if (kind != RL_ERR_NONE) {
            return kind;
        }
        if (dr->method == NULL) {
            snprintf(msg, msglen, "%s is required (forward_auth.method_header)",
                     fa->method_header);
            return RL_ERR_MISSING_HEADER;
        }
    }
    if (fa->uri_header != NULL) {
        kind = authorize_header(req, fa->uri_header, &dr->path, &dr->path_len,
                                msg, msglen);
        if (kind != RL_ERR_NONE) {
            return kind;
        }
        if (dr->path == NULL) {
            snprintf(msg, msglen, "%s is required (forward_auth.uri_header)",
                     fa->uri_header);
            return RL_ERR_MISSING_HEADER;
        }
        if (dr->path[0] != '/') {
            snprintf(msg, msglen, "%s must start with \"/\"", fa->uri_header);
            return RL_ERR_INVALID_HEADER;
        }
    } else if (req->path_len > plen) {
        dr->path = req->path + plen;
        dr->path_len = req->path_len - plen;
    } else {
        dr->path = "/";
        dr->path_len = 1;
    }
    return RL_ERR_NONE;
}

/* Fills dr from req's headers (strings borrowed from req, the address
 * copied into ipbuf). Returns RL_ERR_NONE, or the error kind with a
 * message in msg: MISSING_HEADER / INVALID_HEADER for a header that is
 * absent, repeated or cannot be used, BAD_PATH for dot segments (as /v1/decide
 * answers them). */
static rl_error_t authorize_request(const rl_conf_t *conf,
                                    const rl_http_req_t *req, rl_request_t *dr,
                                    char *ipbuf, char *msg, size_t msglen)
{
    const rl_conf_forward_auth_t *fa = &conf->forward_auth;
    const char *q;
    rl_error_t kind;
    size_t n;

    memset(dr, 0, sizeof(*dr));
    dr->cost = 1;
    kind = authorize_target(fa, req, dr, msg, msglen);
    if (kind != RL_ERR_NONE) {
        return kind;
    }
    /* What a tenant signs is the path with its query, as sent. */
    dr->target = dr->path;
    dr->target_len = dr->path_len;
    q = memchr(dr->path, '?', dr->path_len);
    if (q != NULL) {
        dr->path_len = (size_t)(q - dr->path);
    }
    if (rl_request_path_safe(dr->path, dr->path_len) != 0) {
        snprintf(msg, msglen, "%s", rl_error_message(RL_ERR_BAD_PATH));
        return RL_ERR_BAD_PATH;
    }
    kind =
        authorize_header(req, fa->tenant_header, &dr->tenant, &n, msg, msglen);
    if (kind == RL_ERR_NONE) {
        kind =
            authorize_header(req, fa->user_header, &dr->user, &n, msg, msglen);
    }
    if (kind == RL_ERR_NONE) {
        kind = authorize_ip(&fa->client_ip, req, ipbuf, &dr->ip, msg, msglen);
    }
    if (kind != RL_ERR_NONE) {
        return kind;
    }
    /* Both tables hold 64 entries, so every header fits. */
    dr->nheaders =
        req->nheaders < RL_MAX_REQ_HEADERS ? req->nheaders : RL_MAX_REQ_HEADERS;
    memcpy(dr->headers, req->headers,
           (size_t)dr->nheaders * sizeof(dr->headers[0]));
    return RL_ERR_NONE;
}

/* The status a denial is answered with: forward_auth.deny_status if set,
 * else the policy's. */
static int authorize_deny_status(const rl_conf_t *conf, const rl_verdict_t *v)
{
    return conf->forward_auth.deny_status != 0 ? conf->forward_auth.deny_status
                                               : v->status;
}

/* Answers a denial: the status (forward_auth.deny_status if set, else
 * the policy's), the deny body and the rate-limit headers. With the
 * status overridden, X-RateLimit-Deny-Status and X-RateLimit-Deny-Body
 * carry the policy's own status and body (one line of ASCII JSON) for a
 * gateway that can only pass headers on (nginx auth_request_set). The
 * bodies are streamed from the compiled deny body (reply.h) into stack
 * buffers: a denial allocates only for a body larger than those. */
static void authorize_deny(rl_http_req_t *req, const rl_conf_t *conf,
                           const rl_verdict_t *v, const char **names,
                           const char **values, int n)
{
    char tbuf[2048], abuf[2048];
    size_t tlen, alen;
    /* Any JSON value: a deny body may be a string. */
    char *text =
        rl_reply_deny_text(v, JSON_ENCODE_ANY, tbuf, sizeof(tbuf), &tlen);
    char *ascii = NULL;
    char status[16];
    int code = authorize_deny_status(conf, v);

    if (conf->forward_auth.deny_status != 0) {
        ascii = rl_reply_deny_text(v, JSON_ENSURE_ASCII | JSON_ENCODE_ANY, abuf,
                                   sizeof(abuf), &alen);
        snprintf(status, sizeof(status), "%d", v->status);
        names[n] = "X-RateLimit-Deny-Status";
        values[n++] = status;
        if (ascii != NULL) {
            names[n] = "X-RateLimit-Deny-Body";
            values[n++] = ascii;
        }
    }
    if (text == NULL) {
        rl_api_error(req, RL_ERR_INTERNAL, NULL);
    } else {
        rl_http_reply(req, code, names, values, n, NULL, text, tlen);
    }
    if (text != tbuf) {
        free(text);
    }
    if (ascii != abuf) {
        free(ascii);
    }
}

/* Answers outcome o: the error reply, 200 without a body, or the
 * denial; returns the status the gateway got. */
static int authorize_answer(rl_http_req_t *req, const rl_conf_t *conf,
                            const rl_outcome_t *o, const rl_verdict_t *v,
                            const char *message)
{
    rl_reply_header_t hdrs[RL_REPLY_MAX_HEADERS];
    const char *names[RL_REPLY_MAX_HEADERS + 2],
        *values[RL_REPLY_MAX_HEADERS + 2];
    int n, i;

    if (rl_api_outcome_failed(req, o, v, message)) {
        return o->status;
    }
    n = rl_reply_headers(v, hdrs);
    for (i = 0; i < n; i++) {
        names[i] = hdrs[i].name;
        values[i] = hdrs[i].value;
    }
    if (v->allowed) {
        rl_http_reply(req, 200, names, values, n, NULL, NULL, 0);
        return 200;
    }
    authorize_deny(req, conf, v, names, values, n);
    return authorize_deny_status(conf, v);
}

/* The verdict -> the gateway's answer and its access log line. arg is
 * the HTTP request. */
static void authorize_cb(void *arg, rl_decide_status_t status,
                         const rl_verdict_t *v, const char *message)
{
    rl_http_req_t *req = arg;
    rl_worker_t *w = rl_http_req_arg(req);
    int64_t start_us = req->start_us;
    char id[RL_HTTP_ID_MAX];
    rl_outcome_t o;

    memcpy(id, req->id, sizeof(id));
    rl_outcome_of(status, v, &o);
    o.status = authorize_answer(req, w->conf, &o, v, message);
    /* req is gone now; its id was copied. */
    rl_api_access_log(w, id, &o, v, rl_mono_us() - start_us);
}

/* Builds the decision request from the headers and decides it. */
void rl_api_authorize(rl_worker_t *w, rl_http_req_t *req)
{
    rl_request_t dr;
    rl_outcome_t o;
    rl_error_t kind;
    char ipbuf[RL_REQUEST_IP_MAX];
    char msg[160];
    char id[RL_HTTP_ID_MAX];
    int64_t start_us = req->start_us;

    kind = authorize_request(w->conf, req, &dr, ipbuf, msg, sizeof(msg));
    if (kind != RL_ERR_NONE) {
        memcpy(id, req->id, sizeof(id));
        rl_outcome_make(RL_OUTCOME_BAD_REQUEST, NULL, kind, &o);
        rl_api_error(req, kind, msg);
        rl_api_account(w, id, &o, NULL, start_us);
        return;
    }
    /* The decision core copies what it needs before it returns. */
    rl_decide(w->conf, w->store, &dr, authorize_cb, req);
}
