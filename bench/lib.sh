# Shell helpers shared by bench/run.sh and bench/cpu_ab.sh (source it
# after tests/lib.sh; it defines functions and sets nothing else).
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
