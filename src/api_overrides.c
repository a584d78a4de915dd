/* The admin overrides endpoints, behind the admin key like
 * /v1/admin/reset (the router calls rl_api_admin_authorized):
 *   PUT    /v1/admin/overrides  {"policy", "key", "limits" | "deny",
 *                                optional "ttl"}: stores it, 200 with it
 *   GET    /v1/admin/overrides[?policy=NAME]: config and admin overrides
 *   DELETE /v1/admin/overrides  {"policy", "key"}: 200, or 404 NOT_FOUND
 * Admin overrides live in the store (store_ovr.c); the worker that
 * served a change reloads its snapshot at once, the others within their
 * 250 ms poll (override.c). Bad input is 422 naming the field: VAL_001
 * missing, VAL_002 wrong. Each change is logged (policy and key, never
 * a secret) and counted. Worker thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "api.h"
#include "log.h"
#include "override.h"
#include "server.h"
#include "util.h"
#include "worker.h"

#define OVR_TTL_MAX_MS (366LL * 86400 * 1000)

/* An admin change on its way to the store. */
typedef struct ovr_change {
    rl_http_req_t *req;
    rl_store_ovr_kind_t kind;
    json_t *stored; /* PUT: the override as stored and listed */
    json_t *key;    /* the key object, for the log and DELETE's reply */
    char *policy;
} ovr_change_t;

/* Frees a change. */
static void ovr_change_free(ovr_change_t *ch)
{
    json_decref(ch->stored);
    json_decref(ch->key);
    free(ch->policy);
    free(ch);
}

/* The policy named by body's "policy", or NULL after answering 422. */
static const rl_policy_t *ovr_body_policy(rl_worker_t *w, rl_http_req_t *req,
                                          json_t *body)
{
    json_t *name = json_object_get(body, "policy");
    const rl_policy_t *p;
    char msg[160];

    if (name == NULL) {
        rl_api_error(req, RL_ERR_MISSING_FIELD, "policy is required");
        return NULL;
    }
    p = json_is_string(name) ? rl_conf_policy(w->conf, json_string_value(name))
                             : NULL;
    if (p == NULL) {
        snprintf(msg, sizeof(msg), "policy: %s",
                 json_is_string(name) ? "no such policy"
                                      : "must be a policy name");
        rl_api_error(req, RL_ERR_INVALID_FIELD, msg);
    }
    return p;
}

/* Refuses members of body other than the n allowed ones (422). 0 or -1. */
static int ovr_body_fields(rl_http_req_t *req, json_t *body,
                           const char *const *allowed, size_t n)
{
    const char *name;
    json_t *val;
    char msg[160];
    size_t i;

    json_object_foreach(body, name, val)
    {
        for (i = 0; i < n && strcmp(name, allowed[i]) != 0; i++) {
        }
        if (i == n) {
            snprintf(msg, sizeof(msg), "%.64s: unknown field", name);
            rl_api_error(req, RL_ERR_INVALID_FIELD, msg);
            return -1;
        }
    }
    return 0;
}

/* Parses req's body for a change: the policy and the override (the key
 * alone for a delete, through the same parser). Returns the body (new
 * reference) with *p and *o set, or NULL after answering. */
static json_t *ovr_parse_change(rl_worker_t *w, rl_http_req_t *req, int put,
                                const rl_policy_t **p, rl_override_t *o)
{
    static const char *const put_fields[] = {"policy", "key", "limits", "deny",
                                             "ttl"};
    static const char *const del_fields[] = {"policy", "key"};
    json_t *body = rl_api_json_body(req);
    json_t *probe = NULL;
    char err[320];
    int missing;

    if (body == NULL) {
        return NULL;
    }
    if (!json_is_object(body)) {
        rl_api_error(req, RL_ERR_INVALID_FIELD, "body must be a JSON object");
        goto fail;
    }
    if (ovr_body_fields(req, body, put ? put_fields : del_fields,
                        put ? 5 : 2) != 0 ||
        (*p = ovr_body_policy(w, req, body)) == NULL) {
        goto fail;
    }
    probe = put ? json_incref(body)
                : json_pack("{s:O?, s:{}}", "key", json_object_get(body, "key"),
                            "deny");
    if (probe == NULL || rl_override_parse(*p, probe, "", 1, o, err,
                                           sizeof(err), &missing) != 0) {
        rl_api_error(req, missing ? RL_ERR_MISSING_FIELD : RL_ERR_INVALID_FIELD,
                     probe == NULL ? "out of memory" : err);
        goto fail;
    }
    json_decref(probe);
    return body;

fail:
    json_decref(probe);
    json_decref(body);
    return NULL;
}

