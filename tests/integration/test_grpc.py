"""Envoy's rate-limit service over gRPC (issue 14): ShouldRateLimit on
descriptor policies, Health/Check, the gRPC framing errors, deadlines,
store failures and exactness across two processes. The client is
grpc_client.py under /usr/bin/python3 (Debian's python3-grpcio)."""

import hashlib
import json
import os
import select
import socket
import subprocess
import tempfile
import time

from harness import (SLOW, Ratelimitd, Redis, between, check, config, eq, free_port, metric,
                     reload_config, scrape,
                     service, store_config, wait_until, wait_window_start)

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
CLIENT = os.path.join(HERE, "grpc_client.py")
RLS_PATH = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
LOGIN = [["remote_address", "10.0.0.9"], ["path", "/login"]]


def rpc(*ops):
    """Runs the operations through grpc_client.py; their results."""
    p = subprocess.run([PYTHON, CLIENT], input=json.dumps(list(ops)).encode(),
                       capture_output=True, timeout=120 * SLOW)
    check(p.returncode == 0, "grpc_client.py failed:\n%s" % p.stderr.decode()[-3000:])
    return [json.loads(line) for line in p.stdout.decode().splitlines()]


def desc(entries, hits=None, lim=None):
    out = {"entries": entries}
    if hits is not None:
        out["hits_addend"] = hits
    if lim is not None:
        out["limit"] = lim
    return out


def dpolicy(name, domain, entries, key, limits, **extra):
    """A descriptor policy: entries [(key, value or None)]."""
    d = [{"key": k} if v is None else {"key": k, "value": v} for k, v in entries]
    out = {"name": name, "match": {"domain": domain, "descriptor": d}, "key": key,
           "limits": limits}
    out.update(extra)
    return out


def fixed(n, per="1m"):
    return [{"requests": n, "per": per, "algorithm": "fixed_window"}]


def grpc_cfg(*policies, grpc=None, **top):
    cfg = config(*policies, **top)
    cfg["grpc"] = dict(grpc or {})
    cfg["grpc"]["listen"] = "127.0.0.1:%d" % free_port()
    return cfg


def target(cfg):
    return cfg["grpc"]["listen"]


def call(cfg, descriptors, domain="edge", **kw):
    op = {"op": "rls", "target": target(cfg), "domain": domain, "descriptors": descriptors}
    op.update(kw)
    return op


LOGIN_POLICY = dpolicy("login", "edge", [("remote_address", None), ("path", "/login")],
                       ["descriptor.remote_address"], fixed(3), headers="x-ratelimit",
                       deny={"status": 429, "body": {"error": "slow down",
                                                     "retry": "{retry_after}"}})


def test_grpc_allow_and_over_limit():
    """3/min: three OK with remaining 2, 1, 0 and the x-ratelimit headers
    (also on OK), then OVER_LIMIT with the deny body as raw_body; both
    stores. Health is SERVING."""
    for store in ("memory", "redis"):
        cfg = grpc_cfg(LOGIN_POLICY, workers=2)
        with service(cfg, store):
            res = rpc(*([call(cfg, [desc(LOGIN)])] * 4),
                      {"op": "health", "target": target(cfg)})
            for i in range(3):
                r = res[i]
                eq(r["overall"], "OK", "%s call %d overall (%r)" % (store, i, r))
                st = r["statuses"][0]
                eq((st["code"], st["remaining"], st["limit"]),
                   ("OK", 2 - i, {"name": "login", "requests_per_unit": 3, "unit": "MINUTE"}),
                   "%s call %d status" % (store, i))
                check(0 < st["reset_ms"] <= 60000, "reset %r" % st)
                eq(r["headers"].get("x-ratelimit-remaining"), str(2 - i), "remaining header")
                eq(r["raw_body"], "", "no raw_body on OK")
            r = res[3]
            eq((r["overall"], r["statuses"][0]["code"]), ("OVER_LIMIT", "OVER_LIMIT"),
               "%s 4th call" % store)
            body = json.loads(r["raw_body"])
            eq(body["error"], "slow down", "raw_body is the deny body")
            check(body["retry"].isdigit() and int(body["retry"]) >= 1, "templated %r" % body)
            check("retry-after" in r["headers"], "retry-after header %r" % r["headers"])
            eq(res[4], {"status": "SERVING"}, "health")


