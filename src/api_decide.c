/* POST /v1/decide: an HTTP request -> the decision core -> the decision
 * JSON with the rate-limit headers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "decide.h"
#include "reply.h"
#include "request.h"
#include "server.h"
#include "worker.h"

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
        rl_server_reply_json(req, 503, obj, NULL, NULL, 0);
        return;
    case RL_DECIDE_OK:
        break;
    }
    n = rl_reply_headers(v, hdrs);
    for (i = 0; i < n; i++) {
        names[i] = hdrs[i].name;
        values[i] = hdrs[i].value;
    }
    rl_server_reply_json(req, 200, rl_reply_decision(v), names, values, n);
}

/* Counts, then answers. The worker is the HTTP server's handler arg. */
static void decide_cb(void *arg, rl_decide_status_t status, const rl_verdict_t *v,
                      const char *message)
{
    rl_http_req_t *req = arg;
    rl_worker_t *w = rl_http_req_arg(req);

    rl_api_count(w, status, v);
    decide_http_done(req, status, v, message);
}

/* Counts an outcome: invalid requests, else the verdict's kind. */
void rl_api_count(rl_worker_t *w, rl_decide_status_t status, const rl_verdict_t *v)
{
    if (status == RL_DECIDE_INVALID || status == RL_DECIDE_BAD_POLICY) RL_STAT_INC(&w->stats, decisions_invalid);
    else count_verdict(w, v);
}

void rl_api_decide(rl_worker_t *w, rl_http_req_t *req)
{
    json_error_t jerr;
    json_t *root;
    rl_request_t dr;
    rl_request_error_t rerr;
    char msg[256];

    root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
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

