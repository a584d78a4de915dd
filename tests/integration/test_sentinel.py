"""Redis Sentinel: 1 master, 1 replica and 3 sentinels (Debian's
redis-sentinel) on free loopback ports, every one with a password (the
master's is store.password, the sentinels' own store.sentinel.password).
Exact counts before and after a failover; SIGKILL of the master under
load: no request waits past the store deadline, normal decisions again
within 10 s, /ready follows. The same over TLS (store.tls for the master
and the sentinels) with a SENTINEL FAILOVER, where the old master lives
on as a replica. The errors of the new config fields, and
deploy/quickstart.sh --sentinel."""

import contextlib
import json
import os
import random
import re
import shutil
import socketserver
import subprocess
import tempfile
import threading
import time

import harness
from cluster import Node, TlsRespClient, make_ca, tls_server_args
from harness import (SLOW, Ratelimitd, Redis, RedisError, RespClient, TestFailure, check,
                     check_config, config, eq, limit, policy, wait_until)
from test_quickstart_cluster import _free_run

MASTER = "mymaster"
MASTER_PW = "master-pw-7a1f"
SENTINEL_PW = "sentinel-pw-93c2"
TIMEOUT_MS = 100


class Sentinel(Redis):
    """A throwaway redis-sentinel on a free loopback port in a temp dir,
    stopped by pid like harness's Redis (whose stop, kill and cleanup it
    keeps). Its config names its own id, the replica and the other
    sentinels, so the three know each other at once instead of after a
    few hello rounds."""

    def __init__(self, port, myid, peers, master_port, replica_port, tls=None):
        super().__init__(port, SENTINEL_PW)
        self.tls = tls
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            if tls is None:
                f.write("port %d\n" % self.port)
            else:
                args = tls_server_args(tls)
                f.write("port 0\ntls-port %d\ntls-replication yes\n" % self.port)
                for k, v in zip(args[::2], args[1::2]):
                    f.write("%s %s\n" % (k[2:], v))
            f.write("bind 127.0.0.1\ndir %s\n" % self.dir)
            f.write("requirepass %s\nsentinel sentinel-pass %s\n" % (SENTINEL_PW, SENTINEL_PW))
            f.write("sentinel monitor %s 127.0.0.1 %d 2\n" % (MASTER, master_port))
            f.write("sentinel auth-pass %s %s\n" % (MASTER, MASTER_PW))
            f.write("sentinel down-after-milliseconds %s 1000\n" % MASTER)
            f.write("sentinel failover-timeout %s 3000\n" % MASTER)
            f.write("sentinel myid %s\n" % myid)
            f.write("sentinel known-replica %s 127.0.0.1 %d\n" % (MASTER, replica_port))
            for peer_port, peer_id in peers:
                f.write("sentinel known-sentinel %s 127.0.0.1 %d %s\n"
                        % (MASTER, peer_port, peer_id))
        with open(os.path.join(self.dir, "sentinel.log"), "ab") as log:
            self.proc = subprocess.Popen(["redis-sentinel", conf],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        harness._live.append(self)

    def client(self, timeout=2.0):
        if self.tls is None:
            return RespClient(self.port, SENTINEL_PW, timeout=timeout)
        c = TlsRespClient(self.port, self.tls, timeout=timeout)
        c.call("AUTH", SENTINEL_PW)
        return c

    def quorum_ok(self):
        """True once this sentinel sees 3 usable sentinels."""
        if self.proc.poll() is not None:
            raise TestFailure("redis-sentinel exited with %s" % self.proc.returncode)
        try:
            return "3 usable" in self.call("SENTINEL", "CKQUORUM", MASTER)
        except (RedisError, OSError):
            return False


def _link_up(replica):
    return "master_link_status:up" in replica.call("INFO", "replication")


def _redis(tls):
    """A redis-server with MASTER_PW (for clients and as a replica), plain
    or TLS-only (replication over TLS too)."""
    extra = ["--requirepass", MASTER_PW, "--masterauth", MASTER_PW,
             "--repl-diskless-sync-delay", "0"]
    if tls is not None:
        extra += ["--tls-replication", "yes"]
    return Node(cluster=False, extra_args=extra, password=MASTER_PW, tls=tls).start()


@contextlib.contextmanager
def sentinel_setup(tls=None):
    """(master, replica, [3 sentinels]), every one ready: the replica in
    sync, each sentinel seeing the other two."""
    started = []
    try:
        master = _redis(tls)
        started.append(master)
        replica = _redis(tls)
        started.append(replica)
        replica.call("REPLICAOF", "127.0.0.1", str(master.port))
        wait_until(lambda: _link_up(replica), 10.0 * SLOW, what="replica in sync")
        base = _free_low_run(3)
        ports = [base, base + 1, base + 2]
        ids = [os.urandom(20).hex() for _ in range(3)]
        sentinels = []
        for i in range(3):
            peers = [(ports[j], ids[j]) for j in range(3) if j != i]
            sentinels.append(Sentinel(ports[i], ids[i], peers, master.port, replica.port, tls))
        started.extend(sentinels)
        for s in sentinels:
            wait_until(s.quorum_ok, 15.0 * SLOW, what="sentinel quorum on %d" % s.port)
        yield master, replica, sentinels
    finally:
        for p in reversed(started):
            p.cleanup()


def sentinel_store(sentinels, **extra):
    store = {"type": "redis", "timeout_ms": TIMEOUT_MS, "password": MASTER_PW,
             "sentinel": {"master": MASTER, "password": SENTINEL_PW,
                          "nodes": ["127.0.0.1:%d" % s.port for s in sentinels]}}
    store.update(extra)
    return store


CFG = config(policy("api", "/api/*", [limit(20, "1h")], key=["tenant"],
                    failure_mode="closed"))


def _admitted(d, tenant, n):
    """n decisions for tenant: how many were admitted (each must be a
    normal decision of the store, not degraded)."""
    c = d.client()
    allowed = 0
    try:
        for _ in range(n):
            r = c.decide(path="/api/x", tenant=tenant)
            check(r.status in (200, 429), "decision status %d: %r" % (r.status, r.body[:200]))
            v = r.json
            check(v.get("degraded") is False, "degraded verdict %r" % r.body[:200])
            allowed += 1 if v["allowed"] else 0
    finally:
        c.close()
    return allowed


def _ready(d):
    r = d.request("GET", "/ready", timeout=2.0)
    return r.status, r.json


class _Load:
    """Decisions in a loop on two threads, each tenant used once, every
    reply's (start, elapsed, normal) recorded."""

    def __init__(self, d):
        self.d = d
        self.stop = threading.Event()
        self.results = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(2)]

    def _run(self, i):
        c = self.d.client()
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                t0 = time.monotonic()
                r = c.decide(path="/api/x", tenant="load-%d-%d" % (i, n))
                normal = r.status == 200 and r.json.get("degraded") is False
                with self.lock:
                    self.results.append((t0, r.elapsed, normal, r.status))
                time.sleep(0.005)
        finally:
            c.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(10.0)


