"""Tenant verification ("verify_tenant": "hmac"): the end client's
signature is checked before anything is counted, forgers spend nothing,
and each failure has its AUTH code."""

import json
import os
import random
import re
import subprocess
import time

from harness import (ROOT, SLOW, STORES, EMPTY_SHA256, caller_headers, check, config, eq, limit,
                     parametrize, policy, service, sha256_hex, sign, tenant_headers)

ACME = "acme-corp-tenant-secret-01"
GLOBEX = "globex-tenant-secret-0002"
GONE = "gone-tenant-secret-000003"
LIMIT = 5


def tenant_config(**top):
    cfg = config(dict(policy("events", "/v1/events", [limit(LIMIT, "1m")], key=["tenant"],
                             method="POST"), verify_tenant="hmac"),
                 policy("open", "/open/*", [limit(LIMIT, "1m")], key=["tenant"]),
                 tenants=[{"id": "acme-corp", "secret": ACME},
                          {"id": "globex", "secret": GLOBEX},
                          {"id": "gone-corp", "secret": GONE, "status": "suspended"}],
                 workers=1)
    cfg.update(top)
    return cfg


def decide_signed(svc, tenant="acme-corp", secret=ACME, path="/v1/events", body_tenant=None,
                  ts=None, sign_path=None, content=None, extra=None, drop=()):
    """A /v1/decide for POST <path> carrying the client's tenant headers."""
    h = tenant_headers(tenant, secret, "POST", sign_path or path, content, ts)
    for name in drop:
        del h[name]
    h.update(extra or {})
    fields = {"method": "POST", "path": path, "headers": h}
    if body_tenant is not None:
        fields["tenant"] = body_tenant
    return svc.decide(**fields)


def assert_auth(r, status, code, what):
    eq(r.status, status, "status (%s: %r)" % (what, r.body[:200]))
    eq(r.json.get("code"), code, "code (%s)" % what)
    eq(r.json.get("trace_id"), r.header("X-Request-Id"), "trace_id (%s)" % what)


def remaining(svc, tenant):
    """The tenant's remaining quota, read with a cost-0 decision."""
    r = decide_signed(svc, tenant=tenant, secret={"acme-corp": ACME, "globex": GLOBEX}[tenant])
    eq(r.status, 200, "signed request of %s (%r)" % (tenant, r.body[:200]))
    return r.json["remaining"]


def _forger(store):
    """Hundreds of forged requests for acme-corp (wrong secret, another
    tenant's secret, stale or future timestamps, signatures for another
    path or method, garbage, acme's own signature replayed on another path)
    are all refused with 401 and leave acme-corp's quota untouched."""
    with service(tenant_config(), store) as svc:
        rng = random.Random(6)
        now = int(time.time())
        good = tenant_headers("acme-corp", ACME, "POST", "/v1/events")
        forgeries = []
        for i in range(300):
            kind = i % 6
            if kind == 0:
                forgeries.append(("wrong secret", dict(tenant="acme-corp",
                                  secret="guess-%08d-xxxxxxxx" % rng.randrange(10 ** 8)), "AUTH_001"))
            elif kind == 1:
                forgeries.append(("globex's secret", dict(tenant="acme-corp", secret=GLOBEX),
                                  "AUTH_001"))
            elif kind == 2:
                forgeries.append(("stale", dict(ts=now - 301 - rng.randrange(10 ** 6)), "AUTH_004"))
            elif kind == 3:
                forgeries.append(("signed for GET /x", dict(sign_path="/x"), "AUTH_001"))
            elif kind == 4:
                forgeries.append(("garbage signature", dict(extra={
                    "X-Signature": "hmac-sha256=%064x" % rng.getrandbits(256)}), "AUTH_001"))
            else:
                forgeries.append(("globex claims acme", dict(tenant="globex", secret=GLOBEX,
                                  body_tenant="acme-corp"), "AUTH_001"))
        codes = {}
        for what, kw, code in forgeries:
            r = decide_signed(svc, **kw)
            assert_auth(r, 401, code, what)
            codes[code] = codes.get(code, 0) + 1
        check(sum(codes.values()) == 300, "300 forgeries refused: %r" % codes)
        if svc.redis is not None:
            keys = svc.redis.call("KEYS", "*acme*")
            eq(keys, [], "Redis keys of acme-corp after the forgeries")
        # The first real request finds the whole quota.
        r = svc.decide(method="POST", path="/v1/events", headers=good)
        eq(r.status, 200, "acme-corp's own request (%r)" % r.body[:200])
        eq(r.json["allowed"], True, "acme-corp allowed")
        eq(r.json["remaining"], LIMIT - 1, "acme-corp's remaining after its first request")


