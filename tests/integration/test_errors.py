"""Every error status of the HTTP API, its JSON shape, and X-Request-Id."""

import json

from harness import (SLOW, check, config, eq, limit, policy, raw_http, service)

CFG = config(policy("p", "/*", [limit(100, "1m")], key=["tenant"]),
             http={"max_body_bytes": 1024})


def assert_error(r, status, code=None, what=""):
    """r is an error reply of the one shape, with trace_id = X-Request-Id."""
    what = what or repr(r)
    eq(r.status, status, "HTTP status (%s)" % what)
    ctype = r.header("Content-Type") or ""
    check(ctype.startswith("application/json"), "Content-Type %r (%s)" % (ctype, what))
    body = r.json
    check(isinstance(body, dict), "error body is not an object: %r" % body)
    check(isinstance(body.get("error"), str) and body["error"],
          "error message missing (%s): %r" % (what, body))
    check(isinstance(body.get("code"), str) and body["code"],
          "error code missing (%s): %r" % (what, body))
    if code is not None:
        eq(body["code"], code, "error code (%s)" % what)
    rid = r.header("X-Request-Id")
    check(rid, "no X-Request-Id on the reply (%s)" % what)
    eq(body.get("trace_id"), rid, "trace_id = X-Request-Id (%s)" % what)
    return body


def test_malformed_json_400():
    with service(CFG, "memory") as svc:
        for raw in (b"{bad", b'{"path": "/x",}', b"", b"\xff\xfe"):
            r = svc.request("POST", "/v1/decide", body=raw,
                            headers={"Content-Type": "application/json"})
            assert_error(r, 400, "VAL_002", "body %r" % raw)


def test_missing_path_422_val_001():
    with service(CFG, "memory") as svc:
        r = svc.decide(method="GET", tenant="t")
        body = assert_error(r, 422, "VAL_001", "no path")
        check("path" in body["error"], "error %r does not name path" % body["error"])


def test_wrong_types_422_val_002():
    cases = [
        ({"path": 5}, "path"),
        ({"path": "no-slash"}, "path"),
        ({"path": "/x", "method": 7}, "method"),
        ({"path": "/x", "tenant": 5}, "tenant"),
        ({"path": "/x", "user": ["u"]}, "user"),
        ({"path": "/x", "ip": {}}, "ip"),
        ({"path": "/x", "cost": "1"}, "cost"),
        ({"path": "/x", "cost": -1}, "cost"),
        ({"path": "/x", "cost": 1.5}, "cost"),
        ({"path": "/x", "headers": "x"}, "headers"),
        ({"path": "/x", "headers": {"x-foo": 1}}, "x-foo"),
        ({"path": "/x", "policy": 3}, "policy"),
        ({"path": "/x", "tenant": "a\u0000b"}, "tenant"),
    ]
    with service(CFG, "memory") as svc:
        for fields, name in cases:
            r = svc.decide(**fields)
            body = assert_error(r, 422, "VAL_002", json.dumps(fields))
            check(name in body["error"], "error %r does not name %r" % (body["error"], name))
        for raw in (b"[]", b'"x"', b"42", b"null"):
            r = svc.request("POST", "/v1/decide", body=raw,
                            headers={"Content-Type": "application/json"})
            assert_error(r, 422, "VAL_002", "body %r" % raw)


def test_unknown_path_404():
    with service(CFG, "memory") as svc:
        for method, path in (("GET", "/nope"), ("POST", "/v1/nope"), ("GET", "/v1/decide/x")):
            r = svc.request(method, path, body=b"{}" if method == "POST" else None,
                            headers={"Content-Type": "application/json"})
            assert_error(r, 404, "NOT_FOUND", "%s %s" % (method, path))


def test_wrong_method_405():
    with service(CFG, "memory") as svc:
        for method, path, allow in (("GET", "/v1/decide", "POST"), ("PUT", "/v1/decide", "POST"),
                                    ("DELETE", "/v1/decide", "POST"), ("POST", "/health", "GET"),
                                    ("POST", "/ready", "GET")):
            body = b"{}" if method in ("PUT", "POST") else None
            r = svc.request(method, path, body=body, headers={"Content-Type": "application/json"})
            assert_error(r, 405, "METHOD_NOT_ALLOWED", "%s %s" % (method, path))
            eq(r.header("Allow"), allow, "Allow header of %s %s" % (method, path))


def test_content_type_415():
    with service(CFG, "memory") as svc:
        good = json.dumps({"path": "/x", "tenant": "t"}).encode()
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
            r = svc.request("POST", "/v1/decide", body=good, headers={"Content-Type": ctype})
            assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE", ctype)
        for ctype in ("application/json", "application/json; charset=utf-8", "Application/JSON"):
            r = svc.request("POST", "/v1/decide", body=good, headers={"Content-Type": ctype})
            eq(r.status, 200, "status with Content-Type %r" % ctype)


