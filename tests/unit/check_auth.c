/* Unit tests of auth.c and of the auth, tenants and tls sections of the
 * config: tables of requests, each with the status and code a caller
 * sees. Expected signatures were computed independently (Python's hmac
 * module), not with the code under test. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "auth.h"
#include "conf.h"
#include "request.h"

#define NOW 1730113200LL
#define CALLER_SECRET "0123456789abcdef0123"
#define TENANT_SECRET "tenant-secret-0123456789"
#define BEARER_KEY "bearer-key-0123456789"
/* SHA-256 of BEARER_KEY */
#define BEARER_SHA                                                             \
    "e4a3bc675af0eebe5e9a98336e02f8601f0f07c9c498feddeb7e208dd1bf3315"
#define EMPTY_SHA                                                              \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* HMAC(CALLER_SECRET, "1730113200\nPOST\n/v1/decide\n" +
 * SHA-256('{"path":"/x"}')) */
#define CALLER_SIG                                                             \
    "hmac-sha256="                                                             \
    "854d9e20e2cb69d15a9f3634e356800222838559b3fed4f6ec152f38e075dc44"
#define CALLER_BODY "{\"path\":\"/x\"}"
/* HMAC(TENANT_SECRET, "1730113200\nPOST\n/v1/events?x=1\n" + EMPTY_SHA) */
#define TENANT_SIG                                                             \
    "hmac-sha256="                                                             \
    "b948a17fa55116cb333c3002723147921e7212f03e045840fdd9353112fd8cc0"

static rl_conf_t *parse(const char *text)
{
    char err[512];
    rl_conf_t *conf = rl_conf_parse(text, strlen(text), err, sizeof(err));

    ck_assert_msg(conf != NULL, "%s", err);
    return conf;
}

static const char hmac_conf[] =
    "{\"auth\": {\"mode\": \"hmac\", \"callers\": ["
    " {\"id\": \"gateway-eu\", \"secret\": \"" CALLER_SECRET "\"},"
    " {\"id\": \"gateway-old\", \"secret\": \"" CALLER_SECRET
    "\", \"status\": \"suspended\"}]},"
    " \"tenants\": [{\"id\": \"acme-corp\", \"secret\": \"" TENANT_SECRET "\"},"
    "  {\"id\": \"gone-corp\", \"secret\": \"" TENANT_SECRET
    "\", \"status\": \"suspended\"}],"
    " \"policies\": [{\"name\": \"p\", \"match\": {\"path\": \"/v1/events\"}, "
    "\"key\": [\"tenant\"],"
    "  \"limits\": [{\"requests\": 5, \"per\": \"1m\"}], \"verify_tenant\": "
    "\"hmac\"}]}";

/* ---------------------------------------------------------------------
 * The signature itself
 * ------------------------------------------------------------------- */

START_TEST(test_sign_vectors)
{
    char out[RL_AUTH_SIG_LEN + 1];
    const char *body_sha =
        "3dac3d9396c816b7e4926c7c4b8f17dd0e6c5a306b4362f05218096095062dd2";
    const char *body_sha_upper =
        "3DAC3D9396C816B7E4926C7C4B8F17DD0E6C5A306B4362F05218096095062DD2";

    ck_assert_int_eq(rl_auth_sign((const unsigned char *)CALLER_SECRET,
                                  strlen(CALLER_SECRET), "1730113200", 10,
                                  "POST", 4, "/v1/decide", 10, body_sha, out),
                     0);
    ck_assert_str_eq(out, CALLER_SIG);
    /* METHOD is upper-cased and the body hash read in any case. */
    ck_assert_int_eq(rl_auth_sign((const unsigned char *)CALLER_SECRET,
                                  strlen(CALLER_SECRET), "1730113200", 10,
                                  "post", 4, "/v1/decide", 10, body_sha_upper,
                                  out),
                     0);
    ck_assert_str_eq(out, CALLER_SIG);
    ck_assert_int_eq(rl_auth_sign((const unsigned char *)TENANT_SECRET,
                                  strlen(TENANT_SECRET), "1730113200", 10,
                                  "POST", 4, "/v1/events?x=1", 14, EMPTY_SHA,
                                  out),
                     0);
    ck_assert_str_eq(out, TENANT_SIG);
    rl_auth_thread_cleanup();
}
END_TEST

/* ---------------------------------------------------------------------
 * Callers, hmac mode
 * ------------------------------------------------------------------- */

#define H(n, v)                                                                \
    {                                                                          \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                     \
    }
#define ID_OK H("X-Caller-Id", "gateway-eu")
#define TS_OK H("X-Caller-Timestamp", "1730113200")
#define SIG_OK H("X-Caller-Signature", CALLER_SIG)

