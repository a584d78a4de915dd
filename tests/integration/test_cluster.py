"""ratelimitd on a real Redis Cluster (3 masters + 3 replicas, started per
test by cluster.py): readiness per node, keys spread over the masters,
exact counts from three processes, resharding, failover and a node
restart under load, ACL users and TLS."""

import collections
import os
import tempfile
import time
import urllib.parse

from cluster import (Load, cluster, daemons, errorstats, key_slot, make_ca, wait_window)
from harness import SLOW, Ratelimitd, check, config, eq, limit, policy, wait_until

EXACT_TIMEOUT_MS = 1000   # exactness runs: a slow CI box must not degrade a decision
FAIL_TIMEOUT_MS = 200     # failure runs: the deadline every reply is held to


def _ready(d):
    r = d.request("GET", "/ready", timeout=2.0)
    return r.status, r.json


def _wait_ready_all_up(d, c):
    """/ready 200 with every running cluster node "up"."""
    want = {n.addr: "up" for n in c.running()}

    def ok():
        status, body = _ready(d)
        return status == 200 and body.get("store") == "connected" and \
            {k: v for k, v in body["nodes"].items() if k in want} == want
    wait_until(ok, 10.0 * SLOW, interval=0.05, what="/ready 200 with every node up")


def _tenant_on(c, master, policy_name, prefix="t", start=0):
    """A tenant whose key for policy_name lives on master."""
    for i in range(start, start + 100000):
        t = "%s%d" % (prefix, i)
        if c.master_of_slot(key_slot("{%s|%s}" % (policy_name, t))) is master:
            return t
    raise AssertionError("no tenant found")


def _keys(node):
    c = node.client()
    try:
        return c.call("KEYS", "*")
    finally:
        c.close()


# --------------------------------------------------------------------------
# Readiness, routing, spread
# --------------------------------------------------------------------------

def test_cluster_ready_routing_and_spread():
    """/ready lists all six nodes up; 300 tenants (hostile ones included)
    each get one key, on the master that owns its slot, spread over all
    three masters; the slot is the one Redis computes, from the braced
    tag only; every node holds the decision library, with no warning."""
    hostile = ["a{b}c", "}{", "x:y", "with space", "tab\there", "\x01\x7f", "{",
               "%7B", "u" * 300, "\u00e9t\u00e9"]
    tenants = ["tenant-%03d" % i for i in range(290)] + hostile
    cfg = config(policy("p", "/*", [limit(10, "1h", "fixed_window")], key=["tenant"]),
                 workers=2, store=None)
    with cluster() as c:
        cfg["store"] = c.store_config(timeout_ms=EXACT_TIMEOUT_MS)
        with daemons(cfg) as (d,):
            status, body = _ready(d)
            eq(status, 200, "/ready status")
            eq(body["status"], "ready", "/ready status field")
            eq(body["store"], "connected", "/ready store field")
            eq(body["nodes"], {n.addr: "up" for n in c.nodes}, "/ready nodes")
            cl = d.client()
            for t in tenants:
                r = cl.decide(path="/x", tenant=t)
                eq(r.status, 200, "decide status for %r" % t)
                eq((r.json["allowed"], r.json["degraded"]), (True, False),
                   "verdict for %r" % t)
            cl.close()
            # The library is loaded on the masters and replicated to the
            # replicas (so a promoted one has it); a replica's refusal of
            # the load (READONLY) is not logged as a failure.
            for n in c.nodes:
                libs = n.call("FUNCTION", "LIST", "LIBRARYNAME", "ratelimitd_*")
                eq(len(libs), 1, "the library on %s" % n.addr)
            log = open(d.log_path, errors="replace").read()
            check("FUNCTION LOAD" not in log, "no FUNCTION LOAD warning: %s" % log[-500:])
        per_master = {}
        total = 0
        for m in c.masters():
            keys = _keys(m)
            per_master[m.port] = len(keys)
            total += len(keys)
            for k in keys:
                tag = k[k.index("{") + 1:k.index("}")]
                eq(k, "rl:{%s}:lf1h" % tag, "key layout")
                check(tag.startswith("p|"), "tag %r" % tag)
                eq(key_slot(k), int(m.call("CLUSTER", "KEYSLOT", k)), "slot of %r" % k)
                check(c.master_of_slot(key_slot(k)) is m, "%r lives on its slot's master" % k)
        eq(total, len(tenants), "one key per tenant, none lost or merged")
        for port, n in per_master.items():
            check(n >= len(tenants) // 6, "master %d holds %d of %d keys (%r)" %
                  (port, n, total, per_master))
        # Hostile identifiers never open a second tag: exactly one '{' and
        # one '}' per key, and the tag decodes back to the tenant.
        tags = set()
        for m in c.masters():
            for k in _keys(m):
                eq((k.count("{"), k.count("}")), (1, 1), "braces in %r" % k)
                tags.add(k[k.index("{") + 3:k.index("}")])
        for t in hostile:
            enc = urllib.parse.quote(t.encode(), safe="._~@+-").replace("%7E", "~")
            if len(enc) <= 128:
                check(enc in tags, "encoded tenant %r among the tags" % enc)


