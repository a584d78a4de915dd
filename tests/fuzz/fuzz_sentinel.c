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

#include "fuzz_resp_feed.h"
#include "sentinel_parse.h"
#include "util.h"

#define WANT "mymaster"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The host buffer the parsers write into: exactly size bytes. */
typedef struct {
    char *host;
    size_t size;
} fuzz_buf_t;

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
static void try_reply(redisReply *r, void *arg)
{
    fuzz_buf_t *b = arg;
    const char *msg = NULL;
    size_t len = 0;
    int port = 0;
    int rc = rl_sentinel_parse_master_addr(r, b->host, b->size, &port);
    rl_sentinel_parse_kind_t kind;

    check_addr(rc, b->host, b->size, port);
    if ((unsigned)rl_sentinel_parse_role(r) > 1) {
        abort();
    }
    kind = rl_sentinel_parse_sub(r, &msg, &len);
    if (kind == RL_SENTINEL_SUB_MESSAGE) {
        if (msg != r->element[2]->str || len != r->element[2]->len) {
            abort();
        }
        try_switch(msg, len, b->host, b->size);
    } else if (kind > RL_SENTINEL_SUB_OTHER) {
        abort();
    }
    if (r->type == REDIS_REPLY_STRING) {
        try_switch(r->str, r->len, b->host, b->size);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_buf_t b;

    if (size < 2 || rl_fuzz_huge_length(data, size)) {
        return 0;
    }
    b.size = 1 + data[0] % 80;
    b.host = malloc(b.size);
    if (b.host == NULL) {
        return 0;
    }
    try_switch((const char *)data + 2, size - 2, b.host, b.size);
    rl_fuzz_resp_feed(data, size, 2, data[1], try_reply, &b);
    free(b.host);
    return 0;
}
