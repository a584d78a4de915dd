#ifndef RL_RELOAD_H
#define RL_RELOAD_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "conf.h"
#include "worker.h"

/* Configuration (re)loading on the main thread: the start-up load, and
 * SIGHUP. A reload validates the whole new file first; if it is invalid,
 * or changes a section that only a restart can apply ("listen",
 * "workers", "http", "store", the listener's "tls"), the running conf
 * stays in force and the failure is logged and counted. Otherwise every
 * worker gets the new conf through its mailbox and notify pipe and swaps
 * to it between two requests; requests in flight finish on the conf they
 * started with (confref.h), and policies that did not change keep their Redis
 * keys, so their counters carry on. */

/* The first restart-only top-level field ("listen" unless
 * listen_overridden, "workers", "http", "store", "tls") whose JSON differs
 * between old and new, or NULL if none does. Pure. */
const char *rl_reload_restart_field(const json_t *old, const json_t *new,
                                    int listen_overridden);

/* Puts conf (ownership taken, also on failure) and json (same) in force
 * at start-up: generation 1, metrics slots, one reference per worker in
 * its mailbox. The workers are initialised, not yet started. 0 or -1. */
int rl_reload_start(rl_app_t *app, rl_conf_t *conf, json_t *json);

/* Re-reads app->conf_path and, if valid, hands it to every worker. */
void rl_reload(rl_app_t *app);

/* The last (re)load of the configuration: the start-up load, then each
 * SIGHUP. error is the reason of a failed one as logged (it names a
 * JSON path or a section, never a value, so it holds no secret), "" for
 * a successful one. */
typedef struct rl_reload_result {
    int64_t at_ms; /* wall clock; 0 before the start-up load */
    int ok;
    char error[256];
} rl_reload_result_t;

/* Copies the last (re)load's result into *out. Any thread. */
void rl_reload_last(rl_reload_result_t *out);

/* Drops the main thread's conf and JSON once every worker is joined. */
void rl_reload_stop(rl_app_t *app);

#endif
