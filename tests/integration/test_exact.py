"""Exactness under concurrency: 2,000 requests from 32 clients against one
key limited to 100 per minute."""

from harness import (between, config, eq, gcra_upper, hammer, limit, policy, service,
                     wait_window_start)

TOTAL = 2000
CLIENTS = 32


def _cfg(algo):
    return config(policy("exact", "/*", [limit(100, "1m", algo)], key=["tenant"]),
                  workers=4, store={"timeout_ms": 1000})


def _run(svc, algo):
    """Hammers one key from 32 clients spread over every daemon of svc;
    returns (admitted, elapsed)."""
    if algo == "fixed_window":
        wait_window_start(svc, 60, 15)
    ports = [d.port for d in svc.daemons]
    results, elapsed = hammer(ports, TOTAL, CLIENTS,
                              lambda i: {"method": "POST", "path": "/x", "tenant": "one"})
    admitted = 0
    for r in results:
        eq(r.status, 200, "HTTP status (body %r)" % r.body[:200])
        v = r.json
        eq(v["degraded"], False, "degraded")
        eq(v["status"], 200 if v["allowed"] else 429, "verdict status")
        admitted += 1 if v["allowed"] else 0
    return admitted, elapsed


def test_exact_fixed_window_redis_two_processes():
    with service(_cfg("fixed_window"), "redis", instances=2) as svc:
        admitted, _ = _run(svc, "fixed_window")
        eq(admitted, 100, "admitted of 2000 (two processes, one Redis)")


def test_exact_fixed_window_memory():
    with service(_cfg("fixed_window"), "memory") as svc:
        admitted, _ = _run(svc, "fixed_window")
        eq(admitted, 100, "admitted of 2000 (memory store)")


def test_exact_gcra_redis_two_processes():
    with service(_cfg("gcra"), "redis", instances=2) as svc:
        admitted, elapsed = _run(svc, "gcra")
        between(admitted, 100, gcra_upper(100, 60, 100, elapsed),
                "admitted of 2000 in %.2fs (GCRA 100/min burst 100)" % elapsed)


def test_exact_gcra_memory():
    with service(_cfg("gcra"), "memory") as svc:
        admitted, elapsed = _run(svc, "gcra")
        between(admitted, 100, gcra_upper(100, 60, 100, elapsed),
                "admitted of 2000 in %.2fs (GCRA 100/min burst 100)" % elapsed)


def test_exact_sliding_window_redis_two_processes():
    with service(_cfg("sliding_window"), "redis", instances=2) as svc:
        admitted, elapsed = _run(svc, "sliding_window")
        between(admitted, 100, gcra_upper(100, 60, 100, elapsed),
                "admitted of 2000 in %.2fs (sliding window 100/min)" % elapsed)


for _f in list(globals().values()):
    if callable(_f) and getattr(_f, "__name__", "").startswith("test_"):
        _f.timeout = 120
