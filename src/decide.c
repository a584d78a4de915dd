/* The decision core: request -> policy -> key -> one store call ->
 * verdict. The hot path: no I/O of its own and, in steady state, no
 * allocation (contexts come from a per-thread free list). */
#include "decide.h"
#include "decide_int.h"

#include <stdlib.h>
#include <string.h>
#include "auth.h"
#include "confref.h"
#include "deny_cache.h"
#include "outcome.h"
#include "topkeys.h"
#include "override.h"
#include "path.h"
#include "stats.h"
#include "util.h"

/* Copies the admin overrides c's parts hold into held[] (for release
 * once the callback has returned); returns their number. */
static int decide_take_held(const decide_ctx_t *c,
                            const rl_override_t *held[RL_MAX_OP_PARTS])
{
    int i, n = 0;

    for (i = 0; i < c->nparts; i++) {
        if (c->parts[i].held != NULL) {
            held[n++] = c->parts[i].held;
        }
    }
    return n;
}

/* Releases n held admin overrides. */
static void decide_release_held(const rl_override_t *const *held, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        rl_override_release(held[i]);
    }
}

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

/* Gives up c before any store call (the caller has answered or is about
 * to, from nothing c's held overrides own). */
static void decide_drop(decide_ctx_t *c)
{
    const rl_override_t *held[RL_MAX_OP_PARTS];

    decide_release_held(held, decide_take_held(c, held));
    ctx_put(c);
}

void rl_decide_thread_cleanup(void)
{
    while (ctx_free_list != NULL) {
        decide_ctx_t *c = ctx_free_list;
        ctx_free_list = c->next_free;
        free(c);
    }
}

/* Counts a finished decision in the calling worker's stats, as its
 * outcome row says, and a verdict on a key (top, toplen: its key values,
 * NULL for none) in the worker's top keys: denied when the verdict or a
 * shadow policy denied. The one place every front end's decision is
 * counted. No-op off a worker thread. */
static void decide_count(rl_decide_status_t status, const rl_verdict_t *v,
                         const char *top, size_t toplen)
{
    rl_outcome_t o;
    int64_t now;

    if (rl_stats_self == NULL) {
        return;
    }
    rl_outcome_of(status, v, &o);
    rl_outcome_count(rl_stats_self, &o, v);
    if (top != NULL && rl_topkeys_self != NULL && v->policy != NULL &&
        (o.kind == RL_OUTCOME_ALLOWED || o.kind == RL_OUTCOME_DENIED ||
         o.kind == RL_OUTCOME_SHADOW_DENIED)) {
        now = rl_now_ms();
        rl_topkeys_record(rl_topkeys_self, v->policy->stats_slot,
                          v->policy->key_layout, top, toplen,
                          o.kind != RL_OUTCOME_ALLOWED, now,
                          v->blocked ? now + v->retry_after_ms : 0);
    }
}

