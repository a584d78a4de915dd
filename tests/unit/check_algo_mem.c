/* Unit tests of algo_mem.c: every algorithm against an injected clock,
 * checked by what a caller sees (allowed, remaining, reset, retry,
 * blocked) and by the state it leaves behind. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo.h"
#include "algo_mem.h"
#include "conf.h"
#include "redis_cmd.h"
#include "util.h"

/* A clock aligned to a whole day (so to every second, minute and hour). */
#define T0 1728000000000LL

/* A limit of the given shape. */
static rl_limit_t mk(rl_algo_t algo, int64_t requests, int64_t period_ms,
                     int64_t burst, int64_t block_ms)
{
    rl_limit_t l;

    memset(&l, 0, sizeof(l));
    l.algo = algo;
    l.requests = requests;
    l.period_ms = period_ms;
    l.burst = burst > 0 ? burst : requests;
    l.block_ms = block_ms;
    return l;
}

/* Decides one request against one limit; returns allowed. */
static int one(const rl_limit_t *l, rl_limit_state_t *st, int64_t now,
               int64_t cost, rl_limit_result_t *r)
{
    int allowed = rl_algo_decide(l, 1, st, now, cost, r);

    ck_assert_int_eq(allowed, r->allowed && !r->blocked);
    return allowed;
}

/* Asserts one limit's result. */
static void expect(const rl_limit_result_t *r, int allowed, long long remaining,
                   long long reset, long long retry, int blocked)
{
    ck_assert_int_eq(r->allowed, allowed);
    ck_assert_int_eq(r->remaining, remaining);
    ck_assert_int_eq(r->reset_after_ms, reset);
    ck_assert_int_eq(r->retry_after_ms, retry);
    ck_assert_int_eq(r->blocked, blocked);
}

/* ------------------------------------------------------------------------
 * Fixed window
 * ------------------------------------------------------------------------ */

START_TEST(fixed_window_edges)
{
    rl_limit_t l = mk(RL_ALGO_FIXED_WINDOW, 3, 1000, 0, 0);
    rl_limit_state_t st = {{0}, 0, 0};
    rl_limit_result_t r;

    /* the last millisecond of a window */
    ck_assert(one(&l, &st, T0 + 999, 1, &r));
    expect(&r, 1, 2, 1, 0, 0);
    ck_assert(one(&l, &st, T0 + 999, 1, &r));
    ck_assert(one(&l, &st, T0 + 999, 1, &r));
    expect(&r, 1, 0, 1, 0, 0);
    ck_assert(!one(&l, &st, T0 + 999, 1, &r));
    expect(&r, 0, 0, 1, 1, 0);
    /* the first millisecond of the next: a full window again */
    ck_assert(one(&l, &st, T0 + 1000, 1, &r));
    expect(&r, 1, 2, 1000, 0, 0);
    ck_assert_int_eq(st.v[0], (T0 + 1000) / 1000);
    ck_assert_int_eq(st.v[1], 1);
    ck_assert_int_eq(st.expires_ms, T0 + 2000);
}
END_TEST

