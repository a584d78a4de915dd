"""The files of deploy/ that can be checked without a container engine or
a cluster: the systemd unit (systemd-analyze verify, make install), every
YAML and JSON file parses, the configs ratelimitd would load pass
--check-config, the Kubernetes objects and the compose stack have the
parts the docs promise, every nginx config passes nginx -t, the
Dockerfile is structurally sound."""

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile

import yaml

from harness import BINARY, ROOT, check, eq, free_port, run_binary
from test_nginx import nginx_binary

DEPLOY = os.path.join(ROOT, "deploy")
UNIT_IN = os.path.join(DEPLOY, "systemd", "ratelimitd.service.in")
NGINX_SNIPPET = os.path.join(DEPLOY, "nginx", "ratelimitd.conf")


def _files(ext):
    return sorted(glob.glob(os.path.join(DEPLOY, "**", "*." + ext), recursive=True))


def _unit_options(text):
    """{(section, key): [values]} of a unit file."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        out.setdefault((section, k), []).append(v)
    return out


def test_systemd_unit_verify():
    """systemd-analyze verify accepts the unit with no warning at all; it
    runs unprivileged, restarts on failure, is hardened, and reloads with
    SIGHUP. A unit with a mistake does produce output (the check works)."""
    analyze = shutil.which("systemd-analyze")
    check(analyze is not None, "systemd-analyze is not installed (Debian package systemd)")
    d = tempfile.mkdtemp(prefix="rl-unit-")
    try:
        with open(UNIT_IN) as f:
            text = f.read()
        text = text.replace("@bindir@", os.path.dirname(BINARY)).replace("@sysconfdir@", d)
        check(not re.search(r"@[a-z]+@", text), "unsubstituted @...@ left in the unit")
        unit = os.path.join(d, "ratelimitd.service")
        with open(unit, "w") as f:
            f.write(text)
        p = subprocess.run([analyze, "verify", unit], capture_output=True, timeout=60)
        out = (p.stdout + p.stderr).decode(errors="replace")
        eq(p.returncode, 0, "systemd-analyze verify exit code (%s)" % out)
        mine = [l for l in out.splitlines() if "ratelimitd.service" in l]
        eq(mine, [], "systemd-analyze verify output about the unit")

        opts = _unit_options(text)
        for key, want in ((("Service", "Restart"), ["on-failure"]),
                          (("Service", "NoNewPrivileges"), ["yes"]),
                          (("Service", "ProtectSystem"), ["strict"]),
                          (("Service", "DynamicUser"), ["yes"]),
                          (("Service", "User"), ["ratelimitd"]),
                          (("Install", "WantedBy"), ["multi-user.target"])):
            eq(opts.get(key), want, "unit %s=" % key[1])
        check(re.search(r"kill -HUP \$MAINPID", opts[("Service", "ExecReload")][0]),
              "ExecReload sends SIGHUP: %r" % opts[("Service", "ExecReload")])
        eq(shlex.split(opts[("Service", "ExecStart")][0]),
           [BINARY, "-c", os.path.join(d, "ratelimitd", "ratelimitd.json")], "ExecStart")

        bad = os.path.join(d, "broken.service")
        with open(bad, "w") as f:
            f.write(text.replace("Restart=on-failure", "Restart=sometimes"))
        p = subprocess.run([analyze, "verify", bad], capture_output=True, timeout=60)
        check("broken.service" in (p.stdout + p.stderr).decode(errors="replace"),
              "systemd-analyze verify said nothing about a bad Restart= value")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_make_install():
    """make install (DESTDIR) installs the binary, the unit, and the
    example config at the paths the unit names."""
    build = os.path.dirname(BINARY)
    check(os.path.exists(os.path.join(build, "Makefile")),
          "no Makefile next to %s: run from a build directory" % BINARY)
    d = tempfile.mkdtemp(prefix="rl-install-")
    try:
        p = subprocess.run(["make", "-C", build, "install", "DESTDIR=" + d],
                           capture_output=True, timeout=300)
        eq(p.returncode, 0, "make install (%s)" % p.stderr.decode(errors="replace")[-2000:])
        units = glob.glob(os.path.join(d, "**", "lib", "systemd", "system", "ratelimitd.service"),
                          recursive=True)
        eq(len(units), 1, "installed units")
        with open(units[0]) as f:
            opts = _unit_options(f.read())
        argv = shlex.split(opts[("Service", "ExecStart")][0])
        eq((len(argv), argv[1]), (3, "-c"), "installed ExecStart %r" % argv)
        for path in (argv[0], argv[2]):
            check(os.path.isfile(d + path), "the unit names %s, which make install did not "
                  "install" % path)
        check(os.access(d + argv[0], os.X_OK), "%s is not executable" % argv[0])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _cluster_store(conf):
    return conf.get("store", {}).get("cluster") is True


def _check_config(text, what):
    d = tempfile.mkdtemp(prefix="rl-cc-")
    try:
        path = os.path.join(d, "c.json")
        with open(path, "w") as f:
            f.write(text)
        rc, out, err = run_binary(["--check-config", path])
        eq(rc, 0, "ratelimitd --check-config %s (%s%s)" % (what, out, err))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_json_files():
    """Every JSON file under deploy/ parses; those ratelimitd loads pass
    --check-config (the Redis Cluster ones only parse here: the cluster
    store is checked by its own tests)."""
    files = _files("json")
    check(len(files) >= 3, "JSON files under deploy/: %r" % files)
    for path in files:
        with open(path) as f:
            text = f.read()
        try:
            conf = json.loads(text)
        except ValueError as e:
            raise AssertionError("%s does not parse: %s" % (path, e))
        if "policies" in conf and not _cluster_store(conf):
            _check_config(text, os.path.relpath(path, ROOT))
        if _cluster_store(conf):
            nodes = conf["store"].get("nodes")
            check(isinstance(nodes, list) and len(nodes) == 3 and
                  all(re.fullmatch(r"\d+\.\d+\.\d+\.\d+:\d+", n) for n in nodes),
                  "%s: store.nodes must be 3 numeric host:port: %r" % (path, nodes))


def _load_yaml(path):
    with open(path) as f:
        try:
            return [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            raise AssertionError("%s does not parse: %s" % (path, e))


def test_yaml_files():
    """Every YAML file under deploy/ parses."""
    files = _files("yaml") + _files("yml")
    check(len(files) >= 9, "YAML files under deploy/: %r" % files)
    for path in files:
        check(_load_yaml(path), "%s holds no document" % path)


def _k8s():
    """{kind: [objects]} of deploy/kubernetes/."""
    out = {}
    for path in sorted(glob.glob(os.path.join(DEPLOY, "kubernetes", "*.yaml"))):
        for doc in _load_yaml(path):
            check("apiVersion" in doc and "kind" in doc and doc.get("metadata", {}).get("name"),
                  "%s: a document without apiVersion/kind/metadata.name" % path)
            out.setdefault(doc["kind"], []).append(doc)
    return out


def _named(objs, name):
    for o in objs:
        if o["metadata"]["name"] == name:
            return o
    raise AssertionError("no object named %r" % name)


def test_kubernetes():
    """Deployment (readiness /ready, liveness /health, non-root), Service,
    HPA and PDB aimed at it, ConfigMap whose config passes --check-config,
    and the sidecar: ratelimitd next to an app, the proxy calling it on
    localhost."""
    k = _k8s()
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                 "ConfigMap"):
        check(kind in k, "no %s in deploy/kubernetes/" % kind)
    dep = _named(k["Deployment"], "ratelimitd")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    eq(dep["spec"]["selector"]["matchLabels"], labels, "Deployment selector")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    eq(c["readinessProbe"]["httpGet"]["path"], "/ready", "readiness probe")
    eq(c["livenessProbe"]["httpGet"]["path"], "/health", "liveness probe")
    check(dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True, "non-root")
    svc = _named(k["Service"], "ratelimitd")
    eq(svc["spec"]["selector"], labels, "Service selector")
    hpa = _named(k["HorizontalPodAutoscaler"], "ratelimitd")
    eq(hpa["spec"]["scaleTargetRef"]["name"], "ratelimitd", "HPA target")
    check(hpa["spec"]["minReplicas"] >= 2, "HPA minReplicas")
    pdb = _named(k["PodDisruptionBudget"], "ratelimitd")
    eq(pdb["spec"]["selector"]["matchLabels"], labels, "PDB selector")
    cm = _named(k["ConfigMap"], "ratelimitd-config")
    _check_config(cm["data"]["ratelimitd.json"], "of the ConfigMap")
    mounted = [v["configMap"]["name"] for v in dep["spec"]["template"]["spec"]["volumes"]]
    eq(mounted, ["ratelimitd-config"], "the Deployment mounts the ConfigMap")

    side = _named(k["Deployment"], "app-with-ratelimitd")
    names = [c["name"] for c in side["spec"]["template"]["spec"]["containers"]]
    check("ratelimitd" in names and len(names) >= 2, "sidecar containers: %r" % names)
    rl = [c for c in side["spec"]["template"]["spec"]["containers"] if c["name"] == "ratelimitd"][0]
    check("127.0.0.1:8080" in rl["args"], "the sidecar listens on localhost: %r" % rl["args"])
    proxy_conf = _named(k["ConfigMap"], "app-proxy-nginx")["data"]["ratelimitd.conf"]
    check("server 127.0.0.1:8080;" in proxy_conf, "the proxy calls ratelimitd on localhost")
    _nginx_t(proxy_conf, "the sidecar's nginx config")
    _same_locations(proxy_conf, "the sidecar's nginx config")


def test_compose():
    """compose.yaml: a 3-master Redis Cluster created with redis-cli,
    two ratelimitd replicas built from the Dockerfile, nginx in front."""
    (doc,) = _load_yaml(os.path.join(DEPLOY, "docker", "compose.yaml"))
    s = doc["services"]
    redis = [n for n, v in s.items() if "--cluster-enabled" in v.get("command", [])]
    eq(len(redis), 3, "cluster-enabled Redis services")
    init = [v for v in s.values() if "--cluster create" in " ".join(v.get("command", []))]
    eq(len(init), 1, "a service running redis-cli --cluster create")
    rl = [n for n, v in s.items() if v.get("build", {}).get("dockerfile") == "deploy/docker/Dockerfile"]
    eq(len(rl), 2, "ratelimitd replicas built from deploy/docker/Dockerfile")
    with open(os.path.join(DEPLOY, "docker", "ratelimitd-cluster.json")) as f:
        nodes = json.load(f)["store"]["nodes"]
    ips = sorted(v["networks"]["rl"]["ipv4_address"] + ":6379" for n, v in s.items() if n in redis)
    eq(sorted(nodes), ips, "the replicas' store.nodes are the compose Redis addresses")
    check("nginx" in s, "an nginx service")
    with open(os.path.join(DEPLOY, "docker", "nginx.conf")) as f:
        conf = f.read()
    for n in rl:
        check("server %s:8080;" % s[n]["networks"]["rl"]["ipv4_address"] in conf,
              "nginx.conf sends to replica %s" % n)
    _nginx_t(conf, "deploy/docker/nginx.conf")
    _same_locations(conf, "deploy/docker/nginx.conf")


def _locations(text):
    """The location blocks of an nginx config (braces matched, comments
    dropped), whitespace-normalised."""
    text = re.sub(r"#[^\n]*", "", text)
    out = []
    for m in re.finditer(r"(?m)^\s*location\b", text):
        depth, i = 0, text.index("{", m.start())
        while True:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        out.append(" ".join(text[m.start():i + 1].split()))
    return out


def _same_locations(text, what):
    """The copies carry the shipped snippet's location blocks unchanged."""
    with open(NGINX_SNIPPET) as f:
        want = _locations(f.read())
    got = _locations(text)
    check(len(want) == 3, "location blocks in %s: %d" % (NGINX_SNIPPET, len(want)))
    for b in want:
        check(b in got, "%s differs from deploy/nginx/ratelimitd.conf in: %s" % (what, b[:80]))


