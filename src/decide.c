/* The decision core: request -> policy -> key -> one store call ->
 * verdict. The hot path: no I/O of its own and, in steady state, no
 * allocation (contexts come from a per-thread free list). */
#include "decide.h"

#include <stdlib.h>
#include <string.h>
#include "auth.h"
#include "confref.h"
#include "deny_cache.h"
#include "outcome.h"
#include "override.h"
#include "stats.h"
#include "util.h"

typedef enum { DECIDE_OP_DECIDE = 0, DECIDE_OP_RESET } decide_kind_t;

typedef struct decide_ctx {
    struct decide_ctx *next_free;
    const rl_conf_t *conf; /* pinned until the callback has returned */
    const rl_policy_t *policy;
    const rl_limit_t *limits;
    int nlimits;
    int test;
    const char *override; /* the verdict's "override" */
    decide_kind_t kind;
    int64_t cost;
    int64_t sent_us; /* monotonic, when the store call went out */
    uint64_t epoch;  /* deny cache invalidation epoch at that time */
    size_t keylen;   /* 0 when the key is too long to cache */
    char key[RL_DENY_KEY_MAX];
    rl_decide_cb *cb;
    void *arg;
} decide_ctx_t;

/* Each worker thread recycles its own contexts: no lock, no sharing. */
static _Thread_local decide_ctx_t *ctx_free_list;

static decide_ctx_t *ctx_get(void)
{
    decide_ctx_t *c = ctx_free_list;
    if (c != NULL) {
        ctx_free_list = c->next_free;
        return c;
    }
    return malloc(sizeof(*c));
}

static void ctx_put(decide_ctx_t *c)
{
    c->next_free = ctx_free_list;
    ctx_free_list = c;
}

void rl_decide_thread_cleanup(void)
{
    while (ctx_free_list != NULL) {
        decide_ctx_t *c = ctx_free_list;
        ctx_free_list = c->next_free;
        free(c);
    }
}

void rl_decide_verdict(const rl_policy_t *p, const rl_limit_t *limits,
                       int nlimits, int test, const rl_store_result_t *res,
                       rl_verdict_t *v)
{
    int i, pick = 0;

    memset(v, 0, sizeof(*v));
    v->policy = p;
    v->test = test;
    v->now_ms = res->now_ms;
    v->allowed = res->allowed;
    for (i = 1; i < nlimits; i++) {
        const rl_limit_result_t *a = &res->limits[i], *b = &res->limits[pick];
        if (!res->allowed) {
            /* Denied: describe the limit that keeps the caller out longest. */
            if (!b->allowed && a->allowed) {
                continue;
            }
            if ((!a->allowed && b->allowed) ||
                a->retry_after_ms > b->retry_after_ms) {
                pick = i;
            }
        } else if (a->remaining < b->remaining ||
                   (a->remaining == b->remaining &&
                    a->reset_after_ms > b->reset_after_ms)) {
            /* Admitted: the most restrictive limit, fewest remaining. */
            pick = i;
        }
    }
    v->limit_def = &limits[pick];
    v->limit = limits[pick].requests;
    v->remaining = res->limits[pick].remaining;
    v->reset_after_ms = res->limits[pick].reset_after_ms;
    v->retry_after_ms = res->allowed ? 0 : res->limits[pick].retry_after_ms;
    for (i = 0; i < nlimits; i++) {
        if (res->limits[i].blocked && !res->limits[i].allowed) {
            v->blocked = 1;
        }
    }
    if (!res->allowed && v->retry_after_ms < 1) {
        v->retry_after_ms = 1;
    }
    v->status = res->allowed ? 200 : p->deny_status;
    if (!res->allowed && p->shadow) {
        /* Shadow mode: counted and reported, never enforced. */
        v->allowed = 1;
        v->shadow_would_deny = 1;
        v->status = 200;
    }
}

