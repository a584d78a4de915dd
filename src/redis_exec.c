/* The script executor (see redis_exec.h): the op pool, batching per
 * connection, FUNCTION LOAD and the missing-function retry, deadlines, errors,
 * warnings and connection settings, shared by every topology.
 *
 * Ownership, all on one worker thread: the executor owns its contexts
 * and batches (free lists, reused); a batch owns its ops until their
 * turn in exec_batch_finish, or until it hands them to the topology's
 * send() after an answer that says it did not run. A caller's callback
 * runs after its context went back to the pool, so it may start new
 * ops. */
#include "redis_exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "lua_scripts.h"
#include "redis_tls.h"
#include "util.h"

#define EXEC_BATCH_MAX 64
#define EXEC_BATCH_FREE_MAX 8 /* idle batches kept for reuse */
/* Idle op contexts kept for reuse: one full batch's worth; past it a
 * finished op is freed, so a burst in flight does not stay allocated. */
#define EXEC_OP_FREE_MAX EXEC_BATCH_MAX
#define EXEC_WARN_INTERVAL_US 1000000
#define EXEC_DEFAULT_TIMEOUT_MS 50
/* The longest an open batch waits for the loop to go idle (see
 * redis_exec.h). */
#define EXEC_FLUSH_LATE_US 1000

/* Decisions of one loop pass for one connection, sent as one call. */
typedef struct exec_batch {
    struct exec_batch *next; /* in the open or the free list */
    rl_redis_exec_t *ex;
    rl_redis_conn_t *conn;
    int nops;
    int retried; /* the library was reloaded for it once */
    rl_redis_exec_op_t *ops[EXEC_BATCH_MAX];
    int argc;
    int cap;
    const char **argv;
    size_t *argvlen;
    char numkeys[24];
    char count[24];
} exec_batch_t;

/* What an error reply means, per command kind. */
static const struct {
    const char *log;
    const char *error;
} exec_error_replies[] = {
    [RL_REDIS_CMD_DECIDE] = {"redis decision script failed", "script_error"},
    [RL_REDIS_CMD_RESET] = {"redis reset failed", "redis_error"},
};

/* Error replies that say the script did not run at all. */
static const char *const exec_not_run[] = {
    "MOVED ",     "ASK ",     "TRYAGAIN", "CLUSTERDOWN", "LOADING",
    "MASTERDOWN", "READONLY", "NOTLOCAL", "CROSSSLOT",
};

static void exec_single_reply(void *arg, redisReply *reply, const char *err);
static void exec_batch_reply(void *arg, redisReply *reply, const char *err);

/* ------------------------------------------------------------------ */
/* Script, warnings, errors, settings                                  */
/* ------------------------------------------------------------------ */

/* Rate-limited warning (see redis_exec.h). */
void rl_redis_exec_warn(rl_redis_exec_t *ex, const char *what,
                        const char *detail)
{
    int64_t now = rl_mono_us();

    if (ex->last_warn_us != 0 &&
        now - ex->last_warn_us < EXEC_WARN_INTERVAL_US) {
        return;
    }
    ex->last_warn_us = now;
    rl_log_kv(RL_LOG_WARN, what, "detail", detail, (const char *)NULL);
}

/* The error FUNCTION LOAD answers for a library name that exists: with
 * the name it holds, the same library (see redis_exec.h). */
#define EXEC_LIBRARY_EXISTS "ERR Library '"

/* FUNCTION LOAD reply: only checked and logged, nothing waits for it. A
 * replica answers READONLY: it gets the library from its master, whose
 * loads replicate (and a full sync carries the libraries). */
