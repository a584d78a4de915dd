/* libFuzzer target: the decision script's binary reply (store.h) as
 * rl_redis_cmd_parse decodes it, without hiredis in between (fuzz_resp.c
 * covers the RESP around it). The first byte picks the shape, n limits
 * (1 + b % 32) and m penalties ((b / 32) % 5); the rest is the bulk
 * string, copied to a buffer of its exact size so a read past it is an
 * ASan report. Checks: the error is NULL or "bad_reply"; an accepted
 * reply had exactly 7 + 21 n + 7 m bytes, its flags are 0 or 1, its
 * penalty states in range, and writing the result back in the layout
 * gives the input bytes (nothing read from the wrong place or width). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "redis_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes v's low width bytes at *p, little-endian, and moves *p on. */
static void put_le(unsigned char **p, int64_t v, int width)
{
    int i;

    for (i = 0; i < width; i++) {
        *(*p)++ = (unsigned char)(((uint64_t)v >> (8 * i)) & 0xff);
    }
}

/* Writes res back in the reply's layout at out; returns the length. */
static size_t encode(const rl_store_result_t *res, int n, int m,
                     unsigned char *out)
{
    unsigned char *p = out;
    int k;

    put_le(&p, res->now_ms, 6);
    put_le(&p, res->allowed, 1);
    for (k = 0; k < n; k++) {
        const rl_limit_result_t *l = &res->limits[k];

        put_le(&p, l->allowed, 1);
        put_le(&p, l->remaining, 7);
        put_le(&p, l->reset_after_ms, 6);
        put_le(&p, l->retry_after_ms, 6);
        put_le(&p, l->blocked, 1);
    }
    for (k = 0; k < m; k++) {
        put_le(&p, res->penalties[k].state, 1);
        put_le(&p, res->penalties[k].retry_after_ms, 6);
    }
    return (size_t)(p - out);
}

/* Aborts unless the accepted result of n limits and m penalties keeps
 * the parser's promises and encodes back to body (len bytes). */
static void check_accepted(const rl_store_result_t *res, int n, int m,
                           const unsigned char *body, size_t len)
{
    unsigned char again[7 + 21 * RL_MAX_OP_LIMITS + 7 * RL_MAX_OP_PENALTIES];
    int k;

    if (len != 7 + 21 * (size_t)n + 7 * (size_t)m ||
        (res->allowed != 0 && res->allowed != 1)) {
        abort();
    }
    for (k = 0; k < n; k++) {
        if ((res->limits[k].allowed | res->limits[k].blocked) > 1 ||
            res->limits[k].remaining < 0 || res->limits[k].reset_after_ms < 0 ||
            res->limits[k].retry_after_ms < 0) {
            abort();
        }
    }
    for (k = 0; k < m; k++) {
        if (res->penalties[k].state < RL_PENALTY_NONE ||
            res->penalties[k].state > RL_PENALTY_STARTED) {
            abort();
        }
    }
    if (encode(res, n, m, again) != len || memcmp(again, body, len) != 0) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_redis_cmd_t cmd;
    rl_store_result_t res;
    redisReply r;
    unsigned char *body;
    const char *err;

    if (size < 1) {
        return 0;
    }
    memset(&cmd, 0, sizeof(cmd));
    cmd.kind = RL_REDIS_CMD_DECIDE;
    cmd.nlimits = 1 + data[0] % RL_MAX_OP_LIMITS;
    cmd.npenalties = (data[0] / RL_MAX_OP_LIMITS) % (RL_MAX_OP_PENALTIES + 1);
    body = malloc(size - 1 > 0 ? size - 1 : 1);
    if (body == NULL) {
        return 0;
    }
    memcpy(body, data + 1, size - 1);
    memset(&r, 0, sizeof(r));
    r.type = REDIS_REPLY_STRING;
    r.str = (char *)body;
    r.len = size - 1;
    memset(&res, 0, sizeof(res));
    err = rl_redis_cmd_parse(&cmd, &r, &res);
    if (err != NULL && strcmp(err, "bad_reply") != 0) {
        abort();
    }
    if (err == NULL) {
        check_accepted(&res, cmd.nlimits, cmd.npenalties, body, size - 1);
    }
    free(body);
    return 0;
}
