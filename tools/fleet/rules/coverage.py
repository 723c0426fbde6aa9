"""Which shipped rules the promtool unit tests (tests/rules/*.yaml) exercise.

Why: "the unit tests cover every shipped rule" is a property of the repo that drifts silently;
this makes it a finding at the untested rule's line. An alert is covered when some
`alert_rule_test` names it; a recording rule when some `promql_expr_test` expression selects it
by name. The test file must also load the rule's file (`rule_files`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import yamlio
from ..errors import Finding, Severity
from . import promql
from .loader import RuleFile

TESTS_DIR = Path("tests/rules")


@dataclass
class Coverage:
    alerts: set[str] = field(default_factory=set)
    records: set[str] = field(default_factory=set)
    loaded: set[str] = field(default_factory=set)  # repo-relative rule files loaded by some test


def test_files(root: Path) -> list[Path]:
    folder = root / TESTS_DIR
    return sorted(p for p in folder.glob("*.yaml")) if folder.is_dir() else []


def collect(root: Path) -> Coverage:
    """Read every unit-test file and note what it loads and exercises."""
    cov = Coverage()
    for path in test_files(root):
        doc = yamlio.plain(yamlio.load_file(path, str(path.relative_to(root))))
        if not isinstance(doc, dict):
            continue
        for rf in doc.get("rule_files") or []:
            resolved = (path.parent / str(rf)).resolve()
            try:
                cov.loaded.add(str(resolved.relative_to(root.resolve())))
            except ValueError:
                continue
        for test in doc.get("tests") or []:
            for case in test.get("alert_rule_test") or []:
                if case.get("alertname"):
                    cov.alerts.add(str(case["alertname"]))
            for case in test.get("promql_expr_test") or []:
                try:
                    ast = promql.parse(str(case.get("expr", "")))
                except ValueError:
                    continue
                cov.records.update(u.name for u in promql.selectors(ast) if u.name)
    return cov


def uncovered(rule_files: list[RuleFile], cov: Coverage, check: str = "rules-tests") -> list[Finding]:
    """Findings for each rule no unit test exercises (or whose file no test loads)."""
    findings = []
    for rule_file in rule_files:
        for group in rule_file.groups:
            for rule in group.rules:
                names = cov.alerts if rule.kind == "alert" else cov.records
                if rule_file.path not in cov.loaded:
                    findings.append(Finding(check, Severity.ERROR, rule.source,
                                            f"{rule.kind} {rule.name!r}: no test in {TESTS_DIR} loads {rule_file.path}"))
                elif rule.name not in names:
                    what = "alert_rule_test" if rule.kind == "alert" else "promql_expr_test"
                    findings.append(Finding(check, Severity.ERROR, rule.source,
                                            f"{rule.kind} {rule.name!r} has no {what} in {TESTS_DIR}",
                                            "add a case with input series that makes it fire / produce a sample"))
    return findings
