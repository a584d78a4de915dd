#!/bin/sh
# Checks the decision script (lua/*.lua concatenated as the build does) on
# a throwaway redis-server: admit, deny, peek, block, multi-limit, stored
# values, refunds (protocol v3 of src/store.h). Usage: tests/integration/lua_check.sh   (exit 0 = all passed)
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rl-lua.XXXXXX")
PID=
FAILS=0
CHECKS=0

cleanup() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# Starts redis-server on a free loopback port (retrying on a taken one).
start_redis() {
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        PORT=$(( ($$ + $(date +%N | sed 's/^0*//;s/^$/0/')) % 20000 + 30000 ))
        redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$TMP" >"$TMP/redis.log" 2>&1 &
        PID=$!
        for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
            if redis-cli -p "$PORT" ping >/dev/null 2>&1; then
                return 0
            fi
            kill -0 "$PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
        PID=
    done
    echo "lua_check: could not start redis-server" >&2
    exit 1
}

rc() {
    redis-cli -p "$PORT" "$@"
}

# check NAME GOT WANT: compares two strings.
check() {
    CHECKS=$((CHECKS + 1))
    if [ "$2" = "$3" ]; then
        echo "ok   $1"
    else
        echo "FAIL $1: got [$2] want [$3]"
        FAILS=$((FAILS + 1))
    fi
}

# check_true NAME EXPR...: runs a test(1) expression.
check_true() {
    name=$1
    shift
    CHECKS=$((CHECKS + 1))
    if [ "$@" ]; then
        echo "ok   $name"
    else
        echo "FAIL $name: [$*] is false"
        FAILS=$((FAILS + 1))
    fi
}