def test_grpc_hits_addend():
    """Request hits_addend 0 counts 1 (proto3 cannot tell it from unset),
    5 counts 5; a descriptor's own hits_addend wins, and its 0 peeks."""
    pol = dpolicy("k", "edge", [("user", None)], ["descriptor.user"], fixed(20))
    u = [["user", "u1"]]
    for store in ("memory", "redis"):
        cfg = grpc_cfg(pol)
        _hits_scenario(cfg, store, u)


def _hits_scenario(cfg, store, u):
    """The costs of test_grpc_hits_addend on one store."""
    with service(cfg, store):
        res = rpc(call(cfg, [desc(u)], hits_addend=0), call(cfg, [desc(u)], hits_addend=1),
                  call(cfg, [desc(u)], hits_addend=5), call(cfg, [desc(u, hits=2)], hits_addend=5),
                  call(cfg, [desc(u, hits=0)], hits_addend=5),
                  call(cfg, [desc(u, hits=0)]), call(cfg, [desc(u, hits=12)]),
                  call(cfg, [desc(u, hits=0)]))
        eq([r["statuses"][0]["remaining"] for r in res], [19, 18, 13, 11, 11, 11, 11, 11],
           "%s: remaining after costs 1, 1, 5, 2, peek, peek, 12 (denied), peek" % store)
        eq([r["overall"] for r in res], ["OK"] * 6 + ["OVER_LIMIT", "OK"], "%s: codes" % store)


def test_grpc_descriptors_are_layers():
    """Two descriptors of one request are one atomic decision: when one is
    over, the call is over and nothing is spent on the other; an unmatched
    descriptor is OK without current_limit; an unknown domain matches
    nothing."""
    a = dpolicy("account", "edge", [("account", None)], ["descriptor.account"], fixed(10))
    r = dpolicy("route", "edge", [("account", None), ("route", None)],
                ["descriptor.account", "descriptor.route"], fixed(2))
    cfg = grpc_cfg(a, r)
    acc, route = [["account", "a1"]], [["account", "a1"], ["route", "/x"]]
    with service(cfg, "redis"):
        res = rpc(call(cfg, [desc(acc), desc(route)]), call(cfg, [desc(acc), desc(route)]),
                  call(cfg, [desc(acc), desc(route), desc([["other", "v"]])]),
                  call(cfg, [desc(acc, hits=0)]),
                  call(cfg, [desc(acc)], domain="nowhere"))
        eq([s["remaining"] for s in res[1]["statuses"]], [8, 0], "after two calls")
        third = res[2]
        eq(third["overall"], "OVER_LIMIT", "route over: overall")
        eq([s["code"] for s in third["statuses"]], ["OK", "OVER_LIMIT", "OK"], "statuses")
        check("limit" not in third["statuses"][2], "unmatched: no current_limit %r" % third)
        eq(res[3]["statuses"][0]["remaining"], 8, "the denial spent nothing on the account")
        eq(res[4]["overall"], "OK", "unknown domain")
        check("limit" not in res[4]["statuses"][0], "unknown domain: no current_limit")
        # Per-descriptor costs in one step: 3 from the account, 1 from the route.
        r = rpc(call(cfg, [desc([["account", "a2"]], hits=3),
                           desc([["account", "a2"], ["route", "/y"]])]))[0]
        eq([s["remaining"] for s in r["statuses"]], [7, 1], "per-descriptor costs")


def test_grpc_only_the_denying_descriptor_is_over():
    """Policy small (3/min per k): k=a spent to its limit, then one call
    with [k=b], [k=a], [zz=a]: overall OVER_LIMIT, but only k=a's status
    is OVER_LIMIT; the fresh k=b reads OK with its 3 remaining (nothing
    was spent, the call being atomic), the unmatched one OK; both
    stores."""
    pol = dpolicy("small", "t", [("k", None)], ["descriptor.k"], fixed(3))
    for store in ("memory", "redis"):
        cfg = grpc_cfg(pol)
        with service(cfg, store):
            res = rpc(call(cfg, [desc([["k", "a"]], hits=3)], domain="t"),
                      call(cfg, [desc([["k", "b"]]), desc([["k", "a"]]), desc([["zz", "a"]])],
                           domain="t"))
            eq(res[0]["statuses"][0]["remaining"], 0, "%s: k=a at its limit" % store)
            r = res[1]
            eq(r["overall"], "OVER_LIMIT", "%s: the call is denied" % store)
            eq([s["code"] for s in r["statuses"]], ["OK", "OVER_LIMIT", "OK"],
               "%s: per-descriptor codes (%r)" % (store, r))
            eq(r["statuses"][0]["remaining"], 3, "%s: k=b's own remaining" % store)


