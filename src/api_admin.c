/* The admin endpoints: POST /v1/admin/reset and GET /v1/policies.
 *
 * Every admin route answers 404 unless "admin": {"enabled": true}, and
 * then requires "Authorization: Bearer <key>" whose SHA-256 equals
 * admin.key_sha256 (both checked by the router, the key before the
 * Content-Type: rl_api_admin_authorized),
 * compared in constant time (401 AUTH_002 when missing, AUTH_001 when
 * wrong, 400 when Authorization is repeated). Failures count against the
 * address like caller authentication's (429 past auth.max_failures). The header
 * is read by the bearer check that caller authentication uses
 * (rl_auth_bearer_key). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "api.h"
#include "auth.h"
#include "decide.h"
#include "log.h"
#include "reload.h"
#include "request.h"
#include "server.h"
#include "util.h"
#include "worker.h"

/* Answers a 401 of kind in the error shape with WWW-Authenticate. */
static void admin_unauthorized(rl_http_req_t *req, rl_error_t kind,
                               const char *message)
{
    static const char *const names[] = {"WWW-Authenticate"};
    static const char *const values[] = {"Bearer realm=\"ratelimitd-admin\""};

    rl_api_error_headers(req, kind, message, names, values, 1);
}

/* See server.h. */
int rl_api_admin_enabled(const rl_worker_t *w)
{
    return w->conf->admin.enabled && w->conf->admin.key_sha256 != NULL;
}

/* 1 if req may use the admin endpoints; otherwise it has been answered
 * (404 while admin is disabled, 401 without the right bearer key). The
 * key is read by caller authentication's bearer check and compared in
 * constant time. */
int rl_api_admin_authorized(rl_worker_t *w, rl_http_req_t *req)
{
    const rl_conf_admin_t *a = &w->conf->admin;
    rl_auth_error_t err;
    char digest[65];
    int ok;

    if (!rl_api_admin_enabled(w)) {
        rl_api_error(req, RL_ERR_NOT_FOUND, NULL);
        return 0;
    }
    /* Wrong keys are throttled per address like caller authentication. */
    if (rl_server_auth_throttled(w, req)) {
        return 0;
    }
    if (rl_auth_bearer_key(req->headers, req->nheaders, digest, &err) != 0) {
        if (err.status != 401) {
            rl_api_error(req, err.kind, err.message);
            return 0;
        }
        rl_server_auth_failed(w, req);
        if (err.kind == RL_ERR_AUTH_MISSING) {
            admin_unauthorized(req, RL_ERR_ADMIN_KEY_MISSING, NULL);
        } else {
            admin_unauthorized(req, err.kind, err.message);
        }
        return 0;
    }
    ok = rl_consttime_eq(digest, 64, a->key_sha256, 64);
    rl_wipe(digest, sizeof(digest));
    if (!ok) {
        rl_server_auth_failed(w, req);
        admin_unauthorized(req, RL_ERR_ADMIN_KEY_INVALID, NULL);
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------------
 * POST /v1/admin/reset
 * ------------------------------------------------------------------- */

/* The store answered the reset: 200 {"reset": true, "policy", "test"},
 * or the decide API's error for the same outcome. Whatever the failure
 * mode, a reset that did not happen (degraded, even open) is 503. */
static void admin_reset_done(void *arg, rl_decide_status_t status,
                             const rl_verdict_t *v, const char *message)
{
    rl_http_req_t *req = arg;
    rl_worker_t *w = rl_http_req_arg(req);
    rl_outcome_t o;
    json_t *obj;

    rl_outcome_of(status, v, &o);
    if (o.kind == RL_OUTCOME_DEGRADED_OPEN) {
        rl_outcome_make(RL_OUTCOME_UNAVAILABLE, v, RL_ERR_NONE, &o);
    }
    if (o.reply == RL_OUTCOME_REPLY_ERROR) {
        rl_api_error(req, o.error, message);
        return;
    }
    if (o.reply == RL_OUTCOME_REPLY_UNAVAILABLE) {
        obj = rl_api_error_body(req->id, o.error, NULL);
        json_object_set_new(obj, "reset", json_false());
        json_object_set_new(obj, "policy", json_string(v->policy->name));
        json_object_set_new(obj, "degraded_reason",
                            json_string(v->degraded_reason != NULL
                                            ? v->degraded_reason
                                            : "unknown"));
        rl_api_reply_json(req, o.status, obj, NULL, NULL, 0);
        return;
    }
    RL_STAT_INC(&w->stats, admin_resets);
    rl_log_kv(RL_LOG_INFO, "admin reset", "policy", v->policy->name,
              "request_id", req->id, "test", v->test ? "true" : "false", NULL);
    obj = json_pack("{s:b, s:s, s:b}", "reset", 1, "policy", v->policy->name,
                    "test", v->test);
    rl_api_reply_json(req, 200, obj, NULL, NULL, 0);
}

void rl_api_admin_reset(rl_worker_t *w, rl_http_req_t *req)
{
    json_t *root;
    rl_request_t dr;
    rl_outcome_t o;

    root = rl_api_request_body(req, &dr, &o);
    if (root == NULL) {
        return;
    }
    rl_decide_reset(w->conf, w->store, &dr, admin_reset_done, req);
    json_decref(root);
}

/* ---------------------------------------------------------------------
 * GET /v1/policies
 * ------------------------------------------------------------------- */

/* A duration in ms as the config writes it: the largest unit that
 * divides it ("5m", "10s", "250ms"). */
static void admin_duration(int64_t ms, char *buf, size_t len)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    size_t i;

    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms >= units[i].ms && ms % units[i].ms == 0) {
            snprintf(buf, len, "%lld%s", (long long)(ms / units[i].ms),
                     units[i].unit);
            return;
        }
    }
    snprintf(buf, len, "%lldms", (long long)ms);
}

