/* Overrides (override.h): matching, and each worker's snapshot of the
 * admin overrides.
 *
 * The snapshot is built on the worker's own thread from the store's
 * entries, then only read; a newer one replaces it, and the old one is
 * freed once no decision in flight holds it (rl_override_hold): a store
 * op may outlive any fixed grace (deadline 60 s, a reload of the Redis
 * library and its retry). The poll is one store op every 250 ms on the
 * worker's loop (a GET of the version on Redis); only a changed version
 * loads the entries. Nothing here takes a lock or blocks. */
#include "override.h"

#include <stdlib.h>
#include <string.h>
#include "conf.h"
#include "deny_cache.h"
#include "log.h"
#include "reply.h"
#include "store.h"
#include "util.h"

#define OVR_POLL_MS 250

/* Admin overrides in force, as last loaded by any worker (the gauge). */
static uint64_t ovr_active;

/* ------------------------------------------------------------------ */
/* Overrides and matching                                              */
/* ------------------------------------------------------------------ */

void rl_override_hold(const rl_override_t *o)
{
    if (o != NULL && o->snap != NULL) {
        o->snap->refs++;
    }
}

void rl_override_release(const rl_override_t *o)
{
    if (o != NULL && o->snap != NULL) {
        o->snap->refs--;
    }
}

const char *rl_override_source_name(rl_override_source_t s)
{
    return s == RL_OVERRIDE_ADMIN ? "admin" : "config";
}

void rl_override_clear(rl_override_t *o)
{
    int i;

    for (i = 0; i < o->nfields; i++) {
        free(o->fields[i].value);
    }
    free(o->policy);
    free(o->limits);
    json_decref(o->deny_body);
    rl_reply_body_free(o->deny_tpl);
    json_decref(o->json);
    memset(o, 0, sizeof(*o));
}

/* Clears the n overrides of items and frees the array. */
static void ovr_items_free(rl_override_t *items, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        rl_override_clear(&items[i]);
    }
    free(items);
}

void rl_override_set_free(rl_override_set_t *set)
{
    if (set != NULL) {
        ovr_items_free(set->items, set->n);
        free(set);
    }
}

char *rl_override_field(const rl_override_t *o)
{
    json_t *key = json_object_get(o->json, "key");
    char *k = json_dumps(key, JSON_COMPACT | JSON_SORT_KEYS);
    char *out;
    size_t n;

    if (k == NULL) {
        return NULL;
    }
    n = strlen(o->policy) + 1 + strlen(k) + 1;
    out = malloc(n);
    if (out != NULL) {
        snprintf(out, n, "%s\n%s", o->policy, k);
    }
    free(k);
    return out;
}

/* 1 if every key field of o equals its value in vals. */
static int ovr_matches(const rl_override_t *o, const rl_override_vals_t *vals,
                       int nkey)
{
    int i;

    for (i = 0; i < o->nfields; i++) {
        const rl_override_field_t *f = &o->fields[i];

        if (f->index >= nkey || vals->v[f->index] == NULL ||
            vals->len[f->index] != f->len ||
            memcmp(vals->v[f->index], f->value, f->len) != 0) {
            return 0;
        }
    }
    return 1;
}

const rl_override_t *rl_override_find(const rl_policy_t *p,
                                      const rl_override_vals_t *vals,
                                      const rl_override_snap_t *snap,
                                      int64_t now_s)
{
    const rl_override_t *best = NULL;
    int i;

    /* Admin first and a strictly better count to replace: so on a tie
     * admin wins over config, and the earlier one within each. */
    for (i = 0; snap != NULL && i < snap->n; i++) {
        const rl_override_t *o = &snap->items[i];

        if ((best == NULL || o->nfields > best->nfields) &&
            (o->expires_at == 0 || o->expires_at > now_s) &&
            strcmp(o->policy, p->name) == 0 && ovr_matches(o, vals, p->nkey)) {
            best = o;
        }
    }
    for (i = 0; p->overrides != NULL && i < p->overrides->n; i++) {
        const rl_override_t *o = &p->overrides->items[i];

        if ((best == NULL || o->nfields > best->nfields) &&
            ovr_matches(o, vals, p->nkey)) {
            best = o;
        }
    }
    return best;
}

