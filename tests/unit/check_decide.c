/* The decision core: verdict building (pure) and whole decisions over the
 * memory store with an injected clock. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include "conf.h"
#include "decide.h"
#include "store_mem.h"
#include "util.h"

static rl_limit_t mk_limit(int64_t requests, int64_t period_ms)
{
    rl_limit_t l;
    memset(&l, 0, sizeof(l));
    l.algo = RL_ALGO_GCRA;
    l.requests = requests;
    l.burst = requests;
    l.period_ms = period_ms;
    return l;
}

static rl_policy_t mk_policy(void)
{
    rl_policy_t p;
    memset(&p, 0, sizeof(p));
    p.name = "p";
    p.deny_status = 429;
    p.failure_open = 1;
    return p;
}

START_TEST(verdict_picks_fewest_remaining_when_allowed)
{
    rl_limit_t limits[3] = {mk_limit(1000, 1000), mk_limit(10000, 60000),
                            mk_limit(100, 3600000)};
    rl_policy_t p = mk_policy();
    rl_store_result_t res;
    rl_verdict_t v;

    memset(&res, 0, sizeof(res));
    res.allowed = 1;
    res.now_ms = 1000;
    res.limits[0] = (rl_limit_result_t){1, 0, 999, 1, 0};
    res.limits[1] = (rl_limit_result_t){1, 0, 9999, 6, 0};
    res.limits[2] = (rl_limit_result_t){1, 0, 5, 36000, 0};
    rl_decide_verdict(&p, limits, 3, 0, &res, &v);
    ck_assert_int_eq(v.allowed, 1);
    ck_assert_int_eq(v.status, 200);
    ck_assert_int_eq(v.limit, 100);
    ck_assert_int_eq(v.remaining, 5);
    ck_assert_int_eq(v.reset_after_ms, 36000);
    ck_assert_int_eq(v.retry_after_ms, 0);
    ck_assert_ptr_eq(v.limit_def, &limits[2]);
}
END_TEST

static int layered_shadow_a; /* policy a in shadow mode */

/* Two applied policies (file order a, b), one limit each, and a penalty
 * on b: the deciding policy per ISSUE 12. */
static void layered(const rl_store_result_t *res, rl_verdict_t *v,
                    rl_penalty_t *pen)
{
    static rl_limit_t la, lb;
    static rl_policy_t pa, pb;
    rl_verdict_part_t parts[2];
    const rl_penalty_t *pens[1] = {pen};
    unsigned masks[1] = {2};
    int tests[2] = {0, 0};

    la = mk_limit(100, 60000);
    lb = mk_limit(30, 60000);
    pa = mk_policy();
    pb = mk_policy();
    pa.name = "a";
    pa.shadow = layered_shadow_a;
    pb.name = "b";
    pb.deny_status = 403;
    parts[0] = (rl_verdict_part_t){&pa, &la, 1, NULL};
    parts[1] = (rl_verdict_part_t){&pb, &lb, 1, NULL};
    rl_decide_verdict_layered(parts, 2, pens, masks, 1, tests, res, v);
}

