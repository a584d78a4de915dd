/* Tests of store_cluster.c against fake cluster nodes served on the
 * test's own event loop: each fake answers CLUSTER SLOTS with the map the
 * test sets, FUNCTION LOAD with the library's name, ASKING with +OK, and
 * FCALL from a per-node queue of canned replies (MOVED, ASK, TRYAGAIN,
 * CLUSTERDOWN, a missing function, a delay, no answer at all), then with a
 * valid script reply. Real servers only send these in states that are hard to
 * hold still; here every redirection and deadline rule is checked
 * exactly. (The integration tests drive a real cluster.) Every wait is
 * bounded. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <hiredis/hiredis.h>

#include "loop.h"
#include "loop_helper.h"
#include "lua_scripts.h"
#include "reply_helper.h"
#include "cluster.h"
#include "store_cluster.h"
#include "store_redis.h"
#include "util.h"

#define FAKE_NODES 3
#define FAKE_CLIENTS 8
#define FAKE_QUEUE 32
/* A batch element whose decision did not run (a key not on the node). */
#define NOTLOCAL_REPLY                                                         \
    "-NOTLOCAL ERR Script attempted to access a non local key in a cluster "   \
    "node\r\n"

/* The script's replies the fakes send (binary: replies_init makes them):
 * an admit with 9 remaining, a denial retrying after 1 s. */
static char g_ok_reply[64];
static char g_deny_reply[64];

static struct event_base *g_base;

/* ------------------------------------------------------------------ */
/* Fake cluster nodes                                                  */
/* ------------------------------------------------------------------ */

typedef struct canned {
    const char *reply; /* raw RESP; NULL: never answer */
    int delay_ms;
    int repeat; /* stays at the head of the queue */
} canned_t;

typedef struct fake_node fake_node_t;

typedef struct fake_client {
    fake_node_t *node;
    struct bufferevent *bev;
    redisReader *reader;
    int asking;
    int paused; /* a delayed reply is pending: later ones wait */
} fake_client_t;

struct fake_node {
    struct evconnlistener *lis;
    int port;
    canned_t queue[FAKE_QUEUE];
    int qhead;
    int qlen;
    int fcall;              /* FCALL received */
    int batches;            /* of which batches ("keys" .. "batch" count ..) */
    int batch_ops;          /* decisions in those batches */
    char costs[8][16];      /* ARGV[1] of the first plain FCALLs */
    char batch_reply[8192]; /* the array answering the last batch */
    unsigned notlocal;      /* elements of the next batch answered NOTLOCAL */
    int fcall_asking;       /* of which right after ASKING */
    int asking;
    int function_load;
    int cluster_slots;
    fake_client_t clients[FAKE_CLIENTS];
    int nclients;
};

static fake_node_t g_nodes[FAKE_NODES];
static char g_slots_reply[1024]; /* the CLUSTER SLOTS every fake answers */
static int g_slots_delay_ms;     /* .. after this long */

static void fake_read(struct bufferevent *bev, void *arg);

typedef struct delayed {
    fake_client_t *fc;
    const char *reply;
    struct event *ev;
} delayed_t;

/* Sends a delayed reply, then serves what the client sent meanwhile (its
 * reading was paused, so replies stay in order), and frees the record. */
static void delayed_fire(evutil_socket_t fd, short what, void *arg)
{
    delayed_t *d = arg;
    fake_client_t *fc = d->fc;

    bufferevent_write(fc->bev, d->reply, rl_test_resp_len(d->reply));
    event_free(d->ev);
    free(d);
    bufferevent_enable(fc->bev, EV_READ);
    fake_read(fc->bev, fc);
}

/* Sends reply to fc now, or after delay_ms: then the client's reading
 * pauses until it is sent, so later replies keep their order. */
static void fake_send(fake_client_t *fc, const char *reply, int delay_ms)
{
    delayed_t *d;
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};

    if (delay_ms <= 0) {
        bufferevent_write(fc->bev, reply, rl_test_resp_len(reply));
        return;
    }
    d = calloc(1, sizeof(*d));
    d->fc = fc;
    d->reply = reply;
    d->ev = evtimer_new(g_base, delayed_fire, d);
    evtimer_add(d->ev, &tv);
    fc->paused = 1;
    bufferevent_disable(fc->bev, EV_READ);
}

/* The decisions of a cluster batch (FCALL fn 0 "keys" nkeys key..
 * "batch" count ..), 0 for a plain call. */
static int batch_count(const redisReply *r)
{
    int nkeys;

    if (r->elements < 5 || strcmp(r->element[3]->str, "keys") != 0) {
        return 0;
    }
    nkeys = atoi(r->element[4]->str);
    ck_assert_int_gt((int)r->elements, 6 + nkeys);
    ck_assert_str_eq(r->element[2]->str, "0");
    ck_assert_str_eq(r->element[5 + nkeys]->str, "batch");
    return atoi(r->element[6 + nkeys]->str);
}

/* The first part's cost in a request argument of protocol v3 (store.h:
 * parts, penalties, then per part its limit count and a signed 8-byte
 * little-endian cost), or 0 if the argument is too short. */
static long long first_part_cost(const redisReply *arg)
{
    const unsigned char *b = (const unsigned char *)arg->str;
    uint64_t v = 0;
    int i;

    if (arg->len < 11) {
        return 0;
    }
    for (i = 7; i >= 0; i--) {
        v = (v << 8) | b[3 + i];
    }
    return (long long)(int64_t)v;
}

/* Answers one FCALL from the node's queue (or with g_ok_reply, an array
 * of them for a batch); asking says whether ASKING came right before it
 * on this connection. */
static void fake_fcall(fake_client_t *fc, const redisReply *r, int asking)
{
    fake_node_t *n = fc->node;
    canned_t c = {g_ok_reply, 0, 0};
    int count = batch_count(r);
    int i;

    if (count == 0 && n->fcall < 8 && r->elements > 3) {
        int nk = atoi(r->element[2]->str);

        snprintf(n->costs[n->fcall], sizeof(n->costs[0]), "%lld",
                 (long long)first_part_cost(r->element[3 + nk]));
    }
    n->fcall++;
    if (count > 0) {
        size_t used = (size_t)snprintf(n->batch_reply, sizeof(n->batch_reply),
                                       "*%d\r\n", count);

        n->batches++;
        n->batch_ops += count;
        for (i = 0; i < count; i++) {
            const char *e =
                (n->notlocal >> i) & 1 ? NOTLOCAL_REPLY : g_ok_reply;
            size_t elen = rl_test_resp_len(e);

            ck_assert_uint_le(used + elen, sizeof(n->batch_reply));
            memcpy(n->batch_reply + used, e, elen);
            used += elen;
        }
        n->notlocal = 0;
        c.reply = n->batch_reply;
    }
    n->fcall_asking += asking;
    if (n->qlen > 0) {
        c = n->queue[n->qhead];
        if (c.reply != NULL && c.reply[0] != '-' && count > 0) {
            c.reply = n->batch_reply; /* a success answers every one */
        }
        if (!c.repeat) {
            n->qhead = (n->qhead + 1) % FAKE_QUEUE;
            n->qlen--;
        }
    }
    if (c.reply == NULL) {
        /* A hung server answers nothing more on this connection. */
        fc->paused = 1;
        bufferevent_disable(fc->bev, EV_READ);
        return;
    }
    fake_send(fc, c.reply, c.delay_ms);
}