/* Counts a finished decision in the calling worker's stats, as its
 * outcome row says. No-op off a worker thread. */
static void decide_count(rl_decide_status_t status, const rl_verdict_t *v)
{
    rl_outcome_t o;

    if (rl_stats_self == NULL) {
        return;
    }
    rl_outcome_of(status, v, &o);
    rl_outcome_count(rl_stats_self, &o, v);
}

/* Counts a failed store operation and observes its round trip. */
static void decide_count_store(const decide_ctx_t *c,
                               const rl_store_result_t *res)
{
    rl_stats_t *st = rl_stats_self;

    if (st == NULL) {
        return;
    }
    rl_hist_observe(&st->hist_store, rl_mono_us() - c->sent_us);
    if (res->status != RL_OK) {
        RL_STAT_INC(st, store_errors);
        RL_STAT_ADDV(st->store_error[rl_stats_reason(res->error)], 1);
    }
}

void rl_decide_verdict_cached(const rl_policy_t *p, const rl_limit_t *limits,
                              int test, const rl_deny_entry_t *e,
                              int64_t now_us, rl_verdict_t *v)
{
    int64_t elapsed_ms = (now_us - e->sent_us) / 1000;

    memset(v, 0, sizeof(*v));
    v->policy = p;
    v->test = test;
    v->limit_def = &limits[e->pick];
    v->limit = limits[e->pick].requests;
    v->remaining = e->remaining;
    v->retry_after_ms = e->retry_after_ms - elapsed_ms;
    if (v->retry_after_ms < 1) {
        v->retry_after_ms = 1;
    }
    v->reset_after_ms = e->reset_after_ms - elapsed_ms;
    if (v->reset_after_ms < v->retry_after_ms) {
        v->reset_after_ms = v->retry_after_ms;
    }
    v->now_ms = e->now_ms + elapsed_ms;
    v->blocked = e->blocked;
    v->cached = 1;
    v->allowed = 0;
    v->status = p->deny_status;
    if (p->shadow) {
        v->allowed = 1;
        v->shadow_would_deny = 1;
        v->status = 200;
    }
}

/* Remembers a store denial in the worker's deny cache (cost > 0 only). */
static void decide_cache_put(const decide_ctx_t *c,
                             const rl_store_result_t *res,
                             const rl_verdict_t *v)
{
    rl_deny_entry_t e;

    if (rl_deny_cache_self == NULL || c->keylen == 0 || c->cost <= 0 ||
        res->allowed) {
        return;
    }
    memset(&e, 0, sizeof(e));
    e.sent_us = c->sent_us;
    e.epoch = c->epoch;
    e.now_ms = res->now_ms;
    e.cost = c->cost;
    e.pick = (int16_t)(v->limit_def - c->limits);
    e.remaining = v->remaining;
    e.reset_after_ms = v->reset_after_ms;
    e.retry_after_ms = v->retry_after_ms;
    e.blocked = (uint8_t)v->blocked;
    rl_deny_cache_put(rl_deny_cache_self, c->conf->generation, c->key,
                      c->keylen, c->test, &e);
}

/* The store failed: the policy's failure mode decides. */
static void verdict_degraded(const decide_ctx_t *c,
                             const rl_store_result_t *res, rl_verdict_t *v)
{
    memset(v, 0, sizeof(*v));
    v->policy = c->policy;
    v->test = c->test;
    v->limit_def = &c->limits[0];
    v->limit = c->limits[0].requests;
    v->now_ms = rl_now_ms();
    v->degraded = 1;
    v->degraded_reason = res->error != NULL ? res->error : "store_error";
    v->allowed = c->policy->failure_open;
    v->remaining = 0;
    v->status = v->allowed ? 200 : 503;
}

/* The store answered a decision (or a reset): verdict, counts, deny
 * cache, then the caller's callback. The conf stays pinned until that
 * callback has returned, because the verdict points into it. */
