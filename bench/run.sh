#!/usr/bin/env bash
# The benchmark: ratelimitd against its ceilings and a peer, in ONE run on
# this machine, everything on loopback, every goal of issue 15 (and the
# gRPC goal of issue 14) measured against the same Redis. Prints the
# tables and writes them to bench/results/latest.md. See bench/README.md.
#
#   bench/run.sh [--duration SECONDS] [--connections N] [--keys N]
#                [--no-perf] [--quick]
#
# DURATION (seconds per run) may also come from the environment; --quick
# is a smoke run (2 s runs, fewer keys and connections, no profile).
#
# Installs what it needs (Debian: wrk, redis-server, redis-tools,
# nginx-light, nghttp2-client, linux-perf, nodejs/npm when node is
# missing; npm: rate-limiter-flexible and ioredis into bench/peers/node/),
# builds ratelimitd with -O2 in build/bench, and stops everything it
# started (by pid) on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/lib.sh
. "$ROOT/tests/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/bench/lib.sh"

DURATION=${DURATION:-10}
CONNS=50
KEYS=10000
THREADS=2
WARMUP=2
CLUSTER_ROUNDS=3
MEM_KEYS=100000
OPEN_CONNS=10000
PERF=1
QUICK=0
while [ $# -gt 0 ]; do
    case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --no-perf) PERF=0; shift ;;
    --quick) QUICK=1; shift ;;
    *) echo "usage: $0 [--duration S] [--connections N] [--keys N] [--no-perf] [--quick]" >&2; exit 2 ;;
    esac
done
if [ "$QUICK" = 1 ]; then
    DURATION=2
    WARMUP=1
    MEM_KEYS=10000
    OPEN_CONNS=1000
    PERF=0
fi

BUILD="$ROOT/build/bench"
OUT="$ROOT/bench/results/latest.md"
WORK=$(mktemp -d /tmp/rl-bench.XXXXXX)
PIDS=()

trap bench_cleanup EXIT

# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------

install_bench_deps() {
    local pkgs=(wrk redis-server redis-tools nginx-light nghttp2-client)
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
    command -v perf >/dev/null 2>&1 || pkgs+=(linux-perf)
    rl_apt_install_missing "${pkgs[@]}"
    if [ ! -d "$ROOT/bench/peers/node/node_modules/rate-limiter-flexible" ] ||
        [ ! -d "$ROOT/bench/peers/node/node_modules/ioredis" ]; then
        rl_say "npm install (bench/peers/node)"
        (cd "$ROOT/bench/peers/node" && npm install --omit=dev --no-audit --no-fund \
            --loglevel=error >/dev/null)
    fi
}

build_ratelimitd() {
    rl_say "building ratelimitd -O2 in build/bench"
    rl_prepare_source "$ROOT"
    mkdir -p "$BUILD"
    (cd "$BUILD" && "$ROOT/configure" CFLAGS="-O2 -g" >configure.log 2>&1)
    make -C "$BUILD" -j"$(nproc)" all >"$BUILD/make.log" 2>&1
    cc -O2 -o "$WORK/replay" "$ROOT/bench/replay.c" -lhiredis -levent
}

# Prints the resident set size of PID in kB.
rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# Prints one field of INFO (e.g. "used_memory") from the bench Redis.
redis_info() {
    redis-cli -p "$REDIS_PORT" info "$2" | tr -d '\r' | awk -F: -v k="$1" '$1 == k { print $2 }'
}

# Prints the calls of one command from INFO commandstats.
redis_calls() {
    redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' |
        awk -F'[:=,]' -v c="cmdstat_$1" '$1 == c { print $3 }'
}

# One snapshot of the Redis servers on the given ports, summed: prints
# "CPU_US COMMANDS SCRIPT_CALLS": used_cpu_user + used_cpu_sys in
# microseconds (INFO cpu), the calls of every command but INFO (INFO
# commandstats, so the commands a script runs count too) and the calls of
# EVAL / EVALSHA / FCALL (the script calls).
redis_snap() {
    local port
    for port in "$@"; do
        redis-cli -p "$port" info cpu commandstats | tr -d '\r'
    done | awk -F'[:=,]' '
        $1 == "used_cpu_user" || $1 == "used_cpu_sys" { cpu += $2 }
        $1 ~ /^cmdstat_/ && $1 != "cmdstat_info" { cmds += $3 }
        $1 ~ /^cmdstat_(eval|fcall)/ { evals += $3 }
        END { printf "%.0f %d %d\n", cpu * 1e6, cmds, evals }'
}

# Per-unit Redis figures between two snapshots over N units (decisions,
# descriptors): prints "CPU_US_PER CMDS_PER CALLS_PER".
redis_per() {
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        if (n <= 0) { print "0 0 0"; exit }
        printf "%.2f %.2f %.3f\n", (y[1] - x[1]) / n, (y[2] - x[2]) / n, (y[3] - x[3]) / n
    }'
}

# Runs wrk against URL with PREFIX for SECONDS and prints its RESULT line.
wrk_run() {
    local url=$1 prefix=$2 seconds=$3 target=${4:-/v1/decide}
    BENCH_KEYS=$KEYS BENCH_PREFIX=$prefix BENCH_TARGET=$target \
        wrk -t"$THREADS" -c"$CONNS" -d"${seconds}s" --latency -s "$ROOT/bench/decide.lua" "$url" |
        grep '^RESULT' || echo "RESULT requests=0 seconds=1 rps=0 p50_us=0 p99_us=0 p999_us=0 errors=1 non2xx=0"
}

