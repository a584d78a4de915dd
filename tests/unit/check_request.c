/* Unit tests of request.c: a table of JSON bodies, each with the request
 * it must give or the error code and message a caller sees. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "path.h"
#include "request.h"

/* Decodes text (NUL bytes allowed inside strings) or fails the test. */
static json_t *body(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

    ck_assert_msg(v != NULL, "%s: %s", text, jerr.text);
    return v;
}

/* A NULL field below means "expect absent". */
static const struct {
    const char *json;
    const char *method;
    const char *path; /* the path as far as path_len */
    const char *tenant;
    const char *user;
    const char *ip;
    const char *policy;
    long long cost;
    int nheaders;
} good_rows[] = {
    {"{\"path\": \"/a\"}", "GET", "/a", NULL, NULL, NULL, NULL, 1, 0},
    {"{\"path\": \"/\"}", "GET", "/", NULL, NULL, NULL, NULL, 1, 0},
    {"{\"path\": \"/a/b?x=1&y=2\"}", "GET", "/a/b", NULL, NULL, NULL, NULL, 1,
     0},
    {"{\"path\": \"/?\"}", "GET", "/", NULL, NULL, NULL, NULL, 1, 0},
    {"{\"method\": \"POST\", \"path\": \"/platform/v2/process/site-42\", "
     "\"tenant\": "
     "\"tenant-7\", \"user\": \"user_789\", \"ip\": \"203.0.113.7\", "
     "\"headers\": "
     "{\"rate-limit-test\": \"match\"}, \"cost\": 1, \"policy\": "
     "\"optional-name\"}",
     "POST", "/platform/v2/process/site-42", "tenant-7", "user_789",
     "203.0.113.7", "optional-name", 1, 1},
    {"{\"method\": \"delete\", \"path\": \"/x\"}", "delete", "/x", NULL, NULL,
     NULL, NULL, 1, 0},
    {"{\"path\": \"/x\", \"method\": null, \"tenant\": null, \"user\": null, "
     "\"ip\": null, "
     "\"policy\": null, \"headers\": null, \"cost\": null}",
     "GET", "/x", NULL, NULL, NULL, NULL, 1, 0},
    {"{\"path\": \"/x\", \"tenant\": \"\"}", "GET", "/x", "", NULL, NULL, NULL,
     1, 0},
    {"{\"path\": \"/x\", \"cost\": 0}", "GET", "/x", NULL, NULL, NULL, NULL, 0,
     0},
    {"{\"path\": \"/x\", \"cost\": 1000000000}", "GET", "/x", NULL, NULL, NULL,
     NULL, 1000000000, 0},
    {"{\"path\": \"/x\", \"headers\": {}}", "GET", "/x", NULL, NULL, NULL, NULL,
     1, 0},
    {"{\"path\": \"/x\", \"headers\": {\"a\": \"1\", \"B\": \"\", \"c\": "
     "\"3\"}}",
     "GET", "/x", NULL, NULL, NULL, NULL, 1, 3},
    /* unknown fields are ignored (forward compatible) */
    {"{\"path\": \"/x\", \"trace\": {\"deep\": [1, 2]}, \"priority\": 5}",
     "GET", "/x", NULL, NULL, NULL, NULL, 1, 0},
};

/* Asserts that s equals want, or is NULL when want is NULL. */
static void check_opt(const char *s, const char *want)
{
    if (want == NULL) {
        ck_assert_ptr_null(s);
    } else {
        ck_assert_ptr_nonnull(s);
        ck_assert_str_eq(s, want);
    }
}

