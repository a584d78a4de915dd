/* The Redis store: every decision is one EVALSHA of the embedded decision
 * script (lua/, protocol in store.h) on the worker's rl_redis_conn.
 *
 * Each operation borrows a context from the store's free list. The
 * context owns the key and number strings the command points into, so
 * the caller may free its op as soon as decide() returns and a NOSCRIPT
 * retry can resend the same argv. Contexts and their buffers are reused:
 * no malloc per request in steady state beyond hiredis's formatting. */
#include "store_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "log.h"
#include "lua_scripts.h"
#include "redis_conn.h"
#include "util.h"

#define STORE_MAX_BASE 2048                       /* RL_KEY_MAX of policy.h */
#define STORE_MAX_ARGS (5 + 7 * RL_MAX_LIMITS)    /* EVALSHA sha n keys.. cost n 5*n */
#define STORE_NUM_MAX 24                          /* an int64 in decimal, with NUL */
#define STORE_BUF_MIN 1024
#define STORE_WARN_INTERVAL_US 1000000

typedef enum { STORE_OP_DECIDE = 0, STORE_OP_RESET } store_kind_t;

typedef struct store_redis store_redis_t;

/* One operation in flight; owned by the store, on its free list when idle. */
typedef struct store_op {
    struct store_op *next_free;
    store_redis_t *st;
    store_kind_t kind;
    int nlimits;
    int retried;                  /* NOSCRIPT retry done */
    rl_store_cb *cb;
    void *arg;
    int argc;
    const char *argv[STORE_MAX_ARGS];
    size_t argvlen[STORE_MAX_ARGS];
    char *buf;                    /* the strings argv points into; kept on reuse */
    size_t bufcap;
} store_op_t;

