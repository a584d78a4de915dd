"""Shadow mode: a policy with "mode": "shadow" is evaluated and counted,
never enforced; the reply says what it would have done, and /metrics
counts the would-be denials."""

from harness import (STORES, check, config, eq, limit, metric, parametrize, policy, scrape,
                     service)


def _cfg():
    shadow = policy("new-limit", "/v1/events", [limit(2, "1h", "fixed_window")], key=["tenant"],
                    method="POST", headers="x-ratelimit",
                    deny={"status": 429, "body": {"message": "slow down, {policy}"}})
    shadow["mode"] = "shadow"
    return config(shadow,
                  policy("enforced", "/v1/other", [limit(1, "1h", "fixed_window")],
                         key=["tenant"]))


def _shadow(store):
    """Requests 1-2 are admitted ("would_deny": false), 3-6 are admitted with
    "would_deny": true, the status and body enforcing would have sent,
    status 200 and no Retry-After; /metrics counts 2 allowed and 4
    shadow_denied, and no denial. An enforcing policy next to it still
    denies."""
    with service(_cfg(), store) as svc:
        replies = [svc.verdict(method="POST", path="/v1/events", tenant="acme") for _ in range(6)]
        for i, v in enumerate(replies):
            eq((v["allowed"], v["status"], v["policy"]), (True, 200, "new-limit"),
               "reply %d allowed, status 200" % (i + 1))
            check("body" not in v, "reply %d carries a deny body outside shadow" % (i + 1))
            check(v["_http"].header("Retry-After") is None,
                  "reply %d has Retry-After" % (i + 1))
        for i in (0, 1):
            eq(replies[i]["shadow"], {"would_deny": False}, "reply %d shadow" % (i + 1))
        for i in range(2, 6):
            sh = replies[i]["shadow"]
            eq((sh["would_deny"], sh["status"], sh["body"]),
               (True, 429, {"message": "slow down, new-limit"}), "reply %d shadow" % (i + 1))
            check(replies[i]["retry_after_ms"] > 0,
                  "reply %d reports how long the denial would last" % (i + 1))
            eq(replies[i]["_http"].header("X-RateLimit-Remaining"), "0",
               "reply %d rate-limit header" % (i + 1))
        e1 = svc.verdict(path="/v1/other", tenant="acme")
        e2 = svc.verdict(path="/v1/other", tenant="acme")
        eq((e1["allowed"], e2["allowed"], e2["status"]), (True, False, 429),
           "the enforcing policy still denies")
        check("shadow" not in e2, "an enforcing policy's reply has no shadow member")

        m = scrape(svc.d)
        d = "ratelimitd_decisions_total"
        eq(metric(m, d, policy="new-limit", verdict="allowed"), 2, "shadow policy allowed")
        eq(metric(m, d, policy="new-limit", verdict="shadow_denied"), 4, "shadow_denied")
        eq(metric(m, d, policy="new-limit", verdict="denied"), 0, "shadow policy never denies")
        eq(metric(m, d, policy="enforced", verdict="denied"), 1, "enforced denied")


parametrize(globals(), "test_shadow", _shadow, STORES)
