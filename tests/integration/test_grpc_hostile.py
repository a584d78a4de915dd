"""Hostile clients of the gRPC listener (docs/security.md, "gRPC
listener"): a request that never ends is answered by grpc.read_timeout_ms
and reset, a connection holding only such requests is closed after
grpc.idle_timeout_ms, and what a connection's unfinished requests buffer
is capped (RESOURCE_EXHAUSTED past it) so memory stays bounded.

The connection-level checks speak HTTP/2 by hand (frames, HPACK literals
without Huffman), since a gRPC library hides GOAWAY and RST_STREAM; the
statuses are read through grpcio (grpc_client.py), as a real client sees
them."""

import select
import socket
import threading
import time

from harness import SLOW, between, check, eq, metric, rss_kb, sanitizer_build, scrape, service
from test_grpc import LOGIN, LOGIN_POLICY, RLS_PATH, call, desc, grpc_cfg, rpc, target

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0, 1, 3, 4, 6, 7
END_STREAM, END_HEADERS, ACK = 1, 4, 1


def frame(ftype, flags, sid, payload=b""):
    return (len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") +
            payload)


def hpack_int(n, prefix=7):
    """An HPACK integer with a prefix of that many bits (RFC 7541 5.1)."""
    top = (1 << prefix) - 1
    if n < top:
        return bytes([n])
    out, n = [top], n - top
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    return bytes(out + [n])


def hpack(headers):
    """A header block of literals without indexing, new names, no Huffman."""
    out = b""
    for name, value in headers:
        name, value = name.encode(), value.encode()
        out += b"\0" + hpack_int(len(name)) + name + hpack_int(len(value)) + value
    return out


class H2:
    """A raw HTTP/2 client connection: sends frames, and records every
    frame received as (time, type, flags, stream, payload); SETTINGS and
    PING are acknowledged."""

    def __init__(self, addr):
        host, port = addr.split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.buf = b""
        self.frames = []
        self.eof = None
        self.t0 = time.monotonic()
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0))

    def request(self, sid, headers=(), end=False):
        hdrs = [(":method", "POST"), (":scheme", "http"), (":path", RLS_PATH),
                (":authority", "x"), ("content-type", "application/grpc"),
                ("te", "trailers")] + list(headers)
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid, hpack(hdrs)))

    def data(self, sid, payload, end=False):
        self.send(frame(DATA, END_STREAM if end else 0, sid, payload))

    def ping(self):
        self.send(frame(PING, 0, 0, b"\0" * 8))

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def pump(self):
        """Reads what has arrived (the socket is readable)."""
        try:
            chunk = self.sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = time.monotonic() - self.t0
            return
        self.buf += chunk
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
            payload, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
            self.frames.append((time.monotonic() - self.t0, ftype, flags, sid, payload))
            if ftype == SETTINGS and not flags & ACK:
                self.send(frame(SETTINGS, ACK, 0))
            if ftype == PING and not flags & ACK:
                self.send(frame(PING, ACK, 0, payload))

    def first(self, ftype, sid=None):
        """The first frame of that type (on that stream), or None."""
        for f in self.frames:
            if f[1] == ftype and (sid is None or f[3] == sid):
                return f
        return None

    def close(self):
        self.sock.close()


def run(conns, seconds, until, every=None):
    """Reads conns for up to seconds, or until until() is true; every
    (seconds, fn) calls fn that often (a client that keeps talking)."""
    end = time.monotonic() + seconds
    nxt = time.monotonic()
    while time.monotonic() < end and not until():
        if every is not None and time.monotonic() >= nxt:
            every[1]()
            nxt = time.monotonic() + every[0]
        live = [c for c in conns if c.eof is None]
        if not live:
            break
        ready, _, _ = select.select([c.sock for c in live], [], [], 0.05)
        for c in live:
            if c.sock in ready:
                c.pump()


