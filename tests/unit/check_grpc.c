/* The pure parts of the gRPC front end (grpc_frame.c, grpc_rls.c's unit
 * and descriptor-limit mapping, which descriptor reads OVER_LIMIT) and
 * the per-part cost of a store op (store.h) on the memory store and in
 * the Redis command. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "decide.h"
#include "grpc.h"
#include "grpc_rls.h"
#include "redis_cmd.h"
#include "store.h"
#include "store_mem.h"
#include "util.h"

START_TEST(unit_is_exact_or_the_next_larger_scaled_down)
{
    static const struct {
        int64_t requests, period_ms;
        int unit;
        uint32_t per;
    } rows[] = {
        {5, 1000, 1, 5},              /* SECOND */
        {7, 60000, 2, 7},             /* MINUTE */
        {3, 3600000, 3, 3},           /* HOUR */
        {2, 86400000, 4, 2},          /* DAY */
        {9, 604800000, 7, 9},         /* WEEK */
        {4, 2592000000LL, 5, 4},      /* MONTH, 30 days */
        {1, 31536000000LL, 6, 1},     /* YEAR, 365 days */
        {10, 30000, 2, 20},           /* 10 per 30 s: 20 per MINUTE */
        {7, 90000, 3, 280},           /* 7 per 90 s: 280 per HOUR */
        {10, 1500, 2, 400},           /* 10 per 1.5 s: 400 per MINUTE */
        {3, 7000, 2, 25},             /* 25.7 rounded down */
        {1, 2 * 31536000000LL, 6, 0}, /* past a year: scaled down */
        {100, 500, 1, 200},           /* under a second */
    };
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int unit = -1;
        uint32_t per = 0;

        rl_grpc_rls_unit(rows[i].requests, rows[i].period_ms, &unit, &per);
        ck_assert_msg(unit == rows[i].unit && per == rows[i].per,
                      "row %zu: unit %d per %u", i, unit, per);
    }
}
END_TEST

START_TEST(descriptor_limit_is_a_fixed_window_with_its_own_suffix)
{
    rl_limit_t l;

    ck_assert_int_eq(rl_grpc_rls_descriptor_limit(20, 2, &l), 0);
    ck_assert_int_eq(l.algo, RL_ALGO_FIXED_WINDOW);
    ck_assert_int_eq(l.requests, 20);
    ck_assert_int_eq(l.period_ms, 60000);
    ck_assert_str_eq(l.suffix, "df1m");
    ck_assert_int_eq(rl_grpc_rls_descriptor_limit(1, 7, &l), 0);
    ck_assert_int_eq(l.period_ms, 604800000);
    ck_assert_int_eq(rl_grpc_rls_descriptor_limit(0, 2, &l), -1);
    ck_assert_int_eq(rl_grpc_rls_descriptor_limit(5, 0, &l), -1);
    ck_assert_int_eq(rl_grpc_rls_descriptor_limit(5, 8, &l), -1);
}
END_TEST

START_TEST(timeout_parse)
{
    static const struct {
        const char *v;
        int rc;
        int64_t us;
    } rows[] = {
        {"1S", 0, 1000000},
        {"250m", 0, 250000},
        {"5u", 0, 5},
        {"10n", 0, 1},
        {"2M", 0, 120000000},
        {"1H", 0, 3600000000LL},
        {"99999999H", 0, INT64_MAX / 1000},
        {"S", -1, 0},
        {"123456789S", -1, 0},
        {"1x", -1, 0},
        {"-1S", -1, 0},
        {"", -1, 0},
    };
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int64_t us = 0;
        int rc = rl_grpc_timeout_parse(rows[i].v, strlen(rows[i].v), &us);

        ck_assert_msg(rc == rows[i].rc, "row %zu rc %d", i, rc);
        if (rc == 0) {
            ck_assert_msg(us == rows[i].us, "row %zu us %lld", i,
                          (long long)us);
        }
    }
}
END_TEST

