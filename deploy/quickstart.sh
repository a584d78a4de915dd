#!/usr/bin/env bash
# Quick start: installs what is missing, builds ratelimitd (out of tree in
# build/quickstart), starts a throwaway redis-server on 127.0.0.1:6379
# unless something already listens there, starts ratelimitd with
# deploy/examples/ratelimitd.json on 127.0.0.1:8080, shows one decision
# allowed and the next denied with curl, then runs until Ctrl-C and stops
# what it started.
#
#   deploy/quickstart.sh --cluster
# starts a local 3-master Redis Cluster instead (127.0.0.1:7000-7002 and
# their cluster bus ports 17000-17002, files in a temp dir) and two ratelimitd replicas sharing it on
# 127.0.0.1:8080 and 127.0.0.1:8081, and shows a decision allowed by one
# replica and the next denied by the other.
#
#   deploy/quickstart.sh --sentinel
# starts a Redis master (127.0.0.1:6380), its replica (6381) and three
# redis-sentinel (26380-26382) monitoring it as "mymaster", and ratelimitd
# on 127.0.0.1:8080 configured for the sentinels; shows a decision
# allowed, SIGKILLs the master, waits until the sentinels promoted the
# replica and ratelimitd follows (/ready), and shows the next decision
# denied by the new master.
#
# Environment: RATELIMITD=path uses that binary instead of building;
# QUICKSTART_HTTP_PORT (8080), QUICKSTART_CLUSTER_PORT (7000),
# QUICKSTART_MASTER_PORT (6380; the replica on the next port) and
# QUICKSTART_SENTINEL_PORT (26380; three ports) move the ports;
# QUICKSTART_NO_WAIT=1 stops everything after the demo.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/lib.sh
. "$ROOT/tests/lib.sh"

CONFIG="$ROOT/deploy/examples/ratelimitd.json"
BUILD="$ROOT/build/quickstart"
HTTP_PORT=${QUICKSTART_HTTP_PORT:-8080}
CLUSTER_PORT=${QUICKSTART_CLUSTER_PORT:-7000}
MASTER_PORT=${QUICKSTART_MASTER_PORT:-6380}
SENTINEL_PORT=${QUICKSTART_SENTINEL_PORT:-26380}
URL="http://127.0.0.1:$HTTP_PORT"
TMP=$(mktemp -d)
RL_PID=
RL_REDIS_PID=
RL_PIDS=()
REDIS_PIDS=()
SENTINEL_PIDS=()
CLUSTER=0
SENTINEL=0

case "${1:-}" in
    --cluster) CLUSTER=1 ;;
    --sentinel) SENTINEL=1 ;;
    "") ;;
    *)
        echo "usage: $0 [--cluster | --sentinel]" >&2
        exit 2
        ;;
esac

