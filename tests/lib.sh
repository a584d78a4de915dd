# Shell helpers shared by tests/run.sh and deploy/quickstart.sh.
# Source it; it defines functions and sets nothing else.
# shellcheck shell=bash

# Debian packages needed to build ratelimitd and run its tests.
RL_PACKAGES=(build-essential autoconf automake libtool pkg-config libevent-dev
    libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler libyaml-dev
    libhiredis-dev libjansson-dev libssl-dev check redis-server python3 curl openssl
    redis-sentinel)

# Prints a progress line on stderr.
rl_say() {
    printf '==> %s\n' "$*" >&2
}

# Installs the given Debian packages (nothing to do without any): one
# apt-get update, then one install, with sudo unless root.
rl_apt_install() {
    local sudo=()
    [ $# -gt 0 ] || return 0
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    rl_say "installing $*"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
        --no-install-recommends "$@" >/dev/null
}

# Installs those of the given packages that dpkg does not know as installed.
rl_apt_install_missing() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    rl_apt_install "${missing[@]}"
}

# Installs the packages of RL_PACKAGES that are missing.
rl_install_deps() {
    rl_apt_install_missing "${RL_PACKAGES[@]}"
}

# Prints a TCP port that is free on 127.0.0.1.
rl_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Succeeds if something accepts TCP connections on HOST PORT.
rl_port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Stops process PID: SIGTERM, up to 10 s for it to exit, then SIGKILL.
rl_stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Starts a throwaway redis-server on 127.0.0.1:PORT with its files in DIR
# and waits for PING. Sets RL_REDIS_PID.
rl_redis_start() {
    local port=$1 dir=$2
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$dir" >"$dir/redis.log" 2>&1 &
    RL_REDIS_PID=$!
    for _ in $(seq 100); do
        if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then
            return 0
        fi
        kill -0 "$RL_REDIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$dir/redis.log" >&2
    return 1
}

# Waits up to SECONDS for URL to answer 200.
rl_wait_http() {
    local url=$1 seconds=$2
    for _ in $(seq $((seconds * 10))); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Readies the source tree at ROOT for out-of-tree builds: cleans an
# in-place configuration if there is one, then autoreconf -fi.
rl_prepare_source() {
    local root=$1
    if [ -f "$root/config.status" ]; then
        rl_say "the source tree is configured in place: make distclean (builds go to build/)"
        make -C "$root" distclean >/dev/null 2>&1 || rm -f "$root/config.status"
    fi
    rl_say "autoreconf -fi"
    (cd "$root" && autoreconf -fi >/dev/null 2>&1) || (cd "$root" && autoreconf -fi)
}