static void decide_done(void *arg, const rl_store_result_t *res)
{
    decide_ctx_t *c = arg;
    rl_decide_cb *cb = c->cb;
    void *cb_arg = c->arg;
    const rl_conf_t *conf = c->conf;
    rl_verdict_t v;
    rl_decide_status_t status = RL_DECIDE_OK;

    decide_count_store(c, res);
    if (res->status != RL_OK) {
        verdict_degraded(c, res, &v);
        if (!v.allowed) {
            status = RL_DECIDE_UNAVAILABLE;
        }
    } else if (c->kind == DECIDE_OP_RESET) {
        memset(&v, 0, sizeof(v));
        v.policy = c->policy;
        v.test = c->test;
        v.allowed = 1;
        v.status = 200;
        v.now_ms = rl_now_ms();
        /* The key is less restrictive now: no cache may keep denying it. */
        rl_deny_cache_invalidate_all();
    } else {
        rl_decide_verdict(c->policy, c->limits, c->nlimits, c->test, res, &v);
        v.override = c->override;
        decide_cache_put(c, res, &v);
    }
    if (c->kind == DECIDE_OP_DECIDE) {
        decide_count(status, &v);
    }
    ctx_put(c);
    cb(cb_arg, status, &v, NULL);
    rl_conf_unpin(conf);
}

/* No policy matched req: 422 BAD_POLICY when req names one or for a
 * reset, else an unmatched verdict (allowed, nothing counted in the
 * store). */
static void decide_no_policy(const rl_request_t *req, decide_kind_t kind,
                             rl_decide_cb *cb, void *arg)
{
    char msg[192];
    rl_verdict_t v;

    if (req->policy != NULL || kind == DECIDE_OP_RESET) {
        if (req->policy != NULL) {
            snprintf(msg, sizeof(msg),
                     "policy \"%.64s\" does not exist or does not match "
                     "the request",
                     req->policy);
        } else {
            snprintf(msg, sizeof(msg), "no policy applies to the request");
        }
        if (kind == DECIDE_OP_DECIDE) {
            decide_count(RL_DECIDE_BAD_POLICY, NULL);
        }
        cb(arg, RL_DECIDE_BAD_POLICY, NULL, msg);
        return;
    }
    memset(&v, 0, sizeof(v));
    v.allowed = 1;
    v.status = 200;
    v.now_ms = rl_now_ms();
    decide_count(RL_DECIDE_OK, &v);
    cb(arg, RL_DECIDE_OK, &v, NULL);
}

/* Verifies the end client's tenant signature for policy p before
 * anything counts; the tenant that signed is the one charged. Returns
 * the request to decide (req, or *signed_req with the signed tenant), or
 * NULL after answering RL_DECIDE_AUTH. */
static const rl_request_t *decide_tenant(const rl_conf_t *conf,
                                         const rl_policy_t *p,
                                         const rl_request_t *req,
                                         rl_request_t *signed_req,
                                         rl_decide_cb *cb, void *arg)
{
    rl_auth_error_t aerr;
    const char *tenant;
    rl_verdict_t v;

    if (rl_auth_tenant(conf, req, rl_now_ms() / 1000, &tenant, &aerr) != 0) {
        memset(&v, 0, sizeof(v));
        v.policy = p;
        v.status = aerr.status;
        v.error = aerr.kind;
        v.now_ms = rl_now_ms();
        decide_count(RL_DECIDE_AUTH, &v);
        cb(arg, RL_DECIDE_AUTH, &v, aerr.message);
        return NULL;
    }
    if (req->tenant == NULL) {
        *signed_req = *req;
        signed_req->tenant = tenant;
        return signed_req;
    }
    return req;
}

/* 1 if req carries policy p's test header with its value. */
static int decide_test_applies(const rl_policy_t *p, const rl_request_t *req)
{
    size_t vlen;
    const char *val;

    if (p->test == NULL) {
        return 0;
    }
    val = rl_request_header(req, p->test->header, &vlen);
    return val != NULL && vlen == strlen(p->test->value) &&
           memcmp(val, p->test->value, vlen) == 0;
}