def _nginx_t(http_conf, what):
    """nginx -t on http_conf inside an http block with local paths."""
    d = tempfile.mkdtemp(prefix="rl-nginx-t-")
    try:
        inc = os.path.join(d, "site.conf")
        with open(inc, "w") as f:
            f.write(http_conf)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\n"
                    "http {\n  access_log off;\n  client_body_temp_path %s/cb;\n"
                    "  proxy_temp_path %s/p;\n  include %s;\n}\n" % (d, d, d, d, inc))
        p = subprocess.run([nginx_binary(), "-t", "-p", d, "-c", conf, "-e",
                            os.path.join(d, "error.log")], capture_output=True, timeout=30)
        eq(p.returncode, 0, "nginx -t on %s (%s)" % (what, p.stderr.decode(errors="replace")))
    finally:
        shutil.rmtree(d, ignore_errors=True)


DOCKER_INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY",
                       "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD",
                       "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def _dockerfile(path):
    """[(INSTRUCTION, arguments)] with continuation lines joined."""
    out, cur = [], ""
    with open(path) as f:
        for line in f:
            s = line.rstrip("\n")
            if not cur and (not s.strip() or s.lstrip().startswith("#")):
                continue
            if s.endswith("\\"):
                cur += s[:-1] + " "
                continue
            cur += s
            word, _, rest = cur.strip().partition(" ")
            out.append((word, rest.strip()))
            cur = ""
    check(cur == "", "%s ends in a continuation line" % path)
    return out