START_TEST(test_good)
{
    json_t *obj = body(good_rows[_i].json);
    rl_request_t req;
    rl_request_error_t err;

    ck_assert_msg(rl_request_from_json(obj, &req, &err) == 0, "row %d: %s %s",
                  _i, err.code != NULL ? err.code : "", err.message);
    ck_assert_str_eq(req.method, good_rows[_i].method);
    ck_assert_int_eq((int)req.path_len, (int)strlen(good_rows[_i].path));
    ck_assert(memcmp(req.path, good_rows[_i].path, req.path_len) == 0);
    check_opt(req.tenant, good_rows[_i].tenant);
    check_opt(req.user, good_rows[_i].user);
    check_opt(req.ip, good_rows[_i].ip);
    check_opt(req.policy, good_rows[_i].policy);
    ck_assert_int_eq(req.cost, good_rows[_i].cost);
    ck_assert_int_eq(req.nheaders, good_rows[_i].nheaders);
    json_decref(obj);
}
END_TEST

static const struct {
    const char *json;
    const char *code;
    const char *message;
} bad_rows[] = {
    {"[]", "VAL_002", "request body must be a JSON object"},
    {"\"/a\"", "VAL_002", "request body must be a JSON object"},
    {"null", "VAL_002", "request body must be a JSON object"},
    {"{}", "VAL_001", "path is required"},
    {"{\"path\": null}", "VAL_001", "path is required"},
    {"{\"method\": \"GET\"}", "VAL_001", "path is required"},
    {"{\"path\": 5}", "VAL_002", "path must be a string"},
    {"{\"path\": \"\"}", "VAL_002", "path must start with \"/\""},
    {"{\"path\": \"a/b\"}", "VAL_002", "path must start with \"/\""},
    {"{\"path\": \"?x=/\"}", "VAL_002", "path must start with \"/\""},
    {"{\"path\": \"/a\\u0000b\"}", "VAL_002", "path contains a NUL byte"},
    {"{\"path\": \"/a\", \"method\": 1}", "VAL_002", "method must be a string"},
    {"{\"path\": \"/a\", \"method\": \"\"}", "VAL_002",
     "method must not be empty"},
    {"{\"path\": \"/a\", \"tenant\": 42}", "VAL_002",
     "tenant must be a string"},
    {"{\"path\": \"/a\", \"tenant\": \"t\\u0000x\"}", "VAL_002",
     "tenant contains a NUL byte"},
    {"{\"path\": \"/a\", \"user\": {}}", "VAL_002", "user must be a string"},
    {"{\"path\": \"/a\", \"user\": \"\\u0000\"}", "VAL_002",
     "user contains a NUL byte"},
    {"{\"path\": \"/a\", \"ip\": [\"1.2.3.4\"]}", "VAL_002",
     "ip must be a string"},
    {"{\"path\": \"/a\", \"policy\": true}", "VAL_002",
     "policy must be a string"},
    {"{\"path\": \"/a\", \"headers\": []}", "VAL_002",
     "headers must be an object"},
    {"{\"path\": \"/a\", \"headers\": \"x: y\"}", "VAL_002",
     "headers must be an object"},
    {"{\"path\": \"/a\", \"headers\": {\"x-foo\": 1}}", "VAL_002",
     "headers.x-foo must be a string"},
    {"{\"path\": \"/a\", \"headers\": {\"x-foo\": null}}", "VAL_002",
     "headers.x-foo must be a string"},
    {"{\"path\": \"/a\", \"headers\": {\"ok\": \"1\", \"x-bar\": [\"a\"]}}",
     "VAL_002", "headers.x-bar must be a string"},
    {"{\"path\": \"/a\", \"headers\": {\"x-foo\": \"a\\u0000b\"}}", "VAL_002",
     "headers.x-foo contains a NUL byte"},
    {"{\"path\": \"/a\", \"headers\": {\"x-foo\": \"1\", \"X-Foo\": \"2\"}}",
     "VAL_002",
     "headers.X-Foo repeats another header's name (names are "
     "case-insensitive)"},
    {"{\"path\": \"/a\", \"cost\": -1}", "VAL_002",
     "cost must be an integer from 0 to 1000000000"},
    {"{\"path\": \"/a\", \"cost\": 1000000001}", "VAL_002",
     "cost must be an integer from 0 to 1000000000"},
    {"{\"path\": \"/a\", \"cost\": 1.5}", "VAL_002",
     "cost must be an integer from 0 to 1000000000"},
    {"{\"path\": \"/a\", \"cost\": \"1\"}", "VAL_002",
     "cost must be an integer from 0 to 1000000000"},
    {"{\"path\": \"/a\", \"cost\": true}", "VAL_002",
     "cost must be an integer from 0 to 1000000000"},
};

