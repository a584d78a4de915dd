/* Tests of redis_conn.c and store_redis.c against a real redis-server
 * (started per test by redis_helper) and, for replies a real server never
 * sends, against a tiny fake server on the test's own event loop.
 * Every wait is bounded, so a broken build fails instead of hanging. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "loop_helper.h"
#include "redis_conn.h"
#include "lua_scripts.h"
#include "redis_helper.h"
#include "limit_helper.h"
#include "reply_helper.h"
#include "store_redis.h"
#include "util.h"

#define PASSWORD "s3cret-pw"

static struct event_base *g_base;
static rl_test_redis_t g_srv;
static int g_seq; /* callback order across a test */

static const char *const debug_args[] = {"--enable-debug-command", "local",
                                         NULL};
static const char *const auth_args[] = {"--requirepass", PASSWORD, NULL};

/* ------------------------------------------------------------------ */
/* Loop helpers                                                        */
/* ------------------------------------------------------------------ */

/* Bounded loop runs on the test's base (loop_helper.c). */
#define run_until(pred, arg, ms) rl_test_run_until(g_base, (pred), (arg), (ms))
#define run_for(ms) rl_test_run_for(g_base, (ms))

typedef struct count_target {
    const int *count;
    int target;
} count_target_t;

static int pred_count(void *arg)
{
    const count_target_t *t = arg;
    return *t->count >= t->target;
}

/* Runs the loop until *count >= target (at most ms). */
static int wait_count(const int *count, int target, int ms)
{
    count_target_t t = {count, target};
    return run_until(pred_count, &t, ms);
}

static int pred_store_up(void *arg)
{
    return rl_store_connected(arg);
}

static int pred_store_down(void *arg)
{
    return !rl_store_connected(arg);
}

static int pred_conn_up(void *arg)
{
    return rl_redis_conn_connected(arg);
}

/* Sends cmd on a blocking connection without reading its reply (so a
 * DEBUG SLEEP can run while the test loop goes on), then gives the
 * server a moment to start it. */
static redisContext *send_no_wait(const char *cmd)
{
    redisContext *ctx = rl_test_redis_connect(&g_srv, NULL);
    int done = 0;
    struct timespec ts = {0, 30 * 1000000L};

    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(redisAppendCommand(ctx, cmd), REDIS_OK);
    while (!done) {
        ck_assert_int_eq(redisBufferWrite(ctx, &done), REDIS_OK);
    }
    nanosleep(&ts, NULL);
    return ctx;
}

/* Reads the reply of send_no_wait's command (blocks until it is done). */
static void finish_no_wait(redisContext *ctx)
{
    void *rep = NULL;

    ck_assert_int_eq(redisGetReply(ctx, &rep), REDIS_OK);
    freeReplyObject(rep);
    redisFree(ctx);
}

/* ------------------------------------------------------------------ */
/* Store helpers                                                       */
/* ------------------------------------------------------------------ */

typedef struct slot {
    int done;
    int calls;
    int seq;
    rl_store_result_t res;
} slot_t;

/* Store callback: records the result and its order. */
static void slot_cb(void *arg, const rl_store_result_t *res)
{
    slot_t *s = arg;

    s->calls++;
    s->done = 1;
    s->seq = ++g_seq;
    s->res = *res;
}

/* An op on base (not copied: the store must copy what it keeps). */
static rl_store_op_t mk_op(const char *base, const rl_limit_t *limits, int n,
                           int64_t cost)
{
    rl_store_op_t op;

    memset(&op, 0, sizeof(op));
    op.base_key = base;
    op.base_len = strlen(base);
    op.limits = limits;
    op.nlimits = n;
    op.cost = cost;
    return op;
}

/* A Redis store for g_srv (or port), connected unless expect_up is 0. */
static rl_store_t *new_store(int port, int timeout_ms, const char *user,
                             const char *password, int expect_up)
{
    rl_conf_store_t conf;
    rl_store_t *s;

    memset(&conf, 0, sizeof(conf));
    conf.type = RL_STORE_REDIS;
    conf.host = (char *)"127.0.0.1";
    conf.port = port;
    conf.timeout_ms = timeout_ms;
    conf.prefix = (char *)"rl";
    conf.username = (char *)user;
    conf.password = (char *)password;
    s = rl_store_redis_new(g_base, &conf);
    ck_assert_ptr_nonnull(s);
    if (expect_up) {
        ck_assert_msg(run_until(pred_store_up, s, 2000),
                      "store did not connect");
    }
    return s;
}

/* Decides op and waits (2 s at most) for exactly one result. */
static rl_store_result_t decide_wait(rl_store_t *s, const rl_store_op_t *op)
{
    slot_t sl;

    memset(&sl, 0, sizeof(sl));
    rl_store_decide(s, op, slot_cb, &sl);
    ck_assert_msg(wait_count(&sl.calls, 1, 2000), "no decide result");
    run_for(5);
    ck_assert_int_eq(sl.calls, 1);
    return sl.res;
}

/* Same for reset. */
static rl_store_result_t reset_wait(rl_store_t *s, const rl_store_op_t *op)
{
    slot_t sl;

    memset(&sl, 0, sizeof(sl));
    rl_store_reset(s, op, slot_cb, &sl);
    ck_assert_msg(wait_count(&sl.calls, 1, 2000), "no reset result");
    ck_assert_int_eq(sl.calls, 1);
    return sl.res;
}

