"""ratelimitd --convert-envoy-ratelimit FILE.yaml...: envoyproxy/ratelimit
configuration files written here are converted to ratelimitd policies
(the JSON printed on stdout, exit 0); unsupported constructs and
malformed YAML are named FILE:LINE on stderr (exit 1); usage errors exit
2. Once policies can match descriptors the output passes --check-config."""

import json
import os
import shutil
import tempfile

from harness import check, eq, run_binary

FLAG = "--convert-envoy-ratelimit"


class _Dir:
    """A temp dir to write YAML files into."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="rl-convert-")
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.path, name)
        with open(path, "w") as f:
            f.write(text)
        return path


def _convert(*paths):
    rc, out, err = run_binary([FLAG] + list(paths))
    eq(rc, 0, "%s exit code (stderr %r)" % (FLAG, err))
    return json.loads(out)["policies"]


def _fixed(requests, per):
    return [{"requests": requests, "per": per, "algorithm": "fixed_window"}]


def _pol(name, domain, entries, limits, **extra):
    """A converted policy: every one has "headers": "none", as
    envoyproxy/ratelimit sends no rate-limit headers and the Envoy in
    front builds its own."""
    desc = [dict(zip(("key", "value"), e)) for e in entries]
    p = {"name": name, "match": {"domain": domain, "descriptor": desc},
         "key": ["descriptor." + e[0] for e in entries if len(e) == 1],
         "limits": limits, "headers": "none"}
    p.update(extra)
    return p


MESSAGING = """\
# envoyproxy/ratelimit's example 2, the general entry written first
domain: messaging
descriptors:
  - key: to_number
    rate_limit:
      unit: day
      requests_per_unit: 100
  - key: message_type
    value: marketing
    descriptors:
      - key: to_number
        rate_limit:
          unit: day
          requests_per_unit: 5
  - key: to_number
    value: "2061111111"
    shadow_mode: true
    detailed_metric: true
    rate_limit:
      unit: second
      requests_per_unit: 3
"""

EDGE = """\
domain: edge
descriptors:
  - key: remote_address
    rate_limit: {unit: minute, requests_per_unit: 60}
  - key: path
    value: /login
    descriptors:
      - key: remote_address
        rate_limit: {unit: hour, requests_per_unit: 10}
  - key: quota
    rate_limit: {unit: month, requests_per_unit: 1000}
  - key: yearly
    rate_limit: {unit: YEAR, requests_per_unit: 7}
  - key: ldap
    rate_limit: {unlimited: true}
