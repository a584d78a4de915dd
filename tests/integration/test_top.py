"""GET /v1/admin/top: the keys of a policy decided most often denied, from
every worker's bounded summary, behind the admin key."""

import hashlib
import json
import time

from harness import (check, config, eq, hammer, limit, policy, reload_config, rss_kb,
                     sanitizer_build, service)

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


def test_top_lists_denied_keys_merged_over_workers():
    """Hammered from four connections over two workers: acme (10 decisions,
    3 allowed, 7 denied) comes first with exact counts, then a key whose
    value needs encoding (shown decoded), then beta (allowed only); n cuts
    the list; a blocking policy's key says blocked; another policy's keys
    stay apart."""
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
        eq([k["key"] for k in keys],
           [{"tenant": "acme", "path": "/api/x"}, {"tenant": "a b|c", "path": "/api/x"},
            {"tenant": "beta", "path": "/api/x"}], "keys, most denied first")
        eq([(k["denied"], k["allowed"], k["blocked"]) for k in keys],
           [(7, 3, False), (2, 3, False), (0, 2, False)], "denied, allowed, blocked")
        check(abs(keys[0]["last_denied_at"] - now) <= 5, "last_denied_at %r" % keys[0])
        eq(keys[2]["last_denied_at"], 0, "never denied")
        eq(len(_top(svc, "policy=api&n=1")["keys"]), 1, "n=1")
        eq(_top(svc, "policy=api")["window_s"], 300, "default window")
        eq(_top(svc, "policy=api&window=60m")["window_s"], 3600, "longest window")
        pay = _top(svc, "policy=pay&window=1m")["keys"]
        eq([(k["key"], k["denied"], k["allowed"], k["blocked"]) for k in pay],
           [({"tenant": "acme"}, 2, 1, True)], "the blocked key of pay")


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


# A full policy table: 256 keys of about 660 bytes (topkeys.h); 200 kB
# leaves room for the allocator's rounding.
TABLE_KB = 200


def test_top_summary_memory_is_bounded():
    """Eight policies each decided for 1,000 distinct keys on one worker:
    the summaries are full (n=100 answers 100 keys, each counted once) and
    resident memory grew by under 200 kB per policy (a full table of 256
    keys; the bound was 1 MB for all eight at 128 keys each)."""
    extra = [policy("p%d" % i, "/p%d/*" % i, [limit(1000, "1h", "fixed_window")],
                    key=["tenant"]) for i in range(6)]
    with service(_cfg(workers=1, extra=extra), "redis") as svc:
        paths = ["/api/x", "/pay/x"] + ["/p%d/x" % i for i in range(6)]
        # Warm: connections and buffers, one key per policy.
        warm = [{"tenant": "w", "path": paths[i % 8]} for i in range(400)]
        hammer([svc.port], len(warm), 4, lambda i: warm[i])
        _top(svc, "policy=p0&n=100")
        time.sleep(0.5)
        before = rss_kb(svc.d.proc.pid)
        total = 8000
        hammer([svc.port], total, 4,
               lambda i: {"tenant": "k%d" % i, "path": paths[i % 8]})
        for name in ["api", "pay"] + ["p%d" % i for i in range(6)]:
            keys = _top(svc, "policy=%s&n=100&window=60m" % name)["keys"]
            eq(len(keys), 100, "keys of %s" % name)
        time.sleep(0.5)
        after = rss_kb(svc.d.proc.pid)
        print("VmRSS %d kB before, %d kB after %d distinct keys (+%d kB)"
              % (before, after, total, after - before))
        if sanitizer_build():
            # ASan's quarantine and redzones make RSS meaningless here.
            print("sanitizer build: the RSS bound is checked on plain builds only")
            return
        check(after - before < 8 * TABLE_KB,
              "the summaries grew RSS by %d kB" % (after - before))


def test_top_tracks_every_policy():
    """Twelve policies (past the eight tracked before): each one's denied
    key is listed with its counts."""
    extra = [policy("q%d" % i, "/q%d/*" % i, [limit(1, "1h", "fixed_window")],
                    key=["tenant"]) for i in range(10)]
    with service(_cfg(workers=1, extra=extra), "memory") as svc:
        names = ["api", "pay"] + ["q%d" % i for i in range(10)]
        paths = ["/api/x", "/pay/x"] + ["/q%d/x" % i for i in range(10)]
        for p in paths:
            for _ in range(5):
                svc.decide(path=p, tenant="t-" + p.split("/")[1])
        for name, p in zip(names, paths):
            body = _top(svc, "policy=%s&window=1m" % name)
            eq(body["enabled"], True, "enabled")
            tenant = "t-" + p.split("/")[1]
            want_allowed = 3 if name == "api" else 1
            eq([(k["key"]["tenant"], k["denied"], k["allowed"]) for k in body["keys"]],
               [(tenant, 5 - want_allowed, want_allowed)], "the key of %s" % name)


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