/* ------------------------------------------------------------------ */
/* The worker's snapshot                                               */
/* ------------------------------------------------------------------ */

typedef struct ovr_worker {
    struct event_base *base;
    rl_store_t *store;
    const rl_conf_t *const *conf;
    struct event *timer;
    int inflight; /* the poll's store op is out */
    int pending;  /* reloads out (rl_override_worker_reload) */
    int dead;     /* stopped: the last answer frees this */
    int loaded;   /* a load succeeded once */
    /* Loads are numbered as sent; one is installed only if sent after
     * the one in place. Not the store's version: that counter starts
     * again when Redis loses its data, and a lower one is news too. */
    uint64_t sent;
    uint64_t taken;
    uint64_t poll_seq; /* the number of the poll's load */
    json_t *values;    /* the entries of the last load (array of strings) */
    rl_override_snap_t *snap;
    rl_override_snap_t *retired; /* newest first */
} ovr_worker_t;

static _Thread_local ovr_worker_t *ovr_self;

static void ovr_send(ovr_worker_t *w, rl_store_ovr_kind_t kind,
                     rl_store_ovr_cb *cb, void *arg, uint64_t *seq);

/* Frees snap and what it owns; NULL is fine. */
static void ovr_snap_free(rl_override_snap_t *snap)
{
    if (snap != NULL) {
        ovr_items_free(snap->items, snap->n);
        free(snap);
    }
}

/* Parses one stored entry into o against conf. 0, or -1 when it no
 * longer fits the conf (unknown policy or key field) or has expired. */
static int ovr_entry(const rl_conf_t *conf, const char *text, int64_t now_s,
                     rl_override_t *o)
{
    json_t *obj = json_loads(text, 0, NULL);
    json_t *exp = json_object_get(obj, "expires_at");
    const rl_policy_t *p;
    char err[256];
    int missing;

    /* An entry that does not parse (an older build stored a NUL json_loads
     * refuses) or names no policy is skipped, never dereferenced. */
    p = json_is_string(json_object_get(obj, "policy"))
            ? rl_conf_policy(conf,
                             json_string_value(json_object_get(obj, "policy")))
            : NULL;
    if (p == NULL || (json_is_integer(exp) && json_integer_value(exp) > 0 &&
                      json_integer_value(exp) <= now_s)) {
        json_decref(obj);
        return -1;
    }
    if (rl_override_parse(p, obj, "", 1, o, err, sizeof(err), &missing) != 0) {
        rl_log_kv(RL_LOG_WARN, "admin override skipped", "policy", p->name,
                  "error", err, NULL);
        json_decref(obj);
        return -1;
    }
    json_decref(o->json);
    o->json = obj;
    o->source = RL_OVERRIDE_ADMIN;
    o->expires_at = json_is_integer(exp) ? json_integer_value(exp) : 0;
    return 0;
}

/* Builds a snapshot of w's entries against its conf. NULL on no memory. */
static rl_override_snap_t *ovr_snap_build(ovr_worker_t *w, uint64_t version)
{
    const rl_conf_t *conf = *w->conf;
    rl_override_snap_t *snap = calloc(1, sizeof(*snap));
    size_t i, n = json_array_size(w->values);
    int64_t now_s = rl_now_ms() / 1000;

    if (snap == NULL) {
        return NULL;
    }
    snap->version = version;
    snap->generation = conf->generation;
    snap->items = calloc(n + 1, sizeof(*snap->items));
    if (snap->items == NULL) {
        free(snap);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        const char *text = json_string_value(json_array_get(w->values, i));

        if (text != NULL &&
            ovr_entry(conf, text, now_s, &snap->items[snap->n]) == 0) {
            snap->items[snap->n].snap = snap;
            snap->n++;
        }
    }
    return snap;
}

