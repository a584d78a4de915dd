"""TLS and ACL AUTH to a standalone Redis: a TLS-only redis-server with a
test CA made by the test with openssl, requiring client certificates; a
redis-server whose only user is an ACL user; and the config checks of
store.tls."""

import json
import os
import shutil
import tempfile
import time

from cluster import Node, acl_args, daemons, make_ca
from harness import SLOW, Ratelimitd, check, config, eq, limit, policy, run_binary, wait_until

CFG = config(policy("p", "/*", [limit(3, "1h")], key=["tenant"]), workers=2)


def _store(node, **extra):
    cfg = {"type": "redis", "address": node.addr, "timeout_ms": 500}
    cfg.update(extra)
    return cfg


def _decide_ok(d, tenant, remaining):
    r = d.request("POST", "/v1/decide", json_body={"path": "/a", "tenant": tenant})
    eq((r.status, r.json["allowed"], r.json["degraded"], r.json["remaining"]),
       (200, True, False, remaining), "decision (%r)" % r.body[:200])


def _expect_down(d, what):
    """/ready 503 with the node down, and a degraded decision."""
    r = d.request("GET", "/ready")
    eq((r.status, r.json["store"]), (503, "disconnected"), "%s: /ready" % what)
    eq(list(r.json["nodes"].values()), ["down"], "%s: node state" % what)
    r = d.request("POST", "/v1/decide", json_body={"path": "/a", "tenant": "x"})
    eq((r.status, r.json["allowed"], r.json["degraded"]), (200, True, True),
       "%s: decision" % what)


def test_redis_tls_standalone():
    """Over TLS with a client certificate: the server's certificate checked
    by name (server_name) or by IP address; a wrong CA, a wrong name, no
    client certificate or plain TCP each leave the store down (degraded
    decisions, /ready 503) with the reason in the log."""
    tmp = tempfile.mkdtemp(prefix="rl-ca-")
    tls = make_ca(tmp)
    node = Node(cluster=False, tls=tls).start()
    good = {"ca_file": tls["ca"], "cert_file": tls["client_cert"],
            "key_file": tls["client_key"]}
    bad = []
    try:
        cfg = dict(CFG, store=_store(node, tls=dict(good, server_name="redis.test")))
        with daemons(cfg) as (d,):
            _decide_ok(d, "a", 2)
            _decide_ok(d, "a", 1)
            r = d.request("GET", "/ready")
            eq((r.status, r.json["nodes"]), (200, {node.addr: "up"}), "/ready over TLS")
        eq(node.call("EXISTS", "rl:{p|a}:lg1h"), 1, "the key written over TLS")
        cfg = dict(CFG, store=_store(node, tls=good))
        with daemons(cfg) as (d,):
            _decide_ok(d, "a", 0)

        cases = [
            ("another CA", dict(good, ca_file=tls["other_ca"]), "certificate verify failed"),
            ("a wrong server_name", dict(good, server_name="other.test"),
             "certificate verify failed"),
            ("no client certificate", {"ca_file": tls["ca"]}, "redis connection failed"),
            ("plain TCP", None, "redis connection failed"),
        ]
        for what, t, _ in cases:
            store = _store(node) if t is None else _store(node, tls=t)
            bad.append(Ratelimitd(dict(CFG, store=store)).start(ready=False))
        time.sleep(0.5 * SLOW)
        for (what, _, reason), d in zip(cases, bad):
            _expect_down(d, what)
            wait_until(lambda: reason in open(d.log_path).read(), 2.0 * SLOW,
                       what="%r in the log (%s)" % (reason, what))
            d.stop()
    finally:
        for d in bad:
            d.cleanup()
        node.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


test_redis_tls_standalone.timeout = 60


def test_redis_acl_user_standalone():
    """A redis-server whose only user is an ACL user: AUTH username
    password works; a wrong username leaves the store down; the password
    reaches no log."""
    user, password = "limiter", "acl-pw-7730"
    node = Node(cluster=False, extra_args=acl_args(user, password), user=user,
                password=password).start()
    try:
        cfg = dict(CFG, store=_store(node, username=user, password=password))
        with daemons(cfg) as (d,):
            _decide_ok(d, "a", 2)
            log = d.log_path
        wrong = Ratelimitd(dict(CFG, store=_store(node, username="nobody", password=password)),
                           ["-v"])
        try:
            wrong.start(ready=False)
            time.sleep(0.3 * SLOW)
            _expect_down(wrong, "wrong username")
            wrong.stop()
            for path in (log, wrong.log_path):
                check(password not in open(path, errors="replace").read(),
                      "the password appears in %s" % path)
        finally:
            wrong.cleanup()
    finally:
        node.cleanup()


test_redis_acl_user_standalone.timeout = 60


def test_tls_config_checked():
    """--check-config loads the TLS files: a key that does not match its
    certificate, a file that is not PEM, a missing file and a lone cert
    are each one clear error naming the field."""
    tmp = tempfile.mkdtemp(prefix="rl-ca-")
    tls = make_ca(tmp)
    junk = os.path.join(tmp, "junk.pem")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    cases = [
        ({"cert_file": tls["client_cert"], "key_file": tls["server_key"]},
         "store.tls.key_file: cannot load %s: " % tls["server_key"]),
        ({"cert_file": junk, "key_file": tls["client_key"]},
         "store.tls.cert_file: cannot load %s: " % junk),
        ({"ca_file": junk}, "store.tls.ca_file: cannot load %s: " % junk),
        ({"ca_file": os.path.join(tmp, "missing.crt")},
         "store.tls.ca_file: cannot read \"%s\": No such file or directory" %
         os.path.join(tmp, "missing.crt")),
        ({"cert_file": tls["client_cert"]}, "store.tls.cert_file: needs store.tls.key_file"),
        ({"verify": False}, "store.tls.verify: unknown field"),
    ]
    try:
        path = os.path.join(tmp, "c.json")
        for t, msg in cases:
            cfg = dict(CFG, store={"type": "redis", "address": "127.0.0.1:6379", "tls": t,
                                   "password": "pw-never-shown"})
            with open(path, "w") as f:
                json.dump(cfg, f)
            rc, out, err = run_binary(["--check-config", path])
            eq(rc, 1, "exit code for %r" % t)
            check(msg in err, "error for %r: expected %r in %r" % (t, msg, err))
            check("pw-never-shown" not in out + err, "password in the output")
        cfg = dict(CFG, store={"type": "redis", "address": "127.0.0.1:6379", "password": "pw-x",
                               "tls": {"ca_file": tls["ca"], "cert_file": tls["client_cert"],
                                       "key_file": tls["client_key"],
                                       "server_name": "redis.test"}})
        with open(path, "w") as f:
            json.dump(cfg, f)
        rc, out, err = run_binary(["--check-config", path])
        eq((rc, out.strip()), (0, "%s: ok (1 policies)" % path), "a valid TLS config")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
