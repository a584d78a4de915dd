/* libFuzzer target: the RESP replies of the decision script and of a
 * reset, single and pipelined. The first byte picks the command (decide
 * or reset) and its number of limits, the second how the rest is split
 * (as reads would split it). The bytes go through hiredis's reader, as
 * in redis_conn.c, and every reply that is not an error reply (those are
 * the caller's: NOSCRIPT, MOVED) goes to rl_redis_cmd_parse. Checks what
 * the stores rely on: a NULL or static error, and limits within range. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include "redis_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 if some aggregate or bulk length in data is over 99999. hiredis 0.14
 * (Debian 12's) allocates what a length says without a cap: Redis is
 * trusted for that, so the target keeps to sizes a reply could have. */
static int huge_length(const uint8_t *data, size_t size)
{
    size_t i, j;

    for (i = 0; i < size; i++) {
        if (strchr("*$%~>|=", data[i]) == NULL || data[i] == 0) {
            continue;
        }
        for (j = i + 1; j < size && data[j] >= '0' && data[j] <= '9'; j++) {
            if (j - i > 5) {
                return 1;
            }
        }
    }
    return 0;
}

/* Parses every reply the reader holds; aborts on a broken promise. */
static int drain(redisReader *rd, const rl_redis_cmd_t *cmd)
{
    void *reply;

    while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL) {
        redisReply *r = reply;
        rl_store_result_t res;
        const char *err;

        memset(&res, 0, sizeof(res));
        if (r->type != REDIS_REPLY_ERROR) {
            err = rl_redis_cmd_parse(cmd, r, &res);
            if (err != NULL && err[0] == '\0') {
                abort();
            }
            if (err == NULL && res.allowed != 0 && res.allowed != 1) {
                abort();
            }
            for (int k = 0; err == NULL && k < cmd->nlimits &&
                            cmd->kind == RL_REDIS_CMD_DECIDE;
                 k++) {
                if ((res.limits[k].allowed | res.limits[k].blocked) > 1) {
                    abort();
                }
            }
        }
        freeReplyObject(reply);
    }
    return rd->err == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_redis_cmd_t cmd;
    redisReader *rd;
    unsigned seed;
    size_t off = 2;

    if (size < 2 || huge_length(data, size)) {
        return 0;
    }
    memset(&cmd, 0, sizeof(cmd));
    cmd.kind = (data[0] & 0x80) ? RL_REDIS_CMD_RESET : RL_REDIS_CMD_DECIDE;
    cmd.nlimits = 1 + (data[0] & 0x7f) % RL_MAX_LIMITS;
    seed = data[1];
    rd = redisReaderCreate();
    if (rd == NULL) {
        return 0;
    }
    while (off < size) {
        size_t k = (seed & 7) == 0 ? size - off : (seed & 7) + (off & 3);

        if (k > size - off) {
            k = size - off;
        }
        if (redisReaderFeed(rd, (const char *)data + off, k) != REDIS_OK ||
            !drain(rd, &cmd)) {
            break;
        }
        off += k;
        seed = seed * 33 + 7;
    }
    redisReaderFree(rd);
    return 0;
}
