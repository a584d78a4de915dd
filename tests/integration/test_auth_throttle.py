"""The failure throttle of authentication throttles only the guilty
(issue 13): it stores each failing address, so a valid caller from a
fresh address is never refused because others failed; wrong admin keys
are throttled the same way; a repeated Authorization header is 400."""

import hashlib
import selectors
import socket
import time

from harness import SLOW, check, config, eq, limit, policy, service

KEY = "bearer-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"
FAILING = 40000


def _cfg(max_failures):
    return config(
        policy("p", "/*", [limit(1000000, "1m")], key=["tenant"]), workers=1,
        auth={"mode": "bearer", "max_failures": max_failures, "failure_window": "10m",
              "callers": [{"id": "gw", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest()}]},
        admin={"enabled": True, "key_sha256": hashlib.sha256(ADMIN_KEY.encode()).hexdigest()})


def _req(path="/v1/decide", key=KEY, extra=""):
    body = b'{"path": "/x", "tenant": "t"}'
    if path == "/v1/policies":
        return ("GET /v1/policies HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n%s"
                "Connection: close\r\n\r\n" % (key, extra)).encode()
    return ("POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "Authorization: Bearer %s\r\n%sConnection: close\r\nContent-Length: %d\r\n\r\n" %
            (path, key, extra, len(body))).encode() + body


def _addr(i):
    """The i-th loopback source address, 127.1.0.1 upwards (never 127.0.0.1)."""
    i += 1
    return "127.%d.%d.%d" % (1 + i // 65536, (i // 256) % 256, i % 256 or 1)


def _status_from(port, src, data, timeout=10.0):
    """The status of one request sent from source address src."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout * SLOW)
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    check(buf.startswith(b"HTTP/1.1 "), "no reply from %s: %r" % (src, buf[:80]))
    return int(buf.split()[1])


def _fail_from_many(port, n, data, parallel=256):
    """Sends data once from each of n loopback addresses, parallel at a
    time; returns {status: count}."""
    sel = selectors.DefaultSelector()
    statuses = {}
    nxt = 0
    open_ = 0
    deadline = time.monotonic() + 120 * SLOW
    while (nxt < n or open_) and time.monotonic() < deadline:
        while nxt < n and open_ < parallel:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((_addr(nxt), 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_WRITE, [b""])
            nxt += 1
            open_ += 1
        for key, ev in sel.select(timeout=1.0):
            s = key.fileobj
            if ev & selectors.EVENT_WRITE:
                s.send(data)
                sel.modify(s, selectors.EVENT_READ, key.data)
                continue
            try:
                chunk = s.recv(4096)
            except ConnectionError:
                chunk = b""
            key.data[0] += chunk
            if not chunk or b"\r\n" in key.data[0]:
                st = key.data[0].split()[1].decode() if key.data[0] else "none"
                statuses[st] = statuses.get(st, 0) + 1
                sel.unregister(s)
                s.close()
                open_ -= 1
    check(nxt == n and open_ == 0, "sent %d of %d in time" % (nxt, n))
    return statuses


def test_failures_from_40000_addresses_do_not_refuse_a_fresh_one():
    """Wrong keys from 40,000 loopback addresses (one each) leave valid
    callers from fresh addresses served; an address that failed
    max_failures times before the flood is still refused after it, and
    its neighbour is not."""
    with service(_cfg(2), "memory") as svc:
        guilty = "127.251.0.1"
        for i in range(2):
            eq(_status_from(svc.port, guilty, _req(key="wrong")), 401, "failure %d" % (i + 1))
        eq(_status_from(svc.port, guilty, _req()), 429, "throttled before the flood")
        got = _fail_from_many(svc.port, FAILING, _req(key="wrong"))
        eq(got, {"401": FAILING}, "one wrong key from each of %d addresses" % FAILING)
        for i in range(20):
            src = "127.250.%d.%d" % (i // 200, 1 + i % 200)
            eq(_status_from(svc.port, src, _req()), 200, "valid caller from fresh %s" % src)
        # The guilty stays throttled through the flood of single failures
        # (the table forgets the fewest failures first), and only it.
        eq(_status_from(svc.port, guilty, _req()), 429, "throttled after the flood")
        eq(_status_from(svc.port, "127.251.0.2", _req()), 200, "its neighbour")


test_failures_from_40000_addresses_do_not_refuse_a_fresh_one.timeout = 300


def test_admin_key_failures_are_throttled():
    """Wrong admin keys count against the address: past max_failures it is
    429 with Retry-After, even with the right key; other addresses are
    served."""
    with service(_cfg(3), "memory") as svc:
        src = "127.9.9.9"
        for i in range(3):
            eq(_status_from(svc.port, src, _req("/v1/policies", key="nope")), 401,
               "wrong admin key %d" % (i + 1))
        eq(_status_from(svc.port, src, _req("/v1/policies", key="nope")), 429, "throttled")
        eq(_status_from(svc.port, src, _req("/v1/policies", key=ADMIN_KEY)), 429,
           "throttled, right key")
        eq(_status_from(svc.port, "127.9.9.10", _req("/v1/policies", key=ADMIN_KEY)), 200,
           "right key, another address")


def test_repeated_authorization_is_400():
    """Two Authorization headers (one of them right) are 400 BAD_REQUEST,
    for caller authentication and the admin key alike."""
    with service(_cfg(3), "memory") as svc:
        for path, key in (("/v1/decide", KEY), ("/v1/policies", ADMIN_KEY)):
            for extra in ("Authorization: Bearer %s\r\n" % key, "Authorization: Bearer x\r\n"):
                data = _req(path, key=key, extra=extra)
                with socket.create_connection(("127.0.0.1", svc.port)) as s:
                    s.sendall(data)
                    buf = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        buf += chunk
                check(buf.startswith(b"HTTP/1.1 400 "), "%s with %r: %r" % (path, extra, buf[:80]))
                check(b'"code":"BAD_REQUEST"' in buf, "%s: code in %r" % (path, buf[-200:]))
