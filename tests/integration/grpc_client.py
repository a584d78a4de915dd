"""gRPC client of the integration tests, run as a /usr/bin/python3
subprocess (Debian's python3-grpcio imports only there): generates the
Python stubs of proto/ into a temp dir with grpc_tools.protoc, reads a JSON
list of operations on stdin and prints one JSON result per operation.

Operations ({"op": ...}):
  rls     ShouldRateLimit: target, domain, descriptors [{"entries": [[k, v]],
          "hits_addend": N, "limit": {"requests_per_unit": N, "unit": U}}],
          hits_addend, timeout (s), metadata [[k, v]], sign {"id", "secret",
          "ts", "body_hex"} (caller authentication, see metadata())
  health  Health/Check: target, service
  watch   Health/Watch: target, service, cancel_after (messages, optional),
          timeout; prints {"watch": STATUS} per message as it arrives, then
          {"end": CODE} when the stream ends (OK, CANCELLED, ...)
  (rls and health take "ca": a CA file, for TLS)
  raw     any method with raw bytes: target, path, body_hex, timeout
  hammer  n ShouldRateLimit calls of one request, `streams` at a time, over
          `conns` channels per target: targets, domain, descriptors;
          answers {"ok": admitted, "over": denied, "errors": [...]}
  unfinished  n calls at once on one channel (target, path: ShouldRateLimit
          by default) whose request never ends in time: each sends one
          message of `bytes` zero bytes, then holds its stream open for
          `hold` s before ending it (a client-streaming call, so END_STREAM
          waits); answers {"results": [{"error", "details", "s"}]}, s the
          seconds from the start to that call's end, in call order
"""

import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTOS = ["envoy/type/v3/ratelimit_unit.proto", "envoy/config/core/v3/base.proto",
          "envoy/extensions/common/ratelimit/v3/ratelimit.proto",
          "envoy/service/ratelimit/v3/rls.proto"]


def stubs():
    """Generates and imports the stubs; returns (rls_pb2, rls_grpc, health_pb2,
    health_grpc, ratelimit_pb2). health.proto is compiled as
    rl_health/health.proto (same package, so the same method paths): its
    stubs must not land under the grpc package itself."""
    out = tempfile.mkdtemp(prefix="rl-grpc-stubs-")
    extra = os.path.join(out, "protos")
    os.makedirs(os.path.join(extra, "rl_health"))
    with open(os.path.join(ROOT, "proto", "grpc", "health", "v1", "health.proto")) as f:
        text = f.read()
    with open(os.path.join(extra, "rl_health", "health.proto"), "w") as f:
        f.write(text)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I",
                    os.path.join(ROOT, "proto"), "-I", extra, "--python_out=" + out,
                    "--grpc_python_out=" + out] + PROTOS + ["rl_health/health.proto"],
                   check=True)
    sys.path.insert(0, out)
    from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
    from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
    from rl_health import health_pb2, health_pb2_grpc
    return rls_pb2, rls_pb2_grpc, health_pb2, health_pb2_grpc, ratelimit_pb2


import grpc  # noqa: E402 (after the path set-up of stubs())

RLS, RLS_GRPC, HEALTH, HEALTH_GRPC, RL = None, None, None, None, None


def request(op):
    """The RateLimitRequest of op."""
    req = RLS.RateLimitRequest(domain=op.get("domain", ""),
                               hits_addend=op.get("hits_addend", 0))
    for d in op.get("descriptors", []):
        desc = req.descriptors.add()
        for k, v in d["entries"]:
            desc.entries.add(key=k, value=v)
        if d.get("hits_addend") is not None:
            desc.hits_addend.value = d["hits_addend"]
        if d.get("limit") is not None:
            desc.limit.requests_per_unit = d["limit"]["requests_per_unit"]
            desc.limit.unit = d["limit"]["unit"]
    return req


def response_json(resp):
    """A RateLimitResponse as JSON."""
    out = {"overall": RLS.RateLimitResponse.Code.Name(resp.overall_code), "statuses": [],
           "headers": {h.key: h.value for h in resp.response_headers_to_add},
           "raw_body": resp.raw_body.decode()}
    for s in resp.statuses:
        st = {"code": RLS.RateLimitResponse.Code.Name(s.code),
              "remaining": s.limit_remaining}
        if s.HasField("current_limit"):
            st["limit"] = {"name": s.current_limit.name,
                           "requests_per_unit": s.current_limit.requests_per_unit,
                           "unit": RLS.RateLimitResponse.RateLimit.Unit.Name(
                               s.current_limit.unit)}
        if s.HasField("duration_until_reset"):
            d = s.duration_until_reset
            st["reset_ms"] = d.seconds * 1000 + d.nanos // 1000000
        out["statuses"].append(st)
    return out


def error_json(e):
    return {"error": e.code().name, "details": e.details()}