# Runs h2load against the gRPC listener for SECONDS: ShouldRateLimit with
# the prepared length-prefixed request ($WORK/grpc.body), 10 connections x
# 5 streams (50 concurrent streams), 2 threads. Prints a RESULT line like
# wrk_run's; the percentiles come from h2load's per-request log. A call
# whose grpc-status is not 0 still answers HTTP 200: errors= counts
# them from /metrics (every status but OK).
grpc_run() {
    local seconds=$1 log="$WORK/h2load-requests.log" out e0 e1
    rm -f "$log"
    e0=$(grpc_errors)
    out=$(h2load -t 2 -c 10 -m 5 -D "$seconds" --warm-up-time=1 --log-file="$log" \
        -H 'content-type: application/grpc' -H 'te: trailers' -d "$WORK/grpc.body" \
        "http://127.0.0.1:$GRPC_PORT/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit" \
        2>&1) || true
    e1=$(grpc_errors)
    echo "$out" >"$WORK/h2load.out"
    sort -n -k3 "$log" 2>/dev/null | awk -v s="$seconds" -v err=$((e1 - e0)) -v out="$out" '
        { d[NR] = $3; if ($2 < 200 || $2 > 299) bad++ }
        END {
            n = NR; if (n == 0) { print "RESULT requests=0 seconds=1 rps=0 p50_us=0 p99_us=0 p999_us=0 errors=1 non2xx=0"; exit }
            printf "RESULT requests=%d seconds=%s rps=%.0f p50_us=%d p99_us=%d p999_us=%d errors=%d non2xx=%d\n",
                n, s, n / s, d[int(n * 0.5) + 1], d[int(n * 0.99) + 1], d[int(n * 0.999) + 1], err, bad + 0
        }'
}

# gRPC calls ratelimitd answered with a status other than OK, from /metrics.
grpc_errors() {
    curl -s "http://127.0.0.1:$RL_PORT/metrics" |
        awk '/^ratelimitd_grpc_calls_[a-z_]*_total / && !/_ok_total/ { n += $2 } END { printf "%d", n }'
}

# The gRPC request of the gRPC run, length-prefixed: RateLimitRequest
# {domain "bench", descriptors [{entries [{key "k", value "v1"}]}]}.
grpc_body() {
    printf '\000\000\000\000\022\012\005bench\022\011\012\007\012\001k\022\002v1' >"$WORK/grpc.body"
}

# Busy CPU time of the whole machine (clock ticks, all cores).
machine_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# Runs wrk like wrk_run while counting the CPU of PIDS (a quoted list)
# and of the Redis servers on PORTS (a quoted list, may be empty): prints
# the RESULT line plus cpu_pct= and cpu_us_per_req= (PIDS'), machine_pct=
# (every process, of nproc * 100), and redis_us= (INFO cpu),
# redis_cmds= (commands) and redis_calls= (script calls) per request.
wrk_run_cpu() {
    local url=$1 prefix=$2 pids=$3 ports=${4:-} t0 m0 t1 m1 r0="" r1="" res hz n
    local rcpu=0 rcmds=0 rcalls=0
    hz=$(getconf CLK_TCK)
    # shellcheck disable=SC2086 # pids and ports are lists
    r0=$([ -z "$ports" ] || redis_snap $ports)
    # shellcheck disable=SC2086
    t0=$(cpu_ticks $pids)
    m0=$(machine_ticks)
    res=$(wrk_run "$url" "$prefix" "$DURATION")
    # shellcheck disable=SC2086
    t1=$(cpu_ticks $pids)
    m1=$(machine_ticks)
    # shellcheck disable=SC2086
    r1=$([ -z "$ports" ] || redis_snap $ports)
    n=$(field "$res" requests)
    if [ -n "$ports" ]; then
        read -r rcpu rcmds rcalls <<<"$(redis_per "$r0" "$r1" "$n")"
    fi
    echo "$res" | awk -v d=$((t1 - t0)) -v m=$((m1 - m0)) -v hz="$hz" -v s="$DURATION" -v n="$n" \
        -v rc="$rcpu" -v rm="$rcmds" -v rk="$rcalls" '{
        printf "%s cpu_pct=%.0f cpu_us_per_req=%.2f machine_pct=%.0f redis_us=%s redis_cmds=%s redis_calls=%s\n", $0,
            100 * d / hz / s, (n > 0 ? 1e6 * d / hz / n : 0), 100 * m / hz / s, rc, rm, rk
    }'
}

# Extracts NAME=value from a RESULT line.
field() {
    echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'
}

