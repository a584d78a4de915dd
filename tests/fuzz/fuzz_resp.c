/* libFuzzer target: the RESP replies of the decision script (a bulk
 * string, store.h; fuzz_decide_reply.c fuzzes its bytes) and of a
 * reset, single and pipelined. The first byte picks the command (decide
 * or reset) and its number of limits, the second how the rest is split
 * (as reads would split it). The bytes go through hiredis's reader, as
 * in redis_conn.c, and every reply that is not an error reply (those are
 * the caller's: a missing function, MOVED) goes to rl_redis_cmd_parse.
 * Checks what the stores rely on: a NULL or static error, and limits
 * within range. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "fuzz_resp_feed.h"
#include "redis_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parses one reply; aborts on a broken promise. */
static void check_reply(redisReply *r, void *arg)
{
    const rl_redis_cmd_t *cmd = arg;
    rl_store_result_t res;
    const char *err;

    if (r->type == REDIS_REPLY_ERROR) {
        return;
    }
    memset(&res, 0, sizeof(res));
    err = rl_redis_cmd_parse(cmd, r, &res);
    if (err != NULL && err[0] == '\0') {
        abort();
    }
    if (err == NULL && res.allowed != 0 && res.allowed != 1) {
        abort();
    }
    for (int k = 0;
         err == NULL && k < cmd->nlimits && cmd->kind == RL_REDIS_CMD_DECIDE;
         k++) {
        if ((res.limits[k].allowed | res.limits[k].blocked) > 1) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_redis_cmd_t cmd;

    if (size < 2 || rl_fuzz_huge_length(data, size)) {
        return 0;
    }
    memset(&cmd, 0, sizeof(cmd));
    cmd.kind = (data[0] & 0x80) ? RL_REDIS_CMD_RESET : RL_REDIS_CMD_DECIDE;
    cmd.nlimits = 1 + (data[0] & 0x7f) % RL_MAX_LIMITS;
    rl_fuzz_resp_feed(data, size, 2, data[1], check_reply, &cmd);
    return 0;
}
