"""GET /ui: the status page, served without the admin key while the admin
endpoints are enabled, and driven in headless Chromium (tests/ui/ui.js)."""

import hashlib
import os
import shutil
import subprocess

import json
import time

from harness import (check, config, eq, limit, policy, reload_config, service)

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
    the page denies it again; at 390 px the page is one column; after a
    failed reload the page shows it failed, with its error. The
    screenshots are kept in the test logs (ui.png, ui-phone.png)."""
    check(os.path.exists(CHROMIUM), "Debian's chromium is installed (%s)" % CHROMIUM)
    check(shutil.which("node") is not None, "node is installed")
    node_dir = _playwright_dir()
    shots = os.environ.get("RL_TEST_LOGDIR") or "/tmp"
    with service(_cfg(), "redis") as svc:
        bad = json.loads(json.dumps(svc.d.config))
        bad["policies"][0]["limits"][0]["per"] = "5x"
        eq(reload_config(svc.d, bad), "failed", "a bad reload")
        env = dict(os.environ, NODE_PATH=os.path.join(node_dir, "node_modules"))
        p = subprocess.run(["node", os.path.join(UI_DIR, "ui.js"),
                            "http://127.0.0.1:%d" % svc.port, KEY, shots,
                            '"5x" is not a duration'],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        out = p.stdout.decode(errors="replace")
        print(out)
        eq(p.returncode, 0, "ui.js (%s)" % out.strip().splitlines()[-1:])
        check(os.path.getsize(os.path.join(shots, "ui.png")) > 10000, "screenshot kept")


test_ui_in_headless_chromium.timeout = 90


def test_ui_reload_result_in_policies_json():
    """GET /v1/policies (what the page reads) carries the last (re)load:
    the start-up load ok; a bad file failed with the error naming the JSON
    path; a changed store section failed without quoting its password;
    a good file ok again, error null."""
    cfg = _cfg()
    with service(cfg, "memory") as svc:
        def last():
            r = svc.request("GET", "/v1/policies",
                            headers={"Authorization": "Bearer " + KEY})
            eq(r.status, 200, "policies status")
            return r.json["reload"]
        now = time.time()
        r = last()
        eq((r["ok"], r["error"]), (True, None), "start-up load")
        check(abs(r["at"] - now) < 30, "start-up load time %r" % r)
        bad = json.loads(json.dumps(svc.d.config))
        bad["policies"][0]["limits"][0]["per"] = "5x"
        eq(reload_config(svc.d, bad), "failed", "bad file")
        r = last()
        eq((r["ok"], r["error"]), (False, 'policies[0].limits[0].per: "5x" is not a duration'),
           "failed reload")
        secret = "reload-secret-password-42"
        moved = json.loads(json.dumps(svc.d.config))
        moved["store"] = {"type": "redis", "address": "127.0.0.1:1", "password": secret}
        eq(reload_config(svc.d, moved), "failed", "store changed")
        r = last()
        check(r["ok"] is False and r["error"].startswith("store: changed"), "store %r" % r)
        check(secret not in json.dumps(r), "no secret in %r" % r)
        eq(reload_config(svc.d, svc.d.config), "ok", "good file")
        eq((last()["ok"], last()["error"]), (True, None), "ok again")
