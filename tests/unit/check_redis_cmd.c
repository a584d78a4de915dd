/* The Redis command codec (redis_cmd.c), protocol v3 of store.h: the keys
 * (one per part, one per penalty), the binary request byte by byte, DEL
 * of the same keys, sub-ops and refunds, the ops refused, and the reply
 * parser. Pure: no Redis. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis_cmd.h"
#include "limit_helper.h"
#include "reply_helper.h"
#include "util.h"

#define FN "ratelimitd_0123456789012345678901234567890123456789"

/* The unsigned little-endian number of n bytes at p. */
static uint64_t le(const char *p, int n)
{
    uint64_t v = 0;

    while (n-- > 0) {
        v = (v << 8) | (unsigned char)p[n];
    }
    return v;
}

/* 1 if argument i of cmd is the string s. */
static int arg_is(const rl_redis_cmd_t *cmd, int i, const char *s)
{
    return cmd->argvlen[i] == strlen(s) &&
           memcmp(cmd->argv[i], s, cmd->argvlen[i]) == 0;
}

static rl_limit_t g_a[2];
static rl_limit_t g_b[1];
static rl_store_part_t g_parts[2];
static rl_store_penalty_t g_pen;
static rl_store_op_t g_op;

/* Two parts (a: GCRA 1 s + fixed 1 h with a block; b: sliding 1 d, cost
 * 0) and a penalty on part 2. */
static void setup(void)
{
    g_a[0] = rl_test_limit(RL_ALGO_GCRA, 10, 1000, 5, 0, "g1s");
    g_a[1] = rl_test_limit(RL_ALGO_FIXED_WINDOW, 100, 3600000, 0, 60000, "f1h");
    g_b[0] = rl_test_limit(RL_ALGO_SLIDING_WINDOW, 7, 86400000, 0, 0, "s1d");
    g_parts[0] = (rl_store_part_t){"rl:{t}a", 7, g_a, 2, 3};
    g_parts[1] = (rl_store_part_t){"rl:{t}b", 7, g_b, 1, 0};
    memset(&g_pen, 0, sizeof(g_pen));
    g_pen.key = "rl:{t}!pen|u";
    g_pen.len = strlen(g_pen.key);
    g_pen.step = (rl_penalty_step_t){4, 60000, 30000, 2u};
    memset(&g_op, 0, sizeof(g_op));
    g_op.parts = g_parts;
    g_op.nparts = 2;
    g_op.part_costs = 1;
    g_op.penalties = &g_pen;
    g_op.npenalties = 1;
}

/* FCALL fn 3 <part a> <part b> <penalty> <request>: each part's key is
 * named after its first limit, the penalty's is ":p"; the request holds
 * every field little-endian, in store.h's order. */
