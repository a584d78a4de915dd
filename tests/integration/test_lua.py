"""The decision library (lua/*.lua, embedded as the build does: a Redis
Function library) on a throwaway redis-server, protocol v3 of src/store.h: admit, deny, peek,
blocks, multi-limit and layered decisions, penalties, the stored values,
refunds, batches equal to separate calls, reload safety of the one key per
part, and the memory of a key."""

import os
import re
import struct
import time

from harness import Redis, RedisError, RespClient, between, check, eq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHEBANG = r"^#!lua name=(ratelimitd_[0-9a-f]{40})$"
GCRA, FIXED, SLIDING = 0, 1, 2
LETTER = {GCRA: "g", FIXED: "f", SLIDING: "s"}
UNITS = (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1))
# Each entry's fields and their bytes (lua/*.lua: algo, period, state, until).
ENTRY = {GCRA: (1, 5, 7, 6), FIXED: (1, 5, 6, 7, 6), SLIDING: (1, 5, 6, 7, 7, 6)}


def script(general=False, counted=False):
    """The library as Redis gets it (src/embed_lua.sh --lua of RL_LUA_FILES);
    with general, a copy of it without the short ways (decide_lone, the
    compiled parts: named *_general), so every request takes the general
    path; with counted, a copy whose compiled functions count their calls
    in the key "compiled-calls" (named *_counted)."""
    with open(os.path.join(ROOT, "Makefile.am")) as f:
        files = [l.split("=", 1)[1].split() for l in f if l.startswith("RL_LUA_FILES")][0]
    import subprocess
    out = subprocess.run(["sh", "src/embed_lua.sh", "--lua"] + files, cwd=ROOT,
                         capture_output=True, check=True).stdout
    if general:
        name = re.match(SHEBANG, out.split(b"\n", 1)[0].decode()).group(1).encode()
        switch = b"local lone, compiled = decide_lone, compile_part\n"
        check(out.count(switch) == 1, "the short ways' switch")
        out = out.replace(switch, b"local lone, compiled = false, false\n")
        out = out.replace(name, name + b"_general")
    if counted:
        name = re.match(SHEBANG, out.split(b"\n", 1)[0].decode()).group(1).encode()
        first = b"""add('local v = rpcall("GET", key)')"""
        check(out.count(first) == 1, "the compiled functions' first line")
        out = out.replace(first, b"""add('rcall("INCR", "compiled-calls") local v = rpcall("GET", key)')""")
        out = out.replace(name, name + b"_counted")
    return out


class Client(RespClient):
    """RespClient with raw bulk strings and error replies inside arrays
    returned as RedisError values (a batch's per-request errors)."""

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        if kind == b"+":
            return rest.decode()
        return int(rest)


