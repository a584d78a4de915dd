"""Layered decisions (issue 12): groups decided in one atomic step on
Redis, the memory store and the 3+3 cluster; penalty blocks; the IETF
headers of a two-group decision as RFC 8941 structured fields."""

import json
import os
import re
import tempfile
import time

from cluster import cluster, daemons, wait_window
from harness import (SLOW, Client, check, config, eq, hammer, limit, policy, run_binary,
                     service, wait_window_start)

CLIENTS = 32


def _groups_cfg(hash_tag=None, headers=None):
    """account 100/min (group "account") + route 30/min (default group)."""
    account = policy("account", "/*", [limit(100, "1m", "fixed_window")], key=["tenant"],
                     headers=headers)
    account["group"] = "account"
    route = policy("route", "/r/{route}", [limit(30, "1m", "fixed_window")],
                   key=["tenant", "path.route"], headers=headers)
    if hash_tag is not None:
        account["hash_tag"] = list(hash_tag)
        route["hash_tag"] = list(hash_tag)
    return config(account, route, workers=2, store={"timeout_ms": 1000})


def _verdicts(results):
    out = []
    for r in results:
        eq(r.status, 200, "HTTP status (body %r)" % r.body[:200])
        v = r.json
        eq(v["degraded"], False, "degraded (%r)" % r.body[:200])
        out.append(v)
    return out


def _account_left(port, tenant):
    """The account's remaining, peeked (cost 0) through the account policy."""
    c = Client(port)
    try:
        v = c.decide(path="/r/peek", tenant=tenant, policy="account", cost=0).json
    finally:
        c.close()
    eq(v["policies"], ["account"], "policies of a forced peek")
    return v["remaining"]


def _groups_scenario(ports):
    """3 routes hammered by 2x32 clients: exactly 30 per route and 90 in the
    account; a route denial spends nothing from the account; 20 more routes
    push the account to exactly 100."""
    n = len(ports)
    res, _ = hammer(ports, 300, CLIENTS * n,
                    lambda i: {"path": "/r/r%d" % (i % 3), "tenant": "acme"})
    per_route = {}
    for i, v in enumerate(_verdicts(res)):
        eq(v["policies"], ["account", "route"], "applied policies")
        if v["allowed"]:
            per_route["r%d" % (i % 3)] = per_route.get("r%d" % (i % 3), 0) + 1
        else:
            eq(v["policy"], "route", "the denying policy while the account has room")
    eq(per_route, {"r0": 30, "r1": 30, "r2": 30}, "admitted per route")
    eq(_account_left(ports[0], "acme"), 10, "account remaining after 90 admitted")

    # Denied by its route: nothing spent from the account.
    c = Client(ports[-1])
    try:
        v = c.decide(path="/r/r0", tenant="acme").json
    finally:
        c.close()
    eq((v["allowed"], v["policy"]), (False, "route"), "a request denied by its route")
    eq(_account_left(ports[0], "acme"), 10, "account remaining after a route denial")

    res, _ = hammer(ports, 100, CLIENTS * n,
                    lambda i: {"path": "/r/n%d" % (i % 20), "tenant": "acme"})
    vs = _verdicts(res)
    eq(sum(1 for v in vs if v["allowed"]), 10, "admitted by 20 more routes")
    for v in vs:
        if not v["allowed"]:
            eq(v["policy"], "account", "the denying policy once the account is full")
    eq(_account_left(ports[0], "acme"), 0, "account remaining at 100")
    # Another tenant is untouched.
    eq(_account_left(ports[0], "other"), 100, "another tenant's account")


def _groups_on(store, instances):
    with service(_groups_cfg(), store, instances=instances) as svc:
        wait_window_start(svc, 60, 20 * SLOW)
        _groups_scenario([d.port for d in svc.daemons])


def test_groups_redis_two_processes():
    _groups_on("redis", 2)


def test_groups_memory():
    _groups_on("memory", 1)


def test_groups_cluster():
    """The same scenario on the 3+3 cluster, hash_tag ["tenant"]: every key
    of a decision in one slot, one script."""
    cfg = _groups_cfg(hash_tag=["tenant"])
    with cluster() as c:
        cfg["store"] = c.store_config(timeout_ms=1000)
        with daemons(cfg, instances=2) as ds:
            wait_window(c.nodes[0], 60, 20 * SLOW)
            _groups_scenario([d.port for d in ds])


