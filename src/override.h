#ifndef RL_OVERRIDE_H
#define RL_OVERRIDE_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <jansson.h>
#include "limit.h"
#include "policy.h"
#include "request.h"

struct rl_conf;
struct rl_store;

/* Overrides: other limits, or a fixed denial, for some keys of a policy.
 * Config overrides live in their policy (conf_override.c builds them);
 * admin overrides live in the store (store_ovr.c) and each worker keeps
 * an immutable snapshot of them, reloaded when the store's version
 * changes (polled every 250 ms on the worker's own loop). Matching is
 * pure: among the overrides whose key fields all equal the request's
 * raw values, the one with the most fields wins; on a tie admin before
 * config, then file / insertion order. */

#define RL_OVERRIDE_MAX_FIELDS 8

typedef enum { RL_OVERRIDE_CONFIG = 0, RL_OVERRIDE_ADMIN } rl_override_source_t;

/* One key field of an override: the policy's key[index] must equal value. */
typedef struct rl_override_field {
    int index;
    char *value; /* owned */
    size_t len;
} rl_override_field_t;

typedef struct rl_override {
    char *policy; /* owned: the policy's name */
    rl_override_field_t fields[RL_OVERRIDE_MAX_FIELDS];
    int nfields;
    rl_limit_t *limits; /* owned; NULL for a deny override */
    int nlimits;
    int deny_status;              /* deny overrides: 400..599 */
    json_t *deny_body;            /* owned; NULL: the default deny body */
    struct rl_body_tpl *deny_tpl; /* owned: deny_body compiled */
    rl_override_source_t source;
    int64_t expires_at; /* unix s; 0: never */
    json_t *json;       /* owned: {"policy", "key", "limits" | "deny"} as given,
                         * then "source" and "expires_at": as GET lists it */
    struct rl_override_snap *snap; /* the admin snapshot holding it; NULL
                                    * for a config override */
} rl_override_t;

/* The config overrides of one policy, in file order (rl_policy_t). */
typedef struct rl_override_set {
    rl_override_t *items;
    int n;
} rl_override_set_t;

/* A worker's immutable view of the admin overrides at one store version. */
typedef struct rl_override_snap {
    uint64_t version;
    uint64_t generation;  /* of the conf it was built against */
    rl_override_t *items; /* in insertion (store) order */
    int n;
    int refs;    /* decisions in flight deciding with its limits (its
                  * worker's thread only); a replaced snapshot is freed
                  * once no decision holds it */
    int retired; /* replaced by a newer one */
    struct rl_override_snap *next_retired;
} rl_override_snap_t;

/* The raw values of a policy's key fields for one request (borrowed). */
typedef struct rl_override_vals {
    const char *v[RL_OVERRIDE_MAX_FIELDS]; /* NULL: absent */
    size_t len[RL_OVERRIDE_MAX_FIELDS];
    char method[RL_KEY_VALUE_MAX + 1];
} rl_override_vals_t;

/* The override that applies to policy p for the key values vals, among
 * p's config overrides and snap's admin ones (snap may be NULL), at unix
 * time now_s (expired admin entries are skipped). NULL when none does.
 * Pure, no allocation; any thread. Borrowed from p or snap. */
const rl_override_t *rl_override_find(const rl_policy_t *p,
                                      const rl_override_vals_t *vals,
                                      const rl_override_snap_t *snap,
                                      int64_t now_s);

/* The decision core's one call: the override for policy p and request
 * req (matched as m) under the calling worker's admin snapshot, or NULL.
 * Costs one branch when neither p nor the snapshot has overrides.
 * Borrowed: a config override lives as long as the conf, an admin one as
 * long as its snapshot is current, or held (rl_override_hold). Worker
 * thread. */
const rl_override_t *rl_override_for(const rl_policy_t *p,
                                     const rl_request_t *req,
                                     const rl_match_t *m);

/* A decision that keeps deciding with o's limits after this call
 * returns holds o's snapshot until it releases it, on the same worker
 * thread. No-op for a config override (the pinned conf holds it). */
void rl_override_hold(const rl_override_t *o);
void rl_override_release(const rl_override_t *o);

/* "config" or "admin" (static). */
const char *rl_override_source_name(rl_override_source_t s);

/* Frees what o owns (not o itself); a zeroed o is fine. */
void rl_override_clear(rl_override_t *o);

/* Frees a policy's config overrides and the set; NULL is fine. */
void rl_override_set_free(rl_override_set_t *set);

/* 1 if deny override o of policy p, expiring at expires_at (unix s; 0:
 * never), has no retry time for the {retry_after} or
 * {retry_after_human} its body (or p's it falls back to) uses; such an
 * override is refused, with rl_override_no_retry_msg. */
int rl_override_retry_unfillable(const rl_override_t *o, const rl_policy_t *p,
                                 int64_t expires_at);
extern const char rl_override_no_retry_msg[];

/* Parses an override object for policy p: "key" (required: an object of
 * 1..8 of p's key specs to non-empty strings), then "limits" (through the
 * policy limits parser) or "deny" {"status" 400..599, "body"}; other
 * members are left to the caller when allow_extra is 1, else refused.
 * path prefixes every error ("" for the admin API). Returns 0, or -1 with
 * err "path: problem" and *missing 1 when a required member is absent.
 * On success out owns what it holds (rl_override_clear), out->json
 * included. Main thread or worker thread; no shared state. */
int rl_override_parse(const rl_policy_t *p, json_t *obj, const char *path,
                      int allow_extra, rl_override_t *out, char *err,
                      size_t errlen, int *missing);

/* The store field of o: "<policy>\n" then its key as compact JSON with
 * sorted specs ({"tenant":"acme"}). New string, the caller frees it;
 * NULL on no memory. */
char *rl_override_field(const rl_override_t *o);

/* ---- the worker's admin snapshot (override_worker in override.c) ---- */

/* Starts the calling worker's snapshot: a first load now, then a poll of
 * the store's version every 250 ms on base. *conf is read at each
 * rebuild (the worker's current conf). Worker thread; 0 or -1. */
int rl_override_worker_start(struct event_base *base, struct rl_store *store,
                             const struct rl_conf *const *conf);

/* Reloads the calling worker's snapshot now (it has just changed the
 * overrides), then calls done(arg) on this thread, whether the load
 * worked or not (a failed one is retried by the next poll). */
void rl_override_worker_reload(void (*done)(void *arg), void *arg);

/* The calling worker's current snapshot, or NULL (none loaded yet). */
const rl_override_snap_t *rl_override_worker_snap(void);

/* Admin overrides in force, as last loaded by any worker (any thread). */
uint64_t rl_override_active(void);

/* Stops the poll and frees the snapshots; a load still in flight frees
 * its state when the store answers (or fails it). Call before the
 * worker's store is freed. */
void rl_override_worker_stop(void);

#endif