/* One fake client: decodes commands and answers each. */
static void fake_read(struct bufferevent *bev, void *arg)
{
    fake_client_t *fc = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char buf[4096];
    int len;
    void *req;

    fc->paused = 0;
    while ((len = evbuffer_remove(in, buf, sizeof(buf))) > 0) {
        redisReaderFeed(fc->reader, buf, (size_t)len);
    }
    while (!fc->paused && redisReaderGetReply(fc->reader, &req) == REDIS_OK &&
           req != NULL) {
        redisReply *r = req;
        const char *name = r->element[0]->str;
        int asking = fc->asking;

        fc->asking = 0;
        if (strcasecmp(name, "FCALL") == 0) {
            fake_fcall(fc, r, asking);
        } else if (strcasecmp(name, "ASKING") == 0) {
            fc->node->asking++;
            fc->asking = 1;
            bufferevent_write(bev, "+OK\r\n", 5);
        } else if (strcasecmp(name, "FUNCTION") == 0) {
            fc->node->function_load++;
            evbuffer_add_printf(bufferevent_get_output(bev), "$%d\r\n%s\r\n",
                                RL_LUA_FUNCTION_LEN, RL_LUA_FUNCTION);
        } else if (strcasecmp(name, "CLUSTER") == 0) {
            fc->node->cluster_slots++;
            fake_send(fc, g_slots_reply, g_slots_delay_ms);
        } else if (strcasecmp(name, "PING") == 0) {
            bufferevent_write(bev, "+PONG\r\n", 7);
        } else {
            bufferevent_write(bev, "+OK\r\n", 5);
        }
        freeReplyObject(r);
    }
}

static void fake_accept(struct evconnlistener *lis, evutil_socket_t fd,
                        struct sockaddr *sa, int salen, void *arg)
{
    fake_node_t *n = arg;
    fake_client_t *fc;

    if (n->nclients == FAKE_CLIENTS) {
        evutil_closesocket(fd);
        return;
    }
    fc = &n->clients[n->nclients++];
    fc->node = n;
    fc->reader = redisReaderCreate();
    fc->bev = bufferevent_socket_new(g_base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(fc->bev, fake_read, NULL, NULL, fc);
    bufferevent_enable(fc->bev, EV_READ | EV_WRITE);
}

/* Queues a canned FCALL reply on node i. */
static void queue(int i, const char *reply, int delay_ms, int repeat)
{
    fake_node_t *n = &g_nodes[i];
    canned_t *c = &n->queue[(n->qhead + n->qlen) % FAKE_QUEUE];

    ck_assert_int_lt(n->qlen, FAKE_QUEUE);
    c->reply = reply;
    c->delay_ms = delay_ms;
    c->repeat = repeat;
    n->qlen++;
}

/* Sets the CLUSTER SLOTS reply: ranges[k] = { start, end, node index }
 * (node index -1 ends the list). */
static void set_slots(const int ranges[][3])
{
    int k;
    int n = 0;
    size_t used;

    while (ranges[n][2] >= 0) {
        n++;
    }
    used = (size_t)snprintf(g_slots_reply, sizeof(g_slots_reply), "*%d\r\n", n);
    for (k = 0; k < n; k++) {
        used += (size_t)snprintf(
            g_slots_reply + used, sizeof(g_slots_reply) - used,
            "*3\r\n:%d\r\n:%d\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n",
            ranges[k][0], ranges[k][1], g_nodes[ranges[k][2]].port);
    }
}

/* A message with a node's address: "MOVED 12 127.0.0.1:port" as RESP. */
static const char *redirect(char *buf, size_t len, const char *kind, int slot,
                            int node)
{
    snprintf(buf, len, "-%s %d 127.0.0.1:%d\r\n", kind, slot,
             g_nodes[node].port);
    return buf;
}

/* ------------------------------------------------------------------ */
/* Loop helpers                                                        */
/* ------------------------------------------------------------------ */

/* Bounded loop runs on the test's base (loop_helper.c). */
#define run_until(pred, arg, ms) rl_test_run_until(g_base, (pred), (arg), (ms))
#define run_for(ms) rl_test_run_for(g_base, (ms))

static int pred_connected(void *arg)
{
    return rl_store_connected(arg);
}

/* ------------------------------------------------------------------ */
/* Store helpers                                                       */
/* ------------------------------------------------------------------ */

typedef struct result {
    int calls;
    rl_store_result_t res;
    int64_t done_us;
} result_t;

static void result_cb(void *arg, const rl_store_result_t *res)
{
    result_t *r = arg;

    r->calls++;
    r->res = *res;
    r->done_us = rl_mono_us();
}

static int pred_result(void *arg)
{
    return ((result_t *)arg)->calls > 0;
}

static rl_conf_store_t g_conf;
static rl_conf_node_t g_seeds[FAKE_NODES];
static rl_limit_t g_limit;

/* A cluster store seeded with node 0 (and node 1 when two_seeds). */
static rl_store_t *new_store(int timeout_ms, int refresh_ms, int two_seeds,
                             int expect_up)
{
    rl_store_t *s;
    int i;

    memset(&g_conf, 0, sizeof(g_conf));
    g_conf.type = RL_STORE_REDIS;
    g_conf.cluster = 1;
    g_conf.timeout_ms = timeout_ms;
    g_conf.refresh_interval_ms = refresh_ms;
    g_conf.prefix = (char *)"rl";
    for (i = 0; i < FAKE_NODES; i++) {
        g_seeds[i].host = (char *)"127.0.0.1";
        g_seeds[i].port = g_nodes[i].port;
    }
    g_conf.nodes = g_seeds;
    g_conf.nnodes = two_seeds ? 2 : 1;
    s = rl_store_cluster_new(g_base, &g_conf);
    ck_assert_ptr_nonnull(s);
    if (expect_up) {
        ck_assert_msg(run_until(pred_connected, s, 2000),
                      "store did not come up");
    }
    return s;
}

/* A base key whose slot lies in [lo, hi]. */
static const char *key_in(int lo, int hi, char *buf, size_t len)
{
    int i;

    for (i = 0; i < 100000; i++) {
        int n = snprintf(buf, len, "rl:{p|t%d}", i);
        int slot = rl_cluster_key_slot(buf, (size_t)n);
        if (slot >= lo && slot <= hi) {
            return buf;
        }
    }
    ck_abort_msg("no key found");
    return NULL;
}

/* Decides on base and waits (2 s at most) for exactly one result. */
static result_t decide(rl_store_t *s, const char *base)
{
    rl_store_op_t op;
    result_t r;

    memset(&r, 0, sizeof(r));
    memset(&op, 0, sizeof(op));
    op.base_key = base;
    op.base_len = strlen(base);
    op.limits = &g_limit;
    op.nlimits = 1;
    op.cost = 1;
    rl_store_decide(s, &op, result_cb, &r);
    ck_assert_msg(run_until(pred_result, &r, 2000), "no result");
    run_for(5);
    ck_assert_int_eq(r.calls, 1);
    return r;
}

/* Asserts a successful result decoded from g_ok_reply. */
static void assert_ok(const result_t *r)
{
    ck_assert_msg(r->res.status == RL_OK, "failed: %s",
                  r->res.error ? r->res.error : "?");
    ck_assert_int_eq(r->res.allowed, 1);
    ck_assert_int_eq(r->res.limits[0].remaining, 9);
}

/* Decides on base and asserts the g_ok_reply result. */
static void decide_ok(rl_store_t *s, const char *base)
{
    result_t r = decide(s, base);

    assert_ok(&r);
}

static const int two_halves[][3] = {{0, 8191, 0}, {8192, 16383, 1}, {0, 0, -1}};

/* ------------------------------------------------------------------ */
/* Fixtures                                                            */
/* ------------------------------------------------------------------ */

static void setup(void)
{
    int i;

    g_base = event_base_new();
    ck_assert_ptr_nonnull(g_base);
    memset(g_nodes, 0, sizeof(g_nodes));
    for (i = 0; i < FAKE_NODES; i++) {
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);

        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        g_nodes[i].lis =
            evconnlistener_new_bind(g_base, fake_accept, &g_nodes[i],
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                    16, (struct sockaddr *)&sa, sizeof(sa));
        ck_assert_ptr_nonnull(g_nodes[i].lis);
        getsockname(evconnlistener_get_fd(g_nodes[i].lis),
                    (struct sockaddr *)&sa, &len);
        g_nodes[i].port = ntohs(sa.sin_port);
    }
    memset(&g_limit, 0, sizeof(g_limit));
    g_limit.algo = RL_ALGO_GCRA;
    g_limit.requests = 10;
    g_limit.period_ms = 60000;
    g_limit.burst = 10;
    snprintf(g_limit.suffix, sizeof(g_limit.suffix), "g1m");
    set_slots(two_halves);
    g_slots_delay_ms = 0;
}