def test_grpc_unfinished_stream_read_deadline_and_idle():
    """A stream whose END_STREAM never comes: on a connection that keeps
    talking (PINGs), it is answered (trailers, END_STREAM) and reset with
    NO_ERROR at grpc.read_timeout_ms from its HEADERS, and the connection
    stays; on a silent connection, the unfinished stream does not hold it
    open: GOAWAY and close after grpc.idle_timeout_ms, before the read
    deadline (grpcio, which sends no PINGs, sees UNAVAILABLE then). With
    the read deadline first, grpcio sees DEADLINE_EXCEEDED with its
    reason. Counted in /metrics."""
    read_s, idle_s = 3.0 * SLOW, 1.0 * SLOW
    cfg = grpc_cfg(LOGIN_POLICY, workers=1,
                   grpc={"read_timeout_ms": int(read_s * 1000),
                         "idle_timeout_ms": int(idle_s * 1000)})
    with service(cfg, "memory") as svc:
        talk, silent = H2(target(cfg)), H2(target(cfg))
        try:
            talk.request(1)
            talk.data(1, b"\0\0\0\0\x10" + b"\0" * 8)  # part of a message
            silent.request(1)
            run([talk, silent], read_s + 3.0 * SLOW,
                lambda: talk.first(RST_STREAM, 1) is not None and silent.eof is not None,
                every=(0.3, talk.ping))
            go = silent.first(GOAWAY)
            check(go is not None and silent.eof is not None,
                  "the silent connection gets a GOAWAY and is closed (frames %r)" %
                  [f[:4] for f in silent.frames])
            between(silent.eof, idle_s * 0.8, idle_s + 1.5 * SLOW,
                    "the silent connection closed after idle_timeout_ms (s)")
            check(silent.first(HEADERS, 1) is None, "closed by idleness, not the deadline")
            ans, rst = talk.first(HEADERS, 1), talk.first(RST_STREAM, 1)
            check(ans is not None and ans[2] & END_STREAM,
                  "trailers-only answer on the unfinished stream (frames %r)" %
                  [f[:4] for f in talk.frames])
            check(rst is not None and rst[4] == b"\0\0\0\0" and rst[0] >= ans[0],
                  "then RST_STREAM NO_ERROR (%r)" % (rst,))
            between(ans[0], read_s * 0.9, read_s + 1.5 * SLOW,
                    "answered at read_timeout_ms from the HEADERS despite the PINGs (s)")
            check(talk.eof is None and talk.first(GOAWAY) is None,
                  "the talking connection stays open")
        finally:
            talk.close()
            silent.close()
        # grpcio sends no PINGs: its unfinished call's connection goes idle.
        res = unfinished(cfg, read_s + 5.0 * SLOW)
        eq(res["error"], "UNAVAILABLE", "grpcio: the idle connection went (%r)" % res)
        between(res["s"], idle_s * 0.8, read_s, "grpcio's call ended at idle_timeout_ms (s)")
        m = scrape(svc.d)
        eq(metric(m, "ratelimitd_grpc_read_timeouts_total"), 1, "read timeouts counted")
        eq(metric(m, "ratelimitd_grpc_calls_deadline_exceeded_total"), 1,
           "answered DEADLINE_EXCEEDED")
        eq(rpc(call(cfg, [desc(LOGIN)]))[0]["overall"], "OK", "the listener still serves")
    # The read deadline before the idle timeout: what a gRPC client sees.
    cfg = grpc_cfg(LOGIN_POLICY, workers=1, grpc={"read_timeout_ms": int(idle_s * 1000)})
    with service(cfg, "memory") as svc:
        res = unfinished(cfg, idle_s + 5.0 * SLOW)
        eq((res["error"], res["details"]),
           ("DEADLINE_EXCEEDED", "request not received within grpc.read_timeout_ms"),
           "grpcio: the status and its reason (%r)" % res)
        between(res["s"], idle_s * 0.9, idle_s + 2.0 * SLOW, "grpcio's call ended (s)")
        eq(metric(scrape(svc.d), "ratelimitd_grpc_read_timeouts_total"), 1,
           "read timeout counted")