START_TEST(test_bad)
{
    json_t *obj = body(bad_rows[_i].json);
    rl_request_t req;
    rl_request_error_t err;

    ck_assert_msg(rl_request_from_json(obj, &req, &err) == -1,
                  "row %d accepted: %s", _i, bad_rows[_i].json);
    ck_assert_ptr_nonnull(err.code);
    ck_assert_str_eq(err.code, bad_rows[_i].code);
    ck_assert_str_eq(err.message, bad_rows[_i].message);
    json_decref(obj);
}
END_TEST

START_TEST(test_too_many_headers)
{
    json_t *obj = body("{\"path\": \"/a\"}");
    json_t *h = json_object();
    rl_request_t req;
    rl_request_error_t err;
    char name[16];
    int i;

    json_object_set_new(obj, "headers", h);
    for (i = 0; i < RL_MAX_REQ_HEADERS; i++) {
        snprintf(name, sizeof(name), "h%d", i);
        json_object_set_new(h, name, json_string("v"));
    }
    ck_assert_int_eq(rl_request_from_json(obj, &req, &err), 0);
    ck_assert_int_eq(req.nheaders, RL_MAX_REQ_HEADERS);
    json_object_set_new(h, "one-more", json_string("v"));
    ck_assert_int_eq(rl_request_from_json(obj, &req, &err), -1);
    ck_assert_str_eq(err.code, "VAL_002");
    ck_assert_str_eq(err.message, "headers: too many (max 64)");
    json_decref(obj);
}
END_TEST

START_TEST(test_header_lookup)
{
    json_t *obj =
        body("{\"path\": \"/a\", \"headers\": {\"Rate-Limit-Test\": \"match\", "
             "\"x-empty\": \"\", \"X-Long\": \"abcdef\"}}");
    rl_request_t req;
    rl_request_error_t err;
    size_t len = 99;

    ck_assert_int_eq(rl_request_from_json(obj, &req, &err), 0);
    ck_assert_str_eq(rl_request_header(&req, "rate-limit-test", &len), "match");
    ck_assert_int_eq((int)len, 5);
    ck_assert_str_eq(rl_request_header(&req, "RATE-LIMIT-TEST", NULL), "match");
    ck_assert_str_eq(rl_request_header(&req, "x-empty", &len), "");
    ck_assert_int_eq((int)len, 0);
    ck_assert_str_eq(rl_request_header(&req, "x-long", NULL), "abcdef");
    ck_assert_ptr_null(rl_request_header(&req, "x-lon", NULL));
    ck_assert_ptr_null(rl_request_header(&req, "x-longer", NULL));
    ck_assert_ptr_null(rl_request_header(&req, "rate-limit", NULL));
    json_decref(obj);
}
END_TEST

START_TEST(test_borrowed)
{
    json_t *obj = body("{\"path\": \"/a?q\", \"tenant\": \"t\"}");
    rl_request_t req;
    rl_request_error_t err;

    ck_assert_int_eq(rl_request_from_json(obj, &req, &err), 0);
    /* The strings point into the JSON object: no copies to free. */
    ck_assert_ptr_eq(req.path, json_string_value(json_object_get(obj, "path")));
    ck_assert_ptr_eq(req.tenant,
                     json_string_value(json_object_get(obj, "tenant")));
    ck_assert_int_eq((int)req.path_len, 2);
    json_decref(obj);
}
END_TEST

/* Dot-segments, literal or percent-encoded, between any separator a
 * backend might decode, are refused; dots inside a segment are fine. */