static void teardown(void)
{
    int i;
    int j;

    for (i = 0; i < FAKE_NODES; i++) {
        for (j = 0; j < g_nodes[i].nclients; j++) {
            bufferevent_free(g_nodes[i].clients[j].bev);
            redisReaderFree(g_nodes[i].clients[j].reader);
        }
        if (g_nodes[i].lis != NULL) {
            evconnlistener_free(g_nodes[i].lis);
        }
    }
    event_base_free(g_base);
    g_base = NULL;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

/* One seed is enough: the map names node 1, which the store connects to;
 * each key goes to the master of its slot; /ready lists both nodes up. */
START_TEST(test_routes_by_slot)
{
    rl_store_t *s = new_store(500, 60000, 0, 1);
    char lo[64];
    char hi[64];

    key_in(0, 8191, lo, sizeof(lo));
    key_in(8192, 16383, hi, sizeof(hi));
    decide_ok(s, lo);
    decide_ok(s, hi);
    decide_ok(s, hi);
    ck_assert_int_eq(g_nodes[0].fcall, 1);
    ck_assert_int_eq(g_nodes[1].fcall, 2);
    ck_assert_int_eq(g_nodes[0].function_load, 1);
    ck_assert_int_eq(g_nodes[1].function_load, 1);
    rl_store_free(s);
}
END_TEST

/* A layered op of two parts, on node 0's and node 1's halves, started
 * with cost (with pen, a penalty on node 0's part too); waits for its
 * result. */
static result_t cross_decide(rl_store_t *s, int64_t cost, int pen)
{
    rl_store_part_t parts[2];
    rl_store_penalty_t penalty;
    rl_store_op_t op;
    result_t r;
    char lo[64];
    char hi[64];

    key_in(0, 8191, lo, sizeof(lo));
    key_in(8192, 16383, hi, sizeof(hi));
    parts[0] = (rl_store_part_t){lo, strlen(lo), &g_limit, 1, 0};
    parts[1] = (rl_store_part_t){hi, strlen(hi), &g_limit, 1, 0};
    memset(&op, 0, sizeof(op));
    op.parts = parts;
    op.nparts = 2;
    op.cost = cost;
    if (pen) {
        memset(&penalty, 0, sizeof(penalty));
        penalty.key = lo;
        penalty.len = strlen(lo);
        penalty.step.denials = 3;
        penalty.step.within_ms = 60000;
        penalty.step.block_ms = 60000;
        op.penalties = &penalty;
        op.npenalties = 1;
    }
    memset(&r, 0, sizeof(r));
    rl_store_decide(s, &op, result_cb, &r);
    ck_assert_msg(run_until(pred_result, &r, 2000), "no result");
    run_for(20);
    ck_assert_int_eq(r.calls, 1);
    return r;
}

/* A layered op whose parts fall on two masters is decided per master:
 * one reservation on each, in slot order, admitted when both admit,
 * with each part's limit result in part order. A penalty beside parts
 * that span slots stays "cross_slot", sending nothing (the config
 * requires a shared hash_tag for penalties on a cluster). */
START_TEST(test_layered_cross_master)
{
    rl_store_t *s = new_store(500, 60000, 0, 1);
    result_t r = cross_decide(s, 1, 0);

    ck_assert_int_eq(r.res.status, RL_OK);
    ck_assert_int_eq(r.res.allowed, 1);
    ck_assert_int_eq(r.res.limits[0].remaining, 9);
    ck_assert_int_eq(r.res.limits[1].remaining, 9);
    ck_assert_int_eq(g_nodes[0].fcall, 1);
    ck_assert_int_eq(g_nodes[1].fcall, 1);
    ck_assert_str_eq(g_nodes[0].costs[0], "1");
    ck_assert_str_eq(g_nodes[1].costs[0], "1");

    r = cross_decide(s, 1, 1);
    ck_assert_int_eq(r.res.status, RL_ERR);
    ck_assert_str_eq(r.res.error, "cross_slot");
    ck_assert_int_eq(g_nodes[0].fcall + g_nodes[1].fcall, 2);
    rl_store_free(s);
}
END_TEST

/* One master denies. The first (node 0, the lower slot): the second is
 * only peeked (cost 0) and nothing is refunded. The second: the first
 * one's reservation is refunded (cost -1). Either way the decision is
 * denied with both parts' results and spends nothing. */
START_TEST(test_cross_master_denies)
{
    static const struct {
        int denier;
        int calls[2];
        const char *costs[2][2];
    } cases[] = {
        {0, {1, 1}, {{"1", ""}, {"0", ""}}},
        {1, {2, 1}, {{"1", "-1"}, {"1", ""}}},
    };
    size_t k;
    int i;

    for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        rl_store_t *s = new_store(500, 60000, 0, 1);
        result_t r;

        memset(g_nodes[0].costs, 0, sizeof(g_nodes[0].costs));
        memset(g_nodes[1].costs, 0, sizeof(g_nodes[1].costs));
        g_nodes[0].fcall = g_nodes[1].fcall = 0;
        queue(cases[k].denier, g_deny_reply, 0, 0);
        r = cross_decide(s, 1, 0);
        ck_assert_int_eq(r.res.status, RL_OK);
        ck_assert_int_eq(r.res.allowed, 0);
        ck_assert_int_eq(r.res.limits[cases[k].denier].allowed, 0);
        ck_assert_int_eq(r.res.limits[cases[k].denier].retry_after_ms, 1000);
        ck_assert_int_eq(r.res.limits[1 - cases[k].denier].allowed, 1);
        for (i = 0; i < 2; i++) {
            ck_assert_int_eq(g_nodes[i].fcall, cases[k].calls[i]);
            ck_assert_str_eq(g_nodes[i].costs[0], cases[k].costs[i][0]);
            ck_assert_str_eq(g_nodes[i].costs[1], cases[k].costs[i][1]);
        }
        rl_store_free(s);
    }
}
END_TEST

