"""SIGHUP reloads: no request fails during a reload every 100 ms, counters
of unchanged policies carry on, an invalid file or a restart-only change
is refused (logged and counted) and the running config stays, requests in
flight finish on the config they started with."""

import copy
import json
import shutil
import signal
import tempfile
import threading
import time

from harness import (SLOW, Client, check, config, eq, limit, metric, policy, reload_config,
                     rewrite_config, scrape, service, wait_until)


def _cfg(b_requests):
    return config(
        policy("steady", "/steady/*", [limit(300, "1h", "fixed_window")], key=["tenant"]),
        policy("changing", "/changing/*", [limit(b_requests, "1h", "fixed_window")],
               key=["tenant"]),
        workers=2, store={"timeout_ms": 2000})


def _keep_store(svc, cfg):
    """cfg with the running daemon's store section (a store change is
    refused by a reload)."""
    cfg = copy.deepcopy(cfg)
    cfg["store"] = copy.deepcopy(svc.d.config["store"])
    return cfg


def _reload_storm(store):
    """Clients send 900 decisions to "steady" (300 per hour) and some to
    "changing" while the file is rewritten (its "changing" limit flips
    between 50 and 60) and SIGHUP sent every 100 ms. Every request must be
    answered 200 with a verdict the store made, and "steady" must admit
    exactly 300: its key never changed, so its count carried on through
    every reload."""
    with service(_cfg(50), store) as svc:
        stop = threading.Event()
        errors = []
        results = {"steady": [], "changing": []}
        lock = threading.Lock()

        def client(n):
            c = Client(svc.port)
            try:
                for i in range(150):
                    which = "steady" if i % 3 else "changing"
                    if which == "changing":
                        body = {"path": "/changing/x", "tenant": "t%d" % n}
                    else:
                        body = {"path": "/steady/x", "tenant": "shared"}
                    r = c.decide(**body)
                    if r.status != 200 or r.json.get("degraded"):
                        errors.append((r.status, r.body[:200]))
                        continue
                    with lock:
                        results[which].append(r.json["allowed"])
            except Exception as e:  # reported below
                errors.append(repr(e))
            finally:
                c.close()

        reloads = [0]

        def reloader():
            flip = 0
            while not stop.is_set():
                flip ^= 1
                rewrite_config(svc.d, _keep_store(svc, _cfg(60 if flip else 50)))
                svc.d.signal(signal.SIGHUP)
                reloads[0] += 1
                time.sleep(0.1)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(9)]
        rt = threading.Thread(target=reloader)
        rt.start()
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Keep reloading for at least 2 s in all, even on a fast machine.
        while time.monotonic() - t0 < 2.0:
            time.sleep(0.05)
        stop.set()
        rt.join()
        check(not errors, "%d requests failed during reloads, e.g. %r" % (len(errors), errors[:3]))
        eq(len(results["steady"]), 900, "steady decisions answered")
        eq(sum(results["steady"]), 300, "steady admitted across %d reloads" % reloads[0])
        m = wait_until(lambda: (lambda s: s if metric(s, "ratelimitd_config_reloads_total",
                                                      result="ok") >= reloads[0] else None)(
            scrape(svc.d)), 5 * SLOW, what="every reload counted")
        eq(metric(m, "ratelimitd_config_reloads_total", result="failed"), 0, "failed reloads")
        check(reloads[0] >= 15, "only %d reloads happened" % reloads[0])
        eq(metric(m, "ratelimitd_decisions_total", policy="steady", verdict="allowed"), 300,
           "steady/allowed in /metrics (counted across reloads)")


def test_reload_storm_redis():
    _reload_storm("redis")


def test_reload_storm_memory():
    _reload_storm("memory")


test_reload_storm_redis.timeout = 90
test_reload_storm_memory.timeout = 90


def test_reload_applies_new_policies():
    """A reload that adds a policy, changes a limit and removes a policy
    takes effect for the next request; /v1/policies is not needed."""
    cfg = config(policy("a", "/a/*", [limit(1, "1h", "fixed_window")], key=["tenant"]),
                 workers=2)
    with service(cfg, "redis") as svc:
        eq(svc.verdict(path="/a/x", tenant="t")["allowed"], True, "first")
        eq(svc.verdict(path="/a/x", tenant="t")["allowed"], False, "second (1 per hour)")
        eq(svc.verdict(path="/b/x", tenant="t")["policy"], None, "no policy b yet")
        new = config(policy("a", "/a/*", [limit(3, "1h", "fixed_window")], key=["tenant"]),
                     policy("b", "/b/*", [limit(1, "1h")], key=["tenant"]), workers=2)
        eq(reload_config(svc.d, _keep_store(svc, new)), "ok", "reload result")
        # Same algorithm and period: the same key, so the count (1) carries on.
        v = svc.verdict(path="/a/x", tenant="t")
        eq((v["allowed"], v["limit"], v["remaining"]), (True, 3, 1), "a after raising its limit")
        eq(svc.verdict(path="/b/x", tenant="t")["policy"], "b", "policy b after the reload")
        eq(reload_config(svc.d, _keep_store(svc, config(workers=2))), "ok",
           "reload removing every policy")
        eq(svc.verdict(path="/a/x", tenant="t")["policy"], None, "a removed")
        m = scrape(svc.d)
        eq(metric(m, "ratelimitd_config_generation"), 3, "generation after two reloads")


