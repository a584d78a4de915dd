/* The Sentinel client's parsers (sentinel_parse.c): the reply to SENTINEL
 * get-master-addr-by-name, to ROLE, the subscription's replies and the
 * +switch-master message, from RESP bytes read by hiredis as the client
 * reads them. Good replies, nil, wrong types, too long hosts, bad ports,
 * NUL bytes and other masters' messages. Pure: no Redis. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "sentinel_parse.h"
#include "util.h"

/* The one reply in len bytes of RESP (the caller frees it). */
static redisReply *reply_n(const char *resp, size_t len)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;

    ck_assert_ptr_nonnull(rd);
    ck_assert_int_eq(redisReaderFeed(rd, resp, len), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    redisReaderFree(rd);
    return reply;
}

/* The one reply in the RESP string resp. */
static redisReply *reply_of(const char *resp)
{
    return reply_n(resp, strlen(resp));
}

/* A bad-input case: RESP bytes (with their length, NUL bytes allowed). */
typedef struct {
    const char *resp;
    size_t len;
} bad_reply_t;

#define BAD(s)                                                                 \
    {                                                                          \
        s, sizeof(s) - 1                                                       \
    }
#define RESP(s) s, sizeof(s) - 1
#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Replies that name a master, the host buffer's size and the result. */
static const struct {
    const char *resp;
    size_t hostsize;
    const char *host;
    int port;
} good_master_addr[] = {
    {"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n", RL_SENTINEL_HOST_MAX,
     "127.0.0.1", 6380},
    {"*2\r\n$7\r\nfd00::1\r\n$5\r\n65535\r\n", RL_SENTINEL_HOST_MAX, "fd00::1",
     65535},
    /* The longest host that fits the buffer with its NUL. */
    {"*2\r\n$7\r\n1.2.3.4\r\n$1\r\n1\r\n", 8, "1.2.3.4", 1},
};

START_TEST(master_addr_good)
{
    redisReply *r = reply_of(good_master_addr[_i].resp);
    char host[RL_SENTINEL_HOST_MAX];
    int port = 0;

    ck_assert_int_eq(rl_sentinel_parse_master_addr(
                         r, host, good_master_addr[_i].hostsize, &port),
                     RL_OK);
    ck_assert_str_eq(host, good_master_addr[_i].host);
    ck_assert_int_eq(port, good_master_addr[_i].port);
    /* One byte less and the host no longer fits. */
    ck_assert_int_eq(rl_sentinel_parse_master_addr(
                         r, host, strlen(good_master_addr[_i].host), &port),
                     RL_ERR);
    ck_assert_str_eq(host, "");
    freeReplyObject(r);
}
END_TEST

/* Replies that name no master: each is refused and leaves host "". */
static const bad_reply_t bad_master_addr[] = {
    BAD("$-1\r\n"),                                         /* unknown name */
    BAD("*-1\r\n"),                                         /* nil array */
    BAD("-ERR No such master with that name\r\n"),          /* error */
    BAD("+OK\r\n"),                                         /* status */
    BAD(":6379\r\n"),                                       /* integer */
    BAD("*0\r\n"),                                          /* empty */
    BAD("*1\r\n$9\r\n127.0.0.1\r\n"),                       /* no port */
    BAD("*3\r\n$1\r\na\r\n$4\r\n6379\r\n$1\r\nx\r\n"),      /* extra field */
    BAD("*2\r\n$9\r\n127.0.0.1\r\n:6379\r\n"),              /* port integer */
    BAD("*2\r\n+127.0.0.1\r\n$4\r\n6379\r\n"),              /* host status */
    BAD("*2\r\n$-1\r\n$4\r\n6379\r\n"),                     /* host nil */
    BAD("*2\r\n$0\r\n\r\n$4\r\n6379\r\n"),                  /* host empty */
    BAD("*2\r\n$9\r\n127.0.0.1\r\n$1\r\n0\r\n"),            /* port 0 */
    BAD("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n65536\r\n"),        /* port too big */
    BAD("*2\r\n$9\r\n127.0.0.1\r\n$11\r\n99999999999\r\n"), /* overflow */
    BAD("*2\r\n$9\r\n127.0.0.1\r\n$2\r\n-1\r\n"),           /* negative */
    BAD("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n 6379\r\n"),        /* space */
    BAD("*2\r\n$9\r\n127.0.0.1\r\n$7\r\n6379abc\r\n"),      /* trailing junk */
    BAD("*2\r\n$9\r\n127.0.0.1\r\n$0\r\n\r\n"),             /* port empty */
    BAD("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n63\x00"
        "79\r\n"),                                       /* NUL in port */
    BAD("*2\r\n$10\r\n127.0\x00.0.1\r\n$4\r\n6379\r\n"), /* NUL in host */
    BAD("*2\r\n$64\r\n"
        "1234567890123456789012345678901234567890123456789012345678901234"
        "\r\n$4\r\n6379\r\n"), /* host of 64 bytes: no room for its NUL */
};

