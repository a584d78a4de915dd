"""Path normalisation before matching ("paths", docs/security.md): the
spellings of one path a backend serves alike are counted against one
policy and one key on /v1/decide and /v1/authorize; "%2F" stays encoded;
dot segments are refused also when normalising makes them; requests no
policy matches may be denied ("unmatched": "deny"); "normalize": false
keeps the path as sent."""

from harness import STORES, check, config, eq, limit, parametrize, policy, service

LOGIN = policy("login", "/api/login", [limit(3, "1h")], key=["tenant", "path"])
# The five spellings the issue found dodging a policy on /api/login.
VARIANTS = ["/api/login/", "/API/login", "/api/%6cogin", "/api/login;x", "//api/login"]
NOCASE = {"case_sensitive": False}


def _auth(svc, uri, tenant):
    return svc.d.request("GET", "/v1/authorize",
                         headers={"X-Original-URI": uri, "X-Original-Method": "GET",
                                  "X-Tenant-Id": tenant})


def _variants(store):
    """3 per hour on /api/login: the first three spellings are allowed
    under "login", the fourth and fifth denied, on both front ends."""
    with service(config(LOGIN, paths=NOCASE), store) as svc:
        for i, path in enumerate(VARIANTS):
            r = svc.decide(path=path, tenant="t1")
            eq(r.status, 200, "decide %s (%r)" % (path, r.body[:200]))
            eq(r.json["policy"], "login", "policy of %s" % path)
            eq(r.json["allowed"], i < 3, "allowed of %s (#%d)" % (path, i + 1))
        for i, path in enumerate(VARIANTS):
            r = _auth(svc, path, "t2")
            eq(r.status, 200 if i < 3 else 429, "authorize %s (#%d)" % (path, i + 1))


parametrize(globals(), "test_paths_variants", _variants, STORES)


def test_paths_encoded_separator_and_dots():
    """%2F (any case) is not a separator: unmatched, allowed; a dot
    segment is 422 VAL_002 whether sent as "%2e%2e" or made by cutting
    ";x"; an empty segment and the root keep working."""
    with service(config(LOGIN, policy("root", "/", [limit(1, "1h")], key=["tenant"])),
                 "memory") as svc:
        for path in ("/api%2Flogin", "/api%2flogin"):
            r = svc.decide(path=path, tenant="t")
            eq((r.status, r.json["policy"], r.json["allowed"]), (200, None, True), path)
        for path in ("/api/%2e%2e/login", "/api/..;x/login", "/api/.%2E;y/login"):
            r = svc.decide(path=path, tenant="t")
            eq((r.status, r.json.get("code")), (422, "VAL_002"), "decide %s" % path)
            r = _auth(svc, path, "t")
            eq(r.status, 422, "authorize %s" % path)
        eq(svc.decide(path="//", tenant="t").json["policy"], "root", "// is /")
        eq(svc.decide(path="/", tenant="t").json["allowed"], False, "/ counted with //")


def test_paths_case_sensitive_default():
    """Without case_sensitive false, /API/login is another path."""
    with service(config(LOGIN), "memory") as svc:
        eq(svc.decide(path="/API/login", tenant="t").json["policy"], None, "/API/login")
        eq(svc.decide(path="/api/login/", tenant="t").json["policy"], "login", "/api/login/")


def test_paths_normalize_false():
    """"normalize": false matches the path as sent, as before: every
    variant but the exact path is unmatched, and ";x" makes no dot."""
    with service(config(LOGIN, paths={"normalize": False}), "memory") as svc:
        for path in ["/api/login/", "/api/%6cogin", "/api/login;x", "//api/login"]:
            r = svc.decide(path=path, tenant="t")
            eq((r.json["policy"], r.json["allowed"]), (None, True), path)
        r = svc.decide(path="/api/..;x/login", tenant="t")
        eq((r.status, r.json["policy"]), (200, None), "/api/..;x/login as sent")


def test_paths_unmatched_deny():
    """"unmatched": "deny": a request no policy matches is denied with
    403 and the UNKNOWN_POLICY body (or deny.status / deny.body), policy
    null, nothing else changed; a matched request is decided as usual."""
    with service(config(LOGIN, paths={"unmatched": "deny"}), "memory") as svc:
        r = svc.decide(path="/other", tenant="t")
        eq(r.status, 200, "decide answers the verdict")
        v = r.json
        eq((v["allowed"], v["policy"], v["policies"], v["status"]),
           (False, None, [], 403), "unmatched verdict")
        eq(v["body"], {"error": "no policy applies to the request", "code": "VAL_002"}, "body")
        eq(svc.decide(path="/api/login", tenant="t").json["allowed"], True, "matched")
        r = _auth(svc, "/other", "t")
        eq((r.status, r.json), (403, v["body"]), "authorize unmatched")
        r = svc.request("POST", "/v1/decide/batch",
                        json_body={"requests": [{"path": "/other"}, {"path": "/api/login",
                                                                     "tenant": "t"}]})
        eq(r.status, 200, "batch (%r)" % r.body[:200])
        items = r.json["results"]
        eq([i["allowed"] for i in items], [False, True], "batch items")
        eq(items[0]["status"], 403, "batch unmatched status")
    body = {"message": "not here: {policy}"}
    with service(config(LOGIN, paths={"unmatched": "deny",
                                      "deny": {"status": 429, "body": body}}), "memory") as svc:
        v = svc.decide(path="/other").json
        eq((v["allowed"], v["status"], v["body"]), (False, 429, {"message": "not here: "}),
           "configured deny")


def test_paths_config_errors():
    """Bad "paths" values are refused at load, naming the field."""
    from harness import run_binary, ROOT  # noqa: F401
    import json
    import os
    import tempfile
    for paths, field in (({"normalize": 1}, "paths.normalize"),
                         ({"unmatched": "drop"}, "paths.unmatched"),
                         ({"deny": {"status": 200}}, "paths.deny.status"),
                         ({"extra": True}, "paths.extra")):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(config(LOGIN, paths=paths), f)
        try:
            rc, out, err = run_binary(["--check-config", f.name])
        finally:
            os.unlink(f.name)
        check(rc != 0 and field in (out + err), "%r refused naming %s: %r" % (paths, field, err))
