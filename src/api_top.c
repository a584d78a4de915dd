/* GET /v1/admin/top?policy=NAME&n=20&window=5m: the keys of a policy
 * decided most often denied over the window, from every worker's top
 * keys summary (topkeys.h), merged here on the worker that answers.
 *
 * Behind the admin key (api_admin.c). Bad input is a 422 INVALID_FIELD
 * naming the parameter. "key" names each key field as the policy does
 * ({"tenant": "acme"}), with the value as it is in the store key
 * decoded (a value hashed there stays "#<sha256>"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "api.h"
#include "conf.h"
#include "server.h"
#include "topkeys.h"
#include "util.h"
#include "worker.h"

#define TOP_N_MAX 100
#define TOP_N_DEFAULT 20
#define TOP_WINDOW_DEFAULT_MIN 5

/* The value of query parameter name in req's target, NUL terminated
 * into buf (truncated to len - 1); returns 0 when absent. */
static int top_query(const rl_http_req_t *req, const char *name, char *buf,
                     size_t len)
{
    const char *q = req->target + req->path_len;
    size_t nlen = strlen(name);

    if (*q != '?') {
        return 0;
    }
    for (q++; *q != '\0'; q += strcspn(q, "&"), q += *q == '&') {
        if (strncmp(q, name, nlen) == 0 && q[nlen] == '=') {
            q += nlen + 1;
            snprintf(buf, len, "%.*s", (int)strcspn(q, "&"), q);
            return 1;
        }
    }
    return 0;
}

/* A key value as the store key encodes it (%XX), decoded. New
 * reference. */
static json_t *top_value(const char *v, size_t len)
{
    char out[RL_TOPKEYS_KEY_MAX + 1];
    size_t i, o = 0;
    json_t *obj;

    for (i = 0; i < len; i++) {
        if (v[i] == '%' && i + 2 < len && rl_hex_value(v[i + 1]) >= 0 &&
            rl_hex_value(v[i + 2]) >= 0) {
            out[o++] =
                (char)(rl_hex_value(v[i + 1]) * 16 + rl_hex_value(v[i + 2]));
            i += 2;
        } else {
            out[o++] = v[i];
        }
    }
    /* A value that is not UTF-8 is shown encoded. */
    obj = json_stringn(out, o);
    return obj != NULL ? obj : json_stringn(v, len);
}

/* The "key" object of row under policy p: field spec -> value. New
 * reference. */
static json_t *top_key(const rl_policy_t *p, const char *key)
{
    json_t *obj = json_object();
    const char *v = key;
    int i;

    for (i = 0; i < p->nkey && i < RL_MAX_HASH_TAG; i++) {
        size_t n = strcspn(v, "|");

        json_object_set_new(obj, p->key[i].spec, top_value(v, n));
        v += n;
        if (*v == '|') {
            v++;
        }
    }
    return obj;
}

/* Reads the window parameter: whole minutes, 1m to 60m. Returns 0 and
 * the minutes in *min, or -1. */
static int top_window(const rl_http_req_t *req, int *min)
{
    char buf[32];
    int64_t ms;

    *min = TOP_WINDOW_DEFAULT_MIN;
    if (!top_query(req, "window", buf, sizeof(buf))) {
        return 0;
    }
    if (rl_duration_parse(buf, &ms) != 0 || ms < 60000 ||
        ms > 60000 * RL_TOPKEYS_MINUTES || ms % 60000 != 0) {
        return -1;
    }
    *min = (int)(ms / 60000);
    return 0;
}

/* Reads the n parameter: 1 to TOP_N_MAX. Returns 0, or -1. */
static int top_n(const rl_http_req_t *req, int *n)
{
    char buf[16];
    char *end;
    long v;

    *n = TOP_N_DEFAULT;
    if (!top_query(req, "n", buf, sizeof(buf))) {
        return 0;
    }
    v = strtol(buf, &end, 10);
    if (buf[0] < '0' || buf[0] > '9' || *end != '\0' || v < 1 ||
        v > TOP_N_MAX) {
        return -1;
    }
    *n = (int)v;
    return 0;
}

/* The reply body for policy p: the n top rows of every worker's
 * summary, the window actually summed (rl_topkeys_span) and whether every
 * worker could track the policy over it. New reference, NULL when memory
 * runs out. */
static json_t *top_body(rl_worker_t *w, const rl_policy_t *p, int window_min,
                        int n)
{
    int max = w->app->nworkers * RL_TOPKEYS_ENTRIES;
    rl_topkeys_row_t *rows = malloc(sizeof(*rows) * (size_t)max);
    int64_t now = rl_now_ms();
    json_t *keys, *obj;
    int i, nrows = 0, tracked = 1;

    if (rows == NULL) {
        return NULL;
    }
    for (i = 0; i < w->app->nworkers; i++) {
        const rl_topkeys_t *t = w->app->workers[i].topkeys;

        nrows = rl_topkeys_read(t, p->stats_slot, p->key_layout, window_min,
                                now, rows, nrows, max);
        tracked &= rl_topkeys_tracked(t, p->stats_slot, window_min, now);
    }
    rl_topkeys_sort(rows, nrows);
    keys = json_array();
    for (i = 0; i < nrows && i < n; i++) {
        json_array_append_new(
            keys, json_pack("{s:o, s:I, s:I, s:I, s:b}", "key",
                            top_key(p, rows[i].key), "denied",
                            (json_int_t)rows[i].denied, "allowed",
                            (json_int_t)rows[i].allowed, "last_denied_at",
                            (json_int_t)rows[i].last_denied_at, "blocked",
                            rows[i].blocked));
    }
    free(rows);
    obj = json_pack("{s:s, s:i, s:o, s:b, s:b}", "policy", p->name, "window_s",
                    rl_topkeys_span(window_min, now) * 60, "keys", keys,
                    "enabled", w->conf->ops.top_keys, "tracked", tracked);
    return obj;
}

void rl_api_top(rl_worker_t *w, rl_http_req_t *req)
{
    char name[128];
    const rl_policy_t *p;
    int window_min, n;
    json_t *obj;

    if (!top_query(req, "policy", name, sizeof(name)) || name[0] == '\0') {
        rl_api_error(req, RL_ERR_MISSING_FIELD, "policy: is required");
        return;
    }
    p = rl_conf_policy(w->conf, name);
    if (p == NULL) {
        rl_api_error(req, RL_ERR_INVALID_FIELD, "policy: no such policy");
        return;
    }
    if (top_n(req, &n) != 0) {
        rl_api_error(req, RL_ERR_INVALID_FIELD,
                     "n: must be an integer from 1 to 100");
        return;
    }
    if (top_window(req, &window_min) != 0) {
        rl_api_error(req, RL_ERR_INVALID_FIELD,
                     "window: must be whole minutes from 1m to 60m");
        return;
    }
    obj = top_body(w, p, window_min, n);
    if (obj == NULL) {
        rl_api_error(req, RL_ERR_OUT_OF_MEMORY, NULL);
        return;
    }
    rl_api_reply_json(req, 200, obj, NULL, NULL, 0);
}
