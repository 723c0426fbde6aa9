"""`fleet lint`: run every check plug-in over the model and rendered/, apply inline suppressions,
write the report in the chosen format; exit 1 on a finding at or above --fail-on."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from .. import checks, model, suppress
from ..checks import CheckContext
from ..errors import Severity, processing
from ..lock import rendered_lock
from ..report import WRITERS, Report, sort_findings
from .render import root_option


@click.command("lint")
@root_option
@click.option("--crds", type=click.Path(file_okay=False, exists=True, path_type=Path), multiple=True,
              help="Also validate Flux, Gateway API and Envoy Gateway objects against the real CRD files in "
                   "this folder (repeatable; as kubeconform users do).")
@click.option("--charts", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of pinned chart defaults (<chart>/<version>/values.yaml) for the values-key check.")
@click.option("--only", multiple=True, help="Run only these checks (repeatable).")
@click.option("--skip", multiple=True, help="Skip these checks (repeatable).")
@click.option("--format", "fmt", type=click.Choice(sorted(WRITERS)), default="text", show_default=True)
@click.option("--fail-on", type=click.Choice([s.value for s in Severity]), default="error", show_default=True,
              help="Lowest severity that makes the run fail (exit 1); suppressed findings never do.")
@click.option("--list", "list_checks", is_flag=True, help="List the available checks and exit.")
def lint_command(root: Path, crds: tuple[Path, ...], charts: Path | None, only: tuple[str, ...], skip: tuple[str, ...],
                 fmt: str, fail_on: str, list_checks: bool) -> None:
    """Lint inputs and rendered/ with every check plug-in (see --list)."""
    available = checks.discover()
    if list_checks:
        for c in available:
            click.echo(f"{c.name:20} {c.description}")
        click.echo(f"{suppress.NAME:20} {suppress.DESCRIPTION}")
        return
    unknown = sorted(set(only) - {c.name for c in available}) + sorted(set(skip) - {c.name for c in available} - {suppress.NAME})
    if unknown:
        raise click.UsageError(f"unknown check(s): {', '.join(unknown)}")
    with rendered_lock(root, "lint", write=False) as notes:
        for note in notes:
            click.echo(f"fleet: {note}", err=True)
        _lint(root, available, crds, charts, only, skip, fmt, fail_on)


def _lint(root: Path, available: list, crds: Path | None, charts: Path | None, only: tuple[str, ...],
          skip: tuple[str, ...], fmt: str, fail_on: str) -> None:
    fleet = model.load(root)
    ctx = CheckContext(root=root.resolve(), fleet=fleet, rendered=root.resolve() / "rendered",
                       options={"crds": list(crds) or None, "charts": charts})
    findings = []
    timings = []
    for check in available:
        if (only and check.name not in only) or check.name in skip:
            continue
        start = time.perf_counter()
        with processing(f"the inputs and rendered/ (lint check {check.name})"):
            findings.extend(check.run(ctx))
        timings.append((check.name, time.perf_counter() - start))
    directives, problems = suppress.scan(ctx.root)
    ran = {name for name, _ in timings}
    kept, suppressed = suppress.apply(sort_findings(findings) + problems, directives, ran,
                                      {c.name for c in available})
    descriptions = {c.name: c.description for c in available if c.name in ran}
    if suppress.NAME in skip:  # valid comments still silence; their own findings are not reported
        kept = [f for f in kept if f.check != suppress.NAME]
    else:
        descriptions[suppress.NAME] = suppress.DESCRIPTION
    report = Report(sort_findings(kept), sorted(suppressed, key=lambda s: s.finding.sort_key()), descriptions, ctx.root)
    WRITERS[fmt](report, sys.stdout)
    threshold = Severity(fail_on).rank
    failing = [f for f in report.findings if f.severity.rank >= threshold]
    summary = ", ".join(f"{name} {secs:.2f}s" for name, secs in timings)
    click.echo(f"lint: {len(report.findings)} finding(s), {len(failing)} failing, {len(report.suppressed)} suppressed; "
               f"checks: {summary}", err=True)
    if failing:
        raise SystemExit(1)


COMMANDS = [lint_command]