def test_dockerfile():
    """Known instructions only; two stages on debian:bookworm-slim; the
    runtime stage runs as a non-root user, has a HEALTHCHECK on /health,
    copies the binary from the build stage; every COPY source exists; the
    packages it installs exist in Debian (apt-cache, local lists)."""
    path = os.path.join(DEPLOY, "docker", "Dockerfile")
    ins = _dockerfile(path)
    for word, _ in ins:
        check(word in DOCKER_INSTRUCTIONS, "unknown Dockerfile instruction %r" % word)
    froms = [i for i, (w, _) in enumerate(ins) if w == "FROM"]
    eq(len(froms), 2, "stages")
    eq(ins[0][0], "FROM", "first instruction")
    eq(ins[froms[0]][1], "debian:bookworm-slim AS build", "build stage")
    eq(ins[froms[1]][1], "debian:bookworm-slim", "runtime stage")
    final = ins[froms[1]:]
    users = [a for w, a in final if w == "USER"]
    check(users and users[-1].split(":")[0] not in ("0", "root"), "non-root USER: %r" % users)
    hc = [a for w, a in final if w == "HEALTHCHECK"]
    check(len(hc) == 1 and "/health" in hc[0], "HEALTHCHECK on /health: %r" % hc)
    check(any(w == "COPY" and a.startswith("--from=build ") for w, a in final),
          "the runtime stage copies from the build stage")
    check(any(w == "ENTRYPOINT" and "ratelimitd" in a for w, a in final), "ENTRYPOINT")
    for w, a in ins:
        if w == "COPY" and not a.startswith("--from"):
            for src in a.split()[:-1]:
                check(src == "." or os.path.exists(os.path.join(ROOT, src)),
                      "COPY source %s does not exist" % src)
        if w == "RUN" and "apt-get install" in a:
            pkgs = [t for t in a.split("apt-get install", 1)[1].split("&&")[0].split()
                    if not t.startswith("-")]
            check(pkgs, "packages in %r" % a[:80])
            for pkg in pkgs:
                p = subprocess.run(["apt-cache", "show", pkg], capture_output=True, timeout=60)
                eq(p.returncode, 0, "apt-cache show %s (a package the Dockerfile installs)" % pkg)
    check(os.path.exists(path + ".dockerignore"), "Dockerfile.dockerignore")


