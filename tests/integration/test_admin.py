"""Admin endpoints: POST /v1/admin/reset and GET /v1/policies, off unless
enabled, behind a bearer key whose SHA-256 is in the config."""

import hashlib

from harness import (SLOW, check, config, eq, limit, metric, policy, scrape, service,
                     wait_until)

KEY = "admin-test-key-0123456789"


def _admin(enabled=True):
    return {"enabled": enabled, "key_sha256": hashlib.sha256(KEY.encode()).hexdigest()}


def _cfg(**top):
    return config(
        policy("blocking", "/pay/*", [limit(2, "1h", "fixed_window", block="1h")],
               key=["tenant", "path"], deny={"status": 429, "body": {"msg": "blocked"}},
               test={"header": "rate-limit-test", "value": "trigger-value-x",
                     "limits": [limit(1, "1h", "fixed_window")]}),
        policy("per-user", "/u/{id}", [limit(5, "1m"), limit(100, "1d", "fixed_window")],
               key=["path.id"], method="GET", headers="ietf"),
        **top)


def _auth(key=KEY):
    return {"Authorization": "Bearer " + key}


def _assert_error(r, status, code):
    eq(r.status, status, "status (%r)" % r.body[:200])
    body = r.json
    eq((body.get("code"), body.get("trace_id")), (code, r.header("X-Request-Id")),
       "error code and trace_id")
    check(isinstance(body.get("error"), str) and body["error"], "error message")


def test_admin_off_by_default():
    """Without "admin" (or with enabled false) both endpoints answer 404."""
    for cfg in (_cfg(), _cfg(admin=_admin(enabled=False))):
        with service(cfg, "memory") as svc:
            _assert_error(svc.request("GET", "/v1/policies", headers=_auth()), 404, "NOT_FOUND")
            _assert_error(svc.request("POST", "/v1/admin/reset", headers=_auth(),
                                      json_body={"path": "/pay/x", "tenant": "t"}),
                          404, "NOT_FOUND")


# Every admin path, a method it does not take, and one it takes without
# a JSON Content-Type (None: it takes no body).
_ADMIN_PATHS = (("/v1/admin/reset", "GET", "POST"), ("/v1/policies", "POST", None),
                ("/v1/admin/overrides", "PATCH", "PUT"), ("/v1/admin/overrides", "POST", "DELETE"),
                ("/v1/admin/top", "POST", None), ("/ui", "POST", None))


def test_admin_off_whatever_the_method_or_content_type():
    """While admin is off, an admin path is unknown to every request: a
    wrong method, or PUT/DELETE/POST without a JSON Content-Type, is 404
    too, not 405 or 415 (which would tell the endpoint exists)."""
    for cfg in (_cfg(), _cfg(admin=_admin(enabled=False))):
        with service(cfg, "memory") as svc:
            for path, wrong, json_method in _ADMIN_PATHS:
                r = svc.request(wrong, path, headers=_auth())
                _assert_error(r, 404, "NOT_FOUND")
                eq(r.header("Allow"), None, "Allow on %s %s" % (wrong, path))
                if json_method is not None:
                    _assert_error(svc.request(json_method, path, body=b"{}", headers=_auth()),
                                  404, "NOT_FOUND")


def test_admin_key_checked_before_content_type():
    """With admin on, the key comes before the body: without it, a PUT,
    DELETE or POST without a JSON Content-Type is 401, not 415; with it,
    415. A wrong method stays 405 with Allow (the route is public)."""
    with service(_cfg(admin=_admin()), "memory") as svc:
        for path, wrong, json_method in _ADMIN_PATHS:
            r = svc.request(wrong, path)
            _assert_error(r, 405, "METHOD_NOT_ALLOWED")
            check(r.header("Allow"), "Allow on %s %s" % (wrong, path))
            if json_method is None:
                continue
            _assert_error(svc.request(json_method, path, body=b"{}"), 401, "AUTH_002")
            _assert_error(svc.request(json_method, path, body=b"{}", headers=_auth("nope")),
                          401, "AUTH_001")
            _assert_error(svc.request(json_method, path, body=b"{}", headers=_auth()),
                          415, "UNSUPPORTED_MEDIA_TYPE")