START_TEST(decide_keys_and_request_bytes)
{
    rl_redis_cmd_t cmd;
    const char *r;
    size_t len;

    setup();
    memset(&cmd, 0, sizeof(cmd));
    ck_assert_ptr_null(rl_redis_cmd_check(&g_op));
    ck_assert_int_eq(rl_redis_cmd_build(&cmd, FN, &g_op, RL_REDIS_CMD_DECIDE),
                     RL_OK);
    ck_assert_int_eq(cmd.argc, 7);
    ck_assert(arg_is(&cmd, 0, "FCALL") && arg_is(&cmd, 1, FN) &&
              arg_is(&cmd, 2, "3"));
    ck_assert_int_eq(cmd.nkeys, 3);
    ck_assert_int_eq(cmd.nlimits, 3);
    ck_assert(arg_is(&cmd, 3, "rl:{t}a:lg1s"));
    ck_assert(arg_is(&cmd, 4, "rl:{t}b:ls1d"));
    ck_assert(arg_is(&cmd, 5, "rl:{t}!pen|u:p"));
    ck_assert_str_eq(rl_redis_cmd_first_key(&cmd, &len), cmd.argv[3]);
    ck_assert_int_eq(len, strlen("rl:{t}a:lg1s"));
    ck_assert(memcmp(rl_redis_cmd_key(&cmd, 2, &len), "rl:{t}!pen|u:p", len) ==
              0);
    r = cmd.argv[6];
    ck_assert_int_eq(cmd.argvlen[6], 2 + (9 + 2 * 25) + (9 + 25) + 18);
    ck_assert_int_eq(r[0], 2); /* parts */
    ck_assert_int_eq(r[1], 1); /* penalties */
    ck_assert_int_eq(r[2], 2); /* part a: 2 limits, cost 3 */
    ck_assert_int_eq(le(r + 3, 8), 3);
    ck_assert_int_eq(r[11], 0); /* gcra 10 per 1000 ms, burst 5, block 0 */
    ck_assert_int_eq(le(r + 12, 7), 10);
    ck_assert_int_eq(le(r + 19, 5), 1000);
    ck_assert_int_eq(le(r + 24, 7), 5);
    ck_assert_int_eq(le(r + 31, 5), 0);
    ck_assert_int_eq(r[36], 1); /* fixed 100 per hour, block 60 s */
    ck_assert_int_eq(le(r + 37, 7), 100);
    ck_assert_int_eq(le(r + 44, 5), 3600000);
    ck_assert_int_eq(le(r + 56, 5), 60000);
    ck_assert_int_eq(r[61], 1); /* part b: 1 limit, cost 0 (a peek) */
    ck_assert_int_eq(le(r + 62, 8), 0);
    ck_assert_int_eq(r[70], 2); /* sliding 7 per day */
    ck_assert_int_eq(le(r + 71, 7), 7);
    ck_assert_int_eq(le(r + 78, 5), 86400000);
    ck_assert_int_eq(le(r + 95, 7), 4); /* penalty: 4 within 60 s, 30 s */
    ck_assert_int_eq(le(r + 102, 5), 60000);
    ck_assert_int_eq(le(r + 107, 5), 30000);
    ck_assert_int_eq(r[112], 2); /* mask: part 2 */
    rl_redis_cmd_free(&cmd);
}
END_TEST

/* A reset deletes exactly the keys a decision touches. */
START_TEST(reset_deletes_the_same_keys)
{
    rl_redis_cmd_t cmd;

    setup();
    memset(&cmd, 0, sizeof(cmd));
    ck_assert_int_eq(rl_redis_cmd_build(&cmd, FN, &g_op, RL_REDIS_CMD_RESET),
                     RL_OK);
    ck_assert_int_eq(cmd.argc, 4);
    ck_assert(arg_is(&cmd, 0, "DEL") && arg_is(&cmd, 1, "rl:{t}a:lg1s") &&
              arg_is(&cmd, 2, "rl:{t}b:ls1d") &&
              arg_is(&cmd, 3, "rl:{t}!pen|u:p"));
    rl_redis_cmd_free(&cmd);
}
END_TEST

/* A sub-op keeps the parts and penalties asked for, renumbers the
 * penalty's mask, and as a refund carries minus each part's cost; masks
 * that keep nothing or name what the op lacks are refused. */
START_TEST(sub_ops_and_refunds)
{
    rl_redis_cmd_t cmd;
    const char *r;

    setup();
    g_parts[1].cost = 2;
    memset(&cmd, 0, sizeof(cmd));
    ck_assert_int_eq(rl_redis_cmd_build_sub(&cmd, FN, &g_op, 2u, 1u, 0), RL_OK);
    ck_assert_int_eq(cmd.argc, 6);
    ck_assert(arg_is(&cmd, 2, "2") && arg_is(&cmd, 3, "rl:{t}b:ls1d") &&
              arg_is(&cmd, 4, "rl:{t}!pen|u:p"));
    ck_assert_int_eq(cmd.nlimits, 1);
    ck_assert_int_eq(cmd.npenalties, 1);
    r = cmd.argv[5];
    ck_assert_int_eq(r[0], 1);
    ck_assert_int_eq(le(r + 3, 8), 2);
    ck_assert_int_eq(r[2 + 9 + 25 + 17], 1); /* part 2 is part 1 now */
    ck_assert_int_eq(rl_redis_cmd_build_sub(&cmd, FN, &g_op, 3u, 0u, 1), RL_OK);
    ck_assert_int_eq(cmd.argc, 6);
    r = cmd.argv[5];
    ck_assert_int_eq(r[1], 0);
    ck_assert_int_eq((int64_t)le(r + 3, 8), -3);
    ck_assert_int_eq((int64_t)le(r + 2 + 9 + 2 * 25 + 1, 8), -2);
    ck_assert_int_eq(rl_redis_cmd_build_sub(&cmd, FN, &g_op, 0u, 0u, 1),
                     RL_ERR);
    ck_assert_int_eq(rl_redis_cmd_build_sub(&cmd, FN, &g_op, 4u, 0u, 0),
                     RL_ERR);
    ck_assert_int_eq(rl_redis_cmd_build_sub(&cmd, FN, &g_op, 1u, 2u, 0),
                     RL_ERR);
    ck_assert_int_eq(cmd.argc, 6); /* left as it was */
    rl_redis_cmd_free(&cmd);
}
END_TEST