/* "ttl" of a PUT: unix s of expiry into *expires_at (0: none). 0, or -1
 * after answering 422. */
static int ovr_ttl(rl_http_req_t *req, json_t *body, int64_t *expires_at)
{
    json_t *ttl = json_object_get(body, "ttl");
    int64_t ms;

    *expires_at = 0;
    if (ttl == NULL) {
        return 0;
    }
    if (!json_is_string(ttl) ||
        rl_duration_parse(json_string_value(ttl), &ms) != RL_OK || ms < 1000 ||
        ms > OVR_TTL_MAX_MS) {
        rl_api_error(req, RL_ERR_INVALID_FIELD,
                     "ttl: must be a duration from \"1s\" to \"366d\"");
        return -1;
    }
    *expires_at = (rl_now_ms() + ms + 999) / 1000; /* never before ttl */
    return 0;
}

/* This worker's snapshot has the change: 200 (PUT: the override; DELETE:
 * what was removed), so the very next decision here sees it. */
static void ovr_change_reply(void *arg)
{
    ovr_change_t *ch = arg;

    rl_api_reply_json(ch->req, 200,
                      ch->kind == RL_STORE_OVR_PUT
                          ? json_incref(ch->stored)
                          : json_pack("{s:b, s:s, s:O}", "deleted", 1, "policy",
                                      ch->policy, "key", ch->key),
                      NULL, NULL, 0);
    ovr_change_free(ch);
}

/* The store answered a change: logged and counted, then answered once
 * this worker has reloaded; 404 for a delete of nothing, 503 when the
 * store failed. */
static void ovr_change_done(void *arg, const rl_store_ovr_result_t *res)
{
    ovr_change_t *ch = arg;
    rl_http_req_t *req = ch->req;
    rl_worker_t *w = rl_http_req_arg(req);
    int put = ch->kind == RL_STORE_OVR_PUT;
    char *key, digest[65];

    if (res->status != RL_OK || (!put && !res->found)) {
        if (res->status != RL_OK) {
            rl_api_error(req, RL_ERR_STORE_UNAVAILABLE, NULL);
        } else {
            rl_api_error(req, RL_ERR_NOT_FOUND,
                         "no admin override for this policy and key");
        }
        ovr_change_free(ch);
        return;
    }
    if (put) {
        RL_STAT_INC(&w->stats, override_puts);
    } else {
        RL_STAT_INC(&w->stats, override_deletes);
    }
    /* The key's values (a tenant, a user, an address) are never logged:
     * its digest lets an operator tell which key changed by hashing a
     * suspect the same way. */
    key = json_dumps(ch->key, JSON_COMPACT | JSON_SORT_KEYS);
    if (key != NULL) {
        rl_sha256_hex(key, strlen(key), digest);
    }
    digest[key != NULL ? 16 : 0] = '\0';
    rl_log_kv(RL_LOG_INFO,
              put ? "admin override stored" : "admin override deleted",
              "policy", ch->policy, "key_sha256", digest, "request_id", req->id,
              NULL);
    free(key);
    rl_override_worker_reload(ovr_change_reply, ch);
}