# Stops ratelimitd and the throwaway redis-server (only what this script
# started), then removes the temp dir. Runs from the EXIT trap.
# shellcheck disable=SC2317
cleanup() {
    trap - EXIT INT TERM
    local pid
    for pid in $RL_PID "${RL_PIDS[@]}"; do
        rl_say "stopping ratelimitd (pid $pid)"
        rl_stop_pid "$pid"
    done
    for pid in "${SENTINEL_PIDS[@]}"; do
        rl_say "stopping redis-sentinel (pid $pid)"
        rl_stop_pid "$pid"
    done
    for pid in $RL_REDIS_PID "${REDIS_PIDS[@]}"; do
        rl_say "stopping redis-server (pid $pid)"
        rl_stop_pid "$pid"
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Installs, builds and sets BIN (or uses $RATELIMITD as it is).
build() {
    if [ -n "${RATELIMITD:-}" ]; then
        BIN=$RATELIMITD
        return 0
    fi
    rl_install_deps
    rl_prepare_source "$ROOT"
    mkdir -p "$BUILD"
    if [ ! -f "$BUILD/Makefile" ]; then
        rl_say "configure (in $BUILD)"
        (cd "$BUILD" && "$ROOT/configure" >configure.log 2>&1) || {
            tail -n 30 "$BUILD/configure.log"
            exit 1
        }
    fi
    rl_say "make"
    make -C "$BUILD" -j"$(nproc 2>/dev/null || echo 2)" >"$BUILD/make.log" 2>&1 || {
        tail -n 30 "$BUILD/make.log"
        exit 1
    }
    BIN=$BUILD/ratelimitd
}

# Fails unless every TCP port given is free on 127.0.0.1.
need_free_ports() {
    local port
    for port in "$@"; do
        if rl_port_open 127.0.0.1 "$port"; then
            echo "something already listens on 127.0.0.1:$port: stop it and run this again" >&2
            exit 1
        fi
    done
}

# Polls redis-cli -p PORT ARGS... every 0.1 s for up to SECONDS until its
# output matches the grep pattern PATTERN; else prints WHAT and fails.
redis_wait() {
    local port=$1 seconds=$2 pattern=$3 what=$4
    shift 4
    for _ in $(seq $((seconds * 10))); do
        redis-cli -p "$port" "$@" 2>/dev/null | grep -q "$pattern" && return 0
        sleep 0.1
    done
    echo "$what" >&2
    return 1
}

# Waits up to 10 s for PING on 127.0.0.1:PORT; fails with LOG's tail.
wait_pong() {
    redis_wait "$1" 10 '^PONG$' "the server on port $1 did not start:" ping || {
        tail -n 20 "$2" >&2
        exit 1
    }
}

# Starts a 3-master Redis Cluster on CLUSTER_PORT..CLUSTER_PORT+2 with its
# files in TMP and waits until it serves every slot.
cluster_start() {
    local port dir nodes=()
    for port in "$CLUSTER_PORT" $((CLUSTER_PORT + 1)) $((CLUSTER_PORT + 2)); do
        dir="$TMP/redis-$port"
        mkdir -p "$dir"
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
            --cluster-enabled yes --cluster-config-file nodes.conf >"$dir/redis.log" 2>&1 &
        REDIS_PIDS+=($!)
        nodes+=("127.0.0.1:$port")
    done
    for port in "$CLUSTER_PORT" $((CLUSTER_PORT + 1)) $((CLUSTER_PORT + 2)); do
        wait_pong "$port" "$TMP/redis-$port/redis.log"
    done
    rl_say "redis-cli --cluster create ${nodes[*]} --cluster-replicas 0"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
        >"$TMP/cluster-create.log" 2>&1 || {
        cat "$TMP/cluster-create.log" >&2
        exit 1
    }
    for port in "$CLUSTER_PORT" $((CLUSTER_PORT + 1)) $((CLUSTER_PORT + 2)); do
        redis_wait "$port" 10 '^cluster_state:ok' \
            "the Redis Cluster did not become ready on port $port" cluster info || exit 1
    done
}

# Writes the example config with the store of MODE ("cluster": three
# masters from port PORT, "sentinel": three sentinels from PORT, master
# "mymaster") to TMP/ratelimitd.json and checks it with --check-config.
# The cluster config has no layers (the account group and the penalty):
# on a cluster those need one hash_tag shared by every policy, and the
# example's keys (tenant, user, a header) share no field
# (docs/configuration.md).
store_config() {
    local mode=$1 port=$2
    python3 - "$CONFIG" "$TMP/ratelimitd.json" "$mode" "$port" <<'PY'
import json, sys
src, dst, mode, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with open(src) as f:
    conf = json.load(f)
nodes = ["127.0.0.1:%d" % (port + i) for i in range(3)]
store = {"type": "redis",
         "timeout_ms": conf.get("store", {}).get("timeout_ms", 50),
         "prefix": conf.get("store", {}).get("prefix", "rl")}
if mode == "cluster":
    conf["policies"] = [p for p in conf["policies"] if p.get("group", "default") == "default"]
    for p in conf["policies"]:
        p.pop("penalty", None)
    conf.pop("penalties", None)
    store.update({"cluster": True, "nodes": nodes})
else:
    store["sentinel"] = {"master": "mymaster", "nodes": nodes}
conf["store"] = store
with open(dst, "w") as f:
    json.dump(conf, f, indent=2)
PY
    if ! "$BIN" --check-config "$TMP/ratelimitd.json" >"$TMP/check-config.log" 2>&1; then
        echo "this ratelimitd does not accept the $mode store config:" >&2
        cat "$TMP/check-config.log" >&2
        exit 1
    fi
}

# Starts one ratelimitd on CONF listening on 127.0.0.1:PORT and waits for
# /ready; adds its pid to RL_PIDS.
replica_start() {
    local conf=$1 port=$2
    "$BIN" -c "$conf" --listen "127.0.0.1:$port" 2>"$TMP/ratelimitd-$port.log" &
    RL_PIDS+=($!)
    if ! rl_wait_http "http://127.0.0.1:$port/ready" 10; then
        echo "ratelimitd on port $port did not become ready:" >&2
        tail -n 20 "$TMP/ratelimitd-$port.log" >&2
        exit 1
    fi
}

# Returns with QUICKSTART_NO_WAIT=1; else runs until Ctrl-C, or fails
# with the logs when a ratelimitd of RL_PIDS exits.
replicas_wait() {
    if [ "${QUICKSTART_NO_WAIT:-0}" = 1 ]; then
        return 0
    fi
    echo
    echo "Running until Ctrl-C (logs in $TMP)."
    wait -n "${RL_PIDS[@]}" || true
    echo "a ratelimitd exited:" >&2
    tail -n 20 "$TMP"/ratelimitd-*.log >&2
    exit 1
}

# The --cluster demo: two replicas, one quota.
cluster_main() {
    local port2=$((HTTP_PORT + 1)) tenant body
    if [ "$CLUSTER_PORT" -gt 55533 ]; then
        # Each node also listens on its port + 10000 (the cluster bus).
        echo "QUICKSTART_CLUSTER_PORT must be at most 55533" >&2
        exit 2
    fi
    need_free_ports "$HTTP_PORT" "$port2" "$CLUSTER_PORT" $((CLUSTER_PORT + 1)) $((CLUSTER_PORT + 2)) \
        $((CLUSTER_PORT + 10000)) $((CLUSTER_PORT + 10001)) $((CLUSTER_PORT + 10002))
    rl_say "starting a 3-master Redis Cluster on 127.0.0.1:$CLUSTER_PORT-$((CLUSTER_PORT + 2)) (files in $TMP)"
    cluster_start
    store_config cluster "$CLUSTER_PORT"
    rl_say "starting two ratelimitd replicas on 127.0.0.1:$HTTP_PORT and 127.0.0.1:$port2"
    replica_start "$TMP/ratelimitd.json" "$HTTP_PORT"
    replica_start "$TMP/ratelimitd.json" "$port2"
    tenant="demo-$(date +%s)"
    body="{\"method\": \"POST\", \"path\": \"/platform/v2/process/site-42\", \"tenant\": \"$tenant\"}"
    echo
    echo "Two replicas share one Redis Cluster. Ask the first, then the second:"
    for port in "$HTTP_PORT" "$port2"; do
        echo
        echo "\$ curl -sS -i -X POST http://127.0.0.1:$port/v1/decide -H 'Content-Type: application/json' -d '$body'"
        curl -sS -i -X POST "http://127.0.0.1:$port/v1/decide" -H 'Content-Type: application/json' -d "$body"
        echo
    done
    echo
    echo "The first replica allowed the request; the second denied the next one:"
    echo "the quota lives in the cluster, not in either replica."
    replicas_wait
}

# Starts a master on MASTER_PORT, its replica on MASTER_PORT+1 and three
# sentinels on SENTINEL_PORT..+2 (short timeouts: a failover in about
# 2 s), files in TMP; waits until every sentinel sees the other two.
sentinel_start() {
    local port dir
    for port in "$MASTER_PORT" $((MASTER_PORT + 1)); do
        dir="$TMP/redis-$port"
        mkdir -p "$dir"
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
            --repl-diskless-sync-delay 0 >"$dir/redis.log" 2>&1 &
        REDIS_PIDS+=($!)
        wait_pong "$port" "$dir/redis.log"
    done
    redis-cli -p $((MASTER_PORT + 1)) replicaof 127.0.0.1 "$MASTER_PORT" >/dev/null
    redis_wait $((MASTER_PORT + 1)) 10 '^master_link_status:up' \
        "the replica did not sync with the master" info replication || exit 1
    for port in "$SENTINEL_PORT" $((SENTINEL_PORT + 1)) $((SENTINEL_PORT + 2)); do
        dir="$TMP/sentinel-$port"
        mkdir -p "$dir"
        cat >"$dir/sentinel.conf" <<EOF
port $port
bind 127.0.0.1
dir $dir
sentinel monitor mymaster 127.0.0.1 $MASTER_PORT 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 3000
EOF
        redis-sentinel "$dir/sentinel.conf" >"$dir/sentinel.log" 2>&1 &
        SENTINEL_PIDS+=($!)
        wait_pong "$port" "$dir/sentinel.log"
    done
    for port in "$SENTINEL_PORT" $((SENTINEL_PORT + 1)) $((SENTINEL_PORT + 2)); do
        redis_wait "$port" 15 '3 usable' "the sentinel on port $port does not see the other two" \
            sentinel ckquorum mymaster || exit 1
    done
}

# Asks ratelimitd once with the JSON body BODY, showing the command and
# the reply.
sentinel_decide() {
    echo
    echo "\$ curl -sS -i -X POST $URL/v1/decide -H 'Content-Type: application/json' -d '$1'"
    curl -sS -i -X POST "$URL/v1/decide" -H 'Content-Type: application/json' -d "$1"
    echo
}

# Waits up to 15 s until /ready is 200 and names NODE "up"; prints it.
sentinel_wait_ready() {
    local node=$1 ready
    for _ in $(seq 150); do
        ready=$(curl -fsS "$URL/ready" 2>/dev/null || true)
        case "$ready" in
            *"\"$node\":\"up\""*)
                echo "$ready"
                return 0
                ;;
        esac
        sleep 0.1
    done
    echo "ratelimitd did not report $node up within 15 s:" >&2
    tail -n 20 "$TMP/ratelimitd-$HTTP_PORT.log" >&2
    exit 1
}

