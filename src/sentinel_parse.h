#ifndef RL_SENTINEL_PARSE_H
#define RL_SENTINEL_PARSE_H

#include <stddef.h>
#include <hiredis/hiredis.h>

/* The bytes a Redis Sentinel client reads from the network, parsed
 * (sentinel_parse.c): the reply to SENTINEL get-master-addr-by-name, the
 * reply to ROLE, the replies on the +switch-master subscription and the
 * +switch-master message itself. Pure: no I/O, no state; any thread.
 * Every function takes the reply's lengths, not strlen: a bulk string
 * may hold NUL bytes, and one that does is refused wherever a host or a
 * number is read. An accepted host is 1 to hostsize - 1 bytes with its
 * NUL; on a refusal host is "" (when hostsize > 0). An accepted port is
 * 1..65535, written in decimal digits only. Nothing here checks that a
 * host is a numeric address: the caller does (sentinel.c). */

/* The host buffer the Sentinel client gives these parsers: an IPv6
 * address in text with its NUL fits. */
#define RL_SENTINEL_HOST_MAX 64

/* What a reply on the subscription is. */
typedef enum {
    RL_SENTINEL_SUB_BAD = 0, /* not [kind, ...]: the caller closes */
    RL_SENTINEL_SUB_PONG,    /* a keep-alive PING's answer */
    RL_SENTINEL_SUB_SUBSCRIBED,
    RL_SENTINEL_SUB_MESSAGE, /* *msg, *len: the message's bytes */
    RL_SENTINEL_SUB_OTHER    /* any other [kind, ...]: ignored */
} rl_sentinel_parse_kind_t;

/* The reply to SENTINEL get-master-addr-by-name, [host, port]: copies
 * host into host (hostsize bytes) and sets *port. RL_OK, or RL_ERR for a
 * nil (unknown master), an error, any other shape, an empty or too long
 * host, or a port that is not 1..65535. r may be NULL (RL_ERR). */
int rl_sentinel_parse_master_addr(const redisReply *r, char *host,
                                  size_t hostsize, int *port);

/* 1 if r, the reply to ROLE, says "master" (["master", ...]); 0 for a
 * replica, a sentinel, an error or NULL. */
int rl_sentinel_parse_role(const redisReply *r);

/* What r, a reply on the subscription after AUTH, is; for a message
 * (["message", channel, text]) *msg and *len point into r (owned by
 * r). */
rl_sentinel_parse_kind_t rl_sentinel_parse_sub(const redisReply *r,
                                               const char **msg, size_t *len);

/* A +switch-master message, len bytes "name oldip oldport newip newport"
 * (five fields parted by white space): RL_OK if name is want_name, with
 * the new address in host (hostsize bytes) and *port; RL_ERR for another
 * master or a malformed message (a NUL byte, a missing or extra field,
 * an old port that is not digits, a bad new host or port). */
int rl_sentinel_parse_switch(const char *msg, size_t len, const char *want_name,
                             char *host, size_t hostsize, int *port);

#endif
