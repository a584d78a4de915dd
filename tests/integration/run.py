#!/usr/bin/env python3
"""Runs the integration tests: every test_* function of every test_*.py
module in this directory, each in its own process (own session, so a test
that times out is stopped together with the daemons it started).

Prints one line per test ("ok" or "FAIL" with the reason, details
indented below) and ends with exactly "N passed, N failed". Exit code 1
if any test failed.

  run.py [-k SUBSTRING]... [--timeout SECONDS] [--list]
  run.py --one MODULE:FUNCTION      (internal: runs one test)
"""

import argparse
import importlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TIMEOUT = 60.0
sys.dont_write_bytecode = True  # keep the source tree clean


class Interrupted(BaseException):
    """Raised in a test process on SIGTERM so finally blocks clean up."""


def _on_sigterm(signum, frame):
    raise Interrupted("stopped by the runner (timeout)")


def discover():
    """[(module name, function name, timeout)] in file and definition order."""
    sys.path.insert(0, HERE)
    tests = []
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        mod = importlib.import_module(fname[:-3])
        for name, obj in vars(mod).items():
            if name.startswith("test_") and callable(obj):
                tests.append((mod.__name__, name, getattr(obj, "timeout", None)))
    return tests


def run_one(spec):
    """Runs MODULE:FUNCTION in this process. Exit 0 on success."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    sys.path.insert(0, HERE)
    modname, fname = spec.split(":", 1)
    try:
        getattr(importlib.import_module(modname), fname)()
    except BaseException as e:  # every failure, including Interrupted
        traceback.print_exc()
        sys.stderr.write("REASON: %s: %s\n" % (type(e).__name__, str(e).split("\n")[0]))
        sys.stderr.flush()
        return 1
    return 0


def reason_of(output):
    """The REASON line a failed test process printed, else its last line."""
    lines = [line for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("REASON: "):
            return line[len("REASON: "):]
    return lines[-1] if lines else "no output"


def run_all(tests, default_timeout):
    """Runs each test in its own process; returns (passed, failed)."""
    slow = float(os.environ.get("RL_TEST_SLOW", "1") or "1")
    passed = failed = 0
    for modname, fname, timeout in tests:
        name = "%s.%s" % (modname, fname)
        limit = (timeout or default_timeout) * slow
        env = dict(os.environ, RL_TEST_NAME=name)
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--one",
                                 "%s:%s" % (modname, fname)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        timed_out = False
        try:
            out, _ = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
        finally:
            # Anything the test left in its session (it should leave nothing).
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        elapsed = time.monotonic() - t0
        out = out.decode(errors="replace")
        if proc.returncode == 0 and not timed_out:
            passed += 1
            print("ok   %s (%.2fs)" % (name, elapsed), flush=True)
            continue
        failed += 1
        why = "timed out after %.0fs" % limit if timed_out else reason_of(out)
        print("FAIL %s (%.2fs): %s" % (name, elapsed, why), flush=True)
        for line in out.splitlines()[-40:]:
            print("    | " + line)
        sys.stdout.flush()
    return passed, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", action="append", default=[],
                    help="run only tests whose name contains this (repeatable)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                    help="per-test timeout in seconds unless the test sets one")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return run_one(args.one)
    if not os.environ.get("RL_TEST_LOGDIR"):
        os.environ["RL_TEST_LOGDIR"] = tempfile.mkdtemp(prefix="rl-logs-")
    try:
        tests = discover()
    except Exception:
        traceback.print_exc()
        print("0 passed, 1 failed")
        return 1
    if args.k:
        tests = [t for t in tests if any(k in "%s.%s" % t[:2] for k in args.k)]
    if args.list:
        for t in tests:
            print("%s.%s" % t[:2])
        return 0
    if not tests:
        print("no tests found")
        print("0 passed, 1 failed")
        return 1
    print("ratelimitd logs: %s" % os.environ["RL_TEST_LOGDIR"], flush=True)
    passed, failed = run_all(tests, args.timeout)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
