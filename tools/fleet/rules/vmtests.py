"""The `rules-vm` check: every unit test of the customer recording rules, run a second time on the
real VictoriaMetrics + vmalert of the regions (fleet.rules.vmengine), compared with the samples
the test expects. promtool proves the rule right in PromQL; this proves the region computes
the same numbers. A difference is a finding at the line of the rule that records the series.

Which tests: those whose rules vmalert evaluates — tests/rules files that load only
base/rules/recording/, and every test beside a region or cluster override (replayed against that
region's merged rules). Platform alert tests are left to promtool: Grafana Cloud evaluates them
with Prometheus' engine, which is promtool's.

A difference the team understands (an engine difference with no effect on what customers see)
is marked in the test file with a comment on or just above the case's `- expr:` line:

    # rules-vm: understood -- <why the engines differ here and why it does not matter>

The mark covers differing *values* only: a series one engine returns and the other does not is
always a finding. The case must still differ on VictoriaMetrics (else a warning: drop the stale
mark); a mark without a reason is an error. promtool reads the file strictly, so the mark is a
comment.

Results are cached by content (binaries, store flags, test file, replayed rules): an unchanged
test costs a hash. Without the binaries the check warns, except under CI=true, where it fails.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import upstream, yamlio
from ..cache import ResultCache, digest
from ..errors import Finding, Severity, SourceRef
from . import coverage, promql, vmengine, vmseries
from .loader import Group, load_rule_file
from .merge import MergedSet
from .render import EVALUATION_INTERVAL
from .unittests import seconds

CHECK = "rules-vm"
ENGINE_VERSION = "rules-vm/2"  # bump when the way tests are replayed changes (invalidates the cache)
RECORDING_SOURCES = "base/rules/recording/"
_MARK = re.compile(r"#\s*rules-vm:\s*understood\b\s*(?:--\s*(?P<reason>\S.*))?")


@dataclass
class Case:
    expr: str
    eval_seconds: float
    expected: list[tuple[dict[str, str], float]]
    where: SourceRef
    understood: str | None = None  # the reason, when marked


@dataclass
class TestGroup:
    interval_seconds: float
    series: list[tuple[str, str, SourceRef]]  # descriptor, values, line
    cases: list[Case] = field(default_factory=list)


def _mark(lines: list[str], line: int) -> tuple[str | None, int]:
    """The understood-mark on the case's line or in the comment lines right above: (reason, line)."""
    candidates = [line]
    i = line - 1
    while i >= 1 and lines[i - 1].strip().startswith("#"):
        candidates.append(i)
        i -= 1
    for number in candidates:
        m = _MARK.search(lines[number - 1]) if 0 < number <= len(lines) else None
        if m:
            return (m["reason"] or "").strip(), number
    return None, 0


def read_test(path: Path, name: str) -> tuple[list[TestGroup], list[Finding]]:
    """The test groups of a promtool test file (only what the replay needs) and reading errors."""
    text = yamlio.read_text(path, name)
    doc = yamlio.load_text(text, name)
    lines = text.splitlines()
    problems: list[Finding] = []
    groups = []
    default_interval = seconds((doc or {}).get("evaluation_interval", "1m")) or 60.0
    for test in (doc.get("tests") or []) if isinstance(doc, dict) else []:
        group = TestGroup(seconds(test.get("interval", "")) or default_interval, [])
        for i, item in enumerate(test.get("input_series") or []):
            group.series.append((str(item.get("series", "")), str(item.get("values", "")),
                                 SourceRef(name, *yamlio.position(test["input_series"], i))))
        cases = test.get("promql_expr_test") or []
        for i, case in enumerate(cases):
            where = SourceRef(name, *yamlio.position(cases, i))
            reason, mark_line = _mark(lines, where.line)
            if reason == "":
                problems.append(Finding(CHECK, Severity.ERROR, SourceRef(name, mark_line),
                                        "`rules-vm: understood` needs a reason after `--`"))
            expected = [(vmseries.labels(s.get("labels", "")) if s.get("labels") else {}, float(s.get("value", 0)))
                        for s in case.get("exp_samples") or []]
            group.cases.append(Case(str(case.get("expr", "")), seconds(case.get("eval_time", "0s")) or 0.0,
                                    expected, where, reason or None))
        groups.append(group)
    return groups, problems


def _show(labels: dict[str, str]) -> str:
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}"