START_TEST(master_addr_refused)
{
    const bad_reply_t *c = &bad_master_addr[_i];
    redisReply *r = reply_n(c->resp, c->len);
    char host[RL_SENTINEL_HOST_MAX] = "stale";
    int port = 0;

    ck_assert_int_eq(
        rl_sentinel_parse_master_addr(r, host, sizeof(host), &port), RL_ERR);
    ck_assert_str_eq(host, "");
    freeReplyObject(r);
}
END_TEST

START_TEST(master_addr_null_reply)
{
    char host[8] = "stale";
    int port = 0;

    /* A timeout or a lost connection: no reply at all. */
    ck_assert_int_eq(
        rl_sentinel_parse_master_addr(NULL, host, sizeof(host), &port), RL_ERR);
    ck_assert_str_eq(host, "");
}
END_TEST

/* ROLE replies and whether each says master. */
static const struct {
    const char *resp;
    size_t len;
    int master;
} role_cases[] = {
    {RESP("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"), 1},
    {RESP("*1\r\n$6\r\nmaster\r\n"), 1},
    {RESP("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n"
          ":0\r\n"),
     0},
    {RESP("*2\r\n$8\r\nsentinel\r\n*0\r\n"), 0},
    {RESP("*0\r\n"), 0},
    {RESP("-NOAUTH Authentication required.\r\n"), 0},
    {RESP("+master\r\n"), 0},
    {RESP("$6\r\nmaster\r\n"), 0},
    {RESP("*1\r\n+master\r\n"), 0},
    {RESP("*1\r\n$7\r\nmasters\r\n"), 0},
    {RESP("*1\r\n$8\r\nmaster\x00x\r\n"), 0}, /* NUL after "master" */
    {RESP("*1\r\n$6\r\nMASTER\r\n"), 0},
};

START_TEST(role_is_master)
{
    redisReply *r = reply_n(role_cases[_i].resp, role_cases[_i].len);

    ck_assert_int_eq(rl_sentinel_parse_role(r), role_cases[_i].master);
    freeReplyObject(r);
}
END_TEST

START_TEST(role_null_reply)
{
    ck_assert_int_eq(rl_sentinel_parse_role(NULL), 0);
}
END_TEST