test_cluster_ready_routing_and_spread.timeout = 90


# --------------------------------------------------------------------------
# Exactness
# --------------------------------------------------------------------------

def _admitted(results, what, key=lambda body: body["tenant"]):
    """Counts admitted verdicts per key(request body) (the tenant); every
    reply must be a store verdict."""
    admitted = collections.Counter()
    for _, _, status, js, body in results:
        eq(status, 200, "%s: HTTP status (%r)" % (what, js))
        eq(js["degraded"], False, "%s: degraded (%r)" % (what, js))
        if js["allowed"]:
            admitted[key(body)] += 1
    return admitted


def _check_redirected(results, node, answered, what=""):
    """node's INFO errorstats counted every error of answered (NOTLOCAL,
    ASK, TRYAGAIN, MOVED...) at least once, and no reply of results took
    longer than a store deadline (EXACT_TIMEOUT_MS) plus slack."""
    errs = errorstats(node)
    for name in answered:
        check(errs.get(name, 0) > 0, "%s answered %s (%r)" % (what or "node", name, errs))
    lat = max(r[1] - r[0] for r in results)
    check(lat < EXACT_TIMEOUT_MS / 1000.0 + 0.5 * SLOW, "slowest reply %.3fs" % lat)


def test_cluster_exact_three_processes():
    """Three ratelimitd, 48 clients: 3,000 requests on one key limited to
    100 per minute admit exactly 100; then 50 keys at once (130 requests
    each, 6,500 in all) admit exactly 100 each, with the keys on all three
    masters."""
    cfg = config(policy("exact", "/*", [limit(100, "1m", "fixed_window")], key=["tenant"]),
                 workers=2)
    with cluster() as c:
        cfg["store"] = c.store_config(timeout_ms=EXACT_TIMEOUT_MS)
        with daemons(cfg, instances=3) as ds:
            ports = [d.port for d in ds]
            # Both runs within one minute window (each key has its own).
            wait_window(c.nodes[0], 60, 15 * SLOW)
            res = Load(ports, 48, lambda i: {"path": "/x", "tenant": "one"}, total=3000)
            admitted = _admitted(res.start().wait(), "one key")
            eq(admitted["one"], 100, "admitted of 3000 on one key (3 processes, 48 clients)")

            keys = ["k%02d" % i for i in range(50)]
            res = Load(ports, 48, lambda i: {"path": "/x", "tenant": keys[i % 50]}, total=6500)
            admitted = _admitted(res.start().wait(), "50 keys")
            eq(sorted(admitted.items()), [(k, 100) for k in keys], "admitted per key")
            homes = {c.master_of_slot(key_slot("{exact|%s}" % k)).port for k in keys}
            eq(len(homes), 3, "masters holding the 50 keys")


test_cluster_exact_three_processes.timeout = 150


# --------------------------------------------------------------------------
# Resharding
# --------------------------------------------------------------------------