def channel(op):
    """A channel to op's target: TLS trusting op["ca"] when given (gRPC
    needs ALPN h2 there), else cleartext HTTP/2."""
    if op.get("ca"):
        with open(op["ca"], "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        return grpc.secure_channel(op["target"], creds)
    return grpc.insecure_channel(op["target"])


def metadata(op, path, req):
    """op's metadata: its "metadata" pairs as given, then, with "sign"
    {"id", "secret"[, "ts", "body_hex"]}, the X-Caller-* headers of
    docs/security.md over POST, path and the serialized message (or the
    body_hex bytes, to sign another message)."""
    md = [(k, v) for k, v in op.get("metadata", [])]
    s = op.get("sign")
    if s:
        ts = str(s.get("ts", int(time.time())))
        body = bytes.fromhex(s["body_hex"]) if "body_hex" in s else req.SerializeToString()
        text = "\n".join([ts, "POST", path, hashlib.sha256(body).hexdigest()])
        sig = hmac.new(s["secret"].encode(), text.encode(), hashlib.sha256).hexdigest()
        md += [("x-caller-id", s["id"]), ("x-caller-timestamp", ts),
               ("x-caller-signature", "hmac-sha256=" + sig)]
    return md or None


def op_rls(op):
    with channel(op) as ch:
        stub = RLS_GRPC.RateLimitServiceStub(ch)
        req = request(op)
        path = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
        try:
            resp = stub.ShouldRateLimit(req, timeout=op.get("timeout", 10),
                                        metadata=metadata(op, path, req))
        except grpc.RpcError as e:
            return error_json(e)
    return response_json(resp)


def op_health(op):
    with channel(op) as ch:
        stub = HEALTH_GRPC.HealthStub(ch)
        try:
            resp = stub.Check(HEALTH.HealthCheckRequest(service=op.get("service", "")),
                              timeout=op.get("timeout", 10))
        except grpc.RpcError as e:
            return error_json(e)
    return {"status": HEALTH.HealthCheckResponse.ServingStatus.Name(resp.status)}


def op_watch(op):
    with channel(op) as ch:
        stub = HEALTH_GRPC.HealthStub(ch)
        it = stub.Watch(HEALTH.HealthCheckRequest(service=op.get("service", "")),
                        timeout=op.get("timeout"))
        n = 0
        try:
            for resp in it:
                name = HEALTH.HealthCheckResponse.ServingStatus.Name(resp.status)
                print(json.dumps({"watch": name}), flush=True)
                n += 1
                if op.get("cancel_after") and n >= op["cancel_after"]:
                    it.cancel()
        except grpc.RpcError as e:
            return {"end": e.code().name}
    return {"end": "OK"}


def op_raw(op):
    with grpc.insecure_channel(op["target"]) as ch:
        call = ch.unary_unary(op["path"], request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
        try:
            body = call(bytes.fromhex(op.get("body_hex", "")), timeout=op.get("timeout", 10))
        except grpc.RpcError as e:
            return error_json(e)
    return {"body_hex": body.hex()}


def op_hammer(op):
    chans = [grpc.insecure_channel(t, options=[("grpc.use_local_subchannel_pool", 1)])
             for t in op["targets"] for _ in range(op.get("conns", 2))]
    stubs_ = [RLS_GRPC.RateLimitServiceStub(c) for c in chans]
    req = request(op)
    sem = threading.Semaphore(op.get("streams", 32))
    lock = threading.Lock()
    res = {"ok": 0, "over": 0, "errors": []}
    futs = []

    def done(f):
        try:
            r = f.result()
            key = "ok" if r.overall_code == RLS.RateLimitResponse.OK else "over"
        except grpc.RpcError as e:
            key = None
            with lock:
                res["errors"].append(e.code().name)
        if key is not None:
            with lock:
                res[key] += 1
        sem.release()

    for i in range(op["n"]):
        sem.acquire()
        f = stubs_[i % len(stubs_)].ShouldRateLimit.future(req, timeout=30)
        f.add_done_callback(done)
        futs.append(f)
    for f in futs:
        try:
            f.result()
        except grpc.RpcError:
            pass
    for c in chans:
        c.close()
    return res


def op_unfinished(op):
    path = op.get("path", "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit")
    release = threading.Event()

    def requests():
        yield b"\0" * op.get("bytes", 0)
        release.wait(op.get("hold", 30))

    ends = {}

    def ended(i, t0):
        return lambda f: ends.setdefault(i, time.monotonic() - t0)

    with grpc.insecure_channel(op["target"]) as ch:
        fn = ch.stream_unary(path, request_serializer=lambda b: b,
                             response_deserializer=lambda b: b)
        t0 = time.monotonic()
        futs = []
        for i in range(op.get("n", 1)):
            f = fn.future(requests(), timeout=op.get("timeout", 60))
            f.add_done_callback(ended(i, t0))
            futs.append(f)
        out = []
        for i, f in enumerate(futs):
            try:
                f.result()
                r = {"error": None}
            except grpc.RpcError as e:
                r = error_json(e)
            r["s"] = round(ends.get(i, time.monotonic() - t0), 3)
            out.append(r)
        release.set()
    return {"results": out}


OPS = {"rls": op_rls, "health": op_health, "watch": op_watch, "raw": op_raw,
       "hammer": op_hammer, "unfinished": op_unfinished}


def main():
    global RLS, RLS_GRPC, HEALTH, HEALTH_GRPC, RL
    RLS, RLS_GRPC, HEALTH, HEALTH_GRPC, RL = stubs()
    if len(sys.argv) > 1 and sys.argv[1] == "--encode":
        # Prints the hex of one RateLimitRequest (for bench/run.sh).
        op = json.loads(sys.stdin.read())
        print(request(op).SerializeToString().hex())
        return
    for op in json.loads(sys.stdin.read()):
        print(json.dumps(OPS[op["op"]](op)), flush=True)


if __name__ == "__main__":
    main()