"""


def test_nested_specific_first_and_shadow():
    """Nested descriptors become one policy each with the full entry list;
    the per-value entry comes before the general one whatever the file
    order; shadow_mode becomes "mode": "shadow"; key fields are the
    entries without a value."""
    with _Dir() as d:
        got = _convert(d.write("messaging.yaml", MESSAGING))
    eq(got, [
        _pol("messaging.message_type_marketing.to_number", "messaging",
             [("message_type", "marketing"), ("to_number",)], _fixed(5, "1d")),
        _pol("messaging.to_number_2061111111", "messaging", [("to_number", "2061111111")],
             _fixed(3, "1s"), mode="shadow"),
        _pol("messaging.to_number", "messaging", [("to_number",)], _fixed(100, "1d")),
    ], "converted policies")


def test_several_files_units_unlimited():
    """Two files, two domains, one list in file order; minute, hour, month
    (30 days) and year (365 days) units; an unlimited descriptor becomes
    a policy with "limits": [] and no key (admitted, nothing counted)."""
    with _Dir() as d:
        got = _convert(d.write("a.yaml", MESSAGING), d.write("b.yaml", EDGE))
    names = [p["name"] for p in got]
    eq(names, ["messaging.message_type_marketing.to_number", "messaging.to_number_2061111111",
               "messaging.to_number", "edge.path_-login.remote_address",
               "edge.remote_address", "edge.quota", "edge.yearly", "edge.ldap"],
       "policy order")
    by = {p["name"]: p for p in got}
    eq(by["edge.path_-login.remote_address"],
       _pol("edge.path_-login.remote_address", "edge", [("path", "/login"), ("remote_address",)],
            _fixed(10, "1h")), "nested per-value policy")
    eq(by["edge.remote_address"]["limits"], _fixed(60, "1m"), "minute")
    eq(by["edge.quota"]["limits"], _fixed(1000, "30d"), "month")
    eq(by["edge.yearly"]["limits"], _fixed(7, "365d"), "year")
    eq(by["edge.ldap"], dict(_pol("edge.ldap", "edge", [("ldap",)], []), key=[]),
       "unlimited: a limit-less policy")


def test_same_domain_merges_duplicates_refused():
    """One domain split over two files merges; the same descriptor in both
    is refused naming the second file and line and the first."""
    with _Dir() as d:
        a = d.write("a.yaml", "domain: d\ndescriptors:\n  - key: x\n"
                    "    rate_limit: {unit: second, requests_per_unit: 1}\n")
        b = d.write("b.yaml", "domain: d\ndescriptors:\n  - key: y\n"
                    "    rate_limit: {unit: second, requests_per_unit: 2}\n")
        eq([p["name"] for p in _convert(a, b)], ["d.x", "d.y"], "merged domain")
        rc, out, err = run_binary([FLAG, a, d.write("c.yaml", "domain: d\n\ndescriptors:\n"
                                                   "  - key: x\n")])
        eq((rc, out), (1, ""), "duplicate descriptor exit code and stdout")
        check(err.startswith("%s:4: duplicate descriptor composite key 'x' (first at %s:3)" %
                             (os.path.join(d.path, "c.yaml"), a)), "stderr: %r" % err)
        # envoyproxy/ratelimit files {key: x, value: v} under "x_v", so a
        # later file's key x_v is the same entry and the files are refused.
        v = d.write("v.yaml", "domain: d\ndescriptors:\n  - {key: x, value: v}\n")
        rc, out, err = run_binary([FLAG, v, d.write("w.yaml", "domain: d\ndescriptors:\n"
                                                   "  - {key: x_v}\n")])
        eq((rc, out), (1, ""), "composite key collision exit code and stdout")
        check(err.startswith("%s:3: duplicate descriptor composite key 'x_v' (first at %s:3): "
                             "envoyproxy/ratelimit files a descriptor under KEY_VALUE, so key "
                             "'x_v' and key 'x' with value 'v' are one entry there" %
                             (os.path.join(d.path, "w.yaml"), v)), "stderr: %r" % err)


# (YAML, the line and the start of the message printed as FILE:LINE: ...)
REFUSED = [
    ("domain: d\ndescriptors:\n  - key: a\n    rate_limit:\n      unit: second\n"
     "      requests_per_unit: 5\n      replaces:\n        - name: other\n",
     7, "replaces is not supported"),
    ("domain: d\ndescriptors:\n  - key: a\n    value: pre*\n", 4, "wildcard values"),
    ("domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: fortnight, "
     "requests_per_unit: 1}\n", 4, "invalid rate limit unit 'fortnight'"),
    ("domain: d\ndescriptors:\n  - key: a\n    limit: 3\n", 4, "unknown field 'limit'"),
    ("domain: d\ndescriptors:\n  - key: a\n    descriptors:\n      - key: b\n"
     "        rate_limit: {unit: second, requests_per_unit: [1]}\n", 6,
     "requests_per_unit must be an integer"),
    ("domain: d\ndescriptors:\n  - key: a\n   bad: indentation\n", 4, "malformed YAML"),
    ("domain: [unclosed\n", 2, "malformed YAML"),
    # envoyproxy/ratelimit refuses both: one composite key "a_x"; a value
    # its YAML parser reads as a float; a tag it would decode (base64)
    ("domain: d\ndescriptors:\n  - {key: a, value: x}\n  - {key: a_x}\n", 4,
     "duplicate descriptor composite key 'a_x' (first at "),
    ("domain: d\ndescriptors:\n  - key: a\n    value: 1.5\n", 4,
     "value 1.5 is a float to envoyproxy/ratelimit's YAML parser, which refuses the file"),
    ("domain: d\ndescriptors:\n  - key: a\n    value: !!binary eA==\n", 4,
     "YAML tags other than !!str"),
]


def test_refused_with_file_and_line():
    """Each unsupported construct or malformed file: exit 1, nothing on
    stdout, "FILE:LINE: problem" on stderr."""
    with _Dir() as d:
        for i, (text, line, msg) in enumerate(REFUSED):
            path = d.write("bad%d.yaml" % i, text)
            rc, out, err = run_binary([FLAG, path])
            eq((rc, out), (1, ""), "case %d exit code and stdout (stderr %r)" % (i, err))
            want = "%s:%d: %s" % (path, line, msg)
            check(err.startswith(want), "case %d: stderr %r, want %r..." % (i, err, want))
        # A bad second file fails the whole conversion.
        ok = d.write("ok.yaml", EDGE)
        rc, out, err = run_binary([FLAG, ok, os.path.join(d.path, "bad0.yaml")])
        eq((rc, out), (1, ""), "one bad file of two")
        rc, out, err = run_binary([FLAG, os.path.join(d.path, "missing.yaml")])
        eq(rc, 1, "missing file exit code")
        check("missing.yaml: cannot read" in err, "missing file stderr %r" % err)


def test_usage_errors():
    """No file, or the flag with -c / --check-config: usage, exit 2."""
    with _Dir() as d:
        path = d.write("a.yaml", EDGE)
        for args in ([FLAG], [FLAG, "-c", path, path], [FLAG, "--check-config", path, path],
                     [FLAG, "--bogus", path]):
            rc, out, err = run_binary(args)
            eq(rc, 2, "exit code of %r" % args)
            check("Usage:" in err, "usage on stderr for %r" % args)


def test_output_loads():
    """The converted configuration passes --check-config."""
    with _Dir() as d:
        rc, out, err = run_binary([FLAG, d.write("a.yaml", MESSAGING), d.write("b.yaml", EDGE)])
        eq(rc, 0, "convert")
        conf = json.loads(out)
        conf["store"] = {"type": "memory"}
        path = d.write("c.json", json.dumps(conf))
        rc, out, err = run_binary(["--check-config", path])
        eq((rc, out.strip()), (0, "%s: ok (%d policies)" % (path, len(conf["policies"]))),
           "--check-config of the converted file (%s)" % err)


# An envoyproxy/ratelimit file whose semantics the end-to-end test checks:
# per address 3/min; /login per address 2/min (the more specific value);
# any other path per address 5/min; a shadow_mode rule that never denies.
E2E = """\
domain: edge
descriptors:
  - key: remote_address
    rate_limit:
      unit: minute
      requests_per_unit: 3
  - key: path
    descriptors:
      - key: remote_address
        rate_limit:
          unit: minute
          requests_per_unit: 5
  - key: path
    value: /login
    descriptors:
      - key: remote_address
        rate_limit:
          unit: minute
          requests_per_unit: 2
  - key: canary
    shadow_mode: true
    rate_limit:
      unit: hour
      requests_per_unit: 1
