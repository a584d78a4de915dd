"""Harness for the ratelimitd integration tests (Python 3, stdlib only).

Starts throwaway redis-server and ratelimitd processes on free loopback
ports, talks HTTP and RESP to them, and cleans everything up, also when a
test fails (try/finally in every context manager, plus an atexit sweep).

Environment:
  RATELIMITD      path of the binary under test (default ./ratelimitd)
  RL_TEST_LOGDIR  where each ratelimitd's stderr is kept (default: a temp
                  dir); tests/run.sh scans it for sanitizer reports
  RL_TEST_SLOW    factor applied to timing bounds (sanitizer builds: 2)
  RL_TEST_NAME    set by run.py: names the log files of one test
"""

import atexit
import contextlib
import copy
import http.client
import itertools
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(ROOT, "deploy", "examples", "ratelimitd.json")
BINARY = os.path.abspath(os.environ.get("RATELIMITD", "./ratelimitd"))
SLOW = float(os.environ.get("RL_TEST_SLOW", "1") or "1")
STORES = ("redis", "memory")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

_logdir = os.environ.get("RL_TEST_LOGDIR")
if not _logdir:
    _logdir = tempfile.mkdtemp(prefix="rl-logs-")
os.makedirs(_logdir, exist_ok=True)
LOGDIR = _logdir

_live = []
_counter = itertools.count(1)


def _sweep():
    """Kills every process this harness started that is still running."""
    for p in list(_live):
        p.kill_hard()


atexit.register(_sweep)


class TestFailure(AssertionError):
    """A test expectation that did not hold."""


def check(cond, message):
    """Fails the test with message unless cond holds."""
    if not cond:
        raise TestFailure(message)


def eq(actual, expected, what):
    """Fails the test unless actual == expected."""
    if actual != expected:
        raise TestFailure("%s: expected %r, got %r" % (what, expected, actual))


def between(value, lo, hi, what):
    """Fails the test unless lo <= value <= hi."""
    if value is None or not lo <= value <= hi:
        raise TestFailure("%s: expected %r..%r, got %r" % (what, lo, hi, value))


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, interval=0.02, what="condition"):
    """Polls pred() until it returns a true value; returns that value."""
    deadline = time.monotonic() + timeout
    last_err = None
    while True:
        try:
            value = pred()
            if value:
                return value
        except (OSError, http.client.HTTPException, ValueError) as e:
            last_err = e
        if time.monotonic() >= deadline:
            raise TestFailure("timed out after %.1fs waiting for %s%s" % (
                timeout, what, " (last error: %s)" % last_err if last_err else ""))
        time.sleep(interval)


def _stop_pid(proc, timeout):
    """SIGTERM, wait up to timeout, then SIGKILL. Returns (returncode, killed)."""
    if proc.poll() is not None:
        return proc.returncode, False
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(), True


def _tail(path, n=30):
    """The last n lines of a text file, or '' if it cannot be read."""
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


# --------------------------------------------------------------------------
# RESP: a minimal Redis client (for PING, TIME, DEBUG SLEEP, KEYS, ...)
# --------------------------------------------------------------------------

class RedisError(Exception):
    """An error reply from Redis."""


