"""A `DiffReport` as text (terminal), markdown (a pull-request comment) or json (machines).

Markdown fits GitHub's comment limit (65,536 characters): the bounded summary and the telemetry
diff come first, each change is folded in a `<details>` block, and whatever does not fit is cut
with a pointer to the full report (`--output FILE`). JSON keys are documented in README.md
("fleet diff") and held by tests; `schema` changes when a key does.
"""
from __future__ import annotations

import html
import json
from typing import Callable

from .compare import DiffReport, TelemetryGroup
from .grouping import Group
from .telemetry import ANY_JOB, DestinationChange, title

SCHEMA = "fleet-diff/1"
#: GitHub refuses a comment body longer than this.
GITHUB_COMMENT_LIMIT = 65_536
#: Room kept for the closing note of a truncated comment.
FOOTER_ROOM = 600
#: Longest diff shown in one fold of the markdown comment.
FOLD_LIMIT = 6_000
#: Units named inline before "and N more".
NAMED_UNITS = 8
NAMED_JOBS = 8


def _names(items: list[str], limit: int, quote: bool = False) -> str:
    shown = [f"`{i}`" if quote else i for i in items[:limit]]
    more = len(items) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _scope_word(scope: str, count: int) -> str:
    word = {"cluster": "cluster", "region": "region", "fleet": "fleet-wide file set"}[scope]
    return word if count == 1 else word + "s"


def _where(scope: str, units: list[str]) -> str:
    if scope == "fleet":
        return "fleet-wide"
    return f"{len(units)} {_scope_word(scope, len(units))} ({_names(units, NAMED_UNITS)})"


def _jobs(jobs: list[str] | tuple[str, ...]) -> str:
    if list(jobs) == [ANY_JOB]:
        return "any job"
    named = [("any job" if j == ANY_JOB else j) for j in jobs]
    return ("job " if len(named) == 1 else "jobs ") + _names(named, NAMED_JOBS)


def telemetry_sentences(change: DestinationChange) -> list[str]:
    """What changed at one destination, one sentence per fact, as a reviewer wants to read it."""
    dest = title(change.destination)
    out = []
    for job in change.jobs_added:
        out.append(f"{_jobs([job])} now reaches {dest}")
    for job in change.jobs_removed:
        out.append(f"{_jobs([job])} no longer reaches {dest}")
    for labels in change.labels:
        for names, verb in ((labels.added, ("now reaches", "now reach")), (labels.removed, ("no longer reaches",
                                                                                               "no longer reach"))):
            if names.empty:
                continue
            single = names.members is not None and len(names.members) == 1
            noun = "" if names.members is None else " label" if single else " labels"
            out.append(f"{names}{noun} {verb[0] if single else verb[1]} {dest} from {_jobs(labels.jobs)}")
    before, after = len(change.gdpr_before), len(change.gdpr_after)
    if change.gdpr_new or change.gdpr_resolved:
        out.append(f"GDPR verdict for {dest}: {_verdict(before)} → {_verdict(after)}")
        out.extend(f"new GDPR finding: {f}" for f in change.gdpr_new)
        out.extend(f"resolved GDPR finding: {f}" for f in change.gdpr_resolved)
    return out


def _verdict(findings: int) -> str:
    return "clean" if findings == 0 else f"{findings} finding{'s' if findings > 1 else ''}"


def _headline(report: DiffReport) -> str:
    head = report.head
    side = f"working tree (HEAD {head['commit'][:12]}{', with uncommitted changes' if head['dirty'] else ''})"
    return f"base {report.base.ref} ({report.base.commit[:12]}) → {side}"


def _summary_line(report: DiffReport) -> str:
    if not report.changed:
        return "No change to rendered/."
    units = report.units
    parts = [f"{units[s]} {_scope_word(s, units[s])}" for s in ("cluster", "region") if units[s]]
    if units["fleet"]:
        parts.append("fleet-wide files")
    return (f"{report.files} rendered file{'s' if report.files != 1 else ''} changed in {', '.join(parts)}: "
            f"{len(report.groups)} distinct change{'s' if len(report.groups) != 1 else ''}.")


def _group_title(g: Group, first_of_object: bool) -> str:
    what = f"{g.change.path}" + (f" {g.change.obj}" if g.change.obj else "")
    status = "" if g.change.status == "modified" else f" ({g.change.status})"
    lead = "the same change in" if first_of_object else "exception: a different change in"
    if g.scope == "fleet":
        return f"{what}{status}"
    return f"{what}{status} — {lead} {_where(g.scope, g.units)}"


