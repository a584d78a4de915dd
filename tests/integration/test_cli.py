"""Command line: --check-config, refusing bad configs, --listen, --version,
--help, JSON-lines logs, and graceful stop on SIGTERM/SIGINT."""

import json
import os
import signal
import socket
import tempfile
import threading
import time

from harness import (EXAMPLE, SLOW, Ratelimitd, check, config, eq, free_port, limit,
                     policy, run_binary, service, wait_until)


def _write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text if isinstance(text, str) else json.dumps(text))
    return path


def _pol(name="api", **over):
    p = {"name": name, "match": {"path": "/*"}, "limits": [{"requests": 1, "per": "1s"}]}
    p.update(over)
    return p


# (config, text that stderr must contain)
BAD = [
    ({"policies": [_pol("a"), _pol("b"), _pol("c", limits=[{"requests": 1, "per": "5x"}])]},
     'policies[2].limits[0].per: "5x" is not a duration'),
    ({"policies": [{"match": {"path": "/*"}, "limits": [{"requests": 1, "per": "1s"}]}]},
     "policies[0].name: is required"),
    ({"store": {"timeout_ms": 0}, "policies": []},
     "store.timeout_ms: must be an integer from 1 to 60000"),
    ({"policies": [_pol("api"), _pol("api")]}, 'policies[1].name: "api" is used by policies[0]'),
    ({"policies": [_pol("api", limts=[])]}, "policies[0].limts: unknown field"),
    ({"polices": []}, "polices: unknown field"),
    ({"policies": [_pol("api", key=["path.site"])]}, "policies[0].key[0]"),
    ({"policies": [_pol("api", limits=[{"requests": 1, "per": "1s", "algorithm": "leaky"}])]},
     "policies[0].limits[0].algorithm"),
    ({"policies": [_pol("api", limits=[{"requests": 1, "per": "1s",
                                        "algorithm": "fixed_window", "burst": 2}])]},
     "policies[0].limits[0].burst"),
    ({"policies": [_pol("api", limits=[{"requests": 0, "per": "1s"}])]},
     "policies[0].limits[0].requests"),
    ({"policies": [_pol("api", limits={})]}, "policies[0].limits"),
    ({"policies": [_pol("api", headers="x-fancy")]}, "policies[0].headers"),
    ({"policies": [_pol("api", failure_mode="maybe")]}, "policies[0].failure_mode"),
    ({"policies": [_pol("api", match={"path": "no-slash"})]}, "policies[0].match.path"),
    ({"policies": [_pol("api", test={"header": "t", "value": "v",
                                     "limits": [{"requests": 1, "per": "soon"}]})]},
     "policies[0].test.limits[0].per"),
    ({"listen": "127.0.0.1:99999", "policies": []}, "listen"),
    ({"store": {"type": "disk"}, "policies": []}, "store.type"),
    ({}, "policies"),
]


def test_check_config_example_ok():
    """The example configuration, as shipped, validates."""
    rc, out, err = run_binary(["--check-config", EXAMPLE])
    eq(rc, 0, "exit code (stderr %r)" % err)
    check("%s: ok" % EXAMPLE in out + err, "no '%s: ok' in %r" % (EXAMPLE, out + err))


def test_check_config_errors():
    """Each bad config: exit 1 and the error naming the JSON path."""
    with tempfile.TemporaryDirectory() as tmp:
        for i, (cfg, expect) in enumerate(BAD):
            path = _write(tmp, "bad%d.json" % i, cfg)
            rc, out, err = run_binary(["--check-config", path])
            eq(rc, 1, "exit code for %s" % json.dumps(cfg))
            check(expect in err, "stderr for %s: expected %r in %r" % (json.dumps(cfg), expect, err))
            check(": ok" not in out, "stdout says ok for a bad file: %r" % out)
        path = _write(tmp, "syntax.json", '{\n  "policies": [}\n')
        rc, out, err = run_binary(["--check-config", path])
        eq(rc, 1, "exit code for a JSON syntax error")
        check("line 2" in err, "syntax error should name line 2: %r" % err)
        missing = os.path.join(tmp, "absent.json")
        rc, out, err = run_binary(["--check-config", missing])
        eq(rc, 1, "exit code for a missing file")
        check("cannot read" in err and "absent.json" in err, "missing file error: %r" % err)


def test_refuses_to_start_on_bad_config():
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, "bad.json", BAD[0][0])
        port = free_port()
        rc, out, err = run_binary(["-c", path, "--listen", "127.0.0.1:%d" % port], timeout=10)
        check(rc != 0, "exit code %d for a bad config" % rc)
        check(BAD[0][1] in err, "stderr %r does not name the error" % err)


def test_version_and_help():
    rc, out, err = run_binary(["--version"])
    eq(rc, 0, "--version exit code")
    check("ratelimitd" in out and any(c.isdigit() for c in out), "--version output %r" % out)
    rc, out, err = run_binary(["--help"])
    eq(rc, 0, "--help exit code")
    for opt in ("-c", "--check-config", "--listen", "-v"):
        check(opt in out + err, "--help does not mention %s" % opt)
    rc, out, err = run_binary(["--no-such-option"])
    check(rc != 0, "an unknown option exits non-zero")


