"""Per-key overrides: in the config ("policies[].overrides") and at runtime
(PUT / GET / DELETE /v1/admin/overrides, behind the admin key), shared by
every replica through the store, on the Redis and the memory store."""

import copy
import hashlib
import json
import os
import tempfile
import time

from harness import (SLOW, between, check, config, eq, limit, metric, policy, redis_calls,
                     reload_config, run_binary, scrape, service, wait_until)

KEY = "override-admin-key-0123456789"
AUTH = {"Authorization": "Bearer " + KEY}
URL = "/v1/admin/overrides"
STORES = ("redis", "memory")


def _cfg(limits=None, overrides=None, workers=None):
    p = policy("tenants", "/api/*", limits or [limit(2, "1d", "fixed_window")],
               key=["tenant", "user"])
    if overrides is not None:
        p["overrides"] = overrides
    top = {"admin": {"enabled": True, "key_sha256": hashlib.sha256(KEY.encode()).hexdigest()}}
    if workers is not None:
        top["workers"] = workers
    return config(p, **top)


def _decide(d, tenant, user="u", cost=1):
    r = d.request("POST", "/v1/decide",
                  json_body={"path": "/api/x", "tenant": tenant, "user": user, "cost": cost})
    eq(r.status, 200, "decide status (%r)" % r.body[:200])
    return r.json


def _put(d, body):
    r = d.request("PUT", URL, json_body=body, headers=AUTH)
    eq(r.status, 200, "PUT %r: status (%r)" % (body, r.body[:300]))
    return r.json


def _seen(d, tenant, limit_value, override, timeout=1.0, runs=8):
    """Waits (peeking, nothing counted) until d decides tenant with that
    limit and "override" value on `runs` fresh connections in a row (so on
    every worker, in all likelihood); returns the seconds it took."""
    t0 = time.monotonic()

    def ok():
        for _ in range(runs):
            v = _decide(d, tenant, cost=0)
            if v["limit"] != limit_value or v.get("override") != override:
                return False
        return True
    wait_until(ok, timeout * SLOW, interval=0.01,
               what="%s decided with limit %d, override %r" % (tenant, limit_value, override))
    return time.monotonic() - t0


def _spend(d, tenant, n, what, user="u"):
    """n requests of tenant: every one admitted."""
    for i in range(n):
        v = _decide(d, tenant, user=user)
        check(v["allowed"], "%s: request %d of %d admitted (%r)" % (what, i + 1, n, v))
    return v


def test_config_override_limits_and_deny():
    """A config override with higher limits applies to its key only (the one
    with most matching fields wins); a deny override answers its status and
    body, "override": "config", and counts nothing."""
    overrides = [
        {"key": {"tenant": "big"}, "limits": [limit(5, "1d", "fixed_window")]},
        {"key": {"tenant": "big", "user": "vip"}, "limits": [limit(8, "1d", "fixed_window")]},
        {"key": {"tenant": "bad"}, "deny": {"status": 403, "body": {"error": "suspended"}}},
    ]
    for store in STORES:
        with service(_cfg(overrides=overrides), store) as svc:
            d = svc  # one keep-alive connection: one worker
            v = _spend(d, "acme", 2, store + " default")
            check("override" not in v, "no override field without an override: %r" % v)
            check(not _decide(d, "acme")["allowed"], store + ": default limit 2 holds")
            v = _spend(d, "big", 5, store + " config override")
            eq((v["limit"], v["remaining"], v.get("override")), (5, 0, "config"),
               store + ": big's verdict")
            check(not _decide(d, "big")["allowed"], store + ": override limit 5 holds")
            v = _spend(d, "big", 8, store + " vip", user="vip")
            v = _decide(d, "big", user="vip")
            eq((v["allowed"], v["limit"]), (False, 8), store + ": most fields win (vip: 8)")
            for _ in range(3):
                v = _decide(d, "bad")
                eq((v["allowed"], v["status"], v["body"], v.get("override")),
                   (False, 403, {"error": "suspended"}, "config"), store + ": deny override")
            # Nothing was counted for "bad": an admin override (which wins
            # over config) with one request admits it with 0 remaining.
            _put(d, {"policy": "tenants", "key": {"tenant": "bad"},
                     "limits": [limit(1, "1d", "fixed_window")]})
            _seen(d, "bad", 1, "admin")
            v = _decide(d, "bad")
            eq((v["allowed"], v["remaining"]), (True, 0), store + ": denials counted nothing")
            r = d.request("GET", URL + "?policy=tenants", headers=AUTH)
            eq(r.status, 200, "GET status")
            listed = r.json["overrides"]
            eq(sorted((o["source"], o["key"].get("tenant"), o["key"].get("user", "")) for o in listed),
               [("admin", "bad", ""), ("config", "bad", ""), ("config", "big", ""),
                ("config", "big", "vip")], store + ": GET lists config and admin overrides")
            deny = [o for o in listed if o["source"] == "config" and "deny" in o][0]
            eq(deny["deny"], {"status": 403, "body": {"error": "suspended"}}, "listed deny")