def test_sentinel_failover():
    """The master the sentinels name serves exact counts; with one sentinel
    gone (SIGKILL), then SIGKILL of the master, the replica is promoted
    and ratelimitd follows: no reply past the deadline, normal decisions
    within 10 s, /ready not ready during and ready after with "nodes"
    naming the new master; exact counts on it; no password in the log."""
    with sentinel_setup() as (master, replica, sentinels):
        cfg = dict(CFG, store=sentinel_store(sentinels), workers=2)
        d = Ratelimitd(cfg).start()
        try:
            status, body = _ready(d)
            eq(status, 200, "/ready before the failover")
            nodes = body["nodes"]
            eq(nodes.get("127.0.0.1:%d" % master.port), "up", "the master in nodes %r" % nodes)
            for s in sentinels:
                eq(nodes.get("sentinel 127.0.0.1:%d" % s.port), "up",
                   "sentinel %d in nodes %r" % (s.port, nodes))
            eq(_admitted(d, "before", 30), 20, "admitted of 30 (limit 20), before")
            # The first sentinel (the one asked first, maybe the one
            # subscribed to) goes; the other two still make the quorum.
            sentinels[0].kill_hard()
            wait_until(lambda: _ready(d)[1]["nodes"].get(
                "sentinel 127.0.0.1:%d" % sentinels[0].port) == "down", 5.0 * SLOW,
                what="the killed sentinel down in /ready")
            eq(_ready(d)[0], 200, "/ready with one sentinel down")

            with _Load(d) as load:
                time.sleep(0.3)
                killed = time.monotonic()
                master.kill_hard()
                seen_down = False
                deadline = killed + 15.0 * SLOW
                while time.monotonic() < deadline:
                    status, body = _ready(d)
                    if status == 503:
                        seen_down = True
                    elif seen_down and body.get("nodes", {}).get(
                            "127.0.0.1:%d" % replica.port) == "up":
                        break
                    time.sleep(0.05)
                else:
                    raise TestFailure("/ready did not follow the failover: %r\n%s"
                                      % (body, d.stderr()))
                ready_after = time.monotonic() - killed
                print("ready %.2fs after the kill" % ready_after)
                time.sleep(0.5)
            check(seen_down, "/ready said not ready during the failover")
            check("127.0.0.1:%d" % master.port not in body["nodes"],
                  "the old master left nodes: %r" % body["nodes"])
            results = load.results
            check(len(results) > 50, "decisions under load: %d" % len(results))
            slowest = max(e for _, e, _, _ in results)
            check(slowest < (TIMEOUT_MS / 1000.0 + 0.4) * SLOW,
                  "slowest decision %.3fs (store deadline %d ms)" % (slowest, TIMEOUT_MS))
            bad = [t for t, _, normal, _ in results if not normal and t >= killed]
            check(bad, "some decisions failed while no master was reachable")
            last_bad = max(bad) - killed
            check(last_bad < 10.0 * SLOW,
                  "last failed decision %.1fs after the kill (ready after %.1fs)"
                  % (last_bad, ready_after))
            after = [normal for t, _, normal, _ in results if t > max(bad)]
            check(after and all(after), "every decision after the failover was normal")

            eq(_admitted(d, "after", 30), 20, "admitted of 30 (limit 20), on the new master")
            eq(_switches(d), 2, "master switches in /metrics (one per worker)")
            log = d.stderr()
            for secret in (MASTER_PW, SENTINEL_PW):
                check(secret not in log, "a password in the log")
            d.stop()
        finally:
            d.cleanup()


