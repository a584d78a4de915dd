/* Unit tests of the error and outcome tables: every (decide status,
 * verdict) pair lands on the row a front end must answer, with the
 * status, error kind, access-log word and counter of that row. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "outcome.h"
#include "stats.h"

static rl_policy_t policy_418;

/* One case: what rl_decide's callback got, and what must come of it. */
static const struct {
    const char *what;
    rl_decide_status_t status;
    int has_policy, allowed, degraded, shadow;
    rl_error_t auth_error; /* RL_DECIDE_AUTH: the tenant check's kind */
    rl_outcome_kind_t kind;
    int http;
    const char *code; /* NULL: no error */
    const char *verdict;
} rows[] = {
    {"allowed", RL_DECIDE_OK, 1, 1, 0, 0, RL_ERR_NONE, RL_OUTCOME_ALLOWED, 200,
     NULL, "allowed"},
    {"denied: the policy's status", RL_DECIDE_OK, 1, 0, 0, 0, RL_ERR_NONE,
     RL_OUTCOME_DENIED, 418, "RATE_001", "denied"},
    {"shadow", RL_DECIDE_OK, 1, 1, 0, 1, RL_ERR_NONE, RL_OUTCOME_SHADOW_DENIED,
     200, NULL, "shadow_denied"},
    {"unmatched", RL_DECIDE_OK, 0, 1, 0, 0, RL_ERR_NONE, RL_OUTCOME_UNMATCHED,
     200, NULL, "unmatched"},
    {"degraded open", RL_DECIDE_OK, 1, 1, 1, 0, RL_ERR_NONE,
     RL_OUTCOME_DEGRADED_OPEN, 200, NULL, "error"},
    {"degraded closed", RL_DECIDE_UNAVAILABLE, 1, 0, 1, 0, RL_ERR_NONE,
     RL_OUTCOME_UNAVAILABLE, 503, "STORE_001", "error"},
    {"degraded closed, status ok", RL_DECIDE_OK, 1, 0, 1, 0, RL_ERR_NONE,
     RL_OUTCOME_UNAVAILABLE, 503, "STORE_001", "error"},
    {"missing key field", RL_DECIDE_INVALID, 0, 0, 0, 0, RL_ERR_NONE,
     RL_OUTCOME_INVALID, 422, "VAL_001", "invalid"},
    {"unknown policy", RL_DECIDE_BAD_POLICY, 0, 0, 0, 0, RL_ERR_NONE,
     RL_OUTCOME_BAD_POLICY, 422, "VAL_002", "invalid"},
    {"bad signature", RL_DECIDE_AUTH, 1, 0, 0, 0, RL_ERR_AUTH_INVALID,
     RL_OUTCOME_TENANT_AUTH, 401, "AUTH_001", "unauthorized"},
    {"suspended tenant", RL_DECIDE_AUTH, 1, 0, 0, 0, RL_ERR_AUTH_SUSPENDED,
     RL_OUTCOME_TENANT_AUTH, 403, "AUTH_003", "unauthorized"},
};

START_TEST(test_outcome_rows)
{
    rl_verdict_t v;
    rl_outcome_t o;

    memset(&v, 0, sizeof(v));
    policy_418.name = "p";
    policy_418.deny_status = 418;
    v.policy = rows[_i].has_policy ? &policy_418 : NULL;
    v.allowed = rows[_i].allowed;
    v.degraded = rows[_i].degraded;
    v.degraded_reason = rows[_i].degraded ? "timeout" : NULL;
    v.shadow_would_deny = rows[_i].shadow;
    v.error = rows[_i].auth_error;
    rl_outcome_of(rows[_i].status, &v, &o);
    ck_assert_msg(o.kind == rows[_i].kind, "%s: kind %d", rows[_i].what,
                  (int)o.kind);
    ck_assert_msg(o.status == rows[_i].http, "%s: status %d", rows[_i].what,
                  o.status);
    ck_assert_str_eq(o.verdict, rows[_i].verdict);
    if (rows[_i].code != NULL) {
        ck_assert_str_eq(rl_error_code(o.error), rows[_i].code);
    } else {
        ck_assert_int_eq(o.error, RL_ERR_NONE);
    }
}
END_TEST