/* A reservation that fails (a timeout) ends the decision with that
 * error and the later master is not asked. */
START_TEST(test_cross_master_failure)
{
    rl_store_t *s = new_store(100, 60000, 0, 1);
    result_t r;

    queue(0, NULL, 0, 0);
    r = cross_decide(s, 1, 0);
    ck_assert_int_eq(r.res.status, RL_ERR);
    ck_assert_str_eq(r.res.error, "timeout");
    ck_assert_int_eq(g_nodes[1].fcall, 0);
    rl_store_free(s);
}
END_TEST

typedef struct node_seen {
    int n;
    char names[4][RL_CLUSTER_NAME_MAX];
    char states[4][8];
} node_seen_t;

static void record_node(void *arg, const char *name, const char *state)
{
    node_seen_t *ns = arg;

    ck_assert_int_lt(ns->n, 4);
    snprintf(ns->names[ns->n], sizeof(ns->names[0]), "%s", name);
    snprintf(ns->states[ns->n], sizeof(ns->states[0]), "%s", state);
    ns->n++;
}

START_TEST(test_nodes_and_coverage)
{
    static const int half[][3] = {{0, 8191, 0}, {0, 0, -1}};
    rl_store_t *s = new_store(500, 100, 0, 1);
    node_seen_t ns;
    char want[RL_CLUSTER_NAME_MAX];
    char hi[64];
    result_t r;
    int64_t t0;

    memset(&ns, 0, sizeof(ns));
    ck_assert(rl_store_has_nodes(s));
    rl_store_nodes(s, record_node, &ns);
    ck_assert_int_eq(ns.n, 2);
    snprintf(want, sizeof(want), "127.0.0.1:%d", g_nodes[0].port);
    ck_assert_str_eq(ns.names[0], want);
    snprintf(want, sizeof(want), "127.0.0.1:%d", g_nodes[1].port);
    ck_assert_str_eq(ns.names[1], want);
    ck_assert_str_eq(ns.states[0], "up");
    ck_assert_str_eq(ns.states[1], "up");

    /* The periodic refresh (100 ms) learns that half the slots have no
     * master: not ready, node 1 dropped, decisions there fail with
     * "cluster_down" at their deadline, not before. */
    set_slots(half);
    run_for(300);
    ck_assert_int_eq(rl_store_connected(s), 0);
    memset(&ns, 0, sizeof(ns));
    rl_store_nodes(s, record_node, &ns);
    ck_assert_int_eq(ns.n, 1);
    key_in(8192, 16383, hi, sizeof(hi));
    t0 = rl_mono_us();
    r = decide(s, hi);
    ck_assert_int_eq(r.res.status, RL_ERR);
    ck_assert_str_eq(r.res.error, "cluster_down");
    ck_assert_int_ge(r.done_us - t0, 480000);
    ck_assert_int_le(r.done_us - t0, 600000);
    /* Covered again: ready again, without a restart. */
    set_slots(two_halves);
    ck_assert(run_until(pred_connected, s, 1000));
    decide_ok(s, hi);
    rl_store_free(s);
}
END_TEST

/* MOVED: retried on the named node at once, and the map learns it: the
 * next decision goes straight there. */
START_TEST(test_moved_updates_map)
{
    rl_store_t *s = new_store(500, 60000, 1, 1);
    char lo[64];
    char msg[64];
    int slot;

    key_in(0, 8191, lo, sizeof(lo));
    slot = rl_cluster_key_slot(lo, strlen(lo));
    queue(0, redirect(msg, sizeof(msg), "MOVED", slot, 1), 0, 0);
    decide_ok(s, lo);
    ck_assert_int_eq(g_nodes[0].fcall, 1);
    ck_assert_int_eq(g_nodes[1].fcall, 1);
    ck_assert_int_eq(g_nodes[1].fcall_asking, 0);
    decide_ok(s, lo);
    ck_assert_int_eq(g_nodes[0].fcall, 1);
    ck_assert_int_eq(g_nodes[1].fcall, 2);
    rl_store_free(s);
}
END_TEST

/* MOVED to a node the map never named: the store connects to it and
 * the decision waits for that connection (within its deadline). */
START_TEST(test_moved_to_new_node)
{
    rl_store_t *s = new_store(500, 60000, 0, 1);
    char lo[64];
    char msg[64];

    key_in(0, 8191, lo, sizeof(lo));
    queue(0,
          redirect(msg, sizeof(msg), "MOVED",
                   rl_cluster_key_slot(lo, strlen(lo)), 2),
          0, 0);
    decide_ok(s, lo);
    ck_assert_int_eq(g_nodes[2].fcall, 1);
    ck_assert_int_eq(g_nodes[2].function_load, 1);
    rl_store_free(s);
}
END_TEST

/* ASK: ASKING and the command go to the named node, once; the map stays,
 * so the next decision goes to the old owner again. */
START_TEST(test_ask_once)
{
    rl_store_t *s = new_store(500, 60000, 1, 1);
    char lo[64];
    char msg[64];

    key_in(0, 8191, lo, sizeof(lo));
    queue(0,
          redirect(msg, sizeof(msg), "ASK", rl_cluster_key_slot(lo, strlen(lo)),
                   1),
          0, 0);
    decide_ok(s, lo);
    ck_assert_int_eq(g_nodes[1].asking, 1);
    ck_assert_int_eq(g_nodes[1].fcall, 1);
    ck_assert_int_eq(g_nodes[1].fcall_asking, 1);
    decide_ok(s, lo);
    ck_assert_int_eq(g_nodes[0].fcall, 2);
    ck_assert_int_eq(g_nodes[1].fcall, 1);
    rl_store_free(s);
}
END_TEST

