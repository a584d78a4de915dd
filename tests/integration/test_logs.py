"""Logs: JSON lines with ts, level and msg; the sampled access log (request
id, policy, verdict, latency); and no secret, signature or key value in
any log line, /metrics or --check-config output of a run that used them."""

import copy
import hashlib
import json
import os
import tempfile
import time

from harness import (SLOW, Ratelimitd, Redis, check, config, eq, limit, metric, policy,
                     reload_config, run_binary, scrape, service, store_config, wait_until)

SECRETS = {
    "redis_password": "redis-pass-S3CRET-1",
    "admin_key": "admin-key-S3CRET-2",
    "wrong_admin_key": "wrong-key-S3CRET-3",
    "tenant": "tenant-S3CRET-4",
    "user": "user-S3CRET-5",
    "api_key_header": "apikey-S3CRET-6",
    "path_value": "acct-S3CRET-7",
    "test_value": "test-trigger-S3CRET-8",
    "wrong_redis_password": "wrong-redis-S3CRET-9",
    "new_redis_password": "new-redis-S3CRET-10",
}


def _cfg(sample=1.0):
    return config(
        policy("by-tenant", "/t/*", [limit(2, "1h", "fixed_window")], key=["tenant", "user"],
               test={"header": "x-test", "value": SECRETS["test_value"],
                     "limits": [limit(1, "1h", "fixed_window")]}),
        policy("by-api-key", "/k/{acct}", [limit(1, "1h")], key=["header.x-api-key", "path.acct"]),
        admin={"enabled": True,
               "key_sha256": hashlib.sha256(SECRETS["admin_key"].encode()).hexdigest()},
        access_log={"sample": sample}, workers=2)


def _lines(path):
    with open(path, errors="replace") as f:
        return [line for line in f.read().splitlines() if line.strip()]


def _json_lines(path):
    """Every line of a ratelimitd log, parsed; fails on a line that is not
    a JSON object with ts, level and msg."""
    out = []
    for line in _lines(path):
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError("log line is not JSON: %r" % line)
        check(isinstance(obj, dict) and {"ts", "level", "msg"} <= set(obj),
              "log line without ts/level/msg: %r" % line)
        check(obj["level"] in ("debug", "info", "warn", "error"), "level of %r" % line)
        out.append(obj)
    return out


def _traffic(svc):
    """Decisions, admin calls (right and wrong key), /metrics, /v1/policies
    using every secret. Returns the X-Request-Id of each decision."""
    ids = []
    for _ in range(3):
        r = svc.decide(path="/t/x", tenant=SECRETS["tenant"], user=SECRETS["user"])
        ids.append(r.header("X-Request-Id"))
        r = svc.decide(path="/t/x", tenant=SECRETS["tenant"], user=SECRETS["user"],
                       headers={"x-test": SECRETS["test_value"]})
        ids.append(r.header("X-Request-Id"))
        r = svc.decide(path="/k/" + SECRETS["path_value"],
                       headers={"x-api-key": SECRETS["api_key_header"]})
        ids.append(r.header("X-Request-Id"))
    r = svc.decide(path="/t/x", tenant=SECRETS["tenant"])  # user missing: 422
    eq(r.status, 422, "missing user")
    ids.append(r.header("X-Request-Id"))
    for key in (SECRETS["admin_key"], SECRETS["wrong_admin_key"]):
        svc.request("GET", "/v1/policies", headers={"Authorization": "Bearer " + key})
        svc.request("POST", "/v1/admin/reset", headers={"Authorization": "Bearer " + key},
                    json_body={"path": "/t/x", "tenant": SECRETS["tenant"],
                               "user": SECRETS["user"]})
    return ids


