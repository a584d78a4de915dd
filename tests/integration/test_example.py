"""Every rule of deploy/examples/ratelimitd.json, driven over HTTP on both
stores. The file is used as shipped (only the store address changes);
where a rule would make the test wait minutes, a copy with the same
policy but shorter limits is used, or cost stands in for many requests.
Besides the source rules: the account group beside the platform routes,
the higher-limit and the suspended tenant of the events policy (config
overrides), the penalty block on the whole build API and the fail-closed
ingest policy's 503 body."""

import copy
import math
import time

from harness import (SLOW, STORES, between, check, duration_s, eq, find_policy, gcra_upper,
                     hammer, load_example, parametrize, policy_named, service, wait_until,
                     wait_window_start)

PLATFORM_BODY = {"success": False, "message": "Too many attempts."}
UPLOAD_BODY = {"message": "Rate limit exceeded. Try again in 2 minutes."}
EVENTS_BODY = {"error": "Rate limit exceeded", "code": "RATE_001"}
SUSPENDED_BODY = {"error": "Account suspended: contact support", "code": "AUTH_003"}
UNAVAILABLE_BODY = {"error": "service temporarily unavailable", "trace_id": "{trace_id}"}
PAYMENTS_BODY = {"errors": [{"code": 64, "severity": 2,
                             "msg": "Rate of requests exceeded - Temporary block implemented",
                             "errorCode": "C_RATE_LIMIT_EXCEEDED_TEMP_BLOCK"}]}


def _policy(conf, method, path):
    p = find_policy(conf, method, path)
    check(p is not None, "no policy of the example applies to %s %s" % (method, path))
    return p


def _payments(conf):
    """The payments policy: the one with a test header."""
    for p in conf["policies"]:
        if p.get("test"):
            return p
    raise AssertionError("the example has no policy with a test header")


# Two endpoints (resources) of the payments API, as the source names them.
TXNS = "/payments/txns"
LOGINS = "/payments/logins"


def _payments_path(conf, path):
    """path, checked to be decided by the payments policy."""
    eq(_policy(conf, "POST", path)["name"], _payments(conf)["name"], "policy for %s" % path)
    return path


def _platform_process(store):
    """1 request per site per 5 minutes, x-ratelimit-retry-after headers,
    {"success":false,...} on the denial."""
    conf = load_example()
    path = "/platform/v2/process/site-42"
    name = _policy(conf, "POST", path)["name"]
    with service(conf, store) as svc:
        v = svc.verdict(method="POST", path=path, tenant="acme-corp")
        now = time.time()
        eq((v["allowed"], v["policy"], v["limit"], v["remaining"], v["status"]),
           (True, name, 1, 0, 200), "first request for site-42")
        h = v["_http"]
        eq(h.header("X-RateLimit-Limit"), "1", "X-RateLimit-Limit")
        eq(h.header("X-Ratelimit-Remaining"), "0", "X-Ratelimit-Remaining")
        between(int(h.header("X-Ratelimit-Retry-After")), int(now) - 1, int(now) + 301,
                "X-Ratelimit-Retry-After (unix seconds)")
        v = svc.verdict(method="POST", path=path, tenant="acme-corp")
        now = time.time()
        eq((v["allowed"], v["status"], v.get("body")), (False, 429, PLATFORM_BODY),
           "second request for site-42")
        between(v["retry_after_ms"], 290000, 300000, "retry_after_ms")
        between(v["reset_after_ms"], 290000, 300000, "reset_after_ms")
        eq(v["blocked"], False, "blocked")
        eq(sorted(v["headers"]), ["Retry-After", "X-RateLimit-Limit", "X-Ratelimit-Remaining",
                                  "X-Ratelimit-Retry-After"], "header names in the JSON")
        h = v["_http"]
        for k, val in v["headers"].items():
            eq(h.header(k), val, "HTTP header %s" % k)
        eq(h.header("Retry-After"), str(math.ceil(v["retry_after_ms"] / 1000)), "Retry-After")
        between(int(h.header("Retry-After")), 290, 300, "Retry-After")
        between(int(h.header("X-Ratelimit-Retry-After")), int(now) + 289, int(now) + 301,
                "X-Ratelimit-Retry-After on the denial")
        v = svc.verdict(method="POST", path="/platform/v2/process/site-43", tenant="acme-corp")
        eq(v["allowed"], True, "site-43 is counted on its own")


