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
void rl_server_reply_json(rl_http_req_t *req, int status, json_t *obj, const char *const *names,
                          const char *const *values, int n);

/* The APIs, one file each (api_<name>.c). */
rl_route_fn rl_api_decide;   /* POST /v1/decide */
rl_route_fn rl_api_batch;    /* POST /v1/decide/batch (api_batch.c) */
rl_route_fn rl_api_authorize; /* any method, /v1/authorize and below (api_authorize.c) */

/* Counts one decision outcome in the worker's stats (api_decide.c);
 * every API that calls rl_decide counts through it. v may be NULL for
 * RL_DECIDE_INVALID and RL_DECIDE_BAD_POLICY. */
void rl_api_count(struct rl_worker *w, rl_decide_status_t status, const rl_verdict_t *v);

/* Answers req with the error shape {"error", "code", "trace_id"}. */
void rl_server_error(rl_http_req_t *req, int status, const char *code, const char *message);

#endif