START_TEST(verdict_layered_deciding_policy)
{
    rl_penalty_t pen;
    rl_store_result_t res;
    rl_verdict_t v;

    memset(&pen, 0, sizeof(pen));
    pen.name = "ham";
    pen.deny_status = 418;
    memset(&res, 0, sizeof(res));
    /* Allowed: the policy with the fewest remaining (b), both listed. */
    res.allowed = 1;
    res.limits[0] = (rl_limit_result_t){1, 0, 7, 100, 0};
    res.limits[1] = (rl_limit_result_t){1, 0, 3, 100, 0};
    layered(&res, &v, &pen);
    ck_assert_str_eq(v.policy->name, "b");
    ck_assert_int_eq(v.npolicies, 2);
    ck_assert_str_eq(v.policies[0].policy->name, "a");
    ck_assert_int_eq(v.remaining, 3);
    ck_assert_ptr_null(v.penalty);
    /* Tie: file order. */
    res.limits[1].remaining = 7;
    layered(&res, &v, &pen);
    ck_assert_str_eq(v.policy->name, "a");
    /* Denied by a: a decides, with its status. */
    res.allowed = 0;
    res.limits[0] = (rl_limit_result_t){0, 0, 0, 100, 500};
    layered(&res, &v, &pen);
    ck_assert_str_eq(v.policy->name, "a");
    ck_assert_int_eq(v.status, 429);
    ck_assert_int_eq(v.retry_after_ms, 500);
    /* Both deny and a is in shadow mode: the enforced b decides. */
    res.limits[1] = (rl_limit_result_t){0, 0, 0, 100, 700};
    layered_shadow_a = 1;
    layered(&res, &v, &pen);
    ck_assert_str_eq(v.policy->name, "b");
    ck_assert_int_eq(v.allowed, 0);
    ck_assert_int_eq(v.status, 403);
    layered_shadow_a = 0;
    res.limits[1] = (rl_limit_result_t){1, 0, 7, 100, 0};
    /* Blocked by the penalty (on b): b decides, the penalty's status and
     * time left, remaining 0. */
    res.limits[0] = (rl_limit_result_t){1, 0, 7, 100, 0};
    res.penalties[0] = (rl_penalty_result_t){RL_PENALTY_BLOCKING, 9000};
    layered(&res, &v, &pen);
    ck_assert_str_eq(v.policy->name, "b");
    ck_assert_str_eq(v.penalty, "ham");
    ck_assert_int_eq(v.blocked, 1);
    ck_assert_int_eq(v.status, 418);
    ck_assert_int_eq(v.retry_after_ms, 9000);
    ck_assert_int_eq(v.remaining, 0);
}
END_TEST

START_TEST(verdict_records_the_denying_parts)
{
    rl_penalty_t pen;
    rl_store_result_t res;
    rl_verdict_part_t all[3];
    rl_limit_t l = mk_limit(10, 60000);
    rl_policy_t p = mk_policy();
    rl_verdict_t v;

    memset(&pen, 0, sizeof(pen));
    pen.name = "ham";
    memset(&res, 0, sizeof(res));
    /* Denied by b's limit: b alone, not a, which only shares it. */
    res.limits[0] = (rl_limit_result_t){1, 0, 7, 100, 0};
    res.limits[1] = (rl_limit_result_t){0, 0, 0, 100, 700};
    layered(&res, &v, &pen);
    ck_assert_uint_eq(v.deny_parts, 2u);
    /* Denied by both limits. */
    res.limits[0] = (rl_limit_result_t){0, 0, 0, 100, 500};
    layered(&res, &v, &pen);
    ck_assert_uint_eq(v.deny_parts, 3u);
    /* Blocked by the penalty on b's key, both limits admitting. */
    res.limits[0] = (rl_limit_result_t){1, 0, 7, 100, 0};
    res.limits[1] = (rl_limit_result_t){1, 0, 7, 100, 0};
    res.penalties[0] = (rl_penalty_result_t){RL_PENALTY_BLOCKING, 9000};
    layered(&res, &v, &pen);
    ck_assert_uint_eq(v.deny_parts, 2u);
    /* A limit-less part put back in front moves b's bit with it. */
    all[0] = (rl_verdict_part_t){&p, NULL, 0, NULL};
    all[1] = v.policies[0];
    all[2] = v.policies[1];
    rl_decide_verdict_expand(all, 3, &v);
    ck_assert_uint_eq(v.deny_parts, 4u);
    /* Admitted: none. */
    memset(&res, 0, sizeof(res));
    res.allowed = 1;
    layered(&res, &v, &pen);
    ck_assert_uint_eq(v.deny_parts, 0u);
    /* One policy: its only part, when denied. */
    res.allowed = 0;
    res.limits[0] = (rl_limit_result_t){0, 0, 0, 100, 500};
    rl_decide_verdict(&p, &l, 1, 0, &res, &v);
    ck_assert_uint_eq(v.deny_parts, 1u);
}
END_TEST

