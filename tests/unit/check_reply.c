/* Unit tests of reply.c: rate-limit headers per style, Retry-After
 * rounding, deny-body templating and the /v1/decide JSON. Policies,
 * limits and verdicts are built by hand (no config parsing). */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

/* The store's clock in every test: now + 299512 ms is exactly
 * 1730113500 s, the issue's example. */
#define NOW_MS 1730113200488LL

static rl_limit_t limit_5m = {RL_ALGO_GCRA, 1, 300000, 1, 0, "g5m"};
static rl_limit_t limit_1m = {RL_ALGO_FIXED_WINDOW, 60, 60000, 60, 0, "f1m"};

/* A policy named name with the given header style and no deny body. */
static rl_policy_t make_policy(const char *name, rl_header_style_t style)
{
    rl_policy_t p;

    memset(&p, 0, sizeof(p));
    p.name = (char *)name;
    p.headers = style;
    p.deny_status = 429;
    p.failure_open = 1;
    return p;
}

/* A verdict of policy p at NOW_MS against limit l. */
static rl_verdict_t make_verdict(const rl_policy_t *p, const rl_limit_t *l,
                                 int allowed, int64_t remaining,
                                 int64_t reset_ms, int64_t retry_ms)
{
    rl_verdict_t v;

    memset(&v, 0, sizeof(v));
    v.allowed = allowed;
    v.policy = p;
    v.limit_def = l;
    v.limit = l != NULL ? l->requests : 0;
    v.remaining = remaining;
    v.reset_after_ms = reset_ms;
    v.retry_after_ms = retry_ms;
    v.now_ms = NOW_MS;
    v.status = allowed ? 200 : (p != NULL ? p->deny_status : 200);
    return v;
}

/* Compact JSON text of j (caller frees). */
static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT);
}

/* ------------------------------------------------------------------ */
/* Headers per style                                                   */
/* ------------------------------------------------------------------ */

typedef struct header_case {
    const char *what;
    rl_header_style_t style;
    const rl_limit_t *limit;
    int allowed;
    int64_t remaining, reset_ms, retry_ms;
    int nexp;
    const char *exp[RL_REPLY_MAX_HEADERS][2];
} header_case_t;

static const header_case_t header_cases[] = {
    {"x-ratelimit allowed",
     RL_HEADERS_X_RATELIMIT,
     &limit_1m,
     1,
     59,
     1000,
     0,
     3,
     {{"X-RateLimit-Limit", "60"},
      {"X-RateLimit-Remaining", "59"},
      {"X-RateLimit-Reset", "1730113202"}}},
    {"x-ratelimit denied",
     RL_HEADERS_X_RATELIMIT,
     &limit_1m,
     0,
     0,
     60000,
     30500,
     4,
     {{"X-RateLimit-Limit", "60"},
      {"X-RateLimit-Remaining", "0"},
      {"X-RateLimit-Reset", "1730113261"},
      {"Retry-After", "31"}}},
    {"x-ratelimit-retry-after denied (issue example)",
     RL_HEADERS_X_RATELIMIT_RETRY_AFTER,
     &limit_5m,
     0,
     0,
     300000,
     299512,
     4,
     {{"X-RateLimit-Limit", "1"},
      {"X-Ratelimit-Remaining", "0"},
      {"X-Ratelimit-Retry-After", "1730113500"},
      {"Retry-After", "300"}}},
    {"x-ratelimit-retry-after allowed uses the reset",
     RL_HEADERS_X_RATELIMIT_RETRY_AFTER,
     &limit_5m,
     1,
     0,
     300000,
     0,
     3,
     {{"X-RateLimit-Limit", "1"},
      {"X-Ratelimit-Remaining", "0"},
      {"X-Ratelimit-Retry-After", "1730113501"}}},
    {"ietf denied",
     RL_HEADERS_IETF,
     &limit_5m,
     0,
     0,
     300000,
     299512,
     3,
     {{"RateLimit-Policy", "\"site-process-5m\";q=1;w=300"},
      {"RateLimit", "\"site-process-5m\";r=0;t=300"},
      {"Retry-After", "300"}}},
    {"ietf allowed, reset rounded up",
     RL_HEADERS_IETF,
     &limit_1m,
     1,
     42,
     17001,
     0,
     2,
     {{"RateLimit-Policy", "\"site-process-1m\";q=60;w=60"},
      {"RateLimit", "\"site-process-1m\";r=42;t=18"}}},
    {"none allowed",
     RL_HEADERS_NONE,
     &limit_5m,
     1,
     0,
     300000,
     0,
     0,
     {{NULL, NULL}}},
    {"none denied",
     RL_HEADERS_NONE,
     &limit_5m,
     0,
     0,
     300000,
     299512,
     1,
     {{"Retry-After", "300"}}},
    {"negative remaining shows 0",
     RL_HEADERS_X_RATELIMIT,
     &limit_1m,
     0,
     -3,
     2000,
     1000,
     4,
     {{"X-RateLimit-Limit", "60"},
      {"X-RateLimit-Remaining", "0"},
      {"X-RateLimit-Reset", "1730113203"},
      {"Retry-After", "1"}}},
};

