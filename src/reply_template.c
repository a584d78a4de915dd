/* Deny and unavailable body templating: the placeholders ({retry_after},
 * {retry_after_human}, {limit}, {policy}, {trace_id}) as one table, and
 * the deny body a verdict answers with (see reply.h). Pure; any thread. */
#include "reply.h"
#include "reply_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "util.h"

/* A growing output string; NULL data after an allocation failure. */
typedef struct rl_sbuf {
    char *data;
    size_t len;
    size_t cap;
} rl_sbuf_t;

/* Appends n bytes of s to b; on allocation failure frees b's data and
 * leaves it NULL, after which every append is a no-op. */
static void sbuf_add(rl_sbuf_t *b, const char *s, size_t n)
{
    if (b->data == NULL) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap * 2;
        char *p;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        p = realloc(b->data, cap);
        if (p == NULL) {
            free(b->data);
            b->data = NULL;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* What a placeholder is filled from: the verdict, and the request id
 * (NULL where the body has none: a deny body inside a decision). */
typedef struct ph_ctx {
    const rl_verdict_t *v;
    const char *trace_id;
} ph_ctx_t;

/* Writes one placeholder's value into buf (len bytes). Returns 0, or -1
 * when c has no value for it (the placeholder is left as it is). */
typedef int rl_placeholder_fn(const ph_ctx_t *c, char *buf, size_t len);

/* {retry_after}: seconds, rounded up, at least 1 (as Retry-After); none
 * for a denial without a retry time (reply_int.h). */
static int ph_retry_after(const ph_ctx_t *c, char *buf, size_t len)
{
    if (rl_reply_no_retry(c->v)) {
        return -1;
    }
    snprintf(buf, len, "%lld", (long long)rl_reply_retry_after_s(c->v));
    return 0;
}

/* {retry_after_human}: "2 minutes", "45 seconds", never shorter than
 * the wait (util.h); none where {retry_after} has none. */
static int ph_retry_after_human(const ph_ctx_t *c, char *buf, size_t len)
{
    if (rl_reply_no_retry(c->v)) {
        return -1;
    }
    rl_human_duration_ms(c->v->retry_after_ms, buf, len);
    return 0;
}

/* {limit}: the limit of the deciding limit. */
static int ph_limit(const ph_ctx_t *c, char *buf, size_t len)
{
    rl_reply_fmt_limit(c->v, buf, len);
    return 0;
}

/* {policy}: the policy name, empty without a policy. */
static int ph_policy(const ph_ctx_t *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s", c->v->policy != NULL ? c->v->policy->name : "");
    return 0;
}

/* {trace_id}: the request id (X-Request-Id), where the reply has one. */
static int ph_trace_id(const ph_ctx_t *c, char *buf, size_t len)
{
    if (c->trace_id == NULL) {
        return -1;
    }
    snprintf(buf, len, "%s", c->trace_id);
    return 0;
}

/* The placeholders a deny or unavailable body may hold. */
static const struct {
    const char *name; /* with braces */
    rl_placeholder_fn *fill;
} placeholder_table[] = {
    {"{retry_after}", ph_retry_after},
    {"{retry_after_human}", ph_retry_after_human},
    {"{limit}", ph_limit},
    {"{policy}", ph_policy},
    {"{trace_id}", ph_trace_id},
};

/* Appends the value of the placeholder at p to b; returns its length in
 * p, or 0 when p starts no placeholder that c can fill. */
static size_t template_one(rl_sbuf_t *b, const char *p, const ph_ctx_t *c)
{
    char val[256]; /* > RL_HTTP_ID_MAX, the longest value */
    size_t i, n;

    for (i = 0; i < sizeof(placeholder_table) / sizeof(placeholder_table[0]);
         i++) {
        n = strlen(placeholder_table[i].name);
        if (strncmp(p, placeholder_table[i].name, n) == 0) {
            if (placeholder_table[i].fill(c, val, sizeof(val)) != 0) {
                return 0;
            }
            sbuf_add(b, val, strlen(val));
            return n;
        }
    }
    return 0;
}

/* Expands the placeholders of s from c. Caller frees the result; NULL
 * only when memory runs out. */
static char *template_str(const char *s, const ph_ctx_t *c)
{
    rl_sbuf_t b = {NULL, 0, 64};
    const char *p = s;

    b.data = malloc(b.cap);
    if (b.data == NULL) {
        return NULL;
    }
    b.data[0] = '\0';
    while (*p != '\0') {
        const char *brace = strchr(p, '{');
        size_t n;

        if (brace == NULL) {
            sbuf_add(&b, p, strlen(p));
            break;
        }
        sbuf_add(&b, p, (size_t)(brace - p));
        p = brace;
        n = template_one(&b, p, c);
        if (n == 0) {
            sbuf_add(&b, "{", 1);
            n = 1;
        }
        p += n;
    }
    return b.data;
}

/* Expands the placeholders of s (see reply.h). Caller frees the result;
 * NULL only when memory runs out. */
char *rl_reply_template(const char *s, const rl_verdict_t *v)
{
    ph_ctx_t c = {v, NULL};

    return template_str(s, &c);
}

/* Templates every string inside j (a copy the caller owns) in place,
 * through objects and arrays. Returns RL_OK or RL_ERR (out of memory). */
static int template_ctx(json_t *j, const ph_ctx_t *c)
{
    const char *key;
    json_t *item;
    size_t i;
    char *s;
    int rc;

    switch (json_typeof(j)) {
    case JSON_STRING:
        if (strchr(json_string_value(j), '{') == NULL) {
            return RL_OK;
        }
        s = template_str(json_string_value(j), c);
        if (s == NULL) {
            return RL_ERR;
        }
        rc = json_string_set(j, s) == 0 ? RL_OK : RL_ERR;
        free(s);
        return rc;
    case JSON_OBJECT:
        json_object_foreach(j, key, item)
        {
            if (template_ctx(item, c) != RL_OK) {
                return RL_ERR;
            }
        }
        return RL_OK;
    case JSON_ARRAY:
        json_array_foreach(j, i, item)
        {
            if (template_ctx(item, c) != RL_OK) {
                return RL_ERR;
            }
        }
        return RL_OK;
    default: return RL_OK;
    }
}

/* template_ctx for a deny body: no request id. */
static int template_json(json_t *j, const rl_verdict_t *v)
{
    ph_ctx_t c = {v, NULL};

    return template_ctx(j, &c);
}

json_t *rl_reply_template_json(const json_t *body, const rl_verdict_t *v,
                               const char *trace_id)
{
    ph_ctx_t c = {v, trace_id};
    json_t *copy = json_deep_copy(body);

    if (copy != NULL && template_ctx(copy, &c) != RL_OK) {
        json_decref(copy);
        copy = NULL;
    }
    return copy;
}

/* The deny body a verdict's denial uses: a blocking penalty's, else a
 * deny override's, else the policy's; NULL for the default body.
 * Borrowed. */
const json_t *rl_reply_deny_source(const rl_verdict_t *v)
{
    if (v->penalty_def != NULL && v->penalty_def->deny_body != NULL) {
        return v->penalty_def->deny_body;
    }
    if (v->deny_body != NULL) {
        return v->deny_body;
    }
    return v->policy != NULL ? v->policy->deny_body : NULL;
}

/* The deny body per reply.h. New reference; NULL only when memory runs
 * out. */
json_t *rl_reply_deny_body(const rl_verdict_t *v)
{
    const json_t *src = rl_reply_deny_source(v);
    json_t *body;

    if (src != NULL) {
        body = json_deep_copy(src);
    } else {
        body = json_pack("{s:s, s:s}", "error",
                         rl_error_message(RL_ERR_RATE_LIMITED), "code",
                         rl_error_code(RL_ERR_RATE_LIMITED));
    }
    if (body == NULL) {
        return NULL;
    }
    if (template_json(body, v) != RL_OK) {
        json_decref(body);
        return NULL;
    }
    return body;
}