def test_admin_requires_the_bearer_key():
    """No Authorization: 401 AUTH_002; another key or scheme: 401 AUTH_001 /
    AUTH_002; each with WWW-Authenticate. Nothing is reset."""
    with service(_cfg(admin=_admin()), "memory") as svc:
        for path, method, body in (("/v1/policies", "GET", None),
                                   ("/v1/admin/reset", "POST", {"path": "/pay/x", "tenant": "t"})):
            r = svc.request(method, path, json_body=body)
            _assert_error(r, 401, "AUTH_002")
            check((r.header("WWW-Authenticate") or "").startswith("Bearer"), "WWW-Authenticate")
            _assert_error(svc.request(method, path, json_body=body, headers=_auth("nope")),
                          401, "AUTH_001")
            _assert_error(svc.request(method, path, json_body=body,
                                      headers={"Authorization": "Basic " + KEY}), 401, "AUTH_002")
            _assert_error(svc.request(method, path, json_body=body,
                                      headers=_auth(KEY + "x")), 401, "AUTH_001")
        eq(metric(scrape(svc.d), "ratelimitd_admin_resets_total"), 0, "no reset happened")


def test_policies_lists_without_secrets():
    """GET /v1/policies: names, match, key, limits (per as written), test
    limits, mode; never the store password, the admin key hash, the test
    header's value or a deny body."""
    cfg = _cfg(admin=_admin())
    cfg["policies"][1]["mode"] = "shadow"
    with service(cfg, "redis") as svc:
        r = svc.request("GET", "/v1/policies", headers=_auth())
        eq(r.status, 200, "status")
        body = r.json
        eq([p["name"] for p in body["policies"]], ["blocking", "per-user"], "names in file order")
        p0, p1 = body["policies"]
        eq(p0["match"], {"method": None, "path": "/pay/*"}, "match of blocking")
        eq(p0["key"], ["tenant", "path"], "key of blocking")
        eq(p0["limits"], [{"requests": 2, "per": "1h", "algorithm": "fixed_window",
                           "block": "1h"}], "limits of blocking")
        eq(p0["test"], {"header": "rate-limit-test",
                        "limits": [{"requests": 1, "per": "1h", "algorithm": "fixed_window"}]},
           "test rule without its value")
        eq((p0["mode"], p1["mode"]), ("enforce", "shadow"), "modes")
        eq(p1["match"], {"method": "GET", "path": "/u/{id}"}, "match of per-user")
        eq(p1["limits"], [{"requests": 5, "per": "1m", "algorithm": "gcra", "burst": 5},
                          {"requests": 100, "per": "1d", "algorithm": "fixed_window"}],
           "limits of per-user")
        check(len(body["config_hash"]) == 16, "config_hash")
        text = r.body.decode()
        for secret in ("trigger-value-x", cfg["admin"]["key_sha256"], KEY, "blocked"):
            check(secret not in text, "/v1/policies shows %r" % secret)


def _reset(svc, expect_status=200, **fields):
    r = svc.request("POST", "/v1/admin/reset", json_body=fields, headers=_auth())
    eq(r.status, expect_status, "reset status (%r)" % r.body[:300])
    return r


