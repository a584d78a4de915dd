/* The decision core: request -> policy -> key -> one store call ->
 * verdict. The hot path: no I/O of its own and, in steady state, no
 * allocation (contexts come from a per-thread free list). */
#include "decide.h"

#include <stdlib.h>
#include <string.h>
#include "auth.h"
#include "util.h"

typedef struct decide_ctx {
    struct decide_ctx *next_free;
    const rl_policy_t *policy;
    const rl_limit_t *limits;
    int nlimits;
    int test;
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

void rl_decide_verdict(const rl_policy_t *p, const rl_limit_t *limits, int nlimits, int test,
                       const rl_store_result_t *res, rl_verdict_t *v)
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
            if (!b->allowed && a->allowed) continue;
            if ((!a->allowed && b->allowed) || a->retry_after_ms > b->retry_after_ms) pick = i;
        } else if (a->remaining < b->remaining ||
                   (a->remaining == b->remaining && a->reset_after_ms > b->reset_after_ms)) {
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
        if (res->limits[i].blocked && !res->limits[i].allowed) v->blocked = 1;
    }
    if (!res->allowed && v->retry_after_ms < 1) v->retry_after_ms = 1;
    v->status = res->allowed ? 200 : p->deny_status;
    if (!res->allowed && p->shadow) {
        /* Shadow mode: counted and reported, never enforced. */
        v->allowed = 1;
        v->shadow_would_deny = 1;
        v->status = 200;
    }
}

/* The store failed: the policy's failure mode decides. */
static void verdict_degraded(const decide_ctx_t *c, const rl_store_result_t *res, rl_verdict_t *v)
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

static void decide_done(void *arg, const rl_store_result_t *res)
{
    decide_ctx_t *c = arg;
    rl_decide_cb *cb = c->cb;
    void *cb_arg = c->arg;
    rl_verdict_t v;
    rl_decide_status_t status = RL_DECIDE_OK;

    if (res->status != RL_OK) {
        verdict_degraded(c, res, &v);
        if (!v.allowed) status = RL_DECIDE_UNAVAILABLE;
    } else {
        rl_decide_verdict(c->policy, c->limits, c->nlimits, c->test, res, &v);
    }
    ctx_put(c);
    cb(cb_arg, status, &v, NULL);
}

void rl_decide(const rl_conf_t *conf, rl_store_t *store, const rl_request_t *req,
               rl_decide_cb *cb, void *arg)
{
    char key[RL_KEY_MAX];
    char msg[192];
    rl_match_t m;
    rl_store_op_t op;
    const rl_policy_t *p;
    const char *missing = NULL;
    decide_ctx_t *c;
    rl_request_t signed_req;
    int len, test = 0;

    p = rl_policy_find(conf, req, &m);
    if (p == NULL) {
        rl_verdict_t v;
        if (req->policy != NULL) {
            snprintf(msg, sizeof(msg), "policy \"%.64s\" does not exist or does not match the request",
                     req->policy);
            cb(arg, RL_DECIDE_BAD_POLICY, NULL, msg);
            return;
        }
        memset(&v, 0, sizeof(v));
        v.allowed = 1;
        v.status = 200;
        v.now_ms = rl_now_ms();
        cb(arg, RL_DECIDE_OK, &v, NULL);
        return;
    }
    if (p->verify_tenant) {
        /* The end client's signature is checked before anything counts,
         * and the tenant that signed is the one charged. */
        rl_auth_error_t aerr;
        const char *tenant;

        if (rl_auth_tenant(conf, req, rl_now_ms() / 1000, &tenant, &aerr) != 0) {
            rl_verdict_t v;
            memset(&v, 0, sizeof(v));
            v.policy = p;
            v.status = aerr.status;
            v.error_code = aerr.code;
            v.now_ms = rl_now_ms();
            cb(arg, RL_DECIDE_AUTH, &v, aerr.message);
            return;
        }
        if (req->tenant == NULL) {
            signed_req = *req;
            signed_req.tenant = tenant;
            req = &signed_req;
        }
    }
    len = rl_policy_key(p, conf->store.prefix, req, &m, key, sizeof(key), &missing);
    if (len < 0) {
        /* missing is NULL only if the key overflowed, which a validated
         * config rules out; answer it as invalid all the same. */
        snprintf(msg, sizeof(msg), "%s is required by policy \"%s\"",
                 missing != NULL ? missing : "a shorter key", p->name);
        cb(arg, RL_DECIDE_INVALID, NULL, msg);
        return;
    }
    if (p->test != NULL) {
        size_t vlen;
        const char *val = rl_request_header(req, p->test->header, &vlen);
        test = val != NULL && vlen == strlen(p->test->value) && memcmp(val, p->test->value, vlen) == 0;
    }
    c = ctx_get();
    if (c == NULL) {
        rl_store_result_t res;
        memset(&res, 0, sizeof(res));
        res.status = RL_ERR;
        res.error = "out_of_memory";
        {
            decide_ctx_t tmp = { NULL, p, p->limits, p->nlimits, test, cb, arg };
            rl_verdict_t v;
            verdict_degraded(&tmp, &res, &v);
            cb(arg, v.allowed ? RL_DECIDE_OK : RL_DECIDE_UNAVAILABLE, &v, NULL);
        }
        return;
    }
    c->policy = p;
    c->limits = test ? p->test->limits : p->limits;
    c->nlimits = test ? p->test->nlimits : p->nlimits;
    c->test = test;
    c->cb = cb;
    c->arg = arg;
    op.base_key = key;
    op.base_len = (size_t)len;
    op.limits = c->limits;
    op.nlimits = c->nlimits;
    op.cost = req->cost;
    rl_store_decide(store, &op, decide_done, c);
}