/* Replies on the subscription and what each is. */
static const struct {
    const char *resp;
    size_t len;
    rl_sentinel_parse_kind_t kind;
} sub_cases[] = {
    {RESP("*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n"),
     RL_SENTINEL_SUB_SUBSCRIBED},
    {RESP("*2\r\n$4\r\npong\r\n$0\r\n\r\n"), RL_SENTINEL_SUB_PONG},
    {RESP("*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$3\r\nabc\r\n"),
     RL_SENTINEL_SUB_MESSAGE},
    {RESP("*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\nc\r\n$1\r\nm\r\n"),
     RL_SENTINEL_SUB_OTHER},
    {RESP("*2\r\n$7\r\nmessage\r\n$1\r\nc\r\n"), RL_SENTINEL_SUB_OTHER},
    {RESP("*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n:1\r\n"), RL_SENTINEL_SUB_OTHER},
    {RESP("*2\r\n$5\r\npong\x00\r\n$0\r\n\r\n"), RL_SENTINEL_SUB_OTHER},
    {RESP("+PONG\r\n"), RL_SENTINEL_SUB_BAD},
    {RESP("-ERR unknown command\r\n"), RL_SENTINEL_SUB_BAD},
    {RESP("*1\r\n$4\r\npong\r\n"), RL_SENTINEL_SUB_BAD},
    {RESP("*2\r\n:1\r\n$4\r\npong\r\n"), RL_SENTINEL_SUB_BAD},
    {RESP("$4\r\npong\r\n"), RL_SENTINEL_SUB_BAD},
};

START_TEST(sub_reply_kind)
{
    redisReply *r = reply_n(sub_cases[_i].resp, sub_cases[_i].len);
    const char *msg = NULL;
    size_t len = 0;

    ck_assert_int_eq(rl_sentinel_parse_sub(r, &msg, &len), sub_cases[_i].kind);
    if (sub_cases[_i].kind == RL_SENTINEL_SUB_MESSAGE) {
        ck_assert_uint_eq(len, 3);
        ck_assert_int_eq(memcmp(msg, "abc", 3), 0);
    }
    freeReplyObject(r);
}
END_TEST

START_TEST(sub_null_reply)
{
    const char *msg = NULL;
    size_t len = 0;

    ck_assert_int_eq(rl_sentinel_parse_sub(NULL, &msg, &len),
                     RL_SENTINEL_SUB_BAD);
}
END_TEST

/* Parses the message text m (strlen) for "mymaster". */
static int sw(const char *m, char *host, size_t hostsize, int *port)
{
    return rl_sentinel_parse_switch(m, strlen(m), "mymaster", host, hostsize,
                                    port);
}

START_TEST(switch_good)
{
    char host[RL_SENTINEL_HOST_MAX];
    int port = 0;

    ck_assert_int_eq(
        sw("mymaster 127.0.0.1 6379 127.0.0.1 6380", host, sizeof(host), &port),
        RL_OK);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_int_eq(port, 6380);
    ck_assert_int_eq(
        sw(" mymaster\t::1 1 fd00::2  65535\r\n", host, sizeof(host), &port),
        RL_OK);
    ck_assert_str_eq(host, "fd00::2");
    ck_assert_int_eq(port, 65535);
    /* Only the message's length counts: bytes after it are not read. */
    ck_assert_int_eq(rl_sentinel_parse_switch("mymaster a 1 10.0.0.9 7001 9",
                                              26, "mymaster", host,
                                              sizeof(host), &port),
                     RL_OK);
    ck_assert_str_eq(host, "10.0.0.9");
    ck_assert_int_eq(port, 7001);
}
END_TEST

