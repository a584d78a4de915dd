/* Envoy's rate-limit service on the decision core.
 *
 * ShouldRateLimit: each descriptor of a request becomes a decision
 * request whose "headers" are its entries (rl_policy_find_descriptor,
 * policy.c) and is matched on its own, first descriptor policy in file
 * order; every matched descriptor is one part of a single
 * rl_decide_items call, so the request is admitted only if every part
 * admits and a denial spends nothing anywhere. Each part costs its
 * descriptor's hits_addend, else the request's (0 there means unset,
 * as proto3 cannot tell: 1), so a descriptor's explicit 0 peeks.
 * The answer: one DescriptorStatus per descriptor in order (unmatched,
 * or matched by a policy with "limits": []: OK, no current_limit), overall
 * OVER_LIMIT if any descriptor is over, the deciding policy's headers, and on
 * OVER_LIMIT its deny body as raw_body. A descriptor is OVER_LIMIT only
 * when it denies (rl_verdict_t's deny_parts): the others of a denied call
 * keep their own status, as envoyproxy/ratelimit reports them, although
 * the denial spent nothing on them. A store failure answers by each
 * policy's failure_mode, or UNAVAILABLE with "store_failure": "unavailable".
 *
 * Health/Check: SERVING while the store is ready (the /ready test);
 * Health/Watch streams that status, again on every change. */
#include "grpc_rls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "auth.h"
#include "conf.h"
#include "decide.h"
#include "grpc_proto.h"
#include "outcome.h"
#include "policy.h"
#include "reply.h"
#include "stats.h"
#include "util.h"
#include "worker.h"

#define RLS_MAX_DESCRIPTORS 64

typedef Envoy__Service__Ratelimit__V3__RateLimitRequest rls_request_t;
typedef Envoy__Service__Ratelimit__V3__RateLimitResponse rls_response_t;
typedef Envoy__Service__Ratelimit__V3__RateLimitResponse__DescriptorStatus
    rls_status_t;
typedef Envoy__Service__Ratelimit__V3__RateLimitResponse__RateLimit rls_limit_t;
typedef Envoy__Extensions__Common__Ratelimit__V3__RateLimitDescriptor
    rls_descriptor_t;
typedef Envoy__Config__Core__V3__HeaderValue rls_header_t;

#define RLS_OK ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__CODE__OK
#define RLS_OVER                                                               \
    ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__CODE__OVER_LIMIT

/* One call in flight: what the answer needs once the store has spoken. */
typedef struct rls_ctx {
    rl_worker_t *w;
    rl_grpc_call_t *call;
    const rl_conf_t *conf;
    int ndesc;
    int part_of[RLS_MAX_DESCRIPTORS];    /* descriptor -> part, -1 unmatched */
    rl_limit_t dlimits[RL_MAX_OP_PARTS]; /* descriptor limits, by part */
    int64_t start_us; /* the call's; call is gone once answered */
    char id[40];
} rls_ctx_t;

/* The units of RateLimitResponse.RateLimit.Unit, smallest first. */
static const struct {
    int unit;
    int64_t ms;
} rls_units[] = {
    {1, 1000LL},        /* SECOND */
    {2, 60000LL},       /* MINUTE */
    {3, 3600000LL},     /* HOUR */
    {4, 86400000LL},    /* DAY */
    {7, 604800000LL},   /* WEEK */
    {5, 2592000000LL},  /* MONTH: 30 days */
    {6, 31536000000LL}, /* YEAR: 365 days */
};
#define RLS_NUNITS (sizeof(rls_units) / sizeof(rls_units[0]))

/* ------------------------------------------------------------------------
 * Pure helpers
 * ---------------------------------------------------------------------- */