class RespClient:
    """One raw RESP connection."""

    def __init__(self, port, password=None, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        if password is not None:
            self.call("AUTH", password)

    def close(self):
        self.sock.close()

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RedisError("bad reply line %r" % line)

    def call(self, *args):
        self.send(*args)
        return self.read()


class Redis:
    """A throwaway redis-server on a free loopback port in a temp dir."""

    def __init__(self, port=None, password=None):
        self.port = port or free_port()
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="rl-redis-")
        self.proc = None

    def start(self, timeout=10.0):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--enable-debug-command", "local"]
        if self.password is not None:
            args += ["--requirepass", self.password]
        with open(os.path.join(self.dir, "redis.log"), "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        _live.append(self)
        try:
            wait_until(self._pong, timeout, what="redis PING on port %d" % self.port)
        except TestFailure:
            self.stop()
            raise TestFailure("redis-server did not start:\n" +
                              _tail(os.path.join(self.dir, "redis.log")))
        return self

    def _pong(self):
        """True once our redis-server answers (checked by its pid, so a
        server of someone else on the same port does not count)."""
        if self.proc.poll() is not None:
            raise TestFailure("redis-server exited with %s" % self.proc.returncode)
        try:
            c = RespClient(self.port, self.password, timeout=1.0)
        except RedisError:
            return False
        try:
            info = c.call("INFO", "server")
        except RedisError:
            return False
        finally:
            c.close()
        return ("process_id:%d\r\n" % self.proc.pid) in info

    def stop(self):
        if self.proc is not None:
            _stop_pid(self.proc, 5.0)
            self.proc = None
        if self in _live:
            _live.remove(self)

    def restart(self):
        """Stops the server and starts a new one on the same port."""
        self.stop()
        self.start()

    def kill_hard(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, timeout=5.0):
        return RespClient(self.port, self.password, timeout=timeout)

    def call(self, *args):
        c = self.client()
        try:
            return c.call(*args)
        finally:
            c.close()

    def time_s(self):
        """The Redis clock in (fractional) seconds."""
        sec, usec = self.call("TIME")
        return int(sec) + int(usec) / 1e6


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

class Response:
    """One HTTP reply: status, headers (case-insensitive), body, elapsed."""

    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self._json = None

    @property
    def json(self):
        if self._json is None:
            try:
                self._json = json.loads(self.body.decode())
            except ValueError:
                raise TestFailure("reply body is not JSON (status %d): %r" %
                                  (self.status, self.body[:300]))
        return self._json

    def header(self, name):
        return self.headers.get(name)

    def __repr__(self):
        return "<HTTP %d %s>" % (self.status, self.body[:300])


class Client:
    """One keep-alive HTTP/1.1 connection to a ratelimitd."""

    def __init__(self, port, timeout=10.0):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def close(self):
        self.conn.close()

    def request(self, method, path, body=None, headers=None, json_body=None):
        hdrs = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        t0 = time.monotonic()
        self.conn.request(method, path, body=body, headers=hdrs)
        r = self.conn.getresponse()
        data = r.read()
        return Response(r.status, r.headers, data, time.monotonic() - t0)

    def decide(self, http_headers=None, **fields):
        """POST /v1/decide with fields as the JSON body."""
        return self.request("POST", "/v1/decide", json_body=fields, headers=http_headers)


def raw_http(port, data, timeout=5.0):
    """Sends raw bytes, reads one reply (without sending anything more) and
    returns it as a Response. Used where http.client would insist on
    sending a body."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise TestFailure("connection closed before a reply: %r" % buf)
            buf += chunk
        head, body = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        msg = http.client.HTTPMessage()
        for line in lines[1:]:
            name, _, value = line.partition(":")
            msg[name.strip()] = value.strip()
        length = int(msg.get("Content-Length", "0"))
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    return Response(status, msg, body[:length], time.monotonic() - t0)


# --------------------------------------------------------------------------
# ratelimitd
# --------------------------------------------------------------------------

class Ratelimitd:
    """One ratelimitd process with its own config file and stderr log."""

    def __init__(self, config, extra_args=()):
        self.config = config
        self.extra_args = list(extra_args)
        self.dir = tempfile.mkdtemp(prefix="rl-d-")
        self.conf_path = os.path.join(self.dir, "ratelimitd.json")
        name = os.environ.get("RL_TEST_NAME", "adhoc").replace("/", "_")
        self.log_path = os.path.join(LOGDIR, "ratelimitd-%s-%d-%d.log" % (
            name, os.getpid(), next(_counter)))
        self.proc = None
        self.port = None
        self.returncode = None

    def start(self, timeout=None, ready=True):
        """Starts the process and waits for /health, then (with ready) for
        /ready: until the store is connected, decisions are degraded. Should
        another process listen on the same port too (SO_REUSEPORT lets it),
        starts again on another port."""
        with open(self.conf_path, "w") as f:
            json.dump(self.config, f, indent=2)
        for _ in range(3):
            self._spawn(timeout)
            if self._sole_listener():
                break
            self.kill_hard()
        else:
            raise TestFailure("no port of our own for ratelimitd after 3 tries")
        if ready:
            try:
                wait_until(self._ready, timeout or 10.0 * SLOW,
                           what="ratelimitd /ready on port %d" % self.port)
            except TestFailure as e:
                self.kill_hard()
                raise TestFailure("%s\nratelimitd stderr:\n%s" % (e, self.stderr()))
        return self

    def _spawn(self, timeout):
        self.port = free_port()
        args = [BINARY, "-c", self.conf_path, "--listen", "127.0.0.1:%d" % self.port]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args + self.extra_args, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        _live.append(self)
        try:
            wait_until(self._healthy, timeout or 10.0 * SLOW,
                       what="ratelimitd /health on port %d" % self.port)
        except TestFailure as e:
            self.kill_hard()
            raise TestFailure("%s\nratelimitd stderr:\n%s" % (e, self.stderr()))

    def _sole_listener(self):
        """True if every socket listening on our port belongs to our process."""
        ours = set()
        fd_dir = "/proc/%d/fd" % self.proc.pid
        for fd in os.listdir(fd_dir):
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                ours.add(link[8:-1])
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    rows = f.read().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                cols = row.split()
                if cols[3] == "0A" and int(cols[1].split(":")[1], 16) == self.port:
                    if cols[9] not in ours:
                        return False
        return True

    def _healthy(self):
        if self.proc.poll() is not None:
            raise TestFailure("ratelimitd exited with %s:\n%s" %
                              (self.proc.returncode, self.stderr()))
        c = Client(self.port, timeout=1.0)
        try:
            return c.request("GET", "/health").status == 200
        finally:
            c.close()

    def _ready(self):
        if self.proc.poll() is not None:
            raise TestFailure("ratelimitd exited with %s:\n%s" %
                              (self.proc.returncode, self.stderr()))
        return self.request("GET", "/ready", timeout=1.0).status == 200

    @property
    def pid(self):
        return self.proc.pid

    def stderr(self):
        return _tail(self.log_path, 200)

    def sanitizer_report(self):
        """The first sanitizer report line in this process's stderr, or None."""
        try:
            with open(self.log_path, "r", errors="replace") as f:
                for line in f:
                    if any(m in line for m in SANITIZER_MARKERS):
                        return line.strip()
        except OSError:
            pass
        return None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for exit; returns the exit code or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if self in _live:
            _live.remove(self)
        return self.returncode

    def stop(self, timeout=None):
        """SIGTERM, then SIGKILL past the timeout. Fails the test unless the
        process exits 0 by itself with no sanitizer report."""
        if self.proc is None:
            return self.returncode
        rc, killed = _stop_pid(self.proc, timeout or 10.0 * SLOW)
        self.returncode = rc
        if self in _live:
            _live.remove(self)
        report = self.sanitizer_report()
        check(report is None, "sanitizer report in ratelimitd stderr: %s\n%s" %
              (report, self.stderr()))
        check(not killed, "ratelimitd did not exit after SIGTERM (killed)\n" + self.stderr())
        eq(rc, 0, "ratelimitd exit code after SIGTERM (stderr:\n%s)" % self.stderr())
        return rc

    def kill_hard(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self in _live:
            _live.remove(self)

    def cleanup(self):
        self.kill_hard()
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, timeout=10.0):
        return Client(self.port, timeout=timeout)

    def request(self, method, path, timeout=10.0, **kw):
        """One request on a fresh connection, closed afterwards."""
        c = self.client(timeout)
        try:
            return c.request(method, path, **kw)
        finally:
            c.close()


def run_binary(args, timeout=30.0):
    """Runs ratelimitd with args to completion: (returncode, stdout, stderr)."""
    p = subprocess.run([BINARY] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout * SLOW)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    for m in SANITIZER_MARKERS:
        check(m not in err, "sanitizer report in ratelimitd stderr:\n" + err)
    return p.returncode, out, err


class GatewayProcess:
    """A gateway (nginx, caddy) run by a test: self.dir its temp dir (logs
    in self.log_name there), self.proc its process, self.app_port the
    tiny application behind it. Subclasses start it."""

    name = "gateway"
    log_name = "error.log"

    def app_up(self):
        """True once the application behind the gateway answers 200;
        fails if the gateway exited."""
        if self.proc.poll() is not None:
            raise TestFailure("%s exited with %s:\n%s" % (self.name, self.proc.returncode,
                                                          self.log()))
        c = http.client.HTTPConnection("127.0.0.1", self.app_port, timeout=1.0)
        try:
            c.request("GET", "/")
            return c.getresponse().status == 200
        except OSError:
            return False
        finally:
            c.close()

    def log(self):
        """The last 3,000 characters of the gateway's log."""
        try:
            with open(os.path.join(self.dir, self.log_name), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self):
        """Stops the gateway by pid and removes its temp dir."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def check_config(cfg):
    """Runs --check-config on the config dict cfg: (returncode, stdout and
    stderr together)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ratelimitd.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        rc, out, err = run_binary(["--check-config", path])
    return rc, out + err


# --------------------------------------------------------------------------
# Services: redis (optional) + one or more ratelimitd on one config
# --------------------------------------------------------------------------

class Service:
    """What a test gets from service(): the daemons, redis, HTTP helpers."""

    def __init__(self, daemons, redis, store):
        self.daemons = daemons
        self.redis = redis
        self.store = store
        self._client = None

    @property
    def d(self):
        return self.daemons[0]

    @property
    def port(self):
        return self.daemons[0].port

    def client(self):
        if self._client is None:
            self._client = self.d.client()
        return self._client

    def request(self, method, path, **kw):
        return self.client().request(method, path, **kw)

    def decide(self, http_headers=None, **fields):
        return self.client().decide(http_headers=http_headers, **fields)

    def verdict(self, _degraded_ok=False, **fields):
        """decide() that must answer 200 with a verdict the store made (not
        degraded, unless _degraded_ok); returns the JSON verdict with the
        HTTP reply attached as "_http"."""
        r = self.decide(**fields)
        eq(r.status, 200, "HTTP status of /v1/decide %r (body %r)" % (fields, r.body[:300]))
        v = r.json
        if not _degraded_ok:
            check(v.get("degraded") is False,
                  "degraded verdict for %r: %r" % (fields, r.body[:300]))
        v["_http"] = r
        return v

    def now_s(self):
        """The clock the store decides with (Redis TIME, or the wall clock)."""
        return self.redis.time_s() if self.redis is not None else time.time()

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None


def store_config(store, redis, base=None):
    """The "store" object for a store kind, keeping base's other fields."""
    if store == "memory":
        return {"type": "memory"}
    cfg = dict(base or {})
    cfg["type"] = "redis"
    cfg["address"] = "127.0.0.1:%d" % redis.port
    if redis.password is not None:
        cfg["password"] = redis.password
    return cfg


@contextlib.contextmanager
def service(config, store="redis", redis=None, instances=1, extra_args=()):
    """Starts redis (for the redis store, unless given) and `instances`
    ratelimitd processes on config. On a clean exit every daemon must stop
    on SIGTERM with exit code 0 and no sanitizer report."""
    cfg = copy.deepcopy(config)
    own_redis = None
    daemons = []
    svc = None
    try:
        if store == "redis" and redis is None:
            own_redis = redis = Redis().start()
        cfg["store"] = store_config(store, redis, cfg.get("store"))
        for _ in range(instances):
            d = Ratelimitd(cfg, extra_args)
            daemons.append(d)
            d.start()
        svc = Service(daemons, redis if store == "redis" else None, store)
        wait_fixed_windows(svc, cfg)
        yield svc
        svc.close()
        for d in daemons:
            d.stop()
    finally:
        if svc is not None:
            svc.close()
        for d in daemons:
            d.cleanup()
        if own_redis is not None:
            own_redis.cleanup()


# --------------------------------------------------------------------------
# Configuration builders
# --------------------------------------------------------------------------

def limit(requests, per, algorithm=None, burst=None, block=None):
    """One "limits" entry."""
    out = {"requests": requests, "per": per}
    if algorithm is not None:
        out["algorithm"] = algorithm
    if burst is not None:
        out["burst"] = burst
    if block is not None:
        out["block"] = block
    return out


def policy(name, path, limits, key=(), method=None, headers=None, deny=None,
           failure_mode=None, test=None):
    """One "policies" entry."""
    out = {"name": name, "match": {"path": path}, "key": list(key), "limits": list(limits)}
    if method is not None:
        out["match"]["method"] = method
    if headers is not None:
        out["headers"] = headers
    if deny is not None:
        out["deny"] = deny
    if failure_mode is not None:
        out["failure_mode"] = failure_mode
    if test is not None:
        out["test"] = test
    return out


def config(*policies, **top):
    """A whole config file (listen is overridden by --listen)."""
    out = {"listen": "127.0.0.1:0", "store": {"type": "memory"}, "policies": list(policies)}
    out.update(top)
    return out


def load_example():
    """The example configuration, parsed."""
    with open(EXAMPLE) as f:
        return json.load(f)


# --------------------------------------------------------------------------
# Path matching (mirrors the documented rules, to find the example's policies)
# --------------------------------------------------------------------------

def pattern_matches(pattern, path):
    """1 if path fits pattern: literal segments, {name} = one non-empty
    segment, a trailing * = zero or more segments."""
    psegs = pattern.split("/")[1:]
    segs = path.split("/")[1:]
    if psegs and psegs[-1] == "*":
        fixed = psegs[:-1]
        if len(segs) < len(fixed):
            return False
        segs = segs[:len(fixed)]
        psegs = fixed
    elif len(segs) != len(psegs):
        return False
    for p, s in zip(psegs, segs):
        if p.startswith("{") and p.endswith("}"):
            if s == "":
                return False
        elif p != s:
            return False
    return True


def find_policy(conf, method, path):
    """The first policy of conf (a parsed config) that applies, or None."""
    for p in conf["policies"]:
        m = p["match"].get("method")
        if m is not None and m.upper() != method.upper():
            continue
        if pattern_matches(p["match"]["path"], path):
            return p
    return None


def policy_named(conf, name):
    for p in conf["policies"]:
        if p["name"] == name:
            return p
    raise TestFailure("no policy %r in the config" % name)


def duration_s(text):
    """"250ms", "10s", "2m", "1h", "1d" -> seconds."""
    units = (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400))
    for suffix, mult in units:
        if text.endswith(suffix) and text[:-len(suffix)].isdigit():
            return int(text[:-len(suffix)]) * mult
    raise ValueError("not a duration: %r" % text)


