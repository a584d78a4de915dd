/* The top keys summary: exact counts per minute and window, windows
 * rounded up to quarter-hours, the space-saving bound (a hammered key
 * stays, counts never over-count or under-count past the bound), merging
 * two workers, blocks, the policy slots, the memory at maximum size, the
 * budget of tables (an idle one handed on, a policy past it not
 * tracked), and the key values cut out of a store key. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "policy.h"
#include "stats.h"
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
    rl_topkeys_record(t, pol, 0, key, strlen(key), denied, now, 0);
}

START_TEST(counts_per_minute_over_the_window)
{
    rl_topkeys_t *t = rl_topkeys_new();
    const rl_topkeys_row_t *r;
    int n, i;

    /* A key enters on a denial; its allowed decisions count from then. */
    rec(t, 0, "acme", 0, T0 - 2 * MIN);
    rec(t, 0, "acme", 1, T0 - 2 * MIN + 1);
    for (i = 0; i < 2; i++) {
        rec(t, 0, "acme", 0, T0 - 2 * MIN + 5);
    }
    for (i = 0; i < 3; i++) {
        rec(t, 0, "acme", 1, T0 + 1000 * i);
    }
    n = rl_topkeys_read(t, 0, 0, 1, T0 + 30000, rows, 0, 8);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(rows[0].key, "acme");
    ck_assert_uint_eq(rows[0].denied, 3);
    ck_assert_uint_eq(rows[0].allowed, 0);
    ck_assert_int_eq(rows[0].last_denied_at, (T0 + 2000) / 1000);
    n = rl_topkeys_read(t, 0, 0, 3, T0 + 30000, rows, 0, 8);
    r = find(n, "acme");
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->denied, 4);
    ck_assert_uint_eq(r->allowed, 2);
    /* 75 minutes on every minute has left the longest window (60m,
     * rounded up to quarter-hours: 74 minutes here). */
    ck_assert_int_eq(rl_topkeys_read(t, 0, 0, 60, T0 + 75 * MIN, rows, 0, 8),
                     0);
    /* The same key then starts from zero, not from stale buckets. */
    rec(t, 0, "acme", 0, T0 + 75 * MIN);
    n = rl_topkeys_read(t, 0, 0, 60, T0 + 75 * MIN, rows, 0, 8);
    ck_assert_int_eq(n, 1);
    ck_assert_uint_eq(rows[0].denied, 0);
    ck_assert_uint_eq(rows[0].allowed, 1);
    ck_assert_int_eq(rl_topkeys_read(t, 1, 0, 60, T0, rows, 0, 8), 0);
    rl_topkeys_free(t);
}
END_TEST

START_TEST(a_reload_that_changes_the_key_fields_starts_afresh)
{
    rl_topkeys_t *t = rl_topkeys_new();

    /* "TEN|USR" counted under key ["tenant","user"] (layout 1) is not
     * shown under ["user","tenant"] (layout 2), where it would read as
     * user TEN of tenant USR; the first decision under 2 empties it. */
    rl_topkeys_record(t, 3, 1, "TEN|USR", 7, 1, T0, 0);
    ck_assert_int_eq(rl_topkeys_read(t, 3, 1, 1, T0, rows, 0, 8), 1);
    ck_assert_int_eq(rl_topkeys_read(t, 3, 2, 1, T0, rows, 0, 8), 0);
    rl_topkeys_record(t, 3, 2, "USR|TEN", 7, 1, T0 + 1, 0);
    ck_assert_int_eq(rl_topkeys_read(t, 3, 1, 1, T0 + 1, rows, 0, 8), 0);
    ck_assert_int_eq(rl_topkeys_read(t, 3, 2, 1, T0 + 1, rows, 0, 8), 1);
    ck_assert_str_eq(rows[0].key, "USR|TEN");
    ck_assert_uint_eq(rows[0].denied, 1);
    rl_topkeys_free(t);
}
END_TEST