def _product_read(store):
    """60 per minute on the product data read endpoint."""
    conf = load_example()
    path = "/product/v2/site/site-42/stage/build/7"
    p = _policy(conf, "GET", path)
    lim = p["limits"][0]
    with service(conf, store) as svc:
        if lim.get("algorithm", "gcra") != "gcra":
            wait_window_start(svc, 60, 8)
        t0 = time.monotonic()
        for i in range(60):
            v = svc.verdict(method="GET", path=path, tenant="acme-corp")
            eq((v["allowed"], v["policy"], v["limit"]), (True, p["name"], 60),
               "request %d" % (i + 1))
        admitted = 60
        for _ in range(10):
            v = svc.verdict(method="GET", path=path, tenant="acme-corp")
            if not v["allowed"]:
                break
            admitted += 1
        elapsed = time.monotonic() - t0
        eq((v["allowed"], v["status"], v.get("body")), (False, 429, PLATFORM_BODY), "a denial")
        between(admitted, 60, gcra_upper(60, 60, 60, elapsed), "admitted")
        eq(v["_http"].header("X-RateLimit-Limit"), "60", "X-RateLimit-Limit")


def _catch_all(store):
    """5 per second on every other platform endpoint, each on its own."""
    conf = load_example()
    with service(conf, store) as svc:
        for first, other in (("/platform/v2/sites/s1", "/platform/v2/accounts"),
                             ("/product/v2/catalog", "/product/v2/site/s1")):
            p = _policy(conf, "GET", first)
            check(p["match"]["path"].endswith("*"), "%s is not under a catch-all" % first)
            eq(_policy(conf, "GET", other)["name"], p["name"], "same catch-all for %s" % other)
            t0 = time.monotonic()
            admitted = 0
            for _ in range(12):
                v = svc.verdict(method="GET", path=first, tenant="acme-corp")
                eq((v["policy"], v["limit"]), (p["name"], 5), "policy/limit for %s" % first)
                if not v["allowed"]:
                    break
                admitted += 1
            elapsed = time.monotonic() - t0
            eq((v["allowed"], v["status"], v.get("body")), (False, 429, PLATFORM_BODY),
               "a denial on %s" % first)
            between(admitted, 5, gcra_upper(5, 1, 5, elapsed), "admitted on %s" % first)
            v = svc.verdict(method="GET", path=other, tenant="acme-corp")
            eq(v["allowed"], True, "%s is counted on its own" % other)


def _build_uploads(store):
    """1 request per 2 minutes per user on upload-file and distribute-file."""
    conf = load_example()
    with service(conf, store) as svc:
        for path in ("/projects/upload-file", "/projects/distribute-file"):
            name = _policy(conf, "POST", path)["name"]
            v = svc.verdict(method="POST", path=path, user="user_789", tenant="acme-corp")
            eq((v["allowed"], v["policy"]), (True, name), "first %s" % path)
            v = svc.verdict(method="POST", path=path, user="user_789", tenant="acme-corp")
            eq((v["allowed"], v["status"], v.get("body")), (False, 429, UPLOAD_BODY),
               "second %s" % path)
            between(int(v["_http"].header("Retry-After")), 119, 120, "Retry-After")
            v = svc.verdict(method="POST", path=path, user="user_790", tenant="acme-corp")
            eq(v["allowed"], True, "another user on %s" % path)
            r = svc.decide(method="POST", path=path, tenant="acme-corp")
            eq((r.status, r.json.get("code")), (422, "VAL_001"), "%s without a user" % path)
            check("user" in r.json.get("error", ""), "error %r names user" % r.json)


def _payments_test_header(store):
    """rate-limit-test: match counts against the small test limits and
    answers the payments 429 body; other requests are unaffected."""
    conf = load_example()
    p = _payments(conf)
    eq(p["test"]["header"].lower(), "rate-limit-test", "test header name")
    eq(p["test"]["value"], "match", "test header value")
    n = min(lim["requests"] for lim in p["test"]["limits"])
    check(n <= 20, "the test limit is small (%d)" % n)
    path = _payments_path(conf, TXNS)
    with service(conf, store) as svc:
        if any(lim.get("algorithm", "gcra") != "gcra" for lim in p["test"]["limits"]):
            wait_window_start(svc, 10, 2)
        for i in range(n):
            v = svc.verdict(method="POST", path=path, tenant="acme-corp",
                            headers={"Rate-Limit-Test": "match"})
            eq(v["allowed"], True, "test request %d of %d" % (i + 1, n))
        v = svc.verdict(method="POST", path=path, tenant="acme-corp",
                        headers={"rate-limit-test": "match"})
        eq((v["allowed"], v["status"], v.get("body")), (False, 429, PAYMENTS_BODY),
           "test request %d" % (n + 1))
        eq(p["deny"]["body"], PAYMENTS_BODY, "deny body in the file")
        v = svc.verdict(method="POST", path=path, tenant="acme-corp")
        eq(v["allowed"], True, "the same endpoint without the test header")
        v = svc.verdict(method="POST", path=path, tenant="acme-corp",
                        headers={"rate-limit-test": "nomatch"})
        eq(v["allowed"], True, "another header value")


