/* The pure parts of gRPC's wire format that grpc.c relies on: the
 * grpc-timeout header and the length prefix of a unary request. No I/O;
 * any thread (tests/fuzz/fuzz_grpc.c drives them). */
#include "grpc.h"

#include <stdint.h>

int rl_grpc_timeout_parse(const char *v, size_t len, int64_t *us)
{
    static const struct {
        char unit;
        int64_t mul_ns;
    } units[] = {{'H', 3600000000000LL}, {'M', 60000000000LL},
                 {'S', 1000000000LL},    {'m', 1000000LL},
                 {'u', 1000LL},          {'n', 1LL}};
    int64_t n = 0;
    size_t i;

    if (len < 2 || len > 9) {
        return -1;
    }
    for (i = 0; i + 1 < len; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return -1;
        }
        n = n * 10 + (v[i] - '0');
    }
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (units[i].unit == v[len - 1]) {
            /* Past 2^63 ns (some 292 years) the timeout is that. */
            int64_t ns = n > INT64_MAX / units[i].mul_ns ? INT64_MAX
                                                         : n * units[i].mul_ns;
            *us = ns / 1000 > 0 ? ns / 1000 : 1;
            return 0;
        }
    }
    return -1;
}

rl_grpc_status_t rl_grpc_frame_parse(const uint8_t *body, size_t n, size_t max,
                                     const uint8_t **msg, size_t *len,
                                     const char **why)
{
    size_t mlen;

    if (n < 5) {
        *why = "the request is not one length-prefixed message";
        return RL_GRPC_INVALID_ARGUMENT;
    }
    mlen = ((size_t)body[1] << 24) | ((size_t)body[2] << 16) |
           ((size_t)body[3] << 8) | (size_t)body[4];
    if (body[0] != 0) {
        *why = "compressed messages are not supported";
        return RL_GRPC_UNIMPLEMENTED;
    }
    if (mlen > max) {
        *why = "the message is larger than max_message_bytes";
        return RL_GRPC_INVALID_ARGUMENT;
    }
    if (mlen != n - 5) {
        *why = "the request is not one length-prefixed message";
        return RL_GRPC_INVALID_ARGUMENT;
    }
    *msg = body + 5;
    *len = mlen;
    return RL_GRPC_OK;
}