test_sentinel_failover.timeout = 60


def _switches(d):
    """ratelimitd_store_master_switches_total of /metrics."""
    for line in d.request("GET", "/metrics").body.decode().splitlines():
        if line.startswith("ratelimitd_store_master_switches_total "):
            return int(line.split()[1])
    raise TestFailure("no ratelimitd_store_master_switches_total in /metrics")


def _ready_with(d, node):
    """Waits until /ready is 200 with node "up" in "nodes"; returns them."""
    wait_until(lambda: _ready(d)[0] == 200 and _ready(d)[1]["nodes"].get(node) == "up",
               15.0 * SLOW, what="/ready 200 with %s up" % node)
    return _ready(d)[1]["nodes"]


def test_sentinel_tls_failover():
    """Everything over TLS with client certificates (store.tls for the
    master and the sentinels, the sentinels' AUTH): exact counts; after
    SENTINEL FAILOVER (the old master lives on, until the sentinels demote
    it) every worker moves to the promoted replica, and the quota was
    kept."""
    tmp = tempfile.mkdtemp(prefix="rl-ca-")
    try:
        tls = make_ca(tmp)
        with sentinel_setup(tls) as (master, replica, sentinels):
            store = sentinel_store(sentinels, tls={
                "ca_file": tls["ca"], "cert_file": tls["client_cert"],
                "key_file": tls["client_key"]})
            store["timeout_ms"] = 500
            d = Ratelimitd(dict(CFG, store=store, workers=2)).start()
            try:
                nodes = _ready_with(d, "127.0.0.1:%d" % master.port)
                for s in sentinels:
                    eq(nodes.get("sentinel 127.0.0.1:%d" % s.port), "up",
                       "sentinel %d over TLS in %r" % (s.port, nodes))
                eq(_admitted(d, "before", 30), 20, "admitted of 30 (limit 20), before")
                # Replication is asynchronous: let the replica catch up first.
                eq(master.call("WAIT", "1", "2000"), 1, "replicas in sync before the failover")
                sentinels[0].call("SENTINEL", "FAILOVER", MASTER)
                _ready_with(d, "127.0.0.1:%d" % replica.port)
                # Both workers moved (each has its own Sentinel client).
                wait_until(lambda: _switches(d) == 2, 5.0 * SLOW, what="2 master switches")
                for _ in range(6):
                    nodes = _ready(d)[1]["nodes"]
                    check("127.0.0.1:%d" % master.port not in nodes,
                          "the demoted master left nodes: %r" % nodes)
                eq(_admitted(d, "before", 10), 0, "admitted after the failover (quota kept)")
                eq(_admitted(d, "after", 30), 20, "admitted of 30 on the new master")
                d.stop()
            finally:
                d.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