/* The deciding part's key values in c for the top keys, or NULL. */
static const char *decide_top(const decide_ctx_t *c, const rl_verdict_t *v,
                              size_t *len)
{
    int i;

    for (i = 0; i < c->nparts; i++) {
        if (c->parts[i].policy == v->policy &&
            c->parts[i].toplen <= RL_TOPKEYS_KEY_MAX) {
            *len = c->parts[i].toplen;
            return c->parts[i].top;
        }
    }
    return NULL;
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

/* How long the cache may answer a denial of part d (res its store
 * result, retry_ms the verdict's wait): retry_ms, or for a part with a
 * limit that blocks, only while every such limit's running block lasts,
 * then 0 (not cached). Until then nothing is admitted anywhere, so no
 * answered request could have started a block; before a block, or once
 * one has ended while its window is still full, the store may start
 * one, and only the store can. A block just started reports the longer
 * of its length and the window's wait (algorithms.md "Blocks"): past
 * its length that wait is not a block, so it is not cached. */
static int64_t decide_cache_ms(const decide_part_t *d,
                               const rl_store_result_t *res, int64_t retry_ms)
{
    int64_t ms = retry_ms;
    int i;

    for (i = 0; i < d->nlimits && i < RL_MAX_OP_LIMITS; i++) {
        const rl_limit_result_t *r = &res->limits[i];

        if (d->limits[i].block_ms <= 0) {
            continue;
        }
        if (!r->blocked || r->retry_after_ms > d->limits[i].block_ms) {
            return 0;
        }
        if (r->retry_after_ms < ms) {
            ms = r->retry_after_ms;
        }
    }
    return ms;
}

/* Remembers a store denial in the worker's deny cache (cost > 0 only),
 * for as long as decide_cache_ms allows. */
static void decide_cache_put(const decide_ctx_t *c,
                             const rl_store_result_t *res,
                             const rl_verdict_t *v)
{
    rl_deny_entry_t e;
    int64_t serve_ms;

    if (rl_deny_cache_self == NULL || c->keylen == 0 || c->cost <= 0 ||
        res->allowed ||
        (serve_ms = decide_cache_ms(&c->parts[0], res, v->retry_after_ms)) <=
            0) {
        return;
    }
    memset(&e, 0, sizeof(e));
    e.sent_us = c->sent_us;
    e.epoch = c->epoch;
    e.now_ms = res->now_ms;
    e.cost = c->cost;
    e.pick = (int16_t)(v->limit_def - c->parts[0].limits);
    e.remaining = v->remaining;
    e.reset_after_ms = v->reset_after_ms;
    e.retry_after_ms = v->retry_after_ms;
    e.serve_ms = serve_ms;
    e.blocked = (uint8_t)v->blocked;
    rl_deny_cache_put(rl_deny_cache_self, c->conf->generation, c->key,
                      c->keylen, c->parts[0].test, &e);
}

/* Copies the applied policies of c into v->policies (no results). */
static void verdict_parts(const decide_ctx_t *c, rl_verdict_t *v)
{
    int i;

    for (i = 0; i < c->nparts; i++) {
        v->policies[i].policy = c->parts[i].policy;
        v->policies[i].limits = c->parts[i].limits;
        v->policies[i].nlimits = c->parts[i].nlimits;
        v->policies[i].results = NULL;
    }
    v->npolicies = c->nparts;
}

/* The store failed: the failure mode decides, closed if any applied
 * policy's is (that policy answers), else open (the first policy). */
static void verdict_degraded(const decide_ctx_t *c,
                             const rl_store_result_t *res, rl_verdict_t *v)
{
    const decide_part_t *d = &c->parts[0];
    int i;

    for (i = c->nparts - 1; i >= 0; i--) {
        if (!c->parts[i].policy->failure_open) {
            d = &c->parts[i];
        }
    }
    memset(v, 0, sizeof(*v));
    verdict_parts(c, v);
    v->policy = d->policy;
    v->test = d->test;
    v->limit_def = d->nlimits > 0 ? &d->limits[0] : NULL;
    v->limit = d->nlimits > 0 ? d->limits[0].requests : 0;
    v->now_ms = rl_now_ms();
    v->degraded = 1;
    v->degraded_reason = res->error != NULL ? res->error : "store_error";
    v->allowed = d->policy->failure_open;
    v->remaining = 0;
    v->status = v->allowed ? 200 : 503;
}

/* The verdict of a decision the store answered. */
static void verdict_store(const decide_ctx_t *c, const rl_store_result_t *res,
                          rl_verdict_t *v)
{
    rl_verdict_part_t parts[RL_MAX_OP_PARTS];
    int tests[RL_MAX_OP_PARTS];
    int i;

    if (c->nparts == 1 && c->npens == 0) {
        rl_decide_verdict(c->parts[0].policy, c->parts[0].limits,
                          c->parts[0].nlimits, c->parts[0].test, res, v);
        v->override = c->parts[0].override;
        return;
    }
    for (i = 0; i < c->nparts; i++) {
        parts[i].policy = c->parts[i].policy;
        parts[i].limits = c->parts[i].limits;
        parts[i].nlimits = c->parts[i].nlimits;
        parts[i].results = NULL;
        tests[i] = c->parts[i].test;
    }
    rl_decide_verdict_layered(parts, c->nparts, c->pens, c->masks, c->npens,
                              tests, res, v);
    for (i = 0; i < c->nparts; i++) {
        if (c->parts[i].policy == v->policy) {
            v->override = c->parts[i].override;
        }
    }
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
    const rl_override_t *held[RL_MAX_OP_PARTS];
    int nheld;
    rl_verdict_t v;
    rl_decide_status_t status = RL_DECIDE_OK;
    size_t toplen = 0;

    decide_count_store(c, res);
    if (res->status != RL_OK) {
        verdict_degraded(c, res, &v);
        if (!v.allowed) {
            status = RL_DECIDE_UNAVAILABLE;
        }
    } else if (c->kind == DECIDE_OP_RESET) {
        memset(&v, 0, sizeof(v));
        verdict_parts(c, &v);
        v.policy = c->parts[0].policy;
        v.test = c->parts[0].test;
        v.allowed = 1;
        v.status = 200;
        v.now_ms = rl_now_ms();
        /* The key is less restrictive now: no cache may keep denying it. */
        rl_deny_cache_invalidate_all();
    } else {
        verdict_store(c, res, &v);
        decide_cache_put(c, res, &v);
    }
    if (c->nall > 0) {
        rl_decide_verdict_expand(c->all, c->nall, &v);
    }
    if (c->kind == DECIDE_OP_DECIDE) {
        const char *top =
            c->conf->ops.top_keys ? decide_top(c, &v, &toplen) : NULL;

        decide_count(status, &v, top, toplen);
    }
    nheld = decide_take_held(c, held);
    ctx_put(c);
    cb(cb_arg, status, &v, NULL);
    /* The verdict pointed into the conf and the held overrides. */
    decide_release_held(held, nheld);
    rl_conf_unpin(conf);
}

/* No policy matched req: 422 BAD_POLICY when req names one or for a
 * reset, else the unmatched verdict (paths.unmatched; nothing counted). */
static void decide_no_policy(const rl_conf_t *conf, const rl_request_t *req,
                             decide_kind_t kind, rl_decide_cb *cb, void *arg)
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
            decide_count(RL_DECIDE_BAD_POLICY, NULL, NULL, 0);
        }
        cb(arg, RL_DECIDE_BAD_POLICY, NULL, msg);
        return;
    }
    memset(&v, 0, sizeof(v));
    /* paths.unmatched "deny": its status and body, still no policy. */
    v.allowed = !conf->paths.unmatched_deny;
    v.status = v.allowed ? 200 : conf->paths.deny_status;
    v.deny_body = v.allowed ? NULL : conf->paths.deny_body;
    v.deny_tpl = v.allowed ? NULL : conf->paths.deny_tpl;
    v.now_ms = rl_now_ms();
    decide_count(RL_DECIDE_OK, &v, NULL, 0);
    cb(arg, RL_DECIDE_OK, &v, NULL);
}