# ms with 2 decimals from microseconds.
ms() {
    awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

# Decisions per second one Redis core serves at US microseconds each.
per_core() {
    awk -v us="$1" 'BEGIN { if (us > 0) printf "%.0f", 1e6 / us; else print "n/a" }'
}

# ---------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------

start_redis() {
    REDIS_PORT=$(rl_free_port)
    mkdir -p "$WORK/redis"
    rl_redis_start "$REDIS_PORT" "$WORK/redis"
    PIDS+=("$RL_REDIS_PID")
}

# The policies of every ratelimitd of the bench, one per path prefix.
bench_policies() {
    cat <<'EOF'
  "policies": [
    { "name": "bench-allow", "match": { "path": "/allow/*" }, "key": [ "tenant" ],
      "limits": [ { "requests": 1000000, "per": "1m", "algorithm": "gcra" } ] },
    { "name": "bench-fixed", "match": { "path": "/fixed/*" }, "key": [ "tenant" ],
      "limits": [ { "requests": 1000000, "per": "1m", "algorithm": "fixed_window" } ] },
    { "name": "bench-deny", "match": { "path": "/deny/*" }, "key": [ "tenant" ],
      "limits": [ { "requests": 1, "per": "1h", "algorithm": "gcra", "burst": 1 } ] },
    { "name": "bench-account", "group": "account", "match": { "path": "/layered/*" },
      "key": [ "tenant" ],
      "limits": [ { "requests": 1000000, "per": "1m", "algorithm": "gcra" } ] },
    { "name": "bench-route", "match": { "path": "/layered/{route}" },
      "key": [ "tenant", "path.route" ],
      "limits": [ { "requests": 1000000, "per": "1m", "algorithm": "gcra" } ] },
    { "name": "bench-four", "match": { "path": "/four/*" }, "key": [ "tenant" ],
      "limits": [ { "requests": 1000, "per": "1s", "algorithm": "gcra" },
                  { "requests": 10000, "per": "1m", "algorithm": "fixed_window" },
                  { "requests": 100000, "per": "1h", "algorithm": "fixed_window" },
                  { "requests": 1000000, "per": "1d", "algorithm": "fixed_window" } ] },
    { "name": "bench-grpc", "match": { "domain": "bench", "descriptor": [ { "key": "k" } ] },
      "key": [ "descriptor.k" ],
      "limits": [ { "requests": 1000000000, "per": "1m", "algorithm": "gcra" } ] }
  ]
EOF
}

# Only the allow policy: a Redis Cluster refuses layered policies
# without a shared hash_tag, and the cluster run needs no other.
allow_policy() {
    bench_policies | sed -n '1,3p' | sed '3s/,$//'
    echo "  ]"
}

# Writes the config FILE of a ratelimitd on 127.0.0.1:PORT with the given
# "store" object and extra top-level members (EXTRA: "" or ending in ","),
# with the policies POLICIES (a function: bench_policies by default) prints.
write_config() {
    local file=$1 port=$2 store=$3 extra=${4:-} policies=${5:-bench_policies}
    {
        echo "{"
        echo "  \"listen\": \"127.0.0.1:$port\","
        echo "  \"workers\": 1, \"log_level\": \"warn\","
        echo "  \"http\": { \"max_connections\": 20000 },"
        echo "  $extra"
        echo "  \"store\": $store,"
        "$policies"
        echo "}"
    } >"$file"
}

# Starts ratelimitd with config FILE, log LOG, waits for /ready on PORT;
# sets STARTED_PID (added to PIDS).
start_rl() {
    local file=$1 log=$2 port=$3
    "$BUILD/ratelimitd" -c "$file" >/dev/null 2>"$log" &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    if ! rl_wait_http "http://127.0.0.1:$port/ready" 20; then
        cat "$log" >&2
        return 1
    fi
}

# The main ratelimitd: standalone Redis, top keys at their default (on),
# a gRPC listener.
start_ratelimitd() {
    RL_PORT=$(rl_free_port)
    GRPC_PORT=$(rl_free_port)
    write_config "$WORK/ratelimitd.json" "$RL_PORT" \
        "{ \"type\": \"redis\", \"address\": \"127.0.0.1:$REDIS_PORT\", \"timeout_ms\": 50 }" \
        "\"grpc\": { \"listen\": \"127.0.0.1:$GRPC_PORT\" },"
    start_rl "$WORK/ratelimitd.json" "$WORK/ratelimitd.log" "$RL_PORT"
    RL_PID=$STARTED_PID
}

# nginx with ONE worker, `return 204`: its CPU per request is the HTTP
# ceiling ratelimitd's own CPU per decision is compared with.
start_nginx() {
    NGINX_PORT=$(rl_free_port)
    mkdir -p "$WORK/nginx/logs"
    cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path $WORK/nginx/body;
    server {
        listen 127.0.0.1:$NGINX_PORT reuseport;
        location / { return 204; }
    }
}
EOF
    nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    for _ in $(seq 50); do
        rl_port_open 127.0.0.1 "$NGINX_PORT" && return 0
        sleep 0.1
    done
    cat "$WORK/nginx/logs/error.log" >&2
    return 1
}

start_node_peer() {
    NODE_PORT=$(rl_free_port)
    node "$ROOT/bench/peers/node/server.js" "$NODE_PORT" "$REDIS_PORT" "$(nproc)" \
        >"$WORK/node.log" 2>&1 &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    for _ in $(seq 100); do
        if curl -fsS -o /dev/null -H 'Content-Type: application/json' \
            -d '{"path":"/allow/x","tenant":"probe"}' "http://127.0.0.1:$NODE_PORT/v1/decide" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    cat "$WORK/node.log" >&2
    return 1
}

# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------

# Writes to FILE the arguments of the script call ratelimitd sends Redis
# for one decision on PREFIX/items for tenant "kprobe" (seen with
# MONITOR), each a 4-byte little-endian length and its bytes (the request
# argument is binary), so the replays below send what the running build
# sends, whatever the script's protocol. Prints the number of arguments.
capture_script_call() {
    local prefix=$1 file=$2 mon="$WORK/monitor.txt" mpid
    redis-cli -p "$REDIS_PORT" monitor >"$mon" 2>/dev/null &
    mpid=$!
    sleep 0.3
    curl -fsS -o /dev/null -H 'Content-Type: application/json' \
        -d "{\"path\":\"$prefix/items\",\"tenant\":\"kprobe\"}" \
        "http://127.0.0.1:$RL_PORT/v1/decide" || true
    sleep 0.3
    kill "$mpid" 2>/dev/null || true
    wait "$mpid" 2>/dev/null || true
    python3 - "$mon" "$file" <<'EOF'
import re, struct, sys
# MONITOR quotes each argument as sdscatrepr does: \\ \" \n \r \t \a \b
# and \xHH for any other byte that is not printable.
ESC = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b"}
def unquote(q):
    out, i = bytearray(), 0
    while i < len(q):
        c = q[i]
        if c == "\\" and q[i + 1] == "x":
            out.append(int(q[i + 2:i + 4], 16)); i += 4
        elif c == "\\":
            out += ESC.get(q[i + 1], q[i + 1].encode("latin-1")); i += 2
        else:
            out += c.encode("latin-1"); i += 1
    return bytes(out)
n = 0
with open(sys.argv[2], "wb") as f:
    for line in open(sys.argv[1], encoding="latin-1"):
        args = [unquote(a) for a in re.findall(r'"((?:[^"\\]|\\.)*)"', line)]
        if args and args[0].lower() == b"fcall" and any(b"kprobe" in a for a in args):
            for a in args:
                f.write(struct.pack("<I", len(a)) + a)
            n = len(args)
            break
print(n)
EOF
}