static const struct {
    const char *path;
    int safe;
} path_rows[] = {
    {"/", 1},
    {"/a/b", 1},
    {"/a.b/c", 1},
    {"/...", 1},
    {"/a/.../b", 1},
    {"/.well-known/x", 1},
    {"/a/b.", 1},
    {"/v1.2/x", 1},
    {"//a//", 1},
    {"/a/%2e%2e%2e", 1},
    {"/%2", 1},
    {"/a%2", 1},
    {"/%", 1},
    {"/.", 0},
    {"/..", 0},
    {"/a/./b", 0},
    {"/a/../b", 0},
    {"/a/..", 0},
    {"/../etc/passwd", 0},
    {"/a/%2e%2e/b", 0},
    {"/a/%2E%2E/b", 0},
    {"/a/.%2e/b", 0},
    {"/a/%2e/b", 0},
    {"/a%2f..%2fb", 0},
    {"/a%2F..%2Fb", 0},
    {"/a\\..\\b", 0},
    {"/a%5c..%5cb", 0},
    {"/a/..%2fb", 0},
};

START_TEST(test_path_safe)
{
    const char *p = path_rows[_i].path;

    ck_assert_msg((rl_request_path_safe(p, strlen(p)) == 0) ==
                      path_rows[_i].safe,
                  "%s", p);
}
END_TEST

START_TEST(test_path_traversal_refused)
{
    json_t *obj = body("{\"path\": \"/payments/../admin?x=/../\"}");
    rl_request_t req;
    rl_request_error_t err;

    ck_assert_int_eq(rl_request_from_json(obj, &req, &err), -1);
    ck_assert_str_eq(err.code, "VAL_002");
    ck_assert_str_eq(err.message,
                     "path must not contain \".\" or \"..\" segments");
    json_decref(obj);
    /* Only the path counts, not the query string; target keeps both. */
    obj = body("{\"path\": \"/payments/x?next=/../admin\"}");
    ck_assert_int_eq(rl_request_from_json(obj, &req, &err), 0);
    ck_assert_int_eq((int)req.path_len, 11);
    ck_assert_int_eq((int)req.target_len,
                     (int)strlen("/payments/x?next=/../admin"));
    ck_assert_ptr_eq(req.target, req.path);
    json_decref(obj);
}
END_TEST

/* ------------------------------------------------------------------------
 * Path normalisation (path.c)
 * ---------------------------------------------------------------------- */

#define N RL_PATH_NORMALIZE
#define L RL_PATH_LOWER

/* Input, flags, expected output (NULL: refused as a dot segment). */
static const struct {
    const char *in;
    unsigned flags;
    const char *out;
} norm_rows[] = {
    {"/api/login", N, "/api/login"},
    {"/api/login/", N, "/api/login"},
    {"//api/login", N, "/api/login"},
    {"/api//login//", N, "/api/login"},
    {"/api/%6cogin", N, "/api/login"},
    {"/api/%6Cogin", N, "/api/login"},
    {"/api/login;x", N, "/api/login"},
    {"/api;v=1/login;jsessionid=2", N, "/api/login"},
    {"/api/;x/login", N, "/api/login"},
    {"/API/login", N, "/API/login"},
    {"/API/Login%2f", N | L, "/api/login%2F"},
    {"/%41%5a%61%7a%30%39%2D%2E%5F%7E", N, "/AZaz09-._~"},
    {"/a%2fb", N, "/a%2Fb"},
    {"/a%2Fb", N, "/a%2Fb"},
    {"/a%3bb;c", N, "/a%3Bb"},
    {"/a%20b%zz%4", N, "/a%20b%25zz%254"},
    {"/a%", N, "/a%25"},
    {"/%4%41", N | L, "/%254a"},
    {"/%00", N, "/%00"},
    {"/", N, "/"},
    {"", N, "/"},
    {"//", N, "/"},
    {"/;x", N, "/"},
    {"/a/%2e%2e/b", N, NULL},
    {"/a/%2E/b", N, NULL},
    {"/a/..;x/b", N, NULL},
    {"/a/.%2e;x", N, NULL},
    {"/a/...;x", N, "/a/..."},
    {"/a/..x", N, "/a/..x"},
    /* without RL_PATH_NORMALIZE: copied (and lower-cased) as sent */
    {"//API/login;x/", 0, "//API/login;x/"},
    {"//API/%2Flogin;x/", L, "//api/%2flogin;x/"},
    {"/a/..;x/b", 0, "/a/..;x/b"},
};