static const struct {
    const char *what;
    const char *method;
    const char *target;
    const char *body;
    int64_t now;
    rl_header_t headers[4];
    int nheaders;
    int status; /* 0 = accepted */
    const char *code;
} caller_rows[] = {
    {"valid",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK, TS_OK, SIG_OK},
     3,
     0,
     NULL},
    {"names in any case",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {H("x-caller-id", "gateway-eu"), H("X-CALLER-TIMESTAMP", "1730113200"),
      H("x-caller-signature", CALLER_SIG)},
     3,
     0,
     NULL},
    {"300 s behind",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW + 300,
     {ID_OK, TS_OK, SIG_OK},
     3,
     0,
     NULL},
    {"300 s ahead",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW - 300,
     {ID_OK, TS_OK, SIG_OK},
     3,
     0,
     NULL},
    {"no id",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {TS_OK, SIG_OK},
     2,
     401,
     "AUTH_002"},
    {"no timestamp",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK, SIG_OK},
     2,
     401,
     "AUTH_002"},
    {"no signature",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK, TS_OK},
     2,
     401,
     "AUTH_002"},
    {"empty signature",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK, TS_OK, H("X-Caller-Signature", "")},
     3,
     401,
     "AUTH_002"},
    {"nothing",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK},
     0,
     401,
     "AUTH_002"},
    {"unknown caller",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {H("X-Caller-Id", "gateway-e"), TS_OK, SIG_OK},
     3,
     401,
     "AUTH_005"},
    {"301 s behind",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW + 301,
     {ID_OK, TS_OK, SIG_OK},
     3,
     401,
     "AUTH_004"},
    {"301 s ahead",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW - 301,
     {ID_OK, TS_OK, SIG_OK},
     3,
     401,
     "AUTH_004"},
    {"timestamp in ms",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK, H("X-Caller-Timestamp", "1730113200000"), SIG_OK},
     3,
     401,
     "AUTH_004"},
    {"timestamp not digits",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK, H("X-Caller-Timestamp", "17301132OO"), SIG_OK},
     3,
     401,
     "AUTH_004"},
    {"negative timestamp",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK, H("X-Caller-Timestamp", "-1730113200"), SIG_OK},
     3,
     401,
     "AUTH_004"},
    {"huge timestamp",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK, H("X-Caller-Timestamp", "99999999999999999999999"), SIG_OK},
     3,
     401,
     "AUTH_004"},
    {"other body",
     "POST",
     "/v1/decide",
     "{\"path\":\"/y\"}",
     NOW,
     {ID_OK, TS_OK, SIG_OK},
     3,
     401,
     "AUTH_001"},
    {"other method",
     "PUT",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK, TS_OK, SIG_OK},
     3,
     401,
     "AUTH_001"},
    {"query string added",
     "POST",
     "/v1/decide?a=1",
     CALLER_BODY,
     NOW,
     {ID_OK, TS_OK, SIG_OK},
     3,
     401,
     "AUTH_001"},
    {"signature upper-case",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK, TS_OK,
      H("X-Caller-Signature",
        "hmac-sha256="
        "854D9E20E2CB69D15A9F3634E356800222838559B3FED4F6EC152F38E075DC44")},
     3,
     401,
     "AUTH_001"},
    {"signature without prefix",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK, TS_OK,
      H("X-Caller-Signature",
        "854d9e20e2cb69d15a9f3634e356800222838559b3fed4f6ec152f38e075dc44")},
     3,
     401,
     "AUTH_001"},
    {"signature one digit off",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK, TS_OK,
      H("X-Caller-Signature",
        "hmac-sha256="
        "854d9e20e2cb69d15a9f3634e356800222838559b3fed4f6ec152f38e075dc45")},
     3,
     401,
     "AUTH_001"},
    {"signature truncated",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK, TS_OK,
      H("X-Caller-Signature", "hmac-sha256=854d9e20e2cb69d15a9f3634e3568002")},
     3,
     401,
     "AUTH_001"},
    {"signature twice",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {ID_OK, TS_OK, SIG_OK, SIG_OK},
     4,
     401,
     "AUTH_001"},
    {"suspended, valid signature",
     "POST",
     "/v1/decide",
     CALLER_BODY,
     NOW,
     {H("X-Caller-Id", "gateway-old"), TS_OK, SIG_OK},
     3,
     403,
     "AUTH_003"},
    {"suspended, bad signature",
     "POST",
     "/v1/decide",
     "{}",
     NOW,
     {H("X-Caller-Id", "gateway-old"), TS_OK, SIG_OK},
     3,
     401,
     "AUTH_001"},
};

START_TEST(test_caller_hmac)
{
    rl_conf_t *conf = parse(hmac_conf);
    const rl_principal_t *caller = NULL;
    rl_auth_input_t in;
    rl_auth_error_t err;
    int rc;

    in.method = caller_rows[_i].method;
    in.method_len = strlen(in.method);
    in.target = caller_rows[_i].target;
    in.target_len = strlen(in.target);
    in.body = caller_rows[_i].body;
    in.body_len = strlen(in.body);
    in.headers = caller_rows[_i].headers;
    in.nheaders = caller_rows[_i].nheaders;
    rc = rl_auth_caller(&conf->auth, &in, caller_rows[_i].now, &caller, &err);
    if (caller_rows[_i].status == 0) {
        ck_assert_msg(rc == 0, "%s: %s %s", caller_rows[_i].what, err.code,
                      err.message);
        ck_assert_ptr_nonnull(caller);
        ck_assert_str_eq(caller->id, "gateway-eu");
    } else {
        ck_assert_msg(rc == -1, "%s: accepted", caller_rows[_i].what);
        ck_assert_msg(err.status == caller_rows[_i].status &&
                          strcmp(err.code, caller_rows[_i].code) == 0,
                      "%s: got %d %s (%s)", caller_rows[_i].what, err.status,
                      err.code, err.message);
        ck_assert_msg(strstr(err.message, CALLER_SECRET) == NULL,
                      "secret in message");
    }
    rl_conf_free(conf);
    rl_auth_thread_cleanup();
}
END_TEST

