/* The exact local deny cache: expiry arithmetic, what an entry serves
 * (key, test flag, generation, cost), eviction, drop, invalidation, and
 * the verdict built from an entry. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "conf.h"
#include "decide.h"
#include "deny_cache.h"

#define KEY "rl:{p|tenant}"
#define KLEN (sizeof(KEY) - 1)

static rl_deny_entry_t mk_entry(int64_t sent_us, int64_t retry_ms, int64_t cost)
{
    rl_deny_entry_t e;

    memset(&e, 0, sizeof(e));
    e.sent_us = sent_us;
    e.retry_after_ms = retry_ms;
    e.reset_after_ms = retry_ms + 500;
    e.cost = cost;
    e.now_ms = 1700000000000;
    e.epoch = rl_deny_cache_epoch();
    return e;
}

START_TEST(until_is_conservative)
{
    /* 1 ms off for rounding, then 1/1000 for clock rates. */
    ck_assert_int_eq(rl_deny_until_us(1000000, 1000, 60000000),
                     1000000 + 999000 - 999);
    ck_assert_int_eq(rl_deny_until_us(5, 2, 60000000), 5 + 1000 - 1);
    /* Nothing to gain from a denial of 1 ms or less. */
    ck_assert_int_eq(rl_deny_until_us(5, 1, 60000000), 0);
    ck_assert_int_eq(rl_deny_until_us(5, 0, 60000000), 0);
    /* Capped by max_ttl. */
    ck_assert_int_eq(rl_deny_until_us(100, 3600000, 10000000), 100 + 10000000);
}
END_TEST

START_TEST(serves_until_expiry_for_same_key_test_gen_and_cost)
{
    rl_deny_cache_t *c = rl_deny_cache_new(64, 60000000);
    rl_deny_entry_t e = mk_entry(1000000, 500, 2);
    const rl_deny_entry_t *got;
    int64_t until = rl_deny_until_us(1000000, 500, 60000000);

    ck_assert_ptr_nonnull(c);
    rl_deny_cache_clear(c, 7);
    rl_deny_cache_put(c, 7, KEY, KLEN, 0, &e);
    ck_assert_uint_eq(rl_deny_cache_size(c), 1);
    got = rl_deny_cache_get(c, 7, KEY, KLEN, 0, 2, 1000001);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(got->retry_after_ms, 500);
    ck_assert_ptr_nonnull(rl_deny_cache_get(c, 7, KEY, KLEN, 0, 2, until - 1));
    /* A smaller cost might pass; a larger one may wait longer or trip a
     * blocking limit: ask the store. */
    ck_assert_ptr_null(rl_deny_cache_get(c, 7, KEY, KLEN, 0, 1, 1000001));
    ck_assert_ptr_null(rl_deny_cache_get(c, 7, KEY, KLEN, 0, 5, 1000001));
    /* The test limits are another key; another generation another conf. */
    ck_assert_ptr_null(rl_deny_cache_get(c, 7, KEY, KLEN, 1, 2, 1000001));
    ck_assert_ptr_null(rl_deny_cache_get(c, 8, KEY, KLEN, 0, 2, 1000001));
    ck_assert_ptr_null(
        rl_deny_cache_get(c, 7, "rl:{p|tenanT}", KLEN, 0, 2, 1000001));
    /* At the expiry time the store decides again, and the slot frees. */
    ck_assert_ptr_null(rl_deny_cache_get(c, 7, KEY, KLEN, 0, 2, until));
    ck_assert_uint_eq(rl_deny_cache_size(c), 0);
    rl_deny_cache_free(c);
}
END_TEST

START_TEST(put_ignores_other_generations_long_keys_and_short_denials)
{
    rl_deny_cache_t *c = rl_deny_cache_new(64, 60000000);
    rl_deny_entry_t e = mk_entry(0, 500, 1);
    char longkey[RL_DENY_KEY_MAX + 2];

    rl_deny_cache_clear(c, 3);
    rl_deny_cache_put(c, 2, KEY, KLEN, 0, &e); /* decided under an older conf */
    ck_assert_uint_eq(rl_deny_cache_size(c), 0);
    memset(longkey, 'k', sizeof(longkey));
    rl_deny_cache_put(c, 3, longkey, sizeof(longkey), 0, &e);
    ck_assert_uint_eq(rl_deny_cache_size(c), 0);
    e = mk_entry(0, 1, 1);
    rl_deny_cache_put(c, 3, KEY, KLEN, 0, &e);
    ck_assert_uint_eq(rl_deny_cache_size(c), 0);
    rl_deny_cache_free(c);
}
END_TEST