/* Messages refused for "mymaster", as (bytes, length). */
static const bad_reply_t bad_switch[] = {
    BAD("other 127.0.0.1 6379 127.0.0.1 6380"),     /* another master */
    BAD("mymaster2 127.0.0.1 6379 127.0.0.1 6380"), /* a longer name */
    BAD("mymaste 127.0.0.1 6379 127.0.0.1 6380"),   /* a prefix of it */
    BAD("MYMASTER 127.0.0.1 6379 127.0.0.1 6380"),
    BAD(""),
    BAD("   "),
    BAD("mymaster"),
    BAD("mymaster 127.0.0.1 6379 127.0.0.1"),        /* no new port */
    BAD("mymaster 127.0.0.1 6379 127.0.0.1 6380 x"), /* extra field */
    BAD("mymaster 127.0.0.1 63x9 127.0.0.1 6380"),   /* old port */
    BAD("mymaster 127.0.0.1 -1 127.0.0.1 6380"),
    BAD("mymaster 127.0.0.1 6379 127.0.0.1 0"),
    BAD("mymaster 127.0.0.1 6379 127.0.0.1 65536"),
    BAD("mymaster 127.0.0.1 6379 127.0.0.1 -6380"),
    BAD("mymaster 127.0.0.1 6379 127.0.0.1 +6380"),
    BAD("mymaster 127.0.0.1 6379 127.0.0.1 6380x"),
    BAD("mymaster 127.0.0.1 6379 127.0.0.1 99999999999"),
    BAD("mymaster 127.0.0.1 6379 "
        "1234567890123456789012345678901234567890123456789012345678901234"
        " 6380"), /* new host of 64 bytes: no room for its NUL */
    BAD("mymaster 127.0.0.1 6379 127.0.0.1\x00junk 6380"), /* NUL in host */
    BAD("mymaster 127.0.0.1 6379 127.0.0.1 63\x00"
        "80"),                                         /* NUL in port */
    BAD("mymaster\x00 127.0.0.1 6379 127.0.0.1 6380"), /* NUL in name */
    BAD("mymaster 127.0.0.1 6379 127.0.0.1 6380\x00"), /* NUL at end */
};

START_TEST(switch_refused)
{
    char host[RL_SENTINEL_HOST_MAX] = "stale";
    int port = 0;

    ck_assert_int_eq(rl_sentinel_parse_switch(bad_switch[_i].resp,
                                              bad_switch[_i].len, "mymaster",
                                              host, sizeof(host), &port),
                     RL_ERR);
    ck_assert_str_eq(host, "");
}
END_TEST

START_TEST(switch_through_the_reader)
{
    /* A real message as the subscriber reads it, then one with a NUL byte
     * inside its new host: the whole bulk string is read, and refused. */
    static const char ok[] = "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n"
                             "$31\r\nmymaster ::1 6379 10.0.0.2 6380\r\n";
    static const char nul[] = "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n"
                              "$27\r\nmymaster a 1 10.0.0.1\x00 6380\r\n";
    redisReply *r = reply_n(ok, sizeof(ok) - 1);
    char host[RL_SENTINEL_HOST_MAX];
    const char *msg = NULL;
    size_t len = 0;
    int port = 0;

    ck_assert_int_eq(rl_sentinel_parse_sub(r, &msg, &len),
                     RL_SENTINEL_SUB_MESSAGE);
    ck_assert_int_eq(rl_sentinel_parse_switch(msg, len, "mymaster", host,
                                              sizeof(host), &port),
                     RL_OK);
    ck_assert_str_eq(host, "10.0.0.2");
    ck_assert_int_eq(port, 6380);
    freeReplyObject(r);
    r = reply_n(nul, sizeof(nul) - 1);
    ck_assert_int_eq(rl_sentinel_parse_sub(r, &msg, &len),
                     RL_SENTINEL_SUB_MESSAGE);
    ck_assert_uint_eq(len, 27);
    ck_assert_int_eq(rl_sentinel_parse_switch(msg, len, "mymaster", host,
                                              sizeof(host), &port),
                     RL_ERR);
    freeReplyObject(r);
}
END_TEST

/* Runs the suite. */
int main(void)
{
    Suite *s = suite_create("sentinel_parse");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, master_addr_good, 0, NCASES(good_master_addr));
    tcase_add_loop_test(tc, master_addr_refused, 0, NCASES(bad_master_addr));
    tcase_add_test(tc, master_addr_null_reply);
    tcase_add_loop_test(tc, role_is_master, 0, NCASES(role_cases));
    tcase_add_test(tc, role_null_reply);
    tcase_add_loop_test(tc, sub_reply_kind, 0, NCASES(sub_cases));
    tcase_add_test(tc, sub_null_reply);
    tcase_add_test(tc, switch_good);
    tcase_add_loop_test(tc, switch_refused, 0, NCASES(bad_switch));
    tcase_add_test(tc, switch_through_the_reader);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