def differences(case: Case, got: list[tuple[dict[str, str], float]]) -> list[tuple[str, str]]:
    """(kind, text) for what VictoriaMetrics returned that the test does not expect; kind is
    `missing`, `unexpected` (a series) or `value`."""
    want = {tuple(sorted(lb.items())): v for lb, v in case.expected}
    have = {tuple(sorted(lb.items())): v for lb, v in got}
    out = []
    for key in sorted(set(want) | set(have)):
        shown = _show(dict(key))
        if key not in have:
            out.append(("missing", f"missing {shown} (expected {want[key]:g})"))
        elif key not in want:
            out.append(("unexpected", f"unexpected {shown} = {have[key]:g}"))
        elif not vmengine.same_value(want[key], have[key]):
            out.append(("value", f"{shown} = {have[key]:g}, expected {want[key]:g}"))
    return out


class Recorded:
    """Where each recorded series is defined, and at which interval its group runs."""

    def __init__(self, groups: list[Group], default_interval: float):
        self.rules = {r.name: (r, seconds(g.settings.get("interval", "")) or default_interval)
                      for g in groups for r in g.rules}

    def names(self, expr: str) -> list[str]:
        try:
            return [u.name for u in promql.selectors(promql.parse(expr)) if u.name in self.rules]
        except ValueError:
            return []

    def source(self, case: Case) -> SourceRef:
        names = self.names(case.expr)
        return self.rules[names[0]][0].source if names else case.where

    def step(self, case: Case, fallback: float) -> float:
        return max([self.rules[n][1] for n in self.names(case.expr)] or [fallback])


def evaluate_group(group: TestGroup, rules: list[Group], recorded: Recorded, store_flags: list[str],
                   replay: vmengine.Replay, vm_binary: str) -> list[tuple[Case, list[tuple[dict[str, str], float]]]]:
    """(case, what VictoriaMetrics returns for it) for every case of one test group, on a fresh store."""
    if not group.cases:
        return []
    start_ms = vmengine.BASE_SECONDS * 1000
    series = [vmseries.series_samples(d, v, start_ms, int(group.interval_seconds * 1000)) for d, v, _ in group.series]
    longest = max(s for _r, s in recorded.rules.values()) if recorded.rules else group.interval_seconds
    end = vmengine.BASE_SECONDS + max(c.eval_seconds for c in group.cases)
    out = []
    with vmengine.store(vm_binary, store_flags) as target:
        target.write(series)
        replay.run(target, rules, vmengine.BASE_SECONDS - longest, end)
        for case in group.cases:
            out.append((case, target.instant(case.expr, vmengine.BASE_SECONDS + case.eval_seconds,
                                              recorded.step(case, group.interval_seconds))))
    return out


def run_group(group: TestGroup, rules: list[Group], recorded: Recorded, store_flags: list[str],
              replay: vmengine.Replay, vm_binary: str) -> list[tuple[Case, list[tuple[str, str]]]]:
    """(case, its differences from the expected samples) for every case of one test group."""
    return [(case, differences(case, got))
            for case, got in evaluate_group(group, rules, recorded, store_flags, replay, vm_binary)]


def _unreadable(group: TestGroup) -> list[Finding]:
    """An input series the replay cannot write (e.g. a native histogram), at its line."""
    out = []
    for descriptor, values, where in group.series:
        try:
            vmseries.labels(descriptor)
            vmseries.expand(values)
        except vmseries.NotationError as exc:
            out.append(Finding(CHECK, Severity.ERROR, where, f"cannot replay on VictoriaMetrics: {exc}"))
    return out


def findings_for(name: str, groups: list[TestGroup], rules: list[Group], store_flags: list[str],
                 replay: vmengine.Replay, vm_binary: str, default_interval: float) -> list[Finding]:
    """Run every test group of one file; a difference becomes a finding at the rule's line."""
    recorded = Recorded(rules, default_interval)
    version = upstream.version("victoria-metrics")
    findings = []
    for group in groups:
        unreadable = _unreadable(group)
        if unreadable:
            findings += unreadable
            continue
        results = run_group(group, rules, recorded, store_flags, replay, vm_binary)
        for case, diffs in results:
            at = f"`{case.expr.strip()[:120]}` at {case.eval_seconds:g}s"
            covered = case.understood is not None and all(kind == "value" for kind, _ in diffs)
            if diffs and not covered:
                findings.append(Finding(
                    CHECK, Severity.ERROR, recorded.source(case),
                    f"VictoriaMetrics {version} (vmalert replay) disagrees with {case.where}: {at}: "
                    + "; ".join(text for _, text in diffs),
                    "fix the rule so both engines agree, or mark the case `# rules-vm: understood -- <reason>`"))
            elif not diffs and case.understood is not None:
                findings.append(Finding(CHECK, Severity.WARNING, case.where,
                                        f"marked `rules-vm: understood` but VictoriaMetrics {version} now agrees: {at}",
                                        "remove the mark"))
    return findings


