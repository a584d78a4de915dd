"""/health and /ready, including /ready following Redis down and back up."""

from harness import (SLOW, Ratelimitd, Redis, check, config, eq, free_port, limit, policy,
                     service, store_config, wait_until)

CFG = config(policy("p", "/*", [limit(10, "1m")]))


def _json_reply(r):
    ctype = r.header("Content-Type") or ""
    check(ctype.startswith("application/json"), "Content-Type %r" % ctype)
    return r.json


def _ready(svc):
    """(status, body without "nodes"); "nodes" itself is checked here: the
    one Redis node, "up" when ready (the answering worker's own view, so
    it may already read "up" while another worker still says 503), and
    none for the memory store."""
    r = svc.d.request("GET", "/ready", timeout=2.0)
    body = _json_reply(r)
    nodes = body.pop("nodes", None)
    if svc.store == "redis":
        name = "127.0.0.1:%d" % svc.redis.port
        eq(list(nodes), [name], "/ready nodes")
        if r.status == 200:
            eq(nodes[name], "up", "/ready node state when ready")
    else:
        eq(nodes, None, "/ready nodes of the memory store")
    return r.status, body


READY = (200, {"status": "ready", "store": "connected"})


def _wait_ready(svc, what):
    """/ready may lag the start by a moment (the store state is published
    periodically); it must say ready within a second or so."""
    wait_until(lambda: _ready(svc) == READY, 2.0 * SLOW, what=what)


def test_health_memory():
    with service(CFG, "memory") as svc:
        r = svc.request("GET", "/health")
        eq((r.status, _json_reply(r)), (200, {"status": "healthy"}), "/health")
        _wait_ready(svc, "/ready 200 on the memory store")
        eq(_ready(svc), READY, "/ready on the memory store")


def test_ready_follows_redis():
    """/ready: 200 -> 503 "disconnected" when Redis stops (while /health stays
    200) -> 200 again after Redis restarts on the same port, same process."""
    with service(CFG, "redis") as svc:
        _wait_ready(svc, "/ready 200 with Redis up")
        pid = svc.d.pid
        svc.redis.stop()
        status, body = wait_until(lambda: (lambda s: s if s[0] == 503 else None)(_ready(svc)),
                                  5.0 * SLOW, what="/ready to answer 503")
        eq(body.get("store"), "disconnected", "/ready body store with Redis down: %r" % body)
        r = svc.d.request("GET", "/health")
        eq((r.status, r.json), (200, {"status": "healthy"}), "/health with Redis down")
        svc.redis.start()
        wait_until(lambda: _ready(svc) == READY, 5.0 * SLOW,
                   what="/ready to answer 200 after Redis came back")
        eq(svc.d.proc.poll(), None, "ratelimitd still running")
        eq(svc.d.pid, pid, "same ratelimitd process")
        v = svc.verdict(path="/x")
        eq((v["allowed"], v["degraded"]), (True, False), "decision after Redis came back")


def test_starts_without_redis_and_connects_later():
    """ratelimitd starts while Redis is down (/ready 503) and connects once
    Redis appears, without a restart."""
    redis = Redis(port=free_port())
    cfg = dict(CFG, store=store_config("redis", redis))
    d = Ratelimitd(cfg)
    try:
        d.start(ready=False)
        r = d.request("GET", "/ready")
        eq((r.status, r.json.get("store")), (503, "disconnected"), "/ready before Redis starts")
        redis.start()
        wait_until(lambda: d.request("GET", "/ready", timeout=2.0).status == 200,
                   5.0 * SLOW, what="/ready 200 once Redis is up")
        v = d.request("POST", "/v1/decide", json_body={"path": "/x"}).json
        eq((v["allowed"], v["degraded"]), (True, False), "decision once Redis is up")
        d.stop()
    finally:
        d.cleanup()
        redis.cleanup()