def unfinished(cfg, hold):
    """One grpcio call whose request is held open for hold seconds."""
    return rpc({"op": "unfinished", "target": target(cfg), "bytes": 8,
                "hold": hold})[0]["results"][0]


test_grpc_unfinished_stream_read_deadline_and_idle.timeout = 120


def test_grpc_buffer_cap_per_connection():
    """max_message_bytes 65536: a connection's unfinished requests may hold
    4 x 64 KiB, but at least 1 MiB (room for kept headers). 20 streams of
    60 KB each without END_STREAM, one after the other (each buffer grows
    to 64 KiB): the first 16 fill the 1 MiB and stay, the last ones are
    refused at once (trailers, RST_STREAM NO_ERROR); the connection stays.
    The same for streams whose kept auth header values pass the cap.
    Counted in /metrics."""
    cfg = grpc_cfg(LOGIN_POLICY, workers=1,
                   grpc={"max_message_bytes": 65536, "read_timeout_ms": 30000})
    with service(cfg, "memory") as svc:
        c = H2(target(cfg))
        try:
            sids = list(range(1, 41, 2))
            for sid in sids:
                c.request(sid)
            run([c], 1.0, lambda: False)
            # Per stream and connection the window is 65535 bytes: send in
            # steps, waiting for the server's WINDOW_UPDATEs between them.
            for sid in sids:
                for off in range(0, 60000, 15000):
                    c.data(sid, b"\0" * 15000)
                run([c], 0.3, lambda: False)
            run([c], 2.0 * SLOW, lambda: False)
            refused = sorted({f[3] for f in c.frames if f[1] == RST_STREAM})
            answered = sorted({f[3] for f in c.frames if f[1] == HEADERS})
            eq(refused, sids[16:], "the streams past 1 MiB are refused")
            eq(answered, refused, "each refused stream was answered first")
            check(all(f[4] == b"\0\0\0\0" for f in c.frames if f[1] == RST_STREAM),
                  "with NO_ERROR")
            check(c.eof is None and c.first(GOAWAY) is None, "the connection stays open")
            # Kept header values count too, on a connection of their own:
            # 65 of 16001 bytes fit in 1 MiB.
            h = H2(target(cfg))
            hsids = list(range(1, 141, 2))
            for sid in hsids:
                h.request(sid, [("authorization", "x" * 16000)])
            run([h], 2.0 * SLOW, lambda: len({f[3] for f in h.frames if f[1] == RST_STREAM}) >= 5)
            hrefused = sorted({f[3] for f in h.frames if f[1] == RST_STREAM})
            eq(hrefused, hsids[65:], "the streams whose headers pass 1 MiB are refused")
            eq(metric(scrape(svc.d), "ratelimitd_grpc_buffer_refusals_total"),
               len(refused) + len(hrefused), "refusals counted")
            h.close()
        finally:
            c.close()
        res = rpc(call(cfg, [desc(LOGIN)]))
        eq(res[0]["overall"], "OK", "the listener still serves")


test_grpc_buffer_cap_per_connection.timeout = 120