"""


def test_converted_config_decides_over_grpc():
    """A YAML file converted, then served over gRPC: each descriptor gets
    the limit the YAML's semantics give it (the per-value /login entry
    before the general path one, whatever the file order), on both stores;
    a shadow_mode rule answers OK past its limit."""
    from harness import free_port, service
    from test_grpc import call, desc, rpc

    def admitted(cfg, entries, n):
        res = rpc(*[call(cfg, [desc(entries)]) for _ in range(n)])
        return [r["overall"] for r in res]

    with _Dir() as d:
        rc, out, err = run_binary([FLAG, d.write("edge.yaml", E2E)])
        eq(rc, 0, "convert (%s)" % err)
    for store in ("memory", "redis"):
        cfg = json.loads(out)
        cfg["grpc"] = {"listen": "127.0.0.1:%d" % free_port()}
        with service(cfg, store):
            # No x-ratelimit-* headers of ratelimitd's: Envoy's
            # enable_x_ratelimit_headers builds them, and both would give
            # the client each twice. A denial still has Retry-After.
            u = [["remote_address", "10.0.0.7"]]
            res = rpc(*[call(cfg, [desc(u)]) for _ in range(4)])
            eq([r["headers"] for r in res[:3]], [{}] * 3, store + ": no headers on OK")
            eq((res[3]["overall"], sorted(res[3]["headers"])), ("OVER_LIMIT", ["retry-after"]),
               store + ": only retry-after on OVER_LIMIT")
            ok, over = "OK", "OVER_LIMIT"
            eq(admitted(cfg, [["path", "/login"], ["remote_address", "10.0.0.1"]], 3),
               [ok, ok, over], store + ": /login, 2 per minute")
            eq(admitted(cfg, [["path", "/other"], ["remote_address", "10.0.0.1"]], 6),
               [ok] * 5 + [over], store + ": another path, 5 per minute")
            eq(admitted(cfg, [["remote_address", "10.0.0.1"]], 4),
               [ok, ok, ok, over], store + ": the address alone, 3 per minute")
            eq(admitted(cfg, [["remote_address", "10.0.0.2"]], 1), [ok],
               store + ": another address has its own count")
            eq(admitted(cfg, [["canary", "x"]], 3), [ok] * 3,
               store + ": shadow_mode never denies")


# envoyproxy/ratelimit's allow-list: every address 2 per minute, except
# 10.0.0.9, which is never limited (and, being more specific, is not
# counted by the general rule either); the unlimited value is written
# after the general rule, as such files usually do.
ALLOW_LIST = """\
domain: edge
descriptors:
  - key: remote_address
    rate_limit:
      unit: minute
      requests_per_unit: 2
  - key: remote_address
    value: 10.0.0.9
    rate_limit:
      unlimited: true