def test_grpc_overrides_by_descriptor_value():
    """A config override keyed by a descriptor value raises one client's
    limit; an admin override does too, for another value."""
    pol = dpolicy("ip", "edge", [("remote_address", None)], ["descriptor.remote_address"],
                  fixed(1), overrides=[{"key": {"descriptor.remote_address": "10.0.0.1"},
                                        "limits": fixed(3)}])
    key = "k" * 32
    cfg = grpc_cfg(pol, admin={"enabled": True,
                               "key_sha256": hashlib.sha256(key.encode()).hexdigest()})
    with service(cfg, "memory") as svc:
        r = svc.request("PUT", "/v1/admin/overrides",
                        headers={"Authorization": "Bearer " + key},
                        json_body={"policy": "ip", "key": {"descriptor.remote_address": "10.0.0.2"},
                                   "limits": fixed(2)})
        eq(r.status, 200, "admin PUT (%r)" % r.body[:200])
        time.sleep(1.2 * SLOW)
        ops = []
        for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
            ops += [call(cfg, [desc([["remote_address", ip]])])] * 4
        codes = [r["overall"] for r in rpc(*ops)]
        eq(codes[0:4], ["OK"] * 3 + ["OVER_LIMIT"], "config override: 3")
        eq(codes[4:8], ["OK"] * 2 + ["OVER_LIMIT"] * 2, "admin override: 2")
        eq(codes[8:12], ["OK"] + ["OVER_LIMIT"] * 3, "default: 1")


def test_grpc_descriptor_limit():
    """A descriptor's own limit is ignored by default and replaces the
    policy's limits with descriptor_limits: true."""
    pol = dpolicy("d", "edge", [("user", None)], ["descriptor.user"], fixed(1))
    lim = {"requests_per_unit": 2, "unit": 2}  # 2 per MINUTE
    for on, want in ((False, ["OK", "OVER_LIMIT", "OVER_LIMIT"]),
                     (True, ["OK", "OK", "OVER_LIMIT"])):
        cfg = grpc_cfg(pol, grpc={"descriptor_limits": on})
        with service(cfg, "memory"):
            res = rpc(*([call(cfg, [desc([["user", "u"]], lim=lim)])] * 3))
            eq([r["overall"] for r in res], want, "descriptor_limits %s" % on)
            if on:
                eq(res[0]["statuses"][0]["limit"]["requests_per_unit"], 2, "current_limit")


def test_grpc_framing_errors():
    """Malformed protobuf and a message over max_message_bytes answer
    INVALID_ARGUMENT, an unknown method UNIMPLEMENTED; counted in
    /metrics."""
    cfg = grpc_cfg(LOGIN_POLICY, grpc={"max_message_bytes": 256})
    t = target(cfg)
    big = "0a" + "e807" + "61" * 1000  # domain of 1000 bytes
    with service(cfg, "memory") as svc:
        res = rpc({"op": "raw", "target": t, "path": RLS_PATH, "body_hex": "0aff"},
                  {"op": "raw", "target": t, "path": RLS_PATH, "body_hex": big},
                  {"op": "raw", "target": t, "path": "/envoy.service.ratelimit.v3.X/Y"},
                  {"op": "raw", "target": t,
                   "path": "/envoy.service.ratelimit.v3.RateLimitService/Nope"},
                  call(cfg, [desc(LOGIN)]))
        eq([r.get("error") for r in res[:4]],
           ["INVALID_ARGUMENT", "INVALID_ARGUMENT", "UNIMPLEMENTED", "UNIMPLEMENTED"],
           "statuses (%r)" % res)
        eq(res[4]["overall"], "OK", "a good call on the same service")
        m = scrape(svc.d)
        eq(metric(m, "ratelimitd_grpc_calls_invalid_argument_total"), 2, "invalid metric")
        eq(metric(m, "ratelimitd_grpc_calls_unimplemented_total"), 2, "unimplemented metric")
        eq(metric(m, "ratelimitd_grpc_calls_ok_total"), 1, "ok metric")
        check(metric(m, "ratelimitd_grpc_duration_seconds_count") >= 5, "latency histogram")