def test_admin_put_seen_by_the_other_replica_and_delete():
    """PUT through replica A: replica B applies it within 1 s of the 200;
    DELETE through A restores the default on B within 1 s; a second DELETE
    is 404 NOT_FOUND. Changes are counted in /metrics."""
    with service(_cfg(), "redis", instances=2) as svc:
        a, b = svc.daemons
        _seen(b, "acme", 2, None)
        body = {"policy": "tenants", "key": {"tenant": "acme"},
                "limits": [limit(5, "1d", "fixed_window")]}
        stored = _put(a, body)
        eq(stored, dict(body, source="admin"), "PUT answers the stored override")
        took = _seen(b, "acme", 5, "admin")
        check(took < 1.0 * SLOW, "replica B applied the PUT within 1 s (%.3f s)" % took)
        v = _spend(b, "acme", 5, "admin override on B")
        eq(v["remaining"], 0, "remaining on B")
        check(not _decide(a, "acme")["allowed"], "A and B share the count under the override")
        wait_until(lambda: [o["source"] for o in
                            b.request("GET", URL, headers=AUTH).json["overrides"]] == ["admin"],
                   1.0 * SLOW, what="B lists the admin override")
        r = a.request("DELETE", URL, json_body={"policy": "tenants", "key": {"tenant": "acme"}},
                      headers=AUTH)
        eq(r.status, 200, "DELETE status (%r)" % r.body[:200])
        took = _seen(b, "acme", 2, None)
        check(took < 1.0 * SLOW, "replica B dropped it within 1 s (%.3f s)" % took)
        r = a.request("DELETE", URL, json_body={"policy": "tenants", "key": {"tenant": "acme"}},
                      headers=AUTH)
        eq((r.status, r.json.get("code")), (404, "NOT_FOUND"), "DELETE of nothing")
        m = scrape(a)
        eq((metric(m, "ratelimitd_override_puts_total"),
            metric(m, "ratelimitd_override_deletes_total")), (1, 1), "change counters on A")
        eq(metric(m, "ratelimitd_admin_overrides"), 0, "admin overrides gauge after DELETE")
        log = open(a.log_path).read()
        check('"admin override stored"' in log and '"policy":"tenants"' in log,
              "the PUT is logged with its policy")
        digest = hashlib.sha256(b'{"tenant":"acme"}').hexdigest()[:16]
        check('"key_sha256":"%s"' % digest in log and "acme" not in log,
              "the PUT names its key by digest, never by its values")
        check(KEY not in log, "the admin key is never logged")


def test_admin_override_ttl_expires():
    """An override with "ttl": "1s" lists its expires_at and stops applying
    once it has passed, on both stores."""
    for store in STORES:
        with service(_cfg(), store) as svc:
            d = svc  # one keep-alive connection: one worker
            t0 = time.time()
            stored = _put(d, {"policy": "tenants", "key": {"tenant": "t"}, "ttl": "1s",
                              "limits": [limit(9, "1d", "fixed_window")]})
            check(t0 + 1 <= stored["expires_at"] <= t0 + 2.5, "expires_at %r" % stored)
            _seen(d, "t", 9, "admin")
            _seen(d, "t", 2, None, timeout=3.0, runs=1)
            check(time.time() >= stored["expires_at"] - 0.05, store + ": not before expires_at")
            listed = d.request("GET", URL, headers=AUTH).json["overrides"]
            eq(listed, [], store + ": an expired override is not listed")