def test_cluster_resharding_under_load():
    """The hot key's slot moves to another master (SETSLOT IMPORTING /
    MIGRATING, MIGRATE, SETSLOT NODE, with pauses so decisions meet the
    migration) while 24 clients on two processes send 3,000 requests
    against 1,000 per hour: no error and no degraded verdict reaches a
    client, ASK, TRYAGAIN and MOVED were all answered, and exactly 1,000
    are admitted, spanning the move."""
    # A penalty that never blocks gives each decision a second key (absent
    # until the first denial), so decisions meet the migration half-done
    # (ASK, TRYAGAIN): one key alone moves in one step.
    hot = policy("hot", "/*", [limit(1000, "1h", "fixed_window")], key=["tenant"])
    hot["penalty"], hot["hash_tag"] = "never", ["tenant"]
    cfg = config(hot, workers=2, penalties=[{"name": "never", "key": ["tenant"],
                                             "denials": 1000000, "within": "1h",
                                             "block": "1s"}])
    with cluster() as c:
        cfg["store"] = c.store_config(timeout_ms=EXACT_TIMEOUT_MS)
        slot = key_slot("{h}")
        source = c.master_of_slot(slot)
        target = [m for m in c.masters() if m is not source][0]
        key = "rl:{h}hot|h:lf1h"
        with daemons(cfg, instances=2) as ds:
            wait_window(c.nodes[0], 3600, 30 * SLOW)
            load = Load([d.port for d in ds], 24, lambda i: {"path": "/x", "tenant": "h"},
                        total=3000).start()

            def count_on_source():
                # The fixed window's count: its entry's bytes 12..18
                # (lua/fixed_window.lua). Replies trail admissions by up to
                # one per client in flight, so wait past 200 for 200.
                v = source.call("EVAL", "local v = redis.call('GET', KEYS[1]) return v and "
                                "select(4, struct.unpack('<BI5I6I7', v)) or 0", 1, key)
                return v >= 300
            wait_until(count_on_source, 20.0 * SLOW, interval=0.005,
                       what="300 admissions before the move")
            t_start = time.monotonic()
            _, moved = c.migrate_slot(slot, target, pause=0.15)
            t_end = time.monotonic()
            results = load.wait()
        eq(moved, 1, "keys migrated")
        check(c.master_of_slot(slot) is target, "the slot lives on the target")
        eq(int(target.call("CLUSTER", "COUNTKEYSINSLOT", slot)), 2,
           "keys in the slot on target (the state, the penalty's count)")
        after = [r for r in results if r[0] > t_end]
        before = [r for r in results if r[1] < t_start]
        check(len(before) >= 200 and len(after) >= 100,
              "requests before (%d) and after (%d) the move" % (len(before), len(after)))
        admitted = _admitted(results, "resharding")
        eq(admitted["h"], 1000, "admitted of 3000 across the move")
        _check_redirected(results, source, ("ASK", "MOVED"), "source")
        _check_redirected(results, target, ("TRYAGAIN",), "target")


test_cluster_resharding_under_load.timeout = 120


# --------------------------------------------------------------------------
# Failover and restart
# --------------------------------------------------------------------------

FAILURE_CFG = config(
    policy("open", "/open/*", [limit(1000000, "1m", "fixed_window")], key=["tenant"],
           failure_mode="open"),
    policy("closed", "/closed/*", [limit(1000000, "1m", "fixed_window")], key=["tenant"],
           failure_mode="closed"),
    policy("exact", "/exact/*", [limit(100, "1h", "fixed_window")], key=["tenant"]),
    workers=2)


def _hot_tenant(c, master):
    """A tenant whose "open" and "closed" keys both live on master."""
    for i in range(100000):
        t = "hot%d" % i
        if all(c.master_of_slot(key_slot("{%s|%s}" % (p, t))) is master
               for p in ("open", "closed")):
            return t
    raise AssertionError("no tenant found")


def _classify(results, what):
    """Checks each reply's shape and deadline; returns [(t_sent, degraded)]."""
    out = []
    limit_s = FAIL_TIMEOUT_MS / 1000.0 + 0.5 * SLOW  # slack for a loaded test box
    for t0, t1, status, js, body in results:
        check(t1 - t0 <= limit_s, "%s: a reply took %.3fs (deadline %d ms)" %
              (what, t1 - t0, FAIL_TIMEOUT_MS))
        check(js is not None, "%s: reply without JSON (status %d)" % (what, status))
        closed = body["path"].startswith("/closed/")
        if js.get("degraded"):
            if closed:
                eq((status, js.get("code"), js.get("allowed")), (503, "STORE_001", False),
                   "%s: degraded closed policy" % what)
            else:
                eq((status, js.get("allowed"), js.get("status")), (200, True, 200),
                   "%s: degraded open policy" % what)
        else:
            eq((status, js.get("allowed"), js.get("degraded")), (200, True, False),
               "%s: normal verdict (%r)" % (what, js))
        out.append((t0, bool(js.get("degraded")), closed))
    return out


