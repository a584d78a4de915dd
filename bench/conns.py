#!/usr/bin/env python3
"""Opens N keep-alive HTTP connections to 127.0.0.1:PORT (GET /health on
each, reply read, connection kept), prints "open N" and holds them until
its stdin closes. Used by bench/run.sh to measure ratelimitd's RSS with
10,000 open connections.

  conns.py PORT N"""
import socket
import sys


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    socks = []
    req = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf or not buf.endswith(b"}"):
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit("connection %d closed: %r" % (len(socks), buf))
            buf += chunk
        if not buf.startswith(b"HTTP/1.1 200"):
            raise SystemExit("connection %d: %r" % (len(socks), buf[:100]))
        socks.append(s)
    print("open %d" % len(socks), flush=True)
    sys.stdin.read()
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