def _docker_installs(stage):
    """The packages the RUN apt-get install lines of a Dockerfile stage
    (0: build, 1: runtime) install."""
    ins = _dockerfile(os.path.join(DEPLOY, "docker", "Dockerfile"))
    froms = [i for i, (w, _) in enumerate(ins) if w == "FROM"] + [len(ins)]
    pkgs = set()
    for w, a in ins[froms[stage]:froms[stage + 1]]:
        if w == "RUN" and "apt-get install" in a:
            pkgs.update(t for t in a.split("apt-get install", 1)[1].split("&&")[0].split()
                        if not t.startswith("-"))
    return pkgs


# The runtimes a sanitizer build links, and what they pull in (the
# image is built without sanitizers).
SANITIZER_RUNTIME = {"libasan8", "libubsan1", "liblsan0", "libtsan2"}
SANITIZER_DEPS = {"libgcc-s1", "libstdc++6"}


def test_dockerfile_has_every_dependency():
    """The build stage installs every library and tool the build needs
    (tests/lib.sh's RL_PACKAGES, less what only the tests use), and the
    runtime stage the package of every shared library the binary links
    (or one that depends on it): an image built without one fails at
    configure, or at start."""
    text = open(os.path.join(ROOT, "tests", "lib.sh")).read()
    listed = text.split("RL_PACKAGES=(", 1)[1].split(")", 1)[0].split()
    build = [p for p in listed if p.endswith("-dev") and p != "libc6-dev" or p.endswith("-compiler")]
    check(len(build) >= 8, "build packages read from tests/lib.sh: %r" % build)
    missing = sorted(set(build) - _docker_installs(0))
    eq(missing, [], "build packages the Dockerfile's build stage lacks")
    run = _docker_installs(1)
    p = subprocess.run(["apt-cache", "depends"] + sorted(run), capture_output=True, text=True,
                       timeout=60)
    deps = {ln.split(":", 1)[1].strip() for ln in p.stdout.splitlines()
            if ln.strip().startswith("Depends:")}
    ldd = subprocess.run(["ldd", BINARY], capture_output=True, text=True, timeout=30)
    linked = {}
    for line in ldd.stdout.splitlines():
        if "=>" not in line or not line.split("=>")[1].strip().startswith("/"):
            continue
        lib = line.split("=>")[1].split()[0]
        owner = subprocess.run(["dpkg", "-S", os.path.realpath(lib)], capture_output=True,
                               text=True, timeout=30)
        if owner.returncode != 0:
            owner = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True,
                                   timeout=30)
        linked[owner.stdout.split(":", 1)[0].strip()] = lib
    if SANITIZER_RUNTIME & set(linked):
        # A sanitizer build (tests/run.sh's ASan pass): the image has none.
        for pkg in SANITIZER_RUNTIME | SANITIZER_DEPS:
            linked.pop(pkg, None)
    lacking = ["%s (%s)" % (pkg, lib) for pkg, lib in sorted(linked.items())
               if pkg and pkg != "libc6" and pkg not in run and pkg not in deps]
    eq(lacking, [], "runtime packages the Dockerfile's runtime stage lacks")