#undef N
#undef L

START_TEST(test_path_normalize)
{
    const char *in = norm_rows[_i].in;
    size_t len = strlen(in), outlen = 0;
    char *out = malloc(RL_PATH_OUT_LEN(len));
    int rc;

    ck_assert_ptr_nonnull(out);
    rc = rl_path_normalize(in, len, norm_rows[_i].flags, out, &outlen);
    if (norm_rows[_i].out == NULL) {
        ck_assert_msg(rc == -1, "row %d (%s): not refused", _i, in);
    } else {
        ck_assert_msg(rc == 0, "row %d (%s): refused", _i, in);
        ck_assert_msg(outlen == strlen(norm_rows[_i].out) &&
                          memcmp(out, norm_rows[_i].out, outlen) == 0,
                      "row %d (%s): got %.*s", _i, in, (int)outlen, out);
        ck_assert(outlen <= RL_PATH_OUT_LEN(len));
    }
    free(out);
}
END_TEST

/* Normalising twice changes nothing more (one path, one key). */
START_TEST(test_path_normalize_idempotent)
{
    size_t i;

    for (i = 0; i < sizeof(norm_rows) / sizeof(norm_rows[0]); i++) {
        char a[512], b[512];
        size_t alen, blen;

        if (norm_rows[i].out == NULL ||
            !(norm_rows[i].flags & RL_PATH_NORMALIZE)) {
            continue;
        }
        ck_assert_int_eq(rl_path_normalize(norm_rows[i].in,
                                           strlen(norm_rows[i].in),
                                           norm_rows[i].flags, a, &alen),
                         0);
        ck_assert_int_eq(
            rl_path_normalize(a, alen, norm_rows[i].flags, b, &blen), 0);
        ck_assert_msg(alen == blen && memcmp(a, b, alen) == 0, "row %d",
                      (int)i);
    }
}
END_TEST

/* ---------------------------------------------------------------------
 * The fast path (rl_request_from_body) against jansson
 * ------------------------------------------------------------------- */

/* Bodies the fast path must take (1) or leave to jansson (0). */
static const struct {
    const char *json;
    int taken;
} fast_rows[] = {
    {"{\"method\":\"POST\",\"path\":\"/allow/items\",\"tenant\":\"k42\"}", 1},
    {" \r\n{ \"path\" : \"/a?x=1\" , \"cost\" : 0 }\n", 1},
    {"{\"path\":\"/a\",\"cost\":-0,\"x\":true,\"y\":false,\"z\":null}", 1},
    {"{\"path\":\"/a\",\"method\":null,\"headers\":null,\"ip\":\"1.2.3.4\","
     "\"user\":\"u\",\"policy\":\"p\",\"cost\":1000000000}",
     1},
    {"{\"path\":\"/a\",\"tenant\":\"\"}", 1},
    {"{\"path\":\"/a\",\"tenant\":\"t\\u0041\"}", 0},    /* an escape */
    {"{\"pa\\u0074h\":\"/a\"}", 0},                      /* an escaped key */
    {"{\"path\":\"/a\",\"tenant\":\"caf\xc3\xa9\"}", 0}, /* non-ASCII */
    {"{\"path\":\"/a\",\"path\":\"/b\"}", 0},            /* a duplicate */
    {"{\"path\":\"/a\",\"x\":1,\"x\":1}", 0},
    {"{\"path\":\"/a\",\"headers\":{\"a\":\"1\"}}", 0},
    {"{\"path\":\"/a\",\"cost\":1.5}", 0},
    {"{\"path\":\"/a\",\"cost\":1e3}", 0},
    {"{\"path\":\"/a\",\"cost\":01}", 0},
    {"{\"path\":\"/a\",\"cost\":1000000001}", 0},
    {"{\"path\":\"/a\",\"cost\":-1}", 0},
    {"{\"path\":\"/a\",\"cost\":123456789012345678901}", 0},
    {"{\"path\":\"/a\",\"method\":\"\"}", 0},
    {"{\"path\":\"/a/../b\"}", 0},
    {"{\"path\":\"a\"}", 0},
    {"{\"path\":5}", 0},
    {"{\"tenant\":\"t\"}", 0},
    {"{}", 0},
    {"[]", 0},
    {"{\"path\":\"/a\"} x", 0},
    {"{\"path\":\"/a\",}", 0},
    {"{\"path\":\"/a\"", 0},
    {"{\"path\":\"/a\",\"x\":nul}", 0},
    {"{\"path\":\"/a\",\"x\":truex}", 0},
    {"{\"path\":\"/a\",\"x\":[1]}", 0},
    {"{\"path\":\"/a\\tb\"}", 0},
};