/* A front end's own validation failure takes the parser's kind. */
START_TEST(test_bad_request_takes_its_kind)
{
    rl_outcome_t o;

    rl_outcome_make(RL_OUTCOME_BAD_REQUEST, NULL, RL_ERR_MALFORMED_JSON, &o);
    ck_assert_int_eq(o.status, 400);
    ck_assert_str_eq(rl_error_code(o.error), "VAL_002");
    ck_assert_int_eq(o.reply, RL_OUTCOME_REPLY_ERROR);
    rl_outcome_make(RL_OUTCOME_BAD_REQUEST, NULL, RL_ERR_BAD_PATH, &o);
    ck_assert_int_eq(o.status, 422);
    ck_assert_str_eq(o.verdict, "invalid");
}
END_TEST

/* A fail-closed store failure takes the policy's "unavailable" status
 * (the access log and every front end read o.status), else 503. */
START_TEST(test_unavailable_status)
{
    rl_unavailable_t u = {599, NULL};
    rl_policy_t p;
    rl_verdict_t v;
    rl_outcome_t o;

    memset(&p, 0, sizeof(p));
    memset(&v, 0, sizeof(v));
    p.name = "ingest";
    p.unavailable = &u;
    v.policy = &p;
    v.degraded = 1;
    rl_outcome_of(RL_DECIDE_UNAVAILABLE, &v, &o);
    ck_assert_int_eq(o.kind, RL_OUTCOME_UNAVAILABLE);
    ck_assert_int_eq(o.status, 599);
    ck_assert_int_eq(o.reply, RL_OUTCOME_REPLY_UNAVAILABLE);
    ck_assert_str_eq(rl_error_code(o.error), "STORE_001");
    p.unavailable = NULL;
    rl_outcome_of(RL_DECIDE_UNAVAILABLE, &v, &o);
    ck_assert_int_eq(o.status, 503);
}
END_TEST

/* Each outcome bumps its row's counter, once. */
START_TEST(test_counts)
{
    static rl_stats_t st;
    rl_outcome_t o;

    memset(&st, 0, sizeof(st));
    rl_outcome_make(RL_OUTCOME_TENANT_AUTH, NULL, RL_ERR_NONE, &o);
    rl_outcome_count(&st, &o, NULL);
    rl_outcome_make(RL_OUTCOME_BAD_REQUEST, NULL, RL_ERR_INVALID_FIELD, &o);
    rl_outcome_count(&st, &o, NULL);
    rl_outcome_make(RL_OUTCOME_UNMATCHED, NULL, RL_ERR_NONE, &o);
    rl_outcome_count(&st, &o, NULL);
    ck_assert_uint_eq(st.tenant_auth_failures, 1);
    ck_assert_uint_eq(st.decisions_invalid, 1);
    ck_assert_uint_eq(st.decisions_unmatched, 1);
    ck_assert_uint_eq(st.decisions_allowed, 0);
}
END_TEST

/* Out-of-range kinds read as INTERNAL, never past the table. */
START_TEST(test_error_bounds)
{
    ck_assert_str_eq(rl_error_code(RL_NERRORS), "INTERNAL");
    ck_assert_str_eq(rl_error_code((rl_error_t)-1), "INTERNAL");
    ck_assert_int_eq(rl_error_status(RL_ERR_NONE), 500);
    ck_assert_int_eq(rl_error_status(RL_ERR_METHOD_NOT_ALLOWED), 405);
    ck_assert_str_eq(rl_error_message(RL_ERR_NOT_FOUND), "no such endpoint");
}
END_TEST

/* Builds the suite. */
static Suite *outcome_suite(void)
{
    Suite *s = suite_create("outcome");
    TCase *tc = tcase_create("outcome");

    tcase_add_loop_test(tc, test_outcome_rows, 0,
                        (int)(sizeof(rows) / sizeof(rows[0])));
    tcase_add_test(tc, test_bad_request_takes_its_kind);
    tcase_add_test(tc, test_unavailable_status);
    tcase_add_test(tc, test_counts);
    tcase_add_test(tc, test_error_bounds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(outcome_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