/* Numbers the request cannot carry exactly are refused, not cut. */
START_TEST(out_of_range_refused)
{
    setup();
    g_parts[0].cost = -1;
    ck_assert_str_eq(rl_redis_cmd_check(&g_op), "bad_op");
    setup();
    g_a[1].period_ms = (int64_t)1 << 40;
    ck_assert_str_eq(rl_redis_cmd_check(&g_op), "bad_op");
    setup();
    g_a[0].requests = (int64_t)1 << 53;
    ck_assert_str_eq(rl_redis_cmd_check(&g_op), "bad_op");
    setup();
    g_pen.step.block_ms = (int64_t)1 << 40;
    ck_assert_str_eq(rl_redis_cmd_check(&g_op), "bad_op");
    setup();
    g_pen.step.mask = 0x100;
    ck_assert_str_eq(rl_redis_cmd_check(&g_op), "bad_op");
    setup();
    ck_assert_ptr_null(rl_redis_cmd_check(&g_op));
}
END_TEST

/* An integer reply element. */
static redisReply *int_reply(long long v)
{
    redisReply *r = calloc(1, sizeof(*r));

    ck_assert_ptr_nonnull(r);
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

/* The reply of setup()'s op: { now, allowed, 5 per limit (3), 2 per
 * penalty (1) }. */
static const int64_t g_reply[19] = {1000, 0, 1, 9, 50, 0, 0, 0, 0,    700,
                                    700,  1, 1, 6, 0,  0, 0, 2, 30000};

/* Parses the bulk string of len bytes at b as the reply to setup()'s
 * op into *res; returns the parser's error. */
static const char *parse_bytes(const unsigned char *b, size_t len,
                               rl_store_result_t *res)
{
    rl_redis_cmd_t cmd;
    redisReply str;
    const char *err;

    setup();
    memset(&cmd, 0, sizeof(cmd));
    ck_assert_int_eq(rl_redis_cmd_build(&cmd, FN, &g_op, RL_REDIS_CMD_DECIDE),
                     RL_OK);
    memset(&str, 0, sizeof(str));
    str.type = REDIS_REPLY_STRING;
    str.str = (char *)b;
    str.len = len;
    memset(res, 0, sizeof(*res));
    err = rl_redis_cmd_parse(&cmd, &str, res);
    rl_redis_cmd_free(&cmd);
    return err;
}

/* One bulk string (now 6 bytes, allowed 1, per limit 1+7+6+6+1, per
 * penalty 1+6, little-endian) decodes into the result in op order; a
 * reply one byte short or long is bad_reply. */
START_TEST(reply_parsed_in_order)
{
    unsigned char b[128];
    size_t len = rl_test_reply_bytes(b, g_reply, 3, 1);
    rl_store_result_t res;

    ck_assert_uint_eq(len, 7 + 21 * 3 + 7);
    ck_assert_ptr_null(parse_bytes(b, len, &res));
    ck_assert_int_eq(res.now_ms, 1000);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_int_eq(res.limits[0].allowed, 1);
    ck_assert_int_eq(res.limits[0].remaining, 9);
    ck_assert_int_eq(res.limits[0].reset_after_ms, 50);
    ck_assert_int_eq(res.limits[1].blocked, 1);
    ck_assert_int_eq(res.limits[1].reset_after_ms, 700);
    ck_assert_int_eq(res.limits[1].retry_after_ms, 700);
    ck_assert_int_eq(res.limits[2].remaining, 6);
    ck_assert_int_eq(res.penalties[0].state, RL_PENALTY_STARTED);
    ck_assert_int_eq(res.penalties[0].retry_after_ms, 30000);
    ck_assert_str_eq(parse_bytes(b, len - 1, &res), "bad_reply");
    b[len] = 0;
    ck_assert_str_eq(parse_bytes(b, len + 1, &res), "bad_reply");
}
END_TEST

/* The widest values of each field decode exactly: now and the ms fields
 * 6 bytes, remaining 7 (nothing read as signed or cut short). */
START_TEST(reply_widths_exact)
{
    int64_t v[19];
    unsigned char b[128];
    rl_store_result_t res;

    memcpy(v, g_reply, sizeof(v));
    v[0] = ((int64_t)1 << 48) - 1;
    v[3] = ((int64_t)1 << 56) - 1;
    v[4] = ((int64_t)1 << 48) - 2;
    v[5] = ((int64_t)1 << 47) + 3;
    v[18] = ((int64_t)1 << 48) - 1;
    ck_assert_ptr_null(parse_bytes(b, rl_test_reply_bytes(b, v, 3, 1), &res));
    ck_assert_int_eq(res.now_ms, v[0]);
    ck_assert_int_eq(res.limits[0].remaining, v[3]);
    ck_assert_int_eq(res.limits[0].reset_after_ms, v[4]);
    ck_assert_int_eq(res.limits[0].retry_after_ms, v[5]);
    ck_assert_int_eq(res.penalties[0].retry_after_ms, v[18]);
}
END_TEST

/* A flag (allowed, a limit's allowed or blocked) other than 0 or 1, or a
 * penalty state past RL_PENALTY_STARTED, is bad_reply. */
START_TEST(reply_out_of_range_refused)
{
    static const struct {
        int index; /* into g_reply */
        int64_t value;
    } bad[] = {{1, 2}, {2, 2}, {6, 2}, {11, 255}, {16, 2}, {17, 3}};
    unsigned char b[128];
    rl_store_result_t res;
    const char *err;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v[19];

        memcpy(v, g_reply, sizeof(v));
        v[bad[i].index] = bad[i].value;
        err = parse_bytes(b, rl_test_reply_bytes(b, v, 3, 1), &res);
        ck_assert_msg(err != NULL && strcmp(err, "bad_reply") == 0,
                      "case %zu: %s", i, err != NULL ? err : "accepted");
    }
}
END_TEST