# --- which tests, which rules, which flags ------------------------------------------------------

def _flags_file(root: Path, region: str, rel: str) -> list[str]:
    path = root / "rendered" / "regions" / region / rel
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def store_flags(root: Path, region: str) -> list[str]:
    """The region's victoria-metrics flags that shape query results."""
    return [f for f in _flags_file(root, region, "victoria-metrics/victoria-metrics.flags") if f.startswith(vmengine.QUERY_FLAGS)]


def evaluation_interval(root: Path, region: str) -> str:
    for flag in _flags_file(root, region, "vmalert/vmalert.flags"):
        if flag.startswith("-evaluationInterval="):
            return flag.split("=", 1)[1]
    return EVALUATION_INTERVAL


@dataclass
class Job:
    """One test file to replay, with the rule groups vmalert would evaluate for it."""

    path: Path
    name: str
    rules: list[Group]
    region: str


def base_jobs(root: Path, first_region: str) -> list[Job]:
    jobs = []
    for path in coverage.test_files(root):
        name = str(path.relative_to(root))
        doc = yamlio.plain(yamlio.load_file(path, name))
        count = len(doc.get("rule_files") or []) if isinstance(doc, dict) else 0
        listed = sorted(coverage.loaded_files(path, root, doc)) if isinstance(doc, dict) else []
        if listed and len(listed) == count and all(f.startswith(RECORDING_SOURCES) for f in listed):
            rules = [g for f in listed for g in load_rule_file(root / f, root).groups]
            jobs.append(Job(path, name, rules, first_region))
    return jobs


def override_jobs(root: Path, region_sets: dict[str, MergedSet], cluster_region: dict[str, str]) -> list[Job]:
    jobs = []
    for test in coverage.override_tests(root, region_sets, cluster_region):
        if test.merged is None:
            continue  # rules-tests reports a test without a region
        merged = test.merged
        rules = [g for n in sorted(merged.files) if set(merged.sources(n)) & test.listed for g in merged.files[n]]
        jobs.append(Job(test.path, test.rel, rules, test.region))
    return jobs


def _missing(exc: Exception) -> Finding:
    in_ci = os.environ.get("CI", "").lower() == "true"
    return Finding(CHECK, Severity.ERROR if in_ci else Severity.WARNING, SourceRef("tools/upstream.lock"),
                   f"rule tests not run on VictoriaMetrics: {exc}",
                   "run `make setup` (builds the binaries pinned in tools/upstream.lock)")


def _to_json(f: Finding) -> dict[str, Any]:
    return {"severity": f.severity.value, "file": f.source.file, "line": f.source.line, "col": f.source.col,
            "message": f.message, "hint": f.hint}


def _from_json(d: dict[str, Any]) -> Finding:
    return Finding(CHECK, Severity(d["severity"]), SourceRef(d["file"], d["line"], d["col"]), d["message"], d["hint"])


def run(root: Path, jobs: list[Job]) -> list[Finding]:
    """Every job on the real engines, cached by everything that decides its result."""
    try:
        vm_binary, vmalert = upstream.binary("victoria-metrics"), upstream.binary("vmalert")
    except upstream.MissingUpstream as exc:
        return [_missing(exc)] if jobs else []
    cache = ResultCache(root, "rules-vm")
    findings: list[Finding] = []
    tools = [f"{p}:{Path(p).stat().st_mtime_ns}" for p in (vm_binary, vmalert)]
    for job in jobs:
        flags, interval = store_flags(root, job.region), evaluation_interval(root, job.region)
        try:
            groups, problems = read_test(job.path, job.name)
        except vmseries.NotationError as exc:
            findings.append(Finding(CHECK, Severity.ERROR, SourceRef(job.name), f"cannot read the test: {exc}"))
            continue
        key = digest(ENGINE_VERSION, *tools, *flags, interval, job.path.read_bytes(),
                     *(f"{g.name}\n{g.settings}\n{[r.data for r in g.rules]}" for g in job.rules))
        cached = cache.get(key)
        if cached is None:
            replay = vmengine.Replay(vmalert, interval)
            try:
                cached = [_to_json(f) for f in findings_for(job.name, groups, job.rules, flags, replay, vm_binary,
                                                             seconds(interval) or 60.0)]
            except vmengine.EngineError as exc:
                findings.append(Finding(CHECK, Severity.ERROR, SourceRef(job.name), f"VictoriaMetrics replay failed: {exc}"))
                continue
            cache.put(key, cached)
        findings += problems + [_from_json(d) for d in cached]
    cache.save()
    return findings
