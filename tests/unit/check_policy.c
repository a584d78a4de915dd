/* Unit tests of policy.c: pattern compile errors, a matching table, first
 * match wins, method filters, forced policies, key building for every key
 * field, missing fields, and key encoding against hostile identifiers. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "cluster.h"
#include "policy.h"
#include "request.h"
#include "util.h"

#ifndef RL_SRCDIR
#define RL_SRCDIR "."
#endif

#define EXAMPLE RL_SRCDIR "/deploy/examples/ratelimitd.json"

/* Parses a config from a string or fails the test. */
static rl_conf_t *conf_from(const char *text)
{
    char err[512];
    rl_conf_t *conf = rl_conf_parse(text, strlen(text), err, sizeof(err));

    ck_assert_msg(conf != NULL, "%s", err);
    return conf;
}

/* A request for method and path (query kept in path, cut by path_len). */
static void req_init(rl_request_t *req, const char *method, const char *path)
{
    const char *q = strchr(path, '?');

    memset(req, 0, sizeof(*req));
    req->method = method;
    req->path = path;
    req->path_len = q != NULL ? (size_t)(q - path) : strlen(path);
    req->cost = 1;
}

/* Adds header name: value to req. */
static void req_header(rl_request_t *req, const char *name, const char *value)
{
    rl_header_t *h = &req->headers[req->nheaders++];

    h->name = name;
    h->name_len = strlen(name);
    h->value = value;
    h->value_len = strlen(value);
}

/* ------------------------------------------------------------------------
 * Patterns
 * ---------------------------------------------------------------------- */

static const struct {
    const char *pattern;
    const char *error;
} compile_errors[] = {
    {"", "must start with '/'"},
    {"a/b", "must start with '/'"},
    {"*", "must start with '/'"},
    {"/a/*/b", "'*' must be the last segment"},
    {"/*/*", "'*' must be the last segment"},
    {"/a*", "'*' must be a whole segment"},
    {"/a/**", "'*' must be a whole segment"},
    {"/{}", "empty parameter name"},
    {"/{a.b}", "parameter {a.b} must be letters, digits or '_'"},
    {"/{id}/x/{id}", "parameter {id} appears twice"},
    {"/{id", "a parameter must be a whole segment such as {id}"},
    {"/id}", "a parameter must be a whole segment such as {id}"},
    {"/x{id}", "a parameter must be a whole segment such as {id}"},
    {"/a?b", "must not contain '?' or '#' (patterns match the path only)"},
    {"/a#b", "must not contain '?' or '#' (patterns match the path only)"},
    {"/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}/{n}/{o}/{p}/{q}",
     "more than 16 parameters"},
};

START_TEST(test_compile_errors)
{
    rl_pattern_t p;
    char err[160];

    err[0] = '\0';
    ck_assert_int_eq(
        rl_pattern_compile(compile_errors[_i].pattern, &p, err, sizeof(err)),
        -1);
    ck_assert_str_eq(err, compile_errors[_i].error);
    ck_assert_ptr_null(p.segs);
    ck_assert_ptr_null(p.text);
    rl_pattern_free(&p);
}
END_TEST

START_TEST(test_compile_shapes)
{
    rl_pattern_t p;
    char err[160];

    ck_assert_int_eq(rl_pattern_compile("/*", &p, err, sizeof(err)), 0);
    ck_assert_int_eq(p.nsegs, 0);
    ck_assert_int_eq(p.wildcard, 1);
    ck_assert_str_eq(p.text, "/*");
    rl_pattern_free(&p);

    ck_assert_int_eq(rl_pattern_compile("/a/{b}/c/*", &p, err, sizeof(err)), 0);
    ck_assert_int_eq(p.nsegs, 3);
    ck_assert_int_eq(p.wildcard, 1);
    ck_assert_int_eq(p.segs[0].kind, RL_SEG_LITERAL);
    ck_assert_str_eq(p.segs[0].text, "a");
    ck_assert_int_eq(p.segs[1].kind, RL_SEG_PARAM);
    ck_assert_str_eq(p.segs[1].text, "b");
    ck_assert_int_eq(p.segs[2].kind, RL_SEG_LITERAL);
    ck_assert_int_eq(p.segs[2].len, 1);
    rl_pattern_free(&p);

    ck_assert_int_eq(rl_pattern_compile("/", &p, err, sizeof(err)), 0);
    ck_assert_int_eq(p.nsegs, 1);
    ck_assert_int_eq(p.segs[0].len, 0);
    ck_assert_int_eq(p.wildcard, 0);
    rl_pattern_free(&p);

    /* Sixteen parameters is the limit, not an error. */
    ck_assert_int_eq(rl_pattern_compile(
                         "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}"
                         "/{n}/{o}/{p}",
                         &p, err, sizeof(err)),
                     0);
    rl_pattern_free(&p);
}
END_TEST

/* pattern, path (a '?' starts a query cut off by path_len), match?,
 * captures as "name=value,name=value". */
static const struct {
    const char *pattern;
    const char *path;
    int match;
    const char *captures;
} match_rows[] = {
    {"/*", "/", 1, ""},
    {"/*", "/a", 1, ""},
    {"/*", "/a/b/c", 1, ""},
    {"/*", "//", 1, ""},
    {"/*", "a", 0, ""},
    {"/*", "", 0, ""},
    {"/a/*", "/a", 1, ""},
    {"/a/*", "/a/", 1, ""},
    {"/a/*", "/a/b/c", 1, ""},
    {"/a/*", "/ab", 0, ""},
    {"/a/*", "/b/a", 0, ""},
    {"/a/*", "/", 0, ""},
    {"/a/*", "/A/b", 0, ""},
    {"/", "/", 1, ""},
    {"/", "/a", 0, ""},
    {"/a", "/a", 1, ""},
    {"/a", "/a/", 0, ""},
    {"/a", "/A", 0, ""},
    {"/a", "/a?x=1", 1, ""},
    {"/a/", "/a/", 1, ""},
    {"/a/", "/a", 0, ""},
    {"/a//b", "/a//b", 1, ""},
    {"/a//b", "/a/b", 0, ""},
    {"/a/{id}", "/a/42", 1, "id=42"},
    {"/a/{id}", "/a/42?q=/b", 1, "id=42"},
    {"/a/{id}", "/a/", 0, ""},
    {"/a/{id}", "/a", 0, ""},
    {"/a/{id}", "/a/42/x", 0, ""},
    {"/a/{id}", "/a/%7Bx%7D", 1, "id=%7Bx%7D"},
    {"/{x}/*", "/foo", 1, "x=foo"},
    {"/{x}/*", "/foo/bar/baz", 1, "x=foo"},
    {"/{x}/*", "/", 0, ""},
    {"/{x}/*", "//a", 0, ""},
    {"/a/{id}/*", "/a/1/b/c", 1, "id=1"},
    {"/platform/v2/process/{siteIdentifier}", "/platform/v2/process/site-42", 1,
     "siteIdentifier=site-42"},
    {"/platform/v2/process/{siteIdentifier}", "/platform/v2/process", 0, ""},
    {"/platform/v2/process/{siteIdentifier}", "/platform/v2/Process/site-42", 0,
     ""},
    {"/product/v2/site/{siteIdentifier}/stage/{stageName}/{stageId}",
     "/product/v2/site/s1/stage/live/77", 1,
     "siteIdentifier=s1,stageName=live,stageId=77"},
    {"/product/v2/site/{siteIdentifier}/stage/{stageName}/{stageId}",
     "/product/v2/site/s1/stage/live", 0, ""},
    {"/projects/upload-file", "/projects/upload-file", 1, ""},
    {"/projects/upload-file", "/projects/upload-files", 0, ""},
};

