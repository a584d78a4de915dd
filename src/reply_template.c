/* Deny and unavailable body templating: the placeholders ({retry_after},
 * {retry_after_human}, {limit}, {policy}, {trace_id}) as one table, and
 * the deny body a verdict answers with (see reply.h). A deny body is
 * compiled once into its compact JSON text cut at the placeholders
 * (rl_reply_body_compile), so a denial, a deny-cache hit included,
 * streams it without jansson; the jansson path (rl_reply_deny_body)
 * stays for the gRPC answer, the decision tree, and bodies not compiled.
 * Pure; any thread (compiling: whoever builds the conf or override). */
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

/* See reply_int.h. */
const json_t *rl_reply_deny_source(const rl_verdict_t *v,
                                   const rl_body_tpl_t **tpl)
{
    if (v->penalty_def != NULL && v->penalty_def->deny_body != NULL) {
        *tpl = v->penalty_def->deny_tpl;
        return v->penalty_def->deny_body;
    }
    if (v->deny_body != NULL) {
        *tpl = v->deny_tpl;
        return v->deny_body;
    }
    *tpl = v->policy != NULL ? v->policy->deny_tpl : NULL;
    return v->policy != NULL ? v->policy->deny_body : NULL;
}

/* The deny body per reply.h. New reference; NULL only when memory runs
 * out. */
