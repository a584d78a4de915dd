/* POST /v1/decide: an HTTP request -> the decision core -> the decision
 * JSON with the rate-limit headers. */
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

/* Answers /v1/decide for outcome o: 200 with the decision JSON and the
 * rate-limit headers, or the outcome's error reply. */
static void decide_http_done(rl_http_req_t *req, const rl_outcome_t *o,
                             const rl_verdict_t *v, const char *message)
{
    rl_reply_header_t hdrs[RL_REPLY_MAX_HEADERS];
    const char *names[RL_REPLY_MAX_HEADERS], *values[RL_REPLY_MAX_HEADERS];
    char body[4096];
    size_t len;
    int n, i;

    if (rl_api_outcome_failed(req, o, v, message)) {
        return;
    }
    n = rl_reply_headers(v, hdrs);
    for (i = 0; i < n; i++) {
        names[i] = hdrs[i].name;
        values[i] = hdrs[i].value;
    }
    len = rl_reply_decision_write(v, body, sizeof(body));
    if (len < sizeof(body)) {
        rl_http_reply(req, 200, names, values, n, NULL, body, len);
        return;
    }
    /* A policy's deny body too large for the stack buffer. */
    rl_api_reply_json(req, 200, rl_reply_decision(v), names, values, n);
}

/* Answers, then records the latency and the access log line (the
 * decision core has counted the verdict). The worker is the HTTP
 * server's handler arg. */
static void decide_cb(void *arg, rl_decide_status_t status,
                      const rl_verdict_t *v, const char *message)
{
    rl_http_req_t *req = arg;
    rl_worker_t *w = rl_http_req_arg(req);
    int64_t start_us = req->start_us;
    int64_t latency_us;
    char id[RL_HTTP_ID_MAX];
    rl_outcome_t o;

    memcpy(id, req->id, sizeof(id));
    rl_outcome_of(status, v, &o);
    decide_http_done(req, &o, v, message);
    /* req is gone now; its id was copied. */
    latency_us = rl_mono_us() - start_us;
    rl_hist_observe(&w->stats.hist_decision, latency_us);
    rl_api_access_log(w, id, &o, v, latency_us);
}

/* Bodies up to this size are tried on the fast path (request.h). */
#define DECIDE_FAST_MAX 2048

void rl_api_decide(rl_worker_t *w, rl_http_req_t *req)
{
    json_t *root;
    rl_request_t dr;
    rl_outcome_t o;
    int64_t start_us = req->start_us;
    char id[RL_HTTP_ID_MAX];
    char scratch[DECIDE_FAST_MAX];

    if (req->body_len < sizeof(scratch) &&
        rl_request_from_body(req->body, req->body_len, scratch, sizeof(scratch),
                             &dr) == 0) {
        /* The decision core copies what it needs from scratch. */
        rl_decide(w->conf, w->store, &dr, decide_cb, req);
        return;
    }
    memcpy(id, req->id, sizeof(id));
    root = rl_api_request_body(req, &dr, &o);
    if (root == NULL) {
        rl_api_account(w, id, &o, NULL, start_us);
        return;
    }
    rl_decide(w->conf, w->store, &dr, decide_cb, req);
    /* The decision core copied what it needs: the JSON can go now. */
    json_decref(root);
}