/* Integer reply of a raw command on g_srv. */
static long long raw_int(const char *fmt, const char *arg)
{
    redisReply *r = rl_test_redis_cmd(&g_srv, NULL, fmt, arg);
    long long v;

    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

/* ------------------------------------------------------------------ */
/* Connection helpers                                                  */
/* ------------------------------------------------------------------ */

typedef struct creply {
    int calls;
    int type; /* -1 for NULL */
    char str[64];
    char err[32];
} creply_t;

/* Connection callback: records the reply type, text and error. */
static void creply_cb(void *arg, redisReply *r, const char *err)
{
    creply_t *c = arg;

    c->calls++;
    c->type = r != NULL ? r->type : -1;
    snprintf(c->str, sizeof(c->str), "%s",
             r != NULL && r->str != NULL ? r->str : "");
    snprintf(c->err, sizeof(c->err), "%s", err != NULL ? err : "");
}

static int g_disconnects;
static int g_connects;

/* on_disconnect hook: counts, and checks the state reads as down. */
static void hook_disconnect(void *arg, rl_redis_conn_t *c)
{
    g_disconnects++;
    /* The state must already read as down inside the hook. */
    ck_assert_int_eq(rl_redis_conn_connected(c), 0);
}

/* on_connect hook: counts. */
static void hook_connect(void *arg, rl_redis_conn_t *c)
{
    g_connects++;
}

/* A connection to port with the given command timeout, hooks counting. */
static rl_redis_conn_t *new_conn(int port, int timeout_ms, const char *password,
                                 int db)
{
    rl_redis_conn_opts_t o;
    rl_redis_conn_t *c;

    memset(&o, 0, sizeof(o));
    o.host = "localhost";
    o.port = port;
    o.timeout_ms = timeout_ms;
    o.password = password;
    o.db = db;
    o.on_connect = hook_connect;
    o.on_disconnect = hook_disconnect;
    c = rl_redis_conn_new(g_base, &o);
    ck_assert_ptr_nonnull(c);
    ck_assert_msg(run_until(pred_conn_up, c, 2000),
                  "connection did not come up");
    return c;
}

/* Sends a command given as NUL-terminated words. */
static int conn_cmd(rl_redis_conn_t *c, creply_t *out, int argc,
                    const char **argv)
{
    size_t lens[8];
    int i;

    for (i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    return rl_redis_conn_command(c, argc, argv, lens, creply_cb, out);
}

/* ------------------------------------------------------------------ */
/* Fixtures                                                            */
/* ------------------------------------------------------------------ */

/* Fixtures: a fresh event base, and a redis-server per test. */
static void setup_base(void)
{
    g_base = event_base_new();
    ck_assert_ptr_nonnull(g_base);
    g_seq = 0;
    g_disconnects = 0;
    g_connects = 0;
    memset(&g_srv, 0, sizeof(g_srv));
}

static void setup_redis(void)
{
    setup_base();
    ck_assert_int_eq(rl_test_redis_start(&g_srv, 0, debug_args), 0);
}

static void setup_redis_auth(void)
{
    setup_base();
    ck_assert_int_eq(rl_test_redis_start(&g_srv, 0, auth_args), 0);
}

static void teardown(void)
{
    rl_test_redis_cleanup(&g_srv);
    event_base_free(g_base);
    g_base = NULL;
}

/* ------------------------------------------------------------------ */
/* Store against a real Redis                                          */
/* ------------------------------------------------------------------ */

/* The library loads under its name (ratelimitd_ and 40 hex digits), which
 * is also its function's; a second load of it answers that it exists. */
START_TEST(test_library_name_matches_redis)
{
    redisReply *r;

    ck_assert_uint_eq(strlen(RL_LUA_FUNCTION), RL_LUA_FUNCTION_LEN);
    ck_assert_int_eq(strncmp(RL_LUA_FUNCTION, "ratelimitd_", 11), 0);
    ck_assert_uint_eq(strspn(RL_LUA_FUNCTION + 11, "0123456789abcdef"), 40);
    r = rl_test_redis_cmd(&g_srv, NULL, "FUNCTION FLUSH");
    freeReplyObject(r);
    r = rl_test_redis_cmd(&g_srv, NULL, "FUNCTION LOAD %s", RL_LUA_DECIDE);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(r->str, RL_LUA_FUNCTION);
    freeReplyObject(r);
    r = rl_test_redis_cmd(&g_srv, NULL, "FUNCTION LOAD %s", RL_LUA_DECIDE);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    ck_assert_ptr_nonnull(strstr(r->str, RL_LUA_FUNCTION));
    ck_assert_ptr_nonnull(strstr(r->str, "already exists"));
    freeReplyObject(r);
}
END_TEST

START_TEST(test_fresh_key_counts_down_then_denies)
{
    rl_store_t *s = new_store(g_srv.port, 500, NULL, NULL, 1);
    rl_limit_t l = rl_test_limit(RL_ALGO_GCRA, 3, 3600000, 3, 0, "g1h");
    rl_store_op_t op = mk_op("rl:{count}", &l, 1, 1);
    rl_store_op_t peek = mk_op("rl:{count}", &l, 1, 0);
    int64_t expect_remaining[3] = {2, 1, 0};
    rl_store_result_t r;
    int i;

    for (i = 0; i < 3; i++) {
        r = decide_wait(s, &op);
        ck_assert_int_eq(r.status, RL_OK);
        ck_assert_int_eq(r.allowed, 1);
        ck_assert_int_eq(r.limits[0].allowed, 1);
        ck_assert_int_eq(r.limits[0].remaining, expect_remaining[i]);
        ck_assert_int_eq(r.limits[0].retry_after_ms, 0);
        ck_assert(llabs((long long)(r.now_ms - rl_now_ms())) < 10000);
    }
    r = decide_wait(s, &op);
    ck_assert_int_eq(r.status, RL_OK);
    ck_assert_int_eq(r.allowed, 0);
    ck_assert_int_eq(r.limits[0].allowed, 0);
    ck_assert_int_eq(r.limits[0].remaining, 0);
    ck_assert(r.limits[0].retry_after_ms > 1100000 &&
              r.limits[0].retry_after_ms <= 1200000);
    ck_assert_int_eq(r.limits[0].blocked, 0);
    /* A peek reports without consuming. */
    r = decide_wait(s, &peek);
    ck_assert_int_eq(r.status, RL_OK);
    ck_assert_int_eq(r.limits[0].remaining, 0);
    rl_store_free(s);
}
END_TEST

/* The GCRA state of key: the TAT in microseconds, rebuilt from its value
 * (0..999) and its expiry (PEXPIRETIME, milliseconds). */
static long long gcra_tat(const char *key)
{
    redisReply *r = rl_test_redis_cmd(&g_srv, NULL, "GET %s", key);
    long long exp_ms = raw_int("PEXPIRETIME %s", key);
    char *end;
    long long v;

    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    v = strtoll(r->str, &end, 10);
    ck_assert_msg(*end == '\0' && r->len >= 1 && r->len <= 3, "value %s",
                  r->str);
    ck_assert(v >= 0 && v <= 999);
    freeReplyObject(r);
    ck_assert(exp_ms > 0);
    return exp_ms * 1000 - v;
}

/* Whether ms = ceil((until_us - now_us) / 1000) for some now_us inside
 * millisecond now_ms (the script's clock has microseconds). */
static int in_ceil_ms(int64_t ms, long long until_us, int64_t now_ms)
{
    long long d = until_us - now_ms * 1000;

    return ms >= d / 1000 && ms <= (d + 999) / 1000;
}

/* GCRA keeps its TAT in the key's expiry, exact to the microsecond:
 * 7 per hour is T = 514,285,715 us, not a whole number of milliseconds. */
START_TEST(test_gcra_state_in_expiry)
{
    rl_store_t *s = new_store(g_srv.port, 500, NULL, NULL, 1);
    rl_limit_t l = rl_test_limit(RL_ALGO_GCRA, 7, 3600000, 2, 0, "g1h");
    rl_store_op_t op = mk_op("rl:{tat}", &l, 1, 1);
    rl_store_op_t peek = mk_op("rl:{tat}", &l, 1, 0);
    const long long t = 514285715;
    rl_store_result_t r;
    long long tat1;
    long long tat2;
    long long now_ms;

    r = decide_wait(s, &op);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_int_eq(r.limits[0].remaining, 1);
    now_ms = r.now_ms;
    /* Fresh bucket: TAT = now_us + T, now_us within now_ms's millisecond. */
    tat1 = gcra_tat("rl:{tat}:lg1h");
    ck_assert(tat1 >= now_ms * 1000 + t && tat1 <= now_ms * 1000 + 999 + t);
    ck_assert(raw_int("PEXPIRETIME %s", "rl:{tat}:lg1h") > now_ms);
    ck_assert_int_eq(raw_int("PEXPIRETIME %s", "rl:{tat}:lg1h"),
                     (tat1 + 999) / 1000);
    /* A peek reads the TAT back and writes nothing. */
    r = decide_wait(s, &peek);
    ck_assert_int_eq(r.limits[0].remaining, 1);
    ck_assert_int_eq(gcra_tat("rl:{tat}:lg1h"), tat1);
    /* The second request moves TAT by exactly T and resets at TAT; the
     * third is refused with retry until TAT - T. */
    r = decide_wait(s, &op);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_int_eq(r.limits[0].remaining, 0);
    tat2 = gcra_tat("rl:{tat}:lg1h");
    ck_assert_int_eq(tat2, tat1 + t);
    ck_assert(in_ceil_ms(r.limits[0].reset_after_ms, tat2, r.now_ms));
    r = decide_wait(s, &op);
    ck_assert_int_eq(r.allowed, 0);
    ck_assert_int_eq(r.limits[0].remaining, 0);
    ck_assert(in_ceil_ms(r.limits[0].retry_after_ms, tat2 - t, r.now_ms));
    ck_assert_int_eq(gcra_tat("rl:{tat}:lg1h"), tat2);
    rl_store_free(s);
}
END_TEST

/* The algorithm numbers reach the script: each algorithm has its own
 * exact reset time after one request in a 1 h period. */
START_TEST(test_algorithms_reach_the_script)
{
    rl_store_t *s = new_store(g_srv.port, 500, NULL, NULL, 1);
    rl_limit_t g = rl_test_limit(RL_ALGO_GCRA, 2, 3600000, 2, 0, "g1h");
    rl_limit_t f = rl_test_limit(RL_ALGO_FIXED_WINDOW, 2, 3600000, 2, 0, "f1h");
    rl_limit_t w =
        rl_test_limit(RL_ALGO_SLIDING_WINDOW, 2, 3600000, 2, 0, "s1h");
    rl_store_op_t og = mk_op("rl:{algos}", &g, 1, 1);
    rl_store_op_t of = mk_op("rl:{algos}", &f, 1, 1);
    rl_store_op_t ow = mk_op("rl:{algos}", &w, 1, 1);
    rl_store_result_t r;

    r = decide_wait(s, &og);
    ck_assert_int_eq(r.status, RL_OK);
    ck_assert_int_eq(r.limits[0].reset_after_ms, 1800000);
    r = decide_wait(s, &of);
    ck_assert_int_eq(r.status, RL_OK);
    ck_assert_int_eq(r.limits[0].reset_after_ms, 3600000 - r.now_ms % 3600000);
    r = decide_wait(s, &ow);
    ck_assert_int_eq(r.status, RL_OK);
    ck_assert_int_eq(r.limits[0].reset_after_ms,
                     2 * 3600000 - r.now_ms % 3600000);
    ck_assert_int_eq(r.limits[0].remaining, 1);
    rl_store_free(s);
}
END_TEST

START_TEST(test_multi_limit_all_or_nothing)
{
    rl_store_t *s = new_store(g_srv.port, 500, NULL, NULL, 1);
    rl_limit_t lims[2] = {
        rl_test_limit(RL_ALGO_FIXED_WINDOW, 5, 86400000, 5, 0, "f1d"),
        rl_test_limit(RL_ALGO_GCRA, 2, 3600000, 2, 0, "g1h"),
    };
    rl_store_op_t both = mk_op("rl:{multi}", lims, 2, 1);
    rl_store_op_t first = mk_op("rl:{multi}", lims, 1, 1);
    rl_store_result_t r;

    r = decide_wait(s, &both);
    ck_assert_int_eq(r.allowed, 1);
    r = decide_wait(s, &both);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_int_eq(r.limits[0].remaining, 3);
    ck_assert_int_eq(r.limits[1].remaining, 0);
    r = decide_wait(s, &both);
    ck_assert_int_eq(r.status, RL_OK);
    ck_assert_int_eq(r.allowed, 0);
    ck_assert_int_eq(r.limits[0].allowed, 1);
    ck_assert_int_eq(r.limits[1].allowed, 0);
    /* The denied request took nothing from the daily limit: 2 used, so
     * one more leaves 2 (it would leave 1 had the denial consumed). */
    r = decide_wait(s, &first);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_int_eq(r.limits[0].remaining, 2);
    rl_store_free(s);
}
END_TEST

#define PIPELINED 200

START_TEST(test_pipelining_in_order_exact)
{
    rl_store_t *s = new_store(g_srv.port, 2000, NULL, NULL, 1);
    rl_limit_t l = rl_test_limit(RL_ALGO_GCRA, 50, 3600000, 50, 0, "g1h");
    slot_t *slots = calloc(PIPELINED, sizeof(*slots));
    int done = 0;
    int admitted = 0;
    int i;

    ck_assert_ptr_nonnull(slots);
    for (i = 0; i < PIPELINED; i++) {
        char base[32];
        rl_store_op_t op;
        /* The key buffer dies here: the store must have copied it. */
        snprintf(base, sizeof(base), "rl:{pipe}");
        op = mk_op(base, &l, 1, 1);
        rl_store_decide(s, &op, slot_cb, &slots[i]);
        memset(base, 'x', sizeof(base) - 1);
    }
    ck_assert_int_eq(g_seq, 0); /* nothing answered before the loop ran */
    for (i = 0; i < 500 && done < PIPELINED; i++) {
        int j;
        run_for(10);
        for (done = 0, j = 0; j < PIPELINED; j++) {
            done += slots[j].done;
        }
    }
    ck_assert_int_eq(done, PIPELINED);
    for (i = 0; i < PIPELINED; i++) {
        ck_assert_int_eq(slots[i].calls, 1);
        ck_assert_int_eq(slots[i].seq, i + 1);
        ck_assert_int_eq(slots[i].res.status, RL_OK);
        ck_assert_int_eq(slots[i].res.allowed, i < 50);
        admitted += slots[i].res.allowed;
    }
    ck_assert_int_eq(admitted, 50);
    free(slots);
    rl_store_free(s);
}
END_TEST

/* Calls of FCALL since the last CONFIG RESETSTAT (INFO commandstats). */
static long long fcall_calls(void)
{
    redisReply *r = rl_test_redis_cmd(&g_srv, NULL, "INFO commandstats");
    const char *p;
    long long v = 0;

    ck_assert_ptr_nonnull(r);
    p = strstr(r->str, "cmdstat_fcall:calls=");
    if (p != NULL) {
        v = strtoll(p + strlen("cmdstat_fcall:calls="), NULL, 10);
    }
    freeReplyObject(r);
    return v;
}

/* Decisions started in one loop pass go out as batched calls of at most
 * 64 (150 -> 3 FCALL), each still decided atomically and in order: a
 * fixed window of 10 admits exactly the first ten, a cost-3 request
 * spends three, a peek spends nothing; the batch after a FUNCTION FLUSH
 * is reloaded and retried whole. */
START_TEST(test_batched_decisions_in_order)
{
    rl_store_t *s = new_store(g_srv.port, 2000, NULL, NULL, 1);
    rl_limit_t fw =
        rl_test_limit(RL_ALGO_FIXED_WINDOW, 10, 3600000, 10, 0, "f1h");
    rl_limit_t gc = rl_test_limit(RL_ALGO_GCRA, 1000, 3600000, 1000, 0, "g1h");
    enum { N = 150 };
    slot_t *slots = calloc(N, sizeof(*slots));
    redisReply *rep;
    int round;
    int i;

    ck_assert_ptr_nonnull(slots);
    ck_assert_msg(run_until(pred_store_up, s, 2000), "store never connected");
    for (round = 0; round < 2; round++) {
        int done = 0;

        memset(slots, 0, N * sizeof(*slots));
        rep = rl_test_redis_cmd(
            &g_srv, NULL, round == 0 ? "CONFIG RESETSTAT" : "FUNCTION FLUSH");
        ck_assert_ptr_nonnull(rep);
        freeReplyObject(rep);
        if (round == 1) {
            rep = rl_test_redis_cmd(&g_srv, NULL, "CONFIG RESETSTAT");
            freeReplyObject(rep);
        }
        for (i = 0; i < N; i++) {
            char base[32];
            rl_store_op_t op;

            /* Even: one shared fixed window; odd: a GCRA key each, every
             * 7th of them a peek, every 5th a cost of 3. */
            if (i % 2 == 0) {
                snprintf(base, sizeof(base), "rl:{batch%d}", round);
                op = mk_op(base, &fw, 1, 1);
            } else {
                snprintf(base, sizeof(base), "rl:{batch%d-%d}", round, i);
                op = mk_op(base, &gc, 1, i % 7 == 0 ? 0 : i % 5 == 0 ? 3 : 1);
            }
            rl_store_decide(s, &op, slot_cb, &slots[i]);
        }
        for (i = 0; i < 300 && done < N; i++) {
            int j;
            run_for(10);
            for (done = 0, j = 0; j < N; j++) {
                done += slots[j].done;
            }
        }
        ck_assert_int_eq(done, N);
        for (i = 0; i < N; i++) {
            ck_assert_int_eq(slots[i].calls, 1);
            ck_assert_int_eq(slots[i].res.status, RL_OK);
            if (i > 0) {
                ck_assert_int_gt(slots[i].seq, slots[i - 1].seq);
            }
            if (i % 2 == 0) {
                ck_assert_int_eq(slots[i].res.allowed, i / 2 < 10);
                ck_assert_int_eq(slots[i].res.limits[0].remaining,
                                 i / 2 < 10 ? 9 - i / 2 : 0);
            } else {
                ck_assert_int_eq(slots[i].res.allowed, 1);
                ck_assert_int_eq(slots[i].res.limits[0].remaining,
                                 i % 7 == 0   ? 1000
                                 : i % 5 == 0 ? 997
                                              : 999);
            }
        }
        /* 150 decisions in 64 + 64 + 22. After the flush all three are
         * already on the wire when the first "function not found" comes
         * back: each is answered so, then retried once. */
        ck_assert_int_eq(fcall_calls(), round == 0 ? 3 : 6);
    }
    free(slots);
    rl_store_free(s);
}
END_TEST

/* FUNCTION FLUSH between two decisions: the second is answered that the
 * function is missing, reloads the library and is decided on the state
 * the first left; the library is back. */
START_TEST(test_missing_library_reload_and_retry)
{
    rl_store_t *s = new_store(g_srv.port, 500, NULL, NULL, 1);
    rl_limit_t l = rl_test_limit(RL_ALGO_GCRA, 10, 60000, 10, 0, "g1m");
    rl_store_op_t op = mk_op("rl:{noscript}", &l, 1, 1);
    rl_store_result_t r;
    redisReply *rep;

    r = decide_wait(s, &op);
    ck_assert_int_eq(r.status, RL_OK);
    rep = rl_test_redis_cmd(&g_srv, NULL, "FUNCTION FLUSH");
    ck_assert_ptr_nonnull(rep);
    freeReplyObject(rep);
    ck_assert_int_eq(raw_int("EXISTS %s", "rl:{noscript}:lg1m"), 1);
    r = decide_wait(s, &op);
    ck_assert_int_eq(r.status, RL_OK);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_int_eq(r.limits[0].remaining, 8);
    rep = rl_test_redis_cmd(&g_srv, NULL, "FUNCTION LIST LIBRARYNAME %s",
                            RL_LUA_FUNCTION);
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(rep->elements, 1);
    freeReplyObject(rep);
    rl_store_free(s);
}
END_TEST

START_TEST(test_reset_clears_state_and_block)
{
    rl_store_t *s = new_store(g_srv.port, 500, NULL, NULL, 1);
    rl_limit_t l =
        rl_test_limit(RL_ALGO_FIXED_WINDOW, 1, 86400000, 1, 600000, "f1d");
    rl_store_op_t op = mk_op("rl:{reset}", &l, 1, 1);
    rl_store_result_t r;

    r = decide_wait(s, &op);
    ck_assert_int_eq(r.allowed, 1);
    r = decide_wait(s, &op);
    ck_assert_int_eq(r.allowed, 0);
    ck_assert_int_eq(r.limits[0].blocked, 1);
    ck_assert(r.limits[0].retry_after_ms >= 600000);
    /* Keys are named as store.h says: the part's key holds the state and
     * the block. */
    ck_assert_int_eq(raw_int("EXISTS %s", "rl:{reset}:lf1d"), 1);
    r = reset_wait(s, &op);
    ck_assert_int_eq(r.status, RL_OK);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_int_eq(raw_int("EXISTS %s", "rl:{reset}:lf1d"), 0);
    r = decide_wait(s, &op);
    ck_assert_int_eq(r.allowed, 1);
    rl_store_free(s);
}
END_TEST

START_TEST(test_bad_ops_fail_at_once)
{
    rl_store_t *s = new_store(g_srv.port, 500, NULL, NULL, 1);
    rl_limit_t l = rl_test_limit(RL_ALGO_GCRA, 1, 1000, 1, 0, "g1s");
    char *big = malloc(4000);
    rl_store_op_t op;
    slot_t sl;

    ck_assert_ptr_nonnull(big);
    memset(big, 'k', 3999);
    big[3999] = '\0';
    op = mk_op(big, &l, 1, 1);
    memset(&sl, 0, sizeof(sl));
    rl_store_decide(s, &op, slot_cb, &sl);
    ck_assert_int_eq(sl.calls, 1);
    ck_assert_int_eq(sl.res.status, RL_ERR);
    ck_assert_str_eq(sl.res.error, "bad_op");
    op = mk_op("rl:{x}", &l, 0, 1);
    memset(&sl, 0, sizeof(sl));
    rl_store_decide(s, &op, slot_cb, &sl);
    ck_assert_int_eq(sl.calls, 1);
    ck_assert_str_eq(sl.res.error, "bad_op");
    free(big);
    rl_store_free(s);
}
END_TEST

START_TEST(test_store_timeout_then_works)
{
    rl_store_t *s = new_store(g_srv.port, 50, NULL, NULL, 1);
    rl_limit_t la = rl_test_limit(RL_ALGO_GCRA, 3, 3600000, 3, 0, "g1h");
    rl_limit_t lb = rl_test_limit(RL_ALGO_GCRA, 7, 3600000, 7, 0, "g1h");
    rl_store_op_t warm = mk_op("rl:{warm}", &la, 1, 1);
    rl_store_op_t oa = mk_op("rl:{late}", &la, 1, 1);
    rl_store_op_t ob = mk_op("rl:{next}", &lb, 1, 1);
    redisContext *sleeper;
    rl_store_result_t r;
    slot_t sa;
    int64_t t0;
    int64_t took_ms;

    r = decide_wait(s, &warm);
    ck_assert_int_eq(r.status, RL_OK);
    sleeper = send_no_wait("DEBUG SLEEP 0.3");
    memset(&sa, 0, sizeof(sa));
    t0 = rl_mono_us();
    rl_store_decide(s, &oa, slot_cb, &sa);
    ck_assert(wait_count(&sa.calls, 1, 1000));
    took_ms = (rl_mono_us() - t0) / 1000;
    ck_assert_int_eq(sa.res.status, RL_ERR);
    ck_assert_str_eq(sa.res.error, "timeout");
    ck_assert_msg(took_ms >= 45 && took_ms < 150, "timeout took %lld ms",
                  (long long)took_ms);
    finish_no_wait(sleeper);
    /* The late reply ({..., remaining 2}) must be dropped: this decide
     * gets its own reply (remaining 6). */
    r = decide_wait(s, &ob);
    ck_assert_int_eq(r.status, RL_OK);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_int_eq(r.limits[0].remaining, 6);
    ck_assert_int_eq(sa.calls, 1);
    ck_assert(rl_store_connected(s));
    rl_store_free(s);
}
END_TEST

START_TEST(test_disconnect_and_reconnect)
{
    rl_store_t *s = new_store(g_srv.port, 200, NULL, NULL, 1);
    rl_redis_conn_t *c = new_conn(g_srv.port, 10000, NULL, 0);
    rl_limit_t l = rl_test_limit(RL_ALGO_GCRA, 5, 3600000, 5, 0, "g1h");
    rl_store_op_t op = mk_op("rl:{restart}", &l, 1, 1);
    const char *blpop[] = {"BLPOP", "rl:{restart}:list", "0"};
    const char *ping[] = {"PING"};
    rl_redis_conn_stats_t st;
    creply_t pending;
    creply_t now;
    rl_store_result_t r;
    slot_t sl;
    int64_t t0;

    r = decide_wait(s, &op);
    ck_assert_int_eq(r.status, RL_OK);
    ck_assert_int_eq(r.limits[0].remaining, 4);
    memset(&pending, 0, sizeof(pending));
    ck_assert_int_eq(conn_cmd(c, &pending, 3, blpop), 0);
    run_for(20);
    ck_assert_int_eq(pending.calls, 0);

    rl_test_redis_stop(&g_srv);
    ck_assert_msg(wait_count(&pending.calls, 1, 2000),
                  "pending command not failed");
    ck_assert_int_eq(pending.type, -1);
    ck_assert_str_eq(pending.err, "disconnected");
    ck_assert(run_until(pred_store_down, s, 2000));
    ck_assert_int_eq(rl_redis_conn_connected(c), 0);
    ck_assert_int_eq(g_disconnects, 1);

    /* While down, commands fail at once. */
    memset(&now, 0, sizeof(now));
    ck_assert_int_eq(conn_cmd(c, &now, 1, ping), -1);
    ck_assert_int_eq(now.calls, 1);
    ck_assert_str_eq(now.err, "disconnected");
    memset(&sl, 0, sizeof(sl));
    rl_store_decide(s, &op, slot_cb, &sl);
    ck_assert(wait_count(&sl.calls, 1, 500));
    ck_assert_int_eq(sl.res.status, RL_ERR);
    ck_assert_str_eq(sl.res.error, "disconnected");
    run_for(300); /* some failed attempts: the backoff grows */
    ck_assert_int_eq(pending.calls, 1);

    ck_assert_int_eq(rl_test_redis_start(&g_srv, g_srv.port, debug_args), 0);
    t0 = rl_mono_us();
    ck_assert_msg(run_until(pred_store_up, s, 2000), "store did not reconnect");
    ck_assert_msg(run_until(pred_conn_up, c, 2000), "conn did not reconnect");
    ck_assert((rl_mono_us() - t0) / 1000 < 2000);
    /* The new server has neither the script nor the old state. */
    r = decide_wait(s, &op);
    ck_assert_int_eq(r.status, RL_OK);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_int_eq(r.limits[0].remaining, 4);
    memset(&now, 0, sizeof(now));
    ck_assert_int_eq(conn_cmd(c, &now, 1, ping), 0);
    ck_assert(wait_count(&now.calls, 1, 1000));
    ck_assert_str_eq(now.str, "PONG");
    rl_redis_conn_get_stats(c, &st);
    ck_assert_int_eq(st.reconnects, 1);
    ck_assert_int_eq(g_connects, 2);
    rl_redis_conn_free(c);
    rl_store_free(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Connection against a real Redis                                     */
/* ------------------------------------------------------------------ */

START_TEST(test_conn_late_reply_is_dropped)
{
    rl_redis_conn_t *c = new_conn(g_srv.port, 200, NULL, 0);
    const char *echo_a[] = {"ECHO", "a"};
    const char *echo_b[] = {"ECHO", "b"};
    redisContext *sleeper;
    rl_redis_conn_stats_t st;
    creply_t a;
    creply_t b;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    sleeper = send_no_wait("DEBUG SLEEP 0.3");
    ck_assert_int_eq(conn_cmd(c, &a, 2, echo_a), 0);
    ck_assert(wait_count(&a.calls, 1, 1000));
    ck_assert_str_eq(a.err, "timeout");
    /* Sent while the server still sleeps: its reply comes right after
     * the late "a", which must not be taken for it. */
    ck_assert_int_eq(conn_cmd(c, &b, 2, echo_b), 0);
    ck_assert(wait_count(&b.calls, 1, 1000));
    ck_assert_str_eq(b.err, "");
    ck_assert_int_eq(b.type, REDIS_REPLY_STRING);
    ck_assert_str_eq(b.str, "b");
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(g_disconnects, 0);
    rl_redis_conn_get_stats(c, &st);
    ck_assert_int_eq(st.timeouts, 1);
    ck_assert_int_eq(st.commands, 2);
    finish_no_wait(sleeper);
    rl_redis_conn_free(c);
}
END_TEST

#define FLOOD 1001

START_TEST(test_conn_too_many_abandoned_reconnects)
{
    rl_redis_conn_t *c = new_conn(g_srv.port, 50, NULL, 0);
    const char *ping[] = {"PING"};
    creply_t *rs = calloc(FLOOD, sizeof(*rs));
    redisContext *sleeper;
    creply_t after;
    int64_t t0;
    int i;

    ck_assert_ptr_nonnull(rs);
    sleeper = send_no_wait("DEBUG SLEEP 0.6");
    t0 = rl_mono_us();
    for (i = 0; i < FLOOD; i++) {
        ck_assert_int_eq(conn_cmd(c, &rs[i], 1, ping), 0);
    }
    ck_assert_msg(wait_count(&g_disconnects, 1, 400), "hung connection kept");
    ck_assert((rl_mono_us() - t0) / 1000 < 400);
    for (i = 0; i < FLOOD; i++) {
        ck_assert_int_eq(rs[i].calls, 1);
        ck_assert_str_eq(rs[i].err, "timeout");
    }
    finish_no_wait(sleeper);
    ck_assert(run_until(pred_conn_up, c, 2000));
    memset(&after, 0, sizeof(after));
    ck_assert_int_eq(conn_cmd(c, &after, 1, ping), 0);
    ck_assert(wait_count(&after.calls, 1, 1000));
    ck_assert_str_eq(after.str, "PONG");
    for (i = 0; i < FLOOD; i++) {
        ck_assert_int_eq(rs[i].calls, 1);
    }
    free(rs);
    rl_redis_conn_free(c);
}
END_TEST

START_TEST(test_conn_old_abandoned_reconnects)
{
    rl_redis_conn_t *c = new_conn(g_srv.port, 50, NULL, 0);
    const char *ping[] = {"PING"};
    redisContext *sleeper;
    creply_t one;
    int64_t t0;
    int64_t took_ms;

    memset(&one, 0, sizeof(one));
    sleeper = send_no_wait("DEBUG SLEEP 1.6");
    t0 = rl_mono_us();
    ck_assert_int_eq(conn_cmd(c, &one, 1, ping), 0);
    ck_assert(wait_count(&one.calls, 1, 500));
    ck_assert_str_eq(one.err, "timeout");
    ck_assert_int_eq(g_disconnects, 0);
    ck_assert_msg(wait_count(&g_disconnects, 1, 1500),
                  "old abandoned command kept");
    took_ms = (rl_mono_us() - t0) / 1000;
    ck_assert_msg(took_ms >= 900 && took_ms < 1400, "closed after %lld ms",
                  (long long)took_ms);
    ck_assert_int_eq(one.calls, 1);
    finish_no_wait(sleeper);
    rl_redis_conn_free(c);
}
END_TEST

/* A server that accepts TCP but does not answer is not "connected". */
START_TEST(test_conn_ready_only_when_server_answers)
{
    rl_redis_conn_opts_t o;
    rl_redis_conn_t *c;
    redisContext *sleeper;
    int i;

    memset(&o, 0, sizeof(o));
    o.host = "127.0.0.1";
    o.port = g_srv.port;
    o.timeout_ms = 50;
    sleeper = send_no_wait("DEBUG SLEEP 0.5");
    c = rl_redis_conn_new(g_base, &o);
    ck_assert_ptr_nonnull(c);
    for (i = 0; i < 30; i++) {
        run_for(10);
        ck_assert_int_eq(rl_redis_conn_connected(c), 0);
    }
    finish_no_wait(sleeper);
    ck_assert(run_until(pred_conn_up, c, 2000));
    rl_redis_conn_free(c);
}
END_TEST

/* Callbacks may issue commands; freeing fails what is pending. */
static rl_redis_conn_t *g_chain_conn;
static creply_t g_chained;

/* Issues a second command from inside the first one's callback. */
static void chain_cb(void *arg, redisReply *r, const char *err)
{
    const char *echo[] = {"ECHO", "chained"};

    creply_cb(arg, r, err);
    conn_cmd(g_chain_conn, &g_chained, 2, echo);
}

START_TEST(test_conn_callbacks_reenter_and_free_fails_pending)
{
    rl_redis_conn_t *c = new_conn(g_srv.port, 1000, NULL, 0);
    const char *ping[] = {"PING"};
    const char *blpop[] = {"BLPOP", "rl:{free}:list", "0"};
    size_t lens[1] = {4};
    creply_t first;
    creply_t blocked;

    g_chain_conn = c;
    memset(&first, 0, sizeof(first));
    memset(&g_chained, 0, sizeof(g_chained));
    ck_assert_int_eq(rl_redis_conn_command(c, 1, ping, lens, chain_cb, &first),
                     0);
    ck_assert(wait_count(&g_chained.calls, 1, 1000));
    ck_assert_str_eq(first.str, "PONG");
    ck_assert_str_eq(g_chained.str, "chained");
    memset(&blocked, 0, sizeof(blocked));
    ck_assert_int_eq(conn_cmd(c, &blocked, 3, blpop), 0);
    run_for(20);
    rl_redis_conn_free(c);
    ck_assert_int_eq(blocked.calls, 1);
    ck_assert_str_eq(blocked.err, "disconnected");
}
END_TEST

START_TEST(test_conn_select_db)
{
    rl_redis_conn_t *c = new_conn(g_srv.port, 1000, NULL, 3);
    const char *set[] = {"SET", "rl:{db}", "three"};
    redisContext *ctx;
    redisReply *r;
    creply_t ok;

    memset(&ok, 0, sizeof(ok));
    ck_assert_int_eq(conn_cmd(c, &ok, 3, set), 0);
    ck_assert(wait_count(&ok.calls, 1, 1000));
    ck_assert_str_eq(ok.str, "OK");
    ctx = rl_test_redis_connect(&g_srv, NULL);
    ck_assert_ptr_nonnull(ctx);
    r = redisCommand(ctx, "EXISTS rl:{db}");
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    r = redisCommand(ctx, "SELECT 3");
    freeReplyObject(r);
    r = redisCommand(ctx, "GET rl:{db}");
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(r->str, "three");
    freeReplyObject(r);
    redisFree(ctx);
    rl_redis_conn_free(c);
}
END_TEST

START_TEST(test_conn_rejects_hostnames)
{
    rl_redis_conn_opts_t o;

    memset(&o, 0, sizeof(o));
    o.host = "redis.example.internal";
    o.port = 6379;
    o.timeout_ms = 50;
    ck_assert_ptr_null(rl_redis_conn_new(g_base, &o));
    o.host = "::1";
    rl_redis_conn_free(rl_redis_conn_new(g_base, &o));
    o.host = "[::1]";
    {
        rl_redis_conn_t *c = rl_redis_conn_new(g_base, &o);
        ck_assert_ptr_nonnull(c);
        rl_redis_conn_free(c);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* AUTH                                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_auth_good_password)
{
    rl_store_t *s = new_store(g_srv.port, 500, NULL, PASSWORD, 1);
    rl_store_t *su = new_store(g_srv.port, 500, "default", PASSWORD, 1);
    rl_limit_t l = rl_test_limit(RL_ALGO_GCRA, 2, 60000, 2, 0, "g1m");
    rl_store_op_t op = mk_op("rl:{auth}", &l, 1, 1);
    rl_store_result_t r;

    r = decide_wait(s, &op);
    ck_assert_int_eq(r.status, RL_OK);
    ck_assert_int_eq(r.allowed, 1);
    r = decide_wait(su, &op);
    ck_assert_int_eq(r.status, RL_OK);
    ck_assert_int_eq(r.limits[0].remaining, 0);
    rl_store_free(su);
    rl_store_free(s);
}
END_TEST

START_TEST(test_auth_bad_password_never_connects)
{
    rl_store_t *s = new_store(g_srv.port, 500, NULL, "wrong-password", 0);
    rl_limit_t l = rl_test_limit(RL_ALGO_GCRA, 2, 60000, 2, 0, "g1m");
    rl_store_op_t op = mk_op("rl:{auth}", &l, 1, 1);
    slot_t sl;
    int i;

    for (i = 0; i < 100; i++) {
        run_for(10);
        ck_assert_int_eq(rl_store_connected(s), 0);
    }
    memset(&sl, 0, sizeof(sl));
    rl_store_decide(s, &op, slot_cb, &sl);
    ck_assert_int_eq(sl.calls, 1);
    ck_assert_str_eq(sl.res.error, "disconnected");
    rl_store_free(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* A fake server for replies a real Redis does not send                */
/* ------------------------------------------------------------------ */

#define FAKE_CLIENTS 16

typedef struct fake_client {
    struct bufferevent *bev;
    redisReader *reader;
} fake_client_t;

typedef struct fake {
    struct evconnlistener *lis;
    int port;
    const char *fcall_reply; /* raw RESP sent for each FCALL */
    int fcall;
    int function_load;
    fake_client_t clients[FAKE_CLIENTS];
    int nclients;
} fake_t;

static fake_t g_fake;

/* Fake server: answers FCALL with the canned reply, FUNCTION LOAD with
 * the library's name, anything else with +OK. */
static void fake_read(struct bufferevent *bev, void *arg)
{
    fake_client_t *fc = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char buf[4096];
    int n;
    void *req;

    while ((n = evbuffer_remove(in, buf, sizeof(buf))) > 0) {
        redisReaderFeed(fc->reader, buf, (size_t)n);
    }
    while (redisReaderGetReply(fc->reader, &req) == REDIS_OK && req != NULL) {
        redisReply *r = req;
        const char *name = r->element[0]->str;
        if (strcasecmp(name, "FCALL") == 0) {
            g_fake.fcall++;
            bufferevent_write(bev, g_fake.fcall_reply,
                              rl_test_resp_len(g_fake.fcall_reply));
        } else if (strcasecmp(name, "FUNCTION") == 0) {
            g_fake.function_load++;
            evbuffer_add_printf(bufferevent_get_output(bev), "$%d\r\n%s\r\n",
                                RL_LUA_FUNCTION_LEN, RL_LUA_FUNCTION);
        } else {
            bufferevent_write(bev, "+OK\r\n", 5);
        }
        freeReplyObject(r);
    }
}

/* Fake server: one bufferevent and one request reader per client. */
static void fake_accept(struct evconnlistener *lis, evutil_socket_t fd,
                        struct sockaddr *sa, int salen, void *arg)
{
    fake_client_t *fc;

    if (g_fake.nclients == FAKE_CLIENTS) {
        evutil_closesocket(fd);
        return;
    }
    fc = &g_fake.clients[g_fake.nclients++];
    fc->reader = redisReaderCreate();
    fc->bev = bufferevent_socket_new(g_base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(fc->bev, fake_read, NULL, NULL, fc);
    bufferevent_enable(fc->bev, EV_READ | EV_WRITE);
}

/* Fixture: the fake server on a free loopback port of the test loop. */
static void setup_fake(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);

    setup_base();
    memset(&g_fake, 0, sizeof(g_fake));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_fake.lis = evconnlistener_new_bind(
        g_base, fake_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
        16, (struct sockaddr *)&sa, sizeof(sa));
    ck_assert_ptr_nonnull(g_fake.lis);
    getsockname(evconnlistener_get_fd(g_fake.lis), (struct sockaddr *)&sa,
                &len);
    g_fake.port = ntohs(sa.sin_port);
}

/* Frees the fake server and its clients. */
static void teardown_fake(void)
{
    int i;

    for (i = 0; i < g_fake.nclients; i++) {
        bufferevent_free(g_fake.clients[i].bev);
        redisReaderFree(g_fake.clients[i].reader);
    }
    evconnlistener_free(g_fake.lis);
    event_base_free(g_base);
    g_base = NULL;
}

/* One decide against the fake answering FCALL with reply. */
static rl_store_result_t fake_decide(rl_store_t *s, const char *reply)
{
    rl_limit_t l = rl_test_limit(RL_ALGO_GCRA, 2, 60000, 2, 0, "g1m");
    rl_store_op_t op = mk_op("rl:{fake}", &l, 1, 1);

    g_fake.fcall_reply = reply;
    return decide_wait(s, &op);
}

START_TEST(test_fake_missing_function_retried_exactly_once)
{
    rl_store_t *s = new_store(g_fake.port, 500, NULL, NULL, 1);
    rl_store_result_t r;
    int loads;

    run_for(20);
    loads = g_fake.function_load;
    ck_assert_int_eq(loads, 1); /* on connect */
    r = fake_decide(s, "-ERR Function not found\r\n");
    ck_assert_int_eq(r.status, RL_ERR);
    ck_assert_str_eq(r.error, "script_error");
    ck_assert_int_eq(g_fake.fcall, 2);
    ck_assert_int_eq(g_fake.function_load, loads + 1);
    rl_store_free(s);
}
END_TEST

START_TEST(test_fake_reply_shapes)
{
    /* raw RESP, or NULL: the binary reply of v (store.h) */
    static const struct {
        const char *reply;
        int64_t v[7];
        int status;
        const char *error;
    } cases[] = {
        {NULL, {1700000000000, 1, 1, 1, 30000, 0, 0}, RL_OK, NULL},
        {":1\r\n", {0}, RL_ERR, "bad_reply"},
        {"*3\r\n:1\r\n:1\r\n:1\r\n", {0}, RL_ERR, "bad_reply"},
        /* the old reply, an array of integers */
        {"*7\r\n:1700000000000\r\n:1\r\n:1\r\n:1\r\n:30000\r\n:0\r\n:0\r\n",
         {0},
         RL_ERR,
         "bad_reply"},
        {"*7\r\n:1700000000000\r\n:1\r\n:1\r\n$1\r\n1\r\n:30000\r\n:0\r\n:"
         "0\r\n",
         {0},
         RL_ERR,
         "bad_reply"},
        /* a byte short */
        {"$27\r\n012345678901234567890123456\r\n", {0}, RL_ERR, "bad_reply"},
        {NULL, {1700000000000, 2, 1, 1, 30000, 0, 0}, RL_ERR, "bad_reply"},
        {NULL, {1700000000000, 1, 1, 1, 30000, 0, 5}, RL_ERR, "bad_reply"},
        {"$-1\r\n", {0}, RL_ERR, "bad_reply"},
        {"-ERR user_script:1: boom\r\n", {0}, RL_ERR, "script_error"},
    };
    rl_store_t *s = new_store(g_fake.port, 500, NULL, NULL, 1);
    char bin[64];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rl_store_result_t r;

        if (cases[i].reply == NULL) {
            rl_test_reply_resp(bin, sizeof(bin), cases[i].v, 1, 0);
        }
        r = fake_decide(s, cases[i].reply != NULL ? cases[i].reply : bin);
        ck_assert_msg(r.status == cases[i].status, "case %zu: status %d", i,
                      r.status);
        if (cases[i].error != NULL) {
            ck_assert_str_eq(r.error, cases[i].error);
        } else {
            ck_assert_int_eq(r.now_ms, 1700000000000LL);
            ck_assert_int_eq(r.allowed, 1);
            ck_assert_int_eq(r.limits[0].remaining, 1);
            ck_assert_int_eq(r.limits[0].reset_after_ms, 30000);
        }
    }
    ck_assert(rl_store_connected(s));
    rl_store_free(s);
}
END_TEST

START_TEST(test_fake_protocol_error_disconnects_and_recovers)
{
    static const int64_t blocked[7] = {1, 0, 0, 0, 9, 9, 1};
    rl_store_t *s = new_store(g_fake.port, 500, NULL, NULL, 1);
    rl_store_result_t r;
    char bin[64];

    r = fake_decide(s, "?garbage\r\n");
    ck_assert_int_eq(r.status, RL_ERR);
    ck_assert_str_eq(r.error, "disconnected");
    ck_assert(run_until(pred_store_up, s, 2000));
    rl_test_reply_resp(bin, sizeof(bin), blocked, 1, 0);
    r = fake_decide(s, bin);
    ck_assert_int_eq(r.status, RL_OK);
    ck_assert_int_eq(r.allowed, 0);
    ck_assert_int_eq(r.limits[0].blocked, 1);
    rl_store_free(s);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *store_redis_suite(void)
{
    Suite *s = suite_create("store_redis");
    TCase *tc = tcase_create("redis");
    TCase *ta = tcase_create("auth");
    TCase *tf = tcase_create("fake");

    tcase_add_checked_fixture(tc, setup_redis, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_library_name_matches_redis);
    tcase_add_test(tc, test_fresh_key_counts_down_then_denies);
    tcase_add_test(tc, test_gcra_state_in_expiry);
    tcase_add_test(tc, test_algorithms_reach_the_script);
    tcase_add_test(tc, test_multi_limit_all_or_nothing);
    tcase_add_test(tc, test_pipelining_in_order_exact);
    tcase_add_test(tc, test_batched_decisions_in_order);
    tcase_add_test(tc, test_missing_library_reload_and_retry);
    tcase_add_test(tc, test_reset_clears_state_and_block);
    tcase_add_test(tc, test_bad_ops_fail_at_once);
    tcase_add_test(tc, test_store_timeout_then_works);
    tcase_add_test(tc, test_disconnect_and_reconnect);
    tcase_add_test(tc, test_conn_late_reply_is_dropped);
    tcase_add_test(tc, test_conn_too_many_abandoned_reconnects);
    tcase_add_test(tc, test_conn_old_abandoned_reconnects);
    tcase_add_test(tc, test_conn_ready_only_when_server_answers);
    tcase_add_test(tc, test_conn_callbacks_reenter_and_free_fails_pending);
    tcase_add_test(tc, test_conn_select_db);
    tcase_add_test(tc, test_conn_rejects_hostnames);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(ta, setup_redis_auth, teardown);
    tcase_set_timeout(ta, 30);
    tcase_add_test(ta, test_auth_good_password);
    tcase_add_test(ta, test_auth_bad_password_never_connects);
    suite_add_tcase(s, ta);

    tcase_add_checked_fixture(tf, setup_fake, teardown_fake);
    tcase_set_timeout(tf, 30);
    tcase_add_test(tf, test_fake_missing_function_retried_exactly_once);
    tcase_add_test(tf, test_fake_reply_shapes);
    tcase_add_test(tf, test_fake_protocol_error_disconnects_and_recovers);
    suite_add_tcase(s, tf);
    return s;
}

/* Runs the suite; non-zero exit on any failure. */
int main(void)
{
    SRunner *sr;
    int failed;

    rl_test_redis_init();
    sr = srunner_create(store_redis_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
