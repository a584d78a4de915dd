#ifndef RL_SERVER_H
#define RL_SERVER_H

#include "http.h"

struct rl_worker;

/* The HTTP router: the route table, the method and content checks, and
 * caller authentication; each endpoint lives in its own api_<name>.c and
 * builds its replies through api.h. The handler's arg is the worker
 * (rl_worker_t *). Worker thread only. */
void rl_server_handle(rl_http_req_t *req, void *arg);

/* An endpoint: answers req exactly once (now or later). */
typedef void rl_route_fn(struct rl_worker *w, rl_http_req_t *req);

/* The APIs, one file each (api_<name>.c). Adding one: its file, its line
 * here and its row in server.c's route table. */
rl_route_fn rl_api_decide;           /* POST /v1/decide */
rl_route_fn rl_api_batch;            /* POST /v1/decide/batch */
rl_route_fn rl_api_authorize;        /* any method, /v1/authorize and below */
rl_route_fn rl_api_metrics;          /* GET /metrics */
rl_route_fn rl_api_admin_reset;      /* POST /v1/admin/reset (admin) */
rl_route_fn rl_api_policies;         /* GET /v1/policies (admin) */
rl_route_fn rl_api_overrides_list;   /* GET /v1/admin/overrides (admin) */
rl_route_fn rl_api_overrides_put;    /* PUT /v1/admin/overrides (admin) */
rl_route_fn rl_api_overrides_delete; /* DELETE /v1/admin/overrides (admin) */
rl_route_fn rl_api_top;              /* GET /v1/admin/top (admin) */
rl_route_fn rl_api_ui;               /* GET /ui: the status page */

/* 1 while the admin endpoints exist ("admin": {"enabled": true} with a
 * key). api_admin.c; worker thread. */
int rl_api_admin_enabled(const struct rl_worker *w);

/* 1 if req may use the admin endpoints; otherwise it has been answered
 * (404 while admin is disabled, 401 without the right bearer key). The
 * router calls it for every admin route, before the Content-Type check.
 * api_admin.c; worker thread. */
int rl_api_admin_authorized(struct rl_worker *w, rl_http_req_t *req);

/* Caller authentication of a routed request (server_auth.c): returns 1
 * if req may proceed, or answers it (401/403/429) and returns 0.
 * route_auth is the route's auth column. Called by the router only. */
int rl_server_caller_ok(struct rl_worker *w, rl_http_req_t *req,
                        int route_auth);

/* The failure throttle of caller authentication, for the admin key too
 * (server_auth.c): rl_server_auth_throttled answers 429 with Retry-After
 * and returns 1 while req's address has failed auth.max_failures times in
 * the window; rl_server_auth_failed counts one failure of it. Worker
 * thread. */
int rl_server_auth_throttled(struct rl_worker *w, rl_http_req_t *req);
void rl_server_auth_failed(struct rl_worker *w, rl_http_req_t *req);

#endif
