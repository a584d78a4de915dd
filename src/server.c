/* The HTTP router: the route table, the method, auth and content checks,
 * health and readiness. Each API lives in its own api_*.c; every reply
 * is built through api.h. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "api.h"
#include "log.h"
#include "util.h"
#include "worker.h"

static rl_route_fn handle_health;
static rl_route_fn handle_ready;

/* Route flags. */
enum {
    ROUTE_JSON = 1,   /* takes a JSON body (Content-Type checked) */
    ROUTE_PREFIX = 2, /* every sub-path under path is routed here too */
    ROUTE_ADMIN = 4   /* exists only while admin is enabled: 404 otherwise,
                       * whatever the method */
};

/* Who must authenticate: RL_ROUTE_AUTH, callers whenever auth.mode is not
 * "none"; RL_ROUTE_ADMIN_KEY, the admin key; 0, an open route unless
 * listed in auth.protect_paths. */
#define RL_ROUTE_AUTH 1
#define RL_ROUTE_ADMIN_KEY 2

/* Every route: path, the one method it accepts (NULL: any), its flags,
 * its handler, and its auth column. Adding an endpoint is one line; a
 * path with several methods has a row per method. */
static const struct route {
    const char *path;
    const char *method;
    int flags;
    rl_route_fn *fn;
    int auth;
} routes[] = {
    {"/health", "GET", 0, handle_health, 0},
    {"/ready", "GET", 0, handle_ready, 0},
    {"/v1/decide", "POST", ROUTE_JSON, rl_api_decide, RL_ROUTE_AUTH},
    {"/v1/decide/batch", "POST", ROUTE_JSON, rl_api_batch, RL_ROUTE_AUTH},
    {"/v1/authorize", NULL, ROUTE_PREFIX, rl_api_authorize, RL_ROUTE_AUTH},
    {"/metrics", "GET", 0, rl_api_metrics, 0},
    {"/v1/admin/reset", "POST", ROUTE_ADMIN | ROUTE_JSON, rl_api_admin_reset,
     RL_ROUTE_ADMIN_KEY},
    {"/v1/policies", "GET", ROUTE_ADMIN, rl_api_policies, RL_ROUTE_ADMIN_KEY},
    {"/v1/admin/overrides", "GET", ROUTE_ADMIN, rl_api_overrides_list,
     RL_ROUTE_ADMIN_KEY},
    {"/v1/admin/overrides", "PUT", ROUTE_ADMIN | ROUTE_JSON,
     rl_api_overrides_put, RL_ROUTE_ADMIN_KEY},
    {"/v1/admin/overrides", "DELETE", ROUTE_ADMIN | ROUTE_JSON,
     rl_api_overrides_delete, RL_ROUTE_ADMIN_KEY},
    {"/v1/admin/top", "GET", ROUTE_ADMIN, rl_api_top, RL_ROUTE_ADMIN_KEY},
    /* The page holds no secret: its scripts send the key (api_ui.c). */
    {"/ui", "GET", ROUTE_ADMIN, rl_api_ui, 0},
};

/* ---------------------------------------------------------------------
 * Health and readiness
 * ------------------------------------------------------------------- */

static void handle_health(rl_worker_t *w, rl_http_req_t *req)
{
    static const char body[] = "{\"status\":\"healthy\"}";
    rl_http_reply(req, 200, NULL, NULL, 0, NULL, body, sizeof(body) - 1);
}

/* Adds one Redis node's state to the "nodes" object of /ready. */
static void ready_add_node(void *arg, const char *name, const char *state)
{
    json_object_set_new(arg, name, json_string(state));
}

/* 200 while the store can decide (a cluster: every slot has a reachable
 * master), 503 otherwise; "nodes" lists each Redis node this worker
 * talks to, "up" or "down". */
