/* Unit tests of cluster.c: the CRC16 and hash tags of the Redis Cluster
 * specification (with the specification's own examples and slots Redis
 * itself computes), node addresses, MOVED/ASK parsing, and CLUSTER SLOTS
 * replies decoded from raw RESP, malformed ones included. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "cluster.h"

/* Decodes one RESP reply from text (the caller frees it). */
static redisReply *resp(const char *text)
{
    redisReader *r = redisReaderCreate();
    void *out = NULL;

    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(redisReaderFeed(r, text, strlen(text)), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(r, &out), REDIS_OK);
    ck_assert_ptr_nonnull(out);
    redisReaderFree(r);
    return out;
}

START_TEST(test_crc16_reference)
{
    /* The check value of CRC16/XMODEM, quoted by the specification. */
    ck_assert_uint_eq(rl_cluster_crc16("123456789", 9), 0x31C3);
    ck_assert_uint_eq(rl_cluster_crc16("", 0), 0);
}
END_TEST

/* Slots as CLUSTER KEYSLOT on redis-server 7.0 answers them. */
static const struct {
    const char *key;
    int slot;
} slot_rows[] = {
    {"foo", 12182},
    {"bar", 5061},
    {"123456789", 12739},
    /* The specification's hash tag examples. */
    {"{user1000}.following", 3443},
    {"{user1000}.followers", 3443},
    {"user1000", 3443},
    {"foo{}{bar}", 8363},    /* empty tag: the whole key */
    {"foo{{bar}}zap", 4015}, /* the tag is "{bar" */
    {"{bar", 4015},
    {"foo{bar}{zap}", 5061}, /* the first tag only: "bar" */
    {"{", 4092},             /* no closing brace: the whole key */
    {"}{", 12793},
    /* ratelimitd's keys: only the braced part counts. */
    {"rl:{p|t1}:f1m", 3571},
    {"other-prefix:{p|t1}:g1s:b", 3571},
    {"p|t1", 3571},
};

START_TEST(test_key_slot_table)
{
    const char *k = slot_rows[_i].key;

    ck_assert_msg(rl_cluster_key_slot(k, strlen(k)) == slot_rows[_i].slot,
                  "%s: %d, want %d", k, rl_cluster_key_slot(k, strlen(k)),
                  slot_rows[_i].slot);
}
END_TEST

START_TEST(test_key_slot_binary_and_range)
{
    /* Length-delimited, NUL bytes included; always within 0..16383. */
    static const char bin[] = "a{\0b}c";
    char key[64];
    int i;

    ck_assert_int_eq(rl_cluster_key_slot(bin, sizeof(bin) - 1),
                     rl_cluster_crc16("\0b", 2) % RL_CLUSTER_SLOTS);
    for (i = 0; i < 2000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i * 7919);
        int s = rl_cluster_key_slot(key, (size_t)n);
        ck_assert(s >= 0 && s < RL_CLUSTER_SLOTS);
    }
}
END_TEST

START_TEST(test_addr_parse)
{
    static const struct {
        const char *in;
        int ok;
        const char *host;
        int port;
        const char *name;
    } rows[] = {
        {"127.0.0.1:7000", 1, "127.0.0.1", 7000, "127.0.0.1:7000"},
        {"10.1.2.3:1", 1, "10.1.2.3", 1, "10.1.2.3:1"},
        {"[::1]:7000", 1, "::1", 7000, "[::1]:7000"},
        {"::1:7000", 1, "::1", 7000, "[::1]:7000"}, /* as MOVED writes IPv6 */
        {"fe80::1:65535", 1, "fe80::1", 65535, "[fe80::1]:65535"},
        {"127.0.0.1:0", 0, NULL, 0, NULL},
        {"127.0.0.1:65536", 0, NULL, 0, NULL},
        {"127.0.0.1:", 0, NULL, 0, NULL},
        {"127.0.0.1", 0, NULL, 0, NULL},
        {":7000", 0, NULL, 0, NULL},
        {"redis-1:7000", 0, NULL, 0, NULL}, /* never resolved */
        {"localhost:7000", 0, NULL, 0, NULL},
        {"127.0.0.1:70a0", 0, NULL, 0, NULL},
        {"[::1]7000", 0, NULL, 0, NULL},
        {"[::1]:", 0, NULL, 0, NULL},
        {"", 0, NULL, 0, NULL},
    };
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        rl_cluster_addr_t a;
        char name[RL_CLUSTER_NAME_MAX];
        int rc = rl_cluster_addr_parse(rows[i].in, strlen(rows[i].in), &a);

        ck_assert_msg((rc == 0) == rows[i].ok, "%s: rc %d", rows[i].in, rc);
        if (rows[i].ok) {
            ck_assert_str_eq(a.host, rows[i].host);
            ck_assert_int_eq(a.port, rows[i].port);
            rl_cluster_addr_name(&a, name, sizeof(name));
            ck_assert_str_eq(name, rows[i].name);
        }
    }
}
END_TEST

