"""Caller authentication (auth.mode hmac and bearer): every AUTH code with
its status, open and protected endpoints, secrets from files and the
environment never echoed, failed attempts throttled per address, and the
openssl one-liner of docs/security.md."""

import json
import os
import re
import subprocess
import tempfile
import time

from harness import (ROOT, SLOW, Client, Ratelimitd, caller_headers, check, config, eq, limit, policy,
                     raw_http, run_binary, service, sha256_hex, sign, signed_decide,
                     wait_until)

SECRET = "gw-secret-0123456789abcdef"
OLD_SECRET = "old-secret-0123456789abcdef"
POLICY = policy("p", "/*", [limit(100, "1m")], key=["tenant"])


def hmac_config(**auth):
    a = {"mode": "hmac", "max_failures": 1000,
         "callers": [{"id": "gateway-eu", "secret": SECRET},
                     {"id": "gateway-old", "secret": OLD_SECRET, "status": "suspended"}]}
    a.update(auth)
    return config(POLICY, auth=a, workers=1)


def assert_error(r, status, code, what):
    eq(r.status, status, "status (%s, body %r)" % (what, r.body[:200]))
    body = r.json
    eq(body.get("code"), code, "code (%s: %r)" % (what, body))
    check(isinstance(body.get("error"), str) and body["error"], "error message (%s)" % what)
    eq(body.get("trace_id"), r.header("X-Request-Id"), "trace_id (%s)" % what)
    return body


BODY = {"path": "/x", "tenant": "acme-corp"}


def _send(svc, headers, body=None, path="/v1/decide", method="POST"):
    raw = json.dumps(BODY if body is None else body).encode() if method == "POST" else None
    hdrs = {"Content-Type": "application/json"} if method == "POST" else {}
    hdrs.update(headers)
    c = Client(svc.port)
    try:
        return c.request(method, path, body=raw, headers=hdrs)
    finally:
        c.close()


def _signed(caller=("gateway-eu", SECRET), body=None, sign_path="/v1/decide", sign_body=None,
            method="POST", ts=None, drop=(), change=None):
    """Caller headers for a request, with what the case alters."""
    raw = json.dumps(BODY if body is None else body).encode() if method == "POST" else b""
    signed_raw = raw if sign_body is None else json.dumps(sign_body).encode()
    h = caller_headers(caller[0], caller[1], method, sign_path, signed_raw, ts)
    for name in drop:
        del h[name]
    h.update(change or {})
    return h


def test_hmac_caller_table():
    """Each row: the headers a caller sends, the status and code it gets."""
    now = int(time.time())
    rows = [
        ("valid", _signed(), 200, None),
        ("no headers at all", {}, 401, "AUTH_002"),
        ("no X-Caller-Id", _signed(drop=["X-Caller-Id"]), 401, "AUTH_002"),
        ("no X-Caller-Timestamp", _signed(drop=["X-Caller-Timestamp"]), 401, "AUTH_002"),
        ("no X-Caller-Signature", _signed(drop=["X-Caller-Signature"]), 401, "AUTH_002"),
        ("empty X-Caller-Signature", _signed(change={"X-Caller-Signature": ""}), 401, "AUTH_002"),
        ("unknown caller", _signed(caller=("gateway-us", SECRET)), 401, "AUTH_005"),
        # (the exact 300/301 s boundary is unit-tested with a fixed clock;
        # here the rows are signed before the service starts, so leave room)
        ("timestamp 320 s old", _signed(ts=now - 320), 401, "AUTH_004"),
        ("timestamp 320 s ahead", _signed(ts=now + 320), 401, "AUTH_004"),
        ("timestamp 280 s old", _signed(ts=now - 280), 200, None),
        ("timestamp in ms", _signed(ts=now * 1000), 401, "AUTH_004"),
        ("timestamp not a number", _signed(change={"X-Caller-Timestamp": "yesterday"}), 401,
         "AUTH_004"),
        ("wrong secret", _signed(caller=("gateway-eu", SECRET + "x")), 401, "AUTH_001"),
        ("body changed after signing", _signed(sign_body={"path": "/x", "tenant": "other"}), 401,
         "AUTH_001"),
        ("signed another path", _signed(sign_path="/v1/decide?a=1"), 401, "AUTH_001"),
        ("signature of the empty body", _signed(sign_body=""), 401, "AUTH_001"),
        ("signature without its prefix",
         _signed(change={"X-Caller-Signature": "0" * 64}), 401, "AUTH_001"),
        ("suspended caller, valid signature", _signed(caller=("gateway-old", OLD_SECRET)), 403,
         "AUTH_003"),
        ("suspended caller, wrong secret", _signed(caller=("gateway-old", SECRET)), 401,
         "AUTH_001"),
    ]
    with service(hmac_config(), "memory") as svc:
        for what, headers, status, code in rows:
            r = _send(svc, headers)
            if code is None:
                eq(r.status, status, "status (%s: %r)" % (what, r.body[:200]))
                eq(r.json["policy"], "p", "a verdict (%s)" % what)
            else:
                assert_error(r, status, code, what)
        # The query string is part of what is signed, as sent.
        h = _signed(sign_path="/v1/decide?trace=1")
        eq(_send(svc, h, path="/v1/decide?trace=1").status, 200, "signed with its query string")
        # Authentication comes before the body is even parsed.
        r = svc.request("POST", "/v1/decide", body=b"{not json",
                        headers={"Content-Type": "application/json"})
        assert_error(r, 401, "AUTH_002", "unsigned malformed body")
        # Health and readiness stay open.
        eq(svc.request("GET", "/health").status, 200, "/health without credentials")
        eq(svc.request("GET", "/ready").status, 200, "/ready without credentials")


