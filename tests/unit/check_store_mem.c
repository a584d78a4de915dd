/* Unit tests of store_mem.c: the memory store over the shared table with
 * an injected clock: key isolation, reset, expiry, blocks, bad input,
 * and exactness under four threads deciding on one key. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limit_helper.h"
#include "store_mem.h"
#include "util.h"

#define T0 1728000000000LL

/* The injected clock. */
typedef struct test_clock {
    int64_t now;
} test_clock_t;

/* Reads the injected clock. */
static int64_t clock_now(void *arg)
{
    return ((test_clock_t *)arg)->now;
}

/* What a callback saw: a copy of the result and how often it ran. */
typedef struct seen {
    rl_store_result_t res;
    int calls;
} seen_t;

/* Copies the result into the seen_t at arg. */
static void on_result(void *arg, const rl_store_result_t *res)
{
    seen_t *s = arg;

    s->res = *res;
    s->calls++;
}

/* A limit of the given shape named suffix, its burst its requests. */
static rl_limit_t mk(rl_algo_t algo, int64_t requests, int64_t period_ms,
                     int64_t block_ms, const char *suffix)
{
    return rl_test_limit(algo, requests, period_ms, requests, block_ms, suffix);
}

/* Decides cost on base against the limits; checks the callback ran once,
 * synchronously, and returns what it saw. */
static seen_t decide(rl_store_t *s, const char *base, const rl_limit_t *limits,
                     int n, int64_t cost)
{
    rl_store_op_t op = {base, strlen(base), limits, n, cost, NULL,
                        0,    NULL,         0,      0};
    seen_t seen;

    memset(&seen, 0, sizeof(seen));
    rl_store_decide(s, &op, on_result, &seen);
    ck_assert_int_eq(seen.calls, 1);
    return seen;
}

/* Decides and returns allowed, asserting the store did not fail. */
static int allowed(rl_store_t *s, const char *base, const rl_limit_t *limits,
                   int n)
{
    seen_t seen = decide(s, base, limits, n, 1);

    ck_assert_int_eq(seen.res.status, RL_OK);
    return seen.res.allowed;
}

START_TEST(keys_isolated)
{
    rl_mem_table_t *t = rl_mem_table_new();
    test_clock_t c = {T0};
    rl_store_t *s = rl_store_mem_new(t, clock_now, &c);
    rl_limit_t l = mk(RL_ALGO_FIXED_WINDOW, 1, 60000, 0, "f1m");
    rl_limit_t lt = mk(RL_ALGO_FIXED_WINDOW, 1, 60000, 0, "tf1m");
    seen_t seen;

    ck_assert(allowed(s, "rl:{a}", &l, 1));
    seen = decide(s, "rl:{a}", &l, 1, 1);
    ck_assert_int_eq(seen.res.allowed, 0);
    ck_assert_int_eq(seen.res.now_ms, T0);
    ck_assert_int_eq(seen.res.limits[0].retry_after_ms, 60000);
    /* another key, and another limit of the same key */
    ck_assert(allowed(s, "rl:{b}", &l, 1));
    ck_assert(allowed(s, "rl:{a}:x", &l, 1));
    ck_assert(allowed(s, "rl:{a}", &lt, 1));
    ck_assert_int_eq(rl_mem_table_size(t), 4);
    rl_store_free(s);
    rl_mem_table_free(t);
}
END_TEST

START_TEST(reset_clears_the_keys)
{
    rl_mem_table_t *t = rl_mem_table_new();
    test_clock_t c = {T0};
    rl_store_t *s = rl_store_mem_new(t, clock_now, &c);
    rl_limit_t l[2] = {mk(RL_ALGO_GCRA, 1, 60000, 10000, "g1m"),
                       mk(RL_ALGO_SLIDING_WINDOW, 5, 60000, 0, "s1m")};
    rl_store_op_t op = {"rl:{r}", 6, l, 2, 1, NULL, 0, NULL, 0, 0};
    seen_t seen;

    ck_assert(allowed(s, "rl:{r}", l, 2));
    ck_assert(allowed(s, "rl:{other}", l, 2));
    seen = decide(s, "rl:{r}", l, 2, 1);
    ck_assert_int_eq(seen.res.limits[0].blocked, 1);
    ck_assert_int_eq(rl_mem_table_size(t), 4);

    memset(&seen, 0, sizeof(seen));
    rl_store_reset(s, &op, on_result, &seen);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_int_eq(seen.res.status, RL_OK);
    ck_assert_int_eq(rl_mem_table_size(t), 2);
    /* the block went with the state */
    ck_assert(allowed(s, "rl:{r}", l, 2));
    ck_assert(!allowed(s, "rl:{other}", l, 2));
    rl_store_free(s);
    rl_mem_table_free(t);
}
END_TEST

