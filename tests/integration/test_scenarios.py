"""Decision scenarios, each run against the redis store and the memory
store (and, where the algorithm matters, against each algorithm)."""

import math
import time

from harness import (SLOW, STORES, between, check, config, eq, limit, parametrize,
                     policy, service, wait_window_start)

ALGOS = ("gcra", "fixed_window", "sliding_window")
STORE_ALGOS = ["%s_%s" % (s, a) for s in STORES for a in ALGOS]
DEFAULT_DENY = {"error": "rate limit exceeded", "code": "RATE_001"}
RL_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
              "X-Ratelimit-Retry-After", "RateLimit-Policy", "RateLimit", "Retry-After")


def _split(value):
    store, algo = value.split("_", 1)
    return store, algo


def _counts(value):
    """5 per minute: five admitted with remaining 4..0, the sixth denied with
    the default body and Retry-After; another key is counted on its own."""
    store, algo = _split(value)
    cfg = config(policy("p", "/api/*", [limit(5, "1m", algo)], key=["tenant"],
                        headers="x-ratelimit"))
    horizon_ms = 120000 if algo == "sliding_window" else 60000
    with service(cfg, store) as svc:
        if algo != "gcra":
            wait_window_start(svc, 60, 5)
        for i in range(5):
            v = svc.verdict(method="GET", path="/api/x", tenant="t1")
            what = "request %d" % (i + 1)
            eq(v["allowed"], True, what + " allowed")
            eq(v["policy"], "p", what + " policy")
            eq(v["limit"], 5, what + " limit")
            eq(v["remaining"], 4 - i, what + " remaining")
            eq(v["status"], 200, what + " status")
            eq(v["degraded"], False, what + " degraded")
            eq(v["blocked"], False, what + " blocked")
            eq(v["retry_after_ms"], 0, what + " retry_after_ms")
            # a sliding window is whole again one period after the current one
            between(v["reset_after_ms"], 1, horizon_ms, what + " reset_after_ms")
            h = v["_http"]
            eq(h.header("X-RateLimit-Limit"), "5", what + " X-RateLimit-Limit")
            eq(h.header("X-RateLimit-Remaining"), str(4 - i), what + " X-RateLimit-Remaining")
            now = time.time()
            between(int(h.header("X-RateLimit-Reset")), int(now) - 1,
                    int(now) + horizon_ms // 1000 + 1, what + " X-RateLimit-Reset")
            eq(h.header("Retry-After"), None, what + " Retry-After on an admitted request")
            eq(v["headers"].get("X-RateLimit-Limit"), "5", what + " headers in the JSON")
        v = svc.verdict(method="GET", path="/api/other", tenant="t1")
        eq(v["allowed"], False, "6th request (same tenant, other path) allowed")
        eq(v["status"], 429, "6th request status")
        eq(v["remaining"], 0, "6th request remaining")
        eq(v.get("body"), DEFAULT_DENY, "default deny body")
        between(v["retry_after_ms"], 1, horizon_ms, "retry_after_ms")
        h = v["_http"]
        eq(h.header("Retry-After"), str(math.ceil(v["retry_after_ms"] / 1000)),
           "Retry-After = retry_after_ms in seconds, rounded up")
        eq(v["headers"].get("Retry-After"), h.header("Retry-After"), "Retry-After in the JSON")
        eq(h.header("X-RateLimit-Remaining"), "0", "X-RateLimit-Remaining on the denial")
        v = svc.verdict(method="GET", path="/api/x", tenant="t2")
        eq((v["allowed"], v["remaining"]), (True, 4), "another tenant has its own count")


def _retry_after_is_true(value):
    """2 per second: after a denial, waiting retry_after_ms is enough."""
    store, algo = _split(value)
    cfg = config(policy("p", "/*", [limit(2, "1s", algo)], key=["user"]))
    with service(cfg, store) as svc:
        wait_window_start(svc, 1, 0.6)
        for _ in range(2):
            eq(svc.verdict(path="/x", user="u")["allowed"], True, "first two admitted")
        v = svc.verdict(path="/x", user="u")
        eq(v["allowed"], False, "third admitted")
        between(v["retry_after_ms"], 1, 2000, "retry_after_ms")
        time.sleep(v["retry_after_ms"] / 1000 + 0.05)
        v2 = svc.verdict(path="/x", user="u")
        eq(v2["allowed"], True, "admitted after waiting retry_after_ms=%d" % v["retry_after_ms"])


def _multi_limit(value):
    """All limits are decided together: a request one limit denies consumes
    nothing from the others; limit/remaining report the tightest limit."""
    store, algo = _split(value)
    cfg = config(policy("multi", "/*", [limit(5, "1h", algo), limit(3, "1d", algo)],
                        key=["tenant"]))
    with service(cfg, store) as svc:
        if algo != "gcra":
            wait_window_start(svc, 3600, 10)
        v = svc.verdict(path="/m", tenant="a", cost=4)
        eq(v["allowed"], False, "cost 4 against 5/h + 3/d")
        eq(v["status"], 429, "status of the denial")
        v = svc.verdict(path="/m", tenant="a", cost=3)
        eq(v["allowed"], True,
           "cost 3 after a denied cost 4 (the denial must not have consumed the 5/h limit)")
        eq((v["limit"], v["remaining"]), (3, 0), "limit/remaining of the tightest limit")
        v = svc.verdict(path="/m", tenant="a", cost=1)
        eq(v["allowed"], False, "cost 1 once 3/d is used up")
        eq(v["limit"], 3, "limit of the denying limit")
        v = svc.verdict(path="/m", tenant="b", cost=1)
        eq((v["allowed"], v["limit"], v["remaining"]), (True, 3, 2),
           "fresh key: allowed, tightest = 3/d with 2 left")


def _peek(value):
    """cost 0 reports without consuming."""
    store, algo = _split(value)
    cfg = config(policy("peek", "/*", [limit(3, "1h", algo)], key=["ip"]))
    with service(cfg, store) as svc:
        if algo != "gcra":
            wait_window_start(svc, 3600, 10)
        for i in range(5):
            v = svc.verdict(path="/p", ip="10.0.0.1", cost=0)
            eq((v["allowed"], v["remaining"]), (True, 3), "peek %d on a fresh key" % (i + 1))
        for i in range(3):
            v = svc.verdict(path="/p", ip="10.0.0.1")
            eq((v["allowed"], v["remaining"]), (True, 2 - i), "request %d after peeks" % (i + 1))
        v = svc.verdict(path="/p", ip="10.0.0.1", cost=0)
        eq(v["remaining"], 0, "peek on a used-up key: remaining")
        eq(svc.verdict(path="/p", ip="10.0.0.1")["allowed"], False, "4th request")


def _cost(value):
    """cost > 1 weighs a request; a denied cost consumes nothing."""
    store, algo = _split(value)
    cfg = config(policy("cost", "/*", [limit(10, "1h", algo)], key=["tenant"]))
    with service(cfg, store) as svc:
        if algo != "gcra":
            wait_window_start(svc, 3600, 10)
        v = svc.verdict(path="/c", tenant="t", cost=11)
        eq(v["allowed"], False, "cost 11 against 10/h")
        v = svc.verdict(path="/c", tenant="t", cost=4)
        eq((v["allowed"], v["remaining"]), (True, 6), "cost 4 (after a denied cost 11)")
        v = svc.verdict(path="/c", tenant="t", cost=4)
        eq((v["allowed"], v["remaining"]), (True, 2), "second cost 4")
        v = svc.verdict(path="/c", tenant="t", cost=4)
        eq((v["allowed"], v["remaining"]), (False, 2), "third cost 4 (2 left)")
        v = svc.verdict(path="/c", tenant="t", cost=2)
        eq((v["allowed"], v["remaining"]), (True, 0), "cost 2 with 2 left")
        eq(svc.verdict(path="/c", tenant="t")["allowed"], False, "cost 1 with 0 left")


def _block(value):
    """block: once denied, denied for the block duration even after the window
    has reset (blocked: true), admitted after the block."""
    store, algo = _split(value)
    cfg = config(policy("blk", "/*", [limit(2, "1s", algo, block="2s")], key=["tenant"]))
    with service(cfg, store) as svc:
        wait_window_start(svc, 1, 0.6)
        for _ in range(2):
            eq(svc.verdict(path="/b", tenant="t")["allowed"], True, "first two admitted")
        v = svc.verdict(path="/b", tenant="t")
        t_deny = time.monotonic()
        eq(v["allowed"], False, "third request")
        time.sleep(1.25)
        v = svc.verdict(path="/b", tenant="t")
        eq(v["allowed"], False, "1.25s later, the window has reset but the block holds")
        eq(v["blocked"], True, "blocked flag during the block")
        eq(v["status"], 429, "status during the block")
        between(v["retry_after_ms"], 300, 2000, "retry_after_ms during the block (until its end)")
        eq(svc.verdict(path="/b", tenant="other")["allowed"], True, "another key is not blocked")
        time.sleep(max(0.0, t_deny + 2.0 + 0.25 * SLOW - time.monotonic()))
        v = svc.verdict(path="/b", tenant="t")
        eq((v["allowed"], v["blocked"]), (True, False), "after the block ends")


def _test_header(store):
    """Requests carrying the test header count against the test limits."""
    cfg = config(policy("th", "/*", [limit(100, "1m")], key=["tenant"],
                        test={"header": "X-RL-Test", "value": "go", "limits": [limit(2, "1m")]}))
    with service(cfg, store) as svc:
        for i in range(2):
            v = svc.verdict(path="/t", tenant="t", headers={"x-rl-test": "go"})
            eq((v["allowed"], v["limit"], v.get("test")), (True, 2, True),
               "test request %d" % (i + 1))
        v = svc.verdict(path="/t", tenant="t", headers={"X-Rl-Test": "go"})
        eq((v["allowed"], v["limit"], v["status"]), (False, 2, 429),
           "third test request (header name in another case)")
        v = svc.verdict(path="/t", tenant="t")
        eq((v["allowed"], v["limit"], v.get("test", False)), (True, 100, False),
           "same key without the header")
        v = svc.verdict(path="/t", tenant="t", headers={"x-rl-test": "no"})
        eq((v["allowed"], v["limit"]), (True, 100), "header with another value")


def _key_isolation(store):
    """Identifiers with separators never collide, and a missing or empty key
    field is a 422 VAL_001 naming it."""
    cfg = config(policy("k", "/*", [limit(1, "1h")], key=["tenant", "user"]))
    with service(cfg, store) as svc:
        pairs = [("a|b", "c"), ("a", "b|c"), ("a}b", "{x}"), ("a:b", "c d"),
                 ("a", "b:c d"), ("x" * 5000, "u"), ("x" * 5000 + "y", "u")]
        for tenant, user in pairs:
            v = svc.verdict(path="/k", tenant=tenant, user=user)
            eq(v["allowed"], True, "first request of tenant %r user %r" % (tenant[:20], user))
        v = svc.verdict(path="/k", tenant="a|b", user="c")
        eq(v["allowed"], False, "second request of tenant 'a|b' user 'c'")
        for fields, missing in (({"tenant": "t"}, "user"), ({"user": "u"}, "tenant"),
                                ({"tenant": "", "user": "u"}, "tenant")):
            r = svc.decide(path="/k", **fields)
            eq(r.status, 422, "status without %s" % missing)
            eq(r.json.get("code"), "VAL_001", "code without %s" % missing)
            check(missing in r.json.get("error", ""),
                  "error %r does not name %r" % (r.json.get("error"), missing))


def _key_fields(store):
    """Each key field kind counts on its own value."""
    cases = [
        (["ip"], {"ip": "203.0.113.7"}, {"ip": "203.0.113.8"}, "ip"),
        (["method"], {"method": "GET"}, {"method": "POST"}, None),
        (["path"], {"path": "/f/a"}, {"path": "/f/b"}, None),
        (["path.id"], {"path": "/f/1/x"}, {"path": "/f/2/x"}, None),
        (["header.x-api-key"], {"headers": {"X-Api-Key": "k1"}},
         {"headers": {"x-api-key": "k2"}}, "header.x-api-key"),
    ]
    pols = []
    for i, (key, _, _, _) in enumerate(cases):
        path = "/f/{id}/x" if key == ["path.id"] else "/f/*"
        pols.append(policy("kf%d" % i, path, [limit(1, "1h")], key=key))
    with service(config(*pols), store) as svc:
        for i, (key, first, second, missing) in enumerate(cases):
            name = "kf%d" % i
            base = {"path": "/f/a", "policy": name}
            a = dict(base, **first)
            b = dict(base, **second)
            eq(svc.verdict(**a)["allowed"], True, "%s: first value" % key)
            eq(svc.verdict(**a)["allowed"], False, "%s: first value again" % key)
            v = svc.verdict(**b)
            eq((v["allowed"], v["policy"]), (True, name), "%s: second value" % key)
            if missing is not None:
                r = svc.decide(path="/f/a", policy=name)
                eq(r.status, 422, "%s: status when absent" % key)
                eq(r.json.get("code"), "VAL_001", "%s: code when absent" % key)
                check(missing in r.json.get("error", ""),
                      "%s: error %r does not name it" % (key, r.json.get("error")))


for _name, _fn in (("test_counts", _counts), ("test_retry_after_is_true", _retry_after_is_true),
                   ("test_multi_limit_all_or_nothing", _multi_limit), ("test_peek_cost_0", _peek),
                   ("test_cost_above_1", _cost), ("test_block", _block)):
    parametrize(globals(), _name, _fn, STORE_ALGOS)
for _name, _fn in (("test_test_header", _test_header), ("test_key_isolation", _key_isolation),
                   ("test_key_fields", _key_fields)):
    parametrize(globals(), _name, _fn, STORES)


def test_no_policy_matches():
    """No policy matches: allowed, policy null, no rate-limit headers."""
    cfg = config(policy("only", "/only/*", [limit(1, "1h")], method="POST"))
    with service(cfg, "memory") as svc:
        for fields in ({"path": "/other"}, {"path": "/only/x", "method": "GET"}):
            v = svc.verdict(**fields)
            eq(v["allowed"], True, "allowed for %r" % fields)
            eq(v["policy"], None, "policy for %r" % fields)
            check(not v.get("headers"), "headers for %r: %r" % (fields, v.get("headers")))
            for h in RL_HEADERS:
                eq(v["_http"].header(h), None, "HTTP header %s for %r" % (h, fields))


def test_first_match_method_and_forced_policy():
    """Policies are tried in file order; method filters; "policy" forces one."""
    cfg = config(
        policy("a-post", "/a/{id}", [limit(1, "1h")], method="POST"),
        policy("a-any", "/a/*", [limit(2, "1h")]),
        policy("rest", "/*", [limit(3, "1h")], key=["path"]),
    )
    cases = [
        ({"method": "POST", "path": "/a/1"}, "a-post"),
        ({"method": "post", "path": "/a/2"}, "a-post"),
        ({"method": "GET", "path": "/a/1"}, "a-any"),
        ({"path": "/a"}, "a-any"),
        ({"path": "/a/1/2"}, "a-any"),
        ({"method": "POST", "path": "/b"}, "rest"),
        ({"method": "POST", "path": "/a/1", "policy": "rest"}, "rest"),
        ({"method": "POST", "path": "/a/1", "policy": "a-any"}, "a-any"),
    ]
    with service(cfg, "memory") as svc:
        for fields, name in cases:
            v = svc.verdict(**fields)
            eq(v["policy"], name, "policy for %r" % fields)
        for fields in ({"path": "/a/1", "policy": "nope"},
                       {"method": "GET", "path": "/a/1", "policy": "a-post"}):
            r = svc.decide(**fields)
            eq(r.status, 422, "status when forcing %r" % fields)
            check(r.json.get("code", "").startswith("VAL_"), "code when forcing %r" % fields)
        # "path" keys use the concrete path without its query string
        for i, p in enumerate(("/q?x=1", "/q?y=2", "/q")):
            v = svc.verdict(path=p)
            eq((v["policy"], v["remaining"]), ("rest", 2 - i), "request %d to %s" % (i + 1, p))


def test_header_styles():
    """Each header style, set on the HTTP reply and repeated in the JSON."""
    cfg = config(
        policy("site-process", "/ietf", [limit(1, "5m")], headers="ietf"),
        policy("xr", "/xr", [limit(1, "5m")], headers="x-ratelimit-retry-after"),
        policy("none", "/none", [limit(1, "5m")], headers="none"),
    )
    with service(cfg, "memory") as svc:
        v = svc.verdict(path="/ietf")
        h = v["_http"]
        eq(h.header("RateLimit-Policy"), '"site-process-5m";q=1;w=300', "RateLimit-Policy")
        eq(h.header("RateLimit"), '"site-process-5m";r=0;t=300', "RateLimit")
        eq(v["headers"], {"RateLimit-Policy": '"site-process-5m";q=1;w=300',
                          "RateLimit": '"site-process-5m";r=0;t=300'}, "ietf headers in the JSON")
        v = svc.verdict(path="/ietf")
        eq(v["_http"].header("Retry-After"), "300", "ietf: Retry-After on the denial")
        eq(v["_http"].header("RateLimit-Policy"), '"site-process-5m";q=1;w=300',
           "RateLimit-Policy on the denial")

        v = svc.verdict(path="/xr")
        now = time.time()
        eq(sorted(v["headers"]), ["X-RateLimit-Limit", "X-Ratelimit-Remaining",
                                  "X-Ratelimit-Retry-After"], "x-ratelimit-retry-after names")
        eq(v["headers"]["X-RateLimit-Limit"], "1", "X-RateLimit-Limit")
        eq(v["headers"]["X-Ratelimit-Remaining"], "0", "X-Ratelimit-Remaining")
        between(int(v["headers"]["X-Ratelimit-Retry-After"]), int(now) - 1, int(now) + 301,
                "X-Ratelimit-Retry-After (unix seconds)")
        eq(v["_http"].header("X-Ratelimit-Retry-After"), v["headers"]["X-Ratelimit-Retry-After"],
           "X-Ratelimit-Retry-After on the HTTP reply")
        v = svc.verdict(path="/xr")
        now = time.time()
        between(int(v["headers"]["X-Ratelimit-Retry-After"]), int(now) + 290, int(now) + 301,
                "X-Ratelimit-Retry-After on the denial")
        eq(v["headers"]["Retry-After"], "300", "Retry-After on the denial")

        v = svc.verdict(path="/none")
        eq((v["allowed"], v["policy"]), (True, "none"), "style none: verdict")
        check(not v.get("headers"), "style none: headers %r" % v.get("headers"))
        for name in RL_HEADERS:
            eq(v["_http"].header(name), None, "style none: HTTP header " + name)
        v = svc.verdict(path="/none")
        eq(v["headers"], {"Retry-After": "300"}, "style none on a denial")


def test_deny_body_templates_and_status():
    """deny.body strings are templated per denial; deny.status is reported;
    the HTTP status of the decision reply stays 200."""
    body = {"msg": "retry in {retry_after}s ({retry_after_human}); limit {limit} for {policy}",
            "nested": [{"x": "{limit}"}, 5, True, None], "keep": "{unknown}"}
    cfg = config(
        policy("tpl", "/tpl", [limit(1, "2m")], deny={"status": 403, "body": body}),
        policy("tpl45", "/tpl45", [limit(1, "45s")],
               deny={"body": {"message": "Try again in {retry_after_human}."}}),
    )
    with service(cfg, "memory") as svc:
        eq(svc.verdict(path="/tpl")["allowed"], True, "first request")
        v = svc.verdict(path="/tpl")
        eq(v["_http"].status, 200, "HTTP status of the decision reply")
        eq(v["status"], 403, "status from deny.status")
        eq(v.get("body"), {"msg": "retry in 120s (2 minutes); limit 1 for tpl",
                       "nested": [{"x": "1"}, 5, True, None], "keep": "{unknown}"},
           "templated body")
        svc.verdict(path="/tpl45")
        v = svc.verdict(path="/tpl45")
        eq((v["status"], v.get("body")), (429, {"message": "Try again in 45 seconds."}),
           "45 s denial")


def _redis_keys(svc, pattern):
    return sorted(svc.redis.call("KEYS", pattern))


def _redis_now_us(svc):
    sec, usec = svc.redis.call("TIME")
    return int(sec) * 1000000 + int(usec)


def test_redis_key_layout():
    """Redis keys: prefix, one hash tag per decision, every key expires."""
    cfg = config(policy("lay", "/*", [limit(1, "1m"), limit(10, "1h", "fixed_window", block="5s")],
                        key=["tenant"]), store={"prefix": "tst", "timeout_ms": 200})
    with service(cfg, "redis") as svc:
        t0_us = _redis_now_us(svc)
        eq(svc.verdict(path="/l", tenant="a{b}c")["allowed"], True, "first request")
        t1_us = _redis_now_us(svc)
        eq(svc.verdict(path="/l", tenant="a{b}c")["allowed"], False, "second request")
        keys = _redis_keys(svc, "*")
        eq(sorted(k[k.index("}") + 1:] for k in keys), [":lg1m"],
           "one key per policy, named after its first limit: algorithm letter, "
           "period in its largest whole unit")
        # One value for both limits (lua/decide.lua): per limit an entry
        # of algorithm (1 byte), period (5), state, block until (6); GCRA's
        # state is its TAT in us (7), a fixed window's its window (6) and
        # count (7). The first request set TAT to its now + T (T = 60 s);
        # the denied second request wrote nothing.
        g = keys[0]
        e = svc.redis.call("EVAL", "return {struct.unpack('<BI5I7I6BI5I6I7I6', "
                           "redis.call('GET', KEYS[1]))}", 1, g)
        eq([e[i] for i in (0, 1, 3, 4, 5, 7, 8)], [0, 60000, 0, 1, 3600000, 1, 0],
           "GCRA 1 min entry, then the fixed hour window's, no block")
        tat = e[2]
        check(t0_us + 60000000 <= tat <= t1_us + 60000000,
              "GCRA TAT %d within [%d, %d] + 60 s" % (tat, t0_us, t1_us))
        check(e[6] in (t0_us // 3600000000, t1_us // 3600000000), "the hour window %d" % e[6])
        check(keys, "no keys in Redis")
        tags = set()
        for k in keys:
            check(k.startswith("tst:{"), "key %r does not start with the prefix and a tag" % k)
            tags.add(k[k.index("{") + 1:k.index("}")])
            pttl = svc.redis.call("PTTL", k)
            check(pttl > 0, "key %r has no expiry (PTTL %r)" % (k, pttl))
        eq(len(tags), 1, "hash tags of one decision's keys %r" % keys)
        check("lay" in tags.pop(), "the hash tag holds the policy name")