def test_hmac_raw_shapes():
    """A repeated credential header is refused; a chunked body is signed as
    its decoded bytes."""
    body = json.dumps(BODY).encode()
    with service(hmac_config(), "memory") as svc:
        h = caller_headers("gateway-eu", SECRET, "POST", "/v1/decide", body)
        head = "".join("%s: %s\r\n" % kv for kv in h.items())
        dup = ("POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
               "X-Caller-Signature: %s\r\nContent-Length: %d\r\n\r\n" %
               (head, sign(SECRET, 1, "POST", "/v1/decide"), len(body))).encode() + body
        assert_error(raw_http(svc.port, dup), 401, "AUTH_001", "X-Caller-Signature twice")
        chunked = ("POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
                   "Transfer-Encoding: chunked\r\n\r\n" % head).encode()
        chunked += b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                            for i in range(0, len(body), 7)) + b"0\r\n\r\n"
        r = raw_http(svc.port, chunked)
        eq(r.status, 200, "chunked signed request (%r)" % r.body[:200])


def test_protect_paths():
    """/health, /ready stay open unless listed in auth.protect_paths."""
    # Started by hand: the harness waits for an unauthenticated /ready.
    d = Ratelimitd(hmac_config(protect_paths=["/ready"]))
    try:
        d.start(ready=False)
        assert_error(d.request("GET", "/ready"), 401, "AUTH_002", "/ready unsigned")
        # (ready once the workers published their store state)
        wait_until(lambda: d.request("GET", "/ready", headers=caller_headers(
            "gateway-eu", SECRET, "GET", "/ready", b"")).status == 200, 5.0 * SLOW,
            what="/ready signed to answer 200")
        eq(d.request("GET", "/health").status, 200, "/health still open")
        d.stop()
    finally:
        d.cleanup()


def test_clock_skew_configurable():
    now = int(time.time())
    with service(hmac_config(max_clock_skew_s=10), "memory") as svc:
        assert_error(_send(svc, _signed(ts=now - 30)), 401, "AUTH_004", "30 s old, 10 s allowed")
        eq(_send(svc, _signed(ts=now - 3)).status, 200, "3 s old")


BEARER_KEY = "bk-live-0123456789abcdef"
OLD_KEY = "bk-old-0123456789abcdef"


