"""A deny or unavailable "body" may be any JSON value (configuration.md):
a plain string is sent as that JSON string by every front end
(/v1/decide, /v1/authorize, gRPC's raw_body), never a 500."""

import json

from harness import check, config, eq, limit, policy, service
from test_grpc import call, dpolicy, grpc_cfg, rpc
from test_unavailable import _down, fwd

TEXT = "Too many requests: try again in {retry_after_human}"


def test_string_deny_body_on_every_front_end():
    cfg = grpc_cfg(
        dict(policy("p", "/p/*", [limit(1, "1h")], key=["tenant"]),
             deny={"body": TEXT}),
        dpolicy("g", "edge", [("k", None)], ["descriptor.k"],
                [{"requests": 1, "per": "1h"}], deny={"body": TEXT}))
    for store in ("memory", "redis"):
        with service(cfg, store) as svc:
            v = [svc.verdict(path="/p/x", tenant="t") for _ in range(2)][1]
            eq(v["allowed"], False, "%s: the second request denied" % store)
            check(isinstance(v["body"], str) and v["body"].startswith("Too many requests: try"),
                  "%s: /v1/decide body %r" % (store, v["body"]))
            r = svc.request("GET", "/v1/authorize", headers=fwd("/p/y", {"X-Tenant-Id": "u"}))
            eq(r.status, 200, "%s: authorize, first" % store)
            r = svc.request("GET", "/v1/authorize", headers=fwd("/p/y", {"X-Tenant-Id": "u"}))
            eq(r.status, 429, "%s: authorize, a string deny body (%r)" % (store, r.body[:200]))
            text = json.loads(r.body)
            check(isinstance(text, str) and "try again in" in text,
                  "%s: authorize body %r" % (store, r.body[:200]))
            res = rpc(*[call(cfg, [{"entries": [["k", "v"]]}]) for _ in range(2)])
            eq(res[1]["overall"], "OVER_LIMIT", "%s: gRPC over" % store)
            check(json.loads(res[1]["raw_body"]).startswith("Too many requests: try"),
                  "%s: gRPC raw_body %r" % (store, res[1]["raw_body"]))


def test_string_unavailable_body():
    cfg = config(dict(policy("c", "/c/*", [limit(5, "1m")], key=["tenant"],
                             failure_mode="closed"),
                      unavailable={"status": 503, "body": "down ({trace_id})"}),
                 store={"timeout_ms": 50}, workers=1)
    with service(cfg, "redis") as svc:
        _down(svc)
        r = svc.request("GET", "/v1/authorize", headers=fwd("/c/x"))
        eq(r.status, 503, "authorize with Redis down (%r)" % r.body[:200])
        eq(json.loads(r.body), "down (%s)" % r.headers["X-Request-Id"], "its body")
        r = svc.request("POST", "/v1/decide", json_body={"path": "/c/x", "tenant": "t"})
        eq(r.status, 503, "decide with Redis down (%r)" % r.body[:200])
        eq(json.loads(r.body), "down (%s)" % r.headers["X-Request-Id"], "its body")
