"""deploy/grafana/ratelimitd.json and deploy/prometheus/alerts.yaml:
promtool accepts the rules and their unit tests pass (and fail when a
rule changes); the dashboard has its panels and variables and its
queries parse; every metric the dashboard and the rules name is one a
running ratelimitd exports."""

import json
import os
import re
import shutil
import subprocess
import tempfile

import yaml

from harness import ROOT, check, config, eq, limit, policy, scrape, service

DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "ratelimitd.json")
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml")
ALERTS_TEST = os.path.join(ROOT, "deploy", "prometheus", "alerts_test.yaml")

ALERT_NAMES = {"RatelimitdDown", "RatelimitdStoreErrors", "RatelimitdDegradedDecisions",
               "RatelimitdConfigReloadFailed", "RatelimitdHighDenyRatio",
               "RatelimitdDecisionLatencyHigh"}

# Panel title -> metric names its expressions must use (and labels it must
# group by, if any).
PANELS = {
    "Decisions by verdict": (["ratelimitd_decisions_total"], "verdict"),
    "Decisions by policy and verdict": (["ratelimitd_decisions_total"], "policy, verdict"),
    "Decision latency quantiles": (["ratelimitd_decision_duration_seconds_bucket"], "le"),
    "Store latency quantiles": (["ratelimitd_store_duration_seconds_bucket"], "le"),
    "Store errors by reason": (["ratelimitd_store_errors_total"], "reason"),
    "Degraded decisions by reason": (["ratelimitd_degraded_decisions_total"], "reason"),
    "Deny-cache hits": (["ratelimitd_deny_cache_hits_total"], None),
    "Config reloads by result": (["ratelimitd_config_reloads_total"], "result"),
    "Open connections": (["ratelimitd_open_connections"], None),
    "gRPC calls by status": (["ratelimitd_grpc_calls_%s_total" % s for s in (
        "ok", "invalid_argument", "deadline_exceeded", "unimplemented", "unavailable",
        "internal")], None),
    "Admin override changes": (["ratelimitd_override_puts_total",
                                "ratelimitd_override_deletes_total"], None),
}

# Series Prometheus itself makes (not ratelimitd's to export).
PROMETHEUS_SERIES = {"up"}