START_TEST(frame_parse)
{
    const uint8_t ok[] = {0, 0, 0, 0, 2, 0x0a, 0x00};
    const uint8_t zip[] = {1, 0, 0, 0, 2, 0x0a, 0x00};
    const uint8_t two[] = {0, 0, 0, 0, 1, 0x0a, 0, 0, 0, 0, 0};
    const uint8_t big[] = {0, 0, 0, 1, 0, 0x0a};
    const uint8_t *msg;
    const char *why = NULL;
    size_t len;

    ck_assert_int_eq(rl_grpc_frame_parse(ok, sizeof(ok), 64, &msg, &len, &why),
                     RL_GRPC_OK);
    ck_assert_ptr_eq(msg, ok + 5);
    ck_assert_int_eq(len, 2);
    ck_assert_int_eq(rl_grpc_frame_parse(ok, 4, 64, &msg, &len, &why),
                     RL_GRPC_INVALID_ARGUMENT);
    ck_assert_int_eq(
        rl_grpc_frame_parse(zip, sizeof(zip), 64, &msg, &len, &why),
        RL_GRPC_UNIMPLEMENTED);
    ck_assert_int_eq(
        rl_grpc_frame_parse(two, sizeof(two), 64, &msg, &len, &why),
        RL_GRPC_INVALID_ARGUMENT);
    ck_assert_int_eq(
        rl_grpc_frame_parse(big, sizeof(big), 255, &msg, &len, &why),
        RL_GRPC_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(why);
}
END_TEST

static void on_result(void *arg, const rl_store_result_t *res)
{
    *(rl_store_result_t *)arg = *res;
}

/* A fixed window of n per hour. */
static rl_limit_t window(int64_t n)
{
    rl_limit_t l;

    memset(&l, 0, sizeof(l));
    l.algo = RL_ALGO_FIXED_WINDOW;
    l.requests = n;
    l.period_ms = 3600000;
    l.burst = n;
    snprintf(l.suffix, sizeof(l.suffix), "f1h");
    return l;
}

START_TEST(part_costs_on_the_memory_store)
{
    rl_mem_table_t *t = rl_mem_table_new();
    rl_store_t *s = rl_store_mem_new(t, NULL, NULL);
    rl_limit_t a = window(10), b = window(3);
    rl_store_part_t parts[2] = {{"rl:{a}", 6, &a, 1, 5},
                                {"rl:{b}", 6, &b, 1, 0}};
    rl_store_op_t op;
    rl_store_result_t res;

    memset(&op, 0, sizeof(op));
    op.parts = parts;
    op.nparts = 2;
    op.part_costs = 1;
    rl_store_decide(s, &op, on_result, &res);
    ck_assert_int_eq(res.status, RL_OK);
    ck_assert_int_eq(res.allowed, 1);
    ck_assert_int_eq(res.limits[0].remaining, 5); /* cost 5 */
    ck_assert_int_eq(res.limits[1].remaining, 3); /* a peek */
    parts[0].cost = 1;
    parts[1].cost = 4; /* over b: nothing spent on a either */
    rl_store_decide(s, &op, on_result, &res);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_int_eq(res.limits[0].allowed, 1);
    ck_assert_int_eq(res.limits[1].allowed, 0);
    parts[0].cost = 0;
    parts[1].cost = 3;
    rl_store_decide(s, &op, on_result, &res);
    ck_assert_int_eq(res.allowed, 1);
    ck_assert_int_eq(res.limits[0].remaining, 5);
    ck_assert_int_eq(res.limits[1].remaining, 0);
    parts[1].cost = -1;
    rl_store_decide(s, &op, on_result, &res);
    ck_assert_int_eq(res.status, RL_ERR);
    rl_store_free(s);
    rl_mem_table_free(t);
}
END_TEST

/* The signed little-endian 8-byte number at p (the Redis request's part
 * cost, store.h). */
static int64_t le64(const char *p)
{
    uint64_t v = 0;
    int i;

    for (i = 7; i >= 0; i--) {
        v = (v << 8) | (unsigned char)p[i];
    }
    return (int64_t)v;
}

START_TEST(part_costs_in_the_redis_command)
{
    rl_limit_t a = window(10), b = window(3);
    rl_store_part_t parts[2] = {{"rl:{a}", 6, &a, 1, 5},
                                {"rl:{b}", 6, &b, 1, 0}};
    rl_store_op_t op;
    rl_redis_cmd_t cmd;
    const char *req;

    memset(&op, 0, sizeof(op));
    memset(&cmd, 0, sizeof(cmd));
    op.parts = parts;
    op.nparts = 2;
    op.part_costs = 1;
    op.cost = 9; /* unused with part costs */
    ck_assert_ptr_null(rl_redis_cmd_check(&op));
    ck_assert_int_eq(
        rl_redis_cmd_build(&cmd, "0123456789012345678901234567890123456789",
                           &op, RL_REDIS_CMD_DECIDE),
        RL_OK);
    /* The request (protocol v3): P, M, then per part n, cost, n limits of
     * 25 bytes: each part's own cost, never op.cost. */
    req = cmd.argv[cmd.argc - 1];
    ck_assert_int_eq(cmd.argvlen[cmd.argc - 1], 2 + 2 * (9 + 25));
    ck_assert_int_eq(le64(req + 3), 5);
    ck_assert_int_eq(le64(req + 3 + 8 + 25 + 1), 0);
    parts[1].cost = -2;
    ck_assert_str_eq(rl_redis_cmd_check(&op), "bad_op");
    free(cmd.buf);
}
END_TEST

/* The descriptor statuses of one call: two descriptors matched by one
 * policy of 3 per hour (each its own key), as
 * rl_decide_verdict_layered builds the verdict from res. */
static void two_parts(const rl_store_result_t *res, const unsigned *masks,
                      int npens, rl_verdict_t *v)
{
    static rl_policy_t p;
    static rl_limit_t l;
    static rl_penalty_t pen;
    const rl_penalty_t *pens[1] = {&pen};
    rl_verdict_part_t parts[2];
    int tests[2] = {0, 0};

    memset(&p, 0, sizeof(p));
    memset(&pen, 0, sizeof(pen));
    p.name = "small";
    p.deny_status = 429;
    p.failure_open = 1;
    pen.name = "box";
    l = window(3);
    parts[0] = (rl_verdict_part_t){&p, &l, 1, NULL};
    parts[1] = parts[0];
    rl_decide_verdict_layered(parts, 2, pens, masks, npens, tests, res, v);
}

START_TEST(only_the_denying_descriptor_is_over)
{
    unsigned masks[1] = {2}; /* the penalty's key: part 1's */
    rl_store_result_t res;
    rl_verdict_t v;
    int pick;

    memset(&res, 0, sizeof(res));
    /* A fresh key (3 left) beside one at its limit: the call is denied,
     * but only the second descriptor is over. */
    res.limits[0] = (rl_limit_result_t){1, 0, 3, 60000, 0};
    res.limits[1] = (rl_limit_result_t){0, 0, 0, 60000, 60000};
    two_parts(&res, masks, 0, &v);
    ck_assert_int_eq(v.allowed, 0);
    ck_assert_int_eq(rl_grpc_rls_part_over(&v, 0, &pick), 0);
    ck_assert_int_eq(rl_grpc_rls_part_over(&v, 1, &pick), 1);
    /* A penalty blocking part 1's key (its limits admit): part 1 only. */
    res.limits[1] = (rl_limit_result_t){1, 0, 2, 60000, 0};
    res.penalties[0] = (rl_penalty_result_t){RL_PENALTY_BLOCKING, 9000};
    two_parts(&res, masks, 1, &v);
    ck_assert_int_eq(v.allowed, 0);
    ck_assert_int_eq(rl_grpc_rls_part_over(&v, 0, &pick), 0);
    ck_assert_int_eq(rl_grpc_rls_part_over(&v, 1, &pick), 1);
    /* Both keys under the penalty: both over. */
    masks[0] = 3;
    two_parts(&res, masks, 1, &v);
    ck_assert_int_eq(rl_grpc_rls_part_over(&v, 0, &pick), 1);
    ck_assert_int_eq(rl_grpc_rls_part_over(&v, 1, &pick), 1);
    /* A deny override on part 0's key (no store results): part 0 only. */
    v.deny_parts = 1u;
    v.policies[0].results = v.policies[1].results = NULL;
    ck_assert_int_eq(rl_grpc_rls_part_over(&v, 0, &pick), 1);
    ck_assert_int_eq(rl_grpc_rls_part_over(&v, 1, &pick), 0);
    /* Admitted: nothing is over. */
    memset(&res, 0, sizeof(res));
    res.allowed = 1;
    res.limits[0] = (rl_limit_result_t){1, 0, 2, 60000, 0};
    res.limits[1] = (rl_limit_result_t){1, 0, 0, 60000, 0};
    two_parts(&res, masks, 0, &v);
    ck_assert_int_eq(v.deny_parts, 0);
    ck_assert_int_eq(rl_grpc_rls_part_over(&v, 0, &pick), 0);
    ck_assert_int_eq(rl_grpc_rls_part_over(&v, 1, &pick), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("grpc");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, unit_is_exact_or_the_next_larger_scaled_down);
    tcase_add_test(tc, descriptor_limit_is_a_fixed_window_with_its_own_suffix);
    tcase_add_test(tc, timeout_parse);
    tcase_add_test(tc, frame_parse);
    tcase_add_test(tc, part_costs_on_the_memory_store);
    tcase_add_test(tc, part_costs_in_the_redis_command);
    tcase_add_test(tc, only_the_denying_descriptor_is_over);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
