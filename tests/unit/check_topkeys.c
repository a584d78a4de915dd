/* The top keys summary: exact counts per minute and window, the
 * space-saving bound (a hammered key stays, counts never over-count),
 * merging two workers, blocks, the policy slots, and the key values cut
 * out of a store key. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "policy.h"
#include "topkeys.h"

#define T0 (1700000000000LL - 1700000000000LL % 60000) /* a minute start */
#define MIN 60000LL

static rl_topkeys_row_t rows[4 * RL_TOPKEYS_ENTRIES];

/* The row of key among n, or NULL. */
static const rl_topkeys_row_t *find(int n, const char *key)
{
    int i;

    for (i = 0; i < n; i++) {
        if (strcmp(rows[i].key, key) == 0) {
            return &rows[i];
        }
    }
    return NULL;
}

static void rec(rl_topkeys_t *t, int pol, const char *key, int denied,
                int64_t now)
{
    rl_topkeys_record(t, pol, key, strlen(key), denied, now, 0);
}

START_TEST(counts_per_minute_over_the_window)
{
    rl_topkeys_t *t = rl_topkeys_new();
    const rl_topkeys_row_t *r;
    int n, i;

    for (i = 0; i < 2; i++) {
        rec(t, 0, "acme", 0, T0 - 2 * MIN + 5);
    }
    for (i = 0; i < 3; i++) {
        rec(t, 0, "acme", 1, T0 + 1000 * i);
    }
    n = rl_topkeys_read(t, 0, 1, T0 + 30000, rows, 0, 8);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(rows[0].key, "acme");
    ck_assert_uint_eq(rows[0].denied, 3);
    ck_assert_uint_eq(rows[0].allowed, 0);
    ck_assert_int_eq(rows[0].last_denied_at, (T0 + 2000) / 1000);
    n = rl_topkeys_read(t, 0, 3, T0 + 30000, rows, 0, 8);
    r = find(n, "acme");
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->denied, 3);
    ck_assert_uint_eq(r->allowed, 2);
    /* An hour later every minute has left the window. */
    ck_assert_int_eq(rl_topkeys_read(t, 0, 60, T0 + 60 * MIN, rows, 0, 8), 0);
    /* The same key an hour on starts from zero, not from stale buckets. */
    rec(t, 0, "acme", 0, T0 + 60 * MIN);
    n = rl_topkeys_read(t, 0, 60, T0 + 60 * MIN, rows, 0, 8);
    ck_assert_int_eq(n, 1);
    ck_assert_uint_eq(rows[0].denied, 0);
    ck_assert_uint_eq(rows[0].allowed, 1);
    ck_assert_int_eq(rl_topkeys_read(t, 1, 60, T0, rows, 0, 8), 0);
    rl_topkeys_free(t);
}
END_TEST

START_TEST(a_hammered_key_stays_and_nothing_over_counts)
{
    rl_topkeys_t *t = rl_topkeys_new();
    const rl_topkeys_row_t *hot;
    char key[32];
    int n, i;

    /* 5,000 one-off keys through a table of 128, one hot key in five. */
    for (i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        rec(t, 0, key, 0, T0);
        if (i % 5 == 0) {
            rec(t, 0, "hot", 1, T0);
        }
    }
    n = rl_topkeys_read(t, 0, 1, T0, rows, 0, RL_TOPKEYS_ENTRIES);
    ck_assert_int_eq(n, RL_TOPKEYS_ENTRIES);
    hot = find(n, "hot");
    ck_assert_ptr_nonnull(hot);
    ck_assert_uint_eq(hot->denied, 1000);
    for (i = 0; i < n; i++) {
        if (&rows[i] != hot) {
            ck_assert_uint_le(rows[i].allowed + rows[i].denied, 1);
        }
    }
    rl_topkeys_sort(rows, n);
    ck_assert_str_eq(rows[0].key, "hot");
    rl_topkeys_free(t);
}
END_TEST

