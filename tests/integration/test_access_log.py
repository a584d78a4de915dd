"""The access log of every front end, with the status the client really
got: a tenant-verification failure is 401 / 403 (verdict "unauthorized",
not "denied"), a batch writes one line per item with each item's status,
/v1/authorize writes one line per request (the gateway's status)."""

import json

from harness import (SLOW, check, config, eq, limit, policy, service, tenant_headers,
                     wait_until)

ACME = "acme-corp-tenant-secret-01"
GONE = "gone-tenant-secret-000003"

CFG = config(
    dict(policy("events", "/v1/events", [limit(5, "1m")], key=["tenant"], method="POST"),
         verify_tenant="hmac"),
    policy("one", "/one/*", [limit(1, "1h", "fixed_window")], key=["tenant"]),
    tenants=[{"id": "acme-corp", "secret": ACME},
             {"id": "gone-corp", "secret": GONE, "status": "suspended"}],
    access_log={"sample": 1.0}, workers=1)


def access_lines(svc):
    """Every access log line ratelimitd has written so far, parsed."""
    out = []
    with open(svc.d.log_path, errors="replace") as f:
        for line in f:
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if isinstance(o, dict) and o.get("msg") == "access":
                out.append(o)
    return out


def lines_of(svc, rid, n):
    """The access lines of request rid, once there are at least n."""
    def got():
        lines = [o for o in access_lines(svc) if o["request_id"] == rid]
        return lines if len(lines) >= n else None
    lines = wait_until(got, 5 * SLOW, what="%d access lines of %s" % (n, rid))
    return lines


def _signed(svc, tenant, secret, sign_path="/v1/events"):
    h = tenant_headers(tenant, secret, "POST", sign_path)
    return svc.decide(method="POST", path="/v1/events", headers=h)


def test_tenant_verification_failure_logs_401_403():
    with service(CFG, "memory") as svc:
        cases = [
            ("valid signature", _signed(svc, "acme-corp", ACME), 200, "allowed"),
            ("bad signature", _signed(svc, "acme-corp", "wrong-secret"), 401, "unauthorized"),
            ("signed another path", _signed(svc, "acme-corp", ACME, "/v1/other"), 401,
             "unauthorized"),
            ("suspended tenant", _signed(svc, "gone-corp", GONE), 403, "unauthorized"),
        ]
        for what, r, status, verdict in cases:
            eq(r.status, status, "reply status (%s: %r)" % (what, r.body[:200]))
            line = lines_of(svc, r.header("X-Request-Id"), 1)
            eq(len(line), 1, "access lines (%s)" % what)
            eq((line[0]["status"], line[0]["verdict"], line[0]["policy"]),
               (status, verdict, "events"), "access line (%s)" % what)
            check(line[0]["verdict"] != "denied" or status == 429, "verdict of %s" % what)


def test_batch_of_three_writes_three_lines():
    """Allowed, denied and invalid items: three lines with the batch's
    request id and the item statuses 200, 429, 422."""
    with service(CFG, "memory") as svc:
        r = svc.request("POST", "/v1/decide/batch", json_body={"requests": [
            {"path": "/one/a", "tenant": "b1"},
            {"path": "/one/a", "tenant": "b1"},
            {"path": "/one/a"}]})
        eq(r.status, 200, "batch status (%r)" % r.body[:300])
        eq([x is None for x in r.json["results"]], [False, False, True], "results")
        eq(r.json["errors"][0]["index"], 2, "the invalid item")
        lines = lines_of(svc, r.header("X-Request-Id"), 3)
        eq(len(lines), 3, "access lines of a batch of 3")
        eq(sorted((o["status"], o["verdict"]) for o in lines),
           [(200, "allowed"), (422, "invalid"), (429, "denied")], "item lines")
        eq({o["policy"] for o in lines if o["status"] != 422}, {"one"}, "policy of the items")


def test_authorize_writes_one_line_per_request():
    with service(CFG, "memory") as svc:
        want = [(200, "allowed"), (429, "denied"), (422, "invalid"), (422, "invalid")]
        nginx = {"X-Original-Method": "GET", "X-Original-URI": "/one/x"}
        sent = [
            svc.request("GET", "/v1/authorize", headers=dict(nginx, **{"X-Tenant-Id": "a1"})),
            svc.request("GET", "/v1/authorize", headers=dict(nginx, **{"X-Tenant-Id": "a1"})),
            svc.request("GET", "/v1/authorize", headers=nginx),
            svc.request("GET", "/v1/authorize", headers=dict(
                nginx, **{"X-Tenant-Id": "a1", "X-Original-URI": "/a/../b"})),
        ]
        for r, (status, verdict) in zip(sent, want):
            eq(r.status, status, "reply status (%r)" % r.body[:200])
            lines = lines_of(svc, r.header("X-Request-Id"), 1)
            eq(len(lines), 1, "access lines of one /v1/authorize")
            eq((lines[0]["status"], lines[0]["verdict"]), (status, verdict), "access line")


def test_store_down_logs_503_on_every_front_end():
    """failure_mode closed with Redis stopped: /v1/decide, a batch item
    and /v1/authorize each log status 503 (what the client got), verdict
    "error"; failure_mode open logs 200."""
    cfg = config(
        policy("closed", "/closed/*", [limit(100, "1m")], key=["tenant"], failure_mode="closed"),
        policy("open", "/open/*", [limit(100, "1m")], key=["tenant"], failure_mode="open"),
        store={"timeout_ms": 50}, access_log={"sample": 1.0}, workers=1)
    with service(cfg, "redis") as svc:
        svc.redis.stop()
        wait_until(lambda: svc.d.request("GET", "/ready", timeout=2.0).status == 503,
                   5.0 * SLOW, what="/ready 503 once Redis is down")
        r = svc.decide(path="/closed/x", tenant="t")
        eq(r.status, 503, "decide, failing closed")
        line = lines_of(svc, r.header("X-Request-Id"), 1)
        eq([(o["status"], o["verdict"]) for o in line], [(503, "error")], "decide line")
        r = svc.request("POST", "/v1/decide/batch", json_body={"requests": [
            {"path": "/closed/x", "tenant": "t"}, {"path": "/open/x", "tenant": "t"}]})
        eq(r.status, 200, "batch status")
        eq(r.json["results"][0]["status"], 503, "the closed item")
        lines = lines_of(svc, r.header("X-Request-Id"), 2)
        eq(sorted((o["status"], o["verdict"]) for o in lines), [(200, "error"), (503, "error")],
           "batch lines")
        r = svc.request("GET", "/v1/authorize", headers={
            "X-Tenant-Id": "t", "X-Original-Method": "GET", "X-Original-URI": "/closed/x"})
        eq(r.status, 503, "authorize, failing closed")
        line = lines_of(svc, r.header("X-Request-Id"), 1)
        eq([(o["status"], o["verdict"]) for o in line], [(503, "error")], "authorize line")