START_TEST(expiry_frees_entries)
{
    rl_mem_table_t *t = rl_mem_table_new();
    test_clock_t c = {T0};
    rl_store_t *s = rl_store_mem_new(t, clock_now, &c);
    rl_limit_t l = mk(RL_ALGO_GCRA, 1, 1000, 0, "g1s");
    char base[64];
    int i;

    for (i = 0; i < 500; i++) {
        snprintf(base, sizeof(base), "rl:{old%d}", i);
        ck_assert(allowed(s, base, &l, 1));
    }
    ck_assert_int_eq(rl_mem_table_size(t), 500);
    /* a full bucket lives exactly until it has refilled */
    c.now = T0 + 999;
    ck_assert(!allowed(s, "rl:{old0}", &l, 1));
    c.now = T0 + 1000;
    /* peeks store nothing; a dead entry met on the way is dropped */
    for (i = 0; i < 100; i++) {
        seen_t seen;

        snprintf(base, sizeof(base), "rl:{old%d}", i);
        seen = decide(s, base, &l, 1, 0);
        ck_assert_int_eq(seen.res.limits[0].remaining, 1);
    }
    ck_assert_int_eq(rl_mem_table_size(t), 400);
    /* inserts sweep the rest */
    for (i = 0; i < 1000; i++) {
        snprintf(base, sizeof(base), "rl:{new%d}", i);
        ck_assert(allowed(s, base, &l, 1));
    }
    ck_assert_int_eq(rl_mem_table_size(t), 1000);
    rl_store_free(s);
    rl_mem_table_free(t);
}
END_TEST

START_TEST(block_outlives_state)
{
    rl_mem_table_t *t = rl_mem_table_new();
    test_clock_t c = {T0};
    rl_store_t *s = rl_store_mem_new(t, clock_now, &c);
    rl_limit_t l = mk(RL_ALGO_FIXED_WINDOW, 1, 1000, 10000, "f1s");
    seen_t seen;

    ck_assert(allowed(s, "rl:{b}", &l, 1));
    ck_assert(!allowed(s, "rl:{b}", &l, 1));
    c.now = T0 + 5000;
    seen = decide(s, "rl:{b}", &l, 1, 1);
    ck_assert_int_eq(seen.res.allowed, 0);
    ck_assert_int_eq(seen.res.limits[0].blocked, 1);
    ck_assert_int_eq(seen.res.limits[0].retry_after_ms, 5000);
    c.now = T0 + 10000;
    ck_assert(allowed(s, "rl:{b}", &l, 1));
    rl_store_free(s);
    rl_mem_table_free(t);
}
END_TEST

START_TEST(multi_limit_all_or_nothing)
{
    rl_mem_table_t *t = rl_mem_table_new();
    test_clock_t c = {T0};
    rl_store_t *s = rl_store_mem_new(t, clock_now, &c);
    rl_limit_t l[2] = {mk(RL_ALGO_FIXED_WINDOW, 3, 1000, 0, "f1s"),
                       mk(RL_ALGO_FIXED_WINDOW, 100, 60000, 0, "f1m")};
    seen_t seen;
    int i;

    for (i = 0; i < 3; i++) {
        ck_assert(allowed(s, "rl:{m}", l, 2));
    }
    for (i = 0; i < 5; i++) {
        ck_assert(!allowed(s, "rl:{m}", l, 2));
    }
    seen = decide(s, "rl:{m}", &l[1], 1, 0);
    ck_assert_int_eq(seen.res.limits[0].remaining, 97);
    rl_store_free(s);
    rl_mem_table_free(t);
}
END_TEST

START_TEST(long_key)
{
    rl_mem_table_t *t = rl_mem_table_new();
    test_clock_t c = {T0};
    rl_store_t *s = rl_store_mem_new(t, clock_now, &c);
    rl_limit_t l[2] = {mk(RL_ALGO_FIXED_WINDOW, 1, 1000, 0, "f1s"),
                       mk(RL_ALGO_GCRA, 1, 1000, 0, "g1s")};
    char *base = malloc(3000);

    memset(base, 'x', 2999);
    base[0] = '{';
    base[2998] = '}';
    base[2999] = '\0';
    ck_assert(allowed(s, base, l, 2));
    ck_assert(!allowed(s, base, l, 2));
    base[1] = 'y';
    ck_assert(allowed(s, base, l, 2));
    ck_assert_int_eq(rl_mem_table_size(t), 4);
    free(base);
    rl_store_free(s);
    rl_mem_table_free(t);
}
END_TEST

START_TEST(bad_op_fails)
{
    rl_mem_table_t *t = rl_mem_table_new();
    rl_store_t *s = rl_store_mem_new(t, NULL, NULL);
    rl_limit_t l = mk(RL_ALGO_FIXED_WINDOW, 1, 1000, 0, "f1s");
    seen_t seen;

    seen = decide(s, "rl:{x}", &l, 0, 1);
    ck_assert_int_eq(seen.res.status, RL_ERR);
    ck_assert_ptr_nonnull(seen.res.error);
    seen = decide(s, "rl:{x}", &l, 1, -1);
    ck_assert_int_eq(seen.res.status, RL_ERR);
    l.period_ms = 0;
    seen = decide(s, "rl:{x}", &l, 1, 1);
    ck_assert_int_eq(seen.res.status, RL_ERR);
    ck_assert_int_eq(rl_mem_table_size(t), 0);
    ck_assert_int_eq(rl_store_connected(s), 1);
    rl_store_free(s);
    rl_mem_table_free(t);
}
END_TEST