static void handle_ready(rl_worker_t *w, rl_http_req_t *req)
{
    /* This worker's own connection is checked live; the others through
     * the state they publish every 50 ms. */
    int up = rl_store_connected(w->store) && rl_app_store_up(w->app);
    json_t *obj = json_object();

    json_object_set_new(obj, "status", json_string(up ? "ready" : "not_ready"));
    json_object_set_new(obj, "store",
                        json_string(up ? "connected" : "disconnected"));
    if (rl_store_has_nodes(w->store)) {
        json_t *nodes = json_object();
        rl_store_nodes(w->store, ready_add_node, nodes);
        json_object_set_new(obj, "nodes", nodes);
    }
    rl_api_reply_json(req, up ? 200 : 503, obj, NULL, NULL, 0);
}

/* ---------------------------------------------------------------------
 * Routing
 * ------------------------------------------------------------------- */

/* application/json, with or without parameters, or any +json type. */
static int content_type_is_json(const char *ct)
{
    size_t n;
    const char *semi;

    if (ct == NULL) {
        return 0;
    }
    semi = strchr(ct, ';');
    n = semi != NULL ? (size_t)(semi - ct) : strlen(ct);
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) {
        n--;
    }
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) {
        return 1;
    }
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

/* 1 if route r serves req's path. */
static int route_fits(const struct route *r, const rl_http_req_t *req)
{
    size_t n = strlen(r->path);

    return n <= req->path_len && memcmp(r->path, req->path, n) == 0 &&
           (n == req->path_len ||
            ((r->flags & ROUTE_PREFIX) && req->path[n] == '/'));
}

/* Answers 405 for a path whose rows (from first on) take other methods,
 * with Allow listing them. */
static void route_method_not_allowed(rl_http_req_t *req,
                                     const struct route *first)
{
    static const char *const names[] = {"Allow"};
    const struct route *end = routes + sizeof(routes) / sizeof(routes[0]);
    const struct route *r;
    char allow[64] = "";
    char msg[128];
    const char *values[1];

    for (r = first; r < end; r++) {
        if (strcmp(r->path, first->path) == 0) {
            snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow),
                     "%s%s", allow[0] != '\0' ? ", " : "", r->method);
        }
    }
    values[0] = allow;
    snprintf(msg, sizeof(msg), "%s: use %s",
             rl_error_message(RL_ERR_METHOD_NOT_ALLOWED), allow);
    rl_api_error_headers(req, RL_ERR_METHOD_NOT_ALLOWED, msg, names, values, 1);
}

void rl_server_handle(rl_http_req_t *req, void *arg)
{
    rl_worker_t *w = arg;
    const struct route *found = NULL;
    const struct route *path_only = NULL;
    size_t i;

    RL_STAT_INC(&w->stats, http_requests);
    for (i = 0; i < sizeof(routes) / sizeof(routes[0]) && found == NULL; i++) {
        if (!route_fits(&routes[i], req)) {
            continue;
        }
        if (routes[i].method == NULL ||
            strcmp(req->method, routes[i].method) == 0) {
            found = &routes[i];
        } else if (path_only == NULL) {
            path_only = &routes[i];
        }
    }
    /* A disabled admin path is unknown: no 405 or 415 tells it exists. */
    if ((found == NULL && path_only == NULL) ||
        (((found != NULL ? found : path_only)->flags & ROUTE_ADMIN) &&
         !rl_api_admin_enabled(w))) {
        rl_api_error(req, RL_ERR_NOT_FOUND, NULL);
        return;
    }
    if (found == NULL) {
        route_method_not_allowed(req, path_only);
        return;
    }
    /* Who the client is comes before what it sent: 401 before 415. */
    if (!rl_server_caller_ok(w, req, found->auth == RL_ROUTE_AUTH) ||
        (found->auth == RL_ROUTE_ADMIN_KEY &&
         !rl_api_admin_authorized(w, req))) {
        return;
    }
    if ((found->flags & ROUTE_JSON) &&
        !content_type_is_json(rl_http_header(req, "content-type", NULL))) {
        rl_api_error(req, RL_ERR_UNSUPPORTED_MEDIA_TYPE, NULL);
        return;
    }
    found->fn(w, req);
}