/* Asserts that a and b are the same request (strings compared by value). */
static void same_request(const rl_request_t *a, const rl_request_t *b)
{
    ck_assert_str_eq(a->method, b->method);
    ck_assert_uint_eq(a->path_len, b->path_len);
    ck_assert(memcmp(a->path, b->path, a->path_len) == 0);
    ck_assert_uint_eq(a->target_len, b->target_len);
    ck_assert(memcmp(a->target, b->target, a->target_len) == 0);
    check_opt(a->tenant, b->tenant);
    check_opt(a->user, b->user);
    check_opt(a->ip, b->ip);
    check_opt(a->policy, b->policy);
    ck_assert_ptr_null(a->key_path);
    ck_assert_int_eq(a->nheaders, b->nheaders);
    ck_assert_int_eq(a->cost, b->cost);
}

/* The fast path's answer on text (len bytes): when it takes the body,
 * jansson with the server's flags and rl_request_from_json must accept
 * it too and give the same request. Returns 1 if taken. */
static int fast_check(const char *text, size_t len)
{
    char scratch[2048];
    rl_request_t fast, slow;
    rl_request_error_t err;
    json_error_t jerr;
    json_t *root;

    if (rl_request_from_body(text, len, scratch, sizeof(scratch), &fast) != 0) {
        return 0;
    }
    root = json_loadb(text, len,
                      JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY,
                      &jerr);
    ck_assert_msg(root != NULL, "fast path took %.*s: %s", (int)len, text,
                  jerr.text);
    ck_assert_msg(rl_request_from_json(root, &slow, &err) == 0,
                  "fast path took %.*s: %s", (int)len, text, err.message);
    same_request(&fast, &slow);
    json_decref(root);
    return 1;
}

/* "ip" as sent -> as keyed: an address canonically, as /v1/authorize
 * keys it (one bucket per address); anything else as sent. */
static const struct {
    const char *ip;
    const char *want;
} ip_rows[] = {
    {"2001:DB8:0::8", "2001:db8::8"},
    {"0:0:0:0:0:0:0:1", "::1"},
    {"::FFFF:1.2.3.4", "::ffff:1.2.3.4"},
    {"::a0a:a0a", "::10.10.10.10"}, /* longer than sent */
    {"203.0.113.7", "203.0.113.7"},
    {"not-an-ip", "not-an-ip"},
    {" 10.0.0.1", " 10.0.0.1"},
    {"010.000.000.001", "010.000.000.001"},
};

/* Both paths (jansson and the fast one) key the same ip. */
START_TEST(test_ip_canonical)
{
    char text[128];
    rl_request_t req;
    rl_request_error_t err;
    json_t *obj;

    snprintf(text, sizeof(text), "{\"path\": \"/x\", \"ip\": \"%s\"}",
             ip_rows[_i].ip);
    obj = body(text);
    ck_assert_int_eq(rl_request_from_json(obj, &req, &err), 0);
    ck_assert_str_eq(req.ip, ip_rows[_i].want);
    json_decref(obj);
    ck_assert(fast_check(text, strlen(text)));
}
END_TEST