START_TEST(test_caller_mode_none)
{
    rl_conf_t *conf = parse("{\"policies\": []}");
    const rl_principal_t *caller = (const rl_principal_t *)1;
    rl_auth_input_t in = {"POST", 4, "/v1/decide", 10, "", 0, NULL, 0};
    rl_auth_error_t err;

    ck_assert_int_eq(conf->auth.mode, RL_AUTH_NONE);
    ck_assert_int_eq(rl_auth_caller(&conf->auth, &in, NOW, &caller, &err), 0);
    ck_assert_ptr_null(caller);
    rl_conf_free(conf);
}
END_TEST

/* ---------------------------------------------------------------------
 * Callers, bearer mode
 * ------------------------------------------------------------------- */

static const struct {
    const char *authorization; /* NULL = header absent */
    int status;
    const char *code;
    const char *caller;
} bearer_rows[] = {
    {"Bearer " BEARER_KEY, 0, NULL, "gateway-eu"},
    {"bearer " BEARER_KEY, 0, NULL, "gateway-eu"},
    {"Bearer   " BEARER_KEY, 0, NULL, "gateway-eu"},
    {"Bearer other-key-0123456789", 401, "AUTH_001", NULL},
    {"Bearer " BEARER_SHA, 401, "AUTH_001", NULL}, /* the hash is not the key */
    {"Bearer suspended-key-0123456789", 403, "AUTH_003", NULL},
    {NULL, 401, "AUTH_002", NULL},
    {"", 401, "AUTH_002", NULL},
    {"Bearer ", 401, "AUTH_002", NULL},
    {"Basic Z2F0ZXdheTpzZWNyZXQ=", 401, "AUTH_002", NULL},
    {BEARER_KEY, 401, "AUTH_002", NULL},
};

START_TEST(test_caller_bearer)
{
    /* The second hash, SHA-256("suspended-key-0123456789"), is written in
     * upper case: the config normalises it. */
    rl_conf_t *conf = parse(
        "{\"auth\": {\"mode\": \"bearer\", \"callers\": ["
        " {\"id\": \"gateway-eu\", \"key_sha256\": \"" BEARER_SHA "\"},"
        " {\"id\": \"gateway-old\", \"status\": \"suspended\", \"key_sha256\": "
        "\"4559BFE000222006F0D5E01087EF08A48E5D7CE9B91097654F5DD4011062D59B\"}]"
        "},"
        " \"policies\": []}");
    const rl_principal_t *caller = NULL;
    rl_header_t h = {"Authorization", 13, NULL, 0};
    rl_auth_input_t in = {"POST", 4, "/v1/decide", 10, "", 0, &h, 0};
    rl_auth_error_t err;
    int rc;

    if (bearer_rows[_i].authorization != NULL) {
        h.value = bearer_rows[_i].authorization;
        h.value_len = strlen(h.value);
        in.nheaders = 1;
    }
    rc = rl_auth_caller(&conf->auth, &in, NOW, &caller, &err);
    if (bearer_rows[_i].status == 0) {
        ck_assert_msg(rc == 0, "row %d: %s %s", _i, err.code, err.message);
        ck_assert_str_eq(caller->id, bearer_rows[_i].caller);
    } else {
        ck_assert_msg(rc == -1, "row %d accepted", _i);
        ck_assert_msg(err.status == bearer_rows[_i].status &&
                          strcmp(err.code, bearer_rows[_i].code) == 0,
                      "row %d: got %d %s (%s)", _i, err.status, err.code,
                      err.message);
    }
    rl_conf_free(conf);
    rl_auth_thread_cleanup();
}
END_TEST

/* ---------------------------------------------------------------------
 * Tenants
 * ------------------------------------------------------------------- */

#define TH "\"X-Tenant-Id\": \"acme-corp\", \"X-Timestamp\": \"1730113200\", "
#define TSIG "\"X-Signature\": \"" TENANT_SIG "\""