START_TEST(verdict_denied_describes_longest_wait)
{
    rl_limit_t limits[2] = {mk_limit(5, 1000), mk_limit(60, 60000)};
    rl_policy_t p = mk_policy();
    rl_store_result_t res;
    rl_verdict_t v;

    memset(&res, 0, sizeof(res));
    res.allowed = 0;
    res.limits[0] = (rl_limit_result_t){0, 0, 0, 1000, 200};
    res.limits[1] = (rl_limit_result_t){0, 1, 0, 10000, 10000};
    rl_decide_verdict(&p, limits, 2, 0, &res, &v);
    ck_assert_int_eq(v.allowed, 0);
    ck_assert_int_eq(v.status, 429);
    ck_assert_int_eq(v.limit, 60);
    ck_assert_int_eq(v.retry_after_ms, 10000);
    ck_assert_int_eq(v.blocked, 1);

    /* A limit that admitted is never the one described on a denial. */
    res.limits[0] = (rl_limit_result_t){1, 0, 3, 400, 0};
    res.limits[1] = (rl_limit_result_t){0, 0, 0, 7000, 7000};
    rl_decide_verdict(&p, limits, 2, 0, &res, &v);
    ck_assert_int_eq(v.limit, 60);
    ck_assert_int_eq(v.retry_after_ms, 7000);
    ck_assert_int_eq(v.blocked, 0);
}
END_TEST

START_TEST(verdict_shadow_never_denies)
{
    rl_limit_t limits[1] = {mk_limit(1, 1000)};
    rl_policy_t p = mk_policy();
    rl_store_result_t res;
    rl_verdict_t v;

    p.shadow = 1;
    memset(&res, 0, sizeof(res));
    res.allowed = 0;
    res.limits[0] = (rl_limit_result_t){0, 0, 0, 1000, 1000};
    rl_decide_verdict(&p, limits, 1, 0, &res, &v);
    ck_assert_int_eq(v.allowed, 1);
    ck_assert_int_eq(v.shadow_would_deny, 1);
    ck_assert_int_eq(v.status, 200);
}
END_TEST

/* Whole decisions through rl_decide over the memory store. */

static int64_t fake_now;
static int64_t fake_clock(void *arg)
{
    return fake_now;
}

typedef struct seen {
    int calls;
    rl_decide_status_t status;
    rl_verdict_t v;
    char message[256];
} seen_t;

static void on_decision(void *arg, rl_decide_status_t status,
                        const rl_verdict_t *v, const char *msg)
{
    seen_t *s = arg;
    s->calls++;
    s->status = status;
    if (v != NULL) {
        s->v = *v;
    }
    snprintf(s->message, sizeof(s->message), "%s", msg != NULL ? msg : "");
}

static const char *conf_text =
    "{\"store\": {\"type\": \"memory\"}, \"policies\": ["
    " {\"name\": \"process\", \"match\": {\"method\": \"POST\", \"path\": "
    "\"/process/{site}\"},"
    "  \"key\": [\"tenant\", \"path.site\"],"
    "  \"limits\": [{\"requests\": 1, \"per\": \"5m\", \"burst\": 1}],"
    "  \"test\": {\"header\": \"rate-limit-test\", \"value\": \"match\","
    "            \"limits\": [{\"requests\": 2, \"per\": \"10s\", "
    "\"algorithm\": \"fixed_window\"}]},"
    "  \"deny\": {\"status\": 429}},"
    " {\"name\": \"other\", \"match\": {\"path\": \"/api/*\"}, \"key\": "
    "[\"path\"],"
    "  \"limits\": [{\"requests\": 5, \"per\": \"1s\"}]}]}";

static seen_t decide_once(const rl_conf_t *conf, rl_store_t *store,
                          rl_request_t *req)
{
    seen_t s;
    memset(&s, 0, sizeof(s));
    rl_decide(conf, store, req, on_decision, &s);
    return s;
}