/* ASK, then TRYAGAIN from the importing node (a multi-key script while
 * the keys are split): retried from the top until the migration ends. */
START_TEST(test_ask_then_tryagain)
{
    rl_store_t *s = new_store(500, 60000, 1, 1);
    char lo[64];
    char msg[64];

    key_in(0, 8191, lo, sizeof(lo));
    redirect(msg, sizeof(msg), "ASK", rl_cluster_key_slot(lo, strlen(lo)), 1);
    queue(0, msg, 0, 0);
    queue(1, "-TRYAGAIN Multiple keys request during rehashing of slot\r\n", 0,
          0);
    queue(0, msg, 0, 0);
    decide_ok(s, lo);
    ck_assert_int_eq(g_nodes[0].fcall, 2);
    ck_assert_int_eq(g_nodes[1].fcall, 2);
    ck_assert_int_eq(g_nodes[1].fcall_asking, 2);
    rl_store_free(s);
}
END_TEST

/* TRYAGAIN and LOADING: retried with a short backoff. */
START_TEST(test_transient_errors_retried)
{
    rl_store_t *s = new_store(500, 60000, 0, 1);
    char lo[64];
    int64_t t0;
    result_t r;

    key_in(0, 8191, lo, sizeof(lo));
    queue(0, "-TRYAGAIN Multiple keys request during rehashing of slot\r\n", 0,
          0);
    queue(0, "-TRYAGAIN Multiple keys request during rehashing of slot\r\n", 0,
          0);
    queue(0, "-LOADING Redis is loading the dataset in memory\r\n", 0, 0);
    queue(0, "-CLUSTERDOWN The cluster is down\r\n", 0, 0);
    t0 = rl_mono_us();
    r = decide(s, lo);
    assert_ok(&r);
    ck_assert_int_eq(g_nodes[0].fcall, 5);
    /* Backoff 1 + 2 + 4 + 8 ms, well inside the deadline. */
    ck_assert_int_ge(r.done_us - t0, 14000);
    ck_assert_int_le(r.done_us - t0, 200000);
    rl_store_free(s);
}
END_TEST

/* A lasting CLUSTERDOWN ends at the deadline with "cluster_down"; a
 * lasting TRYAGAIN with "tryagain". */
START_TEST(test_lasting_errors_end_at_deadline)
{
    static const struct {
        const char *reply;
        const char *error;
    } rows[] = {
        {"-CLUSTERDOWN The cluster is down\r\n", "cluster_down"},
        {"-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
         "tryagain"},
    };
    rl_store_t *s = new_store(100, 60000, 0, 1);
    char lo[64];
    size_t i;

    key_in(0, 8191, lo, sizeof(lo));
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int64_t t0;
        result_t r;

        g_nodes[0].qhead = g_nodes[0].qlen = 0;
        queue(0, rows[i].reply, 0, 1);
        t0 = rl_mono_us();
        r = decide(s, lo);
        ck_assert_int_eq(r.res.status, RL_ERR);
        ck_assert_str_eq(r.res.error, rows[i].error);
        ck_assert_int_ge(r.done_us - t0, 90000);
        ck_assert_int_le(r.done_us - t0, 160000);
    }
    rl_store_free(s);
}
END_TEST

/* Redirections that never settle end fast with "too_many_redirects". */
START_TEST(test_redirect_loop)
{
    rl_store_t *s = new_store(500, 60000, 1, 1);
    char lo[64];
    char to1[64];
    char to0[64];
    int slot;
    result_t r;

    key_in(0, 8191, lo, sizeof(lo));
    slot = rl_cluster_key_slot(lo, strlen(lo));
    queue(0, redirect(to1, sizeof(to1), "MOVED", slot, 1), 0, 1);
    queue(1, redirect(to0, sizeof(to0), "MOVED", slot, 0), 0, 1);
    r = decide(s, lo);
    ck_assert_int_eq(r.res.status, RL_ERR);
    ck_assert_str_eq(r.res.error, "too_many_redirects");
    ck_assert_int_le(g_nodes[0].fcall + g_nodes[1].fcall, 17);
    rl_store_free(s);
}
END_TEST

/* After a redirection the op's own deadline holds: a MOVED after 70 ms
 * to a node that never answers ends at 100 ms, not 170 (the bound leaves
 * 60 ms for a loaded machine, the lower one 10 ms: before rl_loop_timer_at
 * refreshed the loop's cached clock, it fired at 94.8 ms once). */
START_TEST(test_deadline_spans_retries)
{
    rl_store_t *s = new_store(100, 60000, 1, 1);
    char lo[64];
    char msg[64];
    int64_t t0;
    result_t r;

    key_in(0, 8191, lo, sizeof(lo));
    queue(0,
          redirect(msg, sizeof(msg), "MOVED",
                   rl_cluster_key_slot(lo, strlen(lo)), 1),
          70, 0);
    queue(1, NULL, 0, 0);
    t0 = rl_mono_us();
    r = decide(s, lo);
    ck_assert_int_eq(r.res.status, RL_ERR);
    ck_assert_str_eq(r.res.error, "timeout");
    ck_assert_int_ge(r.done_us - t0, 90000);
    ck_assert_int_le(r.done_us - t0, 160000);
    /* The orphaned command's late reply is absorbed: the store works on. */
    run_for(150);
    decide_ok(s, lo);
    rl_store_free(s);
}
END_TEST

/* The same after a backoff: TRYAGAIN after 70 ms, then the node hangs;
 * the decision ends at 100 ms (not 171), reporting why it was retrying. */
START_TEST(test_deadline_after_backoff)
{
    rl_store_t *s = new_store(100, 60000, 0, 1);
    char lo[64];
    int64_t t0;
    result_t r;

    key_in(0, 8191, lo, sizeof(lo));
    queue(0, "-TRYAGAIN Multiple keys request during rehashing of slot\r\n", 70,
          0);
    queue(0, NULL, 0, 0);
    t0 = rl_mono_us();
    r = decide(s, lo);
    ck_assert_int_eq(r.res.status, RL_ERR);
    ck_assert_str_eq(r.res.error, "tryagain");
    ck_assert_int_ge(r.done_us - t0, 90000);
    ck_assert_int_le(r.done_us - t0, 160000);
    ck_assert_int_eq(g_nodes[0].fcall, 2);
    rl_store_free(s);
}
END_TEST

/* A decision made before the map is known waits for it; its first
 * command, sent 70 ms in to a node that hangs, still ends at 100 ms (not
 * 170). */