START_TEST(fixed_window_compares_index_not_expiry)
{
    rl_limit_t l = mk(RL_ALGO_FIXED_WINDOW, 3, 1000, 0, 0);
    /* a full count of the previous window whose entry has not expired */
    rl_limit_state_t st = {{T0 / 1000 - 1, 3, 0}, T0 + 60000, 0};
    rl_limit_result_t r;

    ck_assert(one(&l, &st, T0 + 10, 1, &r));
    expect(&r, 1, 2, 990, 0, 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * GCRA
 * ------------------------------------------------------------------------ */

START_TEST(gcra_burst)
{
    rl_limit_t l = mk(RL_ALGO_GCRA, 10, 1000, 5, 0);
    rl_limit_state_t st = {{0}, 0, 0};
    rl_limit_result_t r;
    int i;

    for (i = 0; i < 5; i++) {
        ck_assert(one(&l, &st, T0, 1, &r));
        expect(&r, 1, 4 - i, 100 * (i + 1), 0, 0);
    }
    ck_assert(!one(&l, &st, T0, 1, &r));
    expect(&r, 0, 0, 500, 100, 0);
    /* the theoretical arrival time, in microseconds */
    ck_assert_int_eq(st.v[0], T0 * 1000 + 500000);
    ck_assert_int_eq(st.expires_ms, T0 + 500);
}
END_TEST

/* The largest cost a request may carry (10^9) against the largest limits
 * the config accepts (docs/algorithms.md, "Ranges"): denied, nothing
 * written, and no signed overflow on the way (UBSan fails the test in
 * the sanitizer build if cost*T or (cur + cost)*P is computed). */
START_TEST(huge_cost_never_overflows)
{
    rl_limit_t g = mk(RL_ALGO_GCRA, 1, 3650LL * 86400000, 7, 0);
    rl_limit_t s = mk(RL_ALGO_SLIDING_WINDOW, 1 << 20, 1LL << 31, 0, 0);
    rl_limit_state_t st;
    rl_limit_result_t r;

    memset(&st, 0, sizeof(st));
    ck_assert(!one(&g, &st, T0, 1000000000LL, &r));
    ck_assert_int_eq(r.remaining, 7);
    ck_assert_int_eq(r.retry_after_ms, g.period_ms);
    ck_assert_int_eq(st.v[0], 0);
    memset(&st, 0, sizeof(st));
    ck_assert(!one(&s, &st, T0, 1000000000LL, &r));
    ck_assert_int_eq(r.remaining, 1 << 20);
    ck_assert_int_eq(st.v[2], 0);
}
END_TEST

START_TEST(gcra_refill_timing)
{
    rl_limit_t l = mk(RL_ALGO_GCRA, 10, 1000, 5, 0);
    rl_limit_state_t st = {{0}, 0, 0};
    rl_limit_result_t r;
    int i;

    for (i = 0; i < 5; i++) {
        ck_assert(one(&l, &st, T0, 1, &r));
    }
    ck_assert(!one(&l, &st, T0 + 99, 1, &r));
    expect(&r, 0, 0, 401, 1, 0);
    ck_assert(one(&l, &st, T0 + 100, 1, &r));
    expect(&r, 1, 0, 500, 0, 0);
    /* one token per emission interval, no more */
    ck_assert(!one(&l, &st, T0 + 150, 1, &r));
    expect(&r, 0, 0, 450, 50, 0);
    ck_assert(one(&l, &st, T0 + 200, 1, &r));
    /* idle for the whole burst: full again */
    ck_assert(one(&l, &st, T0 + 700, 1, &r));
    expect(&r, 1, 4, 100, 0, 0);
}
END_TEST

START_TEST(gcra_fractional_interval_keeps_burst)
{
    /* T = ceil(1e6 / 3) us: three at once must pass, the fourth not */
    rl_limit_t l = mk(RL_ALGO_GCRA, 3, 1000, 3, 0);
    rl_limit_state_t st = {{0}, 0, 0};
    rl_limit_result_t r;

    ck_assert(one(&l, &st, T0, 1, &r));
    ck_assert(one(&l, &st, T0, 1, &r));
    ck_assert(one(&l, &st, T0, 1, &r));
    expect(&r, 1, 0, 1001, 0, 0);
    ck_assert(!one(&l, &st, T0, 1, &r));
    expect(&r, 0, 0, 1001, 334, 0);
}
END_TEST

START_TEST(gcra_one_per_5_minutes_burst_1)
{
    rl_limit_t l = mk(RL_ALGO_GCRA, 1, 300000, 1, 0);
    rl_limit_state_t st = {{0}, 0, 0};
    rl_limit_result_t r;
    int64_t t = T0 + 123;

    ck_assert(one(&l, &st, t, 1, &r));
    expect(&r, 1, 0, 300000, 0, 0);
    ck_assert(!one(&l, &st, t + 1, 1, &r));
    expect(&r, 0, 0, 299999, 299999, 0);
    ck_assert(!one(&l, &st, t + 299999, 1, &r));
    expect(&r, 0, 0, 1, 1, 0);
    ck_assert(one(&l, &st, t + 300000, 1, &r));
    expect(&r, 1, 0, 300000, 0, 0);
}
END_TEST

START_TEST(one_per_2_minutes)
{
    rl_limit_t g = mk(RL_ALGO_GCRA, 1, 120000, 0, 0);
    rl_limit_t f = mk(RL_ALGO_FIXED_WINDOW, 1, 120000, 0, 0);
    rl_limit_state_t gs = {{0}, 0, 0};
    rl_limit_state_t fs = {{0}, 0, 0};
    rl_limit_result_t r;

    ck_assert(one(&g, &gs, T0 + 5000, 1, &r));
    expect(&r, 1, 0, 120000, 0, 0);
    ck_assert(!one(&g, &gs, T0 + 65000, 1, &r));
    expect(&r, 0, 0, 60000, 60000, 0);
    ck_assert(one(&g, &gs, T0 + 125000, 1, &r));

    ck_assert(one(&f, &fs, T0 + 5000, 1, &r));
    expect(&r, 1, 0, 115000, 0, 0);
    ck_assert(!one(&f, &fs, T0 + 119999, 1, &r));
    expect(&r, 0, 0, 1, 1, 0);
    ck_assert(one(&f, &fs, T0 + 120000, 1, &r));
}
END_TEST

/* ------------------------------------------------------------------------
 * Sliding window
 * ------------------------------------------------------------------------ */

START_TEST(sliding_window_weighting)
{
    rl_limit_t l = mk(RL_ALGO_SLIDING_WINDOW, 10, 1000, 0, 0);
    rl_limit_state_t st = {{0}, 0, 0};
    rl_limit_result_t r;
    int i;

    for (i = 0; i < 10; i++) {
        ck_assert(one(&l, &st, T0, 1, &r));
        expect(&r, 1, 9 - i, 2000, 0, 0);
    }
    /* half way through the next window the previous one weighs 5 */
    for (i = 0; i < 5; i++) {
        ck_assert(one(&l, &st, T0 + 1500, 1, &r));
        expect(&r, 1, 4 - i, 1500, 0, 0);
    }
    /* 10*(1000-500)/1000 + 5 + 1 > 10: wait until prev weighs 4 */
    ck_assert(!one(&l, &st, T0 + 1500, 1, &r));
    expect(&r, 0, 0, 1500, 100, 0);
    ck_assert(!one(&l, &st, T0 + 1599, 1, &r));
    expect(&r, 0, 0, 1401, 1, 0);
    ck_assert(one(&l, &st, T0 + 1600, 1, &r));
    expect(&r, 1, 0, 1400, 0, 0);
    ck_assert_int_eq(st.v[0], T0 / 1000 + 1);
    ck_assert_int_eq(st.v[1], 10);
    ck_assert_int_eq(st.v[2], 6);
    /* two windows later nothing is left */
    ck_assert(one(&l, &st, T0 + 3000, 1, &r));
    expect(&r, 1, 9, 2000, 0, 0);
}
END_TEST

START_TEST(sliding_window_retry_into_next_window)
{
    rl_limit_t l = mk(RL_ALGO_SLIDING_WINDOW, 10, 1000, 0, 0);
    rl_limit_state_t st = {{0}, 0, 0};
    rl_limit_result_t r;
    int i;

    for (i = 0; i < 10; i++) {
        ck_assert(one(&l, &st, T0, 1, &r));
    }
    /* cur alone is full: pass once 10*(1000-t)/1000 + 1 <= 10, t = 100 */
    ck_assert(!one(&l, &st, T0 + 999, 1, &r));
    expect(&r, 0, 0, 1001, 101, 0);
    ck_assert(!one(&l, &st, T0 + 1099, 1, &r));
    expect(&r, 0, 0, 901, 1, 0);
    ck_assert(one(&l, &st, T0 + 1100, 1, &r));
    expect(&r, 1, 0, 1900, 0, 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * Blocks, multi-limit, cost
 * ------------------------------------------------------------------------ */

START_TEST(block_set_and_expiry)
{
    rl_limit_t l = mk(RL_ALGO_FIXED_WINDOW, 2, 1000, 0, 5000);
    rl_limit_state_t st = {{0}, 0, 0};
    rl_limit_result_t r;

    ck_assert(one(&l, &st, T0, 1, &r));
    ck_assert(one(&l, &st, T0, 1, &r));
    ck_assert(!one(&l, &st, T0 + 10, 1, &r));
    expect(&r, 0, 0, 5000, 5000, 1);
    ck_assert_int_eq(st.block_until_ms, T0 + 5010);
    /* a new window does not lift the block */
    ck_assert(!one(&l, &st, T0 + 1010, 1, &r));
    expect(&r, 0, 0, 4000, 4000, 1);
    ck_assert(!one(&l, &st, T0 + 5009, 0, &r));
    expect(&r, 0, 0, 1, 1, 1);
    ck_assert(one(&l, &st, T0 + 5010, 1, &r));
    expect(&r, 1, 1, 990, 0, 0);
}
END_TEST

START_TEST(block_keeps_longer_own_retry)
{
    rl_limit_t l = mk(RL_ALGO_GCRA, 1, 60000, 1, 1000);
    rl_limit_state_t st = {{0}, 0, 0};
    rl_limit_result_t r;

    ck_assert(one(&l, &st, T0, 1, &r));
    ck_assert(!one(&l, &st, T0 + 100, 1, &r));
    expect(&r, 0, 0, 59900, 59900, 1);
    ck_assert_int_eq(st.block_until_ms, T0 + 1100);
    /* block over, the limit itself still denies and blocks again */
    ck_assert(!one(&l, &st, T0 + 1100, 1, &r));
    expect(&r, 0, 0, 58900, 58900, 1);
    ck_assert_int_eq(st.block_until_ms, T0 + 2100);
}
END_TEST

START_TEST(multi_limit_all_or_nothing)
{
    rl_limit_t l[2] = {mk(RL_ALGO_FIXED_WINDOW, 10, 1000, 0, 0),
                       mk(RL_ALGO_GCRA, 2, 1000, 2, 0)};
    rl_limit_state_t st[2];
    rl_limit_state_t saved[2];
    rl_limit_result_t r[2];

    memset(st, 0, sizeof(st));
    ck_assert(rl_algo_decide(l, 2, st, T0, 1, r));
    ck_assert(rl_algo_decide(l, 2, st, T0, 1, r));
    expect(&r[0], 1, 8, 1000, 0, 0);
    expect(&r[1], 1, 0, 1000, 0, 0);
    memcpy(saved, st, sizeof(st));
    ck_assert(!rl_algo_decide(l, 2, st, T0 + 1, 1, r));
    /* the first limit would admit, but nothing is consumed from it */
    expect(&r[0], 1, 8, 999, 0, 0);
    expect(&r[1], 0, 0, 999, 499, 0);
    ck_assert(memcmp(st, saved, sizeof(st)) == 0);
}
END_TEST

START_TEST(multi_limit_block_denies_all)
{
    rl_limit_t l[2] = {mk(RL_ALGO_FIXED_WINDOW, 100, 1000, 0, 0),
                       mk(RL_ALGO_FIXED_WINDOW, 1, 1000, 0, 3000)};
    rl_limit_state_t st[2];
    rl_limit_result_t r[2];

    memset(st, 0, sizeof(st));
    ck_assert(rl_algo_decide(l, 2, st, T0, 1, r));
    ck_assert(!rl_algo_decide(l, 2, st, T0, 1, r));
    expect(&r[1], 0, 0, 3000, 3000, 1);
    /* next window: limit 1 has room again but its block holds */
    ck_assert(!rl_algo_decide(l, 2, st, T0 + 1000, 1, r));
    expect(&r[0], 1, 100, 1000, 0, 0);
    expect(&r[1], 0, 0, 2000, 2000, 1);
    ck_assert_int_eq(st[0].v[1], 1);
    ck_assert(rl_algo_decide(l, 2, st, T0 + 3000, 1, r));
}
END_TEST

START_TEST(cost_above_one)
{
    rl_limit_t f = mk(RL_ALGO_FIXED_WINDOW, 10, 1000, 0, 0);
    rl_limit_t g = mk(RL_ALGO_GCRA, 10, 1000, 10, 0);
    rl_limit_state_t fs = {{0}, 0, 0};
    rl_limit_state_t gs = {{0}, 0, 0};
    rl_limit_result_t r;

    ck_assert(one(&f, &fs, T0, 4, &r));
    expect(&r, 1, 6, 1000, 0, 0);
    ck_assert(one(&f, &fs, T0, 4, &r));
    expect(&r, 1, 2, 1000, 0, 0);
    ck_assert(!one(&f, &fs, T0, 4, &r));
    expect(&r, 0, 2, 1000, 1000, 0);
    ck_assert(one(&f, &fs, T0, 2, &r));
    expect(&r, 1, 0, 1000, 0, 0);

    ck_assert(one(&g, &gs, T0, 4, &r));
    expect(&r, 1, 6, 400, 0, 0);
    ck_assert(one(&g, &gs, T0, 4, &r));
    ck_assert(!one(&g, &gs, T0, 4, &r));
    expect(&r, 0, 2, 800, 200, 0);
}
END_TEST

START_TEST(cost_zero_peek_writes_nothing)
{
    rl_limit_t l[3] = {mk(RL_ALGO_GCRA, 5, 1000, 5, 0),
                       mk(RL_ALGO_FIXED_WINDOW, 5, 1000, 0, 0),
                       mk(RL_ALGO_SLIDING_WINDOW, 5, 1000, 0, 0)};
    rl_limit_t blk = mk(RL_ALGO_FIXED_WINDOW, 1, 1000, 0, 5000);
    rl_limit_state_t st[3];
    rl_limit_state_t saved[3];
    rl_limit_state_t bs = {{0}, 0, 0};
    rl_limit_result_t r[3];
    int i;

    memset(st, 0, sizeof(st));
    ck_assert(rl_algo_decide(l, 3, st, T0, 0, r));
    expect(&r[0], 1, 5, 0, 0, 0);
    expect(&r[1], 1, 5, 1000, 0, 0);
    expect(&r[2], 1, 5, 0, 0, 0);
    for (i = 0; i < 5; i++) {
        ck_assert(rl_algo_decide(l, 3, st, T0, 1, r));
    }
    memcpy(saved, st, sizeof(st));
    ck_assert(rl_algo_decide(l, 3, st, T0 + 1, 0, r));
    expect(&r[0], 1, 0, 999, 0, 0);
    expect(&r[1], 1, 0, 999, 0, 0);
    expect(&r[2], 1, 0, 1999, 0, 0);
    ck_assert(memcmp(st, saved, sizeof(st)) == 0);

    /* an exhausted limit with a block: a peek never sets the block */
    ck_assert(one(&blk, &bs, T0, 1, &r[0]));
    ck_assert(one(&blk, &bs, T0, 0, &r[0]));
    ck_assert_int_eq(bs.block_until_ms, 0);
    ck_assert(!one(&blk, &bs, T0, 1, &r[0]));
    ck_assert_int_eq(bs.block_until_ms, T0 + 5000);
}
END_TEST

START_TEST(cost_above_capacity_never_passes)
{
    rl_limit_t g = mk(RL_ALGO_GCRA, 5, 1000, 5, 0);
    rl_limit_t f = mk(RL_ALGO_FIXED_WINDOW, 10, 1000, 0, 0);
    rl_limit_t s = mk(RL_ALGO_SLIDING_WINDOW, 10, 1000, 0, 0);
    rl_limit_state_t gs = {{0}, 0, 0};
    rl_limit_state_t fs = {{0}, 0, 0};
    rl_limit_state_t ss = {{0}, 0, 0};
    rl_limit_result_t r;

    ck_assert(!one(&g, &gs, T0, 6, &r));
    expect(&r, 0, 5, 0, 1000, 0);
    ck_assert(one(&g, &gs, T0, 1, &r));
    ck_assert(!one(&g, &gs, T0, 6, &r));
    expect(&r, 0, 4, 200, 200, 0);

    ck_assert(!one(&f, &fs, T0 + 300, 11, &r));
    expect(&r, 0, 10, 700, 700, 0);
    ck_assert(!one(&s, &ss, T0 + 300, 11, &r));
    expect(&r, 0, 10, 0, 1000, 0);
    ck_assert_int_eq(fs.expires_ms, 0);
    ck_assert_int_eq(ss.expires_ms, 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * The tenant profile: 1000/s + 10000/min + 100000/h + 1000000/day
 * ------------------------------------------------------------------------ */

/* The four limits of the profile, all with one algorithm. */
static void tenant_profile(rl_algo_t algo, rl_limit_t l[4])
{
    l[0] = mk(algo, 1000, 1000, 0, 0);
    l[1] = mk(algo, 10000, 60000, 0, 0);
    l[2] = mk(algo, 100000, 3600000, 0, 0);
    l[3] = mk(algo, 1000000, 86400000, 0, 0);
}

START_TEST(tenant_profile_first_second)
{
    rl_limit_t l[4];
    rl_limit_state_t st[4];
    rl_limit_result_t r[4];
    int i;

    tenant_profile(RL_ALGO_GCRA, l);
    memset(st, 0, sizeof(st));
    for (i = 0; i < 1000; i++) {
        ck_assert(rl_algo_decide(l, 4, st, T0, 1, r));
    }
    ck_assert_int_eq(r[0].remaining, 0);
    ck_assert_int_eq(r[1].remaining, 9000);
    ck_assert_int_eq(r[2].remaining, 99000);
    ck_assert_int_eq(r[3].remaining, 999000);
    ck_assert(!rl_algo_decide(l, 4, st, T0, 1, r));
    expect(&r[0], 0, 0, 1000, 1, 0);
    ck_assert(r[1].allowed && r[2].allowed && r[3].allowed);
    ck_assert_int_eq(r[1].remaining, 9000);
    ck_assert_int_eq(r[3].remaining, 999000);
}
END_TEST

START_TEST(tenant_profile_gcra_sustained)
{
    rl_limit_t l[4];
    rl_limit_state_t st[4];
    rl_limit_result_t r[4];
    int64_t t;
    int admitted = 0;

    /* one request per ms for a minute: the per-second limit always has
     * room; the minute limit spends its burst of 10000 and then admits
     * one per 6 ms: floor((60000 + 59999) / 6) in all */
    tenant_profile(RL_ALGO_GCRA, l);
    memset(st, 0, sizeof(st));
    for (t = 0; t < 60000; t++) {
        if (rl_algo_decide(l, 4, st, T0 + t, 1, r)) {
            admitted++;
        } else {
            ck_assert(r[0].allowed && !r[1].allowed && r[2].allowed &&
                      r[3].allowed);
        }
    }
    ck_assert_int_eq(admitted, 19999);
}
END_TEST

START_TEST(tenant_profile_fixed_minute_exhausted)
{
    rl_limit_t l[4];
    rl_limit_state_t st[4];
    rl_limit_result_t r[4];
    int s;
    int i;

    tenant_profile(RL_ALGO_FIXED_WINDOW, l);
    memset(st, 0, sizeof(st));
    for (s = 0; s < 10; s++) {
        for (i = 0; i < 1000; i++) {
            ck_assert(rl_algo_decide(l, 4, st, T0 + s * 1000, 1, r));
        }
        ck_assert(!rl_algo_decide(l, 4, st, T0 + s * 1000, 1, r));
        ck_assert(!r[0].allowed);
        ck_assert_int_eq(r[1].allowed, s < 9);
    }
    ck_assert(!rl_algo_decide(l, 4, st, T0 + 10000, 1, r));
    expect(&r[0], 1, 1000, 1000, 0, 0);
    expect(&r[1], 0, 0, 50000, 50000, 0);
    expect(&r[2], 1, 90000, 3590000, 0, 0);
    expect(&r[3], 1, 990000, 86390000, 0, 0);
    ck_assert(rl_algo_decide(l, 4, st, T0 + 60000, 1, r));
    ck_assert_int_eq(r[1].remaining, 9999);
    ck_assert_int_eq(r[2].remaining, 89999);
}
END_TEST

START_TEST(invalid_limit_denies)
{
    rl_limit_t l = mk(RL_ALGO_FIXED_WINDOW, 0, 1000, 0, 0);
    rl_limit_state_t st = {{0}, 0, 0};
    rl_limit_result_t r;

    ck_assert(!rl_algo_decide(&l, 1, &st, T0, 1, &r));
    ck_assert_int_eq(r.allowed, 0);
    ck_assert_int_eq(st.expires_ms, 0);
}
END_TEST

/* Parses a config with one policy whose one limit uses algorithm word
 * (and burst 3 when with_burst). The conf is the caller's; NULL with err
 * filled if refused. */
static rl_conf_t *parse_algo(const char *word, int with_burst, char *err,
                             size_t errlen)
{
    char text[512];

    snprintf(text, sizeof(text),
             "{\"policies\": [{\"name\": \"p\", \"match\": {\"path\": "
             "\"/x\"}, \"limits\": [{\"requests\": 5, \"per\": \"1m\", "
             "\"algorithm\": \"%s\"%s}]}]}",
             word, with_burst ? ", \"burst\": 3" : "");
    return rl_conf_parse(text, strlen(text), err, errlen);
}

/* Every row of algo.h round-trips: its config word parses to its enum
 * value, which names the word again; its key suffix starts with its
 * letter; letters and script ids are unique; "burst" is accepted exactly
 * where the row says it applies; and the memory store decides it. */
START_TEST(algo_rows_round_trip)
{
    char err[256];
    int i;
    int j;

    for (i = 0; i < RL_ALGO_COUNT; i++) {
        const rl_algo_info_t *a = rl_algo_get((rl_algo_t)i);
        rl_limit_state_t st = {{0}, 0, 0};
        rl_limit_result_t r;
        const rl_limit_t *l;
        rl_conf_t *conf;

        ck_assert_ptr_nonnull(a);
        ck_assert_int_eq(a->algo, i);
        ck_assert_ptr_eq(rl_algo_by_name(a->name), a);
        ck_assert_ptr_nonnull(a->mem);
        conf = parse_algo(a->name, 0, err, sizeof(err));
        ck_assert_msg(conf != NULL, "%s: %s", a->name, err);
        l = &conf->policies[0].limits[0];
        ck_assert_int_eq(l->algo, a->algo);
        ck_assert_str_eq(rl_algo_name(l->algo), a->name);
        ck_assert_int_eq(l->suffix[0], a->letter);
        ck_assert_str_eq(l->suffix + 1, "1m");
        ck_assert(rl_algo_decide(l, 1, &st, T0, 1, &r));
        ck_assert_int_eq(r.remaining, 4);
        rl_conf_free(conf);
        for (j = 0; j < i; j++) {
            ck_assert_int_ne(rl_algo_get((rl_algo_t)j)->letter, a->letter);
            ck_assert_int_ne(rl_algo_get((rl_algo_t)j)->script_id,
                             a->script_id);
        }
        conf = parse_algo(a->name, 1, err, sizeof(err));
        ck_assert_int_eq(conf != NULL, a->has_burst);
        if (conf != NULL) {
            ck_assert_int_eq(conf->policies[0].limits[0].burst, 3);
        } else {
            ck_assert_str_eq(err, "policies[0].limits[0].burst: only applies "
                                  "to algorithm \"gcra\"");
        }
        rl_conf_free(conf);
    }
}
END_TEST

/* An algorithm value outside algo.h's rows is refused by every reader:
 * the lookups, the key suffix, the memory algorithms, the Redis command
 * (check and build) and the config's "algorithm" word. */
START_TEST(algo_out_of_range_refused)
{
    static const int bad[] = {RL_ALGO_COUNT, RL_ALGO_COUNT + 1000, -1};
    rl_store_op_t op;
    rl_redis_cmd_t cmd;
    rl_limit_result_t r;
    char buf[40];
    char err[256];
    size_t i;

    ck_assert_ptr_null(rl_algo_by_name("leaky_bucket"));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rl_limit_t l = mk((rl_algo_t)bad[i], 5, 1000, 5, 0);
        rl_limit_state_t st = {{0}, 0, 0};

        ck_assert_ptr_null(rl_algo_get((rl_algo_t)bad[i]));
        ck_assert_ptr_null(rl_algo_name((rl_algo_t)bad[i]));
        ck_assert_int_eq(
            rl_conf_limit_suffix(buf, sizeof(buf), "", (rl_algo_t)bad[i], 1000),
            -1);
        ck_assert_str_eq(buf, "");
        ck_assert(!rl_algo_decide(&l, 1, &st, T0, 1, &r));
        ck_assert_int_eq(st.expires_ms, 0);
        snprintf(l.suffix, sizeof(l.suffix), "x1s");
        op = (rl_store_op_t){"rl:{x}", 6, &l, 1, 1, NULL, 0, NULL, 0, 0};
        ck_assert_str_eq(rl_redis_cmd_check(&op), "bad_op");
        memset(&cmd, 0, sizeof(cmd));
        ck_assert_int_eq(rl_redis_cmd_build(&cmd,
                                            "0123456789012345678901234567890123"
                                            "456789",
                                            &op, RL_REDIS_CMD_DECIDE),
                         RL_ERR);
        ck_assert_int_eq(cmd.argc, 0);
        rl_redis_cmd_free(&cmd);
    }
    ck_assert_ptr_null(parse_algo("leaky_bucket", 0, err, sizeof(err)));
    ck_assert_str_eq(err, "policies[0].limits[0].algorithm: \"leaky_bucket\" "
                          "is not one of gcra, fixed_window, sliding_window");
}
END_TEST

/* The Redis command carries each row's script id, the number decide.lua
 * dispatches on (the wire protocol: 0 gcra, 1 fixed, 2 sliding). */
START_TEST(algo_script_ids_on_the_wire)
{
    static const struct {
        rl_algo_t algo;
        const char *id;
    } wire[] = {
        {RL_ALGO_GCRA, "0"},
        {RL_ALGO_FIXED_WINDOW, "1"},
        {RL_ALGO_SLIDING_WINDOW, "2"},
    };
    rl_redis_cmd_t cmd;
    size_t i;

    ck_assert_int_eq(RL_ALGO_COUNT, sizeof(wire) / sizeof(wire[0]));
    memset(&cmd, 0, sizeof(cmd));
    for (i = 0; i < sizeof(wire) / sizeof(wire[0]); i++) {
        rl_limit_t l = mk(wire[i].algo, 5, 1000, 5, 0);
        rl_store_op_t op = {"rl:{x}", 6, &l, 1, 1, NULL, 0, NULL, 0, 0};

        snprintf(l.suffix, sizeof(l.suffix), "x1s");
        ck_assert_int_eq(rl_redis_cmd_build(&cmd,
                                            "0123456789012345678901234567890123"
                                            "456789",
                                            &op, RL_REDIS_CMD_DECIDE),
                         RL_OK);
        /* FCALL fn 1 key request; the request (protocol v3): P, M, n,
         * cost (8 bytes), then the limit's algo byte */
        ck_assert_int_eq(cmd.argc, 5);
        ck_assert_int_eq((unsigned char)cmd.argv[4][11], wire[i].id[0] - '0');
    }
    rl_redis_cmd_free(&cmd);
}
END_TEST

/* Builds the suite. */
static Suite *algo_suite(void)
{
    Suite *s = suite_create("algo_mem");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, fixed_window_edges);
    tcase_add_test(tc, fixed_window_compares_index_not_expiry);
    tcase_add_test(tc, gcra_burst);
    tcase_add_test(tc, huge_cost_never_overflows);
    tcase_add_test(tc, gcra_refill_timing);
    tcase_add_test(tc, gcra_fractional_interval_keeps_burst);
    tcase_add_test(tc, gcra_one_per_5_minutes_burst_1);
    tcase_add_test(tc, one_per_2_minutes);
    tcase_add_test(tc, sliding_window_weighting);
    tcase_add_test(tc, sliding_window_retry_into_next_window);
    tcase_add_test(tc, block_set_and_expiry);
    tcase_add_test(tc, block_keeps_longer_own_retry);
    tcase_add_test(tc, multi_limit_all_or_nothing);
    tcase_add_test(tc, multi_limit_block_denies_all);
    tcase_add_test(tc, cost_above_one);
    tcase_add_test(tc, cost_zero_peek_writes_nothing);
    tcase_add_test(tc, cost_above_capacity_never_passes);
    tcase_add_test(tc, tenant_profile_first_second);
    tcase_add_test(tc, tenant_profile_gcra_sustained);
    tcase_add_test(tc, tenant_profile_fixed_minute_exhausted);
    tcase_add_test(tc, invalid_limit_denies);
    tcase_add_test(tc, algo_rows_round_trip);
    tcase_add_test(tc, algo_out_of_range_refused);
    tcase_add_test(tc, algo_script_ids_on_the_wire);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(algo_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
