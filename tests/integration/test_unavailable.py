"""A policy's "unavailable" reply (status and body, with {trace_id} and the
deny-body placeholders) instead of STORE_001 when the store fails under
failure_mode closed, on /v1/decide, batch items and /v1/authorize, with
the access log naming the status the client got; bad "unavailable"
values refused at load with their JSON path. And {retry_after_human}
never reading a shorter wait than Retry-After allows."""

import json
import os
import tempfile
import time

from harness import (SLOW, check, config, eq, limit, policy, run_binary, service,
                     wait_until)
from test_access_log import lines_of

# The 503 body of source document 001.
SEED_001 = {"error": "service temporarily unavailable", "trace_id": "{trace_id}"}

CFG = config(
    dict(policy("ingest", "/ingest/*", [limit(100, "1m")], key=["tenant"],
                failure_mode="closed"),
         unavailable={"status": 503, "body": SEED_001}),
    dict(policy("maint", "/maint/*", [limit(100, "1m")], key=["tenant"],
                failure_mode="closed"),
         unavailable={"status": 500,
                      "body": {"msg": "{policy} is down ({trace_id})", "n": [1, None],
                               "keep": "{unknown}"}}),
    dict(policy("status-only", "/status/*", [limit(100, "1m")], key=["tenant"],
                failure_mode="closed"),
         unavailable={"status": 599}),
    policy("plain", "/plain/*", [limit(100, "1m")], key=["tenant"], failure_mode="closed"),
    store={"timeout_ms": 50}, access_log={"sample": 1.0}, workers=1)



def fwd(uri, extra=None):
    """The headers a forward-auth gateway sends for a GET of uri by tenant t
    (the forward_auth defaults: X-Original-Method, X-Original-URI)."""
    h = {"X-Tenant-Id": "t", "X-Original-Method": "GET", "X-Original-URI": uri}
    h.update(extra or {})
    return h

def _expect_store_001(body, what):
    """The fixed reply: the STORE_001 error shape and the verdict fields."""
    eq(body.get("code"), "STORE_001", "%s: code" % what)
    check(isinstance(body.get("error"), str) and body["error"], "%s: error %r" % (what, body))
    eq((body.get("allowed"), body.get("degraded")), (False, True), "%s: allowed/degraded" % what)


def _down(svc):
    svc.redis.stop()
    wait_until(lambda: svc.d.request("GET", "/ready", timeout=2.0).status == 503,
               5.0 * SLOW, what="/ready 503 once Redis is down")


def test_unavailable_reply_every_front_end():
    """Redis stopped: each front end answers the policy's status and
    templated body ({trace_id} = the request id); without "unavailable"
    (or with a status only) the STORE_001 shape; the access log logs what
    the client got."""
    with service(CFG, "redis") as svc:
        eq(svc.verdict(path="/ingest/x", tenant="t")["allowed"], True, "Redis up: allowed")
        _down(svc)
        # /v1/decide, with the client's own X-Request-Id and a generated one.
        r = svc.d.client().decide(path="/ingest/x", tenant="t",
                                  http_headers={"X-Request-Id": "req-0001"})
        eq((r.status, r.json), (503, {"error": "service temporarily unavailable",
                                      "trace_id": "req-0001"}), "decide: seed 001 body")
        eq(r.header("X-Request-Id"), "req-0001", "decide: X-Request-Id echoed")
        r = svc.decide(path="/maint/x", tenant="t")
        rid = r.header("X-Request-Id")
        check(rid, "decide: a generated X-Request-Id")
        eq((r.status, r.json), (500, {"msg": "maint is down (%s)" % rid, "n": [1, None],
                                      "keep": "{unknown}"}), "decide: templated body")
        eq([(o["status"], o["verdict"]) for o in lines_of(svc, rid, 1)], [(500, "error")],
           "decide: access line has the client's status")
        r = svc.decide(path="/status/x", tenant="t")
        eq(r.status, 599, "decide: status-only unavailable")
        _expect_store_001(r.json, "decide: status-only body")
        eq(r.json["trace_id"], r.header("X-Request-Id"), "decide: status-only trace_id")
        r = svc.decide(path="/plain/x", tenant="t")
        eq(r.status, 503, "decide: no unavailable -> 503")
        _expect_store_001(r.json, "decide: no unavailable")
        eq(r.json["policy"], "plain", "decide: no unavailable, policy")

        # A batch: each item its own policy's reply, {trace_id} = the batch's id.
        r = svc.request("POST", "/v1/decide/batch", json_body={"requests": [
            {"path": "/ingest/x", "tenant": "t"}, {"path": "/maint/x", "tenant": "t"},
            {"path": "/plain/x", "tenant": "t"}]})
        rid = r.header("X-Request-Id")
        eq(r.status, 200, "batch status")
        eq(r.json["trace_id"], rid, "batch trace_id")
        items = r.json["results"]
        eq((items[0]["status"], items[0]["body"]),
           (503, {"error": "service temporarily unavailable", "trace_id": rid}),
           "batch: seed 001 item")
        eq((items[0]["allowed"], items[0]["policy"], items[0]["degraded"]),
           (False, "ingest", True), "batch: item verdict fields")
        check("code" not in items[0], "batch: no STORE_001 code with a body: %r" % items[0])
        eq((items[1]["status"], items[1]["body"]["msg"]), (500, "maint is down (%s)" % rid),
           "batch: templated item")
        eq((items[2]["status"], items[2]["code"]), (503, "STORE_001"), "batch: plain item")
        check("body" not in items[2], "batch: plain item has no body: %r" % items[2])
        eq(sorted(o["status"] for o in lines_of(svc, rid, 3)), [500, 503, 503],
           "batch: access lines")

        # /v1/authorize.
        r = svc.request("GET", "/v1/authorize",
                        headers=fwd("/ingest/x", {"X-Request-Id": "req-0002"}))
        eq((r.status, r.json), (503, {"error": "service temporarily unavailable",
                                      "trace_id": "req-0002"}), "authorize: seed 001 body")
        r = svc.request("GET", "/v1/authorize", headers=fwd("/maint/x"))
        rid = r.header("X-Request-Id")
        eq((r.status, r.json["msg"]), (500, "maint is down (%s)" % rid), "authorize: templated")
        eq([o["status"] for o in lines_of(svc, rid, 1)], [500], "authorize: access line")
        r = svc.request("GET", "/v1/authorize", headers=fwd("/plain/x"))
        eq((r.status, r.json["code"]), (503, "STORE_001"), "authorize: no unavailable")


