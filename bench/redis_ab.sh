#!/usr/bin/env bash
# Redis's cost per allow decision (one GCRA limit), for one or more
# ratelimitd builds, in interleaved rounds on one standalone Redis and one
# Redis Cluster: Redis CPU (user, system), commands and script calls per
# decision, and the voluntary context switches of the Redis processes per
# decision (how often a Redis ran out of work and slept). For
# before/after comparisons of the Lua library or of the batching on a
# shared machine, where interleaving spreads the other load over every
# build and topology alike. See bench/README.md.
#
#   bench/redis_ab.sh [--duration SECONDS] [--rounds N] [--masters N]
#                     [--connections N] RATELIMITD...
#
# Needs what bench/run.sh installs (wrk, redis-server, redis-tools);
# stops everything it started, by pid.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/lib.sh
. "$ROOT/tests/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/bench/lib.sh"

DURATION=6
ROUNDS=4
MASTERS=3
CONNS=50
usage="usage: $0 [--duration S] [--rounds N] [--masters N] [--connections N] RATELIMITD..."
while [ $# -gt 0 ]; do
    case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --masters) MASTERS=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    -*) echo "$usage" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "$usage" >&2; exit 2; }
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/rl-redis-ab.XXXXXX)
PIDS=()
trap bench_cleanup EXIT

# "USER_US SYS_US COMMANDS CALLS SWITCHES" summed over the Redis servers
# on PORTS (INFO) whose pids are PIDS: ports and pids as two words lists.
redis_counters() {
    local port pid
    for port in $1; do
        redis-cli -p "$port" info cpu commandstats | tr -d '\r'
    done | awk -F'[:=,]' '
        $1 == "used_cpu_user" { u += $2 } $1 == "used_cpu_sys" { s += $2 }
        $1 ~ /^cmdstat_/ && $1 != "cmdstat_info" { c += $3 }
        $1 == "cmdstat_fcall" { f += $3 }
        END { printf "%.0f %.0f %d %d ", u * 1e6, s * 1e6, c, f }'
    for pid in $2; do
        awk '$1 == "voluntary_ctxt_switches:" { print $2 }' "/proc/$pid/status"
    done | awk '{ v += $1 } END { print v + 0 }'
}

# Runs build BIN on STORE (a store object), wrk (CONNS connections) on the
# allow path for DURATION s after a 2 s warm-up, and prints the per-decision figures of
# the Redis servers on PORTS / PIDS: "CPU USER SYS COMMANDS CALLS SWITCHES".
measure() {
    local bin=$1 store=$2 ports=$3 pids=$4 port pid a b n
    port=$(rl_free_port)
    cat >"$WORK/rl.json" <<EOF
{ "listen": "127.0.0.1:$port", "workers": 1, "log_level": "warn",
  "store": $store,
  "policies": [ { "name": "bench-allow", "match": { "path": "/allow/*" }, "key": [ "tenant" ],
    "limits": [ { "requests": 1000000, "per": "1m", "algorithm": "gcra" } ] } ] }
EOF
    "$bin" -c "$WORK/rl.json" >/dev/null 2>"$WORK/rl.log" &
    pid=$!
    rl_wait_http "http://127.0.0.1:$port/ready" 10 || { cat "$WORK/rl.log" >&2; exit 1; }
    BENCH_PREFIX=/allow wrk -t2 -c"$CONNS" -d2s -s "$ROOT/bench/decide.lua" "http://127.0.0.1:$port" >/dev/null
    a=$(redis_counters "$ports" "$pids")
    n=$(BENCH_PREFIX=/allow wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$ROOT/bench/decide.lua" \
        "http://127.0.0.1:$port" | sed -n 's/^RESULT requests=\([0-9]*\).*/\1/p')
    b=$(redis_counters "$ports" "$pids")
    rl_stop_pid "$pid"
    awk -v a="$a" -v b="$b" -v n="${n:-0}" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        if (n <= 0) { print "0 0 0 0 0 0"; exit }
        printf "%.2f %.2f %.2f %.2f %.3f %.3f\n", (y[1] + y[2] - x[1] - x[2]) / n,
            (y[1] - x[1]) / n, (y[2] - x[2]) / n, (y[3] - x[3]) / n, (y[4] - x[4]) / n,
            (y[5] - x[5]) / n }'
}

REDIS_PORT=$(rl_free_port)
rl_redis_start "$REDIS_PORT" "$WORK"
PIDS+=("$RL_REDIS_PID")
start_cluster "$MASTERS" || { echo "the cluster did not start" >&2; exit 1; }
STANDALONE="{ \"type\": \"redis\", \"address\": \"127.0.0.1:$REDIS_PORT\", \"timeout_ms\": 50 }"
CLUSTER="{ \"type\": \"redis\", \"cluster\": true, \"timeout_ms\": 50, \"nodes\": [ \"127.0.0.1:${CLUSTER_PORTS[0]}\" ] }"

declare -A SUM
for round in $(seq "$ROUNDS"); do
    for bin in "$@"; do
        for topo in standalone cluster; do
            if [ "$topo" = standalone ]; then
                r=$(measure "$bin" "$STANDALONE" "$REDIS_PORT" "$RL_REDIS_PID")
            else
                r=$(measure "$bin" "$CLUSTER" "${CLUSTER_PORTS[*]}" "${CLUSTER_PIDS[*]}")
            fi
            read -r cpu user sys cmds calls sw <<<"$r"
            echo "round $round: $bin: $topo: Redis CPU $cpu µs (user $user, sys $sys)," \
                "$cmds commands, $calls script calls, $sw context switches per decision"
            SUM[$bin $topo]=$(echo "${SUM[$bin $topo]:-0 0 0 0}" |
                awk -v c="$cpu" -v m="$cmds" -v k="$calls" -v s="$sw" \
                    '{ print $1 + c, $2 + m, $3 + k, $4 + s }')
        done
    done
done

echo
echo "| build | topology | Redis CPU per decision (mean of $ROUNDS) | commands | script calls | context switches | cluster / standalone |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
for bin in "$@"; do
    base=$(echo "${SUM[$bin standalone]}" | cut -d' ' -f1)
    for topo in standalone cluster; do
        echo "${SUM[$bin $topo]}" | awk -v r="$ROUNDS" -v b="$bin" -v t="$topo" -v m="$MASTERS" -v base="$base" '{
            name = (t == "cluster" ? m "-master cluster" : t)
            printf "| %s | %s | %.2f µs | %.2f | %.3f | %.3f | %s |\n", b, name, $1 / r, $2 / r,
                $3 / r, $4 / r, (t == "cluster" && base > 0 ? sprintf("%.2f", $1 / base) : "") }'
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
