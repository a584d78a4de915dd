"""/v1/authorize, talked to directly the way each gateway does: the
decision request built from the headers forward_auth names and no other
(nginx's X-Original-* by default, Traefik's X-Forwarded-* when
configured, Envoy's sub-path and own method with uri_header /
method_header null), ip from forward_auth.client_ip (X-Forwarded-For
trusted_hops from the right, X-Real-IP whole, or the TCP peer), tenant
and user from configurable headers, header.NAME keys, the test header;
allowed = 200 with no body, denied = the policy's status, body and
headers, or forward_auth.deny_status; store down under failure_mode
closed = 503."""

import json
import time

from harness import (STORES, between, check, check_config, config, eq, limit, parametrize,
                     policy, raw_http, service,
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
# Envoy's way: method and path from the check request itself.
ENVOY = {"uri_header": None, "method_header": None}
# Traefik's and Caddy's headers.
TRAEFIK = {"uri_header": "X-Forwarded-Uri", "method_header": "X-Forwarded-Method"}
ENVOY_CFG = dict(CFG, forward_auth=ENVOY)


def _auth(svc, path="/v1/authorize", method="GET", **headers):
    """One request to /v1/authorize with headers (underscores become dashes)."""
    return svc.d.request(method, path, headers={k.replace("_", "-"): v
                                                for k, v in headers.items()})


def _allowed(r, what):
    eq((r.status, r.body), (200, b""), "%s: allowed, empty body" % what)


def _sources(store):
    """Every way a gateway names method and path selects the same policy
    and key; the query string is ignored; only the configured headers
    are read."""
    with service(CFG, store) as svc:
        # nginx (the default): X-Original-Method / X-Original-URI.
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
        # The headers are the only source: not the sub-path, not Traefik's.
        r = _auth(svc, "/v1/authorize/elsewhere", "GET", X_Original_Method="POST",
                  X_Original_URI="/sites/a", X_Tenant_Id="t")
        eq(r.status, 429, "X-Original-* over the sub-path")
        for what, hdrs in (("no headers", {}),
                           ("Traefik's headers only", {"X-Forwarded-Method": "POST",
                                                       "X-Forwarded-Uri": "/sites/a"}),
                           ("no method", {"X-Original-URI": "/sites/a"}),
                           ("empty URI", {"X-Original-URI": "", "X-Original-Method": "POST"})):
            r = _auth(svc, "/v1/authorize/sites/a", "POST", X_Tenant_Id="t",
                      **{k.replace("-", "_"): v for k, v in hdrs.items()})
            eq((r.status, r.json["code"]), (400, "VAL_001"), what)
        eq(r.json["error"], "x-original-uri is required (forward_auth.uri_header)", "message")
        r = _auth(svc, X_Original_URI="sites/c", X_Original_Method="GET")
        eq((r.status, r.json["code"]), (400, "VAL_002"), "a path without /")
    with service(dict(CFG, forward_auth=TRAEFIK), store) as svc:
        # Traefik / Caddy: X-Forwarded-Method / X-Forwarded-Uri.
        _allowed(_auth(svc, X_Forwarded_Method="POST", X_Forwarded_Uri="/sites/a",
                       X_Tenant_Id="t"), "traefik headers, first")
        r = _auth(svc, X_Forwarded_Method="POST", X_Forwarded_Uri="/sites/a",
                  X_Original_URI="/free", X_Original_Method="GET", X_Tenant_Id="t")
        eq(r.status, 429, "traefik headers, a client's X-Original-* ignored")
        r = _auth(svc, X_Original_URI="/sites/b", X_Original_Method="POST", X_Tenant_Id="t")
        eq((r.status, r.json["code"]), (400, "VAL_001"), "X-Original-* alone")
    with service(ENVOY_CFG, store) as svc:
        # Envoy: the sub-path and the request's own method.
        _allowed(_auth(svc, "/v1/authorize/sites/a", "POST", X_Tenant_Id="t"), "envoy, first")
        r = _auth(svc, "/v1/authorize/sites/a", "POST", X_Tenant_Id="t")
        eq(r.status, 429, "sub-path + own method, same site and tenant")
        r = _auth(svc, "/v1/authorize/sites/b?x=1", "POST", X_Tenant_Id="t")
        _allowed(r, "sub-path, another site")
        r = _auth(svc, "/v1/authorize/elsewhere", "GET", X_Original_Method="POST",
                  X_Original_URI="/sites/b", X_Tenant_Id="t")
        _allowed(r, "X-Original-* not read when the config says the sub-path")
        # Another method: the policy is POST only.
        _allowed(_auth(svc, "/v1/authorize/sites/a", "PUT", X_Tenant_Id="t"), "PUT")
        _allowed(_auth(svc, "/v1/authorize", "DELETE"), "no path at all: /")
        # A missing key field is the error shape, never an allow.
        r = _auth(svc, "/v1/authorize/sites/c", "POST")
        eq((r.status, r.json["code"], r.json["error"]),
           (422, "VAL_001", 'tenant is required by policy "per-site"'), "no tenant")
        eq(r.json["trace_id"], r.header("X-Request-Id"), "trace_id")


parametrize(globals(), "test_authorize_sources", _sources, STORES)


def test_authorize_ip_user_header():
    """ip from the X-Forwarded-For entry the nearest proxy appended (the
    rightmost); user from X-User-Id; header.NAME keys from any header;
    the test header."""
    with service(ENVOY_CFG, "memory") as svc:
        p = "/v1/authorize/ip/x"
        _allowed(_auth(svc, p, X_Forwarded_For=" 10.0.0.1 , 203.0.113.7 "), "ip last")
        r = _auth(svc, p, X_Forwarded_For="203.0.113.7")
        eq(r.status, 429, "same last entry")
        eq(r.json, {"error": "rate limit exceeded", "code": "RATE_001"}, "default deny body")
        check(r.header("Retry-After") is not None, "Retry-After with headers none")
        for n in range(3):
            eq(_auth(svc, p, X_Forwarded_For="198.51.100.%d, 203.0.113.7" % n).status, 429,
               "a client's own entries on the left change nothing (%d)" % n)
        _allowed(_auth(svc, p, X_Forwarded_For="203.0.113.7, 10.0.0.1"), "another last entry")
        eq(_auth(svc, p, X_Real_IP="203.0.113.9").status, 422, "X-Real-IP not read: no address")
        r = _auth(svc, p, X_Forwarded_For="1" * 200)
        eq((r.status, r.json["code"]), (400, "VAL_002"), "address too long")
        for bad in ("203.0.113.7, not-an-ip", "203.0.113.300", "1.2.3.4:80", ", ,"):
            r = _auth(svc, p, X_Forwarded_For=bad)
            eq((r.status, r.json["code"]), (400, "VAL_002"), "invalid address %r" % bad)
        eq(_auth(svc, "/v1/authorize/ip/v6", X_Forwarded_For="2001:db8:0:0::1").status, 200,
           "IPv6, first")
        eq(_auth(svc, "/v1/authorize/ip/v6", X_Forwarded_For="2001:DB8::1").status, 429,
           "IPv6, another spelling of the same address")

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


def _raw_auth(svc, headers):
    """GET /v1/authorize with headers, a list of (name, value): names may
    repeat."""
    head = "".join("%s: %s\r\n" % h for h in headers)
    return raw_http(svc.port, ("GET /v1/authorize HTTP/1.1\r\nHost: t\r\n%s"
                               "Connection: close\r\n\r\n" % head).encode())


def test_authorize_repeated_identity_header_refused():
    """A method, URI, tenant or user header on two lines is 400 VAL_002
    naming it, whichever copy came first (a client's line before the
    proxy's must not pick the policy or the bucket), and nothing is
    counted. In a /v1/decide "headers" object, two names equal but for
    case are 422 VAL_002 likewise."""
    cfg = dict(CFG, forward_auth={"user_header": "X-User-Id"})
    with service(cfg, "memory") as svc:
        good = [("X-Original-Method", "POST"), ("X-Original-URI", "/sites/a"),
                ("X-Tenant-Id", "t"), ("X-User-Id", "u")]
        for name, other in (("x-original-method", "GET"), ("x-original-uri", "/free"),
                            ("x-tenant-id", "t2"), ("x-user-id", "u")):
            for first in (True, False):
                hdrs = list(good)
                at = [h[0].lower() for h in hdrs].index(name)
                hdrs.insert(at if first else at + 1, (name.upper(), other))
                r = _raw_auth(svc, hdrs)
                eq((r.status, r.json["code"], r.json["error"]),
                   (400, "VAL_002", "%s appears more than once" % name),
                   "%s repeated (extra copy %s)" % (name, "first" if first else "last"))
        _allowed(_raw_auth(svc, good), "the first clean request: nothing was counted")
        eq(_raw_auth(svc, good).status, 429, "the second")

        r = svc.decide(path="/key/x", headers={"x-api-key": "k1", "X-Api-Key": "k2"})
        eq((r.status, r.json["code"], r.json["error"]),
           (422, "VAL_002",
            "headers.X-Api-Key repeats another header's name (names are case-insensitive)"),
           "case variants in /v1/decide headers")
        eq(svc.verdict(path="/key/x", headers={"X-Api-Key": "k1"})["remaining"], 0,
           "k1 not counted before")


def test_decide_ip_keyed_like_authorize():
    """/v1/decide keys an "ip" that is an address in the canonical form
    /v1/authorize uses, so one address spelled two ways, on either
    endpoint, is one bucket; an "ip" that is no address is keyed as
    sent."""
    with service(CFG, "memory") as svc:
        _allowed(_auth(svc, X_Original_Method="GET", X_Original_URI="/ip/v6",
                       X_Forwarded_For="2001:DB8:0::8"), "authorize, first")
        for spelling in ("2001:db8::8", "2001:DB8::8", "2001:db8:0:0:0:0:0:8"):
            eq(svc.verdict(path="/ip/v6", ip=spelling)["allowed"], False,
               "decide %s after authorize" % spelling)
        eq(svc.verdict(path="/ip/v4", ip="::FFFF:203.0.113.9")["allowed"], True, "mapped, first")
        eq(svc.verdict(path="/ip/v4", ip="::ffff:203.0.113.9")["allowed"], False,
           "mapped, another spelling")
        eq(_auth(svc, X_Original_Method="GET", X_Original_URI="/ip/v4",
                 X_Forwarded_For="::ffff:203.0.113.9").status, 429, "authorize, same bucket")
        eq(svc.verdict(path="/ip/x", ip="not-an-ip")["allowed"], True, "no address, first")
        eq(svc.verdict(path="/ip/x", ip="not-an-ip")["allowed"], False, "no address, again")
        eq(svc.verdict(path="/ip/x", ip="NOT-AN-IP")["allowed"], True, "no address: as sent")


def test_authorize_client_ip_sources():
    """forward_auth.client_ip: trusted_hops 2 takes the second entry from
    the right; {"header": "X-Real-IP"} takes it whole (one address,
    X-Forwarded-For ignored); "peer" takes the TCP peer, whatever the
    headers say."""
    p = "/v1/authorize/ip/x"
    two = dict(ENVOY, client_ip={"header": "X-Forwarded-For", "trusted_hops": 2})
    with service(dict(CFG, forward_auth=two), "memory") as svc:
        _allowed(_auth(svc, p, X_Forwarded_For="198.51.100.1, 203.0.113.7, 10.0.0.1"), "hop 2")
        eq(_auth(svc, p, X_Forwarded_For="198.51.100.2, 203.0.113.7, 10.0.0.2").status, 429,
           "the same second entry from the right")
        r = _auth(svc, p, X_Forwarded_For="203.0.113.8")
        eq((r.status, r.json["code"]), (400, "VAL_002"), "fewer entries than trusted_hops")
    real = dict(ENVOY, client_ip={"header": "X-Real-IP"})
    with service(dict(CFG, forward_auth=real), "memory") as svc:
        _allowed(_auth(svc, p, X_Real_IP="203.0.113.7", X_Forwarded_For="1.1.1.1"), "X-Real-IP")
        eq(_auth(svc, p, X_Real_IP=" 203.0.113.7 ", X_Forwarded_For="2.2.2.2").status, 429,
           "X-Real-IP again, X-Forwarded-For ignored")
        r = _auth(svc, p, X_Real_IP="203.0.113.7, 10.0.0.1")
        eq((r.status, r.json["code"]), (400, "VAL_002"), "a list in X-Real-IP")
    with service(dict(CFG, forward_auth=dict(ENVOY, client_ip="peer")), "memory") as svc:
        _allowed(_auth(svc, p, X_Forwarded_For="198.51.100.1", X_Real_IP="198.51.100.1"),
                 "peer, first")
        r = _auth(svc, p, X_Forwarded_For="198.51.100.2", X_Real_IP="198.51.100.2")
        eq(r.status, 429, "peer: the headers change nothing")


def test_authorize_client_ip_config_errors():
    """Bad forward_auth settings are refused at load, naming the path."""
    for fa, want in (({"client_ip": "left"}, "forward_auth.client_ip"),
                     ({"client_ip": {"trusted_hops": 1}}, "forward_auth.client_ip.header"),
                     ({"client_ip": {"header": "X-Forwarded-For", "trusted_hops": 33}},
                      "forward_auth.client_ip.trusted_hops"),
                     ({"uri_header": "bad header"}, "forward_auth.uri_header"),
                     ({"method_header": 7}, "forward_auth.method_header")):
        code, out = check_config(dict(CFG, forward_auth=fa))
        check(code != 0 and want + ":" in out, "%r refused naming %s: %r" % (fa, want, out))


def test_authorize_custom_headers_and_status():
    """forward_auth: tenant and user from other headers; deny_status 403
    with the policy's status and body in X-RateLimit-Deny-*."""
    cfg = dict(CFG, forward_auth=dict(ENVOY, deny_status=403, tenant_header="X-Account",
                                      user_header="X-Auth-User"))
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
    with service(ENVOY_CFG, "redis") as svc:
        _allowed(_auth(svc, "/v1/authorize/closed/x", X_Tenant_Id="t"), "Redis up")
        svc.redis.stop()
        wait_until(lambda: svc.d.request("GET", "/ready", timeout=2.0).status == 503,
                   5.0 * SLOW, what="/ready 503 once Redis is down")
        r = _auth(svc, "/v1/authorize/closed/x", X_Tenant_Id="t")
        eq((r.status, r.json["code"]), (503, "STORE_001"), "closed policy, Redis down")
        eq(r.json["trace_id"], r.header("X-Request-Id"), "trace_id")


def test_authorize_routes():
    """Only /v1/authorize and what is below it: not /v1/authorizeX."""
    with service(ENVOY_CFG, "memory") as svc:
        eq(svc.d.request("GET", "/v1/authorizeX").status, 404, "/v1/authorizeX")
        eq(svc.d.request("GET", "/v1/authorize/").status, 200, "/v1/authorize/")
        eq(svc.d.request("POST", "/v1/authorize/x", body=b"anything").status, 200,
           "a body is ignored")


def test_authorize_head():
    """HEAD (a gateway passing the client's method on): the status and
    headers, no body, and the kept-alive connection still works after."""
    with service(CFG, "memory") as svc:
        c = svc.d.client()
        hdrs = {"X-Tenant-Id": "t", "X-Original-Method": "POST", "X-Original-URI": "/sites/h"}
        for want in (200, 429):
            r = c.request("HEAD", "/v1/authorize/sites/h", headers=hdrs)
            eq((r.status, r.body), (want, b""), "HEAD /v1/authorize/sites/h")
        eq(r.header("X-Ratelimit-Remaining"), "0", "headers on the HEAD denial")
        r = c.request("POST", "/v1/authorize/sites/h", headers=hdrs)
        eq((r.status, r.json), (429, DENY["body"]), "POST after HEAD on the same connection")
        c.close()