START_TEST(two_workers_merge_and_blocks_end)
{
    rl_topkeys_t *a = rl_topkeys_new();
    rl_topkeys_t *b = rl_topkeys_new();
    int n;

    rl_topkeys_record(a, 2, "acme", 4, 1, T0, T0 + 5000);
    rl_topkeys_record(b, 2, "acme", 4, 1, T0 + 1000, 0);
    rl_topkeys_record(b, 2, "beta", 4, 0, T0 + 1000, 0);
    n = rl_topkeys_read(a, 2, 5, T0 + 2000, rows, 0, 8);
    n = rl_topkeys_read(b, 2, 5, T0 + 2000, rows, n, 8);
    ck_assert_int_eq(n, 2);
    rl_topkeys_sort(rows, n);
    ck_assert_str_eq(rows[0].key, "acme");
    ck_assert_uint_eq(rows[0].denied, 2);
    ck_assert_int_eq(rows[0].last_denied_at, (T0 + 1000) / 1000);
    ck_assert_int_eq(rows[0].blocked, 1);
    ck_assert_str_eq(rows[1].key, "beta");
    n = rl_topkeys_read(a, 2, 5, T0 + 6000, rows, 0, 8);
    ck_assert_int_eq(rows[0].blocked, 0);
    /* max bounds the rows. */
    ck_assert_int_eq(rl_topkeys_read(b, 2, 5, T0 + 2000, rows, 0, 1), 1);
    rl_topkeys_free(a);
    rl_topkeys_free(b);
}
END_TEST

START_TEST(every_policy_slot_and_long_keys_only)
{
    rl_topkeys_t *t = rl_topkeys_new();
    size_t empty = rl_topkeys_bytes(t);
    char key[RL_TOPKEYS_KEY_MAX + 2];
    int i;

    /* Every slot is tracked (no cap at eight any more); one past the last
     * and a negative one are not; a table costs memory once decided. */
    for (i = 0; i < 40; i++) {
        rec(t, i, "k", 1, T0);
    }
    rec(t, RL_TOPKEYS_POLICIES - 1, "k", 1, T0);
    rec(t, RL_TOPKEYS_POLICIES, "k", 1, T0);
    rec(t, -1, "k", 1, T0);
    for (i = 0; i < 40; i++) {
        ck_assert_int_eq(rl_topkeys_read(t, i, 1, T0, rows, 0, 8), 1);
    }
    ck_assert_int_eq(
        rl_topkeys_read(t, RL_TOPKEYS_POLICIES - 1, 1, T0, rows, 0, 8), 1);
    ck_assert_int_eq(rl_topkeys_read(t, RL_TOPKEYS_POLICIES, 1, T0, rows, 0, 8),
                     0);
    ck_assert_int_eq(rl_topkeys_read(t, 41, 1, T0, rows, 0, 8), 0);
    ck_assert_uint_gt(rl_topkeys_bytes(t), empty + 41 * 150000);
    ck_assert_uint_lt(rl_topkeys_bytes(t), empty + 41 * 180000);
    memset(key, 'x', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    rec(t, 0, key, 1, T0);
    key[RL_TOPKEYS_KEY_MAX] = '\0';
    rec(t, 0, key, 1, T0);
    ck_assert_int_eq(rl_topkeys_read(t, 0, 1, T0, rows, 0, 8), 2);
    ck_assert_ptr_nonnull(find(2, key));
    rl_topkeys_free(t);
}
END_TEST

START_TEST(key_values_of_a_store_key)
{
    rl_policy_t p;
    const char *v;
    size_t len;

    memset(&p, 0, sizeof(p));
    p.nkey = 2;
    v = rl_topkeys_key_values(&p, "rl:{api|acme|%2Fx}", 18, &len);
    ck_assert_int_eq((int)len, 9);
    ck_assert_int_eq(memcmp(v, "acme|%2Fx", 9), 0);
    p.nhash_tag = 1;
    v = rl_topkeys_key_values(&p, "rl:{acme}api|acme|x", 19, &len);
    ck_assert_int_eq((int)len, 6);
    ck_assert_int_eq(memcmp(v, "acme|x", 6), 0);
    p.nkey = 0;
    p.nhash_tag = 0;
    rl_topkeys_key_values(&p, "rl:{api}", 8, &len);
    ck_assert_int_eq((int)len, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("topkeys");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, counts_per_minute_over_the_window);
    tcase_add_test(tc, a_hammered_key_stays_and_nothing_over_counts);
    tcase_add_test(tc, two_workers_merge_and_blocks_end);
    tcase_add_test(tc, every_policy_slot_and_long_keys_only);
    tcase_add_test(tc, key_values_of_a_store_key);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