/* The old reply, an array of integers, and other types are bad_reply. */
START_TEST(reply_old_array_refused)
{
    rl_redis_cmd_t cmd;
    rl_store_result_t res;
    redisReply arr;
    redisReply *el[19];
    size_t i;

    setup();
    memset(&cmd, 0, sizeof(cmd));
    ck_assert_int_eq(rl_redis_cmd_build(&cmd, FN, &g_op, RL_REDIS_CMD_DECIDE),
                     RL_OK);
    for (i = 0; i < 19; i++) {
        el[i] = int_reply(g_reply[i]);
    }
    memset(&arr, 0, sizeof(arr));
    arr.type = REDIS_REPLY_ARRAY;
    arr.elements = 19;
    arr.element = el;
    ck_assert_str_eq(rl_redis_cmd_parse(&cmd, &arr, &res), "bad_reply");
    ck_assert_str_eq(rl_redis_cmd_parse(&cmd, el[0], &res), "bad_reply");
    for (i = 0; i < 19; i++) {
        free(el[i]);
    }
    rl_redis_cmd_free(&cmd);
}
END_TEST

/* Runs the suite. */
int main(void)
{
    Suite *s = suite_create("redis_cmd");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, decide_keys_and_request_bytes);
    tcase_add_test(tc, reset_deletes_the_same_keys);
    tcase_add_test(tc, sub_ops_and_refunds);
    tcase_add_test(tc, out_of_range_refused);
    tcase_add_test(tc, reply_parsed_in_order);
    tcase_add_test(tc, reply_widths_exact);
    tcase_add_test(tc, reply_out_of_range_refused);
    tcase_add_test(tc, reply_old_array_refused);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
