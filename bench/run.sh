#!/usr/bin/env bash
# The benchmark: ratelimitd against its ceilings and a peer, in ONE run on
# this machine, everything on loopback. Prints a table and writes it to
# bench/results/latest.md. See bench/README.md.
#
#   bench/run.sh [--duration SECONDS] [--connections N] [--keys N] [--no-perf]
#
# Installs what it needs (Debian: wrk, redis-server, redis-tools,
# nginx-light, nodejs/npm when node is missing; npm: rate-limiter-flexible
# and ioredis into bench/peers/node/), builds ratelimitd with -O2 in
# build/bench, and stops everything it started (by pid) on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/lib.sh
. "$ROOT/tests/lib.sh"

DURATION=10
CONNS=50
KEYS=10000
THREADS=2
WARMUP=2
MEM_KEYS=100000
OPEN_CONNS=10000
PERF=1
while [ $# -gt 0 ]; do
    case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --no-perf) PERF=0; shift ;;
    *) echo "usage: $0 [--duration S] [--connections N] [--keys N] [--no-perf]" >&2; exit 2 ;;
    esac
done

BUILD="$ROOT/build/bench"
OUT="$ROOT/bench/results/latest.md"
WORK=$(mktemp -d /tmp/rl-bench.XXXXXX)
PIDS=()

# Stops every process this script started, newest first, by pid.
cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        rl_stop_pid "${PIDS[$i]}"
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

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

# CPU time (clock ticks, user + system, every thread) of the given pids.
cpu_ticks() {
    local pid total=0 t
    for pid in "$@"; do
        t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}

# Busy CPU time of the whole machine (clock ticks, all cores).
machine_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# Runs wrk like wrk_run while counting the CPU of PIDS (a quoted list):
# prints the RESULT line plus cpu_pct=, cpu_us_per_req= (theirs) and
# machine_pct= (every process, of nproc * 100).
wrk_run_cpu() {
    local url=$1 prefix=$2 pids=$3 t0 m0 t1 m1 res hz
    hz=$(getconf CLK_TCK)
    # shellcheck disable=SC2086 # pids is a list
    t0=$(cpu_ticks $pids)
    m0=$(machine_ticks)
    res=$(wrk_run "$url" "$prefix" "$DURATION")
    # shellcheck disable=SC2086
    t1=$(cpu_ticks $pids)
    m1=$(machine_ticks)
    echo "$res" | awk -v d=$((t1 - t0)) -v m=$((m1 - m0)) -v hz="$hz" -v s="$DURATION" '{
        split($0, f, " "); n = 0
        for (i in f) if (f[i] ~ /^requests=/) { split(f[i], kv, "="); n = kv[2] }
        printf "%s cpu_pct=%.0f cpu_us_per_req=%.1f machine_pct=%.0f\n", $0,
            100 * d / hz / s, (n > 0 ? 1e6 * d / hz / n : 0), 100 * m / hz / s
    }'
}

