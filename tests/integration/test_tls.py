"""TLS on the listener: a CA and a server certificate made here with
openssl, curl --cacert against the running service, the minimum version,
keep-alive, configuration errors, and a stalled handshake cut off."""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

from harness import (BINARY, SLOW, Ratelimitd, TestFailure, check, config, eq, limit, policy,
                     free_port, run_binary)

CFG = config(policy("p", "/*", [limit(3, "1m")], key=["tenant"]), workers=2)


def _openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise TestFailure("openssl %s: %s" % (" ".join(args), p.stderr.decode(errors="replace")))


def make_pki(d):
    """A test CA and a certificate for 127.0.0.1 signed by it, in d; also a
    second key that matches nothing."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=ratelimitd test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=d)
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", "other.key", cwd=d)
    return {name: os.path.join(d, name) for name in ("ca.pem", "server.pem", "server.key",
                                                     "other.key")}


class TlsRatelimitd(Ratelimitd):
    """A ratelimitd whose health checks go over HTTPS, trusting ca."""

    def __init__(self, cfg, ca):
        Ratelimitd.__init__(self, cfg)
        self.ctx = ssl.create_default_context(cafile=ca)

    def https(self, timeout=5.0):
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                           context=self.ctx)

    def get(self, path):
        c = self.https()
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def _healthy(self):
        if self.proc.poll() is not None:
            raise TestFailure("ratelimitd exited with %s:\n%s" % (self.proc.returncode,
                                                                 self.stderr()))
        return self.get("/health")[0] == 200

    def _ready(self):
        return self.get("/ready")[0] == 200


def _curl(*args):
    p = subprocess.run(["curl", "-sS", "--max-time", str(10 * SLOW)] + list(args),
                       capture_output=True, timeout=30 * SLOW)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def _with_tls(fn, **tls):
    d = tempfile.mkdtemp(prefix="rl-tls-")
    daemon = None
    try:
        pki = make_pki(d)
        cfg = dict(CFG, tls=dict({"cert_file": pki["server.pem"], "key_file": pki["server.key"]},
                                 **tls))
        cfg["http"] = {"read_timeout_ms": 500}
        daemon = TlsRatelimitd(cfg, pki["ca.pem"])
        daemon.start()
        fn(daemon, pki)
        daemon.stop()
    finally:
        if daemon is not None:
            daemon.cleanup()
        shutil.rmtree(d, ignore_errors=True)


def test_tls_curl_cacert():
    def body(d, pki):
        url = "https://127.0.0.1:%d" % d.port
        rc, out, err = _curl("--cacert", pki["ca.pem"], url + "/health")
        eq((rc, out), (0, '{"status":"healthy"}'), "curl --cacert /health (%s)" % err)
        req = json.dumps({"path": "/x", "tenant": "acme-corp"})
        for i in range(4):
            rc, out, err = _curl("--cacert", pki["ca.pem"], "-H", "Content-Type: application/json",
                                 "-d", req, url + "/v1/decide")
            eq(rc, 0, "curl decide over TLS (%s)" % err)
            eq(json.loads(out)["allowed"], i < 3, "verdict %d over TLS" % (i + 1))
        # Without the CA, curl refuses the server (60: certificate problem).
        rc, out, err = _curl(url + "/health")
        eq(rc, 60, "curl without --cacert (%s)" % err)
        # Keep-alive: several requests on one TLS connection.
        c = d.https()
        try:
            for _ in range(5):
                c.request("GET", "/health")
                r = c.getresponse()
                eq((r.status, r.read()), (200, b'{"status":"healthy"}'), "keep-alive over TLS")
        finally:
            c.close()
        # Plain HTTP to the TLS port gets no HTTP reply.
        with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionResetError, socket.timeout):
                pass
        check(not data.startswith(b"HTTP/"), "plain HTTP answered on the TLS port: %r" % data[:80])
    _with_tls(body)


test_tls_curl_cacert.timeout = 120


def test_tls_min_version_13():
    def body(d, pki):
        url = "https://127.0.0.1:%d/health" % d.port
        rc, out, err = _curl("--cacert", pki["ca.pem"], "--tls-max", "1.2", url)
        check(rc != 0, "a TLS 1.2 client was accepted with min_version 1.3: %r" % out)
        rc, out, err = _curl("--cacert", pki["ca.pem"], "--tlsv1.3", url)
        eq((rc, out), (0, '{"status":"healthy"}'), "a TLS 1.3 client (%s)" % err)
    _with_tls(body, min_version="1.3")


test_tls_min_version_13.timeout = 120


def test_tls_12_accepted_by_default():
    def body(d, pki):
        rc, out, err = _curl("--cacert", pki["ca.pem"], "--tlsv1.2", "--tls-max", "1.2",
                             "https://127.0.0.1:%d/health" % d.port)
        eq((rc, out), (0, '{"status":"healthy"}'), "a TLS 1.2 client (%s)" % err)
    _with_tls(body)


test_tls_12_accepted_by_default.timeout = 120


def test_tls_stalled_handshake_cut_off():
    """A client that connects and never starts the handshake is closed
    after http.read_timeout_ms (500 ms here), and the service still serves."""
    def body(d, pki):
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", d.port), timeout=10 * SLOW) as s:
            data = s.recv(1024)
        took = time.monotonic() - t0
        eq(data, b"", "what a stalled handshake receives")
        check(0.4 <= took <= 3.0 * SLOW, "closed after %.2fs" % took)
        eq(d.get("/health")[0], 200, "still serving")
    _with_tls(body)


test_tls_stalled_handshake_cut_off.timeout = 120


def test_tls_config_errors():
    d = tempfile.mkdtemp(prefix="rl-tls-")
    try:
        pki = make_pki(d)
        cases = [
            ({"cert_file": os.path.join(d, "missing.pem"), "key_file": pki["server.key"]},
             "tls.cert_file: cannot read %s: No such file or directory" %
             os.path.join(d, "missing.pem")),
            ({"cert_file": pki["server.pem"], "key_file": os.path.join(d, "missing.key")},
             "tls.key_file: cannot read %s: No such file or directory" %
             os.path.join(d, "missing.key")),
            ({"cert_file": pki["server.pem"], "key_file": pki["other.key"]},
             "tls.key_file:"),
            ({"cert_file": pki["server.key"], "key_file": pki["server.key"]},
             "tls.cert_file: cannot load"),
        ]
        path = os.path.join(d, "conf.json")
        key_text = open(pki["server.key"]).read()
        # The HTTP listener's "tls", then the gRPC listener's "grpc.tls":
        # --check-config loads both as the service would.
        listeners = [("", lambda tls: dict(CFG, tls=tls)),
                     ("grpc.", lambda tls: dict(CFG, grpc={"listen": "127.0.0.1:%d" % free_port(),
                                                           "tls": tls}))]
        for (section, conf), (tls, want) in [(x, c) for x in listeners for c in cases]:
            want = section + want
            with open(path, "w") as f:
                json.dump(conf(tls), f)
            rc, out, err = run_binary(["--check-config", path])
            eq(rc, 1, "--check-config exit code with %s%r" % (section, tls))
            check(want in err, "error %r does not contain %r" % (err, want))
            check("PRIVATE KEY" not in err and key_text[100:140] not in err, "key material shown")
            p = subprocess.run([BINARY, "-c", path],
                               capture_output=True, timeout=30 * SLOW)
            eq(p.returncode, 1, "ratelimitd -c exit code with %r" % tls)
        with open(path, "w") as f:
            json.dump(dict(CFG, tls={"cert_file": pki["server.pem"], "key_file": pki["server.key"]}),
                      f)
        rc, out, err = run_binary(["--check-config", path])
        eq(rc, 0, "--check-config of a good TLS config (%s)" % err)
    finally:
        shutil.rmtree(d, ignore_errors=True)


test_tls_config_errors.timeout = 120