static void exec_library_loaded(void *arg, redisReply *reply, const char *err)
{
    rl_redis_exec_t *ex = arg;
    size_t exists = strlen(EXEC_LIBRARY_EXISTS);

    (void)err;
    if (reply == NULL || ex->closing) {
        return; /* the FCALL that follows reports the failure */
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        if (strncmp(reply->str, "READONLY", 8) == 0) {
            return;
        }
        if (reply->len > exists + RL_LUA_FUNCTION_LEN &&
            memcmp(reply->str, EXEC_LIBRARY_EXISTS, exists) == 0 &&
            memcmp(reply->str + exists, RL_LUA_FUNCTION, RL_LUA_FUNCTION_LEN) ==
                0 &&
            reply->str[exists + RL_LUA_FUNCTION_LEN] == '\'') {
            return;
        }
        rl_redis_exec_warn(ex, "redis FUNCTION LOAD failed", reply->str);
    } else if (reply->type != REDIS_REPLY_STRING ||
               reply->len != RL_LUA_FUNCTION_LEN ||
               memcmp(reply->str, RL_LUA_FUNCTION, RL_LUA_FUNCTION_LEN) != 0) {
        rl_redis_exec_warn(ex, "redis FUNCTION LOAD returned another library",
                           RL_LUA_FUNCTION);
    }
}

/* FUNCTION LOAD, fire and forget. */
void rl_redis_exec_load_library(rl_redis_exec_t *ex, rl_redis_conn_t *conn)
{
    const char *argv[3] = {"FUNCTION", "LOAD", RL_LUA_DECIDE};
    size_t argvlen[3] = {8, 4, strlen(RL_LUA_DECIDE)};

    rl_redis_conn_command(conn, 3, argv, argvlen, exec_library_loaded, ex);
}

/* See redis_exec.h. */
int rl_redis_exec_missing_library(const char *err)
{
    return strncmp(err, RL_REDIS_EXEC_MISSING_FUNCTION,
                   strlen(RL_REDIS_EXEC_MISSING_FUNCTION)) == 0;
}

/* Logs an error reply and names the store error for it. */
const char *rl_redis_exec_error_reply(rl_redis_exec_t *ex,
                                      rl_redis_cmd_kind_t kind,
                                      const char *detail)
{
    rl_redis_exec_warn(ex, exec_error_replies[kind].log, detail);
    return exec_error_replies[kind].error;
}