def test_admin_deny_override_retry_is_its_ttl():
    """A suspension with a ttl answers retry_after_ms = the time until it
    expires, and Retry-After in whole seconds; no X-RateLimit-* counts."""
    for store in STORES:
        with service(_cfg(), store) as svc:
            d = svc
            _put(d, {"policy": "tenants", "key": {"tenant": "s"}, "ttl": "1h",
                     "deny": {"status": 403, "body": {"error": "suspended"}}})
            v = _decide(d, "s")
            eq((v["allowed"], v["status"], v["override"]), (False, 403, "admin"),
               store + ": suspended")
            check(3590000 <= v["retry_after_ms"] <= 3601000,  # expires_at: whole s
                  store + ": retry_after_ms %r" % v["retry_after_ms"])
            check(3590 <= int(v["headers"]["Retry-After"]) <= 3601,
                  store + ": Retry-After %r" % v["headers"])
            eq([k for k in v["headers"] if k.lower().startswith("x-ratelimit")], [],
               store + ": no rate-limit counts")


def test_deny_override_without_ttl_has_no_retry_time():
    """A suspension without a ttl lasts until lifted, so it has no retry
    time: no Retry-After (decide's headers and authorize's), retry_after_ms
    0, and a body that would need one ({retry_after},
    {retry_after_human}, its own or the policy's it falls back to) is
    refused, at load for a config override, with 422 for an admin PUT.
    Its status defaults to the policy's deny.status. With a ttl, header
    and body agree on its time."""
    body = {"m": "wait {retry_after} / {retry_after_human}"}
    auth = {"X-User-Id": "u", "X-Original-Method": "GET", "X-Original-URI": "/api/x"}
    cfg = _cfg(workers=1)  # one worker: seen at once
    cfg["policies"][0]["deny"] = {"status": 403, "body": body}
    bad = copy.deepcopy(cfg)
    bad["policies"][0]["overrides"] = [{"key": {"tenant": "s"}, "deny": {}}]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c.json")
        with open(path, "w") as f:
            json.dump(bad, f)
        rc, _, err = run_binary(["--check-config", path])
        eq(rc, 1, "a config override inheriting a retry placeholder: exit code")
        check("policies[0].overrides[0].deny: without a ttl there is no retry time" in err,
              "its error names the override (%r)" % err)
    cfg["policies"][0]["overrides"] = [{"key": {"tenant": "c"}, "deny": {"body": {"m": "no"}}}]
    with service(cfg, "memory") as svc:
        r = svc.d.request("PUT", URL, json_body={"policy": "tenants", "key": {"tenant": "s"},
                                                 "deny": {"status": 403, "body": body}},
                          headers=AUTH)
        eq((r.status, r.json.get("code")), (422, "VAL_002"), "PUT without a ttl (%r)" % r.body)
        _put(svc, {"policy": "tenants", "key": {"tenant": "s"},
                   "deny": {"status": 403, "body": {"m": "suspended"}}})
        _put(svc, {"policy": "tenants", "key": {"tenant": "t"}, "ttl": "90s",
                   "deny": {"status": 403, "body": body}})
        v = _decide(svc, "s")
        eq((v["allowed"], v["status"], v["retry_after_ms"], v["headers"], v["body"]),
           (False, 403, 0, {}, {"m": "suspended"}), "decide, no ttl")
        r = svc.d.request("GET", "/v1/authorize", headers=dict(auth, **{"X-Tenant-Id": "s"}))
        eq((r.status, r.header("Retry-After"), r.json), (403, None, {"m": "suspended"}),
           "authorize, no ttl")
        v = _decide(svc, "c")
        eq((v["status"], v["body"]), (403, {"m": "no"}), "config override: the policy's status")

        v = _decide(svc, "t")
        check("Retry-After" in v["headers"], "a ttl: Retry-After (%r)" % v)
        retry = v["headers"]["Retry-After"]
        between(int(retry), 85, 91, "Retry-After with a ttl")
        eq(v["body"], {"m": "wait %s / 2 minutes" % retry}, "decide body with a ttl")
        r = svc.d.request("GET", "/v1/authorize", headers=dict(auth, **{"X-Tenant-Id": "t"}))
        eq((r.status, r.json["m"].split(" ")[1]), (403, r.header("Retry-After")),
           "authorize: body and Retry-After agree")


