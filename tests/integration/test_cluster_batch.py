"""Batching on a real Redis Cluster (3 masters + 3 replicas): the decisions
a worker starts in one loop pass go to each master as one script call
(declared keys of several slots are refused by Redis 7.0 even with
allow-cross-slot-keys, so a cluster batch carries its keys in ARGV); a
decision of a batch that meets a moving slot answers NOTLOCAL with nothing
of it run (it reads all its keys before writing) and goes alone, meeting
ASK, TRYAGAIN and MOVED: every count stays exact."""

import collections
import time

from cluster import Load, cluster, daemons, key_slot, wait_window
from harness import SLOW, check, config, eq, limit, policy, wait_until
from test_cluster import _admitted, _check_redirected, _tenant_on

EXACT_TIMEOUT_MS = 1000


def _fcall_calls(c):
    """FCALL calls so far, summed over the masters (commandstats)."""
    total = 0
    for m in c.masters():
        v = m.info("commandstats").get("cmdstat_fcall")
        if v is not None:
            total += int(v.split("calls=")[1].split(",")[0])
    return total


def test_cluster_batch_one_call_per_master():
    """48 clients on one process with one worker: 4,000 requests over 40
    keys on all three masters (100 each, limit 60 per hour) admit exactly
    60 per key, in fewer script calls than decisions (batches)."""
    cfg = config(policy("b", "/*", [limit(60, "1h", "fixed_window")], key=["tenant"]),
                 workers=1)
    with cluster() as c:
        cfg["store"] = c.store_config(timeout_ms=EXACT_TIMEOUT_MS)
        keys = ["k%02d" % i for i in range(40)]
        homes = {c.master_of_slot(key_slot("{b|%s}" % k)).port for k in keys}
        eq(len(homes), 3, "masters holding the 40 keys")
        with daemons(cfg) as ds:
            wait_window(c.nodes[0], 3600, 30 * SLOW)
            calls0 = _fcall_calls(c)
            res = Load([ds[0].port], 48, lambda i: {"path": "/x", "tenant": keys[i % 40]},
                       total=4000).start().wait()
            calls = _fcall_calls(c) - calls0
        admitted = _admitted(res, "40 keys")
        eq(sorted(admitted.items()), [(k, 60) for k in keys], "admitted per key")
        check(calls < 4000 * 0.8, "script calls %d for 4000 decisions (batched)" % calls)


test_cluster_batch_one_call_per_master.timeout = 150


HOT_LIMIT = 8000