# decide BASE COST then per limit: SUFFIX ALGO REQUESTS PERIOD BURST BLOCK
# (one part, no penalty: protocol v3 of src/store.h; the part's key is
# BASE:l<first suffix>). Prints the reply on one line.
decide() {
    base=$1
    cost=$2
    shift 2
    n=$(( $# / 6 ))
    key="$base:l$1"
    args=
    while [ $# -ge 6 ]; do
        args="$args $2 $1 $3 $4 $5 $6"
        shift 6
    done
    # shellcheck disable=SC2086
    rc EVALSHA "$SHA" 1 "$key" "$cost" 1 0 "$n" $args | tr '\n' ' ' | sed 's/ $//'
}

# field REPLY I: the I-th (1-based) element of a reply line.
field() {
    echo "$1" | cut -d' ' -f"$2"
}

start_redis
# The files and their order come from Makefile.am's RL_LUA_FILES, the one
# list the build embeds.
LUA_FILES=$(sed -n 's/^RL_LUA_FILES *= *//p' "$ROOT/Makefile.am")
if [ -z "$LUA_FILES" ]; then
    echo "lua_check: no RL_LUA_FILES in Makefile.am" >&2
    exit 1
fi
# shellcheck disable=SC2086 # a list of file names
SCRIPT=$(cd "$ROOT" && sh src/embed_lua.sh --lua $LUA_FILES)
check "script starts with its shebang" "$(printf %s "$SCRIPT" | head -1)" \
    "#!lua flags=allow-cross-slot-keys"
SHA=$(rc SCRIPT LOAD "$SCRIPT")
check_true "script loads" "$(printf %s "$SHA" | wc -c)" -eq 40

# GCRA 1 per 5 minutes, burst 1.
R=$(decide 'rl:{site-1}' 1 g5m 0 1 300000 1 0)
check "gcra admits" "$(echo "$R" | cut -d' ' -f2-)" "1 1 0 300000 0 0"
R=$(decide 'rl:{site-1}' 1 g5m 0 1 300000 1 0)
check "gcra denies" "$(echo "$R" | cut -d' ' -f2-4)" "0 0 0"
RETRY=$(field "$R" 6)
check_true "gcra retry ~300 s" "$RETRY" -ge 299000 -a "$RETRY" -le 300000
# A lone GCRA state: value in 0..999 and PXAT, TAT = PEXPIRETIME*1000 -
# value. The first request of a fresh 1-per-5-minutes bucket sets TAT =
# now + 300 s.
V=$(rc GET 'rl:{site-1}:lg5m')
check_true "gcra value is an integer 0..999" -n "$(echo "$V" | grep -E '^[0-9]{1,3}$')"
PTTL=$(rc PTTL 'rl:{site-1}:lg5m')
check_true "gcra expiry ~300 s" "$PTTL" -ge 299000 -a "$PTTL" -le 300000
EXPAT=$(rc PEXPIRETIME 'rl:{site-1}:lg5m')
R=$(decide 'rl:{site-1}' 0 g5m 0 1 300000 1 0)
NOW=$(field "$R" 1)
check_true "gcra PEXPIRETIME in the future" "$EXPAT" -gt "$NOW"
# A TAT written in the compact encoding decides exactly: 1 per 1 s, burst
# 2 (T = 1,000,000 us), TAT = now + 500,123 us. Cost 2 would need
# allow_at = TAT <= now: refused with remaining 1 and retry
# ceil(500.123 ms) = 501 less the time since. Cost 1 passes
# (allow_at = TAT - T) with remaining 0, and the stored TAT becomes
# TAT + T, exact to the microsecond.
TIME=$(rc TIME | tr '\n' ' ')
NOWUS=$(( $(echo "$TIME" | cut -d' ' -f1) * 1000000 + $(echo "$TIME" | cut -d' ' -f2) ))
TAT=$((NOWUS + 500123))
EXP=$(( (TAT + 999) / 1000 ))
rc SET 'rl:{tat}:lg1s' $((EXP * 1000 - TAT)) PXAT "$EXP" >/dev/null
R=$(decide 'rl:{tat}' 2 g1s 0 1 1000 2 0)
NOW2=$(field "$R" 1)
check "gcra stored TAT denies cost 2, remaining 1" "$(field "$R" 2) $(field "$R" 4)" "0 1"
check_true "gcra stored TAT retry ~501 ms" "$(field "$R" 6)" -le 501 -a "$(field "$R" 6)" -ge $((501 - (NOW2 - NOWUS / 1000) - 1))
R=$(decide 'rl:{tat}' 1 g1s 0 1 1000 2 0)
check "gcra stored TAT admits cost 1" "$(field "$R" 2) $(field "$R" 4)" "1 0"
V=$(rc GET 'rl:{tat}:lg1s')
EXPAT=$(rc PEXPIRETIME 'rl:{tat}:lg1s')
check "gcra new TAT = old TAT + T, exact to the us" "$((EXPAT * 1000 - V))" "$((TAT + 1000000))"

# GCRA burst: 5 at once of 10/s burst 5, then retry ~100 ms.
for i in 4 3 2 1 0; do
    R=$(decide 'rl:{burst}' 1 g1s 0 10 1000 5 0)
    check "gcra burst remaining $i" "$(field "$R" 2) $(field "$R" 4)" "1 $i"
done
R=$(decide 'rl:{burst}' 1 g1s 0 10 1000 5 0)
check "gcra burst exhausted" "$(field "$R" 2)" "0"
check_true "gcra burst retry <= 100" "$(field "$R" 6)" -ge 1 -a "$(field "$R" 6)" -le 100

# Peek: cost 0 on a fresh key stores nothing.
R=$(decide 'rl:{peek}' 0 f1h 1 7 3600000 0 0 g1m 0 5 60000 5 0)
check "peek allowed, full" "$(field "$R" 2) $(field "$R" 3) $(field "$R" 4) $(field "$R" 8) $(field "$R" 9)" "1 1 7 1 5"
check "peek writes nothing" "$(rc EXISTS 'rl:{peek}:lf1h')" "0"

# Fixed window: the part's value is idx:count, reset = end of the hour.
R=$(decide 'rl:{fw}' 3 f1h 1 10 3600000 0 0)
NOW=$(field "$R" 1)
check "fixed admits cost 3" "$(field "$R" 2) $(field "$R" 4)" "1 7"
check "fixed reset = window end" "$(field "$R" 5)" "$(( (NOW / 3600000 + 1) * 3600000 - NOW ))"
check "fixed value" "$(rc GET 'rl:{fw}:lf1h')" "$((NOW / 3600000)):3"
R=$(decide 'rl:{fw}' 8 f1h 1 10 3600000 0 0)
check "fixed denies cost 8, retry = reset" "$(field "$R" 2) $(field "$R" 4) $(field "$R" 6)" "0 7 $(field "$R" 5)"
check "fixed deny consumed nothing" "$(rc GET 'rl:{fw}:lf1h')" "$((NOW / 3600000)):3"

# Sliding window: value idx:prev:cur.
R=$(decide 'rl:{sw}' 1 s1h 2 5 3600000 0 0)
NOW=$(field "$R" 1)
check "sliding admits" "$(field "$R" 2) $(field "$R" 4)" "1 4"
check "sliding value" "$(rc GET 'rl:{sw}:ls1h')" "$((NOW / 3600000)):0:1"
check "sliding reset = end of next window" "$(field "$R" 5)" "$(( (NOW / 3600000 + 2) * 3600000 - NOW ))"

# Multi-limit all-or-nothing: the second limit denies, the first keeps 9;
# both states live in the one key, the second named by its id.
R=$(decide 'rl:{multi}' 1 f1h 1 10 3600000 0 0 g1h 0 1 3600000 1 0)
check "multi admits" "$(field "$R" 2) $(field "$R" 4) $(field "$R" 9)" "1 9 0"
V=$(rc GET 'rl:{multi}:lf1h')
check "multi value: first entry, then g1h=TAT" \
    "$(echo "$V" | sed -E 's/^[0-9]+:1,g1h=[0-9]{16}$/ok/')" "ok"
check_true "multi key expires with the hour window" "$(rc PTTL 'rl:{multi}:lf1h')" -gt 0
R=$(decide 'rl:{multi}' 1 f1h 1 10 3600000 0 0 g1h 0 1 3600000 1 0)
check "multi denies" "$(field "$R" 2) $(field "$R" 3) $(field "$R" 4) $(field "$R" 8)" "0 1 9 0"
check "multi deny consumed nothing" "$(rc GET 'rl:{multi}:lf1h')" "$V"

# Block: GCRA 1 per 300 ms with a 600 ms block, "/<until>" after the state.
R=$(decide 'rl:{blk}' 1 g300ms 0 1 300 1 600)
check "block limit admits" "$(field "$R" 2)" "1"
R=$(decide 'rl:{blk}' 1 g300ms 0 1 300 1 600)
check "block set on deny" "$(field "$R" 2) $(field "$R" 6) $(field "$R" 7)" "0 600 1"
NOW=$(field "$R" 1)
check "block until in the value" "$(rc GET 'rl:{blk}:lg300ms' | sed 's|^[0-9]*/||')" "$((NOW + 600))"
PTTL=$(rc PTTL 'rl:{blk}:lg300ms')
check_true "block key expiry" "$PTTL" -ge 1 -a "$PTTL" -le 600
sleep 0.35
R=$(decide 'rl:{blk}' 0 g300ms 0 1 300 1 600)
check "block holds after the limit refilled (peek)" "$(field "$R" 2) $(field "$R" 7)" "0 1"
sleep 0.4
R=$(decide 'rl:{blk}' 1 g300ms 0 1 300 1 600)
check "block over" "$(field "$R" 2) $(field "$R" 7)" "1 0"
check_true "block over: compact value again" -n "$(rc GET 'rl:{blk}:lg300ms' | grep -E '^[0-9]{1,3}$')"

# Bad arguments are an error reply, not a decision.
check_true "bad arguments rejected" -n "$(rc EVALSHA "$SHA" 1 a 1 1 0 1 9 x1s 1 1000 0 0 2>&1 | grep 'bad limit')"
check_true "bad layout rejected" -n "$(rc EVALSHA "$SHA" 1 a 1 1 0 2 0 g1s 1 1000 0 0 2>&1 | grep 'bad arguments')"

# The batch form: several requests in one call, decided in order as if
# each were its own call. Three requests on one fixed window of 2 (the
# third is denied), then a GCRA request with two limits; one request with
# a bad limit is an error for that request alone.
FW="1 1 0 1 1 f1h 2 3600000 2 0"
B=$(rc EVALSHA "$SHA" 4 'rl:{bt}:lf1h' 'rl:{bt}:lf1h' 'rl:{bt}:lf1h' 'rl:{bg}:lg1h' \
    batch 4 $FW $FW $FW 1 1 0 2 0 g1h 10 3600000 10 0 0 g1m 5 60000 5 0 | tr '\n' ' ')
# redis-cli prints nested arrays flat: 7 + 7 + 7 + 12 integers
# (now_ms allowed, then per limit allowed remaining reset retry blocked).
# shellcheck disable=SC2086
set -- $B
check "batch: 33 values for 4 replies" "$#" "33"
check "batch: window admits, admits, denies" "${2} ${4} ${9} ${11} ${16} ${18}" "1 1 1 0 0 0"
check "batch: two-limit reply" "${23} ${24} ${25} ${29} ${30}" "1 1 9 1 4"
check "batch state equals separate calls" "$(rc GET 'rl:{bt}:lf1h' | cut -d: -f2)" "2"
E=$(rc EVALSHA "$SHA" 2 'rl:{be}:lf1h' 'rl:{be2}:lf1h' \
    batch 2 1 1 0 1 9 f1h 2 3600000 2 0 $FW 2>&1 | tr '\n' ' ')
check_true "batch: a bad request fails alone" -n "$(echo "$E" | grep 'bad limit 1')"
check "batch: the good one is decided" "$(rc GET 'rl:{be2}:lf1h' | cut -d: -f2)" "1"
check_true "batch: a bad layout is refused whole" \
    -n "$(rc EVALSHA "$SHA" 1 a batch 2 $FW 2>&1 | grep 'bad batch')"

# Layered decisions: two parts (an account 10/h, part 1; a route 1/h,
# part 2) and a penalty on part 2 (2 denials within 60 s block 60 s).
# layered_keys P: the 3 keys of one request under prefix P.
layered_keys() {
    echo "$1:{t}a:lf1h $1:{t}r|x:lf1h $1:{t}!pen|u:p"
}
LAYERED_ARGS="1 2 1 1 1 f1h 10 3600000 10 0 1 1 f1h 1 3600000 1 0 2 60000 60000 2"
# layered_fields V...: of each 14-value reply, allowed, part 1's allowed
# remaining blocked, part 2's allowed remaining blocked, penalty state.
layered_fields() {
    out=
    while [ $# -ge 14 ]; do
        out="$out$2 $3 $4 $7 $8 $9 ${12} ${13};"
        shift 14
    done
    echo "$out"
}
SEP=
for i in 1 2 3 4; do
    # shellcheck disable=SC2046,SC2086
    R=$(rc EVALSHA "$SHA" 3 $(layered_keys rl:sep) $LAYERED_ARGS | tr '\n' ' ')
    # shellcheck disable=SC2086
    SEP="$SEP$(layered_fields $R)"
done
check "layered: admit, route denies (account keeps 9), block starts, blocked" "$SEP" \
    "1 1 9 0 1 0 0 0;0 1 9 0 0 0 0 0;0 1 9 0 0 0 0 2;0 1 9 0 1 0 0 1;"
check "layered: a route denial spends nothing from the account" \
    "$(rc GET 'rl:sep:{t}a:lf1h' | cut -d: -f2)" "1"
check_true "layered: penalty block set" "$(rc PTTL 'rl:sep:{t}!pen|u:p')" -gt 59000
check_true "layered: penalty key holds the block, not the count" \
    "$(rc GET 'rl:sep:{t}!pen|u:p')" -lt 0
# shellcheck disable=SC2046,SC2086
B=$(rc EVALSHA "$SHA" 12 $(layered_keys rl:bat) $(layered_keys rl:bat) $(layered_keys rl:bat) \
    $(layered_keys rl:bat) batch 4 $LAYERED_ARGS $LAYERED_ARGS $LAYERED_ARGS $LAYERED_ARGS |
    tr '\n' ' ')
# shellcheck disable=SC2086
check "layered: batch replies equal separate calls" "$(layered_fields $B)" "$SEP"
check "layered: batch state equals separate calls" \
    "$(rc GET 'rl:bat:{t}a:lf1h' | cut -d: -f2) $(rc EXISTS 'rl:bat:{t}!pen|u:p')" "1 1"

# Per-part costs ("c1,c2"): part 1 spends 3 of 10, part 2 (cost 0) peeks
# its 5 and writes nothing; spending and refunding at once is refused.
PC="2 0 1 1 f1h 10 3600000 10 0 1 1 f1h 5 3600000 5 0"
# shellcheck disable=SC2086
R=$(rc EVALSHA "$SHA" 2 'rl:{pc}a:lf1h' 'rl:{pc}b:lf1h' 3,0 $PC | tr '\n' ' ')
check "part costs: 7 and 5 remaining" "$(field "$R" 2) $(field "$R" 4) $(field "$R" 9)" "1 7 5"
check "part costs: the peek wrote nothing" "$(rc EXISTS 'rl:{pc}b:lf1h')" "0"
# shellcheck disable=SC2086
check_true "part costs: spending and refunding in one request refused" -n "$(rc EVALSHA "$SHA" 2 \
    'rl:{pn}a:lf1h' 'rl:{pn}b:lf1h' 1,-1 $PC 2>&1 | grep 'bad arguments')"

# Refunds (a negative cost): the state is what it was before the spend,
# never below empty, and a refund admits even a denied or blocked limit.
R=$(decide 'rl:{rf}' 3 f1h 1 10 3600000 0 0 s1h 2 10 3600000 0 0)
R=$(decide 'rl:{rf}' -2 f1h 1 10 3600000 0 0 s1h 2 10 3600000 0 0)
check "refund: window counts back to 1, admitted" "$(field "$R" 2) $(field "$R" 4) $(field "$R" 9)" "1 9 9"
check "refund: fixed value" "$(rc GET 'rl:{rf}:lf1h' | cut -d, -f1 | cut -d: -f2)" "1"
R=$(decide 'rl:{rf}' -5 f1h 1 10 3600000 0 0 s1h 2 10 3600000 0 0)
check "refund: never below empty" "$(field "$R" 4) $(field "$R" 9)" "10 10"
R=$(decide 'rl:{rg}' 4 g1h 0 10 3600000 10 0)
TAT1=$(( $(rc PEXPIRETIME 'rl:{rg}:lg1h') * 1000 - $(rc GET 'rl:{rg}:lg1h') ))
R=$(decide 'rl:{rg}' 1 g1h 0 10 3600000 10 0)
R=$(decide 'rl:{rg}' -1 g1h 0 10 3600000 10 0)
check "refund: gcra TAT restored exactly" \
    "$(( $(rc PEXPIRETIME 'rl:{rg}:lg1h') * 1000 - $(rc GET 'rl:{rg}:lg1h') ))" "$TAT1"
check "refund: gcra remaining" "$(field "$R" 2) $(field "$R" 4)" "1 6"
R=$(decide 'rl:{rg}' -40 g1h 0 10 3600000 10 0)
check "refund: gcra full again, key gone" "$(field "$R" 4) $(rc EXISTS 'rl:{rg}:lg1h')" "10 0"
R=$(decide 'rl:{rb}' 1 g1h 0 1 3600000 1 60000)
R=$(decide 'rl:{rb}' 1 g1h 0 1 3600000 1 60000)
R=$(decide 'rl:{rb}' -1 g1h 0 1 3600000 1 60000)
check "refund: admitted while blocked, TAT given back" "$(field "$R" 2) $(field "$R" 4) $(field "$R" 6)" "1 1 0"
check_true "refund: the block stays" -n "$(rc GET 'rl:{rb}:lg1h' | grep '^/')"

echo "lua_check: $CHECKS checks, $FAILS failed"
[ "$FAILS" -eq 0 ]