def test_admin_overrides_survive_restarting_every_replica():
    """Stored in Redis: both replicas apply it again after both restarted."""
    with service(_cfg(), "redis", instances=2) as svc:
        _put(svc.daemons[0], {"policy": "tenants", "key": {"tenant": "acme"},
                              "deny": {"status": 403, "body": {"error": "suspended"}}})
        for d in svc.daemons:
            d.stop()
        for d in svc.daemons:
            d.start()
        for d in svc.daemons:
            _seen(d, "acme", 2, "admin")
            v = _decide(d, "acme")
            eq((v["allowed"], v["status"], v["body"]), (False, 403, {"error": "suspended"}),
               "deny after restart")


def test_raise_mid_window_keeps_what_was_counted():
    """1,000 of 1,000 used in a fixed or sliding window, raised to 5,000:
    exactly 4,000 more in that window. GCRA keeps its TAT: nothing more at
    once (remaining 0), then the new rate refills it."""
    for store in STORES:
        for algo in ("fixed_window", "sliding_window"):
            with service(_cfg(limits=[limit(1000, "1d", algo)]), store) as svc:
                d = svc  # one keep-alive connection: the worker that PUT
                v = _decide(d, "acme", cost=1000)
                eq((v["allowed"], v["remaining"]), (True, 0), "%s %s: 1,000 used" % (store, algo))
                check(not _decide(d, "acme")["allowed"], "%s %s: full" % (store, algo))
                _put(d, {"policy": "tenants", "key": {"tenant": "acme"},
                         "limits": [limit(5000, "1d", algo)]})
                # The worker that answered the PUT applies it before the 200.
                v = _decide(d, "acme", cost=3999)
                eq((v["allowed"], v["remaining"], v["limit"], v.get("override")),
                   (True, 1, 5000, "admin"), "%s %s: 3,999 more" % (store, algo))
                eq(_decide(d, "acme")["allowed"], True, "%s %s: the 4,000th" % (store, algo))
                v = _decide(d, "acme")
                eq((v["allowed"], v["limit"], v["remaining"]), (False, 5000, 0),
                   "%s %s: the 4,001st is denied" % (store, algo))
        with service(_cfg(limits=[limit(1000, "1h")]), store) as svc:
            d = svc
            eq(_decide(d, "acme", cost=1000)["allowed"], True, store + " gcra: 1,000 used")
            _put(d, {"policy": "tenants", "key": {"tenant": "acme"},
                     "limits": [limit(5000, "1h")]})
            _seen(d, "acme", 5000, "admin")
            v = _decide(d, "acme")
            eq((v["allowed"], v["remaining"]), (False, 0), store + " gcra: the TAT carried over")
            between(v["retry_after_ms"], 1, 720, store + " gcra: retry after one new interval")
            time.sleep(v["retry_after_ms"] / 1000.0 + 0.05)
            eq(_decide(d, "acme")["allowed"], True, store + " gcra: the new rate refills")


BAD = [
    # (body, code, text in the message)
    ({"key": {"tenant": "a"}, "limits": [limit(1, "1m")]}, "VAL_001", "policy"),
    ({"policy": "nope", "key": {"tenant": "a"}, "limits": [limit(1, "1m")]}, "VAL_002", "policy"),
    ({"policy": 7, "key": {"tenant": "a"}, "limits": [limit(1, "1m")]}, "VAL_002", "policy"),
    ({"policy": "tenants", "limits": [limit(1, "1m")]}, "VAL_001", "key"),
    ({"policy": "tenants", "key": {"ip": "1.2.3.4"}, "limits": [limit(1, "1m")]}, "VAL_002",
     "key.ip"),
    ({"policy": "tenants", "key": {}, "limits": [limit(1, "1m")]}, "VAL_002", "key"),
    ({"policy": "tenants", "key": {"tenant": ""}, "limits": [limit(1, "1m")]}, "VAL_002",
     "key.tenant"),
    ({"policy": "tenants", "key": {"tenant": "a"}}, "VAL_001", "limits"),
    ({"policy": "tenants", "key": {"tenant": "a"}, "limits": [limit(1, "1m")],
      "deny": {"status": 403}}, "VAL_002", "deny"),
    ({"policy": "tenants", "key": {"tenant": "a"}, "limits": [limit(0, "1m")]}, "VAL_002",
     "limits[0].requests"),
    ({"policy": "tenants", "key": {"tenant": "a"}, "limits": [{"requests": 5}]}, "VAL_002",
     "limits[0].per"),
    ({"policy": "tenants", "key": {"tenant": "a"}, "limits": [limit(1, "5x")]}, "VAL_002",
     "limits[0].per"),
    ({"policy": "tenants", "key": {"tenant": "a"}, "limits": []}, "VAL_002", "limits"),
    ({"policy": "tenants", "key": {"tenant": "a"}, "deny": {"status": 200}}, "VAL_002",
     "deny.status"),
    ({"policy": "tenants", "key": {"tenant": "a"}, "limits": [limit(1, "1m")], "ttl": "soon"},
     "VAL_002", "ttl"),
    ({"policy": "tenants", "key": {"tenant": "a"}, "limits": [limit(1, "1m")], "ttl": 30},
     "VAL_002", "ttl"),
    ({"policy": "tenants", "key": {"tenant": "a"}, "limits": [limit(1, "1m")], "extra": 1},
     "VAL_002", "extra"),
]


