"""deploy/quickstart.sh --cluster end to end, on free ports: a 3-master
Redis Cluster made with redis-cli --cluster create, two ratelimitd
replicas on the cluster store config, the first replica allowing a
request and the second denying the next one (one quota, shared through
the cluster). Needs the Redis Cluster store ("store": {"cluster": true,
"nodes": [...]}) in the binary under test; without it the script stops
with "this ratelimitd does not accept the cluster store config"."""

import os
import re
import socket
import subprocess

from harness import BINARY, ROOT, SLOW, check, eq, free_port

SCRIPT = os.path.join(ROOT, "deploy", "quickstart.sh")


def _free_run(n, bus=False, pick=free_port):
    """A first port p with p .. p+n-1 all free (a few tries); with bus,
    p+10000 .. p+10000+n-1 too (a Redis Cluster node's bus port). pick()
    proposes each p (default: a free ephemeral port)."""
    for _ in range(50):
        base = pick()
        if base + n + (10000 if bus else 0) > 65535:
            continue
        ports = list(range(base, base + n))
        if bus:
            ports += [p + 10000 for p in ports]
        socks = []
        try:
            for p in ports:
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no %d consecutive free ports" % n)


def test_quickstart_cluster():
    env = dict(os.environ, RATELIMITD=BINARY, QUICKSTART_NO_WAIT="1",
               QUICKSTART_HTTP_PORT=str(_free_run(2)), QUICKSTART_CLUSTER_PORT=str(_free_run(3, bus=True)))
    p = subprocess.run(["bash", SCRIPT, "--cluster"], env=env, capture_output=True,
                       timeout=90 * SLOW)
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    eq(p.returncode, 0, "quickstart.sh --cluster exit code\nstdout:\n%s\nstderr:\n%s" % (out, err))
    check("redis-cli --cluster create" in err, "the cluster was created: %s" % err)
    allowed = re.findall(r'"allowed":(true|false)', out)
    eq(allowed, ["true", "false"], "first replica allows, second denies (stdout:\n%s)" % out)
    check("HTTP/1.1 200" in out, "HTTP 200 replies: %s" % out)


test_quickstart_cluster.timeout = 120