/* A config text parsed, over a fresh memory store on the fake clock. */
typedef struct fixture {
    rl_conf_t *conf;
    rl_mem_table_t *t;
    rl_store_t *store;
} fixture_t;

static void fixture_open(fixture_t *f, const char *text)
{
    char err[256];

    f->conf = rl_conf_parse(text, strlen(text), err, sizeof(err));
    ck_assert_msg(f->conf != NULL, "%s", err);
    f->t = rl_mem_table_new();
    f->store = rl_store_mem_new(f->t, fake_clock, NULL);
    fake_now = 1700000000000LL;
}

static void fixture_close(fixture_t *f)
{
    rl_store_free(f->store);
    rl_mem_table_free(f->t);
    rl_conf_free(f->conf);
    rl_decide_thread_cleanup();
}

START_TEST(decide_end_to_end_memory_store)
{
    fixture_t f;
    rl_conf_t *conf;
    rl_store_t *store;
    rl_request_t req;
    seen_t s;
    int i, admitted;

    fixture_open(&f, conf_text);
    conf = f.conf;
    store = f.store;

    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.path = "/process/site-1";
    req.path_len = strlen(req.path);
    req.tenant = "tenant-a";
    req.cost = 1;

    s = decide_once(conf, store, &req);
    ck_assert_int_eq(s.calls, 1);
    ck_assert_int_eq(s.status, RL_DECIDE_OK);
    ck_assert_int_eq(s.v.allowed, 1);
    ck_assert_str_eq(s.v.policy->name, "process");

    s = decide_once(conf, store, &req);
    ck_assert_int_eq(s.v.allowed, 0);
    ck_assert_int_eq(s.v.status, 429);
    ck_assert_int_eq(s.v.retry_after_ms, 300000);

    /* Another site has its own counter. */
    req.path = "/process/site-2";
    req.path_len = strlen(req.path);
    s = decide_once(conf, store, &req);
    ck_assert_int_eq(s.v.allowed, 1);

    /* The test header counts against the test limits only. */
    req.headers[0] = (rl_header_t){"Rate-Limit-Test", 15, "match", 5};
    req.nheaders = 1;
    for (i = 0, admitted = 0; i < 5; i++) {
        s = decide_once(conf, store, &req);
        ck_assert_int_eq(s.v.test, 1);
        admitted += s.v.allowed;
    }
    ck_assert_int_eq(admitted, 2);
    req.nheaders = 0;

    /* Missing key field: invalid, naming it. */
    req.tenant = NULL;
    s = decide_once(conf, store, &req);
    ck_assert_int_eq(s.status, RL_DECIDE_INVALID);
    ck_assert_msg(strstr(s.message, "tenant") != NULL, "%s", s.message);

    /* No policy: admitted, no policy. */
    req.path = "/nothing";
    req.path_len = strlen(req.path);
    s = decide_once(conf, store, &req);
    ck_assert_int_eq(s.status, RL_DECIDE_OK);
    ck_assert_int_eq(s.v.allowed, 1);
    ck_assert_ptr_null(s.v.policy);

    /* Each endpoint on its own under the catch-all. */
    req.method = "GET";
    for (i = 0, admitted = 0; i < 8; i++) {
        req.path = (i % 2) ? "/api/a" : "/api/b";
        req.path_len = strlen(req.path);
        admitted += decide_once(conf, store, &req).v.allowed;
    }
    ck_assert_int_eq(admitted, 8);
    for (i = 0, admitted = 0; i < 4; i++) {
        req.path = "/api/a";
        req.path_len = strlen(req.path);
        admitted += decide_once(conf, store, &req).v.allowed;
    }
    ck_assert_int_eq(admitted, 1);

    fixture_close(&f);
}
END_TEST

/* A policy with "limits": [] takes what it matches (first match in file
 * order, so the general policy after it counts none of it) and allows
 * with no store call; another group's policy still decides, and the
 * verdict lists both, the limit-less one with no limits. */
