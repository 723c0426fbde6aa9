"""Run the real rule tools — `promtool check rules`, `vmalert -dryRun`, `promtool test rules` —
and map their complaints back to source lines.

Why real binaries: Grafana Cloud (Mimir) speaks PromQL, vmalert speaks MetricsQL; our recording
rules must be accepted by both. The tools see generated (merged) files, so errors name a group
and a rule; we look that rule up in the merged set, which remembers which source file and line
it came from.

The binaries are the pinned builds of tools/upstream.lock (`fleet.upstream`): promtool of the
Prometheus release Alloy vendors, vmalert of the VictoriaMetrics release the fleet deploys.
vmalert note: `-dryRun -rule=FILE` validates recording rules without `-datasource.url`; it stops
at the first failing file, so it runs once per file.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import upstream, yamlio
from ..cache import ResultCache, digest
from ..errors import Finding, InputError, Severity, SourceRef
from .loader import Group, Rule
from .render import rules_text

TIMEOUT_SECONDS = 60

_PROMTOOL_RULE = re.compile(r'^(?P<file>[^:]+): (?:\d+:\d+: )?group "(?P<group>[^"]*)", rule (?P<index>\d+), '
                            r'(?:"(?P<name>[^"]*)": )?(?P<msg>.*)$')
_PROMTOOL_FILE = re.compile(r"^(?P<file>[^\s:]+\.ya?ml): (?P<msg>.*)$")
# v1.150: `invalid group "G" in file "F": invalid expression for rule "NAME": ...` (1.79.5 wrote
# `rule "G"."NAME"`, still accepted)
_VMALERT_RULE = re.compile(r'invalid group "(?P<group>[^"]*)" in file "[^"]*": '
                           r'(?P<msg>.*?rule (?:"(?P=group)"\.)?"(?P<name>[^"]*)".*)$')


MissingBinary = upstream.MissingUpstream


@dataclass
class RuleSet:
    """One file to check: its name (as reported) and the groups (with source positions)."""

    name: str
    groups: list[Group]

    def fallback_source(self) -> SourceRef:
        for group in self.groups:
            return group.source
        return SourceRef(self.name)

    def find(self, group_name: str, index: int | None = None, rule_name: str | None = None) -> tuple[Group | None, Rule | None]:
        for group in self.groups:
            if group.name != group_name:
                continue
            if rule_name:
                for rule in group.rules:
                    if rule.name == rule_name:
                        return group, rule
            if index is not None and 0 < index <= len(group.rules):
                return group, group.rules[index - 1]
            return group, None
        return None, None


def binary(name: str) -> str:
    """The pinned build of `name` (MissingBinary until `make setup` built it)."""
    return upstream.binary(name)


def _where(ruleset: RuleSet, group_name: str, index: int | None, rule_name: str | None, message: str) -> SourceRef:
    group, rule = ruleset.find(group_name, index, rule_name)
    if rule is not None:
        return rule.expr_source if ("expr" in message or "parse" in message) else rule.source
    if group is not None:
        return group.source
    return ruleset.fallback_source()


def _write(folder: Path, rulesets: list[RuleSet]) -> dict[str, RuleSet]:
    by_file: dict[str, RuleSet] = {}
    for i, ruleset in enumerate(rulesets):
        path = folder / f"{i:03d}.yaml"
        path.write_text(rules_text(ruleset.groups, [ruleset.name]), encoding="utf-8")
        by_file[path.name] = ruleset
    return by_file


def promtool_check(rulesets: list[RuleSet], check: str = "rules-promtool") -> list[Finding]:
    """`promtool check rules` over the rule sets; each error becomes a finding at its source rule."""
    if not rulesets:
        return []
    tool = binary("promtool")
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="fleet-promtool-") as tmp:
        by_file = _write(Path(tmp), rulesets)
        proc = subprocess.run([tool, "check", "rules", *sorted(by_file)], cwd=tmp, capture_output=True,
                              text=True, timeout=TIMEOUT_SECONDS)
        if proc.returncode == 0:
            return []
        for line in (proc.stdout + "\n" + proc.stderr).splitlines():
            line = line.strip()
            m = _PROMTOOL_RULE.match(line)
            if m and m["file"] in by_file:
                rs = by_file[m["file"]]
                msg = m["msg"]
                findings.append(Finding(check, Severity.ERROR, _where(rs, m["group"], int(m["index"]), m["name"], msg),
                                        f"promtool check rules: group {m['group']!r}, {m['name'] or 'rule ' + m['index']}: {msg}"))
                continue
            m = _PROMTOOL_FILE.match(line)
            if m and m["file"] in by_file:
                rs = by_file[m["file"]]
                findings.append(Finding(check, Severity.ERROR, rs.fallback_source(), f"promtool check rules: {m['msg']}"))
        if not findings:
            findings.append(Finding(check, Severity.ERROR, rulesets[0].fallback_source(),
                                    f"promtool check rules failed: {(proc.stdout + proc.stderr).strip()[-500:]}"))
    return findings


def vmalert_check(rulesets: list[RuleSet], check: str = "rules-vmalert") -> list[Finding]:
    """`vmalert -dryRun -rule=FILE` per rule set (MetricsQL must accept our PromQL too)."""
    if not rulesets:
        return []
    tool = binary("vmalert")
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="fleet-vmalert-") as tmp:
        by_file = _write(Path(tmp), rulesets)
        for file_name, rs in sorted(by_file.items()):
            proc = subprocess.run([tool, "-dryRun", f"-rule={file_name}", "-loggerLevel=ERROR"], cwd=tmp,
                                  capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
            if proc.returncode == 0:
                continue
            text = (proc.stdout + "\n" + proc.stderr).strip()
            found = False
            for line in text.splitlines():
                m = _VMALERT_RULE.search(line)
                if m:
                    found = True
                    findings.append(Finding(check, Severity.ERROR, _where(rs, m["group"], None, m["name"], "expr"),
                                            f"vmalert -dryRun: {m['msg'].strip()}"))
            if not found:
                findings.append(Finding(check, Severity.ERROR, rs.fallback_source(),
                                        f"vmalert -dryRun failed: {text[-500:]}"))
    return findings


@dataclass
class UnitTestResult:
    file: str
    ok: bool
    output: str


def promtool_test(test_files: list[Path], cwd: Path) -> list[UnitTestResult]:
    """`promtool test rules` per unit-test file (paths inside resolve relative to each file).

    A passing run is remembered by the content of the test and of every rule file it loads
    (`.cache/promtool-test.json`), so an unchanged test costs a hash, not a promtool start."""
    tool = binary("promtool")
    cache = ResultCache(cwd, "promtool-test")
    results = []
    for path in test_files:
        name = str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)
        key = _test_key(tool, path)
        if key is not None and cache.get(key) is not None:
            results.append(UnitTestResult(name, True, cache.get(key)))
            continue
        proc = subprocess.run([tool, "test", "rules", str(path)], cwd=cwd, capture_output=True, text=True,
                              timeout=TIMEOUT_SECONDS * 3)
        result = UnitTestResult(name, proc.returncode == 0, (proc.stdout + proc.stderr).strip())
        if result.ok and key is not None:
            cache.put(key, result.output)
        results.append(result)
    cache.save()
    return results


def _test_key(tool: str, test_path: Path) -> str | None:
    """Digest of promtool, the test file and the rule files it names; None if unreadable."""
    try:
        text = test_path.read_bytes()
        doc = yamlio.plain(yamlio.load_text(yamlio.decode_utf8(text, str(test_path)), str(test_path))) or {}
        parts: list[bytes | str] = [tool, str(Path(tool).stat().st_mtime_ns), text]
        for pattern in doc.get("rule_files") or []:
            base = Path(pattern) if Path(pattern).is_absolute() else test_path.parent / pattern
            matches = sorted(base.parent.glob(base.name)) if any(c in base.name for c in "*?[") else [base]
            for match in matches:
                parts.append(match.read_bytes())
    except (OSError, ValueError, AttributeError, TypeError, InputError):
        return None
    return digest(*parts)