test_sentinel_tls_failover.timeout = 60


class FakeSentinel:
    """A stand-in sentinel on a free loopback port: it names whatever
    self.named is ("host", port) for SENTINEL get-master-addr-by-name
    (None: a nil, bytes: that raw reply),
    accepts SUBSCRIBE +switch-master (and PING), and publish() sends a
    message to every subscriber. Lets a test make a sentinel lie."""

    def __init__(self):
        self.named = None
        self.subscribers = []
        self.lock = threading.Lock()
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self):
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    while True:
                        line = self.rfile.readline()
                        if not line.startswith(b"*"):
                            return
                        argv = []
                        for _ in range(int(line[1:])):
                            n = int(self.rfile.readline()[1:])
                            argv.append(self.rfile.read(n + 2)[:-2].decode())
                        self.wfile.write(fake._answer(self.wfile, argv))
                except (OSError, ValueError):
                    return

        return Handler

    def _answer(self, w, argv):
        cmd = [a.lower() for a in argv[:2]]
        if cmd == ["sentinel", "get-master-addr-by-name"]:
            if self.named is None:
                return b"*-1\r\n"
            if isinstance(self.named, bytes):
                return self.named  # a raw reply, e.g. an error
            return _resp([self.named[0], str(self.named[1])])
        if cmd[0] == "subscribe":
            with self.lock:
                self.subscribers.append(w)
            return _resp(["subscribe", argv[1]], 1)
        if cmd[0] == "ping":
            return _resp(["pong", ""])
        return b"-ERR unknown command\r\n"

    def publish(self, message):
        with self.lock:
            for w in self.subscribers:
                try:
                    w.write(_resp(["message", "+switch-master", message]))
                except OSError:
                    pass

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _resp(strings, count=None):
    """A RESP array of bulk strings, and an integer last when given."""
    out = b"*%d\r\n" % (len(strings) + (count is not None))
    for x in strings:
        out += b"$%d\r\n%s\r\n" % (len(x), x.encode())
    if count is not None:
        out += b":%d\r\n" % count
    return out


