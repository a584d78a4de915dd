/* The HTTP front end: a route table, content checks, the error shape, and
 * the glue from an HTTP request to the decision core and back. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "decide.h"
#include "log.h"
#include "reply.h"
#include "request.h"
#include "util.h"
#include "worker.h"

typedef void route_fn(rl_worker_t *w, rl_http_req_t *req);

static route_fn handle_health;
static route_fn handle_ready;
static route_fn handle_decide;

/* Every route: path, the one method it accepts, whether it takes a JSON
 * body, and its handler. Adding an endpoint is one line. */
static const struct route {
    const char *path;
    const char *method;
    int json_body;
    route_fn *fn;
} routes[] = {
    { "/health", "GET", 0, handle_health },
    { "/ready", "GET", 0, handle_ready },
    { "/v1/decide", "POST", 1, handle_decide },
};

/* ---------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------- */

/* Sends obj (reference stolen) as the JSON body with extra headers. */
static void reply_json(rl_http_req_t *req, int status, json_t *obj, const char *const *names,
                       const char *const *values, int n)
{
    char *body = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (body == NULL) {
        static const char oom[] = "{\"error\":\"out of memory\",\"code\":\"INTERNAL\"}";
        rl_http_reply(req, 500, NULL, NULL, 0, NULL, oom, sizeof(oom) - 1);
        return;
    }
    rl_http_reply(req, status, names, values, n, NULL, body, strlen(body));
    free(body);
}

void rl_server_error(rl_http_req_t *req, int status, const char *code, const char *message)
{
    json_t *obj = json_object();
    json_object_set_new(obj, "error", json_string(message));
    json_object_set_new(obj, "code", json_string(code));
    json_object_set_new(obj, "trace_id", json_string(req->id));
    reply_json(req, status, obj, NULL, NULL, 0);
}

/* ---------------------------------------------------------------------
 * Health and readiness
 * ------------------------------------------------------------------- */

static void handle_health(rl_worker_t *w, rl_http_req_t *req)
{
    static const char body[] = "{\"status\":\"healthy\"}";
    rl_http_reply(req, 200, NULL, NULL, 0, NULL, body, sizeof(body) - 1);
}

static void handle_ready(rl_worker_t *w, rl_http_req_t *req)
{
    static const char ready[] = "{\"status\":\"ready\",\"store\":\"connected\"}";
    static const char not_ready[] = "{\"status\":\"not_ready\",\"store\":\"disconnected\"}";

    /* This worker's own connection is checked live; the others through
     * the state they publish every 50 ms. */
    if (rl_store_connected(w->store) && rl_app_store_up(w->app)) {
        rl_http_reply(req, 200, NULL, NULL, 0, NULL, ready, sizeof(ready) - 1);
    } else {
        rl_http_reply(req, 503, NULL, NULL, 0, NULL, not_ready, sizeof(not_ready) - 1);
    }
}

/* ---------------------------------------------------------------------
 * Decisions
 * ------------------------------------------------------------------- */

static void count_verdict(rl_worker_t *w, const rl_verdict_t *v)
{
    if (v->degraded) RL_STAT_INC(&w->stats, decisions_degraded);
    if (v->policy == NULL) RL_STAT_INC(&w->stats, decisions_unmatched);
    else if (v->shadow_would_deny) RL_STAT_INC(&w->stats, decisions_shadow_denied);
    else if (v->allowed) RL_STAT_INC(&w->stats, decisions_allowed);
    else RL_STAT_INC(&w->stats, decisions_denied);
}

/* Answers /v1/decide from the verdict: 200 with the decision JSON and the
 * rate-limit headers, 422 for an invalid request, 503 when the store is
 * down and the policy fails closed. */