START_TEST(test_deadline_before_map)
{
    rl_store_t *s;
    char lo[64];
    int64_t t0;
    result_t r;

    g_slots_delay_ms = 70;
    queue(0, NULL, 0, 0);
    s = new_store(100, 60000, 0, 0);
    key_in(0, 8191, lo, sizeof(lo));
    t0 = rl_mono_us();
    r = decide(s, lo);
    ck_assert_int_eq(r.res.status, RL_ERR);
    ck_assert_str_eq(r.res.error, "timeout");
    ck_assert_int_ge(r.done_us - t0, 90000);
    ck_assert_int_le(r.done_us - t0, 160000);
    ck_assert_int_eq(g_nodes[0].fcall, 1);
    rl_store_free(s);
}
END_TEST

/* A missing function: the library is loaded on that node and the command
 * resent once; a second such answer is an error. Also after ASK. */
START_TEST(test_missing_function_on_node)
{
    static const char noscript[] = "-ERR Function not found\r\n";
    rl_store_t *s = new_store(500, 60000, 1, 1);
    char lo[64];
    char msg[64];
    result_t r;
    int loads0 = g_nodes[0].function_load;
    int loads1 = g_nodes[1].function_load;

    key_in(0, 8191, lo, sizeof(lo));
    queue(0, noscript, 0, 0);
    decide_ok(s, lo);
    ck_assert_int_eq(g_nodes[0].fcall, 2);
    ck_assert_int_eq(g_nodes[0].function_load, loads0 + 1);

    queue(0, noscript, 0, 0);
    queue(0, noscript, 0, 0);
    r = decide(s, lo);
    ck_assert_int_eq(r.res.status, RL_ERR);
    ck_assert_str_eq(r.res.error, "script_error");

    queue(0,
          redirect(msg, sizeof(msg), "ASK", rl_cluster_key_slot(lo, strlen(lo)),
                   1),
          0, 0);
    queue(1, noscript, 0, 0);
    decide_ok(s, lo);
    ck_assert_int_eq(g_nodes[1].function_load, loads1 + 1);
    ck_assert_int_eq(g_nodes[1].fcall_asking, 2);
    rl_store_free(s);
}
END_TEST

/* Other error replies end the op without a retry. */
START_TEST(test_other_errors)
{
    rl_store_t *s = new_store(500, 60000, 0, 1);
    char lo[64];
    result_t r;

    key_in(0, 8191, lo, sizeof(lo));
    queue(0, "-ERR user_script:1: boom\r\n", 0, 0);
    r = decide(s, lo);
    ck_assert_int_eq(r.res.status, RL_ERR);
    ck_assert_str_eq(r.res.error, "script_error");
    queue(0, "-MOVED nonsense\r\n", 0, 0);
    r = decide(s, lo);
    ck_assert_int_eq(r.res.status, RL_ERR);
    ck_assert_str_eq(r.res.error, "bad_reply");
    queue(0, ":1\r\n", 0, 0);
    r = decide(s, lo);
    ck_assert_int_eq(r.res.status, RL_ERR);
    ck_assert_str_eq(r.res.error, "bad_reply");
    ck_assert_int_eq(g_nodes[0].fcall, 3);
    rl_store_free(s);
}
END_TEST

/* A node that is not a cluster: CLUSTER SLOTS fails, no map, not ready,
 * decisions fail "disconnected" at their deadline. */
START_TEST(test_not_a_cluster)
{
    rl_store_t *s;
    char lo[64];
    result_t r;

    snprintf(g_slots_reply, sizeof(g_slots_reply),
             "-ERR This instance has cluster support disabled\r\n");
    s = new_store(100, 60000, 0, 0);
    run_for(100);
    ck_assert_int_eq(rl_store_connected(s), 0);
    ck_assert_int_ge(g_nodes[0].cluster_slots, 1);
    r = decide(s, key_in(0, 8191, lo, sizeof(lo)));
    ck_assert_int_eq(r.res.status, RL_ERR);
    ck_assert_str_eq(r.res.error, "disconnected");
    ck_assert_int_eq(g_nodes[0].fcall, 0);
    rl_store_free(s);
}
END_TEST

/* Ops waiting on a backoff when the store is freed end "disconnected",
 * exactly once; so do ops in flight. */
START_TEST(test_free_ends_pending_ops)
{
    rl_store_t *s = new_store(1000, 60000, 0, 1);
    rl_store_op_t op;
    result_t waiting;
    result_t inflight;
    char lo[64];
    char lo2[64];

    key_in(0, 8191, lo, sizeof(lo));
    snprintf(lo2, sizeof(lo2), "%s", lo);
    memset(&waiting, 0, sizeof(waiting));
    memset(&inflight, 0, sizeof(inflight));
    queue(0, "-TRYAGAIN Multiple keys request during rehashing of slot\r\n", 0,
          1);
    memset(&op, 0, sizeof(op));
    op.base_key = lo;
    op.base_len = strlen(lo);
    op.limits = &g_limit;
    op.nlimits = 1;
    op.cost = 1;
    rl_store_decide(s, &op, result_cb, &waiting);
    run_for(20);
    g_nodes[0].qhead = g_nodes[0].qlen = 0;
    queue(0, NULL, 0, 1);
    op.base_key = lo2;
    rl_store_decide(s, &op, result_cb, &inflight);
    run_for(20);
    ck_assert_int_eq(waiting.calls + inflight.calls, 0);
    rl_store_free(s);
    ck_assert_int_eq(waiting.calls, 1);
    ck_assert_int_eq(inflight.calls, 1);
    ck_assert_str_eq(waiting.res.error, "disconnected");
    ck_assert_str_eq(inflight.res.error, "disconnected");
}
END_TEST

/* The nth (0-based) base key whose slot lies in [lo, hi]. */
static const char *key_nth(int lo, int hi, int nth, char *buf, size_t len)
{
    int i;

    for (i = 0; i < 100000; i++) {
        int n = snprintf(buf, len, "rl:{p|b%d}", i);
        int slot = rl_cluster_key_slot(buf, (size_t)n);

        if (slot >= lo && slot <= hi && nth-- == 0) {
            return buf;
        }
    }
    ck_abort_msg("no key found");
    return NULL;
}

/* Starts a decision on base (no loop run: it joins this pass's batch). */
static void start(rl_store_t *s, const char *base, result_t *r)
{
    rl_store_op_t op;

    memset(r, 0, sizeof(*r));
    memset(&op, 0, sizeof(op));
    op.base_key = base;
    op.base_len = strlen(base);
    op.limits = &g_limit;
    op.nlimits = 1;
    op.cost = 1;
    rl_store_decide(s, &op, result_cb, r);
}

static int pred_all(void *arg)
{
    result_t *r = arg;
    int i;

    for (i = 0; r[i].done_us >= 0; i++) {
        if (r[i].calls == 0) {
            return 0;
        }
    }
    return 1;
}

/* Starts n decisions on distinct keys of node 0's half in one pass and
 * waits until each has exactly one OK result. */
