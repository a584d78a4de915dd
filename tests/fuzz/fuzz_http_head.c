/* libFuzzer target: the HTTP request-head parser. As the server does,
 * the head is everything up to the first CRLFCRLF; it is copied to a
 * buffer of exactly its size so any read past it is caught. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *end = memmem(data, size, "\r\n\r\n", 4);
    rl_http_req_t req;
    int64_t content_length = -1;
    int chunked = 0, rc, i;
    const char *msg = NULL;
    size_t head_len;
    char *head;

    if (end == NULL) {
        return 0;
    }
    head_len = (size_t)(end - data) + 4;
    head = malloc(head_len);
    if (head == NULL) {
        return 0;
    }
    memcpy(head, data, head_len);
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
