/* libFuzzer target: the gRPC framing and protobuf decoding of the gRPC
 * listener. The first byte picks what the input is: a grpc-timeout
 * value (rl_grpc_timeout_parse), or a request body (rl_grpc_frame_parse
 * at a small or the default max_message_bytes) whose message is decoded
 * as a RateLimitRequest and a HealthCheckRequest, as grpc_rls.c does,
 * then re-encoded and decoded again. Checks what grpc.c and grpc_rls.c
 * rely on: a status with a reason, a message inside the body, timeouts
 * >= 1 us, and every decoded string NUL terminated and within the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpc.h"
#include "grpc_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef Envoy__Service__Ratelimit__V3__RateLimitRequest rls_request_t;

/* Walks every descriptor of q as grpc_rls.c does; aborts on a broken
 * promise. */
static void check_request(const rls_request_t *q, size_t len)
{
    size_t i, j;

    if (q->domain == NULL || strlen(q->domain) > len) {
        abort();
    }
    for (i = 0; i < q->n_descriptors; i++) {
        const Envoy__Extensions__Common__Ratelimit__V3__RateLimitDescriptor *d =
            q->descriptors[i];

        for (j = 0; j < d->n_entries; j++) {
            if (d->entries[j]->key == NULL || d->entries[j]->value == NULL ||
                strlen(d->entries[j]->key) > len ||
                strlen(d->entries[j]->value) > len) {
                abort();
            }
        }
    }
}

/* Decodes msg as a RateLimitRequest, checks it, re-encodes and decodes it
 * again (the same number of descriptors). */
static void decode_rls(const uint8_t *msg, size_t len)
{
    rls_request_t *q =
        envoy__service__ratelimit__v3__rate_limit_request__unpack(NULL, len,
                                                                  msg);
    rls_request_t *again;
    uint8_t *buf;
    size_t n;

    if (q == NULL) {
        return;
    }
    check_request(q, len);
    n = envoy__service__ratelimit__v3__rate_limit_request__get_packed_size(q);
    buf = malloc(n + 1);
    if (buf == NULL) {
        abort();
    }
    envoy__service__ratelimit__v3__rate_limit_request__pack(q, buf);
    again =
        envoy__service__ratelimit__v3__rate_limit_request__unpack(NULL, n, buf);
    /* protobuf-c keeps unknown fields as read, malformed ones too (a field
     * number 0), and may refuse its own encoding of them; ratelimitd never
     * re-encodes a request, so only a message that decodes again is
     * compared. */
    if (again != NULL && again->n_descriptors != q->n_descriptors) {
        abort();
    }
    if (again != NULL) {
        envoy__service__ratelimit__v3__rate_limit_request__free_unpacked(again,
                                                                         NULL);
    }
    envoy__service__ratelimit__v3__rate_limit_request__free_unpacked(q, NULL);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *msg = NULL;
    const char *why = NULL;
    size_t len = 0;
    int64_t us = 0;
    rl_grpc_status_t st;
    Grpc__Health__V1__HealthCheckRequest *h;

    if (size < 1) {
        return 0;
    }
    if (data[0] & 1) {
        if (rl_grpc_timeout_parse((const char *)data + 1, size - 1, &us) == 0 &&
            us < 1) {
            abort();
        }
        return 0;
    }
    st = rl_grpc_frame_parse(data + 1, size - 1, (data[0] & 2) ? 64 : 1048576,
                             &msg, &len, &why);
    if (st != RL_GRPC_OK) {
        if (why == NULL) {
            abort();
        }
        return 0;
    }
    if (msg < data + 1 || msg + len > data + size) {
        abort();
    }
    decode_rls(msg, len);
    h = grpc__health__v1__health_check_request__unpack(NULL, len, msg);
    if (h != NULL) {
        grpc__health__v1__health_check_request__free_unpacked(h, NULL);
    }
    return 0;
}