START_TEST(test_redirect_parse)
{
    static const struct {
        const char *err;
        rl_cluster_redir_t kind;
        int slot;
        const char *host;
        int port;
    } rows[] = {
        {"MOVED 3999 127.0.0.1:6381", RL_CLUSTER_REDIR_MOVED, 3999, "127.0.0.1",
         6381},
        {"ASK 16383 10.0.0.2:7000", RL_CLUSTER_REDIR_ASK, 16383, "10.0.0.2",
         7000},
        {"MOVED 0 ::1:7001", RL_CLUSTER_REDIR_MOVED, 0, "::1", 7001},
        {"MOVED 16384 127.0.0.1:6381", RL_CLUSTER_REDIR_NONE, 0, NULL, 0},
        {"MOVED -1 127.0.0.1:6381", RL_CLUSTER_REDIR_NONE, 0, NULL, 0},
        {"MOVED 12 host.example:6381", RL_CLUSTER_REDIR_NONE, 0, NULL, 0},
        {"MOVED 12", RL_CLUSTER_REDIR_NONE, 0, NULL, 0},
        {"MOVED ", RL_CLUSTER_REDIR_NONE, 0, NULL, 0},
        {"MOVED12 127.0.0.1:1", RL_CLUSTER_REDIR_NONE, 0, NULL, 0},
        {"ASKING 1 127.0.0.1:1", RL_CLUSTER_REDIR_NONE, 0, NULL, 0},
        {"TRYAGAIN Multiple keys request during rehashing of slot",
         RL_CLUSTER_REDIR_NONE, 0, NULL, 0},
        {"CLUSTERDOWN The cluster is down", RL_CLUSTER_REDIR_NONE, 0, NULL, 0},
        {"ERR unknown command", RL_CLUSTER_REDIR_NONE, 0, NULL, 0},
    };
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        rl_cluster_addr_t a;
        int slot = -1;
        rl_cluster_redir_t k = rl_cluster_parse_redirect(
            rows[i].err, strlen(rows[i].err), &slot, &a);

        ck_assert_msg(k == rows[i].kind, "%s: kind %d", rows[i].err, (int)k);
        if (k != RL_CLUSTER_REDIR_NONE) {
            ck_assert_int_eq(slot, rows[i].slot);
            ck_assert_str_eq(a.host, rows[i].host);
            ck_assert_int_eq(a.port, rows[i].port);
        }
    }
}
END_TEST

/* Records what a CLUSTER SLOTS walk reports. */
typedef struct walk_log {
    int n;
    char lines[16][96];
} walk_log_t;

static int walk_record(void *arg, int start, int end, int role,
                       const rl_cluster_addr_t *a)
{
    walk_log_t *w = arg;

    ck_assert_int_lt(w->n, 16);
    snprintf(w->lines[w->n++], sizeof(w->lines[0]), "%d-%d %d %s:%d", start,
             end, role, a->host, a->port);
    return 0;
}