START_TEST(test_match_table)
{
    rl_pattern_t p;
    rl_match_t m;
    char err[160];
    char got[256];
    size_t used = 0;
    const char *path = match_rows[_i].path;
    const char *q = strchr(path, '?');
    size_t len = q != NULL ? (size_t)(q - path) : strlen(path);
    int i;
    int r;

    ck_assert_int_eq(
        rl_pattern_compile(match_rows[_i].pattern, &p, err, sizeof(err)), 0);
    memset(&m, 0, sizeof(m));
    r = rl_pattern_match(&p, path, len, &m);
    ck_assert_msg(r == match_rows[_i].match, "%s vs %s: got %d",
                  match_rows[_i].pattern, path, r);
    got[0] = '\0';
    if (r) {
        for (i = 0; i < m.nparams; i++) {
            used += (size_t)snprintf(
                got + used, sizeof(got) - used, "%s%s=%.*s", i == 0 ? "" : ",",
                m.params[i].name, (int)m.params[i].len, m.params[i].value);
        }
        ck_assert_str_eq(got, match_rows[_i].captures);
    }
    rl_pattern_free(&p);
}
END_TEST

/* ------------------------------------------------------------------------
 * Finding the policy
 * ---------------------------------------------------------------------- */

static const char *find_conf =
    "{\"policies\": ["
    " {\"name\": \"special\", \"match\": {\"method\": \"post\", \"path\": "
    "\"/a/special\"},"
    "  \"limits\": [{\"requests\": 1, \"per\": \"1s\"}]},"
    " {\"name\": \"by-id\", \"match\": {\"path\": \"/a/{id}\"},"
    "  \"limits\": [{\"requests\": 1, \"per\": \"1s\"}]},"
    " {\"name\": \"deletes\", \"match\": {\"method\": \"DELETE\", \"path\": "
    "\"/*\"},"
    "  \"limits\": [{\"requests\": 1, \"per\": \"1s\"}]},"
    " {\"name\": \"b-tree\", \"match\": {\"path\": \"/b/*\"},"
    "  \"limits\": [{\"requests\": 1, \"per\": \"1s\"}]}"
    "]}";

/* method, path, forced policy, expected policy name (NULL = none) and
 * expected capture of {id} (NULL = none). */
static const struct {
    const char *method;
    const char *path;
    const char *force;
    const char *expect;
    const char *id;
} find_rows[] = {
    {"POST", "/a/special", NULL, "special", NULL},
    {"post", "/a/special", NULL, "special", NULL},
    {"GET", "/a/special", NULL, "by-id", "special"},
    {"GET", "/a/7", NULL, "by-id", "7"},
    {"DELETE", "/a/7", NULL, "by-id", "7"},
    {"DELETE", "/zzz", NULL, "deletes", NULL},
    {"delete", "/b/x", NULL, "deletes", NULL},
    {"GET", "/b/x", NULL, "b-tree", NULL},
    {"GET", "/b", NULL, "b-tree", NULL},
    {"GET", "/zzz", NULL, NULL, NULL},
    {"GET", "/a", NULL, NULL, NULL},
    {NULL, "/a/special", NULL, "by-id", "special"},
    /* forced by name: only that policy, and only if it fits */
    {"POST", "/a/special", "by-id", "by-id", "special"},
    {"DELETE", "/b/x", "b-tree", "b-tree", NULL},
    {"GET", "/a/special", "special", NULL, NULL},
    {"POST", "/a/other", "special", NULL, NULL},
    {"GET", "/b/x", "unknown", NULL, NULL},
    {"GET", "/b/x", "B-tree", NULL, NULL},
};

START_TEST(test_find)
{
    rl_conf_t *conf = conf_from(find_conf);
    rl_request_t req;
    rl_match_t m;
    const rl_policy_t *p;

    req_init(&req, find_rows[_i].method, find_rows[_i].path);
    req.policy = find_rows[_i].force;
    memset(&m, 0xff, sizeof(m));
    p = rl_policy_find(conf, &req, &m);
    if (find_rows[_i].expect == NULL) {
        ck_assert_msg(p == NULL, "row %d: got %s", _i,
                      p != NULL ? p->name : "");
        ck_assert_ptr_null(m.policy);
        ck_assert_int_eq(m.nparams, 0);
    } else {
        ck_assert_msg(p != NULL, "row %d: no policy", _i);
        ck_assert_str_eq(p->name, find_rows[_i].expect);
        ck_assert_ptr_eq(m.policy, p);
        if (find_rows[_i].id != NULL) {
            ck_assert_int_eq(m.nparams, 1);
            ck_assert_str_eq(m.params[0].name, "id");
            ck_assert_int_eq((int)m.params[0].len,
                             (int)strlen(find_rows[_i].id));
            ck_assert(memcmp(m.params[0].value, find_rows[_i].id,
                             m.params[0].len) == 0);
        } else {
            ck_assert_int_eq(m.nparams, 0);
        }
    }
    rl_conf_free(conf);
}
END_TEST

/* Requests routed through the shipped example configuration. */
static const struct {
    const char *method;
    const char *path;
    const char *expect;
} example_rows[] = {
    {"POST", "/platform/v2/process/site-42", "platform-process"},
    {"GET", "/platform/v2/process/site-42", "platform-other"},
    {"POST", "/platform/v2/process", "platform-other"},
    {"GET", "/platform/v2/sites", "platform-other"},
    {"GET", "/product/v2/site/s1/stage/live/77", "platform-product-read"},
    {"PUT", "/product/v2/site/s1/stage/live/77", "product-other"},
    {"GET", "/product/v2/catalog", "product-other"},
    {"POST", "/projects/upload-file", "build-upload"},
    {"POST", "/projects/distribute-file", "build-distribute"},
    {"GET", "/projects/upload-file", "build-other"},
    {"GET", "/projects", "build-other"},
    {"GET", "/projects/p1/builds", "build-other"},
    {"GET", "/projectsx", NULL},
    {"GET", "/payments/txns", "payments-endpoint"},
    {"GET", "/payments/txns/t1_txn_1", "payments-endpoint"},
    {"DELETE", "/payments/logins/9", "payments-endpoint"},
    {"GET", "/payments", NULL},
    {"POST", "/v1/events", "events-tenant"},
    {"GET", "/v1/events", NULL},
    {"GET", "/health", NULL},
};

START_TEST(test_find_example)
{
    char err[512];
    rl_conf_t *conf = rl_conf_load(EXAMPLE, err, sizeof(err));
    rl_request_t req;
    rl_match_t m;
    const rl_policy_t *p;

    ck_assert_msg(conf != NULL, "%s", err);
    req_init(&req, example_rows[_i].method, example_rows[_i].path);
    p = rl_policy_find(conf, &req, &m);
    if (example_rows[_i].expect == NULL) {
        ck_assert_msg(p == NULL, "%s %s -> %s", req.method, req.path,
                      p != NULL ? p->name : "");
    } else {
        ck_assert_msg(p != NULL, "%s %s -> none", req.method, req.path);
        ck_assert_str_eq(p->name, example_rows[_i].expect);
    }
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_find_empty_conf)
{
    rl_conf_t *conf = conf_from("{\"policies\": []}");
    rl_request_t req;
    rl_match_t m;

    req_init(&req, "GET", "/anything");
    ck_assert_ptr_null(rl_policy_find(conf, &req, &m));
    req.policy = "x";
    ck_assert_ptr_null(rl_policy_find(conf, &req, &m));
    rl_conf_free(conf);
}
END_TEST

