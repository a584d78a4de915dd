"""Every rule of deploy/examples/ratelimitd.json, driven over HTTP on both
stores. The file is used as shipped (only the store address changes);
where a rule would make the test wait minutes, a copy with the same
policy but shorter limits is used, or cost stands in for many requests."""

import copy
import math
import time

from harness import (STORES, between, check, eq, find_policy, gcra_upper, hammer,
                     load_example, parametrize, service, wait_window_start)

PLATFORM_BODY = {"success": False, "message": "Too many attempts."}
UPLOAD_BODY = {"message": "Rate limit exceeded. Try again in 2 minutes."}
EVENTS_BODY = {"error": "Rate limit exceeded", "code": "RATE_001"}
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


def _concrete(pattern, tail="txns"):
    """A concrete path that fits pattern."""
    segs = []
    for s in pattern.split("/")[1:]:
        if s == "*":
            segs.append(tail)
        elif s.startswith("{"):
            segs.append("v1")
        else:
            segs.append(s)
    return "/" + "/".join(segs)


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
    path = _concrete(p["match"]["path"])
    eq(_policy(conf, "POST", path)["name"], p["name"], "policy for %s" % path)
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


def _payments_limit_and_block(store):
    """1000 requests in 10 s per endpoint (cost 250 stands in for 250
    requests), then a 10 s block."""
    conf = load_example()
    p = _payments(conf)
    path = _concrete(p["match"]["path"], "txns")
    other = _concrete(p["match"]["path"], "logins")
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
    path = _concrete(p["match"]["path"])
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
    path = _concrete(p["match"]["path"])
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


for _name, _fn in (("test_platform_process", _platform_process),
                   ("test_product_read_60_per_minute", _product_read),
                   ("test_platform_catch_all_per_endpoint", _catch_all),
                   ("test_build_upload_distribute", _build_uploads),
                   ("test_payments_test_header", _payments_test_header),
                   ("test_payments_limit_and_block", _payments_limit_and_block),
                   ("test_payments_block_short", _payments_block_short),
                   ("test_payments_1000_requests", _payments_thousand),
                   ("test_events_as_shipped", _events_as_shipped),
                   ("test_events_scaled", _events_scaled)):
    parametrize(globals(), _name, _fn, STORES)
