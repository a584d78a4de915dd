/* libFuzzer target: the bytes the Sentinel client reads (sentinel.c,
 * sentinel_sub.c), through sentinel_parse.c. The first byte picks the
 * host buffer's size (1..80 bytes, allocated exactly so that ASan sees
 * a byte past it), the second how the rest is split (as reads would
 * split it). The rest goes through hiredis's reader, as in
 * sentinel_sub.c, and every reply goes to each parser: the master's
 * address, ROLE, the subscription's kind and, for a message or any bulk
 * string, +switch-master; the raw bytes go to +switch-master too. Checks
 * what the client relies on: an accepted host is NUL-terminated inside
 * its buffer and not empty, an accepted port is 1..65535, a refused host
 * is "", and a message lies inside its reply. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include "sentinel_parse.h"
#include "util.h"

#define WANT "mymaster"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 if some aggregate or bulk length in data is over 99999. hiredis 0.14
 * (Debian 12's) allocates what a length says without a cap: a sentinel
 * is trusted for that, so the target keeps to sizes a reply could have. */
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

/* Aborts unless host (hostsize bytes) and port keep the parsers'
 * promise for the result rc. */
static void check_addr(int rc, const char *host, size_t hostsize, int port)
{
    const char *end = memchr(host, '\0', hostsize);

    if (end == NULL || (rc != RL_OK && rc != RL_ERR)) {
        abort();
    }
    if (rc == RL_OK && (end == host || port < 1 || port > 65535)) {
        abort();
    }
    if (rc == RL_ERR && end != host) {
        abort();
    }
}

/* The switch parser on len bytes at msg, checked. */
static void try_switch(const char *msg, size_t len, char *host, size_t hostsize)
{
    int port = 0;
    int rc = rl_sentinel_parse_switch(msg, len, WANT, host, hostsize, &port);

    check_addr(rc, host, hostsize, port);
    if (rc == RL_OK && (len < sizeof(WANT) || memchr(msg, '\0', len) != NULL)) {
        abort();
    }
}

/* Every parser on reply r. */
static void try_reply(const redisReply *r, char *host, size_t hostsize)
{
    const char *msg = NULL;
    size_t len = 0;
    int port = 0;
    int rc = rl_sentinel_parse_master_addr(r, host, hostsize, &port);
    rl_sentinel_parse_kind_t kind;

    check_addr(rc, host, hostsize, port);
    if ((unsigned)rl_sentinel_parse_role(r) > 1) {
        abort();
    }
    kind = rl_sentinel_parse_sub(r, &msg, &len);
    if (kind == RL_SENTINEL_SUB_MESSAGE) {
        if (msg != r->element[2]->str || len != r->element[2]->len) {
            abort();
        }
        try_switch(msg, len, host, hostsize);
    } else if (kind > RL_SENTINEL_SUB_OTHER) {
        abort();
    }
    if (r->type == REDIS_REPLY_STRING) {
        try_switch(r->str, r->len, host, hostsize);
    }
}

/* Parses every reply the reader holds; 0 once the reader failed. */
static int drain(redisReader *rd, char *host, size_t hostsize)
{
    void *reply;

    while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL) {
        try_reply(reply, host, hostsize);
        freeReplyObject(reply);
    }
    return rd->err == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd;
    size_t hostsize;
    char *host;
    unsigned seed;
    size_t off = 2;

    if (size < 2 || huge_length(data, size)) {
        return 0;
    }
    hostsize = 1 + data[0] % 80;
    seed = data[1];
    host = malloc(hostsize);
    rd = redisReaderCreate();
    if (host == NULL || rd == NULL) {
        free(host);
        redisReaderFree(rd);
        return 0;
    }
    try_switch((const char *)data + 2, size - 2, host, hostsize);
    while (off < size) {
        size_t k = (seed & 7) == 0 ? size - off : (seed & 7) + (off & 3);

        if (k > size - off) {
            k = size - off;
        }
        if (redisReaderFeed(rd, (const char *)data + off, k) != REDIS_OK ||
            !drain(rd, host, hostsize)) {
            break;
        }
        off += k;
        seed = seed * 33 + 7;
    }
    redisReaderFree(rd);
    free(host);
    return 0;
}