def _payments_per_resource(store):
    """An endpoint is a resource with its records: requests spread over
    /payments/txns/<id1>, <id2>, ... share the /payments/txns counter, so
    with the test header the one past the test limit is denied and blocks
    /payments/txns itself, while /payments/logins and another tenant keep
    counters of their own (one store key per tenant and resource)."""
    conf = load_example()
    p = _payments(conf)
    n = min(lim["requests"] for lim in p["test"]["limits"])
    test = {"rate-limit-test": "match"}
    ids = [_payments_path(conf, "%s/t1_txn_%d" % (TXNS, i + 1)) for i in range(n + 1)]
    with service(conf, store) as svc:
        if any(lim.get("algorithm", "gcra") != "gcra" for lim in p["test"]["limits"]):
            wait_window_start(svc, 10, 3)
        for i, path in enumerate(ids[:n]):
            v = svc.verdict(method="GET", path=path, tenant="acme-corp", headers=test)
            eq((v["allowed"], v["policy"], v["remaining"]), (True, p["name"], n - 1 - i),
               "%s: test request %d of %d on the resource" % (path, i + 1, n))
        v = svc.verdict(method="GET", path=ids[n], tenant="acme-corp", headers=test)
        eq((v["allowed"], v["status"], v["blocked"], v.get("body")),
           (False, 429, True, PAYMENTS_BODY), "%s: request %d on the resource" % (ids[n], n + 1))
        v = svc.verdict(method="POST", path=TXNS, tenant="acme-corp", headers=test)
        eq((v["allowed"], v["blocked"]), (False, True), "%s is blocked too" % TXNS)
        v = svc.verdict(method="GET", path=ids[0], tenant="other-corp", headers=test)
        eq(v["allowed"], True, "another tenant on %s" % ids[0])
        for path in (LOGINS, LOGINS + "/l1"):
            v = svc.verdict(method="GET", path=_payments_path(conf, path), tenant="acme-corp",
                            headers=test)
            eq(v["allowed"], True, "%s is another endpoint" % path)
        v = svc.verdict(method="GET", path=ids[0], tenant="acme-corp")
        eq(v["allowed"], True, "%s without the test header" % ids[0])
        if svc.redis is not None:
            eq(sorted(svc.redis.call("KEYS", "rl:{payments-endpoint|*")),
               sorted(["rl:{payments-endpoint|acme-corp|txns}:ltf10s",
                       "rl:{payments-endpoint|acme-corp|txns}:lf10s",
                       "rl:{payments-endpoint|acme-corp|logins}:ltf10s",
                       "rl:{payments-endpoint|other-corp|txns}:ltf10s"]),
               "one key per tenant and resource")


def _payments_limit_and_block(store):
    """1000 requests in 10 s per endpoint (cost 250 stands in for 250
    requests), then a 10 s block."""
    conf = load_example()
    p = _payments(conf)
    path = _payments_path(conf, TXNS)
    other = _payments_path(conf, LOGINS)
    with service(conf, store) as svc:
        if any(lim.get("algorithm", "gcra") != "gcra" for lim in p["limits"]):
            wait_window_start(svc, 10, 3)
        for i in range(4):
            v = svc.verdict(method="POST", path=path, tenant="acme-corp", cost=250)
            eq((v["allowed"], v["limit"]), (True, 1000), "cost 250 #%d" % (i + 1))
        between(v["remaining"], 0, 20, "remaining after 1000 (plus what refilled meanwhile)")
        v = svc.verdict(method="POST", path=path, tenant="acme-corp", cost=250)
        eq((v["allowed"], v["status"], v.get("body")), (False, 429, PAYMENTS_BODY), "past 1000")
        v = svc.verdict(method="POST", path=path, tenant="acme-corp", cost=1)
        eq((v["allowed"], v["blocked"]), (False, True), "cost 1 during the block")
        between(v["retry_after_ms"], 8000, 10000, "retry_after_ms of the 10 s block")
        v = svc.verdict(method="POST", path=other, tenant="acme-corp")
        eq(v["allowed"], True, "another endpoint is not blocked")