struct store_redis {
    rl_store_t pub;
    rl_redis_conn_t *conn;
    char sha[41];
    store_op_t *free_ops;
    int64_t last_warn_us;
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Logs a warning at most once per second per store (so per worker). */
static void store_warn(store_redis_t *st, const char *what, const char *detail)
{
    int64_t now = rl_mono_us();

    if (st->last_warn_us != 0 && now - st->last_warn_us < STORE_WARN_INTERVAL_US) {
        return;
    }
    st->last_warn_us = now;
    rl_log_kv(RL_LOG_WARN, what, "detail", detail, (const char *)NULL);
}

/* Writes v in decimal at p (no NUL); returns the length. */
static size_t store_fmt_i64(char *p, int64_t v)
{
    char tmp[STORE_NUM_MAX];
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t n = 0;
    size_t len = 0;

    do {
        tmp[n++] = (char)('0' + (u % 10));
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        p[len++] = '-';
    }
    while (n > 0) {
        p[len++] = tmp[--n];
    }
    return len;
}

/* Takes a context from the free list (or allocates one). NULL if out of
 * memory. */
static store_op_t *store_op_get(store_redis_t *st)
{
    store_op_t *o = st->free_ops;

    if (o != NULL) {
        st->free_ops = o->next_free;
    } else {
        o = calloc(1, sizeof(*o));
        if (o == NULL) {
            return NULL;
        }
        o->st = st;
    }
    o->retried = 0;
    return o;
}

/* Returns a context to the free list (its buffer is kept). */
static void store_op_put(store_redis_t *st, store_op_t *o)
{
    o->cb = NULL;
    o->arg = NULL;
    o->next_free = st->free_ops;
    st->free_ops = o;
}

/* Makes o->buf hold at least need bytes. RL_OK or RL_ERR. */
static int store_op_reserve(store_op_t *o, size_t need)
{
    size_t cap = o->bufcap > 0 ? o->bufcap : STORE_BUF_MIN;
    char *b;

    if (need <= o->bufcap) {
        return RL_OK;
    }
    while (cap < need) {
        cap *= 2;
    }
    b = realloc(o->buf, cap);
    if (b == NULL) {
        return RL_ERR;
    }
    o->buf = b;
    o->bufcap = cap;
    return RL_OK;
}

/* Appends one argument of len bytes at *p (copied when src != NULL,
 * already written otherwise). */
static void store_arg(store_op_t *o, char **p, const char *src, size_t len)
{
    if (src != NULL) {
        memcpy(*p, src, len);
    }
    o->argv[o->argc] = *p;
    o->argvlen[o->argc] = len;
    o->argc++;
    *p += len;
}

/* Appends a number argument. */
static void store_arg_num(store_op_t *o, char **p, int64_t v)
{
    store_arg(o, p, NULL, store_fmt_i64(*p, v));
}

/* Appends base ":" suffix (and ":b" when block) as one key argument. */
static void store_arg_key(store_op_t *o, char **p, const rl_store_op_t *op, const char *suffix,
                          int block)
{
    char *start = *p;
    size_t slen = strlen(suffix);

    memcpy(start, op->base_key, op->base_len);
    start[op->base_len] = ':';
    memcpy(start + op->base_len + 1, suffix, slen);
    if (block) {
        memcpy(start + op->base_len + 1 + slen, ":b", 2);
    }
    store_arg(o, p, NULL, op->base_len + 1 + slen + (block ? 2 : 0));
}

/* Fills o->argv for op: EVALSHA of the decision script, or DEL of every
 * key of the op. RL_OK or RL_ERR (out of memory). */
static int store_op_build(store_op_t *o, const rl_store_op_t *op, store_kind_t kind)
{
    static const int64_t algo_num[] = {
        [RL_ALGO_GCRA] = 0, [RL_ALGO_FIXED_WINDOW] = 1, [RL_ALGO_SLIDING_WINDOW] = 2,
    };
    size_t need = 64 + (size_t)(3 + 5 * op->nlimits) * STORE_NUM_MAX;  /* literals, numbers */
    char *p;
    int i;

    for (i = 0; i < op->nlimits; i++) {
        need += 2 * (op->base_len + strlen(op->limits[i].suffix)) + 4;
    }
    if (store_op_reserve(o, need) != RL_OK) {
        return RL_ERR;
    }
    p = o->buf;
    o->argc = 0;
    o->kind = kind;
    o->nlimits = op->nlimits;
    if (kind == STORE_OP_DECIDE) {
        store_arg(o, &p, "EVALSHA", 7);
        store_arg(o, &p, o->st->sha, 40);
        store_arg_num(o, &p, 2 * (int64_t)op->nlimits);
    } else {
        store_arg(o, &p, "DEL", 3);
    }
    for (i = 0; i < op->nlimits; i++) {
        store_arg_key(o, &p, op, op->limits[i].suffix, 0);
        store_arg_key(o, &p, op, op->limits[i].suffix, 1);
    }
    if (kind == STORE_OP_DECIDE) {
        store_arg_num(o, &p, op->cost);
        store_arg_num(o, &p, op->nlimits);
        for (i = 0; i < op->nlimits; i++) {
            const rl_limit_t *l = &op->limits[i];
            store_arg_num(o, &p, algo_num[l->algo]);
            store_arg_num(o, &p, l->requests);
            store_arg_num(o, &p, l->period_ms);
            store_arg_num(o, &p, l->burst);
            store_arg_num(o, &p, l->block_ms);
        }
    }
    return RL_OK;
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */
/* ------------------------------------------------------------------ */

/* 1 if r is an integer reply equal to 0 or 1. */
static int store_is_flag(const redisReply *r)
{
    return r->integer == 0 || r->integer == 1;
}

/* Decodes the script's reply { now_ms, allowed, 5 ints per limit } into
 * res. Returns NULL, or the static error for a failed result. */
static const char *store_parse_decide(store_op_t *o, const redisReply *r, rl_store_result_t *res)
{
    size_t i;
    int k;

    if (r->type == REDIS_REPLY_ERROR) {
        store_warn(o->st, "redis decision script failed", r->str);
        return "script_error";
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 + 5 * (size_t)o->nlimits) {
        return "bad_reply";
    }
    for (i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_INTEGER) {
            return "bad_reply";
        }
    }
    if (!store_is_flag(r->element[1])) {
        return "bad_reply";
    }
    res->now_ms = r->element[0]->integer;
    res->allowed = (int)r->element[1]->integer;
    for (k = 0; k < o->nlimits; k++) {
        redisReply **e = &r->element[2 + 5 * k];
        rl_limit_result_t *l = &res->limits[k];
        if (!store_is_flag(e[0]) || !store_is_flag(e[4])) {
            return "bad_reply";
        }
        l->allowed = (int)e[0]->integer;
        l->remaining = e[1]->integer;
        l->reset_after_ms = e[2]->integer;
        l->retry_after_ms = e[3]->integer;
        l->blocked = (int)e[4]->integer;
    }
    return NULL;
}

/* Decodes DEL's integer reply: the keys are gone, the next request is
 * admitted. Returns NULL or the error. */
static const char *store_parse_reset(store_op_t *o, const redisReply *r, rl_store_result_t *res)
{
    if (r->type == REDIS_REPLY_ERROR) {
        store_warn(o->st, "redis reset failed", r->str);
        return "redis_error";
    }
    if (r->type != REDIS_REPLY_INTEGER) {
        return "bad_reply";
    }
    res->allowed = 1;
    return NULL;
}

typedef const char *store_parse_fn(store_op_t *o, const redisReply *r, rl_store_result_t *res);

static store_parse_fn *const store_parsers[] = {
    [STORE_OP_DECIDE] = store_parse_decide,
    [STORE_OP_RESET] = store_parse_reset,
};

/* SCRIPT LOAD reply: only checked and logged, nothing waits for it. */
static void store_script_loaded(void *arg, redisReply *reply, const char *err)
{
    store_redis_t *st = arg;

    if (reply == NULL) {
        return;  /* the EVALSHA that follows reports the failure */
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        store_warn(st, "redis SCRIPT LOAD failed", reply->str);
    } else if (reply->type != REDIS_REPLY_STRING || reply->len != 40 ||
               memcmp(reply->str, st->sha, 40) != 0) {
        store_warn(st, "redis SCRIPT LOAD returned an unexpected SHA", st->sha);
    }
}

/* Sends SCRIPT LOAD of the decision script, fire and forget. */
static void store_load_script(store_redis_t *st)
{
    const char *argv[3] = { "SCRIPT", "LOAD", RL_LUA_DECIDE };
    size_t argvlen[3] = { 6, 4, strlen(RL_LUA_DECIDE) };

    rl_redis_conn_command(st->conn, 3, argv, argvlen, store_script_loaded, st);
}

/* Reply to an op's command: NOSCRIPT reloads and retries once (SCRIPT
 * LOAD and EVALSHA pipelined back to back), anything else ends the op.
 * The context goes back to the free list before the caller's callback
 * runs, so that callback may start new operations. */
static void store_op_reply(void *arg, redisReply *reply, const char *err)
{
    store_op_t *o = arg;
    store_redis_t *st = o->st;
    rl_store_cb *cb = o->cb;
    void *cb_arg = o->arg;
    rl_store_result_t res;
    const char *error;

    if (reply == NULL) {
        store_op_put(st, o);
        rl_store_fail(cb, cb_arg, err != NULL ? err : "disconnected");
        return;
    }
    if (o->kind == STORE_OP_DECIDE && !o->retried && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        o->retried = 1;
        store_load_script(st);
        rl_redis_conn_command(st->conn, o->argc, o->argv, o->argvlen, store_op_reply, o);
        return;
    }
    memset(&res, 0, sizeof(res));
    error = store_parsers[o->kind](o, reply, &res);
    store_op_put(st, o);
    if (error != NULL) {
        rl_store_fail(cb, cb_arg, error);
        return;
    }
    res.status = RL_OK;
    cb(cb_arg, &res);
}

/* Starts one operation; cb gets exactly one result. */
static void store_redis_start(rl_store_t *s, const rl_store_op_t *op, store_kind_t kind,
                              rl_store_cb *cb, void *arg)
{
    store_redis_t *st = s->impl;
    store_op_t *o;
    int i;

    if (op->nlimits < 1 || op->nlimits > RL_MAX_LIMITS || op->base_len > STORE_MAX_BASE ||
        op->cost < 0) {
        rl_store_fail(cb, arg, "bad_op");
        return;
    }
    for (i = 0; i < op->nlimits; i++) {
        if ((unsigned)op->limits[i].algo > RL_ALGO_SLIDING_WINDOW) {
            rl_store_fail(cb, arg, "bad_op");
            return;
        }
    }
    o = store_op_get(st);
    if (o == NULL) {
        rl_store_fail(cb, arg, "out_of_memory");
        return;
    }
    if (store_op_build(o, op, kind) != RL_OK) {
        store_op_put(st, o);
        rl_store_fail(cb, arg, "out_of_memory");
        return;
    }
    o->cb = cb;
    o->arg = arg;
    rl_redis_conn_command(st->conn, o->argc, o->argv, o->argvlen, store_op_reply, o);
}

/* ------------------------------------------------------------------ */
/* Store interface                                                     */
/* ------------------------------------------------------------------ */

/* Decides op with one EVALSHA. */
static void store_redis_decide(rl_store_t *s, const rl_store_op_t *op, rl_store_cb *cb,
                               void *arg)
{
    store_redis_start(s, op, STORE_OP_DECIDE, cb, arg);
}

/* Deletes every state and block key of op. */
static void store_redis_reset(rl_store_t *s, const rl_store_op_t *op, rl_store_cb *cb,
                              void *arg)
{
    store_redis_start(s, op, STORE_OP_RESET, cb, arg);
}

/* 1 while the connection is up and authenticated. */
static int store_redis_connected(rl_store_t *s)
{
    store_redis_t *st = s->impl;

    return rl_redis_conn_connected(st->conn);
}

/* Frees the store: pending operations end with "disconnected" first. */
static void store_redis_free(rl_store_t *s)
{
    store_redis_t *st = s->impl;

    rl_redis_conn_free(st->conn);
    while (st->free_ops != NULL) {
        store_op_t *o = st->free_ops;
        st->free_ops = o->next_free;
        free(o->buf);
        free(o);
    }
    free(st);
}

static const rl_store_ops_t store_redis_ops = {
    store_redis_decide,
    store_redis_reset,
    store_redis_connected,
    store_redis_free,
};

/* on_connect hook: every (re)connect loads the script, so a restarted or
 * flushed Redis rarely answers NOSCRIPT at all. */
static void store_redis_on_connect(void *arg, rl_redis_conn_t *c)
{
    store_load_script(arg);
}

/* The SHA1 of the decision script, lower-case hex. */
void rl_store_redis_script_sha(char out[41])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    unsigned int i;