void rl_grpc_rls_unit(int64_t requests, int64_t period_ms, int *unit,
                      uint32_t *per_unit)
{
    unsigned __int128 scaled;
    size_t i;

    for (i = 0; i < RLS_NUNITS && rls_units[i].ms < period_ms; i++) {
    }
    if (i == RLS_NUNITS) {
        i = RLS_NUNITS - 1;
    }
    *unit = rls_units[i].unit;
    scaled = (unsigned __int128)requests * (unsigned __int128)rls_units[i].ms /
             (unsigned __int128)period_ms;
    *per_unit = scaled > UINT32_MAX ? UINT32_MAX : (uint32_t)scaled;
}

int rl_grpc_rls_descriptor_limit(uint32_t requests, int unit, rl_limit_t *l)
{
    size_t i;

    memset(l, 0, sizeof(*l));
    for (i = 0; i < RLS_NUNITS && rls_units[i].unit != unit; i++) {
    }
    if (i == RLS_NUNITS || requests == 0) {
        return -1;
    }
    l->algo = RL_ALGO_FIXED_WINDOW;
    l->requests = requests;
    l->period_ms = rls_units[i].ms;
    l->burst = requests;
    return rl_conf_limit_suffix(l->suffix, sizeof(l->suffix), "d", l->algo,
                                l->period_ms);
}

/* The limit of part p that describes it: on a denial the one that keeps
 * the caller out longest, else the one with the fewest remaining. */
static int rls_pick(const rl_verdict_part_t *p, int *over)
{
    int i, pick = 0;

    *over = 0;
    for (i = 0; p->results != NULL && i < p->nlimits; i++) {
        const rl_limit_result_t *a = &p->results[i], *b = &p->results[pick];

        if (!a->allowed && (!*over || a->retry_after_ms > b->retry_after_ms)) {
            pick = i;
            *over = 1;
        } else if (!*over && a->remaining < b->remaining) {
            pick = i;
        }
    }
    return pick;
}

int rl_grpc_rls_part_over(const rl_verdict_t *v, int p, int *pick)
{
    int over;

    *pick = rls_pick(&v->policies[p], &over);
    if (v->policies[p].results == NULL && v->cached) {
        /* The deny cache keeps the limit that denied, not each result. */
        *pick = (int)(v->limit_def - v->policies[p].limits);
    }
    if (v->degraded) {
        return !v->policies[p].policy->failure_open;
    }
    return over || (!v->allowed && (v->deny_parts >> p & 1u));
}

/* ------------------------------------------------------------------------
 * Answers
 * ---------------------------------------------------------------------- */

/* Writes the access log line of a finished call (grpc.c counts it);
 * x->call may already be answered (and gone). */
static void rls_account(rls_ctx_t *x, rl_decide_status_t ds,
                        const rl_verdict_t *v)
{
    rl_outcome_t o;

    if (v == NULL && ds == RL_DECIDE_OK) {
        return;
    }
    rl_outcome_of(ds, v, &o);
    rl_worker_access_log(
        x->w, x->id, v != NULL && v->policy != NULL ? v->policy->name : NULL,
        o.verdict, o.status, rl_mono_us() - x->start_us, 0);
}

/* Packs resp and answers the call OK. */
static void rls_send(rl_grpc_call_t *call, const rls_response_t *resp)
{
    size_t n =
        envoy__service__ratelimit__v3__rate_limit_response__get_packed_size(
            resp);
    uint8_t *buf = malloc(n > 0 ? n : 1);

    if (buf == NULL) {
        rl_grpc_call_answer(call, RL_GRPC_INTERNAL, NULL, 0, "out of memory");
        return;
    }
    envoy__service__ratelimit__v3__rate_limit_response__pack(resp, buf);
    rl_grpc_call_answer(call, RL_GRPC_OK, buf, n, NULL);
    free(buf);
}

/* Sets status s's limit_remaining (clamped) and its duration d of ms. */
static void rls_remaining(rls_status_t *s, Google__Protobuf__Duration *d,
                          int64_t remaining, int64_t ms)
{
    s->limit_remaining = remaining > UINT32_MAX ? UINT32_MAX
                         : remaining < 0        ? 0
                                                : (uint32_t)remaining;
    d->seconds = ms / 1000;
    d->nanos = (int32_t)(ms % 1000) * 1000000;
    s->duration_until_reset = d;
}