# Writes FILE: one command of the given arguments, as bench/replay reads
# it (each a 4-byte little-endian length and its bytes).
write_command() {
    python3 - "$@" <<'EOF'
import struct, sys
with open(sys.argv[1], "wb") as f:
    for a in sys.argv[2:]:
        f.write(struct.pack("<I", len(a.encode())) + a.encode())
EOF
}

# The decisions of one policy shape each, on the main ratelimitd: its
# CPU and Redis's per decision.
run_decisions() {
    local url=$1
    rl_say "allow path (one GCRA limit): warm-up ${WARMUP}s, then ${DURATION}s"
    wrk_run "$url" /allow "$WARMUP" >/dev/null
    ALLOW=$(wrk_run_cpu "$url" /allow "$RL_PID" "$REDIS_PORT")
    echo "$ALLOW"
    rl_say "one fixed-window limit: ${DURATION}s"
    FIXED=$(wrk_run_cpu "$url" /fixed "$RL_PID" "$REDIS_PORT")
    echo "$FIXED"
    rl_say "four-limit tenant policy (deploy/examples' events-tenant): ${DURATION}s"
    FOUR=$(wrk_run_cpu "$url" /four "$RL_PID" "$REDIS_PORT")
    echo "$FOUR"
    rl_say "two-group decision (account + route in one step): ${DURATION}s"
    LAYERED=$(wrk_run_cpu "$url" /layered "$RL_PID" "$REDIS_PORT")
    echo "$LAYERED"
}

# The deny path: every key spent first, then all denials (the local deny
# cache answers most); Redis commands and script calls per second.
run_deny() {
    local url=$1 s0 s1 t0 t1
    rl_say "deny path: ${WARMUP}s to push every key over its limit, then ${DURATION}s"
    wrk_run "$url" /deny "$WARMUP" >/dev/null
    s0=$(redis_snap "$REDIS_PORT")
    t0=$(date +%s.%N)
    DENY=$(wrk_run "$url" /deny "$DURATION")
    t1=$(date +%s.%N)
    s1=$(redis_snap "$REDIS_PORT")
    echo "$DENY"
    read -r DENY_CMDS DENY_EVALS <<<"$(awk -v a="$s0" -v b="$s1" -v t0="$t0" -v t1="$t1" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        printf "%.0f %.0f\n", (y[2] - x[2]) / (t1 - t0), (y[3] - x[3]) / (t1 - t0) }')"
}

# perf record -g of the main ratelimitd during 5 s of the allow path.
run_profile() {
    local url=$1 wrk_pid
    PERF_TXT=""
    [ "$PERF" = 1 ] && command -v perf >/dev/null 2>&1 || return 0
    rl_say "perf profile of ratelimitd during 5 s of the allow path"
    (wrk_run "$url" /allow 6 >/dev/null) &
    wrk_pid=$!
    sleep 0.5
    if perf record -F 499 -g -o "$WORK/perf.data" -p "$RL_PID" -- sleep 5 >/dev/null 2>&1; then
        PERF_TXT=$(perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol \
            2>/dev/null | grep -E '^ +[0-9]+\.[0-9]+%' | head -25 || true)
    else
        PERF_TXT="perf record failed in this environment"
    fi
    wait "$wrk_pid" || true
}

# ratelimitd's RSS with OPEN_CONNS open keep-alive connections.
run_conns() {
    local conns_pid
    rl_say "RSS with $OPEN_CONNS open keep-alive connections"
    coproc CONNS_PROC { python3 "$ROOT/bench/conns.py" "$RL_PORT" "$OPEN_CONNS"; }
    conns_pid=$CONNS_PROC_PID
    PIDS+=("$conns_pid")
    read -r -u "${CONNS_PROC[0]}" _ || true
    sleep 0.5
    RSS_CONNS=$(rss_kb "$RL_PID")
    OPEN_SEEN=$(curl -fsS "http://127.0.0.1:$RL_PORT/metrics" |
        awk '$1 == "ratelimitd_open_connections" { print $2 }')
    rl_stop_pid "$conns_pid"
}

# The unpipelined Redis ceiling: bench/replay (redis-benchmark cannot
# send a binary argument) replaying ratelimitd's own script call for the
# allow policy on random keys, one call in flight per connection.
run_redis_ceiling() {
    local r
    rl_say "Redis ceiling: bench/replay, FCALL of ratelimitd's allow decision"
    if [ "$(capture_script_call /allow "$WORK/allow.call")" -lt 3 ]; then
        REDIS_RPS=0 REDIS_P50=0 REDIS_P99=0
        return 0
    fi
    r=$("$WORK/replay" "$REDIS_PORT" "$CONNS" "$DURATION" "$KEYS" "$WORK/allow.call" |
        tail -n 1 | tr -d '"')
    echo "$r"
    REDIS_RPS=$(echo "$r" | cut -d, -f2)
    REDIS_P50=$(echo "$r" | cut -d, -f5)
    REDIS_P99=$(echo "$r" | cut -d, -f7)
}

