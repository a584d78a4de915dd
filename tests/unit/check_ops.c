/* The operations modules: reference-counted confs and per-thread pins,
 * the stats registry and histograms, the access log line and ring, and
 * which config sections a reload may not change. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "access_log.h"
#include "conf.h"
#include "confref.h"
#include "reload.h"
#include "stats.h"

static rl_conf_t *mk_conf(void)
{
    static const char text[] = "{\"policies\": []}";
    char err[128];
    rl_conf_t *c = rl_conf_parse(text, sizeof(text) - 1, err, sizeof(err));
    ck_assert_ptr_nonnull(c);
    return c;
}

START_TEST(confref_retired_conf_lives_until_unpinned)
{
    rl_conf_t *a = mk_conf();
    rl_conf_t *b = mk_conf();
    rl_confref_t *ra = rl_confref_new(a, 1);
    rl_confref_t *rb = rl_confref_new(b, 2); /* this thread + "main" */

    ck_assert_int_eq(rl_confref_adopt(ra), 0);
    rl_conf_pin(a);
    rl_conf_pin(a);
    ck_assert_int_eq(rl_confref_adopt(rb), 0);
    /* a is retired but pinned twice: still alive (ASan would see a
     * use after free otherwise). */
    ck_assert_int_eq(rl_confref_retired(), 1);
    ck_assert_int_eq(a->npolicies, 0);
    rl_conf_unpin(a);
    ck_assert_int_eq(rl_confref_retired(), 1);
    rl_conf_unpin(a); /* last pin: a is freed */
    ck_assert_int_eq(rl_confref_retired(), 0);
    /* Pins of the current conf keep nothing extra alive. */
    rl_conf_pin(b);
    rl_conf_unpin(b);
    rl_conf_pin(a);                    /* unknown conf: no-op */
    rl_confref_thread_cleanup();       /* drops this thread's ref to b */
    ck_assert_int_eq(b->npolicies, 0); /* "main" still holds b */
    rl_confref_release(rb);
}
END_TEST

START_TEST(stats_slots_are_per_name_and_survive)
{
    rl_stats_t st;
    uint64_t out[RL_NVERDICTS];
    int a, b;

    memset(&st, 0, sizeof(st));
    a = rl_stats_policy_slot("alpha");
    b = rl_stats_policy_slot("beta");
    ck_assert_int_ne(a, b);
    ck_assert_int_eq(rl_stats_policy_slot("alpha"), a);
    ck_assert_str_eq(rl_stats_policy_name(b), "beta");
    rl_stats_policy_count(&st, a,
                          RL_VERDICT_denied); /* no chunk yet: ignored */
    ck_assert_int_eq(rl_stats_policy_reserve(&st, rl_stats_policy_slots()), 0);
    rl_stats_policy_count(&st, a, RL_VERDICT_denied);
    rl_stats_policy_count(&st, a, RL_VERDICT_denied);
    rl_stats_policy_count(&st, b, RL_VERDICT_shadow_denied);
    rl_stats_policy_count(&st, -1, RL_VERDICT_allowed);
    rl_stats_policy_read(&st, a, out);
    ck_assert_uint_eq(out[RL_VERDICT_denied], 2);
    ck_assert_uint_eq(out[RL_VERDICT_allowed], 0);
    rl_stats_policy_read(&st, b, out);
    ck_assert_uint_eq(out[RL_VERDICT_shadow_denied], 1);
    ck_assert_str_eq(rl_stats_verdict_name(RL_VERDICT_shadow_denied),
                     "shadow_denied");
    ck_assert_int_eq(rl_stats_reason("timeout"), RL_REASON_timeout);
    ck_assert_int_eq(rl_stats_reason("something new"), RL_REASON_other);
    ck_assert_int_eq(rl_stats_reason(NULL), RL_REASON_other);
    ck_assert_str_eq(rl_stats_reason_name(RL_REASON_disconnected),
                     "disconnected");
    rl_stats_free(&st);
    rl_stats_registry_free();
}
END_TEST

