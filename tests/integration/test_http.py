"""The HTTP/1.1 connection itself: pipelined requests answered in order
(decisions that wait for Redis among them), a 5,000-deep pipeline, a client that
shuts its sending side after the request (it still gets the reply), and
a client that pipelines without reading its replies (the server stops
reading from it, keeps its memory bounded and goes on serving others);
and how a head is read: a bare LF refused at once, empty lines before a
request line ignored, Connection read as a list of options."""

import json
import re
import socket
import threading
import time

from harness import (SLOW, TestFailure, check, config, eq, limit, policy, rss_kb,
                     sanitizer_build, service)

# A day-long fixed window: every decision of a test lowers "remaining" by
# exactly one.
CFG = config(policy("p", "/*", [limit(1000000, "1d", "fixed_window")], key=["tenant"]),
             workers=1)


def _open(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _decide(tenant, rid, close=False):
    body = json.dumps({"path": "/x", "tenant": tenant}).encode()
    head = ("POST /v1/decide HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "X-Request-Id: %s\r\nContent-Length: %d\r\n%s\r\n"
            % (rid, len(body), "Connection: close\r\n" if close else ""))
    return head.encode() + body


def _health(rid):
    return ("GET /health HTTP/1.1\r\nHost: t\r\nX-Request-Id: %s\r\n\r\n" % rid).encode()


def _replies(sock, n, timeout):
    """Reads n whole replies from sock: [(status, request id, body)]."""
    buf = b""
    out = []
    deadline = time.monotonic() + timeout * SLOW
    while len(out) < n:
        m = re.match(rb"HTTP/1\.1 (\d+) [^\r]*\r\n((?:[^\r]+\r\n)*)\r\n", buf)
        if m:
            headers = dict((k.lower(), v) for k, v in
                           (ln.split(b": ", 1) for ln in m.group(2).split(b"\r\n") if ln))
            length = int(headers.get(b"content-length", b"0"))
            end = m.end() + length
            if len(buf) >= end:
                out.append((int(m.group(1)), headers.get(b"x-request-id", b"").decode(),
                            buf[m.end():end]))
                buf = buf[end:]
                continue
        left = deadline - time.monotonic()
        check(left > 0, "only %d of %d replies within %.0fs" % (len(out), n, timeout * SLOW))
        sock.settimeout(left)
        chunk = sock.recv(65536)
        check(chunk != b"", "connection closed after %d of %d replies" % (len(out), n))
        buf += chunk
    return out, buf


def test_pipelined_requests_answered_in_order():
    """300 requests in one write, decisions (answered after a Redis round
    trip) and health checks (answered at once) interleaved: 300 replies in
    request order, each decision counted once."""
    with service(CFG) as svc:
        reqs = []
        for i in range(300):
            reqs.append(_decide("pipe", "r%d" % i) if i % 3 else _health("r%d" % i))
        s = _open(svc.port)
        try:
            s.sendall(b"".join(reqs))
            out, rest = _replies(s, 300, 20.0)
        finally:
            s.close()
        eq([rid for _, rid, _ in out], ["r%d" % i for i in range(300)], "reply order")
        check(all(st == 200 for st, _, _ in out), "statuses %r" % sorted({st for st, _, _ in out}))
        eq(rest, b"", "bytes after the last reply")
        remaining = [json.loads(b)["remaining"] for _, _, b in out[1::3]]
        check(remaining == sorted(remaining, reverse=True) and len(set(remaining)) == len(remaining),
              "each decision counted once, in order: %r" % remaining[:10])


def test_deep_pipeline():
    """5,000 health checks in one write are all answered, in order, and
    the service goes on serving."""
    with service(CFG, "memory") as svc:
        s = _open(svc.port)
        try:
            s.sendall(b"".join(_health("h%d" % i) for i in range(5000)))
            out, _ = _replies(s, 5000, 30.0)
        finally:
            s.close()
        eq(out[-1][1], "h4999", "last reply's request id")
        check(all(st == 200 for st, _, _ in out), "every health check answered 200")
        eq(svc.request("GET", "/health").status, 200, "service still serving")


def _read_to_eof(sock, timeout):
    buf = b""
    sock.settimeout(timeout * SLOW)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk


def test_half_closed_client_gets_its_reply():
    """A client that sends its request and shuts down its sending side
    (HTTP/1.0-style tools do) gets the whole reply, then the close: for a
    decision that waits on Redis and for one answered at once."""
    with service(CFG) as svc:
        for req in (_decide("half", "d1"), _health("h1"), _decide("half", "d2", close=True)):
            s = _open(svc.port)
            try:
                s.sendall(req)
                s.shutdown(socket.SHUT_WR)
                data = _read_to_eof(s, 10.0)
            finally:
                s.close()
            check(data.startswith(b"HTTP/1.1 200 "), "reply to a half-closed client: %r" % data[:80])
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
            eq(len(body), length, "whole body received")
        v = svc.verdict(path="/x", tenant="half")
        eq(v["remaining"], 1000000 - 3, "the two decisions and this one counted")


def test_client_that_never_reads_is_bounded():
    """A client pipelines 200,000 requests and never reads a reply: the
    server stops reading from it once its unread replies pile up, its RSS
    stays bounded, and other clients are served meanwhile. When the client
    finally reads, every reply is there, in order."""
    with service(CFG, "memory") as svc:
        rss0 = rss_kb(svc.d.pid)
        s = _open(svc.port)
        batch = b"".join(_health("n%d" % i) for i in range(1000))
        sent = [0]

        def writer():
            try:
                s.settimeout(None)
                for _ in range(200):
                    s.sendall(batch)
                    sent[0] += 1000
            except OSError:
                pass

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        time.sleep(1.5 * SLOW)
        check(t.is_alive(), "the writer was not held back: the server read without bound")
        stuck_at = sent[0]
        check(stuck_at < 200000, "all %d requests were taken" % stuck_at)
        eq(svc.request("GET", "/health").status, 200, "another client is served")
        grown = rss_kb(svc.d.pid) - rss0
        bound = 64 * 1024 if sanitizer_build() else 16 * 1024
        check(grown < bound, "RSS grew %d kB with a non-reading client (bound %d kB)"
              % (grown, bound))
        try:
            out, _ = _replies(s, stuck_at, 60.0)
        finally:
            pass
        eq([rid for _, rid, _ in out[:3]], ["n0", "n1", "n2"], "first replies in order")
        check(all(st == 200 for st, _, _ in out), "every reply is 200")
        s.close()
        t.join(10 * SLOW)


def _read_or_stall(sock, timeout, what):
    """Everything sock sends until it closes; a failure if it stays open."""
    try:
        return _read_to_eof(sock, timeout)
    except socket.timeout:
        raise TestFailure("%s: the connection was still open after %.0fs"
                          % (what, timeout * SLOW))


def _check_refused(out, what):
    """out is one 400 BAD_REQUEST in the error shape, with Connection: close."""
    head, _, body = out.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 400 ") and b"\r\nConnection: close" in head,
          "%s: %r" % (what, out[:200]))
    eq(out.count(b"HTTP/1.1 "), 1, "replies to %s" % what)
    err = json.loads(body)
    eq(err["code"], "BAD_REQUEST", "code of %s" % what)
    eq(err["trace_id"], re.search(rb"\r\nX-Request-Id: ([^\r]+)", head).group(1).decode(),
       "trace_id of %s" % what)


