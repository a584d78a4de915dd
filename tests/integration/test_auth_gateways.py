"""Caller authentication and tenant verification on the gateway endpoints:
/v1/decide/batch and /v1/authorize are protected like /v1/decide, and a
tenant's signature arriving as real headers on /v1/authorize is checked
before anything is counted."""

import json

from harness import (STORES, caller_headers, config, eq, limit, parametrize, policy, service,
                     tenant_headers)

CALLER = "gateway-eu"
CALLER_SECRET = "gateway-eu-caller-secret-0001"
TENANT = "tenant-one"
TENANT_SECRET = "tenant-one-signing-secret-01"
LIMIT = 3


def gw_config(mode="hmac"):
    callers = [{"id": CALLER, "secret": CALLER_SECRET}] if mode == "hmac" else []
    cfg = config(dict(policy("events", "/v1/events", [limit(LIMIT, "1m")], key=["tenant"],
                             method="POST"), verify_tenant="hmac"),
                 tenants=[{"id": TENANT, "secret": TENANT_SECRET}], workers=1)
    if mode == "hmac":
        cfg["auth"] = {"mode": "hmac", "callers": callers}
    return cfg


def signed(client, method, path, body=b"", headers=None):
    """A request to ratelimitd signed by the caller."""
    h = caller_headers(CALLER, CALLER_SECRET, method, path, body)
    h.update(headers or {})
    return client.request(method, path, body=body or None, headers=h)


def test_batch_and_authorize_need_a_signed_caller():
    with service(gw_config()) as svc:
        c = svc.client()
        batch = json.dumps({"requests": [{"method": "GET", "path": "/x"}]}).encode()
        r = c.request("POST", "/v1/decide/batch", body=batch,
                      headers={"Content-Type": "application/json"})
        eq(r.status, 401, "unsigned batch")
        eq(r.json["code"], "AUTH_002", "unsigned batch code")
        r = c.request("GET", "/v1/authorize", headers={"X-Original-URI": "/x"})
        eq(r.status, 401, "unsigned authorize")
        eq(r.json["code"], "AUTH_002", "unsigned authorize code")
        bad = caller_headers(CALLER, "not-the-secret-at-all-000", "GET", "/v1/authorize")
        bad["X-Original-URI"] = "/x"
        r = c.request("GET", "/v1/authorize", headers=bad)
        eq(r.status, 401, "badly signed authorize")
        eq(r.json["code"], "AUTH_001", "badly signed authorize code")

        r = signed(c, "POST", "/v1/decide/batch", batch, {"Content-Type": "application/json"})
        eq(r.status, 200, "signed batch (%r)" % r.body[:200])
        r = signed(c, "GET", "/v1/authorize",
                   headers={"X-Original-URI": "/x", "X-Original-Method": "GET"})
        eq(r.status, 200, "signed authorize (%r)" % r.body[:200])


def _authorize_tenant(store):
    """A forged tenant signature on /v1/authorize is refused and charges
    nothing; the real one is counted against the signed tenant."""
    with service(gw_config(mode="none"), store) as svc:
        c = svc.client()
        for i in range(50):
            h = tenant_headers(TENANT, "forged-secret-%04d-xxxxxxxxx" % i, "POST", "/v1/events")
            h.update({"X-Original-Method": "POST", "X-Original-URI": "/v1/events"})
            r = c.request("GET", "/v1/authorize", headers=h)
            eq(r.status, 401, "forgery %d" % i)
            eq(r.json["code"], "AUTH_001", "forgery %d code" % i)
        h = {"X-Original-Method": "POST", "X-Original-URI": "/v1/events", "X-Tenant-Id": TENANT}
        r = c.request("GET", "/v1/authorize", headers=h)
        eq(r.status, 401, "unsigned tenant")
        eq(r.json["code"], "AUTH_002", "unsigned tenant code")

        admitted = 0
        for _ in range(LIMIT + 2):
            h = tenant_headers(TENANT, TENANT_SECRET, "POST", "/v1/events")
            h.update({"X-Original-Method": "POST", "X-Original-URI": "/v1/events"})
            r = c.request("GET", "/v1/authorize", headers=h)
            if r.status == 200:
                admitted += 1
            else:
                eq(r.status, 429, "over the limit")
        # The forgeries spent nothing: the real tenant still has its full quota.
        eq(admitted, LIMIT, "admitted for the signed tenant")


_authorize_tenant.timeout = 120
parametrize(globals(), "test_authorize_verifies_tenant_headers", _authorize_tenant, STORES)
