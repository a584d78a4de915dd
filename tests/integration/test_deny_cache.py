"""The exact local deny cache: a flood on a denied key from several
ratelimitd processes admits exactly what Redis alone would, while Redis
sees only a small fraction of the flood (INFO commandstats); a cost-0 peek
bypasses it, a reload and an admin reset invalidate it, and it never
denies past the moment the key can pass again."""

import copy
import hashlib
import time

from harness import (SLOW, check, config, eq, hammer, limit, metric, policy, redis_calls,
                     reload_config, scrape, service)

ADMIN_KEY = "deny-cache-admin-key"


def _admin():
    return {"enabled": True, "key_sha256": hashlib.sha256(ADMIN_KEY.encode()).hexdigest()}


def _flood(svc, total, clients, body):
    ports = [d.port for d in svc.daemons]
    results, elapsed = hammer(ports, total, clients, lambda i: body)
    for r in results:
        eq(r.status, 200, "flood reply status (%r)" % r.body[:200])
        check(r.json["degraded"] is False, "degraded verdict in the flood: %r" % r.body[:200])
    return sum(1 for r in results if r.json["allowed"]), results, elapsed


def test_flood_fixed_window_three_processes():
    """3 processes x 2 workers, 12 clients, 6,000 requests on one key limited
    to 100 per hour: exactly 100 admitted; Redis runs the decision script
    for at most a tenth of the flood."""
    cfg = config(policy("flood", "/*", [limit(100, "1h", "fixed_window")], key=["tenant"]),
                 workers=2)
    with service(cfg, "redis", instances=3) as svc:
        svc.redis.call("CONFIG", "RESETSTAT")
        admitted, results, elapsed = _flood(svc, 6000, 12, {"path": "/x", "tenant": "abuser"})
        calls = redis_calls(svc.redis)
        eq(admitted, 100, "admitted out of 6000")
        check(calls <= 600, "Redis ran the script %d times for 6000 requests" % calls)
        scrapes = [scrape(d) for d in svc.daemons]
        hits = sum(metric(m, "ratelimitd_deny_cache_hits_total") for m in scrapes)
        store_ops = sum(metric(m, "ratelimitd_store_duration_seconds_count") for m in scrapes)
        eq(hits + store_ops, 6000, "deny cache hits + store decisions = requests")
        # Decisions started together share one batched script call.
        check(calls <= store_ops, "%d script calls for %d store decisions" % (calls, store_ops))
        denied = [r.json for r in results if not r.json["allowed"]]
        check(all(v["status"] == 429 and v["retry_after_ms"] >= 1 and v["remaining"] == 0
                  for v in denied), "cached denials look like store denials")


test_flood_fixed_window_three_processes.timeout = 120


def test_flood_gcra_refill_is_exact():
    """GCRA 20 per second, burst 5 (one request per 50 ms after the burst),
    flooded for about 3 s by 2 processes: admissions keep coming at the
    refill rate (the cache never denies past the moment a request can
    pass) and never exceed what GCRA allows; Redis sees a small fraction."""
    cfg = config(policy("gcra", "/*", [limit(20, "1s", burst=5)], key=["tenant"]), workers=2)
    with service(cfg, "redis", instances=2) as svc:
        svc.redis.call("CONFIG", "RESETSTAT")
        deadline = time.monotonic() + 3.0
        admitted = 0
        sent = 0
        t0 = time.monotonic()
        while time.monotonic() < deadline:
            a, results, _ = _flood(svc, 800, 8, {"path": "/x", "tenant": "g"})
            admitted += a
            sent += len(results)
        elapsed = time.monotonic() - t0
        calls = redis_calls(svc.redis)
        upper = 5 + int(elapsed / 0.05) + 2
        lower = 5 + int((elapsed - 0.25 * SLOW) / 0.05) - 3
        check(lower <= admitted <= upper,
              "admitted %d in %.2fs, expected %d..%d" % (admitted, elapsed, lower, upper))
        check(calls * 4 <= sent, "Redis ran the script %d times for %d requests" % (calls, sent))


test_flood_gcra_refill_is_exact.timeout = 120


def test_block_served_from_cache_and_lifted_on_time():
    """2 per second with a 2 s block: once it trips, a flood is denied with
    "blocked": true, mostly without the store; right after the block ends
    (the window has rolled over by then) the key is admitted again."""
    cfg = config(policy("blk", "/*", [limit(2, "1s", "fixed_window", block="2s")],
                        key=["tenant"]), workers=2)
    with service(cfg, "redis") as svc:
        tripped = None
        for _ in range(10):
            v = svc.verdict(path="/x", tenant="b")
            if not v["allowed"]:
                tripped = time.monotonic()
                break
        check(tripped is not None, "the limit never denied")
        eq(v["blocked"], True, "the first denial starts the block")
        svc.redis.call("CONFIG", "RESETSTAT")
        sent = 0
        while time.monotonic() < tripped + 1.2:
            admitted, results, _ = _flood(svc, 200, 8, {"path": "/x", "tenant": "b"})
            eq(admitted, 0, "admitted during the block")
            check(all(r.json["blocked"] for r in results), "every denial says blocked")
            sent += len(results)
        calls = redis_calls(svc.redis)
        check(calls * 5 <= sent, "Redis ran the script %d times for %d requests" % (calls, sent))
        time.sleep(max(0.0, tripped + 2.0 - time.monotonic()))
        v = svc.verdict(path="/x", tenant="b")
        eq((v["allowed"], v["blocked"]), (True, False), "right after the block ended")