def _payments_block_short(store):
    """The block in a copy with short durations: denied after the window
    resets, admitted once the block ends."""
    conf = load_example()
    p = _payments(conf)
    algo = p["limits"][0].get("algorithm", "gcra")
    p["limits"] = [{"requests": 3, "per": "1s", "algorithm": algo, "block": "3s"}]
    path = _payments_path(conf, TXNS)
    with service(conf, store) as svc:
        wait_window_start(svc, 1, 0.6)
        for i in range(3):
            eq(svc.verdict(method="POST", path=path, tenant="t")["allowed"], True,
               "request %d" % (i + 1))
        v = svc.verdict(method="POST", path=path, tenant="t")
        t_deny = time.monotonic()
        eq((v["allowed"], v.get("body")), (False, PAYMENTS_BODY), "4th request")
        time.sleep(1.3)
        v = svc.verdict(method="POST", path=path, tenant="t")
        eq((v["allowed"], v["blocked"], v.get("body")), (False, True, PAYMENTS_BODY),
           "after the window reset, within the block")
        time.sleep(max(0.0, t_deny + 3.3 - time.monotonic()))
        eq(svc.verdict(method="POST", path=path, tenant="t")["allowed"], True,
           "after the block")


def _events_as_shipped(store):
    """Per tenant 1000/s + 10000/min + 100000/h + 1000000/day with
    X-RateLimit-* headers: the tightest limit is reported."""
    conf = load_example()
    p = _policy(conf, "POST", "/v1/events")
    eq(sorted(lim["requests"] for lim in p["limits"]), [1000, 10000, 100000, 1000000],
       "the four limits")
    with service(conf, store) as svc:
        if any(lim.get("algorithm", "gcra") != "gcra" for lim in p["limits"]):
            wait_window_start(svc, 1, 0.5)
        v = svc.verdict(method="POST", path="/v1/events", tenant="acme-corp")
        now = time.time()
        eq((v["allowed"], v["policy"], v["limit"], v["remaining"]), (True, p["name"], 1000, 999),
           "first event")
        h = v["_http"]
        eq((h.header("X-RateLimit-Limit"), h.header("X-RateLimit-Remaining")), ("1000", "999"),
           "X-RateLimit-Limit/Remaining")
        between(int(h.header("X-RateLimit-Reset")), int(now) - 1, int(now) + 2,
                "X-RateLimit-Reset (unix seconds)")
        v = svc.verdict(method="POST", path="/v1/events", tenant="acme-corp", cost=999)
        eq((v["allowed"], v["limit"]), (True, 1000), "cost 999")
        between(v["remaining"], 0, 50, "remaining after 1000 (plus what refilled meanwhile)")
        v = svc.verdict(method="POST", path="/v1/events", tenant="acme-corp", cost=500)
        eq((v["allowed"], v["status"], v.get("body")), (False, 429, EVENTS_BODY), "past 1000/s")
        check(int(v["_http"].header("Retry-After")) >= 1, "Retry-After")
        v = svc.verdict(method="POST", path="/v1/events", tenant="other-corp")
        eq(v["allowed"], True, "another tenant")
        r = svc.decide(method="POST", path="/v1/events")
        eq((r.status, r.json.get("code")), (422, "VAL_001"), "no tenant")


def _events_scaled(store):
    """The events policy with its four limits scaled down (3/3s, 5/1m, 7/1h,
    9/1d, gcra): denials by the short limit consume nothing from the
    others, and the reported limit follows the tightest one."""
    conf = copy.deepcopy(load_example())
    p = _policy(conf, "POST", "/v1/events")
    p["limits"] = [{"requests": 3, "per": "3s", "algorithm": "gcra"},
                   {"requests": 5, "per": "1m", "algorithm": "gcra"},
                   {"requests": 7, "per": "1h", "algorithm": "gcra"},
                   {"requests": 9, "per": "1d", "algorithm": "gcra"}]
    with service(conf, store) as svc:
        def ev():
            return svc.verdict(method="POST", path="/v1/events", tenant="t")
        for i in range(3):
            v = ev()
            eq((v["allowed"], v["limit"], v["remaining"]), (True, 3, 2 - i), "event %d" % (i + 1))
            eq(v["_http"].header("X-RateLimit-Limit"), "3", "X-RateLimit-Limit")
        for i in range(4):
            v = ev()
            eq((v["allowed"], v["status"], v.get("body")), (False, 429, EVENTS_BODY),
               "denied event %d" % (i + 1))
        time.sleep(3.1)
        v = ev()
        eq((v["allowed"], v["limit"], v["remaining"]), (True, 5, 1),
           "after 3 s: the minute limit is the tightest (denials consumed nothing)")
        v = ev()
        eq((v["allowed"], v["limit"], v["remaining"]), (True, 5, 0), "the 5th event this minute")
        eq(v["_http"].header("X-RateLimit-Remaining"), "0", "X-RateLimit-Remaining")
        v = ev()
        eq((v["allowed"], v["limit"], v.get("body")), (False, 5, EVENTS_BODY), "the 6th this minute")