/* ------------------------------------------------------------------------
 * Keys
 * ---------------------------------------------------------------------- */

static const char *key_conf =
    "{\"store\": {\"prefix\": \"rl\"}, \"policies\": ["
    " {\"name\": \"every\", \"match\": {\"path\": \"/a/{id}/*\"},"
    "  \"key\": [\"tenant\", \"user\", \"ip\", \"method\", \"route\", "
    "\"path\", \"path.id\","
    "           \"header.X-Api-Key\"],"
    "  \"limits\": [{\"requests\": 1, \"per\": \"1s\"}]},"
    " {\"name\": \"shared.one_2\", \"match\": {\"path\": \"/s\"}, \"key\": [],"
    "  \"limits\": [{\"requests\": 1, \"per\": \"1s\"}]},"
    " {\"name\": \"pair\", \"match\": {\"path\": \"/*\"}, \"key\": "
    "[\"tenant\", \"user\"],"
    "  \"limits\": [{\"requests\": 1, \"per\": \"1s\"}]}"
    "]}";

/* Builds the key of the request's policy into buf; returns its length. */
static int build_key(const rl_conf_t *conf, const rl_request_t *req, char *buf,
                     size_t len, const char **missing)
{
    rl_match_t m;
    const rl_policy_t *p = rl_policy_find(conf, req, &m);

    ck_assert_ptr_nonnull(p);
    return rl_policy_key(p, conf->store.prefix, req, &m, buf, len, missing);
}

/* A request carrying every key field of policy "every". */
static void every_request(rl_request_t *req)
{
    req_init(req, "post", "/a/42/x?token=secret");
    req->tenant = "t-7";
    req->user = "u1";
    req->ip = "203.0.113.7";
    req_header(req, "x-api-key", "k-1");
}

START_TEST(test_key_every_field)
{
    rl_conf_t *conf = conf_from(key_conf);
    rl_request_t req;
    char buf[RL_KEY_MAX];
    const char *missing = "unset";
    int n;

    every_request(&req);
    n = build_key(conf, &req, buf, sizeof(buf), &missing);
    ck_assert_str_eq(
        buf,
        "rl:{every|t-7|u1|203.0.113.7|POST|%2Fa%2F%7Bid%7D%2F%2A|%2Fa%2F42%2Fx"
        "|42|k-1}");
    ck_assert_int_eq(n, (int)strlen(buf));
    ck_assert_ptr_null(missing);
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_key_shared)
{
    rl_conf_t *conf = conf_from(key_conf);
    rl_request_t req;
    char buf[RL_KEY_MAX];
    const char *missing;

    req_init(&req, "GET", "/s");
    ck_assert_int_eq(build_key(conf, &req, buf, sizeof(buf), &missing), 17);
    ck_assert_str_eq(buf, "rl:{shared.one_2}");
    rl_conf_free(conf);
}
END_TEST

/* Field to remove or empty from the "every" request, and the spec the
 * key builder must then name. */
static const struct {
    const char *field;
    int empty;
    const char *spec;
} missing_rows[] = {
    {"tenant", 0, "tenant"},
    {"tenant", 1, "tenant"},
    {"user", 0, "user"},
    {"user", 1, "user"},
    {"ip", 0, "ip"},
    {"ip", 1, "ip"},
    {"method", 0, "method"},
    {"method", 1, "method"},
    {"header", 0, "header.X-Api-Key"},
    {"header", 1, "header.X-Api-Key"},
};

START_TEST(test_key_missing)
{
    rl_conf_t *conf = conf_from(key_conf);
    rl_request_t req;
    char buf[RL_KEY_MAX];
    const char *missing = NULL;
    const char *v = missing_rows[_i].empty ? "" : NULL;

    every_request(&req);
    if (strcmp(missing_rows[_i].field, "tenant") == 0) {
        req.tenant = v;
    } else if (strcmp(missing_rows[_i].field, "user") == 0) {
        req.user = v;
    } else if (strcmp(missing_rows[_i].field, "ip") == 0) {
        req.ip = v;
    } else if (strcmp(missing_rows[_i].field, "method") == 0) {
        req.method = v;
        req.policy = "every"; /* method is not part of the match */
    } else {
        req.nheaders = 0;
        if (v != NULL) {
            req_header(&req, "X-API-KEY", v);
        }
    }
    ck_assert_int_eq(build_key(conf, &req, buf, sizeof(buf), &missing), -1);
    ck_assert_ptr_nonnull(missing);
    ck_assert_str_eq(missing, missing_rows[_i].spec);
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_key_header_case)
{
    rl_conf_t *conf = conf_from(key_conf);
    rl_request_t a;
    rl_request_t b;
    char ka[RL_KEY_MAX];
    char kb[RL_KEY_MAX];
    const char *missing;

    every_request(&a);
    every_request(&b);
    b.nheaders = 0;
    req_header(&b, "X-Other", "zzz");
    req_header(&b, "X-API-KEY", "k-1");
    b.method = "POST";
    ck_assert_int_gt(build_key(conf, &a, ka, sizeof(ka), &missing), 0);
    ck_assert_int_gt(build_key(conf, &b, kb, sizeof(kb), &missing), 0);
    ck_assert_str_eq(ka, kb);
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_key_too_small)
{
    rl_conf_t *conf = conf_from(key_conf);
    rl_request_t req;
    char buf[20];
    const char *missing = "unset";

    every_request(&req);
    ck_assert_int_eq(build_key(conf, &req, buf, sizeof(buf), &missing), -1);
    ck_assert_ptr_null(missing);
    rl_conf_free(conf);
}
END_TEST

/* value -> its encoding */
static const struct {
    const char *in;
    const char *out;
} encode_rows[] = {
    {"abc", "abc"},
    {"AZaz09._~@+-", "AZaz09._~@+-"},
    {"a b", "a%20b"},
    {"a}b", "a%7Db"},
    {"{x}", "%7Bx%7D"},
    {"a:b", "a%3Ab"},
    {"a|b", "a%7Cb"},
    {"100%", "100%25"},
    {"#abc", "%23abc"},
    {"/path/x", "%2Fpath%2Fx"},
    {"\x01\x1f\x7f", "%01%1F%7F"},
    {"\xc3\xa9t\xc3\xa9", "%C3%A9t%C3%A9"},
    {"a\r\nb", "a%0D%0Ab"},
    {"", ""},
};

START_TEST(test_encode_table)
{
    char out[RL_KEY_VALUE_MAX + 1];
    size_t n = rl_key_encode(encode_rows[_i].in, strlen(encode_rows[_i].in),
                             out, sizeof(out));

    ck_assert_str_eq(out, encode_rows[_i].out);
    ck_assert_int_eq((int)n, (int)strlen(encode_rows[_i].out));
}
END_TEST