def lim(algo, requests, period_ms, burst=0, block=0):
    """One limit: (algo, requests, period_ms, burst, block_ms, suffix)."""
    for unit, ms in UNITS:
        if period_ms % ms == 0:
            return (algo, requests, period_ms, burst, block,
                    "%s%d%s" % (LETTER[algo], period_ms // ms, unit))
    raise ValueError(period_ms)


def request(parts, pens=()):
    """The binary request: parts [(cost, [lim...])], pens [(denials,
    within_ms, block_ms, mask)]."""
    b = struct.pack("<BB", len(parts), len(pens))
    for cost, lims in parts:
        b += struct.pack("<Bq", len(lims), cost)
        for algo, req, per, burst, block, _ in lims:
            b += (struct.pack("<B", algo) + req.to_bytes(7, "little") +
                  per.to_bytes(5, "little") + burst.to_bytes(7, "little") +
                  block.to_bytes(5, "little"))
    for den, within, block, mask in pens:
        b += (den.to_bytes(7, "little") + within.to_bytes(5, "little") +
              block.to_bytes(5, "little") + struct.pack("<B", mask))
    return b


def part_key(base, lims):
    """A part's key: base ":l" its first limit's suffix."""
    return "%s:l%s" % (base, lims[0][5])


class Lua:
    """The library loaded into a throwaway Redis; sha is its function's
    name. With general or counted, that copy of it (script())."""

    def __init__(self, redis, general=False, counted=False):
        self.redis = redis
        self.c = Client(redis.port)
        self.code = script(general, counted)
        self.sha = self.c.call("FUNCTION", "LOAD", "REPLACE", self.code).decode()

    def call(self, *args):
        r = self.c.call(*args)
        if isinstance(r, RedisError):
            raise r
        return r

    def eval(self, keys, req):
        """FCALL of one request; its reply, or a RedisError."""
        return self.c.call("FCALL", self.sha, len(keys), *(list(keys) + [req]))

    def decide(self, base, cost, *lims):
        """One part, no penalty."""
        return self.eval([part_key(base, lims)], request([(cost, list(lims))]))

    def batch(self, reqs):
        """reqs: [(keys, request)] as one batch call."""
        keys, args = [], []
        for k, r in reqs:
            keys += k
            args.append(r)
        return self.c.call("FCALL", self.sha, len(keys), *(keys + ["batch", len(args)] + args))

    def entries(self, key):
        """A part key's value decoded: None (no key), ("lone", v), or a list
        of entries (algo, period, state..., until)."""
        v = self.c.call("GET", key)
        if v is None:
            return None
        if len(v) <= 3:
            return ("lone", int(v))
        out, pos = [], 0
        while pos < len(v):
            entry = []
            for width in ENTRY[v[pos]]:
                entry.append(int.from_bytes(v[pos:pos + width], "little"))
                pos += width
            out.append(tuple(entry))
        return out

    def tat(self, key):
        """The TAT (us) of a lone GCRA key."""
        kind, v = self.entries(key)
        eq(kind, "lone", "compact GCRA form")
        return int(self.call("PEXPIRETIME", key)) * 1000 - v

    def now_us(self):
        s, us = self.call("TIME")
        return int(s) * 1000000 + int(us)

    def close(self):
        self.c.close()


class lua_redis:
    """with lua_redis() as lua: a fresh Redis with the script loaded (with
    general or counted, that copy of it: script())."""

    def __init__(self, general=False, counted=False):
        self.general, self.counted = general, counted

    def __enter__(self):
        self.redis = Redis()
        self.redis.start()
        self.lua = Lua(self.redis, self.general, self.counted)
        return self.lua

    def __exit__(self, *exc):
        self.lua.close()
        self.redis.stop()
        self.redis.cleanup()


# The reply's layout (store.h): its head, each limit's and each penalty's
# fields as (bytes, ...), every number unsigned little-endian.
HEAD, LIMIT, PENALTY = (6, 1), (1, 7, 6, 6, 1), (1, 6)


def values(reply, n, m=0):
    """A reply decoded to its numbers: [now_ms, allowed, 5 per limit, 2 per
    penalty]; checks it is one string of exactly that layout's bytes."""
    widths = HEAD + LIMIT * n + PENALTY * m
    check(isinstance(reply, bytes) and len(reply) == sum(widths), "reply %r" % (reply,))
    out, pos = [], 0
    for w in widths:
        out.append(int.from_bytes(reply[pos:pos + w], "little"))
        pos += w
    return out


def shape(reply):
    """(n, m) of a reply with at most 2 penalties (every scenario here):
    7 + 21 n + 7 m bytes, so 3 n + m gives both."""
    return divmod((len(reply) - 7) // 7, 3)


def fields(reply, n, m=0):
    """A reply split: (now_ms, allowed, [(ok, rem, reset, retry, blk)...],
    [(state, retry)...])."""
    reply = values(reply, n, m)
    lims = [tuple(reply[2 + 5 * i:7 + 5 * i]) for i in range(n)]
    pens = [tuple(reply[2 + 5 * n + 2 * j:4 + 5 * n + 2 * j]) for j in range(m)]
    return reply[0], reply[1], lims, pens


# --------------------------------------------------------------------------
# The script, GCRA, windows, peeks (the checks of lua_check.sh)
# --------------------------------------------------------------------------

def test_lua_shebang_loads_on_standalone():
    """The library starts with its shebang, loads under the name it names
    (also its one function's, flagged allow-cross-slot-keys) and FCALL
    decides."""
    with lua_redis() as lua:
        m = re.match(SHEBANG, lua.code.split(b"\n", 1)[0].decode())
        check(m is not None, "first line %r" % lua.code[:80])
        eq(lua.sha, m.group(1), "the library's name")
        lib = lua.call("FUNCTION", "LIST", "LIBRARYNAME", lua.sha)
        eq(len(lib), 1, "one library")
        fns = dict(zip(lib[0][::2], lib[0][1::2]))[b"functions"]
        eq(len(fns), 1, "one function")
        fn = dict(zip(fns[0][::2], fns[0][1::2]))
        eq((fn[b"name"].decode(), fn[b"flags"]), (lua.sha, ["allow-cross-slot-keys"]),
           "the function and its flags")
        g = lim(GCRA, 1, 300000, 1)
        _, allowed, ls, _ = fields(lua.decide("rl:{site-1}", 1, g), 1)
        eq((allowed, ls[0]), (1, (1, 0, 300000, 0, 0)), "gcra admits")


def test_lua_gcra_state_exact():
    """A lone GCRA key is a value 0..999 with PXAT, TAT = PEXPIRETIME*1000
    - value; a TAT written that way decides exactly and moves by T."""
    with lua_redis() as lua:
        g5m = lim(GCRA, 1, 300000, 1)
        lua.decide("rl:{site-1}", 1, g5m)
        _, allowed, ls, _ = fields(lua.decide("rl:{site-1}", 1, g5m), 1)
        eq((allowed, ls[0][:2]), (0, (0, 0)), "gcra denies")
        between(ls[0][3], 299000, 300000, "retry ~300 s")
        kind, v = lua.entries("rl:{site-1}:lg5m")
        check(kind == "lone" and 0 <= v <= 999, "lone value %r" % v)
        between(int(lua.call("PTTL", "rl:{site-1}:lg5m")), 299000, 300001, "expiry ~300 s")
        # 1 per 1 s, burst 2 (T = 1,000,000 us), TAT = now + 500,123 us.
        g1s = lim(GCRA, 1, 1000, 2)
        now = lua.now_us()
        tat = now + 500123
        exp = (tat + 999) // 1000
        lua.call("SET", "rl:{tat}:lg1s", exp * 1000 - tat, "PXAT", exp)
        now2, allowed, ls, _ = fields(lua.decide("rl:{tat}", 2, g1s), 1)
        eq((allowed, ls[0][1]), (0, 1), "cost 2 denied, remaining 1")
        between(ls[0][3], 501 - (now2 - now // 1000) - 1, 501, "retry ~501 ms")
        _, allowed, ls, _ = fields(lua.decide("rl:{tat}", 1, g1s), 1)
        eq((allowed, ls[0][1]), (1, 0), "cost 1 admitted")
        eq(lua.tat("rl:{tat}:lg1s"), tat + 1000000, "new TAT = old + T, exact to the us")
        # Burst: 5 at once of 10/s burst 5, then retry <= 100 ms.
        g = lim(GCRA, 10, 1000, 5)
        for left in (4, 3, 2, 1, 0):
            _, allowed, ls, _ = fields(lua.decide("rl:{burst}", 1, g), 1)
            eq((allowed, ls[0][1]), (1, left), "burst remaining %d" % left)
        _, allowed, ls, _ = fields(lua.decide("rl:{burst}", 1, g), 1)
        eq(allowed, 0, "burst exhausted")
        between(ls[0][3], 1, 100, "retry")


def commands_run(lua):
    """{command: calls} since the last CONFIG RESETSTAT (INFO commandstats,
    which counts the commands a function runs too)."""
    out = {}
    for line in lua.call("INFO", "commandstats").decode().splitlines():
        m = re.match(r"cmdstat_([a-z|]+):calls=(\d+)", line)
        if m and m.group(1) not in ("info", "config|resetstat"):
            out[m.group(1)] = int(m.group(2))
    return out


def test_lua_lone_missing_key_is_one_set():
    """A lone GCRA request on a missing key (a client under its limit) runs
    one SET ... NX GET inside the function (and TIME); a live key is read
    by that SET, which writes nothing, then PEXPIRETIME and a SET of the
    new TAT; a denial writes nothing; a peek (cost 0) and a cost past the
    burst only read. Each answer is the general path's (test below)."""
    g = lim(GCRA, 2, 3600000, 2)
    key = part_key("rl:{one}", [g])
    with lua_redis() as lua:
        steps = [(1, 1, {"time": 1, "set": 1}),
                 (1, 1, {"time": 1, "set": 2, "pexpiretime": 1}),
                 (1, 0, {"time": 1, "set": 1, "pexpiretime": 1}),
                 (0, 1, {"time": 1, "get": 1, "pexpiretime": 1}),
                 (3, 0, {"time": 1, "get": 1, "pexpiretime": 1})]
        for i, (cost, want, cmds) in enumerate(steps):
            before = (lua.c.call("GET", key), lua.c.call("PEXPIRETIME", key))
            lua.call("CONFIG", "RESETSTAT")
            _, allowed, _, _ = fields(lua.decide("rl:{one}", cost, g), 1)
            cmds = dict(cmds, fcall=1)
            eq(commands_run(lua), cmds, "step %d (cost %d): the commands run" % (i, cost))
            eq(allowed, want, "step %d: allowed" % i)
            after = (lua.c.call("GET", key), lua.c.call("PEXPIRETIME", key))
            if i > 0 and not (cost and want):
                eq(after, before, "step %d: nothing written" % i)
        eq(lua.call("DEL", key), 1, "the key")
        _, allowed, ls, _ = fields(lua.decide("rl:{one}", 3, g), 1)
        eq((allowed, lua.call("EXISTS", key)), (0, 0), "a missing key, cost past the burst")


def test_lua_peek_and_windows():
    """A peek stores nothing; fixed and sliding windows keep their window
    and counts in the part's entry; a denial consumes nothing."""
    with lua_redis() as lua:
        f1h, g1m = lim(FIXED, 7, 3600000), lim(GCRA, 5, 60000, 5)
        _, allowed, ls, _ = fields(lua.decide("rl:{peek}", 0, f1h, g1m), 2)
        eq((allowed, ls[0][:2], ls[1][:2]), (1, (1, 7), (1, 5)), "peek: full")
        eq(lua.call("EXISTS", "rl:{peek}:lf1h"), 0, "peek writes nothing")
        f = lim(FIXED, 10, 3600000)
        now, allowed, ls, _ = fields(lua.decide("rl:{fw}", 3, f), 1)
        eq((allowed, ls[0][1]), (1, 7), "fixed admits cost 3")
        eq(ls[0][2], (now // 3600000 + 1) * 3600000 - now, "reset = window end")
        eq(lua.entries("rl:{fw}:lf1h"), [(FIXED, 3600000, now // 3600000, 3, 0)], "fixed entry")
        _, allowed, ls, _ = fields(lua.decide("rl:{fw}", 8, f), 1)
        eq((allowed, ls[0][1], ls[0][3]), (0, 7, ls[0][2]), "fixed denies, retry = reset")
        eq(lua.entries("rl:{fw}:lf1h"), [(FIXED, 3600000, now // 3600000, 3, 0)],
           "deny consumed nothing")
        s = lim(SLIDING, 5, 3600000)
        now, allowed, ls, _ = fields(lua.decide("rl:{sw}", 1, s), 1)
        eq((allowed, ls[0][1]), (1, 4), "sliding admits")
        eq(lua.entries("rl:{sw}:ls1h"), [(SLIDING, 3600000, now // 3600000, 0, 1, 0)],
           "sliding entry")
        eq(ls[0][2], (now // 3600000 + 2) * 3600000 - now, "reset = end of next window")


def test_lua_key_expiry_is_the_latest_entry():
    """A part's key expires when its last state or block stops mattering:
    kept while that moment is unchanged (SET KEEPTTL), moved when a later
    window or a block makes it later."""
    import time
    with lua_redis() as lua:
        g, f = lim(GCRA, 100, 1000, 100), lim(FIXED, 100, 3600000)
        now = fields(lua.decide("rl:{ex}", 1, g, f), 2)[0]
        hour_end = (now // 3600000 + 1) * 3600000
        eq(int(lua.call("PEXPIRETIME", "rl:{ex}:lg1s")), hour_end, "the hour window's end")
        now2 = fields(lua.decide("rl:{ex}", 1, g, f), 2)[0]
        if now2 // 3600000 == now // 3600000:
            eq(int(lua.call("PEXPIRETIME", "rl:{ex}:lg1s")), hour_end, "kept by a second admit")
        eq(lua.entries("rl:{ex}:lg1s")[1][3], 2, "the second admit was counted")
        w1, w2 = lim(FIXED, 100, 1000), lim(FIXED, 100, 2000)
        now = fields(lua.decide("rl:{w}", 1, w1, w2), 2)[0]
        eq(int(lua.call("PEXPIRETIME", "rl:{w}:lf1s")), (now // 2000 + 1) * 2000,
           "the 2 s window's end")
        time.sleep(((now // 2000 + 1) * 2000 - now) / 1000.0 + 0.05)
        now = fields(lua.decide("rl:{w}", 1, w1, w2), 2)[0]
        eq(int(lua.call("PEXPIRETIME", "rl:{w}:lf1s")), (now // 2000 + 1) * 2000,
           "moved to the next 2 s window's end")
        b, h = lim(GCRA, 1, 1000, 1, block=30000), lim(FIXED, 100, 2000)
        fields(lua.decide("rl:{b}", 1, b, h), 2)
        now, allowed, _, _ = fields(lua.decide("rl:{b}", 1, b, h), 2)
        eq(allowed, 0, "denied: the block starts")
        eq(int(lua.call("PEXPIRETIME", "rl:{b}:lg1s")), now + 30000, "moved to the block's end")


def test_lua_multi_limit_and_blocks():
    """All or nothing over one key holding both limits; a block's until
    lives in its limit's entry, holds after the limit refilled and ends."""
    import time
    with lua_redis() as lua:
        f1h, g1h = lim(FIXED, 10, 3600000), lim(GCRA, 1, 3600000, 1)
        _, allowed, ls, _ = fields(lua.decide("rl:{multi}", 1, f1h, g1h), 2)
        eq((allowed, ls[0][1], ls[1][1]), (1, 9, 0), "multi admits")
        e = lua.entries("rl:{multi}:lf1h")
        eq([x[:2] for x in e], [(FIXED, 3600000), (GCRA, 3600000)], "both entries in one key")
        check(int(lua.call("PTTL", "rl:{multi}:lf1h")) > 0, "the key expires")
        _, allowed, ls, _ = fields(lua.decide("rl:{multi}", 1, f1h, g1h), 2)
        eq((allowed, ls[0][:2], ls[1][0]), (0, (1, 9), 0), "multi denies")
        eq(lua.entries("rl:{multi}:lf1h"), e, "deny consumed nothing")
        b = lim(GCRA, 1, 300, 1, block=600)
        eq(fields(lua.decide("rl:{blk}", 1, b), 1)[1], 1, "admits")
        now, allowed, ls, _ = fields(lua.decide("rl:{blk}", 1, b), 1)
        eq((allowed, ls[0][3], ls[0][4]), (0, 600, 1), "block set on deny")
        eq(lua.entries("rl:{blk}:lg300ms")[0][-1], now + 600, "until in the entry")
        between(int(lua.call("PTTL", "rl:{blk}:lg300ms")), 1, 600, "key lives as the block")
        time.sleep(0.35)
        _, allowed, ls, _ = fields(lua.decide("rl:{blk}", 0, b), 1)
        eq((allowed, ls[0][4]), (0, 1), "block holds after the limit refilled (peek)")
        time.sleep(0.4)
        _, allowed, ls, _ = fields(lua.decide("rl:{blk}", 1, b), 1)
        eq((allowed, ls[0][4]), (1, 0), "block over")
        eq(lua.entries("rl:{blk}:lg300ms")[0], "lone", "compact form again")


def test_lua_bad_arguments():
    """A bad request is an error reply; in a batch, for that request alone;
    a bad batch layout is refused whole."""
    with lua_redis() as lua:
        bad = request([(1, [(9, 1, 1000, 0, 0, "x1s")])])
        check("bad limit 1" in str(lua.eval(["a"], bad)), "bad algorithm")
        check("bad arguments" in str(lua.eval(["a"], bad[:-1])), "short request")
        check("bad arguments" in str(lua.eval(["a", "b"], bad)), "key count")
        f = lim(FIXED, 2, 3600000)
        good = request([(1, [f])])
        out = lua.batch([(["rl:{be}:lf1h"], bad), (["rl:{be2}:lf1h"], good)])
        check(isinstance(out[0], RedisError) and "bad limit 1" in str(out[0]), "fails alone")
        eq(fields(out[1], 1)[1], 1, "the good one is decided")
        eq(lua.entries("rl:{be2}:lf1h")[0][3], 1, "and counted")
        r = lua.c.call("FCALL", lua.sha, 1, "a", "batch", 2, good)
        check("bad batch" in str(r), "bad layout refused whole")


def test_lua_reply_clamps_reset_past_its_width():
    """A TAT beyond what the reply's 6 bytes of ms hold (a key written by
    hand: the script's own writes stay far below): a peek's reset and a
    denial's reset and retry read 2^48 - 1 ms, on the lone-GCRA fast path
    (alone and in a batch) and on the general path, instead of wrapping."""
    top = (1 << 48) - 1
    for general in (False, True):
        with lua_redis(general) as lua:
            g = lim(GCRA, 10, 1000, 10)
            key = part_key("rl:{clamp}", [g])
            lua.call("SET", key, 0, "PXAT", 1 << 50)
            for cost, want in ((0, (1, 1, 0, top, 0)), (1, (0, 0, 0, top, top))):
                alone = fields(lua.eval([key], request([(cost, [g])])), 1)
                batch = fields(lua.batch([([key], request([(cost, [g])]))])[0], 1)
                for what, (_, allowed, ls, _) in (("alone", alone), ("batch", batch)):
                    eq((allowed,) + ls[0][:4], want,
                       "%s, %s, cost %d" % ("general" if general else "lone", what, cost))


# --------------------------------------------------------------------------
# Layered decisions, penalties, part costs
# --------------------------------------------------------------------------

ACCOUNT, ROUTE = lim(FIXED, 10, 3600000), lim(FIXED, 1, 3600000)
PEN = (2, 60000, 60000, 2)  # part 2 opts in: 2 denials within 60 s block 60 s


def layered(prefix, cost=1):
    keys = ["%s:{t}a:lf1h" % prefix, "%s:{t}r|x:lf1h" % prefix, "%s:{t}!pen|u:p" % prefix]
    return keys, request([(cost, [ACCOUNT]), (cost, [ROUTE])], [PEN])


def brief(reply, n, m):
    """What does not depend on the instant: allowed, each limit's ok,
    remaining, blocked, each penalty's state."""
    _, allowed, ls, ps = fields(reply, n, m)
    return (allowed, [(l[0], l[1], l[4]) for l in ls], [p[0] for p in ps])


def test_lua_layered_with_penalty():
    """Account 10/h and route 1/h in one step with a penalty on the route:
    admit; the route denies (the account keeps 9); the second denial
    starts the block; then blocked. The penalty key holds the block."""
    with lua_redis() as lua:
        got = [brief(lua.eval(*layered("rl:sep")), 2, 1) for _ in range(4)]
        eq(got, [(1, [(1, 9, 0), (1, 0, 0)], [0]),
                 (0, [(1, 9, 0), (0, 0, 0)], [0]),
                 (0, [(1, 9, 0), (0, 0, 0)], [2]),
                 (0, [(1, 9, 0), (1, 0, 0)], [1])],
           "admit, deny, block starts, blocked (the limits a peek)")
        eq(lua.entries("rl:sep:{t}a:lf1h")[0][3], 1, "a route denial spends nothing")
        check(int(lua.call("PTTL", "rl:sep:{t}!pen|u:p")) > 59000, "penalty block")
        check(int(lua.call("GET", "rl:sep:{t}!pen|u:p")) < 0, "the key holds -until")


def test_lua_part_costs():
    """Each part its own cost: 3 spends, 0 peeks and writes nothing;
    spending and refunding in one request is refused."""
    with lua_redis() as lua:
        a, b = lim(FIXED, 10, 3600000), lim(FIXED, 5, 3600000)
        keys = ["rl:{pc}a:lf1h", "rl:{pc}b:lf1h"]
        _, allowed, ls, _ = fields(lua.eval(keys, request([(3, [a]), (0, [b])])), 2)
        eq((allowed, ls[0][1], ls[1][1]), (1, 7, 5), "7 and 5 remaining")
        eq(lua.call("EXISTS", "rl:{pc}b:lf1h"), 0, "the peek wrote nothing")
        r = lua.eval(keys, request([(1, [a]), (-1, [b])]))
        check("bad arguments" in str(r), "mixed refused: %r" % (r,))


# --------------------------------------------------------------------------
# Refunds
# --------------------------------------------------------------------------

def test_lua_refunds_restore_exactly():
    """A negative cost gives back exactly what a cost spent (GCRA TAT to
    the microsecond, window counts), never below empty, admits even while
    blocked (the block stays), passes a live penalty block and never
    counts a penalty."""
    with lua_redis() as lua:
        f, s = lim(FIXED, 10, 3600000), lim(SLIDING, 10, 3600000)
        lua.decide("rl:{rf}", 3, f, s)
        before = lua.entries("rl:{rf}:lf1h")
        lua.decide("rl:{rf}", 2, f, s)
        _, allowed, ls, _ = fields(lua.decide("rl:{rf}", -2, f, s), 2)
        eq(lua.entries("rl:{rf}:lf1h"), before, "windows back to the first spend")
        eq((allowed, ls[0][:2], ls[1][:2], ls[0][3]), (1, (1, 7), (1, 7), 0), "admitted")
        _, _, ls, _ = fields(lua.decide("rl:{rf}", -50, f, s), 2)
        eq((ls[0][1], ls[1][1]), (10, 10), "never below empty")
        eq(lua.entries("rl:{rf}:lf1h"), None, "nothing left: the key is gone")

        g = lim(GCRA, 10, 3600000, 10)
        lua.decide("rl:{rg}", 4, g)
        tat1 = lua.tat("rl:{rg}:lg1h")
        lua.decide("rl:{rg}", 3, g)
        _, allowed, ls, _ = fields(lua.decide("rl:{rg}", -3, g), 1)
        eq(lua.tat("rl:{rg}:lg1h"), tat1, "TAT restored exactly")
        eq((allowed, ls[0][:2]), (1, (1, 6)), "remaining as before")
        lua.decide("rl:{rg}", -40, g)
        eq(lua.call("EXISTS", "rl:{rg}:lg1h"), 0, "a full bucket: no key")

        b = lim(GCRA, 1, 3600000, 1, block=60000)
        lua.decide("rl:{rb}", 1, b)
        lua.decide("rl:{rb}", 1, b)
        _, allowed, ls, _ = fields(lua.decide("rl:{rb}", -1, b), 1)
        eq((allowed, ls[0][0], ls[0][1], ls[0][3]), (1, 1, 1, 0), "admitted while blocked")
        check(lua.entries("rl:{rb}:lg1h")[0][-1] > 0, "the block stays")

        keys, spend = layered("rl:rp")
        for _ in range(3):  # admit, deny, deny: the penalty blocks
            lua.eval(keys, spend)
        pen = lua.call("GET", keys[2])
        r = lua.eval(keys, layered("rl:rp", cost=-1)[1])
        eq(brief(r, 2, 1), (1, [(1, 10, 0), (1, 1, 0)], [0]), "refund passes the block")
        eq(lua.call("GET", keys[2]), pen, "penalty untouched")


# --------------------------------------------------------------------------
# Batches equal separate calls
# --------------------------------------------------------------------------

def _span(replies):
    """The ms between the first and the last reply's now_ms (errors left
    out)."""
    ts = [values(r, *shape(r))[0] for r in replies if not isinstance(r, RedisError)]
    return max(ts) - min(ts) if ts else 0


def _same(sep, bat, what):
    """Replies equal but for the instant: each limit's reset and retry and
    each penalty's retry within the milliseconds between the two replies,
    plus each run's own span (a GCRA state counts from the run's first
    request)."""
    eq(len(sep), len(bat), what + ": replies")
    spans = _span(sep) + _span(bat)
    for i, (a, b) in enumerate(zip(sep, bat)):
        if isinstance(a, RedisError):
            check(isinstance(b, RedisError) and str(a) == str(b), "%s #%d: %r %r" % (what, i, a, b))
            continue
        eq(len(b), len(a), "%s #%d length" % (what, i))
        n, m = shape(a)
        a, b = values(a, n, m), values(b, n, m)
        slack = abs(b[0] - a[0]) + spans + 1
        # reset always, retry where the limit denies (0 where it admits)
        timed = set(2 + 5 * k + f for k in range(n) for f in (2, 3)
                    if f == 2 or a[2 + 5 * k] == 0)
        timed |= set(range(2 + 5 * n + 1, len(a), 2))
        for k in range(1, len(a)):
            if k in timed:
                check(abs(a[k] - b[k]) <= slack, "%s #%d field %d: %r %r" % (what, i, k, a, b))
            else:
                eq(b[k], a[k], "%s #%d field %d (%r / %r)" % (what, i, k, a, b))


def _scenarios():
    """(name, [(keys with %s for the prefix, request)...]): each algorithm,
    multi-limit with a block, layered with a penalty, costs and peeks."""
    g, f, s = lim(GCRA, 3, 3600000, 3), lim(FIXED, 3, 3600000), lim(SLIDING, 3, 3600000)
    multi = [lim(GCRA, 5, 60000, 2), lim(FIXED, 4, 3600000, block=60000),
             lim(SLIDING, 100, 86400000)]
    out = []
    for name, l in (("gcra", g), ("fixed", f), ("sliding", s)):
        k = ["%%s:{%s}:l%s" % (name, l[5])]
        out.append((name, [(k, request([(c, [l])])) for c in (1, 2, 0, 1, 1, -1, 1, 5)]))
    k = ["%s:{multi}:lg1m"]
    out.append(("multi-limit", [(k, request([(c, multi)])) for c in (1, 1, 2, 0, 1, 1, -1, 1)]))
    lk = ["%s:{t}a:lf1h", "%s:{t}r|x:lf1h", "%s:{t}!pen|u:p"]
    lay = [(lk, request([(c1, [ACCOUNT, g]), (c2, [ROUTE])], [PEN]))
           for c1, c2 in ((1, 1), (1, 1), (2, 0), (1, 1), (1, 1), (1, 1))]
    out.append(("layered", lay))
    return out


def test_lua_batch_equals_separate_calls():
    """For every algorithm, a multi-limit part with a block, and a layered
    decision with a penalty: the replies of one batch call equal those of
    the same requests sent one by one, and so do the keys they leave."""
    with lua_redis() as lua:
        for name, reqs in _scenarios():
            sep = [lua.eval([k % "sep" for k in keys], r) for keys, r in reqs]
            bat = lua.batch([([k % "bat" for k in keys], r) for keys, r in reqs])
            _same(sep, bat, name)
            for k in reqs[0][0]:
                if k.endswith(":p"):
                    a, b = lua.call("GET", k % "sep"), lua.call("GET", k % "bat")
                    check((a is None) == (b is None), "%s: %s" % (name, k))
                    continue
                a, b = lua.entries(k % "sep"), lua.entries(k % "bat")
                check((a is None) == (b is None), "%s: %s %r %r" % (name, k, a, b))
                if a and a[0] != "lone":
                    eq([x[:2] for x in b], [x[:2] for x in a], "%s: entries" % name)
                    eq([x[2:-1] for x in b if x[0] != GCRA], [x[2:-1] for x in a if x[0] != GCRA],
                       "%s: window states" % name)


def test_lua_lone_path_equals_general_path():
    """decide_lone (one GCRA limit, no block, no penalty) decides as the
    general path does, alone and in a batch: spends to a denial, a cost
    past the burst, a peek, a refund (the general path in both), a key
    another policy wrote in the entries form (left to the general path),
    and a key of another type (the same error). The keys left are alike."""
    g, f = lim(GCRA, 3, 3600000, 3), lim(FIXED, 9, 3600000)
    key, multi, bad = "%s:{lone}:lg1h", "%s:{lone-m}:lg1h", "%s:{lone-x}:lg1h"
    seq = [([key], request([(c, [g])])) for c in (1, 1, 0, 2, 1, 5, -1, 1, 1)]
    seq += [([multi], request([(1, [g, f])])), ([multi], request([(1, [g])])),
            ([multi], request([(0, [g])])), ([bad], request([(1, [g])]))]
    runs = {}
    for general in (False, True):
        with lua_redis(general) as lua:
            lua.call("HSET", bad % "sep", "a", "1")
            lua.call("HSET", bad % "bat", "a", "1")
            sep = [lua.eval([k % "sep" for k in keys], r) for keys, r in seq]
            bat = lua.batch([([k % "bat" for k in keys], r) for keys, r in seq])
            _same(sep, bat, "alone / batch (%s)" % ("general" if general else "lone"))
            left = [lua.entries(k % w) for k in (key, multi) for w in ("sep", "bat")]
            runs[general] = (sep, left)
    _same(runs[False][0], runs[True][0], "lone / general")
    check(isinstance(runs[False][0][-1], RedisError) and
          "WRONGTYPE" in str(runs[False][0][-1]), "a hash key: %r" % (runs[False][0][-1],))
    for a, b in zip(runs[False][1], runs[True][1]):
        eq(a[0] == "lone", b[0] == "lone", "the key's form (%r / %r)" % (a, b))
        if a[0] != "lone":
            eq([x[:2] for x in a], [x[:2] for x in b], "entries")


def _compiled_scenarios():
    """(name, [(keys with %s, request, pause s)...]) for the compiled parts:
    each algorithm alone but a lone GCRA, four limits to a denial, the
    most a part holds (eight limits, all three algorithms), a state
    that stops mattering between calls, keys in other forms (compact, other
    order), and requests left to the general path (peek, refund, block,
    penalty, two parts)."""
    # Windows of an hour and more: the two libraries' runs are a fraction
    # of a second apart, and a window that ended between them would make
    # their replies differ.
    g, f, s = lim(GCRA, 3, 3600000, 3), lim(FIXED, 5, 3600000), lim(SLIDING, 4, 7200000)
    four = [g, f, lim(FIXED, 100, 86400000), lim(SLIDING, 10, 86400000)]
    eight = [lim(SLIDING, 6 + i, 3600000 * (i + 2)) for i in range(4)] + \
            [lim(FIXED, 4 + i, 86400000 * (i + 2)) for i in range(3)] + [lim(GCRA, 5, 3600000, 5)]
    short = [lim(GCRA, 1000, 1000), lim(FIXED, 50, 3600000)]
    out = []
    for name, lims in (("fixed", [f]), ("sliding", [s]), ("four", four), ("eight", eight)):
        k = ["%%s:{c-%s}:l%s" % (name, lims[0][5])]
        out.append((name, [(k, request([(c, lims)]), 0) for c in (1, 1, 2, 1, 0, -1, 1, 3, 1)]))
    k = ["%s:{c-short}:lg1s"]
    out.append(("a state that stops mattering", [(k, request([(1, short)]), 0.005)] * 4))
    k = ["%s:{c-form}:lg1h"]
    out.append(("other forms", [(k, request([(1, [g])]), 0), (k, request([(1, [g, f])]), 0),
                                (k, request([(1, [g, f])]), 0), (k, request([(1, [f, g])]), 0),
                                (k, request([(1, [g, f])]), 0)]))
    blk = [g, lim(FIXED, 2, 3600000, block=60000)]
    lk = ["%s:{c}a:lf1h", "%s:{c}r|x:lf1h", "%s:{c}!pen|u:p"]
    out.append(("general ones", [(["%s:{c-b}:lg1h"], request([(1, blk)]), 0)] * 4 + [
        (lk, request([(1, [ACCOUNT]), (1, [ROUTE])], [PEN]), 0)] * 3))
    return out


def test_lua_compiled_parts_equal_general_path():
    """The compiled function of a request (compiled.lua) decides as the
    general path does, alone and in a batch, and leaves the same entries:
    every scenario of _compiled_scenarios; a key of another type answers
    the same error (NOTLOCAL-prefixed in the cluster form). The counted
    copy shows which requests took a compiled function: every spend of
    one part of window limits or several limits without a block or a
    penalty, and nothing else."""
    runs = {}
    for general in (False, True):
        with lua_redis(general) as lua:
            res = []
            for name, reqs in _compiled_scenarios():
                sep = []
                for keys, r, pause in reqs:
                    sep.append(lua.eval([k % "sep" for k in keys], r))
                    time.sleep(pause)
                bat = lua.batch([([k % "bat" for k in keys], r) for keys, r, _ in reqs])
                if not any(p for _, _, p in reqs):
                    _same(sep, bat, "%s: alone / batch" % name)
                left = [(lua.entries(k % w), int(lua.call("PTTL", k % w)))
                        for k in reqs[0][0] if not k.endswith(":p") for w in ("sep", "bat")]
                res.append((name, sep, left))
            lua.call("HSET", "x:{h}:lf1m", "a", "1")
            four = request([(1, [lim(FIXED, 5, 60000), lim(GCRA, 3, 3600000, 3)])])
            alone = lua.eval(["x:{h}:lf1m"], four)
            cl = lua.c.call("FCALL", lua.sha, 0, "keys", 1, "x:{h}:lf1m", "batch", 1, four)
            runs[general] = (res, alone, cl)
    for (name, a, la), (_, b, lb) in zip(runs[False][0], runs[True][0]):
        _same(a, b, "%s: compiled / general" % name)
        for (x, tx), (y, ty) in zip(la, lb):
            eq(x is None, y is None, "%s: a key left (%r / %r)" % (name, x, y))
            check((tx > 0 and ty > 0 and abs(tx - ty) < 5000) or tx == ty == -2,
                  "%s: the key's TTL (%d / %d ms)" % (name, tx, ty))
            if x and x[0] != "lone":
                eq([e[:2] for e in x], [e[:2] for e in y], "%s: entries" % name)
                eq([e[2:-1] for e in x if e[0] != GCRA], [e[2:-1] for e in y if e[0] != GCRA],
                   "%s: window states" % name)
    for i, what in ((1, "alone"), (2, "cluster form")):
        a, b = runs[False][i], runs[True][i]
        if i == 2:
            a, b = a[0], b[0]
        check(isinstance(a, RedisError) and str(a) == str(b) and "WRONGTYPE" in str(a),
              "%s, a hash key: %r / %r" % (what, a, b))
    check(str(runs[False][2][0]).startswith("NOTLOCAL "), "NOTLOCAL: %r" % (runs[False][2],))
    with lua_redis(counted=True) as lua:
        for name, reqs in _compiled_scenarios():
            for keys, r, _ in reqs:
                before = int(lua.call("GET", "compiled-calls") or 0)
                lua.eval([k % "n" for k in keys], r)
                lua.batch([([k % "m" for k in keys], r)])
                n = int(lua.call("GET", "compiled-calls") or 0) - before
                parts, pens = r[0], r[1]
                cost = struct.unpack("<q", r[3:11])[0]
                lims = [r[11 + 25 * i] for i in range(r[2])] if parts == 1 else []
                blocks = any(int.from_bytes(r[11 + 25 * i + 20:11 + 25 * i + 25], "little")
                             for i in range(r[2])) if parts == 1 else True
                want = 2 if (parts == 1 and pens == 0 and cost >= 1 and not blocks and
                             lims != [GCRA]) else 0
                eq(n, want, "%s: compiled calls for %r" % (name, r[:12]))


def test_lua_batch_repeated_requests_decided_alone():
    """A batch that repeats a request (a busy worker's batch of one policy),
    with refused requests and other requests between the repeats: each
    reply equals that of the same request sent alone, the refused ones
    answer their own error, and the keys left are the same."""
    a = request([(1, [lim(GCRA, 4, 3600000), lim(FIXED, 3, 60000)])])
    b = request([(2, [lim(FIXED, 5, 3600000)])])
    bad = request([(1, [lim(GCRA, 0, 1000)])])
    mixed = request([(1, [lim(FIXED, 5, 3600000)]), (-1, [lim(FIXED, 5, 60000)])])
    ka, kb = ["%s:{r}a:lg1h"], ["%s:{r}b:lf1h"]
    km = ["%s:{r}m:lf1h", "%s:{r}m2:lf1m"]
    reqs = [(ka, a), (ka, a), (kb, bad), (kb, bad), (ka, a), (kb, b), (ka, a),
            (km, mixed), (km, mixed), (kb, b), (kb, b), (kb, b), (ka, a)]
    with lua_redis() as lua:
        sep = [lua.eval([k % "sep" for k in keys], r) for keys, r in reqs]
        bat = lua.batch([([k % "bat" for k in keys], r) for keys, r in reqs])
        _same(sep, bat, "repeats")
        check(isinstance(bat[2], RedisError) and isinstance(bat[3], RedisError)
              and isinstance(bat[7], RedisError), "refused: %r" % (bat,))
        eq([values(r, *shape(r))[1] for r in bat if not isinstance(r, RedisError)],
           [1, 1, 1, 1, 0, 1, 0, 0, 0], "allowed")
        for k in ka + kb:
            x, y = lua.entries(k % "sep"), lua.entries(k % "bat")
            eq([e[:2] for e in y], [e[:2] for e in x], k + " entries")
            eq([e[2:-1] for e in y if e[0] != GCRA],
               [e[2:-1] for e in x if e[0] != GCRA], k + " window states")


def test_lua_batch_failed_read_fails_its_request_alone():
    """A request of a batch whose key cannot be read (here a hash: WRONGTYPE;
    on a cluster, a key the node does not serve) fails alone with nothing
    of it written, its other part's key included; the requests around it
    are decided. In the cluster form (keys in ARGV) its error starts with
    NOTLOCAL, which ratelimitd answers by sending that decision alone."""
    f = lim(FIXED, 5, 3600000)
    one, two = request([(1, [f])]), request([(1, [f]), (1, [f])])
    with lua_redis() as lua:
        for form in ("plain", "cluster"):
            a, b1, b2, c = ["rl:{%s}%s:lf1h" % (form, x) for x in ("a", "b1", "b2", "c")]
            lua.call("HSET", b2, "x", "1")
            keys, args = [a, b1, b2, c], ["batch", 3, one, two, one]
            if form == "plain":
                r = lua.c.call("FCALL", lua.sha, 4, *(keys + args))
            else:
                r = lua.c.call("FCALL", lua.sha, 0, "keys", 4, *(keys + args))
            eq(len(r), 3, "%s: one reply per request" % form)
            eq(fields(r[0], 1)[1], 1, "%s: the first request decided" % form)
            check(isinstance(r[1], RedisError) and "WRONGTYPE" in str(r[1]),
                  "%s: the second fails (%r)" % (form, r[1]))
            eq(str(r[1]).startswith("NOTLOCAL "), form == "cluster",
               "%s: NOTLOCAL prefix (%r)" % (form, r[1]))
            eq(lua.call("EXISTS", b1), 0, "%s: nothing of it written" % form)
            eq(fields(r[2], 1)[1], 1, "%s: the third request decided" % form)
            eq(lua.entries(c)[0][3], 1, "%s: and counted" % form)


# --------------------------------------------------------------------------
# Reloads: one key per part, entries found by algorithm and period
# --------------------------------------------------------------------------

def test_lua_reload_keeps_unchanged_limits_only():
    """A reload that changes a part's limits: an unchanged limit (same
    algorithm and period, requests may change) keeps its state; a new one
    or one whose period or algorithm changed starts fresh and never reads
    another's entry; an entry no limit names is dropped at the next write;
    a new first limit names a new key (the part starts fresh)."""
    with lua_redis() as lua:
        g1m, f1h, s1d = lim(GCRA, 5, 60000, 5), lim(FIXED, 10, 3600000), lim(SLIDING, 10, 86400000)
        for _ in range(3):
            lua.decide("rl:{r}", 1, g1m, f1h, s1d)
        key = "rl:{r}:lg1m"
        # requests of f1h raised, s1d gone, a new f1d: f1h keeps its 3
        f1h20, f1d = lim(FIXED, 20, 3600000), lim(FIXED, 10, 86400000)
        _, _, ls, _ = fields(lua.decide("rl:{r}", 0, g1m, f1h20, f1d), 3)
        eq([l[1] for l in ls], [2, 17, 10], "g1m and f1h kept, f1d fresh")
        lua.decide("rl:{r}", 1, g1m, f1h20, f1d)
        eq([e[:2] for e in lua.entries(key)],
           [(GCRA, 60000), (FIXED, 3600000), (FIXED, 86400000)], "s1d's entry dropped")
        # f1h becomes f2h, and a GCRA with f1h's period takes its place:
        # neither reads the fixed window's entry
        f2h, g1h = lim(FIXED, 10, 7200000), lim(GCRA, 10, 3600000, 10)
        _, _, ls, _ = fields(lua.decide("rl:{r}", 0, g1m, f2h, g1h, f1d), 4)
        eq([l[1] for l in ls], [1, 10, 10, 9], "f2h and g1h fresh, the others kept")
        # a new first limit: a new key
        _, _, ls, _ = fields(lua.decide("rl:{r}", 0, f1d, g1m), 2)
        eq([l[1] for l in ls], [10, 5], "another first limit: the part starts fresh")


# --------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------

def _bytes_per_key(lua, n, keys_req):
    lua.call("FLUSHALL")
    m0 = int(re.search(r"used_memory:(\d+)", lua.call("INFO", "memory").decode()).group(1))
    for start in range(0, n, 1000):
        for i in range(start, start + 1000):
            keys, r = keys_req(i)
            lua.c.send("FCALL", lua.sha, len(keys), *(keys + [r]))
        for _ in range(start, start + 1000):
            check(not isinstance(lua.c.read(), RedisError), "decided")
    m1 = int(re.search(r"used_memory:(\d+)", lua.call("INFO", "memory").decode()).group(1))
    return (m1 - m0) / float(lua.call("DBSIZE"))


def test_lua_memory_per_key():
    """Over 100,000 keys (as bench/run.sh measures), a key of one GCRA
    limit (the benchmark's deny policy, 1 per hour) takes at most 120
    bytes of Redis memory; the four-limit policy's key (1 s GCRA, minute,
    hour and day windows) at most 260."""
    with lua_redis() as lua:
        g = lim(GCRA, 1, 3600000, 1)
        one = _bytes_per_key(lua, 100000, lambda i: (["rl:{bench-deny|k%d}:lg1h" % i],
                                                    request([(1, [g])])))
        check(one <= 120, "%.1f B per single-GCRA key" % one)
        four = [lim(GCRA, 1000, 1000, 1000), lim(FIXED, 10000, 60000),
                lim(FIXED, 100000, 3600000), lim(FIXED, 1000000, 86400000)]
        per4 = _bytes_per_key(lua, 100000, lambda i: (["rl:{bench-four|k%d}:lg1s" % i],
                                                     request([(1, four)])))
        check(per4 <= 260, "%.1f B per four-limit key" % per4)
        print("memory: %.1f B per single-GCRA key, %.1f B per four-limit key" % (one, per4))