static const struct {
    const char *json;
    int64_t now;
    int status;
    const char *code;
} tenant_rows[] = {
    {"{\"method\": \"POST\", \"path\": \"/v1/events?x=1\", \"headers\": {" TH
         TSIG "}}",
     NOW, 0, NULL},
    {"{\"method\": \"post\", \"path\": \"/v1/events?x=1\", \"tenant\": "
     "\"acme-corp\", \"headers\": {" TH TSIG "}}",
     NOW, 0, NULL},
    {"{\"method\": \"POST\", \"path\": \"/v1/events?x=1\", \"headers\": {" TH
         TSIG ", \"X-Content-SHA256\": \"" EMPTY_SHA "\"}}",
     NOW, 0, NULL},
    {"{\"method\": \"POST\", \"path\": \"/v1/events?x=1\", \"tenant\": "
     "\"other-corp\", \"headers\": {" TH TSIG "}}",
     NOW, 401, "AUTH_001"},
    {"{\"method\": \"POST\", \"path\": \"/v1/events?x=2\", \"headers\": {" TH
         TSIG "}}",
     NOW, 401, "AUTH_001"},
    {"{\"method\": \"POST\", \"path\": \"/v1/events\", \"headers\": {" TH TSIG
     "}}",
     NOW, 401, "AUTH_001"},
    {"{\"method\": \"GET\", \"path\": \"/v1/events?x=1\", \"headers\": {" TH
         TSIG "}}",
     NOW, 401, "AUTH_001"},
    {"{\"method\": \"POST\", \"path\": \"/v1/events?x=1\", \"headers\": {" TH
         TSIG ", \"X-Content-SHA256\": "
     "\"3dac3d9396c816b7e4926c7c4b8f17dd0e6c5a306b4362f05218096095062dd2\"}}",
     NOW, 401, "AUTH_001"},
    {"{\"method\": \"POST\", \"path\": \"/v1/events?x=1\", \"headers\": {" TH
         TSIG ", \"X-Content-SHA256\": \"xyz\"}}",
     NOW, 401, "AUTH_001"},
    {"{\"method\": \"POST\", \"path\": \"/v1/events?x=1\", \"headers\": {" TH
         TSIG "}}",
     NOW + 301, 401, "AUTH_004"},
    {"{\"method\": \"POST\", \"path\": \"/v1/events?x=1\", \"headers\": {" TH
         TSIG "}}",
     NOW - 301, 401, "AUTH_004"},
    {"{\"method\": \"POST\", \"path\": \"/v1/events?x=1\", \"headers\": {" TH
     "\"X-Signatur\": \"x\"}}",
     NOW, 401, "AUTH_002"},
    {"{\"method\": \"POST\", \"path\": \"/v1/events?x=1\", \"headers\": "
     "{\"X-Timestamp\": \"1730113200\", " TSIG "}}",
     NOW, 401, "AUTH_002"},
    {"{\"method\": \"POST\", \"path\": \"/v1/events?x=1\"}", NOW, 401,
     "AUTH_002"},
    {"{\"method\": \"POST\", \"path\": \"/v1/events?x=1\", \"headers\": "
     "{\"X-Tenant-Id\": \"acme\", "
     "\"X-Timestamp\": \"1730113200\", " TSIG "}}",
     NOW, 401, "AUTH_005"},
    {"{\"method\": \"POST\", \"path\": \"/v1/events?x=1\", \"headers\": "
     "{\"X-Tenant-Id\": \"acme-corpX\", "
     "\"X-Timestamp\": \"1730113200\", " TSIG "}}",
     NOW, 401, "AUTH_005"},
    {"{\"method\": \"POST\", \"path\": \"/v1/events?x=1\", \"headers\": "
     "{\"X-Tenant-Id\": \"gone-corp\", "
     "\"X-Timestamp\": \"1730113200\", \"X-Signature\": "
     "\"hmac-sha256="
     "9f2b1c7bfc8c8b6e55b3d4d1f9e1b0b1d84f6a0f0a3e0e8f6f3d7b1a2c4e5f60\"}}",
     NOW, 401, "AUTH_001"},
};

START_TEST(test_tenant)
{
    rl_conf_t *conf = parse(hmac_conf);
    json_error_t jerr;
    json_t *obj = json_loads(tenant_rows[_i].json, 0, &jerr);
    rl_request_t req;
    rl_request_error_t rerr;
    rl_auth_error_t err;
    const char *tenant = NULL;
    int rc;

    ck_assert_msg(obj != NULL, "row %d: %s", _i, jerr.text);
    ck_assert_int_eq(rl_request_from_json(obj, &req, &rerr), 0);
    rc = rl_auth_tenant(conf, &req, tenant_rows[_i].now, &tenant, &err);
    if (tenant_rows[_i].status == 0) {
        ck_assert_msg(rc == 0, "row %d: %s %s", _i, err.code, err.message);
        ck_assert_str_eq(tenant, "acme-corp");
    } else {
        ck_assert_msg(rc == -1, "row %d accepted", _i);
        ck_assert_msg(err.status == tenant_rows[_i].status &&
                          strcmp(err.code, tenant_rows[_i].code) == 0,
                      "row %d: got %d %s (%s)", _i, err.status, err.code,
                      err.message);
    }
    json_decref(obj);
    rl_conf_free(conf);
    rl_auth_thread_cleanup();
}
END_TEST

/* A signature header twice (two HTTP lines on /v1/authorize; a decide
 * body cannot carry it, request.c refuses two spellings of one name) is
 * 401 AUTH_001: neither copy is used. */
START_TEST(test_tenant_header_twice)
{
    rl_conf_t *conf = parse(hmac_conf);
    json_t *obj = json_loads(tenant_rows[0].json, 0, NULL);
    rl_request_t req;
    rl_request_error_t rerr;
    rl_auth_error_t err;
    const char *tenant = NULL;
    rl_header_t twice = {"x-signature", 11, "hmac-sha256=00", 14};

    ck_assert_int_eq(rl_request_from_json(obj, &req, &rerr), 0);
    req.headers[req.nheaders++] = twice;
    ck_assert_int_eq(rl_auth_tenant(conf, &req, NOW, &tenant, &err), -1);
    ck_assert_int_eq(err.status, 401);
    ck_assert_str_eq(err.code, "AUTH_001");
    ck_assert_ptr_nonnull(strstr(err.message, "more than once"));
    json_decref(obj);
    rl_conf_free(conf);
    rl_auth_thread_cleanup();
}
END_TEST