def _payments_thousand(store):
    """1000 in 10 s by real requests (16 clients): between 1000 and what
    refills while sending are admitted."""
    conf = load_example()
    p = _payments(conf)
    lim = p["limits"][0]
    path = _payments_path(conf, TXNS)
    with service(conf, store) as svc:
        if lim.get("algorithm", "gcra") != "gcra":
            wait_window_start(svc, 10, 6)
        results, elapsed = hammer([svc.port], 1300, 16,
                                  lambda i: {"method": "POST", "path": path, "tenant": "h"})
        for r in results:
            eq(r.status, 200, "HTTP status")
        admitted = sum(1 for r in results if r.json["allowed"])
        if lim.get("algorithm", "gcra") == "gcra":
            between(admitted, 1000, gcra_upper(1000, 10, 1000, elapsed), "admitted of 1300")
        else:
            eq(admitted, 1000, "admitted of 1300 in one window")


# --------------------------------------------------------------------------
# Layers: the account group, overrides, the penalty, the unavailable reply
# --------------------------------------------------------------------------

def _grouped(conf, group):
    """The example's only policy of group (the account-level limit)."""
    ps = [p for p in conf["policies"] if p.get("group", "default") == group]
    eq(len(ps), 1, "policies of group %r" % group)
    return ps[0]


def _remaining(svc, name, **fields):
    """What policy name has left for fields' key, read with cost 0."""
    v = svc.verdict(policy=name, cost=0, **fields)
    eq((v["policy"], v["policies"]), (name, [name]), "cost-0 read of %s" % name)
    return v["remaining"]