static void batch_of(rl_store_t *s, int n)
{
    char keys[8][64];
    result_t r[9];
    int i;

    ck_assert_int_le(n, 8);
    for (i = 0; i < n; i++) {
        start(s, key_nth(0, 8191, i, keys[i], sizeof(keys[i])), &r[i]);
    }
    memset(&r[n], 0, sizeof(r[n]));
    r[n].done_us = -1;
    ck_assert_msg(run_until(pred_all, r, 2000), "no results");
    run_for(5);
    for (i = 0; i < n; i++) {
        ck_assert_int_eq(r[i].calls, 1);
        assert_ok(&r[i]);
    }
}

/* The decisions of one loop pass go as one script call per master: five
 * on node 0 and three on node 1 make one batch each, two script calls
 * for eight decisions, each answered from its element. */
START_TEST(test_batch_per_master)
{
    rl_store_t *s = new_store(500, 60000, 0, 1);
    char keys[8][64];
    result_t r[9];
    int i;

    for (i = 0; i < 8; i++) {
        if (i < 5) {
            key_nth(0, 8191, i, keys[i], sizeof(keys[i]));
        } else {
            key_nth(8192, 16383, i, keys[i], sizeof(keys[i]));
        }
        start(s, keys[i], &r[i]);
    }
    memset(&r[8], 0, sizeof(r[8]));
    r[8].done_us = -1;
    ck_assert_msg(run_until(pred_all, r, 2000), "no results");
    run_for(5);
    for (i = 0; i < 8; i++) {
        ck_assert_int_eq(r[i].calls, 1);
        assert_ok(&r[i]);
    }
    ck_assert_int_eq(g_nodes[0].fcall, 1);
    ck_assert_int_eq(g_nodes[0].batches, 1);
    ck_assert_int_eq(g_nodes[0].batch_ops, 5);
    ck_assert_int_eq(g_nodes[1].fcall, 1);
    ck_assert_int_eq(g_nodes[1].batches, 1);
    ck_assert_int_eq(g_nodes[1].batch_ops, 3);
    /* A lone decision in a pass is the plain call. */
    decide_ok(s, keys[0]);
    ck_assert_int_eq(g_nodes[0].fcall, 2);
    ck_assert_int_eq(g_nodes[0].batches, 1);
    rl_store_free(s);
}
END_TEST

/* A loop kept busy by a timer that fires again at once until until_us
 * (rl_mono_us), as a worker's loop is while requests keep arriving; its
 * first n (at most BUSY_MAX) firings each start one decision on keys[i]
 * (a pass apiece). */
#define BUSY_MAX 5

typedef struct busy {
    struct event *ev;
    int64_t until_us;
    rl_store_t *s;
    char (*keys)[64];
    result_t *r;
    int64_t started_us[BUSY_MAX]; /* rl_mono_us before each start */
    int64_t added_us[BUSY_MAX];   /* and after it */
    int started;
    int n;
} busy_t;

static void busy_cb(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval now = {0, 0};
    busy_t *b = arg;

    (void)fd;
    (void)what;
    if (b->started < b->n) {
        b->started_us[b->started] = rl_mono_us();
        start(b->s, b->keys[b->started], &b->r[b->started]);
        b->added_us[b->started] = rl_mono_us();
        b->started++;
    }
    if (rl_mono_us() < b->until_us) {
        event_add(b->ev, &now);
    }
}

/* Runs the busy loop for busy_ms from now, then 50 ms more; returns its
 * start (rl_mono_us). */
static int64_t run_busy(busy_t *b, int busy_ms)
{
    static const struct timeval now = {0, 0};
    int64_t t0 = rl_mono_us();

    b->until_us = t0 + busy_ms * 1000;
    b->ev = evtimer_new(g_base, busy_cb, b);
    ck_assert_ptr_nonnull(b->ev);
    event_add(b->ev, &now);
    run_for(busy_ms + 50);
    event_free(b->ev);
    return t0;
}

/* The most script calls the decisions b started may take when a batch
 * goes 1 ms after its first decision at the earliest: a batch opened by
 * the decision started at before[j] takes every later one added before
 * before[j] + 1 ms, so the greedy count of such windows bounds them. */
static int calls_at_most(const busy_t *b)
{
    int windows = 1;
    int64_t opened = b->started_us[0];
    int i;

    for (i = 1; i < b->n; i++) {
        if (b->added_us[i] >= opened + 1000) {
            windows++;
            opened = b->started_us[i];
        }
    }
    return windows;
}

/* On a worker's loop (priorities of loop.h) a cluster batch goes once the
 * loop has nothing else ready: five decisions started in five passes of a
 * busy loop make one script call on their master, each answered (when a
 * loaded machine spreads the five passes over more than 1 ms, the 1 ms
 * flush may split them: calls_at_most); and it goes within
 * about 1 ms however long the loop stays busy (a lone decision under
 * 20 ms of it). */
START_TEST(test_batch_gathers_busy_passes_then_flushes_within_1ms)
{
    char keys[BUSY_MAX][64];
    result_t r[BUSY_MAX];
    busy_t b;
    rl_store_t *s;
    int64_t t0;
    int most;
    int i;

    ck_assert_int_eq(event_base_priority_init(g_base, RL_LOOP_PRIORITIES), 0);
    s = new_store(500, 60000, 0, 1);
    for (i = 0; i < BUSY_MAX; i++) {
        key_nth(0, 8191, i, keys[i], sizeof(keys[i]));
    }
    memset(r, 0, sizeof(r));
    memset(&b, 0, sizeof(b));
    b.s = s;
    b.keys = keys;
    b.r = r;
    b.n = BUSY_MAX;
    run_busy(&b, 5);
    for (i = 0; i < BUSY_MAX; i++) {
        ck_assert_int_eq(r[i].calls, 1);
        assert_ok(&r[i]);
    }
    most = calls_at_most(&b);
    ck_assert_msg(g_nodes[0].fcall >= 1 && g_nodes[0].fcall <= most,
                  "%d script calls for %d decisions started over %lld us",
                  g_nodes[0].fcall, BUSY_MAX,
                  (long long)(b.started_us[BUSY_MAX - 1] - b.started_us[0]));
    if (most == 1) {
        ck_assert_int_eq(g_nodes[0].batches, 1);
        ck_assert_int_eq(g_nodes[0].batch_ops, BUSY_MAX);
    }
    memset(r, 0, sizeof(r));
    b.started = 0;
    b.n = 1;
    t0 = run_busy(&b, 20);
    ck_assert_int_eq(r[0].calls, 1);
    assert_ok(&r[0]);
    ck_assert_msg(r[0].done_us - t0 < 10000,
                  "answered %lld us after its start, the loop busy 20 ms",
                  (long long)(r[0].done_us - t0));
    rl_store_free(s);
}
END_TEST

/* A timer armed late in a long loop pass (rl_loop_timer_at, which every
 * deadline and the batch's 1 ms use) fires at its time, not at the
 * pass's start plus its delay. */
typedef struct late_timer {
    struct event *ev;
    int64_t armed_us;
    int64_t fired_us;
} late_timer_t;

static void late_timer_fired(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ((late_timer_t *)arg)->fired_us = rl_mono_us();
}

