/* Verdict -> rate-limit headers, deny body and the /v1/decide JSON.
 * Pure: no I/O and no clock; every time derives from v->now_ms, the
 * store's clock at the decision. Any thread. */
#include "reply.h"
#include "reply_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ------------------------------------------------------------------ */
/* Time helpers                                                        */
/* ------------------------------------------------------------------ */

/* Milliseconds -> whole seconds, rounded up; negative values count as 0. */
static int64_t ms_to_s_ceil(int64_t ms)
{
    if (ms <= 0) {
        return 0;
    }
    return (ms + 999) / 1000;
}

/* The Retry-After value of v: seconds rounded up, at least 1. */
int64_t rl_reply_retry_after_s(const rl_verdict_t *v)
{
    int64_t s = ms_to_s_ceil(v->retry_after_ms);

    return s < 1 ? 1 : s;
}

/* See reply_int.h. */
int rl_reply_no_retry(const rl_verdict_t *v)
{
    return v->policy == NULL || (v->override_deny && v->retry_after_ms <= 0);
}

/* Writes v in decimal into buf (len >= 21 bytes), NUL-terminated;
 * returns its length. printf costs more than the whole decision here. */
static size_t fmt_i64(char *buf, int64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp), n;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        tmp[--i] = '-';
    }
    n = sizeof(tmp) - i;
    memcpy(buf, tmp + i, n);
    buf[n] = '\0';
    return n;
}

/* Remaining requests as shown to clients: never below 0. */
static int64_t shown_remaining(const rl_verdict_t *v)
{
    return v->remaining < 0 ? 0 : v->remaining;
}

/* ------------------------------------------------------------------ */
/* Headers                                                             */
/* ------------------------------------------------------------------ */

/* Writes the policy name as a Structured Field string ("name", with '"'
 * and '\' escaped and bytes outside printable ASCII as '?') into buf of
 * len bytes; a name too long for buf is cut, the quotes always close. */
