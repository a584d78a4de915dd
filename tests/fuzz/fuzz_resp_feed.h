#ifndef RL_FUZZ_RESP_FEED_H
#define RL_FUZZ_RESP_FEED_H

/* What the RESP targets (fuzz_resp.c, fuzz_sentinel.c) share: the guard
 * against lengths hiredis would allocate blindly, and the loop that
 * feeds bytes to hiredis's reader split as reads would split them and
 * hands each reply to the target. Header-only: run.sh links each target
 * from its own .c file. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

/* One reply for the target to check (owned by the caller, freed after
 * the call); aborts on a broken promise. */
typedef void rl_fuzz_reply_fn(redisReply *r, void *arg);

/* 1 if some aggregate or bulk length in data is over 99999. hiredis 0.14
 * (Debian 12's) allocates what a length says without a cap: Redis is
 * trusted for that, so the targets keep to sizes a reply could have. */
static inline int rl_fuzz_huge_length(const uint8_t *data, size_t size)
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

/* Feeds the bytes of data from off to size to a new reader in pieces
 * chosen by seed (all at once when seed & 7 is 0) and passes every reply
 * to fn, until the bytes end or the reader fails. */
static inline void rl_fuzz_resp_feed(const uint8_t *data, size_t size,
                                     size_t off, unsigned seed,
                                     rl_fuzz_reply_fn *fn, void *arg)
{
    redisReader *rd = redisReaderCreate();
    void *reply;

    if (rd == NULL) {
        return;
    }
    while (off < size) {
        size_t k = (seed & 7) == 0 ? size - off : (seed & 7) + (off & 3);

        if (k > size - off) {
            k = size - off;
        }
        if (redisReaderFeed(rd, (const char *)data + off, k) != REDIS_OK) {
            break;
        }
        while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL) {
            fn(reply, arg);
            freeReplyObject(reply);
        }
        if (rd->err != 0) {
            break;
        }
        off += k;
        seed = seed * 33 + 7;
    }
    redisReaderFree(rd);
}

#endif
