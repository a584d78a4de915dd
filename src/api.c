/* The API layer of the HTTP front ends (see api.h): replies, errors, the
 * request body helper, outcome replies and the access log line. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "reply.h"
#include "util.h"
#include "worker.h"

/* ---------------------------------------------------------------------
 * Replies and errors
 * ------------------------------------------------------------------- */

void rl_api_reply_json(rl_http_req_t *req, int status, json_t *obj,
                       const char *const *names, const char *const *values,
                       int n)
{
    /* Any JSON value: a configured body (unavailable) may be a string. */
    char *body =
        json_dumps(obj, JSON_ENCODE_ANY | JSON_COMPACT | JSON_PRESERVE_ORDER);
    char oom[128];
    int len;

    json_decref(obj);
    if (body == NULL) {
        /* No memory for JSON: the error shape by hand, no trace_id. */
        len = snprintf(oom, sizeof(oom), "{\"error\":\"%s\",\"code\":\"%s\"}",
                       rl_error_message(RL_ERR_INTERNAL),
                       rl_error_code(RL_ERR_INTERNAL));
        rl_http_reply(req, rl_error_status(RL_ERR_INTERNAL), NULL, NULL, 0,
                      NULL, oom, (size_t)len);
        return;
    }
    rl_http_reply(req, status, names, values, n, NULL, body, strlen(body));
    free(body);
}

/* message as a JSON string. A message quoting the client's bytes (a
 * parser's "near '...'") may not be valid UTF-8, which JSON cannot carry:
 * then its non-ASCII bytes become '?'. */
static json_t *api_message(const char *message)
{
    json_t *s = json_string(message);
    char safe[512];
    size_t i;

    if (s != NULL) {
        return s;
    }
    for (i = 0; message[i] != '\0' && i + 1 < sizeof(safe); i++) {
        safe[i] = (unsigned char)message[i] < 0x80 ? message[i] : '?';
    }
    safe[i] = '\0';
    return json_string(safe);
}

json_t *rl_api_error_body(const char *trace_id, rl_error_t kind,
                          const char *message)
{
    json_t *obj = json_object();

    json_object_set_new(
        obj, "error",
        api_message(message != NULL ? message : rl_error_message(kind)));
    json_object_set_new(obj, "code", json_string(rl_error_code(kind)));
    if (trace_id != NULL) {
        json_object_set_new(obj, "trace_id", json_string(trace_id));
    }
    return obj;
}

void rl_api_error_headers(rl_http_req_t *req, rl_error_t kind,
                          const char *message, const char *const *names,
                          const char *const *values, int n)
{
    rl_api_reply_json(req, rl_error_status(kind),
                      rl_api_error_body(req->id, kind, message), names, values,
                      n);
}

void rl_api_error(rl_http_req_t *req, rl_error_t kind, const char *message)
{
    rl_api_error_headers(req, kind, message, NULL, NULL, 0);
}

/* ---------------------------------------------------------------------
 * Request bodies
 * ------------------------------------------------------------------- */

/* The JSON root of req's body, or NULL with the parser's message. */
static json_t *api_parse(const rl_http_req_t *req, char *msg, size_t len)
{
    json_error_t jerr;
    json_t *root;

    root = json_loadb(req->body, req->body_len,
                      JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY,
                      &jerr);
    if (root == NULL) {
        snprintf(msg, len, "%s: %s (line %d, column %d)",
                 rl_error_message(RL_ERR_MALFORMED_JSON), jerr.text, jerr.line,
                 jerr.column);
    }
    return root;
}

json_t *rl_api_json_body(rl_http_req_t *req)
{
    char msg[256];
    json_t *root = api_parse(req, msg, sizeof(msg));

    if (root == NULL) {
        rl_api_error(req, RL_ERR_MALFORMED_JSON, msg);
    }
    return root;
}

json_t *rl_api_request_body(rl_http_req_t *req, rl_request_t *dr,
                            rl_outcome_t *o)
{
    rl_request_error_t rerr;
    char msg[256];
    json_t *root = api_parse(req, msg, sizeof(msg));

    if (root == NULL) {
        rl_outcome_make(RL_OUTCOME_BAD_REQUEST, NULL, RL_ERR_MALFORMED_JSON, o);
        rl_api_error(req, RL_ERR_MALFORMED_JSON, msg);
        return NULL;
    }
    if (rl_request_from_json(root, dr, &rerr) != 0) {
        json_decref(root);
        rl_outcome_make(RL_OUTCOME_BAD_REQUEST, NULL, rerr.kind, o);
        rl_api_error(req, rerr.kind, rerr.message);
        return NULL;
    }
    return root;
}

/* ---------------------------------------------------------------------
 * Outcomes
 * ------------------------------------------------------------------- */

void rl_api_unavailable_fields(json_t *obj, const rl_verdict_t *v)
{
    json_object_set_new(obj, "allowed", json_false());
    json_object_set_new(obj, "policy", json_string(v->policy->name));
    json_object_set_new(obj, "degraded", json_true());
    json_object_set_new(obj, "degraded_reason",
                        json_string(v->degraded_reason));
}

json_t *rl_api_unavailable_body(const rl_outcome_t *o, const rl_verdict_t *v,
                                const char *trace_id, const char *message)
{
    const rl_unavailable_t *u = v->policy->unavailable;
    json_t *obj;

    if (u != NULL && u->body != NULL) {
        return rl_reply_template_json(u->body, v, trace_id);
    }
    obj = rl_api_error_body(trace_id, o->error, message);
    rl_api_unavailable_fields(obj, v);
    return obj;
}

json_t *rl_api_unavailable_item(const rl_outcome_t *o, const rl_verdict_t *v,
                                const char *trace_id)
{
    const rl_unavailable_t *u = v->policy->unavailable;
    json_t *obj = json_object();

    rl_api_unavailable_fields(obj, v);
    json_object_set_new(obj, "status", json_integer(o->status));
    if (u != NULL && u->body != NULL) {
        json_object_set_new(obj, "body",
                            rl_reply_template_json(u->body, v, trace_id));
        return obj;
    }
    json_object_set_new(obj, "error", json_string(rl_error_message(o->error)));
    json_object_set_new(obj, "code", json_string(rl_error_code(o->error)));
    return obj;
}

int rl_api_outcome_failed(rl_http_req_t *req, const rl_outcome_t *o,
                          const rl_verdict_t *v, const char *message)
{
    switch (o->reply) {
    case RL_OUTCOME_REPLY_ERROR: rl_api_error(req, o->error, message); return 1;
    case RL_OUTCOME_REPLY_UNAVAILABLE:
        rl_api_reply_json(req, o->status,
                          rl_api_unavailable_body(o, v, req->id, message), NULL,
                          NULL, 0);
        return 1;
    case RL_OUTCOME_REPLY_VERDICT: break;
    }
    return 0;
}

void rl_api_access_log(rl_worker_t *w, const char *id, const rl_outcome_t *o,
                       const rl_verdict_t *v, int64_t latency_us)
{
    rl_worker_access_log(
        w, id, v != NULL && v->policy != NULL ? v->policy->name : NULL,
        o->verdict, o->status, latency_us, v != NULL && v->cached);
}

void rl_api_account(rl_worker_t *w, const char *id, const rl_outcome_t *o,
                    const rl_verdict_t *v, int64_t start_us)
{
    rl_outcome_count(&w->stats, o, v);
    rl_api_access_log(w, id, o, v, rl_mono_us() - start_us);
}
