/* Redis Cluster arithmetic and reply parsing: the CRC16 key hash and hash
 * tags of the Redis Cluster specification, node addresses, MOVED/ASK
 * errors and CLUSTER SLOTS replies. Pure functions; see cluster.h. */
#include "cluster.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* CRC16-CCITT (XMODEM) by byte: entry i is the CRC of the byte i. */
static const uint16_t crc16_table[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7, 0x8108,
    0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef, 0x1231, 0x0210,
    0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6, 0x9339, 0x8318, 0xb37b,
    0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de, 0x2462, 0x3443, 0x0420, 0x1401,
    0x64e6, 0x74c7, 0x44a4, 0x5485, 0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee,
    0xf5cf, 0xc5ac, 0xd58d, 0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6,
    0x5695, 0x46b4, 0xb75b, 0xa77a, 0x9719, 0x8738, 0xf7df, 0xe7fe, 0xd79d,
    0xc7bc, 0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b, 0x5af5,
    0x4ad4, 0x7ab7, 0x6a96, 0x1a71, 0x0a50, 0x3a33, 0x2a12, 0xdbfd, 0xcbdc,
    0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a, 0x6ca6, 0x7c87, 0x4ce4,
    0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41, 0xedae, 0xfd8f, 0xcdec, 0xddcd,
    0xad2a, 0xbd0b, 0x8d68, 0x9d49, 0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13,
    0x2e32, 0x1e51, 0x0e70, 0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a,
    0x9f59, 0x8f78, 0x9188, 0x81a9, 0xb1ca, 0xa1eb, 0xd10c, 0xc12d, 0xf14e,
    0xe16f, 0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e, 0x02b1,
    0x1290, 0x22f3, 0x32d2, 0x4235, 0x5214, 0x6277, 0x7256, 0xb5ea, 0xa5cb,
    0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d, 0x34e2, 0x24c3, 0x14a0,
    0x0481, 0x7466, 0x6447, 0x5424, 0x4405, 0xa7db, 0xb7fa, 0x8799, 0x97b8,
    0xe75f, 0xf77e, 0xc71d, 0xd73c, 0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657,
    0x7676, 0x4615, 0x5634, 0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9,
    0xb98a, 0xa9ab, 0x5844, 0x4865, 0x7806, 0x6827, 0x18c0, 0x08e1, 0x3882,
    0x28a3, 0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92, 0xfd2e,
    0xed0f, 0xdd6c, 0xcd4d, 0xbdaa, 0xad8b, 0x9de8, 0x8dc9, 0x7c26, 0x6c07,
    0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1, 0xef1f, 0xff3e, 0xcf5d,
    0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8, 0x6e17, 0x7e36, 0x4e55, 0x5e74,
    0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

/* The checksum of len bytes at buf. */
uint16_t rl_cluster_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        crc = (uint16_t)((crc << 8) ^
                         crc16_table[((crc >> 8) ^ (unsigned char)buf[i]) &
                                     0xff]);
    }
    return crc;
}

/* Hashes the tag between the first '{' and the next '}' if it is not
 * empty, else the whole key. */
int rl_cluster_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    const char *close;

    if (open != NULL) {
        size_t rest = len - (size_t)(open + 1 - key);

        close = memchr(open + 1, '}', rest);
        if (close != NULL && close != open + 1) {
            return rl_cluster_crc16(open + 1, (size_t)(close - open - 1)) &
                   (RL_CLUSTER_SLOTS - 1);
        }
    }
    return rl_cluster_crc16(key, len) & (RL_CLUSTER_SLOTS - 1);
}

/* "host:port", with brackets around an IPv6 host. */
void rl_cluster_addr_name(const rl_cluster_addr_t *a, char *out, size_t outlen)
{
    if (strchr(a->host, ':') != NULL) {
        snprintf(out, outlen, "[%s]:%d", a->host, a->port);
    } else {
        snprintf(out, outlen, "%s:%d", a->host, a->port);
    }
}

/* 1 if host (NUL-terminated) is a numeric IPv4 or IPv6 address. */
static int cluster_host_numeric(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    return inet_pton(AF_INET, host, &a4) == 1 ||
           inet_pton(AF_INET6, host, &a6) == 1;
}

/* Copies host (hlen bytes) into a->host if it fits and is numeric, and
 * the decimal port (plen bytes, 1..65535) into a->port. 0 or -1. */
static int cluster_addr_set(rl_cluster_addr_t *a, const char *host, size_t hlen,
                            const char *port, size_t plen)
{
    long n = 0;
    size_t i;

    if (hlen == 0 || hlen >= sizeof(a->host) || plen == 0 || plen > 5) {
        return -1;
    }
    for (i = 0; i < plen; i++) {
        if (port[i] < '0' || port[i] > '9') {
            return -1;
        }
        n = n * 10 + (port[i] - '0');
    }
    if (n < 1 || n > 65535) {
        return -1;
    }
    memcpy(a->host, host, hlen);
    a->host[hlen] = '\0';
    if (!cluster_host_numeric(a->host)) {
        return -1;
    }
    a->port = (int)n;
    return 0;
}