def _exact_on(c, ds, master, prefix):
    """1,000 requests from 16 clients on a fresh key living on master:
    exactly 100 admitted, none degraded."""
    t = _tenant_on(c, master, "exact", prefix=prefix)
    wait_window(master, 3600, 15 * SLOW)
    res = Load([d.port for d in ds], 16, lambda i: {"path": "/exact/x", "tenant": t},
               total=1000).start().wait()
    eq(_admitted(res, "exact after recovery")[t], 100, "admitted of 1000 on %s" % master.addr)


def test_cluster_failover_under_load():
    """SIGKILL the master owning a hot key while 12 clients on two processes
    decide on it (open and closed policies): every reply comes back within
    the deadline; while no master owns the slot, open admits degraded and
    closed answers 503 STORE_001; within 5 s of the replica's promotion
    every decision is normal again, with no restart; /ready stays 200 once
    the slot has a master again; the count on the promoted master is
    exact."""
    cfg = dict(FAILURE_CFG)
    with cluster() as c:
        cfg["store"] = c.store_config(timeout_ms=FAIL_TIMEOUT_MS, refresh_interval_ms=1000)
        victim = c.masters()[1]
        replica = c.replicas_of(victim)[0]
        hot = _hot_tenant(c, victim)
        with daemons(cfg, instances=2) as ds:
            pids = [d.pid for d in ds]
            load = Load([d.port for d in ds], 12,
                        lambda i: {"path": ("/open/x", "/closed/x")[i % 2], "tenant": hot}).start()
            time.sleep(1.0)
            t_kill = time.monotonic()
            victim.kill()
            t_promo = c.wait_promoted(replica)
            wait_until(lambda: load.results and load.results[-1][0] > t_promo + 6.0,
                       20.0 * SLOW, interval=0.1, what="6 s of load after the promotion")
            results = load.stop()
            rows = _classify(results, "failover")
            degraded = [r for r in rows if r[1]]
            check(any(not r[2] for r in degraded) and any(r[2] for r in degraded),
                  "degraded verdicts of both policies while no master (%d)" % len(degraded))
            check(all(t_kill - 0.05 <= t <= t_promo + 5.0 for t, _, _ in degraded),
                  "degraded only between the kill and 5 s after the promotion "
                  "(last at +%.2fs)" % (max(t for t, _, _ in degraded) - t_promo))
            late = [r for r in rows if r[0] > t_promo + 5.0]
            check(len(late) > 50, "decisions in the last second (%d)" % len(late))
            first_ok = min([t for t, d, _ in rows if t > t_kill and not d], default=None)
            check(first_ok is not None and first_ok <= t_promo + 5.0,
                  "normal again %.2fs after the promotion" % ((first_ok or 0) - t_promo))
            eq([d.pid for d in ds], pids, "same ratelimitd processes")
            for d in ds:
                eq(d.proc.poll(), None, "ratelimitd still running")
                status, body = _ready(d)
                eq((status, body["store"], body["nodes"].get(replica.addr)),
                   (200, "connected", "up"), "/ready after the failover")
            _exact_on(c, ds, replica, "after-failover-")
    print("failover: promoted %.2fs after the kill; %d replies, %d degraded" % (
        t_promo - t_kill, len(rows), len(degraded)))


test_cluster_failover_under_load.timeout = 120


def test_cluster_node_restart():
    """A master restarts (SIGTERM, started again on its port and cluster
    config) under load: decisions on its keys stay within the deadline,
    degraded (disconnected, then CLUSTERDOWN while it rejoins) and normal
    again within 10 s; /ready shows the node down, then up; no restart of
    ratelimitd."""
    cfg = dict(FAILURE_CFG)
    with cluster() as c:
        cfg["store"] = c.store_config(timeout_ms=FAIL_TIMEOUT_MS, refresh_interval_ms=1000)
        victim = c.masters()[2]
        hot = _hot_tenant(c, victim)
        with daemons(cfg) as (d,):
            load = Load([d.port], 8,
                        lambda i: {"path": ("/open/x", "/closed/x")[i % 2], "tenant": hot}).start()
            time.sleep(0.5)
            t_stop = time.monotonic()
            victim.stop()
            wait_until(lambda: _ready(d)[1]["nodes"].get(victim.addr) == "down", 5.0 * SLOW,
                       interval=0.02, what="/ready to show the node down")
            victim.start()
            t_up = time.monotonic()

            def normal_again():
                rows = [r for r in load.results if r[0] > time.monotonic() - 0.5]
                return len(rows) > 20 and not any(r[3] and r[3].get("degraded") for r in rows)
            wait_until(normal_again, 10.0 * SLOW, interval=0.1, what="normal decisions again")
            t_ok = time.monotonic()
            results = load.stop()
            rows = _classify(results, "restart")
            check(any(dg for t, dg, _ in rows if t > t_stop), "degraded verdicts while down")
            _wait_ready_all_up(d, c)
    print("restart: node back %.2fs after the stop, decisions normal %.2fs after it was back" % (
        t_up - t_stop, t_ok - t_up))