static const char *const header_names[] = {
    "x-ratelimit", "x-ratelimit-retry-after", "ietf", "none"};

/* The limits array of a policy or test rule. New reference. */
static json_t *admin_limits(const rl_limit_t *limits, int n)
{
    json_t *arr = json_array();
    char per[32];
    char block[32];
    int i;

    for (i = 0; i < n; i++) {
        const rl_limit_t *l = &limits[i];
        const rl_algo_info_t *algo = rl_algo_get(l->algo);
        json_t *o;

        admin_duration(l->period_ms, per, sizeof(per));
        o = json_pack("{s:I, s:s, s:s}", "requests", (json_int_t)l->requests,
                      "per", per, "algorithm",
                      algo != NULL ? algo->name : "unknown");
        if (algo != NULL && algo->has_burst) {
            json_object_set_new(o, "burst", json_integer(l->burst));
        }
        if (l->block_ms > 0) {
            admin_duration(l->block_ms, block, sizeof(block));
            json_object_set_new(o, "block", json_string(block));
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

/* One policy as listed: no deny body and no test header value (a caller
 * who knows it can trip the test limits). New reference. */
static json_t *admin_policy(const rl_policy_t *p)
{
    json_t *o = json_object();
    json_t *match = json_object();
    json_t *key = json_array();
    int i;

    json_object_set_new(o, "name", json_string(p->name));
    if (p->domain != NULL) {
        /* A gRPC policy: its domain and descriptor entries (a value of
         * null matches any). */
        json_t *desc = json_array();

        for (i = 0; i < p->ndesc; i++) {
            json_array_append_new(
                desc, json_pack("{s:s, s:o}", "key", p->desc[i].key, "value",
                                p->desc[i].value != NULL
                                    ? json_string(p->desc[i].value)
                                    : json_null()));
        }
        json_object_set_new(match, "domain", json_string(p->domain));
        json_object_set_new(match, "descriptor", desc);
    } else {
        json_object_set_new(match, "method",
                            p->method != NULL ? json_string(p->method)
                                              : json_null());
        json_object_set_new(match, "path", json_string(p->path.text));
    }
    json_object_set_new(o, "match", match);
    for (i = 0; i < p->nkey; i++) {
        json_array_append_new(key, json_string(p->key[i].spec));
    }
    json_object_set_new(o, "key", key);
    json_object_set_new(o, "limits", admin_limits(p->limits, p->nlimits));
    if (p->test != NULL) {
        json_object_set_new(
            o, "test",
            json_pack("{s:s, s:o}", "header", p->test->header, "limits",
                      admin_limits(p->test->limits, p->test->nlimits)));
    }
    json_object_set_new(o, "mode",
                        json_string(p->shadow ? "shadow" : "enforce"));
    json_object_set_new(o, "failure_mode",
                        json_string(p->failure_open ? "open" : "closed"));
    json_object_set_new(o, "headers", json_string(header_names[p->headers]));
    json_object_set_new(o, "deny_status", json_integer(p->deny_status));
    return o;
}

void rl_api_policies(rl_worker_t *w, rl_http_req_t *req)
{
    rl_reload_result_t last;
    json_t *arr;
    json_t *obj;
    int i;

    arr = json_array();
    for (i = 0; i < w->conf->npolicies; i++) {
        json_array_append_new(arr, admin_policy(&w->conf->policies[i]));
    }
    rl_reload_last(&last);
    obj = json_pack("{s:s, s:I, s:o, s:{s:I, s:b, s:o}}", "config_hash",
                    w->conf->hash, "generation",
                    (json_int_t)w->conf->generation, "policies", arr, "reload",
                    "at", (json_int_t)(last.at_ms / 1000), "ok", last.ok,
                    "error", last.ok ? json_null() : json_string(last.error));
    rl_api_reply_json(req, 200, obj, NULL, NULL, 0);
}