def test_groups_cluster_needs_hash_tag():
    """On a cluster, layered policies without one shared hash_tag are
    refused at load, naming the JSON path."""
    cfg = _groups_cfg()
    cfg["store"] = {"type": "redis", "cluster": True, "nodes": ["127.0.0.1:7000"]}
    partial = _groups_cfg(hash_tag=["tenant"])
    partial["store"] = cfg["store"]
    del partial["policies"][1]["hash_tag"]
    bad_pen = _groups_cfg(hash_tag=["tenant"])
    bad_pen["store"] = cfg["store"]
    bad_pen["penalties"] = [{"name": "p", "key": ["user"], "denials": 2, "within": "1m",
                             "block": "1m"}]
    bad_pen["policies"][0]["penalty"] = "p"
    cases = [(cfg, "policies[0].hash_tag: required with a Redis Cluster when policies are "
                   "layered (groups or penalties): every policy must share one hash_tag"),
             (partial, "policies[1].hash_tag: required with a Redis Cluster"),
             (bad_pen, "penalties[0].key: must hold every field")]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (bad, expect) in enumerate(cases):
            path = os.path.join(tmp, "c%d.json" % i)
            with open(path, "w") as f:
                json.dump(bad, f)
            rc, out, err = run_binary(["--check-config", path])
            eq(rc, 1, "exit code of case %d" % i)
            check(expect in err, "case %d: expected %r in %r" % (i, expect, err))
        good = _groups_cfg(hash_tag=["tenant"])
        good["store"] = cfg["store"]
        path = os.path.join(tmp, "good.json")
        with open(path, "w") as f:
            json.dump(good, f)
        rc, out, err = run_binary(["--check-config", path])
        eq(rc, 0, "a shared hash_tag loads (stderr %r)" % err)


test_groups_redis_two_processes.timeout = 120
test_groups_memory.timeout = 120
test_groups_cluster.timeout = 150


# --------------------------------------------------------------------------
# Penalties
# --------------------------------------------------------------------------

def _penalty_cfg():
    a = policy("upload", "/a", [limit(1, "1m", "fixed_window")], key=["user"])
    b = policy("distribute", "/b", [limit(10, "1m", "fixed_window")], key=["user"])
    free = policy("free", "/c", [limit(10, "1m", "fixed_window")], key=["user"])
    a["penalty"] = b["penalty"] = "hammering"
    pen = {"name": "hammering", "key": ["user"], "denials": 5, "within": "2s",
           "block": "1s",
           "deny": {"status": 403, "body": {"error": "blocked", "retry": "{retry_after}"}}}
    return config(a, b, free, penalties=[pen], workers=2)