START_TEST(histogram_buckets_and_sum)
{
    rl_stats_t a, b, sum;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&sum, 0, sizeof(sum));
    rl_hist_observe(&a.hist_decision, 50);      /* le 50us */
    rl_hist_observe(&a.hist_decision, 51);      /* le 100us */
    rl_hist_observe(&b.hist_decision, 2000000); /* +Inf */
    rl_hist_observe(&b.hist_decision, -5);      /* clamped to 0 */
    RL_STAT_INC(&a, http_requests);
    RL_STAT_INC(&b, http_requests);
    RL_STAT_ADDV(b.degraded[RL_REASON_timeout], 3);
    rl_stats_add(&sum, &a);
    rl_stats_add(&sum, &b);
    ck_assert_uint_eq(sum.hist_decision.bucket[0], 2);
    ck_assert_uint_eq(sum.hist_decision.bucket[1], 1);
    ck_assert_uint_eq(sum.hist_decision.bucket[RL_HIST_NBOUNDS], 1);
    ck_assert_uint_eq(sum.hist_decision.count, 4);
    ck_assert_uint_eq(sum.hist_decision.sum_us, 50 + 51 + 2000000);
    ck_assert_uint_eq(sum.http_requests, 2);
    ck_assert_uint_eq(sum.degraded[RL_REASON_timeout], 3);
}
END_TEST

START_TEST(access_line_is_json_without_request_data)
{
    char buf[512];
    json_error_t jerr;
    json_t *o;
    size_t n =
        rl_access_log_format(buf, sizeof(buf), 1730113200488, "gw-7f3a.42",
                             "p.x", "denied", 429, 1234, 1);

    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(buf[n - 1], '\n');
    o = json_loadb(buf, n, 0, &jerr);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_string_value(json_object_get(o, "ts")),
                     "2024-10-28T11:00:00.488Z");
    ck_assert_str_eq(json_string_value(json_object_get(o, "msg")), "access");
    ck_assert_str_eq(json_string_value(json_object_get(o, "request_id")),
                     "gw-7f3a.42");
    ck_assert_str_eq(json_string_value(json_object_get(o, "policy")), "p.x");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "status")), 429);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "latency_us")),
                     1234);
    ck_assert(json_is_true(json_object_get(o, "cached")));
    json_decref(o);
    n = rl_access_log_format(buf, sizeof(buf), 0, "a\"b", NULL, "unmatched",
                             200, 1, 0);
    o = json_loadb(buf, n, 0, &jerr);
    ck_assert_ptr_nonnull(o);
    ck_assert(json_is_null(json_object_get(o, "policy")));
    ck_assert_str_eq(json_string_value(json_object_get(o, "request_id")),
                     "a\"b");
    json_decref(o);
    ck_assert_uint_eq(
        rl_access_log_format(buf, 40, 0, "id", "p", "allowed", 200, 1, 0), 0);
}
END_TEST

START_TEST(access_ring_writes_whole_lines_and_drops_when_full)
{
    int fds[2];
    rl_access_log_t *l;
    char line[64];
    char got[8192];
    size_t total = 0;
    int i, pushed = 0, dropped = 0;

    ck_assert_int_eq(pipe(fds), 0);
    l = rl_access_log_new(1, 1024, fds[1]);
    ck_assert_ptr_nonnull(l);
    for (i = 0; i < 40; i++) {
        int n = snprintf(line, sizeof(line),
                         "{\"line\":%d,\"pad\":\"xxxxxxxxxxxxxxxxxxx\"}\n", i);
        if (rl_access_log_push(l, 0, line, (size_t)n) == 0) {
            pushed++;
        } else {
            dropped++;
        }
    }
    ck_assert_int_eq(rl_access_log_push(l, 1, "x\n", 2), -1); /* no such ring */
    rl_access_log_free(l);                                    /* flushes */
    close(fds[1]);
    for (;;) {
        ssize_t n = read(fds[0], got + total, sizeof(got) - 1 - total);
        if (n <= 0) {
            break;
        }
        total += (size_t)n;
    }
    close(fds[0]);
    got[total] = '\0';
    ck_assert_int_gt(pushed, 0);
    ck_assert_int_eq(pushed + dropped, 40);
    {
        int lines = 0;
        char *p, *save = NULL;
        for (p = strtok_r(got, "\n", &save); p != NULL;
             p = strtok_r(NULL, "\n", &save)) {
            json_error_t jerr;
            json_t *o = json_loads(p, 0, &jerr);
            ck_assert_msg(o != NULL, "not a whole line: %s", p);
            json_decref(o);
            lines++;
        }
        ck_assert_int_eq(lines, pushed);
    }
}
END_TEST

