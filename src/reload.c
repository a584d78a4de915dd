/* Loading and reloading the configuration (see reload.h). Main thread,
 * except rl_reload_last (any thread). */
#include "reload.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stats.h"
#include "util.h"

/* Top-level sections only a restart can apply: the listening sockets,
 * the threads, the HTTP servers' limits, the store connections and the
 * listener's TLS context are built once at start-up. */
static const char *const restart_fields[] = {"listen", "grpc",  "workers",
                                             "http",   "store", "tls"};

/* The last (re)load's result: written by the main thread, read by the
 * admin API on the workers' threads. */
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static rl_reload_result_t last_result;

/* Records the result of a (re)load that just ended. */
static void reload_record(int ok, const char *error)
{
    pthread_mutex_lock(&last_lock);
    last_result.at_ms = rl_now_ms();
    last_result.ok = ok;
    snprintf(last_result.error, sizeof(last_result.error), "%s", error);
    pthread_mutex_unlock(&last_lock);
}

void rl_reload_last(rl_reload_result_t *out)
{
    pthread_mutex_lock(&last_lock);
    *out = last_result;
    pthread_mutex_unlock(&last_lock);
}

/* The first restart-only field whose JSON differs; see reload.h. */
const char *rl_reload_restart_field(const json_t *old, const json_t *new,
                                    int listen_overridden)
{
    size_t i;

    for (i = 0; i < sizeof(restart_fields) / sizeof(restart_fields[0]); i++) {
        const json_t *a = json_object_get(old, restart_fields[i]);
        const json_t *b = json_object_get(new, restart_fields[i]);

        if (listen_overridden && strcmp(restart_fields[i], "listen") == 0) {
            continue;
        }
        if ((a == NULL) != (b == NULL) ||
            (a != NULL && !json_equal((json_t *)a, (json_t *)b))) {
            return restart_fields[i];
        }
    }
    return NULL;
}

/* Gives conf its generation and metrics slots, and every worker the
 * counter chunks those slots need. 0 or -1. */
static int reload_prepare(rl_app_t *app, rl_conf_t *conf)
{
    int i;

    for (i = 0; i < conf->npolicies; i++) {
        conf->policies[i].stats_slot =
            rl_stats_policy_slot(conf->policies[i].name);
        conf->policies[i].key_layout = rl_policy_key_layout(&conf->policies[i]);
    }
    for (i = 0; i < app->nworkers; i++) {
        if (rl_stats_policy_reserve(&app->workers[i].stats,
                                    rl_stats_policy_slots()) != 0) {
            return -1;
        }
    }
    conf->generation = ++app->generation;
    return 0;
}

/* Makes conf (with json) the app's current conf and sends it to every
 * worker. Ownership of both is taken. 0 or -1 (then conf and json are
 * freed and nothing changed). */
static int reload_publish(rl_app_t *app, rl_conf_t *conf, json_t *json)
{
    rl_confref_t *ref;
    int i;

    if (reload_prepare(app, conf) != 0 ||
        (ref = rl_confref_new(conf, app->nworkers + 1)) == NULL) {
        rl_conf_free(conf);
        json_decref(json);
        return -1;
    }
    for (i = 0; i < app->nworkers; i++) {
        rl_worker_send_conf(&app->workers[i], ref);
    }
    rl_confref_release(app->conf_ref);
    json_decref(app->conf_json);
    app->conf_ref = ref;
    app->conf = conf;
    app->conf_json = json;
    __atomic_store_n(&app->reload_ms, rl_now_ms(), __ATOMIC_RELAXED);
    return 0;
}

/* Puts the start-up conf in force; see reload.h. Main thread. */
int rl_reload_start(rl_app_t *app, rl_conf_t *conf, json_t *json)
{
    int rc = reload_publish(app, conf, json);

    reload_record(rc == 0, rc == 0 ? "" : "out of memory");
    return rc;
}

/* Counts and logs a failed reload; the running conf stays. */
static void reload_failed(rl_app_t *app, const char *error)
{
    __atomic_add_fetch(&app->reloads_failed, 1, __ATOMIC_RELAXED);
    reload_record(0, error);
    rl_log_kv(
        RL_LOG_ERROR,
        "configuration reload failed; the running configuration stays in force",
        "file", app->conf_path, "error", error, "config_hash", app->conf->hash,
        NULL);
}

/* SIGHUP: re-reads the file with the one config reader (rl_conf_read),
 * refuses it if invalid or if it changes a restart-only section, else
 * hands it to every worker. Main thread. */
void rl_reload(rl_app_t *app)
{
    char err[512];
    char gen[24];
    char npol[16];
    json_t *json = NULL;
    rl_conf_t *conf = rl_conf_read(app->conf_path, &json, err, sizeof(err));
    const char *field;
    int level;

    if (conf == NULL) {
        reload_failed(app, err);
        return;
    }
    field =
        rl_reload_restart_field(app->conf_json, json, app->listen_overridden);
    if (field != NULL) {
        /* No value is quoted: the store section holds the password. */
        snprintf(err, sizeof(err),
                 "%s: changed; this section takes effect only on a restart",
                 field);
        rl_conf_free(conf);
        json_decref(json);
        reload_failed(app, err);
        return;
    }
    if (reload_publish(app, conf, json) != 0) {
        reload_failed(app, "out of memory");
        return;
    }
    level = rl_log_level_parse(app->conf->log_level);
    rl_log_set_level(app->verbose ? RL_LOG_DEBUG
                     : level >= 0 ? (rl_log_level_t)level
                                  : RL_LOG_INFO);
    __atomic_add_fetch(&app->reloads_ok, 1, __ATOMIC_RELAXED);
    reload_record(1, "");
    snprintf(gen, sizeof(gen), "%llu",
             (unsigned long long)app->conf->generation);
    snprintf(npol, sizeof(npol), "%d", app->conf->npolicies);
    rl_log_kv(RL_LOG_INFO, "configuration reloaded", "file", app->conf_path,
              "config_hash", app->conf->hash, "generation", gen, "policies",
              npol, NULL);
}

/* Drops the main thread's conf and JSON; see reload.h. Main thread. */
void rl_reload_stop(rl_app_t *app)
{
    rl_confref_release(app->conf_ref);
    json_decref(app->conf_json);
    app->conf_ref = NULL;
    app->conf_json = NULL;
    app->conf = NULL;
}
