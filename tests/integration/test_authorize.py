"""/v1/authorize, talked to directly the way each gateway does: the
decision request built from headers (nginx's X-Original-*, Traefik's
X-Forwarded-*, Envoy's sub-path and own method), ip from X-Forwarded-For
or X-Real-IP, tenant and user from configurable headers, header.NAME
keys, the test header; allowed = 200 with no body, denied = the policy's
status, body and headers, or forward_auth.deny_status; store down under
failure_mode closed = 503."""

import json
import time

from harness import (STORES, between, check, config, eq, limit, parametrize, policy, service,
                     wait_until, SLOW)

DENY = {"status": 429, "body": {"success": False, "message": "Too many attempts."}}

CFG = config(
    policy("per-site", "/sites/{site}", [limit(1, "5m", burst=1)], key=["tenant", "path.site"],
           method="POST", headers="x-ratelimit-retry-after", deny=DENY),
    policy("per-ip", "/ip/*", [limit(1, "5m", burst=1)], key=["ip"], headers="none"),
    policy("per-user", "/user/*", [limit(1, "5m", burst=1)], key=["user"], headers="ietf"),
    policy("per-key", "/key/*", [limit(1, "5m", burst=1)], key=["header.X-Api-Key"]),
    policy("tested", "/tested/*", [limit(100, "1m")], key=["tenant"],
           test={"header": "rate-limit-test", "value": "match", "limits": [limit(1, "1m")]}),
    policy("closed", "/closed/*", [limit(100, "1m")], key=["tenant"], failure_mode="closed"),
    store={"timeout_ms": 200},
)


def _auth(svc, path="/v1/authorize", method="GET", **headers):
    """One request to /v1/authorize with headers (underscores become dashes)."""
    return svc.d.request(method, path, headers={k.replace("_", "-"): v
                                                for k, v in headers.items()})


def _allowed(r, what):
    eq((r.status, r.body), (200, b""), "%s: allowed, empty body" % what)


def _sources(store):
    """Every way a gateway names method and path selects the same policy
    and key; the query string is ignored."""
    with service(CFG, store) as svc:
        # nginx: X-Original-Method / X-Original-URI.
        r = _auth(svc, X_Original_Method="POST", X_Original_URI="/sites/a?page=2", X_Tenant_Id="t")
        _allowed(r, "nginx headers, first")
        eq(r.header("X-RateLimit-Limit"), "1", "X-RateLimit-Limit")
        eq(r.header("X-Ratelimit-Remaining"), "0", "X-Ratelimit-Remaining")
        check(r.header("Content-Type") is None, "no Content-Type on an empty 200")
        r = _auth(svc, X_Original_Method="POST", X_Original_URI="/sites/a", X_Tenant_Id="t")
        now = time.time()
        eq(r.status, 429, "nginx headers, second (%r)" % r.body)
        eq(r.json, DENY["body"], "deny body")
        between(int(r.header("Retry-After")), 290, 300, "Retry-After")
        between(int(r.header("X-Ratelimit-Retry-After")), int(now) + 289, int(now) + 301,
                "X-Ratelimit-Retry-After")
        check(r.header("X-RateLimit-Deny-Status") is None, "no deny headers without deny_status")
        # Traefik: X-Forwarded-Method / X-Forwarded-Uri, same key.
        r = _auth(svc, X_Forwarded_Method="POST", X_Forwarded_Uri="/sites/a", X_Tenant_Id="t")
        eq(r.status, 429, "traefik headers, same site and tenant")
        # Envoy: the sub-path and the request's own method.
        r = _auth(svc, "/v1/authorize/sites/a", "POST", X_Tenant_Id="t")
        eq(r.status, 429, "sub-path + own method, same site and tenant")
        r = _auth(svc, "/v1/authorize/sites/b?x=1", "POST", X_Tenant_Id="t")
        _allowed(r, "sub-path, another site")
        # The headers win over the sub-path and the own method.
        r = _auth(svc, "/v1/authorize/elsewhere", "GET", X_Original_Method="POST",
                  X_Original_URI="/sites/b", X_Tenant_Id="t")
        eq(r.status, 429, "X-Original-* over the sub-path")
        # Another method: the policy is POST only.
        _allowed(_auth(svc, "/v1/authorize/sites/a", "PUT", X_Tenant_Id="t"), "PUT")
        _allowed(_auth(svc, "/v1/authorize", "DELETE"), "no path at all: /")
        # A missing key field is the error shape, never an allow.
        r = _auth(svc, "/v1/authorize/sites/c", "POST")
        eq((r.status, r.json["code"], r.json["error"]),
           (422, "VAL_001", 'tenant is required by policy "per-site"'), "no tenant")
        eq(r.json["trace_id"], r.header("X-Request-Id"), "trace_id")
        r = _auth(svc, X_Original_URI="sites/c")
        eq((r.status, r.json["code"]), (400, "VAL_002"), "a path without /")


parametrize(globals(), "test_authorize_sources", _sources, STORES)