def _reset_lifts_a_block(store):
    """A tenant blocked for an hour is admitted right after a reset of its
    key; other keys keep their state; the Redis keys of that key are gone;
    the test limits are reset only with the test header."""
    with service(_cfg(admin=_admin()), store) as svc:
        for _ in range(3):
            svc.verdict(path="/pay/txns", tenant="acme")
        svc.verdict(path="/pay/txns", tenant="other")
        v = svc.verdict(path="/pay/txns", tenant="acme")
        eq((v["allowed"], v["blocked"]), (False, True), "blocked before the reset")
        th = {"rate-limit-test": "trigger-value-x"}
        svc.verdict(path="/pay/txns", tenant="acme", headers=th)
        eq(svc.verdict(path="/pay/txns", tenant="acme", headers=th)["allowed"], False,
           "test limit spent")

        r = _reset(svc, path="/pay/txns", tenant="acme")
        eq(r.json, {"reset": True, "policy": "blocking", "test": False}, "reset reply")
        if svc.redis is not None:
            keys = svc.redis.call("KEYS", "rl:{blocking|acme*")
            eq(sorted(keys), ["rl:{blocking|acme|%2Fpay%2Ftxns}:ltf1h"],
               "only the test counter is left for acme")
        v = svc.verdict(path="/pay/txns", tenant="acme")
        eq((v["allowed"], v["remaining"]), (True, 1), "admitted after the reset")
        v = svc.verdict(path="/pay/txns", tenant="other")
        eq((v["allowed"], v["remaining"]), (True, 0), "another tenant kept its count")
        eq(svc.verdict(path="/pay/txns", tenant="acme", headers=th)["allowed"], False,
           "test limit untouched by a normal reset")
        r = _reset(svc, path="/pay/txns", tenant="acme", headers=th)
        eq(r.json["test"], True, "test reset")
        eq(svc.verdict(path="/pay/txns", tenant="acme", headers=th)["allowed"], True,
           "test limit after a test reset")
        eq(metric(scrape(svc.d), "ratelimitd_admin_resets_total"), 2, "resets counted")


def test_reset_lifts_a_block_redis():
    _reset_lifts_a_block("redis")


def test_reset_lifts_a_block_memory():
    _reset_lifts_a_block("memory")


def test_reset_bad_requests():
    """Errors in the decide API's shape: bad JSON 400, missing path or key
    field 422 VAL_001, no policy or an unknown one 422 VAL_002, Redis down
    503 STORE_001 (a reset that did not happen is never a 200)."""
    with service(_cfg(admin=_admin()), "redis") as svc:
        r = svc.request("POST", "/v1/admin/reset", body="{", headers=dict(
            _auth(), **{"Content-Type": "application/json"}))
        _assert_error(r, 400, "VAL_002")
        _assert_error(_reset(svc, 422, tenant="t"), 422, "VAL_001")
        _assert_error(_reset(svc, 422, path="/pay/x"), 422, "VAL_001")
        _assert_error(_reset(svc, 422, path="/nowhere", tenant="t"), 422, "VAL_002")
        _assert_error(_reset(svc, 422, path="/pay/x", tenant="t", policy="nope"), 422, "VAL_002")
        svc.redis.stop()
        wait_until(lambda: svc.d.request("GET", "/ready").status == 503, 5 * SLOW,
                   what="/ready 503")
        r = _reset(svc, 503, path="/pay/x", tenant="t")
        _assert_error(r, 503, "STORE_001")
        eq(r.json["reset"], False, "reset false")


def test_policies_lists_grpc_match():
    """A descriptor (gRPC) policy is listed with its domain and descriptor
    entries (a value null matches any), not an empty HTTP match."""
    grpc = {"name": "login", "match": {"domain": "edge", "descriptor": [
        {"key": "remote_address"}, {"key": "path", "value": "/login"}]},
        "key": ["descriptor.remote_address"], "limits": [limit(3, "1m", "fixed_window")]}
    with service(config(grpc, admin=_admin()), "memory") as svc:
        r = svc.request("GET", "/v1/policies", headers=_auth())
        eq(r.status, 200, "status")
        eq(r.json["policies"][0]["match"],
           {"domain": "edge", "descriptor": [{"key": "remote_address", "value": None},
                                             {"key": "path", "value": "/login"}]},
           "match of the gRPC policy")