/* Fills status s (with its limit l and duration d) for part p of v. */
static void rls_part_status(const rl_verdict_t *v, int p, rls_status_t *s,
                            rls_limit_t *l, Google__Protobuf__Duration *d)
{
    const rl_verdict_part_t *part = &v->policies[p];
    int over, pick, unit;
    uint32_t per;

    if (part->nlimits == 0) {
        return; /* a policy without limits: OK, no current_limit */
    }
    over = rl_grpc_rls_part_over(v, p, &pick);
    s->code = over && !part->policy->shadow ? RLS_OVER : RLS_OK;
    rl_grpc_rls_unit(part->limits[pick].requests, part->limits[pick].period_ms,
                     &unit, &per);
    l->name = part->policy->name;
    l->requests_per_unit = per;
    l->unit = unit;
    s->current_limit = l;
    if (part->results == NULL && v->cached) {
        /* The deny cache knows the limit that denied, not each result. */
        rls_remaining(s, d, v->remaining,
                      v->retry_after_ms > v->reset_after_ms
                          ? v->retry_after_ms
                          : v->reset_after_ms);
    } else if (part->results != NULL) {
        const rl_limit_result_t *r = &part->results[pick];
        int64_t ms =
            over ? (r->retry_after_ms > r->reset_after_ms ? r->retry_after_ms
                                                          : r->reset_after_ms)
                 : r->reset_after_ms;

        rls_remaining(s, d, r->remaining, ms);
    }
}

/* The response headers of v (its deciding policy's style), lower-case. */
static size_t rls_headers(const rl_verdict_t *v, rl_reply_header_t *h,
                          rls_header_t *hv, rls_header_t **hp)
{
    int n = v->policy != NULL && !v->degraded ? rl_reply_headers(v, h) : 0;
    int i;

    for (i = 0; i < n; i++) {
        char *c;

        envoy__config__core__v3__header_value__init(&hv[i]);
        for (c = h[i].name; *c != '\0'; c++) {
            *c = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : *c;
        }
        hv[i].key = h[i].name;
        hv[i].value = h[i].value;
        hp[i] = &hv[i];
    }
    return (size_t)n;
}

/* Builds and sends the RateLimitResponse of a decided call. */
static void rls_answer(rls_ctx_t *x, const rl_verdict_t *v)
{
    rls_status_t st[RLS_MAX_DESCRIPTORS], *stp[RLS_MAX_DESCRIPTORS];
    rls_limit_t lim[RLS_MAX_DESCRIPTORS];
    Google__Protobuf__Duration dur[RLS_MAX_DESCRIPTORS];
    rl_reply_header_t h[RL_REPLY_MAX_HEADERS];
    rls_header_t hv[RL_REPLY_MAX_HEADERS], *hp[RL_REPLY_MAX_HEADERS];
    rls_response_t resp =
        ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__INIT;
    char stack[2048], *body = NULL;
    size_t len;
    int i;

    resp.overall_code = RLS_OK;
    for (i = 0; i < x->ndesc; i++) {
        envoy__service__ratelimit__v3__rate_limit_response__descriptor_status__init(
            &st[i]);
        envoy__service__ratelimit__v3__rate_limit_response__rate_limit__init(
            &lim[i]);
        google__protobuf__duration__init(&dur[i]);
        st[i].code = RLS_OK;
        if (v != NULL && x->part_of[i] >= 0) {
            rls_part_status(v, x->part_of[i], &st[i], &lim[i], &dur[i]);
        }
        if (st[i].code == RLS_OVER) {
            resp.overall_code = RLS_OVER;
        }
        stp[i] = &st[i];
    }
    resp.n_statuses = (size_t)x->ndesc;
    resp.statuses = stp;
    if (v != NULL) {
        resp.n_response_headers_to_add = rls_headers(v, h, hv, hp);
        resp.response_headers_to_add = hp;
    }
    if (v != NULL && resp.overall_code == RLS_OVER && !v->degraded) {
        /* The compiled deny body, streamed (any JSON value, a string
         * too): no allocation below 2 KiB. */
        body =
            rl_reply_deny_text(v, JSON_ENCODE_ANY, stack, sizeof(stack), &len);
        if (body != NULL) {
            resp.raw_body.data = (uint8_t *)body;
            resp.raw_body.len = len;
        }
    }
    rls_send(x->call, &resp);
    if (body != stack) {
        free(body);
    }
}

