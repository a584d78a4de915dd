"""POST /v1/decide/batch: results in order, partial errors, all invalid,
the 1,000-item limit, 413 before the body is read, the envelope's errors,
and the whole batch reaching Redis as one pipeline (far fewer reads by
Redis than items)."""

import json

from harness import (STORES, check, config, eq, limit, parametrize, policy, raw_http,
                     redis_calls, service)

CFG = config(
    policy("per-site", "/sites/{site}", [limit(1, "5m", burst=1)], key=["tenant", "path.site"],
           method="POST", headers="x-ratelimit-retry-after",
           deny={"status": 429, "body": {"success": False, "message": "Too many attempts."}}),
    policy("bulk", "/bulk/*", [limit(100000, "1m")], key=["tenant"]),
    store={"timeout_ms": 2000},
)


def _batch(svc, items):
    return svc.request("POST", "/v1/decide/batch", json_body={"requests": items})


def _partial(store):
    """Valid items get their decision, in order (the same key twice: the
    second is denied); invalid ones a null result and an errors entry."""
    with service(CFG, store) as svc:
        items = [
            {"method": "POST", "path": "/sites/s1", "tenant": "t"},
            {"method": "POST", "tenant": "t"},
            {"method": "POST", "path": "/sites/s1", "tenant": "t"},
            {"method": "POST", "path": "/sites/s1"},
            {"method": "POST", "path": "/sites/s2", "tenant": "t", "cost": -1},
            {"method": "GET", "path": "/nowhere"},
            {"method": "POST", "path": "/sites/s2", "tenant": "t"},
        ]
        r = _batch(svc, items)
        eq(r.status, 200, "status (%r)" % r.body[:300])
        body = r.json
        eq(sorted(body), ["errors", "results", "trace_id"], "reply fields")
        eq(body["trace_id"], r.header("X-Request-Id"), "trace_id = X-Request-Id")
        res = body["results"]
        eq(len(res), len(items), "one result per item")
        eq([x is None for x in res], [False, True, False, True, True, False, False],
           "null results for the invalid items")
        eq((res[0]["allowed"], res[0]["policy"], res[0]["status"]), (True, "per-site", 200),
           "item 0")
        eq((res[2]["allowed"], res[2]["status"], res[2]["body"]),
           (False, 429, {"success": False, "message": "Too many attempts."}),
           "item 2: the same site again, decided after item 0")
        check(res[2]["headers"].get("Retry-After") is not None, "item 2 headers: %r" % res[2])
        eq((res[5]["allowed"], res[5]["policy"]), (True, None), "item 5: no policy")
        eq((res[6]["allowed"], res[6]["policy"]), (True, "per-site"), "item 6: another site")
        eq([(e["index"], e["message"]) for e in body["errors"]],
           [(1, "path is required"), (3, 'tenant is required by policy "per-site"'),
            (4, "cost must be an integer from 0 to 1000000000")], "errors")
        eq([e["code"] for e in body["errors"]], ["VAL_001", "VAL_001", "VAL_002"], "error codes")
        # The verdicts counted: a single decide now sees site s1 used up.
        v = svc.decide(method="POST", path="/sites/s1", tenant="t").json
        eq(v["allowed"], False, "s1 after the batch")


parametrize(globals(), "test_batch_partial", _partial, STORES)


def test_batch_all_invalid():
    """Every item invalid: 400 with "validation failed" and every error."""
    with service(CFG, "memory") as svc:
        r = _batch(svc, [{"method": "POST"}, {"path": "x"}, {"method": "POST", "path": "/sites/a"}])
        eq(r.status, 400, "status (%r)" % r.body[:300])
        body = r.json
        eq(body["error"], "validation failed", "error")
        eq(body["trace_id"], r.header("X-Request-Id"), "trace_id")
        check("results" not in body, "no results on a 400: %r" % body)
        eq([(e["index"], e["message"]) for e in body["errors"]],
           [(0, "path is required"), (1, 'path must start with "/"'),
            (2, 'tenant is required by policy "per-site"')], "errors")