def test_grpc_unfinished_streams_memory_bounded():
    """48 calls on one connection each send a 1 MB message and hold it
    without END_STREAM (the review's 20 x 8 MB made RSS grow by 160 MB):
    with the defaults (1 MiB messages, cap 4 MiB) all but a few are
    refused with RESOURCE_EXHAUSTED at once, the rest end at
    read_timeout_ms, and RSS grows by a few MB, not 48."""
    asan = sanitizer_build()
    read_s = 4.0 * SLOW
    cfg = grpc_cfg(LOGIN_POLICY, workers=1, grpc={"read_timeout_ms": int(read_s * 1000)})
    n = 48
    with service(cfg, "memory") as svc:
        pid = svc.d.pid
        start_kb = rss_kb(pid)
        peak = [start_kb]
        out = []
        th = threading.Thread(target=lambda: out.extend(rpc(
            {"op": "unfinished", "target": target(cfg), "n": n, "bytes": 1000000,
             "hold": read_s + 10.0 * SLOW})))
        th.start()
        while th.is_alive():
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.05)
        th.join()
        res = out[0]["results"]
        codes = [r["error"] for r in res]
        exhausted = codes.count("RESOURCE_EXHAUSTED")
        check(exhausted >= n - 6 and exhausted + codes.count("DEADLINE_EXCEEDED") == n,
              "refused past the cap, the rest at the read deadline: %r" % codes)
        check(all(r["s"] < read_s + 3.0 * SLOW for r in res), "all ended by the read deadline")
        eq(metric(scrape(svc.d), "ratelimitd_grpc_buffer_refusals_total"), exhausted,
           "refusals counted")
        grown = (peak[0] - start_kb) // 1024
        print("RSS: %d kB at start, peak %d kB" % (start_kb, peak[0]))
        if not asan:
            check(grown < 20, "RSS grew by %d MB while 48 MB were offered" % grown)


test_grpc_unfinished_streams_memory_bounded.timeout = 120


def _ld(tag, b):
    """A protobuf length-delimited field."""
    out, n = b"", len(b)
    while n >= 128:
        out += bytes([n & 127 | 128])
        n >>= 7
    return bytes([tag]) + out + bytes([n]) + b


def test_grpc_answered_streams_keep_no_headers():
    """A client that opens no flow-control window gets each answer's
    HEADERS but never its DATA, so its answered streams stay open: 160 of
    them, each with 8 kept authorization headers of 16 kB, must not pin
    their headers (20 MB before the fix, uncounted by the cap)."""
    entry = lambda k, v: _ld(0x0a, _ld(0x0a, k.encode()) + _ld(0x12, v.encode()))  # noqa: E731
    req = _ld(0x0a, b"edge") + _ld(0x12, entry("remote_address", "10.0.0.9") +
                                   entry("path", "/login"))
    msg = b"\0" + len(req).to_bytes(4, "big") + req
    cfg = grpc_cfg(LOGIN_POLICY, workers=1)
    with service(cfg, "memory") as svc:
        pid = svc.d.pid
        c = H2(target(cfg))
        c.sock.sendall(frame(SETTINGS, 0, 0, b"\x00\x04" + (0).to_bytes(4, "big")))
        run([c], 0.3, lambda: False)
        start_kb = rss_kb(pid)
        hdrs = [(":method", "POST"), (":scheme", "http"), (":path", RLS_PATH),
                (":authority", "x"), ("content-type", "application/grpc"),
                ("te", "trailers")] + [("authorization", "x" * 16000)] * 8
        blk = hpack(hdrs)
        chunks = [blk[o:o + 16000] for o in range(0, len(blk), 16000)]
        for i in range(160):
            sid = 1 + 2 * i
            out = frame(HEADERS, 0, sid, chunks[0])
            for k, ch in enumerate(chunks[1:]):
                out += frame(9, END_HEADERS if k == len(chunks) - 2 else 0, sid, ch)
            c.send(out + frame(DATA, END_STREAM, sid, msg))
            run([c], 0.001, lambda: False)
        run([c], 2.0 * SLOW, lambda: False)
        grown = (rss_kb(pid) - start_kb) // 1024
        answered = len({f[3] for f in c.frames if f[1] == HEADERS})
        c.close()
        check(answered >= 130, "answers begun (HEADERS) on %d of 160 streams" % answered)
        if not sanitizer_build():
            check(grown < 8, "RSS grew by %d MB for 160 answered streams" % grown)


test_grpc_answered_streams_keep_no_headers.timeout = 120