# envoyproxy/ratelimit's pattern per descriptor: INCRBY then PEXPIRE,
# pipelined 16 deep, not atomic. Redis CPU per descriptor (both).
run_envoy_pattern() {
    local n=$((DURATION * 100000)) s0 s1 s2
    rl_say "envoyproxy/ratelimit's pattern: redis-benchmark -P 16 INCRBY + PEXPIRE, $n each"
    s0=$(redis_snap "$REDIS_PORT")
    redis-benchmark -p "$REDIS_PORT" -c "$CONNS" -P 16 -r "$KEYS" -n "$n" -q \
        incrby "envoy_k__rand_int__" 1 >/dev/null
    s1=$(redis_snap "$REDIS_PORT")
    redis-benchmark -p "$REDIS_PORT" -c "$CONNS" -P 16 -r "$KEYS" -n "$n" -q \
        pexpire "envoy_k__rand_int__" 60000 >/dev/null
    s2=$(redis_snap "$REDIS_PORT")
    ENVOY_US=$(awk -v a="$s0" -v b="$s1" -v c="$s2" -v n="$n" 'BEGIN {
        split(a, x, " "); split(b, y, " "); split(c, z, " ")
        printf "%.2f", (z[1] - x[1]) / n }')
    ENVOY_INCR_US=$(redis_per "$s0" "$s1" "$n" | cut -d' ' -f1)
    redis-cli -p "$REDIS_PORT" eval "for _, k in ipairs(redis.call('keys', 'envoy_*')) do redis.call('del', k) end" 0 >/dev/null
}

# envoyproxy/ratelimit's pattern as one request sends it: for each of 4
# descriptors INCRBY then EXPIRE, the 8 commands in one pipeline, one
# request in flight per connection (its default: no pipelining across
# requests). Redis CPU per request, i.e. per four-descriptor decision.
run_envoy_request() {
    local r s0 s1 n d files=()
    rl_say "envoyproxy/ratelimit's pattern per request: bench/replay, 4 x (INCRBY + EXPIRE) pipelined"
    for d in 1 2 3 4; do
        write_command "$WORK/envoy.$d.incrby" INCRBY "envoy_kprobe_d$d" 1
        write_command "$WORK/envoy.$d.expire" EXPIRE "envoy_kprobe_d$d" 60
        files+=("$WORK/envoy.$d.incrby" "$WORK/envoy.$d.expire")
    done
    s0=$(redis_snap "$REDIS_PORT")
    r=$("$WORK/replay" "$REDIS_PORT" "$CONNS" "$DURATION" "$KEYS" "${files[@]}" |
        tail -n 1 | tr -d '"')
    s1=$(redis_snap "$REDIS_PORT")
    n=$(echo "$r" | awk -F, -v s="$DURATION" '{ printf "%d", $2 * s }')
    ENVOY_REQ_US=$(redis_per "$s0" "$s1" "$n" | cut -d' ' -f1)
    redis-cli -p "$REDIS_PORT" eval "for _, k in ipairs(redis.call('keys', 'envoy_*')) do redis.call('del', k) end" 0 >/dev/null
}

# One GCRA limit on a Redis Cluster of N masters (3, or 1 with every
# slot): Redis CPU per decision summed over the masters, from a second
# ratelimitd, in CLUSTER_ROUNDS rounds. Each round first runs the main
# ratelimitd's allow path on the standalone Redis (URL), then the cluster,
# so each ratio compares two runs seconds apart: the machine's drift over
# the bench does not count. The round of the median ratio is the RESULT
# line in CLUSTER (3) or CLUSTER1 (1); its ratio and all of them go to
# CLUSTER_RATIO / CLUSTER_RATIOS (or CLUSTER1_...). The one-master run
# isolates what the cluster path itself costs Redis from three Redis
# processes sharing the machine's cores.
run_cluster() {
    local url=$1 masters=${2:-3} port store seeds n var=CLUSTER r s i rounds=()
    [ "$masters" = 1 ] && var=CLUSTER1
    rl_say "Redis Cluster ($masters master(s)): one GCRA limit, $CLUSTER_ROUNDS rounds of ${DURATION}s against standalone"
    if ! start_cluster "$masters"; then
        printf -v "$var" '%s' "RESULT requests=0 seconds=1 rps=0 p50_us=0 p99_us=0 p999_us=0 errors=1 non2xx=0"
        printf -v "${var}_RATIO" '%s' "n/a"
        printf -v "${var}_RATIOS" '%s' "none: the cluster did not start"
        return 0
    fi
    port=$(rl_free_port)
    seeds=$(printf '"127.0.0.1:%s", ' "${CLUSTER_PORTS[@]:0:2}")
    store="{ \"type\": \"redis\", \"cluster\": true, \"timeout_ms\": 50, \"nodes\": [ ${seeds%, } ] }"
    write_config "$WORK/cluster.json" "$port" "$store" "" allow_policy
    start_rl "$WORK/cluster.json" "$WORK/cluster.log" "$port"
    wrk_run "http://127.0.0.1:$port" /allow "$WARMUP" >/dev/null
    for ((i = 0; i < CLUSTER_ROUNDS; i++)); do
        s=$(wrk_run_cpu "$url" /allow "$RL_PID" "$REDIS_PORT")
        r=$(wrk_run_cpu "http://127.0.0.1:$port" /allow "$STARTED_PID" "${CLUSTER_PORTS[*]}")
        echo "standalone: $s"
        echo "cluster: $r"
        rounds+=("$(ratio "$(field "$r" redis_us)" "$(field "$s" redis_us)") $r")
    done
    r=$(printf '%s\n' "${rounds[@]}" | sort -n | sed -n "$(((CLUSTER_ROUNDS + 1) / 2))p")
    printf -v "$var" '%s' "${r#* }"
    printf -v "${var}_RATIO" '%s' "${r%% *}"
    printf -v "${var}_RATIOS" '%s' "$(printf '%s\n' "${rounds[@]}" | cut -d' ' -f1 | paste -sd' ')"
    rl_stop_pid "$STARTED_PID"
    for n in "${CLUSTER_PORTS[@]}"; do
        redis-cli -p "$n" shutdown nosave >/dev/null 2>&1 || true
    done
}

