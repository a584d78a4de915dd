"""GET /metrics: every series, checked with prometheus_client's text parser
after traffic whose counts are known."""

import hashlib
import json
import re

from harness import (SLOW, Client, check, config, eq, limit, metric, policy, scrape, service,
                     sha256_hex, tenant_headers, wait_until)
from test_docs import declared_metrics, declared_reasons


def _cfg():
    shadow = policy("shadowed", "/shadow/*", [limit(1, "1h", "fixed_window")], key=["tenant"])
    shadow["mode"] = "shadow"
    return config(
        policy("counted", "/api/*", [limit(3, "1h", "fixed_window")], key=["tenant"]),
        shadow,
        policy("closed", "/closed/*", [limit(5, "1h")], key=["tenant"], failure_mode="closed"),
        workers=2)


def _file_hash(daemon):
    with open(daemon.conf_path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def test_metrics_series_after_known_traffic():
    """Decisions by policy and verdict (allowed, denied, shadow_denied,
    error), unmatched and invalid requests, degraded decisions and store
    errors by reason, both histograms, gauges, reloads, config hash, build
    info: all present, parsed, and equal to the traffic sent."""
    with service(_cfg(), "redis") as svc:
        for _ in range(5):
            svc.verdict(path="/api/x", tenant="t1")          # 3 allowed, 2 denied
        for _ in range(3):
            svc.verdict(path="/shadow/x", tenant="t1")       # 1 allowed, 2 shadow_denied
        svc.verdict(path="/nowhere")                          # unmatched
        r = svc.decide(path="/api/x")                         # tenant missing: invalid
        eq(r.status, 422, "missing tenant")
        svc.verdict(path="/closed/x", tenant="t1")            # allowed

        m = scrape(svc.d)
        d = "ratelimitd_decisions_total"
        eq(metric(m, d, policy="counted", verdict="allowed"), 3, "counted/allowed")
        eq(metric(m, d, policy="counted", verdict="denied"), 2, "counted/denied")
        eq(metric(m, d, policy="counted", verdict="shadow_denied"), 0, "counted/shadow_denied")
        eq(metric(m, d, policy="shadowed", verdict="allowed"), 1, "shadowed/allowed")
        eq(metric(m, d, policy="shadowed", verdict="shadow_denied"), 2, "shadowed/shadow_denied")
        eq(metric(m, d, policy="shadowed", verdict="denied"), 0, "shadowed/denied")
        eq(metric(m, d, policy="closed", verdict="allowed"), 1, "closed/allowed")
        for pol in ("counted", "shadowed", "closed"):
            check(((("policy", pol), ("verdict", "error"))) in m[d],
                  "no error series for %s: %r" % (pol, m[d]))
        eq(metric(m, "ratelimitd_decisions_unmatched_total"), 1, "unmatched")
        eq(metric(m, "ratelimitd_decisions_invalid_total"), 1, "invalid")
        hist = "ratelimitd_decision_duration_seconds"
        eq(metric(m, hist + "_count"), 11, "decision latency observations")
        eq(metric(m, hist + "_bucket", le="+Inf"), 11, "+Inf bucket")
        check(metric(m, hist + "_sum") > 0, "latency sum")
        # Every decision that reached the store: 5 + 3 + 1 (unmatched and
        # invalid never do; denials may come from the deny cache).
        store_n = metric(m, "ratelimitd_store_duration_seconds_count")
        hits = metric(m, "ratelimitd_deny_cache_hits_total")
        eq(store_n + hits, 9, "store round trips + deny cache hits")
        buckets = sorted((float(dict(k)["le"]), v) for k, v in
                         m[hist + "_bucket"].items())
        check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])),
              "buckets are cumulative: %r" % buckets)
        eq(metric(m, "ratelimitd_build_info", version="0.1.0"), 1, "build info")
        eq(metric(m, "ratelimitd_config_info", hash=_file_hash(svc.d)), 1, "config hash")
        eq(metric(m, "ratelimitd_config_reloads_total", result="ok"), 0, "reloads ok")
        eq(metric(m, "ratelimitd_config_reloads_total", result="failed"), 0, "reloads failed")
        eq(metric(m, "ratelimitd_workers"), 2, "workers")
        check(metric(m, "ratelimitd_open_connections") >= 1, "open connections")
        check(metric(m, "ratelimitd_inflight_requests") >= 1, "the scrape itself is in flight")
        for name in ("ratelimitd_store_reconnects_total", "ratelimitd_store_redirections_total",
                     "ratelimitd_admin_resets_total", "ratelimitd_access_log_dropped_total",
                     "ratelimitd_deny_cache_entries", "ratelimitd_start_time_seconds",
                     "ratelimitd_http_requests_total", "ratelimitd_config_generation"):
            check(name in m, "series %s missing" % name)
        eq(sum(m["ratelimitd_degraded_decisions_total"].values()), 0, "no degraded decision yet")

        # Redis goes away: the open policy admits (error verdict, degraded
        # "disconnected"), the closed one refuses with 503.
        svc.redis.stop()
        wait_until(lambda: svc.d.request("GET", "/ready").status == 503, 5 * SLOW,
                   what="/ready 503")
        v = svc.verdict(_degraded_ok=True, path="/api/y", tenant="t2")
        eq((v["allowed"], v["degraded"]), (True, True), "open policy while Redis is down")
        r = svc.decide(path="/closed/y", tenant="t2")
        eq(r.status, 503, "closed policy while Redis is down")
        m = scrape(svc.d)
        eq(metric(m, d, policy="counted", verdict="error"), 1, "counted/error")
        eq(metric(m, d, policy="closed", verdict="error"), 1, "closed/error")
        eq(metric(m, "ratelimitd_degraded_decisions_total", reason="disconnected"), 2,
           "degraded by reason")
        eq(metric(m, "ratelimitd_store_errors_total", reason="disconnected"), 2,
           "store errors by reason")

        # Redis comes back on the same port: both workers reconnect.
        svc.redis.start()
        wait_until(lambda: svc.d.request("GET", "/ready").status == 200, 5 * SLOW,
                   what="/ready 200 again")
        m = scrape(svc.d)
        eq(metric(m, "ratelimitd_store_reconnects_total"), 2, "reconnects (one per worker)")