START_TEST(test_headers_style)
{
    const header_case_t *c = &header_cases[_i];
    rl_policy_t p = make_policy("site-process", c->style);
    rl_verdict_t v = make_verdict(&p, c->limit, c->allowed, c->remaining,
                                  c->reset_ms, c->retry_ms);
    rl_reply_header_t out[RL_REPLY_MAX_HEADERS];
    int n = rl_reply_headers(&v, out);
    int i;

    ck_assert_msg(n == c->nexp, "%s: %d headers, want %d", c->what, n, c->nexp);
    for (i = 0; i < n; i++) {
        ck_assert_msg(strcmp(out[i].name, c->exp[i][0]) == 0,
                      "%s: header %d is %s, want %s", c->what, i, out[i].name,
                      c->exp[i][0]);
        ck_assert_msg(strcmp(out[i].value, c->exp[i][1]) == 0,
                      "%s: %s is %s, want %s", c->what, out[i].name,
                      out[i].value, c->exp[i][1]);
    }
}
END_TEST

START_TEST(test_headers_no_policy)
{
    rl_verdict_t v = make_verdict(NULL, NULL, 1, 0, 0, 0);
    rl_reply_header_t out[RL_REPLY_MAX_HEADERS];

    ck_assert_int_eq(rl_reply_headers(&v, out), 0);
}
END_TEST

START_TEST(test_headers_shadow_would_deny)
{
    rl_policy_t p = make_policy("site-process", RL_HEADERS_X_RATELIMIT);
    rl_verdict_t v = make_verdict(&p, &limit_1m, 1, 0, 60000, 30000);
    rl_reply_header_t out[RL_REPLY_MAX_HEADERS];
    int n, i;

    p.shadow = 1;
    v.shadow_would_deny = 1;
    n = rl_reply_headers(&v, out);
    ck_assert_int_eq(n, 3);
    for (i = 0; i < n; i++) {
        ck_assert_str_ne(out[i].name, "Retry-After");
    }
}
END_TEST

START_TEST(test_headers_degraded)
{
    rl_policy_t p = make_policy("site-process", RL_HEADERS_X_RATELIMIT);
    rl_verdict_t v = make_verdict(&p, &limit_1m, 0, 0, 0, 0);
    rl_reply_header_t out[RL_REPLY_MAX_HEADERS];

    v.degraded = 1;
    v.now_ms = 0;
    v.status = 503;
    ck_assert_int_eq(rl_reply_headers(&v, out), 1);
    ck_assert_str_eq(out[0].name, "Retry-After");
    ck_assert_str_eq(out[0].value, "1");

    v.allowed = 1;
    v.status = 200;
    ck_assert_int_eq(rl_reply_headers(&v, out), 0);
}
END_TEST

START_TEST(test_headers_ietf_name_escaped)
{
    rl_policy_t p = make_policy("a\"b\\c", RL_HEADERS_IETF);
    rl_verdict_t v = make_verdict(&p, &limit_5m, 1, 1, 0, 0);
    rl_reply_header_t out[RL_REPLY_MAX_HEADERS];

    ck_assert_int_eq(rl_reply_headers(&v, out), 2);
    ck_assert_str_eq(out[0].value, "\"a\\\"b\\\\c-5m\";q=1;w=300");
    ck_assert_str_eq(out[1].value, "\"a\\\"b\\\\c-5m\";r=1;t=0");
}
END_TEST

/* Two limits tied on remaining: the body (verdict) and the RateLimit
 * item describe the same one, the one that resets last. */