def encode(op):
    """The length-prefixed gRPC message of op's RateLimitRequest."""
    p = subprocess.run([PYTHON, CLIENT, "--encode"], input=json.dumps(op).encode(),
                       capture_output=True, timeout=60 * SLOW, check=True)
    msg = bytes.fromhex(p.stdout.decode().strip())
    return b"\0" + len(msg).to_bytes(4, "big") + msg


def nghttp_call(cfg, body, timeout_header, path=None):
    """One ShouldRateLimit (or the call at path) by nghttp (no client-side
    deadline: what the server answers by itself), with grpc-timeout
    timeout_header; its verbose output."""
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(body)
    try:
        p = subprocess.run(["nghttp", "-v", "-H", "content-type: application/grpc",
                            "-H", "te: trailers", "-H", "grpc-timeout: " + timeout_header,
                            "-d", f.name, "http://%s%s" % (target(cfg), path or RLS_PATH)],
                           capture_output=True, timeout=30 * SLOW)
    finally:
        os.unlink(f.name)
    return p.stdout.decode(errors="replace")


def test_grpc_deadline_while_redis_paused():
    """grpc-timeout 300m while Redis is paused for 2 s: the server itself
    answers DEADLINE_EXCEEDED (grpc-status 4, counted in /metrics) and
    drops the late result; afterwards calls are answered again."""
    cfg = grpc_cfg(LOGIN_POLICY, store={"timeout_ms": 5000})
    body = encode(call(cfg, [desc(LOGIN)]))
    with service(cfg, "redis") as svc:
        # The three calls must share one 1-minute window for the count below.
        wait_window_start(svc, 60, 6 * SLOW)
        eq(rpc(call(cfg, [desc(LOGIN)]))[0]["overall"], "OK", "before the pause")
        svc.redis.call("CLIENT", "PAUSE", "2000")
        t0 = time.monotonic()
        out = nghttp_call(cfg, body, "300m")
        took = time.monotonic() - t0
        check("grpc-status: 4" in out, "DEADLINE_EXCEEDED from the server:\n%s" % out[-2000:])
        check(took < 1.8, "answered at the deadline, not after the pause (%.2f s)" % took)
        eq(metric(scrape(svc.d), "ratelimitd_grpc_calls_deadline_exceeded_total"), 1,
           "deadline metric")
        time.sleep(2.0)
        r = rpc(call(cfg, [desc(LOGIN)]))[0]
        eq(r["overall"], "OK", "after the pause (%r)" % r)
        # It reached Redis before its deadline, so Redis decided it after the
        # pause: three spends (before, late, this one) leave nothing.
        eq(r["statuses"][0]["remaining"], 0, "the late call was decided too (%r)" % r)
        check("grpc-status: 0" in nghttp_call(cfg, body, "10S"), "a call with a long timeout")


def test_grpc_watch_ends_at_its_deadline():
    """A Health/Watch with grpc-timeout 700m (nghttp: no client-side
    deadline) is sent SERVING at once, then ended by the server itself
    with DEADLINE_EXCEEDED at the deadline (counted in /metrics)."""
    cfg = grpc_cfg(LOGIN_POLICY)
    with service(cfg, "memory") as svc:
        t0 = time.monotonic()
        out = nghttp_call(cfg, b"\0\0\0\0\0", "700m", path="/grpc.health.v1.Health/Watch")
        took = time.monotonic() - t0
        check("recv DATA frame <length=7" in out, "the SERVING message (08 01):\n%s" % out[-2000:])
        check("grpc-status: 4" in out, "DEADLINE_EXCEEDED from the server:\n%s" % out[-2000:])
        between(took, 0.6, 5.0 * SLOW, "the stream ended at its deadline (s)")
        eq(metric(scrape(svc.d), "ratelimitd_grpc_calls_deadline_exceeded_total"), 1,
           "deadline metric")