def _penalty_on(store):
    with service(_penalty_cfg(), store) as svc:
        wait_window_start(svc, 60, 10 * SLOW)
        eq(svc.verdict(path="/a", user="u1")["allowed"], True, "first upload")
        for i in range(4):
            v = svc.verdict(path="/a", user="u1")
            eq((v["allowed"], v["blocked"], v.get("penalty")), (False, False, None),
               "denial %d before the penalty" % (i + 1))
        v = svc.verdict(path="/a", user="u1")
        eq((v["allowed"], v["blocked"], v.get("penalty"), v["status"]),
           (False, True, "hammering", 403), "the fifth denial blocks")
        # The upload limit itself stays denied past the block: the later of both.
        eq(v["body"], {"error": "blocked", "retry": str(-(-v["retry_after_ms"] // 1000))},
           "the penalty's deny body")
        check(v["retry_after_ms"] >= 1000, "retry_after_ms %r" % v["retry_after_ms"])

        # Blocked on every opted-in policy, nothing counted; others unaffected.
        for _ in range(3):
            v = svc.verdict(path="/b", user="u1")
            eq((v["allowed"], v["blocked"], v.get("penalty"), v["status"]),
               (False, True, "hammering", 403), "distribute while blocked")
            check(0 < v["retry_after_ms"] <= 1000, "time left %r" % v["retry_after_ms"])
            eq(v["body"], {"error": "blocked", "retry": "1"}, "the penalty's deny body")
        eq(svc.verdict(path="/c", user="u1")["allowed"], True, "a policy without the penalty")
        v = svc.verdict(path="/b", user="u2")
        eq((v["allowed"], v["remaining"]), (True, 9), "another user")
        v = svc.verdict(path="/b", user="u1")

        left = v["retry_after_ms"] / 1000.0
        v = svc.verdict(path="/b", user="u2")
        eq((v["allowed"], v["remaining"]), (True, 8), "another user, counted")
        if left > 0.3:
            time.sleep(left - 0.25)
            v = svc.verdict(path="/b", user="u1")
            eq((v["allowed"], v["blocked"]), (False, True), "still blocked before its end")
        time.sleep(0.35)
        v = svc.verdict(path="/b", user="u1")
        eq((v["allowed"], v["blocked"], v["remaining"]), (True, False, 9),
           "after the block: allowed, nothing was counted while blocked")
        v = svc.verdict(path="/a", user="u1")
        eq((v["allowed"], v["blocked"]), (False, False), "upload still at its limit, not blocked")


def test_penalty_redis():
    _penalty_on("redis")


def test_penalty_memory():
    _penalty_on("memory")


test_penalty_redis.timeout = 60
test_penalty_memory.timeout = 60


# --------------------------------------------------------------------------
# IETF headers as RFC 8941 structured fields
# --------------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]*")
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_INT = re.compile(r"-?[0-9]{1,15}")


def _sf_item(s, i):
    """Parses one RFC 8941 item (string or token bare item, integer
    params) at s[i:]; returns ((value, {param: int}), next index)."""
    if s[i:i + 1] == '"':
        out = []
        i += 1
        while True:
            check(i < len(s), "unterminated string in %r" % s)
            ch = s[i]
            if ch == "\\":
                check(s[i + 1:i + 2] in ('"', "\\"), "bad escape in %r" % s)
                out.append(s[i + 1])
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                check(0x20 <= ord(ch) <= 0x7e, "bad byte in %r" % s)
                out.append(ch)
                i += 1
        value = "".join(out)
    else:
        m = _TOKEN.match(s, i)
        check(m is not None, "no bare item at %d of %r" % (i, s))
        value, i = m.group(0), m.end()
    params = {}
    while s[i:i + 1] == ";":
        i += 1
        while s[i:i + 1] == " ":
            i += 1
        m = _KEY.match(s, i)
        check(m is not None, "bad parameter key at %d of %r" % (i, s))
        key, i = m.group(0), m.end()
        check(s[i:i + 1] == "=", "parameter %s without a value in %r" % (key, s))
        m = _INT.match(s, i + 1)
        check(m is not None, "parameter %s is no integer in %r" % (key, s))
        check(key not in params, "parameter %s repeated in %r" % (key, s))
        params[key], i = int(m.group(0)), m.end()
    return (value, params), i


def _sf_list(s):
    """Parses an RFC 8941 list of items, strictly; returns [(value, params)]."""
    items, i = [], 0
    check(s == s.strip(" "), "surrounding spaces in %r" % s)
    while True:
        item, i = _sf_item(s, i)
        items.append(item)
        if i == len(s):
            return items
        while s[i:i + 1] in (" ", "\t"):
            i += 1
        check(s[i:i + 1] == ",", "expected ',' at %d of %r" % (i, s))
        i += 1
        while s[i:i + 1] in (" ", "\t"):
            i += 1
        check(i < len(s), "trailing ',' in %r" % s)


def _ietf_on(store):
    cfg = _groups_cfg(headers="ietf")
    cfg["policies"][1]["limits"].append(limit(5, "1s", "gcra"))
    with service(cfg, store) as svc:
        wait_window_start(svc, 60, 5 * SLOW)
        for n in range(3):
            v = svc.verdict(path="/r/x", tenant="acme")
        eq(v["policies"], ["account", "route"], "applied policies")
        policy_items = _sf_list(v["headers"]["RateLimit-Policy"])
        names = [name for name, _ in policy_items]
        eq(sorted(names), ["account-1m", "route-1m", "route-1s"], "RateLimit-Policy items")
        eq(len(set(names)), len(names), "unique item names")
        got = {name: p for name, p in policy_items}
        eq(got["account-1m"], {"q": 100, "w": 60}, "account item")
        eq(got["route-1m"], {"q": 30, "w": 60}, "route minute item")
        eq(got["route-1s"], {"q": 5, "w": 1}, "route second item")
        state = _sf_list(v["headers"]["RateLimit"])
        eq(len(state), 1, "RateLimit holds one item")
        name, params = state[0]
        eq(sorted(params), ["r", "t"], "RateLimit parameters")
        eq(name, "route-1s", "the item with the fewest remaining")
        eq(params["r"], 2, "its remaining (GCRA burst 5 after 3)")
        eq(v["policy"], "route", "the deciding policy has the fewest remaining")


def test_ietf_headers_two_groups_redis():
    _ietf_on("redis")


def test_ietf_headers_two_groups_memory():
    _ietf_on("memory")
