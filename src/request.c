/* A decide-shaped JSON object -> rl_request_t. Pure; every string of the
 * result is borrowed from the JSON object. Unknown fields are ignored so
 * that newer clients can talk to older servers. */
#include "request.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "errors.h"

#define RL_COST_MAX 1000000000LL

/* Fills err with kind (and its code) and a printf-style message; returns -1. */
static int request_fail(rl_request_error_t *err, rl_error_t kind,
                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int request_fail(rl_request_error_t *err, rl_error_t kind,
                        const char *fmt, ...)
{
    va_list ap;

    err->kind = kind;
    err->code = rl_error_code(kind);
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* Reads an optional string field: NULL into *out when absent or JSON
 * null. Returns 0, or -1 (VAL_002) on a non-string or a NUL byte. name
 * is the field as reported ("tenant", "headers.x-foo"). */
static int request_string(json_t *v, const char *name, const char **out,
                          size_t *len, rl_request_error_t *err)
{
    const char *s;
    size_t n;

    *out = NULL;
    if (len != NULL) {
        *len = 0;
    }
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return request_fail(err, RL_ERR_INVALID_FIELD, "%s must be a string",
                            name);
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (strlen(s) != n) {
        return request_fail(err, RL_ERR_INVALID_FIELD, "%s contains a NUL byte",
                            name);
    }
    *out = s;
    if (len != NULL) {
        *len = n;
    }
    return 0;
}

int rl_request_ip_canon(const char *p, size_t len, char *buf)
{
    unsigned char addr[sizeof(struct in6_addr)];
    char tmp[RL_REQUEST_IP_MAX];
    int af;

    if (len >= sizeof(tmp)) {
        return -1;
    }
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    af = memchr(tmp, ':', len) != NULL ? AF_INET6 : AF_INET;
    if (inet_pton(af, tmp, addr) != 1 ||
        inet_ntop(af, addr, buf, RL_REQUEST_IP_MAX) == NULL) {
        return -1;
    }
    return 0;
}

/* An "ip" that is an address is keyed in its canonical form, as
 * /v1/authorize keys it: obj's "ip" is replaced by that form, and
 * req->ip borrows it. Anything else is kept as sent. Returns 0, or -1
 * (out of memory) with err. */
static int request_canon_ip(json_t *obj, rl_request_t *req,
                            rl_request_error_t *err)
{
    char buf[RL_REQUEST_IP_MAX];
    json_t *canon;

    if (req->ip == NULL ||
        rl_request_ip_canon(req->ip, strlen(req->ip), buf) != 0 ||
        strcmp(buf, req->ip) == 0) {
        return 0;
    }
    canon = json_string(buf);
    if (canon == NULL || json_object_set_new(obj, "ip", canon) != 0) {
        return request_fail(err, RL_ERR_INTERNAL, "%s",
                            rl_error_message(RL_ERR_INTERNAL));
    }
    req->ip = json_string_value(canon);
    return 0;
}

/* The optional string fields, read by one loop. */
static const struct {
    const char *name;
    size_t offset;
} request_strings[] = {
    {"tenant", offsetof(rl_request_t, tenant)},
    {"user", offsetof(rl_request_t, user)},
    {"ip", offsetof(rl_request_t, ip)},
    {"policy", offsetof(rl_request_t, policy)},
};

/* Reads "headers": an object of string values, at most
 * RL_MAX_REQ_HEADERS, no two names equal but for case (which of them a
 * gateway meant is anyone's guess, as with a repeated HTTP header).
 * Names and values are borrowed from obj. */
static int request_headers(json_t *v, rl_request_t *req,
                           rl_request_error_t *err)
{
    const char *name;
    json_t *val;
    char field[96];

    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_object(v)) {
        return request_fail(err, RL_ERR_INVALID_FIELD,
                            "headers must be an object");
    }
    if (json_object_size(v) > RL_MAX_REQ_HEADERS) {
        return request_fail(err, RL_ERR_INVALID_FIELD,
                            "headers: too many (max %d)", RL_MAX_REQ_HEADERS);
    }
    json_object_foreach(v, name, val)
    {
        rl_header_t *h = &req->headers[req->nheaders];

        snprintf(field, sizeof(field), "headers.%.80s", name);
        if (request_string(val, field, &h->value, &h->value_len, err) != 0) {
            return -1;
        }
        if (h->value == NULL) {
            return request_fail(err, RL_ERR_INVALID_FIELD,
                                "%s must be a string", field);
        }
        if (rl_header_find(req->headers, req->nheaders, name, NULL) != NULL) {
            return request_fail(err, RL_ERR_INVALID_FIELD,
                                "%s repeats another header's name (names are "
                                "case-insensitive)",
                                field);
        }
        h->name = name;
        h->name_len = strlen(name);
        req->nheaders++;
    }
    return 0;
}

/* Length of the separator at p (n bytes left): '/' or '\\' (1), their
 * percent-encodings %2F and %5C (3), or 0. */
static size_t request_sep_len(const char *p, size_t n)
{
    if (*p == '/' || *p == '\\') {
        return 1;
    }
    if (n >= 3 && p[0] == '%' &&
        ((p[1] == '2' && (p[2] == 'f' || p[2] == 'F')) ||
         (p[1] == '5' && (p[2] == 'c' || p[2] == 'C')))) {
        return 3;
    }
    return 0;
}

/* Length of the dot at p: '.' (1) or %2E (3), or 0. */
static size_t request_dot_len(const char *p, size_t n)
{
    if (*p == '.') {
        return 1;
    }
    if (n >= 3 && p[0] == '%' && p[1] == '2' && (p[2] == 'e' || p[2] == 'E')) {
        return 3;
    }
    return 0;
}

int rl_request_path_safe(const char *path, size_t len)
{
    size_t i = 0, step;
    int dots = 0, other = 0;

    /* Segments are split at every separator a backend might decode. */
    while (i <= len) {
        if (i == len || (step = request_sep_len(path + i, len - i)) > 0) {
            if (!other && (dots == 1 || dots == 2)) {
                return -1;
            }
            dots = other = 0;
            i += i == len ? 1 : step;
        } else if ((step = request_dot_len(path + i, len - i)) > 0) {
            dots++;
            i += step;
        } else {
            other = 1;
            i++;
        }
    }
    return 0;
}

/* Checks req->path (path_len bytes, as sent): it must start with '/' and
 * hold no dot-segment; splits off the query string (target keeps it).
 * Returns 0, or -1 with err. */
static int request_check_path(rl_request_t *req, rl_request_error_t *err)
{
    const char *q;

    if (req->path_len == 0 || req->path[0] != '/') {
        return request_fail(err, RL_ERR_INVALID_FIELD,
                            "path must start with \"/\"");
    }
    req->target = req->path;
    req->target_len = req->path_len;
    q = memchr(req->path, '?', req->path_len);
    if (q != NULL) {
        req->path_len = (size_t)(q - req->path);
    }
    if (rl_request_path_safe(req->path, req->path_len) != 0) {
        return request_fail(err, RL_ERR_BAD_PATH, "%s",
                            rl_error_message(RL_ERR_BAD_PATH));
    }
    return 0;
}

/* Fills req from obj (borrowing its strings). Returns 0, or -1 with err. */
int rl_request_from_json(json_t *obj, rl_request_t *req,
                         rl_request_error_t *err)
{
    size_t i;
    json_t *v;

    memset(req, 0, sizeof(*req));
    req->method = "GET";
    req->cost = 1;
    err->kind = RL_ERR_NONE;
    err->code = NULL;
    err->message[0] = '\0';
    if (!json_is_object(obj)) {
        return request_fail(err, RL_ERR_INVALID_FIELD,
                            "request body must be a JSON object");
    }

    v = json_object_get(obj, "path");
    if (v == NULL || json_is_null(v)) {
        return request_fail(err, RL_ERR_MISSING_FIELD, "path is required");
    }
    if (request_string(v, "path", &req->path, &req->path_len, err) != 0 ||
        request_check_path(req, err) != 0) {
        return -1;
    }

    v = json_object_get(obj, "method");
    if (v != NULL && !json_is_null(v)) {
        if (request_string(v, "method", &req->method, NULL, err) != 0) {
            return -1;
        }
        if (req->method[0] == '\0') {
            return request_fail(err, RL_ERR_INVALID_FIELD,
                                "method must not be empty");
        }
    }

    for (i = 0; i < sizeof(request_strings) / sizeof(request_strings[0]); i++) {
        const char **dst =
            (const char **)((char *)req + request_strings[i].offset);

        v = json_object_get(obj, request_strings[i].name);
        if (request_string(v, request_strings[i].name, dst, NULL, err) != 0) {
            return -1;
        }
    }

    if (request_canon_ip(obj, req, err) != 0 ||
        request_headers(json_object_get(obj, "headers"), req, err) != 0) {
        return -1;
    }

    v = json_object_get(obj, "cost");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > RL_COST_MAX) {
            return request_fail(err, RL_ERR_INVALID_FIELD,
                                "cost must be an integer from 0 to %lld",
                                RL_COST_MAX);
        }
        req->cost = (int64_t)json_integer_value(v);
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * The fast path: a flat object of plain strings and integers, read
 * without jansson. Whatever it does not take (escapes, non-ASCII, nested
 * values, reals, duplicate keys, any invalid field) goes to jansson and
 * rl_request_from_json, which give the same request or the error reply.
 * ------------------------------------------------------------------- */

#define FAST_MAX_KEYS 16

/* The kinds of value the fast path reads. */
typedef enum { FAST_STR, FAST_INT, FAST_NULL, FAST_BOOL } fast_kind_t;

/* A cursor over the body and the scratch its strings are copied to. */
typedef struct fast {
    const char *p, *end;
    char *out, *out_end;
} fast_t;

/* One value read: a NUL-terminated copy in scratch, or an integer. */
typedef struct fast_val {
    fast_kind_t kind;
    const char *s;
    size_t len;
    long long n;
} fast_val_t;

/* Skips JSON whitespace. */
static void fast_ws(fast_t *f)
{
    while (f->p < f->end &&
           (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' || *f->p == '\r')) {
        f->p++;
    }
}

/* Scans the string whose opening quote is at f->p: printable ASCII, no
 * escape. Sets *s and *len (the bytes between the quotes) and moves past
 * it; -1 when the fast path does not take it. */
static int fast_scan_string(fast_t *f, const char **s, size_t *len)
{
    const char *q = f->p + 1;

    while (q < f->end && *q != '"') {
        unsigned char ch = (unsigned char)*q;
        if (ch < 0x20 || ch > 0x7e || ch == '\\') {
            return -1;
        }
        q++;
    }
    if (q == f->end) {
        return -1;
    }
    *s = f->p + 1;
    *len = (size_t)(q - *s);
    f->p = q + 1;
    return 0;
}

/* 1 if f->p is at the end of a value: whitespace, ',', '}' or the end. */
static int fast_at_delim(const fast_t *f)
{
    return f->p == f->end || *f->p == ',' || *f->p == '}' || *f->p == ' ' ||
           *f->p == '\t' || *f->p == '\n' || *f->p == '\r';
}

/* Reads an integer -?(0|[1-9][0-9]{0,17}) or a literal at f->p. */
static int fast_scalar(fast_t *f, fast_val_t *v)
{
    static const struct {
        const char *word;
        size_t len;
        fast_kind_t kind;
    } words[] = {{"null", 4, FAST_NULL},
                 {"true", 4, FAST_BOOL},
                 {"false", 5, FAST_BOOL}};
    size_t i, digits = 0;
    int neg = 0;

    for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if ((size_t)(f->end - f->p) >= words[i].len &&
            memcmp(f->p, words[i].word, words[i].len) == 0) {
            f->p += words[i].len;
            v->kind = words[i].kind;
            return fast_at_delim(f) ? 0 : -1;
        }
    }
    if (f->p < f->end && *f->p == '-') {
        neg = 1;
        f->p++;
    }
    v->kind = FAST_INT;
    v->n = 0;
    while (f->p < f->end && *f->p >= '0' && *f->p <= '9' && digits < 18) {
        if (digits == 1 && v->n == 0) {
            return -1; /* a leading zero */
        }
        v->n = v->n * 10 + (*f->p++ - '0');
        digits++;
    }
    if (neg) {
        v->n = -v->n;
    }
    return digits > 0 && fast_at_delim(f) ? 0 : -1;
}

/* Reads one value at f->p; strings are copied to the scratch. */
static int fast_value(fast_t *f, fast_val_t *v)
{
    const char *s;

    if (f->p == f->end) {
        return -1;
    }
    if (*f->p != '"') {
        return fast_scalar(f, v);
    }
    if (fast_scan_string(f, &s, &v->len) != 0 ||
        (size_t)(f->out_end - f->out) < v->len + 1) {
        return -1;
    }
    memcpy(f->out, s, v->len);
    f->out[v->len] = '\0';
    v->kind = FAST_STR;
    v->s = f->out;
    f->out += v->len + 1;
    return 0;
}

/* Stores the value of field name (len bytes) in req, as
 * rl_request_from_json would. -1 for any shape it would refuse or that
 * only jansson reads ("headers" other than null). */
static int fast_field(rl_request_t *req, const char *name, size_t len,
                      const fast_val_t *v)
{
    size_t i;

#define FAST_IS(word) (len == sizeof(word) - 1 && memcmp(name, word, len) == 0)
    if (FAST_IS("path")) {
        if (v->kind != FAST_STR) {
            return -1;
        }
        req->path = v->s;
        req->path_len = v->len;
        return 0;
    }
    if (FAST_IS("method")) {
        if (v->kind == FAST_STR && v->len > 0) {
            req->method = v->s;
            return 0;
        }
        return v->kind == FAST_NULL ? 0 : -1;
    }
    if (FAST_IS("cost")) {
        if (v->kind == FAST_INT && v->n >= 0 && v->n <= RL_COST_MAX) {
            req->cost = (int64_t)v->n;
            return 0;
        }
        return v->kind == FAST_NULL ? 0 : -1;
    }
    if (FAST_IS("headers")) {
        return v->kind == FAST_NULL ? 0 : -1;
    }
#undef FAST_IS
    for (i = 0; i < sizeof(request_strings) / sizeof(request_strings[0]); i++) {
        if (strlen(request_strings[i].name) == len &&
            memcmp(request_strings[i].name, name, len) == 0) {
            if (v->kind == FAST_STR) {
                *(const char **)((char *)req + request_strings[i].offset) =
                    v->s;
                return 0;
            }
            return v->kind == FAST_NULL ? 0 : -1;
        }
    }
    return 0; /* unknown fields are ignored */
}

/* Reads the members of the object whose '{' f->p has passed, up to its
 * '}' and the end of the body. */
static int fast_members(fast_t *f, rl_request_t *req)
{
    const char *keys[FAST_MAX_KEYS];
    size_t key_lens[FAST_MAX_KEYS];
    int nkeys = 0, i;

    fast_ws(f);
    if (f->p < f->end && *f->p == '}') {
        f->p++;
        return 0;
    }
    for (;;) {
        fast_val_t v;

        if (f->p == f->end || *f->p != '"' || nkeys == FAST_MAX_KEYS ||
            fast_scan_string(f, &keys[nkeys], &key_lens[nkeys]) != 0) {
            return -1;
        }
        for (i = 0; i < nkeys; i++) {
            if (key_lens[i] == key_lens[nkeys] &&
                memcmp(keys[i], keys[nkeys], key_lens[i]) == 0) {
                return -1; /* a duplicate: jansson's error */
            }
        }
        fast_ws(f);
        if (f->p == f->end || *f->p++ != ':') {
            return -1;
        }
        fast_ws(f);
        if (fast_value(f, &v) != 0 ||
            fast_field(req, keys[nkeys], key_lens[nkeys], &v) != 0) {
            return -1;
        }
        nkeys++;
        fast_ws(f);
        if (f->p < f->end && *f->p == '}') {
            f->p++;
            return 0;
        }
        if (f->p == f->end || *f->p++ != ',') {
            return -1;
        }
        fast_ws(f);
    }
}

/* request_canon_ip for the fast path: the canonical form is copied to
 * the scratch; -1 when it has no room left (jansson's path then). */
static int fast_canon_ip(fast_t *f, rl_request_t *req)
{
    char buf[RL_REQUEST_IP_MAX];
    size_t n;

    if (req->ip == NULL ||
        rl_request_ip_canon(req->ip, strlen(req->ip), buf) != 0) {
        return 0;
    }
    n = strlen(buf);
    if ((size_t)(f->out_end - f->out) < n + 1) {
        return -1;
    }
    memcpy(f->out, buf, n + 1);
    req->ip = f->out;
    f->out += n + 1;
    return 0;
}

int rl_request_from_body(const char *body, size_t len, char *scratch,
                         size_t cap, rl_request_t *req)
{
    fast_t f = {body, body + len, scratch, scratch + cap};
    rl_request_error_t err;

    memset(req, 0, sizeof(*req));
    req->method = "GET";
    req->cost = 1;
    fast_ws(&f);
    if (f.p == f.end || *f.p++ != '{' || fast_members(&f, req) != 0) {
        return -1;
    }
    fast_ws(&f);
    if (f.p != f.end || req->path == NULL || fast_canon_ip(&f, req) != 0) {
        return -1;
    }
    return request_check_path(req, &err);
}

/* Finds header name in req (case-insensitive); the value is borrowed. */

const char *rl_request_header(const rl_request_t *req, const char *name,
                              size_t *len)
{
    return rl_header_find(req->headers, req->nheaders, name, len);
}
