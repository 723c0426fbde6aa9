"""Inline suppressions: `# fleet:ignore <check> -- <reason>` in an input file silences one finding.

A directive on a line with content silences that line's finding; a directive alone on its line
silences the next line's. The reason is required (review sees why), so a directive without one
silences nothing and is an error itself; one that silences nothing is a warning (stale). Only the
inputs hold directives: `rendered/` is generated, a comment there would be lost on the next render.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import Finding, Severity, SourceRef
from .report import Suppressed

NAME = "suppression"
DESCRIPTION = "inline `# fleet:ignore <check> -- <reason>` comments: reason given, check known, still used"

#: Folders whose files may carry directives (inputs; never rendered/).
INPUT_DIRS = ("base", "overlays", "regions", "clusters", "policies", "tests/rules", "tests/relabel")
_DIRECTIVE = re.compile(r"(?:^|\s)(?P<mark>#|//)\s*fleet:ignore\b(?P<rest>.*)$")
_BODY = re.compile(r"^\s+(?P<check>[A-Za-z0-9_.-]+)\s*(?:--\s*(?P<reason>.*?))?\s*$")
_MAX_BYTES = 4 << 20


@dataclass(frozen=True)
class Directive:
    check: str
    reason: str
    at: SourceRef      # where the comment is
    target: int        # the line it silences


def parse(text: str, rel: str) -> tuple[list[Directive], list[Finding]]:
    """Directives in one file's text, and findings for malformed ones."""
    directives, problems = [], []
    for number, line in enumerate(text.splitlines(), 1):
        match = _DIRECTIVE.search(line)
        if not match:
            continue
        at = SourceRef(rel, number, match.start("mark") + 1)
        body = _BODY.match(match.group("rest"))
        if not body:
            problems.append(Finding(NAME, Severity.ERROR, at, "malformed fleet:ignore comment",
                                    hint="write `# fleet:ignore <check> -- <reason>`"))
            continue
        reason = (body.group("reason") or "").strip()
        if not reason:
            problems.append(Finding(NAME, Severity.ERROR, at,
                                    f"fleet:ignore {body.group('check')} gives no reason: it silences nothing",
                                    hint="add ` -- <why this finding is acceptable>`"))
            continue
        own_line = line[:match.start("mark")].strip() != ""
        directives.append(Directive(body.group("check"), reason, at, number if own_line else number + 1))
    return directives, problems


def scan(root: Path) -> tuple[list[Directive], list[Finding]]:
    """Every directive in the repo's input files (text files only)."""
    directives, problems = [], []
    for folder in INPUT_DIRS:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.is_symlink()):
            if path.stat().st_size > _MAX_BYTES:
                continue
            raw = path.read_bytes()
            if b"fleet:ignore" not in raw:
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
            found, bad = parse(text, path.relative_to(root).as_posix())
            directives += found
            problems += bad
    return directives, problems


def apply(findings: list[Finding], directives: list[Directive], checks_run: set[str],
          known_checks: set[str]) -> tuple[list[Finding], list[Suppressed]]:
    """Split findings into kept and suppressed; add findings for unknown and unused directives."""
    by_place = {(d.at.file, d.target, d.check): d for d in directives}
    used: set[Directive] = set()
    kept, suppressed = [], []
    for f in findings:
        directive = by_place.get((f.source.file, f.source.line, f.check)) if f.check != NAME else None
        if directive is None:
            kept.append(f)
        else:
            used.add(directive)
            suppressed.append(Suppressed(f, directive.reason, directive.at))
    for d in directives:
        if d.check not in known_checks:
            kept.append(Finding(NAME, Severity.ERROR, d.at, f"fleet:ignore names unknown check {d.check!r}",
                                hint="`fleet lint --list` names the checks"))
        elif d not in used and d.check in checks_run:
            kept.append(Finding(NAME, Severity.WARNING, d.at,
                                f"unused fleet:ignore {d.check}: no {d.check} finding at line {d.target}",
                                hint="remove the comment (the finding it silenced is gone)"))
    return kept, suppressed