def test_bad_input_answers_422_naming_the_field():
    """Every bad PUT or DELETE answers 422 with VAL_001 (missing) or VAL_002
    (wrong) and the field in the message, and stores nothing."""
    for store in STORES:
        with service(_cfg(), store) as svc:
            d = svc.d
            for body, code, field in BAD:
                r = d.request("PUT", URL, json_body=body, headers=AUTH)
                eq((r.status, r.json.get("code")), (422, code), "PUT %r (%r)" % (body, r.body))
                check(field in r.json["error"], "PUT %r: %r names %r" % (body, r.json, field))
            for body, code, field in (({"key": {"tenant": "a"}}, "VAL_001", "policy"),
                                      ({"policy": "tenants"}, "VAL_001", "key"),
                                      ({"policy": "tenants", "key": {"nope": "a"}}, "VAL_002",
                                       "key.nope"),
                                      ({"policy": "tenants", "key": {"tenant": "a"},
                                        "limits": []}, "VAL_002", "limits")):
                r = d.request("DELETE", URL, json_body=body, headers=AUTH)
                eq((r.status, r.json.get("code")), (422, code), "DELETE %r (%r)" % (body, r.body))
                check(field in r.json["error"], "DELETE %r: %r names %r" % (body, r.json, field))
            r = d.request("GET", URL + "?policy=nope", headers=AUTH)
            eq((r.status, r.json.get("code")), (422, "VAL_002"), "GET ?policy=unknown")
            eq(d.request("GET", URL, headers=AUTH).json["overrides"], [], "nothing stored")
            eq(d.request("GET", URL).status, 401, "GET without the admin key")
            eq(d.request("PUT", URL, json_body=BAD[0][0]).status, 401, "PUT without the key")
            r = d.request("PATCH", URL, headers=AUTH)
            eq((r.status, r.header("Allow")), (405, "GET, PUT, DELETE"), "other methods")


def test_config_overrides_refused_at_load():
    """Bad "overrides" in the config: the daemon refuses to start and names
    the JSON path."""
    from harness import run_binary
    import json
    import os
    import tempfile
    cases = [
        ([{"key": {"ip": "1"}, "limits": [limit(1, "1m")]}], "policies[0].overrides[0].key.ip"),
        ([{"key": {"tenant": "a"}}], "policies[0].overrides[0].limits"),
        ([{"key": {"tenant": "a"}, "deny": {"status": 99}}],
         "policies[0].overrides[0].deny.status"),
        ([{"key": {"tenant": "a"}, "deny": {}}, {"key": {"tenant": "a"}, "deny": {}}],
         "policies[0].overrides[1]"),
    ]
    for overrides, path in cases:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(_cfg(overrides=overrides), f)
        try:
            rc, out, err = run_binary(["-t", f.name])
        finally:
            os.unlink(f.name)
        check(rc != 0 and path in (out + err), "%r: rc %r, %r names %s" % (
            overrides, rc, out + err, path))