def test_sentinel_role_checked():
    """A node a sentinel names is used only if ROLE says master: a sentinel
    that names a replica (by a reply, then by a +switch-master message)
    leaves ratelimitd not ready, or on the master it has; naming the
    master makes it ready."""
    fake = FakeSentinel()
    master = replica = d = None
    try:
        master = _redis(None)
        replica = _redis(None)
        replica.call("REPLICAOF", "127.0.0.1", str(master.port))
        store = {"type": "redis", "timeout_ms": 200, "password": MASTER_PW,
                 "sentinel": {"master": MASTER, "nodes": ["127.0.0.1:%d" % fake.port]}}
        fake.named = ("127.0.0.1", replica.port)
        d = Ratelimitd(dict(CFG, store=store, workers=1)).start(ready=False)
        wait_until(lambda: "sentinel named a node that is not a master" in
                   open(d.log_path).read(), 5.0 * SLOW, what="the replica refused (log)")
        status, body = _ready(d)
        eq((status, body["nodes"]), (503, {"sentinel 127.0.0.1:%d" % fake.port: "up"}),
           "/ready while the sentinel names a replica")
        r = d.client().decide(path="/api/x", tenant="t")
        eq((r.status, r.json.get("degraded_reason")), (503, "disconnected"),
           "a decision while no master is known")

        fake.named = ("127.0.0.1", master.port)
        nodes = _ready_with(d, "127.0.0.1:%d" % master.port)
        eq(len(nodes), 2, "the master and the sentinel in %r" % nodes)
        eq(_admitted(d, "t", 30), 20, "admitted of 30 on the master")

        log_before = open(d.log_path).read().count("not a master")
        fake.publish("%s 127.0.0.1 %d 127.0.0.1 %d" % (MASTER, master.port, replica.port))
        wait_until(lambda: open(d.log_path).read().count("not a master") > log_before,
                   5.0 * SLOW, what="the replica of the message refused (log)")
        eq(_ready(d), (200, {"status": "ready", "store": "connected", "nodes": nodes}),
           "still on the master after a message naming a replica")
        eq(_switches(d), 0, "no master switch")
        d.stop()
    finally:
        fake.close()
        for x in (d, replica, master):
            if x is not None:
                x.cleanup()


def test_sentinel_answers_without_a_master_logged_once():
    """A sentinel that does not know the master's name (nil), then one
    that refuses the query (an ACL without the command): each is logged
    once per worker, with the sentinel and the name, although it is asked
    10 times a second while no master is known; naming the master makes
    ratelimitd ready."""
    fake = FakeSentinel()
    master = d = None
    try:
        master = _redis(None)
        store = {"type": "redis", "timeout_ms": 200, "password": MASTER_PW,
                 "sentinel": {"master": MASTER, "nodes": ["127.0.0.1:%d" % fake.port]}}
        d = Ratelimitd(dict(CFG, store=store, workers=2)).start(ready=False)
        cases = [(None, "sentinel does not know the master"),
                 (b"-NOPERM this user has no permissions\r\n", "sentinel refused the query")]
        for named, msg in cases:
            fake.named = named
            wait_until(lambda: msg in open(d.log_path).read(), 5.0 * SLOW,
                       what="%r logged" % msg)
            time.sleep(1.0)
            lines = [ln for ln in open(d.log_path).read().splitlines() if msg in ln]
            eq(len(lines), 2, "%r lines after 1 s of asking (once per worker): %r" %
               (msg, lines[:4]))
            check(all(json.loads(ln).get("sentinel") == "sentinel 127.0.0.1:%d" % fake.port
                      for ln in lines), "the sentinel named in %r" % lines[0])
        check(any(MASTER == json.loads(ln).get("master") for ln in open(d.log_path).read()
                  .splitlines() if "does not know the master" in ln), "the master name logged")
        eq(_ready(d)[0], 503, "/ready while no sentinel names a master")
        fake.named = ("127.0.0.1", master.port)
        _ready_with(d, "127.0.0.1:%d" % master.port)
        d.stop()
    finally:
        fake.close()
        for x in (d, master):
            if x is not None:
                x.cleanup()