START_TEST(test_encode_hashing)
{
    char raw[10241];
    char out[RL_KEY_VALUE_MAX + 1];
    char wide[512];
    char want[70];
    char digest[65];
    size_t n;

    /* 128 safe bytes stay as they are; 129 are hashed. */
    memset(raw, 'a', sizeof(raw));
    n = rl_key_encode(raw, RL_KEY_VALUE_MAX, out, sizeof(out));
    ck_assert_int_eq((int)n, RL_KEY_VALUE_MAX);
    ck_assert_int_eq(out[0], 'a');
    n = rl_key_encode(raw, RL_KEY_VALUE_MAX + 1, out, sizeof(out));
    rl_sha256_hex(raw, RL_KEY_VALUE_MAX + 1, digest);
    snprintf(want, sizeof(want), "#%s", digest);
    ck_assert_str_eq(out, want);
    ck_assert_int_eq((int)n, 65);

    /* A larger output buffer does not raise the limit. */
    n = rl_key_encode(raw, RL_KEY_VALUE_MAX + 1, wide, sizeof(wide));
    ck_assert_str_eq(wide, want);
    ck_assert_int_eq((int)n, 65);

    /* The limit applies to the encoded length: 42 '{' -> 126, 43 -> 129. */
    memset(raw, '{', 43);
    n = rl_key_encode(raw, 42, out, sizeof(out));
    ck_assert_int_eq((int)n, 126);
    ck_assert_int_eq(out[0], '%');
    n = rl_key_encode(raw, 43, out, sizeof(out));
    ck_assert_int_eq(out[0], '#');
    ck_assert_int_eq((int)n, 65);

    /* 10 KB: the hash of the raw value; one changed byte changes it. */
    memset(raw, 'z', sizeof(raw) - 1);
    raw[sizeof(raw) - 1] = '\0';
    rl_key_encode(raw, sizeof(raw) - 1, out, sizeof(out));
    rl_sha256_hex(raw, sizeof(raw) - 1, digest);
    snprintf(want, sizeof(want), "#%s", digest);
    ck_assert_str_eq(out, want);
    raw[sizeof(raw) - 2] = 'y';
    rl_key_encode(raw, sizeof(raw) - 1, out, sizeof(out));
    ck_assert_str_ne(out, want);
}
END_TEST

/* Checks the Redis Cluster view of key: the hash tag (between the first
 * '{' and the next '}') is the whole braced section, which ends the key,
 * and the key holds no other brace. */
static void check_tag(const char *key, int len)
{
    const char *open = strchr(key, '{');
    const char *close;

    ck_assert_int_eq(len, (int)strlen(key));
    ck_assert_int_le(len, RL_KEY_MAX);
    ck_assert_ptr_nonnull(open);
    close = strchr(open + 1, '}');
    ck_assert_ptr_nonnull(close);
    ck_assert_msg(close == key + len - 1, "hash tag ends early in %s", key);
    ck_assert_ptr_null(strchr(open + 1, '{'));
    ck_assert(strncmp(key, "rl:{pair|", 9) == 0);
}

START_TEST(test_key_hostile)
{
    static char long_a[10241];
    static char long_b[10241];
    static const char *hostile[] = {
        "a}b",
        "{x}",
        "a:b",
        "a|b",
        "b|c",
        "a",
        "b",
        "c",
        "a b",
        "}",
        "{",
        "|",
        ":",
        "}{",
        "x}:{y",
        "%7D",
        "%",
        "#",
        "\t\n\r\x01\x7f",
        "\xc3\xa9",
        long_a,
        long_b,
    };
    enum { N = sizeof(hostile) / sizeof(hostile[0]) };
    static char keys[N * N][RL_KEY_MAX];
    rl_conf_t *conf = conf_from(key_conf);
    rl_request_t req;
    const char *missing;
    int i;
    int j;
    int k;

    memset(long_a, 'q', sizeof(long_a) - 1);
    memset(long_b, 'q', sizeof(long_b) - 1);
    long_b[0] = '}';
    for (i = 0; i < N; i++) {
        for (j = 0; j < N; j++) {
            int n;

            req_init(&req, "GET", "/anything");
            req.tenant = hostile[i];
            req.user = hostile[j];
            n = build_key(conf, &req, keys[i * N + j], RL_KEY_MAX, &missing);
            ck_assert_int_gt(n, 0);
            check_tag(keys[i * N + j], n);
        }
    }
    /* Every (tenant, user) pair has its own key. */
    for (i = 0; i < N * N; i++) {
        for (k = i + 1; k < N * N; k++) {
            ck_assert_msg(strcmp(keys[i], keys[k]) != 0,
                          "pairs %d and %d share key %s", i, k, keys[i]);
        }
    }
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_key_no_shift)
{
    rl_conf_t *conf = conf_from(key_conf);
    rl_request_t a;
    rl_request_t b;
    char ka[RL_KEY_MAX];
    char kb[RL_KEY_MAX];
    const char *missing;

    req_init(&a, "GET", "/x");
    a.tenant = "a|b";
    a.user = "c";
    req_init(&b, "GET", "/x");
    b.tenant = "a";
    b.user = "b|c";
    ck_assert_int_gt(build_key(conf, &a, ka, sizeof(ka), &missing), 0);
    ck_assert_int_gt(build_key(conf, &b, kb, sizeof(kb), &missing), 0);
    ck_assert_str_eq(ka, "rl:{pair|a%7Cb|c}");
    ck_assert_str_eq(kb, "rl:{pair|a|b%7Cc}");
    ck_assert_str_ne(ka, kb);
    rl_conf_free(conf);
}
END_TEST

/* The Redis Cluster slot of every key of a decision (base, base:suffix,
 * base:suffix:b) is the CRC16 of the braced tag alone, and that tag is
 * exactly "<policy>|<encoded values>": no hostile identifier (in a
 * tenant, user, header, path parameter or path) can move a key to
 * another slot or open a second tag. */
START_TEST(test_key_slot_from_tag_only)
{
    static char long_v[300];
    static const char *hostile[] = {
        "a}b",          "{x}", "}{", "x}:{y", "{",        "}",    "a:b",  "a b",
        "\t\n\x01\x7f", "%7B", "|",  "a|b",   "\xc3\xa9", "{{}}", long_v,
    };
    rl_conf_t *conf = conf_from(key_conf);
    size_t i;

    memset(long_v, '{', sizeof(long_v) - 1);
    for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        const char *h = hostile[i];
        char path[512];
        char key[RL_KEY_MAX];
        char tag[RL_KEY_MAX];
        char full[RL_KEY_MAX + 32];
        char enc[RL_KEY_VALUE_MAX + 1];
        char penc[RL_KEY_VALUE_MAX + 1];
        char seg[RL_KEY_VALUE_MAX + 1];
        const char *missing;
        rl_request_t req;
        int slot;
        int n;

        /* tenant, user, ip and the X-Api-Key header carry the hostile
         * value; the {id} segment and the path hold it too (a path
         * segment cannot hold '/', so that byte stays out). */
        req_init(&req, "GET", "/");
        snprintf(path, sizeof(path), "/a/%s/x", h);
        req.path = path;
        req.path_len = strlen(path);
        req.tenant = h;
        req.user = h;
        req.ip = h;
        req_header(&req, "x-api-key", h);
        n = build_key(conf, &req, key, sizeof(key), &missing);
        ck_assert_int_gt(n, 0);
        rl_key_encode(h, strlen(h), enc, sizeof(enc));
        rl_key_encode(path, strlen(path), penc, sizeof(penc));
        rl_key_encode(h, strlen(h), seg, sizeof(seg));
        snprintf(tag, sizeof(tag),
                 "every|%s|%s|%s|GET|%%2Fa%%2F%%7Bid%%7D%%2F%%2A|%s|%s|%s", enc,
                 enc, enc, penc, seg, enc);
        snprintf(full, sizeof(full), "rl:{%s}", tag);
        ck_assert_str_eq(key, full);
        slot = rl_cluster_crc16(tag, strlen(tag)) & (RL_CLUSTER_SLOTS - 1);
        ck_assert_int_eq(rl_cluster_key_slot(key, (size_t)n), slot);
        snprintf(full, sizeof(full), "%s:f1m", key);
        ck_assert_int_eq(rl_cluster_key_slot(full, strlen(full)), slot);
        snprintf(full, sizeof(full), "%s:tg1s:b", key);
        ck_assert_int_eq(rl_cluster_key_slot(full, strlen(full)), slot);
        /* The prefix does not matter either. */
        snprintf(full, sizeof(full), "another-prefix:%s:s1s", strchr(key, '{'));
        ck_assert_int_eq(rl_cluster_key_slot(full, strlen(full)), slot);
    }
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_key_longest_fits)
{
    /* Eight fields of hashed values, the longest prefix and name: the key
     * still fits RL_KEY_MAX. */
    static char big[4096];
    char text[2048];
    char buf[RL_KEY_MAX];
    rl_conf_t *conf;
    rl_request_t req;
    const char *missing;
    int n;

    memset(big, '}', sizeof(big) - 1);
    snprintf(
        text, sizeof(text),
        "{\"store\": {\"prefix\": \"%s\"}, \"policies\": [{\"name\": \"%s\","
        " \"match\": {\"path\": \"/{p}\"},"
        " \"key\": [\"tenant\", \"user\", \"ip\", \"method\", \"route\", "
        "\"path\","
        " \"path.p\", \"header.h\"], \"limits\": [{\"requests\": 1, \"per\": "
        "\"1s\"}]}]}",
        "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp",
        "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn");
    conf = conf_from(text);
    req_init(&req, big, "/");
    /* A path of one 4 KB segment. */
    big[0] = '/';
    req.path = big;
    req.path_len = sizeof(big) - 1;
    req.method = big + 1;
    req.tenant = big + 1;
    req.user = big + 1;
    req.ip = big + 1;
    req_header(&req, "h", big + 1);
    n = rl_policy_key(
        &conf->policies[0], conf->store.prefix, &req,
        &(rl_match_t){.policy = &conf->policies[0],
                      .nparams = 1,
                      .params = {{"p", big + 1, sizeof(big) - 2}}},
        buf, sizeof(buf), &missing);
    ck_assert_int_gt(n, 0);
    ck_assert_int_lt(n, RL_KEY_MAX);
    rl_conf_free(conf);
}
END_TEST