/* Parses and sends a PUT (put 1) or DELETE to the store. */
static void ovr_change(rl_worker_t *w, rl_http_req_t *req, int put)
{
    const rl_policy_t *p = NULL;
    rl_store_ovr_op_t op;
    rl_override_t o;
    ovr_change_t *ch = NULL;
    json_t *body;
    char *field = NULL, *value = NULL;

    body = ovr_parse_change(w, req, put, &p, &o);
    if (body == NULL) {
        return;
    }
    memset(&op, 0, sizeof(op));
    if (put && ovr_ttl(req, body, &op.expires_at) != 0) {
        goto done;
    }
    if (put && rl_override_retry_unfillable(&o, p, op.expires_at)) {
        char msg[256];

        snprintf(msg, sizeof(msg), "deny: %s", rl_override_no_retry_msg);
        rl_api_error(req, RL_ERR_INVALID_FIELD, msg);
        goto done;
    }
    ch = calloc(1, sizeof(*ch));
    field = rl_override_field(&o);
    if (ch == NULL || field == NULL) {
        rl_api_error(req, RL_ERR_INTERNAL, NULL);
        goto done;
    }
    ch->req = req;
    ch->kind = put ? RL_STORE_OVR_PUT : RL_STORE_OVR_DELETE;
    ch->policy = strdup(p->name);
    ch->key = json_incref(json_object_get(o.json, "key"));
    if (put) {
        ch->stored = json_incref(o.json);
        json_object_set_new(ch->stored, "source", json_string("admin"));
        if (op.expires_at > 0) {
            json_object_set_new(ch->stored, "expires_at",
                                json_integer(op.expires_at));
        }
        value = json_dumps(ch->stored, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    if (ch->policy == NULL || (put && value == NULL)) {
        rl_api_error(req, RL_ERR_INTERNAL, NULL);
        goto done;
    }
    op.kind = ch->kind;
    op.prefix = w->conf->store.prefix;
    op.field = field;
    op.field_len = strlen(field);
    op.value = value;
    op.value_len = value != NULL ? strlen(value) : 0;
    op.now_s = rl_now_ms() / 1000;
    w->store->ops->overrides(w->store, &op, ovr_change_done, ch);
    ch = NULL;

done:
    if (ch != NULL) {
        ovr_change_free(ch);
    }
    free(field);
    free(value);
    rl_override_clear(&o);
    json_decref(body);
}

void rl_api_overrides_put(rl_worker_t *w, rl_http_req_t *req)
{
    ovr_change(w, req, 1);
}

void rl_api_overrides_delete(rl_worker_t *w, rl_http_req_t *req)
{
    ovr_change(w, req, 0);
}

/* ---------------------------------------------------------------------
 * GET /v1/admin/overrides
 * ------------------------------------------------------------------- */

/* The value of "policy=" in req's query string, NUL terminated into buf;
 * "" when absent. */
static void ovr_query_policy(const rl_http_req_t *req, char *buf, size_t len)
{
    const char *q = req->target + req->path_len;
    const char *v;
    size_t n;

    buf[0] = '\0';
    if (*q != '?') {
        return;
    }
    for (q++; *q != '\0'; q += strcspn(q, "&"), q += *q == '&') {
        if (strncmp(q, "policy=", 7) == 0) {
            v = q + 7;
            n = strcspn(v, "&");
            snprintf(buf, len, "%.*s", (int)n, v);
            return;
        }
    }
}

void rl_api_overrides_list(rl_worker_t *w, rl_http_req_t *req)
{
    const rl_override_snap_t *snap;
    char only[80];
    json_t *arr;
    int i, j;

    ovr_query_policy(req, only, sizeof(only));
    if (only[0] != '\0' && rl_conf_policy(w->conf, only) == NULL) {
        rl_api_error(req, RL_ERR_INVALID_FIELD, "policy: no such policy");
        return;
    }
    arr = json_array();
    snap = rl_override_worker_snap();
    for (i = 0; snap != NULL && i < snap->n; i++) {
        const rl_override_t *o = &snap->items[i];

        if ((only[0] == '\0' || strcmp(o->policy, only) == 0) &&
            (o->expires_at == 0 || o->expires_at > rl_now_ms() / 1000)) {
            json_array_append(arr, o->json);
        }
    }
    for (i = 0; i < w->conf->npolicies; i++) {
        const rl_policy_t *p = &w->conf->policies[i];

        for (j = 0; p->overrides != NULL && j < p->overrides->n &&
                    (only[0] == '\0' || strcmp(p->name, only) == 0);
             j++) {
            json_array_append(arr, p->overrides->items[j].json);
        }
    }
    rl_api_reply_json(req, 200, json_pack("{s:o}", "overrides", arr), NULL,
                      NULL, 0);
}
