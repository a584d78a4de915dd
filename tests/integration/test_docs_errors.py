"""docs/api.md's error table and src/errors.h's RL_ERRORS rows agree: the
same kinds in the same order, each with the same code, status and
default message. A row added to either without the other fails."""

import os
import re

from harness import ROOT, check, eq

ERRORS_H = os.path.join(ROOT, "src", "errors.h")
API_MD = os.path.join(ROOT, "docs", "api.md")

ROW = re.compile(r'X\(\s*(\w+)\s*,\s*"([^"]*)"\s*,\s*(\d+)\s*,\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\)')
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def c_rows():
    """(kind, code, status, message) of each X(...) row of RL_ERRORS."""
    with open(ERRORS_H) as f:
        text = f.read()
    start = text.index("#define RL_ERRORS(X)")
    body = []
    for line in text[start:].splitlines():
        body.append(line.rstrip().rstrip("\\"))
        if not line.rstrip().endswith("\\"):
            break
    macro = " ".join(body)
    rows = []
    for m in ROW.finditer(macro):
        message = "".join(s.replace('\\"', '"').replace("\\\\", "\\")
                          for s in STRING.findall(m.group(4)))
        rows.append((m.group(1), m.group(2), int(m.group(3)), message))
    check(macro.count("X(") == len(rows),
          "errors.h: %d X( rows, %d parsed" % (macro.count("X("), len(rows)))
    return rows


def doc_rows():
    """(kind, code, status, message) of each row of the table between
    <!-- errors:begin --> and <!-- errors:end --> in docs/api.md."""
    with open(API_MD) as f:
        text = f.read()
    check("<!-- errors:begin -->" in text and "<!-- errors:end -->" in text,
          "docs/api.md lacks the errors:begin / errors:end markers")
    section = text.split("<!-- errors:begin -->", 1)[1].split("<!-- errors:end -->", 1)[0]
    rows = []
    lines = [line for line in section.splitlines() if line.startswith("|")]
    check(len(lines) >= 2, "no table between the markers")
    header = [c.strip() for c in re.split(r"(?<!\\)\|", lines[0])[1:-1]]
    eq(header[:4], ["kind", "code", "status", "default message"], "table columns")
    for line in lines[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        unquote = [c[1:-1] if c.startswith("`") and c.endswith("`") else c
                   for c in cells[:4]]
        kind, code, status, message = unquote
        check(status.isdigit(), "status %r of doc row %r" % (status, kind))
        rows.append((kind, code, int(status), message.replace("\\|", "|")))
    return rows


def test_doc_error_table_matches_errors_h():
    c, doc = c_rows(), doc_rows()
    check(len(c) >= 20, "only %d rows parsed from errors.h" % len(c))
    only_c = [r for r in c if r not in doc]
    only_doc = [r for r in doc if r not in c]
    check(not only_c and not only_doc,
          "errors.h and docs/api.md disagree:\n  only in errors.h: %r\n  only in the doc: %r"
          % (only_c, only_doc))
    eq([r[0] for r in doc], [r[0] for r in c], "order of the kinds")
    eq(len({r[0] for r in c}), len(c), "distinct kinds")