def test_cluster_overrides():
    """On the 3+3 Redis Cluster: the override hash and its version live on
    the master of their slot; a PUT through process A is applied by B within
    1 s, raising 1,000 to 5,000 mid-window admits exactly 4,000 more across
    both, a deny override counts nothing, and DELETE restores the default."""
    from cluster import cluster, daemons, key_slot
    cfg = _cfg(limits=[limit(1000, "1d", "fixed_window")])
    with cluster() as c:
        cfg["store"] = c.store_config(timeout_ms=1000)
        with daemons(cfg, instances=2) as (a, b):
            eq(_decide(a, "acme", cost=1000)["allowed"], True, "1,000 used")
            body = {"policy": "tenants", "key": {"tenant": "acme"},
                    "limits": [limit(5000, "1d", "fixed_window")]}
            _put(a, body)
            took = _seen(b, "acme", 5000, "admin")
            check(took < 1.0 * SLOW, "B applied the PUT within 1 s (%.3f s)" % took)
            _seen(a, "acme", 5000, "admin")
            master = c.master_of_slot(key_slot("rl:{overrides}"))
            cl = master.client()
            try:
                eq(len(cl.call("HKEYS", "rl:{overrides}")), 1, "the hash on its slot's master")
                check(int(cl.call("GET", "rl:{overrides}:v")) >= 1, "its version beside it")
            finally:
                cl.close()
            admitted = 0
            for d in (a, b) * 2000:
                admitted += _decide(d, "acme")["allowed"]
            eq(admitted, 4000, "exactly 4,000 more after the raise")
            check(not _decide(b, "acme")["allowed"], "then denied")
            _put(b, {"policy": "tenants", "key": {"tenant": "bob"},
                     "deny": {"status": 403, "body": {"error": "suspended"}}})
            _seen(a, "bob", 1000, "admin")
            v = _decide(a, "bob")
            eq((v["allowed"], v["status"]), (False, 403), "deny override on the cluster")
            r = a.request("DELETE", URL, json_body={"policy": "tenants", "key": {"tenant": "bob"}},
                          headers=AUTH)
            eq(r.status, 200, "DELETE status")
            _seen(b, "bob", 1000, None)
            v = _decide(b, "bob", cost=1000)
            eq((v["allowed"], v["remaining"]), (True, 0), "nothing was counted while denied")


def test_deny_override_on_authorize_and_batch():
    """A deny override answers /v1/authorize with its status and body, a
    batch item with its verdict, and the access log records the status the
    client got (403, not the policy's 429)."""
    from test_access_log import access_lines
    cfg = _cfg(overrides=[{"key": {"tenant": "bad"},
                           "deny": {"status": 403, "body": {"error": "suspended"}}}])
    cfg["access_log"] = {"sample": 1.0}
    for store in STORES:
        with service(cfg, store) as svc:
            r = svc.d.request("GET", "/v1/authorize",
                              headers={"X-Tenant-Id": "bad", "X-User-Id": "u",
                                       "X-Original-Method": "GET",
                                       "X-Original-URI": "/api/x"})
            eq((r.status, r.json), (403, {"error": "suspended"}), store + ": authorize")
            rid = r.header("X-Request-Id")

            def line():
                return ([o for o in access_lines(svc) if o["request_id"] == rid] or [None])[0]
            o = wait_until(line, 5 * SLOW, what="the access line")
            eq((o["status"], o["verdict"]), (403, "denied"), store + ": access line")
            r = svc.request("POST", "/v1/decide/batch", json_body={"requests": [
                {"path": "/api/x", "tenant": "bad", "user": "u"},
                {"path": "/api/x", "tenant": "good", "user": "u"}]})
            eq(r.status, 200, "batch status (%r)" % r.body[:200])
            got = [(x["allowed"], x["status"], x.get("override")) for x in r.json["results"]]
            eq(got, [(False, 403, "config"), (True, 200, None)], store + ": batch items")