START_TEST(test_headers_ietf_tie_follows_verdict)
{
    static rl_limit_t two[2] = {
        {RL_ALGO_GCRA, 30, 60000, 30, 0, "g1m"},
        {RL_ALGO_FIXED_WINDOW, 30, 60000, 30, 0, "f1m"},
    };
    rl_policy_t p = make_policy("route", RL_HEADERS_IETF);
    rl_store_result_t res;
    rl_limit_result_t *r = res.limits;
    rl_reply_header_t out[RL_REPLY_MAX_HEADERS];
    rl_verdict_t v;

    memset(&res, 0, sizeof(res));
    r[0].allowed = r[1].allowed = 1;
    r[0].remaining = r[1].remaining = 29;
    r[0].reset_after_ms = 2000;
    r[1].reset_after_ms = 38200;
    res.allowed = 1;
    res.now_ms = 1730113200000;
    rl_decide_verdict(&p, two, 2, 0, &res, &v);
    ck_assert_ptr_eq(v.limit_def, &two[1]);
    ck_assert_int_eq(v.reset_after_ms, 38200);
    ck_assert_int_eq(rl_reply_headers(&v, out), 2);
    ck_assert_str_eq(out[1].name, "RateLimit");
    ck_assert_str_eq(out[1].value, "\"route-f1m\";r=29;t=39");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Retry-After rounding                                                */
/* ------------------------------------------------------------------ */

static const struct {
    int64_t retry_ms;
    const char *exp;
} retry_cases[] = {
    {0, "1"},    {1, "1"},        {999, "1"},      {1000, "1"},
    {1001, "2"}, {299512, "300"}, {300000, "300"}, {300001, "301"},
};

START_TEST(test_retry_after_rounding)
{
    rl_policy_t p = make_policy("r", RL_HEADERS_NONE);
    rl_verdict_t v =
        make_verdict(&p, &limit_5m, 0, 0, 300000, retry_cases[_i].retry_ms);
    rl_reply_header_t out[RL_REPLY_MAX_HEADERS];
    char *s;

    ck_assert_int_eq(rl_reply_headers(&v, out), 1);
    ck_assert_str_eq(out[0].name, "Retry-After");
    ck_assert_msg(strcmp(out[0].value, retry_cases[_i].exp) == 0,
                  "%lld ms -> %s, want %s", (long long)retry_cases[_i].retry_ms,
                  out[0].value, retry_cases[_i].exp);
    /* The body's {retry_after} says the same as the header. */
    s = rl_reply_template("{retry_after}", &v);
    ck_assert_str_eq(s, retry_cases[_i].exp);
    free(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Templating                                                          */
/* ------------------------------------------------------------------ */

static const struct {
    int64_t retry_ms;
    const char *in;
    const char *exp;
} template_cases[] = {
    {119001, "wait {retry_after}s", "wait 120s"},
    {119001, "retry in {retry_after_human}", "retry in 2 minutes"},
    {45000, "retry in {retry_after_human}", "retry in 45 seconds"},
    {1, "{retry_after_human}", "1 second"},
    {3600000, "{retry_after_human}", "1 hour"},
    {1000, "{limit} per window", "5 per window"},
    {1000, "policy {policy}", "policy site-process"},
    {1000, "{policy}:{limit}:{retry_after}", "site-process:5:1"},
    {1000, "{unknown} and {limit}", "{unknown} and 5"},
    {1000, "{Limit} {limit", "{Limit} {limit"},
    {1000, "{{limit}}", "{5}"},
    {1000, "{", "{"},
    {1000, "}{", "}{"},
    {1000, "no placeholder", "no placeholder"},
    {1000, "", ""},
    {1000, "caf\xc3\xa9 {limit}", "caf\xc3\xa9 5"},
};

START_TEST(test_template)
{
    rl_policy_t p = make_policy("site-process", RL_HEADERS_NONE);
    rl_limit_t l = {RL_ALGO_GCRA, 5, 60000, 5, 0, "g1m"};
    rl_verdict_t v =
        make_verdict(&p, &l, 0, 0, 60000, template_cases[_i].retry_ms);
    char *s = rl_reply_template(template_cases[_i].in, &v);

    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strcmp(s, template_cases[_i].exp) == 0,
                  "\"%s\" -> \"%s\", want \"%s\"", template_cases[_i].in, s,
                  template_cases[_i].exp);
    free(s);
}
END_TEST

/* {retry_after_human}: the wait in ms, rounded up to seconds, then to
 * the unit it reaches, never shorter than the wait. */
static const struct {
    int64_t retry_ms;
    const char *exp;
} human_cases[] = {
    {0, "1 second"},       {500, "1 second"},
    {1000, "1 second"},    {1001, "2 seconds"},
    {59000, "59 seconds"}, {59001, "1 minute"},
    {60000, "1 minute"},   {60001, "2 minutes"},
    {61000, "2 minutes"},  {118000, "2 minutes"},
    {119000, "2 minutes"}, {120000, "2 minutes"},
    {120001, "3 minutes"}, {3599000, "60 minutes"},
    {3600000, "1 hour"},   {3601000, "2 hours"},
    {7200000, "2 hours"},  {86399000, "24 hours"},
    {86400000, "1 day"},   {86401000, "2 days"},
    {172800000, "2 days"}, {INT64_MAX, "106751991168 days"},
};

START_TEST(test_retry_after_human)
{
    rl_policy_t p = make_policy("build-upload", RL_HEADERS_NONE);
    rl_limit_t l = {RL_ALGO_GCRA, 1, 120000, 1, 0, "g2m"};
    rl_verdict_t v =
        make_verdict(&p, &l, 0, 0, 120000, human_cases[_i].retry_ms);
    char *s = rl_reply_template("Try again in {retry_after_human}.", &v);
    char want[64];

    snprintf(want, sizeof(want), "Try again in %s.", human_cases[_i].exp);
    ck_assert_msg(strcmp(s, want) == 0, "%lld ms -> \"%s\", want \"%s\"",
                  (long long)human_cases[_i].retry_ms, s, want);
    free(s);
}
END_TEST

/* {trace_id}: the request id in an "unavailable" body; left as it is
 * where there is none (a deny body). */
START_TEST(test_template_trace_id)
{
    rl_policy_t p = make_policy("ingest", RL_HEADERS_NONE);
    rl_verdict_t v = make_verdict(&p, &limit_5m, 0, 0, 300000, 0);
    json_t *body = json_pack("{s:s, s:s, s:[s]}", "error",
                             "service temporarily unavailable", "trace_id",
                             "{trace_id}", "list", "{policy}/{trace_id}");
    json_t *out = rl_reply_template_json(body, &v, "a1b2c3");
    char *s = dump(out);

    ck_assert_str_eq(s,
                     "{\"error\":\"service temporarily unavailable\","
                     "\"trace_id\":\"a1b2c3\",\"list\":[\"ingest/a1b2c3\"]}");
    free(s);
    json_decref(out);
    /* The configured body is untouched; without an id it stays. */
    out = rl_reply_template_json(body, &v, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(out, "trace_id")),
                     "{trace_id}");
    json_decref(out);
    s = rl_reply_template("{trace_id} {policy}", &v);
    ck_assert_str_eq(s, "{trace_id} ingest");
    free(s);
    json_decref(body);
}
END_TEST

START_TEST(test_template_long)
{
    rl_policy_t p = make_policy("site-process", RL_HEADERS_NONE);
    rl_verdict_t v = make_verdict(&p, &limit_5m, 0, 0, 300000, 299512);
    char in[4096];
    char *s;
    size_t i;

    /* Many placeholders force the output buffer to grow several times. */
    in[0] = '\0';
    for (i = 0; i < 200; i++) {
        strcat(in, "{policy}");
    }
    s = rl_reply_template(in, &v);
    ck_assert_uint_eq(strlen(s), 200 * strlen("site-process"));
    ck_assert(strncmp(s, "site-processsite-process", 24) == 0);
    free(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Deny body                                                           */
/* ------------------------------------------------------------------ */

START_TEST(test_deny_body_default)
{
    rl_policy_t p = make_policy("site-process", RL_HEADERS_NONE);
    rl_verdict_t v = make_verdict(&p, &limit_5m, 0, 0, 300000, 299512);
    json_t *b = rl_reply_deny_body(&v);
    char *s = dump(b);

    ck_assert_str_eq(
        s, "{\"error\":\"rate limit exceeded\",\"code\":\"RATE_001\"}");
    free(s);
    json_decref(b);
}
END_TEST

START_TEST(test_deny_body_nested)
{
    static const char *cfg = "{\"success\":false,\"message\":\"Too many "
                             "attempts. Retry in {retry_after_human}.\","
                             "\"{limit}\":\"key is not templated\","
                             "\"meta\":{\"retry\":\"{retry_after}\",\"limit\":"
                             "5,\"ratio\":0.5,\"none\":null,"
                             "\"list\":[\"{policy}\",1,true,[\"{limit}/"
                             "{unknown}\"],{\"deep\":\"{retry_after}s\"}]}}";
    static const char *exp =
        "{\"success\":false,\"message\":\"Too many attempts. Retry in 2 "
        "minutes.\","
        "\"{limit}\":\"key is not templated\","
        "\"meta\":{\"retry\":\"120\",\"limit\":5,\"ratio\":0.5,\"none\":null,"
        "\"list\":[\"site-process\",1,true,[\"5/"
        "{unknown}\"],{\"deep\":\"120s\"}]}}";
    rl_policy_t p = make_policy("site-process", RL_HEADERS_NONE);
    rl_limit_t l = {RL_ALGO_GCRA, 5, 60000, 5, 0, "g1m"};
    rl_verdict_t v;
    json_t *b;
    char *s, *orig;

    p.deny_body = json_loads(cfg, 0, NULL);
    ck_assert_ptr_nonnull(p.deny_body);
    orig = dump(p.deny_body);
    v = make_verdict(&p, &l, 0, 0, 60000, 119500);
    b = rl_reply_deny_body(&v);
    s = dump(b);
    ck_assert_str_eq(s, exp);
    free(s);
    json_decref(b);

    /* The policy's own body is untouched: the next denial is templated
     * afresh. */
    s = dump(p.deny_body);
    ck_assert_str_eq(s, orig);
    free(s);
    v.retry_after_ms = 45000;
    b = rl_reply_deny_body(&v);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(b, "meta"), "retry")),
        "45");
    json_decref(b);

    free(orig);
    json_decref(p.deny_body);
}
END_TEST

