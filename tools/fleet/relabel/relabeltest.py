"""Relabel unit tests (`fleet test-relabel`), in the spirit of `promtool test rules`.

    rule_files: [../../base/relabel/platform.yaml]    # relative to the test file, applied in order
    # or: alloy_file: ../../rendered/.../config.alloy   + component: prometheus.relabel.platform
    flavor: prometheus                                 # or vmagent (default prometheus)
    tests:
      - name: drops project id
        input: 'up{job="shuttle", project_id="p1"}'
        output: 'up{job="shuttle"}'                    # or: dropped: true

A test passes when the engine's output equals `output` exactly (empty values = absent).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import yamlio
from ..errors import InputError, SourceRef
from .engine import FLAVORS, Rule, apply
from .loader import load_rules
from .series import format_series, parse_series

_TOP_KEYS = {"rule_files", "alloy_file", "component", "flavor", "tests"}
_TEST_KEYS = {"name", "input", "output", "dropped"}


@dataclass
class CaseResult:
    name: str
    source: SourceRef
    passed: bool
    expected: str
    got: str


def _ref(name: str, node: Any, key: Any = None) -> SourceRef:
    line, col = yamlio.position(node, key)
    return SourceRef(name, line, col)


def _alloy_component_rules(path: Path, component: str, where: SourceRef) -> list[Rule]:
    from ..alloy import graph as alloy_graph
    from ..alloy import syntax
    from .pipeline import alloy_rules

    text = path.read_text(encoding="utf-8")
    graph = alloy_graph.build_graph(syntax.parse(text, str(path)), str(path))
    comp = graph.components.get(component)
    if comp is None or comp.kind != "prometheus.relabel":
        raise InputError(f"no prometheus.relabel component {component!r} in {path}", where)
    relabel_of = getattr(alloy_graph, "relabel_rules", None) or graph.relabel_rules
    return alloy_rules(relabel_of(comp))


def load_suite(path: Path, name: str | None = None) -> tuple[list[Rule], str, list[tuple[str, SourceRef, dict, dict | None]]]:
    """(rules, flavor, [(test name, where, input, expected output or None)])."""
    name = name or str(path)
    doc = yamlio.load_file(path, name)
    if not isinstance(doc, dict):
        raise InputError("a relabel test file is a mapping", SourceRef(name, 1, 1), expected="rule_files, tests")
    for key in doc:
        if key not in _TOP_KEYS:
            raise InputError(f"unknown field {key!r}", _ref(name, doc, key), expected=", ".join(sorted(_TOP_KEYS)))
    flavor = str(doc.get("flavor", "prometheus"))
    if flavor not in FLAVORS:
        raise InputError(f"unknown flavor {flavor!r}", _ref(name, doc, "flavor"), expected=" or ".join(FLAVORS))
    base = path.parent
    rules: list[Rule] = []
    if "rule_files" in doc:
        files = doc["rule_files"]
        if not isinstance(files, list) or not files:
            raise InputError("rule_files must be a non-empty list", _ref(name, doc, "rule_files"))
        for i, f in enumerate(files):
            target = base / str(f)
            if not target.is_file():
                raise InputError(f"rule file {f!r} not found (relative to the test file)", _ref(name, files, i))
            rules.extend(load_rules(target, _display(target), flavor))  # type: ignore[arg-type]
    elif "alloy_file" in doc:
        target = base / str(doc["alloy_file"])
        if "component" not in doc:
            raise InputError("alloy_file needs component", _ref(name, doc, "alloy_file"))
        if not target.is_file():
            raise InputError(f"alloy file {doc['alloy_file']!r} not found", _ref(name, doc, "alloy_file"))
        rules = _alloy_component_rules(target, str(doc["component"]), _ref(name, doc, "component"))
    else:
        raise InputError("a relabel test file needs rule_files or alloy_file", SourceRef(name, 1, 1))
    tests = doc.get("tests")
    if not isinstance(tests, list) or not tests:
        raise InputError("tests must be a non-empty list", _ref(name, doc, "tests") if "tests" in doc else SourceRef(name, 1, 1))
    cases = []
    for i, t in enumerate(tests):
        where = _ref(name, tests, i)
        if not isinstance(t, dict):
            raise InputError("a test is a mapping", where, expected="name, input, output | dropped")
        for key in t:
            if key not in _TEST_KEYS:
                raise InputError(f"unknown field {key!r}", _ref(name, t, key), expected=", ".join(sorted(_TEST_KEYS)))
        if "input" not in t or (("output" in t) == bool(t.get("dropped"))):
            raise InputError("a test needs input and exactly one of output / dropped: true", where)
        inp = parse_series(str(t["input"]), _ref(name, t, "input"))
        out = None if t.get("dropped") else parse_series(str(t["output"]), _ref(name, t, "output"))
        cases.append((str(t.get("name", f"test {i + 1}")), where, inp, out))
    return rules, flavor, cases


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def run_suite(path: Path, name: str | None = None) -> list[CaseResult]:
    rules, flavor, cases = load_suite(path, name)
    results = []
    for test_name, where, inp, expected in cases:
        got = apply(rules, inp, flavor)  # type: ignore[arg-type]
        results.append(CaseResult(test_name, where, got == expected, format_series(expected), format_series(got)))
    return results
