#ifndef RL_REDIS_CMD_H
#define RL_REDIS_CMD_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include "store.h"

/* The Redis command of one store operation, shared by the standalone
 * store (store_redis.c) and the cluster store (store_cluster.c): an op
 * becomes argv (FCALL of the decision function, or DEL of the op's keys,
 * protocol in store.h), and the reply becomes a store result. Pure: no
 * I/O, no clock. The command owns the strings its argv points into, so a
 * retry (a missing function, MOVED, ASK) resends the same argv after the
 * caller's op is gone. Buffers are kept across reuse: no allocation per request
 * in steady state. */

#define RL_REDIS_CMD_MAX_BASE 2048 /* RL_KEY_MAX of policy.h */
/* FCALL fn numkeys, a key per part and per penalty, the request
 * (protocol v3, store.h) */
#define RL_REDIS_CMD_MAX_ARGS (4 + RL_MAX_OP_PARTS + RL_MAX_OP_PENALTIES)

typedef enum {
    RL_REDIS_CMD_DECIDE = 0,
    RL_REDIS_CMD_RESET
} rl_redis_cmd_kind_t;

typedef struct rl_redis_cmd {
    rl_redis_cmd_kind_t kind;
    int nlimits; /* of every part together (of the kept ones: _sub) */
    int npenalties;
    int nkeys; /* key arguments, from argv[first key] on */
    int argc;
    const char *argv[RL_REDIS_CMD_MAX_ARGS];
    size_t argvlen[RL_REDIS_CMD_MAX_ARGS];
    char *buf; /* the strings argv points into; kept on reuse */
    size_t bufcap;
} rl_redis_cmd_t;

/* "bad_op" if op cannot be sent (a part without limits, too many limits,
 * parts or penalties, a key past RL_REDIS_CMD_MAX_BASE, a negative cost
 * (a refund) beside a spending part or penalties,
 * an unknown algorithm, a penalty without denials), else NULL. */
const char *rl_redis_cmd_check(const rl_store_op_t *op);

/* Fills cmd for an op; fn is the decision function's name
 * (RL_LUA_FUNCTION of lua_scripts.h). The first
 * key argument is the op's first key, for slot routing. Returns RL_OK,
 * or RL_ERR (out of memory, or an op rl_redis_cmd_check refuses; cmd is
 * then left as it was). */
int rl_redis_cmd_build(rl_redis_cmd_t *cmd, const char *fn,
                       const rl_store_op_t *op, rl_redis_cmd_kind_t kind);

/* Fills cmd for a part of op: the decision command of the parts whose
 * bit is set in parts (bit i = part i of op) and the penalties set in pens
 * (bit j = penalty j), each penalty's mask renumbered to the kept parts;
 * the reply (rl_redis_cmd_parse) holds the kept limits and penalties, in
 * op's order. With refund, each kept part costs minus its cost in op: the
 * refund of what an admitted op spent (it never denies; store.h). For a
 * decision whose parts live on different cluster masters. Returns RL_OK,
 * or RL_ERR (an op rl_redis_cmd_check refuses, no part kept, a bit past
 * op's parts or penalties, out of memory; cmd is then left as it was).
 * Pure; any thread, on its own cmd. */
int rl_redis_cmd_build_sub(rl_redis_cmd_t *cmd, const char *fn,
                           const rl_store_op_t *op, unsigned parts,
                           unsigned pens, int refund);

/* The first key of cmd (for the cluster slot) and its length. */
const char *rl_redis_cmd_first_key(const rl_redis_cmd_t *cmd, size_t *len);

/* Key i (0 <= i < cmd->nkeys) of cmd and its length. */
const char *rl_redis_cmd_key(const rl_redis_cmd_t *cmd, int i, size_t *len);

/* Decodes a non-error reply of cmd into res (status left to the caller).
 * Returns NULL, or a static error ("bad_reply"). Error replies are the
 * caller's: they may be redirections or a missing function. */
const char *rl_redis_cmd_parse(const rl_redis_cmd_t *cmd, const redisReply *r,
                               rl_store_result_t *res);

/* Frees cmd's buffer (cmd itself is the caller's). */
void rl_redis_cmd_free(rl_redis_cmd_t *cmd);

#endif