def test_cluster_batch_meets_reshard():
    """The hot key's slot moves to another master while 32 clients on two
    processes send 5 of every 7 requests to it (8,000 per hour: high
    enough that the key is still under its limit while the slot moves, so
    its decisions still reach Redis), the rest to 20 neighbour keys of the
    same source master (20 per hour each), from before the move until
    2,000 requests after it and the hot key past its limit: batches
    that meet the moving slot answer NOTLOCAL for the decisions it
    touches, which go alone and meet MOVED (and ASK / TRYAGAIN); no error or degraded
    verdict reaches a client, the hot key admits exactly its limit and each
    neighbour exactly 20."""
    cfg = config(policy("hot", "/x", [limit(HOT_LIMIT, "1h", "fixed_window")], key=["tenant"]),
                 policy("nb", "/n", [limit(20, "1h", "fixed_window")], key=["tenant"]),
                 workers=2)
    with cluster() as c:
        cfg["store"] = c.store_config(timeout_ms=EXACT_TIMEOUT_MS)
        slot = key_slot("{hot|h}")
        source = c.master_of_slot(slot)
        target = [m for m in c.masters() if m is not source][0]
        nbs, start = [], 0
        while len(nbs) < 20:
            nbs.append(_tenant_on(c, source, "nb", "n", start))
            start = int(nbs[-1][1:]) + 1
        # 5 of every 7 requests on the hot key, the others round the
        # neighbours.

        def body(i):
            if i % 7 < 5:
                return {"path": "/x", "tenant": "h"}
            return {"path": "/n", "tenant": nbs[(i // 7 * 2 + i % 7 - 5) % 20]}
        with daemons(cfg, instances=2) as ds:
            wait_window(c.nodes[0], 3600, 30 * SLOW)
            load = Load([d.port for d in ds], 32, body).start()
            wait_until(lambda: load.count() >= 700, 20.0 * SLOW, interval=0.005,
                       what="700 decisions before the move")
            _, moved = c.migrate_slot(slot, target, pause=0.2)
            n_move = load.count()
            # the hot key takes 5 of every 7 requests: past its limit by 100
            past = (HOT_LIMIT + 100) * 7 // 5 + 7
            wait_until(lambda: load.count() >= max(n_move + 2000, past), 40.0 * SLOW,
                       interval=0.01, what="2000 decisions after the move")
            results = load.stop()
        sent = collections.Counter((b["path"], b["tenant"]) for _, _, _, _, b in results)
        check(sent[("/x", "h")] >= HOT_LIMIT + 100 and min(sent[("/n", t)] for t in nbs) >= 25,
              "requests per key (%r)" % sent.most_common(3))
        eq(moved, 1, "keys migrated")
        check(c.master_of_slot(slot) is target, "the slot lives on the target")
        admitted = _admitted(results, "reshard", key=lambda b: (b["path"], b["tenant"]))
        eq(admitted[("/x", "h")], HOT_LIMIT, "hot key admitted across the move")
        eq(sorted(admitted[("/n", t)] for t in nbs), [20] * 20, "admitted per neighbour")
        _check_redirected(results, source, ("NOTLOCAL", "MOVED"), "source")


test_cluster_batch_meets_reshard.timeout = 150


def test_cluster_batch_lone_gcra_meets_reshard():
    """The lone-GCRA short way (one SET ... NX GET for a missing key)
    across a slot move: every request of 32 clients on two processes goes
    to a new key of one slot (one tenant, its routes; the policy's
    hash_tag is the tenant), three requests per key at once, against 1 per
    hour: keys the source no longer holds, or never held, answer NOTLOCAL
    in a batch and ASK alone and are decided on the target. Each key
    admits exactly one, before, during and after the move, and no error or
    degraded verdict reaches a client."""
    per_key = policy("lone", "/u/{route}", [limit(1, "1h", "gcra", burst=1)],
                     key=["tenant", "path.route"])
    per_key["hash_tag"] = ["tenant"]
    cfg = config(per_key, workers=2)
    with cluster() as c:
        cfg["store"] = c.store_config(timeout_ms=EXACT_TIMEOUT_MS)
        slot = key_slot("{h}")
        source = c.master_of_slot(slot)
        target = [m for m in c.masters() if m is not source][0]
        with daemons(cfg, instances=2) as ds:
            load = Load([d.port for d in ds], 32,
                        lambda i: {"path": "/u/r%d" % (i // 3), "tenant": "h"}).start()
            wait_until(lambda: load.count() >= 600, 20.0 * SLOW, interval=0.005,
                       what="600 decisions before the move")
            _, moved = c.migrate_slot(slot, target, pause=0.2)
            n_move = load.count()
            wait_until(lambda: load.count() >= n_move + 1500, 40.0 * SLOW, interval=0.01,
                       what="1500 decisions after the move")
            results = load.stop()
        check(moved > 0, "keys migrated (%d)" % moved)
        check(c.master_of_slot(slot) is target, "the slot lives on the target")
        admitted = _admitted(results, "lone gcra", key=lambda b: b["path"])
        sent = collections.Counter(b["path"] for _, _, _, _, b in results)
        full = [p for p, n in sent.items() if n == 3]
        check(len(full) >= 600, "keys sent three times (%d)" % len(full))
        eq(collections.Counter(admitted[p] for p in full), {1: len(full)},
           "admitted per key of three requests")
        check(max(admitted.values()) == 1, "no key admitted twice")
        _check_redirected(results, source, ("NOTLOCAL", "ASK", "MOVED"), "source")


test_cluster_batch_lone_gcra_meets_reshard.timeout = 150
