"""configure refuses dependencies too old to be safe (issue 13): jansson
before 2.14 has no nesting depth limit."""

import os
import re
import shutil
import subprocess
import tempfile

from harness import ROOT, check

PC_DIR = "/usr/lib/x86_64-linux-gnu/pkgconfig"


def _fake_pkgconfig(dest, jansson_version):
    """Copies the system's .pc files into dest with jansson's version set."""
    src_dirs = [d for d in (PC_DIR, "/usr/lib/pkgconfig", "/usr/share/pkgconfig")
                if os.path.isdir(d)]
    for d in src_dirs:
        for name in os.listdir(d):
            if name.endswith(".pc") and not os.path.exists(os.path.join(dest, name)):
                shutil.copy(os.path.join(d, name), dest)
    path = os.path.join(dest, "jansson.pc")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(re.sub(r"(?m)^Version:.*$", "Version: %s" % jansson_version, text))


def _configure(jansson_version):
    """Runs configure against a pkg-config that reports jansson_version;
    returns (exit code, output)."""
    with tempfile.TemporaryDirectory() as tmp:
        pc = os.path.join(tmp, "pc")
        os.mkdir(pc)
        _fake_pkgconfig(pc, jansson_version)
        env = dict(os.environ, PKG_CONFIG_LIBDIR=pc, PKG_CONFIG_PATH="")
        p = subprocess.run([os.path.join(ROOT, "configure")], cwd=tmp, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        return p.returncode, p.stdout.decode(errors="replace")


def test_configure_requires_jansson_2_14():
    """jansson 2.13 is refused by name; 2.14 is accepted."""
    if not os.path.exists(os.path.join(ROOT, "configure")) or \
            not os.path.exists(os.path.join(PC_DIR, "jansson.pc")):
        print("skipped: no configure script or no jansson.pc")
        return
    rc, out = _configure("2.13")
    check(rc != 0 and "jansson >= 2.14" in out, "configure with jansson 2.13: rc %d, %s" %
          (rc, out[-400:]))
    rc, out = _configure("2.14")
    check(rc == 0, "configure with jansson 2.14: rc %d, %s" % (rc, out[-400:]))


test_configure_requires_jansson_2_14.timeout = 600