def test_bearer_callers():
    cfg = config(POLICY, workers=1, auth={
        "mode": "bearer", "max_failures": 1000,
        "callers": [{"id": "gateway-eu", "key_sha256": sha256_hex(BEARER_KEY)},
                    {"id": "gateway-old", "key_sha256": sha256_hex(OLD_KEY).upper(),
                     "status": "suspended"}]})
    rows = [
        ("valid", {"Authorization": "Bearer " + BEARER_KEY}, 200, None),
        ("no Authorization", {}, 401, "AUTH_002"),
        ("another scheme", {"Authorization": "Basic Z3c6cHc="}, 401, "AUTH_002"),
        ("unknown key", {"Authorization": "Bearer " + BEARER_KEY + "x"}, 401, "AUTH_001"),
        ("the hash instead of the key",
         {"Authorization": "Bearer " + sha256_hex(BEARER_KEY)}, 401, "AUTH_001"),
        ("suspended", {"Authorization": "Bearer " + OLD_KEY}, 403, "AUTH_003"),
    ]
    with service(cfg, "memory") as svc:
        for what, headers, status, code in rows:
            r = _send(svc, headers)
            if code is None:
                eq(r.status, status, "status (%s: %r)" % (what, r.body[:200]))
                continue
            assert_error(r, status, code, what)
            if status == 401:
                check((r.header("WWW-Authenticate") or "").startswith("Bearer"),
                      "WWW-Authenticate on a bearer 401 (%s)" % what)


def test_secrets_from_file_and_env_never_shown():
    """Secrets read from a file and from the environment work, and no
    secret shows in a log line (debug level), an error reply or the output
    of --check-config, whether the config is valid or not."""
    file_secret = "file-secret-7f3a9c1e55d0"
    env_secret = "env-secret-2b8d4e6f0a91"
    tenant_secret = "tenant-secret-c4e5f6a7b8"
    tmp = tempfile.mkdtemp(prefix="rl-auth-")
    secret_path = os.path.join(tmp, "caller.secret")
    with open(secret_path, "w") as f:
        f.write(file_secret + "\n")
    os.environ["RL_TEST_CALLER_SECRET"] = env_secret
    cfg = config(dict(POLICY, verify_tenant="hmac"), workers=1, log_level="debug",
                 auth={"mode": "hmac", "max_failures": 1000,
                       "callers": [{"id": "from-file", "secret_file": secret_path},
                                   {"id": "from-env", "secret_env": "RL_TEST_CALLER_SECRET"}]},
                 tenants=[{"id": "acme-corp", "secret": tenant_secret}])
    secrets = (file_secret, env_secret, tenant_secret)
    replies = []
    with service(cfg, "memory") as svc:
        c = svc.client()
        for caller, secret in (("from-file", file_secret), ("from-env", env_secret)):
            ts = int(time.time())
            th = {"X-Tenant-Id": "acme-corp", "X-Timestamp": str(ts),
                  "X-Signature": sign(tenant_secret, ts, "GET", "/x")}
            r = signed_decide(c, caller, secret, {"path": "/x", "headers": th})
            eq(r.status, 200, "decision signed by %s (%r)" % (caller, r.body[:200]))
            eq(r.json["remaining"], 99 if caller == "from-file" else 98, "charged to the tenant")
            replies.append(signed_decide(c, caller, secret + "x", {"path": "/x"}).body)
            th["X-Signature"] = sign(tenant_secret + "x", ts, "GET", "/x")
            replies.append(signed_decide(c, caller, secret, {"path": "/x", "headers": th}).body)
        log = open(svc.d.log_path, errors="replace").read()
        conf_path = svc.d.conf_path
        rc, out, err = run_binary(["--check-config", conf_path])
        eq(rc, 0, "--check-config of the valid file (%s)" % err)
        shown = [log, out, err] + [b.decode(errors="replace") for b in replies]
        # A config that fails on or next to each secret.
        bad = json.dumps(cfg).replace('"%s"' % tenant_secret, tenant_secret)
        bad_path = os.path.join(tmp, "bad.json")
        with open(bad_path, "w") as f:
            f.write(bad)
        rc, out, err = run_binary(["--check-config", bad_path])
        eq(rc, 1, "--check-config of a file with a bare secret")
        shown += [out, err]
        short = json.loads(json.dumps(cfg))
        short["tenants"][0]["secret"] = "tiny-secret"
        with open(bad_path, "w") as f:
            json.dump(short, f)
        rc, out, err = run_binary(["--check-config", bad_path])
        eq(rc, 1, "--check-config of a file with a short secret")
        check("tenants[0].secret" in err, "the error names the field: %r" % err)
        shown += [out, err]
        for text in shown:
            for s in secrets + ("tiny-secret",):
                check(s not in text, "secret %r shown in %r" % (s, text[:300]))
        check("caller authentication failed" in log, "debug log of the failures is there")
    del os.environ["RL_TEST_CALLER_SECRET"]


