#!/usr/bin/env bash
# Builds ratelimitd from scratch and runs every test: first the
# stand-alone scripts tests/integration/*.sh, then twice the rest:
#   1. build/werror:   ./configure --enable-werror, make, make check (Check
#                      unit tests), then the integration suite
#   2. build/sanitize: ./configure --enable-werror --enable-sanitizers
#                      (ASan + UBSan), the same tests, and no sanitizer
#                      report allowed in any ratelimitd's stderr
# then the style check (tests/style.sh), and last the libFuzzer targets
# of tests/fuzz, FUZZ_SECONDS (20) each.
# Installs missing Debian packages first. Ends with "N passed, N failed"
# and exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/tests/lib.sh"

PASSED=0
FAILED=0
SUMMARY=()
FAILURES=()
JOBS=$(nproc 2>/dev/null || echo 2)
SAN_MARKERS='ERROR: AddressSanitizer|runtime error:|LeakSanitizer'

# Adds a line to the summary and its counts to the totals.
record() {
    local what=$1 pass=$2 fail=$3 note=${4:-}
    PASSED=$((PASSED + pass))
    FAILED=$((FAILED + fail))
    SUMMARY+=("$(printf '%-28s %4d passed, %4d failed  %s' "$what" "$pass" "$fail" "$note")")
}

# Keeps the lines of LOG that match PATTERN (a failed check, a failed
# test), at most 10 of 300 characters, for the list printed at the end:
# the end of the output is the part every reader of a CI run sees.
note_failures() {
    local name=$1 log=$2 pattern=$3 line
    [ -e "$log" ] || return 0
    while IFS= read -r line; do
        FAILURES+=("$name: ${line:0:300}")
    done < <(grep -E "$pattern" "$log" | head -n 10 || true)
}