START_TEST(a_hammered_key_stays_and_nothing_over_counts)
{
    rl_topkeys_t *t = rl_topkeys_new();
    const rl_topkeys_row_t *hot;
    char key[32];
    int n, i;

    /* 5,000 one-off denied keys through a table of 256, one hot key in
     * five. */
    for (i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        rec(t, 0, key, 1, T0);
        if (i % 5 == 0) {
            rec(t, 0, "hot", 1, T0);
        }
    }
    n = rl_topkeys_read(t, 0, 0, 1, T0, rows, 0, RL_TOPKEYS_ENTRIES);
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

    rl_topkeys_record(a, 2, 0, "acme", 4, 1, T0, T0 + 5000);
    rl_topkeys_record(b, 2, 0, "acme", 4, 1, T0 + 1000, 0);
    rl_topkeys_record(b, 2, 0, "beta", 4, 1, T0 + 1000, 0);
    rl_topkeys_record(b, 2, 0, "beta", 4, 0, T0 + 1000, 0);
    n = rl_topkeys_read(a, 2, 0, 5, T0 + 2000, rows, 0, 8);
    n = rl_topkeys_read(b, 2, 0, 5, T0 + 2000, rows, n, 8);
    ck_assert_int_eq(n, 2);
    rl_topkeys_sort(rows, n);
    ck_assert_str_eq(rows[0].key, "acme");
    ck_assert_uint_eq(rows[0].denied, 2);
    ck_assert_int_eq(rows[0].last_denied_at, (T0 + 1000) / 1000);
    ck_assert_int_eq(rows[0].blocked, 1);
    ck_assert_str_eq(rows[1].key, "beta");
    n = rl_topkeys_read(a, 2, 0, 5, T0 + 6000, rows, 0, 8);
    ck_assert_int_eq(rows[0].blocked, 0);
    /* max bounds the rows. */
    ck_assert_int_eq(rl_topkeys_read(b, 2, 0, 5, T0 + 2000, rows, 0, 1), 1);
    rl_topkeys_free(a);
    rl_topkeys_free(b);
}
END_TEST