START_TEST(invalidation_empties_and_blocks_older_denials)
{
    rl_deny_cache_t *c = rl_deny_cache_new(64, 60000000);
    rl_deny_entry_t e = mk_entry(0, 500, 1);
    rl_deny_entry_t late;

    rl_deny_cache_clear(c, 1);
    rl_deny_cache_put(c, 1, KEY, KLEN, 0, &e);
    late = mk_entry(10, 500, 1); /* sent before the invalidation */
    rl_deny_cache_invalidate_all();
    ck_assert_ptr_null(rl_deny_cache_get(c, 1, KEY, KLEN, 0, 1, 20));
    ck_assert_uint_eq(rl_deny_cache_size(c), 0);
    rl_deny_cache_put(c, 1, KEY, KLEN, 0, &late);
    ck_assert_uint_eq(rl_deny_cache_size(c), 0);
    e = mk_entry(30, 500, 1);
    rl_deny_cache_put(c, 1, KEY, KLEN, 0, &e);
    ck_assert_ptr_nonnull(rl_deny_cache_get(c, 1, KEY, KLEN, 0, 1, 40));
    rl_deny_cache_drop(c, KEY, KLEN, 0);
    ck_assert_ptr_null(rl_deny_cache_get(c, 1, KEY, KLEN, 0, 1, 40));
    rl_deny_cache_free(c);
}
END_TEST

START_TEST(bounded_with_eviction_of_the_soonest)
{
    rl_deny_cache_t *c = rl_deny_cache_new(4, 60000000); /* one bucket of 4 */
    char key[16];
    int i;

    ck_assert_uint_eq(rl_deny_cache_capacity(c), 4);
    rl_deny_cache_clear(c, 1);
    for (i = 0; i < 6; i++) {
        rl_deny_entry_t e = mk_entry(0, 1000 + i * 100, 1);
        int n = snprintf(key, sizeof(key), "k%d", i);
        rl_deny_cache_put(c, 1, key, (size_t)n, 0, &e);
    }
    ck_assert_uint_eq(rl_deny_cache_size(c), 4);
    /* k0 and k1 ended soonest and were evicted. */
    ck_assert_ptr_null(rl_deny_cache_get(c, 1, "k0", 2, 0, 1, 1));
    ck_assert_ptr_null(rl_deny_cache_get(c, 1, "k1", 2, 0, 1, 1));
    ck_assert_ptr_nonnull(rl_deny_cache_get(c, 1, "k5", 2, 0, 1, 1));
    ck_assert_ptr_null(rl_deny_cache_new(0, 1));
    rl_deny_cache_free(c);
}
END_TEST

START_TEST(cached_verdict_counts_down)
{
    rl_limit_t limits[2];
    rl_policy_t p;
    rl_deny_entry_t e = mk_entry(1000000, 3000, 1);
    rl_verdict_t v;

    memset(limits, 0, sizeof(limits));
    limits[0].requests = 10;
    limits[1].requests = 100;
    memset(&p, 0, sizeof(p));
    p.name = "p";
    p.deny_status = 429;
    e.pick = 1;
    e.blocked = 1;
    rl_decide_verdict_cached(&p, limits, 0, &e, 1000000 + 1000000, &v);
    ck_assert_int_eq(v.allowed, 0);
    ck_assert_int_eq(v.status, 429);
    ck_assert_int_eq(v.limit, 100);
    ck_assert_int_eq(v.retry_after_ms, 2000);
    ck_assert_int_eq(v.reset_after_ms, 2500);
    ck_assert_int_eq(v.now_ms, 1700000001000);
    ck_assert_int_eq(v.blocked, 1);
    ck_assert_int_eq(v.cached, 1);
    p.shadow = 1;
    rl_decide_verdict_cached(&p, limits, 0, &e, 1000000 + 5000000, &v);
    ck_assert_int_eq(v.allowed, 1);
    ck_assert_int_eq(v.shadow_would_deny, 1);
    ck_assert_int_eq(v.status, 200);
    ck_assert_int_eq(v.retry_after_ms, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("deny_cache");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, until_is_conservative);
    tcase_add_test(tc, serves_until_expiry_for_same_key_test_gen_and_cost);
    tcase_add_test(tc,
                   put_ignores_other_generations_long_keys_and_short_denials);
    tcase_add_test(tc, invalidation_empties_and_blocks_older_denials);
    tcase_add_test(tc, bounded_with_eviction_of_the_soonest);
    tcase_add_test(tc, cached_verdict_counts_down);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