def test_authorize_ip_user_header():
    """ip from the first X-Forwarded-For entry, else X-Real-IP; user from
    X-User-Id; header.NAME keys from any header; the test header."""
    with service(CFG, "memory") as svc:
        p = "/v1/authorize/ip/x"
        _allowed(_auth(svc, p, X_Forwarded_For=" 203.0.113.7 , 10.0.0.1"), "ip first")
        r = _auth(svc, p, X_Forwarded_For="203.0.113.7")
        eq(r.status, 429, "same first entry")
        eq(r.json, {"error": "rate limit exceeded", "code": "RATE_001"}, "default deny body")
        check(r.header("Retry-After") is not None, "Retry-After with headers none")
        eq(_auth(svc, p, X_Real_IP="203.0.113.7").status, 429, "X-Real-IP, same address")
        _allowed(_auth(svc, p, X_Forwarded_For="10.0.0.1, 203.0.113.7"), "another first entry")
        eq(_auth(svc, p).status, 422, "no address")
        r = _auth(svc, p, X_Forwarded_For="1" * 200)
        eq((r.status, r.json["code"]), (400, "VAL_002"), "address too long")

        _allowed(_auth(svc, "/v1/authorize/user/x", X_User_Id="u1"), "user first")
        r = _auth(svc, "/v1/authorize/user/y", X_User_Id="u1")
        eq(r.status, 429, "user second")
        check(r.header("RateLimit-Policy") is not None, "ietf headers: %r" % r.headers.items())

        _allowed(_auth(svc, "/v1/authorize/key/x", X_Api_Key="k1"), "api key first")
        eq(_auth(svc, "/v1/authorize/key/x", x_api_key="k1").status, 429, "api key second")
        _allowed(_auth(svc, "/v1/authorize/key/x", X_Api_Key="k2"), "another api key")

        p = "/v1/authorize/tested/x"
        _allowed(_auth(svc, p, X_Tenant_Id="t", rate_limit_test="match"), "test header first")
        eq(_auth(svc, p, X_Tenant_Id="t", rate_limit_test="match").status, 429,
           "test header second")
        _allowed(_auth(svc, p, X_Tenant_Id="t"), "without the test header")


def test_authorize_custom_headers_and_status():
    """forward_auth: tenant and user from other headers; deny_status 403
    with the policy's status and body in X-RateLimit-Deny-*."""
    cfg = dict(CFG, forward_auth={"deny_status": 403, "tenant_header": "X-Account",
                                  "user_header": "X-Auth-User"})
    with service(cfg, "memory") as svc:
        p = "/v1/authorize/sites/a"
        eq(_auth(svc, p, "POST", X_Tenant_Id="t").status, 422, "X-Tenant-Id no longer read")
        _allowed(_auth(svc, p, "POST", X_Account="t"), "X-Account")
        r = _auth(svc, p, "POST", X_Account="t")
        eq(r.status, 403, "deny_status")
        eq(r.json, DENY["body"], "the policy's body")
        eq(r.header("X-RateLimit-Deny-Status"), "429", "X-RateLimit-Deny-Status")
        eq(json.loads(r.header("X-RateLimit-Deny-Body")), DENY["body"], "X-RateLimit-Deny-Body")
        check(r.header("Retry-After") is not None, "Retry-After")
        _allowed(_auth(svc, "/v1/authorize/user/x", X_Auth_User="u"), "X-Auth-User")
        eq(_auth(svc, "/v1/authorize/user/x", X_Auth_User="u").status, 403, "X-Auth-User again")


def test_authorize_store_down_closed():
    """Redis down and failure_mode closed: 503 STORE_001, never an allow."""
    with service(CFG, "redis") as svc:
        _allowed(_auth(svc, "/v1/authorize/closed/x", X_Tenant_Id="t"), "Redis up")
        svc.redis.stop()
        wait_until(lambda: svc.d.request("GET", "/ready", timeout=2.0).status == 503,
                   5.0 * SLOW, what="/ready 503 once Redis is down")
        r = _auth(svc, "/v1/authorize/closed/x", X_Tenant_Id="t")
        eq((r.status, r.json["code"]), (503, "STORE_001"), "closed policy, Redis down")
        eq(r.json["trace_id"], r.header("X-Request-Id"), "trace_id")


def test_authorize_routes():
    """Only /v1/authorize and what is below it: not /v1/authorizeX."""
    with service(CFG, "memory") as svc:
        eq(svc.d.request("GET", "/v1/authorizeX").status, 404, "/v1/authorizeX")
        eq(svc.d.request("GET", "/v1/authorize/").status, 200, "/v1/authorize/")
        eq(svc.d.request("POST", "/v1/authorize/x", body=b"anything").status, 200,
           "a body is ignored")


def test_authorize_head():
    """HEAD (a gateway passing the client's method on): the status and
    headers, no body, and the kept-alive connection still works after."""
    with service(CFG, "memory") as svc:
        c = svc.d.client()
        hdrs = {"X-Tenant-Id": "t", "X-Original-Method": "POST"}
        for want in (200, 429):
            r = c.request("HEAD", "/v1/authorize/sites/h", headers=hdrs)
            eq((r.status, r.body), (want, b""), "HEAD /v1/authorize/sites/h")
        eq(r.header("X-Ratelimit-Remaining"), "0", "headers on the HEAD denial")
        r = c.request("POST", "/v1/authorize/sites/h", headers=hdrs)
        eq((r.status, r.json), (429, DENY["body"]), "POST after HEAD on the same connection")
        c.close()