def test_admin_ip_override_one_per_address():
    """An admin override of an ip key is stored under the address's
    canonical form: a PUT in another spelling replaces it, a DELETE in
    another spelling removes it, and GET lists it canonical. A key value
    holding a NUL byte is refused with 422 (the stored copy could not be
    read back, and an address would be cut at it), and the service goes
    on."""
    cfg = config(policy("by-ip", "/ip/*", [limit(100, "1h", "fixed_window")], key=["ip"]),
                 admin={"enabled": True,
                        "key_sha256": hashlib.sha256(KEY.encode()).hexdigest()},
                 workers=1)
    lim = lambda n: [{"requests": n, "per": "1h", "algorithm": "fixed_window"}]  # noqa: E731
    for store in STORES:
        with service(cfg, store) as svc:
            _put(svc, {"policy": "by-ip", "key": {"ip": "2001:DB8::1"}, "limits": lim(7)})
            _put(svc, {"policy": "by-ip", "key": {"ip": "2001:db8:0::1"}, "limits": lim(9)})
            listed = svc.d.request("GET", URL, headers=AUTH).json["overrides"]
            eq([(o["key"], o["limits"][0]["requests"]) for o in listed],
               [({"ip": "2001:db8::1"}, 9)], store + ": one override, canonical")
            r = svc.d.request("POST", "/v1/decide", json_body={"path": "/ip/x", "ip": "2001:db8::1"})
            eq(r.json["limit"], 9, store + ": the later PUT applies")
            r = svc.d.request("DELETE", URL, json_body={"policy": "by-ip",
                                                        "key": {"ip": "2001:0DB8::1"}},
                              headers=AUTH)
            eq(r.status, 200, store + ": DELETE in a third spelling (%r)" % r.body[:200])
            eq(svc.d.request("GET", URL, headers=AUTH).json["overrides"], [],
               store + ": nothing left")
            r = svc.d.request("PUT", URL, body=b'{"policy": "by-ip", "key": {"ip": "10.0.0.1\\u0000x"},'
                              b' "limits": [{"requests": 1, "per": "1h"}]}',
                              headers=dict(AUTH, **{"Content-Type": "application/json"}))
            eq((r.status, r.json.get("code")), (422, "VAL_002"), store + ": NUL in a key value")
            eq(svc.d.request("GET", "/health").status, 200, store + ": still serving")


def _deny(tenant):
    return {"policy": "tenants", "key": {"tenant": tenant},
            "deny": {"status": 403, "body": {"error": "suspended"}}}


def test_admin_overrides_follow_a_redis_that_lost_its_data():
    """Redis loses its data (FLUSHALL here; a restart without persistence
    or a failover to a replica behind alike), its version counter with
    it: every worker of both replicas drops the lost overrides within
    1 s, a new PUT applies on the worker that served it before its 200
    and on the other replica within 1 s, and the workers stop loading
    once they agree with the store (no load every poll)."""
    with service(_cfg(workers=2), "redis", instances=2) as svc:
        a, b = svc.daemons
        for t in ("z0", "z1", "z2"):
            _put(a, _deny(t))
        for d in (a, b):
            _seen(d, "z0", 2, "admin")
        svc.redis.call("FLUSHALL")
        for d in (a, b):
            took = _seen(d, "z0", 2, None, timeout=1.5)
            check(took < 1.5 * SLOW, "lost overrides dropped within 1.5 s (%.3f s)" % took)
        # Three PUTs again: a counter restarted from 0 would repeat the
        # version 3 that every worker held, and they would miss the change.
        for t in ("n0", "n1", "n2"):
            c = a.client()
            try:
                stored = c.request("PUT", URL, json_body=_deny(t), headers=AUTH)
                eq(stored.status, 200, "PUT after the flush")
                v = c.decide(path="/api/x", tenant=t, user="u").json
                eq((v["allowed"], v.get("override")), (False, "admin"),
                   "the worker that served the PUT applies it before its 200")
            finally:
                c.close()
        for d in (a, b):
            _seen(d, "n2", 2, "admin")
            _seen(d, "n0", 2, "admin")
        svc.redis.call("CONFIG", "RESETSTAT")
        time.sleep(1.0)
        eq(redis_calls(svc.redis, "eval"), 0, "overrides loaded in a quiet second once every worker agrees")


def test_admin_override_applies_again_when_a_reload_restores_its_policy():
    """A reload drops the override's policy, traffic meanwhile, then a
    reload brings the policy back: the override applies again at once,
    with nobody listing or changing overrides."""
    with service(_cfg(), "redis") as svc:
        d = svc.d
        _put(d, _deny("x"))
        _seen(d, "x", 2, "admin")
        other = policy("other", "/other/*", [limit(5, "1d", "fixed_window")], key=["tenant"])
        without = copy.deepcopy(d.config)
        without["policies"] = [other]
        eq(reload_config(d, without), "ok", "reload without the policy")
        r = d.request("POST", "/v1/decide", json_body={"path": "/other/x", "tenant": "x"})
        eq(r.status, 200, "a decision while the policy is gone")
        back = copy.deepcopy(d.config)
        eq(reload_config(d, back), "ok", "reload with the policy back")
        for _ in range(8):
            v = _decide(d, "x")
            eq((v["allowed"], v.get("override"), v["status"]), (False, "admin", 403),
               "the override applies again after the reload")
