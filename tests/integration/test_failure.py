"""Failure modes: Redis stopped, Redis too slow, scripts flushed, AUTH."""

import time

from harness import (SLOW, Ratelimitd, Redis, between, check, config, eq, limit, policy,
                     service, store_config, wait_until)

CFG = config(
    policy("fail-open", "/open/*", [limit(100, "1m")], key=["tenant"], failure_mode="open"),
    policy("fail-closed", "/closed/*", [limit(100, "1m")], key=["tenant"],
           failure_mode="closed"),
    store={"timeout_ms": 50},
)


def _assert_closed_503(r, reason, what):
    """The error shape with code STORE_001 and the degraded decision."""
    eq(r.status, 503, "%s: HTTP status" % what)
    body = r.json
    check(isinstance(body.get("error"), str) and body["error"], "%s: error %r" % (what, body))
    eq(body.get("code"), "STORE_001", "%s: code" % what)
    eq(body.get("trace_id"), r.header("X-Request-Id"), "%s: trace_id = X-Request-Id" % what)
    eq((body.get("allowed"), body.get("policy"), body.get("degraded"), body.get("degraded_reason")),
       (False, "fail-closed", True, reason), "%s: allowed/policy/degraded/reason" % what)


def _assert_open_degraded(r, reason, what):
    eq(r.status, 200, "%s: HTTP status (%r)" % (what, r.body[:200]))
    v = r.json
    eq((v["allowed"], v["degraded"], v.get("degraded_reason"), v["policy"], v["status"]),
       (True, True, reason, "fail-open", 200), "%s: allowed/degraded/reason/policy/status" % what)


def _wait_ready(svc):
    wait_until(lambda: svc.d.request("GET", "/ready", timeout=2.0).status == 200,
               5.0 * SLOW, what="/ready 200")


def test_redis_stopped():
    """Redis down: failure_mode open admits (degraded), closed answers 503;
    both recover when Redis is back."""
    with service(CFG, "redis") as svc:
        _wait_ready(svc)
        for p in ("/open/x", "/closed/x"):
            v = svc.verdict(path=p, tenant="t")
            eq((v["allowed"], v["degraded"]), (True, False), "%s with Redis up" % p)
        svc.redis.stop()
        wait_until(lambda: svc.d.request("GET", "/ready", timeout=2.0).status == 503,
                   5.0 * SLOW, what="/ready 503 once Redis is down")
        c = svc.d.client()
        r = c.decide(path="/open/x", tenant="t")
        _assert_open_degraded(r, "disconnected", "open policy, Redis down")
        check(r.elapsed < 0.3 * SLOW, "open policy answered in %.3fs" % r.elapsed)
        r = c.decide(path="/closed/x", tenant="t")
        _assert_closed_503(r, "disconnected", "closed policy, Redis down")
        check(r.elapsed < 0.3 * SLOW, "closed policy answered in %.3fs" % r.elapsed)
        c.close()
        svc.redis.start()
        _wait_ready(svc)
        for p in ("/open/x", "/closed/x"):
            v = svc.verdict(path=p, tenant="t")
            eq((v["allowed"], v["degraded"]), (True, False), "%s after Redis came back" % p)


def test_redis_timeout():
    """A Redis blocked by DEBUG SLEEP: past store.timeout_ms (50) the failure
    mode decides within 300 ms; the late reply does not break the
    connection."""
    with service(CFG, "redis") as svc:
        _wait_ready(svc)
        c = svc.d.client()
        for p in ("/open/x", "/closed/x"):
            eq(c.decide(path=p, tenant="t").status, 200, "%s with Redis up" % p)
        blocker = svc.redis.client()
        try:
            blocker.send("DEBUG", "SLEEP", "1.0")
            time.sleep(0.05)
            r = c.decide(path="/open/x", tenant="t")
            _assert_open_degraded(r, "timeout", "open policy, Redis asleep")
            between(r.elapsed, 0.04, 0.3 * SLOW, "seconds to a degraded decision")
            r = c.decide(path="/closed/x", tenant="t")
            _assert_closed_503(r, "timeout", "closed policy, Redis asleep")
            between(r.elapsed, 0.04, 0.3 * SLOW, "seconds to the 503")
            eq(blocker.read(), "OK", "DEBUG SLEEP reply")
        finally:
            blocker.close()

        def healthy():
            v = svc.verdict(path="/open/x", tenant="t", _degraded_ok=True)
            return v["allowed"] and not v["degraded"]
        wait_until(healthy, 3.0 * SLOW, interval=0.1, what="a non-degraded decision again")
        c.close()


def test_function_flush_reloads():
    """FUNCTION FLUSH between decisions: the "function not found" reply
    reloads the library and the decision still counts."""
    cfg = config(policy("p", "/*", [limit(3, "1h")], key=["tenant"]))
    with service(cfg, "redis") as svc:
        v = svc.verdict(path="/s", tenant="t")
        eq((v["allowed"], v["remaining"]), (True, 2), "first request")
        eq(svc.redis.call("FUNCTION", "FLUSH"), "OK", "FUNCTION FLUSH")
        v = svc.verdict(path="/s", tenant="t")
        eq((v["allowed"], v["remaining"], v["degraded"]), (True, 1, False),
           "request after FUNCTION FLUSH")
        eq(svc.redis.call("FUNCTION", "FLUSH"), "OK", "FUNCTION FLUSH")
        v = svc.verdict(path="/s", tenant="t")
        eq((v["allowed"], v["remaining"], v["degraded"]), (True, 0, False),
           "request after a second FUNCTION FLUSH")
        eq(svc.verdict(path="/s", tenant="t")["allowed"], False, "fourth request")


def test_redis_auth():
    """store.password is sent as AUTH; a wrong one leaves the store down;
    the password never appears in the logs (even with -v)."""
    password, wrong = "s3cret-pw-1729", "wrong-pw-4104"
    redis = Redis(password=password).start()
    bad = None
    try:
        cfg = config(policy("p", "/*", [limit(3, "1h")]))
        with service(cfg, "redis", redis=redis, extra_args=["-v"]) as svc:
            _wait_ready(svc)
            v = svc.verdict(path="/a")
            eq((v["allowed"], v["degraded"], v["remaining"]), (True, False, 2),
               "decision with the right password")
            bad_cfg = dict(cfg, store=dict(store_config("redis", redis), password=wrong))
            bad = Ratelimitd(bad_cfg, ["-v"]).start(ready=False)
            time.sleep(0.3 * SLOW)
            r = bad.request("GET", "/ready")
            eq((r.status, r.json.get("store")), (503, "disconnected"), "/ready, wrong password")
            v = bad.request("POST", "/v1/decide", json_body={"path": "/a"}).json
            eq((v["allowed"], v["degraded"]), (True, True), "decision, wrong password")
            bad.stop()
            for d in (svc.d, bad):
                log = open(d.log_path, errors="replace").read()
                check(password not in log and wrong not in log,
                      "a password appears in the log %s" % d.log_path)
    finally:
        if bad is not None:
            bad.cleanup()
        redis.cleanup()