def test_metrics_memory_store_and_counters_survive_scrapes():
    """With the memory store the same families are there; scraping twice
    changes nothing but the request counters."""
    with service(_cfg(), "memory") as svc:
        svc.verdict(path="/api/x", tenant="t1")
        a = scrape(svc.d)
        b = scrape(svc.d)
        eq(metric(a, "ratelimitd_decisions_total", policy="counted", verdict="allowed"), 1,
           "allowed after one decision")
        eq(metric(b, "ratelimitd_decisions_total", policy="counted", verdict="allowed"), 1,
           "a scrape counts no decision")
        eq(metric(b, "ratelimitd_http_requests_total"),
           metric(a, "ratelimitd_http_requests_total") + 1, "the scrape is an HTTP request")
        eq(metric(b, "ratelimitd_store_errors_total", reason="timeout"), 0, "store errors")


BEARER = "metrics-caller-key-0123456789"
TENANT_SECRET = "metrics-tenant-secret-01234"


def _post_decide(svc, fields, headers):
    c = Client(svc.port)
    try:
        return c.request("POST", "/v1/decide", body=json.dumps(fields).encode(),
                         headers=dict({"Content-Type": "application/json"}, **headers))
    finally:
        c.close()


def test_every_declared_metric_is_exported():
    """Every row of RL_STATS_METRICS in src/stats.h (parsed from the header)
    is in a scrape with its declared HELP text, TYPE and label names, every
    reason, verdict and reload result has its series, and the scrape has no
    family the header does not declare. The counters that were once
    declared but never exported count what they say: a wrong caller key
    and a forged tenant signature are one each."""
    signed = dict(policy("signed", "/v1/events", [limit(5, "1m")], key=["tenant"],
                         method="POST"), verify_tenant="hmac")
    cfg = config(signed, policy("counted", "/api/*", [limit(1, "1h", "fixed_window")],
                                key=["tenant"]),
                 tenants=[{"id": "acme", "secret": TENANT_SECRET}], workers=2,
                 auth={"mode": "bearer", "max_failures": 1000,
                       "callers": [{"id": "gw", "key_sha256": sha256_hex(BEARER)}]})
    good = {"Authorization": "Bearer " + BEARER}
    with service(cfg, "memory") as svc:
        for allowed in (True, False):
            r = _post_decide(svc, {"path": "/api/x", "tenant": "t"}, good)
            eq((r.status, r.json["allowed"]), (200, allowed), "verdict (%r)" % r.body[:200])
        r = _post_decide(svc, {"path": "/api/x", "tenant": "t"},
                         {"Authorization": "Bearer wrong"})
        eq(r.status, 401, "wrong caller key")
        forged = tenant_headers("acme", "not-the-secret", "POST", "/v1/events")
        r = _post_decide(svc, {"method": "POST", "path": "/v1/events", "headers": forged}, good)
        eq(r.status, 401, "forged tenant signature (%r)" % r.body[:200])

        text = svc.d.request("GET", "/metrics").body.decode()
        samples = scrape(svc.d)
        helps = dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.M))
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        declared = declared_metrics()
        for m in declared:
            name = m["name"]
            eq(helps.get(name), m["help"], "HELP of %s" % name)
            eq(types.get(name), m["type"], "TYPE of %s" % name)
            series = name + "_bucket" if m["type"] == "histogram" else name
            check(samples.get(series), "no series of %s in the scrape" % name)
            for labels in samples[series]:
                eq(tuple(sorted(k for k, _ in labels)), tuple(sorted(m["labels"])),
                   "label names of %s" % name)
        eq(sorted(types), sorted(m["name"] for m in declared),
           "families in the scrape = RL_STATS_METRICS rows")

        reasons = {dict(k)["reason"] for k in samples["ratelimitd_store_errors_total"]}
        eq(sorted(reasons), sorted(declared_reasons()), "every store-error reason")
        reasons = {dict(k)["reason"] for k in samples["ratelimitd_degraded_decisions_total"]}
        eq(sorted(reasons), sorted(declared_reasons()), "every degraded reason")
        results = {dict(k)["result"] for k in samples["ratelimitd_config_reloads_total"]}
        eq(sorted(results), ["failed", "ok"], "reload results")
        verdicts = {dict(k)["verdict"] for k in samples["ratelimitd_decisions_total"]
                    if dict(k)["policy"] == "counted"}
        eq(sorted(verdicts), ["allowed", "denied", "error", "shadow_denied"], "verdicts")

        eq(metric(samples, "ratelimitd_auth_failures_total"), 1, "caller auth failures")
        eq(metric(samples, "ratelimitd_tenant_auth_failures_total"), 1, "tenant auth failures")
        eq(metric(samples, "ratelimitd_decisions_allowed_total"), 1, "allowed, all policies")
        eq(metric(samples, "ratelimitd_decisions_denied_total"), 1, "denied, all policies")
        eq(metric(samples, "ratelimitd_decisions_shadow_denied_total"), 0, "shadow denied")
        eq(metric(samples, "ratelimitd_decisions_degraded_total"), 0, "degraded")
        eq(metric(samples, "ratelimitd_store_failures_total"), 0, "store failures")
