#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang
# (-fsanitize=fuzzer,address,undefined) into build/fuzz, then runs each
# for SECONDS (default 20) on a copy of its seed corpus. Prints one line
# per target, "fuzz NAME: ok (...)" or "fuzz NAME: FAILED (...)", and
# exits non-zero if a target failed to build or found a crash, a leak, a
# timeout or a sanitizer report (its log and the crashing input stay in
# build/fuzz/NAME.log and build/fuzz/NAME-artifacts/).
#
#   tests/fuzz/run.sh [SECONDS] [--build-only] [TARGET...]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${RL_FUZZ_OUT:-$ROOT/build/fuzz}
CC=${CC:-clang}
SECONDS_EACH=20
BUILD_ONLY=0
TARGETS=()
for arg in "$@"; do
    case $arg in
    --build-only) BUILD_ONLY=1 ;;
    [0-9]*) SECONDS_EACH=$arg ;;
    *) TARGETS+=("$arg") ;;
    esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(request conf pattern http_head http_chunked http_conn resp auth
    reply_template path convert grpc sentinel decide_reply)

# The config module and what it needs, shared by the targets that parse
# a configuration.
CONF="src/conf.c src/conf_field.c src/conf_policy.c src/conf_auth.c src/conf_store.c
    src/conf_penalty.c src/conf_override.c src/conf_grpc.c src/override.c src/deny_cache.c
    src/store.c src/reply.c src/reply_template.c
    src/algo.c src/algo_mem.c src/errors.c src/policy.c src/policy_desc.c src/request.c
    src/redis_tls.c
    src/log.c src/util.c"
# The sources each target links, besides its own fuzz_NAME.c.
declare -A SOURCES=(
    [request]="$CONF src/auth.c"
    [conf]="$CONF"
    [pattern]="$CONF"
    [http_head]="src/http_parse.c"
    [http_chunked]="src/http_parse.c"
    [http_conn]="src/http.c src/http_conn.c src/http_reply.c src/http_parse.c src/errors.c src/loop.c src/util.c src/bev_write.c src/log.c"
    [resp]="src/redis_cmd.c src/store.c src/algo.c src/algo_mem.c src/util.c"
    [decide_reply]="src/redis_cmd.c src/store.c src/algo.c src/algo_mem.c src/util.c"
    [auth]="src/auth.c src/errors.c src/util.c src/request.c"
    [reply_template]="src/reply.c src/reply_template.c src/errors.c src/util.c"
    [path]="src/path.c src/request.c src/errors.c"
    [convert]="src/convert_envoy.c src/convert_yaml.c"
    [grpc]="src/grpc_frame.c"
    [sentinel]="src/sentinel_parse.c"
)

# The C of proto/ (protoc-c), generated into the output dir: the grpc
# target links it (its .pb-c.c files are added below).
PROTO_OUT="$OUT/proto"
PROTO_FILES=(google/protobuf/duration.proto google/protobuf/wrappers.proto
    envoy/type/v3/ratelimit_unit.proto envoy/config/core/v3/base.proto
    envoy/extensions/common/ratelimit/v3/ratelimit.proto
    envoy/service/ratelimit/v3/rls.proto grpc/health/v1/health.proto)
mkdir -p "$PROTO_OUT"
(cd "$ROOT/proto" && protoc-c --c_out="$PROTO_OUT" "${PROTO_FILES[@]}")
for f in "${PROTO_FILES[@]}"; do
    SOURCES[grpc]+=" ${f%.proto}.pb-c.c"
done

CFLAGS=(-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -I"$ROOT/src" -I"$OUT/proto")
# shellcheck disable=SC2207 # pkg-config prints a list of flags
PKG=($(pkg-config --cflags --libs jansson openssl libevent libevent_openssl hiredis yaml-0.1 \
    libprotobuf-c))

mkdir -p "$OUT"
failed=0
for t in "${TARGETS[@]}"; do
    [ -n "${SOURCES[$t]:-}" ] || { echo "fuzz $t: FAILED (no such target)"; failed=1; continue; }
    srcs=()
    for s in ${SOURCES[$t]}; do
        if [ -f "$ROOT/$s" ]; then srcs+=("$ROOT/$s"); else srcs+=("$PROTO_OUT/$s"); fi
    done
    if ! "$CC" "${CFLAGS[@]}" -o "$OUT/fuzz_$t" "$ROOT/tests/fuzz/fuzz_$t.c" "${srcs[@]}" \
        "${PKG[@]}" >"$OUT/$t-build.log" 2>&1; then
        tail -n 20 "$OUT/$t-build.log"
        echo "fuzz $t: FAILED (build)"
        failed=1
        continue
    fi
    [ "$BUILD_ONLY" -eq 0 ] || { echo "fuzz $t: built $OUT/fuzz_$t"; continue; }
    work="$OUT/$t-corpus"
    art="$OUT/$t-artifacts"
    rm -rf "$work" "$art"
    mkdir -p "$work" "$art"
    dict=()
    [ -f "$ROOT/tests/fuzz/$t.dict" ] && dict=(-dict="$ROOT/tests/fuzz/$t.dict")
    # New inputs go to the work copy: the committed seeds stay as they are.
    if timeout $((SECONDS_EACH + 120)) "$OUT/fuzz_$t" -max_total_time="$SECONDS_EACH" \
        -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$art/" "${dict[@]}" "$work" "$ROOT/tests/fuzz/corpus/$t" \
        </dev/null >"$OUT/$t.log" 2>&1; then
        runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$OUT/$t.log" | grep -Eo '[0-9]+$' || echo "?")
        cov=$(grep -Eo 'cov: [0-9]+' "$OUT/$t.log" | tail -n 1 | grep -Eo '[0-9]+' || echo "?")
        echo "fuzz $t: ok ($runs runs in ${SECONDS_EACH}s, coverage $cov)"
    else
        grep -E -A 30 'ERROR: |runtime error|Test unit written' "$OUT/$t.log" | head -n 50 || tail -n 30 "$OUT/$t.log"
        echo "fuzz $t: FAILED (see $OUT/$t.log and $art)"
        failed=1
    fi
done
exit "$failed"
