"""GET /ui: the status page, served without the admin key while the admin
endpoints are enabled, and driven in headless Chromium (tests/ui/ui.js)."""

import hashlib
import os
import shutil
import subprocess

from harness import (check, config, eq, limit, policy, service)

KEY = "ui-test-admin-key-0123456789"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
UI_DIR = os.path.join(ROOT, "tests", "ui")
CHROMIUM = "/usr/bin/chromium"


def _cfg(admin=True):
    top = {}
    if admin:
        top["admin"] = {"enabled": True,
                        "key_sha256": hashlib.sha256(KEY.encode()).hexdigest()}
    return config(policy("api", "/api/*", [limit(5, "1h", "fixed_window")], key=["tenant"]),
                  policy("other", "/other/*", [limit(100, "1m")], key=["tenant"]),
                  workers=2, **top)


def test_ui_page_is_served_self_contained():
    """200 text/html without the key, one file with no external asset
    (no src= or href= to another origin) under a CSP allowing this origin
    only; 404 while admin is disabled."""
    with service(_cfg(), "memory") as svc:
        r = svc.request("GET", "/ui")
        eq(r.status, 200, "status")
        check(r.header("Content-Type").startswith("text/html"), "content type")
        csp = r.header("Content-Security-Policy") or ""
        check("default-src 'none'" in csp and "connect-src 'self'" in csp, "CSP %r" % csp)
        eq(r.header("Cache-Control"), "no-store", "not cached")
        page = r.body.decode()
        with open(os.path.join(ROOT, "ui", "index.html")) as f:
            eq(page, f.read(), "the embedded page is ui/index.html")
        for bad in ("http://", "https://", "src=\"/", "<link"):
            check(bad not in page.replace("http://www.w3.org/2000/svg", ""),
                  "external asset %r" % bad)
        check('id="login-form"' in page and "Authorization" in page, "login form")
        check(KEY not in page, "no key in the page")
    with service(_cfg(admin=False), "memory") as svc:
        eq(svc.request("GET", "/ui").status, 404, "admin disabled")


def _playwright_dir():
    """A directory with playwright-core installed from tests/ui/package.json
    (npm, into a test-local directory kept between runs)."""
    d = os.environ.get("RL_UI_NODE_DIR", "/tmp/ratelimitd-ui-node")
    if not os.path.isdir(os.path.join(d, "node_modules", "playwright-core")):
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(UI_DIR, "package.json"), d)
        subprocess.run(["npm", "install", "--prefix", d, "--no-audit", "--no-fund"],
                       check=True, stdout=subprocess.DEVNULL, timeout=120)
    return d


def test_ui_in_headless_chromium():
    """tests/ui/ui.js in the system Chromium: a wrong key is refused, the
    right one opens the page; hammering a key makes api's denied rate go
    above 0 (not other's) and puts the key first in the top list; an
    override added from the page lets the key through, removing it from
    the page denies it again; at 390 px the page is one column. The
    screenshots are kept in the test logs (ui.png, ui-phone.png)."""
    check(os.path.exists(CHROMIUM), "Debian's chromium is installed (%s)" % CHROMIUM)
    check(shutil.which("node") is not None, "node is installed")
    node_dir = _playwright_dir()
    shots = os.environ.get("RL_TEST_LOGDIR") or "/tmp"
    with service(_cfg(), "redis") as svc:
        env = dict(os.environ, NODE_PATH=os.path.join(node_dir, "node_modules"))
        p = subprocess.run(["node", os.path.join(UI_DIR, "ui.js"),
                            "http://127.0.0.1:%d" % svc.port, KEY, shots],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        out = p.stdout.decode(errors="replace")
        print(out)
        eq(p.returncode, 0, "ui.js (%s)" % out.strip().splitlines()[-1:])
        check(os.path.getsize(os.path.join(shots, "ui.png")) > 10000, "screenshot kept")


test_ui_in_headless_chromium.timeout = 90
