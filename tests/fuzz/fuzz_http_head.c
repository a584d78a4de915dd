/* libFuzzer target: the HTTP request-head parser. As the server does,
 * the head is found by rl_http_parse_head_scan (fed whole, and again one
 * byte at a time: both must agree) and copied to a buffer of exactly its
 * size so any read past it is caught. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Scans size bytes of data for a head, step bytes at a time. */
static int scan(const uint8_t *data, size_t size, size_t step,
                rl_http_head_scan_t *st, size_t *end)
{
    const char *msg = NULL;
    size_t off = 0;
    int rc = 0;

    memset(st, 0, sizeof(*st));
    while (off < size && rc == 0) {
        size_t n = size - off < step ? size - off : step;

        rc =
            rl_http_parse_head_scan(st, (const char *)data + off, n, end, &msg);
        off += n;
    }
    if ((rc != 0 && rc != 1 && (rc != 400 || msg == NULL)) ||
        (rc == 0 && st->pos != size)) {
        abort();
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_http_head_scan_t st, st1;
    rl_http_req_t req;
    int64_t content_length = -1;
    int chunked = 0, rc, i;
    const char *msg = NULL;
    size_t end = 0, end1 = 0, head_len, k;
    char *head;

    rc = scan(data, size, size > 0 ? size : 1, &st, &end);
    if (scan(data, size, 1, &st1, &end1) != rc ||
        (rc == 1 && (end1 != end || st1.skip != st.skip))) {
        abort();
    }
    if (rc != 1) {
        return 0;
    }
    head_len = end - st.skip;
    if (st.skip % 2 != 0 || st.skip > 2 * RL_HTTP_EMPTY_LINES_MAX ||
        head_len < 4 || memcmp(data + end - 4, "\r\n\r\n", 4) != 0) {
        abort();
    }
    for (k = st.skip; k < end; k++) {
        if (data[k] == '\n' && (k == st.skip || data[k - 1] != '\r')) {
            abort(); /* a bare LF got through */
        }
    }
    head = malloc(head_len);
    if (head == NULL) {
        return 0;
    }
    memcpy(head, data + st.skip, head_len);
    memset(&req, 0, sizeof(req));
    rc = rl_http_parse_head(head, head_len, &req, &content_length, &chunked,
                            &msg);
    if (rc == 0) {
        if (req.method == NULL || req.method[0] == '\0' ||
            req.target[0] != '/' || req.nheaders > RL_HTTP_MAX_HEADERS ||
            (chunked && content_length >= 0) ||
            req.path_len > strlen(req.target) ||
            strlen(req.id) >= RL_HTTP_ID_MAX) {
            abort();
        }
        for (i = 0; i < req.nheaders; i++) {
            if (strlen(req.headers[i].name) != req.headers[i].name_len ||
                strlen(req.headers[i].value) != req.headers[i].value_len) {
                abort();
            }
        }
    } else if ((rc != 400 && rc != 431 && rc != 501) || msg == NULL) {
        abort();
    }
    free(head);
    return 0;
}