/* A suspended tenant with a valid signature gets 403 AUTH_003. */
START_TEST(test_tenant_suspended)
{
    rl_conf_t *conf = parse(hmac_conf);
    char sig[RL_AUTH_SIG_LEN + 1], json[512];
    json_t *obj;
    rl_request_t req;
    rl_request_error_t rerr;
    rl_auth_error_t err;
    const char *tenant;

    ck_assert_int_eq(rl_auth_sign((const unsigned char *)TENANT_SECRET,
                                  strlen(TENANT_SECRET), "1730113200", 10,
                                  "POST", 4, "/v1/events?x=1", 14, EMPTY_SHA,
                                  sig),
                     0);
    snprintf(
        json, sizeof(json),
        "{\"method\": \"POST\", \"path\": \"/v1/events?x=1\", \"headers\": "
        "{\"X-Tenant-Id\": \"gone-corp\", \"X-Timestamp\": \"1730113200\", "
        "\"X-Signature\": \"%s\"}}",
        sig);
    obj = json_loads(json, 0, NULL);
    ck_assert_int_eq(rl_request_from_json(obj, &req, &rerr), 0);
    ck_assert_int_eq(rl_auth_tenant(conf, &req, NOW, &tenant, &err), -1);
    ck_assert_int_eq(err.status, 403);
    ck_assert_str_eq(err.code, "AUTH_003");
    json_decref(obj);
    rl_conf_free(conf);
    rl_auth_thread_cleanup();
}
END_TEST

/* ---------------------------------------------------------------------
 * Lookup and the failure table
 * ------------------------------------------------------------------- */

START_TEST(test_find)
{
    rl_conf_t *conf = parse(
        "{\"tenants\": [{\"id\": \"b\", \"secret\": \"" TENANT_SECRET "\"},"
        " {\"id\": \"ab\", \"secret\": \"" TENANT_SECRET "\"},"
        " {\"id\": \"a\", \"secret\": \"" TENANT_SECRET "\"},"
        " {\"id\": \"abc\", \"secret\": \"" TENANT_SECRET
        "\"}], \"policies\": []}");
    static const char *const ids[] = {"a", "ab", "abc", "b"};
    size_t i;

    for (i = 0; i < 4; i++) {
        const rl_principal_t *p =
            rl_auth_find(conf->tenants, conf->ntenants, ids[i], strlen(ids[i]));
        ck_assert_ptr_nonnull(p);
        ck_assert_str_eq(p->id, ids[i]);
    }
    ck_assert_ptr_null(rl_auth_find(conf->tenants, conf->ntenants, "abcd", 4));
    ck_assert_ptr_null(rl_auth_find(conf->tenants, conf->ntenants, "", 0));
    ck_assert_ptr_null(rl_auth_find(conf->tenants, conf->ntenants, "c", 1));
    ck_assert_ptr_nonnull(
        rl_auth_find(conf->tenants, conf->ntenants, "abX", 2)); /* "ab" */
    rl_conf_free(conf);
}
END_TEST

static struct sockaddr_in v4(const char *a)
{
    struct sockaddr_in sa;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, a, &sa.sin_addr);
    return sa;
}

static struct sockaddr_in6 v6(const char *a)
{
    struct sockaddr_in6 sa;

    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    inet_pton(AF_INET6, a, &sa.sin6_addr);
    return sa;
}

START_TEST(test_throttle)
{
    rl_conf_t *conf = parse("{\"auth\": {\"max_failures\": 3, "
                            "\"failure_window\": \"10s\"}, \"policies\": []}");
    struct sockaddr_in a = v4("203.0.113.7"), b = v4("203.0.113.8");
    struct sockaddr_in6 m = v6("::ffff:203.0.113.7"), c = v6("2001:db8:1:2::1"),
                        d = v6("2001:db8:1:2:ffff::9");
    const struct sockaddr *pa = (const struct sockaddr *)&a;
    int64_t retry = 0, t0 = 1000000;
    int i;

    ck_assert_int_eq(rl_auth_throttled(&conf->auth, pa, t0, &retry), 0);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(rl_auth_throttled(&conf->auth, pa, t0 + i, &retry), 0);
        rl_auth_note_failure(&conf->auth, pa, t0 + i);
    }
    ck_assert_int_eq(rl_auth_throttled(&conf->auth, pa, t0 + 3, &retry), 1);
    ck_assert_int_eq(retry, 10);
    ck_assert_int_eq(rl_auth_throttled(&conf->auth, pa, t0 + 9001, &retry), 1);
    ck_assert_int_eq(retry, 1);
    /* The same address written as IPv4-mapped IPv6 is the same address. */
    ck_assert_int_eq(rl_auth_throttled(&conf->auth, (const struct sockaddr *)&m,
                                       t0 + 5, &retry),
                     1);
    /* Another address is not held back (its own bucket, 1 in 4096 odds
     * of sharing). */
    ck_assert_int_eq(rl_auth_throttled(&conf->auth, (const struct sockaddr *)&b,
                                       t0 + 5, &retry),
                     0);
    /* The window ends: the address may try again. */
    ck_assert_int_eq(rl_auth_throttled(&conf->auth, pa, t0 + 10000, &retry), 0);
    rl_auth_note_failure(&conf->auth, pa, t0 + 10000);
    ck_assert_int_eq(rl_auth_throttled(&conf->auth, pa, t0 + 10001, &retry), 0);
    /* IPv6 addresses count by /64. */
    for (i = 0; i < 3; i++) {
        rl_auth_note_failure(&conf->auth, (const struct sockaddr *)&c, t0);
    }
    ck_assert_int_eq(rl_auth_throttled(&conf->auth, (const struct sockaddr *)&d,
                                       t0 + 1, &retry),
                     1);
    rl_conf_free(conf);
    rl_auth_thread_cleanup();
}
END_TEST

