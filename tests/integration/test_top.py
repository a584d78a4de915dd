"""GET /v1/admin/top: the keys of a policy decided most often denied, from
every worker's bounded summary, behind the admin key."""

import hashlib
import json
import time

from harness import (check, config, eq, hammer, limit, metric, policy, reload_config,
                     rss_kb, sanitizer_build, scrape, service)

KEY = "top-test-admin-key-0123456789"
AUTH = {"Authorization": "Bearer " + KEY}


def _cfg(workers=2, extra=()):
    return config(
        policy("api", "/api/*", [limit(3, "1h", "fixed_window")], key=["tenant", "path"]),
        policy("pay", "/pay/*", [limit(1, "1h", "fixed_window", block="1h")],
               key=["tenant"]),
        *extra,
        workers=workers,
        admin={"enabled": True, "key_sha256": hashlib.sha256(KEY.encode()).hexdigest()})


def _top(svc, query):
    r = svc.request("GET", "/v1/admin/top?" + query, headers=AUTH)
    eq(r.status, 200, "top status (%r)" % r.body[:300])
    return r.json


def _span_s(window_min, now):
    """window_s for a window at unix time now (topkeys.h rl_topkeys_span):
    exact up to 15m, beyond back to the start of a quarter-hour."""
    if window_min <= 15:
        return window_min * 60
    minute = int(now // 60)
    start = minute - window_min + 1
    return (minute - start // 15 * 15 + 1) * 60


def test_top_lists_denied_keys_merged_over_workers():
    """Hammered from four connections over two workers: acme (10 decisions,
    3 allowed, 7 denied) comes first with exact denied counts, then a key
    whose value needs encoding (shown decoded); beta (allowed only) is not
    listed, and allowed counts start at a key's first denial (the three
    before it are not counted); n cuts the list; a blocking policy's key
    says blocked; another policy's keys stay apart; windows over 15m say
    the quarter-hours they summed."""
    with service(_cfg(workers=2), "redis") as svc:
        bodies = ([{"tenant": "acme", "path": "/api/x"}] * 10 +
                  [{"tenant": "a b|c", "path": "/api/x"}] * 5 +
                  [{"tenant": "beta", "path": "/api/x"}] * 2 +
                  [{"tenant": "acme", "path": "/pay/x"}] * 3)
        rs, _ = hammer([svc.port], len(bodies), 4, lambda i: bodies[i])
        eq(sum(1 for r in rs if r.json["allowed"] is False), 7 + 2 + 2, "denied decisions")
        now = int(time.time())
        body = _top(svc, "policy=api&n=20&window=5m")
        eq((body["policy"], body["window_s"]), ("api", 300), "policy and window")
        keys = body["keys"]
        eq(body["tracked"], True, "tracked")
        eq([k["key"] for k in keys],
           [{"tenant": "acme", "path": "/api/x"}, {"tenant": "a b|c", "path": "/api/x"}],
           "keys, most denied first, none allowed only")
        eq([(k["denied"], k["allowed"], k["blocked"]) for k in keys],
           [(7, 0, False), (2, 0, False)], "denied, allowed, blocked")
        check(abs(keys[0]["last_denied_at"] - now) <= 5, "last_denied_at %r" % keys[0])
        eq(len(_top(svc, "policy=api&n=1")["keys"]), 1, "n=1")
        eq(_top(svc, "policy=api")["window_s"], 300, "default window")
        eq(_top(svc, "policy=api&window=15m")["window_s"], 900, "15m is exact")
        for w in (16, 30, 60):
            t0 = time.time()
            got = _top(svc, "policy=api&window=%dm" % w)
            check(got["window_s"] in (_span_s(w, t0), _span_s(w, time.time())),
                  "window %dm: window_s %r" % (w, got["window_s"]))
            check(w * 60 <= got["window_s"] <= (w + 14) * 60, "window %dm rounded up" % w)
            eq([(k["denied"], k["allowed"]) for k in got["keys"]], [(7, 0), (2, 0)],
               "counts over %dm" % w)
        pay = _top(svc, "policy=pay&window=1m")["keys"]
        eq([(k["key"], k["denied"], k["allowed"], k["blocked"]) for k in pay],
           [({"tenant": "acme"}, 2, 0, True)], "the blocked key of pay")


def test_top_refuses_bad_input():
    """Each bad parameter is a 422 naming it; no admin key: 401; admin
    disabled: 404."""
    with service(_cfg(workers=1), "memory") as svc:
        for query, code, field in (("", "VAL_001", "policy"),
                                   ("policy=nope", "VAL_002", "policy"),
                                   ("policy=api&n=0", "VAL_002", "n"),
                                   ("policy=api&n=101", "VAL_002", "n"),
                                   ("policy=api&n=x", "VAL_002", "n"),
                                   ("policy=api&n=", "VAL_002", "n"),
                                   ("policy=api&window=30s", "VAL_002", "window"),
                                   ("policy=api&window=61m", "VAL_002", "window"),
                                   ("policy=api&window=soon", "VAL_002", "window")):
            r = svc.request("GET", "/v1/admin/top?" + query, headers=AUTH)
            eq((r.status, r.json["code"]), (422, code), "status of %r" % query)
            check(r.json["error"].startswith(field + ":"), "error of %r names %s: %r"
                  % (query, field, r.json["error"]))
        eq(svc.request("GET", "/v1/admin/top?policy=api").status, 401, "no admin key")
        eq(len(_top(svc, "policy=api&n=100")["keys"]), 0, "nothing decided yet")
    cfg = _cfg(workers=1)
    del cfg["admin"]
    with service(cfg, "memory") as svc:
        eq(svc.request("GET", "/v1/admin/top?policy=api", headers=AUTH).status, 404,
           "admin disabled")


# Every table of a worker full (topkeys.h: 10 tables of 256 entries,
# 830,248 bytes with the directory) and the API's answers: under 1 MB.
MAX_KB = 1024
TABLES = 10


def test_top_summary_memory_is_bounded():
    """Ten policies (a worker's tables) each denied for 300 distinct
    keys on one worker, after 400 decisions that only allowed (which cost
    nothing): the summaries are full (n=100 answers 100 keys, each denied
    once) and resident memory grew by under 1 MB in all; an eleventh
    policy's denials are not tracked ("tracked": false) and are counted in
    ratelimitd_top_keys_untracked_total."""
    extra = [policy("p%d" % i, "/p%d/*" % i, [limit(1, "1h", "fixed_window")],
                    key=["tenant"]) for i in range(TABLES - 1)]
    cfg = _cfg(workers=1, extra=extra)
    cfg["deny_cache"] = {"entries": 0}  # its entries would grow RSS too
    with service(cfg, "redis") as svc:
        paths = ["/api/x", "/pay/x"] + ["/p%d/x" % i for i in range(TABLES - 2)]
        # Warm: connections and buffers, every key allowed once.
        warm = [{"tenant": "w%d" % i, "path": paths[i % TABLES]} for i in range(400)]
        hammer([svc.port], len(warm), 4, lambda i: warm[i])
        _top(svc, "policy=p0&n=100")
        time.sleep(0.5)
        before = rss_kb(svc.d.proc.pid)
        total = TABLES * 300 * 4
        # Each key four times: the api policy (3 an hour) denies the
        # fourth, the others the second.
        hammer([svc.port], total, 4,
               lambda i: {"tenant": "k%d" % (i // 4 // TABLES),
                          "path": paths[(i // 4) % TABLES]})
        for name in ["api", "pay"] + ["p%d" % i for i in range(TABLES - 2)]:
            body = _top(svc, "policy=%s&n=100&window=60m" % name)
            eq((len(body["keys"]), body["tracked"]), (100, True), "keys of %s" % name)
            want = 1 if name == "api" else 3
            eq({k["denied"] for k in body["keys"]}, {want}, "denials of %s" % name)
        time.sleep(0.5)
        after = rss_kb(svc.d.proc.pid)
        print("VmRSS %d kB before, %d kB after %d keys in %d tables (+%d kB)"
              % (before, after, 300 * TABLES, TABLES, after - before))
        if sanitizer_build():
            # ASan's quarantine and redzones make RSS meaningless here.
            print("sanitizer build: the RSS bound is checked on plain builds only")
            return
        check(after - before < MAX_KB,
              "the summaries grew RSS by %d kB" % (after - before))
        for _ in range(3):
            svc.decide(path="/p%d/x" % (TABLES - 2), tenant="late")
        body = _top(svc, "policy=p%d" % (TABLES - 2))
        eq((body["keys"], body["tracked"]), ([], False), "past the budget")
        eq(metric(scrape(svc.d), "ratelimitd_top_keys_untracked_total"), 2,
           "untracked denials")


def test_top_tracks_every_policy():
    """Ten policies (as many as a worker's tables): each one's denied
    key is listed with its denied counts (allowed counts start at the
    first denial, so 0 here)."""
    extra = [policy("q%d" % i, "/q%d/*" % i, [limit(1, "1h", "fixed_window")],
                    key=["tenant"]) for i in range(8)]
    with service(_cfg(workers=1, extra=extra), "memory") as svc:
        names = ["api", "pay"] + ["q%d" % i for i in range(8)]
        paths = ["/api/x", "/pay/x"] + ["/q%d/x" % i for i in range(8)]
        for p in paths:
            for _ in range(5):
                svc.decide(path=p, tenant="t-" + p.split("/")[1])
        for name, p in zip(names, paths):
            body = _top(svc, "policy=%s&window=1m" % name)
            eq(body["enabled"], True, "enabled")
            tenant = "t-" + p.split("/")[1]
            want_allowed = 3 if name == "api" else 1
            eq([(k["key"]["tenant"], k["denied"], k["allowed"]) for k in body["keys"]],
               [(tenant, 5 - want_allowed, 0)], "the key of %s" % name)
            eq(body["tracked"], True, "tracked")


def test_top_keys_can_be_turned_off():
    """"top_keys": {"enabled": false}: nothing is counted and the answer
    says enabled false; a reload turning it on counts again."""
    cfg = _cfg(workers=1)
    cfg["top_keys"] = {"enabled": False}
    with service(cfg, "memory") as svc:
        for _ in range(5):
            svc.decide(path="/api/x", tenant="off")
        body = _top(svc, "policy=api")
        eq((body["enabled"], body["keys"]), (False, []), "off: nothing counted")
        cfg2 = json.loads(json.dumps(svc.d.config))
        cfg2["top_keys"] = {"enabled": True}
        eq(reload_config(svc.d, cfg2), "ok", "reload")
        for _ in range(5):
            svc.decide(path="/api/x", tenant="on")
        body = _top(svc, "policy=api")
        eq(body["enabled"], True, "on again")
        eq([(k["key"]["tenant"], k["denied"]) for k in body["keys"]], [("on", 2)],
           "counted once on")


def test_top_after_a_reload_that_changes_the_key_fields():
    """A reload that reorders a policy's key fields: keys counted before
    are not shown under the new field names (tenant and user would read
    swapped, and the status page would copy the wrong key into an
    override); the keys denied after it are."""
    with service(_cfg(workers=1), "memory") as svc:
        for _ in range(4):
            svc.decide(path="/api/x", tenant="TEN")
        body = _top(svc, "policy=api&window=1m")
        eq([(k["key"], k["denied"]) for k in body["keys"]],
           [({"tenant": "TEN", "path": "/api/x"}, 1)], "before the reload")
        cfg2 = json.loads(json.dumps(svc.d.config))
        cfg2["policies"][0]["key"] = ["path", "tenant"]
        eq(reload_config(svc.d, cfg2), "ok", "reload")
        eq(_top(svc, "policy=api&window=1m")["keys"], [], "nothing under the new fields yet")
        for _ in range(4):
            svc.decide(path="/api/y", tenant="NEW")
        body = _top(svc, "policy=api&window=1m")
        eq([(k["key"], k["denied"]) for k in body["keys"]],
           [({"path": "/api/y", "tenant": "NEW"}, 1)], "after the reload")