/* ------------------------------------------------------------------------
 * Layers: groups, hash_tag, penalty keys
 * ---------------------------------------------------------------------- */

static const char *layer_conf =
    "{\"store\": {\"prefix\": \"rl\"},"
    " \"penalties\": [{\"name\": \"ham\", \"key\": [\"tenant\", \"user\"],"
    "  \"denials\": 5, \"within\": \"1m\", \"block\": \"10m\"}],"
    " \"policies\": ["
    " {\"name\": \"route\", \"match\": {\"path\": \"/r/{id}\"},"
    "  \"key\": [\"tenant\", \"path.id\"], \"hash_tag\": [\"tenant\"],"
    "  \"penalty\": \"ham\", \"limits\": [{\"requests\": 1, \"per\": \"1s\"}]},"
    " {\"name\": \"account\", \"group\": \"account\", \"match\": {\"path\": "
    "\"/*\"},"
    "  \"key\": [\"tenant\"], \"limits\": [{\"requests\": 1, \"per\": "
    "\"1s\"}]},"
    " {\"name\": \"catch\", \"match\": {\"path\": \"/*\"},"
    "  \"limits\": [{\"requests\": 1, \"per\": \"1s\"}]}"
    "]}";

START_TEST(test_find_all_groups)
{
    rl_conf_t *conf = conf_from(layer_conf);
    rl_match_t m[RL_MAX_OP_PARTS];
    rl_request_t req;

    req_init(&req, "GET", "/r/7");
    ck_assert_int_eq(rl_policy_find_all(conf, &req, m, RL_MAX_OP_PARTS), 2);
    ck_assert_str_eq(m[0].policy->name, "route");
    ck_assert_str_eq(m[1].policy->name, "account");
    req_init(&req, "GET", "/other");
    ck_assert_int_eq(rl_policy_find_all(conf, &req, m, RL_MAX_OP_PARTS), 2);
    ck_assert_str_eq(m[0].policy->name, "account");
    ck_assert_str_eq(m[1].policy->name, "catch");
    req.policy = "catch";
    ck_assert_int_eq(rl_policy_find_all(conf, &req, m, RL_MAX_OP_PARTS), 1);
    ck_assert_str_eq(m[0].policy->name, "catch");
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_key_hash_tag_and_penalty)
{
    rl_conf_t *conf = conf_from(layer_conf);
    rl_match_t m[RL_MAX_OP_PARTS];
    rl_request_t req;
    char buf[RL_KEY_MAX];
    const char *missing;

    req_init(&req, "GET", "/r/a}b");
    req.tenant = "t{1}";
    req.user = "u|2";
    ck_assert_int_eq(rl_policy_find_all(conf, &req, m, RL_MAX_OP_PARTS), 2);
    ck_assert_int_gt(rl_policy_key(m[0].policy, "rl", &req, &m[0], buf,
                                   sizeof(buf), &missing),
                     0);
    ck_assert_str_eq(buf, "rl:{t%7B1%7D}route|t%7B1%7D|a%7Db");
    ck_assert_int_gt(rl_policy_key(m[1].policy, "rl", &req, &m[1], buf,
                                   sizeof(buf), &missing),
                     0);
    ck_assert_str_eq(buf, "rl:{account|t%7B1%7D}");
    ck_assert_int_gt(rl_penalty_key(&conf->penalties[0], "rl", m[0].policy,
                                    &m[0], &req, buf, sizeof(buf), &missing),
                     0);
    ck_assert_str_eq(buf, "rl:{t%7B1%7D}!ham|t%7B1%7D|u%7C2");
    ck_assert_int_gt(rl_penalty_key(&conf->penalties[0], "rl", m[1].policy,
                                    &m[1], &req, buf, sizeof(buf), &missing),
                     0);
    ck_assert_str_eq(buf, "rl:{!ham|t%7B1%7D|u%7C2}");
    req.user = NULL;
    ck_assert_int_eq(rl_penalty_key(&conf->penalties[0], "rl", m[0].policy,
                                    &m[0], &req, buf, sizeof(buf), &missing),
                     -1);
    ck_assert_str_eq(missing, "user");
    rl_conf_free(conf);
}
END_TEST

/* The longest key a valid config allows: prefix and name of 64, eight
 * key fields that are also the hash tag, each value 126 bytes encoded.
 * The tag is then written hashed (each value "#<sha256>"), so the key
 * fits; a penalty key of the same tag values shares the tag (the slot);
 * a short tag is written as it is. */
static const char *long_conf =
    "{\"store\": {\"prefix\": "
    "\"PPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPP\"},"
    " \"penalties\": [{\"name\": \"ham\", \"key\": [\"header.h0\"],"
    "  \"denials\": 5, \"within\": \"1m\", \"block\": \"10m\"}],"
    " \"policies\": [{\"name\": "
    "\"NNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNN\","
    "  \"match\": {\"path\": \"/long/*\"}, \"penalty\": \"ham\","
    "  \"key\": [\"header.h0\", \"header.h1\", \"header.h2\", \"header.h3\","
    "           \"header.h4\", \"header.h5\", \"header.h6\", \"header.h7\"],"
    "  \"hash_tag\": [\"header.h0\", \"header.h1\", \"header.h2\","
    "   \"header.h3\", \"header.h4\", \"header.h5\", \"header.h6\","
    "   \"header.h7\"],"
    "  \"limits\": [{\"requests\": 1, \"per\": \"1s\"}]}]}";