START_TEST(test_slots_walk)
{
    /* Two ranges, as redis-server 7.0 answers (node ids and the metadata
     * map included); the second master is listed with an empty host. */
    redisReply *r =
        resp("*2\r\n"
             "*4\r\n:0\r\n:8191\r\n"
             "*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$"
             "40\r\n0123456789012345678901234567890123456789\r\n*0\r\n"
             "*4\r\n$9\r\n127.0.0.1\r\n:7003\r\n$"
             "40\r\n1123456789012345678901234567890123456789\r\n*0\r\n"
             "*3\r\n:8192\r\n:16383\r\n"
             "*3\r\n$0\r\n\r\n:7001\r\n$"
             "40\r\n2123456789012345678901234567890123456789\r\n");
    walk_log_t w;
    int skipped = -1;

    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(rl_cluster_slots_walk(r, "10.9.9.9", NULL, NULL, &skipped),
                     2);
    ck_assert_int_eq(skipped, 0);
    ck_assert_int_eq(
        rl_cluster_slots_walk(r, "10.9.9.9", walk_record, &w, NULL), 2);
    ck_assert_int_eq(w.n, 3);
    ck_assert_str_eq(w.lines[0], "0-8191 0 127.0.0.1:7000");
    ck_assert_str_eq(w.lines[1], "0-8191 1 127.0.0.1:7003");
    ck_assert_str_eq(w.lines[2], "8192-16383 0 10.9.9.9:7001");
    freeReplyObject(r);
}
END_TEST

START_TEST(test_slots_walk_skips_unreachable)
{
    /* "?" (unknown endpoint) and hostnames cannot be reached without DNS. */
    redisReply *r =
        resp("*2\r\n"
             "*4\r\n:0\r\n:100\r\n*2\r\n$1\r\n?\r\n:7000\r\n*2\r\n$9\r\n127.0."
             "0.1\r\n:7003\r\n"
             "*3\r\n:101\r\n:200\r\n*2\r\n$13\r\nredis.example\r\n:7001\r\n");
    walk_log_t w;
    int skipped = 0;

    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(
        rl_cluster_slots_walk(r, "127.0.0.1", walk_record, &w, &skipped), 2);
    ck_assert_int_eq(skipped, 2);
    ck_assert_int_eq(w.n, 1);
    ck_assert_str_eq(w.lines[0], "0-100 1 127.0.0.1:7003");
    freeReplyObject(r);
}
END_TEST

/* Replies that are not a CLUSTER SLOTS answer: each is rejected whole. */
static const char *const bad_slots[] = {
    "-ERR This instance has cluster support disabled\r\n",
    ":1\r\n",
    "*1\r\n:1\r\n",
    "*1\r\n*2\r\n:0\r\n:1\r\n", /* no master */
    "*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n", /* start > end
                                                                   */
    "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n",
    "*1\r\n*3\r\n:-1\r\n:10\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n",
    "*1\r\n*3\r\n$1\r\n0\r\n:10\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n",
    "*1\r\n*3\r\n:0\r\n:10\r\n*1\r\n$9\r\n127.0.0.1\r\n", /* no port */
    "*1\r\n*3\r\n:0\r\n:10\r\n*2\r\n$9\r\n127.0.0.1\r\n$4\r\n7000\r\n",
    "*1\r\n*3\r\n:0\r\n:10\r\n*2\r\n$9\r\n127.0.0.1\r\n:0\r\n",
    "*1\r\n*3\r\n:0\r\n:10\r\n*2\r\n$9\r\n127.0.0.1\r\n:65536\r\n",
    "*1\r\n*3\r\n:0\r\n:10\r\n:7000\r\n",
};

START_TEST(test_slots_walk_rejects)
{
    redisReply *r = resp(bad_slots[_i]);

    ck_assert_msg(rl_cluster_slots_walk(r, "127.0.0.1", NULL, NULL, NULL) == -1,
                  "row %d", _i);
    freeReplyObject(r);
}
END_TEST

/* Builds the suite. */
static Suite *cluster_suite(void)
{
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("pure");

    tcase_add_test(tc, test_crc16_reference);
    tcase_add_loop_test(tc, test_key_slot_table, 0,
                        (int)(sizeof(slot_rows) / sizeof(slot_rows[0])));
    tcase_add_test(tc, test_key_slot_binary_and_range);
    tcase_add_test(tc, test_addr_parse);
    tcase_add_test(tc, test_redirect_parse);
    tcase_add_test(tc, test_slots_walk);
    tcase_add_test(tc, test_slots_walk_skips_unreachable);
    tcase_add_loop_test(tc, test_slots_walk_rejects, 0,
                        (int)(sizeof(bad_slots) / sizeof(bad_slots[0])));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cluster_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