/* An algorithm value past the last row of algo.h (or negative) is refused
 * before any state is touched; the same limit with a real algorithm is
 * decided. */
START_TEST(unknown_algorithm_refused)
{
    static const int bad[] = {RL_ALGO_COUNT, RL_ALGO_COUNT + 7, -1};
    rl_mem_table_t *t = rl_mem_table_new();
    rl_store_t *s = rl_store_mem_new(t, NULL, NULL);
    rl_limit_t l = mk(RL_ALGO_FIXED_WINDOW, 5, 1000, 0, "f1s");
    seen_t seen;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        l.algo = (rl_algo_t)bad[i];
        seen = decide(s, "rl:{x}", &l, 1, 1);
        ck_assert_int_eq(seen.res.status, RL_ERR);
        ck_assert_str_eq(seen.res.error, "bad_request");
        ck_assert_int_eq(rl_mem_table_size(t), 0);
    }
    l.algo = RL_ALGO_FIXED_WINDOW;
    ck_assert(allowed(s, "rl:{x}", &l, 1));
    ck_assert_int_eq(rl_mem_table_size(t), 1);
    rl_store_free(s);
    rl_mem_table_free(t);
}
END_TEST

START_TEST(wall_clock_by_default)
{
    rl_mem_table_t *t = rl_mem_table_new();
    rl_store_t *s = rl_store_mem_new(t, NULL, NULL);
    rl_limit_t l = mk(RL_ALGO_FIXED_WINDOW, 1, 60000, 0, "f1m");
    int64_t before = rl_now_ms();
    seen_t seen = decide(s, "rl:{w}", &l, 1, 1);
    int64_t after = rl_now_ms();

    ck_assert_int_eq(seen.res.status, RL_OK);
    ck_assert_int_eq(seen.res.allowed, 1);
    ck_assert_int_ge(seen.res.now_ms, before);
    ck_assert_int_le(seen.res.now_ms, after);
    rl_store_free(s);
    rl_mem_table_free(t);
}
END_TEST

/* ------------------------------------------------------------------------
 * Exactness under concurrency
 * ------------------------------------------------------------------------ */

#define THREADS 4
#define PER_THREAD 10000

typedef struct hammer {
    rl_mem_table_t *table;
    test_clock_t *clock;
    const rl_limit_t *limits;
    int nlimits;
    int admitted;
    int failed;
} hammer_t;

/* One worker: its own handle, PER_THREAD decisions on one key. */
static void *hammer_run(void *arg)
{
    hammer_t *h = arg;
    rl_store_t *s = rl_store_mem_new(h->table, clock_now, h->clock);
    rl_store_op_t op = {"rl:{hot}", 8, h->limits, h->nlimits, 1,
                        NULL,       0, NULL,      0,          0};
    int i;

    for (i = 0; i < PER_THREAD; i++) {
        seen_t seen;

        memset(&seen, 0, sizeof(seen));
        rl_store_decide(s, &op, on_result, &seen);
        if (seen.calls != 1 || seen.res.status != RL_OK) {
            h->failed++;
        } else if (seen.res.allowed) {
            h->admitted++;
        }
    }
    rl_store_free(s);
    return NULL;
}

/* Runs THREADS hammers against limits; returns the total admitted. */
static int hammer_all(const rl_limit_t *limits, int n)
{
    rl_mem_table_t *t = rl_mem_table_new();
    test_clock_t c = {T0 + 1234};
    pthread_t th[THREADS];
    hammer_t h[THREADS];
    int total = 0;
    int i;

    for (i = 0; i < THREADS; i++) {
        h[i] = (hammer_t){t, &c, limits, n, 0, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(h[i].failed, 0);
        total += h[i].admitted;
    }
    rl_mem_table_free(t);
    return total;
}

START_TEST(concurrent_exactness)
{
    rl_limit_t f = mk(RL_ALGO_FIXED_WINDOW, 100, 60000, 0, "f1m");
    rl_limit_t all[3] = {mk(RL_ALGO_GCRA, 100, 60000, 0, "g1m"),
                         mk(RL_ALGO_SLIDING_WINDOW, 100, 60000, 0, "s1m"),
                         mk(RL_ALGO_FIXED_WINDOW, 1000, 60000, 0, "f1m")};

    ck_assert_int_eq(hammer_all(&f, 1), 100);
    ck_assert_int_eq(hammer_all(all, 3), 100);
}
END_TEST

/* Builds the suite. */
static Suite *store_mem_suite(void)
{
    Suite *s = suite_create("store_mem");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, keys_isolated);
    tcase_add_test(tc, reset_clears_the_keys);
    tcase_add_test(tc, expiry_frees_entries);
    tcase_add_test(tc, block_outlives_state);
    tcase_add_test(tc, multi_limit_all_or_nothing);
    tcase_add_test(tc, long_key);
    tcase_add_test(tc, bad_op_fails);
    tcase_add_test(tc, unknown_algorithm_refused);
    tcase_add_test(tc, wall_clock_by_default);
    tcase_add_test(tc, concurrent_exactness);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(store_mem_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
