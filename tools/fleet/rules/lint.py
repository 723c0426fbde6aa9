"""The rule checks as the lint plug-ins run them: over every region's merged rule set and over
the platform alerts, with findings at source lines and duplicates (a base rule merged into several
regions) reported once.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import Finding, Severity, SourceRef
from . import binaries, coverage, static, unittests, vmtests
from .layout import base_recording, discover_regions, merged_region, platform_alerts
from .loader import RuleFile
from .merge import MergedSet
from .producers import load_catalogue


def region_sets(root: Path, fleet: Any = None, cache: dict | None = None) -> dict[str, MergedSet]:
    """region → merged recording rules; with no region at all, the base alone under "(base)"."""
    cache = cache if cache is not None else {}
    if "rules.region_sets" not in cache:
        regions = discover_regions(root, fleet) or {"(base)": []}
        out = {}
        for region, clusters in sorted(regions.items()):
            out[region] = merged_region(root, region, clusters) if region != "(base)" else merged_region(root, "", [])
        cache["rules.region_sets"] = out
    return cache["rules.region_sets"]


def alert_files(root: Path, cache: dict | None = None) -> list[RuleFile]:
    cache = cache if cache is not None else {}
    if "rules.alerts" not in cache:
        cache["rules.alerts"] = platform_alerts(root)
    return cache["rules.alerts"]


def as_check(name: str, findings: list[Finding]) -> list[Finding]:
    """`findings` under the lint plug-in `name` that ran them: the name `--only`, SARIF rule ids,
    JUnit suites and `fleet:ignore` know. The rule check that found each (rules-promql,
    rules-promtool, ...) stays in details["rule_check"]."""
    return [f if f.check == name else replace(f, check=name, details={**f.details, "rule_check": f.check})
            for f in findings]


def static_findings(root: Path, fleet: Any = None, cache: dict | None = None) -> list[Finding]:
    """Every static check on every region's customer rules and on the platform alerts."""
    catalogue = load_catalogue(root)
    findings: list[Finding] = []
    for merged in region_sets(root, fleet, cache).values():
        findings += static.run_all(static.PlaneRules("customer", merged.rules()), catalogue)
    alerts = [(g, r) for f in alert_files(root, cache) for g in f.groups for r in g.rules]
    findings += static.run_all(static.PlaneRules("platform", alerts), catalogue)
    return static.dedupe(findings)


def _tool_missing(check: str, exc: Exception, root_file: str) -> Finding:
    return Finding(check, Severity.ERROR, SourceRef(root_file), str(exc),
                   "run `make setup` (builds the binaries pinned in tools/upstream.lock)")


def syntax_findings(root: Path, fleet: Any = None, cache: dict | None = None) -> list[Finding]:
    """promtool check rules (all rule files) and vmalert -dryRun (recording rules) via the binaries."""
    findings: list[Finding] = []
    recording = [binaries.RuleSet(f"{region}/{name}", groups)
                 for region, merged in region_sets(root, fleet, cache).items()
                 for name, groups in sorted(merged.files.items()) if groups]
    alerts = [binaries.RuleSet(f.path, f.groups) for f in alert_files(root, cache) if f.groups]
    try:
        findings += binaries.promtool_check(recording + alerts)
    except binaries.MissingBinary as exc:
        findings.append(_tool_missing("rules-promtool", exc, "tools/upstream.lock"))
    try:
        findings += binaries.vmalert_check(recording)
    except binaries.MissingBinary as exc:
        findings.append(_tool_missing("rules-vmalert", exc, "tools/upstream.lock"))
    return static.dedupe(findings)


def _cluster_regions(root: Path, fleet: Any) -> dict[str, str]:
    return {c: r for r, clusters in discover_regions(root, fleet).items() for c in clusters}


def unit_test_findings(root: Path, cache: dict | None = None, fleet: Any = None) -> list[Finding]:
    """promtool test rules (tests/rules and the tests beside overrides), and every rule covered.

    Coverage spans every rendered rule set: base rules by tests/rules, each rule a region or
    cluster override adds or replaces by a test beside that override (see fleet.rules.coverage).
    """
    findings: list[Finding] = []
    sets = region_sets(root, fleet, cache)
    try:
        findings += unittests.run_base(root)
        findings += unittests.run_overrides(root, sets, _cluster_regions(root, fleet))
    except binaries.MissingBinary as exc:
        findings.append(_tool_missing("rules-tests", exc, "tools/upstream.lock"))
    shipped = base_recording(root) + alert_files(root, cache)
    findings += coverage.uncovered(shipped, coverage.collect(root))
    for merged in sets.values():
        findings += coverage.uncovered_overrides([r for _g, r in merged.rules()], root)
    return static.dedupe(findings)


def vm_findings(root: Path, cache: dict | None = None, fleet: Any = None) -> list[Finding]:
    """The customer rule tests once more on the real VictoriaMetrics + vmalert (fleet.rules.vmtests)."""
    sets = region_sets(root, fleet, cache)
    first_region = sorted(sets)[0] if sets else ""
    jobs = vmtests.base_jobs(root, first_region) + vmtests.override_jobs(root, sets, _cluster_regions(root, fleet))
    return static.dedupe(vmtests.run(root, jobs))
