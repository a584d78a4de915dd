#ifndef RL_CLUSTER_H
#define RL_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>

/* Redis Cluster arithmetic and reply parsing. Pure: no I/O, no clock, no
 * allocation, so every worker thread may call these at once and unit
 * tests need no server. The store that uses them is store_cluster.c. */

#define RL_CLUSTER_SLOTS 16384
#define RL_CLUSTER_HOST_MAX 64 /* a numeric IPv4/IPv6 address, with NUL */
#define RL_CLUSTER_NAME_MAX 80 /* "host:port" or "[v6]:port", with NUL */

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the checksum
 * the Redis Cluster specification hashes keys with. */
uint16_t rl_cluster_crc16(const char *buf, size_t len);

/* The slot of a key: CRC16 of its hash tag modulo 16384. The hash tag is
 * what lies between the first '{' and the first '}' after it, when that
 * is not empty; otherwise the whole key is hashed. */
int rl_cluster_key_slot(const char *key, size_t len);

/* A node address as the cluster reports it. */
typedef struct rl_cluster_addr {
    char host[RL_CLUSTER_HOST_MAX];
    int port;
} rl_cluster_addr_t;

/* Writes "host:port" (IPv6 in brackets) into out (RL_CLUSTER_NAME_MAX). */
void rl_cluster_addr_name(const rl_cluster_addr_t *a, char *out, size_t outlen);

/* Splits "host:port" or "[v6]:port" (len bytes, not NUL-terminated) into
 * a. The host must be a numeric IPv4/IPv6 address: workers never resolve
 * names. Returns 0, or -1 if it is anything else. */
int rl_cluster_addr_parse(const char *s, size_t len, rl_cluster_addr_t *a);

typedef enum {
    RL_CLUSTER_REDIR_NONE = 0,
    RL_CLUSTER_REDIR_MOVED, /* "MOVED <slot> <host>:<port>" */
    RL_CLUSTER_REDIR_ASK    /* "ASK <slot> <host>:<port>" */
} rl_cluster_redir_t;

/* Parses a MOVED or ASK error text. Returns the kind (filling *slot and
 * *a), or RL_CLUSTER_REDIR_NONE for any other or malformed text. */
rl_cluster_redir_t rl_cluster_parse_redirect(const char *err, size_t len,
                                             int *slot, rl_cluster_addr_t *a);

/* Called once per node of each slot range of a CLUSTER SLOTS reply:
 * role 0 is the range's master, 1.. its replicas. Returns 0 to go on. */
typedef int rl_cluster_slots_fn(void *arg, int start, int end, int role,
                                const rl_cluster_addr_t *a);

/* Walks a CLUSTER SLOTS reply. A node listed with an empty host ("" means
 * "the node you asked") gets asked_host; a node whose host is not a
 * numeric address ("?", a hostname) is skipped and counted in *skipped
 * (may be NULL). With fn == NULL it only checks the shape, so a caller
 * can validate the whole reply before changing anything. Returns the
 * number of ranges, or -1 if the reply is not a well-formed CLUSTER
 * SLOTS array (slots out of range, start > end, a node that is not
 * [host, port, ...]) or fn returned non-zero. */
int rl_cluster_slots_walk(const redisReply *r, const char *asked_host,
                          rl_cluster_slots_fn *fn, void *arg, int *skipped);

#endif