def test_gateway_examples():
    """Envoy's ext_authz and Traefik's ForwardAuth point at /v1/authorize."""
    (envoy,) = _load_yaml(os.path.join(DEPLOY, "envoy", "envoy.yaml"))
    text = json.dumps(envoy)
    check("envoy.filters.http.ext_authz" in text, "the ext_authz filter")
    filters = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    hf = filters["typed_config"]["http_filters"]
    eq(hf[-1]["name"], "envoy.filters.http.router", "the router comes last")
    svc = hf[0]["typed_config"]["http_service"]
    eq(svc["path_prefix"], "/v1/authorize", "ext_authz path_prefix")
    clusters = [c["name"] for c in envoy["static_resources"]["clusters"]]
    check(svc["server_uri"]["cluster"] in clusters, "ext_authz cluster exists")
    (dyn,) = _load_yaml(os.path.join(DEPLOY, "traefik", "dynamic.yaml"))
    fa = dyn["http"]["middlewares"]["ratelimitd"]["forwardAuth"]
    check(fa["address"].endswith("/v1/authorize"), "ForwardAuth address: %r" % fa["address"])
    eq(dyn["http"]["routers"]["app"]["middlewares"], ["ratelimitd"], "router middlewares")
    (static,) = _load_yaml(os.path.join(DEPLOY, "traefik", "traefik.yaml"))
    eq(static["providers"]["file"]["filename"], "deploy/traefik/dynamic.yaml", "file provider")


def test_integrations_doc_snippets():
    """Every snippet of docs/integrations.md introduced by "From `FILE`:"
    is a verbatim part of FILE, so the guide shows what deploy/ ships."""
    with open(os.path.join(ROOT, "docs", "integrations.md")) as f:
        doc = f.read()
    blocks = re.findall(r"From `([^`]+)`:\n\n```[a-z]*\n(.*?)\n```", doc, re.S)
    check(len(blocks) >= 8, "snippets found in docs/integrations.md: %d" % len(blocks))
    for path, text in blocks:
        with open(os.path.join(ROOT, path)) as f:
            check(text in f.read(), "docs/integrations.md: the snippet from %s is not in the file "
                  "(first line: %r)" % (path, text.splitlines()[0]))


def _descriptor_keys(rate_limits):
    """The descriptor key lists Envoy builds from route rate_limits actions
    (remote_address and request_headers, the ones deploy/ uses)."""
    out = []
    for rl in rate_limits:
        keys = []
        for action in rl["actions"]:
            (kind, spec), = action.items()
            keys.append({"remote_address": lambda s: "remote_address",
                         "request_headers": lambda s: s["descriptor_key"]}[kind](spec))
        out.append(keys)
    return out


def _converted(path):
    rc, out, err = run_binary(["--convert-envoy-ratelimit", path])
    eq(rc, 0, "--convert-envoy-ratelimit %s (%s)" % (os.path.relpath(path, ROOT), err))
    return json.loads(out)["policies"]


