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
