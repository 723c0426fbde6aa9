"""`fleet policy check`, `fleet explain`, `fleet test-relabel`: the relabel proof on the command line.

Exit codes: 0 every path proved safe / every test passed, 1 a leak / a failing test,
2 a parse or usage error (InputError, message with file:line:col).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import InputError, SourceRef, processing
from ..relabel import policy as pol
from ..relabel.pipeline import PipelinePath, paths_for_file
from ..relabel.proof import OPAQUE, Leak, prove, trace_concrete
from ..relabel.relabeltest import run_suite
from ..relabel.series import format_series, parse_series

EXIT_CLEAN, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2


def _load_policy(path: str | None) -> pol.Policy:
    if path:
        return pol.load_policy(Path(path), path)
    found = pol.find_default_policy()
    if found is None:
        raise InputError("default policy policies/gdpr-labeldrop.yaml not found; pass --policy FILE")
    return pol.load_policy(found, _display(found))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def check_file(path: str, policy: pol.Policy, flavor: str = "auto") -> dict:
    """One result object of the JSON contract for one PATH."""
    result: dict = {"path": path, "verdict": "safe", "findings": [], "error": None}
    try:
        paths = paths_for_file(Path(path), path, policy, flavor)
        leaks: list[Leak] = []
        for p in paths:
            if p.external:
                leaks.extend(prove(p.pipeline, policy))
    except InputError as exc:
        result.update(verdict="error", error=exc.render())
        return result
    result["findings"] = [leak.to_json() for leak in leaks]
    result["paths"] = [{"description": p.description, "class": p.klass} for p in paths]
    if leaks:
        result["verdict"] = "leak"
    return result


#: Leak kinds of what a write sends beside the relabeled series (exemplars, metadata, another
#: sink's payload): no rule ever sees them, so they have no witness series, only a note.
UNRELABELED_KINDS = ("exemplar", "metadata", "payload")


def _what(f: dict) -> str:
    """One line saying what may leave, for every leak kind the proof reports."""
    if f["kind"] in UNRELABELED_KINDS:
        return f"the write sends {f['kind']} data no relabel rule cleans (see note)"
    return {"label": f"forbidden label {f['label']!r} may leave",
            "value": f"label {f['label']!r} may carry a value derived from {f.get('origin') or 'a forbidden label'}",
            "job": "a series whose job is not on the external allowlist may leave"}[f["kind"]]


def _text_report(results: list[dict]) -> str:
    lines = []
    for r in results:
        if r["verdict"] == "error":
            lines.append(r["error"])
            continue
        lines.append(f"{r['path']}: {r['verdict'].upper()} ({len(r.get('paths', []))} path(s) analysed)")
        for f in r["findings"]:
            lines.append(f"  [{f['kind']}] {_what(f)}")
            lines.append(f"    path:    {f['path']}")
            if f["kind"] not in UNRELABELED_KINDS:  # a label leak has a witness series
                lines.append(f"    input:   {format_series(f['witness']['input'])}")
                lines.append(f"    output:  {format_series(f['witness']['output'])}")
            if f["rules"]:
                lines.append(f"    rules:   {', '.join(f['rules'])}")
            if f.get("note"):
                lines.append(f"    note:    {f['note']}")
    return "\n".join(lines)


@click.group("policy")
def policy_group() -> None:
    """Prove relabel pipelines against the GDPR labeldrop policy."""


@policy_group.command("check")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
              help="policy file (default: policies/gdpr-labeldrop.yaml of this repo)")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--flavor", type=click.Choice(["auto", "prometheus", "vmagent"]), default="auto", show_default=True,
              help="semantics of a bare YAML list: the agent that runs it (auto: Prometheus if it accepts "
                   "the rules, else vmagent); .alloy files are always Prometheus'")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def check_command(policy_path: str | None, fmt: str, flavor: str, paths: tuple[str, ...]) -> None:
    """Prove each PATH (a YAML relabel list or an .alloy file) leaks no customer identifier.

    A bare YAML list is one pipeline from an arbitrary series to the destination class the
    policy's `relabel_files` gives it (external unless listed in-region).
    """
    policy = _load_policy(policy_path)
    results = []
    for path in paths:
        with processing(path):
            results.append(check_file(path, policy, flavor))
    if fmt == "json":
        click.echo(json.dumps({"results": results}, indent=2, sort_keys=True))
    else:
        out = _text_report(results)
        errors = [r for r in results if r["verdict"] == "error"]
        if errors:
            click.echo("\n".join(r["error"] for r in errors), err=True)
            out = _text_report([r for r in results if r["verdict"] != "error"])
        if out:
            click.echo(out)
    verdicts = {r["verdict"] for r in results}
    sys.exit(EXIT_INPUT if "error" in verdicts else EXIT_FINDINGS if "leak" in verdicts else EXIT_CLEAN)


def _compact(rule) -> str:
    parts = []
    if rule.source_labels:
        parts.append("source_labels=[" + ",".join(rule.source_labels) + "]")
    if rule.regex_set or rule.regex != "(.*)":
        parts.append(f"regex={rule.regex!r}")
    if rule.target_label:
        parts.append(f"target_label={rule.target_label}")
    if rule.action in ("replace", "labelmap") and rule.replacement != "$1":
        parts.append(f"replacement={rule.replacement!r}")
    if rule.modulus:
        parts.append(f"modulus={rule.modulus}")
    return f"{rule.action} " + " ".join(parts)


def explain_path(p: PipelinePath, labels: dict[str, str]) -> list[str]:
    lines = [f"path: {p.description}", f"  input: {format_series(labels)}"]
    if any(flavor == OPAQUE for _, flavor in p.pipeline.stages):
        lines.append("  note: an opaque component on this path is shown as passing labels through")
    for _, rule, after in trace_concrete(p.pipeline, labels):
        where = str(rule.source) if rule.source else "<rule>"
        lines.append(f"  {where}: {_compact(rule)}")
        lines.append(f"      → {format_series(after)}")
    return lines


@click.command("explain")
@click.option("--series", required=True, help="input series, e.g. 'up{job=\"shuttle\",project_id=\"p1\"}'")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None)
@click.argument("path", type=click.Path())
def explain_command(series: str, policy_path: str | None, path: str) -> None:
    """Show each rule of PATH in order and the labels after it (every path of an .alloy file)."""
    policy = _load_policy(policy_path)
    labels = parse_series(series, SourceRef("--series"))
    for p in paths_for_file(Path(path), path, policy):
        click.echo("\n".join(explain_path(p, labels)))


@click.command("test-relabel")
@click.argument("files", nargs=-1, required=True, type=click.Path())
def test_relabel_command(files: tuple[str, ...]) -> None:
    """Run relabel unit test files (input series → expected output or dropped)."""
    failed = total = 0
    for f in files:
        for r in run_suite(Path(f), f):
            total += 1
            if r.passed:
                continue
            failed += 1
            click.echo(f"{r.source}: FAIL {r.name}\n  expected: {r.expected}\n  got:      {r.got}")
    click.echo(f"{total - failed}/{total} relabel tests passed")
    sys.exit(EXIT_FINDINGS if failed else EXIT_CLEAN)


COMMANDS = [policy_group, explain_command, test_relabel_command]