def test_grpc_health_and_store_down():
    """Health follows the store; with Redis down failure_mode decides
    (open: OK, closed: OVER_LIMIT), or store_failure "unavailable" fails
    the call with UNAVAILABLE."""
    op = dpolicy("open", "edge", [("o", None)], ["descriptor.o"], fixed(5), failure_mode="open")
    cl = dpolicy("closed", "edge", [("c", None)], ["descriptor.c"], fixed(5),
                 failure_mode="closed")
    redis = Redis().start()
    try:
        for unavailable in (False, True):
            cfg = grpc_cfg(op, cl, store={"timeout_ms": 200},
                           grpc={"store_failure": "unavailable" if unavailable
                                 else "failure_mode"})
            cfg["store"] = store_config("redis", redis, cfg["store"])
            d = Ratelimitd(cfg).start()
            try:
                t = target(cfg)
                eq(rpc({"op": "health", "target": t})[0], {"status": "SERVING"}, "up")
                redis.stop()
                wait_until(lambda: rpc({"op": "health", "target": t})[0] ==
                           {"status": "NOT_SERVING"}, 10 * SLOW, what="NOT_SERVING")
                res = rpc(call(cfg, [desc([["o", "x"]])]), call(cfg, [desc([["c", "x"]])]))
                if unavailable:
                    eq([r.get("error") for r in res], ["UNAVAILABLE"] * 2, "unavailable")
                else:
                    eq([r["overall"] for r in res], ["OK", "OVER_LIMIT"], "failure modes")
                redis.start()
                wait_until(lambda: rpc({"op": "health", "target": t})[0] ==
                           {"status": "SERVING"}, 10 * SLOW, what="SERVING again")
            finally:
                d.stop()
                d.cleanup()
    finally:
        redis.cleanup()