BAD = [
    ({"unavailable": 503}, "policies[0].unavailable: must be an object"),
    ({"unavailable": {"status": 429}},
     "policies[0].unavailable.status: must be an integer from 500 to 599"),
    ({"unavailable": {"status": 600, "body": {}}},
     "policies[0].unavailable.status: must be an integer from 500 to 599"),
    ({"unavailable": {"body": {}, "code": "STORE_001"}},
     "policies[0].unavailable.code: unknown field"),
]


def test_unavailable_config_errors():
    """Bad "unavailable" values: --check-config exits 1 naming the path."""
    with tempfile.TemporaryDirectory() as tmp:
        for i, (extra, expect) in enumerate(BAD):
            cfg = config(dict(policy("p", "/p", [limit(1, "1s")], failure_mode="closed"),
                              **extra))
            path = os.path.join(tmp, "bad%d.json" % i)
            with open(path, "w") as f:
                json.dump(cfg, f)
            rc, out, err = run_binary(["--check-config", path])
            eq(rc, 1, "exit code for %r" % extra)
            check(expect in err, "stderr for %r: expected %r in %r" % (extra, expect, err))
        path = os.path.join(tmp, "good.json")
        with open(path, "w") as f:
            json.dump(CFG, f)
        rc, out, err = run_binary(["--check-config", path])
        eq(rc, 0, "the test config validates (%r)" % err)


TRY = {"status": 429, "body": {"message": "Rate limit exceeded. Try again in {retry_after_human}."}}


def test_retry_after_human_never_earlier():
    """The 2-minute rule (1 per 2 minutes per user, burst 1) says "Try
    again in 2 minutes." right after the admit and 2 s later (Retry-After
    118); with 61 s left (the same rule 59 s in: a 61 s rule right after
    its admit) still 2 minutes; under a minute left, seconds."""
    cfg = config(
        policy("build-upload", "/upload", [limit(1, "2m", "gcra", burst=1)], key=["user"],
               headers="none", deny=TRY),
        policy("last-minute", "/last", [limit(1, "61s", "gcra", burst=1)], key=["user"],
               headers="none", deny=TRY))
    with service(cfg, "memory") as svc:
        def message(path, user="u"):
            v = svc.verdict(path=path, user=user)
            eq(v["allowed"], False, "%s denied" % path)
            return v["body"]["message"], v["headers"]["Retry-After"]

        for p in ("/upload", "/last"):
            eq(svc.verdict(path=p, user="u")["allowed"], True, "%s: first admit" % p)
        t0 = time.monotonic()
        two = "Rate limit exceeded. Try again in 2 minutes."
        msg, retry = message("/upload")
        eq(msg, two, "2-minute rule at 0 s")
        check(119 <= int(retry) <= 120, "Retry-After %s at 0 s" % retry)
        msg, retry = message("/last")
        eq(msg, two, "61 s left")
        check(60 < int(retry) <= 61, "Retry-After %s with 61 s left" % retry)
        time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)) + 0.05)
        msg, retry = message("/upload")
        eq(msg, two, "2-minute rule at ~2 s")
        check(115 <= int(retry) <= 118, "Retry-After %s at ~2 s" % retry)
        msg, retry = message("/last")
        eq(msg, "Rate limit exceeded. Try again in %s seconds." % retry, "under a minute left")
        check(55 <= int(retry) <= 59, "Retry-After %s under a minute" % retry)
        # Peeking (cost 0) is admitted and changes nothing: still 2 minutes.
        v = svc.verdict(path="/upload", user="u", cost=0)
        eq(v["allowed"], True, "cost 0 peek")
        eq(message("/upload")[0], two, "after a peek")
