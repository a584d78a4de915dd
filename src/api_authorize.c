/* /v1/authorize, any method, any sub-path: forward authentication for
 * gateways (nginx auth_request, Envoy ext_authz, Traefik ForwardAuth).
 * The decision request is built from the incoming request's headers,
 * the verdict is answered with a status the gateway understands: 200 and
 * no body to let the request pass, the deny status, body and headers to
 * refuse it. */
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
#define AUTHORIZE_IP_MAX 128
#define AUTHORIZE_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Where each field of the decision request comes from, first header
 * present wins. tenant and user come from forward_auth's configured
 * headers instead. */
static const char *const method_headers[] = {"x-original-method",
                                             "x-forwarded-method"};
static const char *const uri_headers[] = {"x-original-uri", "x-forwarded-uri"};

/* The value of the first non-empty header of names[] in req, or NULL. */
static const char *authorize_first(const rl_http_req_t *req,
                                   const char *const *names, size_t n,
                                   size_t *len)
{
    size_t i;

    for (i = 0; i < n; i++) {
        const char *v = rl_http_header(req, names[i], len);
        if (v != NULL && *len > 0) {
            return v;
        }
    }
    return NULL;
}

/* A header's value, NULL when absent or empty. Borrowed from req. */
static const char *authorize_header(const rl_http_req_t *req, const char *name)
{
    size_t len = 0;
    const char *v = rl_http_header(req, name, &len);

    return v != NULL && len > 0 ? v : NULL;
}

/* The client address: the first entry of X-Forwarded-For (spaces
 * trimmed), else X-Real-IP, copied into buf (AUTHORIZE_IP_MAX bytes).
 * Returns buf, NULL when neither header says anything, or sets *toolong
 * when the address does not fit. */
static const char *authorize_ip(const rl_http_req_t *req, char *buf,
                                int *toolong)
{
    size_t len = 0;
    const char *v = rl_http_header(req, "x-forwarded-for", &len);
    const char *end;

    *toolong = 0;
    if (v == NULL || len == 0) {
        v = rl_http_header(req, "x-real-ip", &len);
    }
    if (v == NULL) {
        return NULL;
    }
    end = memchr(v, ',', len);
    if (end == NULL) {
        end = v + len;
    }
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    if (end == v) {
        return NULL;
    }
    if ((size_t)(end - v) >= AUTHORIZE_IP_MAX) {
        *toolong = 1;
        return NULL;
    }
    memcpy(buf, v, (size_t)(end - v));
    buf[end - v] = '\0';
    return buf;
}

/* Fills dr from req's headers (strings borrowed from req, the address
 * copied into ipbuf). Returns RL_ERR_NONE, or the error kind with a
 * message in msg: INVALID_HEADER for a header that cannot be used,
 * BAD_PATH for dot segments (as /v1/decide answers them). */
static rl_error_t authorize_request(const rl_conf_t *conf,
                                    const rl_http_req_t *req, rl_request_t *dr,
                                    char *ipbuf, char *msg, size_t msglen)
{
    size_t len = 0, plen = sizeof(AUTHORIZE_PREFIX) - 1;
    const char *q;
    int toolong;

    memset(dr, 0, sizeof(*dr));
    dr->cost = 1;
    dr->method = authorize_first(req, method_headers,
                                 AUTHORIZE_NELEM(method_headers), &len);
    if (dr->method == NULL) {
        dr->method = req->method;
    }
    dr->path =
        authorize_first(req, uri_headers, AUTHORIZE_NELEM(uri_headers), &len);
    if (dr->path != NULL) {
        dr->path_len = len;
        if (dr->path[0] != '/') {
            snprintf(msg, msglen,
                     "X-Original-URI / X-Forwarded-Uri must start with \"/\"");
            return RL_ERR_INVALID_HEADER;
        }
    } else if (req->path_len > plen) {
        dr->path = req->path + plen;
        dr->path_len = req->path_len - plen;
    } else {
        dr->path = "/";
        dr->path_len = 1;
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
    dr->tenant = authorize_header(req, conf->forward_auth.tenant_header);
    dr->user = authorize_header(req, conf->forward_auth.user_header);
    dr->ip = authorize_ip(req, ipbuf, &toolong);
    if (toolong) {
        snprintf(msg, msglen,
                 "X-Forwarded-For: the first address is longer than %d bytes",
                 AUTHORIZE_IP_MAX - 1);
        return RL_ERR_INVALID_HEADER;
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
 * gateway that can only pass headers on (nginx auth_request_set). */
static void authorize_deny(rl_http_req_t *req, const rl_conf_t *conf,
                           const rl_verdict_t *v, const char **names,
                           const char **values, int n)
{
    json_t *body = rl_reply_deny_body(v);
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *ascii = NULL;
    char status[16];
    int code = authorize_deny_status(conf, v);

    if (conf->forward_auth.deny_status != 0) {
        ascii = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                     JSON_ENSURE_ASCII);
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
        rl_http_reply(req, code, names, values, n, NULL, text, strlen(text));
    }
    free(text);
    free(ascii);
    json_decref(body);
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
    char ipbuf[AUTHORIZE_IP_MAX];
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