class _Watch:
    """A Health/Watch stream through grpc_client.py, read line by line."""

    def __init__(self, cfg, **op):
        op.update({"op": "watch", "target": target(cfg)})
        self.p = subprocess.Popen([PYTHON, CLIENT], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.p.stdin.write(json.dumps([op]).encode())
        self.p.stdin.close()

    def next(self, timeout):
        """The next line (a status or the end) as JSON, waiting timeout s."""
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        check(r, "no Watch message within %.0fs" % timeout)
        line = self.p.stdout.readline()
        if not line:
            self.close()
            check(False, "grpc_client.py ended:\n%s" % self.p.stderr.read().decode()[-3000:])
        return json.loads(line)

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(10)


def test_grpc_health_unknown_service():
    """Check: "" and the rate-limit service are SERVING, another name is
    NOT_FOUND; Watch of another name is sent SERVICE_UNKNOWN and stays
    open until cancelled (the gRPC health protocol); the NOT_FOUND is
    counted."""
    cfg = grpc_cfg(LOGIN_POLICY)
    with service(cfg, "memory") as svc:
        t = target(cfg)
        res = rpc({"op": "health", "target": t},
                  {"op": "health", "target": t,
                   "service": "envoy.service.ratelimit.v3.RateLimitService"},
                  {"op": "health", "target": t, "service": "nope"})
        eq(res[:2], [{"status": "SERVING"}] * 2, "known services")
        eq(res[2]["error"], "NOT_FOUND", "unknown service (%r)" % res[2])
        eq(metric(scrape(svc.d), "ratelimitd_grpc_calls_not_found_total"), 1,
           "NOT_FOUND counted")
        w = _Watch(cfg, service="nope", cancel_after=1)
        try:
            eq(w.next(30 * SLOW), {"watch": "SERVICE_UNKNOWN"}, "Watch of an unknown service")
            eq(w.next(10 * SLOW), {"end": "CANCELLED"}, "cancelled by the client")
        finally:
            w.close()


def test_grpc_health_watch_follows_store():
    """Watch sends SERVING at once, NOT_SERVING once Redis is stopped,
    SERVING once it is back; a second Watch cancelled by its client
    leaves the first alone; SIGTERM ends the stream with OK (after the
    GOAWAY) and the process exits 0."""
    redis = Redis().start()
    try:
        cfg = grpc_cfg(LOGIN_POLICY, workers=2, store={"timeout_ms": 200})
        cfg["store"] = store_config("redis", redis, cfg["store"])
        d = Ratelimitd(cfg).start()
        w = _Watch(cfg)
        other = _Watch(cfg, cancel_after=1)
        try:
            eq(w.next(30 * SLOW), {"watch": "SERVING"}, "first status")
            eq(other.next(30 * SLOW), {"watch": "SERVING"}, "second stream")
            eq(other.next(10 * SLOW), {"end": "CANCELLED"}, "second stream cancelled")
            redis.stop()
            eq(w.next(10 * SLOW), {"watch": "NOT_SERVING"}, "Redis stopped")
            redis.start()
            eq(w.next(15 * SLOW), {"watch": "SERVING"}, "Redis back")
            d.signal(15)
            eq(w.next(10 * SLOW), {"end": "OK"}, "the stream ends on shutdown")
            eq(d.wait(10 * SLOW), 0, "exit code")
        finally:
            w.close()
            other.close()
            d.stop()
            d.cleanup()
    finally:
        redis.cleanup()


def test_grpc_exact_two_processes():
    """Two processes on one Redis, 32 concurrent streams over 2
    connections to each: exactly the limit admitted."""
    # Per hour: a fixed window that rolls mid-hammer would admit twice.
    pol = dpolicy("x", "edge", [("k", None)], ["descriptor.k"], fixed(100, "1h"))
    redis = Redis().start()
    daemons = []
    try:
        targets = []
        for _ in range(2):
            cfg = grpc_cfg(pol, workers=2)
            cfg["store"] = store_config("redis", redis)
            daemons.append(Ratelimitd(cfg).start())
            targets.append(target(cfg))
        r = rpc({"op": "hammer", "targets": targets, "conns": 2, "streams": 32, "n": 300,
                 "domain": "edge", "descriptors": [desc([["k", "v"]])]})[0]
        eq(r["errors"], [], "no call failed")
        eq((r["ok"], r["over"]), (100, 200), "admitted exactly the limit")
    finally:
        for d in daemons:
            d.stop()
            d.cleanup()
        redis.cleanup()


def test_grpc_goaway_on_shutdown():
    """SIGTERM while calls are in flight (Redis paused): the calls are
    still answered, then the process exits 0."""
    cfg = grpc_cfg(LOGIN_POLICY, store={"timeout_ms": 5000})
    with service(cfg, "redis") as svc:
        svc.redis.call("CLIENT", "PAUSE", "1000")
        p = subprocess.Popen([PYTHON, CLIENT], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(json.dumps([call(cfg, [desc(LOGIN)])]).encode())
        p.stdin.close()
        wait_until(lambda: metric(scrape(svc.d), "ratelimitd_inflight_requests") >= 0,
                   1.0, what="scrape")
        time.sleep(0.8 * SLOW)  # stubs generated, call in flight
        svc.d.signal(15)
        out = p.stdout.read().decode()
        p.wait(30)
        eq(json.loads(out.splitlines()[0])["overall"], "OK", "in-flight call answered")
        eq(svc.d.wait(10 * SLOW), 0, "exit code")


def test_grpc_access_log():
    """Each decided call writes an access line like HTTP ones: the deciding
    policy, the verdict and the status a gateway would answer."""
    cfg = grpc_cfg(LOGIN_POLICY, access_log={"sample": 1.0}, workers=1)
    with service(cfg, "memory") as svc:
        rpc(*([call(cfg, [desc(LOGIN)])] * 4))

        def lines():
            out = []
            with open(svc.d.log_path, errors="replace") as f:
                for line in f:
                    try:
                        o = json.loads(line)
                    except ValueError:
                        continue
                    if o.get("msg") == "access" and o["request_id"].startswith("grpc-"):
                        out.append(o)
            return out if len(out) >= 4 else None
        got = wait_until(lines, 5 * SLOW, what="4 gRPC access lines")
        eq([(o["policy"], o["verdict"], o["status"]) for o in got],
           [("login", "allowed", 200)] * 3 + [("login", "denied", 429)], "access lines")


def test_grpc_tls_alpn_h2():
    """With grpc.tls the listener speaks HTTP/2 over TLS, chosen by ALPN h2
    (grpcio insists on it): a decision and a health check."""
    from test_tls import make_pki
    d = tempfile.mkdtemp(prefix="rl-grpc-tls-")
    pki = make_pki(d)
    cfg = grpc_cfg(LOGIN_POLICY, grpc={"tls": {"cert_file": pki["server.pem"],
                                               "key_file": pki["server.key"]}})
    with service(cfg, "memory"):
        res = rpc(dict(call(cfg, [desc(LOGIN)]), ca=pki["ca.pem"]),
                  {"op": "health", "target": target(cfg), "ca": pki["ca.pem"]},
                  call(cfg, [desc(LOGIN)]))
        eq(res[0].get("overall"), "OK", "decision over TLS (%r)" % res[0])
        eq(res[1], {"status": "SERVING"}, "health over TLS")
        check("error" in res[2], "cleartext to the TLS listener fails: %r" % res[2])


def test_grpc_shadow_and_restart_only():
    """A shadow policy answers OK past its limit; changing "grpc" on a
    reload is refused (a restart-only section) and the listener keeps
    answering."""
    pol = dpolicy("sh", "edge", [("user", None)], ["descriptor.user"], fixed(1), mode="shadow")
    cfg = grpc_cfg(pol)
    with service(cfg, "memory") as svc:
        res = rpc(*([call(cfg, [desc([["user", "u"]])])] * 3))
        eq([r["overall"] for r in res], ["OK"] * 3, "shadow answers OK")
        eq([r["statuses"][0]["code"] for r in res], ["OK"] * 3, "shadow statuses")
        new = json.loads(json.dumps(svc.d.config))
        new["grpc"]["max_message_bytes"] = 4096
        eq(reload_config(svc.d, new), "failed", "a reload changing grpc")
        eq(rpc({"op": "health", "target": target(cfg)})[0], {"status": "SERVING"},
           "still answering")


def _closed_within(sock, seconds):
    """Reads until the peer closes; True if it did within seconds (what
    it sent first, a SETTINGS or a GOAWAY, is read and ignored)."""
    sock.settimeout(0.2)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if sock.recv(4096) == b"":
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def test_grpc_connection_cap_and_idle_timeout():
    """Per worker at most grpc.max_connections: past it a connection is
    closed at once while the others stay; a connection that sends nothing
    (no preface, no TLS hello) is closed after grpc.idle_timeout_ms; a
    slot freed serves calls again."""
    cfg = grpc_cfg(LOGIN_POLICY, workers=1,
                   grpc={"max_connections": 2, "idle_timeout_ms": int(1500 * SLOW)})
    host, port = target(cfg).split(":")
    with service(cfg, "memory"):
        a = socket.create_connection((host, int(port)))
        b = socket.create_connection((host, int(port)))
        time.sleep(0.2)
        c = socket.create_connection((host, int(port)))
        check(_closed_within(c, 1.0 * SLOW), "a third connection is closed at once")
        check(not _closed_within(a, 0.5), "the first two stay open meanwhile")
        check(_closed_within(a, 3.0 * SLOW) and _closed_within(b, 1.0 * SLOW),
              "silent connections are closed after idle_timeout_ms")
        for s in (a, b, c):
            s.close()
        res = rpc(call(cfg, [desc(LOGIN)]))
        eq(res[0]["overall"], "OK", "a freed slot serves calls")


GW_SECRET = "gw-secret-0123456789abcdef"
GW_KEY = "gw-bearer-key-0123456789"


def auth_call(cfg, **kw):
    return call(cfg, [desc([["remote_address", "10.0.0.7"], ["path", "/login"]])], **kw)


def errors(res):
    """(code, first word of the message) of each failed call, None for an answer."""
    return [(r["error"], r["details"].split(":")[0]) if "error" in r else None for r in res]


def test_grpc_caller_auth_bearer():
    """auth.mode bearer covers the gRPC listener: ShouldRateLimit without
    the key, with a wrong one, with two Authorization lines or a
    suspended caller's key is refused before anything is counted
    (UNAUTHENTICATED AUTH_002 / AUTH_001, INVALID_ARGUMENT BAD_REQUEST as
    HTTP's 400, PERMISSION_DENIED AUTH_003) and counted in /metrics; the right key decides; the health checks stay
    open, as /health does."""
    auth = {"mode": "bearer", "max_failures": 1000,
            "callers": [{"id": "gw", "key_sha256": hashlib.sha256(GW_KEY.encode()).hexdigest()},
                        {"id": "old", "key_sha256": hashlib.sha256(b"old-key-0123456789").hexdigest(),
                         "status": "suspended"}]}
    cfg = grpc_cfg(LOGIN_POLICY, auth=auth)
    good = [["authorization", "Bearer " + GW_KEY]]
    with service(cfg, "memory") as svc:
        t = target(cfg)
        res = rpc(auth_call(cfg),
                  auth_call(cfg, metadata=[["authorization", "Bearer nope"]]),
                  auth_call(cfg, metadata=good + good),
                  auth_call(cfg, metadata=[["authorization", "Bearer old-key-0123456789"]]),
                  {"op": "health", "target": t},
                  auth_call(cfg, metadata=good), auth_call(cfg, metadata=good))
        eq(errors(res[:4]), [("UNAUTHENTICATED", "AUTH_002"), ("UNAUTHENTICATED", "AUTH_001"),
                             ("INVALID_ARGUMENT", "BAD_REQUEST"),
                             ("PERMISSION_DENIED", "AUTH_003")],
           "refusals (%r)" % res[:4])
        eq(res[4], {"status": "SERVING"}, "health without credentials")
        # 3 a minute: the refused calls spent nothing.
        eq([(r["overall"], r["statuses"][0]["remaining"]) for r in res[5:]],
           [("OK", 2), ("OK", 1)], "the authenticated calls")
        m = scrape(svc.d)
        eq(metric(m, "ratelimitd_grpc_calls_unauthenticated_total"), 2, "unauthenticated metric")
        eq(metric(m, "ratelimitd_grpc_calls_permission_denied_total"), 1, "denied metric")
        eq(metric(m, "ratelimitd_auth_failures_total"), 4, "auth failures")


def test_grpc_caller_auth_hmac():
    """auth.mode hmac over gRPC: the X-Caller-* metadata signs POST, the
    method's path and the serialized request message; a signature of
    another message, a stale timestamp or an unknown caller is refused
    and counts nothing."""
    auth = {"mode": "hmac", "max_failures": 1000,
            "callers": [{"id": "gw", "secret": GW_SECRET}]}
    cfg = grpc_cfg(LOGIN_POLICY, auth=auth)
    sign = {"id": "gw", "secret": GW_SECRET}
    with service(cfg, "memory"):
        res = rpc(auth_call(cfg, sign=dict(sign, body_hex="0a0465646765")),
                  auth_call(cfg, sign=dict(sign, ts=int(time.time()) - 3600)),
                  auth_call(cfg, sign=dict(sign, id="who")),
                  auth_call(cfg, sign=sign), auth_call(cfg, sign=sign))
        eq(errors(res[:3]), [("UNAUTHENTICATED", "AUTH_001"), ("UNAUTHENTICATED", "AUTH_004"),
                             ("UNAUTHENTICATED", "AUTH_005")], "refusals (%r)" % res[:3])
        eq([(r["overall"], r["statuses"][0]["remaining"]) for r in res[3:]],
           [("OK", 2), ("OK", 1)], "the signed calls")


def test_grpc_caller_auth_throttled():
    """Failed gRPC authentications count toward the address's
    max_failures as HTTP ones do: past it even the right key is refused
    (RESOURCE_EXHAUSTED RATE_001) until the window ends."""
    auth = {"mode": "bearer", "max_failures": 3, "failure_window": "1h",
            "callers": [{"id": "gw", "key_sha256": hashlib.sha256(GW_KEY.encode()).hexdigest()}]}
    cfg = grpc_cfg(LOGIN_POLICY, auth=auth, workers=1)
    bad = [["authorization", "Bearer nope"]]
    with service(cfg, "memory") as svc:
        res = rpc(*[auth_call(cfg, metadata=bad)] * 3,
                  auth_call(cfg, metadata=[["authorization", "Bearer " + GW_KEY]]))
        eq(errors(res), [("UNAUTHENTICATED", "AUTH_001")] * 3 + [("RESOURCE_EXHAUSTED", "RATE_001")],
           "throttled (%r)" % res)
        eq(metric(scrape(svc.d), "ratelimitd_grpc_calls_resource_exhausted_total"), 1,
           "resource exhausted metric")