/* Replaces w's snapshot by snap, retiring the old one. */
static void ovr_snap_swap(ovr_worker_t *w, rl_override_snap_t *snap)
{
    if (w->snap != NULL) {
        w->snap->retired = 1;
        w->snap->next_retired = w->retired;
        w->retired = w->snap;
    }
    w->snap = snap;
    __atomic_store_n(&ovr_active, (uint64_t)snap->n, __ATOMIC_RELAXED);
}

/* Frees the retired snapshots no decision can still use. */
static void ovr_gc(ovr_worker_t *w, int all)
{
    rl_override_snap_t **link = &w->retired;

    while (*link != NULL) {
        rl_override_snap_t *s = *link;

        if (all || s->refs == 0) {
            *link = s->next_retired;
            ovr_snap_free(s);
        } else {
            link = &s->next_retired;
        }
    }
}

/* Frees w entirely (stopped, nothing out). */
static void ovr_worker_free(ovr_worker_t *w)
{
    ovr_snap_free(w->snap);
    ovr_gc(w, 1);
    json_decref(w->values);
    free(w);
}

/* Keeps the entries of a load and builds their snapshot. */
static void ovr_loaded(ovr_worker_t *w, const rl_store_ovr_result_t *res)
{
    rl_override_snap_t *snap;
    json_t *values = json_array();
    int i;

    for (i = 0; values != NULL && i < res->n; i++) {
        json_array_append_new(values, json_string(res->values[i]));
    }
    if (values == NULL) {
        return;
    }
    json_decref(w->values);
    w->values = values;
    snap = ovr_snap_build(w, res->version);
    if (snap == NULL) {
        return;
    }
    if (w->loaded) {
        /* A key may be less restricted now: no cache may keep denying. */
        rl_deny_cache_invalidate_all();
    }
    w->loaded = 1;
    ovr_snap_swap(w, snap);
}

/* One reload asked for by an admin change (rl_override_worker_reload). */
typedef struct ovr_reload {
    ovr_worker_t *w;
    uint64_t seq;
    void (*done)(void *arg);
    void *arg;
} ovr_reload_t;

/* Frees w once it is stopped and no op of its is out. 1 if it did. */
static int ovr_maybe_free(ovr_worker_t *w)
{
    if (w->dead && !w->inflight && w->pending == 0) {
        ovr_worker_free(w);
        return 1;
    }
    return 0;
}

/* Installs the entries of load number seq unless a later load is in
 * place. */
static void ovr_take(ovr_worker_t *w, const rl_store_ovr_result_t *res,
                     uint64_t seq)
{
    if (res->status == RL_OK && res->values != NULL && seq > w->taken) {
        w->taken = seq;
        ovr_loaded(w, res);
    }
}

/* The store answered the poll (a version, or the entries it loaded). */
static void ovr_done(void *arg, const rl_store_ovr_result_t *res)
{
    ovr_worker_t *w = arg;

    w->inflight = 0;
    if (ovr_maybe_free(w) || w->dead) {
        return;
    }
    ovr_take(w, res, w->poll_seq);
    if (res->status == RL_OK && res->values == NULL &&
        (!w->loaded || w->snap == NULL || res->version != w->snap->version)) {
        ovr_send(w, RL_STORE_OVR_LOAD, ovr_done, w, &w->poll_seq);
    }
}

/* The store answered a reload: installs it, then tells the caller. */
static void ovr_reload_done(void *arg, const rl_store_ovr_result_t *res)
{
    ovr_reload_t r = *(ovr_reload_t *)arg;

    free(arg);
    r.w->pending--;
    if (!ovr_maybe_free(r.w) && !r.w->dead) {
        ovr_take(r.w, res, r.seq);
    }
    r.done(r.arg);
}

/* Starts one store op for w, answered to cb(arg); its number goes to
 * *seq first (the store may answer at once). */