/* ---------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------- */

START_TEST(test_conf_defaults)
{
    rl_conf_t *conf = parse("{\"policies\": []}");

    ck_assert_int_eq(conf->auth.mode, RL_AUTH_NONE);
    ck_assert_int_eq(conf->auth.max_clock_skew_s, 300);
    ck_assert_int_eq(conf->auth.max_failures, 10);
    ck_assert_int_eq(conf->auth.failure_window_ms, 60000);
    ck_assert_int_eq(conf->auth.nprotect, 0);
    ck_assert_int_eq(conf->ntenants, 0);
    ck_assert_ptr_null(conf->tls.cert_file);
    ck_assert_int_eq(conf->tls.min_version, 12);
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_conf_full)
{
    rl_conf_t *conf = parse(
        "{\"auth\": {\"mode\": \"hmac\", \"max_clock_skew_s\": 60, "
        "\"max_failures\": 5,"
        " \"failure_window\": \"5m\", \"protect_paths\": [\"/metrics\", "
        "\"/ready\"],"
        " \"callers\": [{\"id\": \"gw\", \"secret\": \"" CALLER_SECRET
        "\", \"status\": \"active\"}]},"
        " \"tls\": {\"cert_file\": \"/etc/c.pem\", \"key_file\": "
        "\"/etc/k.pem\", \"min_version\": \"1.3\"},"
        " \"tenants\": [{\"id\": \"t\", \"secret\": \"" TENANT_SECRET "\"}],"
        " \"policies\": [{\"name\": \"p\", \"match\": {\"path\": \"/*\"}, "
        "\"limits\": [{\"requests\": 1, \"per\": \"1s\"}],"
        " \"verify_tenant\": \"hmac\"}, {\"name\": \"q\", \"match\": "
        "{\"path\": \"/*\"},"
        " \"limits\": [{\"requests\": 1, \"per\": \"1s\"}], \"verify_tenant\": "
        "\"none\"}]}");

    ck_assert_int_eq(conf->auth.mode, RL_AUTH_HMAC);
    ck_assert_int_eq(conf->auth.max_clock_skew_s, 60);
    ck_assert_int_eq(conf->auth.max_failures, 5);
    ck_assert_int_eq(conf->auth.failure_window_ms, 300000);
    ck_assert_int_eq(conf->auth.nprotect, 2);
    ck_assert_str_eq(conf->auth.protect_paths[1], "/ready");
    ck_assert_int_eq(conf->auth.ncallers, 1);
    ck_assert_int_eq((int)conf->auth.callers[0].secret_len,
                     (int)strlen(CALLER_SECRET));
    ck_assert(memcmp(conf->auth.callers[0].secret, CALLER_SECRET,
                     strlen(CALLER_SECRET)) == 0);
    ck_assert_str_eq(conf->tls.cert_file, "/etc/c.pem");
    ck_assert_int_eq(conf->tls.min_version, 13);
    ck_assert_int_eq(conf->policies[0].verify_tenant, 1);
    ck_assert_int_eq(conf->policies[1].verify_tenant, 0);
    rl_conf_free(conf);
}
END_TEST

START_TEST(test_conf_secret_sources)
{
    char path[] = "/tmp/rl-check-auth-XXXXXX";
    char text[1024], err[512];
    int fd = mkstemp(path);
    rl_conf_t *conf;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq((int)write(fd, "file-secret-0123456789\r\n", 24), 24);
    close(fd);
    setenv("RL_CHECK_AUTH_SECRET", "env-secret-0123456789", 1);
    snprintf(text, sizeof(text),
             "{\"tenants\": [{\"id\": \"f\", \"secret_file\": \"%s\"},"
             " {\"id\": \"e\", \"secret_env\": \"RL_CHECK_AUTH_SECRET\"}], "
             "\"policies\": []}",
             path);
    conf = rl_conf_parse(text, strlen(text), err, sizeof(err));
    ck_assert_msg(conf != NULL, "%s", err);
    /* sorted by id: e, f */
    ck_assert_str_eq((const char *)conf->tenants[0].secret,
                     "env-secret-0123456789");
    ck_assert_str_eq((const char *)conf->tenants[1].secret,
                     "file-secret-0123456789");
    ck_assert_int_eq((int)conf->tenants[1].secret_len, 22);
    rl_conf_free(conf);

    /* A secret file too short is refused without quoting it. */
    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq((int)write(fd, "short-secret\n", 13), 13);
    close(fd);
    ck_assert_ptr_null(rl_conf_parse(text, strlen(text), err, sizeof(err)));
    ck_assert_str_eq(
        err,
        "tenants[0].secret_file: the secret must be 16 to 4096 bytes long");
    unlink(path);
    ck_assert_ptr_null(rl_conf_parse(text, strlen(text), err, sizeof(err)));
    ck_assert_msg(
        strstr(err,
               "tenants[0].secret_file: cannot read /tmp/rl-check-auth-") ==
            err,
        "%s", err);
    unsetenv("RL_CHECK_AUTH_SECRET");
    snprintf(text, sizeof(text),
             "{\"tenants\": [{\"id\": \"e\", \"secret_env\": "
             "\"RL_CHECK_AUTH_SECRET\"}], \"policies\": []}");
    ck_assert_ptr_null(rl_conf_parse(text, strlen(text), err, sizeof(err)));
    ck_assert_str_eq(err, "tenants[0].secret_env: environment variable "
                          "RL_CHECK_AUTH_SECRET is not set or empty");
}
END_TEST