START_TEST(test_deny_body_non_object)
{
    rl_policy_t p = make_policy("site-process", RL_HEADERS_NONE);
    rl_verdict_t v = make_verdict(&p, &limit_5m, 0, 0, 300000, 299512);
    json_t *b;

    p.deny_body = json_string("slow down for {retry_after_human}");
    b = rl_reply_deny_body(&v);
    ck_assert_str_eq(json_string_value(b), "slow down for 5 minutes");
    json_decref(b);
    json_decref(p.deny_body);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The /v1/decide JSON                                                 */
/* ------------------------------------------------------------------ */

START_TEST(test_decision_denied_issue_example)
{
    rl_policy_t p =
        make_policy("site-process", RL_HEADERS_X_RATELIMIT_RETRY_AFTER);
    rl_verdict_t v;
    json_t *d;
    char *s;

    p.deny_body = json_loads(
        "{\"success\": false, \"message\": \"Too many attempts.\"}", 0, NULL);
    v = make_verdict(&p, &limit_5m, 0, 0, 300000, 299512);
    d = rl_reply_decision(&v);
    s = dump(d);
    ck_assert_str_eq(
        s,
        "{\"allowed\":false,\"policy\":\"site-process\",\"policies\":[\"site-"
        "process\"],\"limit\":1,"
        "\"remaining\":0,"
        "\"reset_after_ms\":300000,\"retry_after_ms\":299512,\"blocked\":false,"
        "\"degraded\":false,\"status\":429,"
        "\"headers\":{\"X-RateLimit-Limit\":\"1\",\"X-Ratelimit-Remaining\":"
        "\"0\","
        "\"X-Ratelimit-Retry-After\":\"1730113500\",\"Retry-After\":\"300\"},"
        "\"body\":{\"success\":false,\"message\":\"Too many attempts.\"}}");
    free(s);
    json_decref(d);
    json_decref(p.deny_body);
}
END_TEST

START_TEST(test_decision_allowed)
{
    rl_policy_t p = make_policy("per-minute", RL_HEADERS_X_RATELIMIT);
    rl_verdict_t v = make_verdict(&p, &limit_1m, 1, 59, 1000, 0);
    json_t *d = rl_reply_decision(&v);
    char *s = dump(d);

    ck_assert_str_eq(
        s, "{\"allowed\":true,\"policy\":\"per-minute\",\"policies\":[\"per-"
           "minute\"],\"limit\":60,"
           "\"remaining\":59,"
           "\"reset_after_ms\":1000,\"retry_after_ms\":0,\"blocked\":false,"
           "\"degraded\":false,\"status\":200,"
           "\"headers\":{\"X-RateLimit-Limit\":\"60\",\"X-RateLimit-"
           "Remaining\":\"59\","
           "\"X-RateLimit-Reset\":\"1730113202\"}}");
    free(s);
    json_decref(d);
}
END_TEST

START_TEST(test_decision_blocked_test_header)
{
    rl_policy_t p = make_policy("burst", RL_HEADERS_NONE);
    rl_limit_t l = {RL_ALGO_FIXED_WINDOW, 1000, 10000, 1000, 10000, "f10s"};
    rl_verdict_t v = make_verdict(&p, &l, 0, 0, 10000, 9000);
    json_t *d;
    char *s;

    v.blocked = 1;
    v.test = 1;
    d = rl_reply_decision(&v);
    s = dump(d);
    ck_assert_str_eq(
        s,
        "{\"allowed\":false,\"policy\":\"burst\",\"policies\":[\"burst\"],"
        "\"limit\":1000,\"remaining\":"
        "0,"
        "\"reset_after_ms\":10000,\"retry_after_ms\":9000,\"blocked\":true,"
        "\"degraded\":false,\"status\":429,\"headers\":{\"Retry-After\":\"9\"},"
        "\"body\":{\"error\":\"rate limit "
        "exceeded\",\"code\":\"RATE_001\"},\"test\":true}");
    free(s);
    json_decref(d);
}
END_TEST

START_TEST(test_decision_no_policy)
{
    rl_verdict_t v = make_verdict(NULL, NULL, 1, 0, 0, 0);
    json_t *d;
    char *s;

    v.status = 0; /* unset by the caller: still 200 */
    d = rl_reply_decision(&v);
    s = dump(d);
    ck_assert_str_eq(
        s, "{\"allowed\":true,\"policy\":null,\"policies\":[],\"limit\":0,"
           "\"remaining\":0,"
           "\"reset_after_ms\":0,\"retry_after_ms\":0,\"blocked\":false,"
           "\"degraded\":false,\"status\":200,\"headers\":{}}");
    free(s);
    json_decref(d);
}
END_TEST

START_TEST(test_decision_degraded_open)
{
    rl_policy_t p = make_policy("per-minute", RL_HEADERS_X_RATELIMIT);
    rl_verdict_t v = make_verdict(&p, &limit_1m, 1, 0, 0, 0);
    json_t *d;
    char *s;

    v.degraded = 1;
    v.degraded_reason = "timeout";
    d = rl_reply_decision(&v);
    s = dump(d);
    ck_assert_str_eq(
        s, "{\"allowed\":true,\"policy\":\"per-minute\",\"policies\":[\"per-"
           "minute\"],\"limit\":60,"
           "\"remaining\":0,"
           "\"reset_after_ms\":0,\"retry_after_ms\":0,\"blocked\":false,"
           "\"degraded\":true,\"status\":200,\"headers\":{},\"degraded_"
           "reason\":\"timeout\"}");
    free(s);
    json_decref(d);
}
END_TEST

START_TEST(test_decision_degraded_closed)
{
    rl_policy_t p = make_policy("per-minute", RL_HEADERS_X_RATELIMIT);
    rl_verdict_t v = make_verdict(&p, &limit_1m, 0, 0, 0, 0);
    json_t *d;
    char *s;

    p.failure_open = 0;
    v.degraded = 1;
    v.degraded_reason = NULL;
    v.status = 503;
    d = rl_reply_decision(&v);
    s = dump(d);
    ck_assert_str_eq(
        s,
        "{\"allowed\":false,\"policy\":\"per-minute\",\"policies\":[\"per-"
        "minute\"],\"limit\":60,"
        "\"remaining\":0,"
        "\"reset_after_ms\":0,\"retry_after_ms\":0,\"blocked\":false,"
        "\"degraded\":true,\"status\":503,\"headers\":{\"Retry-After\":\"1\"},"
        "\"body\":{\"error\":\"rate limit exceeded\",\"code\":\"RATE_001\"},"
        "\"degraded_reason\":\"unknown\"}");
    free(s);
    json_decref(d);
}
END_TEST

START_TEST(test_decision_shadow)
{
    rl_policy_t p = make_policy("trial", RL_HEADERS_IETF);
    rl_verdict_t v = make_verdict(&p, &limit_1m, 1, 0, 60000, 1500);
    json_t *d;
    char *s;

    p.shadow = 1;
    p.deny_status = 503;
    p.deny_body =
        json_pack("{s:s}", "message", "retry in {retry_after}s ({policy})");
    v.shadow_would_deny = 1;
    d = rl_reply_decision(&v);
    s = dump(d);
    ck_assert_str_eq(
        s, "{\"allowed\":true,\"policy\":\"trial\",\"policies\":[\"trial\"],"
           "\"limit\":60,\"remaining\":0,"
           "\"reset_after_ms\":60000,\"retry_after_ms\":1500,\"blocked\":false,"
           "\"degraded\":false,\"status\":200,"
           "\"headers\":{\"RateLimit-Policy\":\"\\\"trial-1m\\\";q=60;w=60\","
           "\"RateLimit\":\"\\\"trial-1m\\\";r=0;t=60\"},"
           "\"shadow\":{\"would_deny\":true,\"status\":503,"
           "\"body\":{\"message\":\"retry in 2s (trial)\"}}}");
    free(s);
    json_decref(d);

    v = make_verdict(&p, &limit_1m, 1, 12, 48000, 0);
    d = rl_reply_decision(&v);
    s = dump(d);
    ck_assert_str_eq(
        s, "{\"allowed\":true,\"policy\":\"trial\",\"policies\":[\"trial\"],"
           "\"limit\":60,\"remaining\":12,"
           "\"reset_after_ms\":48000,\"retry_after_ms\":0,\"blocked\":false,"
           "\"degraded\":false,\"status\":200,"
           "\"headers\":{\"RateLimit-Policy\":\"\\\"trial-1m\\\";q=60;w=60\","
           "\"RateLimit\":\"\\\"trial-1m\\\";r=12;t=48\"},"
           "\"shadow\":{\"would_deny\":false}}");
    free(s);
    json_decref(d);
    json_decref(p.deny_body);
}
END_TEST

/* The direct writer of the /v1/decide reply (the allow path's) agrees
 * byte for byte with the jansson tree's dump, over every shape a reply
 * takes; and a buffer too small by even one byte is reported, never cut. */
static const char *writer_names[] = {
    "per-minute",
    "quote\"and\\back",
    "tab\tnew\nline\x01\x1f",
    "caf\xc3\xa9 \xe2\x9c\x93",
};

START_TEST(test_decision_writer_matches_jansson)
{
    rl_limit_t l = {RL_ALGO_GCRA, 60, 60000, 60, 0, "g1m"};
    rl_limit_t la[2] = {{RL_ALGO_FIXED_WINDOW, 100, 60000, 100, 0, "f1m"},
                        {RL_ALGO_GCRA, 5, 1000, 5, 0, "g1s"}};
    rl_limit_result_t ra[2] = {{1, 0, 3, 1000, 0}, {1, 0, 1, 200, 0}};
    rl_limit_result_t rl = {1, 0, 41, 12345, 0};
    rl_penalty_t pen;
    int layers = _i / 512; /* two applied policies and a penalty */
    int name_i = (_i / 128) % 4;
    int style = (_i / 32) % 4;
    int shape = _i % 32;
    json_t *ovr_body = json_pack("{s:s}", "error", "suspended ({policy})");
    rl_policy_t p = make_policy(writer_names[name_i], (rl_header_style_t)style);
    rl_verdict_t v;
    json_t *d;
    char *want;
    char buf[4096];
    size_t len, cap;

    if (shape & 1) {
        p.deny_body =
            json_pack("{s:s, s:[s, i], s:{s:s}}", "message",
                      "retry in {retry_after}s ({policy}) \"{limit}\"", "list",
                      "{retry_after_human}", 7, "nested", "p", "{policy}");
        p.deny_status = 503;
    }
    v = make_verdict(&p, &l, !(shape & 2), (shape & 2) ? -2 : 41, 12345,
                     (shape & 2) ? 6789 : 0);
    if (shape & 4) {
        p.shadow = 1;
        v.allowed = 1;
        v.shadow_would_deny = (shape & 2) != 0;
    }
    if (shape & 8) {
        v.degraded = 1;
        v.degraded_reason = (shape & 1) ? NULL : "timeout";
        v.test = 1;
        v.blocked = 1;
    }
    if (shape & 16) {
        v.override = (shape & 1) ? "admin" : "config";
        v.deny_body = (shape & 2) ? ovr_body : NULL;
    }
    memset(&pen, 0, sizeof(pen));
    pen.name = "hammer\"ing";
    if (layers && (shape & 15) != 15) {
        rl_policy_t *acct = &p; /* the same policy twice would do too */

        v.policies[0] = (rl_verdict_part_t){acct, la, 2, ra};
        v.policies[1] = (rl_verdict_part_t){&p, &l, 1, &rl};
        v.npolicies = 2;
        v.penalty = pen.name;
        v.penalty_def = &pen;
        if (shape & 1) {
            pen.deny_body = json_pack("{s:s}", "blocked", "{retry_after}");
        }
    }
    if ((shape & 15) == 15) {
        v.policy = NULL; /* no policy applies */
    }
    d = rl_reply_decision(&v);
    ck_assert_ptr_nonnull(d);
    want = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ck_assert_ptr_nonnull(want);
    /* Two header styles of four stream compiled bodies, two go through
     * jansson. */
    if (style % 2 == 0) {
        p.deny_tpl = p.deny_body ? rl_reply_body_compile(p.deny_body) : NULL;
        pen.deny_tpl =
            pen.deny_body ? rl_reply_body_compile(pen.deny_body) : NULL;
        v.deny_tpl = v.deny_body ? rl_reply_body_compile(v.deny_body) : NULL;
    }
    len = rl_reply_decision_write(&v, buf, sizeof(buf));
    ck_assert_uint_lt(len, sizeof(buf));
    ck_assert_str_eq(buf, want);
    ck_assert_uint_eq(len, strlen(want));
    if (layers && (shape & 15) != 15) {
        ck_assert_ptr_nonnull(strstr(buf, ",\"penalty\":\"hammer\\\"ing\""));
        ck_assert_ptr_nonnull(strstr(buf, "\"policies\":["));
    }
    for (cap = 0; cap <= len; cap++) {
        ck_assert_uint_ge(rl_reply_decision_write(&v, buf, cap), cap);
    }
    free(want);
    json_decref(d);
    json_decref(p.deny_body);
    json_decref(ovr_body);
    json_decref(pen.deny_body);
    rl_reply_body_free(p.deny_tpl);
    rl_reply_body_free(pen.deny_tpl);
    rl_reply_body_free((rl_body_tpl_t *)v.deny_tpl);
}
END_TEST

/* Deny bodies for the compiled writer: nesting, every scalar, every
 * placeholder (in keys too, where they stay as they are), unicode,
 * escapes, stray braces, NUL bytes in values (a templated string ends at
 * its first NUL, as template_str reads it; a NUL in a key fails
 * json_deep_copy, so the config and the admin API refuse it), and bodies
 * that are no object. */
static const char *compiled_bodies[] = {
    "{\"message\":\"retry in {retry_after}s ({policy}) \\\"{limit}\\\"\","
    "\"list\":[\"{retry_after_human}\",7,1.5,true,false,null,[],{}],"
    "\"nested\":{\"p\":\"{policy}\",\"deep\":[{\"x\":\"{trace_id}\"}]}}",
    "{\"msg\":\"caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 {policy}\","
    "\"\xc3\xa9{policy}\":\"\xce\xba\xce\xbb\"}",
    "{\"e\":\"tab\\t nl\\n \\u0001 \\u001f q\\\" b\\\\ s/ {retry_after}"
    "\\u007f\\u2028\"}",
    "{\"a\":\"{{retry_after}}\",\"b\":\"{unknown} {retry_after\","
    "\"c\":\"{\",\"d\":\"}{limit}{\",\"e\":\"{limit}{limit}{policy}\"}",
    "{\"n\":\"a\\u0000{policy}\",\"m\":\"{policy}\\u0000tail\","
    "\"k\":\"v\\u0000w\"}",
    "{\"z\":1,\"a\":2,\"m\":\"{limit}\",\"{policy}\":\"{policy}\"}",
    "{\"r\":0.1,\"big\":1e300,\"neg\":-0.0,\"i\":-9223372036854775807}",
    "\"slow down for {retry_after_human}\"",
    "42",
    "null",
    "[]",
    "{}",
    "[\"{retry_after}\",[\"{retry_after_human}\",{\"l\":\"{limit}\"}]]",
    "{\"error\":\"rate limit exceeded\",\"code\":\"RATE_001\"}",
};
#define NBODIES (sizeof(compiled_bodies) / sizeof(compiled_bodies[0]))

/* The compiled writer against the jansson path, byte for byte: each body
 * as a policy's, an override's, a penalty's and an unmatched path's
 * (no policy), with and without a retry time, plain, ENSURE_ASCII and
 * ENCODE_ANY; also too small buffers and the default body. */
START_TEST(test_compiled_body_matches_jansson)
{
    static const size_t flags_of[] = {0, JSON_ENSURE_ASCII, JSON_ENCODE_ANY};
    rl_limit_t l = {RL_ALGO_GCRA, 60, 60000, 60, 0, "g1m"};
    int row = _i / 24, source = (_i / 6) % 4, no_retry = (_i / 3) % 2;
    size_t flags = flags_of[_i % 3];
    rl_policy_t p = make_policy("api.v1", RL_HEADERS_IETF);
    rl_verdict_t v = make_verdict(&p, &l, 0, 0, 61000, 61000);
    json_t *body, *b;
    rl_body_tpl_t *tpl;
    rl_penalty_t pen;
    char buf[2048], *want;
    size_t len, cap;

    body = json_loads(compiled_bodies[row], JSON_DECODE_ANY | JSON_ALLOW_NUL,
                      NULL);
    ck_assert_ptr_nonnull(body);
    tpl = rl_reply_body_compile(body);
    ck_assert_ptr_nonnull(tpl);
    memset(&pen, 0, sizeof(pen));
    if (no_retry) {
        v.override_deny = 1;
        v.retry_after_ms = 0;
    }
    if (source == 0) {
        p.deny_body = body;
    } else if (source == 1 || source == 3) {
        v.deny_body = body;
        v.policy = source == 3 ? NULL : v.policy;
    } else {
        pen.deny_body = body;
        v.penalty_def = &pen;
    }
    /* Not compiled yet: the jansson path. */
    b = rl_reply_deny_body(&v);
    ck_assert_ptr_nonnull(b);
    want = json_dumps(b, flags | JSON_COMPACT | JSON_PRESERVE_ORDER);
    p.deny_tpl = source == 0 ? tpl : NULL;
    v.deny_tpl = source == 1 || source == 3 ? tpl : NULL;
    pen.deny_tpl = source == 2 ? tpl : NULL;
    len = rl_reply_deny_write(&v, flags, buf, sizeof(buf));
    if (want == NULL) {
        ck_assert_uint_eq(len, 0); /* a scalar without JSON_ENCODE_ANY */
    } else {
        ck_assert_uint_eq(len, strlen(want));
        ck_assert_mem_eq(buf, want, len + 1);
        for (cap = 0; cap <= len; cap++) {
            ck_assert_uint_ge(rl_reply_deny_write(&v, flags, buf, cap), cap);
        }
    }
    /* The default body, streamed as a constant. */
    p.deny_body = NULL;
    p.deny_tpl = NULL;
    v = make_verdict(&p, &l, 0, 0, 61000, 61000);
    len = rl_reply_deny_write(&v, flags, buf, sizeof(buf));
    ck_assert_str_eq(
        buf, "{\"error\":\"rate limit exceeded\",\"code\":\"RATE_001\"}");
    free(want);
    json_decref(b);
    json_decref(body);
    rl_reply_body_free(tpl);
}
END_TEST

/* An override that applied is named by "override" (after "test"); a deny
 * override's body replaces the policy's, templated the same way. */
START_TEST(test_decision_override)
{
    rl_limit_t l = {RL_ALGO_FIXED_WINDOW, 1000, 60000, 1000, 0, "f1m"};
    rl_policy_t p = make_policy("tenants", RL_HEADERS_NONE);
    rl_verdict_t v = make_verdict(&p, &l, 0, 0, 5000, 0);
    json_t *body = json_pack("{s:s}", "error", "suspended ({policy})");
    char buf[1024];

    p.deny_body = json_pack("{s:s}", "error", "policy body");
    v.status = 403;
    v.override = "config";
    v.deny_body = body;
    rl_reply_decision_write(&v, buf, sizeof(buf));
    ck_assert_str_eq(
        buf, "{\"allowed\":false,\"policy\":\"tenants\","
             "\"policies\":[\"tenants\"],\"limit\":1000,"
             "\"remaining\":0,\"reset_after_ms\":5000,\"retry_after_ms\":0,"
             "\"blocked\":false,\"degraded\":false,\"status\":403,"
             "\"headers\":{\"Retry-After\":\"1\"},"
             "\"body\":{\"error\":\"suspended (tenants)\"},"
             "\"override\":\"config\"}");
    v.override = NULL;
    v.deny_body = NULL;
    rl_reply_decision_write(&v, buf, sizeof(buf));
    ck_assert_ptr_null(strstr(buf, "override"));
    ck_assert_ptr_nonnull(strstr(buf, "policy body"));
    json_decref(body);
    json_decref(p.deny_body);
}
END_TEST

/* A deny override without ttl (and the unmatched deny) has no retry
 * time: no Retry-After, and the body's retry placeholders stay as they
 * are rather than claim "1 second"; with a ttl both give its time. */
START_TEST(test_deny_without_retry_time)
{
    static const char in[] = "wait {retry_after} / {retry_after_human}";
    rl_limit_t l = {RL_ALGO_FIXED_WINDOW, 1000, 60000, 1000, 0, "f1m"};
    rl_policy_t p = make_policy("tenants", RL_HEADERS_X_RATELIMIT);
    rl_verdict_t v = make_verdict(&p, &l, 0, 0, 0, 0);
    rl_reply_header_t out[RL_REPLY_MAX_HEADERS];
    char *s;

    v.override_deny = 1;
    ck_assert_int_eq(rl_reply_headers(&v, out), 0);
    s = rl_reply_template(in, &v);
    ck_assert_str_eq(s, in);
    free(s);

    v.retry_after_ms = 90500; /* the override expires in 90.5 s */
    ck_assert_int_eq(rl_reply_headers(&v, out), 1);
    ck_assert_str_eq(out[0].name, "Retry-After");
    ck_assert_str_eq(out[0].value, "91");
    s = rl_reply_template(in, &v);
    ck_assert_str_eq(s, "wait 91 / 2 minutes");
    free(s);

    v = make_verdict(NULL, NULL, 0, 0, 0, 0);
    s = rl_reply_template(in, &v);
    ck_assert_str_eq(s, in);
    free(s);
}
END_TEST

/* Every test case of this file. */
static Suite *reply_suite(void)
{
    Suite *s = suite_create("reply");
    TCase *tc = tcase_create("headers");

    tcase_add_loop_test(tc, test_headers_style, 0,
                        (int)(sizeof(header_cases) / sizeof(header_cases[0])));
    tcase_add_test(tc, test_headers_no_policy);
    tcase_add_test(tc, test_headers_shadow_would_deny);
    tcase_add_test(tc, test_headers_degraded);
    tcase_add_test(tc, test_headers_ietf_name_escaped);
    tcase_add_test(tc, test_headers_ietf_tie_follows_verdict);
    tcase_add_loop_test(tc, test_retry_after_rounding, 0,
                        (int)(sizeof(retry_cases) / sizeof(retry_cases[0])));
    suite_add_tcase(s, tc);

    tc = tcase_create("template");
    tcase_add_loop_test(
        tc, test_template, 0,
        (int)(sizeof(template_cases) / sizeof(template_cases[0])));
    tcase_add_test(tc, test_template_long);
    tcase_add_loop_test(tc, test_retry_after_human, 0,
                        (int)(sizeof(human_cases) / sizeof(human_cases[0])));
    tcase_add_test(tc, test_template_trace_id);
    tcase_add_test(tc, test_deny_body_default);
    tcase_add_test(tc, test_deny_body_nested);
    tcase_add_test(tc, test_deny_body_non_object);
    suite_add_tcase(s, tc);

    tc = tcase_create("decision");
    tcase_add_test(tc, test_decision_denied_issue_example);
    tcase_add_test(tc, test_decision_allowed);
    tcase_add_test(tc, test_decision_blocked_test_header);
    tcase_add_test(tc, test_decision_no_policy);
    tcase_add_test(tc, test_decision_degraded_open);
    tcase_add_test(tc, test_decision_degraded_closed);
    tcase_add_test(tc, test_decision_shadow);
    tcase_add_loop_test(tc, test_decision_writer_matches_jansson, 0,
                        2 * 4 * 4 * 32);
    tcase_add_loop_test(tc, test_compiled_body_matches_jansson, 0,
                        (int)NBODIES * 24);
    tcase_add_test(tc, test_decision_override);
    tcase_add_test(tc, test_deny_without_retry_time);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(reply_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