# --------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------

def wait_window_start(svc, period_s, needed_s):
    """For epoch-aligned windows: if fewer than needed_s seconds are left
    in the current window of period_s, waits for the next one."""
    now = svc.now_s()
    left = period_s - (now % period_s)
    if left < needed_s:
        time.sleep(left + 0.05)


def fixed_window_periods(node):
    """The periods (seconds) of every fixed_window limit anywhere in a
    config (policies, overrides, layers)."""
    out = []
    if isinstance(node, dict):
        if node.get("algorithm") == "fixed_window" and isinstance(node.get("per"), str):
            try:
                out.append(duration_s(node["per"]))
            except ValueError:
                pass  # a test of a bad duration: the daemon refuses it
        for v in node.values():
            out.extend(fixed_window_periods(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(fixed_window_periods(v))
    return out


# The part of a fixed window of a minute or longer a test may start in:
# a test that sees its window roll over mid-way sees fresh counts (a 3 per
# minute limit admitting a 4th), so service() waits for the next window
# when fewer than FIXED_WINDOW_MARGIN_S (or a quarter of it) are left.
# Tests of window edges and shorter windows time themselves.
FIXED_WINDOW_MARGIN_S = 15.0


def wait_fixed_windows(svc, cfg):
    """Waits (see FIXED_WINDOW_MARGIN_S) until every fixed window of a
    minute or longer in cfg has room for a test (twice over: a wait for
    one may end another's room when the periods are not multiples)."""
    periods = sorted(set(p for p in fixed_window_periods(cfg.get("policies")) if p >= 60))
    for _ in range(2):
        for period in periods:
            wait_window_start(svc, period, min(FIXED_WINDOW_MARGIN_S, period / 4))


def gcra_upper(requests, period_s, burst, elapsed_s):
    """The most a GCRA limit can admit in elapsed_s from a fresh state."""
    return burst + math.ceil(elapsed_s * requests / period_s) + 1


def hammer(ports, total, clients, body_fn):
    """Sends `total` decide requests from `clients` threads, each with its own
    connection, spread round-robin over ports. body_fn(i) gives request i's
    JSON body. Returns (list of Response, elapsed seconds)."""
    results = [None] * total
    errors = []
    next_i = itertools.count()
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def worker(n):
        c = Client(ports[n % len(ports)])
        try:
            start.wait()
            while True:
                with lock:
                    i = next(next_i)
                if i >= total:
                    return
                results[i] = c.decide(**body_fn(i))
        except Exception as e:  # reported below, after every thread joined
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    check(not errors, "client errors: %r" % errors[:3])
    return results, elapsed


def parametrize(namespace, name, fn, values):
    """Defines namespace["<name>_<value>"] = a test calling fn(value) for
    each value, so run.py lists one test per store (or algorithm)."""
    for v in values:
        def test(v=v):
            fn(v)
        test.__name__ = "%s_%s" % (name, v)
        test.timeout = getattr(fn, "timeout", None)
        namespace[test.__name__] = test


# --------------------------------------------------------------------------
# Request signing (docs/security.md): one scheme for callers and tenants
# --------------------------------------------------------------------------

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def sha256_hex(data):
    """Lower-case hex SHA-256 of bytes (or a str, UTF-8 encoded)."""
    import hashlib
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def sign(secret, ts, method, path, body_sha256=EMPTY_SHA256):
    """"hmac-sha256=" + hex HMAC-SHA256(secret, TS\\nMETHOD\\nPATH\\nBODY_SHA256)."""
    import hashlib
    import hmac
    if isinstance(secret, str):
        secret = secret.encode()
    text = "%s\n%s\n%s\n%s" % (ts, method.upper(), path, body_sha256)
    return "hmac-sha256=" + hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def caller_headers(caller_id, secret, method, path, body=b"", ts=None):
    """The X-Caller-* headers that authenticate one request to ratelimitd
    (path with its query string, body as sent)."""
    ts = str(int(time.time())) if ts is None else str(ts)
    return {"X-Caller-Id": caller_id, "X-Caller-Timestamp": ts,
            "X-Caller-Signature": sign(secret, ts, method, path, sha256_hex(body))}


def tenant_headers(tenant, secret, method, path, content_sha256=None, ts=None):
    """The X-Tenant-Id, X-Timestamp and X-Signature (and X-Content-SHA256
    when given) an end client sends to prove its tenant."""
    ts = str(int(time.time())) if ts is None else str(ts)
    out = {"X-Tenant-Id": tenant, "X-Timestamp": ts,
           "X-Signature": sign(secret, ts, method, path, content_sha256 or EMPTY_SHA256)}
    if content_sha256 is not None:
        out["X-Content-SHA256"] = content_sha256
    return out


def signed_decide(client, caller_id, secret, fields, headers=None, ts=None):
    """POST /v1/decide with fields as the body, signed as caller_id."""
    body = json.dumps(fields).encode()
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(caller_headers(caller_id, secret, "POST", "/v1/decide", body, ts))
    hdrs.update(headers or {})
    return client.request("POST", "/v1/decide", body=body, headers=hdrs)


def rss_kb(pid):
    """Resident set size of a process in kB (from /proc)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise TestFailure("no VmRSS for pid %d" % pid)


def sanitizer_build():
    """True if the binary under test was built with AddressSanitizer."""
    try:
        with open(BINARY, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False
# Operations: /metrics, reloads, Redis command counts
# --------------------------------------------------------------------------

def prometheus_parser():
    """prometheus_client's text parser (Debian's python3-prometheus-client;
    its directory is added to sys.path when another Python runs the tests)."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        import sys
        for d in ("/usr/lib/python3/dist-packages",):
            if os.path.isdir(os.path.join(d, "prometheus_client")) and d not in sys.path:
                sys.path.append(d)
        try:
            from prometheus_client.parser import text_string_to_metric_families
        except ImportError:
            raise TestFailure("python3-prometheus-client is not installed "
                              "(tests/run.sh installs it)")
    return text_string_to_metric_families


def scrape(daemon):
    """GET /metrics of daemon, parsed: {sample name: {labels tuple: value}},
    labels as a sorted tuple of (name, value). Fails unless the reply is 200
    in the Prometheus text format and parses."""
    r = daemon.request("GET", "/metrics")
    eq(r.status, 200, "GET /metrics status")
    ctype = r.header("Content-Type") or ""
    check(ctype.startswith("text/plain; version=0.0.4"), "/metrics Content-Type %r" % ctype)
    out = {}
    for family in prometheus_parser()(r.body.decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def metric(samples, name, **labels):
    """One sample's value from scrape() output (0 if absent)."""
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0)


def rewrite_config(daemon, config):
    """Replaces daemon's config file (atomically, by rename) without
    signalling it."""
    tmp = daemon.conf_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2)
    os.replace(tmp, daemon.conf_path)


def reload_config(daemon, config=None, timeout=5.0):
    """Writes config (if given), sends SIGHUP and waits until /metrics shows
    one more reload (ok or failed). Returns "ok" or "failed"."""
    before = scrape(daemon)
    ok0 = metric(before, "ratelimitd_config_reloads_total", result="ok")
    failed0 = metric(before, "ratelimitd_config_reloads_total", result="failed")
    if config is not None:
        rewrite_config(daemon, config)
    daemon.signal(signal.SIGHUP)

    def done():
        m = scrape(daemon)
        if metric(m, "ratelimitd_config_reloads_total", result="ok") > ok0:
            return "ok"
        if metric(m, "ratelimitd_config_reloads_total", result="failed") > failed0:
            return "failed"
        return None
    return wait_until(done, timeout * SLOW, what="the reload to be counted")


def redis_calls(redis, command="fcall"):
    """Calls of one command since the last CONFIG RESETSTAT (INFO commandstats)."""
    info = redis.call("INFO", "commandstats")
    for line in info.splitlines():
        if line.startswith("cmdstat_%s:" % command):
            for part in line.split(":", 1)[1].split(","):
                k, _, v = part.partition("=")
                if k == "calls":
                    return int(v)
    return 0