def test_batch_limits():
    """1,000 items are decided; 1,001 are refused with 400 VAL_003."""
    with service(CFG, "redis") as svc:
        items = [{"path": "/bulk/x", "tenant": "t%d" % (i % 7)} for i in range(1000)]
        r = _batch(svc, items)
        eq(r.status, 200, "1,000 items (%r)" % r.body[:300])
        res = r.json["results"]
        eq(len(res), 1000, "results")
        check(all(x["allowed"] and not x["degraded"] for x in res), "every item allowed, not degraded")
        eq([res[i]["remaining"] for i in (0, 7, 14)], [99999, 99998, 99997],
           "tenant t0's remaining, item after item (decided in order)")
        eq(r.json["errors"], [], "errors")
        r = _batch(svc, items + [{"path": "/bulk/x", "tenant": "t"}])
        eq(r.status, 400, "1,001 items")
        eq(r.json["code"], "VAL_003", "code")
        eq(r.json["error"], "too many requests: 1001 (max 1000)", "error")


def test_batch_envelope_errors():
    """The envelope is checked before any item: the error shape each time."""
    rows = [
        (b'{"requests": [', 400, "VAL_002"),
        (b'[]', 422, "VAL_002"),
        (b'{}', 422, "VAL_001"),
        (b'{"requests": {}}', 422, "VAL_002"),
        (b'{"requests": []}', 422, "VAL_002"),
    ]
    with service(CFG, "memory") as svc:
        for raw, status, code in rows:
            r = svc.request("POST", "/v1/decide/batch", body=raw,
                            headers={"Content-Type": "application/json"})
            eq((r.status, r.json.get("code")), (status, code), "body %r" % raw)
            eq(r.json["trace_id"], r.header("X-Request-Id"), "trace_id for %r" % raw)
        r = svc.request("POST", "/v1/decide/batch", body=b'{"requests": []}')
        eq(r.status, 415, "without a JSON Content-Type")
        r = svc.request("GET", "/v1/decide/batch")
        eq((r.status, r.header("Allow")), (405, "POST"), "GET")


def test_batch_413_before_reading():
    """A body over http.max_body_bytes (10 MB by default) is answered 413
    from Content-Length alone: nothing of the body is sent."""
    with service(CFG, "memory") as svc:
        head = ("POST /v1/decide/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (10 * 1024 * 1024 + 1)).encode()
        r = raw_http(svc.port, head)
        eq(r.status, 413, "status")
        eq(r.json["code"], "PAYLOAD_TOO_LARGE", "code")
        # Exactly 10 MB is read and parsed (a big but valid batch).
        item = json.dumps({"path": "/bulk/x", "tenant": "t", "pad": "x" * 10000})
        n = 1000
        body = '{"requests": [' + ",".join([item] * n) + "]}"
        body += " " * (10 * 1024 * 1024 - len(body))
        r = svc.request("POST", "/v1/decide/batch", body=body.encode(),
                        headers={"Content-Type": "application/json"})
        eq(r.status, 200, "a batch of exactly 10 MB")
        eq(len(r.json["results"]), n, "results")


test_batch_413_before_reading.timeout = 120


def _reads(redis):
    info = redis.call("INFO", "stats")
    for line in info.splitlines():
        if line.startswith("total_reads_processed:"):
            return int(line.split(":")[1])
    raise AssertionError("no total_reads_processed in INFO stats")


def test_batch_pipelined():
    """500 items reach Redis at once: Redis processes far fewer reads than
    items, and runs the script 8 times (batched calls of up to 64)."""
    with service(CFG, "redis") as svc:
        items = [{"path": "/bulk/p", "tenant": "p%d" % i} for i in range(500)]
        svc.verdict(path="/bulk/p", tenant="warm-up")
        svc.redis.call("CONFIG", "RESETSTAT")
        before = _reads(svc.redis)
        r = _batch(svc, items)
        after = _reads(svc.redis)
        eq(redis_calls(svc.redis), 8, "script calls for 500 items")
        eq(r.status, 200, "status")
        check(all(x["allowed"] and not x["degraded"] for x in r.json["results"]),
              "every item allowed by the store")
        reads = after - before
        # Each INFO call is one read of its own; the items are the rest.
        check(reads <= 50, "Redis processed %d reads for 500 items: not pipelined" % reads)
        # The same 500 one by one, for contrast: at least one read each.
        c = svc.d.client()
        before = _reads(svc.redis)
        for it in items:
            c.decide(**it)
        after = _reads(svc.redis)
        c.close()
        check(after - before >= 500, "500 single decisions took only %d reads" % (after - before))
        print("reads: batch %d, one by one %d" % (reads, after - before))