/* 1 for an answer that says the script did not run. */
int rl_redis_exec_not_run(const char *err, size_t len)
{
    size_t i;

    for (i = 0; i < sizeof(exec_not_run) / sizeof(exec_not_run[0]); i++) {
        size_t plen = strlen(exec_not_run[i]);

        if (len >= plen && memcmp(err, exec_not_run[i], plen) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The command deadline in milliseconds. */
int rl_redis_exec_timeout_ms(const rl_conf_store_t *conf)
{
    return conf->timeout_ms > 0 ? conf->timeout_ms : EXEC_DEFAULT_TIMEOUT_MS;
}

/* Connection options from store.* (see redis_exec.h). */
void rl_redis_exec_conn_opts(const rl_conf_store_t *conf, const char *host,
                             int port, SSL_CTX *tls_ctx,
                             rl_redis_conn_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->host = host;
    opts->port = port;
    opts->timeout_ms = rl_redis_exec_timeout_ms(conf);
    opts->username = conf->username;
    opts->password = conf->password;
    opts->tls_ctx = tls_ctx;
    opts->tls_server_name = conf->tls != NULL ? conf->tls->server_name : NULL;
}

/* The TLS context of store.tls, logged on failure. */
int rl_redis_exec_tls(const rl_conf_store_t *conf, SSL_CTX **ctx)
{
    char err[256];
    const char *field;

    *ctx = NULL;
    if (conf->tls == NULL) {
        return RL_OK;
    }
    *ctx = rl_redis_tls_ctx_new(conf->tls, &field, err, sizeof(err));
    if (*ctx == NULL) {
        rl_log_kv(RL_LOG_ERROR, "redis TLS set-up failed", "field",
                  field != NULL ? field : "tls", "error", err,
                  (const char *)NULL);
        return RL_ERR;
    }
    return RL_OK;
}

/* ------------------------------------------------------------------ */
/* The op pool                                                         */
/* ------------------------------------------------------------------ */

/* Frees o (unlinked from the pool) and its command. */
static void exec_op_free(rl_redis_exec_t *ex, rl_redis_exec_op_t *o)
{
    if (o->prev_all != NULL) {
        o->prev_all->next_all = o->next_all;
    } else {
        ex->all_ops = o->next_all;
    }
    if (o->next_all != NULL) {
        o->next_all->prev_all = o->prev_all;
    }
    if (ex->topo->op_fini != NULL) {
        ex->topo->op_fini(ex->topo_arg, o);
    }
    rl_redis_cmd_free(&o->cmd);
    free(o);
}

/* A context from the free list, or a new one. NULL if out of memory. */
static rl_redis_exec_op_t *exec_op_get(rl_redis_exec_t *ex)
{
    rl_redis_exec_op_t *o = ex->free_ops;

    if (o != NULL) {
        ex->free_ops = o->next_free;
        ex->nfree_ops--;
    } else {
        o = calloc(1, ex->topo->op_size);
        if (o == NULL) {
            return NULL;
        }
        o->ex = ex;
        o->next_all = ex->all_ops;
        if (ex->all_ops != NULL) {
            ex->all_ops->prev_all = o;
        }
        ex->all_ops = o;
        if (ex->topo->op_init != NULL &&
            ex->topo->op_init(ex->topo_arg, o) != RL_OK) {
            exec_op_free(ex, o);
            return NULL;
        }
    }
    o->reload_retried = 0;
    o->conn = NULL;
    o->in_use = 1;
    return o;
}

/* Back to the free list (past EXEC_OP_FREE_MAX idle ones: freed). */
void rl_redis_exec_op_put(rl_redis_exec_op_t *o)
{
    rl_redis_exec_t *ex = o->ex;

    o->in_use = 0;
    o->cb = NULL;
    o->arg = NULL;
    if (ex->nfree_ops >= EXEC_OP_FREE_MAX) {
        exec_op_free(ex, o);
        return;
    }
    o->next_free = ex->free_ops;
    ex->free_ops = o;
    ex->nfree_ops++;
}

/* Ends o (see redis_exec.h). */
void rl_redis_exec_op_end(rl_redis_exec_op_t *o, rl_store_result_t *res,
                          const char *error)
{
    rl_store_cb *cb = o->cb;
    void *arg = o->arg;

    rl_redis_exec_op_put(o);
    if (error != NULL) {
        rl_store_fail(cb, arg, error);
        return;
    }
    res->status = RL_OK;
    cb(arg, res);
}

/* Decodes reply and ends o with it. */
void rl_redis_exec_op_reply(rl_redis_exec_op_t *o, const redisReply *reply)
{
    rl_store_result_t res;
    const char *error;

    memset(&res, 0, sizeof(res));
    error = rl_redis_cmd_parse(&o->cmd, reply, &res);
    rl_redis_exec_op_end(o, &res, error);
}

/* Every context in use (see redis_exec.h). */
void rl_redis_exec_each_op(rl_redis_exec_t *ex,
                           void (*fn)(void *arg, rl_redis_exec_op_t *o),
                           void *arg)
{
    rl_redis_exec_op_t *o = ex->all_ops;

    while (o != NULL) {
        rl_redis_exec_op_t *next = o->next_all;

        if (o->in_use) {
            fn(arg, o);
        }
        o = next;
    }
}

/* ------------------------------------------------------------------ */
/* One op alone                                                        */
/* ------------------------------------------------------------------ */

/* Tells the topology of an error reply (see rl_redis_topo_t). */
static void exec_tell_error(rl_redis_exec_t *ex, const char *err)
{
    if (ex->topo->error_reply != NULL && !ex->closing) {
        ex->topo->error_reply(ex->topo_arg, err);
    }
}

/* Sends o alone on conn (the executor's own way, without a topology
 * send()). */
static void exec_single_send(rl_redis_exec_op_t *o, rl_redis_conn_t *conn)
{
    if (conn == NULL) {
        rl_redis_exec_op_end(o, NULL, "disconnected");
        return;
    }
    o->conn = conn;
    rl_redis_conn_command(conn, o->cmd.argc, o->cmd.argv, o->cmd.argvlen,
                          exec_single_reply, o);
}

/* Reply to an op sent alone: a missing function reloads the library and
 * retries once (FUNCTION LOAD and FCALL pipelined back to back), anything
 * else ends it. */
static void exec_single_reply(void *arg, redisReply *reply, const char *err)
{
    rl_redis_exec_op_t *o = arg;
    rl_redis_exec_t *ex = o->ex;

    if (reply == NULL) {
        rl_redis_exec_op_end(o, NULL, err != NULL ? err : "disconnected");
        return;
    }
    if (reply->type != REDIS_REPLY_ERROR) {
        rl_redis_exec_op_reply(o, reply);
        return;
    }
    exec_tell_error(ex, reply->str);
    if (o->cmd.kind == RL_REDIS_CMD_DECIDE && !o->reload_retried &&
        rl_redis_exec_missing_library(reply->str)) {
        o->reload_retried = 1;
        rl_redis_exec_load_library(ex, o->conn);
        exec_single_send(o, o->conn);
        return;
    }
    rl_redis_exec_op_end(
        o, NULL, rl_redis_exec_error_reply(ex, o->cmd.kind, reply->str));
}

/* Sends o alone: the topology's way, or on its route. */
static void exec_send_one(rl_redis_exec_t *ex, rl_redis_exec_op_t *o, int retry)
{
    if (ex->topo->send != NULL) {
        ex->topo->send(ex->topo_arg, o, retry);
        return;
    }
    exec_single_send(o, ex->topo->route(ex->topo_arg, o));
}

/* ------------------------------------------------------------------ */
/* Batches                                                             */
/* ------------------------------------------------------------------ */

/* A batch from the free list (or a new one) for conn. NULL if out of
 * memory. */
static exec_batch_t *exec_batch_get(rl_redis_exec_t *ex, rl_redis_conn_t *conn)
{
    exec_batch_t *b = ex->free_batches;

    if (b != NULL) {
        ex->free_batches = b->next;
        ex->nfree_batches--;
    } else {
        b = calloc(1, sizeof(*b));
        if (b == NULL) {
            return NULL;
        }
        b->ex = ex;
    }
    b->next = NULL;
    b->conn = conn;
    b->nops = 0;
    b->retried = 0;
    return b;
}

/* Frees b and its argv arrays. */
static void exec_batch_free(exec_batch_t *b)
{
    free(b->argv);
    free(b->argvlen);
    free(b);
}

/* Back to the free list (past EXEC_BATCH_FREE_MAX idle ones: freed). */
static void exec_batch_put(rl_redis_exec_t *ex, exec_batch_t *b)
{
    if (ex->nfree_batches >= EXEC_BATCH_FREE_MAX) {
        exec_batch_free(b);
        return;
    }
    b->next = ex->free_batches;
    ex->free_batches = b;
    ex->nfree_batches++;
}

/* 1 when a batch's error element e says its decision did not run and the
 * topology can send it alone (NOTLOCAL: a key of it is not on the node). */
static int exec_batch_alone(const rl_redis_exec_t *ex, const redisReply *e)
{
    return ex->topo->send != NULL && !ex->closing && e->len >= 8 &&
           memcmp(e->str, "NOTLOCAL", 8) == 0;
}

/* Ends every op of b, in order: with error when given, else with its
 * element of reply (an array of b->nops; an error element fails that
 * decision alone, except a NOTLOCAL one: that decision did not run, so
 * it goes alone the topology's way). The later ops stay b's until their
 * turn. */
static void exec_batch_finish(exec_batch_t *b, const redisReply *reply,
                              const char *error)
{
    rl_redis_exec_t *ex = b->ex;
    int i;

    for (i = 0; i < b->nops; i++) {
        rl_redis_exec_op_t *o = b->ops[i];

        if (error != NULL) {
            rl_redis_exec_op_end(o, NULL, error);
        } else if (reply->element[i]->type == REDIS_REPLY_ERROR &&
                   exec_batch_alone(ex, reply->element[i])) {
            exec_send_one(ex, o, 1);
        } else if (reply->element[i]->type == REDIS_REPLY_ERROR) {
            rl_redis_exec_op_end(
                o, NULL,
                rl_redis_exec_error_reply(ex, RL_REDIS_CMD_DECIDE,
                                          reply->element[i]->str));
        } else {
            rl_redis_exec_op_reply(o, reply->element[i]);
        }
    }
    exec_batch_put(ex, b);
}

/* A batch that did not run: each op goes alone, the topology's way. */
static void exec_batch_fall_back(exec_batch_t *b)
{
    rl_redis_exec_t *ex = b->ex;
    int i;

    for (i = 0; i < b->nops; i++) {
        exec_send_one(ex, b->ops[i], 1);
    }
    exec_batch_put(ex, b);
}

/* Reply to a batch: one reply per decision, in order. A missing function
 * reloads the library and retries the batch once; an answer that says it did
 * not run falls back one by one where the topology can send alone. */
static void exec_batch_reply(void *arg, redisReply *reply, const char *err)
{
    exec_batch_t *b = arg;
    rl_redis_exec_t *ex = b->ex;

    if (reply == NULL) {
        exec_batch_finish(b, NULL, err != NULL ? err : "disconnected");
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        exec_tell_error(ex, reply->str);
        if (!b->retried && !ex->closing &&
            rl_redis_exec_missing_library(reply->str)) {
            b->retried = 1;
            rl_redis_exec_load_library(ex, b->conn);
            rl_redis_conn_command(b->conn, b->argc, b->argv, b->argvlen,
                                  exec_batch_reply, b);
            return;
        }
        if (ex->topo->send != NULL && !ex->closing &&
            rl_redis_exec_not_run(reply->str, reply->len)) {
            exec_batch_fall_back(b);
            return;
        }
        exec_batch_finish(
            b, NULL,
            rl_redis_exec_error_reply(ex, RL_REDIS_CMD_DECIDE, reply->str));
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != (size_t)b->nops) {
        exec_batch_finish(b, NULL, "bad_reply");
        return;
    }
    exec_batch_finish(b, reply, NULL);
}

/* Appends one argument to b (room was made by exec_batch_build). */
static void exec_batch_arg(exec_batch_t *b, const char *s, size_t len)
{
    b->argv[b->argc] = s;
    b->argvlen[b->argc++] = len;
}

/* Makes room for need arguments. RL_OK or RL_ERR. */
static int exec_batch_room(exec_batch_t *b, int need)
{
    const char **argv;
    size_t *argvlen;

    if (need <= b->cap) {
        return RL_OK;
    }
    argv = realloc(b->argv, (size_t)need * sizeof(*argv));
    if (argv == NULL) {
        return RL_ERR;
    }
    b->argv = argv;
    argvlen = realloc(b->argvlen, (size_t)need * sizeof(*argvlen));
    if (argvlen == NULL) {
        return RL_ERR;
    }
    b->argvlen = argvlen;
    b->cap = need;
    return RL_OK;
}

/* Builds b's command: FCALL fn numkeys keys.. "batch" count args..;
 * with cross_slot, FCALL fn 0 "keys" numkeys keys.. "batch" .. (see
 * redis_exec.h). The strings stay in each op's command. RL_OK or RL_ERR
 * (out of memory). */
static int exec_batch_build(rl_redis_exec_t *ex, exec_batch_t *b)
{
    int need = 7;
    int nkeys = 0;
    int i;
    int j;

    for (i = 0; i < b->nops; i++) {
        need += b->ops[i]->cmd.argc - 3;
        nkeys += b->ops[i]->cmd.nkeys;
    }
    if (exec_batch_room(b, need) != RL_OK) {
        return RL_ERR;
    }
    b->argc = 0;
    exec_batch_arg(b, "FCALL", 5);
    exec_batch_arg(b, RL_LUA_FUNCTION, RL_LUA_FUNCTION_LEN);
    if (ex->cross_slot) {
        exec_batch_arg(b, "0", 1);
        exec_batch_arg(b, "keys", 4);
    }
    exec_batch_arg(
        b, b->numkeys,
        (size_t)snprintf(b->numkeys, sizeof(b->numkeys), "%d", nkeys));
    for (i = 0; i < b->nops; i++) {
        const rl_redis_cmd_t *c = &b->ops[i]->cmd;

        for (j = 3; j < 3 + c->nkeys; j++) {
            exec_batch_arg(b, c->argv[j], c->argvlen[j]);
        }
    }
    exec_batch_arg(b, "batch", 5);
    exec_batch_arg(b, b->count,
                   (size_t)snprintf(b->count, sizeof(b->count), "%d", b->nops));
    for (i = 0; i < b->nops; i++) {
        const rl_redis_cmd_t *c = &b->ops[i]->cmd;

        for (j = 3 + c->nkeys; j < c->argc; j++) {
            exec_batch_arg(b, c->argv[j], c->argvlen[j]);
        }
    }
    return RL_OK;
}

/* Sends b (unlinked from the open list): a lone decision as the plain
 * one-request call. */
static void exec_batch_send(rl_redis_exec_t *ex, exec_batch_t *b)
{
    rl_redis_exec_op_t *o;

    if (b->nops == 1) {
        o = b->ops[0];
        exec_batch_put(ex, b);
        exec_send_one(ex, o, 0);
        return;
    }
    if (exec_batch_build(ex, b) != RL_OK) {
        exec_batch_finish(b, NULL, "out_of_memory");
        return;
    }
    rl_redis_conn_command(b->conn, b->argc, b->argv, b->argvlen,
                          exec_batch_reply, b);
}

/* Unlinks and sends the open batch of conn, if any. */
void rl_redis_exec_flush_conn(rl_redis_exec_t *ex, rl_redis_conn_t *conn)
{
    exec_batch_t **pb;

    for (pb = &ex->open; *pb != NULL; pb = &(*pb)->next) {
        exec_batch_t *b = *pb;

        if (b->conn == conn) {
            *pb = b->next;
            exec_batch_send(ex, b);
            return;
        }
    }
}

/* Takes back the open batch of conn unsent (see redis_exec.h). */
void rl_redis_exec_forget_conn(rl_redis_exec_t *ex, rl_redis_conn_t *conn)
{
    exec_batch_t **pb;

    for (pb = &ex->open; *pb != NULL; pb = &(*pb)->next) {
        exec_batch_t *b = *pb;

        if (b->conn == conn) {
            *pb = b->next;
            if (ex->topo->send != NULL && !ex->closing) {
                exec_batch_fall_back(b);
            } else {
                exec_batch_finish(b, NULL, "disconnected");
            }
            return;
        }
    }
}

/* The flush events: send every open batch. */
static void exec_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    rl_redis_exec_t *ex = arg;

    (void)fd;
    (void)what;
    event_del(ex->flush_late);
    while (ex->open != NULL) {
        exec_batch_t *b = ex->open;

        ex->open = b->next;
        exec_batch_send(ex, b);
    }
}

/* Adds o to conn's open batch, opening one (and scheduling the flush) if
 * needed. RL_ERR if no batch could be had: the caller sends o alone. */
static int exec_batch_add(rl_redis_exec_t *ex, rl_redis_conn_t *conn,
                          rl_redis_exec_op_t *o)
{
    exec_batch_t *b;

    for (b = ex->open; b != NULL && b->conn != conn; b = b->next) {
    }
    if (b == NULL) {
        b = exec_batch_get(ex, conn);
        if (b == NULL) {
            return RL_ERR;
        }
        if (ex->open == NULL) {
            event_active(ex->flush, EV_TIMEOUT, 0);
            if (ex->topo->flush_when_idle) {
                rl_loop_timer_at(ex->flush_late,
                                 rl_mono_us() + EXEC_FLUSH_LATE_US);
            }
        }
        b->next = ex->open;
        ex->open = b;
    }
    b->ops[b->nops++] = o;
    if (b->nops == EXEC_BATCH_MAX) {
        rl_redis_exec_flush_conn(ex, conn);
    }
    return RL_OK;
}

/* ------------------------------------------------------------------ */
/* Life cycle and start                                                */
/* ------------------------------------------------------------------ */

/* Starts one op (see redis_exec.h). */
void rl_redis_exec_start(rl_redis_exec_t *ex, const rl_store_op_t *op,
                         rl_redis_cmd_kind_t kind, rl_store_cb *cb, void *arg)
{
    rl_redis_exec_op_t *o;
    rl_redis_conn_t *conn;
    const char *bad;

    if (ex->closing) {
        rl_store_fail(cb, arg, "disconnected");
        return;
    }
    o = exec_op_get(ex);
    if (o == NULL) {
        rl_store_fail(cb, arg, "out_of_memory");
        return;
    }
    o->cb = cb;
    o->arg = arg;
    bad = rl_redis_cmd_check(op);
    if (bad == NULL &&
        rl_redis_cmd_build(&o->cmd, RL_LUA_FUNCTION, op, kind) != RL_OK) {
        bad = "out_of_memory";
    }
    if (bad == NULL && ex->topo->prepare != NULL) {
        bad = ex->topo->prepare(ex->topo_arg, o);
    }
    if (bad != NULL) {
        rl_redis_exec_op_end(o, NULL, bad);
        return;
    }
    conn = ex->topo->route(ex->topo_arg, o);
    if (kind == RL_REDIS_CMD_DECIDE && conn != NULL &&
        rl_redis_conn_connected(conn) && exec_batch_add(ex, conn, o) == RL_OK) {
        return;
    }
    /* Anything else keeps its order behind the decisions started before. */
    if (conn != NULL) {
        rl_redis_exec_flush_conn(ex, conn);
    }
    exec_send_one(ex, o, 0);
}

/* Sets ex up (see redis_exec.h). */
int rl_redis_exec_init(rl_redis_exec_t *ex, struct event_base *base,
                       const rl_conf_store_t *conf, const rl_redis_topo_t *topo,
                       void *topo_arg, int cross_slot, SSL_CTX *tls_ctx)
{
    memset(ex, 0, sizeof(*ex));
    ex->base = base;
    ex->conf = conf;
    ex->topo = topo;
    ex->topo_arg = topo_arg;
    ex->cross_slot = cross_slot;
    if (tls_ctx != NULL) {
        SSL_CTX_up_ref(tls_ctx);
        ex->tls_ctx = tls_ctx;
    }
    ex->flush = event_new(base, -1, 0, exec_flush_cb, ex);
    ex->flush_late = evtimer_new(base, exec_flush_cb, ex);
    if (ex->flush != NULL && topo->flush_when_idle) {
        (void)event_priority_set(ex->flush, RL_LOOP_PRIORITY_IDLE);
    }
    return ex->flush != NULL && ex->flush_late != NULL ? RL_OK : RL_ERR;
}

/* Closing: decisions not sent yet end like pending ones. */
void rl_redis_exec_close(rl_redis_exec_t *ex)
{
    ex->closing = 1;
    while (ex->open != NULL) {
        exec_batch_t *b = ex->open;

        ex->open = b->next;
        exec_batch_finish(b, NULL, "disconnected");
    }
}

/* Frees what ex owns (see redis_exec.h). */
void rl_redis_exec_free(rl_redis_exec_t *ex)
{
    rl_redis_exec_close(ex);
    while (ex->free_batches != NULL) {
        exec_batch_t *b = ex->free_batches;

        ex->free_batches = b->next;
        exec_batch_free(b);
    }
    while (ex->all_ops != NULL) {
        exec_op_free(ex, ex->all_ops);
    }
    ex->free_ops = NULL;
    rl_loop_event_free(ex->flush);
    rl_loop_event_free(ex->flush_late);
    ex->flush = ex->flush_late = NULL;
    SSL_CTX_free(ex->tls_ctx);
    ex->tls_ctx = NULL;
}