# The allow path with the top keys summary off ("top_keys": {"enabled":
# false}), from a third ratelimitd; skipped on a build without the switch.
run_top_keys() {
    local port store
    NOTOP=""
    port=$(rl_free_port)
    store="{ \"type\": \"redis\", \"address\": \"127.0.0.1:$REDIS_PORT\", \"timeout_ms\": 50 }"
    write_config "$WORK/notop.json" "$port" "$store" '"top_keys": { "enabled": false },'
    if ! "$BUILD/ratelimitd" -t "$WORK/notop.json" >/dev/null 2>&1; then
        rl_say "top keys off: skipped (this build has no \"top_keys\" switch)"
        return 0
    fi
    rl_say "allow path with top keys off: ${DURATION}s"
    start_rl "$WORK/notop.json" "$WORK/notop.log" "$port"
    wrk_run "http://127.0.0.1:$port" /allow "$WARMUP" >/dev/null
    NOTOP=$(wrk_run_cpu "http://127.0.0.1:$port" /allow "$STARTED_PID" "$REDIS_PORT")
    echo "$NOTOP"
    rl_stop_pid "$STARTED_PID"
}

# nginx (1 worker) under the same wrk: throughput and CPU per request.
run_nginx() {
    local workers
    rl_say "HTTP ceiling: nginx return 204 (1 worker)"
    start_nginx
    workers=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
    wrk_run "http://127.0.0.1:$NGINX_PORT" /allow "$WARMUP" >/dev/null
    NGINX=$(wrk_run_cpu "http://127.0.0.1:$NGINX_PORT" /allow "$workers")
    echo "$NGINX"
    rl_stop_pid "$NGINX_PID"
}

run_node() {
    rl_say "Node.js peer (rate-limiter-flexible + ioredis)"
    start_node_peer
    wrk_run "http://127.0.0.1:$NODE_PORT" /allow "$WARMUP" >/dev/null
    NODE=$(wrk_run_cpu "http://127.0.0.1:$NODE_PORT" /allow \
        "$NODE_PID $(pgrep -P "$NODE_PID" | tr '\n' ' ')" "$REDIS_PORT")
    echo "$NODE"
    rl_stop_pid "$NODE_PID"
}

# Redis memory per key of the deny policy (1 per hour, so each key lives
# an hour), created by replaying ratelimitd's own call for MEM_KEYS keys.
run_memory() {
    local mem0 mem1
    rl_say "Redis memory per GCRA key ($MEM_KEYS keys)"
    capture_script_call /deny "$WORK/deny.call" >/dev/null
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    sleep 1
    mem0=$(redis_info used_memory memory)
    python3 - "$WORK/deny.call" "$MEM_KEYS" <<'EOF' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
import struct, sys
data, args, i = open(sys.argv[1], "rb").read(), [], 0
while i < len(data):
    (n,) = struct.unpack_from("<I", data, i)
    args.append(data[i + 4:i + 4 + n]); i += 4 + n
out = sys.stdout.buffer
for k in range(int(sys.argv[2])):
    call = [a.replace(b"kprobe", b"k%d" % k) for a in args]
    out.write(b"*%d\r\n" % len(call) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in call))
EOF
    sleep 2
    mem1=$(redis_info used_memory memory)
    DBSIZE=$(redis-cli -p "$REDIS_PORT" dbsize)
    PER_KEY=$(awk -v a="$mem0" -v b="$mem1" -v n="$DBSIZE" 'BEGIN { if (n > 0) printf "%.1f", (b - a) / n; else print 0 }')
}

main() {
    local url
    STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    rl_install_deps
    install_bench_deps
    build_ratelimitd
    ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    BENCH_T0=$(date +%s)

    start_redis
    start_ratelimitd
    url="http://127.0.0.1:$RL_PORT"
    sleep 0.5
    RSS_IDLE=$(rss_kb "$RL_PID")

    run_decisions "$url"
    rl_say "gRPC ShouldRateLimit (h2load, 50 streams): ${DURATION}s"
    grpc_body
    GRPC=$(grpc_run "$DURATION")
    echo "$GRPC"
    run_deny "$url"
    RSS_AFTER=$(rss_kb "$RL_PID")
    run_profile "$url"
    run_conns
    run_redis_ceiling
    run_envoy_pattern
    run_envoy_request
    run_cluster "$url" 3
    run_cluster "$url" 1
    run_top_keys
    run_nginx
    run_node
    run_memory
    BENCH_SECONDS=$(($(date +%s) - BENCH_T0))
    LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
    report
}

# A row of the targets table: label, measured, target, result.
target_row() {
    printf '| %s | %s | %s %s | %s |\n' "$1" "$2" "$3" "$4" "$(met "$2" "$3" "$4")"
}

# "met" if V (a number, units after it ignored) OP T holds, else missed.
met() {
    awk -v v="${1%% *}" -v op="$2" -v t="${3%% *}" 'BEGIN {
        if (v == "n/a" || v == "") { print "n/a"; exit }
        if ((op == ">=" && v + 0 >= t + 0) || (op == "<=" && v + 0 <= t + 0) || (op == "<" && v + 0 < t + 0)) print "met"; else print "**missed**" }'
}