def test_listen_overrides_config():
    """--listen wins over the config's "listen"."""
    config_port = free_port()
    cfg = config(policy("p", "/*", [limit(1, "1m")]), listen="127.0.0.1:%d" % config_port)
    with service(cfg, "memory") as svc:
        check(svc.port != config_port, "ports differ")
        eq(svc.request("GET", "/health").status, 200, "/health on the --listen port")
        try:
            socket.create_connection(("127.0.0.1", config_port), timeout=1).close()
            refused = False
        except OSError:
            refused = True
        check(refused, "the config's port %d is listening too" % config_port)


def test_logs_are_json_lines():
    """Every line ratelimitd writes to stderr is a JSON object with ts,
    level and msg (with -v as well)."""
    cfg = config(policy("p", "/*", [limit(1, "1m")]))
    with service(cfg, "redis", extra_args=["-v"]) as svc:
        svc.verdict(path="/x")
        svc.verdict(path="/x")
        svc.request("POST", "/v1/decide", body=b"{bad",
                    headers={"Content-Type": "application/json"})
        d = svc.d
    with open(d.log_path, errors="replace") as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    check(lines, "ratelimitd logged nothing")
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError("log line is not JSON: %r" % line)
        check(isinstance(obj, dict) and {"ts", "level", "msg"} <= set(obj),
              "log line lacks ts/level/msg: %r" % line)
        check(obj["level"] in ("debug", "info", "warn", "error"), "level in %r" % line)


def test_sigterm_finishes_in_flight():
    """SIGTERM while decisions wait on a (sleeping) Redis: they complete
    with real verdicts, no new connection is accepted, and the exit code
    is 0."""
    cfg = config(policy("p", "/*", [limit(100, "1m")]), store={"timeout_ms": 5000})
    with service(cfg, "redis") as svc:
        d = svc.d
        wait_until(lambda: d.request("GET", "/ready", timeout=2.0).status == 200,
                   5.0 * SLOW, what="/ready")
        eq(svc.verdict(path="/w")["allowed"], True, "warm-up decision")
        results = []

        def one():
            try:
                results.append(d.request("POST", "/v1/decide", json_body={"path": "/w"}))
            except Exception as e:  # recorded and asserted below
                results.append(e)
        blocker = svc.redis.client()
        try:
            blocker.send("DEBUG", "SLEEP", "1.0")
            time.sleep(0.05)
            threads = [threading.Thread(target=one) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.3)
            eq(len(results), 0, "replies before Redis woke up")
            d.signal(signal.SIGTERM)
            time.sleep(0.2)
            try:
                socket.create_connection(("127.0.0.1", d.port), timeout=1).close()
                accepted = True
            except OSError:
                accepted = False
            check(not accepted, "a new connection was accepted after SIGTERM")
            for t in threads:
                t.join(10 * SLOW)
            blocker.read()
        finally:
            blocker.close()
        eq(len(results), 4, "in-flight replies")
        for r in results:
            check(not isinstance(r, Exception), "in-flight request failed: %r" % r)
            eq(r.status, 200, "in-flight HTTP status")
            eq((r.json["allowed"], r.json["degraded"]), (True, False), "in-flight verdict")
        rc = d.wait(10 * SLOW)
        eq(rc, 0, "exit code after SIGTERM (stderr:\n%s)" % d.stderr())
        d.stop()


def test_sigint_exits_0():
    d = Ratelimitd(config(policy("p", "/*", [limit(1, "1m")])))
    try:
        d.start()
        d.signal(signal.SIGINT)
        eq(d.wait(10 * SLOW), 0, "exit code after SIGINT (stderr:\n%s)" % d.stderr())
        d.stop()
    finally:
        d.cleanup()


def test_second_instance_on_the_same_port_refused():
    """A second ratelimitd on an address a first one serves (its HTTP
    port, or its gRPC port) exits 1 saying the address is in use: with
    SO_REUSEPORT it would silently take a share of the connections (with
    the memory store, its own counts). The first keeps serving."""
    grpc_port = free_port()
    cfg = config(policy("p", "/*", [limit(1, "1m")]))
    cfg["grpc"] = {"listen": "127.0.0.1:%d" % grpc_port}
    with service(cfg, "memory") as svc:
        with tempfile.TemporaryDirectory() as tmp:
            path = _write(tmp, "c.json", dict(cfg, store={"type": "memory"}))
            for listen, what in (("127.0.0.1:%d" % svc.port, "listen"),
                                 ("127.0.0.1:%d" % free_port(), "grpc.listen")):
                rc, _, err = run_binary(["-c", path, "--listen", listen], timeout=10)
                eq(rc, 1, "exit code of a second instance (%s)" % what)
                check("%s: cannot listen on 127.0.0.1:" % what in err and
                      "another process listens there" in err,
                      "the error says why: %r" % err[-400:])
        eq(svc.request("GET", "/health").status, 200, "the first still serves")