# The --sentinel demo: one decision, a failover, the next decision.
sentinel_main() {
    local replica=$((MASTER_PORT + 1)) body
    need_free_ports "$HTTP_PORT" "$MASTER_PORT" "$replica" "$SENTINEL_PORT" \
        $((SENTINEL_PORT + 1)) $((SENTINEL_PORT + 2))
    rl_say "starting a Redis master (127.0.0.1:$MASTER_PORT), its replica ($replica) and three sentinels ($SENTINEL_PORT-$((SENTINEL_PORT + 2))), files in $TMP"
    sentinel_start
    store_config sentinel "$SENTINEL_PORT"
    rl_say "starting ratelimitd on $URL with store.sentinel"
    replica_start "$TMP/ratelimitd.json" "$HTTP_PORT"
    body="{\"method\": \"POST\", \"path\": \"/platform/v2/process/site-42\", \"tenant\": \"demo-$(date +%s)\"}"
    echo
    echo "ratelimitd asked the sentinels for the master (\$ curl -sS $URL/ready):"
    sentinel_wait_ready "127.0.0.1:$MASTER_PORT"
    sentinel_decide "$body"
    redis-cli -p "$MASTER_PORT" wait 1 1000 >/dev/null
    rl_say "SIGKILL of the master (pid ${REDIS_PIDS[0]}): the sentinels promote the replica"
    kill -KILL "${REDIS_PIDS[0]}"
    wait "${REDIS_PIDS[0]}" 2>/dev/null || true
    echo
    echo "ratelimitd follows the new master (\$ curl -sS $URL/ready):"
    sentinel_wait_ready "127.0.0.1:$replica"
    sentinel_decide "$body"
    echo
    echo "The master allowed the first request; the replica the sentinels promoted"
    echo "after the master was killed denied the next one: the quota was replicated,"
    echo "and ratelimitd followed the failover by itself."
    replicas_wait
}

