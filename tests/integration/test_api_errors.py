"""One answer per error on every front end: each error kind a front end can
produce is sent to every front end that can produce it (/v1/decide, a
/v1/decide/batch item or the batch itself, /v1/authorize, the admin
reset), and each answers it with the same status and code. A batch item
carries its code in "errors"; the access log gives its status."""

import hashlib
import json

from harness import check, config, eq, limit, policy, service, sha256_hex
from test_access_log import lines_of

CALLER_KEY = "caller-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"
CALLER = {"Authorization": "Bearer " + CALLER_KEY}
WRONG_CALLER = {"Authorization": "Bearer " + CALLER_KEY + "x"}
ADMIN = {"Authorization": "Bearer " + ADMIN_KEY}
WRONG_ADMIN = {"Authorization": "Bearer " + ADMIN_KEY + "x"}
JSON = "application/json"

CFG = config(
    policy("p", "/*", [limit(100000, "1m")], key=["tenant"]),
    admin={"enabled": True, "key_sha256": hashlib.sha256(ADMIN_KEY.encode()).hexdigest()},
    auth={"mode": "bearer", "max_failures": 100000,
          "callers": [{"id": "gw", "key_sha256": sha256_hex(CALLER_KEY)}]},
    access_log={"sample": 1.0}, workers=1)


def _send(svc, method, path, body=None, ctype=JSON, headers=None):
    h = dict(headers or {})
    if ctype is not None and body is not None:
        h["Content-Type"] = ctype
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    return svc.request(method, path, body=body, headers=h)


def _reply(r):
    """(status, code) of an error reply of the one shape."""
    body = r.json
    check(isinstance(body, dict), "error body is not an object: %r" % r.body[:200])
    check(isinstance(body.get("error"), str) and body["error"], "error message: %r" % body)
    eq(body.get("trace_id"), r.header("X-Request-Id"), "trace_id = X-Request-Id")
    return r.status, body.get("code")


def decide(body=None, method="POST", ctype=JSON, auth=CALLER, path="/v1/decide"):
    return lambda svc: _reply(_send(svc, method, path, body, ctype, auth))


def batch(body=None, method="POST", ctype=JSON, auth=CALLER, path="/v1/decide/batch"):
    return lambda svc: _reply(_send(svc, method, path, body, ctype, auth))


def batch_item(fields):
    """One invalid item beside a valid one: the item's code in "errors"
    and the status of its access log line."""
    def run(svc):
        r = _send(svc, "POST", "/v1/decide/batch",
                  {"requests": [{"path": "/ok", "tenant": "t"}, fields]}, JSON, CALLER)
        eq(r.status, 200, "batch status (%r)" % r.body[:200])
        errors = r.json["errors"]
        eq([e["index"] for e in errors], [1], "invalid items")
        lines = lines_of(svc, r.header("X-Request-Id"), 2)
        statuses = sorted(o["status"] for o in lines)
        check(200 in statuses, "the valid item's line: %r" % lines)
        statuses.remove(200)
        eq(len(statuses), 1, "access lines of the batch: %r" % lines)
        return statuses[0], errors[0]["code"]
    return run


def authorize(headers=None, auth=CALLER, method="GET", path="/v1/authorize"):
    h = dict(auth or {})
    h["X-Original-Method"] = "GET"
    h.update(headers or {})
    return lambda svc: _reply(_send(svc, method, path, None, None, h))


def admin(body=None, method="POST", ctype=JSON, auth=ADMIN, path="/v1/admin/reset"):
    return lambda svc: _reply(_send(svc, method, path, body, ctype, auth))


GOOD = {"path": "/x", "tenant": "t"}
WRONG_TYPE = {"path": "/x", "tenant": 5}
DOTS = {"path": "/a/../b", "tenant": "t"}
UNKNOWN_POLICY = {"path": "/x", "tenant": "t", "policy": "nope"}
NO_KEY_FIELD = {"path": "/x"}
NO_PATH = {"tenant": "t"}

