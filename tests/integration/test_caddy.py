"""A real Caddy in front of ratelimitd, configured with
deploy/caddy/Caddyfile as shipped (only its three addresses are changed
to free loopback ports): forward_auth to /v1/authorize, the application
a second site block answering with caddy's own respond. The denial
reaches the client with the policy's status, body and rate-limit
headers; an allow hands the rate-limit headers to the application
(copy_headers); headers the client adds to fool ratelimitd
(X-Original-URI, X-Forwarded-Uri, X-Forwarded-For, X-Real-IP) change
nothing. Caddy runs with admin off, its state in a temp dir, and is
stopped by pid."""

import json
import os
import shutil
import subprocess
import tempfile
import http.client

from harness import (ROOT, SLOW, GatewayProcess, TestFailure, check, config, eq, free_port, limit, policy,
                     service, wait_until)

CADDYFILE = os.path.join(ROOT, "deploy", "caddy", "Caddyfile")
DENY = {"status": 429, "body": {"error": "too many login attempts", "code": "LOGIN"}}
FORWARD_AUTH = {"uri_header": "X-Forwarded-Uri", "method_header": "X-Forwarded-Method",
                "client_ip": {"header": "X-Forwarded-For", "trusted_hops": 1}}
CFG = config(policy("login", "/api/login", [limit(3, "1h")], key=["ip"], method="POST",
                    deny=DENY),
             forward_auth=FORWARD_AUTH)


def caddy_binary():
    """The caddy executable (tests/run.sh installs Debian's caddy)."""
    path = shutil.which("caddy")
    if path is None:
        raise TestFailure("caddy is not installed (tests/run.sh installs it: apt-get install "
                          "caddy)")
    return path


class Caddy(GatewayProcess):
    """One caddy process on the shipped Caddyfile, addresses replaced, plus
    an application site block that answers with the rate-limit headers
    it was handed."""

    name = "caddy"
    log_name = "caddy.log"

    def __init__(self, rl_port):
        self.dir = tempfile.mkdtemp(prefix="rl-caddy-")
        self.port = free_port()
        self.app_port = free_port()
        with open(CADDYFILE) as f:
            text = f.read()
        for old, new in (("forward_auth 127.0.0.1:8080", "forward_auth 127.0.0.1:%d" % rl_port),
                         ("reverse_proxy 127.0.0.1:9000",
                          "reverse_proxy 127.0.0.1:%d" % self.app_port),
                         ("http://127.0.0.1:8000 {", "http://127.0.0.1:%d {" % self.port)):
            check(text.count(old) == 1, "%s: expected one %r" % (CADDYFILE, old))
            text = text.replace(old, new)
        text += ("\nhttp://127.0.0.1:%d {\n\tbind 127.0.0.1\n\trespond \"upstream ok "
                 "remaining={header.X-RateLimit-Remaining}\" 200\n}\n" % self.app_port)
        self.conf = os.path.join(self.dir, "Caddyfile")
        with open(self.conf, "w") as f:
            f.write(text)
        self.proc = None

    def start(self):
        env = dict(os.environ, HOME=self.dir, XDG_DATA_HOME=self.dir, XDG_CONFIG_HOME=self.dir)
        self.log_file = open(os.path.join(self.dir, "caddy.log"), "wb")
        self.proc = subprocess.Popen([caddy_binary(), "run", "--config", self.conf,
                                      "--adapter", "caddyfile"], env=env, cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        wait_until(self.app_up, 15.0 * SLOW, what="caddy on port %d" % self.port)
        return self

    def stop(self):
        GatewayProcess.stop(self)
        self.log_file.close()


def _send(port, method, path, headers=None):
    """One request through caddy: (status, headers, body text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.headers, r.read().decode(errors="replace")
    finally:
        c.close()


def _with_caddy(fn, store="memory"):
    with service(CFG, store) as svc:
        cd = Caddy(svc.port)
        try:
            cd.start()
            fn(svc, cd)
        except TestFailure as e:
            raise TestFailure("%s\ncaddy log:\n%s" % (e, cd.log()))
        finally:
            cd.stop()


def test_caddy_allow_deny_and_spoofs():
    """Three logins pass (the application sees the remaining count), the
    fourth is the policy's 429 with its body, Retry-After and
    X-RateLimit-*; then the client's own X-Original-URI: /free,
    X-Forwarded-Uri, rotating X-Forwarded-For and X-Real-IP are all
    ignored; another path still passes."""
    def run(svc, cd):
        for i in range(3):
            status, _, body = _send(cd.port, "POST", "/api/login")
            eq((status, body), (200, "upstream ok remaining=%d" % (2 - i)),
               "login %d through caddy" % (i + 1))
        status, h, body = _send(cd.port, "POST", "/api/login")
        eq(status, 429, "login 4: the policy's status")
        eq(json.loads(body), DENY["body"], "the policy's deny body")
        eq(h.get("X-RateLimit-Limit"), "3", "X-RateLimit-Limit on the denial")
        eq(h.get("X-RateLimit-Remaining"), "0", "X-RateLimit-Remaining on the denial")
        check(int(h.get("Retry-After", "0")) > 0, "Retry-After on the denial: %r" % h.items())
        spoofs = [{"X-Original-URI": "/free", "X-Original-Method": "GET"},
                  {"X-Forwarded-Uri": "/free", "X-Forwarded-Method": "GET"},
                  {"X-Real-IP": "198.51.100.9"}]
        spoofs += [{"X-Forwarded-For": "198.51.100.%d" % n} for n in range(3)]
        spoofs += [{"X-Forwarded-For": "198.51.100.%d, 10.0.0.1" % n} for n in range(3)]
        for hdrs in spoofs:
            status, _, body = _send(cd.port, "POST", "/api/login", hdrs)
            eq(status, 429, "spoofed %r ignored (%r)" % (hdrs, body[:100]))
        status, _, body = _send(cd.port, "GET", "/elsewhere")
        eq((status, body.split(" remaining=")[0]), (200, "upstream ok"), "a path no policy matches")
    _with_caddy(run)


def test_caddy_config_check():
    """caddy validate accepts deploy/caddy/Caddyfile as shipped."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, HOME=tmp, XDG_DATA_HOME=tmp, XDG_CONFIG_HOME=tmp)
        p = subprocess.run([caddy_binary(), "validate", "--config", CADDYFILE,
                            "--adapter", "caddyfile"], capture_output=True, env=env, timeout=60)
        check(p.returncode == 0, "caddy validate:\n%s" % p.stderr.decode(errors="replace")[-2000:])