test_cluster_node_restart.timeout = 90


# --------------------------------------------------------------------------
# AUTH and TLS
# --------------------------------------------------------------------------

def test_cluster_acl_user():
    """Every node allows only an ACL user: with store.username/password
    ratelimitd connects to all six and decides on all three masters; with
    a wrong password /ready is 503 with every node down and decisions are
    degraded; neither password reaches a log."""
    user, password, wrong = "limiter", "acl-pw-5821", "acl-wrong-9034"
    cfg = config(policy("p", "/*", [limit(5, "1h")], key=["tenant"]), workers=2)
    with cluster(user=user, password=password) as c:
        cfg["store"] = c.store_config(timeout_ms=EXACT_TIMEOUT_MS)
        with daemons(cfg) as (d,):
            _wait_ready_all_up(d, c)
            for m in c.masters():
                t = _tenant_on(c, m, "p")
                r = d.request("POST", "/v1/decide", json_body={"path": "/a", "tenant": t})
                eq((r.status, r.json["allowed"], r.json["degraded"], r.json["remaining"]),
                   (200, True, False, 4), "decision on %s" % m.addr)
                eq(len(_keys(m)), 1, "key on %s" % m.addr)
        bad_cfg = dict(cfg, store=dict(cfg["store"], password=wrong))
        bad = Ratelimitd(bad_cfg, ["-v"])
        try:
            bad.start(ready=False)
            time.sleep(0.5 * SLOW)
            status, body = _ready(bad)
            eq((status, body["store"]), (503, "disconnected"), "/ready with a wrong password")
            check(set(body["nodes"].values()) == {"down"}, "nodes with a wrong password: %r" %
                  body["nodes"])
            r = bad.request("POST", "/v1/decide", json_body={"path": "/a", "tenant": "x"})
            eq((r.status, r.json["allowed"], r.json["degraded"]), (200, True, True),
               "decision with a wrong password")
            bad.stop()
            for path in (d.log_path, bad.log_path):
                log = open(path, errors="replace").read()
                check(password not in log and wrong not in log, "a password in %s" % path)
            check("WRONGPASS" in open(bad.log_path).read(), "the AUTH failure is logged")
        finally:
            bad.cleanup()


test_cluster_acl_user.timeout = 90


def test_cluster_tls():
    """A TLS-only cluster (TLS ports, bus and replication) with a test CA:
    ratelimitd connects to every node over TLS with a client certificate,
    verifying each node's IP address, and decides on all three masters."""
    tmp = tempfile.mkdtemp(prefix="rl-ca-")
    tls = make_ca(tmp)
    cfg = config(policy("p", "/*", [limit(5, "1h")], key=["tenant"]), workers=2)
    try:
        with cluster(tls=tls) as c:
            cfg["store"] = c.store_config(timeout_ms=EXACT_TIMEOUT_MS)
            with daemons(cfg) as (d,):
                _wait_ready_all_up(d, c)
                for m in c.masters():
                    t = _tenant_on(c, m, "p")
                    r = d.request("POST", "/v1/decide", json_body={"path": "/a", "tenant": t})
                    eq((r.status, r.json["allowed"], r.json["degraded"], r.json["remaining"]),
                       (200, True, False, 4), "decision on %s" % m.addr)
                    eq(len(_keys(m)), 1, "key on %s" % m.addr)
    finally:
        for f in os.listdir(tmp):
            os.remove(os.path.join(tmp, f))
        os.rmdir(tmp)


test_cluster_tls.timeout = 90