# A bare LF wherever a line ends in a head (issue F1).
BARE_LF = (
    ("the end of the header section", b"GET /health HTTP/1.1\r\nHost: t\r\n\n"),
    ("every line", b"GET /health HTTP/1.1\nHost: t\n\n"),
    ("the request line", b"GET /health HTTP/1.1\nHost: t\r\n\r\n"),
    ("a request line, nothing after it", b"GET /health HTTP/1.1\n"),
    ("a header line", b"GET /health HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n"),
    ("before the request line", b"\nGET /health HTTP/1.1\r\n\r\n"),
)


def test_bare_lf_refused_at_once():
    """A bare LF anywhere in a head, the end of the header section
    included, is answered at once (not by a 408 after read_timeout_ms)
    with 400 BAD_REQUEST in the error shape, and the connection closes."""
    with service(CFG, "memory") as svc:
        for what, data in BARE_LF:
            s = _open(svc.port)
            try:
                t0 = time.monotonic()
                s.sendall(data)
                out = _read_or_stall(s, 3.0, "bare LF in " + what)
                elapsed = time.monotonic() - t0
            finally:
                s.close()
            _check_refused(out, "bare LF in " + what)
            check(elapsed < 2.0 * SLOW, "bare LF in %s answered after %.1fs" % (what, elapsed))