static void late_timer_arm(evutil_socket_t fd, short what, void *arg)
{
    late_timer_t *t = arg;
    int64_t until = rl_mono_us() + 5000;

    (void)fd;
    (void)what;
    while (rl_mono_us() < until) {
    }
    t->armed_us = rl_mono_us();
    rl_loop_timer_at(t->ev, t->armed_us + 2000);
}

START_TEST(test_timer_armed_late_in_a_pass_waits_its_time)
{
    static const struct timeval now = {0, 0};
    late_timer_t t = {0};
    struct event *pass = evtimer_new(g_base, late_timer_arm, &t);

    t.ev = evtimer_new(g_base, late_timer_fired, &t);
    ck_assert_ptr_nonnull(pass);
    ck_assert_ptr_nonnull(t.ev);
    event_add(pass, &now);
    run_for(50);
    ck_assert_msg(t.fired_us - t.armed_us >= 1900,
                  "a 2 ms timer fired %lld us after it was armed",
                  (long long)(t.fired_us - t.armed_us));
    event_free(pass);
    event_free(t.ev);
}
END_TEST

/* A batch answered TRYAGAIN (or CLUSTERDOWN, or NOTLOCAL: a key of it
 * not served there) did not run: each decision goes alone, once, and
 * each gets its own result. Script calls: one batch, then one each. */
START_TEST(test_batch_transient_falls_back)
{
    static const char *const answers[] = {
        "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
        "-CLUSTERDOWN The cluster is down\r\n",
        "-NOTLOCAL ERR Script attempted to access a non local key in a "
        "cluster node\r\n",
    };
    rl_store_t *s = new_store(500, 60000, 0, 1);
    size_t k;
    int calls = 0;

    for (k = 0; k < sizeof(answers) / sizeof(answers[0]); k++) {
        queue(0, answers[k], 0, 0);
        batch_of(s, 4);
        calls += 1 + 4;
        ck_assert_int_eq(g_nodes[0].fcall, calls);
        ck_assert_int_eq(g_nodes[0].batches, (int)k + 1);
    }
    rl_store_free(s);
}
END_TEST

/* A batch whose second and third decisions answer NOTLOCAL (a key of
 * each moved off the node mid-batch; each request reads every key before
 * it writes, so those did not run): only those two go alone, each once;
 * the other two are answered from the batch. */
START_TEST(test_batch_notlocal_element_alone)
{
    rl_store_t *s = new_store(500, 60000, 0, 1);

    g_nodes[0].notlocal = 0x6;
    batch_of(s, 4);
    ck_assert_int_eq(g_nodes[0].batches, 1);
    ck_assert_int_eq(g_nodes[0].batch_ops, 4);
    ck_assert_int_eq(g_nodes[0].fcall, 1 + 2);
    rl_store_free(s);
}
END_TEST

/* A batch that meets MOVED (the slots went to node 1 mid-reshard): each
 * decision goes alone, meets MOVED itself, and runs on node 1 exactly
 * once. */
START_TEST(test_batch_moved_falls_back)
{
    rl_store_t *s = new_store(500, 60000, 0, 1);
    char moved[96];

    redirect(moved, sizeof(moved), "MOVED", 100, 1);
    queue(0, moved, 0, 1); /* every command on node 0 from now on */
    batch_of(s, 3);
    ck_assert_int_eq(g_nodes[0].batches, 1);
    ck_assert_int_eq(g_nodes[0].fcall, 1 + 3);
    ck_assert_int_eq(g_nodes[1].fcall, 3);
    ck_assert_int_eq(g_nodes[1].batches, 0);
    rl_store_free(s);
}
END_TEST

/* A batch whose connection times out ends every decision once with
 * "timeout", none retried (the batch may have run). */
START_TEST(test_batch_timeout_not_retried)
{
    rl_store_t *s = new_store(100, 60000, 0, 1);
    result_t r[4];
    int i;

    queue(0, NULL, 0, 0);
    for (i = 0; i < 3; i++) {
        char key[64];

        start(s, key_nth(0, 8191, i, key, sizeof(key)), &r[i]);
    }
    memset(&r[3], 0, sizeof(r[3]));
    r[3].done_us = -1;
    ck_assert_msg(run_until(pred_all, r, 2000), "no results");
    run_for(20);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(r[i].calls, 1);
        ck_assert_int_eq(r[i].res.status, RL_ERR);
        ck_assert_str_eq(r[i].res.error, "timeout");
    }
    ck_assert_int_eq(g_nodes[0].fcall, 1);
    rl_store_free(s);
}
END_TEST

/* Builds the suite. */
static Suite *store_cluster_suite(void)
{
    Suite *s = suite_create("store_cluster");
    TCase *tc = tcase_create("fake");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_routes_by_slot);
    tcase_add_test(tc, test_layered_cross_master);
    tcase_add_test(tc, test_cross_master_denies);
    tcase_add_test(tc, test_cross_master_failure);
    tcase_add_test(tc, test_nodes_and_coverage);
    tcase_add_test(tc, test_moved_updates_map);
    tcase_add_test(tc, test_moved_to_new_node);
    tcase_add_test(tc, test_ask_once);
    tcase_add_test(tc, test_ask_then_tryagain);
    tcase_add_test(tc, test_transient_errors_retried);
    tcase_add_test(tc, test_lasting_errors_end_at_deadline);
    tcase_add_test(tc, test_redirect_loop);
    tcase_add_test(tc, test_deadline_spans_retries);
    tcase_add_test(tc, test_deadline_after_backoff);
    tcase_add_test(tc, test_deadline_before_map);
    tcase_add_test(tc, test_missing_function_on_node);
    tcase_add_test(tc, test_other_errors);
    tcase_add_test(tc, test_not_a_cluster);
    tcase_add_test(tc, test_free_ends_pending_ops);
    tcase_add_test(tc, test_batch_per_master);
    tcase_add_test(tc, test_batch_gathers_busy_passes_then_flushes_within_1ms);
    tcase_add_test(tc, test_timer_armed_late_in_a_pass_waits_its_time);
    tcase_add_test(tc, test_batch_transient_falls_back);
    tcase_add_test(tc, test_batch_notlocal_element_alone);
    tcase_add_test(tc, test_batch_moved_falls_back);
    tcase_add_test(tc, test_batch_timeout_not_retried);
    suite_add_tcase(s, tc);
    return s;
}

/* Makes the fakes' script replies (before the tests fork). */
static void replies_init(void)
{
    static const int64_t ok[7] = {1700000000000, 1, 1, 9, 30000, 0, 0};
    static const int64_t deny[7] = {1700000000000, 0, 0, 0, 30000, 1000, 0};

    rl_test_reply_resp(g_ok_reply, sizeof(g_ok_reply), ok, 1, 0);
    rl_test_reply_resp(g_deny_reply, sizeof(g_deny_reply), deny, 1, 0);
}

int main(void)
{
    SRunner *sr;
    int failed;

    replies_init();
    sr = srunner_create(store_cluster_suite());

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