static void sf_string(const char *name, char *buf, size_t len)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)name;

    if (len < 3) {
        if (len > 0) {
            buf[0] = '\0';
        }
        return;
    }
    buf[o++] = '"';
    for (; *p != '\0'; p++) {
        int esc = (*p == '"' || *p == '\\');
        size_t need = esc ? 2 : 1;

        if (o + need + 2 > len) {
            break;
        }
        if (esc) {
            buf[o++] = '\\';
            buf[o++] = (char)*p;
        } else if (*p < 0x20 || *p > 0x7e) {
            buf[o++] = '?';
        } else {
            buf[o++] = (char)*p;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* Formats one header value of v into buf (len bytes). */
typedef void rl_header_fmt_fn(const rl_verdict_t *v, char *buf, size_t len);

/* The limit's requests. */
void rl_reply_fmt_limit(const rl_verdict_t *v, char *buf, size_t len)
{
    (void)len;
    fmt_i64(buf, v->limit);
}

/* Requests left (>= 0). */
static void fmt_remaining(const rl_verdict_t *v, char *buf, size_t len)
{
    (void)len;
    fmt_i64(buf, shown_remaining(v));
}

/* Unix seconds at which the limit is fully available again. */
static void fmt_reset_at(const rl_verdict_t *v, char *buf, size_t len)
{
    (void)len;
    fmt_i64(buf, ms_to_s_ceil(v->now_ms + v->reset_after_ms));
}

/* Unix seconds at which a retry may pass: the retry time on a denial,
 * the reset time otherwise. */
static void fmt_retry_at(const rl_verdict_t *v, char *buf, size_t len)
{
    int64_t after = v->allowed ? v->reset_after_ms : v->retry_after_ms;

    (void)len;
    fmt_i64(buf, ms_to_s_ceil(v->now_ms + after));
}

/* The period part of a limit's suffix ("g1m" -> "1m", "tf10s" -> "10s"). */
static const char *ietf_period(const rl_limit_t *l)
{
    const char *s = l->suffix;

    if (*s == 't') {
        s++;
    }
    return *s != '\0' ? s + 1 : s;
}

/* Writes the item name of limit k of applied policy i into buf (len
 * bytes) as a structured-field string: "policy-PERIOD", or
 * "policy-SUFFIX" when an earlier limit of that policy has the same
 * period, so every item's name is unique. */
static void ietf_item_name(const rl_verdict_part_t *part, int k, char *buf,
                           size_t len)
{
    char raw[112];
    int j;
    int dup = 0;

    for (j = 0; j < k; j++) {
        if (strcmp(ietf_period(&part->limits[j]),
                   ietf_period(&part->limits[k])) == 0) {
            dup = 1;
        }
    }
    snprintf(raw, sizeof(raw), "%.64s-%s", part->policy->name,
             dup ? part->limits[k].suffix : ietf_period(&part->limits[k]));
    sf_string(raw, buf, len);
}

/* Appends s to buf (len bytes) at *o when it fits whole (with the ", "
 * before it when *o > 0); returns 0, or -1 when it did not fit. */
static int ietf_append(char *buf, size_t len, size_t *o, const char *s)
{
    size_t n = strlen(s);
    size_t sep = *o > 0 ? 2 : 0;

    if (*o + sep + n + 1 > len) {
        return -1;
    }
    memcpy(buf + *o, ", ", sep);
    memcpy(buf + *o + sep, s, n + 1);
    *o += sep + n;
    return 0;
}

/* The applied policies of v (v->policy alone for a verdict without
 * them). */
static int ietf_parts(const rl_verdict_t *v, const rl_verdict_part_t **parts,
                      rl_verdict_part_t *one)
{
    if (v->npolicies > 0) {
        *parts = v->policies;
        return v->npolicies;
    }
    one->policy = v->policy;
    one->limits = v->limit_def;
    one->nlimits = v->limit_def != NULL ? 1 : 0;
    one->results = NULL;
    *parts = one;
    return 1;
}

/* RateLimit-Policy: every limit of every applied policy, each an item
 * "policy-PERIOD";q=LIMIT;w=WINDOW_S (an RFC 8941 list). Items that do
 * not fit the header are left out whole. */
static void fmt_ietf_policy(const rl_verdict_t *v, char *buf, size_t len)
{
    const rl_verdict_part_t *parts;
    rl_verdict_part_t one;
    char name[128], item[192];
    size_t o = 0;
    int n = ietf_parts(v, &parts, &one);
    int i, k;

    buf[0] = '\0';
    for (i = 0; i < n; i++) {
        for (k = 0; k < parts[i].nlimits; k++) {
            ietf_item_name(&parts[i], k, name, sizeof(name));
            snprintf(item, sizeof(item), "%s;q=%lld;w=%lld", name,
                     (long long)parts[i].limits[k].requests,
                     (long long)ms_to_s_ceil(parts[i].limits[k].period_ms));
            if (ietf_append(buf, len, &o, item) != 0) {
                return;
            }
        }
    }
}

/* RateLimit: "policy-PERIOD";r=N;t=S of the limit the verdict reports
 * (v->limit_def: the body's limit, remaining and reset_after_ms, and
 * the X-RateLimit headers'), so the styles never disagree on a tie. */
static void fmt_ietf_state(const rl_verdict_t *v, char *buf, size_t len)
{
    const rl_verdict_part_t *parts, *bp = NULL;
    rl_verdict_part_t one;
    char name[128];
    int n = ietf_parts(v, &parts, &one);
    int i, k, bk = 0;

    for (i = 0; i < n && bp == NULL; i++) {
        for (k = 0; k < parts[i].nlimits; k++) {
            if (&parts[i].limits[k] == v->limit_def) {
                bp = &parts[i];
                bk = k;
                break;
            }
        }
    }
    if (bp == NULL) {
        one.policy = v->policy;
        one.limits = v->limit_def;
        bp = &one;
        bk = 0;
    }
    if (bp->limits == NULL) {
        sf_string(v->policy->name, name, sizeof(name));
    } else {
        ietf_item_name(bp, bk, name, sizeof(name));
    }
    snprintf(buf, len, "%s;r=%lld;t=%lld", name, (long long)shown_remaining(v),
             (long long)ms_to_s_ceil(v->reset_after_ms));
}

/* The headers of each style, in the order they are emitted. */
static const struct {
    rl_header_style_t style;
    const char *name;
    rl_header_fmt_fn *fmt;
} header_table[] = {
    {RL_HEADERS_X_RATELIMIT, "X-RateLimit-Limit", rl_reply_fmt_limit},
    {RL_HEADERS_X_RATELIMIT, "X-RateLimit-Remaining", fmt_remaining},
    {RL_HEADERS_X_RATELIMIT, "X-RateLimit-Reset", fmt_reset_at},
    {RL_HEADERS_X_RATELIMIT_RETRY_AFTER, "X-RateLimit-Limit",
     rl_reply_fmt_limit},
    {RL_HEADERS_X_RATELIMIT_RETRY_AFTER, "X-Ratelimit-Remaining",
     fmt_remaining},
    {RL_HEADERS_X_RATELIMIT_RETRY_AFTER, "X-Ratelimit-Retry-After",
     fmt_retry_at},
    {RL_HEADERS_IETF, "RateLimit-Policy", fmt_ietf_policy},
    {RL_HEADERS_IETF, "RateLimit", fmt_ietf_state},
};

/* Fills out[] per reply.h. A degraded verdict carries no store numbers
 * (and no store clock), so it gets no style headers, only Retry-After
 * on a denial; nor does a deny override, whose Retry-After is the time
 * until it expires (none for one that never does). */
int rl_reply_headers(const rl_verdict_t *v, rl_reply_header_t *out)
{
    size_t i;
    int n = 0;

    if (v->policy == NULL) {
        return 0;
    }
    /* A degraded verdict, a deny override or a limit-less policy read no
     * counts to show. */
    for (i = 0; i < sizeof(header_table) / sizeof(header_table[0]) &&
                !v->degraded && !v->override_deny && !v->unlimited;
         i++) {
        if (header_table[i].style != v->policy->headers ||
            n >= RL_REPLY_MAX_HEADERS - 1) {
            continue;
        }
        memcpy(out[n].name, header_table[i].name,
               strlen(header_table[i].name) + 1);
        header_table[i].fmt(v, out[n].value, sizeof(out[n].value));
        n++;
    }
    if (!v->allowed && !rl_reply_no_retry(v)) {
        memcpy(out[n].name, "Retry-After", sizeof("Retry-After"));
        fmt_i64(out[n].value, rl_reply_retry_after_s(v));
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* The /v1/decide reply                                                */
/* ------------------------------------------------------------------ */

/* The headers of v as a JSON object name -> value. New reference. */
static json_t *headers_json(const rl_verdict_t *v)
{
    rl_reply_header_t hdr[RL_REPLY_MAX_HEADERS];
    json_t *obj = json_object();
    int n = rl_reply_headers(v, hdr);
    int i;

    if (obj == NULL) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (json_object_set_new(obj, hdr[i].name, json_string(hdr[i].value)) !=
            0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

/* The "shadow" member of a shadow policy's reply: would_deny, and the
 * status and body it would have denied with. New reference. */
static json_t *shadow_json(const rl_verdict_t *v)
{
    json_t *obj = json_object();

    if (obj == NULL) {
        goto err;
    }
    if (json_object_set_new(obj, "would_deny",
                            json_boolean(v->shadow_would_deny)) != 0) {
        goto err;
    }
    /* set_new takes the value's reference even when it fails. */
    if (v->shadow_would_deny &&
        (json_object_set_new(obj, "status",
                             json_integer(v->policy->deny_status)) != 0 ||
         json_object_set_new(obj, "body", rl_reply_deny_body(v)) != 0)) {
        goto err;
    }
    return obj;

err:
    json_decref(obj);
    return NULL;
}

/* The HTTP status a gateway should answer with, when the verdict left
 * it unset: 200 when allowed, the policy's deny status otherwise. */
static int reply_status(const rl_verdict_t *v)
{
    if (v->status != 0) {
        return v->status;
    }
    if (v->allowed) {
        return 200;
    }
    return v->policy != NULL && v->policy->deny_status != 0
               ? v->policy->deny_status
               : 429;
}

/* The number of applied policies of v: a verdict built without them
 * (v->policy alone) has that one. */
static int reply_npolicies(const rl_verdict_t *v)
{
    if (v->npolicies > 0) {
        return v->npolicies;
    }
    return v->policy != NULL ? 1 : 0;
}

/* Applied policy i of v (see reply_npolicies). */
static const rl_policy_t *reply_policy(const rl_verdict_t *v, int i)
{
    return v->npolicies > 0 ? v->policies[i].policy : v->policy;
}

/* The names of v's applied policies, in file order. New reference. */
static json_t *policies_json(const rl_verdict_t *v)
{
    json_t *arr = json_array();
    int i;

    for (i = 0; arr != NULL && i < reply_npolicies(v); i++) {
        if (json_array_append_new(arr, json_string(reply_policy(v, i)->name)) !=
            0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* The /v1/decide reply object per reply.h; keys in a fixed order (see
 * docs/api.md). New reference; NULL only when memory runs out. */
json_t *rl_reply_decision(const rl_verdict_t *v)
{
    int has = v->policy != NULL;
    const char *reason;
    json_t *obj;

    obj = json_pack(
        "{s:b, s:o, s:o, s:I, s:I, s:I, s:I, s:b, s:b, s:i, s:o}", "allowed",
        v->allowed ? 1 : 0, "policy",
        has ? json_string(v->policy->name) : json_null(), "policies",
        policies_json(v), "limit", (json_int_t)(has ? v->limit : 0),
        "remaining", (json_int_t)(has ? shown_remaining(v) : 0),
        "reset_after_ms", (json_int_t)(has ? v->reset_after_ms : 0),
        "retry_after_ms", (json_int_t)(has ? v->retry_after_ms : 0), "blocked",
        v->blocked ? 1 : 0, "degraded", v->degraded ? 1 : 0, "status",
        reply_status(v), "headers", headers_json(v));
    if (obj == NULL) {
        goto err;
    }
    if (v->penalty != NULL &&
        json_object_set_new(obj, "penalty", json_string(v->penalty)) != 0) {
        goto err;
    }
    if (!v->allowed &&
        json_object_set_new(obj, "body", rl_reply_deny_body(v)) != 0) {
        goto err;
    }
    reason = v->degraded_reason != NULL ? v->degraded_reason : "unknown";
    if (v->degraded &&
        json_object_set_new(obj, "degraded_reason", json_string(reason)) != 0) {
        goto err;
    }
    if (v->test && json_object_set_new(obj, "test", json_true()) != 0) {
        goto err;
    }
    if (v->override != NULL &&
        json_object_set_new(obj, "override", json_string(v->override)) != 0) {
        goto err;
    }
    if (has && v->policy->shadow &&
        json_object_set_new(obj, "shadow", shadow_json(v)) != 0) {
        goto err;
    }
    return obj;

err:
    json_decref(obj);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The /v1/decide reply, written directly                              */
/* ------------------------------------------------------------------ */

/* See reply_int.h. */
void rl_jw_raw(rl_jw_t *w, const char *s, size_t n)
{
    if (w->len <= w->cap && n <= w->cap - w->len) {
        memcpy(w->buf + w->len, s, n);
    }
    w->len += n;
}

#define JW_LIT(w, s) rl_jw_raw((w), (s), sizeof(s) - 1)

static void jw_int(rl_jw_t *w, int64_t v)
{
    char tmp[24];

    rl_jw_raw(w, tmp, fmt_i64(tmp, v));
}

static void jw_bool(rl_jw_t *w, int b)
{
    if (b) {
        JW_LIT(w, "true");
    } else {
        JW_LIT(w, "false");
    }
}

/* Writes the escape jansson's dump writes for code point c (a control
 * character, '"', '\\', or above 0x7F under JSON_ENSURE_ASCII): the short
 * forms, else \u and four capital hex digits, a surrogate pair above
 * U+FFFF. */
static void jw_escape(rl_jw_t *w, uint32_t c)
{
    static const char hex[] = "0123456789ABCDEF";
    char esc[12];
    size_t n = 0;
    int half;

    switch (c) {
    case '"': rl_jw_raw(w, "\\\"", 2); return;
    case '\\': rl_jw_raw(w, "\\\\", 2); return;
    case '\b': rl_jw_raw(w, "\\b", 2); return;
    case '\f': rl_jw_raw(w, "\\f", 2); return;
    case '\n': rl_jw_raw(w, "\\n", 2); return;
    case '\r': rl_jw_raw(w, "\\r", 2); return;
    case '\t': rl_jw_raw(w, "\\t", 2); return;
    default: break;
    }
    if (c >= 0x10000) {
        c -= 0x10000;
        jw_escape(w, 0xD800 | ((c & 0xFFC00) >> 10));
        c = 0xDC00 | (c & 0x3FF);
    }
    esc[n++] = '\\';
    esc[n++] = 'u';
    for (half = 12; half >= 0; half -= 4) {
        esc[n++] = hex[(c >> half) & 15];
    }
    rl_jw_raw(w, esc, n);
}

/* Decodes the UTF-8 sequence at p (valid, as every jansson string is) of
 * at most end - p bytes into *c; returns its length. */
static size_t utf8_decode(const unsigned char *p, const unsigned char *end,
                          uint32_t *c)
{
    size_t n = *p >= 0xF0 ? 4 : *p >= 0xE0 ? 3 : *p >= 0xC0 ? 2 : 1;
    size_t i;

    if (n > (size_t)(end - p)) {
        n = (size_t)(end - p);
    }
    *c = n == 1 ? *p : (uint32_t)(*p & (0x7F >> n));
    for (i = 1; i < n; i++) {
        *c = (*c << 6) | (p[i] & 0x3F);
    }
    return n;
}

/* See reply_int.h: escaped exactly as jansson dumps it (so both writers
 * agree byte for byte: tests/unit/check_reply.c). */
void rl_jw_esc(rl_jw_t *w, const char *s, size_t len, int ascii)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    const unsigned char *run = p;

    while (p < end) {
        uint32_t c = *p;
        size_t n = 1;

        if (c >= 0x20 && c != '"' && c != '\\' && (c < 0x80 || !ascii)) {
            p++;
            continue;
        }
        rl_jw_raw(w, (const char *)run, (size_t)(p - run));
        if (c >= 0x80) {
            n = utf8_decode(p, end, &c);
        }
        jw_escape(w, c);
        p += n;
        run = p;
    }
    rl_jw_raw(w, (const char *)run, (size_t)(p - run));
}

/* A JSON string of the NUL-terminated s, as jansson dumps it. */
static void jw_str(rl_jw_t *w, const char *s)
{
    JW_LIT(w, "\"");
    rl_jw_esc(w, s, strlen(s), 0);
    JW_LIT(w, "\"");
}

/* The deny body (reply_template.c); a refusal (memory ran out) makes w
 * too small, so the caller falls back to the jansson tree. */
static void jw_deny_body(rl_jw_t *w, const rl_verdict_t *v)
{
    if (rl_reply_deny_jw(w, v, JSON_ENCODE_ANY) != 0) {
        w->len = w->cap + 1;
    }
}

/* Writes the "policies" array and the numbers of the deciding limit. */
static void jw_decision_numbers(rl_jw_t *w, const rl_verdict_t *v)
{
    int has = v->policy != NULL;
    int i;

    JW_LIT(w, ",\"policies\":[");
    for (i = 0; i < reply_npolicies(v); i++) {
        if (i > 0) {
            JW_LIT(w, ",");
        }
        jw_str(w, reply_policy(v, i)->name);
    }
    JW_LIT(w, "]");
    JW_LIT(w, ",\"limit\":");
    jw_int(w, has ? v->limit : 0);
    JW_LIT(w, ",\"remaining\":");
    jw_int(w, has ? shown_remaining(v) : 0);
    JW_LIT(w, ",\"reset_after_ms\":");
    jw_int(w, has ? v->reset_after_ms : 0);
    JW_LIT(w, ",\"retry_after_ms\":");
    jw_int(w, has ? v->retry_after_ms : 0);
}

/* Writes the "headers" object of v. */
static void jw_decision_headers(rl_jw_t *w, const rl_verdict_t *v)
{
    rl_reply_header_t hdr[RL_REPLY_MAX_HEADERS];
    int n = rl_reply_headers(v, hdr);
    int i;

    JW_LIT(w, ",\"headers\":{");
    for (i = 0; i < n; i++) {
        if (i > 0) {
            JW_LIT(w, ",");
        }
        jw_str(w, hdr[i].name);
        JW_LIT(w, ":");
        jw_str(w, hdr[i].value);
    }
    JW_LIT(w, "}");
}

/* Writes the "shadow" object of a shadow policy's verdict. */
static void jw_decision_shadow(rl_jw_t *w, const rl_verdict_t *v)
{
    JW_LIT(w, ",\"shadow\":{\"would_deny\":");
    jw_bool(w, v->shadow_would_deny);
    if (v->shadow_would_deny) {
        JW_LIT(w, ",\"status\":");
        jw_int(w, v->policy->deny_status);
        JW_LIT(w, ",\"body\":");
        jw_deny_body(w, v);
    }
    JW_LIT(w, "}");
}

/* Writes the same bytes as json_dumps(rl_reply_decision(v), JSON_COMPACT |
 * JSON_PRESERVE_ORDER), without a jansson tree: no allocation on the
 * allow path. */
size_t rl_reply_decision_write(const rl_verdict_t *v, char *buf, size_t cap)
{
    rl_jw_t w = {buf, 0, cap};

    JW_LIT(&w, "{\"allowed\":");
    jw_bool(&w, v->allowed);
    JW_LIT(&w, ",\"policy\":");
    if (v->policy != NULL) {
        jw_str(&w, v->policy->name);
    } else {
        JW_LIT(&w, "null");
    }
    jw_decision_numbers(&w, v);
    JW_LIT(&w, ",\"blocked\":");
    jw_bool(&w, v->blocked);
    JW_LIT(&w, ",\"degraded\":");
    jw_bool(&w, v->degraded);
    JW_LIT(&w, ",\"status\":");
    jw_int(&w, reply_status(v));
    jw_decision_headers(&w, v);
    if (v->penalty != NULL) {
        JW_LIT(&w, ",\"penalty\":");
        jw_str(&w, v->penalty);
    }
    if (!v->allowed) {
        JW_LIT(&w, ",\"body\":");
        jw_deny_body(&w, v);
    }
    if (v->degraded) {
        JW_LIT(&w, ",\"degraded_reason\":");
        jw_str(&w, v->degraded_reason != NULL ? v->degraded_reason : "unknown");
    }
    if (v->test) {
        JW_LIT(&w, ",\"test\":true");
    }
    if (v->override != NULL) {
        JW_LIT(&w, ",\"override\":");
        jw_str(&w, v->override);
    }
    if (v->policy != NULL && v->policy->shadow) {
        jw_decision_shadow(&w, v);
    }
    JW_LIT(&w, "}");
    if (w.len < cap) {
        buf[w.len] = '\0';
    }
    return w.len;
}