def test_grpc_gateway_examples():
    """Envoy's rate_limit filter (transport V3, an HTTP/2 cluster on
    ratelimitd's gRPC port), Istio's EnvoyFilter and Envoy Gateway's
    BackendTrafficPolicy: each descriptor their actions send has a policy
    converted from the envoyproxy/ratelimit file next to them, in their
    domain."""
    (envoy,) = _load_yaml(os.path.join(DEPLOY, "envoy", "envoy-grpc.yaml"))
    hcm = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hf = hcm["http_filters"]
    eq([f["name"] for f in hf], ["envoy.filters.http.ratelimit", "envoy.filters.http.router"],
       "http filters")
    rl = hf[0]["typed_config"]
    eq(rl["rate_limit_service"]["transport_api_version"], "V3", "transport_api_version")
    cname = rl["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"]
    (cluster,) = [c for c in envoy["static_resources"]["clusters"] if c["name"] == cname]
    opts = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    check("http2_protocol_options" in opts["explicit_http_config"], "the gRPC cluster is HTTP/2")
    sock = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"]
    eq(sock["port_value"], 8081, "ratelimitd's gRPC port")

    policies = _converted(os.path.join(DEPLOY, "envoy", "ratelimit.yaml"))
    eq({p["match"]["domain"] for p in policies}, {rl["domain"]}, "converted domains")
    # One source of x-ratelimit-* headers: Envoy builds them, so the
    # policies send none (both would give clients each header twice).
    eq(rl.get("enable_x_ratelimit_headers"), "DRAFT_VERSION_03", "Envoy builds the headers")
    eq({p["headers"] for p in policies}, {"none"}, "converted policies send no headers")
    shapes = [[e["key"] for e in p["match"]["descriptor"]] for p in policies]
    sent = _descriptor_keys(hcm["route_config"]["virtual_hosts"][0]["rate_limits"])
    for keys in sent:
        check(keys in shapes, "no converted policy for the descriptor %r (have %r)" % (keys, shapes))

    svc, filt, actions = _load_yaml(os.path.join(DEPLOY, "istio", "envoyfilter-ratelimit.yaml"))
    eq((svc["kind"], filt["kind"], actions["kind"]), ("Service", "EnvoyFilter", "EnvoyFilter"),
       "Istio objects")
    port = svc["spec"]["ports"][0]
    eq((port["port"], port["appProtocol"]), (8081, "grpc"), "the gRPC Service port")
    ivalue = filt["spec"]["configPatches"][0]["patch"]["value"]
    eq(ivalue["name"], "envoy.filters.http.ratelimit", "Istio's inserted filter")
    irl = ivalue["typed_config"]
    eq((irl["domain"], irl["rate_limit_service"]["transport_api_version"]), (rl["domain"], "V3"),
       "Istio filter domain and transport")
    eq(irl.get("enable_x_ratelimit_headers"), "DRAFT_VERSION_03", "Istio's Envoy builds the headers")
    fqdn = "%s.%s.svc.cluster.local" % (svc["metadata"]["name"], svc["metadata"]["namespace"])
    eq(irl["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"],
       "outbound|%d||%s" % (port["port"], fqdn), "Istio's cluster for the Service")
    eq(_descriptor_keys(actions["spec"]["configPatches"][0]["patch"]["value"]["rate_limits"]),
       sent, "Istio's actions send the same descriptors")

    btp, patch = _load_yaml(os.path.join(DEPLOY, "envoy-gateway",
                                          "backendtrafficpolicy-ratelimit.yaml"))
    eq((btp["kind"], btp["spec"]["rateLimit"]["type"]), ("BackendTrafficPolicy", "Global"),
       "BackendTrafficPolicy")
    rule = btp["spec"]["rateLimit"]["global"]["rules"][0]
    (jp,) = patch["spec"]["jsonPatches"]
    eq((patch["kind"], jp["name"], jp["operation"]["value"]),
       ("EnvoyPatchPolicy", "ratelimit_cluster", {"address": fqdn, "port_value": 8081}),
       "the patch points Envoy Gateway's rate-limit cluster at ratelimitd")
    (eg,) = _converted(os.path.join(DEPLOY, "envoy-gateway", "ratelimit.yaml"))
    eq(eg["limits"], [{"requests": rule["limit"]["requests"], "algorithm": "fixed_window",
                       "per": {"Hour": "1h"}[rule["limit"]["unit"]]}],
       "the converted Envoy Gateway limit is the BackendTrafficPolicy's")