def test_no_secret_in_logs_metrics_or_check_config():
    """A run at debug level (-v) with every secret in use (store password,
    admin key, a wrong admin key, tenant/user/header/path key values, the
    test header value), a second instance with a wrong store password, and
    a reload that tries to change the password: no secret appears in any
    log line, in /metrics, /v1/policies or --check-config output."""
    redis = Redis(password=SECRETS["redis_password"]).start()
    wrong = None
    outputs = {}
    try:
        with service(_cfg(), "redis", redis=redis, extra_args=["-v"]) as svc:
            _traffic(svc)
            outputs["metrics"] = svc.request("GET", "/metrics").body.decode()
            outputs["policies"] = svc.request(
                "GET", "/v1/policies",
                headers={"Authorization": "Bearer " + SECRETS["admin_key"]}).body.decode()
            changed = copy.deepcopy(svc.d.config)
            changed["store"]["password"] = SECRETS["new_redis_password"]
            eq(reload_config(svc.d, changed), "failed", "a reload changing the password")
            rc, out, err = run_binary(["--check-config", svc.d.conf_path])
            outputs["check-config (changed file)"] = out + err
            logs = [svc.d.log_path]

            cfg = copy.deepcopy(svc.d.config)
            cfg["store"]["password"] = SECRETS["wrong_redis_password"]
            wrong = Ratelimitd(cfg, ["-v"])
            wrong.start(ready=False)
            # The wrong password is refused by Redis (and retried): let it
            # happen a few times, and decide meanwhile (degraded).
            time.sleep(0.5 * SLOW)
            wrong.request("POST", "/v1/decide", json_body={
                "path": "/t/x", "tenant": SECRETS["tenant"], "user": SECRETS["user"]})
            wrong.stop()
            logs.append(wrong.log_path)
            with tempfile.TemporaryDirectory() as tmp:
                bad = copy.deepcopy(cfg)
                bad["policies"][0]["limits"][0]["per"] = "5x"
                path = os.path.join(tmp, "bad.json")
                with open(path, "w") as f:
                    json.dump(bad, f)
                rc, out, err = run_binary(["--check-config", path])
                eq(rc, 1, "--check-config of a bad file")
                outputs["check-config (bad file)"] = out + err
        for p in logs:
            outputs[p] = "\n".join(_lines(p))
        auth_lines = [o for o in _json_lines(logs[1]) if "WRONGPASS" in json.dumps(o)]
        check(auth_lines, "the wrong-password instance logged no authentication failure:\n" +
              outputs[logs[1]][-3000:])
        debug = [o for o in _json_lines(logs[0]) if o["level"] == "debug"]
        check(debug, "-v logged no debug line")
        for where, text in outputs.items():
            for name, secret in SECRETS.items():
                check(secret not in text, "%s (%s) appears in %s" % (name, secret, where))
            check(hashlib.sha256(SECRETS["admin_key"].encode()).hexdigest() not in text,
                  "the admin key hash appears in %s" % where)
    finally:
        if wrong is not None:
            wrong.cleanup()
        redis.cleanup()


def test_access_log_lines():
    """With "sample": 1 every decision has one access line with its request
    id, policy, verdict, status and latency, and nothing else of the
    request."""
    with service(_cfg(1.0), "memory") as svc:
        ids = _traffic(svc)
        path = svc.d.log_path

        def access():
            lines = [o for o in _json_lines(path) if o["msg"] == "access"]
            return lines if len(lines) >= len(ids) else None
        lines = wait_until(access, 5 * SLOW, what="one access line per decision")
        by_id = {o["request_id"]: o for o in lines}
        eq(sorted(by_id), sorted(ids), "request ids of the access lines")
        for o in lines:
            eq(set(o), {"ts", "level", "msg", "request_id", "policy", "verdict", "status",
                        "latency_us", "cached"}, "access line fields")
            check(isinstance(o["latency_us"], int) and 0 <= o["latency_us"] < 10000000,
                  "latency %r" % o)
        verdicts = [by_id[i]["verdict"] for i in ids]
        eq(verdicts[:3], ["allowed", "allowed", "allowed"], "first round")
        eq(verdicts[3:6], ["allowed", "denied", "denied"], "second round")
        eq((by_id[ids[4]]["policy"], by_id[ids[4]]["status"]), ("by-tenant", 429), "a denial")
        eq((by_id[ids[-1]]["verdict"], by_id[ids[-1]]["policy"], by_id[ids[-1]]["status"]),
           ("invalid", None, 422), "an invalid request")
        check(any(o["cached"] for o in lines), "no access line says cached")


def test_access_log_sampling():
    """"sample": 0.25 logs about a quarter of 800 decisions; 0 logs none."""
    for sample, lo, hi in ((0.25, 120, 290), (0.0, 0, 0)):
        with service(_cfg(sample), "memory") as svc:
            c = svc.client()
            for i in range(800):
                c.decide(path="/t/x", tenant="t%d" % i, user="u")
            time.sleep(0.2)
            eq(metric(scrape(svc.d), "ratelimitd_access_log_dropped_total"), 0, "dropped")
            svc.close()
        n = sum(1 for o in _json_lines(svc.d.log_path) if o["msg"] == "access")
        check(lo <= n <= hi, "sample %s: %d access lines of 800, expected %d..%d" %
              (sample, n, lo, hi))