/* A decision's deny cache step: answers from the cache and returns 1
 * when the key (len bytes) is known to be denied; a peek (cost 0) drops
 * the entry instead, as the store's answer will be newer. */
static int decide_from_cache(const rl_conf_t *conf, const rl_policy_t *p,
                             const rl_request_t *req, const char *key,
                             size_t len, int test, int64_t now_us,
                             rl_decide_cb *cb, void *arg)
{
    const rl_deny_entry_t *e;
    rl_verdict_t v;

    if (rl_deny_cache_self == NULL) {
        return 0;
    }
    if (req->cost <= 0) {
        rl_deny_cache_drop(rl_deny_cache_self, key, len, test);
        return 0;
    }
    e = rl_deny_cache_get(rl_deny_cache_self, conf->generation, key, len, test,
                          req->cost, now_us);
    if (e == NULL) {
        return 0;
    }
    rl_decide_verdict_cached(p, test ? p->test->limits : p->limits, test, e,
                             now_us, &v);
    if (rl_stats_self != NULL) {
        RL_STAT_INC(rl_stats_self, deny_cache_hits);
    }
    decide_count(RL_DECIDE_OK, &v);
    cb(arg, RL_DECIDE_OK, &v, NULL);
    return 1;
}

/* No context could be allocated: the policy's failure mode answers, as
 * for a store failure. */
static void decide_no_memory(const rl_policy_t *p, int test, decide_kind_t kind,
                             rl_decide_cb *cb, void *arg)
{
    rl_store_result_t res;
    decide_ctx_t tmp;
    rl_verdict_t v;

    memset(&res, 0, sizeof(res));
    res.status = RL_ERR;
    res.error = "out_of_memory";
    memset(&tmp, 0, sizeof(tmp));
    tmp.policy = p;
    tmp.limits = p->limits;
    tmp.nlimits = p->nlimits;
    tmp.test = test;
    verdict_degraded(&tmp, &res, &v);
    if (kind == DECIDE_OP_DECIDE) {
        decide_count(RL_DECIDE_OK, &v);
    }
    cb(arg, v.allowed ? RL_DECIDE_OK : RL_DECIDE_UNAVAILABLE, &v, NULL);
}

/* A deny override applies (a suspended key): denied with its status and
 * body, nothing counted, no store call. */
static void decide_override_deny(const rl_policy_t *p, const rl_override_t *ov,
                                 rl_decide_cb *cb, void *arg)
{
    rl_verdict_t v;

    memset(&v, 0, sizeof(v));
    v.policy = p;
    v.limit_def = &p->limits[0];
    v.limit = p->limits[0].requests;
    v.now_ms = rl_now_ms();
    v.status = ov->deny_status;
    v.deny_body = ov->deny_body;
    v.override = rl_override_source_name(ov->source);
    if (p->shadow) {
        v.allowed = 1;
        v.shadow_would_deny = 1;
        v.status = 200;
    }
    decide_count(RL_DECIDE_OK, &v);
    cb(arg, RL_DECIDE_OK, &v, NULL);
}

/* Fills context c for policy p and key (len bytes), pins conf and starts
 * the store operation; decide_done answers. */