START_TEST(policy_slots_and_long_keys_only)
{
    rl_topkeys_t *t = rl_topkeys_new();
    size_t empty = rl_topkeys_bytes(t);
    char key[RL_TOPKEYS_KEY_MAX + 2];
    int i;

    /* Any slot gets a table on its first denial, the last one too; one
     * past the last and a negative one do not. */
    for (i = 0; i < RL_TOPKEYS_TABLES - 1; i++) {
        rec(t, i, "k", 1, T0);
    }
    rec(t, RL_TOPKEYS_POLICIES - 1, "k", 1, T0);
    rec(t, RL_TOPKEYS_POLICIES, "k", 1, T0);
    rec(t, -1, "k", 1, T0);
    for (i = 0; i < RL_TOPKEYS_TABLES - 1; i++) {
        ck_assert_int_eq(rl_topkeys_read(t, i, 0, 1, T0, rows, 0, 8), 1);
    }
    ck_assert_int_eq(
        rl_topkeys_read(t, RL_TOPKEYS_POLICIES - 1, 0, 1, T0, rows, 0, 8), 1);
    ck_assert_int_eq(
        rl_topkeys_read(t, RL_TOPKEYS_POLICIES, 0, 1, T0, rows, 0, 8), 0);
    ck_assert_int_eq(rl_topkeys_read(t, -1, 0, 1, T0, rows, 0, 8), 0);
    memset(key, 'x', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    rec(t, 0, key, 1, T0);
    key[RL_TOPKEYS_KEY_MAX] = '\0';
    rec(t, 0, key, 1, T0);
    ck_assert_int_eq(rl_topkeys_read(t, 0, 0, 1, T0, rows, 0, 8), 2);
    ck_assert_ptr_nonnull(find(2, key));
    ck_assert_uint_gt(rl_topkeys_bytes(t), empty);
    rl_topkeys_free(t);
}
END_TEST

START_TEST(at_maximum_size_under_one_megabyte)
{
    rl_topkeys_t *t = rl_topkeys_new();
    size_t empty = rl_topkeys_bytes(t), full, table;
    char key[RL_TOPKEYS_KEY_MAX + 1];
    int p, i;

    /* A policy that only allows costs nothing. */
    for (i = 0; i < 1000; i++) {
        rec(t, 7, "allowed", 0, T0);
    }
    ck_assert_uint_eq(rl_topkeys_bytes(t), empty);
    ck_assert_int_eq(rl_topkeys_read(t, 7, 0, 60, T0, rows, 0, 8), 0);
    ck_assert_uint_lt(empty, 24 * 1024);
    /* Every table full of the longest keys. */
    memset(key, 'k', RL_TOPKEYS_KEY_MAX);
    key[RL_TOPKEYS_KEY_MAX] = '\0';
    for (p = 0; p < RL_TOPKEYS_TABLES; p++) {
        for (i = 0; i < RL_TOPKEYS_ENTRIES; i++) {
            snprintf(key, sizeof(key), "%04d", i);
            key[4] = 'k';
            rec(t, 100 + p, key, 1, T0);
        }
        ck_assert_int_eq(
            rl_topkeys_read(t, 100 + p, 0, 1, T0, rows, 0, RL_TOPKEYS_ENTRIES),
            RL_TOPKEYS_ENTRIES);
    }
    full = rl_topkeys_bytes(t);
    table = (full - empty) / RL_TOPKEYS_TABLES;
    printf("topkeys: %zu bytes empty, %zu per table (%zu per entry), "
           "%zu with all %d tables\n",
           empty, table, table / RL_TOPKEYS_ENTRIES, full, RL_TOPKEYS_TABLES);
    ck_assert_uint_lt(full, 1024 * 1024);
    ck_assert_uint_le(full, RL_TOPKEYS_BUDGET);
    /* 296 bytes an entry, 20 more the worker's own. */
    ck_assert_uint_le(table, RL_TOPKEYS_ENTRIES * (300 + 20) + 256);
    /* Another policy's denial does not allocate past the budget. */
    rec(t, 99, "more", 1, T0);
    ck_assert_uint_eq(rl_topkeys_bytes(t), full);
    rl_topkeys_free(t);
}
END_TEST

START_TEST(a_policy_beyond_the_budget_is_not_tracked)
{
    static rl_stats_t st;
    rl_topkeys_t *t = rl_topkeys_new();
    int p;

    rl_stats_self = &st;
    for (p = 0; p < RL_TOPKEYS_TABLES; p++) {
        rec(t, p, "k", 1, T0);
        ck_assert_int_eq(rl_topkeys_tracked(t, p, 60, T0), 1);
    }
    ck_assert_uint_eq(st.top_keys_untracked, 0);
    /* Allowing costs nothing and is not a refusal. */
    rec(t, 50, "late", 0, T0);
    ck_assert_uint_eq(st.top_keys_untracked, 0);
    ck_assert_int_eq(rl_topkeys_tracked(t, 50, 60, T0), 1);
    rec(t, 50, "late", 1, T0);
    rec(t, 50, "late", 1, T0 + 1000);
    ck_assert_uint_eq(st.top_keys_untracked, 2);
    ck_assert_int_eq(rl_topkeys_read(t, 50, 0, 60, T0, rows, 0, 8), 0);
    ck_assert_int_eq(rl_topkeys_tracked(t, 50, 1, T0), 0);
    /* Untracked over the windows that include the refused denial. */
    ck_assert_int_eq(rl_topkeys_tracked(t, 50, 5, T0 + 4 * MIN), 0);
    ck_assert_int_eq(rl_topkeys_tracked(t, 50, 5, T0 + 5 * MIN), 1);
    ck_assert_int_eq(rl_topkeys_tracked(t, 0, 1, T0), 1);
    /* The tracked policies keep counting. */
    rec(t, 0, "k", 1, T0 + 1000);
    ck_assert_int_eq(rl_topkeys_read(t, 0, 0, 1, T0 + 1000, rows, 0, 8), 1);
    ck_assert_uint_eq(rows[0].denied, 2);
    rl_stats_self = NULL;
    rl_topkeys_free(t);
}
END_TEST

START_TEST(an_idle_table_is_handed_on)
{
    rl_topkeys_t *t = rl_topkeys_new();
    size_t full;
    int p;

    for (p = 0; p < RL_TOPKEYS_TABLES; p++) {
        rec(t, p, "old", 1, T0);
    }
    full = rl_topkeys_bytes(t);
    /* Policy 0 counts again half an hour later: it is not idle. */
    rec(t, 0, "old", 0, T0 + 30 * MIN);
    /* An hour on, a 60m window still shows T0: no table is idle yet. */
    rec(t, 20, "new", 1, T0 + 60 * MIN);
    ck_assert_int_eq(rl_topkeys_tracked(t, 20, 1, T0 + 60 * MIN), 0);
    ck_assert_int_eq(rl_topkeys_read(t, 1, 0, 60, T0 + 60 * MIN, rows, 0, 8),
                     1);
    /* 75 minutes on T0 has left every window: policy 1's table (the
     * first of the longest idle) is cleared and counts policy 20. */
    rec(t, 20, "new", 1, T0 + 75 * MIN);
    ck_assert_uint_eq(rl_topkeys_bytes(t), full);
    ck_assert_int_eq(rl_topkeys_read(t, 20, 0, 1, T0 + 75 * MIN, rows, 0, 8),
                     1);
    ck_assert_str_eq(rows[0].key, "new");
    ck_assert_uint_eq(rows[0].denied, 1);
    ck_assert_int_eq(rl_topkeys_tracked(t, 20, 1, T0 + 75 * MIN), 1);
    ck_assert_int_eq(rl_topkeys_read(t, 1, 0, 60, T0 + 75 * MIN, rows, 0, 8),
                     0);
    /* Policy 1 allowed: not counted; denied again: it takes the next
     * idle table, and policy 0 (busy at T0 + 30m) keeps its own. */
    rec(t, 1, "old", 0, T0 + 75 * MIN);
    ck_assert_int_eq(rl_topkeys_read(t, 1, 0, 1, T0 + 75 * MIN, rows, 0, 8), 0);
    rec(t, 1, "old", 1, T0 + 75 * MIN);
    ck_assert_int_eq(rl_topkeys_read(t, 1, 0, 1, T0 + 75 * MIN, rows, 0, 8), 1);
    ck_assert_int_eq(rl_topkeys_read(t, 2, 0, 60, T0 + 75 * MIN, rows, 0, 8),
                     0);
    ck_assert_int_eq(rl_topkeys_read(t, 0, 0, 60, T0 + 75 * MIN, rows, 0, 8),
                     1);
    ck_assert_uint_eq(rows[0].allowed, 1);
    rl_topkeys_free(t);
}
END_TEST

START_TEST(long_windows_round_up_to_quarter_hours)
{
    rl_topkeys_t *t = rl_topkeys_new();
    int64_t q = T0 - (T0 / MIN % 15) * MIN; /* T0's quarter-hour */
    int off = (int)(T0 / MIN % 15);
    int m, n;

    /* Up to 15m exact; beyond, back to a quarter-hour's start. */
    ck_assert_int_eq(rl_topkeys_span(1, T0), 1);
    ck_assert_int_eq(rl_topkeys_span(15, T0), 15);
    ck_assert_int_eq(rl_topkeys_span(60, q + 14 * MIN), 60);
    ck_assert_int_eq(rl_topkeys_span(30, q + 14 * MIN), 30);
    ck_assert_int_eq(rl_topkeys_span(16, q), 16);
    ck_assert_int_eq(rl_topkeys_span(16, q + MIN), 17);
    ck_assert_int_eq(rl_topkeys_span(60, q), 61);
    ck_assert_int_eq(rl_topkeys_span(60, q + 13 * MIN), 74);
    ck_assert_int_eq(rl_topkeys_span(20, T0), off + 1 + 15);
    /* One denial a minute over the last 80 minutes: each window sums
     * exactly the minutes it says. */
    for (m = 80; m >= 0; m--) {
        rec(t, 0, "k", 1, T0 - m * MIN);
        rec(t, 0, "k", 0, T0 - m * MIN + 1);
    }
    for (m = 1; m <= 60; m++) {
        int span = rl_topkeys_span(m, T0);

        n = rl_topkeys_read(t, 0, 0, m, T0, rows, 0, 8);
        ck_assert_int_eq(n, 1);
        ck_assert_uint_eq(rows[0].denied, (uint64_t)span);
        ck_assert_uint_eq(rows[0].allowed, (uint64_t)span);
        ck_assert_int_ge(span, m);
        ck_assert_int_le(span, m + 14);
    }
    /* A gap: minutes not decided stay empty in the quarter-hours. */
    rec(t, 1, "g", 1, T0 - 40 * MIN);
    rec(t, 1, "g", 1, T0);
    rl_topkeys_read(t, 1, 0, 60, T0, rows, 0, 8);
    ck_assert_uint_eq(rows[0].denied, 2);
    rl_topkeys_read(t, 1, 0, 15, T0, rows, 0, 8);
    ck_assert_uint_eq(rows[0].denied, 1);
    rl_topkeys_free(t);
}
END_TEST

START_TEST(counts_stay_within_the_error_bound)
{
    static uint64_t truth[3000];
    rl_topkeys_t *t = rl_topkeys_new();
    uint64_t total = 0, x = 88172645463325252ull;
    char key[32];
    int i, n;

    /* A skewed stream of denials over 3,000 keys through 256 entries:
     * nothing over-counts, nothing under-counts by more than
     * total / RL_TOPKEYS_ENTRIES, and every key denied more often than
     * that is listed. */
    for (i = 0; i < 200000; i++) {
        int k;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        k = (int)((x % 3000) * (x % 3000) / 3000) % 3000;
        k = (int)(x >> 40) % 4 == 0 ? k % 20 : k;
        snprintf(key, sizeof(key), "k%d", k);
        rec(t, 0, key, 1, T0);
        truth[k]++;
        total++;
    }
    n = rl_topkeys_read(t, 0, 0, 1, T0, rows, 0, RL_TOPKEYS_ENTRIES);
    ck_assert_int_eq(n, RL_TOPKEYS_ENTRIES);
    for (i = 0; i < n; i++) {
        uint64_t want = truth[atoi(rows[i].key + 1)];

        ck_assert_uint_le(rows[i].denied, want);
        ck_assert_uint_le(want - rows[i].denied, total / RL_TOPKEYS_ENTRIES);
    }
    for (i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        if (truth[i] > total / RL_TOPKEYS_ENTRIES) {
            ck_assert_ptr_nonnull(find(n, key));
        }
    }
    rl_topkeys_free(t);
}
END_TEST

START_TEST(a_key_evicted_before_another_aged_out_keeps_its_weight)
{
    rl_topkeys_t *t = rl_topkeys_new();
    char key[32];
    int i, j, n;

    /* z ages out 5 minutes after T0; 254 keys of 5 denials fill the
     * rest but one entry, which x takes with 3 denials; y evicts x. */
    for (j = 0; j < 10; j++) {
        rec(t, 0, "z", 1, T0 - 70 * MIN);
    }
    for (i = 0; i < RL_TOPKEYS_ENTRIES - 2; i++) {
        snprintf(key, sizeof(key), "f%d", i);
        for (j = 0; j < 5; j++) {
            rec(t, 0, key, 1, T0);
        }
    }
    for (j = 0; j < 3; j++) {
        rec(t, 0, "x", 1, T0);
    }
    rec(t, 0, "y", 1, T0);
    ck_assert_ptr_null(find(
        rl_topkeys_read(t, 0, 0, 15, T0, rows, 0, RL_TOPKEYS_ENTRIES), "x"));
    /* w takes z's place; x comes back, then v: x, denied 4 times in the
     * window, more than y's weight, must stay: it inherited at least
     * the 3 it lost, not the 1 of a newcomer in an aged-out entry. */
    rec(t, 0, "w", 1, T0 + 5 * MIN);
    rec(t, 0, "x", 1, T0 + 5 * MIN);
    rec(t, 0, "v", 1, T0 + 5 * MIN);
    n = rl_topkeys_read(t, 0, 0, 15, T0 + 5 * MIN, rows, 0, RL_TOPKEYS_ENTRIES);
    ck_assert_ptr_nonnull(find(n, "x"));
    ck_assert_uint_eq(find(n, "x")->denied, 1);
    ck_assert_ptr_null(find(n, "y"));
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
    tcase_add_test(tc, policy_slots_and_long_keys_only);
    tcase_add_test(tc, at_maximum_size_under_one_megabyte);
    tcase_add_test(tc, a_policy_beyond_the_budget_is_not_tracked);
    tcase_add_test(tc, an_idle_table_is_handed_on);
    tcase_add_test(tc, long_windows_round_up_to_quarter_hours);
    tcase_add_test(tc, counts_stay_within_the_error_bound);
    tcase_add_test(tc, a_key_evicted_before_another_aged_out_keeps_its_weight);
    tcase_add_test(tc, key_values_of_a_store_key);
    tcase_add_test(tc, a_reload_that_changes_the_key_fields_starts_afresh);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