# The label of run NAME (the variable holding its RESULT line).
run_label() {
    case $1 in
    ALLOW) echo "ratelimitd, allow path, one GCRA limit (POST /v1/decide)" ;;
    FIXED) echo "ratelimitd, one fixed-window limit" ;;
    FOUR) echo "ratelimitd, four-limit tenant policy (1 s gcra + minute, hour, day windows)" ;;
    LAYERED) echo "ratelimitd, two groups (account + route), one step" ;;
    CLUSTER) echo "ratelimitd, one GCRA limit on a 3-master Redis Cluster (Redis: sum over masters)" ;;
    CLUSTER1) echo "ratelimitd, one GCRA limit on a 1-master Redis Cluster (every slot on one node)" ;;
    NOTOP) echo "ratelimitd, allow path with top keys off" ;;
    GRPC) echo "ratelimitd, gRPC ShouldRateLimit (h2load, 10 connections x 5 streams)" ;;
    DENY) echo "ratelimitd, deny path (keys over their limit)" ;;
    NGINX) echo "HTTP ceiling: nginx \`return 204\`, 1 worker" ;;
    NODE) echo "peer: Node.js rate-limiter-flexible + ioredis" ;;
    esac
}

# The runs table: one row per wrk/h2load run.
report_runs() {
    local name r label
    echo "| run | requests/s | p50 | p99 | p99.9 | errors / non-2xx |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for name in ALLOW FIXED FOUR LAYERED CLUSTER CLUSTER1 NOTOP GRPC DENY NGINX NODE; do
        r=${!name}
        [ -n "$r" ] || continue
        label=$(run_label "$name")
        printf '| %s | %s | %s ms | %s ms | %s ms | %s / %s |\n' "$label" "$(field "$r" rps)" \
            "$(ms "$(field "$r" p50_us)")" "$(ms "$(field "$r" p99_us)")" \
            "$(ms "$(field "$r" p999_us)")" "$(field "$r" errors)" "$(field "$r" non2xx)"
    done
    printf '| %s | %s | %s ms | %s ms | n/a | n/a |\n' \
        "Redis ceiling: bench/replay of ratelimitd's FCALL (allow decision), unpipelined" \
        "$REDIS_RPS" "$REDIS_P50" "$REDIS_P99"
}

# The cost table: per policy shape, Redis's CPU, commands and script
# calls per decision, decisions per second per Redis core, ratelimitd's
# CPU per decision.
report_costs() {
    local name r label
    echo "| decision | Redis CPU per decision | Redis commands per decision | script calls per decision | decisions/s per Redis core | ratelimitd CPU per decision |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for name in ALLOW FIXED FOUR LAYERED CLUSTER CLUSTER1; do
        r=${!name}
        [ -n "$r" ] || continue
        label=$(run_label "$name")
        printf '| %s | %s µs | %s | %s | %s | %s µs |\n' "$label" "$(field "$r" redis_us)" \
            "$(field "$r" redis_cmds)" "$(field "$r" redis_calls)" \
            "$(per_core "$(field "$r" redis_us)")" "$(field "$r" cpu_us_per_req)"
    done
    printf '| %s | %s µs | 2 | n/a | %s | n/a |\n' \
        "envoyproxy/ratelimit's pattern, one descriptor (INCRBY + PEXPIRE, -P 16)" \
        "$ENVOY_US" "$(per_core "$ENVOY_US")"
    printf '| %s | %s µs | 8 | n/a | %s | n/a |\n' \
        "envoyproxy/ratelimit's pattern, four descriptors" \
        "$(awk -v u="$ENVOY_US" 'BEGIN { printf "%.2f", 4 * u }')" \
        "$(per_core "$(awk -v u="$ENVOY_US" 'BEGIN { print 4 * u }')")"
    printf '| %s | %s µs | 8 | n/a | %s | n/a |\n' \
        "envoyproxy/ratelimit's pattern as one request sends it, four descriptors (8 commands in one pipeline, unpipelined across requests)" \
        "$ENVOY_REQ_US" "$(per_core "$ENVOY_REQ_US")"
}