_forger.timeout = 120
parametrize(globals(), "test_forger_leaves_quota_untouched", _forger, STORES)


def test_tenant_errors():
    now = int(time.time())
    with service(tenant_config(), "memory") as svc:
        rows = [
            ("no X-Signature", dict(drop=["X-Signature"]), 401, "AUTH_002"),
            ("no X-Timestamp", dict(drop=["X-Timestamp"]), 401, "AUTH_002"),
            ("no X-Tenant-Id", dict(drop=["X-Tenant-Id"]), 401, "AUTH_002"),
            ("unknown tenant", dict(tenant="initech", secret=ACME), 401, "AUTH_005"),
            ("stale", dict(ts=now - 400), 401, "AUTH_004"),
            ("from the future", dict(ts=now + 400), 401, "AUTH_004"),
            ("suspended", dict(tenant="gone-corp", secret=GONE), 403, "AUTH_003"),
            ("tenant field differs", dict(body_tenant="globex"), 401, "AUTH_001"),
            ("bad X-Content-SHA256", dict(content="abc"), 401, "AUTH_001"),
            ("body hash header not signed", dict(extra={"X-Content-SHA256": sha256_hex("x")}), 401,
             "AUTH_001"),
        ]
        for what, kw, status, code in rows:
            assert_auth(decide_signed(svc, **kw), status, code, what)
        # No headers at all.
        assert_auth(svc.decide(method="POST", path="/v1/events", tenant="acme-corp"), 401,
                    "AUTH_002", "unsigned")
        eq(remaining(svc, "acme-corp"), LIMIT - 1, "acme-corp charged once, by the check itself")


def test_signed_requests_are_counted():
    with service(tenant_config(), "memory") as svc:
        # tenant taken from X-Tenant-Id when the body has none
        for i in range(LIMIT):
            r = decide_signed(svc)
            eq(r.status, 200, "request %d (%r)" % (i + 1, r.body[:200]))
            eq(r.json["remaining"], LIMIT - 1 - i, "remaining after %d" % (i + 1))
        r = decide_signed(svc, body_tenant="acme-corp")
        eq((r.status, r.json["allowed"]), (200, False), "the 6th is denied")
        # globex has its own quota; a body hash forwarded as X-Content-SHA256
        body_sha = sha256_hex(json.dumps({"event": 1}))
        r = decide_signed(svc, tenant="globex", secret=GLOBEX, content=body_sha)
        eq((r.status, r.json["remaining"]), (200, LIMIT - 1), "globex signed with a body hash")
        # the query string is part of the signed path
        r = decide_signed(svc, tenant="globex", secret=GLOBEX, path="/v1/events?dry_run=1")
        eq((r.status, r.json["remaining"]), (200, LIMIT - 2), "globex signed with a query")
        # a policy without verify_tenant counts whatever is claimed
        r = svc.decide(path="/open/x", tenant="acme-corp")
        eq((r.status, r.json["policy"]), (200, "open"), "unverified policy")


def test_with_caller_auth():
    """Caller and tenant authentication together: the caller signs its
    request to ratelimitd, the end client's tenant signature rides inside."""
    cfg = tenant_config(auth={"mode": "hmac", "callers": [
        {"id": "gateway-eu", "secret": "gw-secret-0123456789abcdef"}]})
    with service(cfg, "memory") as svc:
        th = tenant_headers("acme-corp", ACME, "POST", "/v1/events")
        body = json.dumps({"method": "POST", "path": "/v1/events", "headers": th}).encode()
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(caller_headers("gateway-eu", "gw-secret-0123456789abcdef", "POST",
                                   "/v1/decide", body))
        r = svc.request("POST", "/v1/decide", body=body, headers=hdrs)
        eq((r.status, r.json.get("remaining")), (200, LIMIT - 1), "both signatures valid")
        th["X-Signature"] = sign(ACME + "x", th["X-Timestamp"], "POST", "/v1/events",
                                 EMPTY_SHA256)
        body = json.dumps({"method": "POST", "path": "/v1/events", "headers": th}).encode()
        hdrs.update(caller_headers("gateway-eu", "gw-secret-0123456789abcdef", "POST",
                                   "/v1/decide", body))
        assert_auth(svc.request("POST", "/v1/decide", body=body, headers=hdrs), 401, "AUTH_001",
                    "valid caller, forged tenant")


