"""Redis Cluster for the integration tests (Python 3, stdlib only).

Cluster() starts 3 masters + 3 replicas, each a redis-server on two free
loopback ports (client port and cluster bus port) in its own temp dir,
with cluster-node-timeout 1000 ms; creates the cluster with
`redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`;
waits until every node says cluster_state:ok and agrees on the slot map
and every replica's link is up; and stops every node by its pid, also
when a test fails (context manager, plus the harness's atexit sweep).

Options: ACL users (default user off, the test's user for everything,
replicas authenticate with masteruser/masterauth) and TLS (TLS-only
ports, TLS on the cluster bus and replication, certificates from a test
CA made here with the openssl command: make_ca()).

Also: key_slot() (CRC16 of the hash tag, as the cluster specification
defines it, written independently of the C code), slot migration with
CLUSTER SETSLOT + MIGRATE, and a background load generator that records
every reply with its timing.
"""

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from harness import (SLOW, Client, Ratelimitd, RedisError, RespClient, TestFailure, _live,
                     _stop_pid, _tail, check, eq, free_port, wait_until)

NODE_TIMEOUT_MS = 1000
SLOTS = 16384


# --------------------------------------------------------------------------
# Slots
# --------------------------------------------------------------------------

def crc16(data):
    """CRC16-CCITT (XMODEM), bit by bit: the cluster's key hash."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def key_slot(key):
    """The slot of key (str or bytes): the hash tag between the first '{'
    and the next '}' when not empty, else the whole key."""
    if isinstance(key, str):
        key = key.encode()
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return crc16(key) % SLOTS


def decision_tag(policy, *values):
    """The hash tag ratelimitd builds for a policy and plain key values
    (values made of [A-Za-z0-9._~@+-] are used as they are)."""
    return "{%s}" % "|".join((policy,) + values)


# --------------------------------------------------------------------------
# TLS material
# --------------------------------------------------------------------------

def _openssl(args, cwd):
    p = subprocess.run(["openssl"] + args, cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        raise TestFailure("openssl %s failed: %s" % (" ".join(args[:2]),
                                                     p.stderr.decode(errors="replace")))


def make_ca(directory, server_names=("redis.test",), server_ips=("127.0.0.1",)):
    """A throwaway CA and, signed by it, a server and a client certificate
    (EC P-256, valid one day). Returns a dict of file paths: ca, ca_key,
    server_cert, server_key, client_cert, client_key, and other_ca (a CA
    that signed nothing here, for negative tests)."""
    os.makedirs(directory, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(["req", "-x509", "-new"] + ec + ["-keyout", "ca.key", "-out", "ca.crt",
              "-days", "1", "-subj", "/CN=ratelimitd test CA"], directory)
    _openssl(["req", "-x509", "-new"] + ec + ["-keyout", "other-ca.key", "-out", "other-ca.crt",
              "-days", "1", "-subj", "/CN=another test CA"], directory)
    san = ",".join(["DNS:%s" % n for n in server_names] + ["IP:%s" % i for i in server_ips])
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n" % san)
    with open(os.path.join(directory, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, cn in (("server", server_names[0]), ("client", "ratelimitd")):
        _openssl(["req", "-new"] + ec + ["-keyout", name + ".key", "-out", name + ".csr",
                  "-subj", "/CN=%s" % cn], directory)
        _openssl(["x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                  "-CAcreateserial", "-out", name + ".crt", "-days", "1",
                  "-extfile", name + ".ext"], directory)
    j = lambda n: os.path.join(directory, n)  # noqa: E731
    return {"ca": j("ca.crt"), "ca_key": j("ca.key"), "other_ca": j("other-ca.crt"),
            "server_cert": j("server.crt"), "server_key": j("server.key"),
            "client_cert": j("client.crt"), "client_key": j("client.key")}


def tls_server_args(tls):
    """redis-server arguments for TLS with the certificates of make_ca()."""
    return ["--tls-cert-file", tls["server_cert"], "--tls-key-file", tls["server_key"],
            "--tls-ca-cert-file", tls["ca"]]


class TlsRespClient(RespClient):
    """A RespClient over TLS, presenting the test client certificate."""

    def __init__(self, port, tls, timeout=5.0):
        ctx = ssl.create_default_context(cafile=tls["ca"])
        ctx.load_cert_chain(tls["client_cert"], tls["client_key"])
        ctx.check_hostname = False
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="redis.test")
        self.buf = b""


def acl_args(user, password):
    """redis-server arguments: the default user off, user allowed all
    (each config word its own argument: redis-server joins them)."""
    return ["--user", "default", "off",
            "--user", user, "on", ">" + password, "~*", "&*", "+@all"]


# --------------------------------------------------------------------------
# One node
# --------------------------------------------------------------------------

class Node:
    """One redis-server. With cluster=True it is a cluster node on its own
    bus port; user/password authenticate the test's own clients; tls
    (make_ca() files) makes its port TLS-only."""

    def __init__(self, cluster=True, extra_args=(), user=None, password=None, tls=None):
        self.port = free_port()
        self.bus_port = free_port() if cluster else None
        self.cluster = cluster
        self.extra_args = list(extra_args)
        self.user = user
        self.password = password
        self.tls = tls
        self.dir = tempfile.mkdtemp(prefix="rl-cnode-")
        self.proc = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def args(self):
        a = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--enable-debug-command", "local"]
        if self.tls is not None:
            a += ["--port", "0", "--tls-port", str(self.port)] + tls_server_args(self.tls)
        else:
            a += ["--port", str(self.port)]
        if self.cluster:
            a += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                  "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                  "--cluster-port", str(self.bus_port),
                  "--cluster-replica-validity-factor", "0",
                  "--cluster-allow-replica-migration", "no",
                  "--repl-diskless-sync-delay", "0",
                  # replicas count as available once their offset moves
                  "--repl-ping-replica-period", "1"]
            if self.tls is not None:
                a += ["--tls-cluster", "yes", "--tls-replication", "yes"]
        return a + self.extra_args

    def start(self, timeout=10.0):
        """Starts the node. A first start whose port was taken between
        free_port() and bind (another node's bus port, another test) picks
        new ports and tries again; a restart keeps its ports."""
        first = not getattr(self, "started_once", False)
        for attempt in range(5):
            try:
                self._start_once(timeout)
                self.started_once = True
                return self
            except TestFailure as e:
                if not first or "Address already in use" not in str(e) or attempt == 4:
                    raise
                self.port = free_port()
                if self.cluster:
                    self.bus_port = free_port()

    def _start_once(self, timeout):
        with open(os.path.join(self.dir, "redis.log"), "ab") as log:
            self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        _live.append(self)
        try:
            wait_until(self._ours, timeout * SLOW, what="redis PING on port %d" % self.port)
        except TestFailure:
            self.stop()
            raise TestFailure("redis-server did not start:\n" + self.log())
        return self

    def _ours(self):
        """True once our process answers on the port (INFO names its pid)."""
        if self.proc.poll() is not None:
            raise TestFailure("redis-server exited with %s:\n%s" % (self.proc.returncode,
                                                                     self.log()))
        try:
            info = self.call("INFO", "server", timeout=1.0)
        except (RedisError, ConnectionError):
            return False
        return ("process_id:%d\r\n" % self.proc.pid) in info

    def log(self):
        return _tail(os.path.join(self.dir, "redis.log"))

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout=5.0):
        if self.tls is not None:
            c = TlsRespClient(self.port, self.tls, timeout=timeout)
        else:
            c = RespClient(self.port, timeout=timeout)
        if self.password is not None:
            if self.user is not None:
                c.call("AUTH", self.user, self.password)
            else:
                c.call("AUTH", self.password)
        return c

    def call(self, *args, timeout=5.0):
        c = self.client(timeout)
        try:
            return c.call(*args)
        finally:
            c.close()

    def info(self, section):
        """INFO section as a dict."""
        out = {}
        for line in self.call("INFO", section).splitlines():
            if ":" in line and not line.startswith("#"):
                k, _, v = line.partition(":")
                out[k] = v
        return out

    def cluster_info(self):
        """CLUSTER INFO as a dict."""
        out = {}
        for line in self.call("CLUSTER", "INFO").splitlines():
            k, _, v = line.partition(":")
            out[k] = v.strip()
        return out

    def node_id(self):
        return self.call("CLUSTER", "MYID")

    def stop(self):
        if self.proc is not None:
            _stop_pid(self.proc, 5.0)
            self.proc = None
        if self in _live:
            _live.remove(self)

    def kill(self):
        """SIGKILL, as a crash."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None
        if self in _live:
            _live.remove(self)

    kill_hard = kill

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------

class Cluster:
    """3 masters + 3 replicas (by default) on free loopback ports."""

    def __init__(self, masters=3, replicas=1, user=None, password=None, tls=None):
        self.nmasters = masters
        self.replicas = replicas
        self.user = user
        self.password = password
        self.tls = tls
        extra = []
        if password is not None:
            # Everything needs the test's user, the replicas included.
            extra += acl_args(user, password) + ["--masteruser", user, "--masterauth", password]
        self.nodes = [Node(True, extra, user, password, tls)
                      for _ in range(masters * (1 + replicas))]

    # -- life cycle --------------------------------------------------------

    def start(self, timeout=30.0):
        for n in self.nodes:
            n.start()
        args = ["redis-cli", "--cluster", "create"] + [n.addr for n in self.nodes] + [
            "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        args += self.cli_auth_args()
        p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=60 * SLOW)
        out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
        if p.returncode != 0 or "[OK] All 16384 slots covered" not in out:
            raise TestFailure("redis-cli --cluster create failed:\n" + out[-2000:])
        self.wait_ok(timeout)
        return self

    def cli_auth_args(self):
        """redis-cli arguments for the cluster's user and TLS."""
        a = []
        if self.password is not None:
            a += ["--user", self.user, "--pass", self.password]
        if self.tls is not None:
            a += ["--tls", "--cacert", self.tls["ca"], "--cert", self.tls["client_cert"],
                  "--key", self.tls["client_key"]]
        return a

    def running(self):
        return [n for n in self.nodes if n.running]

    def wait_ok(self, timeout=30.0):
        """Until every running node says cluster_state:ok, all of them report
        the same slot map covering every slot with a master, every range
        lists its replicas, and every replica's link to its master is up."""
        def settled():
            maps = set()
            for n in self.running():
                if n.cluster_info().get("cluster_state") != "ok":
                    return False
                maps.add(repr(self.slot_map(n)))
                if n.info("replication").get("role") == "slave" and \
                        n.info("replication").get("master_link_status") != "up":
                    return False
            if len(maps) != 1:
                return False
            ranges = self.slot_map()
            alive = set(n.port for n in self.running())
            for _, _, _, reps in ranges:
                if len([p for p in reps if p in alive]) < min(self.replicas, len(alive) - 1):
                    return False
            return sum(end - start + 1 for start, end, _, _ in ranges) == SLOTS
        wait_until(settled, timeout * SLOW, interval=0.1, what="cluster_state:ok everywhere")

    def cleanup(self):
        for n in self.nodes:
            n.cleanup()

    # -- topology ----------------------------------------------------------

    def by_port(self, port):
        for n in self.nodes:
            if n.port == port:
                return n
        raise TestFailure("no node on port %d" % port)

    def slot_map(self, node=None):
        """[(start, end, master port, [replica ports])], sorted, as node (or
        the first running node) reports it."""
        node = node or self.running()[0]
        out = []
        for r in node.call("CLUSTER", "SLOTS"):
            out.append((int(r[0]), int(r[1]), int(r[2][1]), sorted(int(x[1]) for x in r[3:])))
        return sorted(out)

    def masters(self):
        """The nodes serving slots, in slot order."""
        ports = []
        for _, _, m, _ in self.slot_map():
            if m not in ports:
                ports.append(m)
        return [self.by_port(p) for p in ports]

    def master_of_slot(self, slot, node=None):
        for start, end, m, _ in self.slot_map(node):
            if start <= slot <= end:
                return self.by_port(m)
        raise TestFailure("slot %d has no master" % slot)

    def replicas_of(self, master):
        for _, _, m, reps in self.slot_map():
            if m == master.port:
                return [self.by_port(p) for p in reps]
        return []

    def seeds(self, count=2):
        return [n.addr for n in self.nodes[:count]]

    def store_config(self, **extra):
        """The "store" object of a ratelimitd config for this cluster."""
        cfg = {"type": "redis", "cluster": True, "nodes": self.seeds()}
        if self.password is not None:
            cfg["username"] = self.user
            cfg["password"] = self.password
        if self.tls is not None:
            cfg["tls"] = {"ca_file": self.tls["ca"], "cert_file": self.tls["client_cert"],
                          "key_file": self.tls["client_key"]}
        cfg.update(extra)
        return cfg

    # -- resharding ----------------------------------------------------------

    def migrate_slot(self, slot, target, batch=100, pause=0.0):
        """Moves slot from its master to target as redis-cli --cluster
        reshard does: SETSLOT IMPORTING on the target, MIGRATING on the
        source, MIGRATE of every key, then SETSLOT NODE on the target, the
        source and every other master. pause seconds are spent after
        MIGRATING and again after the keys moved, so that clients meet
        both halves of the migration (ASK, then TRYAGAIN). Returns
        (source, number of keys moved)."""
        source = self.master_of_slot(slot)
        check(source is not target, "slot %d already lives on the target" % slot)
        src_id, dst_id = source.node_id(), target.node_id()
        eq(target.call("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id), "OK", "IMPORTING")
        eq(source.call("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id), "OK", "MIGRATING")
        time.sleep(pause)
        moved = 0
        auth = []
        if self.password is not None:
            auth = ["AUTH2", self.user, self.password]
        c = source.client()
        try:
            while True:
                keys = c.call("CLUSTER", "GETKEYSINSLOT", slot, batch)
                if not keys:
                    break
                c.call("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, *(auth + ["KEYS"] + keys))
                moved += len(keys)
        finally:
            c.close()
        time.sleep(pause)
        for n in [target, source] + [m for m in self.masters() if m not in (source, target)]:
            eq(n.call("CLUSTER", "SETSLOT", slot, "NODE", dst_id), "OK", "SETSLOT NODE")
        return source, moved

    def wait_promoted(self, replica, timeout=15.0):
        """Until replica reports role master; returns the monotonic time."""
        wait_until(lambda: replica.info("replication").get("role") == "master",
                   timeout * SLOW, interval=0.05, what="replica on %d promoted" % replica.port)
        return time.monotonic()


@contextlib.contextmanager
def cluster(**kw):
    """A started Cluster, cleaned up afterwards."""
    c = Cluster(**kw)
    try:
        yield c.start()
    finally:
        c.cleanup()


# --------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------

class Load:
    """Clients sending decisions in the background: until stop(), or until
    `total` requests were sent (then wait() returns). Each reply is
    recorded as (t_sent, t_done, status, json body or None, request body)
    in monotonic seconds; transport errors fail check_errors()."""

    def __init__(self, ports, clients, body_fn, total=None):
        self.ports = ports
        self.body_fn = body_fn
        self.total = total
        self.results = []
        self.errors = []
        self.lock = threading.Lock()
        self.next_i = 0
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(clients)]

    def _take(self):
        """The next request index, or None when done."""
        with self.lock:
            if self.stop_flag.is_set() or (self.total is not None and self.next_i >= self.total):
                return None
            i = self.next_i
            self.next_i += 1
            return i

    def _run(self, n):
        c = Client(self.ports[n % len(self.ports)], timeout=10.0)
        try:
            while True:
                i = self._take()
                if i is None:
                    return
                body = self.body_fn(i)
                t0 = time.monotonic()
                r = c.decide(**body)
                t1 = time.monotonic()
                try:
                    js = r.json
                except TestFailure:
                    js = None
                with self.lock:
                    self.results.append((t0, t1, r.status, js, body))
        except Exception as e:  # reported by check_errors
            with self.lock:
                self.errors.append(repr(e))
        finally:
            c.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def wait(self, timeout=120.0):
        """Waits for every client to finish (total reached or stopped)."""
        deadline = time.monotonic() + timeout * SLOW
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        check(not any(t.is_alive() for t in self.threads), "load clients did not finish")
        self.check_errors()
        return self.results

    def stop(self):
        self.stop_flag.set()
        return self.wait()

    def check_errors(self):
        check(not self.errors, "client errors: %r" % self.errors[:3])

    def count(self):
        with self.lock:
            return len(self.results)


@contextlib.contextmanager
def daemons(cfg, instances=1):
    """`instances` ratelimitd processes on cfg, each waited for /ready; on a
    clean exit each must stop on SIGTERM with exit code 0 and no sanitizer
    report."""
    ds = []
    try:
        for _ in range(instances):
            d = Ratelimitd(cfg)
            ds.append(d)
            d.start()
        yield ds
        for d in ds:
            d.stop()
    finally:
        for d in ds:
            d.cleanup()


def errorstats(node):
    """INFO errorstats as {"MOVED": count, ...}."""
    out = {}
    for k, v in node.info("errorstats").items():
        if k.startswith("errorstat_"):
            out[k[len("errorstat_"):]] = int(v.split("=")[1].split(",")[0])
    return out


def wait_window(node, period_s, needed_s):
    """For epoch-aligned windows on the cluster's clock: if fewer than
    needed_s seconds are left in the current window, waits for the next."""
    sec, usec = node.call("TIME")
    now = int(sec) + int(usec) / 1e6
    left = period_s - (now % period_s)
    if left < needed_s:
        time.sleep(left + 0.05)
