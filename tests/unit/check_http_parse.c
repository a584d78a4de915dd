/* The HTTP request-head parser (http_parse.c): the search for the end of
 * a head (CRLF only, empty lines before the request line) fed whole and
 * one byte at a time, and the Connection options of a parsed head. Pure:
 * no sockets. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Inputs to the head search: the result, and for 1 where the head starts
 * (skip) and ends. */
static const struct {
    const char *in;
    int rc;
    size_t skip, end;
} scan_cases[] = {
    {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, 0, 27},
    {"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1, 0, 18},
    {"GET / HTTP/1.1\r\nHost: x\r\n", 0, 0, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\n\r", 0, 0, 0},
    /* Empty lines before the request line: up to four are dropped. */
    {"\r\nGET / HTTP/1.1\r\n\r\n", 1, 2, 20},
    {"\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1, 8, 26},
    {"\r\n\r\n", 0, 4, 0},
    {"\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", 400, 0, 0},
    /* A bare LF anywhere, the end of the header section included. */
    {"GET / HTTP/1.1\r\nHost: x\r\n\n", 400, 0, 0},
    {"GET / HTTP/1.1\nHost: x\n\n", 400, 0, 0},
    {"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400, 0, 0},
    {"GET / HTTP/1.1\n", 400, 0, 0},
    {"\nGET / HTTP/1.1\r\n\r\n", 400, 0, 0},
    {"\r\n\nGET / HTTP/1.1\r\n\r\n", 400, 0, 0},
    /* A CR that ends no line is the parser's to refuse. */
    {"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 1, 0, 26},
};

/* Runs one scan case fed in pieces of step bytes (0: whole). */
static void scan_in_steps(int i, size_t step)
{
    const char *in = scan_cases[i].in;
    size_t len = strlen(in), off = 0, end = 0;
    rl_http_head_scan_t st;
    const char *msg = NULL;
    int rc = 0;

    memset(&st, 0, sizeof(st));
    while (off < len && rc == 0) {
        size_t n = step == 0 || len - off < step ? len - off : step;

        rc = rl_http_parse_head_scan(&st, in + off, n, &end, &msg);
        off += n;
    }
    ck_assert_msg(rc == scan_cases[i].rc, "%d: rc %d, step %zu", i, rc, step);
    if (rc == 1) {
        ck_assert_uint_eq(st.skip, scan_cases[i].skip);
        ck_assert_uint_eq(end, scan_cases[i].end);
    } else if (rc == 0) {
        ck_assert_uint_eq(st.pos, len);
        ck_assert_uint_eq(st.skip, scan_cases[i].skip);
    } else {
        ck_assert_ptr_nonnull(msg);
    }
}

START_TEST(head_scan)
{
    scan_in_steps(_i, 0);
    scan_in_steps(_i, 1);
    scan_in_steps(_i, 3);
}
END_TEST

/* Heads and whether the connection stays open after the reply: 0 no,
 * 1 yes, 2 yes because an HTTP/1.0 request asked (the reply says so). */
static const struct {
    const char *head;
    int keep_alive;
} conn_cases[] = {
    {"GET / HTTP/1.1\r\n\r\n", 1},
    {"GET / HTTP/1.0\r\n\r\n", 0},
    {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0},
    {"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", 0},
    {"GET / HTTP/1.1\r\nConnection: TE, close\r\n\r\n", 0},
    {"GET / HTTP/1.1\r\nConnection: close, TE\r\n\r\n", 0},
    {"GET / HTTP/1.1\r\nConnection: ,,\tCLOSE ,\r\n\r\n", 0},
    {"GET / HTTP/1.1\r\nConnection: TE\r\nConnection: close\r\n\r\n", 0},
    {"GET / HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n",
     0},
    {"GET / HTTP/1.1\r\nConnection: closed, xclose, close-x\r\n\r\n", 1},
    {"GET / HTTP/1.1\r\nConnection: TE\r\n\r\n", 1},
    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 2},
    {"GET / HTTP/1.0\r\nConnection: foo, Keep-Alive\r\n\r\n", 2},
    {"GET / HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n", 2},
    {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0},
    {"GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n", 0},
};

START_TEST(connection_options)
{
    size_t len = strlen(conn_cases[_i].head);
    char *head = malloc(len);
    rl_http_req_t r;
    int64_t content_length = -1;
    int chunked = 0;
    const char *msg = NULL;

    ck_assert_ptr_nonnull(head);
    memcpy(head, conn_cases[_i].head, len);
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(
        rl_http_parse_head(head, len, &r, &content_length, &chunked, &msg), 0);
    ck_assert_msg(r.keep_alive == conn_cases[_i].keep_alive,
                  "%s: keep_alive %d", conn_cases[_i].head, r.keep_alive);
    free(head);
}
END_TEST

/* Runs the suite. */
int main(void)
{
    Suite *s = suite_create("http_parse");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, head_scan, 0, NCASES(scan_cases));
    tcase_add_loop_test(tc, connection_options, 0, NCASES(conn_cases));
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
