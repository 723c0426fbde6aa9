"""A lint run's outcome → text, JSON, GitHub annotations, SARIF 2.1.0 or JUnit XML.

Every format is a writer with one signature, `write(report, out)`, registered in `WRITERS`
(as kubeconform's pkg/output): the command builds one `Report` and never knows the format.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, TextIO

from .errors import Finding, SourceRef


@dataclass(frozen=True)
class Suppressed:
    """A finding silenced by an inline `fleet:ignore` comment, with that comment's reason and place."""

    finding: Finding
    reason: str
    comment: SourceRef


@dataclass(frozen=True)
class Report:
    """What a lint run found: failing-or-not findings, the silenced ones, and the checks that ran
    (name → one-line description, for SARIF rules and JUnit suites)."""

    findings: list[Finding]
    suppressed: list[Suppressed] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)
    root: Path | None = None


def _where(source: SourceRef) -> str:
    return str(source) if source.line else source.file


def write_text(report: Report, out: TextIO) -> None:
    for f in report.findings:
        hint = f" (hint: {f.hint})" if f.hint else ""
        out.write(f"{f.source}: {f.severity.value}: [{f.check}] {f.message}{hint}\n")


def _finding_json(f: Finding) -> dict:
    return {"check": f.check, "severity": f.severity.value, "file": f.source.file, "line": f.source.line,
            "col": f.source.col, "message": f.message, "hint": f.hint, "details": f.details}


def write_json(report: Report, out: TextIO) -> None:
    suppressed = [dict(_finding_json(s.finding), reason=s.reason, suppressedAt=str(s.comment))
                  for s in report.suppressed]
    json.dump({"findings": [_finding_json(f) for f in report.findings], "suppressed": suppressed},
              out, indent=2, sort_keys=True, default=str)
    out.write("\n")


def write_github(report: Report, out: TextIO) -> None:
    """GitHub Actions workflow commands: annotations on the source line of the PR diff."""
    level = {"error": "error", "warning": "warning", "info": "notice"}
    for f in report.findings:
        msg = f.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        out.write(f"::{level[f.severity.value]} file={f.source.file},line={f.source.line or 1},"
                  f"col={f.source.col or 1},title={f.check}::{msg}\n")


SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _artifact_uri(file: str, root: Path | None) -> str:
    """Repo-relative POSIX path (what code scanning maps onto the checkout); a file outside the
    repo (e.g. a --crds folder) becomes an absolute file: URI."""
    path = Path(file)
    if not path.is_absolute():
        return path.as_posix()
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path.as_uri()


def _sarif_location(source: SourceRef, root: Path | None) -> dict:
    physical: dict = {"artifactLocation": {"uri": _artifact_uri(source.file, root)}}
    if not Path(source.file).is_absolute():
        physical["artifactLocation"]["uriBaseId"] = "%SRCROOT%"
    if source.line:
        physical["region"] = {"startLine": source.line, **({"startColumn": source.col} if source.col else {})}
    return {"physicalLocation": physical}


def _sarif_result(f: Finding, rule_index: dict[str, int], root: Path | None) -> dict:
    result = {"ruleId": f.check, "level": SARIF_LEVEL[f.severity.value],
              "message": {"text": f.message + (f"\nHint: {f.hint}" if f.hint else "")},
              "locations": [_sarif_location(f.source, root)]}
    if f.check in rule_index:
        result["ruleIndex"] = rule_index[f.check]
    return result


def sarif_document(report: Report) -> dict:
    """One run, one rule per check that ran (and any check a finding names), results at the source line."""
    names = dict(report.checks)
    for f in [*report.findings, *(s.finding for s in report.suppressed)]:
        names.setdefault(f.check, "")
    rules = [{"id": name, "shortDescription": {"text": desc or name}} for name, desc in sorted(names.items())]
    rule_index = {rule["id"]: i for i, rule in enumerate(rules)}
    results = [_sarif_result(f, rule_index, report.root) for f in report.findings]
    for s in report.suppressed:
        result = _sarif_result(s.finding, rule_index, report.root)
        result["suppressions"] = [{"kind": "inSource", "justification": s.reason,
                                   "location": _sarif_location(s.comment, report.root)}]
        results.append(result)
    try:
        version = metadata.version("starform-fleet")
    except metadata.PackageNotFoundError:
        version = "0"
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "fleet", "version": version, "rules": rules}},
                      "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "the fleet repo's root"}}},
                      "results": results}]}


def write_sarif(report: Report, out: TextIO) -> None:
    json.dump(sarif_document(report), out, indent=2, sort_keys=True)
    out.write("\n")


def junit_document(report: Report) -> ET.Element:
    """One <testsuite> per check; a failing <testcase> per finding (its <failure> names file:line),
    a skipped one per suppressed finding, one passing testcase for a check with none."""
    by_check: dict[str, list] = {name: [] for name in report.checks}
    for f in report.findings:
        by_check.setdefault(f.check, []).append(f)
    for s in report.suppressed:
        by_check.setdefault(s.finding.check, []).append(s)
    suites = ET.Element("testsuites", name="fleet lint")
    total = failed = 0
    for name in sorted(by_check):
        items = by_check[name]
        failures = sum(isinstance(i, Finding) for i in items)
        suite = ET.SubElement(suites, "testsuite", name=name, tests=str(max(len(items), 1)),
                              failures=str(failures), errors="0", skipped=str(len(items) - failures))
        if not items:
            ET.SubElement(suite, "testcase", classname=f"fleet.{name}", name=report.checks.get(name) or name)
        for item in items:
            finding = item if isinstance(item, Finding) else item.finding
            where = _where(finding.source)
            case = ET.SubElement(suite, "testcase", classname=f"fleet.{name}", name=f"{where}: {finding.message[:120]}",
                                 file=finding.source.file, **({"line": str(finding.source.line)} if finding.source.line else {}))
            if isinstance(item, Finding):
                failure = ET.SubElement(case, "failure", type=finding.severity.value, message=f"{where}: {finding.message}")
                failure.text = f"{where}: {finding.severity.value}: {finding.message}" + (f"\nhint: {finding.hint}" if finding.hint else "")
            else:
                ET.SubElement(case, "skipped", message=f"suppressed at {item.comment}: {item.reason}")
        total += max(len(items), 1)
        failed += failures
    suites.set("tests", str(total))
    suites.set("failures", str(failed))
    return suites


def write_junit(report: Report, out: TextIO) -> None:
    tree = junit_document(report)
    ET.indent(tree)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(ET.tostring(tree, encoding="unicode"))
    out.write("\n")


Writer = Callable[[Report, TextIO], None]
WRITERS: dict[str, Writer] = {"text": write_text, "json": write_json, "github": write_github,
                              "sarif": write_sarif, "junit": write_junit}


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(set(findings), key=Finding.sort_key)
