#ifndef RL_SERVER_H
#define RL_SERVER_H

#include <jansson.h>
#include "decide.h"
#include "http.h"

struct rl_worker;

/* An endpoint: answers req exactly once (now or later). */
typedef void rl_route_fn(struct rl_worker *w, rl_http_req_t *req);

/* The HTTP front end: routes, content checks, error replies, and the
 * glue from an HTTP request to rl_decide and back. The handler's arg is
 * the worker (rl_worker_t *). Worker thread only. */
void rl_server_handle(rl_http_req_t *req, void *arg);

/* Sends obj (reference stolen) as req's JSON body, with n extra headers. */
void rl_server_reply_json(rl_http_req_t *req, int status, json_t *obj,
                          const char *const *names, const char *const *values,
                          int n);

/* The APIs, one file each (api_<name>.c). */
rl_route_fn rl_api_decide;      /* POST /v1/decide */
rl_route_fn rl_api_metrics;     /* GET /metrics */
rl_route_fn rl_api_admin_reset; /* POST /v1/admin/reset (admin) */
rl_route_fn rl_api_policies;    /* GET /v1/policies (admin) */

/* Caller authentication of a routed request (server_auth.c): returns 1
 * if req may proceed, or answers it (401/403/429) and returns 0.
 * route_auth is the route's auth column. */
int rl_server_caller_ok(struct rl_worker *w, rl_http_req_t *req,
                        int route_auth);
rl_route_fn rl_api_batch;     /* POST /v1/decide/batch (api_batch.c) */
rl_route_fn rl_api_authorize; /* any method, /v1/authorize and below
                                 (api_authorize.c) */

/* Parses req's body as JSON (duplicate keys refused, NUL bytes kept for
 * field validation, any value accepted: a non-object is the request
 * parser's 422). Returns a new reference, or NULL after answering 400
 * VAL_002 with the parser's message. */
json_t *rl_server_json_body(rl_http_req_t *req);

/* Answers the failed outcomes of rl_decide the same way for every API:
 * 422 VAL_001 (missing key field), 422 VAL_002 (unknown policy), the
 * tenant's AUTH error, 503 STORE_001 (store down, failing closed).
 * Returns 1 if it answered req, 0 for RL_DECIDE_OK. */
int rl_server_decide_failed(rl_http_req_t *req, rl_decide_status_t status,
                            const rl_verdict_t *v, const char *message);

/* Answers req with the error shape {"error", "code", "trace_id"}. */
void rl_server_error(rl_http_req_t *req, int status, const char *code,
                     const char *message);

#endif
