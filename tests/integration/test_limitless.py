"""Policies with "limits": [] over HTTP /v1/decide: the policy takes the
requests it matches (first match in file order, so a general policy after
it counts none of them) and always allows, with nothing sent to the store
and no rate-limit headers; another group's policy still decides; a missing
"limits" stays an error."""

import json
import os
import tempfile

from harness import check, config, eq, limit, policy, redis_calls, run_binary, service


def _cfg():
    """vip (/v/*, no limits) before api (/*, 2 per minute per path); acct
    (its own group, /g/*, 3 per minute per tenant) beside gvip (/g/*, no
    limits)."""
    vip = policy("vip", "/v/*", [], headers="x-ratelimit")
    gvip = policy("gvip", "/g/*", [], headers="ietf")
    api = policy("api", "/*", [limit(2, "1m", "fixed_window")], key=["path"],
                 headers="x-ratelimit")
    acct = policy("acct", "/g/*", [limit(3, "1m", "fixed_window")], key=["tenant"],
                  headers="x-ratelimit")
    acct["group"] = "acct"
    return config(vip, gvip, api, acct)


def test_limitless_policy_allows_and_counts_nothing():
    """On both stores: /v/a is allowed every time by vip, with limit and
    remaining 0, no headers and (Redis) no script call; /other is limited
    by api, which never saw /v/a."""
    for store in ("memory", "redis"):
        with service(_cfg(), store) as svc:
            if svc.redis is not None:
                svc.redis.call("CONFIG", "RESETSTAT")
            for _ in range(6):
                r = svc.decide(path="/v/a")
                eq(r.status, 200, store + ": status (%r)" % r.body)
                v = r.json
                eq((v["allowed"], v["policy"], v["policies"], v["limit"], v["remaining"],
                    v["status"], v["headers"]),
                   (True, "vip", ["vip"], 0, 0, 200, {}), store + ": limit-less verdict")
                check("Retry-After" not in v["headers"], store + ": no Retry-After")
            if svc.redis is not None:
                eq(redis_calls(svc.redis), 0, "redis: no script call for vip")
                eq(svc.redis.call("DBSIZE"), 0, "redis: no key written")
            got = [svc.decide(path="/other").json for _ in range(3)]
            eq([v["allowed"] for v in got], [True, True, False], store + ": api limits /other")
            check("X-RateLimit-Limit" in got[0]["headers"],
                  store + ": a limited policy keeps its headers: %r" % got[0]["headers"])


def test_limitless_beside_another_group():
    """/g/x: gvip (default group, no limits) and acct (group acct) both
    apply; acct decides and its headers are the answer's; the verdict
    lists both."""
    with service(_cfg(), "memory") as svc:
        got = [svc.decide(path="/g/x", tenant="t1").json for _ in range(4)]
    eq([v["allowed"] for v in got], [True, True, True, False], "acct decides")
    eq([v["policies"] for v in got], [["gvip", "acct"]] * 4, "applied policies")
    eq(got[0]["policy"], "acct", "deciding policy")
    eq(got[0]["headers"].get("X-RateLimit-Limit"), "3", "acct's headers")


def test_limits_missing_or_bad():
    """A missing "limits" and a non-array one are refused at load."""
    for pol, want in (({"name": "a", "match": {"path": "/*"}}, "policies[0].limits: is required"),
                      ({"name": "a", "match": {"path": "/*"}, "limits": {}},
                       "policies[0].limits: must be an array of 0 to 8 limits")):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"store": {"type": "memory"}, "policies": [pol]}, f)
        try:
            rc, out, err = run_binary(["--check-config", f.name])
        finally:
            os.unlink(f.name)
        eq(rc, 1, "exit code for %r" % pol)
        check(want in err, "stderr %r, want %r" % (err, want))
