"""Config ranges that keep the arithmetic exact (docs/algorithms.md): the
largest limits the config accepts decide exactly, to the request, on the
Redis and the memory store alike; one past each bound is refused at load
with the JSON path of the field to change."""

from harness import (STORES, between, check, check_config, config, eq, limit, parametrize,
                     policy, service)

# GCRA: T = ceil(2^31 ms * 1000 / 1000) = 2^31 us; burst * T = 2^51 us.
PER = "2147483648ms"
BURST = 1 << 20
GCRA = limit(1000, PER, burst=BURST)
# Sliding window: requests * per = 2^20 * 2^31 ms = 2^51.
SLIDING = limit(1 << 20, PER, "sliding_window")
# Fixed window: the largest requests over the longest period.
FIXED = limit(10 ** 12, "3650d", "fixed_window")
CFG = config(policy("g", "/g", [GCRA], key=["tenant"]),
             policy("s", "/s", [SLIDING], key=["tenant"]),
             policy("f", "/f", [FIXED], key=["tenant"]))


def _decide(svc, path, tenant, cost):
    r = svc.decide(path=path, tenant=tenant, cost=cost)
    eq(r.status, 200, "%s cost %d (%r)" % (path, cost, r.body[:200]))
    check(r.json["degraded"] is False, "%s: not degraded" % path)
    return r.json


def _largest(store):
    with service(CFG, store) as svc:
        # GCRA: one request leaves burst - 1; the whole burst empties it,
        # the reset is burst * T rounded up to ms, and the next request
        # waits one emission interval (2^31 us = 2147484 ms rounded up).
        v = _decide(svc, "/g", "one", 1)
        eq((v["allowed"], v["remaining"], v["reset_after_ms"]), (True, BURST - 1, 2147484),
           "gcra, one request")
        v = _decide(svc, "/g", "all", BURST)
        eq((v["allowed"], v["remaining"], v["reset_after_ms"]), (True, 0, 2251799813686),
           "gcra, the whole burst of 2^20")
        v = _decide(svc, "/g", "all", 1)
        eq((v["allowed"], v["remaining"]), (False, 0), "gcra, one more")
        between(v["retry_after_ms"], 2147484 - 5000, 2147484, "gcra retry_after_ms")
        between(v["reset_after_ms"], 2251799813686 - 5000, 2251799813686, "gcra reset_after_ms")
        v = _decide(svc, "/g", "all", 0)
        eq((v["allowed"], v["remaining"]), (True, 0), "gcra peek after the denial")
        # Sliding window: 2^20 per 2^31 ms, filled exactly.
        v = _decide(svc, "/s", "one", 1)
        eq((v["allowed"], v["remaining"]), (True, (1 << 20) - 1), "sliding, one request")
        v = _decide(svc, "/s", "one", (1 << 20) - 1)
        eq((v["allowed"], v["remaining"]), (True, 0), "sliding, the rest")
        v = _decide(svc, "/s", "one", 1)
        eq((v["allowed"], v["remaining"]), (False, 0), "sliding, one more")
        check(v["retry_after_ms"] >= 1, "sliding retry_after_ms %r" % v["retry_after_ms"])
        # Fixed window: 10^12 over 3650 days, counted to the request.
        v = _decide(svc, "/f", "one", 10 ** 9)
        eq((v["allowed"], v["remaining"]), (True, 10 ** 12 - 10 ** 9), "fixed, 10^9")
        v = _decide(svc, "/f", "one", 1)
        eq((v["allowed"], v["remaining"]), (True, 10 ** 12 - 10 ** 9 - 1), "fixed, one more")


parametrize(globals(), "test_largest_limits_exact", _largest, STORES)


def test_one_past_each_bound_refused():
    """burst one past 2^51 us / T, and sliding requests one past 2^51 /
    per, are refused at load naming the field; the largest are accepted."""
    eq(check_config(CFG)[0], 0, "the largest limits are accepted")
    for lim, path in ((limit(1000, PER, burst=BURST + 1), "policies[0].limits[0].burst"),
                      (limit(1, "3650d", burst=8), "policies[0].limits[0].burst"),
                      (limit((1 << 20) + 1, PER, "sliding_window"),
                       "policies[0].limits[0].requests")):
        rc, out = check_config(config(policy("x", "/x", [lim], key=["tenant"])))
        check(rc != 0 and (path + ": ") in out and "2^51" in out,
              "%r refused naming %s: %r" % (lim, path, out))