/* rl_decide_items' callback: answers the call (unless it is no longer
 * live: a passed deadline already answered it) and frees x. */
static void rls_decided(void *arg, rl_decide_status_t status,
                        const rl_verdict_t *v, const char *message)
{
    rls_ctx_t *x = arg;
    rl_grpc_status_t st = RL_GRPC_OK;

    if (status == RL_DECIDE_INVALID || status == RL_DECIDE_BAD_POLICY) {
        st = RL_GRPC_INVALID_ARGUMENT;
        rl_grpc_call_answer(x->call, st, NULL, 0, message);
    } else if (status == RL_DECIDE_AUTH) {
        st = RL_GRPC_INTERNAL;
        rl_grpc_call_answer(x->call, st, NULL, 0, message);
    } else if (v->degraded && x->conf->grpc->store_unavailable) {
        st = RL_GRPC_UNAVAILABLE;
        rl_grpc_call_answer(x->call, st, NULL, 0, "the store is unavailable");
    } else if (!rl_grpc_call_live(x->call)) {
        st = RL_GRPC_DEADLINE_EXCEEDED;
        rl_grpc_call_answer(x->call, st, NULL, 0, NULL);
    } else {
        rls_answer(x, v);
    }
    rls_account(x, status, v);
    free(x);
}

/* ------------------------------------------------------------------------
 * ShouldRateLimit
 * ---------------------------------------------------------------------- */

/* The decision request of descriptor d: its entries as headers, the
 * domain's "method" and "path" empty. 0, or -1 with too many entries. */
static int rls_descriptor_request(const rls_descriptor_t *d, rl_request_t *r)
{
    size_t i;

    memset(r, 0, sizeof(*r));
    r->path = "";
    if (d->n_entries > RL_MAX_REQ_HEADERS) {
        return -1;
    }
    for (i = 0; i < d->n_entries; i++) {
        const char *k = d->entries[i]->key, *val = d->entries[i]->value;

        r->headers[i].name = k;
        r->headers[i].name_len = strlen(k);
        r->headers[i].value = val;
        r->headers[i].value_len = strlen(val);
    }
    r->nheaders = (int)d->n_entries;
    return 0;
}

/* The cost of descriptor d of request q (see the top of the file). */
static int64_t rls_cost(const rls_request_t *q, const rls_descriptor_t *d)
{
    if (d->hits_addend != NULL) {
        return d->hits_addend->value > INT32_MAX
                   ? INT32_MAX
                   : (int64_t)d->hits_addend->value;
    }
    return q->hits_addend > 0 ? (int64_t)q->hits_addend : 1;
}

/* Matches every descriptor of q into x and items (at most
 * RL_MAX_OP_PARTS matched). Returns the number of items, or -1 with
 * *why set. reqs[] (RLS_MAX_DESCRIPTORS) hold the items' requests. */