    EVP_Digest(RL_LUA_DECIDE, strlen(RL_LUA_DECIDE), md, &mdlen, EVP_sha1(), NULL);
    for (i = 0; i < 20; i++) {
        out[i * 2] = hex[md[i] >> 4];
        out[i * 2 + 1] = hex[md[i] & 15];
    }
    out[40] = '\0';
}

/* Creates the store and its connection (which starts connecting on the
 * next loop iteration). Returns NULL on bad settings or out of memory. */
rl_store_t *rl_store_redis_new(struct event_base *base, const rl_conf_store_t *conf)
{
    store_redis_t *st = calloc(1, sizeof(*st));
    rl_redis_conn_opts_t opts;

    if (st == NULL) {
        return NULL;
    }
    st->pub.ops = &store_redis_ops;
    st->pub.impl = st;
    rl_store_redis_script_sha(st->sha);
    memset(&opts, 0, sizeof(opts));
    opts.host = conf->host;
    opts.port = conf->port;
    opts.timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : 50;
    opts.username = conf->username;
    opts.password = conf->password;
    opts.db = conf->db;
    opts.on_connect = store_redis_on_connect;
    opts.hook_arg = st;
    st->conn = rl_redis_conn_new(base, &opts);
    if (st->conn == NULL) {
        free(st);
        return NULL;
    }
    return &st->pub;
}