# The targets of issue 15 (and issue 14's gRPC line), from this run.
report_targets() {
    local a_rps four_ratio rl_nginx top_row
    a_rps=$(field "$ALLOW" rps)
    four_ratio=$(ratio "$(field "$FOUR" redis_us)" "$(awk -v u="$ENVOY_US" 'BEGIN { print 4 * u }')")
    rl_nginx=$(ratio "$(field "$ALLOW" cpu_us_per_req)" "$(field "$NGINX" cpu_us_per_req)")
    echo "| target | measured | target | result |"
    echo "| --- | ---: | ---: | --- |"
    target_row "Redis CPU per decision, one GCRA limit" "$(field "$ALLOW" redis_us) µs" "<=" "6 µs"
    target_row "Redis CPU per decision, four-limit tenant policy" "$(field "$FOUR" redis_us) µs" "<=" "10 µs"
    target_row "four-limit policy / (4 x envoyproxy/ratelimit's per descriptor, $ENVOY_US µs)" "$four_ratio" "<" "1"
    echo "| four-limit policy / envoyproxy/ratelimit's pattern as one request of four descriptors sends it ($ENVOY_REQ_US µs) | $(ratio "$(field "$FOUR" redis_us)" "$ENVOY_REQ_US") | (no target) | n/a |"
    target_row "cluster / standalone Redis CPU per decision (one GCRA limit; the median of $CLUSTER_ROUNDS rounds, each against a standalone run just before it: $CLUSTER_RATIOS)" "$CLUSTER_RATIO" "<=" "1.25"
    if [ -n "${CLUSTER1:-}" ]; then
        echo "| 1-master cluster / standalone Redis CPU per decision (the cluster path without three Redis processes sharing the cores; median of $CLUSTER_ROUNDS rounds: $CLUSTER1_RATIOS) | $CLUSTER1_RATIO | (no target) | n/a |"
    fi
    target_row "ratelimitd CPU per allowed decision / nginx CPU per request ($(field "$ALLOW" cpu_us_per_req) / $(field "$NGINX" cpu_us_per_req) µs)" "$rl_nginx" "<=" "1.3"
    target_row "allow throughput / unpipelined Redis ceiling" "$(ratio "$a_rps" "$REDIS_RPS")" ">=" "0.7"
    target_row "allow path p99 at $CONNS connections" "$(ms "$(field "$ALLOW" p99_us)") ms" "<=" "2 ms"
    target_row "deny throughput / nginx ceiling" "$(ratio "$(field "$DENY" rps)" "$(field "$NGINX" rps)")" ">=" "0.5"
    target_row "gRPC throughput / HTTP decide throughput" "$(ratio "$(field "$GRPC" rps)" "$a_rps")" ">=" "0.9"
    target_row "gRPC p99 at 50 streams" "$(ms "$(field "$GRPC" p99_us)") ms" "<=" "2 ms"
    target_row "allow throughput / Node.js peer" "$(ratio "$a_rps" "$(field "$NODE" rps)")" ">=" "3"
    target_row "RSS with $OPEN_CONNS open connections" "$(awk -v k="$RSS_CONNS" 'BEGIN { printf "%.1f MB", k / 1024 }')" "<=" "50 MB"
    target_row "Redis memory per GCRA key" "$PER_KEY B" "<=" "120 B"
    if [ -n "$NOTOP" ]; then
        top_row=$(ratio "$(field "$ALLOW" cpu_us_per_req)" "$(field "$NOTOP" cpu_us_per_req)")
        echo "| ratelimitd CPU per decision, top keys on / off ($(field "$ALLOW" cpu_us_per_req) / $(field "$NOTOP" cpu_us_per_req) µs) | $top_row | (no target) | n/a |"
    else
        echo "| ratelimitd CPU per decision, top keys on / off | skipped: this build has no \`top_keys\` switch | (no target) | n/a |"
    fi
}

# Writes every table (and the profile) to stdout and bench/results/latest.md.
report() {
    mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
    {
        echo "# Benchmark results"
        echo
        echo "Run of \`bench/run.sh\` started $STARTED on $(nproc) cores ($(uname -r)),"
        echo "ratelimitd $("$BUILD/ratelimitd" --version | awk '{print $2}') built with -O2,"
        echo "redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2), $(nginx -v 2>&1 | cut -d' ' -f3),"
        echo "node $(node --version). wrk: $THREADS threads, $CONNS connections, ${DURATION} s per run after a ${WARMUP} s warm-up,"
        echo "$KEYS keys. Every process on the same machine, on loopback; the measurements took ${BENCH_SECONDS} s."
        echo "Load average (1, 5, 15 min) before the build: $LOAD_START; after the runs: $LOAD_END;"
        echo "busy CPU of the whole machine during the allow run: $(field "$ALLOW" machine_pct) % of $(($(nproc) * 100)) %."
        echo
        echo "## Targets"
        echo
        report_targets
        echo
        echo "## Cost per decision"
        echo
        echo "Redis CPU is \`INFO cpu\` used_cpu_user + used_cpu_sys over the run, commands are"
        echo "\`INFO commandstats\` calls (those a script runs included, INFO excluded), summed over"
        echo "the masters for the cluster, divided by the decisions wrk got answered."
        echo "ratelimitd's CPU is user + system from \`/proc/PID/stat\`."
        echo
        report_costs
        echo
        echo "## Runs"
        echo
        report_runs
        echo
        echo "| other figures | value |"
        echo "| --- | ---: |"
        echo "| ratelimitd RSS idle (after start) | $(mb "$RSS_IDLE") |"
        echo "| ratelimitd RSS after the runs | $(mb "$RSS_AFTER") |"
        echo "| ratelimitd RSS with $OPEN_CONNS open keep-alive connections (/metrics saw ${OPEN_SEEN:-?}) | $(mb "$RSS_CONNS") |"
        echo "| Redis keys for the memory figure (\`DBSIZE\`) | $DBSIZE |"
        echo "| deny run: Redis script calls/s | $DENY_EVALS |"
        echo "| deny run: Redis commands/s (INFO commandstats) | $DENY_CMDS |"
        echo "| envoyproxy/ratelimit's pattern: Redis CPU per INCRBY (of the $ENVOY_US µs) | $ENVOY_INCR_US µs |"
        echo "| allow run, CPU of ratelimitd: % of one core / µs per decision | $(field "$ALLOW" cpu_pct) % / $(field "$ALLOW" cpu_us_per_req) µs |"
        echo "| nginx run, CPU of its worker: % of one core / µs per request | $(field "$NGINX" cpu_pct) % / $(field "$NGINX" cpu_us_per_req) µs |"
        echo "| Node.js peer run, CPU of node: % of one core / µs per request | $(field "$NODE" cpu_pct) % / $(field "$NODE" cpu_us_per_req) µs |"
        echo "| Node.js peer run, CPU of Redis per request | $(field "$NODE" redis_us) µs |"
        if [ -n "$PERF_TXT" ]; then
            echo
            echo "## Profile of ratelimitd on the allow path (perf, 5 s, self time)"
            echo
            echo '```'
            echo "$PERF_TXT"
            echo '```'
        fi
    } | tee "$OUT"
    rl_say "written to bench/results/latest.md"
}

main "$@"