/* Splits "host:port" or "[v6]:port"; the last ':' separates the port of
 * a bare IPv6 address too, as Redis writes it in MOVED ("::1:7000"). */
int rl_cluster_addr_parse(const char *s, size_t len, rl_cluster_addr_t *a)
{
    const char *colon;
    size_t i;

    if (len >= 2 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL || (size_t)(close - s) + 1 >= len ||
            close[1] != ':') {
            return -1;
        }
        return cluster_addr_set(a, s + 1, (size_t)(close - s - 1), close + 2,
                                len - (size_t)(close - s) - 2);
    }
    colon = NULL;
    for (i = 0; i < len; i++) {
        if (s[i] == ':') {
            colon = s + i;
        }
    }
    if (colon == NULL) {
        return -1;
    }
    return cluster_addr_set(a, s, (size_t)(colon - s), colon + 1,
                            len - (size_t)(colon - s) - 1);
}

/* Reads a decimal slot number 0..16383 from s (len bytes). -1 if not. */
static int cluster_parse_slot(const char *s, size_t len)
{
    int n = 0;
    size_t i;

    if (len == 0 || len > 5) {
        return -1;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        n = n * 10 + (s[i] - '0');
    }
    return n < RL_CLUSTER_SLOTS ? n : -1;
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381". */
rl_cluster_redir_t rl_cluster_parse_redirect(const char *err, size_t len,
                                             int *slot, rl_cluster_addr_t *a)
{
    static const struct {
        const char *word;
        rl_cluster_redir_t kind;
    } kinds[] = {
        {"MOVED ", RL_CLUSTER_REDIR_MOVED},
        {"ASK ", RL_CLUSTER_REDIR_ASK},
    };
    size_t k;

    for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        size_t wlen = strlen(kinds[k].word);
        const char *num;
        const char *space;

        if (len <= wlen || memcmp(err, kinds[k].word, wlen) != 0) {
            continue;
        }
        num = err + wlen;
        space = memchr(num, ' ', len - wlen);
        if (space == NULL) {
            return RL_CLUSTER_REDIR_NONE;
        }
        *slot = cluster_parse_slot(num, (size_t)(space - num));
        if (*slot < 0 ||
            rl_cluster_addr_parse(space + 1, len - (size_t)(space + 1 - err),
                                  a) != 0) {
            return RL_CLUSTER_REDIR_NONE;
        }
        return kinds[k].kind;
    }
    return RL_CLUSTER_REDIR_NONE;
}

/* 1 if r is an array of at least min elements whose first two are of
 * types t0 and t1 (a CLUSTER SLOTS range or node entry). */
static int cluster_reply_shape(const redisReply *r, size_t min, int t0, int t1)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements >= min &&
           r->element[0]->type == t0 && r->element[1]->type == t1;
}

/* Reads one node entry [host, port, id?, ...] into a. Returns 0, 1 if
 * its host is not a numeric address, or -1 if the entry is malformed. */
static int cluster_slots_node(const redisReply *n, const char *asked_host,
                              rl_cluster_addr_t *a)
{
    char port[16];
    const char *host;
    size_t hlen;
    int plen;

    if (!cluster_reply_shape(n, 2, REDIS_REPLY_STRING, REDIS_REPLY_INTEGER)) {
        return -1;
    }
    host = n->element[0]->str;
    hlen = n->element[0]->len;
    if (hlen == 0) {
        host = asked_host;
        hlen = strlen(asked_host);
    }
    plen = snprintf(port, sizeof(port), "%lld", n->element[1]->integer);
    if (plen <= 0 || (size_t)plen >= sizeof(port) ||
        n->element[1]->integer < 1 || n->element[1]->integer > 65535) {
        return -1;
    }
    return cluster_addr_set(a, host, hlen, port, (size_t)plen) == 0 ? 0 : 1;
}

/* Each element: [start, end, master node, replica nodes...]. A node
 * whose host is not numeric ("?" for an unknown endpoint, or a hostname)
 * cannot be reached without DNS: it is skipped and counted. */
int rl_cluster_slots_walk(const redisReply *r, const char *asked_host,
                          rl_cluster_slots_fn *fn, void *arg, int *skipped)
{
    size_t i;
    size_t j;

    if (skipped != NULL) {
        *skipped = 0;
    }
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return -1;
    }
    for (i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        long long start;
        long long end;

        if (!cluster_reply_shape(e, 3, REDIS_REPLY_INTEGER,
                                 REDIS_REPLY_INTEGER)) {
            return -1;
        }
        start = e->element[0]->integer;
        end = e->element[1]->integer;
        if (start < 0 || end >= RL_CLUSTER_SLOTS || start > end) {
            return -1;
        }
        for (j = 2; j < e->elements; j++) {
            rl_cluster_addr_t a;
            int rc = cluster_slots_node(e->element[j], asked_host, &a);

            if (rc < 0) {
                return -1;
            }
            if (rc > 0) {
                if (skipped != NULL) {
                    (*skipped)++;
                }
                continue;
            }
            if (fn != NULL &&
                fn(arg, (int)start, (int)end, (int)(j - 2), &a) != 0) {
                return -1;
            }
        }
    }
    return (int)r->elements;
}