def test_reload_invalidates_and_peek_bypasses():
    """A denial cached under "1 per hour" is not served after a reload
    raises the limit to 3 (same key, so the count of 1 carries on and the
    next request passes); a cost-0 peek reads Redis, not the cache."""
    cfg = config(policy("p", "/*", [limit(1, "1h", "fixed_window")], key=["tenant"]), workers=1)
    with service(cfg, "redis") as svc:
        eq(svc.verdict(path="/x", tenant="t")["allowed"], True, "first")
        for _ in range(3):
            eq(svc.verdict(path="/x", tenant="t")["allowed"], False, "denied")
        check(metric(scrape(svc.d), "ratelimitd_deny_cache_hits_total") >= 1, "cache used")
        svc.redis.call("CONFIG", "RESETSTAT")
        peek = svc.verdict(path="/x", tenant="t", cost=0)
        eq((peek["allowed"], peek["remaining"]), (True, 0), "peek")
        eq(redis_calls(svc.redis), 1, "the peek went to Redis")
        new = copy.deepcopy(svc.d.config)
        new["policies"][0]["limits"][0]["requests"] = 3
        eq(reload_config(svc.d, new), "ok", "reload")
        v = svc.verdict(path="/x", tenant="t")
        eq((v["allowed"], v["remaining"]), (True, 1), "after raising the limit to 3")


def test_admin_reset_invalidates_every_worker():
    """After POST /v1/admin/reset no worker of that process keeps denying."""
    cfg = config(policy("p", "/*", [limit(1, "1h", "fixed_window")], key=["tenant"]),
                 workers=2, admin=_admin())
    with service(cfg, "redis") as svc:
        ports = [svc.port]
        # Many connections, so both workers see (and cache) the denial.
        results, _ = hammer(ports, 200, 8, lambda i: {"path": "/x", "tenant": "r"})
        eq(sum(1 for r in results if r.json["allowed"]), 1, "admitted before the reset")
        r = svc.request("POST", "/v1/admin/reset", json_body={"path": "/x", "tenant": "r"},
                        headers={"Authorization": "Bearer " + ADMIN_KEY})
        eq(r.status, 200, "reset status (%r)" % r.body)
        results, _ = hammer(ports, 200, 8, lambda i: {"path": "/x", "tenant": "r"})
        eq(sum(1 for r in results if r.json["allowed"]), 1, "admitted after the reset")


def test_cache_disabled():
    """"deny_cache": {"entries": 0} turns it off: every denial is a store call."""
    cfg = config(policy("p", "/*", [limit(1, "1h", "fixed_window")], key=["tenant"]),
                 workers=1, deny_cache={"entries": 0})
    with service(cfg, "redis") as svc:
        svc.redis.call("CONFIG", "RESETSTAT")
        for _ in range(20):
            svc.verdict(path="/x", tenant="t")
        eq(redis_calls(svc.redis), 20, "script calls with the cache off")
        eq(metric(scrape(svc.d), "ratelimitd_deny_cache_hits_total"), 0, "cache hits")


def test_grpc_denials_served_from_cache():
    """ShouldRateLimit with one descriptor over its limit: the deny cache
    answers the repeats (Redis runs the script for a small fraction),
    exactly the limit is admitted, and a cached answer says what the
    store's said (OVER_LIMIT, remaining 0, the same reset)."""
    from test_grpc import call, dpolicy, fixed, grpc_cfg, rpc, target
    entries = [["remote_address", "10.9.9.9"]]
    cfg = grpc_cfg(dpolicy("edge-ip", "edge", [("remote_address", None)],
                           ["descriptor.remote_address"], fixed(3, "1h")), workers=2)
    with service(cfg, "redis") as svc:
        first = rpc(*[call(cfg, [{"entries": entries}]) for _ in range(4)])
        eq([r["overall"] for r in first], ["OK"] * 3 + ["OVER_LIMIT"],
           "three admitted, then over")
        svc.redis.call("CONFIG", "RESETSTAT")
        res = rpc({"op": "hammer", "targets": [target(cfg)], "domain": "edge",
                   "descriptors": [{"entries": entries}], "n": 200, "streams": 8})[0]
        eq((res["ok"], res["over"], res["errors"]), (0, 200, []), "the flood: all over")
        calls = redis_calls(svc.redis)
        check(calls * 5 <= 200, "Redis ran the script %d times for 200 calls" % calls)
        again = rpc(call(cfg, [{"entries": entries}]))[0]
        eq((again["overall"], again["statuses"][0]["code"], again["statuses"][0]["remaining"],
            again["headers"].keys()), ("OVER_LIMIT", "OVER_LIMIT", 0, first[3]["headers"].keys()),
           "a cached answer")
        check(0 <= first[3]["statuses"][0]["reset_ms"] - again["statuses"][0]["reset_ms"] <= 5000,
              "its reset matches the store's: %r vs %r" % (again["statuses"][0],
                                                           first[3]["statuses"][0]))


