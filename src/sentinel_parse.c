/* The Sentinel client's parsers of network bytes (see sentinel_parse.h):
 * pure functions over hiredis replies and message bytes, shared by
 * sentinel.c and sentinel_sub.c and driven by tests/fuzz/fuzz_sentinel.c.
 * Every length comes from the reply, never from strlen. */
#include "sentinel_parse.h"

#include <string.h>

#include "util.h"

#define PARSE_SWITCH_FIELDS 5

/* A field of a message or a bulk string: len bytes at p. */
typedef struct {
    const char *p;
    size_t len;
} parse_span_t;

/* 1 if r is a bulk string of exactly the bytes s. */
static int parse_str_is(const redisReply *r, const char *s)
{
    size_t n = strlen(s);

    return r != NULL && r->type == REDIS_REPLY_STRING && r->len == n &&
           memcmp(r->str, s, n) == 0;
}

/* A port: 1 to 5 decimal digits worth 1..65535; RL_OK or RL_ERR. */
static int parse_port(parse_span_t f, int *port)
{
    int v = 0;
    size_t i;

    if (f.len == 0 || f.len > 5) {
        return RL_ERR;
    }
    for (i = 0; i < f.len; i++) {
        if (f.p[i] < '0' || f.p[i] > '9') {
            return RL_ERR;
        }
        v = v * 10 + (f.p[i] - '0');
    }
    if (v < 1 || v > 65535) {
        return RL_ERR;
    }
    *port = v;
    return RL_OK;
}

/* Copies a host of 1 to hostsize - 1 bytes, none NUL, with its NUL;
 * RL_OK or RL_ERR (host untouched). */
static int parse_host(parse_span_t f, char *host, size_t hostsize)
{
    if (f.len == 0 || f.len >= hostsize || memchr(f.p, '\0', f.len) != NULL) {
        return RL_ERR;
    }
    memcpy(host, f.p, f.len);
    host[f.len] = '\0';
    return RL_OK;
}

/* [host, port]; see sentinel_parse.h. */
int rl_sentinel_parse_master_addr(const redisReply *r, char *host,
                                  size_t hostsize, int *port)
{
    parse_span_t h, p;

    if (hostsize > 0) {
        host[0] = '\0';
    }
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING) {
        return RL_ERR;
    }
    h.p = r->element[0]->str;
    h.len = r->element[0]->len;
    p.p = r->element[1]->str;
    p.len = r->element[1]->len;
    if (parse_port(p, port) != RL_OK) {
        return RL_ERR;
    }
    return parse_host(h, host, hostsize);
}

/* ["master", ...]; see sentinel_parse.h. */
int rl_sentinel_parse_role(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
           parse_str_is(r->element[0], "master");
}

/* [kind, ...]; see sentinel_parse.h. */
rl_sentinel_parse_kind_t rl_sentinel_parse_sub(const redisReply *r,
                                               const char **msg, size_t *len)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        return RL_SENTINEL_SUB_BAD;
    }
    if (parse_str_is(r->element[0], "pong")) {
        return RL_SENTINEL_SUB_PONG;
    }
    if (parse_str_is(r->element[0], "subscribe")) {
        return RL_SENTINEL_SUB_SUBSCRIBED;
    }
    if (parse_str_is(r->element[0], "message") && r->elements == 3 &&
        r->element[2]->type == REDIS_REPLY_STRING) {
        *msg = r->element[2]->str;
        *len = r->element[2]->len;
        return RL_SENTINEL_SUB_MESSAGE;
    }
    return RL_SENTINEL_SUB_OTHER;
}

/* 1 if c is white space as sscanf's %s sees it (the C locale's). */
static int parse_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
           c == '\r';
}

/* Splits len bytes at msg into exactly n fields parted by white space;
 * RL_OK or RL_ERR (fewer or more fields). */
static int parse_fields(const char *msg, size_t len, parse_span_t *f, int n)
{
    size_t i = 0;
    int k = 0;

    for (;;) {
        while (i < len && parse_space(msg[i])) {
            i++;
        }
        if (i == len) {
            return k == n ? RL_OK : RL_ERR;
        }
        if (k == n) {
            return RL_ERR;
        }
        f[k].p = msg + i;
        while (i < len && !parse_space(msg[i])) {
            i++;
        }
        f[k].len = (size_t)(msg + i - f[k].p);
        k++;
    }
}

/* "name oldip oldport newip newport"; see sentinel_parse.h. */
int rl_sentinel_parse_switch(const char *msg, size_t len, const char *want_name,
                             char *host, size_t hostsize, int *port)
{
    parse_span_t f[PARSE_SWITCH_FIELDS];
    size_t i;

    if (hostsize > 0) {
        host[0] = '\0';
    }
    if (memchr(msg, '\0', len) != NULL ||
        parse_fields(msg, len, f, PARSE_SWITCH_FIELDS) != RL_OK ||
        f[0].len != strlen(want_name) ||
        memcmp(f[0].p, want_name, f[0].len) != 0) {
        return RL_ERR;
    }
    for (i = 0; i < f[2].len; i++) {
        if (f[2].p[i] < '0' || f[2].p[i] > '9') {
            return RL_ERR;
        }
    }
    if (parse_port(f[4], port) != RL_OK) {
        return RL_ERR;
    }
    return parse_host(f[3], host, hostsize);
}