build
if [ "$CLUSTER" = 1 ]; then
    cluster_main
    exit 0
fi
if [ "$SENTINEL" = 1 ]; then
    sentinel_main
    exit 0
fi

need_free_ports "$HTTP_PORT"
if rl_port_open 127.0.0.1 6379; then
    rl_say "using the Redis that already listens on 127.0.0.1:6379"
else
    rl_say "starting a throwaway redis-server on 127.0.0.1:6379 (files in $TMP)"
    rl_redis_start 6379 "$TMP"
fi

rl_say "starting ratelimitd -c deploy/examples/ratelimitd.json (logs: $TMP/ratelimitd.log)"
"$BIN" -c "$CONFIG" --listen "127.0.0.1:$HTTP_PORT" 2>"$TMP/ratelimitd.log" &
RL_PID=$!
if ! rl_wait_http "$URL/ready" 10; then
    echo "ratelimitd did not become ready:" >&2
    tail -n 20 "$TMP/ratelimitd.log" >&2
    exit 1
fi

# A tenant of its own, so the first decision is an allow even when an
# existing Redis remembers an earlier run.
TENANT="demo-$(date +%s)"
BODY="{\"method\": \"POST\", \"path\": \"/platform/v2/process/site-42\", \"tenant\": \"$TENANT\"}"
CMD="curl -sS -i -X POST $URL/v1/decide -H 'Content-Type: application/json' -d '$BODY'"

echo
echo "ratelimitd is ready on $URL. The example config allows 1 request per site"
echo "per 5 minutes on the platform process endpoint. Ask twice:"
for _ in 1 2; do
    echo
    echo "\$ $CMD"
    curl -sS -i -X POST "$URL/v1/decide" -H 'Content-Type: application/json' -d "$BODY"
    echo
done
echo
echo "The first reply says \"allowed\": true; the second \"allowed\": false with the"
echo "429 body and headers a gateway should send back. See docs/api.md for more."
echo
if [ "${QUICKSTART_NO_WAIT:-0}" = 1 ]; then
    exit 0
fi
echo "Running until Ctrl-C (logs: tail -f $TMP/ratelimitd.log)."
wait "$RL_PID" || true
RL_PID=
echo "ratelimitd exited:" >&2
tail -n 20 "$TMP/ratelimitd.log" >&2
exit 1