START_TEST(test_key_longest_tag_fits)
{
    static const char *names[] = {"h0", "h1", "h2", "h3",
                                  "h4", "h5", "h6", "h7"};
    rl_conf_t *conf = conf_from(long_conf);
    rl_match_t m[RL_MAX_OP_PARTS];
    rl_request_t req;
    char value[43], buf[RL_KEY_MAX], pen[RL_KEY_MAX], digest[65], tag[160];
    const char *missing;
    int i, len;

    memset(value, '%', 42);
    value[42] = '\0';
    req_init(&req, "GET", "/long/x");
    for (i = 0; i < 8; i++) {
        req_header(&req, names[i], value);
    }
    ck_assert_int_eq(rl_policy_find_all(conf, &req, m, RL_MAX_OP_PARTS), 1);
    len = rl_policy_key(m[0].policy, conf->store.prefix, &req, &m[0], buf,
                        sizeof(buf), &missing);
    ck_assert_int_gt(len, 0);
    ck_assert_int_lt(len, RL_KEY_MAX);
    rl_sha256_hex(value, 42, digest);
    snprintf(tag, sizeof(tag), ":{#%s|#%s|", digest, digest);
    ck_assert_ptr_nonnull(strstr(buf, tag));
    /* the key values themselves stay encoded, not hashed */
    ck_assert_ptr_nonnull(strstr(buf, "}NNNN"));
    ck_assert_ptr_nonnull(strstr(buf, "|%25%25%25"));
    ck_assert_int_gt(rl_penalty_key(&conf->penalties[0], conf->store.prefix,
                                    m[0].policy, &m[0], &req, pen, sizeof(pen),
                                    &missing),
                     0);
    ck_assert_int_eq(strncmp(buf, pen, (size_t)(strchr(buf, '}') - buf + 1)),
                     0);
    /* a short tag as before */
    req.nheaders = 0;
    for (i = 0; i < 8; i++) {
        req_header(&req, names[i], "v");
    }
    ck_assert_int_gt(rl_policy_key(m[0].policy, "rl", &req, &m[0], buf,
                                   sizeof(buf), &missing),
                     0);
    ck_assert_int_eq(strncmp(buf, "rl:{v|v|v|v|v|v|v|v}NNNN", 24), 0);
    rl_conf_free(conf);
}
END_TEST

/* ------------------------------------------------------------------------
 * "policy" and verify_tenant; paths.case_sensitive
 * ---------------------------------------------------------------------- */

static const char *verify_conf =
    "{\"tenants\": [{\"id\": \"acme\", \"secret\": "
    "\"acme-secret-0123456789\"}],"
    " \"paths\": {\"case_sensitive\": false},"
    " \"policies\": ["
    " {\"name\": \"open\", \"match\": {\"path\": \"/open/*\"},"
    "  \"limits\": [{\"requests\": 1, \"per\": \"1s\"}]},"
    " {\"name\": \"events\", \"match\": {\"method\": \"POST\", \"path\": "
    "\"/v1/Events\"}, \"verify_tenant\": \"hmac\","
    "  \"limits\": [{\"requests\": 1, \"per\": \"1s\"}]},"
    " {\"name\": \"loose\", \"group\": \"g2\", \"match\": {\"path\": "
    "\"/v1/*\"}, \"limits\": [{\"requests\": 1, \"per\": \"1s\"}]},"
    " {\"name\": \"signed\", \"group\": \"g3\", \"match\": {\"path\": "
    "\"/s/*\"}, \"verify_tenant\": \"hmac\","
    "  \"limits\": [{\"requests\": 1, \"per\": \"1s\"}]}"
    "]}";

/* method, path, named policy, the verifier expected (NULL: none). */
static const struct {
    const char *method;
    const char *path;
    const char *name;
    const char *expect;
} verify_rows[] = {
    {"POST", "/v1/events", NULL, "events"},
    {"POST", "/v1/events", "loose", "events"}, /* the name skips nothing */
    {"POST", "/V1/EVENTS", "loose", "events"}, /* any case */
    {"GET", "/v1/events", "loose", NULL},      /* events does not match */
    {"GET", "/s/x", "open", "signed"},         /* named one does not fit */
    {"GET", "/s/x", "signed", "signed"},
    {"GET", "/open/x", NULL, NULL},
    {"GET", "/open/x", "signed", NULL},
};

START_TEST(test_policy_verifier)
{
    rl_conf_t *conf = conf_from(verify_conf);
    const rl_policy_t *p;
    rl_request_t req;

    req_init(&req, verify_rows[_i].method, verify_rows[_i].path);
    req.policy = verify_rows[_i].name;
    p = rl_policy_verifier(conf, &req);
    if (verify_rows[_i].expect == NULL) {
        ck_assert_msg(p == NULL, "row %d: got %s", _i, p ? p->name : "");
    } else {
        ck_assert_msg(p != NULL, "row %d: none", _i);
        ck_assert_str_eq(p->name, verify_rows[_i].expect);
    }
    rl_conf_free(conf);
}
END_TEST

/* case_sensitive false: literal segments match any case, a {param}
 * keeps its case; the default compares bytes. */
START_TEST(test_find_case_insensitive)
{
    rl_conf_t *conf = conf_from(verify_conf);
    rl_conf_t *exact = conf_from(find_conf);
    rl_pattern_t pat;
    rl_request_t req;
    rl_match_t m;
    char err[128];

    req_init(&req, "post", "/V1/eVeNtS");
    ck_assert_ptr_nonnull(rl_policy_find(conf, &req, &m));
    ck_assert_str_eq(m.policy->name, "events");
    req_init(&req, "GET", "/A/Special");
    ck_assert_ptr_null(rl_policy_find(exact, &req, &m));
    ck_assert_int_eq(rl_pattern_compile("/a/{id}", &pat, err, sizeof(err)), 0);
    ck_assert_int_eq(rl_pattern_match_case(&pat, "/A/XyZ", 6, 1, &m), 1);
    ck_assert_int_eq((int)m.params[0].len, 3);
    ck_assert(memcmp(m.params[0].value, "XyZ", 3) == 0);
    ck_assert_int_eq(rl_pattern_match_case(&pat, "/A/XyZ", 6, 0, &m), 0);
    rl_pattern_free(&pat);
    rl_conf_free(conf);
    rl_conf_free(exact);
}
END_TEST

/* A "path" key holds key_path when set (the lower-cased path). */
START_TEST(test_key_path_folded)
{
    rl_conf_t *conf = conf_from(
        "{\"policies\": [{\"name\": \"p\", \"match\": {\"path\": \"/a/*\"},"
        " \"key\": [\"path\"], \"limits\": [{\"requests\": 1, \"per\": "
        "\"1s\"}]}]}");
    rl_request_t req;
    rl_match_t m;
    const char *missing;
    char buf[RL_KEY_MAX];

    req_init(&req, "GET", "/a/X");
    ck_assert_ptr_nonnull(rl_policy_find(conf, &req, &m));
    req.key_path = "/a/x";
    req.key_path_len = 4;
    ck_assert_int_gt(rl_policy_key(&conf->policies[0], "rl", &req, &m, buf,
                                   sizeof(buf), &missing),
                     0);
    ck_assert_str_eq(buf, "rl:{p|%2Fa%2Fx}");
    rl_conf_free(conf);
}
END_TEST

/* ------------------------------------------------------------------------
 * Descriptor policies: the index (policy_desc.c) against a file-order scan
 * ---------------------------------------------------------------------- */

/* The reference: the scan rl_policy_find_descriptor did before the index,
 * the first policy in file order of domain whose entries fit req. */