START_TEST(reload_restart_only_sections)
{
    json_t *a = json_loads(
        "{\"listen\":\"127.0.0.1:1\",\"store\":{\"type\":\"memory\"},"
        "\"policies\":[],\"log_level\":\"info\"}",
        0, NULL);
    json_t *b = json_loads(
        "{\"listen\":\"127.0.0.1:1\",\"store\":{\"type\":\"memory\"},"
        "\"policies\":[{\"x\":1}],\"log_level\":\"debug\"}",
        0, NULL);
    json_t *c = json_loads(
        "{\"listen\":\"127.0.0.1:2\",\"store\":{\"type\":\"memory\"},"
        "\"policies\":[]}",
        0, NULL);
    json_t *d =
        json_loads("{\"listen\":\"127.0.0.1:1\",\"store\":{\"type\":\"redis\"},"
                   "\"policies\":[],\"workers\":2}",
                   0, NULL);

    ck_assert_ptr_null(rl_reload_restart_field(a, b, 0));
    ck_assert_str_eq(rl_reload_restart_field(a, c, 0), "listen");
    ck_assert_ptr_null(rl_reload_restart_field(a, c, 1));
    ck_assert_str_eq(rl_reload_restart_field(a, d, 0), "workers");
    json_object_del(d, "workers");
    ck_assert_str_eq(rl_reload_restart_field(a, d, 0), "store");
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
}
END_TEST

/* The operations sections of the config: defaults, values, errors. */
START_TEST(conf_ops_sections)
{
    static const struct {
        const char *json;
        const char *err; /* NULL: valid */
    } cases[] = {
        {"{\"policies\":[],\"admin\":{\"enabled\":true}}",
         "admin.key_sha256: is required when admin.enabled is true"},
        {"{\"policies\":[],\"admin\":{\"enabled\":true,\"key_sha256\":\"abc\"}"
         "}",
         "admin.key_sha256: must be 64 hexadecimal digits (the SHA-256 of the "
         "key)"},
        {"{\"policies\":[],\"admin\":{\"enabled\":\"yes\"}}",
         "admin.enabled: must be true or false"},
        {"{\"policies\":[],\"admin\":{\"enable\":true}}",
         "admin.enable: unknown field"},
        {"{\"policies\":[],\"access_log\":{\"sample\":1.5}}",
         "access_log.sample: must be a number from 0 to 1"},
        {"{\"policies\":[],\"deny_cache\":{\"entries\":-1}}",
         "deny_cache.entries: must be an integer from 0 to 1048576"},
        {"{\"policies\":[],\"deny_cache\":{\"max_ttl\":\"5x\"}}",
         "deny_cache.max_ttl: \"5x\" is not a duration"},
        {"{\"policies\":[],\"access_log\":{\"sample\":0.01},"
         "\"deny_cache\":{\"entries\":0,\"max_ttl\":\"2s\"},"
         "\"admin\":{\"enabled\":true,\"key_sha256\":"
         "\"2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25B\"}"
         "}",
         NULL},
    };
    size_t i;
    char err[256];

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rl_conf_t *c = rl_conf_parse(cases[i].json, strlen(cases[i].json), err,
                                     sizeof(err));
        if (cases[i].err != NULL) {
            ck_assert_msg(c == NULL, "case %zu parsed", i);
            ck_assert_str_eq(err, cases[i].err);
            continue;
        }
        ck_assert_msg(c != NULL, "case %zu: %s", i, err);
        ck_assert_double_eq(c->ops.access_log_sample, 0.01);
        ck_assert_int_eq(c->ops.deny_cache_entries, 0);
        ck_assert_int_eq(c->ops.deny_cache_max_ttl_ms, 2000);
        ck_assert_int_eq(c->admin.enabled, 1);
        ck_assert_str_eq(
            c->admin.key_sha256,
            "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b");
        rl_conf_free(c);
    }
    {
        rl_conf_t *c = mk_conf();
        ck_assert_int_eq(c->ops.deny_cache_entries, 16384);
        ck_assert_int_eq(c->ops.deny_cache_max_ttl_ms, 10000);
        ck_assert_double_eq(c->ops.access_log_sample, 0.0);
        ck_assert_int_eq(c->admin.enabled, 0);
        rl_conf_free(c);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, confref_retired_conf_lives_until_unpinned);
    tcase_add_test(tc, stats_slots_are_per_name_and_survive);
    tcase_add_test(tc, histogram_buckets_and_sum);
    tcase_add_test(tc, access_line_is_json_without_request_data);
    tcase_add_test(tc, access_ring_writes_whole_lines_and_drops_when_full);
    tcase_add_test(tc, reload_restart_only_sections);
    tcase_add_test(tc, conf_ops_sections);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
