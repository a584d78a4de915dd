"""Decisions whose parts fall on different masters of a real Redis Cluster
(3 masters + 3 replicas): gRPC descriptors of one request are one
decision; their keys hash to slots of different masters. The cluster
store reserves on each master in slot order and refunds the admitted
parts when one denies (protocol v3's negative cost): the decision is
admitted only within every limit, and a denial spends nothing."""

from cluster import cluster, decision_tag, key_slot
from harness import Ratelimitd, eq
from test_grpc import call, desc, dpolicy, fixed, grpc_cfg, rpc, target

EXACT_TIMEOUT_MS = 1000


def _policies(account_n, route_n):
    a = dpolicy("account", "edge", [("account", None)], ["descriptor.account"],
                fixed(account_n, "1h"))
    r = dpolicy("route", "edge", [("account", None), ("route", None)],
                ["descriptor.account", "descriptor.route"], fixed(route_n, "1h"))
    return a, r


def _account(c, account_first, start=0):
    """An account whose "account" key and whose "route" key (route /x)
    live on different masters, the account's slot first (lower) when
    account_first, else the route's."""
    for i in range(start, start + 100000):
        acc = "a%d" % i
        sa = key_slot(decision_tag("account", acc))
        sr = key_slot(decision_tag("route", acc, "/x"))
        if c.master_of_slot(sa) is not c.master_of_slot(sr) and (sa < sr) == account_first:
            return acc
    raise AssertionError("no account found")


def _descs(acc, hits=None):
    return [desc([["account", acc]], hits=hits), desc([["account", acc], ["route", "/x"]])]


def test_cluster_cross_master_layers():
    """Account 10/h and route 2/h of one request on two masters, in both
    slot orders: two calls OK (remaining 8 and 0), the third OVER_LIMIT
    on the route alone, and the account still has 8 left (the denial was
    refunded where the account reserved first, never spent where the
    route denied first)."""
    cfg = grpc_cfg(*_policies(10, 2), workers=1)
    with cluster() as c:
        cfg["store"] = c.store_config(timeout_ms=EXACT_TIMEOUT_MS)
        d = Ratelimitd(cfg).start()
        try:
            for first in (True, False):
                acc = _account(c, first)
                res = rpc(call(cfg, _descs(acc)), call(cfg, _descs(acc)), call(cfg, _descs(acc)),
                          call(cfg, [desc([["account", acc]], hits=0)]))
                what = "account first" if first else "route first"
                eq([r.get("overall", r) for r in res], ["OK", "OK", "OVER_LIMIT", "OK"],
                   "%s: codes" % what)
                eq([s["remaining"] for s in res[1]["statuses"]], [8, 0],
                   "%s: remaining after two" % what)
                eq([s["code"] for s in res[2]["statuses"]], ["OK", "OVER_LIMIT"],
                   "%s: the route denies" % what)
                eq(res[3]["statuses"][0]["remaining"], 8,
                   "%s: the denial spent nothing on the account" % what)
        finally:
            d.stop()
            d.cleanup()


test_cluster_cross_master_layers.timeout = 120


def test_cluster_cross_master_exact():
    """Two processes, 32 concurrent streams each, 400 calls of one request
    whose account (100/h) and route (50/h) keys live on different
    masters: exactly 50 admitted, and the account then has exactly 50
    left (every denial refunded, nothing admitted over either limit)."""
    with cluster() as c:
        acc = _account(c, True)
        targets, ds = [], []
        try:
            for _ in range(2):
                cfg = grpc_cfg(*_policies(100, 50), workers=2)
                cfg["store"] = c.store_config(timeout_ms=EXACT_TIMEOUT_MS)
                ds.append(Ratelimitd(cfg).start())
                targets.append(target(cfg))
            r = rpc({"op": "hammer", "targets": targets, "conns": 2, "streams": 32, "n": 400,
                     "domain": "edge", "descriptors": _descs(acc)})[0]
            eq(r["errors"], [], "no call failed")
            eq((r["ok"], r["over"]), (50, 350), "admitted exactly the route's limit")
            left = rpc(call(cfg, [desc([["account", acc]], hits=0)]))[0]
            eq(left["statuses"][0]["remaining"], 50, "the account after 50 admitted")
        finally:
            for d in ds:
                d.stop()
                d.cleanup()


test_cluster_cross_master_exact.timeout = 150