#define SECRET_TEXT "super-secret-value-42"
#define CALLERS(x)                                                             \
    "{\"auth\": {\"mode\": \"hmac\", \"callers\": [" x "]}, \"policies\": []}"
#define CALLERS_PROTECT(p)                                                     \
    "{\"auth\": {\"mode\": \"hmac\", \"callers\": [{\"id\": \"a\", "           \
    "\"secret\": \"" SECRET_TEXT "\"}], \"protect_paths\": [" p                \
    "]}, \"policies\": []}"

static const struct {
    const char *json;
    const char *err;
} bad_rows[] = {
    {"{\"auth\": {\"mode\": \"hmac\"}, \"policies\": []}",
     "auth.callers: auth mode \"hmac\" needs at least one caller"},
    {"{\"auth\": {\"mode\": \"bearer\", \"callers\": []}, \"policies\": []}",
     "auth.callers: auth mode \"bearer\" needs at least one caller"},
    {"{\"auth\": {\"mode\": \"basic\"}, \"policies\": []}",
     "auth.mode: \"basic\" is not one of none, hmac, bearer"},
    {"{\"auth\": {\"callers\": [{\"id\": \"a\", \"secret\": \"" SECRET_TEXT
     "\"}]}, \"policies\": []}",
     "auth.callers: auth mode \"none\" takes no callers"},
    {"{\"auth\": {\"mode\": \"hmac\", \"callerz\": []}, \"policies\": []}",
     "auth.callerz: unknown field"},
    {CALLERS("{\"secret\": \"" SECRET_TEXT "\"}"),
     "auth.callers[0].id: is required"},
    {CALLERS("{\"id\": \"a b\", \"secret\": \"" SECRET_TEXT "\"}"),
     "auth.callers[0].id: must be 1 to 128 visible ASCII characters"},
    {CALLERS("{\"id\": \"a\"}"),
     "auth.callers[0]: needs exactly one of secret, secret_file, secret_env"},
    {CALLERS("{\"id\": \"a\", \"secret\": \"" SECRET_TEXT
             "\", \"secret_env\": \"X\"}"),
     "auth.callers[0]: needs exactly one of secret, secret_file, secret_env"},
    {CALLERS("{\"id\": \"a\", \"secret\": \"short\"}"),
     "auth.callers[0].secret: the secret must be 16 to 4096 bytes long"},
    {CALLERS("{\"id\": \"a\", \"secret\": 42}"),
     "auth.callers[0].secret: must be a string"},
    {CALLERS("{\"id\": \"a\", \"secret\": \"" SECRET_TEXT
             "\", \"status\": \"gone\"}"),
     "auth.callers[0].status: \"gone\" is not one of active, suspended"},
    {CALLERS("{\"id\": \"a\", \"secret\": \"" SECRET_TEXT
             "\"}, {\"id\": \"a\", \"secret\": \"" SECRET_TEXT "\"}"),
     "auth.callers: id \"a\" appears more than once"},
    {CALLERS("{\"id\": \"a\", \"key_sha256\": \"" BEARER_SHA "\"}"),
     "auth.callers[0].key_sha256: only for auth mode \"bearer\""},
    {"{\"auth\": {\"mode\": \"bearer\", \"callers\": [{\"id\": \"a\", "
     "\"secret\": \"" SECRET_TEXT "\"}]}, \"policies\": []}",
     "auth.callers[0]: auth mode \"bearer\" takes key_sha256, not a secret"},
    {"{\"auth\": {\"mode\": \"bearer\", \"callers\": [{\"id\": \"a\"}]}, "
     "\"policies\": []}",
     "auth.callers[0].key_sha256: is required"},
    {"{\"auth\": {\"mode\": \"bearer\", \"callers\": [{\"id\": \"a\", "
     "\"key_sha256\": \"abc\"}]}, \"policies\": []}",
     "auth.callers[0].key_sha256: must be 64 hex digits (the SHA-256 of the "
     "key)"},
    {"{\"auth\": {\"max_clock_skew_s\": 0}, \"policies\": []}",
     "auth.max_clock_skew_s: must be an integer from 1 to 86400"},
    {"{\"auth\": {\"max_failures\": 0}, \"policies\": []}",
     "auth.max_failures: must be an integer from 1 to 1000000"},
    {"{\"auth\": {\"failure_window\": \"soon\"}, \"policies\": []}",
     "auth.failure_window: \"soon\" is not a duration"},
    {"{\"auth\": {\"protect_paths\": [\"metrics\"]}, \"policies\": []}",
     "auth.protect_paths[0]: must be a path starting with \"/\""},
    {"{\"paths\": {\"unmatched\": \"deny\", \"deny\": {\"body\": {\"e\": "
     "\"wait {retry_after}s\"}}}, \"policies\": []}",
     "paths.deny.body: an unmatched path is denied for good: there is no "
     "retry time for {retry_after} or {retry_after_human}"},
    {"{\"auth\": {\"protect_paths\": [\"/metrics\"]}, \"policies\": []}",
     "auth.protect_paths: only applies with auth mode \"hmac\" or \"bearer\""},
    {CALLERS_PROTECT("\"/ready?full=1\""),
     "auth.protect_paths[0]: must be a path without a query"},
    {"{\"tenants\": {}, \"policies\": []}",
     "tenants: must be an array of at most 100000 entries"},
    {"{\"tenants\": [{\"id\": \"t\", \"key_sha256\": \"" BEARER_SHA
     "\"}], \"policies\": []}",
     "tenants[0].key_sha256: only for auth mode \"bearer\""},
    {"{\"policies\": [{\"name\": \"p\", \"match\": {\"path\": \"/\"}, "
     "\"limits\": [{\"requests\": 1, \"per\": \"1s\"}],"
     " \"verify_tenant\": \"hmac\"}]}",
     "policies[0].verify_tenant: \"hmac\" needs a non-empty top-level "
     "\"tenants\" list"},
    {"{\"tenants\": [{\"id\": \"t\", \"secret\": \"" SECRET_TEXT
     "\"}], \"policies\": [{\"name\": \"p\","
     " \"match\": {\"path\": \"/\"}, \"limits\": [{\"requests\": 1, \"per\": "
     "\"1s\"}], \"verify_tenant\": \"rsa\"}]}",
     "policies[0].verify_tenant: \"rsa\" is not one of none, hmac"},
    {"{\"tenants\": [{\"id\": \"t\", \"secret\": \"" SECRET_TEXT
     "\"}], \"policies\": [{\"name\": \"g\", \"match\": {\"domain\": "
     "\"edge\", \"descriptor\": [{\"key\": \"tenant\"}]}, \"key\": "
     "[\"descriptor.tenant\"], \"limits\": [{\"requests\": 1, \"per\": "
     "\"1s\"}], \"verify_tenant\": \"hmac\"}]}",
     "policies[0].verify_tenant: \"hmac\" applies to HTTP policies only: a "
     "gRPC descriptor carries no tenant signature"},
    {"{\"tls\": {\"cert_file\": \"/c.pem\"}, \"policies\": []}",
     "tls.key_file: is required"},
    {"{\"tls\": {\"cert_file\": \"/c.pem\", \"key_file\": \"/k.pem\", "
     "\"min_version\": \"1.1\"}, \"policies\": []}",
     "tls.min_version: \"1.1\" is not one of 1.2, 1.3"},
    /* JSON syntax errors never quote the text near them: it may be a secret. */
    {"{\"auth\": {\"mode\": \"hmac\", \"callers\": [{\"id\": \"a\", "
     "\"secret\": "
     "super-secret-value-42"
     "}]}}",
     "line 1 column 65: invalid token"},
    {"{\"tenants\": [{\"id\": \"a\", \"secret\": \"super-secret-value-42\" "
     "\"x\"}]}",
     "line 1 column 62: '}' expected"},
};

