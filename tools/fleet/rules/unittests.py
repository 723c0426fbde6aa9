"""Run the promtool unit tests (base and override tests) and point failures at the failing case.

Why a runner of our own: an override file is a partial overlay (`delete: true`, replaced rules
that read base rules) that promtool cannot load. A test beside an override names the *source*
files it exercises in `rule_files`; we hand promtool the region's merged rule files built from
those sources instead, so the test checks what vmalert actually evaluates in that region.

promtool reports a failure as `alertname: X, time: T,` or `expr: "E", time: T,`; we look that
case up in the test file so the finding lands on its line, not only on the file.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from .. import yamlio
from ..errors import Finding, Severity, SourceRef
from . import binaries, coverage
from .merge import MergedSet
from .render import rules_text

CHECK = "rules-tests"
_FAILED_ALERT = re.compile(r"^\s*alertname: (?P<name>[^,]+), time: (?P<time>[^,\s]+),")
_FAILED_EXPR = re.compile(r'^\s*expr: (?P<expr>".*"), time: (?P<time>[^,\s]+),')
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: Any) -> float | None:
    """A Prometheus/Go duration (`90m`, `1h30m0s`) in seconds; None if it is not one."""
    text = str(duration)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def _cases(doc: Any):
    """(kind, case node, sequence, index) for every case of a test file (ruamel nodes)."""
    for test in (doc.get("tests") or []) if isinstance(doc, dict) else []:
        for kind in ("alert_rule_test", "promql_expr_test"):
            seq = test.get(kind) if isinstance(test, dict) else None
            for i, case in enumerate(seq or []):
                yield kind, case, seq, i


def _failed(output: str) -> list[tuple[str, str, float | None]]:
    """(kind, alertname or expr, eval time) for each failure promtool printed."""
    out = []
    for line in output.splitlines():
        if m := _FAILED_ALERT.match(line):
            out.append(("alert_rule_test", m["name"].strip(), seconds(m["time"])))
        elif m := _FAILED_EXPR.match(line):
            try:
                expr = json.loads(m["expr"])
            except ValueError:
                expr = m["expr"].strip('"')
            out.append(("promql_expr_test", expr, seconds(m["time"])))
    return out


def locate(test_path: Path, name: str, output: str) -> list[SourceRef]:
    """Source lines of the failing cases in the test file (empty when none can be matched)."""
    try:
        doc = yamlio.load_file(test_path, name)
    except Exception:  # noqa: BLE001 - an unreadable test file is reported by promtool itself
        return []
    refs = []
    for kind, what, at in _failed(output):
        for case_kind, case, seq, i in _cases(doc):
            key = "alertname" if case_kind == "alert_rule_test" else "expr"
            if case_kind == kind and str(case.get(key, "")).strip() == what.strip() \
                    and seconds(case.get("eval_time")) == at:
                refs.append(SourceRef(name, *yamlio.position(seq, i)))
                break
    return sorted(set(refs))


def _findings(result: binaries.UnitTestResult, test_path: Path) -> list[Finding]:
    refs = locate(test_path, result.file, result.output) or [SourceRef(result.file)]
    return [Finding(CHECK, Severity.ERROR, ref, f"promtool test rules failed:\n{result.output[-2000:]}")
            for ref in refs]


def run_base(root: Path) -> list[Finding]:
    """tests/rules/*.yaml as they are (they load base files directly)."""
    findings = []
    paths = coverage.test_files(root)
    for result, path in zip(binaries.promtool_test(paths, root), paths):
        if not result.ok:
            findings += _findings(result, path)
    return findings


def materialise(test: coverage.OverrideTest, root: Path, tmp: Path) -> Path:
    """Copy of the test whose rule_files are the merged files built from the listed sources."""
    assert test.merged is not None
    merged, listed = test.merged, test.listed
    rule_files = []
    for name in sorted(merged.files):
        if merged.files[name] and set(merged.sources(name)) & listed:
            (tmp / name).write_text(rules_text(merged.files[name], merged.sources(name)), encoding="utf-8")
            rule_files.append(name)
    covered = {s for name in rule_files for s in merged.sources(name)}
    rule_files += [str((root / s).resolve()) for s in sorted(listed - covered)]  # promtool reports these
    doc = {**test.doc, "rule_files": rule_files} if isinstance(test.doc, dict) else test.doc
    out = tmp / test.path.name
    out.write_text(json.dumps(doc), encoding="utf-8")
    return out


def run_overrides(root: Path, region_sets: dict[str, MergedSet], cluster_region: dict[str, str]) -> list[Finding]:
    """Tests beside region/cluster overrides, against their region's merged rule set."""
    findings = []
    for test in coverage.override_tests(root, region_sets, cluster_region):
        if test.merged is None:
            findings.append(Finding(CHECK, Severity.ERROR, SourceRef(test.rel),
                                    f"{test.layer[:-1]} {test.label!r} has no rendered region to test against"))
            continue
        with tempfile.TemporaryDirectory(prefix="fleet-ruletest-") as tmp:
            copy = materialise(test, root, Path(tmp))
            (result,) = binaries.promtool_test([copy], Path(tmp))
        if not result.ok:
            result = binaries.UnitTestResult(test.rel, False, result.output.replace(str(copy), test.rel))
            findings += _findings(result, test.path)
    return findings
