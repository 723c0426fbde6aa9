"""Relabel unit tests (`fleet test-relabel`), in the spirit of `promtool test rules`.

Why: every relabel set the repo ships (bare lists in base/relabel/, vmagent scrape jobs in a Helm
values file, relabel components of a rendered config.alloy) must have its behaviour pinned by
examples a reviewer can read: input series → expected output, or dropped.

    rule_files: [../../base/relabel/platform.yaml]    # relative to the test file, applied in order
    # or: values_file: ../../base/components/vmagent/values.yaml
    #     scrape_job: customer-pods                    # config.scrape_configs[job_name=...]
    #     stage: relabel_configs                       # or metric_relabel_configs
    # or: alloy_file: ../../rendered/.../config.alloy
    #     component: discovery.relabel.job_shuttle     # or a prometheus.relabel component
    flavor: prometheus                                 # or vmagent (default prometheus)
    drop_meta_labels: false                            # true: drop __meta_* from the result
    tests:
      - name: drops project id
        input: 'up{job="shuttle", project_id="p1"}'
        output: 'up{job="shuttle"}'                    # or: dropped: true

Instead of `tests:`, a file may hold `groups:`, each a mapping with the keys above (they override
the file's) and its own `tests:`, so one file covers several jobs or components of one source.
A test passes when the engine's output equals `output` exactly (empty values = absent).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import yamlio
from ..errors import InputError, SourceRef
from .engine import FLAVORS, Rule, apply
from .loader import load_rules, rules_from_yaml_list
from .series import format_series, parse_series

SOURCE_KEYS = ("rule_files", "values_file", "alloy_file")
STAGES = ("relabel_configs", "metric_relabel_configs")
ALLOY_RELABEL_KINDS = ("discovery.relabel", "prometheus.relabel")
META_PREFIX = "__meta_"

_SET_KEYS = {*SOURCE_KEYS, "scrape_job", "stage", "component", "flavor", "drop_meta_labels"}
_TOP_KEYS = _SET_KEYS | {"tests", "groups"}
_GROUP_KEYS = _SET_KEYS | {"name", "tests"}
_TEST_KEYS = {"name", "input", "output", "dropped"}
#: Keys that belong to one source kind only.
_ONLY_WITH = {"scrape_job": "values_file", "stage": "values_file", "component": "alloy_file"}


@dataclass(frozen=True)
class RuleSet:
    """One shipped relabel set a test group runs: a file, and which part of it ("" = whole file,
    "<job>/<stage>" of a values file, a component id of an Alloy file)."""

    file: Path
    part: str = ""

    def __str__(self) -> str:
        return f"{self.file}#{self.part}" if self.part else str(self.file)


@dataclass
class Case:
    name: str
    source: SourceRef
    input: dict[str, str]
    expected: dict[str, str] | None


@dataclass
class Group:
    """Tests that share one rule list (a file without `groups:` is one group)."""

    name: str
    sets: list[RuleSet]
    rules: list[Rule]
    flavor: str
    drop_meta_labels: bool
    cases: list[Case] = field(default_factory=list)


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


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class _Settings:
    """A group's keys over the file's keys, remembering which mapping each value came from
    (so errors point at the line that set it)."""

    def __init__(self, name: str, *layers: dict):
        self.name, self.layers = name, [layer for layer in layers if layer is not None]

    def has(self, key: str) -> bool:
        return any(key in layer for layer in self.layers)

    def get(self, key: str, default: Any = None) -> Any:
        for layer in reversed(self.layers):
            if key in layer:
                return layer[key]
        return default

    def ref(self, key: str) -> SourceRef:
        for layer in reversed(self.layers):
            if key in layer:
                return _ref(self.name, layer, key)
        return _ref(self.name, self.layers[-1])

    def text(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str) or not value:
            raise InputError(f"{key} must be a non-empty string", self.ref(key))
        return value


def _check_keys(name: str, node: Any, allowed: set[str], what: str) -> None:
    if not isinstance(node, dict):
        raise InputError(f"{what} is a mapping", _ref(name, node), expected=", ".join(sorted(allowed)))
    for key in node:
        if key not in allowed:
            raise InputError(f"unknown field {key!r}", _ref(name, node, key), expected=", ".join(sorted(allowed)))


# --------------------------------------------------------------------------------------------
# Where the rules come from


class _Sources:
    """Loads rule sets for one test file; parses each values / Alloy file once."""

    def __init__(self, base: Path):
        self.base = base
        self.yaml_docs: dict[Path, Any] = {}
        self.graphs: dict[Path, Any] = {}

    def file(self, s: _Settings, key: str, value: Any = None, ref: SourceRef | None = None) -> Path:
        value = s.text(key) if value is None else value
        target = self.base / str(value)
        if not target.is_file():
            raise InputError(f"{key.replace('_', ' ')} {str(value)!r} not found (relative to the test file)",
                             ref or s.ref(key))
        return target

    def rules(self, s: _Settings, flavor: str) -> tuple[list[Rule], list[RuleSet]]:
        present = [k for k in SOURCE_KEYS if s.has(k)]
        if len(present) != 1:
            where = s.ref(present[1]) if len(present) > 1 else _ref(s.name, s.layers[-1])
            raise InputError("a relabel test group needs exactly one of " + ", ".join(SOURCE_KEYS)
                             + (f" (got {', '.join(present)})" if present else ""), where)
        kind = present[0]
        for key, owner in _ONLY_WITH.items():
            if s.has(key) and owner != kind:
                raise InputError(f"{key} only goes with {owner}", s.ref(key))
        if kind == "rule_files":
            return self._rule_files(s, flavor)
        if kind == "values_file":
            return self._values_file(s, flavor)
        return self._alloy_file(s)

    def _rule_files(self, s: _Settings, flavor: str) -> tuple[list[Rule], list[RuleSet]]:
        files = s.get("rule_files")
        if not isinstance(files, list) or not files:
            raise InputError("rule_files must be a non-empty list", s.ref("rule_files"))
        rules: list[Rule] = []
        sets = []
        for i, f in enumerate(files):
            target = self.file(s, "rule_files", f, _ref(s.name, files, i))
            rules.extend(load_rules(target, _display(target), flavor))  # type: ignore[arg-type]
            sets.append(RuleSet(target.resolve()))
        return rules, sets

    def _values_file(self, s: _Settings, flavor: str) -> tuple[list[Rule], list[RuleSet]]:
        target = self.file(s, "values_file")
        for key in ("scrape_job", "stage"):
            if not s.has(key):
                raise InputError(f"values_file needs {key}", s.ref("values_file"))
        job, stage = s.text("scrape_job"), s.text("stage")
        if stage not in STAGES:
            raise InputError(f"unknown stage {stage!r}", s.ref("stage"), expected=" or ".join(STAGES))
        display = _display(target)
        if target not in self.yaml_docs:
            self.yaml_docs[target] = yamlio.load_file(target, display)
        node = scrape_job_node(self.yaml_docs[target], display, job, s.ref("scrape_job"))
        rule_list = node.get(stage)
        if not rule_list:
            raise InputError(f"scrape job {job!r} has no {stage} in {display}", s.ref("stage"))
        rules = rules_from_yaml_list(rule_list, display, flavor)  # type: ignore[arg-type]
        return rules, [RuleSet(target.resolve(), f"{job}/{stage}")]

    def _alloy_file(self, s: _Settings) -> tuple[list[Rule], list[RuleSet]]:
        from ..alloy import graph as alloy_graph
        from .pipeline import alloy_rules

        target = self.file(s, "alloy_file")
        if not s.has("component"):
            raise InputError("alloy_file needs component", s.ref("alloy_file"))
        component = s.text("component")
        graph = self._graph(target)
        comp = graph.components.get(component)
        if comp is None or comp.kind not in ALLOY_RELABEL_KINDS:
            known = sorted(c for c, v in graph.components.items() if v.kind in ALLOY_RELABEL_KINDS)
            raise InputError(f"no {' or '.join(ALLOY_RELABEL_KINDS)} component {component!r} in {_display(target)}",
                             s.ref("component"), expected=", ".join(known))
        return alloy_rules(alloy_graph.relabel_rules(comp)), [RuleSet(target.resolve(), component)]

    def _graph(self, target: Path) -> Any:
        from ..alloy import graph as alloy_graph
        from ..alloy import syntax

        if target not in self.graphs:
            display = _display(target)
            text = yamlio.read_text(target, display)
            self.graphs[target] = alloy_graph.build_graph(syntax.parse(text, display), display)
        return self.graphs[target]


def scrape_configs(doc: Any, name: str) -> list:
    """`config.scrape_configs` of a Helm values file (the vmagent chart's layout)."""
    config = doc.get("config") if isinstance(doc, dict) else None
    jobs = config.get("scrape_configs") if isinstance(config, dict) else None
    if not isinstance(jobs, list):
        raise InputError("no config.scrape_configs list", _ref(name, doc if isinstance(doc, dict) else None),
                         expected="a Helm values file with config.scrape_configs")
    return jobs


def scrape_job_node(doc: Any, name: str, job: str, where: SourceRef) -> dict:
    """The scrape config with `job_name: job` in a values file."""
    jobs = scrape_configs(doc, name)
    for item in jobs:
        if isinstance(item, dict) and item.get("job_name") == job:
            return item
    known = [str(item.get("job_name")) for item in jobs if isinstance(item, dict)]
    raise InputError(f"no scrape job {job!r} in {name}", where, expected=", ".join(known))


# --------------------------------------------------------------------------------------------
# Reading a test file


def load_suite(path: Path, name: str | None = None) -> list[Group]:
    """The groups of a test file, rules loaded and every test parsed; bad input → InputError."""
    name = name or str(path)
    doc = yamlio.load_file(path, name)
    if not isinstance(doc, dict):
        raise InputError("a relabel test file is a mapping", SourceRef(name, 1, 1),
                         expected="rule_files | values_file | alloy_file, tests | groups")
    _check_keys(name, doc, _TOP_KEYS, "a relabel test file")
    if ("tests" in doc) == ("groups" in doc):
        raise InputError("a relabel test file needs exactly one of tests / groups", SourceRef(name, 1, 1))
    sources = _Sources(path.parent)
    if "tests" in doc:
        return [_group(name, sources, _Settings(name, doc), "")]
    groups = doc["groups"]
    if not isinstance(groups, list) or not groups:
        raise InputError("groups must be a non-empty list", _ref(name, doc, "groups"))
    out = []
    for i, g in enumerate(groups):
        _check_keys(name, g, _GROUP_KEYS, "a group")
        if "tests" not in g:
            raise InputError("a group needs tests", _ref(name, groups, i))
        label = g.get("name")
        if label is not None and not isinstance(label, str):
            raise InputError("name must be a string", _ref(name, g, "name"))
        out.append(_group(name, sources, _Settings(name, doc, g), label or f"group {i + 1}"))
    return out


def _group(name: str, sources: _Sources, s: _Settings, label: str) -> Group:
    flavor = str(s.get("flavor", "prometheus"))
    if flavor not in FLAVORS:
        raise InputError(f"unknown flavor {flavor!r}", s.ref("flavor"), expected=" or ".join(FLAVORS))
    drop_meta = s.get("drop_meta_labels", False)
    if not isinstance(drop_meta, bool):
        raise InputError("drop_meta_labels must be true or false", s.ref("drop_meta_labels"))
    rules, sets = sources.rules(s, flavor)
    group = Group(label, sets, rules, flavor, drop_meta)
    tests = s.get("tests")
    if not isinstance(tests, list) or not tests:
        raise InputError("tests must be a non-empty list", s.ref("tests"))
    for i, t in enumerate(tests):
        group.cases.append(_case(name, tests, i, t, drop_meta))
    return group


def _case(name: str, tests: list, i: int, t: Any, drop_meta: bool) -> Case:
    where = _ref(name, tests, i)
    _check_keys(name, t, _TEST_KEYS, "a test")
    if "input" not in t or (("output" in t) == bool(t.get("dropped"))):
        raise InputError("a test needs input and exactly one of output / dropped: true", where)
    inp = parse_series(str(t["input"]), _ref(name, t, "input"))
    out = None if t.get("dropped") else parse_series(str(t["output"]), _ref(name, t, "output"))
    if drop_meta and out and any(k.startswith(META_PREFIX) for k in out):
        raise InputError(f"output lists {META_PREFIX}* labels, which drop_meta_labels removes", _ref(name, t, "output"))
    return Case(str(t.get("name", f"test {i + 1}")), where, inp, out)


# --------------------------------------------------------------------------------------------
# Running


def without_meta(labels: dict[str, str] | None) -> dict[str, str] | None:
    """What Prometheus / vmagent keep of a target after relabel_configs: `__meta_*` are deleted."""
    if labels is None:
        return None
    return {k: v for k, v in labels.items() if not k.startswith(META_PREFIX)}


def run_group(group: Group, prefix: bool = False) -> list[CaseResult]:
    results = []
    for case in group.cases:
        got = apply(group.rules, case.input, group.flavor)  # type: ignore[arg-type]
        if group.drop_meta_labels:
            got = without_meta(got)
        label = f"{group.name}: {case.name}" if prefix else case.name
        results.append(CaseResult(label, case.source, got == case.expected,
                                  format_series(case.expected), format_series(got)))
    return results


def run_suite(path: Path, name: str | None = None) -> list[CaseResult]:
    """Every test of a file; names carry the group's name when the file has groups."""
    groups = load_suite(path, name)
    prefix = len(groups) > 1 or bool(groups and groups[0].name)
    return [r for g in groups for r in run_group(g, prefix)]


def suite_rule_sets(path: Path) -> set[RuleSet]:
    """The shipped relabel sets a test file points at (for the coverage test)."""
    return {rs for g in load_suite(path) for rs in g.sets}