static void decide_send(const rl_conf_t *conf, rl_store_t *store,
                        decide_ctx_t *c, const rl_policy_t *p, int test,
                        const rl_override_t *ov, const rl_request_t *req,
                        const char *key, size_t len, int64_t now_us)
{
    rl_store_op_t op;

    c->conf = conf;
    c->policy = p;
    c->limits = test ? p->test->limits : p->limits;
    c->nlimits = test ? p->test->nlimits : p->nlimits;
    c->test = test;
    c->override = NULL;
    if (ov != NULL && ov->limits != NULL && !test) {
        c->limits = ov->limits;
        c->nlimits = ov->nlimits;
        c->override = rl_override_source_name(ov->source);
    }
    c->cost = req->cost;
    c->sent_us = now_us;
    c->epoch = rl_deny_cache_epoch();
    c->keylen = 0;
    if (len <= sizeof(c->key)) {
        memcpy(c->key, key, len);
        c->keylen = len;
    }
    if (c->override != NULL) {
        c->keylen = 0; /* not cached: the cache knows p's own limits */
    }
    op.base_key = key;
    op.base_len = len;
    op.limits = c->limits;
    op.nlimits = c->nlimits;
    op.cost = req->cost;
    rl_conf_pin(conf);
    if (c->kind == DECIDE_OP_RESET) {
        rl_store_reset(store, &op, decide_done, c);
    } else {
        rl_store_decide(store, &op, decide_done, c);
    }
}

/* Finds the policy and key of req and, for a decision, answers from the
 * deny cache when it can; otherwise starts the store operation. */
static void decide_start(const rl_conf_t *conf, rl_store_t *store,
                         const rl_request_t *req, decide_kind_t kind,
                         rl_decide_cb *cb, void *arg)
{
    char key[RL_KEY_MAX];
    char msg[192];
    rl_match_t m;
    const rl_policy_t *p;
    const char *missing = NULL;
    decide_ctx_t *c;
    rl_request_t signed_req;
    const rl_override_t *ov;
    int len, test;
    int64_t now_us;

    p = rl_policy_find(conf, req, &m);
    if (p == NULL) {
        decide_no_policy(req, kind, cb, arg);
        return;
    }
    /* An admin reset acts for support staff, not the tenant: no
     * signature there. */
    if (p->verify_tenant && kind == DECIDE_OP_DECIDE) {
        req = decide_tenant(conf, p, req, &signed_req, cb, arg);
        if (req == NULL) {
            return;
        }
    }
    len = rl_policy_key(p, conf->store.prefix, req, &m, key, sizeof(key),
                        &missing);
    if (len < 0) {
        /* missing is NULL only if the key overflowed, which a validated
         * config rules out; answer it as invalid all the same. */
        snprintf(msg, sizeof(msg), "%s is required by policy \"%s\"",
                 missing != NULL ? missing : "a shorter key", p->name);
        if (kind == DECIDE_OP_DECIDE) {
            decide_count(RL_DECIDE_INVALID, NULL);
        }
        cb(arg, RL_DECIDE_INVALID, NULL, msg);
        return;
    }
    test = decide_test_applies(p, req);
    ov = rl_override_for(p, req, &m);
    if (ov != NULL && ov->limits == NULL && kind == DECIDE_OP_DECIDE) {
        decide_override_deny(p, ov, cb, arg);
        return;
    }
    now_us = rl_mono_us();
    if (kind == DECIDE_OP_DECIDE && (ov == NULL || test) &&
        decide_from_cache(conf, p, req, key, (size_t)len, test, now_us, cb,
                          arg)) {
        return;
    }
    c = ctx_get();
    if (c == NULL) {
        decide_no_memory(p, test, kind, cb, arg);
        return;
    }
    c->kind = kind;
    c->cb = cb;
    c->arg = arg;
    decide_send(conf, store, c, p, test, ov, req, key, (size_t)len, now_us);
}

void rl_decide(const rl_conf_t *conf, rl_store_t *store,
               const rl_request_t *req, rl_decide_cb *cb, void *arg)
{
    decide_start(conf, store, req, DECIDE_OP_DECIDE, cb, arg);
}

void rl_decide_reset(const rl_conf_t *conf, rl_store_t *store,
                     const rl_request_t *req, rl_decide_cb *cb, void *arg)
{
    decide_start(conf, store, req, DECIDE_OP_RESET, cb, arg);
}