START_TEST(test_fast_rows)
{
    const char *t = fast_rows[_i].json;

    ck_assert_msg(fast_check(t, strlen(t)) == fast_rows[_i].taken, "row %d: %s",
                  _i, t);
}
END_TEST

/* Every good and bad row of the tables above: taken only with the same
 * request jansson gives; a bad row never. */
START_TEST(test_fast_tables)
{
    size_t i;

    for (i = 0; i < sizeof(good_rows) / sizeof(good_rows[0]); i++) {
        fast_check(good_rows[i].json, strlen(good_rows[i].json));
    }
    for (i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
        ck_assert_msg(!fast_check(bad_rows[i].json, strlen(bad_rows[i].json)),
                      "bad row %zu taken", i);
    }
}
END_TEST

/* Random edits of valid bodies: whatever the fast path takes, jansson
 * takes as the same request (fast_check asserts it). */
START_TEST(test_fast_mutations)
{
    static const char *seeds[] = {
        "{\"method\":\"POST\",\"path\":\"/a/b?q=1\",\"tenant\":\"k1\","
        "\"user\":\"u\",\"ip\":\"10.0.0.1\",\"policy\":\"p\",\"cost\":12,"
        "\"x\":null,\"y\":true}",
        "{ \"path\" : \"/.x/..y/%2e\" , \"headers\" : null }",
    };
    static const char alphabet[] = "{}[]\":, \t\n-0123456789.eEtrufalsn/\\?%a";
    unsigned int seed = 12345;
    int taken = 0, round;

    for (round = 0; round < 20000; round++) {
        char buf[256];
        const char *src = seeds[round % 2];
        size_t len = strlen(src), k, edits = 1 + (size_t)(round % 3);

        memcpy(buf, src, len);
        for (k = 0; k < edits; k++) {
            size_t at;
            char ch;

            seed = seed * 1103515245u + 12345u;
            at = (seed >> 8) % len;
            ch = alphabet[(seed >> 20) % (sizeof(alphabet) - 1)];
            if ((seed & 3) == 0 && len + 1 < sizeof(buf)) {
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = ch;
                len++;
            } else if ((seed & 3) == 1 && len > 1) {
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
            } else {
                buf[at] = ch;
            }
        }
        taken += fast_check(buf, len);
    }
    ck_assert_int_gt(taken, 0);
}
END_TEST

/* Builds the suite. */
static Suite *request_suite(void)
{
    Suite *s = suite_create("request");
    TCase *tc = tcase_create("request");

    tcase_add_loop_test(tc, test_good, 0,
                        (int)(sizeof(good_rows) / sizeof(good_rows[0])));
    tcase_add_loop_test(tc, test_bad, 0,
                        (int)(sizeof(bad_rows) / sizeof(bad_rows[0])));
    tcase_add_test(tc, test_too_many_headers);
    tcase_add_test(tc, test_header_lookup);
    tcase_add_test(tc, test_borrowed);
    tcase_add_loop_test(tc, test_path_safe, 0,
                        (int)(sizeof(path_rows) / sizeof(path_rows[0])));
    tcase_add_test(tc, test_path_traversal_refused);
    tcase_add_loop_test(tc, test_path_normalize, 0,
                        (int)(sizeof(norm_rows) / sizeof(norm_rows[0])));
    tcase_add_test(tc, test_path_normalize_idempotent);
    tcase_add_loop_test(tc, test_fast_rows, 0,
                        (int)(sizeof(fast_rows) / sizeof(fast_rows[0])));
    tcase_add_loop_test(tc, test_ip_canonical, 0,
                        sizeof(ip_rows) / sizeof(ip_rows[0]));
    tcase_add_test(tc, test_fast_tables);
    tcase_add_test(tc, test_fast_mutations);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(request_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