/* Verifies the end client's tenant signature before anything counts,
 * once for every applied policy that requires it (c->parts, and with a
 * "policy" named also those req would match without it:
 * rl_policy_verifier; the first such policy answers a failure); the tenant that
 * signed is the one charged. Returns the request to decide (req, or *signed_req
 * with the signed tenant), or NULL after answering RL_DECIDE_AUTH. */
static const rl_request_t *decide_tenant(const rl_conf_t *conf,
                                         const decide_ctx_t *c,
                                         const rl_request_t *req,
                                         rl_request_t *signed_req)
{
    const rl_policy_t *p = NULL;
    rl_auth_error_t aerr;
    const char *tenant;
    rl_verdict_t v;
    int i;

    for (i = c->nparts - 1; i >= 0; i--) {
        if (c->parts[i].policy->verify_tenant) {
            p = c->parts[i].policy;
        }
    }
    if (p == NULL && req->policy != NULL) {
        p = rl_policy_verifier(conf, req);
    }
    if (p == NULL) {
        return req;
    }
    if (rl_auth_tenant(conf, req, rl_now_ms() / 1000, &tenant, &aerr) != 0) {
        memset(&v, 0, sizeof(v));
        verdict_parts(c, &v);
        v.policy = p;
        v.status = aerr.status;
        v.error = aerr.kind;
        v.now_ms = rl_now_ms();
        decide_count(RL_DECIDE_AUTH, &v, NULL, 0);
        c->cb(c->arg, RL_DECIDE_AUTH, &v, aerr.message);
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
 * when the key (len bytes) is known to be denied at this cost; a peek
 * (cost 0) drops the entry instead, as the store's answer will be
 * newer. */
static int decide_from_cache(const rl_conf_t *conf, const rl_policy_t *p,
                             int64_t cost, const char *key, size_t len,
                             int test, int64_t now_us, rl_decide_cb *cb,
                             void *arg)
{
    const rl_deny_entry_t *e;
    const char *top;
    size_t toplen;
    rl_verdict_t v;

    if (rl_deny_cache_self == NULL) {
        return 0;
    }
    if (cost <= 0) {
        rl_deny_cache_drop(rl_deny_cache_self, key, len, test);
        return 0;
    }
    e = rl_deny_cache_get(rl_deny_cache_self, conf->generation, key, len, test,
                          cost, now_us);
    if (e == NULL) {
        return 0;
    }
    rl_decide_verdict_cached(p, test ? p->test->limits : p->limits, test, e,
                             now_us, &v);
    if (rl_stats_self != NULL) {
        RL_STAT_INC(rl_stats_self, deny_cache_hits);
    }
    top =
        conf->ops.top_keys ? rl_topkeys_key_values(p, key, len, &toplen) : NULL;
    decide_count(RL_DECIDE_OK, &v, top, toplen);
    cb(arg, RL_DECIDE_OK, &v, NULL);
    return 1;
}

/* No context could be allocated: the first policy's failure mode
 * answers, as for a store failure. */
static void decide_no_memory(const rl_policy_t *p, decide_kind_t kind,
                             rl_decide_cb *cb, void *arg)
{
    rl_store_result_t res;
    decide_ctx_t tmp;
    rl_verdict_t v;

    memset(&res, 0, sizeof(res));
    res.status = RL_ERR;
    res.error = "out_of_memory";
    memset(&tmp, 0, sizeof(tmp));
    tmp.parts[0].policy = p;
    tmp.parts[0].limits = p->limits;
    tmp.parts[0].nlimits = p->nlimits;
    tmp.nparts = 1;
    verdict_degraded(&tmp, &res, &v);
    if (kind == DECIDE_OP_DECIDE) {
        decide_count(RL_DECIDE_OK, &v, NULL, 0);
    }
    cb(arg, v.allowed ? RL_DECIDE_OK : RL_DECIDE_UNAVAILABLE, &v, NULL);
}

/* A deny override applies to part d (a suspended key): the whole
 * decision is denied with its status and body, nothing counted, no store
 * call. */
static void decide_override_deny(const decide_ctx_t *c, const decide_part_t *d,
                                 const rl_override_t *ov)
{
    char key[RL_KEY_MAX];
    const char *missing = NULL;
    const char *top;
    size_t n = 0;
    int len;
    rl_verdict_t v;

    memset(&v, 0, sizeof(v));
    verdict_parts(c, &v);
    v.policy = d->policy;
    v.limit_def = d->nlimits > 0 ? &d->limits[0] : NULL;
    v.limit = d->nlimits > 0 ? d->limits[0].requests : 0;
    v.now_ms = rl_now_ms();
    v.status = ov->deny_status;
    v.deny_body = ov->deny_body;
    v.deny_tpl = ov->deny_tpl;
    v.override = rl_override_source_name(ov->source);
    v.override_deny = 1;
    v.deny_parts = 1u << (d - c->parts);
    if (ov->expires_at > 0 && ov->expires_at * 1000 > v.now_ms) {
        v.retry_after_ms = ov->expires_at * 1000 - v.now_ms;
    }
    if (d->policy->shadow) {
        v.allowed = 1;
        v.shadow_would_deny = 1;
        v.status = 200;
    }
    len = rl_policy_key(d->policy, c->conf->store.prefix, d->req, &d->match,
                        key, sizeof(key), &missing);
    top = len < 0 || !c->conf->ops.top_keys
              ? NULL
              : rl_topkeys_key_values(d->policy, key, (size_t)len, &n);
    decide_count(RL_DECIDE_OK, &v, top, n);
    c->cb(c->arg, RL_DECIDE_OK, &v, NULL);
}

/* Applies the overrides (config and admin, override.h) of every part to
 * its request, whose tenant is the verified one: limits replace the part's own
 * (not its test limits); a deny answers the decision (a reset goes on:
 * support staff clear a suspended key too). Returns 0, or -1 when it
 * answered. */
static int decide_overrides(decide_ctx_t *c)
{
    int i;

    for (i = 0; i < c->nparts; i++) {
        decide_part_t *d = &c->parts[i];
        const rl_override_t *ov = rl_override_for(d->policy, d->req, &d->match);

        if (ov == NULL) {
            continue;
        }
        if (ov->limits == NULL) {
            if (c->kind == DECIDE_OP_DECIDE) {
                decide_override_deny(c, d, ov);
                return -1;
            }
            continue;
        }
        if (!d->test) {
            d->limits = ov->limits;
            d->nlimits = ov->nlimits;
            d->override = rl_override_source_name(ov->source);
            d->held = ov;
            rl_override_hold(ov);
        }
    }
    return 0;
}

/* Answers RL_DECIDE_INVALID for a key field req lacks (missing NULL:
 * the key overflowed, which a validated config rules out). */
static void decide_invalid(const rl_policy_t *p, const char *missing,
                           decide_kind_t kind, rl_decide_cb *cb, void *arg)
{
    char msg[192];

    snprintf(msg, sizeof(msg), "%s is required by policy \"%s\"",
             missing != NULL ? missing : "a shorter key", p->name);
    if (kind == DECIDE_OP_DECIDE) {
        decide_count(RL_DECIDE_INVALID, NULL, NULL, 0);
    }
    cb(arg, RL_DECIDE_INVALID, NULL, msg);
}

/* Pins conf and starts the store operation of c over the keys k;
 * decide_done answers. */
static void decide_send(rl_store_t *store, decide_ctx_t *c,
                        const decide_keys_t *k, int64_t now_us)
{
    rl_store_op_t op;

    c->sent_us = now_us;
    c->epoch = rl_deny_cache_epoch();
    memset(&op, 0, sizeof(op));
    op.parts = k->parts;
    op.nparts = c->nparts;
    op.penalties = k->pens;
    op.npenalties = c->npens;
    op.cost = c->cost;
    op.part_costs = c->part_costs;
    rl_conf_pin(c->conf);
    if (c->kind == DECIDE_OP_RESET) {
        rl_store_reset(store, &op, decide_done, c);
    } else {
        rl_store_decide(store, &op, decide_done, c);
    }
}

/* Fills c's parts from the n matches: limits (test ones when the test
 * header applies). */
static void decide_parts(decide_ctx_t *c, const rl_match_t *matches, int n,
                         const rl_request_t *req)
{
    int i;

    c->nparts = n;
    for (i = 0; i < n; i++) {
        decide_part_t *d = &c->parts[i];

        d->policy = matches[i].policy;
        d->match = matches[i];
        d->test = decide_test_applies(d->policy, req);
        d->limits = d->test ? d->policy->test->limits : d->policy->limits;
        d->nlimits = d->test ? d->policy->test->nlimits : d->policy->nlimits;
        d->override = NULL;
        d->held = NULL;
        d->req = req;
        d->cost = req->cost;
    }
}

/* The deny cache step of a single-part decision without a penalty (a
 * layered or penalised one always asks the store, so penalty counts stay
 * exact): remembers the key in c, and returns 1 when the cache answered. */
static int decide_cached(decide_ctx_t *c, const decide_keys_t *k,
                         int64_t now_us)
{
    const decide_part_t *d = &c->parts[0];

    c->keylen = 0;
    /* An override's limits are not the policy's, which the cache knows. */
    if (c->nparts != 1 || c->nall > 0 || d->policy->penalty != NULL ||
        d->override != NULL || c->part_costs ||
        k->parts[0].base_len > sizeof(c->key)) {
        return 0;
    }
    memcpy(c->key, k->parts[0].base_key, k->parts[0].base_len);
    c->keylen = k->parts[0].base_len;
    return c->kind == DECIDE_OP_DECIDE &&
           decide_from_cache(c->conf, d->policy, c->cost, c->key, c->keylen,
                             d->test, now_us, c->cb, c->arg);
}

/* A new context for a decision under conf answered to cb, or NULL. */
static decide_ctx_t *decide_ctx_new(const rl_conf_t *conf, decide_kind_t kind,
                                    int64_t cost, rl_decide_cb *cb, void *arg)
{
    decide_ctx_t *c = ctx_get();

    if (c != NULL) {
        c->conf = conf;
        c->kind = kind;
        c->cb = cb;
        c->arg = arg;
        c->cost = cost;
        c->part_costs = 0;
        c->npens = 0;
        c->nall = 0;
    }
    return c;
}

/* Sets aside the parts of c without limits (a policy with "limits": []
 * that no override or test header gave some): they allow, and the store
 * never sees them. Every part stays in c->all for the verdict. Returns 1
 * when the decision is answered here (no part has limits). */
static int decide_limitless(decide_ctx_t *c)
{
    rl_verdict_t v;
    int i, n = 0;

    for (i = 0; i < c->nparts && c->parts[i].nlimits > 0; i++) {
    }
    if (i == c->nparts) {
        return 0;
    }
    for (i = 0; i < c->nparts; i++) {
        c->all[i].policy = c->parts[i].policy;
        c->all[i].limits = c->parts[i].limits;
        c->all[i].nlimits = c->parts[i].nlimits;
        c->all[i].results = NULL;
        if (c->parts[i].nlimits > 0 && n++ != i) {
            c->parts[n - 1] = c->parts[i];
        }
    }
    c->nall = c->nparts;
    c->nparts = n;
    if (n > 0) {
        return 0;
    }
    rl_decide_verdict_unlimited(c->all, c->nall, &v);
    v.now_ms = rl_now_ms();
    if (c->kind == DECIDE_OP_DECIDE) {
        decide_count(RL_DECIDE_OK, &v, NULL, 0);
    }
    c->cb(c->arg, RL_DECIDE_OK, &v, NULL);
    return 1;
}

/* Builds the keys of c's parts (overrides applied) and, for a decision,
 * answers from the deny cache when it can; otherwise starts the store
 * operation. c is recycled when it answered here. */
static void decide_go(rl_store_t *store, decide_ctx_t *c)
{
    decide_keys_t keys;
    const char *missing = NULL;
    int bad = 0;

    if (decide_limitless(c)) {
        decide_drop(c);
        return;
    }
    if (rl_decide_keys_parts(c, &keys, &bad, &missing) != 0) {
        const rl_policy_t *p = c->parts[bad].policy;
        decide_kind_t kind = c->kind;
        rl_decide_cb *cb = c->cb;
        void *arg = c->arg;

        decide_drop(c);
        decide_invalid(p, missing, kind, cb, arg);
        return;
    }
    rl_decide_keys_penalties(c, &keys);
    if (decide_cached(c, &keys, rl_mono_us())) {
        decide_drop(c);
        return;
    }
    decide_send(store, c, &keys, rl_mono_us());
}

/* Finds the applied policies of req, verifies its tenant and applies
 * the overrides, then decide_go. */
static void decide_start(const rl_conf_t *conf, rl_store_t *store,
                         const rl_request_t *req, decide_kind_t kind,
                         rl_decide_cb *cb, void *arg)
{
    rl_match_t matches[RL_MAX_OP_PARTS];
    decide_ctx_t *c;
    rl_request_t signed_req;
    int n, i;

    n = rl_policy_find_all(conf, req, matches, RL_MAX_OP_PARTS);
    if (n == 0) {
        decide_no_policy(conf, req, kind, cb, arg);
        return;
    }
    c = decide_ctx_new(conf, kind, req->cost, cb, arg);
    if (c == NULL) {
        decide_no_memory(matches[0].policy, kind, cb, arg);
        return;
    }
    decide_parts(c, matches, n, req);
    /* An admin reset acts for support staff, not the tenant: no
     * signature there. Overrides match the verified tenant. */
    if (kind == DECIDE_OP_DECIDE &&
        (req = decide_tenant(conf, c, req, &signed_req)) == NULL) {
        decide_drop(c);
        return;
    }
    for (i = 0; i < n; i++) {
        c->parts[i].req = req;
    }
    if (decide_overrides(c) != 0) {
        decide_drop(c);
        return;
    }
    decide_go(store, c);
}

void rl_decide_items(const rl_conf_t *conf, rl_store_t *store,
                     const rl_decide_item_t *items, int n, rl_decide_cb *cb,
                     void *arg)
{
    decide_ctx_t *c = decide_ctx_new(conf, DECIDE_OP_DECIDE, 0, cb, arg);
    int i;

    if (c == NULL) {
        decide_no_memory(items[0].match.policy, DECIDE_OP_DECIDE, cb, arg);
        return;
    }
    /* Last to first: decide_parts fills parts[0], item 0's at the end. */
    for (i = n - 1; i >= 0; i--) {
        decide_parts(c, &items[i].match, 1, items[i].req);
        c->parts[i] = c->parts[0];
        c->parts[i].cost = items[i].cost;
    }
    c->nparts = n;
    if (n == 1 && items[0].limits == NULL) {
        /* One descriptor of the policy's limits: the single-part path,
         * so the deny cache answers its repeated denials. */
        c->cost = items[0].cost;
    } else {
        c->part_costs = 1;
    }
    if (decide_overrides(c) != 0) {
        decide_drop(c);
        return;
    }
    for (i = 0; i < n; i++) {
        if (items[i].limits != NULL) {
            c->parts[i].limits = items[i].limits;
            c->parts[i].nlimits = items[i].nlimits;
            c->parts[i].override = NULL;
        }
    }
    decide_go(store, c);
}

/* Decides or resets req with its path prepared as conf->paths asks
 * (rl_path_request); a dot segment made by normalising is 422 VAL_002. */
static void decide_entry(const rl_conf_t *conf, rl_store_t *store,
                         const rl_request_t *req, decide_kind_t kind,
                         rl_decide_cb *cb, void *arg)
{
    rl_path_buf_t buf;
    rl_request_t nreq;
    int bad = 0;
    const rl_request_t *r =
        rl_path_request(&conf->paths, req, &nreq, &buf, &bad);

    if (r != NULL) {
        decide_start(conf, store, r, kind, cb, arg);
    } else if (bad) {
        if (kind == DECIDE_OP_DECIDE) {
            decide_count(RL_DECIDE_BAD_POLICY, NULL, NULL, 0);
        }
        cb(arg, RL_DECIDE_BAD_POLICY, NULL, rl_error_message(RL_ERR_BAD_PATH));
    } else if (conf->npolicies > 0) { /* no memory: as decide_start's */
        decide_no_memory(&conf->policies[0], kind, cb, arg);
    } else {
        decide_no_policy(conf, req, kind, cb, arg);
    }
    rl_path_buf_free(&buf);
}

void rl_decide(const rl_conf_t *conf, rl_store_t *store,
               const rl_request_t *req, rl_decide_cb *cb, void *arg)
{
    decide_entry(conf, store, req, DECIDE_OP_DECIDE, cb, arg);
}

void rl_decide_reset(const rl_conf_t *conf, rl_store_t *store,
                     const rl_request_t *req, rl_decide_cb *cb, void *arg)
{
    decide_entry(conf, store, req, DECIDE_OP_RESET, cb, arg);
}
