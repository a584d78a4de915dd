# The size rules of STYLE.md, for tests/style.sh: no file of src/ over
# 900 lines, no function over 80 lines (a function body is the lines from
# a "{" in column 0 to the next "}" in column 0, as .clang-format lays
# them out). Prints one line per violation; exits 1 on any.
FNR == 1 {
    if (prev != "" && lines > 900) {
        printf "%s: %d lines (at most 900)\n", prev, lines
        bad = 1
    }
    prev = FILENAME
    lines = 0
}
{ lines++ }
/^\{/ { start = FNR; name = last }
/^\}/ && start {
    if (FNR - start + 1 > 80) {
        printf "%s:%d: function %s is %d lines (at most 80)\n", FILENAME,
            start, name, FNR - start + 1
        bad = 1
    }
    start = 0
}
/\(/ && !start { last = $0; sub(/\(.*/, "", last); sub(/.*[ *]/, "", last) }
END {
    if (lines > 900) {
        printf "%s: %d lines (at most 900)\n", prev, lines
        bad = 1
    }
    exit bad
}