def test_docs_tenant_example():
    """The tenant example of docs/security.md, run as written (port
    aside), is verified and counted under acme-corp."""
    with open(os.path.join(ROOT, "docs", "security.md")) as f:
        m = re.search(r"<!-- tenant-example -->\s*```sh\n(.*?)```", f.read(), re.S)
    check(m is not None, "docs/security.md has no tenant-example block")
    cfg = config(dict(policy("events-tenant", "/v1/events", [limit(10, "1h")], key=["tenant"],
                             method="POST"), verify_tenant="hmac"),
                 tenants=[{"id": "acme-corp", "secret": "acme-corp-secret-change-me"}])
    with service(cfg, "memory") as svc:
        script = m.group(1).replace("127.0.0.1:8080", "127.0.0.1:%d" % svc.port)
        for i in range(2):
            p = subprocess.run(["bash", "-c", "set -eu\n" + script], capture_output=True,
                               timeout=20 * SLOW)
            eq(p.returncode, 0, "the example's exit code (%r)" % p.stderr[-300:])
            v = json.loads(p.stdout.decode())
            eq((v.get("allowed"), v.get("policy"), v.get("remaining")),
               (True, "events-tenant", 9 - i), "the example's verdict %d: %r" % (i + 1, v))
        # The same request with another secret is refused.
        p = subprocess.run(["bash", "-c", "set -eu\n" + script.replace(
            "acme-corp-secret-change-me", "acme-corp-secret-guessed!!")], capture_output=True,
            timeout=20 * SLOW)
        eq(json.loads(p.stdout.decode()).get("code"), "AUTH_001", "a forged signature")


def _named_policy(store):
    """Naming a policy that does not verify tenants ("policy": "loose")
    on a request that "events" (verify_tenant) would match is verified
    all the same: forged or unsigned, it is refused 401 like the matched
    policy would refuse it, and nothing is counted under either policy;
    signed, it is counted under the named policy. A named policy that
    verifies is verified too (as before)."""
    cfg = config(dict(policy("events", "/v1/events", [limit(LIMIT, "1m")], key=["tenant"],
                             method="POST"), verify_tenant="hmac"),
                 policy("loose", "/v1/*", [limit(LIMIT, "1m")], key=["tenant"]),
                 tenants=[{"id": "acme-corp", "secret": ACME}], workers=1)
    with service(cfg, store) as svc:
        for what, secret, drop, code in (("unsigned", ACME, ("X-Signature",), "AUTH_002"),
                                         ("forged", GLOBEX, (), "AUTH_001")):
            for i in range(LIMIT + 2):
                r = decide_named(svc, "loose", secret, drop)
                assert_auth(r, 401, code, "%s request naming loose (#%d)" % (what, i + 1))
        r = decide_named(svc, "loose", ACME, ())
        eq((r.status, r.json["policy"], r.json["remaining"]), (200, "loose", LIMIT - 1),
           "signed, naming loose: nothing counted before")
        r = decide_signed(svc)
        eq((r.status, r.json["policy"], r.json["remaining"]), (200, "events", LIMIT - 1),
           "events: nothing counted before")
        # A request "events" does not match (GET) naming loose is not verified.
        r = svc.decide(method="GET", path="/v1/events", tenant="acme-corp", policy="loose")
        eq((r.status, r.json["policy"]), (200, "loose"), "GET naming loose")


def decide_named(svc, name, secret, drop):
    """A POST /v1/events for acme-corp naming policy name, signed with
    secret, without the headers in drop."""
    h = tenant_headers("acme-corp", secret, "POST", "/v1/events")
    for d in drop:
        del h[d]
    return svc.decide(method="POST", path="/v1/events", headers=h, tenant="acme-corp",
                      policy=name)


parametrize(globals(), "test_tenant_named_policy", _named_policy, STORES)