static int rls_match(rls_ctx_t *x, const rls_request_t *q, rl_request_t *reqs,
                     rl_decide_item_t *items, const char **why)
{
    const char *domain = q->domain != NULL ? q->domain : "";
    size_t i;
    int n = 0;

    for (i = 0; i < q->n_descriptors; i++) {
        const rls_descriptor_t *d = q->descriptors[i];
        rl_decide_item_t *it = &items[n];

        x->part_of[i] = -1;
        if (rls_descriptor_request(d, &reqs[i]) != 0) {
            *why = "a descriptor has too many entries";
            return -1;
        }
        if (rl_policy_find_descriptor(x->conf, domain, &reqs[i], &it->match) ==
            NULL) {
            continue;
        }
        if (n == RL_MAX_OP_PARTS) {
            *why = "more than 8 descriptors match policies";
            return -1;
        }
        it->req = &reqs[i];
        it->cost = rls_cost(q, d);
        it->limits = NULL;
        it->nlimits = 0;
        if (x->conf->grpc->descriptor_limits && d->limit != NULL &&
            rl_grpc_rls_descriptor_limit(d->limit->requests_per_unit,
                                         (int)d->limit->unit,
                                         &x->dlimits[n]) == 0) {
            it->limits = &x->dlimits[n];
            it->nlimits = 1;
        }
        x->part_of[i] = n++;
    }
    return n;
}

/* ShouldRateLimit: decode, match, decide (rls_decided answers). */
static void rls_should(rl_worker_t *w, rl_grpc_call_t *call, const uint8_t *msg,
                       size_t len)
{
    static _Thread_local uint64_t seq;
    rl_request_t reqs[RLS_MAX_DESCRIPTORS];
    rl_decide_item_t items[RL_MAX_OP_PARTS];
    const char *why = NULL;
    rls_request_t *q;
    rls_ctx_t *x;
    int n;

    q = envoy__service__ratelimit__v3__rate_limit_request__unpack(NULL, len,
                                                                  msg);
    x = calloc(1, sizeof(*x));
    if (q == NULL || x == NULL) {
        rl_grpc_call_answer(
            call, q == NULL ? RL_GRPC_INVALID_ARGUMENT : RL_GRPC_INTERNAL, NULL,
            0, q == NULL ? "malformed RateLimitRequest" : "out of memory");
        goto done;
    }
    x->w = w;
    x->call = call;
    x->start_us = rl_grpc_call_start_us(call);
    x->conf = w->conf;
    snprintf(x->id, sizeof(x->id), "grpc-%d-%llu", w->id,
             (unsigned long long)++seq);
    if (q->n_descriptors > RLS_MAX_DESCRIPTORS) {
        why = "more than 64 descriptors";
        n = -1;
    } else {
        x->ndesc = (int)q->n_descriptors;
        n = rls_match(x, q, reqs, items, &why);
    }
    if (n < 0) {
        rl_grpc_call_answer(call, RL_GRPC_INVALID_ARGUMENT, NULL, 0, why);
        free(x);
    } else if (n == 0) {
        rls_answer(x, NULL);
        rls_account(x, RL_DECIDE_OK, NULL);
        free(x);
    } else {
        rl_decide_items(x->conf, w->store, items, n, rls_decided, x);
    }
    x = NULL;

done:
    free(x);
    if (q != NULL) {
        envoy__service__ratelimit__v3__rate_limit_request__free_unpacked(q,
                                                                         NULL);
    }
}

/* ------------------------------------------------------------------------
 * Health
 * ---------------------------------------------------------------------- */

#define RLS_WATCH_POLL_MS 250

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus rls_serving_t;

/* An open Health/Watch stream: its call, its poll timer, the status it
 * sent last. Owned by the stream: freed when it ends (rls_watch_end). */
typedef struct rls_watch {
    rl_worker_t *w;
    rl_grpc_call_t *call;
    struct event *timer;
    rls_serving_t sent;
} rls_watch_t;

/* The services a health check may name: "" (the whole server) and
 * the rate-limit service. */
static const char *const rls_health_services[] = {
    "", "envoy.service.ratelimit.v3.RateLimitService"};

/* SERVING while this worker's store and every worker's are up (as
 * /ready), else NOT_SERVING. */
