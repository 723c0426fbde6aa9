"""Which rules the promtool unit tests exercise, and where those tests live.

Why: "the unit tests cover every shipped rule" is a property of the repo that drifts silently;
this makes it a finding at the untested rule's line. Tests live in two places:

    tests/rules/*.yaml                     base recording rules and platform alerts
    regions/<r>/rules/tests/*.yaml         rules a region override adds or replaces
    clusters/<id>/rules/tests/*.yaml       rules a cluster override adds or replaces

A rule is covered when one test file both loads the rule's source file (`rule_files`) and has a
case that *expects output* from it: an `alert_rule_test` for the alert with non-empty
`exp_alerts`, or a `promql_expr_test` selecting the recorded name with non-empty `exp_samples`.
A case that only asserts silence proves nothing about the rule producing anything.
A merged rule that is still the base rule is covered by the base tests.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .. import yamlio
from ..errors import Finding, Severity
from . import promql
from .loader import Rule, RuleFile

if TYPE_CHECKING:
    from .merge import MergedSet

TESTS_DIR = Path("tests/rules")
OVERRIDE_TESTS = "tests"  # beside an override's recording/ folder: <layer>/rules/tests/


@dataclass
class TestFile:
    """What one unit-test file loads (repo-relative rule files) and expects output from."""

    path: str
    loaded: set[str] = field(default_factory=set)
    alerts: set[str] = field(default_factory=set)
    records: set[str] = field(default_factory=set)


def test_files(root: Path, folder: Path = TESTS_DIR) -> list[Path]:
    where = root / folder
    return sorted(p for p in where.glob("*.yaml")) if where.is_dir() else []


def override_test_dir(source_file: str) -> Path:
    """regions/<r>/rules/recording/x.yaml → regions/<r>/rules/tests (same for clusters)."""
    return Path(PurePosixPath(source_file).parent.parent / OVERRIDE_TESTS)


def override_test_files(root: Path) -> list[Path]:
    """Every test file beside a region or cluster override, sorted."""
    found = []
    for layer in ("regions", "clusters"):
        found += sorted((root / layer).glob(f"*/rules/{OVERRIDE_TESTS}/*.yaml"))
    return found


@dataclass
class OverrideTest:
    """One test beside a region or cluster override and the region rule set it runs against.

    `merged` is None when the override's region is unknown (a cluster without a region, or a
    region with no rendered rule set): then the test cannot run, and `doc`/`listed` stay empty.
    """

    path: Path
    rel: str
    layer: str  # "regions" or "clusters"
    label: str  # the region or cluster folder name
    region: str
    merged: MergedSet | None
    doc: Any = None  # the test file as plain data
    listed: set[str] = field(default_factory=set)  # repo-relative rule files it loads


def override_tests(root: Path, region_sets: dict[str, MergedSet],
                   cluster_region: dict[str, str]) -> Iterator[OverrideTest]:
    """Every override test with its region's merged rule set and the sources it loads.

    Why one place: promtool (rules-tests) and VictoriaMetrics (rules-vm) must run the same test
    against the same region's rules; a test under clusters/<c>/ belongs to the cluster's region.
    """
    for path in override_test_files(root):
        rel = path.relative_to(root)
        layer, label = rel.parts[0], rel.parts[1]
        region = label if layer == "regions" else cluster_region.get(label, "")
        merged = region_sets.get(region)
        if merged is None:
            yield OverrideTest(path, str(rel), layer, label, region, None)
            continue
        doc = yamlio.plain(yamlio.load_file(path, str(rel)))
        listed = loaded_files(path, root, doc) if isinstance(doc, dict) else set()
        yield OverrideTest(path, str(rel), layer, label, region, merged, doc, listed)


def loaded_files(path: Path, root: Path, doc: dict) -> set[str]:
    out = set()
    for rf in doc.get("rule_files") or []:
        resolved = (path.parent / str(rf)).resolve()
        try:
            out.add(str(resolved.relative_to(root.resolve())))
        except ValueError:
            continue
    return out


def _expected_names(case: dict) -> set[str]:
    try:
        return {u.name for u in promql.selectors(promql.parse(str(case.get("expr", "")))) if u.name}
    except ValueError:
        return set()


def read_test(path: Path, root: Path) -> TestFile:
    """One unit-test file: only cases with expected output count as exercising a rule."""
    name = str(path.relative_to(root))
    doc = yamlio.plain(yamlio.load_file(path, name))
    out = TestFile(name)
    if not isinstance(doc, dict):
        return out
    out.loaded = loaded_files(path, root, doc)
    for test in doc.get("tests") or []:
        for case in test.get("alert_rule_test") or []:
            if case.get("alertname") and case.get("exp_alerts"):
                out.alerts.add(str(case["alertname"]))
        for case in test.get("promql_expr_test") or []:
            if case.get("exp_samples"):
                out.records |= _expected_names(case)
    return out


def collect(root: Path, folder: Path = TESTS_DIR) -> list[TestFile]:
    return [read_test(p, root) for p in test_files(root, folder)]


def _problem(rule: Rule, source_file: str, tests: list[TestFile], where: str) -> str:
    loading = [t for t in tests if source_file in t.loaded]
    if not loading:
        return f"{rule.kind} {rule.name!r}: no test in {where} loads {source_file}"
    names = (lambda t: t.alerts) if rule.kind == "alert" else (lambda t: t.records)
    if any(rule.name in names(t) for t in loading):
        return ""
    what = "alert_rule_test with exp_alerts" if rule.kind == "alert" else "promql_expr_test with exp_samples"
    return f"{rule.kind} {rule.name!r} has no {what} in a test of {where} that loads {source_file}"


def _finding(rule: Rule, message: str, check: str) -> Finding:
    return Finding(check, Severity.ERROR, rule.source, message,
                   "add a case with input series that makes it fire / produce a sample")


def uncovered(rule_files: list[RuleFile], tests: list[TestFile], check: str = "rules-tests") -> list[Finding]:
    """Findings for each rule of these files no test in tests/rules exercises."""
    findings = []
    for rule_file in rule_files:
        for group in rule_file.groups:
            for rule in group.rules:
                problem = _problem(rule, rule_file.path, tests, str(TESTS_DIR))
                if problem:
                    findings.append(_finding(rule, problem, check))
    return findings


def uncovered_overrides(rules: list[Rule], root: Path, check: str = "rules-tests") -> list[Finding]:
    """Findings for merged rules an override added or replaced that no test beside it exercises.

    Rules whose source is under base/ are the base rules unchanged: the base tests cover them.
    """
    findings = []
    by_dir: dict[Path, list[TestFile]] = {}
    for rule in rules:
        source_file = rule.source.file
        if source_file.startswith("base/"):
            continue
        folder = override_test_dir(source_file)
        if folder not in by_dir:
            by_dir[folder] = collect(root, folder)
        problem = _problem(rule, source_file, by_dir[folder], f"{folder}/")
        if problem:
            findings.append(_finding(rule, problem, check))
    return findings
