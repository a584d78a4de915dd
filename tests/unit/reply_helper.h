#ifndef RL_TEST_REPLY_HELPER_H
#define RL_TEST_REPLY_HELPER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The decision script's reply as the tests' fakes send it: the layout of
 * store.h written out again here (not taken from redis_cmd.c), so a
 * width the parser gets wrong fails a test. */

/* Writes v's low width bytes at *p, little-endian, and moves *p on. */
static inline void rl_test_put_le(unsigned char **p, int64_t v, int width)
{
    int i;

    for (i = 0; i < width; i++) {
        *(*p)++ = (unsigned char)(((uint64_t)v >> (8 * i)) & 0xff);
    }
}

/* The raw bytes of a reply of n limits and m penalties into out (at
 * least 7 + 21 n + 7 m bytes): v holds now_ms, allowed, 5 values per
 * limit, 2 per penalty. Returns the length. */
static inline size_t rl_test_reply_bytes(unsigned char *out, const int64_t *v,
                                         int n, int m)
{
    /* the bytes of each value: the head's, a limit's, a penalty's */
    static const int head[2] = {6, 1};
    static const int limit[5] = {1, 7, 6, 6, 1};
    static const int penalty[2] = {1, 6};
    unsigned char *p = out;
    int i;
    int k;

    for (i = 0; i < 2; i++) {
        rl_test_put_le(&p, *v++, head[i]);
    }
    for (k = 0; k < n; k++) {
        for (i = 0; i < 5; i++) {
            rl_test_put_le(&p, *v++, limit[i]);
        }
    }
    for (k = 0; k < m; k++) {
        for (i = 0; i < 2; i++) {
            rl_test_put_le(&p, *v++, penalty[i]);
        }
    }
    return (size_t)(p - out);
}

/* The same reply as one RESP bulk string into out (cap bytes, room for
 * the header too). Returns the RESP length. */
static inline size_t rl_test_reply_resp(char *out, size_t cap, const int64_t *v,
                                        int n, int m)
{
    unsigned char body[1024];
    size_t len = rl_test_reply_bytes(body, v, n, m);
    int head = snprintf(out, cap, "$%zu\r\n", len);

    if (head < 0 || (size_t)head + len + 2 > cap) {
        abort();
    }
    memcpy(out + head, body, len);
    memcpy(out + head + len, "\r\n", 2);
    return (size_t)head + len + 2;
}

/* The bytes of the one RESP value at p (a bulk string may hold NULs,
 * so strlen does not do for a fake's canned reply). */
static inline size_t rl_test_resp_len(const char *p)
{
    const char *eol = strstr(p, "\r\n");
    size_t head = (size_t)(eol - p) + 2;
    long n = strtol(p + 1, NULL, 10);
    size_t len = head;

    if (p[0] == '$') {
        return n < 0 ? head : head + (size_t)n + 2;
    }
    if (p[0] == '*') {
        while (n-- > 0) {
            len += rl_test_resp_len(p + len);
        }
    }
    return len;
}

#endif
