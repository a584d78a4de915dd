# Shell helpers shared by bench/run.sh, bench/cpu_ab.sh and
# bench/redis_ab.sh (source it after tests/lib.sh; it defines functions
# and sets nothing else).
# shellcheck shell=bash

# Stops every process in PIDS (the caller's array), newest first, by pid,
# and removes WORK. Meant for `trap bench_cleanup EXIT`.
bench_cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        rl_stop_pid "${PIDS[$i]}"
    done
    rm -rf "$WORK"
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

# N TCP ports free on 127.0.0.1 at once (distinct), one per line.
free_ports() {
    python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# A Redis Cluster of N masters (3 by default; 1: one node with every
# slot), no replicas, on loopback, as the integration tests build one
# (tests/integration/cluster.py), in WORK/cluster: sets CLUSTER_PORTS and
# CLUSTER_PIDS. Each node is stopped by pid with the rest (PIDS).
start_cluster() {
    local n=${1:-3} free p bus i d
    mapfile -t free < <(free_ports $((2 * n)))
    CLUSTER_PORTS=()
    CLUSTER_PIDS=()
    for ((i = 0; i < n; i++)); do
        p=${free[$i]}
        bus=${free[$((i + n))]}
        d="$WORK/cluster/$p"
        mkdir -p "$d"
        redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --dir "$d" \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port "$bus" \
            --cluster-node-timeout 5000 >"$d/redis.log" 2>&1 &
        PIDS+=("$!")
        CLUSTER_PIDS+=("$!")
        CLUSTER_PORTS+=("$p")
    done
    for p in "${CLUSTER_PORTS[@]}"; do
        for _ in $(seq 100); do
            [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ] && break
            sleep 0.1
        done
    done
    if [ "$n" = 1 ]; then
        redis-cli -p "${CLUSTER_PORTS[0]}" cluster addslotsrange 0 16383 >"$WORK/cluster/create.log" 2>&1
    else
        redis-cli --cluster create "${CLUSTER_PORTS[@]/#/127.0.0.1:}" --cluster-replicas 0 \
            --cluster-yes >"$WORK/cluster/create.log" 2>&1
    fi
    for _ in $(seq 100); do
        local ok=0
        for p in "${CLUSTER_PORTS[@]}"; do
            redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok' && ok=$((ok + 1))
        done
        [ "$ok" = "$n" ] && return 0
        sleep 0.1
    done
    cat "$WORK/cluster/create.log" >&2
    return 1
}
