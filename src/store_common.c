/* What the two Redis stores share (see store_common.h). */
#include "store_common.h"

#include <string.h>
#include "log.h"
#include "lua_scripts.h"
#include "redis_tls.h"
#include "store_redis.h"
#include "util.h"

#define STORE_WARN_INTERVAL_US 1000000
#define STORE_DEFAULT_TIMEOUT_MS 50

/* What an error reply means, per command kind. */
static const struct {
    const char *log;
    const char *error;
} store_error_replies[] = {
    [RL_REDIS_CMD_DECIDE] = {"redis decision script failed", "script_error"},
    [RL_REDIS_CMD_RESET] = {"redis reset failed", "redis_error"},
};

/* The script's SHA, nothing logged, not closing. */
void rl_store_common_init(rl_store_common_t *sc)
{
    memset(sc, 0, sizeof(*sc));
    rl_store_redis_script_sha(sc->sha);
}

/* Rate-limited warning (see store_common.h). */
void rl_store_common_warn(rl_store_common_t *sc, const char *what,
                          const char *detail)
{
    int64_t now = rl_mono_us();

    if (sc->last_warn_us != 0 &&
        now - sc->last_warn_us < STORE_WARN_INTERVAL_US) {
        return;
    }
    sc->last_warn_us = now;
    rl_log_kv(RL_LOG_WARN, what, "detail", detail, (const char *)NULL);
}

/* SCRIPT LOAD reply: only checked and logged, nothing waits for it. */
static void store_script_loaded(void *arg, redisReply *reply, const char *err)
{
    rl_store_common_t *sc = arg;

    (void)err;
    if (reply == NULL || sc->closing) {
        return; /* the EVALSHA that follows reports the failure */
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        rl_store_common_warn(sc, "redis SCRIPT LOAD failed", reply->str);
    } else if (reply->type != REDIS_REPLY_STRING || reply->len != 40 ||
               memcmp(reply->str, sc->sha, 40) != 0) {
        rl_store_common_warn(sc, "redis SCRIPT LOAD returned an unexpected SHA",
                             sc->sha);
    }
}

/* SCRIPT LOAD, fire and forget. */
void rl_store_common_load_script(rl_store_common_t *sc, rl_redis_conn_t *conn)
{
    const char *argv[3] = {"SCRIPT", "LOAD", RL_LUA_DECIDE};
    size_t argvlen[3] = {6, 4, strlen(RL_LUA_DECIDE)};

    rl_redis_conn_command(conn, 3, argv, argvlen, store_script_loaded, sc);
}

/* Logs an error reply and names the store error for it. */
const char *rl_store_common_error_reply(rl_store_common_t *sc,
                                        rl_redis_cmd_kind_t kind,
                                        const char *detail)
{
    rl_store_common_warn(sc, store_error_replies[kind].log, detail);
    return store_error_replies[kind].error;
}

/* Check, then build (see store_common.h). */
const char *rl_store_common_build(rl_store_common_t *sc, rl_redis_cmd_t *cmd,
                                  const rl_store_op_t *op,
                                  rl_redis_cmd_kind_t kind)
{
    const char *bad = rl_redis_cmd_check(op);

    if (bad != NULL) {
        return bad;
    }
    if (rl_redis_cmd_build(cmd, sc->sha, op, kind) != RL_OK) {
        return "out_of_memory";
    }
    return NULL;
}

/* The command deadline in milliseconds. */
int rl_store_common_timeout_ms(const rl_conf_store_t *conf)
{
    return conf->timeout_ms > 0 ? conf->timeout_ms : STORE_DEFAULT_TIMEOUT_MS;
}

/* Connection options from store.* (see store_common.h). */
void rl_store_common_conn_opts(const rl_conf_store_t *conf, const char *host,
                               int port, SSL_CTX *tls_ctx,
                               rl_redis_conn_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->host = host;
    opts->port = port;
    opts->timeout_ms = rl_store_common_timeout_ms(conf);
    opts->username = conf->username;
    opts->password = conf->password;
    opts->tls_ctx = tls_ctx;
    opts->tls_server_name = conf->tls != NULL ? conf->tls->server_name : NULL;
}

/* The TLS context of store.tls, logged on failure. */
int rl_store_common_tls(const rl_conf_store_t *conf, SSL_CTX **ctx)
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