static void decide_http_done(void *arg, rl_decide_status_t status, const rl_verdict_t *v,
                             const char *message)
{
    rl_http_req_t *req = arg;
    rl_reply_header_t hdrs[RL_REPLY_MAX_HEADERS];
    const char *names[RL_REPLY_MAX_HEADERS], *values[RL_REPLY_MAX_HEADERS];
    json_t *obj;
    int n, i;

    switch (status) {
    case RL_DECIDE_INVALID:
        rl_server_error(req, 422, "VAL_001", message);
        return;
    case RL_DECIDE_BAD_POLICY:
        rl_server_error(req, 422, "VAL_002", message);
        return;
    case RL_DECIDE_UNAVAILABLE:
        obj = json_object();
        json_object_set_new(obj, "error", json_string("rate-limit store unavailable"));
        json_object_set_new(obj, "code", json_string("STORE_001"));
        json_object_set_new(obj, "trace_id", json_string(req->id));
        json_object_set_new(obj, "allowed", json_false());
        json_object_set_new(obj, "policy", json_string(v->policy->name));
        json_object_set_new(obj, "degraded", json_true());
        json_object_set_new(obj, "degraded_reason", json_string(v->degraded_reason));
        reply_json(req, 503, obj, NULL, NULL, 0);
        return;
    case RL_DECIDE_OK:
        break;
    }
    n = rl_reply_headers(v, hdrs);
    for (i = 0; i < n; i++) {
        names[i] = hdrs[i].name;
        values[i] = hdrs[i].value;
    }
    reply_json(req, 200, rl_reply_decision(v), names, values, n);
}

/* Counts, then answers. The worker is the HTTP server's handler arg. */
static void decide_cb(void *arg, rl_decide_status_t status, const rl_verdict_t *v,
                      const char *message)
{
    rl_http_req_t *req = arg;
    rl_worker_t *w = rl_http_req_arg(req);

    if (status == RL_DECIDE_INVALID || status == RL_DECIDE_BAD_POLICY) RL_STAT_INC(&w->stats, decisions_invalid);
    else count_verdict(w, v);
    decide_http_done(req, status, v, message);
}

static void handle_decide(rl_worker_t *w, rl_http_req_t *req)
{
    json_error_t jerr;
    json_t *root;
    rl_request_t dr;
    rl_request_error_t rerr;
    char msg[256];

    root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        snprintf(msg, sizeof(msg), "malformed JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        rl_server_error(req, 400, "VAL_002", msg);
        return;
    }
    if (rl_request_from_json(root, &dr, &rerr) != 0) {
        json_decref(root);
        rl_server_error(req, 422, rerr.code, rerr.message);
        return;
    }
    rl_decide(w->conf, w->store, &dr, decide_cb, req);
    /* The decision core copied what it needs: the JSON can go now. */
    json_decref(root);
}

/* ---------------------------------------------------------------------
 * Routing
 * ------------------------------------------------------------------- */

/* application/json, with or without parameters, or any +json type. */
static int content_type_is_json(const char *ct)
{
    size_t n;
    const char *semi;

    if (ct == NULL) return 0;
    semi = strchr(ct, ';');
    n = semi != NULL ? (size_t)(semi - ct) : strlen(ct);
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) return 1;
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

void rl_server_handle(rl_http_req_t *req, void *arg)
{
    rl_worker_t *w = arg;
    const struct route *found = NULL;
    size_t i;

    RL_STAT_INC(&w->stats, http_requests);
    for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strlen(routes[i].path) == req->path_len &&
            memcmp(routes[i].path, req->path, req->path_len) == 0) {
            found = &routes[i];
            break;
        }
    }
    if (found == NULL) {
        rl_server_error(req, 404, "NOT_FOUND", "no such endpoint");
        return;
    }
    if (strcmp(req->method, found->method) != 0) {
        static const char *const names[] = { "Allow" };
        const char *values[] = { found->method };
        json_t *obj = json_object();
        char msg[96];
        snprintf(msg, sizeof(msg), "method not allowed: use %s", found->method);
        json_object_set_new(obj, "error", json_string(msg));
        json_object_set_new(obj, "code", json_string("METHOD_NOT_ALLOWED"));
        json_object_set_new(obj, "trace_id", json_string(req->id));
        reply_json(req, 405, obj, names, values, 1);
        return;
    }
    if (found->json_body && !content_type_is_json(rl_http_header(req, "content-type", NULL))) {
        rl_server_error(req, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json");
        return;
    }
    found->fn(w, req);
}