START_TEST(test_conf_bad)
{
    char err[512];
    rl_conf_t *conf = rl_conf_parse(
        bad_rows[_i].json, strlen(bad_rows[_i].json), err, sizeof(err));

    ck_assert_msg(conf == NULL, "row %d accepted", _i);
    ck_assert_str_eq(err, bad_rows[_i].err);
    ck_assert_msg(strstr(err, SECRET_TEXT) == NULL, "row %d: secret in %s", _i,
                  err);
}
END_TEST

static Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");

    tcase_add_test(tc, test_sign_vectors);
    tcase_add_loop_test(tc, test_caller_hmac, 0,
                        sizeof(caller_rows) / sizeof(caller_rows[0]));
    tcase_add_test(tc, test_caller_mode_none);
    tcase_add_loop_test(tc, test_caller_bearer, 0,
                        sizeof(bearer_rows) / sizeof(bearer_rows[0]));
    tcase_add_loop_test(tc, test_tenant, 0,
                        sizeof(tenant_rows) / sizeof(tenant_rows[0]));
    tcase_add_test(tc, test_tenant_header_twice);
    tcase_add_test(tc, test_tenant_suspended);
    tcase_add_test(tc, test_find);
    tcase_add_test(tc, test_throttle);
    tcase_add_test(tc, test_conf_defaults);
    tcase_add_test(tc, test_conf_full);
    tcase_add_test(tc, test_conf_secret_sources);
    tcase_add_loop_test(tc, test_conf_bad, 0,
                        sizeof(bad_rows) / sizeof(bad_rows[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(auth_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