def test_invalid_reload_keeps_running_config():
    """A broken file, an invalid one and one that changes the store are each
    refused: logged with the reason, counted as failed, and the running
    config keeps deciding."""
    cfg = config(policy("a", "/a/*", [limit(2, "1h", "fixed_window")], key=["tenant"]))
    with service(cfg, "redis") as svc:
        hash0 = [k for k in scrape(svc.d)["ratelimitd_config_info"]][0]
        eq(svc.verdict(path="/a/x", tenant="t")["remaining"], 1, "before")

        with open(svc.d.conf_path, "w") as f:
            f.write('{"policies": [')
        eq(reload_config(svc.d), "failed", "JSON syntax error")

        bad = copy.deepcopy(svc.d.config)
        bad["policies"][0]["limits"][0]["per"] = "5x"
        eq(reload_config(svc.d, bad), "failed", "invalid duration")

        moved = copy.deepcopy(svc.d.config)
        moved["store"]["timeout_ms"] = 77
        eq(reload_config(svc.d, moved), "failed", "store change")

        v = svc.verdict(path="/a/x", tenant="t")
        eq((v["policy"], v["remaining"]), ("a", 0), "the old config still decides")
        m = scrape(svc.d)
        eq(metric(m, "ratelimitd_config_reloads_total", result="failed"), 3, "failed reloads")
        eq(metric(m, "ratelimitd_config_reloads_total", result="ok"), 0, "ok reloads")
        eq([k for k in m["ratelimitd_config_info"]][0], hash0, "config hash unchanged")
        log = svc.d.stderr()
        check("configuration reload failed" in log, "no reload failure logged:\n" + log)
        check('policies[0].limits[0].per: \\"5x\\" is not a duration' in log,
              "the validation error is not in the log:\n" + log)
        check("store: changed; this section takes effect only on a restart" in log,
              "the store change is not explained:\n" + log)
        for line in log.splitlines():
            json.loads(line)

        # A valid file afterwards is accepted.
        eq(reload_config(svc.d, svc.d.config), "ok", "valid file after failures")


def test_reload_changing_listener_tls_is_refused():
    """The listener's TLS context is built once at start: a reload that
    turns TLS on (valid certificate and key files) is refused like the
    other restart-only sections, logged naming "tls", counted as failed,
    and the running config keeps answering over plain HTTP."""
    from test_tls import make_pki

    cfg = config(policy("a", "/a/*", [limit(2, "1h", "fixed_window")], key=["tenant"]))
    d = tempfile.mkdtemp(prefix="rl-reload-tls-")
    try:
        pki = make_pki(d)
        with service(cfg, "memory") as svc:
            eq(svc.verdict(path="/a/x", tenant="t")["remaining"], 1, "before")
            tls = copy.deepcopy(svc.d.config)
            tls["tls"] = {"cert_file": pki["server.pem"], "key_file": pki["server.key"]}
            eq(reload_config(svc.d, tls), "failed", "reload turning listener TLS on")
            tls["tls"]["min_version"] = "1.3"
            eq(reload_config(svc.d, tls), "failed", "reload with TLS 1.3")

            v = svc.verdict(path="/a/x", tenant="t")
            eq((v["policy"], v["remaining"]), ("a", 0), "the old config still decides")
            m = scrape(svc.d)
            eq(metric(m, "ratelimitd_config_reloads_total", result="failed"), 2,
               "failed reloads")
            eq(metric(m, "ratelimitd_config_reloads_total", result="ok"), 0, "ok reloads")
            log = svc.d.stderr()
            check("tls: changed; this section takes effect only on a restart" in log,
                  "the tls change is not explained:\n" + log)
            eq(reload_config(svc.d, svc.d.config), "ok", "the unchanged file again")
    finally:
        shutil.rmtree(d, ignore_errors=True)


test_reload_changing_listener_tls_is_refused.timeout = 60


def test_in_flight_request_finishes_on_its_config():
    """A decision waiting on a slow Redis while a reload removes its policy
    is answered by the policy it started with."""
    cfg = config(policy("old", "/*", [limit(5, "1h", "fixed_window")], key=["tenant"]),
                 workers=1, store={"timeout_ms": 3000})
    with service(cfg, "redis") as svc:
        svc.verdict(path="/x", tenant="warm")
        result = {}

        def slow_request():
            c = Client(svc.port)
            try:
                result["r"] = c.decide(path="/x", tenant="t")
            finally:
                c.close()

        blocker = threading.Thread(target=lambda: svc.redis.call("DEBUG", "SLEEP", "1"))
        blocker.start()
        time.sleep(0.1)
        t = threading.Thread(target=slow_request)
        t.start()
        time.sleep(0.2)
        rewrite_config(svc.d, _keep_store(svc, config(
            policy("new", "/*", [limit(1, "1h")], key=["user"]), workers=1)))
        svc.d.signal(signal.SIGHUP)
        t.join(10)
        blocker.join(10)
        r = result.get("r")
        check(r is not None, "the in-flight request got no reply")
        eq(r.status, 200, "in-flight reply status")
        eq((r.json["policy"], r.json["allowed"], r.json["degraded"]), ("old", True, False),
           "in-flight request decided by the config it started with")
        v = svc.verdict(path="/x", user="u")
        eq(v["policy"], "new", "the next request uses the new config")
