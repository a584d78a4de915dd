#!/usr/bin/env bash
# Quick start: installs what is missing, builds ratelimitd (out of tree in
# build/quickstart), starts a throwaway redis-server on 127.0.0.1:6379
# unless something already listens there, starts ratelimitd with
# deploy/examples/ratelimitd.json on 127.0.0.1:8080, shows one decision
# allowed and the next denied with curl, then runs until Ctrl-C and stops
# what it started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/lib.sh
. "$ROOT/tests/lib.sh"

CONFIG="$ROOT/deploy/examples/ratelimitd.json"
BUILD="$ROOT/build/quickstart"
URL="http://127.0.0.1:8080"
TMP=$(mktemp -d)
RL_PID=
RL_REDIS_PID=

# Stops ratelimitd and the throwaway redis-server (only what this script
# started), then removes the temp dir. Runs from the EXIT trap.
# shellcheck disable=SC2317
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$RL_PID" ]; then
        rl_say "stopping ratelimitd (pid $RL_PID)"
        rl_stop_pid "$RL_PID"
    fi
    if [ -n "$RL_REDIS_PID" ]; then
        rl_say "stopping redis-server (pid $RL_REDIS_PID)"
        rl_stop_pid "$RL_REDIS_PID"
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

if rl_port_open 127.0.0.1 8080; then
    echo "something already listens on 127.0.0.1:8080: stop it and run this again" >&2
    exit 1
fi
if rl_port_open 127.0.0.1 6379; then
    rl_say "using the Redis that already listens on 127.0.0.1:6379"
else
    rl_say "starting a throwaway redis-server on 127.0.0.1:6379 (files in $TMP)"
    rl_redis_start 6379 "$TMP"
fi

rl_say "starting ratelimitd -c deploy/examples/ratelimitd.json (logs: $TMP/ratelimitd.log)"
"$BUILD/ratelimitd" -c "$CONFIG" 2>"$TMP/ratelimitd.log" &
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
echo "Running until Ctrl-C (logs: tail -f $TMP/ratelimitd.log)."
wait "$RL_PID" || true
RL_PID=
echo "ratelimitd exited:" >&2
tail -n 20 "$TMP/ratelimitd.log" >&2
exit 1
