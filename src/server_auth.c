/* Caller authentication at the HTTP front end: which routes need it, the
 * per-address refusal after repeated failures, and the 401/403/429
 * replies (through api.h). The checks themselves are in auth.c. Called
 * by the router (server.c) only; calls nothing of it. Worker thread
 * only. */
#include <stdio.h>
#include <string.h>
#include "api.h"
#include "auth.h"
#include "log.h"
#include "server.h"
#include "util.h"
#include "worker.h"

/* 1 if req's path is one of auth.protect_paths. */
static int path_protected(const rl_conf_auth_t *a, const rl_http_req_t *req)
{
    int i;

    for (i = 0; i < a->nprotect; i++) {
        if (strlen(a->protect_paths[i]) == req->path_len &&
            memcmp(a->protect_paths[i], req->path, req->path_len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Answers an authentication failure in the error shape, with
 * WWW-Authenticate on a bearer 401 and Retry-After on a 429. */
static void auth_reply(rl_http_req_t *req, const rl_conf_auth_t *a,
                       const rl_auth_error_t *err)
{
    const char *names[1], *values[1];
    char retry[24];
    int n = 0;

    if (err->status == 429) {
        snprintf(retry, sizeof(retry), "%lld", (long long)err->retry_after_s);
        names[0] = "Retry-After";
        values[0] = retry;
        n = 1;
    } else if (err->status == 401 && a->mode == RL_AUTH_BEARER) {
        names[0] = "WWW-Authenticate";
        values[0] = "Bearer realm=\"ratelimitd\"";
        n = 1;
    }
    rl_api_error_headers(req, err->kind, err->message, names, values, n);
}

/* See server.h. */
int rl_server_auth_throttled(rl_worker_t *w, rl_http_req_t *req)
{
    rl_auth_error_t err;

    /* An address that keeps failing is refused before any check: guessing
     * a secret goes no faster than max_failures per failure_window. */
    if (!rl_auth_throttled(&w->conf->auth, rl_http_req_peer(req), rl_now_ms(),
                           &err.retry_after_s)) {
        return 0;
    }
    err.kind = RL_ERR_AUTH_THROTTLED;
    err.status = rl_error_status(err.kind);
    err.code = rl_error_code(err.kind);
    snprintf(err.message, sizeof(err.message), "%s",
             rl_error_message(err.kind));
    RL_STAT_INC(&w->stats, auth_failures);
    auth_reply(req, &w->conf->auth, &err);
    return 1;
}

/* See server.h. */
void rl_server_auth_failed(rl_worker_t *w, rl_http_req_t *req)
{
    RL_STAT_INC(&w->stats, auth_failures);
    rl_auth_note_failure(&w->conf->auth, rl_http_req_peer(req), rl_now_ms());
}

int rl_server_caller_ok(rl_worker_t *w, rl_http_req_t *req, int route_auth)
{
    const rl_conf_auth_t *a = &w->conf->auth;
    const rl_principal_t *caller;
    rl_auth_input_t in;
    rl_auth_error_t err;

    if (a->mode == RL_AUTH_NONE || (!route_auth && !path_protected(a, req))) {
        return 1;
    }
    in.method = req->method;
    in.method_len = strlen(req->method);
    in.target = req->target;
    in.target_len = strlen(req->target);
    in.body = req->body;
    in.body_len = req->body_len;
    in.headers = req->headers;
    in.nheaders = req->nheaders;
    if (rl_auth_caller_from(a, rl_http_req_peer(req), &in, rl_now_ms(), &caller,
                            &err) == 0) {
        return 1;
    }
    RL_STAT_INC(&w->stats, auth_failures);
    if (err.status != 429) {
        rl_debug("caller authentication failed: %s (%s)", err.code,
                 err.message);
    }
    auth_reply(req, a, &err);
    return 0;
}
