#!/usr/bin/env bash
# ratelimitd's own CPU per admitted decision, for one or more builds, in
# interleaved rounds against one Redis, with nginx `return 204` (1 worker)
# under the same wrk and POST body in every round. For before/after
# comparisons of the HTTP path on a shared machine, where interleaving
# spreads the other load over every build alike. See bench/README.md.
#
#   bench/cpu_ab.sh [--duration SECONDS] [--rounds N] RATELIMITD...
#
# Needs what bench/run.sh installs (wrk, redis-server, nginx); stops
# everything it started, by pid.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/lib.sh
. "$ROOT/tests/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/bench/lib.sh"

DURATION=5
ROUNDS=3
while [ $# -gt 0 ]; do
    case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    -*) echo "usage: $0 [--duration S] [--rounds N] RATELIMITD..." >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--duration S] [--rounds N] RATELIMITD..." >&2; exit 2; }

WORK=$(mktemp -d /tmp/rl-cpu-ab.XXXXXX)
PIDS=()
trap bench_cleanup EXIT

# Runs wrk on URL (allow path) for DURATION s after a 2 s warm-up;
# prints the µs of CPU PIDS spent per request.
cpu_per_request() {
    local url=$1 t0 t1 n
    shift
    BENCH_PREFIX=/allow wrk -t2 -c50 -d2s -s "$ROOT/bench/decide.lua" "$url" >/dev/null
    t0=$(cpu_ticks "$@")
    n=$(BENCH_PREFIX=/allow wrk -t2 -c50 -d"${DURATION}s" -s "$ROOT/bench/decide.lua" "$url" |
        sed -n 's/^RESULT requests=\([0-9]*\).*/\1/p')
    t1=$(cpu_ticks "$@")
    awk -v d=$((t1 - t0)) -v n="$n" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.2f", (n > 0 ? 1e6 * d / hz / n : 0) }'
}

REDIS_PORT=$(rl_free_port)
rl_redis_start "$REDIS_PORT" "$WORK"
PIDS+=("$RL_REDIS_PID")

NGINX_PORT=$(rl_free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path $WORK/nginx/body;
    server { listen 127.0.0.1:$NGINX_PORT; location / { return 204; } }
}
EOF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
PIDS+=("$!")
sleep 0.5
NGINX_WORKER=$(pgrep -P "${PIDS[-1]}")

RL_PORT=$(rl_free_port)
cat >"$WORK/rl.json" <<EOF
{ "listen": "127.0.0.1:$RL_PORT", "workers": 1, "log_level": "warn",
  "store": { "type": "redis", "address": "127.0.0.1:$REDIS_PORT", "timeout_ms": 50 },
  "policies": [ { "name": "bench-allow", "match": { "path": "/allow/*" }, "key": [ "tenant" ],
    "limits": [ { "requests": 1000000, "per": "1m", "algorithm": "gcra" } ] } ] }
EOF

declare -A SUM
NGINX_SUM=0
for round in $(seq "$ROUNDS"); do
    for bin in "$@"; do
        "$bin" -c "$WORK/rl.json" >/dev/null 2>"$WORK/rl.log" &
        pid=$!
        rl_wait_http "http://127.0.0.1:$RL_PORT/ready" 10 || { cat "$WORK/rl.log" >&2; exit 1; }
        us=$(cpu_per_request "http://127.0.0.1:$RL_PORT" "$pid")
        rl_stop_pid "$pid"
        echo "round $round: $bin: $us µs per decision"
        SUM[$bin]=$(awk -v a="${SUM[$bin]:-0}" -v b="$us" 'BEGIN { print a + b }')
    done
    us=$(cpu_per_request "http://127.0.0.1:$NGINX_PORT" "$NGINX_WORKER")
    echo "round $round: nginx return 204: $us µs per request"
    NGINX_SUM=$(awk -v a="$NGINX_SUM" -v b="$us" 'BEGIN { print a + b }')
done

echo
echo "| build | CPU per decision (mean of $ROUNDS) | / nginx |"
echo "| --- | ---: | ---: |"
for bin in "$@"; do
    awk -v s="${SUM[$bin]}" -v n="$NGINX_SUM" -v r="$ROUNDS" -v b="$bin" \
        'BEGIN { printf "| %s | %.2f µs | %.2f |\n", b, s / r, s / n }'
done
awk -v n="$NGINX_SUM" -v r="$ROUNDS" 'BEGIN { printf "| nginx return 204, 1 worker | %.2f µs | 1.00 |\n", n / r }'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
