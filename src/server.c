/* The HTTP front end: the route table, content checks, the error shape,
 * health and readiness. Each API lives in its own api_*.c. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "log.h"
#include "util.h"
#include "worker.h"

static rl_route_fn handle_health;
static rl_route_fn handle_ready;

/* Route flags. */
enum {
    ROUTE_JSON = 1,    /* takes a JSON body (Content-Type checked) */
    ROUTE_PREFIX = 2   /* every sub-path under path is routed here too */
};

/* Every route: path, the one method it accepts (NULL: any), its flags,
 * and its handler. Adding an endpoint is one line. */
static const struct route {
    const char *path;
    const char *method;
    int flags;
    rl_route_fn *fn;
} routes[] = {
    { "/health", "GET", 0, handle_health },
    { "/ready", "GET", 0, handle_ready },
    { "/v1/decide", "POST", 1, rl_api_decide },
    { "/v1/decide/batch", "POST", ROUTE_JSON, rl_api_batch },
    { "/v1/authorize", NULL, ROUTE_PREFIX, rl_api_authorize },
};

/* ---------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------- */

void rl_server_reply_json(rl_http_req_t *req, int status, json_t *obj, const char *const *names,
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
    rl_server_reply_json(req, status, obj, NULL, NULL, 0);
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
        size_t n = strlen(routes[i].path);
        if (n <= req->path_len && memcmp(routes[i].path, req->path, n) == 0 &&
            (n == req->path_len || ((routes[i].flags & ROUTE_PREFIX) && req->path[n] == '/'))) {
            found = &routes[i];
            break;
        }
    }
    if (found == NULL) {
        rl_server_error(req, 404, "NOT_FOUND", "no such endpoint");
        return;
    }
    if (found->method != NULL && strcmp(req->method, found->method) != 0) {
        static const char *const names[] = { "Allow" };
        const char *values[] = { found->method };
        json_t *obj = json_object();
        char msg[96];
        snprintf(msg, sizeof(msg), "method not allowed: use %s", found->method);
        json_object_set_new(obj, "error", json_string(msg));
        json_object_set_new(obj, "code", json_string("METHOD_NOT_ALLOWED"));
        json_object_set_new(obj, "trace_id", json_string(req->id));
        rl_server_reply_json(req, 405, obj, names, values, 1);
        return;
    }
    if ((found->flags & ROUTE_JSON) && !content_type_is_json(rl_http_header(req, "content-type", NULL))) {
        rl_server_error(req, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json");
        return;
    }
    found->fn(w, req);
}