_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def promtool(*args):
    """Runs promtool ARGS; returns (exit code, stdout + stderr)."""
    exe = shutil.which("promtool")
    check(exe is not None,
          "promtool is not installed (tests/run.sh installs Debian's prometheus)")
    p = subprocess.run([exe] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    return p.returncode, p.stdout.decode(errors="replace")


def promql_metrics(expr):
    """The metric names an instant or range PromQL expression selects:
    strings, label matchers, ranges and grouping clauses removed, then
    every identifier that is not a function call or a keyword."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        if m.group(0) in _KEYWORDS or e[m.end():].lstrip().startswith("("):
            continue
        names.add(m.group(0))
    return names


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def load_alerts():
    with open(ALERTS) as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"]]


def dashboard_panels(dash):
    """Every panel, those inside collapsed rows included."""
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def dashboard_exprs(dash):
    """[(where, PromQL expression)] of the dashboard: panel targets and the
    metric of each label_values() variable query."""
    out = []
    for p in dashboard_panels(dash):
        for t in p.get("targets", []):
            out.append(("panel %r" % p["title"], t["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] != "query":
            continue
        query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.match(r"label_values\((.*),\s*\w+\)$", query)
        check(m is not None, "variable %s: not label_values(METRIC, LABEL): %r"
              % (v["name"], query))
        out.append(("variable %r" % v["name"], m.group(1)))
    return out


def unknown_metrics(exprs, exported, extra=()):
    """[(where, name)] of the names exprs select that are neither in exported
    nor in extra. Fails if an expression selects no metric at all (the
    name extraction would otherwise pass anything)."""
    out = []
    for where, expr in exprs:
        names = promql_metrics(expr)
        check(names, "%s: no metric name found in %r" % (where, expr))
        out.extend((where, n) for n in sorted(names) if n not in exported and n not in extra)
    return out


def test_alert_rules_pass_promtool_check():
    """promtool check rules accepts alerts.yaml with its 6 rules; each rule
    has for, a severity, a summary and a description; a broken copy is
    refused (the check is real)."""
    rc, out = promtool("check", "rules", ALERTS)
    eq(rc, 0, "promtool check rules exit code; output:\n" + out)
    check("SUCCESS: %d rules found" % len(ALERT_NAMES) in out, "promtool output:\n" + out)
    rules = load_alerts()
    eq({r["alert"] for r in rules}, ALERT_NAMES, "alert names")
    for r in rules:
        check("for" in r, "%s: no for" % r["alert"])
        check(r["labels"]["severity"] in ("warning", "critical"),
              "%s: severity %r" % (r["alert"], r["labels"].get("severity")))
        for key in ("summary", "description"):
            check(r["annotations"].get(key), "%s: no annotations.%s" % (r["alert"], key))
    d = tempfile.mkdtemp(prefix="rl-alerts-")
    try:
        with open(ALERTS) as f:
            text = f.read()
        bad = os.path.join(d, "alerts.yaml")
        with open(bad, "w") as f:
            f.write(text.replace("> 0.05", "> > 0.05", 1))
        rc, out = promtool("check", "rules", bad)
        check(rc != 0, "promtool check rules accepted a broken expression:\n" + out)
    finally:
        shutil.rmtree(d)


def test_alert_rules_unit_tests_pass_and_catch_a_changed_rule():
    """promtool test rules passes alerts_test.yaml, which has for every
    alert a case where it fires and one where it does not; the same tests
    fail on a copy of the rules with the latency threshold raised or the
    store-error rule's metric renamed."""
    rc, out = promtool("test", "rules", ALERTS_TEST)
    eq(rc, 0, "promtool test rules exit code; output:\n" + out)
    check("SUCCESS" in out, "promtool output:\n" + out)
    with open(ALERTS_TEST) as f:
        cases = [c for t in yaml.safe_load(f)["tests"] for c in t["alert_rule_test"]]
    for name in ALERT_NAMES:
        mine = [c for c in cases if c["alertname"] == name]
        check(any(c["exp_alerts"] for c in mine), "%s: no case where it fires" % name)
        check(any(not c["exp_alerts"] for c in mine), "%s: no case where it does not" % name)
    with open(ALERTS) as f:
        text = f.read()
    for old, new in (("> 0.05", "> 0.2"),
                     ("rate(ratelimitd_store_errors_total", "rate(ratelimitd_store_error_total")):
        check(old in text, "alerts.yaml has no %r" % old)
        d = tempfile.mkdtemp(prefix="rl-alerts-")
        try:
            with open(os.path.join(d, "alerts.yaml"), "w") as f:
                f.write(text.replace(old, new))
            shutil.copy(ALERTS_TEST, d)
            rc, out = promtool("test", "rules", os.path.join(d, "alerts_test.yaml"))
            check(rc != 0, "promtool test rules passed with %r -> %r:\n%s" % (old, new, out))
        finally:
            shutil.rmtree(d)


def test_dashboard_has_its_panels_and_variables():
    """The dashboard parses; it has a Prometheus datasource variable every
    panel uses, instance and policy variables from label_values(), and the
    panels for decisions, latency quantiles, store errors, degraded
    reasons, deny cache, reloads, connections, gRPC status and overrides,
    each on its metrics."""
    dash = load_dashboard()
    eq(dash["uid"], "ratelimitd", "dashboard uid")
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    eq(variables["datasource"]["type"], "datasource", "datasource variable type")
    eq(variables["datasource"]["query"], "prometheus", "datasource variable plugin")
    for name, label in (("instance", "instance"), ("policy", "policy")):
        q = variables[name]["query"]["query"]
        check(q.startswith("label_values(") and q.endswith(", %s)" % label),
              "variable %s: %r" % (name, q))
    panels = {p["title"]: p for p in dashboard_panels(dash) if p["type"] != "row"}
    for p in panels.values():
        eq(p["datasource"]["uid"], "${datasource}", "panel %r datasource" % p["title"])
        check(p["targets"], "panel %r has no query" % p["title"])
    for title, (metrics, by) in PANELS.items():
        check(title in panels, "no panel %r (panels: %s)" % (title, sorted(panels)))
        exprs = [t["expr"] for t in panels[title]["targets"]]
        used = set().union(*(promql_metrics(e) for e in exprs))
        for m in metrics:
            check(m in used, "panel %r does not use %s: %r" % (title, m, exprs))
        if by is not None:
            check(any("by (%s)" % by in e for e in exprs),
                  "panel %r not by (%s): %r" % (title, by, exprs))
    for title in ("Decision latency quantiles", "Store latency quantiles"):
        exprs = [t["expr"] for t in panels[title]["targets"]]
        for q in ("0.5", "0.9", "0.99"):
            check(any(e.startswith("histogram_quantile(%s, " % q) and "rate(" in e
                      for e in exprs), "panel %r: no p%s over bucket rates" % (title, q))
    for title in ("Decisions by verdict", "Decisions by policy and verdict"):
        check(all('policy=~"$policy"' in t["expr"] for t in panels[title]["targets"]),
              "panel %r ignores $policy" % title)


# Grafana's variables, replaced by values Prometheus would see.
GRAFANA_VARS = (("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h"),
                ("$instance", ".*"), ("$policy", ".*"))


def test_dashboard_queries_are_valid_promql():
    """Every panel query of the dashboard, its Grafana variables replaced,
    parses as PromQL: promtool check rules accepts them all as recording
    rules, and refuses the file once one query is broken."""
    dash = load_dashboard()
    rules = []
    for p in dashboard_panels(dash):
        for t in p.get("targets", []):
            expr = t["expr"]
            for var, value in GRAFANA_VARS:
                expr = expr.replace(var, value)
            check("$" not in expr, "panel %r: unknown variable in %r" % (p["title"], expr))
            rules.append({"record": "dashboard:panel%d_%s" % (p["id"], t["refId"]),
                          "expr": expr})
    check(len(rules) >= len(PANELS), "only %d queries" % len(rules))
    d = tempfile.mkdtemp(prefix="rl-dash-")
    try:
        path = os.path.join(d, "dashboard_rules.yaml")
        for broken in (False, True):
            if broken:
                rules[0]["expr"] = rules[0]["expr"].replace("(", "((", 1)
            with open(path, "w") as f:
                yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
            rc, out = promtool("check", "rules", path)
            if broken:
                check(rc != 0, "promtool accepted a broken query:\n" + out)
            else:
                eq(rc, 0, "promtool check rules on the dashboard's queries:\n" + out)
                check("SUCCESS: %d rules found" % len(rules) in out, out)
    finally:
        shutil.rmtree(d)


def test_dashboard_and_alerts_name_only_exported_metrics():
    """Every metric name in the dashboard's queries and variables and in the
    alert rules is a series GET /metrics of a running ratelimitd exports
    (histograms by their _bucket, _sum and _count series); up is the only
    other name, in the rules. A renamed metric would be caught."""
    cfg = config(policy("api", "/api/*", [limit(3, "1h")], key=["tenant"]))
    with service(cfg, "memory") as svc:
        svc.verdict(path="/api/x", tenant="t1")
        exported = set(scrape(svc.d))
    check("ratelimitd_decision_duration_seconds_bucket" in exported,
          "no histogram buckets in the scrape: %s" % sorted(exported))
    dash_exprs = dashboard_exprs(load_dashboard())
    bad = unknown_metrics(dash_exprs, exported)
    check(not bad, "the dashboard names metrics ratelimitd does not export: %r" % bad)
    rule_exprs = [("alert %s" % r["alert"], r["expr"]) for r in load_alerts()]
    bad = unknown_metrics(rule_exprs, exported, PROMETHEUS_SERIES)
    check(not bad, "the alert rules name metrics ratelimitd does not export: %r" % bad)
    # The comparison itself: a renamed metric and a bare histogram name are
    # reported.
    renamed = [(w, e.replace("ratelimitd_deny_cache_hits_total", "ratelimitd_deny_cache_hit_total"))
               for w, e in dash_exprs]
    eq(sorted({n for _, n in unknown_metrics(renamed, exported)}),
       ["ratelimitd_deny_cache_hit_total"], "unknown names after a rename")
    eq(promql_metrics('histogram_quantile(0.9, sum by (le) '
                      '(rate(ratelimitd_store_duration_seconds{a="b"}[5m]))) > 1e-3'),
       {"ratelimitd_store_duration_seconds"}, "names in a bare histogram expression")
    check("ratelimitd_store_duration_seconds" not in exported,
          "a histogram's bare name is not a series")