"""


def test_unlimited_allow_list_over_grpc():
    """An allow-listed value (unlimited: true) converted and served over
    gRPC: the listed address is never limited and its status has no
    current_limit; other addresses are limited; a call with both is
    decided by the limited one alone, and the listed one spends nothing
    of the general rule."""
    from harness import free_port, service
    from test_grpc import call, desc, rpc

    with _Dir() as d:
        rc, out, err = run_binary([FLAG, d.write("allow.yaml", ALLOW_LIST)])
        eq(rc, 0, "convert (%s)" % err)
    cfg = json.loads(out)
    eq([(p["name"], p["limits"]) for p in cfg["policies"]],
       [("edge.remote_address_10.0.0.9", []), ("edge.remote_address", _fixed(2, "1m"))],
       "the unlimited value first, without limits")
    for store in ("memory", "redis"):
        cfg["grpc"] = {"listen": "127.0.0.1:%d" % free_port()}
        with service(cfg, store):
            listed = [["remote_address", "10.0.0.9"]]
            res = rpc(*[call(cfg, [desc(listed)]) for _ in range(6)])
            eq([r["overall"] for r in res], ["OK"] * 6, store + ": the listed address")
            eq(res[-1]["statuses"], [{"code": "OK", "remaining": 0}],
               store + ": no current_limit for the listed address")
            eq(res[-1]["headers"], {}, store + ": no rate-limit headers")
            other = [["remote_address", "10.0.0.1"]]
            res = rpc(*[call(cfg, [desc(listed), desc(other)]) for _ in range(3)])
            eq([r["overall"] for r in res], ["OK", "OK", "OVER_LIMIT"],
               store + ": the listed and another address together")
            eq([s["code"] for s in res[-1]["statuses"]], ["OK", "OVER_LIMIT"],
               store + ": only the other address is over")
            check("limit" not in res[-1]["statuses"][0] and
                  res[-1]["statuses"][1]["limit"]["name"] == "edge.remote_address",
                  store + ": statuses %r" % res[-1]["statuses"])
            eq([r["overall"] for r in rpc(*[call(cfg, [desc(listed)]) for _ in range(3)])],
               ["OK"] * 3, store + ": the listed address after the other is over")


def test_large_file_converts_in_linear_time():
    """40,000 per-value entries beside a general one (3.4 MB, a common
    per-user list): converted in well under 10 s (names and composite
    keys are looked up in hash sets; comparing each with all the others
    took over 30 s), every value its own policy before the general one."""
    import time
    n = 40000
    lines = ["domain: big", "descriptors:"]
    for i in range(n):
        lines += ["  - key: user", "    value: u%d" % i,
                  "    rate_limit: {unit: minute, requests_per_unit: 10}"]
    lines += ["  - key: user", "    rate_limit: {unit: minute, requests_per_unit: 5}"]
    with _Dir() as d:
        path = d.write("big.yaml", "\n".join(lines) + "\n")
        start = time.monotonic()
        got = _convert(path)
        took = time.monotonic() - start
    check(took < 10, "converting %d entries took %.1f s" % (n, took))
    eq(len(got), n + 1, "policies")
    eq((got[0]["name"], got[n - 1]["name"], got[n]["name"]),
       ("big.user_u0", "big.user_u%d" % (n - 1), "big.user"), "order")