static const rl_policy_t *scan_descriptor(const rl_conf_t *conf,
                                          const char *domain,
                                          const rl_request_t *req)
{
    int i, j;

    for (i = 0; i < conf->npolicies; i++) {
        const rl_policy_t *p = &conf->policies[i];

        if (p->domain == NULL || strcmp(p->domain, domain) != 0 ||
            p->ndesc != req->nheaders) {
            continue;
        }
        for (j = 0; j < p->ndesc; j++) {
            const rl_header_t *e = &req->headers[j];
            const rl_desc_match_t *d = &p->desc[j];

            if (e->name_len != strlen(d->key) ||
                memcmp(e->name, d->key, e->name_len) != 0 ||
                (d->value != NULL &&
                 (e->value_len != strlen(d->value) ||
                  memcmp(e->value, d->value, e->value_len) != 0))) {
                break;
            }
        }
        if (j == p->ndesc) {
            return p;
        }
    }
    return NULL;
}

/* Fills req with the entries of spec, "k=v,k2=v2" ("" for none; "k"
 * alone leaves the value NULL, which reads as ""), in buf (caller's, at
 * least strlen(spec) + 1 bytes; req borrows it). */
static void desc_req(rl_request_t *req, const char *spec, char *buf)
{
    char *save = NULL;
    char *tok;

    memset(req, 0, sizeof(*req));
    req->path = "";
    strcpy(buf, spec);
    for (tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        rl_header_t *h = &req->headers[req->nheaders++];
        char *eq = strchr(tok, '=');

        h->name = tok;
        h->name_len = eq != NULL ? (size_t)(eq - tok) : strlen(tok);
        if (eq != NULL) {
            *eq = '\0';
            h->value = eq + 1;
            h->value_len = strlen(eq + 1);
        }
    }
}

/* Looks up spec in domain with the index, checks it against the scan
 * and returns the policy's name (NULL for none). */
static const char *desc_find(const rl_conf_t *conf, const char *domain,
                             const char *spec)
{
    char buf[256];
    rl_request_t req;
    rl_match_t m;
    const rl_policy_t *p;

    desc_req(&req, spec, buf);
    memset(&m, 0xff, sizeof(m));
    p = rl_policy_find_descriptor(conf, domain, &req, &m);
    ck_assert_msg(p == scan_descriptor(conf, domain, &req),
                  "%s %s: index %s, scan %s", domain, spec,
                  p != NULL ? p->name : "none",
                  scan_descriptor(conf, domain, &req) != NULL
                      ? scan_descriptor(conf, domain, &req)->name
                      : "none");
    ck_assert_ptr_eq(m.policy, p);
    ck_assert_int_eq(m.nparams, 0);
    return p != NULL ? p->name : NULL;
}

/* A policy of a test config: domain NULL for an HTTP one (path /NAME),
 * else descriptor entries as in desc_req, "k" alone for any value. */
typedef struct desc_policy {
    const char *name;
    const char *domain;
    const char *entries;
} desc_policy_t;

/* Appends the JSON descriptor of entries ("k=v,k") to buf at *o. */
static void desc_json_entries(const char *entries, char *buf, size_t len,
                              size_t *o)
{
    char tmp[128];
    rl_request_t req;
    int i;

    desc_req(&req, entries, tmp);
    for (i = 0; i < req.nheaders; i++) {
        const rl_header_t *h = &req.headers[i];

        *o += (size_t)snprintf(buf + *o, len - *o, "%s{\"key\": \"%s\"",
                               i > 0 ? ", " : "", h->name);
        if (h->value != NULL) {
            *o += (size_t)snprintf(buf + *o, len - *o, ", \"value\": \"%s\"",
                                   h->value);
        }
        *o += (size_t)snprintf(buf + *o, len - *o, "}");
    }
}

/* Parses a config of the n policies p (fails the test on an error);
 * the caller frees it. */
static rl_conf_t *desc_conf_of(const desc_policy_t *p, int n)
{
    size_t len = (size_t)n * 256 + 64, o = 0;
    char *text = malloc(len);
    rl_conf_t *conf;
    int i;

    ck_assert_ptr_nonnull(text);
    o += (size_t)snprintf(text, len, "{\"policies\": [");
    for (i = 0; i < n; i++) {
        o += (size_t)snprintf(text + o, len - o, "%s{\"name\": \"%s\", ",
                              i > 0 ? "," : "", p[i].name);
        if (p[i].domain == NULL) {
            o += (size_t)snprintf(text + o, len - o,
                                  "\"match\": {\"path\": \"/%s\"}", p[i].name);
        } else {
            o += (size_t)snprintf(text + o, len - o,
                                  "\"match\": {\"domain\": \"%s\", "
                                  "\"descriptor\": [",
                                  p[i].domain);
            desc_json_entries(p[i].entries, text, len, &o);
            o += (size_t)snprintf(text + o, len - o, "]}");
        }
        o += (size_t)snprintf(text + o, len - o, ", \"limits\": []}");
        ck_assert_uint_lt(o, len);
    }
    snprintf(text + o, len - o, "]}");
    conf = conf_from(text);
    free(text);
    return conf;
}

/* File order decides between fixed values and a wildcard either way,
 * domains and nesting keep lists apart, duplicates never win. */
static const desc_policy_t desc_policies[] = {
    /* fixed values before the wildcard (what the converter writes) */
    {"u1", "d", "user=u1"},
    {"u2", "d", "user=u2"},
    {"user", "d", "user"},
    /* the wildcard before a fixed value: it wins */
    {"any-ip", "d", "ip"},
    {"ip-9", "d", "ip=9"},
    {"http", NULL, NULL},
    /* nested: a fixed first value, then any or fixed second ones */
    {"m-to", "d", "type=m,to"},
    {"to-1", "d", "type=m,to=1"},
    {"t-to1", "d", "type,to=1"},
    {"t-to", "d", "type,to"},
    /* another domain, and names that run together */
    {"e-user", "e", "user"},
    {"ab-c", "ab", "c=v"},
    {"a-bc", "a", "bc=v"},
    /* a duplicate of u1: never reached */
    {"u1-again", "d", "user=u1"},
};

/* domain, entries, expected policy (NULL: none). */
static const struct {
    const char *domain;
    const char *entries;
    const char *expect;
} desc_rows[] = {
    {"d", "user=u1", "u1"},
    {"d", "user=u2", "u2"},
    {"d", "user=u3", "user"},
    {"d", "user=", "user"},
    {"d", "user=u1,x=1", NULL},
    {"d", "ip=9", "any-ip"},
    {"d", "ip=8", "any-ip"},
    {"d", "type=m,to=1", "m-to"},
    {"d", "type=m,to=2", "m-to"},
    {"d", "type=n,to=1", "t-to1"},
    {"d", "type=n,to=2", "t-to"},
    {"d", "to=1,type=m", NULL},
    {"d", "type=m", NULL},
    {"e", "user=u1", "e-user"},
    {"e", "ip=9", NULL},
    {"ab", "c=v", "ab-c"},
    {"a", "bc=v", "a-bc"},
    {"a", "c=v", NULL},
    {"abc", "c=v", NULL},
    {"", "user=u1", NULL},
    {"d", "", NULL},
    {"d", "User=u1", NULL},
    {"d", "other=1", NULL},
};

START_TEST(test_find_descriptor)
{
    rl_conf_t *conf = desc_conf_of(
        desc_policies, (int)(sizeof(desc_policies) / sizeof(desc_policies[0])));
    const char *got =
        desc_find(conf, desc_rows[_i].domain, desc_rows[_i].entries);

    if (desc_rows[_i].expect == NULL) {
        ck_assert_msg(got == NULL, "row %d: got %s", _i, got);
    } else {
        ck_assert_msg(got != NULL, "row %d: none", _i);
        ck_assert_str_eq(got, desc_rows[_i].expect);
    }
    rl_conf_free(conf);
}
END_TEST