def _firsts(groups: list[Group]) -> list[bool]:
    """Whether each group is the largest (first) of its object; the others are its exceptions."""
    seen: set[tuple] = set()
    out = []
    for g in groups:
        key = (g.scope, g.change.path, g.change.obj)
        out.append(key not in seen)
        seen.add(key)
    return out


# -- text


def to_text(report: DiffReport) -> str:
    lines = [f"fleet diff: {_headline(report)}", _summary_line(report)]
    if report.telemetry:
        lines += ["", "Telemetry:"]
        for t in report.telemetry:
            lines.append(f"  {title(t.change.destination)} — {_where(t.scope, t.units)}:")
            lines += [f"    {s}" for s in telemetry_sentences(t.change)]
    elif report.changed:
        lines += ["", "Telemetry: no change to what reaches Grafana Cloud or the regions' VictoriaMetrics."]
    if report.groups:
        lines += ["", "Changes:"]
        for g, first in zip(report.groups, _firsts(report.groups)):
            lines.append(f"  {_group_title(g, first)}")
            lines += [f"    {line}" for line in g.shown.splitlines()]
    return "\n".join(lines) + "\n"


# -- markdown


def _fence(text: str) -> str:
    """A code fence longer than any backtick run in `text`, so the content cannot close it."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def _fold(summary: str, diff: str, limit: int) -> str:
    body = diff
    if len(body) > limit:
        cut = body[:limit].rsplit("\n", 1)[0]
        body = cut + f"\n… ({diff.count(chr(10)) - cut.count(chr(10))} more lines in the full report)"
    fence = _fence(body)
    return (f"<details><summary>{html.escape(summary)}</summary>\n\n{fence}diff\n{body}\n{fence}\n\n"
            "</details>\n")


def _md_escape(text: str) -> str:
    """Markdown outside code: angle brackets (the `<cluster>` placeholder) must not read as HTML."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def to_markdown(report: DiffReport, full_report: str | None = None, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """The comment; `full_report` names where the complete report was written (--output)."""
    head = [f"## fleet diff\n\n{_md_escape(_headline(report))}\n\n**{_md_escape(_summary_line(report))}**\n"]
    blocks: list[str] = []
    if report.telemetry:
        telemetry = ["\n### Telemetry\n"]
        for t in report.telemetry:
            telemetry.append(f"\n**{title(t.change.destination)}** — {_where(t.scope, t.units)}:\n")
            telemetry += [f"- {_md_escape(s)}\n" for s in telemetry_sentences(t.change)]
        blocks += telemetry
    elif report.changed:
        blocks.append("\nTelemetry: no change to what reaches Grafana Cloud or the regions' VictoriaMetrics.\n")
    if report.groups:
        blocks.append("\n### Changes\n\n")
        for g, first in zip(report.groups, _firsts(report.groups)):
            blocks.append(_fold(_group_title(g, first), g.shown, FOLD_LIMIT))
    out = "".join(head)
    budget = limit - FOOTER_ROOM
    shown = 0
    for block in blocks:
        if len(out) + len(block) > budget:
            break
        out += block
        shown += 1
    left = len(blocks) - shown
    if left:
        where = f"the full report is in `{full_report}`" if full_report else \
            "run `fleet diff --format markdown --output FILE` for the full report"
        out += f"\n---\n**Truncated** to fit a GitHub comment: {left} more block{'s' if left > 1 else ''} " \
               f"not shown; {_md_escape(where)}.\n"
    return out


# -- json


def to_json(report: DiffReport) -> str:
    units = report.units
    data = {
        "schema": SCHEMA,
        "base": {"ref": report.base.ref, "commit": report.base.commit},
        "head": {"commit": report.head["commit"], "dirty": report.head["dirty"]},
        "summary": {"changed": report.changed, "files": report.files, "clusters": units["cluster"],
                    "regions": units["region"], "fleet": bool(units["fleet"]), "changes": len(report.groups),
                    "telemetry": len(report.telemetry),
                    "gdpr_new": sum(len(t.change.gdpr_new) for t in report.telemetry),
                    "gdpr_resolved": sum(len(t.change.gdpr_resolved) for t in report.telemetry)},
        "telemetry": [_telemetry_json(t) for t in report.telemetry],
        "changes": [{"scope": g.scope, "units": g.units, "path": g.change.path, "object": g.change.obj,
                     "status": g.change.status, "exception": not first, "diff": g.shown, "lines": g.change.diff}
                    for g, first in zip(report.groups, _firsts(report.groups))],
    }
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def _telemetry_json(t: TelemetryGroup) -> dict:
    return {"scope": t.scope, "units": t.units, **t.change.to_json(), "sentences": telemetry_sentences(t.change)}


WRITERS: dict[str, Callable[..., str]] = {"text": to_text, "markdown": to_markdown, "json": to_json}