static void ovr_send(ovr_worker_t *w, rl_store_ovr_kind_t kind,
                     rl_store_ovr_cb *cb, void *arg, uint64_t *seq)
{
    rl_store_ovr_op_t op;

    memset(&op, 0, sizeof(op));
    op.kind = kind;
    op.prefix = (*w->conf)->store.prefix;
    op.now_s = rl_now_ms() / 1000;
    *seq = ++w->sent;
    if (cb == ovr_done) {
        w->inflight = 1;
    } else {
        w->pending++;
    }
    w->store->ops->overrides(w->store, &op, cb, arg);
}

/* Every 250 ms: frees old snapshots and asks for the version. */
static void ovr_tick(evutil_socket_t fd, short what, void *arg)
{
    ovr_worker_t *w = arg;

    (void)fd;
    (void)what;
    ovr_gc(w, 0);
    if (!w->inflight) {
        ovr_send(w, w->loaded ? RL_STORE_OVR_VERSION : RL_STORE_OVR_LOAD,
                 ovr_done, w, &w->poll_seq);
    }
}

int rl_override_worker_start(struct event_base *base, struct rl_store *store,
                             const struct rl_conf *const *conf)
{
    struct timeval tv = {0, OVR_POLL_MS * 1000};
    ovr_worker_t *w;

    if (store->ops->overrides == NULL) {
        return 0;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return -1;
    }
    w->base = base;
    w->store = store;
    w->conf = conf;
    w->timer = event_new(base, -1, EV_PERSIST, ovr_tick, w);
    if (w->timer == NULL || event_add(w->timer, &tv) != 0) {
        if (w->timer != NULL) {
            event_free(w->timer);
        }
        free(w);
        return -1;
    }
    ovr_self = w;
    ovr_send(w, RL_STORE_OVR_LOAD, ovr_done, w, &w->poll_seq);
    return 0;
}

void rl_override_worker_reload(void (*done)(void *arg), void *arg)
{
    ovr_worker_t *w = ovr_self;
    ovr_reload_t *r = w != NULL ? malloc(sizeof(*r)) : NULL;

    if (r == NULL) {
        done(arg); /* the next poll loads it */
        return;
    }
    r->w = w;
    r->done = done;
    r->arg = arg;
    ovr_send(w, RL_STORE_OVR_LOAD, ovr_reload_done, r, &r->seq);
}

const rl_override_snap_t *rl_override_worker_snap(void)
{
    ovr_worker_t *w = ovr_self;

    if (w == NULL) {
        return NULL;
    }
    if (w->snap != NULL && w->snap->generation != (*w->conf)->generation) {
        /* A reload: the entries are resolved against the new conf. */
        rl_override_snap_t *snap = ovr_snap_build(w, w->snap->version);
        if (snap != NULL) {
            ovr_snap_swap(w, snap);
        }
    }
    return w->snap;
}

void rl_override_worker_stop(void)
{
    ovr_worker_t *w = ovr_self;

    if (w == NULL) {
        return;
    }
    ovr_self = NULL;
    event_free(w->timer);
    w->timer = NULL;
    w->dead = 1;
    ovr_maybe_free(w);
}

uint64_t rl_override_active(void)
{
    return __atomic_load_n(&ovr_active, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* The decision core's call                                            */
/* ------------------------------------------------------------------ */

const rl_override_t *rl_override_for(const rl_policy_t *p,
                                     const rl_request_t *req,
                                     const rl_match_t *m)
{
    /* Resolved against this conf first: a reload may bring back the
     * policy or key field an entry names. */
    const rl_override_snap_t *snap = rl_override_worker_snap();
    rl_override_vals_t vals;
    int i;

    if (p->overrides == NULL && (snap == NULL || snap->n == 0)) {
        return NULL;
    }
    for (i = 0; i < p->nkey && i < RL_OVERRIDE_MAX_FIELDS; i++) {
        vals.v[i] =
            rl_policy_key_value(p, i, req, m, vals.method, &vals.len[i]);
    }
    return rl_override_find(p, &vals, snap, rl_now_ms() / 1000);
}
