"""GET /ui: the status page, served without the admin key while the admin
endpoints are enabled, and driven in headless Chromium (tests/ui/ui.js)."""

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time

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
