"""docs/operations.md kept true to src/stats.h: its table of metrics and
its table of store-error reasons are compared with the header's X-macro
rows (RL_STATS_METRICS, RL_STATS_REASONS), so a metric or a reason added
to one and not the other fails. The header parser is also what
test_metrics.py checks a scrape against."""

import os
import re

from harness import ROOT, check, eq

STATS_H = os.path.join(ROOT, "src", "stats.h")
OPERATIONS_MD = os.path.join(ROOT, "docs", "operations.md")

# The labels each shape of RL_STATS_METRICS gives its series (see the
# comment above RL_STATS_METRICS); a PINFO row's label is its field.
SHAPE_LABELS = {"VALUE": (), "REASON": ("reason",), "POLICY": ("policy", "verdict"),
                "HIST": ("le",), "PVALUE": (), "PTIME": (), "PINFO": None,
                "PRESULT": ("result",)}

_STR = r'"(?:[^"\\]|\\.)*"'
_ROW = re.compile(r'X\(\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*,\s*(%s)\s*,\s*((?:%s\s*)+)\)'
                  % (_STR, _STR))


def _macro(name):
    """The body of src/stats.h's #define NAME(X), continuation lines joined."""
    with open(STATS_H) as f:
        text = f.read()
    m = re.search(r"^#define %s\(X\)((?:.*\\\n)*.*)$" % name, text, re.M)
    check(m is not None, "src/stats.h has no #define %s(X)" % name)
    return m.group(1).replace("\\\n", " ")


def _cstring(pieces):
    """The value of adjacent C string literals (no escapes in these rows)."""
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', pieces))


def declared_metrics():
    """Every row of RL_STATS_METRICS in file order: dicts with type, shape,
    field, name, help and labels (a tuple of label names)."""
    body = _macro("RL_STATS_METRICS")
    rows = []
    for m in _ROW.finditer(body):
        typ, shape, field, name, help_ = m.groups()
        check(shape in SHAPE_LABELS, "unknown shape %s in src/stats.h (row %s)" % (shape, field))
        labels = SHAPE_LABELS[shape]
        rows.append({"type": typ, "shape": shape, "field": field, "name": _cstring(name),
                     "help": _cstring(help_), "labels": (field,) if labels is None else labels})
    # A row this parser cannot read would silently drop out of every check.
    eq(len(rows), body.count("X("), "RL_STATS_METRICS rows parsed")
    check(len(rows) >= 20, "only %d metrics parsed from src/stats.h" % len(rows))
    return rows


def declared_reasons():
    """RL_STATS_REASONS of src/stats.h, in order."""
    return re.findall(r"X\((\w+)\)", _macro("RL_STATS_REASONS"))


def _doc_table(marker):
    """The rows (lists of cells) of the table between <!-- MARKER:begin -->
    and <!-- MARKER:end --> in docs/operations.md, header excluded."""
    with open(OPERATIONS_MD) as f:
        text = f.read()
    m = re.search(r"<!-- %s:begin -->(.*?)<!-- %s:end -->" % (marker, marker), text, re.S)
    check(m is not None, "docs/operations.md has no %s:begin/end markers" % marker)
    lines = [ln.strip() for ln in m.group(1).splitlines() if ln.strip().startswith("|")]
    check(len(lines) > 2, "no table between the %s markers" % marker)
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def _same_set(doc, header, what):
    """Fails naming what only one side has."""
    only_doc = sorted(set(doc) - set(header))
    only_header = sorted(set(header) - set(doc))
    check(not only_doc and not only_header,
          "%s: in docs/operations.md only: %s; in src/stats.h only: %s"
          % (what, only_doc or "none", only_header or "none"))
    eq(len(doc), len(set(doc)), "%s listed once each in docs/operations.md" % what)


def test_operations_metrics_table_matches_stats_h():
    """The metrics table of docs/operations.md names exactly the metrics of
    RL_STATS_METRICS, each with its declared type and label names."""
    declared = {m["name"]: m for m in declared_metrics()}
    rows = _doc_table("metrics")
    names = [re.sub(r"`", "", r[0]) for r in rows]
    _same_set(names, list(declared), "metrics")
    for name, row in zip(names, rows):
        m = declared[name]
        check(row[1].split()[0] == m["type"],
              "%s: docs/operations.md says type %r, src/stats.h %s" % (name, row[1], m["type"]))
        # Label names are the backticked words outside parentheses.
        labels = tuple(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", row[2])))
        eq(labels, m["labels"], "labels of %s in docs/operations.md" % name)


def test_operations_reasons_table_matches_stats_h():
    """The table of store-error reasons in docs/operations.md (the reason
    label of the degraded and store-error counters) lists exactly
    RL_STATS_REASONS."""
    rows = _doc_table("reasons")
    _same_set([r[0].strip("`") for r in rows], declared_reasons(), "reasons")