# (error, status, code, {front end: request}): every front end that can
# produce the error.
CASES = [
    ("malformed JSON", 400, "VAL_002", {
        "decide": decide(b"{bad"), "batch": batch(b"{bad"), "admin": admin(b"{bad")}),
    ("wrong field type", 422, "VAL_002", {
        "decide": decide(WRONG_TYPE), "batch item": batch_item(WRONG_TYPE),
        "admin": admin(WRONG_TYPE)}),
    ("body not an object", 422, "VAL_002", {
        "decide": decide(b"[]"), "batch": batch(b"[]"), "batch item": batch_item([]),
        "admin": admin(b"[]")}),
    ("path with dot segments", 422, "VAL_002", {
        "decide": decide(DOTS), "batch item": batch_item(DOTS),
        "authorize": authorize({"X-Original-URI": "/a/../b", "X-Tenant-Id": "t"}),
        "authorize %2e": authorize({"X-Original-URI": "/a/%2e%2e/b", "X-Tenant-Id": "t"}),
        "admin": admin(DOTS)}),
    ("unknown policy", 422, "VAL_002", {
        "decide": decide(UNKNOWN_POLICY), "batch item": batch_item(UNKNOWN_POLICY),
        "admin": admin(UNKNOWN_POLICY)}),
    ("missing key field", 422, "VAL_001", {
        "decide": decide(NO_KEY_FIELD), "batch item": batch_item(NO_KEY_FIELD),
        "authorize": authorize({"X-Original-URI": "/x"}), "admin": admin(NO_KEY_FIELD)}),
    ("missing path", 422, "VAL_001", {
        "decide": decide(NO_PATH), "batch item": batch_item(NO_PATH), "admin": admin(NO_PATH)}),
    ("wrong method", 405, "METHOD_NOT_ALLOWED", {
        "decide": decide(method="GET"), "batch": batch(method="GET"),
        "admin": admin(method="GET")}),
    ("wrong content type", 415, "UNSUPPORTED_MEDIA_TYPE", {
        "decide": decide(GOOD, ctype="text/plain"), "batch": batch(
            {"requests": [GOOD]}, ctype="text/plain"),
        "admin": admin(GOOD, ctype="text/plain")}),
    ("unknown route", 404, "NOT_FOUND", {
        "decide": decide(GOOD, path="/v1/decide/x"),
        "batch": batch({"requests": [GOOD]}, path="/v1/decide/batch/x"),
        "admin": admin(GOOD, path="/v1/admin/nope")}),
    ("missing caller auth", 401, "AUTH_002", {
        "decide": decide(GOOD, auth={}), "batch": batch({"requests": [GOOD]}, auth={}),
        "authorize": authorize({"X-Tenant-Id": "t"}, auth={}), "admin": admin(GOOD, auth={})}),
    ("another auth scheme", 401, "AUTH_002", {
        "decide": decide(GOOD, auth={"Authorization": "Basic Z3c6cHc="}),
        "authorize": authorize({"X-Tenant-Id": "t"}, auth={"Authorization": "Basic Z3c6cHc="}),
        "admin": admin(GOOD, auth={"Authorization": "Basic Z3c6cHc="})}),
    ("invalid caller auth", 401, "AUTH_001", {
        "decide": decide(GOOD, auth=WRONG_CALLER),
        "batch": batch({"requests": [GOOD]}, auth=WRONG_CALLER),
        "authorize": authorize({"X-Tenant-Id": "t"}, auth=WRONG_CALLER),
        "admin": admin(GOOD, auth=WRONG_ADMIN)}),
]


def test_every_front_end_answers_each_error_alike():
    with service(CFG, "memory") as svc:
        eq(_send(svc, "POST", "/v1/decide", GOOD, JSON, CALLER).status, 200, "a valid decide")
        eq(_send(svc, "POST", "/v1/admin/reset", GOOD, JSON, ADMIN).status, 200, "a valid reset")
        got = {}
        for error, status, code, front_ends in CASES:
            check(len(front_ends) >= 2, "%s: fewer than two front ends" % error)
            for name, run in front_ends.items():
                got[(error, name)] = run(svc)
        wrong = ["%s on %s: %r, expected %r" % (error, name, got[(error, name)], (status, code))
                 for error, status, code, front_ends in CASES for name in front_ends
                 if got[(error, name)] != (status, code)]
        check(not wrong, "front ends answer differently:\n" + "\n".join(wrong))


def test_wrong_method_names_the_method_everywhere():
    """405 carries Allow with the route's method on every front end."""
    with service(CFG, "memory") as svc:
        for path in ("/v1/decide", "/v1/decide/batch", "/v1/admin/reset"):
            r = _send(svc, "GET", path, None, None, CALLER)
            eq((r.status, r.header("Allow")), (405, "POST"), "GET %s" % path)