# Redis's CPU since ticks t0 over a run whose RESULT line is given:
# prints "<percent of one core> <microseconds per request>".
redis_share() {
    local t0=$1 res=$2 t1 hz
    hz=$(getconf CLK_TCK)
    t1=$(cpu_ticks "$RL_REDIS_PID")
    awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$DURATION" -v n="$(field "$res" requests)" \
        'BEGIN { printf "%.0f %.1f", 100 * d / hz / s, (n > 0 ? 1e6 * d / hz / n : 0) }'
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

# ---------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------

start_redis() {
    REDIS_PORT=$(rl_free_port)
    mkdir -p "$WORK/redis"
    rl_redis_start "$REDIS_PORT" "$WORK/redis"
    PIDS+=("$RL_REDIS_PID")
}

start_ratelimitd() {
    RL_PORT=$(rl_free_port)
    GRPC_PORT=$(rl_free_port)
    cat >"$WORK/ratelimitd.json" <<EOF
{
  "listen": "127.0.0.1:$RL_PORT",
  "grpc": { "listen": "127.0.0.1:$GRPC_PORT" },
  "workers": 0,
  "log_level": "warn",
  "http": { "max_connections": 20000 },
  "store": { "type": "redis", "address": "127.0.0.1:$REDIS_PORT", "timeout_ms": 50 },
  "policies": [
    { "name": "bench-allow", "match": { "path": "/allow/*" }, "key": [ "tenant" ],
      "limits": [ { "requests": 1000000, "per": "1m", "algorithm": "gcra" } ] },
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
}
EOF
    "$BUILD/ratelimitd" -c "$WORK/ratelimitd.json" 2>"$WORK/ratelimitd.log" &
    RL_PID=$!
    PIDS+=("$RL_PID")
    rl_wait_http "http://127.0.0.1:$RL_PORT/ready" 10 || {
        cat "$WORK/ratelimitd.log" >&2
        return 1
    }
}

start_nginx() {
    NGINX_PORT=$(rl_free_port)
    mkdir -p "$WORK/nginx/logs"
    cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $(nproc);
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

main() {
    local started url allow deny nginx_r node_r redis_r t0 t1 cmds0 cmds1 eval1 redis_t0
    local rss_idle rss_after rss_conns mem0 mem1 dbsize per_key conns_pid sha perf_txt=""
    started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    rl_install_deps
    install_bench_deps
    build_ratelimitd
    ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

    start_redis
    start_ratelimitd
    url="http://127.0.0.1:$RL_PORT"
    sleep 0.5
    rss_idle=$(rss_kb "$RL_PID")

    rl_say "allow path: warm-up ${WARMUP}s, then ${DURATION}s"
    wrk_run "$url" /allow "$WARMUP" >/dev/null
    redis_t0=$(cpu_ticks "$RL_REDIS_PID")
    allow=$(wrk_run_cpu "$url" /allow "$RL_PID")
    ALLOW_REDIS=$(redis_share "$redis_t0" "$allow")
    echo "$allow"

    rl_say "two-group path (account + route in one step): ${DURATION}s"
    redis_t0=$(cpu_ticks "$RL_REDIS_PID")
    LAYERED=$(wrk_run_cpu "$url" /layered "$RL_PID")
    LAYERED_REDIS=$(redis_share "$redis_t0" "$LAYERED")
    echo "$LAYERED"

    rl_say "four-limit path (the example's tenant limits): ${DURATION}s"
    redis_t0=$(cpu_ticks "$RL_REDIS_PID")
    FOUR=$(wrk_run_cpu "$url" /four "$RL_PID")
    FOUR_REDIS=$(redis_share "$redis_t0" "$FOUR")
    echo "$FOUR"
    rl_say "gRPC ShouldRateLimit (h2load, 50 streams): ${DURATION}s"
    grpc_body
    GRPC=$(grpc_run "$DURATION")
    echo "$GRPC"

    rl_say "deny path: ${WARMUP}s to push every key over its limit, then ${DURATION}s"
    wrk_run "$url" /deny "$WARMUP" >/dev/null
    redis-cli -p "$REDIS_PORT" config resetstat >/dev/null
    cmds0=$(redis_info total_commands_processed stats)
    t0=$(date +%s.%N)
    deny=$(wrk_run "$url" /deny "$DURATION")
    t1=$(date +%s.%N)
    cmds1=$(redis_info total_commands_processed stats)
    eval1=$(redis_calls evalsha)
    eval1=${eval1:-0}
    echo "$deny"
    DENY_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    DENY_CMDS=$(awk -v a="$cmds0" -v b="$cmds1" -v s="$DENY_SECONDS" 'BEGIN { printf "%.0f", (b - a - 1) / s }')
    DENY_EVALS=$(awk -v e="$eval1" -v s="$DENY_SECONDS" 'BEGIN { printf "%.0f", e / s }')
    rss_after=$(rss_kb "$RL_PID")

    if [ "$PERF" = 1 ] && command -v perf >/dev/null 2>&1; then
        rl_say "perf profile of ratelimitd during 5 s of the allow path"
        (wrk_run "$url" /allow 6 >/dev/null) &
        local wrk_pid=$!
        sleep 0.5
        if perf record -F 499 -g -o "$WORK/perf.data" -p "$RL_PID" -- sleep 5 >/dev/null 2>&1; then
            perf_txt=$(perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol \
                2>/dev/null | grep -E '^ +[0-9]+\.[0-9]+%' | head -25 || true)
        else
            perf_txt="perf record failed in this environment"
        fi
        wait "$wrk_pid" || true
    fi

    rl_say "RSS with $OPEN_CONNS open keep-alive connections"
    coproc CONNS_PROC { python3 "$ROOT/bench/conns.py" "$RL_PORT" "$OPEN_CONNS"; }
    conns_pid=$CONNS_PROC_PID
    PIDS+=("$conns_pid")
    read -r -u "${CONNS_PROC[0]}" _ || true
    sleep 0.5
    rss_conns=$(rss_kb "$RL_PID")
    OPEN_SEEN=$(curl -fsS "$url/metrics" | awk '$1 == "ratelimitd_open_connections" { print $2 }')
    rl_stop_pid "$conns_pid"

    rl_say "Redis ceiling: redis-benchmark, EVALSHA of ratelimitd's script"
    # The files and their order: Makefile.am's RL_LUA_FILES, the one list
    # the build embeds.
    sha=$(cd "$ROOT" && sed -n 's/^RL_LUA_FILES *= *//p' Makefile.am | xargs cat |
        redis-cli -p "$REDIS_PORT" -x script load)
    redis_r=$(redis-benchmark -p "$REDIS_PORT" -c "$CONNS" --threads "$THREADS" -r "$KEYS" \
        -n $((DURATION * 40000)) --csv \
        evalsha "$sha" 2 "rl:{bench-allow|k__rand_int__}:g1m" \
        "rl:{bench-allow|k__rand_int__}:g1m:b" 1 1 0 0 1000000 60000 1000000 0 1 |
        tail -n 1 | tr -d '"')
    echo "$redis_r"
    REDIS_RPS=$(echo "$redis_r" | cut -d, -f2)
    REDIS_P50=$(echo "$redis_r" | cut -d, -f5)
    REDIS_P99=$(echo "$redis_r" | cut -d, -f7)

    rl_say "HTTP ceiling: nginx return 204"
    start_nginx
    wrk_run "http://127.0.0.1:$NGINX_PORT" /allow "$WARMUP" >/dev/null
    nginx_r=$(wrk_run "http://127.0.0.1:$NGINX_PORT" /allow "$DURATION")
    echo "$nginx_r"
    rl_stop_pid "$NGINX_PID"

    rl_say "Node.js peer (rate-limiter-flexible + ioredis)"
    start_node_peer
    wrk_run "http://127.0.0.1:$NODE_PORT" /allow "$WARMUP" >/dev/null
    redis_t0=$(cpu_ticks "$RL_REDIS_PID")
    node_r=$(wrk_run_cpu "http://127.0.0.1:$NODE_PORT" /allow "$NODE_PID $(pgrep -P "$NODE_PID" | tr '\n' ' ')")
    NODE_REDIS=$(redis_share "$redis_t0" "$node_r")
    echo "$node_r"
    rl_stop_pid "$NODE_PID"

    rl_say "Redis memory per GCRA key ($MEM_KEYS keys)"
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    sleep 1
    mem0=$(redis_info used_memory memory)
    # The keys and arguments ratelimitd sends for the bench-deny policy (1
    # per hour, burst 1), so each key lives an hour: the allow policy's
    # keys expire within a millisecond (1,000,000 per minute).
    seq 0 $((MEM_KEYS - 1)) | awk -v sha="$sha" '{
        k = "rl:{bench-deny|k" $1 "}:g1h"
        printf "EVALSHA %s 2 %s %s:b 1 1 0 0 1 3600000 1 0 1\n", sha, k, k
    }' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
    sleep 2
    mem1=$(redis_info used_memory memory)
    dbsize=$(redis-cli -p "$REDIS_PORT" dbsize)
    per_key=$(awk -v a="$mem0" -v b="$mem1" -v n="$dbsize" 'BEGIN { printf "%.1f", (b - a) / n }')

    report "$started" "$allow" "$deny" "$nginx_r" "$node_r" "$rss_idle" "$rss_after" \
        "$rss_conns" "$per_key" "$dbsize" "$perf_txt"
}

# Writes the table (and the profile) to stdout and bench/results/latest.md.
report() {
    local started=$1 allow=$2 deny=$3 nginx_r=$4 node_r=$5 rss_idle=$6 rss_after=$7
    local rss_conns=$8 per_key=$9 dbsize=${10} perf_txt=${11}
    local a_rps d_rps n_rps p_rps r1 r2 r3
    a_rps=$(field "$allow" rps)
    d_rps=$(field "$deny" rps)
    n_rps=$(field "$nginx_r" rps)
    p_rps=$(field "$node_r" rps)
    r1=$(ratio "$a_rps" "$REDIS_RPS")
    r2=$(ratio "$a_rps" "$p_rps")
    r3=$(ratio "$d_rps" "$n_rps")
    mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
    ok() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { if ((dir == ">=" && v >= t) || (dir == "<=" && v <= t)) print "met"; else print "**missed**" }'; }
    row() { printf '| %s | %s | %s | %s | %s | %s |\n' "$@"; }
    {
        echo "# Benchmark results"
        echo
        echo "Run of \`bench/run.sh\` started $started on $(nproc) cores ($(uname -r)),"
        echo "ratelimitd $("$BUILD/ratelimitd" --version | awk '{print $2}') built with -O2,"
        echo "redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2), $(nginx -v 2>&1 | cut -d' ' -f3),"
        echo "node $(node --version). wrk: $THREADS threads, $CONNS connections, ${DURATION} s per run after a ${WARMUP} s warm-up,"
        echo "$KEYS keys. Every process on the same machine, on loopback."
        echo
        echo "| run | requests/s | p50 | p99 | p99.9 | errors / non-2xx |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: |"
        for name in allow LAYERED FOUR GRPC deny nginx_r node_r; do
            local r=${!name} label
            case $name in
            allow) label="ratelimitd, allow path (POST /v1/decide)" ;;
            LAYERED) label="ratelimitd, two-group decision (account + route, one step)" ;;
            FOUR) label="ratelimitd, four limits of one policy (1 s gcra + minute, hour, day windows)" ;;
            GRPC) label="ratelimitd, gRPC ShouldRateLimit (h2load, 10 connections x 5 streams)" ;;
            deny) label="ratelimitd, deny path (keys over their limit)" ;;
            nginx_r) label="HTTP ceiling: nginx \`return 204\`" ;;
            node_r) label="peer: Node.js rate-limiter-flexible + ioredis" ;;
            esac
            row "$label" "$(field "$r" rps)" "$(ms "$(field "$r" p50_us)") ms" \
                "$(ms "$(field "$r" p99_us)") ms" "$(ms "$(field "$r" p999_us)") ms" \
                "$(field "$r" errors) / $(field "$r" non2xx)"
        done
        row "Redis ceiling: redis-benchmark EVALSHA (GCRA script)" "$REDIS_RPS" "$REDIS_P50 ms" \
            "$REDIS_P99 ms" "n/a" "n/a"
        echo
        echo "| target | measured | target | result |"
        echo "| --- | ---: | ---: | --- |"
        echo "| allow throughput / Redis ceiling | $r1 | >= 0.7 | $(ok "$r1" 0.7 '>=') |"
        echo "| allow throughput / Node.js peer | $r2 | >= 3 | $(ok "$r2" 3 '>=') |"
        echo "| allow path p99 | $(ms "$(field "$allow" p99_us)") ms | <= 2 ms | $(ok "$(field "$allow" p99_us)" 2000 '<=') |"
        echo "| deny throughput / nginx ceiling | $r3 | >= 0.5 | $(ok "$r3" 0.5 '>=') |"
        echo "| gRPC throughput / allow (HTTP decide) throughput | $(ratio "$(field "$GRPC" rps)" "$a_rps") | >= 0.9 | $(ok "$(ratio "$(field "$GRPC" rps)" "$a_rps")" 0.9 '>=') |"
        echo "| gRPC p99 at 50 streams | $(ms "$(field "$GRPC" p99_us)") ms | <= 2 ms | $(ok "$(field "$GRPC" p99_us)" 2000 '<=') |"
        echo "| RSS with $OPEN_CONNS open connections | $(mb "$rss_conns") | <= 50 MB | $(ok "$rss_conns" 51200 '<=') |"
        echo "| Redis memory per GCRA key | $per_key B | <= 120 B | $(ok "$per_key" 120 '<=') |"
        echo
        echo "| other figures | value |"
        echo "| --- | ---: |"
        echo "| ratelimitd RSS idle (after start) | $(mb "$rss_idle") |"
        echo "| ratelimitd RSS after the runs | $(mb "$rss_after") |"
        echo "| ratelimitd RSS with $OPEN_CONNS open keep-alive connections (/metrics saw ${OPEN_SEEN:-?}) | $(mb "$rss_conns") |"
        echo "| Redis keys for the memory figure (\`DBSIZE\`) | $dbsize |"
        echo "| deny run: requests/s answered | $d_rps |"
        echo "| deny run: Redis EVALSHA/s | $DENY_EVALS |"
        echo "| deny run: Redis commands/s, all (INFO total_commands_processed) | $DENY_CMDS |"
        echo "| allow run, CPU of ratelimitd: % of one core / µs per request | $(field "$allow" cpu_pct) % / $(field "$allow" cpu_us_per_req) µs |"
        echo "| allow run, CPU of Redis: % of one core / µs per request | ${ALLOW_REDIS% *} % / ${ALLOW_REDIS#* } µs |"
        echo "| allow run, CPU of the whole machine (wrk included), of $(($(nproc) * 100)) % | $(field "$allow" machine_pct) % |"
        echo "| two-group run, CPU of Redis: % of one core / µs per decision | ${LAYERED_REDIS% *} % / ${LAYERED_REDIS#* } µs |"
        echo "| four-limit run, CPU of Redis: % of one core / µs per decision | ${FOUR_REDIS% *} % / ${FOUR_REDIS#* } µs |"
        echo "| Node.js peer run, CPU of node: % of one core / µs per request | $(field "$node_r" cpu_pct) % / $(field "$node_r" cpu_us_per_req) µs |"
        echo "| Node.js peer run, CPU of Redis: % of one core / µs per request | ${NODE_REDIS% *} % / ${NODE_REDIS#* } µs |"
        echo "| Node.js peer run, CPU of the whole machine, of $(($(nproc) * 100)) % | $(field "$node_r" machine_pct) % |"
        if [ -n "$perf_txt" ]; then
            echo
            echo "## Profile of ratelimitd on the allow path (perf, 5 s, self time)"
            echo
            echo '```'
            echo "$perf_txt"
            echo '```'
        fi
    } | tee "$OUT"
    rl_say "written to bench/results/latest.md"
}

main "$@"