static rls_serving_t rls_serving(rl_worker_t *w)
{
    return rl_store_connected(w->store) && rl_app_store_up(w->app)
               ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
               : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

/* Decodes the HealthCheckRequest msg (len bytes): 1 for a service this
 * server has, 0 for another, -1 (call answered INVALID_ARGUMENT) for a
 * malformed one. */
static int rls_health_request(rl_grpc_call_t *call, const uint8_t *msg,
                              size_t len)
{
    Grpc__Health__V1__HealthCheckRequest *q =
        grpc__health__v1__health_check_request__unpack(NULL, len, msg);
    const char *name;
    size_t i;
    int known = 0;

    if (q == NULL) {
        rl_grpc_call_answer(call, RL_GRPC_INVALID_ARGUMENT, NULL, 0,
                            "malformed HealthCheckRequest");
        return -1;
    }
    name = q->service != NULL ? q->service : "";
    for (i = 0; i < sizeof(rls_health_services) / sizeof(char *); i++) {
        known |= strcmp(name, rls_health_services[i]) == 0;
    }
    grpc__health__v1__health_check_request__free_unpacked(q, NULL);
    return known;
}

/* Packs a HealthCheckResponse of status into buf (16 bytes); returns
 * its length. */
static size_t rls_health_pack(rls_serving_t status, uint8_t *buf)
{
    Grpc__Health__V1__HealthCheckResponse r =
        GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;

    r.status = status;
    return grpc__health__v1__health_check_response__pack(&r, buf);
}

/* Health/Check: the serving status (rls_serving); NOT_FOUND for a
 * service this server does not have. */
static void rls_health(rl_worker_t *w, rl_grpc_call_t *call, const uint8_t *msg,
                       size_t len)
{
    uint8_t buf[16];
    int known = rls_health_request(call, msg, len);

    if (known == 0) {
        rl_grpc_call_answer(call, RL_GRPC_NOT_FOUND, NULL, 0,
                            "unknown service");
    } else if (known > 0) {
        rl_grpc_call_answer(call, RL_GRPC_OK, buf,
                            rls_health_pack(rls_serving(w), buf), NULL);
    }
}

/* Sends x's status when it changed since the last one sent. */
static void rls_watch_poll(evutil_socket_t fd, short what, void *arg)
{
    rls_watch_t *x = arg;
    rls_serving_t now = rls_serving(x->w);
    uint8_t buf[16];

    if (now != x->sent &&
        rl_grpc_call_send(x->call, buf, rls_health_pack(now, buf)) == 0) {
        x->sent = now;
    }
}

/* The stream of x ended (cancelled, gone, its deadline, or the server
 * stopping): its call is answered (freed) and x freed. */
static void rls_watch_end(void *arg, rl_grpc_call_t *call)
{
    rls_watch_t *x = arg;

    if (x->timer != NULL) {
        event_free(x->timer);
    }
    free(x);
    rl_grpc_call_answer(call, RL_GRPC_OK, NULL, 0, NULL);
}

/* Health/Watch: a server stream that sends the serving status at once
 * and again whenever it changes (polled every RLS_WATCH_POLL_MS), until
 * the client cancels or the server stops (OK trailers). A service this
 * server does not have is sent SERVICE_UNKNOWN once and stays open, as
 * the gRPC health protocol says. */
static void rls_watch(rl_worker_t *w, rl_grpc_call_t *call, const uint8_t *msg,
                      size_t len)
{
    struct timeval tv = {0, RLS_WATCH_POLL_MS * 1000};
    int known = rls_health_request(call, msg, len);
    rls_watch_t *x;
    uint8_t buf[16];

    if (known < 0) {
        return;
    }
    x = calloc(1, sizeof(*x));
    if (x == NULL ||
        (known && (x->timer = event_new(w->base, -1, EV_PERSIST, rls_watch_poll,
                                        x)) == NULL)) {
        free(x);
        rl_grpc_call_answer(call, RL_GRPC_INTERNAL, NULL, 0, "out of memory");
        return;
    }
    x->w = w;
    x->call = call;
    x->sent =
        known
            ? rls_serving(w)
            : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    rl_grpc_call_stream(call, rls_watch_end, x);
    if (x->timer != NULL) {
        event_add(x->timer, &tv);
    }
    rl_grpc_call_send(call, buf, rls_health_pack(x->sent, buf));
}

/* ------------------------------------------------------------------------
 * Dispatch
 * ---------------------------------------------------------------------- */

/* Caller authentication of a call, as the HTTP front end does it
 * (server_auth.c): the same auth section, headers (as metadata), failure
 * throttle and counter. What is signed in hmac mode: METHOD "POST",
 * PATH the call's :path, BODY the request message (without the gRPC
 * prefix). 1 if the call may go on, else 0 with the call answered:
 * UNAUTHENTICATED (401), PERMISSION_DENIED (403, suspended),
 * INVALID_ARGUMENT (400, a repeated Authorization) or RESOURCE_EXHAUSTED
 * (the address is throttled), the message starting with the error code. */
static int rls_caller_ok(rl_worker_t *w, rl_grpc_call_t *call, const char *path,
                         const uint8_t *msg, size_t len)
{
    const rl_conf_auth_t *a = &w->conf->auth;
    const rl_principal_t *caller;
    rl_auth_input_t in;
    rl_auth_error_t err;
    rl_grpc_status_t st;
    char why[200];

    if (a->mode == RL_AUTH_NONE) {
        return 1;
    }
    in.method = "POST";
    in.method_len = 4;
    in.target = path;
    in.target_len = strlen(path);
    in.body = (const char *)msg;
    in.body_len = len;
    in.nheaders = rl_grpc_call_metadata(call, &in.headers);
    if (rl_auth_caller_from(a, rl_grpc_call_peer(call), &in, rl_now_ms(),
                            &caller, &err) == 0) {
        return 1;
    }
    RL_STAT_INC(&w->stats, auth_failures);
    st = err.status == 429   ? RL_GRPC_RESOURCE_EXHAUSTED
         : err.status == 403 ? RL_GRPC_PERMISSION_DENIED
         : err.status == 400 ? RL_GRPC_INVALID_ARGUMENT
                             : RL_GRPC_UNAUTHENTICATED;
    if (err.status == 429) {
        snprintf(why, sizeof(why), "%s: %s (retry after %lld s)", err.code,
                 err.message, (long long)err.retry_after_s);
    } else {
        snprintf(why, sizeof(why), "%s: %s", err.code, err.message);
    }
    rl_grpc_call_answer(call, st, NULL, 0, why);
    return 0;
}

/* The methods; auth: caller authentication first (the health checks
 * stay open, as /health and /ready do). */
static const struct {
    const char *path;
    void (*fn)(rl_worker_t *w, rl_grpc_call_t *call, const uint8_t *msg,
               size_t len);
    int auth;
} rls_methods[] = {
    {"/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit", rls_should,
     1},
    {"/grpc.health.v1.Health/Check", rls_health, 0},
    {"/grpc.health.v1.Health/Watch", rls_watch, 0},
};

void rl_grpc_rls_handle(void *arg, rl_grpc_call_t *call, const char *path,
                        const uint8_t *msg, size_t len)
{
    rl_worker_t *w = arg;
    size_t i;

    for (i = 0; i < sizeof(rls_methods) / sizeof(rls_methods[0]); i++) {
        if (strcmp(path, rls_methods[i].path) == 0) {
            if (!rls_methods[i].auth ||
                rls_caller_ok(w, call, path, msg, len)) {
                rls_methods[i].fn(w, call, msg, len);
            }
            return;
        }
    }
    rl_grpc_call_answer(call, RL_GRPC_UNIMPLEMENTED, NULL, 0,
                        "unknown service or method");
}