def test_a_larger_cost_asks_the_store():
    """A denial is served from the cache only for the cost it was denied
    at: a larger cost may wait longer (GCRA 10/min: cost 5 waits 30 s,
    cost 11 never passes) or trip a blocking limit the smaller did not,
    and the verdict must say what the store says."""
    cfg = config(policy("g", "/g/*", [limit(10, "1m")], key=["tenant"]), workers=1)
    for store in ("memory", "redis"):
        with service(cfg, store) as svc:
            c = svc.d.client()
            try:
                for _ in range(10):
                    eq(c.decide(path="/g/x", tenant="t").json["allowed"], True, "spend")
                first = c.decide(path="/g/x", tenant="t").json
                again = c.decide(path="/g/x", tenant="t").json
                check(not first["allowed"] and not again["allowed"], "cost 1 denied twice")
                five = c.decide(path="/g/x", tenant="t", cost=5).json
                eleven = c.decide(path="/g/x", tenant="t", cost=11).json
            finally:
                c.close()
            check(not five["allowed"] and 24000 <= five["retry_after_ms"] <= 30000,
                  "%s: cost 5 waits for 5 refills: %r" % (store, five["retry_after_ms"]))
            check(not eleven["allowed"] and eleven["retry_after_ms"] >= 50000,
                  "%s: cost 11 waits a whole period: %r" % (store, eleven["retry_after_ms"]))


def test_a_cached_denial_never_skips_a_block():
    """1 per second, and 5 per 30 s with a 30 s block: costs 1, 1, 5 —
    the cost-5 request trips the 30 s limit's block (the second denial
    came from the 1 s limit alone). 1.1 s later, past the 1 s window, a
    request is still blocked: the cache did not answer the cost-5
    request in the store's place."""
    cfg = config(policy("b", "/b/*", [limit(1, "1s", "fixed_window"),
                                      limit(5, "30s", "fixed_window", block="30s")],
                        key=["tenant"]), workers=1)
    for store in ("memory", "redis"):
        with service(cfg, store) as svc:
            deadline = time.time() + 20
            while time.time() < deadline:  # just after a 1 s edge, clear of a 30 s edge
                t = time.time() * 1000
                if t % 1000 < 100 and 2000 < t % 30000 < 25000:
                    break
                time.sleep(0.005)
            c = svc.d.client()
            try:
                got = [c.decide(path="/b/x", tenant="t", cost=n).json for n in (1, 1, 5)]
                eq([g["allowed"] for g in got], [True, False, False], "%s: 1, 1, 5" % store)
                eq(got[2]["blocked"], True, "%s: cost 5 starts the 30 s block" % store)
                time.sleep(1.1)
                after = c.decide(path="/b/x", tenant="t").json
            finally:
                c.close()
            eq((after["allowed"], after["blocked"]), (False, True),
               "%s: still blocked after the 1 s window" % store)


def test_a_cached_block_ends_with_the_block():
    """2 per 4 s with a 1 s block: the first denial starts a block, but
    the window still denies after it, and each such denial starts a new
    block. The cache answers no longer than a block runs: a request at
    +3.6 s reaches the store and starts a block that still holds at
    +4.3 s, in the next window."""
    cfg = config(policy("w", "/w/*", [limit(2, "4s", "fixed_window", block="1s")],
                        key=["tenant"]), workers=1)
    for store in ("memory", "redis"):
        with service(cfg, store) as svc:
            deadline = time.time() + 10
            while time.time() < deadline and time.time() * 1000 % 4000 >= 100:
                time.sleep(0.005)
            t0 = time.monotonic()
            c = svc.d.client()
            try:
                got = [c.decide(path="/w/x", tenant="t").json for _ in range(3)]
                eq([(g["allowed"], g["blocked"]) for g in got],
                   [(True, False), (True, False), (False, True)], "%s: 2 in, then a block" % store)
                time.sleep(max(0.0, t0 + 3.6 - time.monotonic()))
                late = c.decide(path="/w/x", tenant="t").json
                time.sleep(max(0.0, t0 + 4.3 - time.monotonic()))
                after = c.decide(path="/w/x", tenant="t").json
            finally:
                c.close()
            eq(late["allowed"], False, "%s: +3.6 s, the window still full" % store)
            eq((after["allowed"], after["blocked"]), (False, True),
               "%s: +4.3 s, next window, the block started at +3.6 s holds" % store)
