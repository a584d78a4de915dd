/* The HTTP request-head parser (http_parse.c): the Connection options of
 * a parsed head. Pure: no sockets. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Heads and whether the connection stays open after the reply. */
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
    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1},
    {"GET / HTTP/1.0\r\nConnection: foo, Keep-Alive\r\n\r\n", 1},
    {"GET / HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n", 1},
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

    tcase_add_loop_test(tc, connection_options, 0, NCASES(conn_cases));
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