/* A small deterministic generator (xorshift32), so a failure reproduces. */
static uint32_t desc_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Alphabets small enough that policies and requests meet often; "a"/"ab"
 * and "bc"/"c" run together when concatenated. */
static const char *const desc_domains[] = {"a", "ab", "d"};
static const char *const desc_keys[] = {"bc", "c", "k"};
static const char *const desc_values[] = {"1", "2", "12", "x"};
#define DESC_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Writes one random entry list of 1..3 entries to buf ("k=v,k"): for a
 * policy (one entry in three any-value, "k"), or for a request (values
 * no policy names among them). */
static void desc_gen_entries(uint32_t *seed, int policy, char *buf, size_t len)
{
    int n = 1 + (int)(desc_rand(seed) % 3);
    size_t o = 0;
    int i;

    for (i = 0; i < n; i++) {
        const char *k = desc_keys[desc_rand(seed) % DESC_N(desc_keys)];
        int v = (int)(desc_rand(seed) % (DESC_N(desc_values) + 2));
        const char *val = v < DESC_N(desc_values) ? desc_values[v] : "zz";

        o += (size_t)snprintf(buf + o, len - o, "%s%s%s%s", i > 0 ? "," : "", k,
                              policy && val[0] == 'z' ? "" : "=",
                              policy && val[0] == 'z' ? "" : val);
    }
}

#define DESC_GEN_MAX 60

/* Many random configs of 0..59 policies (one in eight HTTP), each asked
 * many random descriptors (0..3 entries, in the configs' domains and one
 * they lack): the index answers what the scan does, every time. */
START_TEST(test_find_descriptor_random)
{
    static char specs[DESC_GEN_MAX][64], names[DESC_GEN_MAX][8];
    desc_policy_t p[DESC_GEN_MAX];
    uint32_t seed = 0x9e3779b9u;
    int found = 0, nested = 0, total = 0;
    int c, r, i;

    for (c = 0; c < 300; c++) {
        int n = (int)(desc_rand(&seed) % DESC_GEN_MAX);
        rl_conf_t *conf;

        for (i = 0; i < n; i++) {
            snprintf(names[i], sizeof(names[i]), "p%d", i);
            desc_gen_entries(&seed, 1, specs[i], sizeof(specs[i]));
            p[i].name = names[i];
            p[i].entries = specs[i];
            p[i].domain =
                desc_rand(&seed) % 8 == 0
                    ? NULL
                    : desc_domains[desc_rand(&seed) % DESC_N(desc_domains)];
        }
        conf = desc_conf_of(p, n);
        for (r = 0; r < 200; r++) {
            char spec[64] = "";
            int d = (int)(desc_rand(&seed) % (DESC_N(desc_domains) + 1));

            if (desc_rand(&seed) % 16 != 0) {
                desc_gen_entries(&seed, 0, spec, sizeof(spec));
            }
            if (desc_find(conf,
                          d < DESC_N(desc_domains) ? desc_domains[d] : "zz",
                          spec) != NULL) {
                found++;
                nested += strchr(spec, ',') != NULL;
            }
            total++;
        }
        rl_conf_free(conf);
    }
    /* the alphabets make both outcomes common, nested fits included */
    ck_assert_int_gt(found, total / 20);
    ck_assert_int_lt(found, total - total / 20);
    ck_assert_int_gt(nested, found / 10);
}
END_TEST

/* The review's shape, smaller: 3000 listed values, then the general rule;
 * listed values find their own policy, others the general one. */
START_TEST(test_find_descriptor_many_values)
{
    enum { NVALUES = 3000 };
    static char names[NVALUES][8], specs[NVALUES][16];
    static desc_policy_t p[NVALUES + 1];
    char spec[32];
    rl_conf_t *conf;
    int i;

    for (i = 0; i < NVALUES; i++) {
        snprintf(names[i], sizeof(names[i]), "u%d", i);
        snprintf(specs[i], sizeof(specs[i]), "user=u%d", i);
        p[i] = (desc_policy_t){names[i], "d", specs[i]};
    }
    p[NVALUES] = (desc_policy_t){"user", "d", "user"};
    conf = desc_conf_of(p, NVALUES + 1);
    for (i = 0; i < NVALUES + 100; i += 7) {
        snprintf(spec, sizeof(spec), "user=u%d", i);
        ck_assert_str_eq(desc_find(conf, "d", spec),
                         i < NVALUES ? spec + strlen("user=") : "user");
    }
    rl_conf_free(conf);
}
END_TEST

/* A config without descriptor policies has no index and matches none. */
START_TEST(test_find_descriptor_none)
{
    rl_conf_t *conf = conf_from(find_conf);

    ck_assert_ptr_null(conf->desc_index);
    ck_assert_ptr_null(desc_find(conf, "d", "user=u1"));
    rl_conf_free(conf);
    conf = conf_from("{\"policies\": []}");
    ck_assert_ptr_null(desc_find(conf, "d", "user=u1"));
    rl_conf_free(conf);
}
END_TEST

/* Builds the suite. */
static Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("policy");

    tcase_add_loop_test(
        tc, test_compile_errors, 0,
        (int)(sizeof(compile_errors) / sizeof(compile_errors[0])));
    tcase_add_test(tc, test_compile_shapes);
    tcase_add_loop_test(tc, test_match_table, 0,
                        (int)(sizeof(match_rows) / sizeof(match_rows[0])));
    tcase_add_loop_test(tc, test_find, 0,
                        (int)(sizeof(find_rows) / sizeof(find_rows[0])));
    tcase_add_loop_test(tc, test_find_example, 0,
                        (int)(sizeof(example_rows) / sizeof(example_rows[0])));
    tcase_add_test(tc, test_find_empty_conf);
    tcase_add_test(tc, test_key_every_field);
    tcase_add_test(tc, test_key_shared);
    tcase_add_loop_test(tc, test_key_missing, 0,
                        (int)(sizeof(missing_rows) / sizeof(missing_rows[0])));
    tcase_add_test(tc, test_key_header_case);
    tcase_add_test(tc, test_key_too_small);
    tcase_add_loop_test(tc, test_encode_table, 0,
                        (int)(sizeof(encode_rows) / sizeof(encode_rows[0])));
    tcase_add_test(tc, test_encode_hashing);
    tcase_add_test(tc, test_key_hostile);
    tcase_add_test(tc, test_key_no_shift);
    tcase_add_test(tc, test_key_slot_from_tag_only);
    tcase_add_test(tc, test_key_longest_fits);
    tcase_add_test(tc, test_find_all_groups);
    tcase_add_loop_test(tc, test_policy_verifier, 0,
                        (int)(sizeof(verify_rows) / sizeof(verify_rows[0])));
    tcase_add_test(tc, test_find_case_insensitive);
    tcase_add_test(tc, test_key_path_folded);
    tcase_add_test(tc, test_key_hash_tag_and_penalty);
    tcase_add_test(tc, test_key_longest_tag_fits);
    tcase_add_loop_test(tc, test_find_descriptor, 0,
                        (int)(sizeof(desc_rows) / sizeof(desc_rows[0])));
    tcase_add_test(tc, test_find_descriptor_random);
    tcase_add_test(tc, test_find_descriptor_many_values);
    tcase_add_test(tc, test_find_descriptor_none);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(policy_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