def _post_headers_only(length, rid="big-1"):
    return ("POST /v1/decide HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nX-Request-Id: %s\r\n"
            "Content-Length: %d\r\n\r\n" % (rid, length)).encode()


def test_body_too_large_413_before_reading():
    """A Content-Length over http.max_body_bytes is answered 413 from the
    headers alone: the body is never sent."""
    with service(CFG, "memory") as svc:
        r = raw_http(svc.port, _post_headers_only(1025), timeout=3.0 * SLOW)
        body = assert_error(r, 413, "PAYLOAD_TOO_LARGE", "Content-Length 1025 > 1024")
        eq(body["trace_id"], "big-1", "trace_id echoes X-Request-Id")
        pad = "x" * (1024 - len(json.dumps({"path": "/x", "tenant": ""})))
        fits = json.dumps({"path": "/x", "tenant": pad}).encode()
        eq(len(fits), 1024, "size of the body that fits")
        r = svc.request("POST", "/v1/decide", body=fits,
                        headers={"Content-Type": "application/json"})
        eq(r.status, 200, "status of a body of exactly max_body_bytes")


def test_body_too_large_default_10mb():
    """The default limit is 10 MB (10485760 bytes)."""
    cfg = config(policy("p", "/*", [limit(100, "1m")]))
    with service(cfg, "memory") as svc:
        r = raw_http(svc.port, _post_headers_only(10485761), timeout=3.0 * SLOW)
        assert_error(r, 413, "PAYLOAD_TOO_LARGE", "Content-Length 10485761")


def test_request_id_echoed_and_generated():
    with service(CFG, "memory") as svc:
        r = svc.decide(path="/x", tenant="t", http_headers={"X-Request-Id": "req-abc-123"})
        eq(r.status, 200, "decide status")
        eq(r.header("X-Request-Id"), "req-abc-123", "echoed X-Request-Id on a decision")
        r = svc.request("GET", "/health", headers={"X-Request-Id": "h-1"})
        eq(r.header("X-Request-Id"), "h-1", "echoed X-Request-Id on /health")
        r = svc.request("POST", "/v1/decide", body=b"{bad",
                        headers={"Content-Type": "application/json", "X-Request-Id": "e-9"})
        eq(assert_error(r, 400, "VAL_002")["trace_id"], "e-9", "trace_id of an error")
        ids = set()
        for _ in range(3):
            r = svc.decide(path="/x", tenant="t")
            rid = r.header("X-Request-Id")
            check(rid and len(rid) >= 8, "generated X-Request-Id %r" % rid)
            ids.add(rid)
        eq(len(ids), 3, "generated ids are distinct")
        r = svc.decide(tenant="t")
        body = assert_error(r, 422, "VAL_001")
        check(len(body["trace_id"]) >= 8, "generated trace_id %r" % body["trace_id"])


def test_missing_key_field_422():
    cfg = config(policy("needs-user", "/*", [limit(1, "1m")], key=["user", "header.x-key"]))
    with service(cfg, "memory") as svc:
        body = assert_error(svc.decide(path="/x", headers={"x-key": "k"}), 422, "VAL_001")
        check("user" in body["error"], "error %r does not name user" % body["error"])
        body = assert_error(svc.decide(path="/x", user="u"), 422, "VAL_001")
        check("header.x-key" in body["error"], "error %r does not name header.x-key" % body["error"])
        eq(svc.decide(path="/x", user="u", headers={"X-Key": "k"}).status, 200,
           "status with both fields")


def test_protocol_errors_408_431():
    """A request not complete within http.read_timeout_ms gets 408; headers
    over http.max_header_bytes get 431; both in the error shape."""
    cfg = config(policy("p", "/*", [limit(100, "1m")]),
                 http={"read_timeout_ms": 300, "max_header_bytes": 2048})
    with service(cfg, "memory") as svc:
        partial = _post_headers_only(50, "slow-1") + b'{"path":'
        r = raw_http(svc.port, partial, timeout=5.0 * SLOW)
        assert_error(r, 408, "REQUEST_TIMEOUT", "incomplete body")
        check(r.elapsed >= 0.25, "408 after %.3fs, before the read timeout" % r.elapsed)
        big = ("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %s\r\n\r\n" % ("a" * 4096)).encode()
        assert_error(raw_http(svc.port, big), 431, "HEADERS_TOO_LARGE", "4 KB header")
        eq(svc.request("GET", "/health").status, 200, "/health still answers")