json_t *rl_reply_deny_body(const rl_verdict_t *v)
{
    const rl_body_tpl_t *tpl;
    const json_t *src = rl_reply_deny_source(v, &tpl);
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

/* ------------------------------------------------------------------ */
/* Compiled deny bodies                                                */
/* ------------------------------------------------------------------ */

/* A run of literal JSON text, then a placeholder (or none: the last).
 * off and len index text[0] (plain) and text[1] (JSON_ENSURE_ASCII). */
typedef struct body_seg {
    size_t off[2];
    size_t len[2];
    int ph; /* placeholder_table index; -1 after the last run */
} body_seg_t;

struct rl_body_tpl {
    char *text[2];   /* owned */
    body_seg_t *seg; /* owned */
    size_t nseg;
    int container; /* an object or an array: json_dumps takes it as it is */
};

/* A body being compiled; failed once memory ran out. */
typedef struct tpl_build {
    rl_sbuf_t text[2];
    size_t start[2]; /* where the current run began */
    body_seg_t *seg;
    size_t nseg;
    size_t cap;
    int failed;
} tpl_build_t;

#define PH_N (sizeof(placeholder_table) / sizeof(placeholder_table[0]))

/* Appends n bytes of s to both texts of b. */
static void build_lit(tpl_build_t *b, const char *s, size_t n)
{
    sbuf_add(&b->text[0], s, n);
    sbuf_add(&b->text[1], s, n);
}

/* Appends j as jansson dumps it, plain and ENSURE_ASCII; with strip, less
 * its first and last byte (a string's quotes). Takes j's reference. */
static void build_dump(tpl_build_t *b, json_t *j, int strip)
{
    size_t flags = JSON_ENCODE_ANY | JSON_COMPACT | JSON_PRESERVE_ORDER;
    int i;

    for (i = 0; i < 2; i++) {
        char *s = j != NULL ? json_dumps(j, flags | (i ? JSON_ENSURE_ASCII : 0))
                            : NULL;

        if (s == NULL) {
            b->failed = 1;
        } else {
            sbuf_add(&b->text[i], s + strip,
                     strlen(s) - (strip ? 2 * (size_t)strip : 0));
        }
        free(s);
    }
    json_decref(j);
}

/* Ends the current run with placeholder ph (-1: the last run). */
static void build_slot(tpl_build_t *b, int ph)
{
    body_seg_t *sg;
    int i;

    if (b->nseg == b->cap) {
        size_t cap = b->cap * 2 + 4;
        body_seg_t *p = realloc(b->seg, cap * sizeof(*p));

        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->seg = p;
        b->cap = cap;
    }
    sg = &b->seg[b->nseg++];
    for (i = 0; i < 2; i++) {
        sg->off[i] = b->start[i];
        sg->len[i] = b->text[i].len - b->start[i];
        b->start[i] = b->text[i].len;
    }
    sg->ph = ph;
}

/* The placeholder_table index of the placeholder starting at p (n bytes
 * left), or -1. */
static int build_ph_at(const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < PH_N; i++) {
        size_t k = strlen(placeholder_table[i].name);

        if (k <= n && memcmp(p, placeholder_table[i].name, k) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Appends string s (len bytes) with its placeholders as slots. As
 * template_str reads it: only a string with a '{' before its first NUL
 * is templated, and it then ends at that NUL. */
static void build_string(tpl_build_t *b, const char *s, size_t len)
{
    const char *run = s, *p, *end;

    build_lit(b, "\"", 1);
    if (strchr(s, '{') == NULL) {
        build_dump(b, json_stringn(s, len), 1);
        build_lit(b, "\"", 1);
        return;
    }
    end = s + strlen(s);
    for (p = run; p < end; p++) {
        int ph = *p == '{' ? build_ph_at(p, (size_t)(end - p)) : -1;

        if (ph < 0) {
            continue;
        }
        build_dump(b, json_stringn(run, (size_t)(p - run)), 1);
        build_slot(b, ph);
        p += strlen(placeholder_table[ph].name) - 1;
        run = p + 1;
    }
    build_dump(b, json_stringn(run, (size_t)(end - run)), 1);
    build_lit(b, "\"", 1);
}

/* Appends j, compact, keys in order: keys as they are (template_ctx
 * templates values only), strings through build_string. */
static void build_value(tpl_build_t *b, const json_t *j)
{
    void *it;
    size_t i;

    switch (json_typeof(j)) {
    case JSON_OBJECT:
        build_lit(b, "{", 1);
        for (it = json_object_iter((json_t *)j); it != NULL;
             it = json_object_iter_next((json_t *)j, it)) {
            if (it != json_object_iter((json_t *)j)) {
                build_lit(b, ",", 1);
            }
            build_dump(b,
                       json_stringn(json_object_iter_key(it),
                                    json_object_iter_key_len(it)),
                       0);
            build_lit(b, ":", 1);
            build_value(b, json_object_iter_value(it));
        }
        build_lit(b, "}", 1);
        return;
    case JSON_ARRAY:
        build_lit(b, "[", 1);
        for (i = 0; i < json_array_size(j); i++) {
            if (i > 0) {
                build_lit(b, ",", 1);
            }
            build_value(b, json_array_get(j, i));
        }
        build_lit(b, "]", 1);
        return;
    case JSON_STRING:
        build_string(b, json_string_value(j), json_string_length(j));
        return;
    default: build_dump(b, json_incref((json_t *)j), 0); return;
    }
}

/* See reply.h. */
rl_body_tpl_t *rl_reply_body_compile(const json_t *body)
{
    tpl_build_t b;
    rl_body_tpl_t *t = calloc(1, sizeof(*t));
    int i;

    memset(&b, 0, sizeof(b));
    for (i = 0; i < 2; i++) {
        b.text[i].cap = 256;
        b.text[i].data = malloc(b.text[i].cap);
        if (b.text[i].data != NULL) {
            b.text[i].data[0] = '\0';
        }
    }
    build_value(&b, body);
    build_slot(&b, -1);
    if (t == NULL || b.failed || b.text[0].data == NULL ||
        b.text[1].data == NULL) {
        goto err;
    }
    t->text[0] = b.text[0].data;
    t->text[1] = b.text[1].data;
    t->seg = b.seg;
    t->nseg = b.nseg;
    t->container = json_is_object(body) || json_is_array(body);
    return t;

err:
    free(b.text[0].data);
    free(b.text[1].data);
    free(b.seg);
    free(t);
    return NULL;
}

/* See reply.h. */
void rl_reply_body_free(rl_body_tpl_t *t)
{
    if (t != NULL) {
        free(t->text[0]);
        free(t->text[1]);
        free(t->seg);
        free(t);
    }
}

/* Streams t into w with c's values, escaped; a placeholder c cannot
 * fill is written as it is, as template_str leaves it. */
static void tpl_write(rl_jw_t *w, const rl_body_tpl_t *t, const ph_ctx_t *c,
                      int ascii)
{
    char val[256]; /* as template_one's */
    size_t i;

    for (i = 0; i < t->nseg; i++) {
        const body_seg_t *sg = &t->seg[i];
        const char *name;

        rl_jw_raw(w, t->text[ascii] + sg->off[ascii], sg->len[ascii]);
        if (sg->ph < 0) {
            continue;
        }
        name = placeholder_table[sg->ph].name;
        if (placeholder_table[sg->ph].fill(c, val, sizeof(val)) != 0) {
            rl_jw_raw(w, name, strlen(name));
        } else {
            rl_jw_esc(w, val, strlen(val), ascii);
        }
    }
}

/* The old path, for a body not compiled: template a copy, dump it. */
static int deny_jw_jansson(rl_jw_t *w, const rl_verdict_t *v, size_t flags)
{
    json_t *body = rl_reply_deny_body(v);
    int fits = w->len <= w->cap;
    size_t n;

    if (body == NULL) {
        return -1;
    }
    n = json_dumpb(body, fits ? w->buf + w->len : NULL,
                   fits ? w->cap - w->len : 0,
                   flags | JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (n == 0) {
        return -1;
    }
    w->len += n;
    return 0;
}

/* See reply_int.h. */
int rl_reply_deny_jw(rl_jw_t *w, const rl_verdict_t *v, size_t flags)
{
    const rl_body_tpl_t *tpl;
    const json_t *src = rl_reply_deny_source(v, &tpl);
    int ascii = (flags & JSON_ENSURE_ASCII) != 0;
    ph_ctx_t c = {v, NULL};
    const char *s;

    if (src == NULL) {
        s = rl_error_message(RL_ERR_RATE_LIMITED);
        rl_jw_raw(w, "{\"error\":\"", 10);
        rl_jw_esc(w, s, strlen(s), ascii);
        s = rl_error_code(RL_ERR_RATE_LIMITED);
        rl_jw_raw(w, "\",\"code\":\"", 10);
        rl_jw_esc(w, s, strlen(s), ascii);
        rl_jw_raw(w, "\"}", 2);
        return 0;
    }
    if (tpl == NULL) {
        return deny_jw_jansson(w, v, flags);
    }
    if (!tpl->container && !(flags & JSON_ENCODE_ANY)) {
        return -1;
    }
    tpl_write(w, tpl, &c, ascii);
    return 0;
}

/* See reply.h. */
size_t rl_reply_deny_write(const rl_verdict_t *v, size_t flags, char *buf,
                           size_t cap)
{
    rl_jw_t w = {buf, 0, cap};

    if (rl_reply_deny_jw(&w, v, flags) != 0) {
        return 0;
    }
    if (w.len < cap) {
        buf[w.len] = '\0';
    }
    return w.len;
}

/* See reply.h. */
char *rl_reply_deny_text(const rl_verdict_t *v, size_t flags, char *stack,
                         size_t cap, size_t *len)
{
    char *big;

    *len = rl_reply_deny_write(v, flags, stack, cap);
    if (*len == 0) {
        return NULL;
    }
    if (*len < cap) {
        return stack;
    }
    big = malloc(*len + 1);
    if (big == NULL) {
        return NULL;
    }
    *len = rl_reply_deny_write(v, flags, big, *len + 1);
    return big;
}
