"""A real nginx in front of ratelimitd, configured with
deploy/nginx/ratelimitd.conf as shipped (only its three addresses are
changed to free loopback ports): auth_request to /v1/authorize, the
403 -> 429 error_page trick, the policy's body and headers reaching the
client. nginx runs unprivileged-friendly (pid, logs and temp files in a
temp dir, daemon off) and is stopped by pid."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import http.client

from harness import (ROOT, SLOW, GatewayProcess, TestFailure, between, check, eq, free_port, load_example,
                     service, wait_until, wait_window_start)

NGINX_CONF = os.path.join(ROOT, "deploy", "nginx", "ratelimitd.conf")
PLATFORM_BODY = {"success": False, "message": "Too many attempts."}
PAYMENTS_BODY = {"errors": [{"code": 64, "severity": 2,
                             "msg": "Rate of requests exceeded - Temporary block implemented",
                             "errorCode": "C_RATE_LIMIT_EXCEEDED_TEMP_BLOCK"}]}
UPSTREAM_BODY = "upstream ok\n"


def nginx_binary():
    """The nginx executable (tests/run.sh installs Debian's nginx)."""
    for path in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if path and os.access(path, os.X_OK):
            return path
    raise TestFailure("nginx is not installed (tests/run.sh installs it: apt-get install nginx)")


def nginx_config(workdir, rl_port, app_port, listen_port):
    """Writes workdir/nginx.conf: the shipped snippet with its addresses
    replaced, inside a top level that keeps every file in workdir, plus
    the tiny upstream application (a server block answering 200)."""
    with open(NGINX_CONF) as f:
        snippet = f.read()
    for old, new in (("server 127.0.0.1:8080;", "server 127.0.0.1:%d;" % rl_port),
                     ("server 127.0.0.1:9000;", "server 127.0.0.1:%d;" % app_port),
                     ("listen 127.0.0.1:8000;", "listen 127.0.0.1:%d;" % listen_port)):
        check(snippet.count(old) == 1, "%s: expected one %r" % (NGINX_CONF, old))
        snippet = snippet.replace(old, new)
    with open(os.path.join(workdir, "ratelimitd.conf"), "w") as f:
        f.write(snippet)
    temp = "".join("    %s_temp_path %s;\n" % (k, os.path.join(workdir, k))
                   for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf = ("daemon off;\nworker_processes 1;\n%s"
            "pid %s;\nerror_log %s warn;\n"
            "events { worker_connections 256; }\n"
            "http {\n    access_log off;\n%s"
            "    include %s;\n"
            "    server {\n        listen 127.0.0.1:%d;\n"
            "        location / { default_type text/plain; return 200 \"upstream ok\\n\"; }\n"
            "    }\n"
            "}\n") % (user, os.path.join(workdir, "nginx.pid"),
                      os.path.join(workdir, "error.log"), temp,
                      os.path.join(workdir, "ratelimitd.conf"), app_port)
    path = os.path.join(workdir, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


class Nginx(GatewayProcess):
    """One nginx master process (daemon off) on a generated config."""

    name = "nginx"

    def __init__(self, rl_port):
        self.dir = tempfile.mkdtemp(prefix="rl-nginx-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.app_port = free_port()
        self.conf = nginx_config(self.dir, rl_port, self.app_port, self.port)
        self.proc = None

    def args(self, *extra):
        return [nginx_binary(), "-p", self.dir, "-c", self.conf,
                "-e", os.path.join(self.dir, "error.log")] + list(extra)

    def start(self):
        t = subprocess.run(self.args("-t"), capture_output=True, timeout=30)
        check(t.returncode == 0, "nginx -t failed:\n%s" % t.stderr.decode(errors="replace"))
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.app_up, 10.0 * SLOW, what="nginx on port %d" % self.port)
        return self


def _gateway_config():
    """The example config with forward_auth.deny_status 403 (what nginx's
    auth_request needs) and the payments limit of 1,000 per 10 s made to
    block for 10 s, as shipped."""
    conf = load_example()
    conf["forward_auth"] = {"deny_status": 403}
    return conf


def _curl(port, method, path, headers):
    """curl -i through nginx: (status, {lower-case name: value}, body)."""
    args = ["curl", "-s", "-i", "--max-time", "10", "-X", method]
    for k, v in headers.items():
        args += ["-H", "%s: %s" % (k, v)]
    out = subprocess.run(args + ["http://127.0.0.1:%d%s" % (port, path)],
                         capture_output=True, timeout=20).stdout.decode(errors="replace")
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


def _get(conn, method, path, headers):
    conn.request(method, path, headers=headers)
    r = conn.getresponse()
    return r.status, r.headers, r.read().decode(errors="replace")


def _with_gateway(fn):
    """Starts redis, ratelimitd (example config, deny_status 403) and nginx;
    runs fn(svc, nginx)."""
    with service(_gateway_config()) as svc:
        ng = Nginx(svc.port)
        try:
            ng.start()
            fn(svc, ng)
        except TestFailure as e:
            raise TestFailure("%s\nnginx error.log:\n%s" % (e, ng.log()))
        finally:
            ng.stop()


def test_nginx_platform_process():
    """The second POST for a site within 5 minutes gets 429 with the
    example's body, Retry-After and X-Ratelimit-Retry-After; another site
    and another tenant still pass; allowed replies carry the headers."""
    def run(svc, ng):
        hdrs = {"X-Tenant-Id": "tenant-a"}
        status, h, body = _curl(ng.port, "POST", "/platform/v2/process/site-1", hdrs)
        now = time.time()
        eq((status, body), (200, UPSTREAM_BODY), "first POST through nginx")
        eq(h.get("x-ratelimit-limit"), "1", "X-RateLimit-Limit on the allowed reply")
        eq(h.get("x-ratelimit-remaining"), "0", "X-Ratelimit-Remaining on the allowed reply")
        between(int(h.get("x-ratelimit-retry-after", "0")), int(now) + 290, int(now) + 302,
                "X-Ratelimit-Retry-After on the allowed reply")
        status, h, body = _curl(ng.port, "POST", "/platform/v2/process/site-1?x=1", hdrs)
        now = time.time()
        eq(status, 429, "second POST for site-1 (query string ignored)")
        eq(json.loads(body), PLATFORM_BODY, "deny body through nginx")
        check("application/json" in h.get("content-type", ""),
              "Content-Type of the denial: %r" % h.get("content-type"))
        between(int(h.get("retry-after", "0")), 290, 300, "Retry-After")
        between(int(h.get("x-ratelimit-retry-after", "0")), int(now) + 289, int(now) + 301,
                "X-Ratelimit-Retry-After on the denial")
        check("x-ratelimit-deny-body" not in h, "internal headers leak to the client: %r" % h)
        status, _, body = _curl(ng.port, "POST", "/platform/v2/process/site-2", hdrs)
        eq((status, body), (200, UPSTREAM_BODY), "another site")
        status, _, _ = _curl(ng.port, "POST", "/platform/v2/process/site-1",
                             {"X-Tenant-Id": "tenant-b"})
        eq(status, 200, "another tenant, same site")
        status, _, body = _curl(ng.port, "GET", "/somewhere/else", {})
        eq((status, body), (200, UPSTREAM_BODY), "a path no policy matches")
    _with_gateway(run)


def test_nginx_test_header():
    """rate-limit-test: match trips the payments test limit (3 per 10 s)
    through nginx: the fourth request is 429 with the payments body."""
    def run(svc, ng):
        wait_window_start(svc, 10, 3)
        conn = http.client.HTTPConnection("127.0.0.1", ng.port, timeout=10)
        hdrs = {"X-Tenant-Id": "tenant-t", "rate-limit-test": "match"}
        got = [_get(conn, "POST", "/payments/txns", hdrs) for _ in range(4)]
        eq([g[0] for g in got], [200, 200, 200, 429], "statuses with the test header")
        eq(json.loads(got[3][2]), PAYMENTS_BODY, "payments deny body")
        check(got[3][1].get("Retry-After") is not None, "Retry-After on the denial")
        status, _, _ = _get(conn, "POST", "/payments/txns", {"X-Tenant-Id": "tenant-t"})
        eq(status, 200, "the same endpoint without the test header")
        conn.close()
    _with_gateway(run)


def test_nginx_payments_block():
    """1,000 requests per 10 s per endpoint pass through nginx, the next is
    429, and the block outlasts the window; another endpoint is counted
    on its own."""
    def run(svc, ng):
        wait_window_start(svc, 10, 9)
        conn = http.client.HTTPConnection("127.0.0.1", ng.port, timeout=10)
        hdrs = {"X-Tenant-Id": "tenant-p"}
        t0 = time.monotonic()
        statuses = [_get(conn, "GET", "/payments/charges", hdrs)[0] for _ in range(1000)]
        elapsed = time.monotonic() - t0
        check(elapsed < 8.5, "1,000 requests took %.1fs: too slow to stay in one window" % elapsed)
        eq(statuses.count(200), 1000, "allowed of the first 1,000")
        # The block starts with request 1,001: half-way through the window
        # at the earliest, so it clearly outlasts the window on a slow run.
        now = svc.now_s()
        if now % 10 < 5:
            time.sleep(5 - now % 10)
        status, h, body = _get(conn, "GET", "/payments/charges", hdrs)
        eq(status, 429, "request 1,001")
        eq(json.loads(body), PAYMENTS_BODY, "payments deny body")
        status, _, _ = _get(conn, "GET", "/payments/refunds", hdrs)
        eq(status, 200, "another endpoint")
        # The window ends; the 10 s block does not.
        now = svc.now_s()
        time.sleep(10 - now % 10 + 0.2)
        status, h, _ = _get(conn, "GET", "/payments/charges", hdrs)
        eq(status, 429, "the next window, within the block")
        check(int(h.get("Retry-After", "0")) >= 1, "Retry-After during the block")
        conn.close()
    _with_gateway(run)


test_nginx_payments_block.timeout = 90


def test_nginx_config_check():
    """nginx -t accepts deploy/nginx/ratelimitd.conf (inside an http block
    with local paths), without starting anything."""
    d = tempfile.mkdtemp(prefix="rl-nginx-t-")
    try:
        conf = nginx_config(d, free_port(), free_port(), free_port())
        p = subprocess.run([nginx_binary(), "-t", "-p", d, "-c", conf,
                            "-e", os.path.join(d, "error.log")],
                           capture_output=True, timeout=30)
        err = p.stderr.decode(errors="replace")
        eq(p.returncode, 0, "nginx -t exit code (%s)" % err)
        check(re.search(r"test is successful", err), "nginx -t output: %s" % err)
    finally:
        shutil.rmtree(d, ignore_errors=True)
