/* POST /v1/decide/batch: up to RL_BATCH_MAX decide bodies in one
 * request. Every item is handed to the decision core in order, one after
 * the other, before any answer comes back: the store queues each item's
 * command on the worker's connection, so the whole batch leaves in one
 * pipeline and Redis reads it in a few large reads. The reply is built
 * from the verdicts as they come back, by index, and sent with the last. */
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

#define RL_BATCH_MAX 1000

typedef struct batch batch_t;

/* One item's callback argument: its batch and position. */
typedef struct batch_item {
    batch_t *b;
    size_t index;
} batch_item_t;

/* A batch in flight. Owned by itself: freed when the reply is sent. */
struct batch {
    rl_http_req_t *req;
    rl_worker_t *w;
    char id[RL_HTTP_ID_MAX]; /* req's id, for every item's access log line */
    int64_t start_us;        /* monotonic: when req was complete */
    json_t *results;         /* one entry per item, null until decided */
    json_t *errors;          /* {"index", "code", "message"} of invalid items */
    size_t pending;          /* items whose verdict has not come back */
    int issuing;             /* 1 while items are still being handed out */
    batch_item_t items[];    /* one per item */
};

/* Records item index as invalid: a null result and an errors entry
 * {"index", "code", "message"} of kind (message NULL: its default). */
static void batch_invalid(batch_t *b, size_t index, rl_error_t kind,
                          const char *message)
{
    json_t *e = json_object();

    json_object_set_new(e, "index", json_integer((json_int_t)index));
    json_object_set_new(e, "code", json_string(rl_error_code(kind)));
    json_object_set_new(
        e, "message",
        json_string(message != NULL ? message : rl_error_message(kind)));
    json_array_append_new(b->errors, e);
}

/* Sends the reply once every item is decided and frees b: 200 with
 * results and errors, or 400 when no item was valid. */
static void batch_finish(batch_t *b)
{
    json_t *obj;
    size_t nitems = json_array_size(b->results);

    if (json_array_size(b->errors) == nitems) {
        obj = rl_api_error_body(b->req->id, RL_ERR_BATCH_INVALID, NULL);
        json_object_set_new(obj, "errors", b->errors);
        json_decref(b->results);
        rl_api_reply_json(b->req, rl_error_status(RL_ERR_BATCH_INVALID), obj,
                          NULL, NULL, 0);
    } else {
        obj = json_object();
        json_object_set_new(obj, "trace_id", json_string(b->req->id));
        json_object_set_new(obj, "results", b->results);
        json_object_set_new(obj, "errors", b->errors);
        rl_api_reply_json(b->req, 200, obj, NULL, NULL, 0);
    }
    free(b);
}

/* One item's verdict: copied into the results (v and message live only
 * during this call) and access-logged; the last one sends the reply. */
static void batch_cb(void *arg, rl_decide_status_t status,
                     const rl_verdict_t *v, const char *message)
{
    batch_item_t *it = arg;
    batch_t *b = it->b;
    rl_outcome_t o;

    rl_outcome_of(status, v, &o);
    switch (o.reply) {
    case RL_OUTCOME_REPLY_ERROR:
        batch_invalid(b, it->index, o.error, message);
        break;
    case RL_OUTCOME_REPLY_UNAVAILABLE:
        json_array_set_new(b->results, it->index,
                           rl_api_unavailable_item(&o, v, b->id));
        break;
    case RL_OUTCOME_REPLY_VERDICT:
        json_array_set_new(b->results, it->index, rl_reply_decision(v));
        break;
    }
    rl_api_access_log(b->w, b->id, &o, v, rl_mono_us() - b->start_us);
    if (--b->pending == 0 && !b->issuing) {
        batch_finish(b);
    }
}

/* Checks the envelope: {"requests": [ 1 to RL_BATCH_MAX items ]}.
 * Returns the array (borrowed from root), or NULL after answering. */
static json_t *batch_envelope(rl_http_req_t *req, json_t *root)
{
    json_t *items;
    char msg[96];

    if (!json_is_object(root)) {
        rl_api_error(req, RL_ERR_INVALID_FIELD,
                     "request body must be a JSON object");
        return NULL;
    }
    items = json_object_get(root, "requests");
    if (items == NULL || json_is_null(items)) {
        rl_api_error(req, RL_ERR_MISSING_FIELD, "requests is required");
        return NULL;
    }
    if (!json_is_array(items)) {
        rl_api_error(req, RL_ERR_INVALID_FIELD, "requests must be an array");
        return NULL;
    }
    if (json_array_size(items) == 0) {
        rl_api_error(req, RL_ERR_INVALID_FIELD, "requests must not be empty");
        return NULL;
    }
    if (json_array_size(items) > RL_BATCH_MAX) {
        snprintf(msg, sizeof(msg), "too many requests: %zu (max %d)",
                 json_array_size(items), RL_BATCH_MAX);
        rl_api_error(req, RL_ERR_BATCH_TOO_LARGE, msg);
        return NULL;
    }
    return items;
}

/* Parses the batch, hands every valid item to the decision core in
 * order, and lets the last verdict answer. */
void rl_api_batch(rl_worker_t *w, rl_http_req_t *req)
{
    json_t *root, *items, *item;
    batch_t *b = NULL;
    rl_request_t dr;
    rl_request_error_t rerr;
    rl_outcome_t o;
    size_t i, n;

    root = rl_api_json_body(req);
    if (root == NULL) {
        return;
    }
    items = batch_envelope(req, root);
    if (items == NULL) {
        goto done;
    }
    n = json_array_size(items);
    rl_http_req_decisions(req, (int64_t)n); /* back-pressure counts items */
    b = calloc(1, sizeof(*b) + n * sizeof(b->items[0]));
    if (b == NULL) {
        rl_api_error(req, RL_ERR_INTERNAL, NULL);
        goto done;
    }
    b->req = req;
    b->w = w;
    memcpy(b->id, req->id, sizeof(b->id));
    b->start_us = req->start_us;
    b->results = json_array();
    b->errors = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(b->results, json_null());
    }
    b->issuing = 1;
    /* Counted up front: a verdict may come back before rl_decide returns. */
    b->pending = n;
    json_array_foreach(items, i, item)
    {
        b->items[i].b = b;
        b->items[i].index = i;
        if (rl_request_from_json(item, &dr, &rerr) != 0) {
            rl_outcome_make(RL_OUTCOME_BAD_REQUEST, NULL, rerr.kind, &o);
            rl_api_account(w, b->id, &o, NULL, b->start_us);
            batch_invalid(b, i, rerr.kind, rerr.message);
            b->pending--;
            continue;
        }
        rl_decide(w->conf, w->store, &dr, batch_cb, &b->items[i]);
    }
    b->issuing = 0;
    if (b->pending == 0) {
        batch_finish(b);
    }

done:
    /* The decision core copied what it needs: the JSON can go now. */
    json_decref(root);
}