# Counts the Check results of every unit test log under DIR as
# "passed failed"; a program that printed no Check summary counts as one
# failure.
unit_counts() {
    local dir=$1 log line checks fails errors pass=0 fail=0
    for log in "$dir"/tests/unit/check_*.log; do
        [ -e "$log" ] || continue
        line=$(grep -Eo 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" | tail -n 1 || true)
        if [ -z "$line" ]; then
            fail=$((fail + 1))
            continue
        fi
        read -r checks fails errors <<<"$(echo "$line" | tr -cs '0-9' ' ')"
        pass=$((pass + checks - fails - errors))
        fail=$((fail + fails + errors))
    done
    echo "$pass $fail"
}

# Builds in build/NAME with configure FLAGS and runs the unit and
# integration tests; SLOW scales the integration tests' timing bounds.
build_and_test() {
    local name=$1 flags=$2 slow=$3
    local dir="$ROOT/build/$name" t0 rc line reports log pass fail
    t0=$(date +%s)
    rl_say "[$name] configure $flags"
    rm -rf "$dir"
    mkdir -p "$dir"
    # shellcheck disable=SC2086 # flags is a list of words
    if ! (cd "$dir" && "$ROOT/configure" $flags >configure.log 2>&1); then
        tail -n 40 "$dir/configure.log"
        record "$name: build" 0 1 "configure failed"
        return 0
    fi
    rl_say "[$name] make -j$JOBS"
    if ! make -C "$dir" -j"$JOBS" >"$dir/make.log" 2>&1; then
        grep -E 'error|warning' "$dir/make.log" | head -n 40 || true
        tail -n 20 "$dir/make.log"
        record "$name: build" 0 1 "make failed"
        return 0
    fi
    record "$name: build" 1 0 "$(($(date +%s) - t0))s"

    rl_say "[$name] make check"
    t0=$(date +%s)
    rc=0
    make -C "$dir" -j"$JOBS" check >"$dir/check.log" 2>&1 || rc=$?
    grep -E '^(PASS|FAIL|ERROR|XPASS|SKIP):' "$dir/check.log" | awk '!seen[$0]++' || true
    read -r pass fail <<<"$(unit_counts "$dir")"
    if [ "$rc" -ne 0 ]; then
        [ "$fail" -gt 0 ] || fail=1
        tail -n 30 "$dir/check.log"
        for log in "$dir"/tests/unit/check_*.log; do
            if [ -e "$log" ] && grep -qE '^:test-result: (FAIL|ERROR)' "${log%.log}.trs" 2>/dev/null; then
                echo "---- $log"
                tail -n 60 "$log"
                note_failures "$name" "$log" ':[EF]:'
            fi
        done
    fi
    record "$name: unit tests" "$pass" "$fail" "$(($(date +%s) - t0))s"

    rl_say "[$name] integration tests"
    t0=$(date +%s)
    rm -rf "$dir/itest-logs"
    mkdir -p "$dir/itest-logs"
    rc=0
    RATELIMITD="$dir/ratelimitd" RL_TEST_LOGDIR="$dir/itest-logs" RL_TEST_SLOW=$slow \
        python3 "$ROOT/tests/integration/run.py" 2>&1 | tee "$dir/integration.log" || rc=$?
    line=$(tail -n 1 "$dir/integration.log")
    if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        pass=${BASH_REMATCH[1]}
        fail=${BASH_REMATCH[2]}
        [ "$rc" -eq 0 ] || [ "$fail" -gt 0 ] || fail=1
    else
        pass=0
        fail=1
    fi
    note_failures "$name" "$dir/integration.log" '^FAIL '
    record "$name: integration tests" "$pass" "$fail" "$(($(date +%s) - t0))s"

    reports=$(grep -rlE "$SAN_MARKERS" "$dir/itest-logs" "$dir"/tests/unit/*.log 2>/dev/null || true)
    if [ -n "$reports" ]; then
        echo "sanitizer reports in:"
        while IFS= read -r log; do
            echo "---- $log"
            grep -E -A 20 "$SAN_MARKERS" "$log" | head -n 40
        done <<<"$reports"
        record "$name: sanitizer reports" 0 1 "$(echo "$reports" | wc -l) file(s)"
    else
        record "$name: sanitizer reports" 1 0 "none"
    fi
}

# Runs each executable tests/integration/*.sh (stand-alone checks that
# need no build, such as the Lua script check); exit 0 = passed.
run_scripts() {
    local script name dir="$ROOT/build/scripts"
    mkdir -p "$dir"
    for script in "$ROOT"/tests/integration/*.sh; do
        [ -x "$script" ] || continue
        name=$(basename "$script" .sh)
        rl_say "script tests/integration/$name.sh"
        if timeout 300 "$script" >"$dir/$name.log" 2>&1; then
            tail -n 1 "$dir/$name.log"
            record "script: $name" 1 0
        else
            tail -n 40 "$dir/$name.log"
            record "script: $name" 0 1
        fi
    done
}

# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined)
# and runs each for FUZZ_SECONDS; a crash, leak or sanitizer report fails
# it. Installs clang and its libFuzzer runtime first if they are missing.
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_PACKAGES=(clang libclang-rt-14-dev)
run_fuzzers() {
    local dir="$ROOT/build/fuzz" line name n=0
    rl_apt_install_missing "${FUZZ_PACKAGES[@]}"
    rl_say "fuzzing, ${FUZZ_SECONDS}s per target"
    rm -rf "$dir"
    mkdir -p "$dir"
    RL_FUZZ_OUT="$dir" "$ROOT/tests/fuzz/run.sh" "$FUZZ_SECONDS" >"$dir/run.log" 2>&1 || true
    while IFS= read -r line; do
        [[ $line =~ ^fuzz\ ([a-z_]+):\ (ok|FAILED|built)\ (.*)$ ]] || continue
        name=${BASH_REMATCH[1]}
        n=$((n + 1))
        echo "$line"
        if [ "${BASH_REMATCH[2]}" = ok ]; then
            record "fuzz: $name" 1 0 "${BASH_REMATCH[3]}"
        else
            record "fuzz: $name" 0 1 "${BASH_REMATCH[3]}"
        fi
    done <"$dir/run.log"
    if [ "$n" -eq 0 ] || grep -q FAILED "$dir/run.log"; then
        tail -n 60 "$dir/run.log"
        [ "$n" -gt 0 ] || record "fuzz" 0 1 "no target ran"
    fi
}

# Installs the Debian packages only the tests need (the /metrics tests
# parse with python3-prometheus-client; the style check runs clang-format
# and clang-tidy; test_dashboards runs promtool, from prometheus, and never
# uses the service the package may start; test_ui drives chromium with
# node's playwright-core), when missing.
install_test_packages() {
    rl_apt_install_missing python3-prometheus-client clang-format clang-tidy \
        python3-grpcio python3-grpc-tools nghttp2-client prometheus chromium nodejs
    # npm ships with some nodejs builds; Debian's is a package of its own.
    command -v npm >/dev/null 2>&1 || rl_apt_install npm
}

# The layout and brace rules of STYLE.md (tests/style.sh), on the
# configured werror build.
run_style() {
    local log="$ROOT/build/werror/style.log"
    rl_say "style check"
    if "$ROOT/tests/style.sh" "$ROOT/build/werror" >"$log" 2>&1; then
        tail -n 1 "$log"
        record "style" 1 0
    else
        cat "$log"
        record "style" 0 1
    fi
}

# Installs what the gateway and deploy tests need, each only if missing:
# Debian's nginx (auth_request is built in), systemd-analyze (package
# systemd) and python3-yaml.
install_gateway_deps() {
    local missing=()
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v caddy >/dev/null 2>&1 || missing+=(caddy)
    command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
    python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
    rl_apt_install "${missing[@]}"
}

main() {
    local start
    start=$(date +%s)
    rl_install_deps
    install_test_packages
    install_gateway_deps
    cd "$ROOT"
    rl_prepare_source "$ROOT"
    run_scripts
    build_and_test werror "--enable-werror" 1
    run_style
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    build_and_test sanitize "--enable-werror --enable-sanitizers" 2
    unset ASAN_OPTIONS UBSAN_OPTIONS
    run_fuzzers

    if [ "${#FAILURES[@]}" -gt 0 ]; then
        echo
        echo "== failures"
        printf '%s\n' "${FAILURES[@]}"
    fi
    echo
    echo "== summary ($(($(date +%s) - start))s)"
    printf '%s\n' "${SUMMARY[@]}"
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

main "$@"