def test_connection_is_a_list_of_options():
    """Connection is a list of options (RFC 9110 7.6.1), its lines one
    list: close among them closes the connection after the reply, and
    keep-alive among them keeps an HTTP/1.0 connection open, which the
    reply says (Connection: keep-alive), as HTTP/1.0 clients need."""
    with service(CFG, "memory") as svc:
        for what in ("TE: trailers\r\nConnection: TE, close", "Connection: close, TE",
                     "Connection: TE\r\nConnection: close", "Connection: ,\tCLOSE ,"):
            s = _open(svc.port)
            try:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n%s\r\n\r\n" % what.encode())
                out = _read_or_stall(s, 3.0, repr(what))
            finally:
                s.close()
            check(out.startswith(b"HTTP/1.1 200 ") and b"\r\nConnection: close\r\n" in out,
                  "%r: %r" % (what, out[:200]))
        s = _open(svc.port)
        try:
            s.sendall(b"GET /health HTTP/1.0\r\nConnection: foo, keep-alive\r\n\r\n")
            raw = b""
            while b"\r\n\r\n" not in raw or not raw.endswith(b"}"):
                raw += s.recv(65536)
            s.sendall(_health("k2"))
            second, _ = _replies(s, 1, 5.0)
        finally:
            s.close()
        # An HTTP/1.0 client keeps the connection only when the reply says so.
        check(raw.startswith(b"HTTP/1.1 200 ") and b"\r\nConnection: keep-alive\r\n" in raw,
              "the HTTP/1.0 reply says keep-alive: %r" % raw[:300])
        eq([st for st, _, _ in second], [200], "the second request on the HTTP/1.0 connection")
        eq(second[0][1], "k2", "the second request's reply")


def test_empty_lines_before_a_request_line_are_ignored():
    """Up to four empty lines (CRLF) before a request line are ignored
    (RFC 9112 2.2): on a new connection, after a POST body and between
    pipelined requests, every request is answered in order and the
    connection stays open; empty lines alone leave the connection idle,
    not reading a request against read_timeout_ms. A fifth empty line is
    400 and the connection closes."""
    with service(dict(CFG, http={"read_timeout_ms": 500}), "memory") as svc:
        s = _open(svc.port)
        try:
            s.sendall(b"\r\n" + _health("e1") + _decide("empty", "e2") + b"\r\n" +
                      _health("e3") + b"\r\n" * 4 + _decide("empty", "e4"))
            out, rest = _replies(s, 4, 10.0)
            s.sendall(b"\r\n\r\n")
            time.sleep(1.0 * SLOW)
            s.sendall(_health("e5"))
            more, rest = _replies(s, 1, 5.0)
        finally:
            s.close()
        out += more
        eq([rid for _, rid, _ in out], ["e1", "e2", "e3", "e4", "e5"], "replies in order")
        check(all(st == 200 for st, _, _ in out), "statuses %r" % [st for st, _, _ in out])
        eq(rest, b"", "bytes after the last reply")
        s = _open(svc.port)
        try:
            s.sendall(b"\r\n" * 5 + _health("e6"))
            out = _read_or_stall(s, 3.0, "five empty lines")
        finally:
            s.close()
        _check_refused(out, "five empty lines")


def test_body_after_empty_lines_waits_for_its_last_bytes():
    """A request after empty lines whose body arrives in two writes, split
    within the bytes those lines took: nothing is answered until the body
    is complete, and then the request is decided on its own bytes (the
    body buffer is reused across requests; a stale tail once passed for
    the missing bytes, and the late ones started a bogus request)."""
    def post(name, rid):
        body = json.dumps({"path": "/x", "tenant": "t", "policy": name}).encode()
        return (("POST /v1/decide HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 "X-Request-Id: %s\r\nContent-Length: %d\r\n\r\n" % (rid, len(body))).encode()
                + body)

    with service(CFG, "memory") as svc:
        s = _open(svc.port)
        try:
            s.sendall(post("SECRETZZ", "b1"))
            first, rest = _replies(s, 1, 5.0)
            msg = post("AAAAAAAA", "b2")
            s.sendall(b"\r\n\r\n" + msg[:-4])
            s.settimeout(0.5 * SLOW)
            try:
                early = s.recv(65536)
            except socket.timeout:
                early = b""
            s.settimeout(10.0 * SLOW)
            s.sendall(msg[-4:])
            second, rest = _replies(s, 1, 5.0)
        finally:
            s.close()
        eq(early, b"", "no reply before the body is complete")
        eq(rest, b"", "nothing after the reply")
        eq([r[:2] for r in first + second], [(422, "b1"), (422, "b2")], "the two replies")
        check(b"AAAAAAAA" in second[0][2] and b"ZZ" not in second[0][2],
              "decided on its own body (%r)" % second[0][2])