# (store.sentinel value or a whole store, the error check-config prints)
BAD = [
    ({"master": MASTER, "nodes": ["127.0.0.1:26379", "redis-1:26379"]},
     'store.sentinel.nodes[1]: the value must be a numeric IP address or localhost'),
    ({"master": MASTER, "nodes": ["127.0.0.1:26379", "127.0.0.1:26379"]},
     'store.sentinel.nodes[1]: the value repeats nodes[0]'),
    ({"master": MASTER, "nodes": []},
     'store.sentinel.nodes: must be an array of 1 to 64 "host:port" strings'),
    ({"master": MASTER, "nodes": ["127.0.0.1"]},
     "store.sentinel.nodes[0]: "),
    ({"nodes": ["127.0.0.1:26379"]}, "store.sentinel.master: is required"),
    ({"master": MASTER}, "store.sentinel.nodes: is required"),
    ({"master": "my master", "nodes": ["127.0.0.1:26379"]},
     'store.sentinel.master: the value must be 1 to 64 characters of A-Z a-z 0-9 _ . -'),
    ({"master": MASTER, "nodes": ["127.0.0.1:26379"], "username": "u"},
     "store.sentinel.username: needs store.sentinel.password"),
    ({"master": MASTER, "nodes": ["127.0.0.1:26379"], "port": 1},
     "store.sentinel.port: unknown field"),
    ({"type": "redis", "cluster": True, "nodes": ["127.0.0.1:7000"],
      "sentinel": {"master": MASTER, "nodes": ["127.0.0.1:26379"]}},
     'store.sentinel: cannot be combined with "cluster": true'),
    ({"type": "redis", "address": "127.0.0.1:6379",
      "sentinel": {"master": MASTER, "nodes": ["127.0.0.1:26379"]}},
     "store.address: not used with store.sentinel (the sentinels name the master)"),
]


def test_sentinel_config_errors():
    """Each bad store.sentinel is refused with its JSON path and reason,
    and the error never shows the sentinels' password; a good one
    passes."""
    for value, want in BAD:
        if "type" in value:
            store = value
        elif "username" in value:
            store = {"type": "redis", "sentinel": value}
        else:
            store = {"type": "redis", "sentinel": dict(value, password="hush-" + SENTINEL_PW)}
        rc, out = check_config(config(policy("p", "/x", [limit(1, "1s")]), store=store))
        eq(rc, 1, "check-config exit code for %r" % value)
        check(want in out, "error for %r: want %r, got %r" % (value, want, out))
        check(SENTINEL_PW not in out, "the password in the error %r" % out)
    good = {"type": "redis", "timeout_ms": 100, "db": 2, "password": "m",
            "sentinel": {"master": MASTER, "nodes": ["127.0.0.1:26379", "[::1]:26380"],
                         "username": "u", "password": "p"}}
    rc, out = check_config(config(policy("p", "/x", [limit(1, "1s")]), store=good))
    eq(rc, 0, "check-config of a good sentinel store: %s" % out)


def _free_low_run(n):
    """A first port p with p .. p+n-1 free, below the ephemeral range (the
    script binds them one after the other, while the processes it started
    first open outgoing connections from ephemeral ports)."""
    return _free_run(n, pick=lambda: random.randrange(20000, 32000 - n))


def test_quickstart_sentinel():
    """deploy/quickstart.sh --sentinel on free ports: the master allows the
    first request, SIGKILL of the master, /ready names the promoted
    replica, which denies the next one (the quota was replicated)."""
    master = _free_low_run(6)  # master, replica, 3 sentinels, HTTP
    sentinel, http = master + 2, master + 5
    env = dict(os.environ, RATELIMITD=harness.BINARY, QUICKSTART_NO_WAIT="1",
               QUICKSTART_HTTP_PORT=str(http), QUICKSTART_MASTER_PORT=str(master),
               QUICKSTART_SENTINEL_PORT=str(sentinel))
    p = subprocess.run(["bash", os.path.join(harness.ROOT, "deploy", "quickstart.sh"),
                        "--sentinel"], env=env, capture_output=True,
                       timeout=50 * SLOW)
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    eq(p.returncode, 0, "quickstart.sh --sentinel exit code\nstdout:\n%s\nstderr:\n%s"
       % (out, err))
    allowed = re.findall(r'"allowed":(true|false)', out)
    eq(allowed, ["true", "false"], "allowed by the master, denied after the failover:\n%s" % out)
    ready = re.findall(r'\{"status":"ready".*', out)
    eq(len(ready), 2, "/ready before and after the failover:\n%s" % out)
    check('"127.0.0.1:%d":"up"' % master in ready[0], "the master in %s" % ready[0])
    check('"127.0.0.1:%d":"up"' % (master + 1) in ready[1] and
          "127.0.0.1:%d\"" % master not in ready[1], "the promoted replica in %s" % ready[1])
    check("stopping redis-sentinel" in err, "the sentinels were stopped: %s" % err)


test_quickstart_sentinel.timeout = 60