START_TEST(decide_limitless_policy)
{
    static const char *text =
        "{\"store\": {\"type\": \"memory\"}, \"policies\": ["
        " {\"name\": \"vip\", \"match\": {\"path\": \"/v/*\"}, \"limits\": []},"
        " {\"name\": \"gvip\", \"match\": {\"path\": \"/g/*\"}, "
        "\"limits\": []},"
        " {\"name\": \"api\", \"match\": {\"path\": \"/*\"}, \"key\": "
        "[\"path\"], \"limits\": [{\"requests\": 1, \"per\": \"1m\"}]},"
        " {\"name\": \"acct\", \"group\": \"acct\", \"match\": {\"path\": "
        "\"/g/*\"}, \"key\": [\"tenant\"], \"limits\": [{\"requests\": 2, "
        "\"per\": \"1m\"}]}]}";
    rl_request_t req = {.method = "GET", .cost = 1};
    fixture_t f;
    seen_t s;
    int i, admitted;

    fixture_open(&f, text);
    req.path = "/v/a";
    req.path_len = strlen(req.path);
    for (i = 0; i < 5; i++) {
        s = decide_once(f.conf, f.store, &req);
        ck_assert_int_eq(s.status, RL_DECIDE_OK);
        ck_assert_int_eq(s.v.allowed, 1);
        ck_assert_int_eq(s.v.unlimited, 1);
        ck_assert_str_eq(s.v.policy->name, "vip");
        ck_assert_ptr_null(s.v.limit_def);
        ck_assert_int_eq(s.v.npolicies, 1);
        ck_assert_int_eq(s.v.policies[0].nlimits, 0);
    }
    /* The general policy counted none of them. */
    ck_assert_int_eq(rl_mem_table_size(f.t), 0);
    req.path = "/other";
    req.path_len = strlen(req.path);
    ck_assert_int_eq(decide_once(f.conf, f.store, &req).v.allowed, 1);
    ck_assert_int_eq(decide_once(f.conf, f.store, &req).v.allowed, 0);
    /* A reset of a limit-less policy's request has nothing to clear. */
    req.path = "/v/a";
    req.path_len = strlen(req.path);
    memset(&s, 0, sizeof(s));
    rl_decide_reset(f.conf, f.store, &req, on_decision, &s);
    ck_assert_int_eq(s.calls, 1);
    ck_assert_int_eq(s.status, RL_DECIDE_OK);

    /* /g/: gvip (default group, limit-less) beside acct (its own group). */
    req.path = "/g/x";
    req.path_len = strlen(req.path);
    req.tenant = "t1";
    for (i = 0, admitted = 0; i < 3; i++) {
        s = decide_once(f.conf, f.store, &req);
        admitted += s.v.allowed;
        ck_assert_int_eq(s.v.unlimited, 0);
        ck_assert_str_eq(s.v.policy->name, "acct");
        ck_assert_int_eq(s.v.npolicies, 2);
        ck_assert_str_eq(s.v.policies[0].policy->name, "gvip");
        ck_assert_int_eq(s.v.policies[0].nlimits, 0);
        ck_assert_ptr_null(s.v.policies[0].results);
        ck_assert_str_eq(s.v.policies[1].policy->name, "acct");
        ck_assert_ptr_nonnull(s.v.policies[1].results);
    }
    ck_assert_int_eq(admitted, 2);

    fixture_close(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("decide");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, verdict_picks_fewest_remaining_when_allowed);
    tcase_add_test(tc, verdict_denied_describes_longest_wait);
    tcase_add_test(tc, verdict_layered_deciding_policy);
    tcase_add_test(tc, verdict_records_the_denying_parts);
    tcase_add_test(tc, verdict_shadow_never_denies);
    tcase_add_test(tc, decide_end_to_end_memory_store);
    tcase_add_test(tc, decide_limitless_policy);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
