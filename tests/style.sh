#!/usr/bin/env bash
# The mechanical part of ../shared/STYLE.md, checked on src/, tests/unit/
# and tests/fuzz/: the layout of .clang-format (clang-format --dry-run
# -Werror) and braces around every if/for/while/else body (clang-tidy's
# readability-braces-around-statements, which clang-format 14 cannot
# check), and the sizes of files and functions (tests/style_sizes.awk:
# 900 and 80 lines). BUILD is a configured build folder (for config.h). Prints one
# line per violated rule and exits non-zero on any.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:?usage: tests/style.sh BUILD_DIR}
cd "$ROOT"
shopt -s nullglob
files=(src/*.c src/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c)
sources=(src/*.c tests/unit/*.c tests/fuzz/*.c)
rc=0

if ! clang-format --dry-run -Werror "${files[@]}" 2>"$BUILD/style-format.log"; then
    grep -m 20 'error:' "$BUILD/style-format.log" || true
    echo "style: clang-format: $(grep -c 'error:' "$BUILD/style-format.log") violation(s) (run: clang-format -i ${files[*]:0:3} ...)"
    rc=1
fi

# shellcheck disable=SC2046 # pkg-config prints a list of flags
if ! clang-tidy --quiet --warnings-as-errors='*' \
    -checks='-*,readability-braces-around-statements' -header-filter='src/.*' \
    "${sources[@]}" -- -std=c11 -D_GNU_SOURCE -Isrc -I"$BUILD" -I"$BUILD/src" -I"$BUILD/proto" \
    $(pkg-config --cflags libevent hiredis jansson openssl check libnghttp2 libprotobuf-c) \
    >"$BUILD/style-braces.log" 2>&1; then
    grep -m 20 -E 'warning:|error:' "$BUILD/style-braces.log" || true
    echo "style: braces: statements without braces (clang-tidy --fix with readability-braces-around-statements adds them)"
    rc=1
fi
# File and function sizes (tests/style_sizes.awk).
if ! awk -f tests/style_sizes.awk src/*.c src/*.h; then
    echo "style: sizes: split the files or functions named above"
    rc=1
fi
[ "$rc" -eq 0 ] && echo "style: ok (${#files[@]} files)"
exit "$rc"