def _account_group(store):
    """The account limit (group "account", per tenant over /platform/*)
    beside the per-endpoint rule: cost 4 on one endpoint after another
    leaves each endpoint room but empties the account, and then the
    account denies a fresh endpoint, spending nothing from it; an
    endpoint's own denial spends nothing from the account."""
    conf = load_example()
    acct = _grouped(conf, "account")
    lim = acct["limits"][0]
    n, per = lim["requests"], duration_s(lim["per"])
    eq(lim.get("algorithm", "gcra"), "gcra", "the account limit's algorithm")
    eq(acct["key"], ["tenant"], "the account is the tenant")
    route = _policy(conf, "GET", "/platform/v2/r0")["name"]
    route_n = policy_named(conf, route)["limits"][0]["requests"]
    eq(route_n, 5, "the per-endpoint limit")
    both = [p["name"] for p in conf["policies"] if p["name"] in (route, acct["name"])]
    with service(conf, store) as svc:
        t0 = time.monotonic()
        spent = 0
        for i in range(n // 4 + 20):
            path = "/platform/v2/r%d" % i
            v = svc.verdict(method="GET", path=path, tenant="acct", cost=4)
            eq(v["policies"], both, "applied policies on %s (file order)" % path)
            if not v["allowed"]:
                break
            spent += 4
            if v["policy"] == route:
                eq((v["limit"], v["remaining"]), (5, 1), "%s: the endpoint has room" % path)
        elapsed = time.monotonic() - t0
        between(spent, n - 3, gcra_upper(n, per, n, elapsed) + 3, "spent from the account")
        eq((v["allowed"], v["policy"], v["status"], v.get("body")),
           (False, acct["name"], 429, PLATFORM_BODY), "%s: denied by the account" % path)
        eq(v["_http"].header("X-RateLimit-Limit"), str(n), "X-RateLimit-Limit of the account")
        eq(_remaining(svc, route, method="GET", path=path, tenant="acct"), route_n,
           "%s: the account's denial spent nothing from the endpoint" % path)
        v = svc.verdict(method="GET", path=path, tenant="other-acct", cost=4)
        eq((v["allowed"], v["policy"]), (True, route), "another account on %s" % path)

        # An endpoint's own denial, with room in the account.
        path = "/platform/v2/hot"
        for i in range(route_n):
            eq(svc.verdict(method="GET", path=path, tenant="acct2")["allowed"], True,
               "%s request %d" % (path, i + 1))
        before = _remaining(svc, acct["name"], method="GET", path=path, tenant="acct2")
        between(before, n - route_n, n - route_n + 1, "the account after %d requests" % route_n)
        v = svc.verdict(method="GET", path=path, tenant="acct2", cost=route_n)
        eq((v["allowed"], v["policy"], v["body"]), (False, route, PLATFORM_BODY),
           "denied by the endpoint")
        after = _remaining(svc, acct["name"], method="GET", path=path, tenant="acct2")
        between(after, before, before + 1, "the account after the endpoint's denial of cost %d"
                % route_n)


def _events_overrides(conf):
    """(the higher-limit override, the deny override) of the events policy."""
    p = _policy(conf, "POST", "/v1/events")
    more = [o for o in p.get("overrides", []) if "limits" in o]
    deny = [o for o in p.get("overrides", []) if "deny" in o]
    eq((len(more), len(deny)), (1, 1), "overrides of %s (limits, deny)" % p["name"])
    return p, more[0], deny[0]


def _events_premium(store):
    """The tenant with a config override gets five times the default
    limits; every other tenant keeps the default."""
    conf = load_example()
    p, more, _ = _events_overrides(conf)
    tenant = more["key"]["tenant"]
    eq(sorted(lim["requests"] for lim in more["limits"]), [5000, 50000, 500000, 5000000],
       "the higher limits")
    with service(conf, store) as svc:
        v = svc.verdict(method="POST", path="/v1/events", tenant=tenant, cost=5000)
        eq((v["allowed"], v["policy"], v["limit"], v.get("override")),
           (True, p["name"], 5000, "config"), "5,000 events at once for %s" % tenant)
        between(v["remaining"], 0, 100, "remaining of the 5,000 per second")
        eq(v["_http"].header("X-RateLimit-Limit"), "5000", "X-RateLimit-Limit")
        v = svc.verdict(method="POST", path="/v1/events", tenant=tenant, cost=1000)
        eq((v["allowed"], v["status"], v.get("body"), v.get("override")),
           (False, 429, EVENTS_BODY, "config"), "%s past its 5,000" % tenant)
        v = svc.verdict(method="POST", path="/v1/events", tenant="acme-corp", cost=1001)
        eq((v["allowed"], v["limit"], v["status"], v.get("body")),
           (False, 1000, 429, EVENTS_BODY), "1,001 at once for a default tenant")
        check("override" not in v, "no override for a default tenant: %r" % v)


def _events_suspended(store):
    """The suspended tenant is answered 403 with the source's error shape
    on /v1/decide and /v1/authorize, and nothing is counted."""
    conf = load_example()
    p, _, deny = _events_overrides(conf)
    tenant = deny["key"]["tenant"]
    eq((deny["deny"]["status"], deny["deny"]["body"]), (403, SUSPENDED_BODY), "the deny override")
    with service(conf, store) as svc:
        for cost in (1, 1000, 0):
            v = svc.verdict(method="POST", path="/v1/events", tenant=tenant, cost=cost)
            eq((v["allowed"], v["policy"], v["status"], v.get("body"), v.get("override")),
               (False, p["name"], 403, SUSPENDED_BODY, "config"), "%s, cost %d" % (tenant, cost))
        r = svc.request("POST", "/v1/authorize",
                        headers={"X-Original-Method": "POST", "X-Original-URI": "/v1/events",
                                 "X-Tenant-Id": tenant})
        eq((r.status, r.json), (403, SUSPENDED_BODY), "/v1/authorize for %s" % tenant)
        if svc.redis is not None:
            eq(svc.redis.call("KEYS", "*%s*" % tenant), [], "keys counted for %s" % tenant)
        v = svc.verdict(method="POST", path="/v1/events", tenant="acme-corp")
        eq((v["allowed"], v["remaining"]), (True, 999), "another tenant")


def test_events_suspended_tenant_no_invented_headers():
    """A deny override never asks the store, so its reply carries no
    rate-limit counts (no X-RateLimit-*, as a degraded verdict), and a
    suspension without a ttl has no retry time: retry_after_ms 0 and no
    Retry-After."""
    conf = load_example()
    _, _, deny = _events_overrides(conf)
    with service(conf, "memory") as svc:
        v = svc.verdict(method="POST", path="/v1/events", tenant=deny["key"]["tenant"])
        eq((v["allowed"], v["status"]), (False, 403), "the suspended tenant")
        invented = sorted(k for k in v["headers"] if k.lower().startswith("x-ratelimit"))
        eq(invented, [], "rate-limit headers of a reply that read no counts")
        eq((v["retry_after_ms"], "Retry-After" in v["headers"]), (0, False),
           "a suspension without a ttl has no retry time")


def _penalty(conf):
    """The penalty the build policies name (the same one for both)."""
    names = {_policy(conf, "POST", path).get("penalty")
             for path in ("/projects/upload-file", "/projects/distribute-file")}
    eq(len(names), 1, "one penalty on upload and distribute: %r" % names)
    name = names.pop()
    check(name is not None, "the build policies name a penalty")
    pens = [pen for pen in conf.get("penalties", []) if pen["name"] == name]
    eq(len(pens), 1, "penalty %r in the file" % name)
    eq(pens[0]["key"], ["user"], "the penalty blocks the user")
    return pens[0]


def _hammer_upload(svc, pen, user):
    """One admitted upload, then denials until the penalty blocks; returns
    the blocking verdict."""
    eq(svc.verdict(method="POST", path="/projects/upload-file", user=user)["allowed"], True,
       "first upload of %s" % user)
    for i in range(pen["denials"] - 1):
        v = svc.verdict(method="POST", path="/projects/upload-file", user=user)
        eq((v["allowed"], v["blocked"], v.get("penalty"), v.get("body")),
           (False, False, None, UPLOAD_BODY), "denial %d before the block" % (i + 1))
    return svc.verdict(method="POST", path="/projects/upload-file", user=user)


def _build_penalty(store):
    """Hammering the upload endpoint past its limit blocks the user for
    10 minutes on upload and distribute, with the penalty's message;
    other users are unaffected."""
    conf = load_example()
    pen = _penalty(conf)
    eq((pen["denials"], pen["within"], pen["block"]), (5, "2m", "10m"), "the penalty")
    blocked = {"message": "Account temporarily blocked for repeated requests over the rate "
                          "limit. Try again in 10 minutes."}
    with service(conf, store) as svc:
        v = _hammer_upload(svc, pen, "u-hammer")
        eq((v["allowed"], v["blocked"], v.get("penalty"), v["status"], v.get("body")),
           (False, True, pen["name"], 429, blocked), "the 5th denial blocks")
        between(v["retry_after_ms"], 590000, 600000, "retry_after_ms of the block")
        between(int(v["_http"].header("Retry-After")), 590, 600, "Retry-After")
        v = svc.verdict(method="POST", path="/projects/distribute-file", user="u-hammer")
        eq((v["allowed"], v["blocked"], v.get("penalty"), v["status"], v.get("body")),
           (False, True, pen["name"], 429, blocked), "distribute is blocked too")
        eq(svc.verdict(method="POST", path="/projects/distribute-file",
                       user="u-other")["allowed"], True, "another user on distribute")
        eq(svc.verdict(method="POST", path="/v1/events", tenant="u-hammer")["allowed"], True,
           "a policy without the penalty")


def _build_penalty_whole_api(store):
    """The block covers the user's whole build API, as the source's "the
    entire user account" says: during it GET /projects, a read below it
    and another write are denied with the penalty's body and Retry-After
    600, on /v1/decide and /v1/authorize; another user is allowed. Before
    the block those requests are allowed, under a policy that needs the
    user."""
    conf = load_example()
    pen = _penalty(conf)
    blocked = {"message": "Account temporarily blocked for repeated requests over the rate "
                          "limit. Try again in 10 minutes."}
    other = [("GET", "/projects"), ("GET", "/projects/p1/builds"),
             ("POST", "/projects/other-write")]
    with service(conf, store) as svc:
        for method, path in other:
            v = svc.verdict(method=method, path=path, user="u-hammer")
            eq(v["allowed"], True, "%s %s before the block" % (method, path))
        v = _hammer_upload(svc, pen, "u-hammer")
        eq((v["blocked"], v.get("penalty")), (True, pen["name"]), "the 5th denial blocks")
        for method, path in other:
            v = svc.verdict(method=method, path=path, user="u-hammer")
            eq((v["allowed"], v["blocked"], v.get("penalty"), v["status"], v.get("body")),
               (False, True, pen["name"], 429, blocked), "%s %s during the block" % (method, path))
            between(int(v["_http"].header("Retry-After")), 590, 600, "Retry-After")
            v = svc.verdict(method=method, path=path, user="u-other")
            eq(v["allowed"], True, "another user: %s %s" % (method, path))
        r = svc.request("GET", "/v1/authorize",
                        headers={"X-Original-Method": "GET", "X-Original-URI": "/projects",
                                 "X-User-Id": "u-hammer"})
        eq((r.status, r.json), (429, blocked), "/v1/authorize GET /projects during the block")
        between(int(r.header("Retry-After")), 590, 600, "Retry-After from /v1/authorize")
        r = svc.request("GET", "/v1/authorize",
                        headers={"X-Original-Method": "GET", "X-Original-URI": "/projects",
                                 "X-User-Id": "u-other"})
        eq(r.status, 200, "/v1/authorize GET /projects for another user")
        for method, path in other:
            p = _policy(conf, method, path)
            eq((p.get("penalty"), p["key"]), (pen["name"], ["user"]),
               "the policy of %s %s (%s): penalty and key" % (method, path, p["name"]))
        r = svc.decide(method="GET", path="/projects")
        eq((r.status, r.json.get("code")), (422, "VAL_001"), "GET /projects without a user")
        check("user" in r.json.get("error", ""), "error %r names user" % r.json)


def _build_penalty_ends(store):
    """A copy with a 500 ms block: once it ends the user may distribute again
    (nothing was counted while blocked), and upload answers its own limit."""
    conf = load_example()
    pen = _penalty(conf)
    pen["block"] = "500ms"
    with service(conf, store) as svc:
        v = _hammer_upload(svc, pen, "u-hammer")
        t_block = time.monotonic()
        eq((v["allowed"], v["blocked"], v.get("penalty")), (False, True, pen["name"]),
           "the 5th denial blocks")
        for _ in range(3):
            v = svc.verdict(method="POST", path="/projects/distribute-file", user="u-hammer")
            eq((v["allowed"], v["blocked"]), (False, True), "distribute while blocked")
        time.sleep(max(0.0, t_block + 0.7 - time.monotonic()))
        v = svc.verdict(method="POST", path="/projects/distribute-file", user="u-hammer")
        eq((v["allowed"], v["blocked"]), (True, False), "distribute after the block")
        v = svc.verdict(method="POST", path="/projects/upload-file", user="u-hammer")
        eq((v["allowed"], v["blocked"], v.get("penalty"), v.get("body")),
           (False, False, None, UPLOAD_BODY), "upload: its own limit, no longer blocked")


def test_ingest_unavailable_body():
    """The fail-closed ingest policy answers the source's 503 body with the
    request id as trace_id once Redis is stopped, on /v1/decide, a batch
    item and /v1/authorize; a fail-open policy stays allowed, degraded."""
    conf = load_example()
    p = _policy(conf, "POST", "/ingest/events")
    eq((p["failure_mode"], p["unavailable"]), ("closed", {"status": 503, "body": UNAVAILABLE_BODY}),
       "the ingest policy")
    key = p["key"][0]
    eq(key, "header.x-customer-id", "the ingest key")
    req = {"method": "POST", "path": "/ingest/events", "headers": {"x-customer-id": "cust_abc123"}}
    with service(conf, "redis") as svc:
        v = svc.verdict(**req)
        eq((v["allowed"], v["policy"], v["policies"]), (True, p["name"], [p["name"]]),
           "Redis up: allowed")
        r = svc.decide(method="POST", path="/ingest/events")
        eq((r.status, r.json.get("code")), (422, "VAL_001"), "without x-customer-id")
        check(key in r.json.get("error", ""), "error %r names %s" % (r.json, key))
        svc.redis.stop()
        wait_until(lambda: svc.d.request("GET", "/ready", timeout=2.0).status == 503,
                   5.0 * SLOW, what="/ready 503 once Redis is down")
        r = svc.decide(http_headers={"X-Request-Id": "gw-7f3a.42"}, **req)
        eq((r.status, r.json), (503, {"error": "service temporarily unavailable",
                                      "trace_id": "gw-7f3a.42"}), "decide: the 503 body")
        r = svc.decide(**req)
        rid = r.header("X-Request-Id")
        eq((r.status, r.json), (503, {"error": "service temporarily unavailable",
                                      "trace_id": rid}), "decide: a generated request id")
        r = svc.request("POST", "/v1/decide/batch", json_body={"requests": [req]},
                        headers={"X-Request-Id": "batch-1"})
        eq(r.status, 200, "batch status")
        item = r.json["results"][0]
        eq((item["allowed"], item["status"], item["body"]),
           (False, 503, {"error": "service temporarily unavailable", "trace_id": "batch-1"}),
           "batch item")
        r = svc.request("POST", "/v1/authorize",
                        headers={"X-Original-Method": "POST", "X-Original-URI": "/ingest/events",
                                 "x-customer-id": "cust_abc123", "X-Request-Id": "fa-1"})
        eq((r.status, r.json), (503, {"error": "service temporarily unavailable",
                                      "trace_id": "fa-1"}), "/v1/authorize")
        v = svc.verdict(_degraded_ok=True, method="POST", path="/v1/events", tenant="acme-corp")
        eq((v["allowed"], v["degraded"]), (True, True), "the fail-open events policy")


for _name, _fn in (("test_platform_process", _platform_process),
                   ("test_product_read_60_per_minute", _product_read),
                   ("test_platform_catch_all_per_endpoint", _catch_all),
                   ("test_build_upload_distribute", _build_uploads),
                   ("test_payments_test_header", _payments_test_header),
                   ("test_payments_per_resource", _payments_per_resource),
                   ("test_payments_limit_and_block", _payments_limit_and_block),
                   ("test_payments_block_short", _payments_block_short),
                   ("test_payments_1000_requests", _payments_thousand),
                   ("test_events_as_shipped", _events_as_shipped),
                   ("test_events_scaled", _events_scaled),
                   ("test_platform_account_group", _account_group),
                   ("test_events_premium_tenant", _events_premium),
                   ("test_events_suspended_tenant", _events_suspended),
                   ("test_build_penalty_blocks_user", _build_penalty),
                   ("test_build_penalty_whole_api", _build_penalty_whole_api),
                   ("test_build_penalty_ends", _build_penalty_ends)):
    parametrize(globals(), _name, _fn, STORES)