def test_failed_auth_throttled_per_address():
    """After max_failures failed attempts from one address within
    failure_window, even a valid request from it gets 429 RATE_001 with
    Retry-After, until the window ends."""
    window = int(4 * SLOW)
    cfg = hmac_config(max_failures=5, failure_window="%ds" % window)
    with service(cfg, "memory") as svc:
        t0 = time.monotonic()
        for i in range(5):
            assert_error(_send(svc, _signed(caller=("gateway-eu", "wrong-secret-000000000"))),
                         401, "AUTH_001", "failure %d" % (i + 1))
        r = _send(svc, _signed())
        body = assert_error(r, 429, "RATE_001", "valid request after 5 failures")
        check("failed authentications" in body["error"], "message %r" % body["error"])
        retry = int(r.header("Retry-After") or "0")
        check(1 <= retry <= window, "Retry-After %r" % r.header("Retry-After"))
        for _ in range(10):
            r = _send(svc, _signed(caller=("gateway-eu", "wrong")))
            if time.monotonic() - t0 < window - 0.5:
                eq(r.status, 429, "guessing goes on being refused")
        eq(svc.request("GET", "/health").status, 200, "/health is not throttled")
        time.sleep(max(0.0, window + 0.1 - (time.monotonic() - t0)))
        r = _send(svc, _signed())
        eq(r.status, 200, "valid request once the window ended (%r)" % r.body[:200])


test_failed_auth_throttled_per_address.timeout = 60


def _doc_block():
    """The shell block marked <!-- signing-example --> in docs/security.md."""
    with open(os.path.join(ROOT, "docs", "security.md")) as f:
        text = f.read()
    m = re.search(r"<!-- signing-example -->\s*```sh\n(.*?)```", text, re.S)
    check(m is not None, "docs/security.md has no signing-example block")
    return m.group(1)


def test_docs_openssl_one_liner():
    """The example of docs/security.md, run as written (port and secret
    aside), is accepted; and its openssl pipeline computes exactly the
    signature of the scheme."""
    block = _doc_block()
    cfg = config(policy("events", "/v1/events", [limit(100, "1m")], key=["tenant"]),
                 workers=1, auth={"mode": "hmac", "callers": [
                     {"id": "gateway-eu", "secret": "change-me-to-a-long-random-secret"}]})
    with service(cfg, "memory") as svc:
        script = block.replace("127.0.0.1:8080", "127.0.0.1:%d" % svc.port)
        p = subprocess.run(["bash", "-c", "set -eu\n" + script], capture_output=True,
                           timeout=20 * SLOW)
        out = p.stdout.decode(errors="replace")
        eq(p.returncode, 0, "the example's exit code (stderr %r)" % p.stderr[-300:])
        check('"allowed":true' in out and '"policy":"events"' in out,
              "the example got a decision: %r" % out[-400:])
    # The pipeline alone, against the reference implementation.
    m = re.search(r"^SIG=.*$", block, re.M)
    check(m is not None, "no SIG= line in the example")
    env = dict(os.environ, SECRET="s" * 20, TS="1730113200", BODY='{"path":"/x"}')
    p = subprocess.run(["bash", "-c", m.group(0) + '\nprintf %s "$SIG"'], capture_output=True,
                       env=env, timeout=10)
    eq(p.stdout.decode().strip(),
       sign("s" * 20, 1730113200, "POST", "/v1/decide", sha256_hex('{"path":"/x"}')),
       "the one-liner's signature")
